//! `brk`: grow or shrink the heap. Linux: `SYSCALL_DEFINE1(brk)`, `do_brk_flags`.

use super::address_space::AddressSpace;
use super::fault::FaultCtx;
use super::populate::Gup;
use super::vma::{Backing, Prot, VmFlags, Vma};
use super::vma_map::VmaMap;
use crate::addr::{page_ceil, PAGE_SHIFT, PAGE_SIZE, TASK_SIZE};
use crate::tlb::PendingFlush;

impl AddressSpace {
    /// `brk(addr)`: returns the new break on success and the old one on
    /// failure, as the Linux syscall does (it never returns an errno).
    /// New heap gets `def_flags`: after mlockall(MCL_FUTURE) it is locked
    /// (RLIMIT_MEMLOCK checked first, `check_brk_limits`) and populated.
    pub fn brk(&self, cx: &FaultCtx<'_>, addr: u64, flush: &mut PendingFlush) -> u64 {
        let phys = cx.phys;
        let mut st = self.map.write();
        let orig = st.brk;
        if addr < st.start_brk || addr > TASK_SIZE {
            return orig;
        }
        let (Some(new_top), Some(old_top)) = (page_ceil(addr), page_ceil(st.brk)) else {
            return orig;
        };
        if new_top == old_top {
            st.brk = addr;
            return addr;
        }
        if addr <= st.brk {
            // Linux looks for the brk VMA in [newbrk, oldbrk) and fails if
            // there is none (say the heap was munmapped).
            if st.vmas.starts_in(new_top, old_top).is_empty() {
                return orig;
            }
            if self.unmap_locked(&mut st, phys, new_top, old_top, flush).is_err() {
                return orig;
            }
            st.brk = addr;
            return addr;
        }
        // Keep a page free below the next mapping (Linux checks
        // `newbrk + PAGE_SIZE > vm_start_gap(next)`).
        if let Some(next) = st.vmas.find(old_top) {
            if new_top + PAGE_SIZE > super::mmap::start_gap_of(next) {
                return orig;
            }
        }
        if st.vmas.len() > st.max_map_count {
            return orig;
        }
        let grow = new_top - old_top;
        // check_brk_limits: RLIMIT_MEMLOCK for a locked heap (mlock_future_ok).
        if !Self::mlock_future_ok(&st, st.def_flags, grow) {
            return orig;
        }
        if (grow >> PAGE_SHIFT) > st.commit_limit_pages {
            return orig;
        }
        let vma = Vma::new(
            old_top,
            new_top,
            Prot(Prot::READ | Prot::WRITE),
            VmFlags(VmFlags::ACCOUNT | st.def_flags),
            Backing::Anon,
            old_top >> PAGE_SHIFT,
        );
        st.vmas.insert(vma);
        Self::merge_range_locked(&mut st, old_top, new_top);
        st.brk = addr;
        if st.def_flags & VmFlags::LOCKED != 0 {
            // The syscall's `mm_populate(oldbrk, newbrk - oldbrk)`, errors ignored.
            let _ = self.populate(cx, st, old_top, new_top, Gup::Mm { ignore_errors: true }, flush);
        }
        addr
    }
}
