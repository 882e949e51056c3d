//! The config every integration test that builds a machine starts from:
//! the default with the `key=value,...` list of `VMLAB_TEST_SET` applied
//! (docs/CONFIG.md, "Choosing the designs of test machines"). Also the
//! tests of crates/vmlab, whose `tests/common/mod.rs` includes this file.
#![allow(dead_code)]

use vmlab_mm::mm::ForkPolicy;
use vmlab_mm::system::config::ForkName;
use vmlab_mm::system::{Machine, MachineConfig};

/// The environment variable: a `MachineConfig::apply_pairs` list such as
/// `rmap=pte_chain` or `rmap=private_vma,fork=eager`.
pub const TEST_SET: &str = "VMLAB_TEST_SET";

/// The list in `VMLAB_TEST_SET`, if set and not empty.
pub fn test_set() -> Option<String> {
    std::env::var(TEST_SET).ok().filter(|s| !s.trim().is_empty())
}

/// `MachineConfig::default()` with `VMLAB_TEST_SET` applied. A test builds
/// its machine from `MachineConfig { fork: ..., ..test_config() }`, so a key
/// it sets itself wins over the list. Panics, naming the variable, if the
/// list is malformed or makes the default config invalid
/// (`rmap=private_vma` without `fork=eager`).
pub fn test_config() -> MachineConfig {
    let mut c = MachineConfig::default();
    if let Some(list) = test_set() {
        if let Err(e) = c.apply_pairs(&list).and_then(|()| c.validate()) {
            panic!("{TEST_SET}={list:?}: {e}");
        }
    }
    c
}

/// Whether a test may build a machine from `cfg` (its own keys over
/// `test_config()`). False only when `VMLAB_TEST_SET` forbids the test's own
/// choice (`rmap=private_vma,fork=eager` and a test that sets `fork: Cow`):
/// it prints the test, the config and why, and the test skips that machine.
/// A test that does not ask fails loudly instead: `Machine::new` validates,
/// so no test runs a machine other than the one it asked for. Panics if
/// `cfg` is invalid without `VMLAB_TEST_SET`: that is the test's own bug.
pub fn allowed(cfg: &MachineConfig) -> bool {
    let Err(e) = cfg.validate() else { return true };
    let Some(list) = test_set() else {
        panic!("the test's own config is invalid: {e}")
    };
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("?");
    // The test's own choices: the policies it set over the list's.
    let base = test_config().policies();
    let own: Vec<String> = (cfg.policies().iter().zip(base))
        .filter(|(a, b)| **a != *b)
        .map(|((k, v), _)| format!("{k}={v}"))
        .collect();
    eprintln!(
        "{test}: skipped a machine with {} under {TEST_SET}={list:?}: {e}",
        own.join(",")
    );
    false
}

/// Whether a test may fork by `policy` (`Machine::fork_with`, which takes
/// its policy from the caller, not the config) on a machine of
/// `test_config()`: `allowed` for that config with `fork` = `policy`.
/// Loops over policies filter with it.
pub fn fork_allowed(policy: ForkPolicy) -> bool {
    allowed(&MachineConfig {
        fork: ForkName::of(policy),
        ..test_config()
    })
}

/// End a test's machine: the invariants hold, then every process exits and
/// every file closes, the invariants hold again and no frame is left but
/// the machine's own.
pub fn finish(m: &Machine) {
    m.check().unwrap();
    for pid in m.pids() {
        m.exit(pid).unwrap();
    }
    for fd in m.fds() {
        m.close(fd).unwrap();
    }
    m.check().unwrap();
    assert_eq!(m.phys().frames_used(), m.reserved_frames(), "frames left after exit");
}
