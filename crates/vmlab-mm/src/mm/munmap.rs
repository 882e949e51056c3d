//! `munmap`: remove any sub-range, splitting VMAs at its ends.
//! Linux: `do_vmi_munmap`, `do_vmi_align_munmap`.

use super::address_space::{AddressSpace, MapState};
use super::vma_map::VmaMap;
use crate::errno::{Errno, SysResult};
use crate::phys::PhysMem;
use crate::tlb::PendingFlush;

impl AddressSpace {
    /// `munmap(addr, len)`.
    pub fn munmap(&self, phys: &PhysMem, addr: u64, len: u64, flush: &mut PendingFlush) -> SysResult<()> {
        let end = Self::check_unmap_range(addr, len)?;
        let mut st = self.map.write();
        self.unmap_locked(&mut st, phys, addr, end, flush)
    }

    /// Remove `[start, end)` (page aligned) from the map and the page table.
    /// ENOMEM, with nothing changed, if punching a hole would exceed the map
    /// count limit (Linux checks before the split).
    pub(crate) fn unmap_locked(
        &self,
        st: &mut MapState,
        phys: &PhysMem,
        start: u64,
        end: u64,
        flush: &mut PendingFlush,
    ) -> SysResult<()> {
        let starts = st.vmas.starts_in(start, end);
        let Some(&first) = starts.first() else {
            return Ok(());
        };
        if let Some(v) = st.vmas.find(first) {
            if v.start < start && end < v.end && st.vmas.len() >= st.max_map_count {
                return Err(Errno::ENOMEM);
            }
        }
        // Shared page tables over the range must not see this change.
        self.unshare_range_locked(st, phys, start, end, flush)
            .map_err(|_| Errno::ENOMEM)?;
        Self::split_at_locked(st, start);
        Self::split_at_locked(st, end);
        for s in st.vmas.starts_in(start, end) {
            if let Some(v) = st.vmas.remove(s) {
                self.zap_range(phys, v.start, v.end, flush);
                self.retire_vma_locked(&v);
            }
        }
        self.prune_tables_locked(st, phys, start, end);
        Ok(())
    }
}
