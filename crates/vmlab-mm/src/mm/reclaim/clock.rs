//! Seed 002's page-centric clock: one hand sweeps every frame of RAM in
//! frame order; a pageable page whose mappings' accessed bits (found
//! through the reverse map, so a shared page is visited once for all its
//! mappings) were set gets them cleared and is passed (a second chance),
//! an unreferenced one is evicted. No lists: the frame array is the clock.
//! Clearing the bits flushes the cleared entries' translations (one
//! shootdown per page that had any), so the next access walks and sets
//! the bit again.

use super::evict::{evict, Evicted};
use super::{pageable, ReclaimCx, Reclaimer};
use crate::addr::Pfn;
use crate::phys::PG_REFERENCED;
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
        if !pageable(cx, pfn) {
            continue;
        }
        let Some(d) = phys.desc(pfn) else { continue };
        if !d.try_get() {
            continue;
        }
        // The page may have been freed and reused between the check and
        // the reference: look again with the reference held.
        if !pageable(cx, pfn) {
            phys.put_frame(pfn);
            continue;
        }
        scanned += 1;
        let refs = cx.rmap.referenced(&cx.rcx, pfn);
        let young = refs.young > 0 || d.flags.fetch_and(!PG_REFERENCED, Ordering::AcqRel) & PG_REFERENCED != 0;
        let locked = refs.locked;
        if !refs.flush.remote.is_empty() {
            (cx.shootdown)(refs.flush);
        }
        if young || locked {
            phys.put_frame(pfn);
            continue;
        }
        match evict(cx, pfn) {
            Evicted::Freed => freed += 1,
            Evicted::Kept => {
                phys.put_frame(pfn);
            }
        }
    }
    cx.scanned(scanned);
    cx.stolen(freed);
    freed
}
