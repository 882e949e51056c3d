//! `mremap`: shrink in place, grow in place, grow by moving
//! (MREMAP_MAYMOVE), move to a fixed address (MREMAP_FIXED; a move that
//! keeps the length may cover several VMAs), and move leaving the old range
//! mapped (MREMAP_DONTUNMAP).
//!
//! A move moves page-table entries, never data (Linux `move_page_tables`):
//! frames keep their mapcounts and their COW state, the page cache keeps its
//! pages, and a moved VMA keeps its page offset and anonymous identity (so it
//! merges again where it came from, and nowhere its offset does not
//! continue). An anonymous VMA with no anonymous identity yet has nothing to
//! keep: it takes the page offset of its new address (`copy_vma`), as a new
//! mapping there would. Shared page tables over either range are unshared
//! first, so other address spaces never see the move.
//!
//! Linux 6.18: `SYSCALL_DEFINE5(mremap)` → `do_mremap`, `check_mremap_params`,
//! `check_prep_vma`, `remap_move`, `mremap_to`, `mremap_at`, `expand_vma`,
//! `move_vma`, `copy_vma`, `dontunmap_complete`, `unmap_source_vma`.

use super::address_space::{is_private_anon, AddressSpace, MapState};
use super::mmap::get_unmapped_area;
use super::pte_ops;
use super::shared_pt::PD_SPAN;
use super::uapi::{MAP_FIXED, MAP_SHARED, MREMAP_DONTUNMAP, MREMAP_FIXED, MREMAP_MAYMOVE};
use super::vma::{VmFlags, Vma};
use super::vma_map::VmaMap;
use crate::addr::{PAGE_SHIFT, PAGE_SIZE, TASK_SIZE};
use crate::errno::{Errno, SysResult};
use crate::phys::PhysMem;
use crate::sync::Ordering;
use crate::tlb::PendingFlush;

/// One remap request (Linux `struct vma_remap_struct`), lengths page aligned.
#[derive(Copy, Clone, Debug)]
struct Remap {
    addr: u64,
    old_len: u64,
    new_len: u64,
    flags: u32,
    new_addr: u64,
}

/// `PAGE_ALIGN` with C's unsigned wrap-around (a length within a page of
/// `u64::MAX` becomes 0).
fn page_align(len: u64) -> u64 {
    len.wrapping_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1)
}

impl Remap {
    fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    /// A new address is certain (`vrm_implies_new_addr`).
    fn implies_new_addr(&self) -> bool {
        self.has(MREMAP_FIXED | MREMAP_DONTUNMAP)
    }

    /// A move to a fixed address keeping the length, which may span several
    /// VMAs (`vrm_move_only`).
    fn move_only(&self) -> bool {
        self.has(MREMAP_FIXED) && self.old_len == self.new_len
    }

    /// Linux `check_mremap_params`: every check that needs no VMA, EINVAL.
    fn check_params(&self) -> SysResult<()> {
        if self.flags & !(MREMAP_FIXED | MREMAP_MAYMOVE | MREMAP_DONTUNMAP) != 0
            || self.addr & (PAGE_SIZE - 1) != 0
            || self.new_len == 0
            || self.new_len > TASK_SIZE
        {
            return Err(Errno::EINVAL);
        }
        if !self.implies_new_addr() {
            return Ok(());
        }
        if self.new_addr > TASK_SIZE - self.new_len
            || self.new_addr & (PAGE_SIZE - 1) != 0
            || !self.has(MREMAP_MAYMOVE)
            || (self.has(MREMAP_DONTUNMAP) && self.old_len != self.new_len)
        {
            return Err(Errno::EINVAL);
        }
        // The two ranges overlap (`vrm_overlaps`, unsigned arithmetic as in C).
        let end_old = self.addr.wrapping_add(self.old_len);
        let end_new = self.new_addr + self.new_len;
        if end_old > self.new_addr && end_new > self.addr {
            return Err(Errno::EINVAL);
        }
        Ok(())
    }

    /// Linux `check_prep_vma` for the VMA `v` holding `addr`: what needs the
    /// VMA, checked before anything changes.
    fn check_vma(&self, st: &MapState, v: &Vma) -> SysResult<()> {
        if self.new_len <= self.old_len && !self.implies_new_addr() {
            // Shrinking or keeping the size in place maps nothing new: the
            // old range may even run past the VMA.
            return Ok(());
        }
        if self.old_len == 0 && v.flags.0 & (VmFlags::SHARED | VmFlags::MAYSHARE) == 0 {
            // "Duplicating" a private mapping would make an unrelated one.
            return Err(Errno::EINVAL);
        }
        // A shrink may cross VMAs for the part it unmaps; what stays may not.
        let old = self.old_len.min(self.new_len);
        if old > v.end - self.addr {
            return Err(Errno::EFAULT);
        }
        if self.new_len == old {
            return Ok(());
        }
        let pgoff = v.pgoff_of(self.addr);
        if pgoff.wrapping_add(self.new_len >> PAGE_SHIFT) < pgoff {
            return Err(Errno::EINVAL);
        }
        // No VM_DONTEXPAND/VM_PFNMAP VMAs in vmlab. A locked VMA may not
        // grow past RLIMIT_MEMLOCK (the caller populates the growth).
        // No RLIMIT_AS in vmlab (`may_expand_vm`).
        if !AddressSpace::mlock_future_ok(st, v.flags.0, self.new_len - old) {
            return Err(Errno::EAGAIN);
        }
        Ok(())
    }
}

impl AddressSpace {
    /// `mremap(addr, old_len, new_len, flags, new_addr)`: the (possibly new)
    /// address of the mapping. Unmapped or moved-away translations go into
    /// `flush`. Errors as Linux 6.18: EINVAL for unknown flags, an unaligned
    /// `addr` or `new_addr`, a zero or too large `new_len`, FIXED or
    /// DONTUNMAP without MAYMOVE, DONTUNMAP with a length change,
    /// overlapping old and new ranges, or `old_len` 0 on a private mapping;
    /// EFAULT if `addr` is not mapped or the range to keep crosses the end of
    /// its VMA; ENOMEM if growing in place is blocked without MAYMOVE, no
    /// room is left, the map count is too close to its limit, or the commit
    /// limit refuses the growth.
    #[allow(clippy::too_many_arguments)]
    pub fn mremap(
        &self,
        phys: &PhysMem,
        addr: u64,
        old_len: u64,
        new_len: u64,
        flags: u32,
        new_addr: u64,
        flush: &mut PendingFlush,
    ) -> SysResult<u64> {
        let r = Remap {
            addr,
            old_len: page_align(old_len),
            new_len: page_align(new_len),
            flags,
            new_addr,
        };
        r.check_params()?;
        let mut st = self.map.write();
        // A move may split the VMAs at both ends of both ranges: Linux wants
        // headroom first (`map_count + 2 >= max_map_count - 3` is refused).
        if r.implies_new_addr() && st.vmas.len() as i64 + 2 >= st.max_map_count as i64 - 3 {
            return Err(Errno::ENOMEM);
        }
        if r.move_only() {
            return self.remap_move_locked(&mut st, phys, r, flush);
        }
        let v = Self::vma_lookup(&st, r.addr).ok_or(Errno::EFAULT)?;
        r.check_vma(&st, v)?;
        let delta = r.old_len.abs_diff(r.new_len);
        if r.implies_new_addr() {
            self.mremap_to_locked(&mut st, phys, r, delta, flush)
        } else {
            self.mremap_at_locked(&mut st, phys, r, delta, flush)
        }
    }

    /// A fixed move keeping the length: every VMA in `[addr, addr+len)` is
    /// moved (split as needed), each to the same offset from `new_addr`, so
    /// the gaps between them stay; the gaps in the target are left as they
    /// are. The range must start in a VMA (EFAULT). A failure leaves the
    /// VMAs before it moved. Linux: `remap_move`.
    fn remap_move_locked(
        &self,
        st: &mut MapState,
        phys: &PhysMem,
        r: Remap,
        flush: &mut PendingFlush,
    ) -> SysResult<u64> {
        let start = r.addr;
        let end = r.addr.wrapping_add(r.old_len);
        let mut cur = start;
        let mut first = None;
        while cur < end {
            let Some(v) = st.vmas.find(cur).filter(|v| v.start < end) else {
                break;
            };
            if first.is_none() && start < v.start {
                return Err(Errno::EFAULT);
            }
            let (a, e) = (v.start.max(cur), v.end.min(end));
            let piece = Remap {
                addr: a,
                old_len: e - a,
                new_len: e - a,
                flags: r.flags,
                new_addr: r.new_addr + (a - start),
            };
            // `check_prep_vma` cannot fail for a piece inside its VMA.
            let got = self.mremap_to_locked(st, phys, piece, 0, flush)?;
            first.get_or_insert(got);
            cur = e;
        }
        first.ok_or(Errno::EFAULT)
    }

    /// Resize without a new address. Linux: `mremap_at`.
    fn mremap_at_locked(
        &self,
        st: &mut MapState,
        phys: &PhysMem,
        r: Remap,
        delta: u64,
        flush: &mut PendingFlush,
    ) -> SysResult<u64> {
        match r.new_len.cmp(&r.old_len) {
            core::cmp::Ordering::Equal => Ok(r.addr),
            core::cmp::Ordering::Less => {
                self.shrink_locked(st, phys, r, flush)?;
                Ok(r.addr)
            }
            core::cmp::Ordering::Greater => self.expand_locked(st, phys, r, delta, flush),
        }
    }

    /// Unmap `[addr + new_len, addr + old_len)`, across VMAs and holes.
    /// Linux: `shrink_vma` → `do_vmi_munmap`.
    fn shrink_locked(&self, st: &mut MapState, phys: &PhysMem, r: Remap, flush: &mut PendingFlush) -> SysResult<()> {
        let start = r.addr + r.new_len;
        let end = Self::check_unmap_range(start, r.old_len - r.new_len)?;
        self.unmap_locked(st, phys, start, end, flush)
    }

    /// Grow: in place if the range ends where its VMA does and the space
    /// after it is free (merging with the next VMA if it can), else move if
    /// allowed. Linux: `expand_vma`, `vma_expandable`, `vma_merge_extend`.
    fn expand_locked(
        &self,
        st: &mut MapState,
        phys: &PhysMem,
        r: Remap,
        delta: u64,
        flush: &mut PendingFlush,
    ) -> SysResult<u64> {
        let v = Self::vma_lookup(st, r.addr).ok_or(Errno::EFAULT)?;
        let (vstart, vend) = (v.start, v.end);
        let mayshare = v.flags.has(VmFlags::MAYSHARE);
        if vend - r.addr == r.old_len && expandable(st, vstart, vend, delta) {
            charge(st, v, delta >> PAGE_SHIFT)?;
            if let Some(v) = st.vmas.find_mut(r.addr) {
                v.end = vend + delta;
            }
            Self::merge_range_locked(st, vstart, vend + delta);
            return Ok(r.addr);
        }
        if r.flags & MREMAP_MAYMOVE == 0 {
            return Err(Errno::ENOMEM);
        }
        let map_flags = if mayshare { MAP_SHARED } else { 0 };
        let new_addr = get_unmapped_area(st, 0, r.new_len, map_flags)?;
        self.move_vma_locked(st, phys, Remap { new_addr, ..r }, delta, flush)
    }

    /// To a new address that is fixed (the target is unmapped first) or,
    /// with DONTUNMAP alone, a hint. Linux: `mremap_to`.
    fn mremap_to_locked(
        &self,
        st: &mut MapState,
        phys: &PhysMem,
        mut r: Remap,
        delta: u64,
        flush: &mut PendingFlush,
    ) -> SysResult<u64> {
        let fixed = r.flags & MREMAP_FIXED != 0;
        if fixed {
            self.unmap_locked(st, phys, r.new_addr, r.new_addr + r.new_len, flush)?;
            Self::vma_lookup(st, r.addr).ok_or(Errno::EFAULT)?;
        }
        if r.new_len < r.old_len {
            self.shrink_locked(st, phys, r, flush)?;
            r.old_len = r.new_len;
            Self::vma_lookup(st, r.addr).ok_or(Errno::EFAULT)?;
        }
        let mayshare = Self::vma_lookup(st, r.addr).is_some_and(|v| v.flags.has(VmFlags::MAYSHARE));
        let mut map_flags = if mayshare { MAP_SHARED } else { 0 };
        if fixed {
            map_flags |= MAP_FIXED;
        }
        r.new_addr = get_unmapped_area(st, r.new_addr, r.new_len, map_flags)?;
        self.move_vma_locked(st, phys, r, delta, flush)
    }

    /// Move `[addr, addr+old_len)` (inside one VMA) to the free range
    /// `[new_addr, new_addr+new_len)`: a copy of the VMA there (merged with
    /// its new neighbours if Linux would), its page-table entries moved, then
    /// the old range unmapped — or, with DONTUNMAP, left mapped and empty.
    /// Linux: `move_vma` → `copy_vma_and_data`, `dontunmap_complete`,
    /// `unmap_source_vma`.
    fn move_vma_locked(
        &self,
        st: &mut MapState,
        phys: &PhysMem,
        r: Remap,
        delta: u64,
        flush: &mut PendingFlush,
    ) -> SysResult<u64> {
        // Linux `prep_move_vma`: room for the copy and the splits to come.
        if st.vmas.len() as i64 >= st.max_map_count as i64 - 3 {
            return Err(Errno::ENOMEM);
        }
        let src = Self::vma_lookup(st, r.addr).ok_or(Errno::EFAULT)?.clone();
        let dontunmap = r.flags & MREMAP_DONTUNMAP != 0;
        // Linux `vrm_calc_charge`: the growth, or all of it if the old range stays.
        let charged = if dontunmap { r.new_len } else { delta };
        charge(st, &src, charged >> PAGE_SHIFT)?;
        let (old_end, new_end) = (r.addr + r.old_len, r.new_addr + r.new_len);
        // Other address spaces sharing a table over either range keep theirs.
        self.unshare_range_locked(st, phys, r.addr, old_end, flush)
            .map_err(|_| Errno::ENOMEM)?;
        self.unshare_range_locked(st, phys, r.new_addr, new_end, flush)
            .map_err(|_| Errno::ENOMEM)?;
        // Every table the entries go to, before anything changes, so the move
        // cannot fail half way (Linux moves the entries back instead).
        if !self.prepare_target_tables(phys, r.addr, r.old_len, r.new_addr) {
            self.prune_tables_locked(st, phys, r.new_addr, new_end);
            return Err(Errno::ENOMEM);
        }
        // copy_vma: same flags, backing and identity; the offset of the page
        // at `addr`, unless the VMA is anonymous and has never had a page.
        let mut nv = src.clone();
        nv.start = r.new_addr;
        nv.end = new_end;
        nv.pgoff = src.pgoff_of(r.addr);
        if is_private_anon(&src) && src.anon_id() == 0 {
            nv.pgoff = r.new_addr >> PAGE_SHIFT;
        }
        st.vmas.insert(nv);
        Self::merge_range_locked(st, r.new_addr, new_end);
        self.move_ptes(phys, r.addr, r.new_addr, r.old_len, flush);
        if dontunmap {
            // dontunmap_complete: the old VMA (whole, not split) is no longer
            // locked; if all of it moved, its pages went with the identity.
            if let Some(v) = st.vmas.find_mut(r.addr).filter(|v| v.start <= r.addr) {
                v.flags.0 &= !VmFlags::LOCKED_MASK;
                if v.start == r.addr && v.end == old_end {
                    v.anon.store(0, Ordering::Release);
                    v.anon_forked = false;
                }
            }
            self.prune_tables_locked(st, phys, r.addr, old_end);
        } else if r.old_len != 0 {
            // unmap_source_vma: if the split is refused, the old range just
            // stays mapped (and empty), as in Linux.
            let _ = self.unmap_locked(st, phys, r.addr, old_end, flush);
        }
        Ok(r.new_addr)
    }

    /// Allocate the leaf tables of `[new, new+len)` that entries of
    /// `[old, old+len)` will move into. False if a frame ran out.
    fn prepare_target_tables(&self, phys: &PhysMem, old: u64, len: u64, new: u64) -> bool {
        let pt = self.page_table();
        let mut spans = alloc::vec::Vec::new();
        pt.for_each_pd_entry(phys, old, old + len, |span, _| spans.push(span));
        for span in spans {
            let (a, b) = (span.max(old), (span + PD_SPAN).min(old + len));
            let mut t = (new + (a - old)) & !(PD_SPAN - 1);
            while t < new + (b - old) {
                if pt.leaf_table_alloc(phys, t).is_err() {
                    return false;
                }
                t += PD_SPAN;
            }
        }
        true
    }

    /// Move every entry of `[old, old+len)` to the same offset from `new`.
    /// The map lock is held for writing, so no fault races; a CPU still
    /// caching an old translation reaches the same frame until `flush` is
    /// shot down. Linux: `move_page_tables` → `move_ptes`.
    fn move_ptes(&self, phys: &PhysMem, old: u64, new: u64, len: u64, flush: &mut PendingFlush) {
        let pt = self.page_table();
        pt.for_each_leaf(phys, old, old + len, |va, e| {
            if e.load().is_none() {
                return;
            }
            // The table was allocated by `prepare_target_tables`.
            let Ok(dst) = pt.leaf_alloc(phys, new + (va - old)) else {
                return;
            };
            pte_ops::move_to(phys, e, va, dst, flush);
        });
    }
}

/// Whether the VMA `[start, end)` can grow by `delta` in place: no overflow,
/// nothing mapped in the way, and the whole would be a valid fixed mapping.
/// Linux: `vma_expandable`.
fn expandable(st: &MapState, start: u64, end: u64, delta: u64) -> bool {
    let Some(new_end) = end.checked_add(delta) else {
        return false;
    };
    st.vmas.starts_in(end, new_end).is_empty() && get_unmapped_area(st, start, new_end - start, MAP_FIXED).is_ok()
}

/// Linux's overcommit heuristic for `pages` more of an accounted VMA
/// (`vrm_calc_charge` → `security_vm_enough_memory_mm`).
fn charge(st: &MapState, v: &Vma, pages: u64) -> SysResult<()> {
    if v.flags.has(VmFlags::ACCOUNT) && pages > st.commit_limit_pages {
        return Err(Errno::ENOMEM);
    }
    Ok(())
}
