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
//! The next uses come from memory ([`Opt::new`], for tests and small
//! traces) or stream from a reader ([`Opt::streaming`]): `replay::cache`
//! spills them to a temporary file, so a replay holds in memory only the
//! resident pages and, while computing next uses, one entry per distinct
//! page.

use super::{page_map, CachePolicy, PageMap};
use std::collections::BTreeSet;
use std::io::{self, BufReader, Read};

/// The next use of a page never referenced again.
pub const NEVER: u64 = u64::MAX;

/// Where the next uses come from.
enum Future {
    Mem {
        next_use: Vec<u64>,
        t: usize,
    },
    /// Little-endian u64s, one per reference in order.
    Stream(BufReader<Box<dyn Read>>),
}

pub struct Opt {
    frames: usize,
    future: Future,
    /// The first read error of a streamed future (later references count
    /// as never used again); the caller asks [`Opt::error`].
    error: Option<io::Error>,
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
        Opt::with(frames, Future::Mem { next_use, t: 0 })
    }

    /// OPT reading each reference's next use as a little-endian u64 from
    /// `r`, in trace order.
    pub fn streaming(frames: usize, r: Box<dyn Read>) -> Opt {
        Opt::with(frames, Future::Stream(BufReader::with_capacity(1 << 16, r)))
    }

    fn with(frames: usize, future: Future) -> Opt {
        Opt {
            frames: frames.max(1),
            future,
            error: None,
            order: BTreeSet::new(),
            map: page_map(frames),
        }
    }
}

impl Opt {
    /// The error that cut a streamed future short, if any.
    pub fn error(&mut self) -> Option<io::Error> {
        self.error.take()
    }

    fn next(&mut self) -> u64 {
        match &mut self.future {
            Future::Mem { next_use, t } => {
                let n = next_use.get(*t).copied().unwrap_or(NEVER);
                *t += 1;
                n
            }
            Future::Stream(r) => {
                let mut b = [0u8; 8];
                match r.read_exact(&mut b) {
                    Ok(()) => u64::from_le_bytes(b),
                    Err(e) => {
                        self.error.get_or_insert(e);
                        NEVER
                    }
                }
            }
        }
    }
}

impl CachePolicy for Opt {
    fn access(&mut self, page: u64) -> bool {
        let next = self.next();
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
