//! `mincore`: which pages of a range are resident. Linux 6.18: `sys_mincore`,
//! `do_mincore`, `mincore_pte_range`, `__mincore_unmapped_range`,
//! `mincore_page`, `mincore_swap` (mm/mincore.c).
//!
//! Order of the checks, as `sys_mincore`: EINVAL for an unaligned `addr`;
//! ENOMEM unless `addr + len` neither wraps nor passes `TASK_SIZE`
//! (`access_ok`, on the length before rounding); then `len` is rounded up
//! to pages, and a length of 0 returns an empty vector whatever is mapped.
//! The range is walked VMA by VMA (`do_mincore`); the first address not in a
//! VMA is ENOMEM. Linux has by then copied the bytes of the VMAs before the
//! hole to the user's vector; vmlab returns only the errno. EFAULT for a bad
//! vector cannot happen: the vector is the return value.
//!
//! A page is resident (bit 0 set) when its PTE maps a frame (present,
//! zero page included, or PROT_NONE: x86 `pte_present` includes
//! `_PAGE_PROTNONE`) or is a migration entry (a non-swap entry: "always
//! uptodate"), or is a swap entry whose slot's page is in the swap cache
//! and read in (`mincore_swap`; a page swapped out and gone is not). A none PTE, or a guard marker (Linux treats PTE markers as
//! none: "we need to do cache lookup too for markers"), is resident in a
//! VMA of a memory object (file or shared anonymous memory: Linux's
//! `vm_file`, shmem's included) when the object's page cache holds the page
//! (`mincore_page`), and never in private anonymous memory.
//!
//! `can_do_mincore` (a file the caller neither owns nor may write reports
//! every page resident) is not modelled: vmlab has no file owners, so every
//! caller counts as the owner.
//!
//! Shared page tables: a leaf table shared copy-on-write (`TABLE_COW`) may
//! be unshared and freed by another CPU's fault while this walk holds only
//! the read lock, so its entries are read into a buffer and kept only if the
//! PD entry is unchanged afterwards (while it is, this address space holds a
//! reference to the table, which is frozen; a new share needs fork, which
//! takes the map lock for writing). Object tables and this address space's
//! own tables do not go while the read lock is held.

use super::address_space::AddressSpace;
use super::object::MemObject;
use super::shared_pt::PD_SPAN;
use super::swap_cache;
use super::vma::Vma;
use super::vma_map::VmaMap;
use crate::addr::{PAGE_SHIFT, PAGE_SIZE, TASK_SIZE};
use crate::errno::{Errno, SysResult};
use crate::pgtable::{leaf_slot, LeafEntry, Level, Pte};
use crate::phys::PhysMem;
use crate::sync::Ordering;
use alloc::vec;
use alloc::vec::Vec;

/// Pages per leaf table.
const PTES: usize = (PD_SPAN / PAGE_SIZE) as usize;

impl AddressSpace {
    /// `mincore(addr, len, vec)`: one byte per page of `[addr, addr + len)`
    /// rounded up, bit 0 set if the page is resident.
    /// `swap` is the machine's swap object, if it swaps.
    pub fn mincore(&self, phys: &PhysMem, swap: Option<&MemObject>, addr: u64, len: u64) -> SysResult<Vec<u8>> {
        if addr & (PAGE_SIZE - 1) != 0 {
            return Err(Errno::EINVAL);
        }
        // access_ok(addr, len): no wrap, and the end at most TASK_SIZE
        // (seen on the host: a range ending exactly at TASK_SIZE is accepted).
        match addr.checked_add(len) {
            Some(end) if end <= TASK_SIZE => {}
            _ => return Err(Errno::ENOMEM),
        }
        let pages = (len >> PAGE_SHIFT) + u64::from(len & (PAGE_SIZE - 1) != 0);
        let end = addr + (pages << PAGE_SHIFT);
        let mut out = Vec::with_capacity(pages as usize);
        if pages == 0 {
            return Ok(out);
        }
        let st = self.map.read();
        let mut at = addr;
        while at < end {
            // do_mincore: vma_lookup, ENOMEM for an address in no VMA.
            let v = match st.vmas.find(at) {
                Some(v) if v.start <= at => v,
                _ => return Err(Errno::ENOMEM),
            };
            let piece_end = v.end.min(end);
            let ptes = self.read_leaves(phys, at, piece_end);
            for (i, raw) in ptes.into_iter().enumerate() {
                let va = at + ((i as u64) << PAGE_SHIFT);
                out.push(u8::from(resident(phys, swap, v, va, Pte(raw))));
            }
            at = piece_end;
        }
        Ok(out)
    }

    /// The raw leaf entries of `[a, b)` (inside one VMA), 0 where no leaf
    /// table exists; a copy-on-write shared table is read as the module
    /// documentation says.
    fn read_leaves(&self, phys: &PhysMem, a: u64, b: u64) -> Vec<u64> {
        let mut out = vec![0u64; ((b - a) >> PAGE_SHIFT) as usize];
        let pt = self.page_table();
        pt.for_each_pd_entry(phys, a, b, |span, pe| {
            let (lo, hi) = (a.max(span), b.min(span + PD_SPAN));
            let first = ((lo - a) >> PAGE_SHIFT) as usize;
            let n = ((hi - lo) >> PAGE_SHIFT) as usize;
            let mut buf = [0u64; PTES];
            loop {
                let pd = Pte(pe.load(Ordering::Acquire));
                if !pd.present() {
                    buf[..n].fill(0);
                    break;
                }
                for (k, w) in buf[..n].iter_mut().enumerate() {
                    let va = lo + ((k as u64) << PAGE_SHIFT);
                    *w = leaf_slot(phys, pd.pfn(), Level::Pt.index(va)).map_or(0, |e| e.load().0);
                }
                if pd.0 & Pte::TABLE_COW == 0 || pe.load(Ordering::Acquire) == pd.0 {
                    break;
                }
            }
            out[first..first + n].copy_from_slice(&buf[..n]);
        });
        out
    }
}

/// Whether the page at `va` of `v`, whose leaf entry is `pte`, is resident
/// (`mincore_pte_range`).
fn resident(phys: &PhysMem, swap: Option<&MemObject>, v: &Vma, va: u64, pte: Pte) -> bool {
    match pte.decode() {
        LeafEntry::None | LeafEntry::Guard => unmapped_resident(v, va),
        LeafEntry::Present(_) | LeafEntry::ProtNone(_) => true,
        // Non-swap entries are "always uptodate" (`mincore_swap`, !shmem).
        LeafEntry::Migration { .. } => true,
        // A swapped-out page is not resident; one in the swap cache and
        // read in is (`mincore_swap` → `swap_cache_get_folio`,
        // `folio_test_uptodate`): just written out, read back for another
        // sharer, or read ahead by MADV_WILLNEED.
        LeafEntry::Swap(se) => swap.is_some_and(|s| swap_cache::is_uptodate(s, phys, se)),
        // No code of vmlab writes such an entry (the checker reports it).
        LeafEntry::Invalid(_) => false,
    }
}

/// `__mincore_unmapped_range` for one page: an object's page cache holds
/// it (`mincore_page`), never for private anonymous memory.
fn unmapped_resident(v: &Vma, va: u64) -> bool {
    v.backing.object().is_some_and(|o| o.is_cached(v.pgoff_of(va)))
}
