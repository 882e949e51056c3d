//! `pt_lock`: a lock per leaf-table page (`pgtable::ptl`) held only to
//! check and set the entry. The frame is allocated (and zeroed or filled
//! with a COW copy) before the lock is taken; if another CPU filled the
//! entry meanwhile the frame is freed and counted in `pages_wasted`, the
//! cost seed 000 #5 points at. Linux 2.6.15 on: `do_anonymous_page`,
//! `wp_page_copy` under `pte_offset_map_lock`.

use super::{FaultLockPolicy, Install};
use crate::addr::Pfn;
use crate::mm::address_space::AddressSpace;
use crate::mm::fault::{discard_frame, FaultCtx};
use crate::mm::pte_ops::{self, Rss};
use crate::mm::stats::MmCounters;
use crate::pgtable::{ptl, LeafRef, Pte};
use crate::sync::MutexGuard;
use crate::tlb::PendingFlush;

/// The split page-table lock design.
#[derive(Copy, Clone, Debug, Default)]
pub struct PtLockPolicy;

impl FaultLockPolicy for PtLockPolicy {
    fn whole_fault<'a>(&self, _cx: &FaultCtx<'_>, _mm: &'a AddressSpace) -> Option<MutexGuard<'a, ()>> {
        None
    }

    fn install_fresh(
        &self,
        cx: &FaultCtx<'_>,
        rss: Rss<'_>,
        (table, entry): (Pfn, LeafRef<'_>),
        addr: u64,
        cur: Pte,
        make: impl FnOnce() -> Option<Pte>,
        flush: &mut PendingFlush,
    ) -> Install {
        let Some(new) = make() else { return Install::NoMemory };
        let installed = {
            // Linux checks `pte_same` under the table's lock. A table
            // outside RAM cannot come from the walk; without a lock the
            // compare-and-swap alone still keeps the entry consistent.
            let _ptl = ptl::lock(cx.phys, table, cx.relax).map(|(g, waited)| {
                if waited {
                    MmCounters::bump(&cx.counters.lock_waits);
                }
                g
            });
            pte_ops::set(cx.phys, rss, entry, addr, cur, new, flush)
        };
        if installed {
            Install::Done(new)
        } else {
            // Another CPU filled the entry while we allocated.
            discard_frame(cx, new.pfn());
            Install::Retry
        }
    }
}
