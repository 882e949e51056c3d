//! `vmlab replay --mode cache` end to end: rows per --frames value with
//! libCacheSim's numbers (docs/REPLAY.md), the policy from --set reclaim,
//! and exit 2 for what is not a run.

use serde_json::Value;
use std::process::{Command, Output};

fn vmlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmlab"))
        .args(args)
        .output()
        .expect("the vmlab binary runs")
}

fn cpp() -> String {
    format!(
        "{}/../../../shared/traces/trace-cpp.trc.bin.gz",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn json_rows_per_frames() {
    let t = cpp();
    let o = vmlab(&[
        "replay",
        &t,
        "--mode",
        "cache",
        "--frames",
        "20,35,50",
        "--json",
        "--set",
        "reclaim=arc",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(v["experiment"], "replay");
    assert_eq!(v["config"]["reclaim"], "arc");
    assert_eq!(v["config"]["format"], "trc");
    let rows = v["rows"].as_array().unwrap();
    let got: Vec<(u64, u64, u64)> = rows
        .iter()
        .map(|r| {
            assert_eq!(r["policy"], "arc");
            (
                r["frames"].as_u64().unwrap(),
                r["references"].as_u64().unwrap(),
                r["misses"].as_u64().unwrap(),
            )
        })
        .collect();
    // libCacheSim 0.3.5's ARC on cpp (docs/REPLAY.md).
    assert_eq!(got, vec![(20, 9047, 7447), (35, 9047, 6817), (50, 9047, 5987)]);
    let r = &rows[0];
    assert!((r["miss_ratio"].as_f64().unwrap() - 7447.0 / 9047.0).abs() < 1e-12);
}

#[test]
fn table_default_lru_and_clock_option() {
    let t = cpp();
    let o = vmlab(&["replay", &t, "--frames", "50", "--quiet"]);
    assert_eq!(o.status.code(), Some(0));
    let s = String::from_utf8_lossy(&o.stdout);
    // lru by default: 8209 misses at 50 frames.
    assert!(s.lines().any(|l| l.starts_with("lru") && l.contains(" 8209 ")), "{s}");
    let clear = vmlab(&["replay", &t, "--frames", "80", "--json", "--set", "reclaim=clock"]);
    let set = vmlab(&[
        "replay",
        &t,
        "--frames",
        "80",
        "--json",
        "--set",
        "reclaim=clock",
        "--set",
        "clock_init_ref=true",
    ]);
    let m = |o: &Output| {
        serde_json::from_slice::<Value>(&o.stdout).unwrap()["rows"][0]["misses"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(m(&clear), 4283);
    assert_ne!(m(&set), 4283, "the reference bit set at insert changes the misses");
}

#[test]
fn usage_errors_exit_2() {
    let t = cpp();
    for (args, needle) in [
        (
            vec!["replay", &t, "--frames", "20", "--set", "reclaim=nope"],
            "clock_pro",
        ),
        (
            vec!["replay", &t, "--frames", "20", "--mode", "full", "--set", "reclaim=arc"],
            "`arc` is a cache-mode policy",
        ),
        (vec!["replay", &t, "--mode", "full"], "--frames"),
        (vec!["replay", &t], "--frames"),
        (vec!["replay", "/nonexistent.trc", "--frames", "20"], "/nonexistent.trc"),
        (vec!["replay", &t, "--frames", "20", "--set", "ram=bad"], "ram"),
        (
            vec!["replay", &t, "--frames", "20", "--set", "clock_init_ref=maybe"],
            "clock_init_ref",
        ),
        (
            vec!["replay", &t, "--frames", "20", "--mode", "full", "--host-files"],
            "this is a page-number trace",
        ),
    ] {
        let o = vmlab(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

/// Full mode with the exact-LRU bound misses exactly as cache mode's lru at
/// the same frames (the machine is sized so that exactly --frames data pages
/// fit), and the machine's own two_list design, which sees accessed bits
/// only, does not.
#[test]
fn full_mode_lru_equals_cache_mode_lru() {
    let t = cpp();
    let misses = |mode: &str, policy: &str| -> Vec<u64> {
        let o = vmlab(&[
            "replay",
            &t,
            "--mode",
            mode,
            "--set",
            &format!("reclaim={policy}"),
            "--frames",
            "35,100",
            "--json",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["misses"].as_u64().unwrap())
            .collect()
    };
    let cache = misses("cache", "lru");
    assert_eq!(misses("full", "lru"), cache);
    assert_ne!(misses("full", "two_list"), cache);
}

/// The progress bar, on a terminal (`script` gives the command a pty): a
/// run over a second shows references and their rate, and a bar with an
/// ETA from the share of the file read, the first run too (before the
/// trace's length is known); `--quiet` and `--json` show none. Host facts: util-linux's `script`
/// (skipped without it) and a pty.
#[test]
fn the_progress_bar_shows_on_a_terminal_unless_quiet() {
    if !std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("skipped: script (util-linux) not found");
        return;
    }
    let trace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/traces/trace-sprite.trc.bin.gz");
    let run = |extra: &str| {
        let dir = std::env::temp_dir().join(format!("vmlab-progress-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join(format!("log{}", extra.len()));
        let cmd = format!(
            "{} replay {} --mode full --set reclaim=two_list --frames 200,400 {extra}",
            env!("CARGO_BIN_EXE_vmlab"),
            trace.display()
        );
        let o = std::process::Command::new("script")
            .args(["-qec", &cmd])
            .arg(&log)
            .output()
            .unwrap();
        assert!(o.status.success(), "{cmd}: {}", String::from_utf8_lossy(&o.stderr));
        let text = String::from_utf8_lossy(&std::fs::read(&log).unwrap()).into_owned();
        let _ = std::fs::remove_dir_all(&dir);
        text
    };
    let shown = run("");
    assert!(shown.contains("two_list 200 frames (run 1/2)"), "{shown}");
    assert!(shown.contains("references, ") && shown.contains("/s"), "{shown}");
    for run in ["(run 1/2)", "(run 2/2)"] {
        let at = shown.find(run).unwrap_or_else(|| panic!("no {run}: {shown}"));
        let line = &shown[at..];
        let line = &line[..line[1..].find("(run ").map_or(line.len(), |n| n + 1)];
        assert!(line.contains("% ETA"), "{run} has a bar with an ETA: {line}");
    }
    for quiet in ["--quiet", "--json"] {
        let text = run(quiet);
        assert!(!text.contains("(run 1/2)") && !text.contains("ETA"), "{quiet}: {text}");
        assert!(text.contains("133996"), "{quiet}: the results: {text}");
    }
}
