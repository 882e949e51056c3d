//! `VMLAB_TEST_SET` reaches the machines the tests build (docs/CONFIG.md,
//! "Choosing the designs of test machines"): this binary runs its own
//! `child_*` tests again in a child process with the variable set and
//! checks what they print or how they fail; and `.ci/run` runs the quick
//! pass under every rmap design but the default.

mod common;

use std::process::Command;
use vmlab_mm::mm::uapi::*;
use vmlab_mm::mm::ForkPolicy;
use vmlab_mm::system::config::ForkName;
use vmlab_mm::system::{ByteSize, Machine, MachineConfig, RmapName};

/// Set in the child; the `child_*` tests do nothing without it.
const CHILD: &str = "VMLAB_TEST_SET_CHILD";

fn in_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// Run test `name` of this binary in a child process with `VMLAB_TEST_SET`
/// set to `list` (unset if `None`): whether it passed, and its stdout and stderr.
fn run_child(name: &str, list: Option<&str>) -> (bool, String) {
    let mut cmd = Command::new(std::env::current_exe().expect("the test binary"));
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1");
    match list {
        Some(l) => cmd.env(common::TEST_SET, l),
        None => cmd.env_remove(common::TEST_SET),
    };
    let out = cmd.output().expect("run the test binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The number after `label` in `text` (a line `label N`).
fn number(text: &str, label: &str) -> usize {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} in:\n{text}"));
    line.trim().parse().unwrap_or_else(|_| panic!("{label:?}: {line:?}"))
}

/// In the child: what a test machine built from `test_config()` is and does,
/// and the fork policy of one whose test sets `fork` itself.
#[test]
fn child_prints_its_machines() {
    if !in_child() {
        return;
    }
    let m = Machine::new(&MachineConfig {
        ram: ByteSize(16 << 20),
        ..common::test_config()
    })
    .unwrap();
    let c = m.config();
    let policies: Vec<String> = c.policies().iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("policies: {} pcp_batch={}", policies.join(","), c.pcp_batch);
    // What the keys change: per-CPU lists exist with pcp_batch > 0; an eager
    // fork copies the 16 written pages at once, a copy-on-write one does not.
    println!("pcp lists: {}", m.phys().pcp().cpus());
    let p = m.spawn().unwrap();
    let a = m
        .mmap(p, 0, 16 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        .unwrap();
    for i in 0..16 {
        m.write(p, a + i * 4096, &[1]).unwrap().unwrap();
    }
    let used = m.phys().frames_used();
    let _child = m.fork(p).unwrap();
    println!("frames the fork took: {}", m.phys().frames_used() - used);
    let own = Machine::new(&MachineConfig {
        fork: ForkName::SharedPt,
        ..common::test_config()
    })
    .unwrap();
    println!("own fork: {}", own.config().fork.as_str());
}

/// In the child: a test that sets `fork: Cow` itself.
#[test]
fn child_wants_a_cow_machine() {
    if !in_child() {
        return;
    }
    let cfg = MachineConfig {
        fork: ForkName::Cow,
        ..common::test_config()
    };
    println!("allowed: {}", common::allowed(&cfg));
    println!(
        "fork_allowed: cow {} eager {}",
        common::fork_allowed(ForkPolicy::Cow),
        common::fork_allowed(ForkPolicy::Eager)
    );
    match Machine::new(&cfg) {
        Ok(_) => println!("Machine::new: built"),
        Err(e) => println!("Machine::new: {e}"),
    }
}

#[test]
fn the_list_reaches_every_test_machine_and_a_tests_own_key_wins() {
    let (ok, default) = run_child("child_prints_its_machines", None);
    assert!(ok, "{default}");
    assert!(
        default.contains(
            "policies: vma_map=btree,frame_allocator=buddy,fork=cow,fault_lock=pt_lock,rmap=object,reclaim=two_list,watermarks=linux pcp_batch=32"
        ),
        "{default}"
    );
    assert!(default.contains("own fork: shared_pt"), "{default}");
    assert_eq!(number(&default, "pcp lists:"), 1, "{default}");

    let (ok, set) = run_child(
        "child_prints_its_machines",
        Some(" fork=eager, fault_lock=pte_bit,pcp_batch=0,rmap=pte_chain"),
    );
    assert!(ok, "{set}");
    assert!(
        set.contains(
            "policies: vma_map=btree,frame_allocator=buddy,fork=eager,fault_lock=pte_bit,rmap=pte_chain,reclaim=two_list,watermarks=linux pcp_batch=0"
        ),
        "{set}"
    );
    assert!(set.contains("own fork: shared_pt"), "the test's own key wins:\n{set}");
    assert_eq!(number(&set, "pcp lists:"), 0, "pcp_batch=0 has no lists:\n{set}");
    let (cow, eager) = (
        number(&default, "frames the fork took:"),
        number(&set, "frames the fork took:"),
    );
    assert!(
        eager >= cow + 16,
        "fork=eager copies the 16 pages: cow took {cow} frames, eager {eager}"
    );
}

#[test]
fn a_malformed_or_invalid_list_fails_with_the_parsers_message() {
    let (ok, out) = run_child("child_prints_its_machines", Some("rmap=pte_chain,fork=eagre"));
    assert!(!ok, "{out}");
    assert!(
        out.contains(
            "VMLAB_TEST_SET=\"rmap=pte_chain,fork=eagre\": fork: unknown value \"eagre\", \
             expected one of: cow, shared_pt, eager (in \"fork=eagre\")"
        ),
        "{out}"
    );
    let (ok, out) = run_child("child_prints_its_machines", Some("rmpa=none"));
    assert!(
        !ok && out.contains("unknown key \"rmpa\"; valid keys are: ram, cpus"),
        "{out}"
    );
    // A list that makes the default config invalid is refused as a whole.
    let (ok, out) = run_child("child_prints_its_machines", Some("rmap=private_vma"));
    assert!(!ok, "{out}");
    assert!(
        out.contains("VMLAB_TEST_SET=\"rmap=private_vma\": rmap: private_vma needs fork = \"eager\""),
        "{out}"
    );
}

#[test]
fn a_test_whose_own_choice_the_list_forbids_is_skipped_or_fails_loudly() {
    let (ok, out) = run_child("child_wants_a_cow_machine", Some("rmap=private_vma,fork=eager"));
    assert!(ok, "{out}");
    assert!(out.contains("allowed: false"), "{out}");
    assert!(out.contains("fork_allowed: cow false eager true"), "{out}");
    assert!(
        out.contains(
            "child_wants_a_cow_machine: skipped a machine with fork=cow under \
             VMLAB_TEST_SET=\"rmap=private_vma,fork=eager\": rmap: private_vma needs fork"
        ),
        "{out}"
    );
    assert!(
        out.contains("Machine::new: rmap: private_vma needs fork"),
        "no machine is built:\n{out}"
    );
    let (ok, out) = run_child("child_wants_a_cow_machine", Some("rmap=pte_pool"));
    assert!(
        ok && out.contains("allowed: true") && out.contains("Machine::new: built"),
        "{out}"
    );
}

/// `.ci/run`'s `TEST_SETS` (the quick pass's lists) name every rmap design
/// but the default, once each, and each list is valid.
#[test]
fn ci_runs_the_quick_pass_under_every_other_rmap_design() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.ci/run");
    let ci = std::fs::read_to_string(path).expect(".ci/run exists");
    let line = ci
        .lines()
        .find_map(|l| l.strip_prefix("TEST_SETS=("))
        .and_then(|l| l.strip_suffix(')'))
        .expect(".ci/run has a line TEST_SETS=(\"...\" ...)");
    let mut designs: Vec<String> = Vec::new();
    for word in line.split_whitespace() {
        let list = word.trim_matches('"');
        let mut c = MachineConfig::default();
        c.apply_pairs(list)
            .and_then(|()| c.validate())
            .unwrap_or_else(|e| panic!(".ci/run TEST_SETS entry {word}: {e}"));
        designs.push(c.rmap.as_str().to_string());
    }
    let default = MachineConfig::default().rmap;
    let mut want: Vec<String> = RmapName::ALL
        .iter()
        .filter(|&&d| d != default.as_str())
        .map(|d| d.to_string())
        .collect();
    want.sort();
    designs.sort();
    assert_eq!(designs, want, ".ci/run TEST_SETS: {line}");
}
