//! The `api` fuzz target's interpreter (`fuzz/src/interp.rs`, included here as is) run by
//! proptest over random inputs, a bounded number of cases, and over every committed input in
//! `fuzz/corpus/api/` (seeds and the regressions of past findings, `regress-*`), so findings
//! stay fixed without `cargo fuzz`. See README "Fuzzing".

use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
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

/// Run one committed input that once hung or took seconds: it must now finish well
/// within `budget` (it takes milliseconds). It runs on a thread of its own, so an
/// input that hangs again fails the test at the budget instead of hanging it (the
/// thread is left spinning until the test binary exits).
fn replay_within(name: &str, budget: Duration) {
    let (tx, rx) = std::sync::mpsc::channel();
    let owned = name.to_string();
    std::thread::spawn(move || {
        let t = Instant::now();
        let r = std::panic::catch_unwind(|| replay(&owned));
        let _ = tx.send((r.is_ok(), t.elapsed()));
    });
    match rx.recv_timeout(budget) {
        Ok((true, took)) => assert!(took < budget, "{name} took {took:?}"),
        Ok((false, _)) => panic!("{name} fails (see its panic above)"),
        Err(_) => panic!("{name} did not finish within {budget:?}: it hangs again"),
    }
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

/// A soak that catches hangs, which proptest cannot (a case that never returns hangs the
/// test): `VMLAB_SOAK_CASES` random inputs (default 100000) from `VMLAB_SOAK_SEED` (default
/// 1), optionally only those whose machine runs reclaim design `VMLAB_SOAK_RECLAIM` with
/// swap. Each input is written to `fuzz/artifacts/api/soak-current-SEED` before it runs; one
/// that runs longer than `VMLAB_SOAK_BUDGET_S` seconds (default 10) is copied to
/// `fuzz/artifacts/api/hang-SEED-N` and the process exits with status 3. A panic fails the
/// test, and its input is the `soak-current` file. Release builds only make sense here:
/// `cargo test --release -p vmlab-mm --test fuzz_api soak -- --ignored --nocapture`.
#[test]
#[ignore = "a long soak: run by hand"]
fn soak() {
    let var = |k: &str| std::env::var(k).ok();
    let seed: u64 = var("VMLAB_SOAK_SEED").and_then(|v| v.parse().ok()).unwrap_or(1);
    let cases: u64 = var("VMLAB_SOAK_CASES").and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let budget = Duration::from_secs(var("VMLAB_SOAK_BUDGET_S").and_then(|v| v.parse().ok()).unwrap_or(10));
    let only = var("VMLAB_SOAK_RECLAIM").map(|name| {
        let mut c = vmlab_mm::system::MachineConfig::default();
        c.apply_pairs(&format!("reclaim={name}"))
            .unwrap_or_else(|e| panic!("VMLAB_SOAK_RECLAIM: {e}"));
        c.reclaim
    });
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/artifacts/api");
    std::fs::create_dir_all(&dir).expect("fuzz/artifacts/api can be made");
    let current = dir.join(format!("soak-current-{seed}"));
    // The case number running and when it started (ms since `t0`); `u64::MAX`: none.
    let running = std::sync::Arc::new((AtomicU64::new(u64::MAX), AtomicU64::new(0)));
    let t0 = Instant::now();
    {
        let (running, current, dir) = (running.clone(), current.clone(), dir.clone());
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(200));
            let case = running.0.load(Ordering::Acquire);
            let since = running.1.load(Ordering::Acquire);
            if case != u64::MAX && t0.elapsed().as_millis() as u64 - since > budget.as_millis() as u64 {
                let to = dir.join(format!("hang-{seed}-{case}"));
                let _ = std::fs::copy(&current, &to);
                eprintln!("case {case} runs longer than {budget:?}: its input is {}", to.display());
                std::process::exit(3);
            }
        });
    }
    // xorshift64: the same seed gives the same inputs on every machine.
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut ran = 0u64;
    for case in 0..cases {
        let len = (next() % 3000) as usize;
        let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let s = interp::Scenario::from_bytes(&data);
        if only.is_some_and(|r| s.setup.swap_size() == 0 || s.setup.reclaim_name() != r) {
            continue;
        }
        std::fs::write(&current, &data).expect("the current input can be written");
        running.1.store(t0.elapsed().as_millis() as u64, Ordering::Release);
        running.0.store(case, Ordering::Release);
        interp::run(&s);
        running.0.store(u64::MAX, Ordering::Release);
        ran += 1;
        if case % 20_000 == 0 {
            eprintln!("case {case}: {ran} run in {:?}", t0.elapsed());
        }
    }
    eprintln!("{ran} of {cases} cases run in {:?}, none hung", t0.elapsed());
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

/// reclaim = mglru, fork = cow, 1 MiB: a store to a page shared by fork and out on swap
/// reads it into the swap cache, maps it read-only and needs a frame for its private
/// copy. Direct reclaim then evicted that very page (the only one it could take) and
/// counted it as progress, and the retry read it back with the frame just freed: the
/// two took turns for ever. A fault that finds no frame now hands the page it was
/// working from to its caller, who holds it over the reclaim (`FaultError::NoMemory`).
#[test]
fn regress_reclaim_takes_back_the_page_a_cow_copy_needs() {
    replay_within(
        "regress-reclaim-takes-back-the-page-a-cow-copy-needs",
        Duration::from_secs(20),
    );
}

/// The same livelock under fork = shared_pt (a write to a swapped page in a table
/// shared copy-on-write).
#[test]
fn regress_reclaim_takes_back_the_page_a_cow_copy_needs_shared_pt() {
    replay_within(
        "regress-reclaim-takes-back-the-page-a-cow-copy-needs-shared-pt",
        Duration::from_secs(20),
    );
}

/// reclaim = mglru, 2 MiB, no kswapd thread: kswapd's inline work ran inside the walk, after
/// the TLB generation was read, so its shootdowns failed the fill; the walk again faulted
/// the page back in (it had evicted it), which allocated below the low watermark and woke
/// kswapd again: for ever. kswapd's work now runs before the generation is read.
#[test]
fn regress_kswapd_shootdown_fails_the_fill_for_ever() {
    replay_within(
        "regress-kswapd-shootdown-fails-the-fill-for-ever",
        Duration::from_secs(20),
    );
}

/// rmap = pte_chain, fork = shared_pt, no swap: a write across the pages of a
/// MAP_DROPPABLE mapping; a later page's fault reclaimed, and the only pages reclaim could
/// take were the droppable ones the write had just stored to (Linux drops them too). It
/// hung before the `FaultError::NoMemory` fix; the interpreter now accepts a droppable page
/// read back as zeros, and nothing else.
#[test]
fn regress_droppable_write_drops_its_own_pages() {
    replay_within("regress-droppable-write-drops-its-own-pages", Duration::from_secs(20));
}

/// rmap = private_vma, reclaim = vma_scan: CPU 1 stored to a MAP_DROPPABLE page, and CPU
/// 0's TLB miss on it ran kswapd's work inline, which dropped the page (as Linux may): both
/// then read zero. The interpreter took it for two CPUs seeing different memory; it now
/// accepts a droppable page read back as zero by both, and nothing else.
#[test]
fn regress_droppable_dropped_between_two_cpus() {
    replay("regress-droppable-dropped-between-two-cpus");
}

/// rmap = none, no swap: MADV_FREE on brk pages (ENOMEM for the hole after them, applied
/// to the mapped part first, as Linux does), then fork: reclaim dropped a clean lazyfree
/// page from both mappings and the child read zero (Linux discards it too). The
/// interpreter took it for a fork copy that went wrong; a process that called MADV_FREE,
/// and its children, no longer get exact fork comparisons.
#[test]
fn regress_lazyfree_page_dropped_after_fork() {
    replay("regress-lazyfree-page-dropped-after-fork");
}
