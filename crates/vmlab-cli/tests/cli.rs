//! The `vmlab` binary end to end: runs, JSON output, exit codes and the
//! messages of bad configs, keys, values and flags.

use std::path::PathBuf;
use std::process::{Command, Output};

/// Small enough that a debug build finishes quickly.
const ACCESSES: &str = "200000";

fn vmlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmlab"))
        .args(args)
        .output()
        .expect("the vmlab binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A file in the test scratch directory with `text` in it.
fn scratch(name: &str, text: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{}-{name}", std::process::id()));
    std::fs::write(&p, text).expect("scratch file written");
    p
}

/// Expect exit code 2 and a stderr that contains every one of `needles`.
fn usage_error(args: &[&str], needles: &[&str]) {
    let o = vmlab(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: stderr {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: stderr lacks {n:?}: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

fn run_json(extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["run", "--json", "--accesses", ACCESSES];
    args.extend_from_slice(extra);
    let o = vmlab(&args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("--json prints one JSON object")
}

#[test]
fn run_prints_policies_and_stats() {
    let o = vmlab(&["run", "--accesses", ACCESSES]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    for needle in [
        "ram",
        "cpus",
        "vma_map",
        "btree",
        "frame_allocator",
        "buddy",
        "pkeys",
        "rmap               object",
        "rmap bytes",
        "TLB hit ratio",
        "minor faults",
        "major faults",
        "frames used/free/total",
        "accesses/s",
    ] {
        assert!(out.contains(needle), "output lacks {needle:?}:\n{out}");
    }
    assert!(out.contains("invariants (live)        ok"), "{out}");
    assert!(out.contains("after exit (no leak)     ok"), "{out}");
}

#[test]
fn run_takes_each_rmap_design_and_refuses_private_vma_without_eager_fork() {
    for d in ["pte_chain", "pte_pool", "none"] {
        let o = vmlab(&["run", "--accesses", ACCESSES, "--set", &format!("rmap={d}")]);
        assert!(o.status.success(), "{d}: {}", stderr(&o));
        assert!(
            stdout(&o).contains(&format!("rmap               {d}")),
            "{d}: {}",
            stdout(&o)
        );
    }
    let o = vmlab(&[
        "run",
        "--accesses",
        ACCESSES,
        "--set",
        "rmap=private_vma",
        "--set",
        "fork=eager",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = vmlab(&["run", "--set", "rmap=private_vma"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("private_vma needs fork = \"eager\""),
        "{}",
        stderr(&o)
    );
}

#[test]
fn run_json_has_consistent_stats() {
    let v = run_json(&[]);
    let s = &v["stats"];
    let n = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("stats.{k} missing: {s}"));
    assert!(n("minor_faults") > 0);
    assert!(n("accesses") >= 200_000);
    assert_eq!(n("loads") + n("stores"), n("accesses"));
    assert_eq!(n("frames_used") + n("frames_free"), n("frames_total"));
    // Page tables, the zero page and the resident anonymous pages are all in use.
    assert!(n("frames_used") > n("page_table_pages"));
    assert!(n("frames_used") <= n("frames_total"));
    assert!(n("processes") >= 4);
    assert!(s["tlb_hit_ratio"].as_f64().is_some());
    assert_eq!(v["config"]["vma_map"], "btree");
    assert_eq!(v["workload"]["name"], "zipf");
    assert_eq!(v["check"]["ok"], true);
    assert_eq!(v["errors"].as_array().map(Vec::len), Some(0));
}

/// Threads of one process share its address space on several CPUs, under
/// every fault_lock policy; `--threads 0` is refused.
#[test]
fn run_with_threads_per_process() {
    for policy in ["mm_lock", "pt_lock", "pte_bit"] {
        let fl = format!("fault_lock={policy}");
        let v = run_json(&["--threads", "3", "--processes", "2", "--set", "cpus=3", "--set", &fl]);
        assert_eq!(v["workload"]["threads_per_process"], 3, "{v}");
        assert_eq!(v["config"]["fault_lock"], policy);
        assert_eq!(v["stats"]["processes"], 2);
        assert_eq!(v["check"]["ok"], true, "{policy}: {v}");
        assert_eq!(v["errors"].as_array().map(Vec::len), Some(0), "{policy}: {v}");
    }
    usage_error(&["run", "--threads", "0"], &["--threads"]);
}

#[test]
fn every_workload_runs() {
    for w in ["seq", "random", "zipf"] {
        let v = run_json(&["--workload", w, "--seed", "7"]);
        assert_eq!(v["workload"]["name"], w);
        assert_eq!(v["workload"]["seed"], 7);
        assert_eq!(v["check"]["ok"], true, "{w}: {v}");
    }
}

#[test]
fn same_seed_same_run() {
    let key = |v: &serde_json::Value| {
        let s = &v["stats"];
        (
            s["minor_faults"].clone(),
            s["zero_page_maps"].clone(),
            s["frames_used"].clone(),
            s["loads"].clone(),
        )
    };
    let a = run_json(&["--set", "cpus=1", "--seed", "3"]);
    let b = run_json(&["--set", "cpus=1", "--seed", "3"]);
    assert_eq!(key(&a), key(&b));
}

#[test]
fn set_overrides_apply() {
    let v = run_json(&["--set", "cpus=2", "--set", "ram=64MiB", "--set", "tlb_entries=64"]);
    assert_eq!(v["config"]["cpus"], 2);
    assert_eq!(v["config"]["ram"], "64MiB");
    assert_eq!(v["stats"]["frames_total"], 64 << 8);
    let o = vmlab(&["config", "--set", "cpus=2"]);
    assert!(stdout(&o).contains("cpus = 2"), "{}", stdout(&o));
    // The global flags work before the subcommand too.
    let o = vmlab(&["--set", "cpus=3", "config"]);
    assert!(stdout(&o).contains("cpus = 3"), "{}", stdout(&o));
}

#[test]
fn config_round_trips_through_config_file() {
    let o = vmlab(&[
        "config",
        "--set",
        "ram=128MiB",
        "--set",
        "cpus=3",
        "--set",
        "max_map_count=1000",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("ram = \"128MiB\"") && text.contains("vma_map = \"btree\""),
        "{text}"
    );
    let p = scratch("roundtrip.toml", &text);
    let o2 = vmlab(&["config", "--config", p.to_str().unwrap()]);
    assert!(o2.status.success(), "{}", stderr(&o2));
    assert_eq!(stdout(&o2), text);
    // And a run accepts it.
    let v = run_json(&["--config", p.to_str().unwrap()]);
    assert_eq!(v["config"]["cpus"], 3);
}

#[test]
fn unknown_key_exits_2() {
    usage_error(
        &["run", "--set", "rams=1GiB"],
        &[
            "unknown key \"rams\"",
            "did you mean \"ram\"",
            "valid keys are: ram, cpus",
        ],
    );
    let p = scratch("unknown-key.toml", "cpus = 2\nbogus_key = 1\n");
    let file = p.to_str().unwrap();
    usage_error(
        &["config", "--config", file],
        &[&format!("{file}:2"), "unknown key \"bogus_key\""],
    );
}

#[test]
fn bad_value_exits_2() {
    usage_error(
        &["run", "--set", "vma_map=list"],
        &["vma_map: unknown value \"list\", expected one of: btree"],
    );
    usage_error(&["run", "--set", "frame_allocator=slab"], &["frame_allocator", "buddy"]);
    usage_error(&["config", "--set", "ram=12XB"], &["ram", "12XB", "unit"]);
    usage_error(&["config", "--set", "cpus=0"], &["cpus", "out of range"]);
    usage_error(&["config", "--set", "cpus=four"], &["cpus", "four", "integer"]);
    usage_error(&["config", "--set", "ram"], &["--set", "key=value"]);
    let p = scratch("bad-value.toml", "cpus = 2\nvma_map = \"list\"\n");
    let file = p.to_str().unwrap();
    usage_error(
        &["run", "--config", file],
        &["vma_map: unknown value \"list\"", &format!("{file}:2")],
    );
}

#[test]
fn bad_flag_exits_2() {
    usage_error(&["run", "--bogus"], &["--bogus"]);
    usage_error(&["run", "--workload", "zipfian"], &["zipfian", "seq", "random", "zipf"]);
    usage_error(&["run", "--accesses", "many"], &["--accesses"]);
    usage_error(&["frobnicate"], &["frobnicate"]);
    usage_error(&[], &["Usage"]);
}

#[test]
fn missing_file_exits_2() {
    let missing = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("no-such-dir/vmlab.toml");
    let file = missing.to_str().unwrap();
    usage_error(&["run", "--config", file], &[file, "cannot read config file"]);
}

#[test]
fn toml_syntax_error_exits_2() {
    let p = scratch("syntax.toml", "cpus = 2\nram = = \"1GiB\"\n");
    let file = p.to_str().unwrap();
    usage_error(
        &["config", "--config", file],
        &[&format!("{file}:2:"), "TOML syntax error"],
    );
}

#[test]
fn tiny_ram_is_not_a_panic() {
    // The footprint shrinks to fit; whatever happens, no panic and a clear exit code.
    let o = vmlab(&["run", "--set", "ram=256KiB", "--accesses", "20000"]);
    assert!(matches!(o.status.code(), Some(0) | Some(1)), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}

#[test]
fn ram_larger_than_the_host_runs() {
    // 100 GiB of simulated RAM on a host with less: the RAM is reserved
    // without commitment (mmap MAP_NORESERVE), so only touched frames cost
    // host memory. Before that, one 100 GiB allocation was refused by the
    // host's overcommit heuristic and the run aborted (exit 134).
    let v = run_json(&["--set", "ram=100GiB"]);
    assert_eq!(v["config"]["ram"], "100GiB");
    assert_eq!(v["stats"]["frames_total"], 100u64 << 18, "{}", v["stats"]);
    assert_eq!(v["check"]["ok"], true, "{}", v["check"]);
}

#[test]
fn the_largest_ram_runs_or_names_the_host_memory_it_needs() {
    // 256 GiB, the config's maximum: its metadata (about 3.6 GiB) fits a
    // 24 GiB host, so it runs there; a smaller host refuses it up front,
    // saying what it needs and what the host has. Never an abort.
    let o = vmlab(&["run", "--set", "ram=256GiB", "--accesses", "20000"]);
    let err = stderr(&o);
    match o.status.code() {
        Some(0) => assert!(stdout(&o).contains("ram                256GiB"), "{}", stdout(&o)),
        Some(2) => {
            for n in ["ram: a machine with 256GiB", "of host memory", "MemAvailable"] {
                assert!(err.contains(n), "stderr lacks {n:?}: {err}");
            }
        }
        c => panic!("exit {c:?}: {err}"),
    }
}
