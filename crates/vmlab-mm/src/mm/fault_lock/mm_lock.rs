//! `mm_lock`: one lock per address space (`AddressSpace::page_table_lock`)
//! held for the whole fault, as Linux 2.4 held `mm->page_table_lock`
//! across `handle_mm_fault`. At most one fault per address space runs, so
//! none loses a race; the baseline the finer designs are measured against.

use super::{FaultLockPolicy, Install};
use crate::addr::Pfn;
use crate::mm::address_space::AddressSpace;
use crate::mm::fault::{discard_frame, FaultCtx};
use crate::mm::pte_ops::{self, Rss};
use crate::mm::stats::MmCounters;
use crate::pgtable::{LeafRef, Pte};
use crate::sync::MutexGuard;
use crate::tlb::PendingFlush;

/// The whole-fault lock design.
#[derive(Copy, Clone, Debug, Default)]
pub struct MmLockPolicy;

impl FaultLockPolicy for MmLockPolicy {
    fn whole_fault<'a>(&self, cx: &FaultCtx<'_>, mm: &'a AddressSpace) -> Option<MutexGuard<'a, ()>> {
        Some(match mm.page_table_lock.try_lock() {
            Some(g) => g,
            None => {
                MmCounters::bump(&cx.counters.lock_waits);
                mm.page_table_lock.lock()
            }
        })
    }

    fn install_fresh(
        &self,
        cx: &FaultCtx<'_>,
        rss: Rss<'_>,
        (_, entry): (Pfn, LeafRef<'_>),
        addr: u64,
        cur: Pte,
        make: impl FnOnce() -> Option<Pte>,
        flush: &mut PendingFlush,
    ) -> Install {
        let Some(new) = make() else { return Install::NoMemory };
        // Faults are serialised; the compare-and-swap still covers a walk
        // setting the accessed bit meanwhile.
        if pte_ops::set(cx.phys, rss, entry, addr, cur, new, flush) {
            Install::Done(new)
        } else {
            discard_frame(cx, new.pfn());
            Install::Retry
        }
    }
}
