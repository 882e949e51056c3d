//! Who reaches each fork-shared (`TABLE_COW`) leaf table: the list of its
//! sharers' address-space ids, so that a PTE pointer into such a table is
//! turned into every address space that sees the entry (the reverse maps
//! that keep PTE pointers), and the checker can verify it. Object tables
//! keep theirs in the object (`MemObject::shared_tables`).
//!
//! Changed by `mm/shared_pt.rs` only, with the map lock of the sharer
//! joining or leaving held (for writing at fork and exit, for reading when
//! a fault leaves). Lock order: a leaf.

use super::PhysMem;
use crate::addr::Pfn;
use alloc::vec::Vec;

impl PhysMem {
    /// `mm` reaches the shared table `table` from now on.
    pub(crate) fn table_share(&self, table: Pfn, mm: u64) {
        let mut s = self.cow_sharers.lock();
        let v = s.entry(table.0).or_default();
        if !v.contains(&mm) {
            v.push(mm);
        }
    }

    /// `mm` no longer reaches `table`. A last sharer stays listed: it still
    /// reaches the table copy-on-write until it takes it back
    /// (`table_unshared`).
    pub(crate) fn table_leave(&self, table: Pfn, mm: u64) {
        let mut s = self.cow_sharers.lock();
        if let Some(v) = s.get_mut(&table.0) {
            v.retain(|&m| m != mm);
            if v.is_empty() {
                s.remove(&table.0);
            }
        }
    }

    /// The table is gone or private: forget its list.
    pub(crate) fn table_unshared(&self, table: Pfn) {
        self.cow_sharers.lock().remove(&table.0);
    }

    /// The address spaces sharing `table` (empty if it is not shared by fork).
    pub fn table_sharers(&self, table: Pfn) -> Vec<u64> {
        self.cow_sharers.lock().get(&table.0).cloned().unwrap_or_default()
    }

    /// Every fork-shared table with its sharers (for the checker).
    pub fn shared_tables(&self) -> Vec<(Pfn, Vec<u64>)> {
        self.cow_sharers
            .lock()
            .iter()
            .map(|(&t, v)| (Pfn(t), v.clone()))
            .collect()
    }
}
