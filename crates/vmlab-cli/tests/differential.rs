//! Differential tests: vmlab against the Linux kernel it runs on, through the
//! `vmlab oracle record | replay` pair (docs/SEMANTICS.md).
//!
//! `differential_host_vs_vmlab` records random sequences on the host kernel
//! (in the binary's hidden recorder child) and replays them on vmlab, which
//! must show no divergence. Environment knobs for long runs:
//! `VMLAB_DIFF_SEED` (default 1), `VMLAB_DIFF_CASES` (sequences, default
//! 1000), `VMLAB_DIFF_OPS` (calls per sequence, default 20),
//! `VMLAB_DIFF_WITHOUT` (op kinds to leave out, e.g. `mremap,madvise`).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use vmlab::oracle::format::{fnv1a64, fnv_hex, zero_page_fnv};

const BIN: &str = env!("CARGO_BIN_EXE_vmlab");
/// Whether the host can record (the recorder is Linux x86-64 only).
const HOST: bool = cfg!(all(target_os = "linux", target_arch = "x86_64"));

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// At most the last `n` bytes of `s` (divergence lists can be long).
fn tail(s: &str, n: usize) -> &str {
    let mut k = s.len().saturating_sub(n);
    while !s.is_char_boundary(k) {
        k += 1;
    }
    &s[k..]
}

/// A file in the test target's scratch directory, unique to this test run.
fn scratch(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("differential-{name}-{}.jsonl", std::process::id()))
}

/// `vmlab oracle record ARGS`: its stdout; it must succeed.
fn record(args: &[&str]) -> String {
    let o = Command::new(BIN)
        .args(["oracle", "record"])
        .args(args)
        .output()
        .expect("run vmlab oracle record");
    assert!(o.status.success(), "record failed: {}\n{}", o.status, text(&o.stderr));
    text(&o.stdout)
}

/// `vmlab --set ram=16MiB oracle replay --check-each-op FILE` on `contents`.
fn replay(name: &str, contents: &str) -> Output {
    let path = scratch(name);
    std::fs::write(&path, contents).expect("write the recording");
    let o = Command::new(BIN)
        .args(["--set", "ram=16MiB", "oracle", "replay", "--check-each-op"])
        .arg(&path)
        .output()
        .expect("run vmlab oracle replay");
    let _ = std::fs::remove_file(&path);
    o
}

fn last_line(o: &Output) -> String {
    text(&o.stdout).lines().last().unwrap_or("").to_string()
}

#[test]
fn differential_host_vs_vmlab() {
    if !HOST {
        eprintln!("skipped: recording needs Linux on x86-64");
        return;
    }
    let seed = env_u64("VMLAB_DIFF_SEED", 1);
    let cases = env_u64("VMLAB_DIFF_CASES", 1000);
    let ops = env_u64("VMLAB_DIFF_OPS", 20);
    let without = std::env::var("VMLAB_DIFF_WITHOUT").unwrap_or_default();
    let (seed_s, cases_s, ops_s) = (seed.to_string(), cases.to_string(), ops.to_string());
    let mut args = vec![
        "oracle",
        "record",
        "--seed",
        &seed_s,
        "--sequences",
        &cases_s,
        "--ops",
        &ops_s,
    ];
    if !without.is_empty() {
        args.extend(["--without", without.as_str()]);
    }
    // record | replay -: both run at once, nothing is held on disk.
    let mut rec = Command::new(BIN)
        .args(&args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start vmlab oracle record");
    let pipe = rec.stdout.take().expect("record's stdout");
    let rep = Command::new(BIN)
        .args(["--set", "ram=16MiB", "oracle", "replay", "--check-each-op", "-"])
        .stdin(Stdio::from(pipe))
        .output()
        .expect("run vmlab oracle replay");
    let rec_status = rec.wait().expect("wait for record");
    assert!(rec_status.success(), "record failed: {rec_status}");
    let out = text(&rep.stdout);
    let want = format!("{cases} sequences, 0 divergences, 0 skipped");
    assert!(
        rep.status.success() && last_line(&rep) == want,
        "vmlab diverges from Linux ({}):\n{}\n{}\nTo record one sequence again: vmlab oracle record --seed {seed} \
         --first SEQ --sequences 1 --ops {ops} > one.jsonl; vmlab oracle replay one.jsonl",
        rep.status,
        tail(&out, 30_000),
        text(&rep.stderr),
    );
}

/// Set op `op`'s `res` of line `k` to `res`.
fn set_res(lines: &mut [String], k: usize, op: usize, res: serde_json::Value) {
    let mut v: serde_json::Value = serde_json::from_str(&lines[k]).unwrap();
    v["ops"][op]["res"] = res;
    lines[k] = v.to_string();
}

/// Seed 77's sequence 5619: a MADV_FREE'd page, then an mremap
/// (MAYMOVE|FIXED|DONTUNMAP) whose old range has a hole, so the target page
/// facing the hole keeps its MADV_FREE'd contents on Linux (6.17 on moves
/// across holes). vmlab keeps them too: replay compares them strictly.
#[test]
fn differential_madv_free_page_kept_by_a_gapped_mremap() {
    if !HOST {
        eprintln!("skipped: recording needs Linux on x86-64");
        return;
    }
    let rec = record(&["--seed", "77", "--first", "5619", "--sequences", "1", "--ops", "30"]);
    let o = replay("gapped-mremap", &rec);
    assert_eq!(
        last_line(&o),
        "1 sequences, 0 divergences, 0 skipped",
        "{}",
        text(&o.stdout)
    );
}

#[test]
fn differential_corrupted_recording_diverges() {
    if !HOST {
        eprintln!("skipped: recording needs Linux on x86-64");
        return;
    }
    // mmap, munmap, mprotect, loads and stores only: vmlab matches Linux on these.
    let good = record(&[
        "--seed",
        "5",
        "--sequences",
        "30",
        "--ops",
        "20",
        "--without",
        "mremap,madvise",
    ]);
    let o = replay("good", &good);
    assert_eq!(
        last_line(&o),
        "30 sequences, 0 divergences, 0 skipped",
        "the uncorrupted recording must replay cleanly:\n{}",
        text(&o.stdout)
    );
    assert!(o.status.success());

    let mut lines: Vec<String> = good.lines().map(str::to_string).collect();
    // Sequence 2's first call is a MAP_FIXED mmap that succeeded: claim another page.
    let v: serde_json::Value = serde_json::from_str(&lines[2]).unwrap();
    let at = v["ops"][0]["res"].as_i64().expect("a MAP_FIXED mmap that succeeded");
    set_res(&mut lines, 2, 0, serde_json::json!(at + 1));
    // Sequence 7: the first readable page gets the wrong hash.
    let mut v: serde_json::Value = serde_json::from_str(&lines[7]).unwrap();
    let pages = v["pages"].as_array_mut().unwrap();
    let p = pages
        .iter_mut()
        .find(|p| p.as_array().unwrap().len() == 3)
        .expect("a readable page");
    p[2] = serde_json::json!("0123456789abcdef");
    lines[7] = v.to_string();

    let o = replay("corrupt", &(lines.join("\n") + "\n"));
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert_eq!(last_line(&o), "30 sequences, 2 divergences, 0 skipped", "{out}");
    assert!(out.contains(r#"seed 5 seq 2: op 0 {"op":"mmap""#), "{out}");
    assert!(out.contains(&format!("host:  {}", at + 1)), "{out}");
    assert!(out.contains(&format!("vmlab: {at}")), "{out}");
    assert!(out.contains("seed 5 seq 7: pages (1 differ)"), "{out}");
    assert!(out.contains("0123456789abcdef"), "{out}");
}

/// A sequence vmlab and Linux agree on, written by hand.
const HAND: &str = concat!(
    r#"{"seed":0,"seq":0,"W":4,"page_size":4096,"ops":[{"i":0,"op":"mmap","addr_pg":1,"addr_b":0,"len_b":4096,"#,
    r#""prot":"PROT_READ","flags":"MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED","res":1},"#,
    r#"{"i":1,"op":"store","pg":1,"byte":3,"val":9,"res":"SEGV"}],"#,
    r#""maps":[[1,2,"r--p"]],"maps_ext":[[1,2,"r--p"]],"pages":[[1,0,"b93a0c83ce3b6325"]]}"#
);

#[test]
fn differential_error_lines_are_skipped() {
    let o = replay(
        "skip",
        &format!("{HAND}\n{{\"seed\":0,\"seq\":1,\"error\":\"the child died\"}}\n"),
    );
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    assert_eq!(last_line(&o), "1 sequences, 0 divergences, 1 skipped");
}

#[test]
fn differential_bad_input_exits_2() {
    for (name, contents, line) in [
        ("notjson", format!("{HAND}\n{{\"seed\":0,\n"), "line 2"),
        (
            "pagesize",
            HAND.replace("\"page_size\":4096", "\"page_size\":65536"),
            "line 1",
        ),
        (
            "badop",
            format!("{HAND}\n\n{}\n", HAND.replace("\"store\"", "\"poke\"")),
            "line 3",
        ),
    ] {
        let o = replay(name, &contents);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(line), "{name}: {err}");
        // The file is checked before anything runs.
        assert!(o.stdout.is_empty(), "{name}: {}", text(&o.stdout));
    }
    let o = Command::new(BIN)
        .args(["oracle", "replay", "/nonexistent/recording.jsonl"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    // From stdin, a bad line also stops the replay with 2.
    let mut c = Command::new(BIN)
        .args(["oracle", "replay", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(b"[1,2]\n").unwrap();
    let o = c.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("line 1"), "{}", text(&o.stderr));
}

#[test]
fn differential_record_is_deterministic() {
    if !HOST {
        eprintln!("skipped: recording needs Linux on x86-64");
        return;
    }
    let args = ["--seed", "9", "--sequences", "12", "--ops", "15"];
    let a = record(&args);
    assert_eq!(a, record(&args));
    assert_eq!(a.lines().count(), 12);
    // One sequence recorded on its own is the same line.
    let one = record(&["--seed", "9", "--first", "5", "--sequences", "1", "--ops", "15"]);
    assert_eq!(one.lines().next(), a.lines().nth(5));
}

/// Every recorded line says which host facts shaped Linux's answers: the
/// protection keys /proc/cpuinfo shows and the kernel release.
#[test]
fn differential_record_writes_host_facts() {
    if !HOST {
        eprintln!("skipped: recording needs Linux on x86-64");
        return;
    }
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    let pkeys = vmlab::host::cpuinfo_has_pkeys(&cpuinfo);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    for line in record(&["--seed", "3", "--sequences", "3", "--ops", "5"]).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["host"]["pkeys"], serde_json::Value::Bool(pkeys), "{line}");
        assert_eq!(v["host"]["kernel"].as_str(), Some(kernel.trim()), "{line}");
    }
}

#[test]
fn differential_fnv_of_a_zero_page() {
    assert_eq!(fnv_hex(fnv1a64(&[0u8; 4096])), "b93a0c83ce3b6325");
    assert_eq!(fnv_hex(zero_page_fnv()), "b93a0c83ce3b6325");
}
