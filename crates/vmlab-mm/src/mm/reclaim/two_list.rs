//! Linux's two lists (the design wherever the multi-generation LRU is
//! off): pages enter the inactive list (list 0; a refault within the
//! working set by its refault distance goes to the active list, list 1,
//! `phys::Lru::place`). Reclaim takes pages from the inactive tail: one
//! whose mappings were accessed is promoted if it was referenced before
//! too (`PG_REFERENCED`) or is mapped more than once, else marked and
//! rotated; an unreferenced one is evicted. When the inactive list is
//! shorter than the active one, the active tail is aged onto it
//! (a referenced active page rotates back). Linux: `shrink_active_list`,
//! `shrink_inactive_list`, `folio_check_references`. Simplified: one pair
//! of lists for anonymous and file pages alike (no swappiness balance).

use super::evict::{evict, Evicted};
use super::{ReclaimCx, SWAP_CLUSTER_MAX};
use crate::phys::PG_REFERENCED;
use crate::sync::Ordering;

pub(super) const INACTIVE: usize = 0;
const ACTIVE: usize = 1;

pub(super) fn shrink(cx: &ReclaimCx<'_>, want: usize) -> usize {
    let phys = cx.rcx.phys;
    let lru = phys.lru();
    let descs = phys.descs();
    let mut freed = 0;
    let mut scanned = 0;
    // Enough rounds to look at every listed page twice.
    let rounds = 2 * (lru.total() / SWAP_CLUSTER_MAX + 1);
    for _ in 0..rounds {
        if freed >= want {
            break;
        }
        if lru.len(INACTIVE) < lru.len(ACTIVE) {
            for pfn in lru.isolate_tail(descs, ACTIVE, SWAP_CLUSTER_MAX) {
                scanned += 1;
                let refs = cx.rmap.referenced(&cx.rcx, pfn);
                let back = if refs.young > 0 || refs.locked {
                    ACTIVE
                } else {
                    INACTIVE
                };
                if !refs.flush.remote.is_empty() {
                    (cx.shootdown)(refs.flush);
                }
                if back == INACTIVE {
                    cx.counters.pgdeactivate.fetch_add(1, Ordering::Relaxed);
                }
                lru.add(descs, pfn, back);
                phys.put_frame(pfn);
            }
        }
        let batch = lru.isolate_tail(descs, INACTIVE, SWAP_CLUSTER_MAX);
        if batch.is_empty() && lru.len(ACTIVE) == 0 {
            break;
        }
        for pfn in batch {
            scanned += 1;
            let Some(d) = phys.desc(pfn) else { continue };
            let refs = cx.rmap.referenced(&cx.rcx, pfn);
            if !refs.flush.remote.is_empty() {
                (cx.shootdown)(refs.flush);
            }
            let was_referenced = d.flags.fetch_and(!PG_REFERENCED, Ordering::AcqRel) & PG_REFERENCED != 0;
            if refs.locked || (refs.young > 0 && (was_referenced || refs.mapped > 1)) {
                cx.counters.pgactivate.fetch_add(1, Ordering::Relaxed);
                lru.add(descs, pfn, ACTIVE);
                phys.put_frame(pfn);
                continue;
            }
            if refs.young > 0 {
                d.flags.fetch_or(PG_REFERENCED, Ordering::AcqRel);
                lru.add(descs, pfn, INACTIVE);
                phys.put_frame(pfn);
                continue;
            }
            match evict(cx, pfn) {
                Evicted::Freed => freed += 1,
                // A racing holder, a busy map lock, no slot: back to the
                // inactive head.
                Evicted::Kept => {
                    lru.add(descs, pfn, INACTIVE);
                    phys.put_frame(pfn);
                }
            }
        }
    }
    cx.account(scanned, freed);
    freed
}

/// MADV_COLD on `pfn`: an active page goes to the inactive head; an
/// inactive one stays. Returns whether it moved. Linux: `lru_deactivate`.
pub(super) fn deactivate(cx: &ReclaimCx<'_>, pfn: crate::addr::Pfn) -> bool {
    let phys = cx.rcx.phys;
    phys.lru().list_of(phys.descs(), pfn) == Some(ACTIVE) && phys.lru().move_to(phys.descs(), pfn, INACTIVE)
}

/// MADV_FREE on `pfn`: to the inactive tail, where reclaim looks next.
pub(super) fn to_inactive_tail(cx: &ReclaimCx<'_>, pfn: crate::addr::Pfn) {
    let phys = cx.rcx.phys;
    phys.lru().move_to_tail(phys.descs(), pfn, INACTIVE);
}
