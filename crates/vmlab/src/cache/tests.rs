//! Each policy on a tiny trace worked by hand (the hit/miss sequence; for
//! lru, fifo, clock in both insert modes, arc and lirs the same sequence
//! libCacheSim 0.3.5's `cache.get()` gives on those requests), and
//! properties on random traces: lru against a naive O(n) LRU, opt against
//! every other policy.

use super::*;
use proptest::prelude::*;

/// The hits and misses of `policy` on `trace`: `h` and `m`.
fn run(policy: &mut dyn CachePolicy, trace: &[u64]) -> String {
    trace
        .iter()
        .map(|&p| if policy.access(p) { 'h' } else { 'm' })
        .collect()
}

fn named(name: &str, frames: u64, trace: &[u64]) -> String {
    if name == "opt" {
        let mut o = Opt::new(frames as usize, opt::next_uses(trace));
        return run(&mut o, trace);
    }
    let mut p = build(name, frames, &Options::default()).unwrap();
    run(p.as_mut(), trace)
}

const T: &[u64] = &[1, 2, 3, 1, 4, 1, 2, 5];

#[test]
fn lru_by_hand() {
    // 4 evicts 2 (least recent), 2 evicts 3, 5 evicts 4.
    assert_eq!(named("lru", 3, T), "mmmhmhmm");
}

#[test]
fn fifo_by_hand() {
    // 4 evicts 1 (first in) although 1 was just hit.
    assert_eq!(named("fifo", 3, T), "mmmhmmmm");
}

#[test]
fn clock_by_hand() {
    // Bits clear on insert: at 4 the hand clears 1's bit and takes 2.
    assert_eq!(named("clock", 3, T), "mmmhmhmm");
    // Bits set on insert: the hand clears all three and takes 1.
    let mut c = build("clock", 3, &Options { clock_init_ref: true }).unwrap();
    assert_eq!(run(c.as_mut(), T), "mmmhmmmm");
}

#[test]
fn opt_by_hand() {
    // At 4: 1 is next used at 5, 2 at 6, 3 never: 3 goes.
    assert_eq!(named("opt", 3, T), "mmmhmhhm");
}

#[test]
fn arc_by_hand() {
    // c=2. 3: REPLACE moves 2 (T1's tail) to B1. 2: B1 hit, p=1, |T1|=1
    // is not > p, so T2's 1 goes to B2; 2 enters T2. 3: T1 hit → T2.
    // 1: B2 hit, p=0, T1 empty: T2's tail 2 goes to B2.
    assert_eq!(named("arc", 2, &[1, 2, 1, 3, 2, 3, 1]), "mmhmmhm");
}

#[test]
fn lirs_by_hand() {
    // c=3: lirs_limit 2, hirs_limit 1. 3 enters as resident HIR; 4 evicts
    // 3 (non-resident in S); 3's miss evicts LIR 2 to Q (evicting 4) and 3
    // becomes LIR; the hit on 2 (in Q only) evicts LIR 1 to Q, which
    // evicts 2's own Q entry: libCacheSim keeps 2 "resident" in S, so the
    // next 1 (in Q) and 2 (a resident HIR in S) hit.
    assert_eq!(named("lirs", 3, &[1, 2, 3, 1, 4, 3, 2, 1, 2]), "mmmhmmhhh");
}

#[test]
fn two_list_by_hand() {
    // 3: inactive tail 1 is referenced → active; 2 is evicted. 2 again:
    // the inactive tail is 3, unreferenced.
    assert_eq!(named("two_list", 2, &[1, 2, 1, 3, 1, 2]), "mmhmhm");
}

#[test]
fn mglru_by_hand() {
    // 3: the oldest generation is empty: age, then the next one's tail 1
    // is referenced → youngest; 2 goes. 2 again: 1 promoted again, 3 goes.
    assert_eq!(named("mglru", 2, &[1, 2, 1, 3, 1, 2]), "mmhmhm");
}

#[test]
fn clock_pro_by_hand() {
    // c=2, cold target 1: 1 comes in hot, 2 cold. 3: hand-cold passes hot
    // 1 and evicts cold 2, keeping it as a test page; 3 comes in cold.
    // 1 hits (hot). 2 is a miss in its test period: it comes back hot.
    assert_eq!(named("clock_pro", 2, &[1, 2, 1, 3, 1, 2]), "mmhmhm");
}

#[test]
fn unknown_and_zero() {
    assert!(matches!(
        build("nope", 4, &Options::default()),
        Err(PolicyError::Unknown(_))
    ));
    assert_eq!(build("lru", 0, &Options::default()).err(), Some(PolicyError::NoFrames));
    assert_eq!(
        build("opt", 4, &Options::default()).err(),
        Some(PolicyError::NeedsFuture)
    );
    let e = build("nope", 4, &Options::default()).err().unwrap().to_string();
    assert!(e.contains("lirs") && e.contains("clock_pro"), "{e}");
}

/// Every policy keeps at most `frames` pages and a full cache full.
#[test]
fn residency_bounded() {
    let trace: Vec<u64> = (0..5000u64).map(|i| (i * 7919) % 97 + (i % 13) * 1000).collect();
    for &name in NAMES {
        for frames in [1u64, 2, 3, 10, 50] {
            let mut p: Box<dyn CachePolicy> = if name == "opt" {
                Box::new(Opt::new(frames as usize, opt::next_uses(&trace)))
            } else {
                build(name, frames, &Options::default()).unwrap()
            };
            for &x in &trace {
                p.access(x);
                assert!(p.resident() <= frames as usize, "{name} {frames}: {}", p.resident());
            }
            if name != "lirs" {
                // (LIRS's count follows libCacheSim's, which may run one short.)
                assert_eq!(p.resident(), frames as usize, "{name} {frames}");
            }
        }
    }
}

/// The policies' own constructors take any frame count (`build` refuses
/// 0): none panics or hangs, and a billion frames allocate nothing up front.
#[test]
fn any_frames_no_panic() {
    let trace: Vec<u64> = (0..3000u64).map(|i| ((i * 31) % 37) ^ (i % 5)).collect();
    for frames in [0usize, 1, 2] {
        let mut ps: Vec<Box<dyn CachePolicy>> = vec![
            Box::new(fifo::Fifo::new(frames)),
            Box::new(lru::Lru::new(frames)),
            Box::new(clock::Clock::new(frames, true)),
            Box::new(two_list::TwoList::new(frames)),
            Box::new(mglru::Mglru::new(frames)),
            Box::new(arc::Arc::new(frames)),
            Box::new(lirs::Lirs::new(frames)),
            Box::new(clock_pro::ClockPro::new(frames)),
            Box::new(Opt::new(frames, opt::next_uses(&trace))),
        ];
        for p in &mut ps {
            let hits = trace.iter().filter(|&&x| p.access(x)).count();
            assert!(hits < trace.len(), "{} {frames}", p.name());
        }
    }
    for &name in NAMES {
        if name != "opt" {
            let mut p = build(name, 1 << 29, &Options::default()).unwrap();
            assert!(!p.access(7) && p.access(7), "{name}");
        }
    }
}

fn naive_lru_misses(trace: &[u64], frames: usize) -> u64 {
    let mut stack: Vec<u64> = Vec::new();
    let mut misses = 0;
    for &p in trace {
        if let Some(pos) = stack.iter().position(|&x| x == p) {
            stack.remove(pos);
        } else {
            misses += 1;
            if stack.len() == frames {
                stack.remove(0);
            }
        }
        stack.push(p);
    }
    misses
}

fn misses(name: &str, frames: u64, trace: &[u64]) -> u64 {
    named(name, frames, trace).bytes().filter(|&b| b == b'm').count() as u64
}

proptest! {
    #[test]
    fn lru_equals_naive(trace in prop::collection::vec(0u64..40, 0..600), frames in 1u64..30) {
        prop_assert_eq!(misses("lru", frames, &trace), naive_lru_misses(&trace, frames as usize));
    }

    #[test]
    fn opt_is_optimal(trace in prop::collection::vec(0u64..40, 0..600), frames in 1u64..30) {
        let o = misses("opt", frames, &trace);
        for &name in NAMES {
            if name != "opt" {
                let m = misses(name, frames, &trace);
                prop_assert!(o <= m, "opt {} > {} {} at {} frames", o, name, m, frames);
            }
        }
    }
}
