//! The `api` fuzz target's interpreter (`fuzz/src/interp.rs`, included here as is) run by
//! proptest over random inputs, a bounded number of cases, and over every committed input in
//! `fuzz/corpus/api/` (seeds and the regressions of past findings, `regress-*`), so findings
//! stay fixed without `cargo fuzz`. See README "Fuzzing".

use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[path = "../../../fuzz/src/interp.rs"]
mod interp;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/api")
}

/// Run one committed input by file name.
fn replay(name: &str) {
    let path = corpus_dir().join(name);
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    interp::run(&interp::Scenario::from_bytes(&data));
}

/// Run one committed input that once hung: it must now finish well within `budget`
/// (it takes microseconds; the bug took seconds to minutes).
fn replay_within(name: &str, budget: Duration) {
    let t = Instant::now();
    replay(name);
    assert!(t.elapsed() < budget, "{name} took {:?}", t.elapsed());
}

#[test]
fn corpus_replays_clean() {
    let mut names: Vec<String> = std::fs::read_dir(corpus_dir())
        .expect("fuzz/corpus/api exists")
        .map(|e| e.expect("corpus entry").file_name().into_string().expect("ASCII name"))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "the seed corpus is empty");
    for name in &names {
        let r = std::panic::catch_unwind(|| replay(name));
        assert!(
            r.is_ok(),
            "corpus input {name} fails; trace it with `VMLAB_FUZZ_INPUT=fuzz/corpus/api/{name} \
             cargo test -p vmlab-mm --test fuzz_api replay_input -- --ignored`"
        );
    }
}

/// 1024 cases take about a second; `VMLAB_FUZZ_CASES=N` runs more (or fewer).
fn cases() -> u32 {
    std::env::var("VMLAB_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    /// Random bytes decoded into op sequences exactly as the fuzz target decodes them.
    #[test]
    fn random_op_sequences_keep_every_invariant(data in prop::collection::vec(any::<u8>(), 0..3000)) {
        let s = interp::Scenario::from_bytes(&data);
        interp::run(&s);
    }
}

/// Replay one input with a trace of every op and its result:
/// `VMLAB_FUZZ_INPUT=fuzz/artifacts/api/crash-... cargo test -p vmlab-mm --test fuzz_api replay_input -- --ignored`.
#[test]
#[ignore = "needs VMLAB_FUZZ_INPUT"]
fn replay_input() {
    let path = PathBuf::from(std::env::var("VMLAB_FUZZ_INPUT").expect("VMLAB_FUZZ_INPUT names an input file"));
    // Tests run in the crate's directory: a relative path is taken from the workspace root.
    let path = if path.is_relative() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)
    } else {
        path
    };
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let s = interp::Scenario::from_bytes(&data);
    eprintln!("{:?}", s.setup);
    interp::run_traced(&s);
}

// Findings of the fuzzer, each replayed by name (the inputs are in the corpus too).

/// shared_pt: a table still shared copy-on-write by its last sharer after its owner left
/// (ownerless, its frames in no one's rss) was given an owner when that sharer forked again,
/// so the new owner's rss lacked the table's frames ("rss 0 but 1 frames mapped").
#[test]
fn regress_shared_pt_reshare_ownerless_table() {
    replay("regress-shared-pt-reshare-ownerless-table");
}

/// fork under shared_pt listed every 2 MiB span of every anonymous VMA, table or not: a
/// 120 TiB MAP_NORESERVE mapping with one page written took seconds and a 500 MB vector.
/// Now only the spans with a leaf table (`PageTable::for_each_pd_entry`).
#[test]
fn regress_fork_shared_pt_huge_sparse_vma() {
    replay_within("regress-fork-shared-pt-huge-sparse-vma", Duration::from_secs(2));
}

/// mprotect(addr, 2^63) from a mapped page walked PD entries in 1 GiB steps up to
/// addr + len, far past the address space (with the index bits wrapping around), before
/// failing with ENOMEM: 45 s. `for_each_pd_entry` now skips absent subtrees and stops at
/// the top of the tree.
#[test]
fn regress_mprotect_huge_len_pd_walk() {
    replay_within("regress-mprotect-huge-len-pd-walk", Duration::from_secs(2));
}

/// fork = shared_pt on a tiny RAM: a fault on a guard marker in a table still shared
/// copy-on-write took a private copy first, and with no frame free gave OutOfMemory
/// (SIGBUS) instead of the guard's SIGSEGV.
#[test]
fn regress_guard_in_fork_shared_table_without_memory() {
    replay("regress-guard-in-fork-shared-table-without-memory");
}

/// mlock whose length, rounded up to pages with the address's offset, wraps to 0
/// (Linux `do_mlock`): it succeeds and locks nothing; the interpreter expected the first
/// page populated.
#[test]
fn regress_mlock_length_wraps_to_zero() {
    replay("regress-mlock-length-wraps-to-zero");
}

/// rmap = pte_chain, fork = cow: a COW break replaced a frame in an entry and linked the
/// new frame before unlinking the old one; both use the entry's one chain link word, so
/// the old frame's chain lost its tail ("pte_chain: entry N not on frame F's chain").
#[test]
fn regress_pte_chain_cow_replace_link_word() {
    replay("regress-pte-chain-cow-replace-link-word");
}

/// rmap = pte_pool, fork = shared_pt: the parent exits, leaving a fork-shared table
/// ownerless and reached by the child alone; the table's sharer list was dropped when one
/// sharer was left, so the child's PTE pointer no longer turned into its (mm, address) and
/// `mappings_of` returned nothing. The last sharer now stays listed until it takes the
/// table back (and the checker requires a list for every copy-on-write reach).
#[test]
fn regress_pte_pool_ownerless_cow_table_sharers() {
    replay("regress-pte-pool-ownerless-cow-table-sharers");
}
