//! CLOCK-Pro (Jiang, Chen & Zhang, USENIX 2005; proposed for Linux by
//! Rik van Riel as the CLOCK-Pro approximation): pages are hot or cold,
//! and a cold page has a test period, in which a re-use proves a reuse
//! distance shorter than the hot pages' recency and makes it hot. A cold
//! page evicted in its test period stays known as non-resident (the
//! paper's metadata-only ring entry; here its shadow in the page or swap
//! cache plus an entry in `State::nonresident`), so a refault then comes
//! back hot and grows the cold target.
//!
//! The paper's one ring, as lists: every page put at a list's head takes
//! the next ring position (`State::stamp`), so each list is in ring order
//! and a hand is the tail of its list.
//! - hand-cold (the cold list's tail) finds victims: a referenced cold
//!   page in its test period goes hot, one after it starts a new test
//!   period, an unreferenced one is evicted (non-resident if in test).
//! - hand-hot (the hot list's tail) runs while there are more hot pages
//!   than the resident pages less the cold target: an unreferenced hot
//!   page turns cold (to the cold tail, test period over), a referenced
//!   one rotates to the head (as the authors' simulator moves the pages
//!   hand-hot passes). Its position (`State::hand_hot`, the ring position
//!   of the last page it passed) ends every test period behind it:
//!   a cold page is in its test period while its position is after
//!   hand-hot's, and non-resident pages it passes are forgotten, each
//!   shrinking the cold target.
//! - hand-test drops the oldest non-resident pages while more are kept
//!   than pages are resident, each shrinking the cold target.
//!
//! The cold target adapts between 1% of the resident pages (at least 1)
//! and all of them. mlocked pages are parked on a third list and count
//! for neither hand (Linux's unevictable list); they come back when reclaim
//! finds nothing else. Differences from the cache-only `clock_pro`
//! (`vmlab::cache::clock_pro`, the paper's ring kept exactly): hand-hot's
//! passed pages move, references are accessed bits seen by the reverse
//! map, victims are taken a batch at a time, and pages enter cold (no
//! hot-while-filling start). docs/REPLAY.md compares the two.

use super::evict::{evict, Evicted};
use super::{used_since, ReclaimCx, SWAP_CLUSTER_MAX};
use crate::addr::Pfn;
use crate::phys::Workingset;
use crate::sync::{AtomicBool, AtomicU64, AtomicUsize, Mutex, Ordering};
use alloc::collections::BTreeSet;
use alloc::vec::Vec;

pub(super) const COLD: usize = 0;
pub(super) const HOT: usize = 1;
/// mlocked pages, out of both hands' way.
const LOCKED: usize = 2;
/// Lists the design keeps.
pub(super) const LISTS: usize = 3;
// MADV_FREE moves pages with two_list's function.
const _: () = assert!(COLD == super::two_list::INACTIVE);

/// The design's state beside the lists: ring positions, hand-hot's, the
/// cold target and the non-resident pages in their test period. Each
/// field is an atomic or a leaf lock, since the list lock's holder
/// reaches them (`Workingset`).
pub(super) struct State {
    /// Ring positions handed out so far.
    seq: AtomicU64,
    /// Each frame's ring position (by frame number), given when it was
    /// last put at a list's head, and `FRESH` while hand-cold has not seen
    /// it since it came in.
    stamps: Vec<AtomicU64>,
    /// The ring position of the last hot page hand-hot passed.
    hand_hot: AtomicU64,
    cold_target: AtomicUsize,
    /// Resident pages on the two hands' lists when reclaim last ran (the
    /// paper's memory size m).
    resident: AtomicUsize,
    /// Ring positions of the non-resident cold pages in their test period.
    nonresident: Mutex<BTreeSet<u64>>,
    /// Whether reclaim has run (memory filled once).
    reclaimed: AtomicBool,
}

/// In a stamp: the page came in since hand-cold last saw it, so its
/// accessed bit may be the faulting access's own (the hardware set it as
/// the fault's retry mapped the page), not a re-use.
const FRESH: u64 = 1 << 63;

fn min_cold(resident: usize) -> usize {
    (resident / 100).max(1)
}

impl State {
    pub(super) fn new(frames: usize) -> State {
        State {
            seq: AtomicU64::new(0),
            stamps: (0..frames).map(|_| AtomicU64::new(0)).collect(),
            hand_hot: AtomicU64::new(0),
            cold_target: AtomicUsize::new(1),
            resident: AtomicUsize::new(0),
            nonresident: Mutex::new(BTreeSet::new()),
            reclaimed: AtomicBool::new(false),
        }
    }

    /// Give `pfn` the next ring position (put at a list's head), `FRESH`
    /// or not.
    fn stamp_as(&self, pfn: Pfn, fresh: u64) {
        if let Some(s) = self.stamps.get(pfn.0) {
            s.store(
                (self.seq.fetch_add(1, Ordering::Relaxed) + 1) | fresh,
                Ordering::Relaxed,
            );
        }
    }

    fn stamp(&self, pfn: Pfn) {
        self.stamp_as(pfn, 0);
    }

    fn position(&self, pfn: Pfn) -> u64 {
        self.stamps.get(pfn.0).map_or(0, |s| s.load(Ordering::Relaxed) & !FRESH)
    }

    /// Whether `pfn` came in since hand-cold last saw it; no longer.
    fn take_fresh(&self, pfn: Pfn) -> bool {
        self.stamps
            .get(pfn.0)
            .is_some_and(|s| s.fetch_and(!FRESH, Ordering::Relaxed) & FRESH != 0)
    }

    /// Whether a page at ring position `at` is in its test period.
    fn in_test(&self, at: u64) -> bool {
        at > self.hand_hot.load(Ordering::Relaxed)
    }

    fn shrink_target(&self, by: usize) {
        let floor = min_cold(self.resident.load(Ordering::Relaxed));
        let _ = self
            .cold_target
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_sub(by).max(floor))
            });
    }

    /// Hand-hot passed ring position `at`: the test periods behind it end.
    fn pass_hot(&self, at: u64) {
        let before = self.hand_hot.fetch_max(at, Ordering::Relaxed);
        if at <= before {
            return;
        }
        let ended = {
            let mut n = self.nonresident.lock();
            let keep = n.split_off(&(at + 1));
            let ended = n.len();
            *n = keep;
            ended
        };
        self.shrink_target(ended);
    }

    /// Evicted in its test period at ring position `at`, with `m` pages
    /// resident: non-resident, and hand-test drops the oldest while more
    /// are kept than pages are resident.
    fn note_nonresident(&self, at: u64, m: usize) {
        let m = m.max(1);
        let dropped = {
            let mut n = self.nonresident.lock();
            n.insert(at);
            let mut dropped = 0;
            while n.len() > m {
                n.pop_first();
                dropped += 1;
            }
            dropped
        };
        self.shrink_target(dropped);
    }

    /// The paper's memory size m: the resident pages reclaim last found,
    /// or, while memory never filled (a MADV_PAGEOUT before any reclaim),
    /// every frame; at least 1.
    fn memory_size(&self) -> usize {
        if self.reclaimed.load(Ordering::Relaxed) {
            self.resident.load(Ordering::Relaxed).max(1)
        } else {
            self.stamps.len().max(1)
        }
    }

    /// The cold target now.
    fn cold_target(&self) -> usize {
        self.cold_target.load(Ordering::Relaxed)
    }

    pub(super) fn snapshot(&self) -> super::ClockProState {
        super::ClockProState {
            cold_target: self.cold_target(),
            nonresident: self.nonresident.lock().len(),
        }
    }
}

impl Workingset for State {
    fn shadow(&self, pfn: Pfn) -> u64 {
        self.position(pfn)
    }

    /// A refault of a page still non-resident in its test period: its
    /// reuse distance beat the hot pages', so the cold target grows and
    /// the page comes back hot. Before reclaim first ran, first uses come
    /// in hot while the hot pages leave the cold target room (the paper's
    /// start: LIRS's first pages are LIR).
    fn admit(&self, shadow: Option<u64>, listed: &[usize]) -> bool {
        let Some(shadow) = shadow else {
            let m = self.stamps.len();
            return !self.reclaimed.load(Ordering::Relaxed)
                && listed.get(HOT).is_some_and(|&hot| hot + self.cold_target() < m);
        };
        if !self.in_test(shadow) || !self.nonresident.lock().remove(&shadow) {
            return false;
        }
        let m = self.memory_size();
        let _ = self
            .cold_target
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| Some((t + 1).min(m)));
        true
    }

    fn placed(&self, pfn: Pfn) {
        self.stamp_as(pfn, FRESH);
    }

    /// A page evicted in its test period (by hand-cold, or MADV_PAGEOUT
    /// whatever its state) stays known as non-resident.
    fn left(&self, shadow: u64) {
        if self.in_test(shadow) {
            self.note_nonresident(shadow, self.memory_size());
        }
    }
}

/// MADV_COLD on `pfn`: a cold page out of its test period at the cold
/// tail, hand-cold's next candidate, whether it was hot or cold (every
/// page counts, as under Linux's multi-generation LRU). Returns whether it
/// was on one of the hands' lists.
pub(super) fn deactivate(s: &State, cx: &ReclaimCx<'_>, pfn: Pfn) -> bool {
    let phys = cx.rcx.phys;
    let lru = phys.lru();
    if !matches!(lru.list_of(phys.descs(), pfn), Some(COLD | HOT)) {
        return false;
    }
    if let Some(at) = s.stamps.get(pfn.0) {
        at.store(0, Ordering::Relaxed);
    }
    lru.move_to_tail(phys.descs(), pfn, COLD)
}

pub(super) fn shrink(s: &State, cx: &ReclaimCx<'_>, want: usize) -> usize {
    let phys = cx.rcx.phys;
    let lru = phys.lru();
    let descs = phys.descs();
    let mut freed = 0;
    let mut scanned = 0;
    let mut unlocked = false;
    let m = lru.len(COLD) + lru.len(HOT);
    s.resident.store(m, Ordering::Relaxed);
    s.reclaimed.store(true, Ordering::Relaxed);
    let floor = min_cold(m);
    let _ = s.cold_target.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
        Some(t.clamp(floor, m.max(floor)))
    });
    // Enough rounds for hand-cold to look at every resident page twice.
    let rounds = 2 * (m / SWAP_CLUSTER_MAX + 1);
    for _ in 0..rounds {
        if freed >= want {
            break;
        }
        scanned += balance_hot(s, cx, m);
        let batch = lru.isolate_tail(descs, COLD, SWAP_CLUSTER_MAX);
        if batch.is_empty() {
            if lru.len(HOT) > 0 {
                // Every resident page is hot: hand-hot must make one cold.
                scanned += run_hand_hot(s, cx, lru.len(HOT), true);
                continue;
            }
            if !unlocked && lru.len(LOCKED) > 0 {
                unlocked = true;
                scanned += unpark(cx);
                continue;
            }
            break;
        }
        for pfn in batch {
            scanned += 1;
            let (young, locked) = used_since(cx, pfn);
            let at = s.position(pfn);
            let fresh = s.take_fresh(pfn);
            if locked {
                lru.add(descs, pfn, LOCKED);
            } else if young && fresh {
                // The bit may be the fault's own: no re-use proven yet.
                // Round the cold list once more, its test period running
                // on (the paper's new page, unreferenced, not yet reached
                // by hand-cold).
                lru.add(descs, pfn, COLD);
            } else if young && s.in_test(at) {
                cx.counters.pgactivate.fetch_add(1, Ordering::Relaxed);
                s.stamp(pfn);
                lru.add(descs, pfn, HOT);
            } else if young {
                // Re-used after its test period: a new one.
                s.stamp(pfn);
                lru.add(descs, pfn, COLD);
            } else {
                match evict(cx, pfn) {
                    Evicted::Freed => {
                        // Non-resident if in test: `Workingset::left`.
                        freed += 1;
                        continue;
                    }
                    Evicted::Kept => lru.add(descs, pfn, COLD),
                }
            }
            phys.put_frame(pfn);
        }
    }
    cx.account(scanned, freed);
    freed
}

/// Hand-hot while more pages are hot than the cold target leaves room
/// for; the pages it looked at.
fn balance_hot(s: &State, cx: &ReclaimCx<'_>, m: usize) -> usize {
    let lru = cx.rcx.phys.lru();
    let hot = lru.len(HOT);
    let room = m - s.cold_target().min(m);
    if hot <= room {
        return 0;
    }
    run_hand_hot(s, cx, hot - room, false)
}

/// Turn up to `n` hot pages cold, passing (and rotating) referenced ones
/// on the way; each hot page is looked at at most twice (after one pass
/// its bit is clear). `force`: stop at the first page turned cold.
fn run_hand_hot(s: &State, cx: &ReclaimCx<'_>, n: usize, force: bool) -> usize {
    let phys = cx.rcx.phys;
    let lru = phys.lru();
    let descs = phys.descs();
    let mut cooled = 0;
    let mut looked = 0;
    let budget = 2 * lru.len(HOT) + 1;
    while cooled < n && looked < budget {
        let batch = lru.isolate_tail(descs, HOT, (n - cooled).min(SWAP_CLUSTER_MAX));
        if batch.is_empty() {
            break;
        }
        for pfn in batch {
            looked += 1;
            s.pass_hot(s.position(pfn));
            let (young, locked) = used_since(cx, pfn);
            if locked {
                lru.add(descs, pfn, LOCKED);
            } else if young {
                s.stamp(pfn);
                lru.add(descs, pfn, HOT);
            } else {
                // Cold, its test period over (its position is behind
                // hand-hot now): hand-cold's next candidate.
                cx.counters.pgdeactivate.fetch_add(1, Ordering::Relaxed);
                lru.add_tail(descs, pfn, COLD);
                cooled += 1;
            }
            phys.put_frame(pfn);
        }
        if force && cooled > 0 {
            break;
        }
    }
    looked
}

/// Put the parked pages no longer mlocked back at the cold list's tail;
/// the pages looked at.
fn unpark(cx: &ReclaimCx<'_>) -> usize {
    let phys = cx.rcx.phys;
    let lru = phys.lru();
    let descs = phys.descs();
    let n = lru.len(LOCKED);
    let mut looked = 0;
    let mut still = Vec::new();
    while looked < n {
        let batch = lru.isolate_tail(descs, LOCKED, SWAP_CLUSTER_MAX);
        if batch.is_empty() {
            break;
        }
        for pfn in batch {
            looked += 1;
            if used_since(cx, pfn).1 {
                still.push(pfn);
            } else {
                lru.add_tail(descs, pfn, COLD);
                phys.put_frame(pfn);
            }
        }
    }
    // Back after the sweep, so that it looks at each page once.
    for pfn in still {
        lru.add(descs, pfn, LOCKED);
        phys.put_frame(pfn);
    }
    looked
}
