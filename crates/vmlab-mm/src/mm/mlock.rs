//! Memory locking: `mlock`, `mlock2`, `munlock`, `mlockall`, `munlockall`,
//! and RLIMIT_MEMLOCK. Linux 6.18: mm/mlock.c (`do_mlock`,
//! `apply_vma_lock_flags`, `mlock_fixup`, `count_mm_mlocked_page_nr`,
//! `apply_mlockall_flags`, `can_do_mlock`), mm/mmap.c (`mlock_future_ok`),
//! mm/gup.c (`__mm_populate`, `populate_vma_page_range`).
//!
//! A lock is a VMA flag: `VmFlags::LOCKED`, with `VmFlags::LOCKONFAULT`
//! for MLOCK_ONFAULT / MCL_ONFAULT. Changing it splits and merges VMAs as
//! any flag change does (`AddressSpace::modify_flags_locked`, Linux
//! `vma_modify_flags`). Locking a range without LOCKONFAULT populates it
//! (`populate.rs`, the MADV_POPULATE path): a private writable VMA is
//! faulted for write, anything else for read; LOCKONFAULT VMAs are left to
//! fault as they are touched.
//!
//! What the lock means: a page mapped by a `LOCKED` VMA is never reclaimed.
//! Reclaim leaves such pages mapped (`Rmap::unmap_for_reclaim` skips a
//! mapping in a VM_LOCKED VMA, as Linux's `try_to_unmap_one` does; the folio
//! goes to the unevictable list there), and MADV_PAGEOUT/MADV_COLD are
//! EINVAL on a locked VMA (`madvise.rs`). There is no per-page mlocked state:
//! the reverse map finds the VMAs mapping a page, and their flags say.
//!
//! Accounting: `mm->locked_vm` is the number of pages in `LOCKED` VMAs
//! (`AddressSpace::locked_pages_locked`; computed from the VMAs, so munmap,
//! mremap and fork need no bookkeeping). A vmlab process is unprivileged
//! (no CAP_IPC_LOCK), so RLIMIT_MEMLOCK always applies: a soft limit of 0
//! makes mlock, mlock2, mlockall and MAP_LOCKED EPERM (`can_do_mlock`);
//! locking more than the limit is ENOMEM (mlock, mlockall(MCL_CURRENT),
//! where mlockall compares every mapped page, `total_vm`) or EAGAIN (mmap
//! and brk of locked memory, `mlock_future_ok`; stack growth ENOMEM).

use super::address_space::{AddressSpace, MapState};
use super::fault::FaultCtx;
use super::populate::Gup;
use super::stack::Rlimit;
use super::uapi::*;
use super::vma::VmFlags;
use super::vma_map::VmaMap;
use crate::addr::{PAGE_SHIFT, PAGE_SIZE, TASK_SIZE};
use crate::errno::{Errno, SysResult};
use crate::tlb::PendingFlush;

/// Linux's default RLIMIT_MEMLOCK (`INIT_RLIMITS`: `MLOCK_LIMIT` soft and hard).
pub const DEFAULT_MEMLOCK_RLIMIT: Rlimit = Rlimit {
    cur: MLOCK_LIMIT,
    max: MLOCK_LIMIT,
};

impl AddressSpace {
    /// Pages in locked VMAs (`mm->locked_vm`, `VmLck` in /proc/PID/status).
    pub fn locked_pages_locked(st: &MapState) -> u64 {
        let mut n = 0;
        st.vmas.for_each(&mut |v| {
            if v.flags.has(VmFlags::LOCKED) {
                n += v.pages();
            }
        });
        n
    }

    /// Pages mapped (`mm->total_vm`).
    fn total_pages_locked(st: &MapState) -> u64 {
        let mut n = 0;
        st.vmas.for_each(&mut |v| n += v.pages());
        n
    }

    /// `locked_vm`, for /proc/PID/status's `VmLck`.
    pub fn locked_pages(&self) -> u64 {
        Self::locked_pages_locked(&self.map.read())
    }

    /// Whether `bytes` more of memory with flags `vm_flags` may be locked:
    /// true unless `vm_flags` has `LOCKED` and `locked_vm` plus the new
    /// pages exceed RLIMIT_MEMLOCK (no CAP_IPC_LOCK). Linux: `mlock_future_ok`.
    pub(crate) fn mlock_future_ok(st: &MapState, vm_flags: u32, bytes: u64) -> bool {
        if vm_flags & VmFlags::LOCKED == 0 {
            return true;
        }
        let locked = (bytes >> PAGE_SHIFT).saturating_add(Self::locked_pages_locked(st));
        locked <= st.memlock_rlimit.cur >> PAGE_SHIFT
    }

    /// `mlock2(start, len, flags)`; `mlock` is `mlock2` with flags 0.
    /// EINVAL for a flag other than MLOCK_ONFAULT; then `do_mlock`: EPERM if
    /// RLIMIT_MEMLOCK is 0; `start` rounded down to its page and the length
    /// up over what that adds (`PAGE_ALIGN(len + offset_in_page(start))`,
    /// wrapping as size_t does); ENOMEM if the pages locked would exceed the
    /// limit (pages of the range already locked are not counted twice);
    /// EINVAL if the range wraps; 0 for an empty one; ENOMEM if `start` is
    /// not mapped, or at a hole later (the VMAs before it stay locked);
    /// ENOMEM if a split is refused by the map count. Then the range is
    /// populated unless MLOCK_ONFAULT: a fault that would signal (a
    /// PROT_NONE VMA, a page past the end of a file, a guard page) is
    /// ENOMEM, no memory EAGAIN (`__mlock_posix_error_return`); the lock
    /// stays set either way.
    pub fn mlock2(
        &self,
        cx: &FaultCtx<'_>,
        start: u64,
        len: u64,
        flags: u32,
        flush: &mut PendingFlush,
    ) -> SysResult<()> {
        if flags & !MLOCK_ONFAULT != 0 {
            return Err(Errno::EINVAL);
        }
        let mut vm_flags = VmFlags::LOCKED;
        if flags & MLOCK_ONFAULT != 0 {
            vm_flags |= VmFlags::LOCKONFAULT;
        }
        let mut st = self.map.write();
        let limit = st.memlock_rlimit.cur;
        // can_do_mlock: unprivileged, so a zero limit forbids locking.
        if limit == 0 {
            return Err(Errno::EPERM);
        }
        let len = len.wrapping_add(start & (PAGE_SIZE - 1)).wrapping_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
        let start = start & !(PAGE_SIZE - 1);
        let lock_limit = limit >> PAGE_SHIFT;
        let mut locked = (len >> PAGE_SHIFT).wrapping_add(Self::locked_pages_locked(&st));
        if locked > lock_limit {
            // Pages of the range already locked are counted in locked_vm.
            locked = locked.wrapping_sub(locked_in_range(&st, start, len));
        }
        if locked > lock_limit {
            return Err(Errno::ENOMEM);
        }
        Self::apply_vma_lock_flags_locked(&mut st, start, len, vm_flags)?;
        if len == 0 {
            return Ok(());
        }
        self.populate(cx, st, start, start + len, Gup::Mm { ignore_errors: false }, flush)
            .map_err(|e| match e {
                // __mlock_posix_error_return.
                Errno::EFAULT => Errno::ENOMEM,
                Errno::ENOMEM => Errno::EAGAIN,
                e => e,
            })
    }

    /// `munlock(start, len)`: rounding as `mlock2`; no limit and no
    /// populating; EINVAL if the range wraps, ENOMEM at an unmapped start
    /// or a hole (the VMAs before it are unlocked).
    pub fn munlock(&self, start: u64, len: u64) -> SysResult<()> {
        let len = len.wrapping_add(start & (PAGE_SIZE - 1)).wrapping_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
        let start = start & !(PAGE_SIZE - 1);
        let mut st = self.map.write();
        Self::apply_vma_lock_flags_locked(&mut st, start, len, 0)
    }

    /// `mlockall(flags)`: EINVAL for no flag, an unknown one, or
    /// MCL_ONFAULT alone; EPERM if RLIMIT_MEMLOCK is 0; with MCL_CURRENT,
    /// ENOMEM if more pages are mapped than the limit allows (`total_vm`,
    /// locked or not). MCL_FUTURE sets `def_flags` (later mmaps, brk and
    /// stacks mapped later are locked, and populated unless MCL_ONFAULT);
    /// without it `def_flags` is cleared. MCL_CURRENT locks every VMA (a
    /// split refused by the map count is ignored) and then populates all of
    /// them, ignoring errors (`mm_populate`).
    pub fn mlockall(&self, cx: &FaultCtx<'_>, flags: u32, flush: &mut PendingFlush) -> SysResult<()> {
        if flags == 0 || flags & !(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0 || flags == MCL_ONFAULT {
            return Err(Errno::EINVAL);
        }
        let mut st = self.map.write();
        let limit = st.memlock_rlimit.cur;
        if limit == 0 {
            return Err(Errno::EPERM);
        }
        if flags & MCL_CURRENT != 0 && Self::total_pages_locked(&st) > limit >> PAGE_SHIFT {
            return Err(Errno::ENOMEM);
        }
        Self::apply_mlockall_flags_locked(&mut st, flags);
        if flags & MCL_CURRENT == 0 {
            return Ok(());
        }
        self.populate(cx, st, 0, TASK_SIZE, Gup::Mm { ignore_errors: true }, flush)
    }

    /// `munlockall()`: unlock every VMA and clear `def_flags`. Never fails.
    pub fn munlockall(&self) -> SysResult<()> {
        let mut st = self.map.write();
        Self::apply_mlockall_flags_locked(&mut st, 0);
        Ok(())
    }

    /// After `mremap` returned `addr` for a mapping grown from `old_len` to
    /// `new_len` bytes: if it is locked, fault the new part in, errors
    /// ignored (Linux `mremap`'s `populate_expand` → `mm_populate`).
    pub fn populate_locked_growth(
        &self,
        cx: &FaultCtx<'_>,
        addr: u64,
        old_len: u64,
        new_len: u64,
        flush: &mut PendingFlush,
    ) {
        let round = |l: u64| l.wrapping_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
        let (old_len, new_len) = (round(old_len), round(new_len));
        if new_len <= old_len {
            return;
        }
        let st = self.map.write();
        if Self::vma_lookup(&st, addr).is_some_and(|v| v.flags.has(VmFlags::LOCKED)) {
            let _ = self.populate(
                cx,
                st,
                addr + old_len,
                addr + new_len,
                Gup::Mm { ignore_errors: true },
                flush,
            );
        }
    }

    /// Linux `apply_vma_lock_flags`: give every VMA of `[start, start + len)`
    /// (page aligned) the lock bits `lock` (`LOCKED`, `LOCKED | LOCKONFAULT`,
    /// or 0 to unlock).
    fn apply_vma_lock_flags_locked(st: &mut MapState, start: u64, len: u64, lock: u32) -> SysResult<()> {
        let end = start.wrapping_add(len);
        if end < start {
            return Err(Errno::EINVAL);
        }
        if end == start {
            return Ok(());
        }
        // The VMA containing `start`; then each next one must begin where
        // the last ended.
        let mut at = start;
        while at < end {
            let v = Self::vma_lookup(st, at).ok_or(Errno::ENOMEM)?;
            let new = (v.flags.0 & !VmFlags::LOCKED_MASK) | lock;
            let piece_end = v.end.min(end);
            Self::mlock_fixup_locked(st, at, piece_end, new)?;
            // The piece may have merged into the VMA after it.
            at = Self::vma_lookup(st, at).map_or(piece_end, |v| v.end);
        }
        Ok(())
    }

    /// Linux `mlock_fixup`: `[start, end)`, inside one VMA, gets flags
    /// `new`; a VMA whose flags already are `new`, or a droppable one (never
    /// locked, Linux 6.11), is left alone. ENOMEM if a split is refused.
    fn mlock_fixup_locked(st: &mut MapState, start: u64, end: u64, new: u32) -> SysResult<()> {
        let Some(v) = Self::vma_lookup(st, start) else {
            return Ok(());
        };
        if v.flags.0 == new || v.flags.has(VmFlags::DROPPABLE) {
            return Ok(());
        }
        Self::modify_flags_locked(st, start, end, VmFlags(new))
    }

    /// Linux `apply_mlockall_flags`.
    fn apply_mlockall_flags_locked(st: &mut MapState, flags: u32) {
        st.def_flags &= !VmFlags::LOCKED_MASK;
        let onfault = if flags & MCL_ONFAULT != 0 {
            VmFlags::LOCKONFAULT
        } else {
            0
        };
        if flags & MCL_FUTURE != 0 {
            st.def_flags |= VmFlags::LOCKED | onfault;
            if flags & MCL_CURRENT == 0 {
                return;
            }
        }
        let lock = if flags & MCL_CURRENT != 0 {
            VmFlags::LOCKED | onfault
        } else {
            0
        };
        let mut at = 0;
        while let Some(v) = st.vmas.find(at) {
            let (start, end) = (v.start, v.end);
            let new = (v.flags.0 & !VmFlags::LOCKED_MASK) | lock;
            // Errors (a refused split cannot happen for a whole VMA) are ignored.
            let _ = Self::mlock_fixup_locked(st, start, end, new);
            at = Self::vma_lookup(st, start).map_or(end, |v| v.end);
        }
    }
}

/// Pages of locked VMAs inside `[start, start + len)` (the end saturating
/// at the top of the address space). Linux: `count_mm_mlocked_page_nr`.
fn locked_in_range(st: &MapState, start: u64, len: u64) -> u64 {
    let end = start.saturating_add(len);
    let mut n = 0;
    st.vmas.for_each(&mut |v| {
        if v.flags.has(VmFlags::LOCKED) && v.start < end && v.end > start {
            n += (v.end.min(end) - v.start.max(start)) >> PAGE_SHIFT;
        }
    });
    n
}
