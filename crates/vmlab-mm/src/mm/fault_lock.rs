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
//! The claim, publish and abandon of an entry are `pte_ops::{claim,
//! publish, abandon}`.
//!
//! May call: nothing (the policy value only).

/// The `fault_lock` policy (config key `fault_lock`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum FaultLock {
    MmLock,
    PtLock,
    PteBit,
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
