//! OPT (Belady 1966, MIN): on a miss in a full cache, evict the resident
//! page whose next use is furthest in the future (never used again counts
//! as infinitely far).
//!
//! It needs the future: [`Opt::new`] takes, for each reference in trace
//! order, the index of the next reference to the same page
//! ([`next_uses`] computes them in a backward pass). libCacheSim's
//! `cache/eviction/Belady.c` reads the same numbers from oracleGeneral's
//! next-access field and behaves as here: the incoming page is always
//! inserted (eviction runs before the insert, so the incoming page is never
//! the victim, even if it is never used again); a hit updates the page's
//! next use; the victim is the maximum of a priority queue of next uses.
//! Ties happen only between pages never used again, and which of those
//! goes changes no later hit or miss, so the miss count is libCacheSim's.
//! O(log n) per reference (an ordered set of (next use, page)).
//!
//! Memory: the next-use indices are 8 bytes a reference, held in memory by
//! the caller (`replay::cache` computes them from the trace in one extra
//! pass) — acceptable for the traces a cache replay takes; the other
//! policies stream.

use super::{page_map, CachePolicy, PageMap};
use std::collections::BTreeSet;

/// The next use of a page never referenced again.
pub const NEVER: u64 = u64::MAX;

pub struct Opt {
    frames: usize,
    next_use: Vec<u64>,
    /// References seen so far: the index of the next one.
    t: usize,
    /// Resident pages by (next use, page): the last is the victim.
    order: BTreeSet<(u64, u64)>,
    /// Resident page → its next use.
    map: PageMap<u64>,
}

/// For each reference of `pages`, the index of the next reference to the
/// same page, or [`NEVER`].
pub fn next_uses(pages: &[u64]) -> Vec<u64> {
    let mut next = vec![NEVER; pages.len()];
    let mut last: PageMap<u64> = page_map(1024);
    for (i, &p) in pages.iter().enumerate().rev() {
        if let Some(n) = last.insert(p, i as u64) {
            next[i] = n;
        }
    }
    next
}

impl Opt {
    /// OPT over `frames` frames (at least 1) for a trace whose references'
    /// next uses are `next_use`. References past its end count as never
    /// used again.
    pub fn new(frames: usize, next_use: Vec<u64>) -> Opt {
        Opt {
            frames: frames.max(1),
            next_use,
            t: 0,
            order: BTreeSet::new(),
            map: page_map(frames),
        }
    }
}

impl CachePolicy for Opt {
    fn access(&mut self, page: u64) -> bool {
        let next = self.next_use.get(self.t).copied().unwrap_or(NEVER);
        self.t += 1;
        if let Some(n) = self.map.get_mut(&page) {
            self.order.remove(&(*n, page));
            *n = next;
            self.order.insert((next, page));
            return true;
        }
        if self.map.len() >= self.frames {
            if let Some((_, victim)) = self.order.pop_last() {
                self.map.remove(&victim);
            }
        }
        self.map.insert(page, next);
        self.order.insert((next, page));
        false
    }
    fn name(&self) -> &'static str {
        "opt"
    }
    fn resident(&self) -> usize {
        self.map.len()
    }
}
