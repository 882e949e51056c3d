//! Full-machine replay of page-number traces (`vmlab::replay::full`): the
//! machine holds exactly `--frames` data pages, every reference's bytes
//! survive reclaim and swap, and misses are first touches plus major faults.
//! Host facts: builds machines with a real swap file in the host's
//! temporary directory (`vmlab::host::build_machine`).

use std::io::Write;
use std::path::Path;
use vmlab::mm::system::MachineConfig;
use vmlab::replay::full;
use vmlab::trace;

fn write_trc(dir: &Path, pages: &[u32]) -> std::path::PathBuf {
    let p = dir.join("t.trc");
    let mut f = std::fs::File::create(&p).unwrap();
    for &x in pages {
        f.write_all(&x.to_be_bytes()).unwrap();
    }
    p
}

fn replay(path: &Path, reclaim: &str, frames: u64) -> full::FullResult {
    replay_with(path, reclaim, None, frames)
}

fn replay_with(path: &Path, reclaim: &str, bound: Option<full::Bound>, frames: u64) -> full::FullResult {
    let (_, mut r) = trace::open(path, None).unwrap();
    let (_, distinct) = full::distinct_pages(&mut *r).unwrap();
    let mut base = MachineConfig::default();
    base.apply_pairs(&format!("reclaim={reclaim}")).unwrap();
    let cfg = full::machine_config(&base, frames, distinct).unwrap();
    let m = vmlab::host::build_machine(&cfg).unwrap();
    let bound = bound.map(|b| {
        let next = (b == full::Bound::Opt).then(|| vmlab::replay::cache::spill_next_uses(path, None).unwrap());
        (b, next)
    });
    let (_, mut r) = trace::open(path, None).unwrap();
    full::replay(&m, frames, distinct, bound, &mut *r, &mut |_| {}).unwrap()
}

/// Pages `0..n`, `rounds` times over.
fn cyclic(n: u32, rounds: u32) -> Vec<u32> {
    (0..rounds).flat_map(|_| 0..n).collect()
}

#[test]
fn exactly_frames_pages_fit_and_one_more_does_not() {
    let dir = tempfile::tempdir().unwrap();
    for &reclaim in vmlab::mm::system::config::ReclaimName::ALL {
        // 300 pages in 300 frames: only first touches, no reclaim.
        let fits = replay(&write_trc(dir.path(), &cyclic(300, 3)), reclaim, 300);
        assert_eq!((fits.references, fits.distinct), (900, 300));
        assert_eq!(fits.first_touches, 300, "{reclaim}");
        assert_eq!(fits.misses, 300, "{reclaim}: {fits:?}");
        assert_eq!(fits.stats.pgsteal_direct + fits.stats.pgsteal_kswapd, 0, "{reclaim}");
        // 301 pages: the machine must evict, and a loop over them misses again.
        let over = replay(&write_trc(dir.path(), &cyclic(301, 3)), reclaim, 300);
        assert!(over.stats.pgsteal_direct > 0, "{reclaim}: {over:?}");
        assert!(over.major_faults > 0 && over.misses > 301, "{reclaim}: {over:?}");
        assert!(over.stats.pswpout > 0, "{reclaim}: pages went to swap");
    }
}

#[test]
fn ids_are_renumbered_and_a_sparse_trace_replays() {
    // Ids far apart (as oracleGeneral's hashes are) map to one dense mapping.
    let dir = tempfile::tempdir().unwrap();
    let pages: Vec<u32> = (0..2000u32).map(|i| (i % 97).wrapping_mul(0x0101_0101)).collect();
    let r = replay(&write_trc(dir.path(), &pages), "two_list", 50);
    assert_eq!((r.references, r.distinct), (2000, 97));
    assert_eq!(r.first_touches, 97);
    assert!(r.misses > 97, "97 pages in 50 frames, cyclic: {r:?}");
}

#[test]
fn zero_frames_is_a_usage_error() {
    let e = full::machine_config(&MachineConfig::default(), 0, 10).unwrap_err();
    assert!(e.to_string().contains("--frames"), "{e}");
}

/// LRU misses by the book: a list of resident pages, most recent first.
fn naive_lru_misses(pages: &[u32], frames: usize) -> u64 {
    let mut list: Vec<u32> = Vec::new();
    let mut misses = 0;
    for &p in pages {
        if let Some(at) = list.iter().position(|&q| q == p) {
            list.remove(at);
        } else {
            misses += 1;
            if list.len() == frames {
                list.pop();
            }
        }
        list.insert(0, p);
    }
    misses
}

#[test]
fn the_lru_bound_misses_exactly_as_lru_by_the_book() {
    let dir = tempfile::tempdir().unwrap();
    // A skewed random trace (most references to a few pages) and a loop
    // one page larger than the frames (LRU's worst case: every reference misses).
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let skewed: Vec<u32> = (0..6000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let r = (x % 1000) as u32;
            if r < 700 {
                r % 40
            } else {
                r % 600
            }
        })
        .collect();
    for (name, pages, frames) in [("skewed", skewed, 100u64), ("loop", cyclic(129, 5), 128)] {
        let want = naive_lru_misses(&pages, frames as usize);
        let got = replay_with(
            &write_trc(dir.path(), &pages),
            "two_list",
            Some(full::Bound::Lru),
            frames,
        );
        assert_eq!(got.misses, want, "{name}: {got:?}");
        // The machine's own design, seeing only accessed bits, is not that
        // bound on the skewed trace (on the loop, both miss every reference):
        // so the equality above is the bound's, not any policy's.
        if name == "skewed" {
            let design = replay(&write_trc(dir.path(), &pages), "two_list", frames);
            assert_ne!(
                design.misses, want,
                "{name}: two_list happens to equal LRU: the check cannot tell"
            );
        } else {
            assert_eq!(
                want,
                pages.len() as u64,
                "a loop one page larger than LRU's frames misses always"
            );
        }
    }
}

/// Belady's OPT by the book: on a miss with the frames full, evict the
/// resident page used again farthest ahead (never again: farthest; ties to
/// the lower page number, as `full::Bound::Opt` breaks them).
fn naive_opt_misses(pages: &[u32], frames: usize) -> u64 {
    let mut resident: Vec<u32> = Vec::new();
    let mut misses = 0;
    for (k, &p) in pages.iter().enumerate() {
        if resident.contains(&p) {
            continue;
        }
        misses += 1;
        if resident.len() == frames {
            let next = |q: u32| pages[k + 1..].iter().position(|&x| x == q).unwrap_or(usize::MAX);
            let victim = *resident
                .iter()
                .max_by_key(|&&q| (next(q), std::cmp::Reverse(q)))
                .unwrap();
            resident.retain(|&q| q != victim);
        }
        resident.push(p);
    }
    misses
}

#[test]
fn the_opt_bound_misses_exactly_as_belady_by_the_book_and_least_of_all() {
    let dir = tempfile::tempdir().unwrap();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    // Dense page numbers in order of first use, so the tie-break by page is the same.
    let raw: Vec<u32> = (0..3000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let r = (x % 1000) as u32;
            if r < 600 {
                r % 30
            } else {
                r % 300
            }
        })
        .collect();
    let mut dense = std::collections::HashMap::new();
    let pages: Vec<u32> = raw
        .iter()
        .map(|&p| {
            let n = dense.len() as u32;
            *dense.entry(p).or_insert(n)
        })
        .collect();
    let path = write_trc(dir.path(), &pages);
    let frames = 60;
    let want = naive_opt_misses(&pages, frames as usize);
    let opt = replay_with(&path, "two_list", Some(full::Bound::Opt), frames);
    assert_eq!(opt.misses, want, "{opt:?}");
    let lru = replay_with(&path, "two_list", Some(full::Bound::Lru), frames);
    assert!(opt.misses < lru.misses, "opt {} lru {}", opt.misses, lru.misses);
    for design in ["clock", "two_list", "vma_scan", "mglru"] {
        let d = replay(&path, design, frames);
        assert!(
            opt.misses <= d.misses,
            "{design} misses {} < opt {}",
            d.misses,
            opt.misses
        );
    }
}

fn paper_trace(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../../shared/traces/trace-{name}.trc.bin.gz"))
}

/// CLOCK-Pro's claim (the paper's, as `cache_vs_libcachesim`'s
/// `clock_pro_close_to_lirs_below_lru` checks it for the cache-only
/// policy) holds for the machine's design too, which sees only accessed
/// bits: on glimpse at 1000 frames and multi2 at 1800 its misses are at
/// most 1.15 x cache-mode lirs's and at most 0.75 x the exact lru
/// bound's (when tried: glimpse 3038 against lirs 2964 and lru 5341,
/// multi2 8282 against 8067 and 13554). The same claim fails for clock
/// (about 1.0 x lru on both), which the test shows too.
#[test]
fn clock_pro_in_the_machine_is_close_to_lirs_and_below_lru() {
    for (name, frames) in [("glimpse", 1000), ("multi2", 1800)] {
        let path = paper_trace(name);
        let lirs = vmlab::replay::cache::run(&path, None, "lirs", frames, &Default::default(), &mut |_| {})
            .unwrap()
            .misses as f64;
        let lru = replay_with(&path, "two_list", Some(full::Bound::Lru), frames).misses as f64;
        let claim = |design: &str| {
            let m = replay(&path, design, frames).misses as f64;
            let what = format!("{name} {frames}: {design} {m} misses, lirs {lirs}, lru {lru}");
            (m <= 1.15 * lirs && m <= 0.75 * lru, what)
        };
        let (holds, what) = claim("clock_pro");
        assert!(holds, "{what}");
        let (holds, what) = claim("clock");
        assert!(!holds, "the claim cannot fail: {what}");
    }
}
