//! The split page-table lock: one lock per leaf-table page, held while a
//! fault under the `pt_lock` policy updates an entry of that table.
//!
//! The lock is a bit (`PG_LOCKED`) in the table frame's descriptor, so it
//! costs no memory and two tables never share a lock. Linux keeps a
//! spinlock in the table's `struct page` (`pte_lockptr`, `USE_SPLIT_PTE_PTLOCKS`);
//! FreeBSD locks the whole pmap instead.
//!
//! Lock order: taken with the map lock held for reading; nothing but the
//! zone allocator (a leaf) may be taken under it.

use crate::addr::Pfn;
use crate::phys::{FrameDesc, PhysMem, PG_LOCKED};
use crate::sync::{Ordering, Relax};

/// The held lock of one page-table page; released on drop.
pub struct PtlGuard<'a> {
    desc: &'a FrameDesc,
}

/// Lock the table page `table`. Returns the guard and whether the lock was
/// contended (another CPU held it when we first tried). `None` if `table` is
/// outside RAM (a broken tree; the caller treats it as a failed fault).
/// `relax` is called every 128 spins (the holder may be a preempted host
/// thread). Linux: `pte_offset_map_lock`.
pub fn lock<'p>(phys: &'p PhysMem, table: Pfn, relax: &dyn Relax) -> Option<(PtlGuard<'p>, bool)> {
    let desc = phys.desc(table)?;
    let mut waited = false;
    let mut spins = 0u32;
    loop {
        // Test before test-and-set, so waiters spin on a shared line.
        if desc.flags.load(Ordering::Relaxed) & PG_LOCKED == 0
            && desc.flags.fetch_or(PG_LOCKED, Ordering::Acquire) & PG_LOCKED == 0
        {
            return Some((PtlGuard { desc }, waited));
        }
        waited = true;
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(128) {
            relax.relax();
        }
        core::hint::spin_loop();
        #[cfg(loom)]
        loom::thread::yield_now();
    }
}

impl Drop for PtlGuard<'_> {
    fn drop(&mut self) {
        self.desc.flags.fetch_and(!PG_LOCKED, Ordering::Release);
    }
}
