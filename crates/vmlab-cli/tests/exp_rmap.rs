//! `vmlab exp rmap --quick` end to end, small enough for a debug build: the
//! JSON shape, every design in every scenario, exact PTE counts, and claim
//! verdicts that follow from their own numbers.

use serde_json::Value;
use std::process::{Command, Output};

const DESIGNS: [&str; 5] = ["object", "pte_chain", "pte_pool", "private_vma", "none"];

fn vmlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmlab"))
        .args(args)
        .output()
        .expect("the vmlab binary runs")
}

fn holds(rule: &str, m: f64, t: &Value) -> bool {
    match rule {
        "at_least" => m >= t.as_f64().unwrap(),
        "at_most" => m <= t.as_f64().unwrap(),
        other => panic!("unexpected rule {other}"),
    }
}

#[test]
fn quick_json_rows_and_claims() {
    let o = vmlab(&["exp", "rmap", "--quick", "--sharers", "1,3,10", "--json"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("exp rmap: unmap object forked"),
        "progress goes to stderr: {err}"
    );
    let v: Value = serde_json::from_slice(&o.stdout).expect("stdout is one JSON object");
    assert_eq!(v["experiment"], "rmap");
    assert!(v["config"].is_object());
    assert_eq!(v["params"]["sharers"], serde_json::json!([1, 3, 10]));
    assert_eq!(v["params"]["footprint_pages"], 256);
    let rows = v["rows"].as_array().unwrap();
    for r in rows {
        for key in [
            "scenario",
            "policy",
            "fork",
            "sharers",
            "unmap_ns",
            "rmap_bytes",
            "fork_ns",
        ] {
            assert!(r.get(key).is_some(), "row lacks {key}: {r}");
        }
    }
    fn of<'a>(rows: &'a [Value], sc: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        rows.iter().filter(move |r| r["scenario"] == sc)
    }
    let rows = &rows[..];
    // unmap: every design, both cases, every count; private_vma's forked rows skipped.
    assert_eq!(of(rows, "unmap").count(), 5 * 2 * 3);
    for d in DESIGNS {
        for case in ["forked", "file"] {
            for s in [1u64, 3, 10] {
                let r = of(rows, "unmap")
                    .find(|r| r["policy"] == d && r["case"] == case && r["sharers"] == s)
                    .unwrap_or_else(|| panic!("no unmap row {d} {case} {s}"));
                if d == "private_vma" && case == "forked" {
                    assert!(r["skipped"].as_str().unwrap().contains("eager"), "{r}");
                    assert!(r["unmap_ns"].is_null(), "{r}");
                    continue;
                }
                assert!(r["skipped"].is_null(), "{r}");
                assert_eq!(r["ptes_cleared"].as_u64(), Some(s), "{r}");
                assert!(r["unmap_ns"].as_u64().unwrap() > 0, "{r}");
                assert_eq!(r["footprint_pages"], 256, "{r}");
                assert_eq!(r["runs"], 5, "{r}");
                if d == "none" {
                    assert_eq!(r["rmap_bytes"], 0, "{r}");
                }
            }
        }
    }
    // rmap_memory: one row per design, all under fork = eager, same page tables.
    assert_eq!(of(rows, "rmap_memory").count(), 5);
    let mem = |d: &str| of(rows, "rmap_memory").find(|r| r["policy"] == d).unwrap();
    for d in DESIGNS {
        let r = mem(d);
        assert_eq!(r["fork"], "eager", "{r}");
        assert_eq!(r["processes"], 5, "{r}");
        assert_eq!(r["page_table_pages"], mem("object")["page_table_pages"], "{r}");
        assert_eq!(
            r["page_table_bytes"].as_u64().unwrap(),
            r["page_table_pages"].as_u64().unwrap() * 4096
        );
    }
    // fork: one row per design under cow (private_vma: eager), pte_chain under shared_pt too.
    let forks: Vec<(String, String)> = of(rows, "fork")
        .map(|r| {
            assert!(r["fork_ns"].as_u64().unwrap() > 0, "{r}");
            assert_eq!(r["resident_bytes"], 16 << 20, "{r}");
            (
                r["policy"].as_str().unwrap().to_string(),
                r["fork"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("object", "cow"),
        ("pte_chain", "cow"),
        ("pte_chain", "shared_pt"),
        ("pte_pool", "cow"),
        ("private_vma", "eager"),
        ("none", "cow"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(forks, want);

    let claims = v["claims"].as_array().unwrap();
    assert_eq!(
        claims.iter().map(|c| c["seed"].as_str().unwrap()).collect::<Vec<_>>(),
        ["002", "002", "000 #4", "003", "002"]
    );
    for c in claims {
        let rule = c["rule"].as_str().unwrap();
        let want = match c["measured"].as_f64() {
            None => "refuted",
            Some(m) if holds(rule, m, &c["threshold"]) => "reproduced",
            Some(m) if !c["partial"].is_null() && holds(rule, m, &c["partial"]) => "partial",
            Some(_) => "refuted",
        };
        assert_eq!(c["verdict"], want, "{c}");
    }
    // Claim 1 is computed from the forked rows at the largest count.
    let unmap = |d: &str, case: &str| {
        of(rows, "unmap")
            .find(|r| r["policy"] == d && r["case"] == case && r["sharers"] == 10)
            .unwrap()["unmap_ns"]
            .as_f64()
            .unwrap()
    };
    let m = claims[0]["measured"].as_f64().unwrap();
    let want = unmap("none", "forked") / unmap("object", "forked");
    assert!((m - want).abs() < 1e-9 * want.max(1.0), "{m} vs {want}");
    // Claim 3 from the memory rows.
    let rb = |d: &str| mem(d)["rmap_bytes"].as_f64().unwrap();
    assert_eq!(claims[2]["measured"].as_f64(), Some(rb("object") / rb("private_vma")));
}

#[test]
fn footprint_flag() {
    let o = vmlab(&[
        "exp",
        "rmap",
        "--quick",
        "--sharers",
        "2",
        "--footprint-pages",
        "600",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["params"]["footprint_pages"], 600);
    let rows = v["rows"].as_array().unwrap();
    for r in rows.iter().filter(|r| r["scenario"] == "unmap") {
        assert_eq!(r["footprint_pages"], 600, "{r}");
        if r["skipped"].is_null() {
            assert_eq!(r["ptes_cleared"], 2, "{r}");
        }
    }
    assert!(v["claims"][0]["claim"].as_str().unwrap().contains("600 pages"));
}

#[test]
fn table_output_and_bad_arguments() {
    let o = vmlab(&["exp", "rmap", "--quick", "--sharers", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    for needle in DESIGNS
        .iter()
        .copied()
        .chain(["rmap_memory", "claims", "verdict", "000 #4"])
    {
        assert!(out.contains(needle), "table lacks {needle}: {out}");
    }
    for args in [
        &["exp", "rmap", "--quick", "--runs", "4"][..],
        &["exp", "rmap", "--quick", "--sharers", "0"][..],
        &["exp", "rmap", "--quick", "--fork-size", "5000"][..],
        &["exp", "rmap", "--quick", "--processes", "0"][..],
        &["exp", "rmap", "--quick", "--footprint-pages", "0"][..],
    ] {
        let o = vmlab(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
