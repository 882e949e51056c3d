//! `pte_bit` (seed 000 #5): the fault claims the entry itself by setting
//! its lock bit with a compare-and-swap (`pte_ops::claim`), then allocates,
//! then publishes the new entry, which clears the bit, with one release
//! store (`pte_ops::publish`). A CPU that finds the bit set waits for the
//! entry (`fault.rs`). No frame is allocated that is thrown away; an
//! allocation that fails gives the claim up (`pte_ops::abandon`). Never
//! merged into Linux.

use super::{FaultLockPolicy, Install};
use crate::addr::Pfn;
use crate::mm::address_space::AddressSpace;
use crate::mm::fault::FaultCtx;
use crate::mm::pte_ops::{self, Rss};
use crate::pgtable::{LeafRef, Pte};
use crate::sync::MutexGuard;
use crate::tlb::PendingFlush;

/// The PTE lock-bit design.
#[derive(Copy, Clone, Debug, Default)]
pub struct PteBitPolicy;

impl FaultLockPolicy for PteBitPolicy {
    fn whole_fault<'a>(&self, _cx: &FaultCtx<'_>, _mm: &'a AddressSpace) -> Option<MutexGuard<'a, ()>> {
        None
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
        if !pte_ops::claim(entry, cur) {
            return Install::Retry;
        }
        // A walk may still read the old frame (read-only) while we copy it.
        let Some(new) = make() else {
            pte_ops::abandon(entry, cur);
            return Install::NoMemory;
        };
        pte_ops::publish(cx.phys, rss, entry, addr, cur, new, flush);
        Install::Done(new)
    }
}
