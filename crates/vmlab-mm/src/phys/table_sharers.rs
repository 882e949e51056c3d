//! Who reaches each fork-shared (`TABLE_COW`) leaf table: the list of its
//! sharers' address-space ids, so that a PTE pointer into such a table is
//! turned into every address space that sees the entry (the reverse maps
//! that keep PTE pointers), and the checker can verify it. Object tables
//! keep theirs in the object (`MemObject::shared_tables`).
//!
//! Kept as one ordered set of (table, address space) pairs: sharing a table
//! at fork inserts two pairs and allocates no list per table (fork shares
//! 512 tables per GiB; this is on its path).
//!
//! Changed by `mm/shared_pt.rs` only, with the map lock of the sharer
//! joining or leaving held (for writing at fork and exit, for reading when
//! a fault leaves). Lock order: a leaf.

use super::PhysMem;
use crate::addr::Pfn;
use alloc::vec::Vec;

impl PhysMem {
    /// `parent` and `child` reach the shared table `table` from now on
    /// (fork; the parent may be listed already).
    pub(crate) fn table_share(&self, table: Pfn, parent: u64, child: u64) {
        let mut s = self.cow_sharers.lock();
        s.insert((table.0, parent));
        s.insert((table.0, child));
    }

    /// `mm` no longer reaches `table`. A last sharer stays listed: it still
    /// reaches the table copy-on-write until it takes it back
    /// (`table_unshared`).
    pub(crate) fn table_leave(&self, table: Pfn, mm: u64) {
        self.cow_sharers.lock().remove(&(table.0, mm));
    }

    /// The table is gone or private: forget its list.
    pub(crate) fn table_unshared(&self, table: Pfn) {
        let mut s = self.cow_sharers.lock();
        let gone: Vec<(usize, u64)> = s.range((table.0, 0)..=(table.0, u64::MAX)).copied().collect();
        for k in gone {
            s.remove(&k);
        }
    }

    /// The address spaces sharing `table` (empty if it is not shared by fork).
    pub fn table_sharers(&self, table: Pfn) -> Vec<u64> {
        self.cow_sharers
            .lock()
            .range((table.0, 0)..=(table.0, u64::MAX))
            .map(|&(_, mm)| mm)
            .collect()
    }

    /// Every fork-shared table with its sharers (for the checker).
    pub fn shared_tables(&self) -> Vec<(Pfn, Vec<u64>)> {
        let s = self.cow_sharers.lock();
        let mut out: Vec<(Pfn, Vec<u64>)> = Vec::new();
        for &(t, mm) in s.iter() {
            match out.last_mut() {
                Some((last, v)) if last.0 == t => v.push(mm),
                _ => out.push((Pfn(t), alloc::vec![mm])),
            }
        }
        out
    }
}
