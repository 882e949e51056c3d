//! `madvise`: advice about a range, with the errno Linux 6.18 (x86-64, KSM
//! and THP built in, no CONFIG_MEMORY_FAILURE) gives for every value.
//!
//! What each advice does in vmlab:
//! - MADV_DONTNEED, MADV_DONTNEED_LOCKED: zap the range. The next read of
//!   private anonymous memory is zero; of a private file mapping, the file's
//!   page again; of a shared mapping, the object's page (its contents stay).
//! - MADV_FREE (private anonymous memory only; EINVAL elsewhere, as Linux):
//!   lazily, as Linux's `madvise_free_pte_range`. Each swap entry of the
//!   range is freed at once (the slot put). Each present page mapped only
//!   here (mapcount 1; a page shared with a fork child is left, see
//!   `mark_lazyfree`), whose swap copy, if any, can be dropped, loses the
//!   dirty and accessed bits of its PTE (the translation flushed, so a
//!   store walks again and sets the dirty bit) and its `PG_DIRTY`, and is
//!   marked `PG_LAZYFREE` (vmlab's mark for Linux's anonymous folio without
//!   `PG_swapbacked`; `pglazyfree`), then `Reclaimer::lazyfree` puts it
//!   where reclaim looks next. The contents stay until reclaim: a page
//!   still clean then is dropped without swap (the next read is zero;
//!   `pglazyfreed`), one stored to since is kept, swap-backed again
//!   (`reclaim/evict.rs`). A fork-shared table over the range is copied
//!   first (EAGAIN without a frame for it).
//! - MADV_WILLNEED: private anonymous memory reads its swapped-out pages
//!   into the swap cache, not mapping them (a later access is a minor
//!   fault; `madvise_willneed` → `read_swap_cache_async`); a file mapping
//!   reads up to `READAHEAD_PAGES` of the range into the page cache
//!   (`vfs_fadvise` → `force_page_cache_ra`); shared anonymous memory
//!   reads back the pages it has out on swap into its object's cache
//!   (`shmem_swapin_range`). All after the map lock is dropped.
//! - MADV_COLD, MADV_PAGEOUT (EINVAL on locked memory, `can_madv_lru_vma`):
//!   the present pages on the LRU mapped only here, in tables of this
//!   address space's own, are deactivated (COLD: accessed bits cleared and
//!   flushed, then `Reclaimer::deactivate`) or reclaimed now (PAGEOUT:
//!   `Reclaimer::pageout`, through the shared eviction: swapped, or kept
//!   without swap; clean file pages dropped, dirty ones written back;
//!   lazily freed and droppable pages dropped), once the map lock is
//!   dropped (reclaim takes map locks itself). Linux:
//!   `madvise_cold_or_pageout_pte_range`, `reclaim_pages`.
//! - MADV_POPULATE_READ/WRITE: fault every page in now, as a read or a
//!   write (`faultin_page_range`, through `populate.rs`, the path mlock
//!   and MAP_POPULATE take too): ENOMEM at a hole, EINVAL if the VMA does
//!   not allow the access, EFAULT if a fault would signal (SIGBUS past the
//!   end of an object), ENOMEM if memory runs out.
//! - Flag advice (NORMAL, SEQUENTIAL, RANDOM, DONTFORK, DOFORK, WIPEONFORK,
//!   KEEPONFORK, DONTDUMP, DODUMP, MERGEABLE, UNMERGEABLE, HUGEPAGE,
//!   NOHUGEPAGE) changes `VmFlags` of the range, splitting and merging VMAs
//!   as any flag change does (Linux `madvise_update_vma` → `vma_modify_flags`),
//!   so `/proc/PID/maps` shows the same lines. A split refused by the map
//!   count is EAGAIN. DONTFORK (`VM_DONTCOPY`) VMAs are not inherited by
//!   fork; WIPEONFORK ones are inherited empty (`mm/fork/`). SEQ_READ and
//!   RAND_READ are read-ahead hints for the swap and file read-ahead to come.
//!   MERGEABLE is ignored (no flag) on shared mappings, as KSM does.
//! - MADV_COLLAPSE: EINVAL unless the VMA can hold an aligned 2 MiB page
//!   (`thp_vma_allowable_order`); 0 if the range holds no aligned 2 MiB
//!   block; else EINVAL: vmlab has no huge pages to collapse into (Linux's
//!   answer for memory it cannot collapse).
//!
//! - MADV_REMOVE: checks as Linux's `madvise_remove` (EINVAL on locked or
//!   private anonymous memory, EACCES unless shared and writable), then
//!   returns the hole to punch (`Removal`): Linux drops the map lock and
//!   calls `vfs_fallocate(PUNCH_HOLE | KEEP_SIZE)`, which unmaps the pages
//!   from every mapping, so `Machine::madvise` punches it once this address
//!   space's map lock is released (`Machine::punch_hole`).
//! - MADV_GUARD_INSTALL (Linux 6.13; file-backed and shared mappings since
//!   6.15): EINVAL on a locked VMA; else the VMA gets an anonymous identity
//!   (Linux `anon_vma_prepare`, so that fork copies its page tables, markers
//!   and all), tables shared with other address spaces over the range are
//!   unshared (a fork-shared table is frozen, an object table is every
//!   mapper's), the range is zapped (its data is gone) and every entry
//!   becomes the guard marker (`pte_ops::install_guard`). A load or store
//!   there is SIGSEGV with SEGV_MAPERR (`FaultReason::Guard`), after the
//!   VMA's own protection check. The VMA is neither split nor changed, so
//!   `/proc/PID/maps` shows nothing. Markers stay through MADV_DONTNEED,
//!   MADV_DONTNEED_LOCKED, MADV_FREE and mprotect, move with mremap, are
//!   copied by fork (not into a MADV_WIPEONFORK VMA), and go with munmap,
//!   exit, exec and MAP_FIXED replacement. MADV_POPULATE_* over one is EFAULT.
//!   MADV_FREE leaves markers as they are.
//! - MADV_GUARD_REMOVE: removes the markers of the range only (locked VMAs
//!   too); pages and other entries stay.
//!
//! Linux: `do_madvise`, `is_valid_madvise`, `madvise_walk_vmas`,
//! `madvise_vma_behavior`, `madvise_dontneed_free`, `madvise_free_single_vma`,
//! `madvise_cold`, `madvise_pageout`, `madvise_willneed`, `madvise_populate`,
//! `madvise_guard_install`, `madvise_guard_remove`, `is_valid_guard_vma`.

use super::address_space::{is_private_anon, AddressSpace, MapState};
use super::fault::FaultCtx;
use super::object::MemObject;
use super::populate::Gup;
use super::pte_ops;
use super::shared_pt::PD_SPAN;
use super::uapi::*;
use super::vma::{Backing, VmFlags, Vma};
use super::vma_map::VmaMap;
use crate::addr::{Pfn, PAGE_SIZE};
use crate::errno::{Errno, SysResult};
use crate::pgtable::{leaf_slot, LeafEntry, LeafRef, Level, Pte, SwapEntry};
use crate::phys::{FrameUse, PhysMem, PG_DIRTY, PG_LAZYFREE, PG_LRU, PG_SWAPCACHE};
use crate::sync::{Arc, Ordering};
use crate::tlb::PendingFlush;
use alloc::vec::Vec;

/// A hole MADV_REMOVE punches once the map lock is released: bytes
/// `[off, off + len)` of `obj`.
pub struct Removal {
    pub obj: Arc<MemObject>,
    pub off: u64,
    pub len: u64,
}

/// Whether the kernel vmlab follows knows `advice` (`madvise_behavior_valid`).
fn advice_valid(advice: u32) -> bool {
    matches!(
        advice,
        MADV_NORMAL
            | MADV_RANDOM
            | MADV_SEQUENTIAL
            | MADV_WILLNEED
            | MADV_DONTNEED
            | MADV_FREE
            | MADV_REMOVE
            | MADV_DONTFORK
            | MADV_DOFORK
            | MADV_MERGEABLE
            | MADV_UNMERGEABLE
            | MADV_HUGEPAGE
            | MADV_NOHUGEPAGE
            | MADV_DONTDUMP
            | MADV_DODUMP
            | MADV_WIPEONFORK
            | MADV_KEEPONFORK
            | MADV_COLD
            | MADV_PAGEOUT
            | MADV_POPULATE_READ
            | MADV_POPULATE_WRITE
            | MADV_DONTNEED_LOCKED
            | MADV_COLLAPSE
            | MADV_GUARD_INSTALL
            | MADV_GUARD_REMOVE
    )
}

impl AddressSpace {
    /// `madvise(start, len, advice)`. Checks in Linux's order: EINVAL for an
    /// unknown advice, an unaligned `start`, or a length that wraps; 0 for a
    /// zero length; then the advice is applied to each VMA in the range in
    /// turn, stopping at the first error; a part of the range that is not
    /// mapped gives ENOMEM at the end, the mapped parts advised all the same.
    /// Zapped and cleaned translations go into `flush`; what is to be done
    /// with the map lock released (holes to punch, pages to hand to reclaim,
    /// pages to read ahead) into `work`, which the caller carries out even
    /// if an error ends the walk after it was queued.
    pub fn madvise(
        &self,
        cx: &FaultCtx<'_>,
        start: u64,
        len_in: u64,
        advice: u32,
        flush: &mut PendingFlush,
        work: &mut AdviceWork,
    ) -> SysResult<()> {
        if !advice_valid(advice) || start & (PAGE_SIZE - 1) != 0 {
            return Err(Errno::EINVAL);
        }
        let len = len_in.wrapping_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
        if len_in != 0 && len == 0 {
            return Err(Errno::EINVAL);
        }
        let end = start.wrapping_add(len);
        if end < start {
            return Err(Errno::EINVAL);
        }
        if end == start {
            return Ok(());
        }
        let mut st = self.map.write();
        if advice == MADV_POPULATE_READ || advice == MADV_POPULATE_WRITE {
            let write = advice == MADV_POPULATE_WRITE;
            return self.populate(cx, st, start, end, Gup::Advice { write }, flush);
        }
        // madvise_walk_vmas.
        let mut at = start;
        let mut unmapped = false;
        loop {
            let Some(v) = st.vmas.find(at) else {
                return Err(Errno::ENOMEM);
            };
            if at < v.start {
                unmapped = true;
                at = v.start;
                if at >= end {
                    break;
                }
            }
            let piece_end = v.end.min(end);
            if advice == MADV_REMOVE {
                work.removes.push(remove_valid(&st, at, piece_end)?);
            } else {
                self.advise_vma_locked(cx, &mut st, at, piece_end, advice, flush, work)?;
            }
            at = piece_end;
            if at >= end {
                break;
            }
        }
        if unmapped {
            Err(Errno::ENOMEM)
        } else {
            Ok(())
        }
    }

    /// Apply `advice` to `[start, end)`, which lies in one VMA.
    /// Linux: `madvise_vma_behavior`.
    #[allow(clippy::too_many_arguments)]
    fn advise_vma_locked(
        &self,
        cx: &FaultCtx<'_>,
        st: &mut MapState,
        start: u64,
        end: u64,
        advice: u32,
        flush: &mut PendingFlush,
        work: &mut AdviceWork,
    ) -> SysResult<()> {
        let phys = cx.phys;
        let Some(v) = Self::vma_lookup(st, start) else {
            return Err(Errno::ENOMEM);
        };
        let flags = v.flags;
        let locked = flags.has(VmFlags::LOCKED);
        let mut new = flags.0;
        match advice {
            MADV_WILLNEED => {
                self.willneed_locked(cx, v, start, end, work);
                return Ok(());
            }
            MADV_COLD | MADV_PAGEOUT => {
                // can_madv_lru_vma.
                if locked {
                    return Err(Errno::EINVAL);
                }
                self.cold_or_pageout_locked(cx, start, end, advice == MADV_PAGEOUT, flush, work);
                return Ok(());
            }
            MADV_DONTNEED | MADV_DONTNEED_LOCKED | MADV_FREE => {
                // madvise_dontneed_free_valid_vma, then MADV_FREE's
                // vma_is_anonymous (a shared anonymous VMA is shmem).
                if locked && advice != MADV_DONTNEED_LOCKED {
                    return Err(Errno::EINVAL);
                }
                if advice == MADV_FREE {
                    if !is_private_anon(v) {
                        return Err(Errno::EINVAL);
                    }
                    return self.free_locked(cx, st, start, end, flush, work);
                }
                return self.zap_advised_locked(st, phys, start, end, flush);
            }
            MADV_COLLAPSE => return collapse(v, start, end),
            // is_valid_guard_vma: vmlab has no VM_SPECIAL or hugetlb
            // VMAs, so only a lock refuses (install only).
            MADV_GUARD_INSTALL if locked => return Err(Errno::EINVAL),
            MADV_GUARD_INSTALL => return self.guard_install_locked(cx, st, start, end, flush),
            MADV_GUARD_REMOVE => return self.guard_remove_locked(st, phys, start, end, flush),
            MADV_NORMAL => new &= !(VmFlags::SEQ_READ | VmFlags::RAND_READ),
            MADV_SEQUENTIAL => new = (new & !VmFlags::RAND_READ) | VmFlags::SEQ_READ,
            MADV_RANDOM => new = (new & !VmFlags::SEQ_READ) | VmFlags::RAND_READ,
            MADV_DONTFORK => new |= VmFlags::DONTCOPY,
            MADV_DOFORK => new &= !VmFlags::DONTCOPY,
            MADV_WIPEONFORK => {
                // Anonymous memory only: no file, not shared.
                if v.backing != Backing::Anon || flags.has(VmFlags::SHARED) {
                    return Err(Errno::EINVAL);
                }
                new |= VmFlags::WIPEONFORK;
            }
            // A droppable VMA stays wiped on fork and out of dumps
            // (`madvise_vma_behavior`, Linux 6.11).
            MADV_KEEPONFORK | MADV_DODUMP if flags.has(VmFlags::DROPPABLE) => return Err(Errno::EINVAL),
            MADV_KEEPONFORK => new &= !VmFlags::WIPEONFORK,
            MADV_DONTDUMP => new |= VmFlags::DONTDUMP,
            MADV_DODUMP => new &= !VmFlags::DONTDUMP,
            MADV_MERGEABLE => {
                // ksm_madvise: shared mappings are not KSM compatible; the
                // advice is accepted and ignored.
                if flags.0 & (VmFlags::SHARED | VmFlags::MAYSHARE) == 0 {
                    new |= VmFlags::MERGEABLE;
                }
            }
            MADV_UNMERGEABLE => new &= !VmFlags::MERGEABLE,
            MADV_HUGEPAGE => new = (new & !VmFlags::NOHUGEPAGE) | VmFlags::HUGEPAGE,
            MADV_NOHUGEPAGE => new = (new & !VmFlags::HUGEPAGE) | VmFlags::NOHUGEPAGE,
            _ => return Err(Errno::EINVAL),
        }
        // madvise_update_vma: a refused split is ENOMEM, which madvise
        // reports as EAGAIN ("a kernel resource was temporarily unavailable").
        Self::modify_flags_locked(st, start, end, VmFlags(new)).map_err(|e| {
            if e == Errno::ENOMEM {
                Errno::EAGAIN
            } else {
                e
            }
        })
    }

    /// MADV_FREE on `[start, end)` of a private anonymous VMA (see the
    /// module doc). A fork-shared table over the range is copied first
    /// (its pages are then mapped twice, so left alone); EAGAIN if no frame
    /// is free for the copy. Linux: `madvise_free_single_vma`,
    /// `madvise_free_pte_range`.
    fn free_locked(
        &self,
        cx: &FaultCtx<'_>,
        st: &MapState,
        start: u64,
        end: u64,
        flush: &mut PendingFlush,
        work: &mut AdviceWork,
    ) -> SysResult<()> {
        let phys = cx.phys;
        self.unshare_range_locked(st, phys, start, end, flush)
            .map_err(|_| Errno::EAGAIN)?;
        let rss = self.counts_on(cx.cpu);
        self.page_table().for_each_leaf(phys, start, end, |va, e| {
            let cur = e.load();
            if cur.locked() {
                return;
            }
            match cur.decode() {
                // free_swap_and_cache: the slot's data is not wanted.
                LeafEntry::Swap(_) => {
                    pte_ops::clear(phys, rss, e, va, flush);
                }
                LeafEntry::Present(_) | LeafEntry::ProtNone(_) if !cur.special() => {
                    if let Some(pfn) = mark_lazyfree(cx, e, va, cur, flush) {
                        work.lazyfree.push(pfn);
                    }
                }
                _ => {}
            }
        });
        Ok(())
    }

    /// MADV_COLD (`pageout` false) or MADV_PAGEOUT on `[start, end)`, which
    /// lies in one VMA that is not locked: the pages on the LRU that only
    /// this mapping maps (mapcount 1, in a table of this address space's
    /// own: a fork-shared or object table is every sharer's) are queued
    /// for `Reclaimer::deactivate`, their accessed bits cleared first (the
    /// translations flushed: a TLB hit sets no bit), or for
    /// `Reclaimer::pageout`, each with a reference. Swap entries and the
    /// zero page are skipped. Linux: `madvise_cold_or_pageout_pte_range`
    /// (`folio_mapcount != folio_nr_pages` skips, `!folio_test_lru` skips;
    /// as the file's owner, vmlab's caller may page out file pages).
    fn cold_or_pageout_locked(
        &self,
        cx: &FaultCtx<'_>,
        start: u64,
        end: u64,
        pageout: bool,
        flush: &mut PendingFlush,
        work: &mut AdviceWork,
    ) {
        let phys = cx.phys;
        let lists = phys.lru().lists() > 0;
        self.for_each_private_leaf(phys, start, end, |va, e| {
            let cur = e.load();
            if cur.locked() || !cur.maps_frame() || cur.special() {
                return;
            }
            let pfn = cur.pfn();
            let Some(d) = phys.desc(pfn) else { return };
            if !matches!(d.usage(), FrameUse::Anon | FrameUse::PageCache) || d.mapcount() != 1 {
                return;
            }
            if lists && d.flags.load(Ordering::Acquire) & PG_LRU == 0 {
                return;
            }
            if !pageout {
                pte_ops::update(e, va, Some(flush), |p| p.accessed().then(|| p.without(Pte::ACCESSED)));
            }
            if !d.try_get() {
                return;
            }
            if pageout {
                work.pageout.push(pfn);
            } else {
                work.deactivate.push(pfn);
            }
        });
    }

    /// MADV_WILLNEED on `[start, end)` of `v`: private anonymous memory
    /// queues its swap entries' slots to be read into the swap cache, not
    /// mapped (Linux `madvise_willneed` → `swapin_walk_pmd_entry` →
    /// `read_swap_cache_async`); a file mapping queues the range's pages
    /// to be read into the page cache, at most `READAHEAD_PAGES` of them
    /// (Linux `vfs_fadvise(POSIX_FADV_WILLNEED)` →
    /// `force_page_cache_readahead`, capped at the read-ahead window).
    /// Shared anonymous memory queues the pages it has out on swap (Linux
    /// `shmem_swapin_range`), which its object reads back into its cache.
    fn willneed_locked(&self, cx: &FaultCtx<'_>, v: &Vma, start: u64, end: u64, work: &mut AdviceWork) {
        match &v.backing {
            Backing::Anon => {
                if cx.swap.is_none() {
                    return;
                }
                self.page_table().for_each_leaf(cx.phys, start, end, |_, e| {
                    if let LeafEntry::Swap(se) = e.load().decode() {
                        work.swapin.push(se);
                    }
                });
            }
            Backing::Object(o) if o.is_file() => {
                let first = v.pgoff_of(start);
                let pages = ((end - start) / PAGE_SIZE).min(READAHEAD_PAGES);
                work.readahead.push((o.clone(), first, first + pages));
            }
            // Shared anonymous memory reads back the pages it has out on
            // swap, and only those (Linux `shmem_swapin_range`): a hole
            // stays a hole.
            Backing::Object(o) => {
                for pg in v.pgoff_of(start)..v.pgoff_of(end) {
                    if o.is_swapped(pg) {
                        work.readahead.push((o.clone(), pg, pg + 1));
                    }
                }
            }
        }
    }

    /// Call `f` for every leaf entry of `[start, end)` in a table of this
    /// address space's own (fork-shared `TABLE_COW` and object `TABLE_OBJ`
    /// tables are skipped: their entries are every sharer's).
    fn for_each_private_leaf<'a>(&self, phys: &'a PhysMem, start: u64, end: u64, mut f: impl FnMut(u64, LeafRef<'a>)) {
        self.page_table().for_each_pd_entry(phys, start, end, |span, pe| {
            let pd = Pte(pe.load(Ordering::Acquire));
            if !pd.present() || pd.0 & (Pte::TABLE_COW | Pte::TABLE_OBJ) != 0 {
                return;
            }
            let mut va = start.max(span);
            let hi = end.min(span + PD_SPAN);
            while va < hi {
                if let Some(e) = leaf_slot(phys, pd.pfn(), Level::Pt.index(va)) {
                    f(va, e);
                }
                va += PAGE_SIZE;
            }
        });
    }

    /// MADV_DONTNEED: clear every PTE of
    /// `[start, end)`. A table shared with other address spaces over a whole
    /// 2 MiB span inside the range is simply left (they keep it); one the
    /// range covers in part is copied first. Empty tables are freed (Linux
    /// `zap_page_range_single` with `reclaim_pt`). EAGAIN if no frame is free
    /// for such a copy.
    pub(crate) fn zap_advised_locked(
        &self,
        st: &MapState,
        phys: &PhysMem,
        start: u64,
        end: u64,
        flush: &mut PendingFlush,
    ) -> SysResult<()> {
        let inner_start = start.checked_add(PD_SPAN - 1).map_or(end, |s| s & !(PD_SPAN - 1));
        let inner_end = end & !(PD_SPAN - 1);
        let unshare = |a: u64, b: u64, flush: &mut PendingFlush| {
            self.unshare_range_locked(st, phys, a, b, flush)
                .map_err(|_| Errno::EAGAIN)
        };
        if inner_start < inner_end {
            // A shared table holding guard markers is copied, not left: the
            // markers must stay in this address space.
            let mut guarded: Vec<u64> = Vec::new();
            self.page_table()
                .for_each_pd_entry(phys, inner_start, inner_end, |span, pe| {
                    let v = Pte(pe.load(Ordering::Acquire));
                    if v.0 & Pte::TABLE_COW != 0 && table_has_guard(phys, v) {
                        guarded.push(span);
                    }
                });
            for span in guarded {
                unshare(span, span + PD_SPAN, flush)?;
            }
            self.detach_shared_tables_locked(st, phys, inner_start, inner_end, flush);
            unshare(start, inner_start, flush)?;
            unshare(inner_end, end, flush)?;
        } else {
            unshare(start, end, flush)?;
        }
        self.zap_range_keeping_guards(phys, start, end, flush);
        self.page_table().prune(phys, start, end);
        Ok(())
    }

    /// MADV_GUARD_INSTALL on `[start, end)`, which lies in one VMA that
    /// accepts it (see the module doc). ENOMEM if a page-table page (or a
    /// private copy of a shared table) cannot be had; the markers already
    /// written stay, as Linux's do. Linux: `madvise_guard_install`.
    fn guard_install_locked(
        &self,
        cx: &FaultCtx<'_>,
        st: &MapState,
        start: u64,
        end: u64,
        flush: &mut PendingFlush,
    ) -> SysResult<()> {
        let phys = cx.phys;
        let v = Self::vma_lookup(st, start).ok_or(Errno::ENOMEM)?;
        // The range is no longer empty as page tables go: fork must copy it.
        AddressSpace::prepare_anon_locked(st, v, cx.ids, self.id);
        self.unshare_range_locked(st, phys, start, end, flush)
            .map_err(|_| Errno::ENOMEM)?;
        // Installing replaces whatever is mapped: the data is gone.
        self.zap_range_keeping_guards(phys, start, end, flush);
        let mut at = start;
        while at < end {
            let (_, e) = self.page_table().leaf_alloc_in(phys, at).map_err(|_| Errno::ENOMEM)?;
            let cur = e.load();
            // Under the write lock nothing else fills the entry: it is none
            // (zapped) or already a marker.
            if cur.is_none() {
                pte_ops::install_guard(e, cur);
            }
            at += PAGE_SIZE;
        }
        Ok(())
    }

    /// MADV_GUARD_REMOVE on `[start, end)`: clear the guard markers there,
    /// nothing else. A shared table holding one is unshared first (it is
    /// frozen). Linux: `madvise_guard_remove`.
    fn guard_remove_locked(
        &self,
        st: &MapState,
        phys: &PhysMem,
        start: u64,
        end: u64,
        flush: &mut PendingFlush,
    ) -> SysResult<()> {
        let mut any = false;
        self.page_table().for_each_leaf(phys, start, end, |_, e| {
            any |= e.load().decode() == LeafEntry::Guard;
        });
        if !any {
            return Ok(());
        }
        self.unshare_range_locked(st, phys, start, end, flush)
            .map_err(|_| Errno::ENOMEM)?;
        self.page_table().for_each_leaf(phys, start, end, |_, e| {
            pte_ops::remove_guard(e);
        });
        Ok(())
    }
}

/// Pages MADV_WILLNEED reads ahead of a file mapping at most: Linux's
/// default read-ahead window (`VM_READAHEAD_PAGES`, 128 KiB), the cap of
/// `force_page_cache_ra`.
pub const READAHEAD_PAGES: u64 = 32;

/// What an advice leaves for the caller to do once the map lock is
/// released (every page listed carries a reference for it to drop).
#[derive(Default)]
pub struct AdviceWork {
    /// Holes MADV_REMOVE punches, in order.
    pub removes: Vec<Removal>,
    /// Pages MADV_FREE made lazily freeable (`Reclaimer::lazyfree`).
    pub lazyfree: Vec<Pfn>,
    /// Pages MADV_COLD deactivates (`Reclaimer::deactivate`).
    pub deactivate: Vec<Pfn>,
    /// Pages MADV_PAGEOUT reclaims now (`Reclaimer::pageout`).
    pub pageout: Vec<Pfn>,
    /// Swap slots MADV_WILLNEED reads into the swap cache.
    pub swapin: Vec<SwapEntry>,
    /// File pages MADV_WILLNEED reads into the page cache: the object and
    /// the page offsets `[first, end)`.
    pub readahead: Vec<(Arc<MemObject>, u64, u64)>,
}

/// MADV_FREE on one present entry `e` (`[va]`) holding `cur`, of a private
/// anonymous VMA: a page mapped only here loses its swap copy (if the slot
/// is the cache's alone; else it is left), its entry's dirty and accessed
/// bits (into `flush`: a CPU caching it writable must walk again to set
/// the dirty bit at its next store) and its `PG_DIRTY`, and becomes
/// `PG_LAZYFREE` (vmlab's mark for Linux's clean anonymous folio without
/// `PG_swapbacked`), counted in `pglazyfree` the first time. Returns it
/// with a reference for `Reclaimer::lazyfree`.
///
/// A page mapped more than once (shared with a fork child) is skipped:
/// Linux checks the mapcount only of a dirty or swap-cache folio and
/// counts on the other mapping's dirty PTE to save a clean shared one at
/// reclaim; vmlab's reclaim drops a lazily freed page from every mapping
/// at once, so every shared page is left. Linux: `madvise_free_pte_range`,
/// `folio_mark_lazyfree`.
fn mark_lazyfree(cx: &FaultCtx<'_>, e: LeafRef<'_>, va: u64, cur: Pte, flush: &mut PendingFlush) -> Option<Pfn> {
    let phys = cx.phys;
    let pfn = cur.pfn();
    let d = phys.desc(pfn)?;
    if d.usage() != FrameUse::Anon || d.mapcount() != 1 {
        return None;
    }
    if d.flags.load(Ordering::Acquire) & PG_SWAPCACHE != 0 {
        // folio_free_swap: only if no swap entry names the slot.
        if let Some(swap) = cx.swap {
            super::swap_cache::free_swap_if_exclusive(swap, phys, pfn);
        }
        if d.flags.load(Ordering::Acquire) & PG_SWAPCACHE != 0 {
            return None;
        }
    }
    pte_ops::update(e, va, Some(flush), |p| {
        (p.0 & (Pte::DIRTY | Pte::ACCESSED) != 0).then(|| p.without(Pte::DIRTY | Pte::ACCESSED))
    });
    d.flags.fetch_and(!PG_DIRTY, Ordering::AcqRel);
    if d.flags.fetch_or(PG_LAZYFREE, Ordering::AcqRel) & PG_LAZYFREE == 0 {
        cx.counters.pglazyfree.fetch_add(1, Ordering::Relaxed);
    }
    d.try_get().then_some(pfn)
}

/// MADV_REMOVE's checks on `[start, end)`, which lies in one VMA, and the
/// hole it punches. Linux: `madvise_remove` (VM_LOCKED EINVAL, no file
/// EINVAL, not `vma_is_shared_maywrite` EACCES; the file offset from pgoff).
fn remove_valid(st: &MapState, start: u64, end: u64) -> SysResult<Removal> {
    let v = AddressSpace::vma_lookup(st, start).ok_or(Errno::ENOMEM)?;
    if v.flags.has(VmFlags::LOCKED) {
        return Err(Errno::EINVAL);
    }
    match &v.backing {
        Backing::Anon => Err(Errno::EINVAL),
        // VM_SHARED implies VM_MAYWRITE here: a read-only file gets neither.
        Backing::Object(_) if !v.flags.has(VmFlags::SHARED) => Err(Errno::EACCES),
        Backing::Object(o) => Ok(Removal {
            obj: o.clone(),
            off: v.pgoff_of(start) << crate::addr::PAGE_SHIFT,
            len: end - start,
        }),
    }
}

/// Whether the leaf table behind PD entry `pd` holds a guard marker.
fn table_has_guard(phys: &PhysMem, pd: Pte) -> bool {
    (0..512).any(|i| leaf_slot(phys, pd.pfn(), i).is_some_and(|e| e.load().decode() == LeafEntry::Guard))
}

/// MADV_COLLAPSE on `[start, end)` of `v` (see the module doc).
/// Linux: `madvise_collapse`, `thp_vma_allowable_order`.
fn collapse(v: &Vma, start: u64, end: u64) -> SysResult<()> {
    let pages_per_huge = PD_SPAN / PAGE_SIZE;
    // thp_vma_suitable_order at the VMA's last aligned huge page; a file or
    // shared VMA must also be aligned in its object.
    let fits = v.end >= PD_SPAN && (v.end - PD_SPAN) & !(PD_SPAN - 1) >= v.start;
    let aligned = is_private_anon(v) || ((v.start / PAGE_SIZE).wrapping_sub(v.pgoff)).is_multiple_of(pages_per_huge);
    if !fits || !aligned || v.flags.has(VmFlags::NOHUGEPAGE) {
        return Err(Errno::EINVAL);
    }
    let hstart = start.checked_add(PD_SPAN - 1).map_or(u64::MAX, |s| s & !(PD_SPAN - 1));
    let hend = end & !(PD_SPAN - 1);
    if hstart >= hend {
        Ok(())
    } else {
        Err(Errno::EINVAL)
    }
}
