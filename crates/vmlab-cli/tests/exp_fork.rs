//! `vmlab exp fork` end to end, at 16 MiB so that a debug build stays fast:
//! the JSON shape, exact sizes, the host anchor's rows, the shared-segment
//! rows' exact page-table counts, and claim verdicts that follow from their
//! own numbers by the documented rule.

use serde_json::Value;
use std::process::{Command, Output};

fn vmlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmlab"))
        .args(args)
        .output()
        .expect("the vmlab binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Whether `m` passes `threshold` under `rule` (`at_least`, `at_most`, `within`).
fn holds(rule: &str, m: f64, threshold: &Value) -> bool {
    match rule {
        "at_least" => m >= threshold.as_f64().unwrap(),
        "at_most" => m <= threshold.as_f64().unwrap(),
        "within" => {
            let b = threshold.as_array().unwrap();
            b[0].as_f64().unwrap() <= m && m <= b[1].as_f64().unwrap()
        }
        other => panic!("unknown rule {other}"),
    }
}

/// The verdict of one check, recomputed: reproduced if the measured value
/// passes the threshold, partial if it passes the partial threshold, else refuted.
fn verdict_of(c: &Value) -> &'static str {
    let rule = c["rule"].as_str().expect("rule");
    let Some(m) = c["measured"].as_f64() else {
        return "refuted";
    };
    if holds(rule, m, &c["threshold"]) {
        "reproduced"
    } else if !c["partial"].is_null() && holds(rule, m, &c["partial"]) {
        "partial"
    } else {
        "refuted"
    }
}

#[test]
fn exp_fork_json_at_16mib() {
    let o = vmlab(&["exp", "fork", "--max-size", "16MiB", "--runs", "5", "--json"]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let doc: Value = serde_json::from_slice(&o.stdout).expect("stdout is exactly one JSON object");
    assert!(stderr(&o).contains("exp fork: cow 16MiB"), "progress goes to stderr");

    assert_eq!(doc["experiment"], "fork");
    assert_eq!(doc["params"]["runs"], 5);
    assert_eq!(doc["params"]["sizes"], serde_json::json!([16777216]));
    let rows = doc["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 6, "{rows:?}");
    let in_scenario = |sc: &str, p: &str| {
        rows.iter()
            .find(|r| r["scenario"] == sc && r["policy"] == p)
            .unwrap_or_else(|| panic!("no {sc} {p} row"))
    };
    let row = |p: &str| in_scenario("fork", p);
    let seg = |p: &str| in_scenario("shared_segment", p);
    for p in ["cow", "shared_pt", "eager", "host"] {
        let r = row(p);
        assert_eq!(r["resident_bytes"].as_u64(), Some(16777216), "{p}");
        assert!(r["fork_ns"].as_u64().unwrap() > 0, "{p}");
        assert!(r["first_writes_ns"].as_u64().unwrap() > 0, "{p}");
        assert_eq!(r["runs"], 5);
    }
    let pt = |p: &str| row(p)["page_table_pages"].as_u64().unwrap();
    assert!(
        pt("shared_pt") < pt("cow"),
        "shared_pt {} vs cow {}",
        pt("shared_pt"),
        pt("cow")
    );
    // 16 MiB needs at least 8 leaf tables; shared_pt's fork allocates none of them.
    assert!(pt("cow") >= pt("shared_pt") + 8);
    assert!(row("host")["page_table_pages"].is_null());
    assert_eq!(row("eager")["pages_copied"], 4096);
    assert_eq!(row("cow")["pages_copied"], 0);

    // The shared segment: 32 spawned processes map one 16 MiB file at a
    // 1 GiB-aligned address: 8 leaf tables, and root + PDPT + PD each.
    assert_eq!(doc["params"]["processes"], 32);
    assert_eq!(doc["params"]["segment_bytes"], 16777216);
    assert_eq!(
        rows.iter().filter(|r| r["scenario"] == "shared_segment").count(),
        2,
        "cow and shared_pt"
    );
    for p in ["cow", "shared_pt"] {
        let r = seg(p);
        assert_eq!(r["processes"], 32, "{p}");
        assert_eq!(r["segment_bytes"], 16777216, "{p}");
        assert_eq!(
            r["page_table_bytes"].as_u64().unwrap(),
            r["page_table_pages"].as_u64().unwrap() * 4096
        );
        assert!(r["touch_ns"].as_u64().unwrap() > 0, "{p}");
        assert!(r["fork_ns"].is_null(), "{p}: no fork in this scenario");
    }
    let seg_pt = |p: &str| seg(p)["page_table_pages"].as_u64().unwrap();
    assert_eq!(seg_pt("cow"), 32 * (8 + 3));
    assert_eq!(seg_pt("shared_pt"), 8 + 32 * 3);
    // cow: every process faults every page; shared_pt: the first faults
    // every page, the others once per 2 MiB table they attach.
    assert_eq!(seg("cow")["faults"], 32 * 4096);
    assert_eq!(seg("shared_pt")["faults"], 4096 + 31 * 8);

    let claims = doc["claims"].as_array().expect("claims");
    assert_eq!(claims.len(), 5);
    assert_eq!(
        claims.iter().map(|c| c["seed"].as_str().unwrap()).collect::<Vec<_>>(),
        ["003", "003", "000", "anchor", "003"]
    );
    for c in claims {
        for k in ["seed", "claim", "metric", "measured", "threshold", "verdict"] {
            assert!(c.get(k).is_some(), "claim lacks {k}: {c}");
        }
        let main = verdict_of(c);
        let reqs: Vec<&str> = c["requires"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let v = verdict_of(r);
                assert_eq!(r["verdict"], v, "requirement {r}");
                v
            })
            .collect();
        let want = match main {
            "refuted" => "refuted",
            "reproduced" if reqs.iter().all(|v| *v == "reproduced") => "reproduced",
            _ => "partial",
        };
        assert_eq!(c["verdict"], want, "claim {c}");
    }
    // Claim 1's metric is the ratio of the rows' fork latencies.
    let m = claims[0]["measured"].as_f64().unwrap();
    let want = row("cow")["fork_ns"].as_f64().unwrap() / row("shared_pt")["fork_ns"].as_f64().unwrap();
    assert!((m - want).abs() < 1e-9 * want.max(1.0), "{m} vs {want}");
    assert_eq!(
        claims[1]["requires"][0]["measured"].as_f64(),
        Some(0.0),
        "shared_pt allocated a leaf table"
    );
    // Claim 5's metric is the page-table MiB shared_pt saved over cow.
    let saved = (seg_pt("cow") - seg_pt("shared_pt")) as f64 * 4096.0 / (1 << 20) as f64;
    assert_eq!(claims[4]["measured"].as_f64(), Some(saved));
    assert_eq!(claims[4]["threshold"].as_f64(), Some(100.0));
    assert_eq!(claims[4]["verdict"], "refuted", "16 MiB x 32 saves under 1 MiB");
    assert_eq!(
        claims[4]["requires"][0]["measured"].as_f64(),
        Some(0.0),
        "shared_pt's processes hold one set of leaf tables"
    );
    let text = claims[4]["claim"].as_str().unwrap();
    assert!(text.contains("P >= 3201") && text.contains("P = 32"), "{text}");
}

#[test]
fn exp_fork_processes_flag() {
    let o = vmlab(&["exp", "fork", "--max-size", "16MiB", "--processes", "3", "--json"]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["params"]["processes"], 3);
    let rows = doc["rows"].as_array().unwrap();
    let pt = |p: &str| {
        rows.iter()
            .find(|r| r["scenario"] == "shared_segment" && r["policy"] == p)
            .unwrap()["page_table_pages"]
            .as_u64()
            .unwrap()
    };
    assert_eq!((pt("cow"), pt("shared_pt")), (3 * 11, 8 + 3 * 3));
}

#[test]
fn exp_fork_table_output() {
    let o = vmlab(&["exp", "fork", "--max-size", "16MiB"]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "policy",
        "shared_pt",
        "eager",
        "host",
        "16MiB",
        "claims",
        "verdict",
        "003",
        "000",
        "shared_segment",
        "procs",
    ] {
        assert!(out.contains(needle), "table lacks {needle}: {out}");
    }
    assert!(!out.contains("exp fork: cow"), "progress must not go to stdout");
}

#[test]
fn exp_fork_bad_args_exit_2() {
    for (args, needle) in [
        (&["exp", "fork", "--max-size", "8MiB"][..], "at least 16MiB"),
        (&["exp", "fork", "--max-size", "lots"][..], "invalid size"),
        (&["exp", "fork", "--runs", "4"][..], "--runs"),
        (&["exp", "fork", "--processes", "1"][..], "--processes"),
        (&["exp", "nosuch"][..], "nosuch"),
        (&["exp", "fork", "--set", "cpus=0"][..], "cpus"),
    ] {
        let o = vmlab(args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: stderr lacks {needle:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
