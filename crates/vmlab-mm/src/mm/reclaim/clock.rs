//! Seed 002's page-centric clock: one hand sweeps every frame of RAM in
//! frame order; a pageable page whose mappings' accessed bits (found
//! through the reverse map, so a shared page is visited once for all its
//! mappings) were set gets them cleared and is passed (a second chance),
//! an unreferenced one is evicted. The frame array is the clock; the one
//! LRU list only says which frames are pageable pages now (a frame being
//! allocated or freed is on no list), and its lock is what isolates one.
//! Clearing the bits flushes the cleared entries' translations (one
//! shootdown per page that had any), so the next access walks and sets
//! the bit again.

use super::evict::{evict, Evicted};
use super::{pageable, used_since, ReclaimCx, Reclaimer};
use crate::addr::Pfn;
use crate::sync::Ordering;

/// Sweep until `want` frames are freed or the hand went twice round.
pub(super) fn shrink(r: &Reclaimer, cx: &ReclaimCx<'_>, want: usize) -> usize {
    let phys = cx.rcx.phys;
    let total = phys.total_frames();
    let mut freed = 0;
    let mut scanned = 0;
    for _ in 0..2 * total {
        if freed >= want {
            break;
        }
        let at = r.hand.fetch_add(1, Ordering::Relaxed) % total;
        let pfn = Pfn(at);
        if !pageable(cx, pfn) || phys.lru().isolate(phys.descs(), pfn).is_none() {
            continue;
        }
        scanned += 1;
        let (young, locked) = used_since(cx, pfn);
        if young || locked {
            putback(cx, pfn);
            continue;
        }
        match evict(cx, pfn) {
            Evicted::Freed => freed += 1,
            Evicted::Kept => putback(cx, pfn),
        }
    }
    cx.account(scanned, freed);
    freed
}

/// Back on the list, and the isolation's reference dropped.
fn putback(cx: &ReclaimCx<'_>, pfn: Pfn) {
    let phys = cx.rcx.phys;
    phys.lru().add(phys.descs(), pfn, 0);
    phys.put_frame(pfn);
}
