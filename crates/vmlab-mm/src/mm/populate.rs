//! Pre-faulting a range: the one path that MADV_POPULATE_READ/WRITE, mlock,
//! mlock2, mlockall(MCL_CURRENT), MAP_LOCKED, MAP_POPULATE and
//! mmap after mlockall(MCL_FUTURE) all take. Each page is faulted in through
//! the fault handler (`handle_fault_locked`), as GUP does; a file page that
//! must be read (`FaultError::Retry`) is read with the map lock dropped, and
//! the walk goes on from that page once the lock is taken again, as
//! `__get_user_pages` does after `VM_FAULT_RETRY`. A page that finds no
//! free frame (its fault or its read) runs direct reclaim with the map
//! lock dropped (`FaultCtx::reclaim`) and is tried again, as the page
//! allocator's slow path does under GUP.
//!
//! Linux: `faultin_page_range` (madvise) and `__mm_populate` →
//! `populate_vma_page_range` (mm/gup.c).

use super::address_space::{AddressSpace, MapState};
use super::fault::{handle_fault_locked, Access, FaultCtx, FaultError, PageRead};
use super::vma::VmFlags;
use super::vma_map::VmaMap;
use crate::addr::PAGE_SIZE;
use crate::errno::{Errno, FaultReason, SysResult};
use crate::sync::BrWriteGuard;
use crate::tlb::PendingFlush;

/// Which caller populates, which decides the access per VMA and what a hole
/// or a refused access means.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Gup {
    /// MADV_POPULATE_READ / MADV_POPULATE_WRITE (`faultin_page_range`,
    /// FOLL_MADV_POPULATE): every page as a read or a write; a hole is
    /// ENOMEM, an access the VMA does not allow EINVAL (on x86 too, a read
    /// needs PROT_READ here), a fault that would signal EFAULT, no memory
    /// ENOMEM.
    Advice { write: bool },
    /// `__mm_populate` (mlock, mlockall, mmap of locked or MAP_POPULATE
    /// memory): holes are skipped (`find_vma_intersection`);
    /// `populate_vma_page_range` skips a `VM_LOCKONFAULT` VMA, refuses an
    /// inaccessible one with EFAULT, faults a private writable VMA for write
    /// (FOLL_WRITE: breaks COW now, so a later store does not fault) and
    /// every other VMA for read (FOLL_FORCE: also write-only and exec-only
    /// ones; shared writable memory is not dirtied for nothing).
    /// `ignore_errors` (mmap's and mlockall's `mm_populate`): a failing VMA
    /// is left where it failed and the walk goes on at the next one, and the
    /// result is 0.
    Mm { ignore_errors: bool },
}

/// Why populating stopped: an errno (and the end of the VMA it came from),
/// or a page to read (from the address to go on from) with the map lock dropped.
enum Stop {
    Errno(Errno, u64),
    Read(PageRead, u64),
    /// No free frame at the first address (the end of its VMA second):
    /// reclaim with the map lock dropped, holding the page the fault kept
    /// (`FaultError::NoMemory`), then go on from there.
    NoMemory(u64, u64, Option<crate::addr::Pfn>),
}

impl AddressSpace {
    /// Fault in `[start, end)` (page aligned) as `mode` says, holding the
    /// map lock `st` (held for writing; dropped and taken again around each
    /// page read from a file), which is released on return. Translations
    /// that COW breaks invalidate go into `flush`.
    pub(crate) fn populate<'a>(
        &'a self,
        cx: &FaultCtx<'_>,
        mut st: BrWriteGuard<'a, MapState>,
        start: u64,
        end: u64,
        mode: Gup,
        flush: &mut PendingFlush,
    ) -> SysResult<()> {
        let mut at = start;
        let mut no_progress = 0;
        loop {
            match self.populate_locked(cx, &st, at, end, mode, flush) {
                Ok(()) => return Ok(()),
                Err(Stop::Errno(_, vma_end)) if mode == (Gup::Mm { ignore_errors: true }) => at = vma_end,
                Err(Stop::Errno(e, _)) => return Err(e),
                Err(Stop::NoMemory(resume, vma_end, keep)) => {
                    drop(st);
                    let freed = cx.reclaim.direct_reclaim(cx.cpu);
                    PageRead::release(cx.phys, keep);
                    st = self.map.write();
                    match Self::after_reclaim(&st, &mut no_progress, freed, resume, Some(vma_end), mode) {
                        Ok(next) => at = next,
                        Err(e) => return Err(e),
                    }
                }
                Err(Stop::Read(read, resume)) => {
                    // No I/O under the map lock: drop it, read, go on from
                    // the page that needed it (Linux's `faultin_page_range`
                    // and `__mm_populate` after VM_FAULT_RETRY look the VMA
                    // up again). A read that found no frame reclaims first.
                    drop(st);
                    let r = read
                        .read(cx.phys, cx.counters, cx.relax)
                        .map(|p| PageRead::release(cx.phys, p));
                    let freed = match &r {
                        Err(f) if f.reason == FaultReason::OutOfMemory => Some(cx.reclaim.direct_reclaim(cx.cpu)),
                        _ => None,
                    };
                    st = self.map.write();
                    if let Some(freed) = freed {
                        match Self::after_reclaim(&st, &mut no_progress, freed, resume, None, mode) {
                            Ok(next) => at = next,
                            Err(e) => return Err(e),
                        }
                        continue;
                    }
                    match r.map_err(|_| Errno::EFAULT) {
                        Ok(()) => at = resume,
                        Err(_) if mode == (Gup::Mm { ignore_errors: true }) => {
                            at = Self::vma_lookup(&st, resume).map_or(resume + PAGE_SIZE, |v| v.end);
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            if at >= end {
                return Ok(());
            }
        }
    }

    /// Where `populate` goes on after a round of direct reclaim that freed
    /// `freed` frames for the page at `resume`: that page again, until
    /// `MAX_RECLAIM_RETRIES` rounds in a row freed nothing (Linux's
    /// `should_reclaim_retry`); then ENOMEM, or past the VMA where errors
    /// are ignored. (Linux would run the OOM killer from the allocator
    /// then; vmlab runs it from faults only.)
    fn after_reclaim(
        st: &MapState,
        no_progress: &mut usize,
        freed: usize,
        resume: u64,
        vma_end: Option<u64>,
        mode: Gup,
    ) -> SysResult<u64> {
        *no_progress = if freed > 0 { 0 } else { *no_progress + 1 };
        if *no_progress < super::reclaim::MAX_RECLAIM_RETRIES {
            return Ok(resume);
        }
        if mode != (Gup::Mm { ignore_errors: true }) {
            return Err(Errno::ENOMEM);
        }
        *no_progress = 0;
        Ok(vma_end.unwrap_or_else(|| Self::vma_lookup(st, resume).map_or(resume + PAGE_SIZE, |v| v.end)))
    }

    /// One pass of `populate` from `start`, under the map lock.
    fn populate_locked(
        &self,
        cx: &FaultCtx<'_>,
        st: &MapState,
        start: u64,
        end: u64,
        mode: Gup,
        flush: &mut PendingFlush,
    ) -> Result<(), Stop> {
        let mut at = start;
        while at < end {
            let (v, write) = match mode {
                Gup::Advice { write } => {
                    let v = Self::vma_lookup(st, at).ok_or(Stop::Errno(Errno::ENOMEM, end))?;
                    if !(if write { v.prot.write() } else { v.prot.read() }) {
                        return Err(Stop::Errno(Errno::EINVAL, v.end));
                    }
                    (v, write)
                }
                Gup::Mm { .. } => {
                    // find_vma_intersection: the next VMA in the range.
                    let Some(v) = st.vmas.find(at).filter(|v| v.start < end) else {
                        return Ok(());
                    };
                    at = at.max(v.start);
                    if v.flags.has(VmFlags::LOCKONFAULT) {
                        at = v.end;
                        continue;
                    }
                    if !v.prot.accessible() {
                        return Err(Stop::Errno(Errno::EFAULT, v.end));
                    }
                    (v, v.prot.write() && !v.flags.has(VmFlags::SHARED))
                }
            };
            let access = if write { Access::Write } else { Access::Read };
            let stop = v.end.min(end);
            let vma_end = v.end;
            while at < stop {
                handle_fault_locked(cx, self, st, at, access, flush).map_err(|f| match f {
                    FaultError::NoMemory { keep, .. } => Stop::NoMemory(at, vma_end, keep),
                    FaultError::Retry(read) => Stop::Read(read, at),
                    // `at` lies inside a VMA, so the stack never needs to
                    // grow (and since 6.5 GUP never grows one anyway).
                    _ => Stop::Errno(Errno::EFAULT, vma_end),
                })?;
                at += PAGE_SIZE;
            }
        }
        Ok(())
    }
}
