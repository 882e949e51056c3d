//! `vmlab exp pte_lock` end to end, small enough for a debug build: the JSON
//! shape, exact fault counts on the disjoint pattern, and bad arguments.

use serde_json::Value;
use std::process::{Command, Output};

fn vmlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmlab"))
        .args(args)
        .output()
        .expect("the vmlab binary runs")
}

#[test]
fn json_rows_and_claims() {
    let o = vmlab(&[
        "exp",
        "pte_lock",
        "--threads",
        "2",
        "--pages",
        "128",
        "--runs",
        "5",
        "--json",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let v: Value = serde_json::from_slice(&o.stdout).expect("stdout is one JSON object");
    assert_eq!(v["experiment"], "pte_lock");
    assert_eq!(v["config"]["cpus"], 2);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3 * 2 * 2, "3 policies x threads 1,2 x 2 patterns");
    for r in rows {
        for key in [
            "policy",
            "threads",
            "pattern",
            "faults",
            "faults_per_s",
            "pages_wasted",
            "lock_waits",
        ] {
            assert!(r.get(key).is_some(), "row lacks {key}: {r}");
        }
        let t = r["threads"].as_u64().unwrap();
        if r["pattern"] == "disjoint" {
            assert_eq!(r["faults"].as_u64().unwrap(), 128 * t, "{r}");
            assert_eq!(r["pages_wasted"], 0, "{r}");
        }
        let (p50, p99) = (
            r["first_store_p50_ns"].as_u64().unwrap(),
            r["first_store_p99_ns"].as_u64().unwrap(),
        );
        assert!(0 < p50 && p50 <= p99, "{r}");
        if r["policy"] == "pte_bit" {
            assert_eq!(r["pages_wasted"], 0, "{r}");
        }
    }
    let claims = v["claims"].as_array().unwrap();
    assert_eq!(claims.len(), 5);
    // The seed 000 #5 claims are computed from the shared rows at N = 2:
    // pt_lock's waste per fault, and pte_bit's p99 over pt_lock's.
    let shared = |policy: &str| {
        rows.iter()
            .find(|r| r["policy"] == policy && r["threads"] == 2 && r["pattern"] == "shared")
            .unwrap()
    };
    let f = |r: &Value, k: &str| r[k].as_f64().unwrap();
    let (pt, pte) = (shared("pt_lock"), shared("pte_bit"));
    assert_eq!(claims[0]["seed"], "000 #5");
    assert_eq!(claims[0]["rule"], "at_least");
    assert_eq!(claims[0]["threshold"], 0.1);
    let waste = f(pt, "pages_wasted") / f(pt, "faults");
    assert!((f(&claims[0], "measured") - waste).abs() < 1e-9, "{}", claims[0]);
    assert_eq!(claims[1]["seed"], "000 #5");
    assert_eq!(claims[1]["rule"], "at_most");
    assert_eq!(claims[1]["threshold"], 1.1);
    let p99 = f(pte, "first_store_p99_ns") / f(pt, "first_store_p99_ns");
    assert!((f(&claims[1], "measured") - p99).abs() < 1e-9, "{}", claims[1]);
    for c in claims {
        assert!(
            ["reproduced", "partial", "refuted"].contains(&c["verdict"].as_str().unwrap()),
            "{c}"
        );
    }
}

#[test]
fn bad_arguments_exit_2() {
    for args in [
        &["exp", "pte_lock", "--threads", "1"][..],
        &["exp", "pte_lock", "--pages", "10"][..],
        &["exp", "pte_lock", "--runs", "2"][..],
    ] {
        let o = vmlab(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
