//! How concurrent faults in one address space exclude each other: the
//! `fault_lock` policy. Seed 002 asks for an "SMP friendly page fault
//! handler"; seed 000 #5 proposes a lock bit in the PTE so that
//! `do_anonymous_page` need not allocate a page before it owns the entry.
//!
//! Every policy runs the fault with the map lock held for reading (syscalls
//! hold it for writing, so a fault never overlaps a syscall of its address
//! space); the policies differ in what serialises faults among themselves:
//!
//! - `MmLock`: one lock per address space (`AddressSpace::page_table_lock`)
//!   held for the whole fault, as Linux 2.4 held `mm->page_table_lock`. At
//!   most one fault per address space runs; none ever loses a race.
//! - `PtLock`: a lock per leaf-table page (`pgtable::ptl`) held only to
//!   check and set the entry. The page is allocated (and a COW copy made)
//!   before the lock is taken; if another CPU filled the entry meanwhile the
//!   page is freed and counted in `pages_wasted`. Linux 2.6.15 on:
//!   `do_anonymous_page`, `wp_page_copy`.
//! - `PteBit`: the fault claims the entry itself by setting `Pte::LOCK` with a
//!   compare-and-swap, then allocates, then publishes the new entry (which
//!   clears the bit) with one store. A CPU that finds the bit set waits for
//!   the entry. No page is allocated that is thrown away.
//!
//! Faults on memory objects (files, shared anonymous memory) take their page
//! from the object's cache, whose own lock makes sure one page exists per
//! offset; they install the entry by compare-and-swap under every policy
//! (under `MmLock` they are serialised too).
//!
//! Each policy is one file (`mm_lock.rs`, `pt_lock.rs`, `pte_bit.rs`)
//! implementing `FaultLockPolicy`; `FaultLock`, the config's choice, is the
//! enum over them, dispatched by `match` (no `dyn` call on the fault path).
//! Entries change only through `pte_ops` (`set`, `claim`, `publish`,
//! `abandon`).
//!
//! May call: `pte_ops`, `pgtable::ptl`, `fault` (the frame discard), `sync`.

mod mm_lock;
mod pt_lock;
mod pte_bit;

pub use mm_lock::MmLockPolicy;
pub use pt_lock::PtLockPolicy;
pub use pte_bit::PteBitPolicy;

use super::address_space::AddressSpace;
use super::fault::FaultCtx;
use super::pte_ops::Rss;
use crate::addr::Pfn;
use crate::pgtable::{LeafRef, Pte};
use crate::sync::MutexGuard;
use crate::tlb::PendingFlush;

/// What installing a fresh frame came to.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Install {
    /// The entry now holds this.
    Done(Pte),
    /// The entry changed (another CPU filled it): look again.
    Retry,
    /// No frame could be had (the entry is as it was).
    NoMemory,
}

/// What one `fault_lock` design decides: what serialises a whole fault, and
/// how a fault puts a fresh frame (demand-zero page, COW copy) into an
/// entry that other CPUs of the address space may be filling too.
pub trait FaultLockPolicy {
    /// Taken for the whole fault, if the policy serialises faults.
    fn whole_fault<'a>(&self, cx: &FaultCtx<'_>, mm: &'a AddressSpace) -> Option<MutexGuard<'a, ()>>;

    /// Replace `cur` in the entry (`slot`: its leaf table and the entry, at
    /// `addr`) by the entry `make` returns for a frame it allocates (and
    /// zeroes or fills); `make` gives `None` when no frame is free. Counts
    /// follow `pte_ops::set`. A frame made for an entry another CPU filled
    /// first is freed into `pages_wasted`.
    #[allow(clippy::too_many_arguments)]
    fn install_fresh(
        &self,
        cx: &FaultCtx<'_>,
        rss: Rss<'_>,
        slot: (Pfn, LeafRef<'_>),
        addr: u64,
        cur: Pte,
        make: impl FnOnce() -> Option<Pte>,
        flush: &mut PendingFlush,
    ) -> Install;
}

/// The `fault_lock` policy (config key `fault_lock`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum FaultLock {
    MmLock,
    PtLock,
    PteBit,
}

impl FaultLockPolicy for FaultLock {
    #[inline]
    fn whole_fault<'a>(&self, cx: &FaultCtx<'_>, mm: &'a AddressSpace) -> Option<MutexGuard<'a, ()>> {
        match self {
            FaultLock::MmLock => MmLockPolicy.whole_fault(cx, mm),
            FaultLock::PtLock => PtLockPolicy.whole_fault(cx, mm),
            FaultLock::PteBit => PteBitPolicy.whole_fault(cx, mm),
        }
    }

    #[inline]
    fn install_fresh(
        &self,
        cx: &FaultCtx<'_>,
        rss: Rss<'_>,
        slot: (Pfn, LeafRef<'_>),
        addr: u64,
        cur: Pte,
        make: impl FnOnce() -> Option<Pte>,
        flush: &mut PendingFlush,
    ) -> Install {
        match self {
            FaultLock::MmLock => MmLockPolicy.install_fresh(cx, rss, slot, addr, cur, make, flush),
            FaultLock::PtLock => PtLockPolicy.install_fresh(cx, rss, slot, addr, cur, make, flush),
            FaultLock::PteBit => PteBitPolicy.install_fresh(cx, rss, slot, addr, cur, make, flush),
        }
    }
}

impl FaultLock {
    pub const ALL: [FaultLock; 3] = [FaultLock::MmLock, FaultLock::PtLock, FaultLock::PteBit];

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultLock::MmLock => "mm_lock",
            FaultLock::PtLock => "pt_lock",
            FaultLock::PteBit => "pte_bit",
        }
    }
}
