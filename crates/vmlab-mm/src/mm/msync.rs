//! `msync`: write back what stores through shared file mappings changed.
//! Linux: `sys_msync` (mm/msync.c) → `vfs_fsync_range`.
//!
//! Two phases, because the TLBs must be flushed in between: under the map
//! lock, `AddressSpace::msync` checks the arguments and the range as Linux
//! does, and for each shared file mapping in it moves the PTE dirty bits to
//! the pages (clearing them, so that the next store walks the page table
//! again and sets them) and returns the work to do; the caller shoots the
//! cleaned range down, then runs each `SyncWork`, which writes the pages
//! back with no lock held. MS_ASYNC writes back too (vmlab has no flusher
//! thread to do it later; Linux's MS_ASYNC only relies on one).

use super::address_space::AddressSpace;
use super::object::MemObject;
use super::pte_ops;
use super::shared_pt::PD_SPAN;
use super::uapi::{MS_ASYNC, MS_INVALIDATE, MS_SYNC};
use super::vma::{VmFlags, Vma};
use super::vma_map::VmaMap;
use crate::addr::{PAGE_SHIFT, PAGE_SIZE};
use crate::errno::{Errno, SysResult};
use crate::pgtable::{leaf_slot, Level, Pte};
use crate::phys::PhysMem;
use crate::sync::{Arc, Ordering};
use crate::tlb::PendingFlush;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// Pages `[first, end)` of `obj` to write back once the TLBs are flushed.
pub struct SyncWork {
    obj: Arc<MemObject>,
    first: u64,
    end: u64,
    /// Frame → PTEs of the calling address space that map it and were
    /// cleaned; a frame mapped more often is mapped elsewhere too.
    own: BTreeMap<usize, i32>,
}

impl SyncWork {
    /// The cached pages of the range that other address spaces (or other
    /// entries) map too: their dirty bits are in PTEs this msync did not
    /// clean, so the caller cleans them through the reverse map first
    /// (`Rmap::clean_everywhere`).
    pub fn mapped_elsewhere(&self, phys: &PhysMem) -> Vec<crate::addr::Pfn> {
        self.obj
            .cached_range(self.first, self.end)
            .into_iter()
            .filter(|&(_, pfn)| {
                let mine = self.own.get(&pfn.0).copied().unwrap_or(0);
                phys.desc(pfn).is_some_and(|d| d.mapcount() > mine)
            })
            .map(|(_, pfn)| pfn)
            .collect()
    }

    /// Write the dirty pages back. Returns the first error.
    pub fn run(&self, phys: &PhysMem) -> SysResult<()> {
        self.obj.sync_range(phys, self.first, self.end)
    }
}

impl AddressSpace {
    /// `msync(addr, len, flags)`, first phase. Returns the write-back work
    /// and the result to report once it is done (ENOMEM if the range had
    /// holes, EBUSY for MS_INVALIDATE over locked memory); an argument
    /// error returns at once. The cleaned PTEs are in `flush`.
    pub fn msync(
        &self,
        phys: &PhysMem,
        addr: u64,
        len: u64,
        flags: u32,
        flush: &mut PendingFlush,
    ) -> SysResult<(Vec<SyncWork>, SysResult<()>)> {
        if flags & !(MS_ASYNC | MS_INVALIDATE | MS_SYNC) != 0 {
            return Err(Errno::EINVAL);
        }
        if addr & (PAGE_SIZE - 1) != 0 {
            return Err(Errno::EINVAL);
        }
        if flags & MS_ASYNC != 0 && flags & MS_SYNC != 0 {
            return Err(Errno::EINVAL);
        }
        // Linux rounds with wrap-around: a length near 2^64 becomes 0.
        let len = len.wrapping_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
        let end = addr.wrapping_add(len);
        if end < addr {
            return Err(Errno::ENOMEM);
        }
        let mut work = Vec::new();
        if end == addr {
            return Ok((work, Ok(())));
        }
        let st = self.map.read();
        let mut start = addr;
        let mut unmapped = false;
        loop {
            let Some(v) = st.vmas.find(start) else {
                return Ok((work, Err(Errno::ENOMEM)));
            };
            if start < v.start {
                // A hole: MS_ASYNC alone gives up at once, else skip it.
                if flags == MS_ASYNC {
                    return Ok((work, Err(Errno::ENOMEM)));
                }
                start = v.start;
                if start >= end {
                    return Ok((work, Err(Errno::ENOMEM)));
                }
                unmapped = true;
            }
            if flags & MS_INVALIDATE != 0 && v.flags.has(VmFlags::LOCKED) {
                return Ok((work, Err(Errno::EBUSY)));
            }
            let piece_end = v.end.min(end);
            if flags & (MS_SYNC | MS_ASYNC) != 0 && v.flags.has(VmFlags::SHARED) {
                if let Some(o) = v.backing.object().filter(|o| o.is_file()) {
                    work.push(self.clean_ptes(phys, v, o, start, piece_end, flush));
                }
            }
            start = v.end;
            if start >= end {
                return Ok((work, if unmapped { Err(Errno::ENOMEM) } else { Ok(()) }));
            }
        }
    }

    /// Move the dirty bits of the PTEs of `[a, b)` (in `v`, backed by `o`)
    /// to their pages. A leaf table shared copy-on-write with another
    /// address space (fork policy `shared_pt`) is frozen and left alone: its
    /// pages count as mapped elsewhere. An object table (shared by every
    /// address space mapping that block) is cleaned, and every sharer's CPUs
    /// drop their translations of it too, or a sharer's CPU caching one
    /// writable would store without setting the dirty bit again.
    fn clean_ptes(
        &self,
        phys: &PhysMem,
        v: &Vma,
        o: &Arc<MemObject>,
        a: u64,
        b: u64,
        flush: &mut PendingFlush,
    ) -> SyncWork {
        let mut own: BTreeMap<usize, i32> = BTreeMap::new();
        let pt = self.page_table();
        // Table by table, deciding from the PD entry before reading any leaf:
        // a frozen table may be unshared and freed by a fault of another CPU
        // meanwhile (this walk holds only the read lock and is no CPU's), so
        // it is never entered; this address space's own tables and object
        // tables cannot go while it holds the lock.
        pt.for_each_pd_entry(phys, a, b, |span, pe| {
            let pd = Pte(pe.load(Ordering::Acquire));
            if !pd.present() || pd.0 & Pte::TABLE_COW != 0 {
                return;
            }
            if pd.0 & Pte::TABLE_OBJ != 0 {
                flush
                    .remote
                    .extend(super::shared_pt::object_table_sharers(o, pd.pfn(), self.id));
            }
            let (lo, hi) = (a.max(span), b.min(span + PD_SPAN));
            let mut va = lo;
            while va < hi {
                if let Some(e) = leaf_slot(phys, pd.pfn(), Level::Pt.index(va)) {
                    let pte = e.load();
                    if pte.maps_frame() && !pte.special() {
                        // A CPU may cache the translation writable: `clean` drops it, so
                        // the next store walks the table and sets the dirty bit again.
                        pte_ops::clean(phys, e, va, flush);
                        *own.entry(pte.pfn().0).or_insert(0) += 1;
                    }
                }
                va += PAGE_SIZE;
            }
        });
        let first = v.pgoff_of(a);
        SyncWork {
            obj: o.clone(),
            first,
            end: first + ((b - a) >> PAGE_SHIFT),
            own,
        }
    }
}
