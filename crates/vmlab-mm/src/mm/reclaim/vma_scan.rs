//! Seed 000 #6 ("swap out pages by scanning all VMAs ... instead of
//! scanning pages") as Linux 2.4's `swap_out()` did it: reclaim walks the
//! processes' VMAs and page tables, not the frames. Address spaces are
//! taken in turn (round robin); in each, the walk goes over its VMAs from
//! where the last one stopped, leaf table by leaf table
//! (`PageTable::for_each_leaf`), and looks at every PTE that maps a
//! pageable frame (anonymous or page cache, not special, not in a
//! `VM_LOCKED` VMA). A PTE whose accessed bit is set gets it cleared (a
//! second chance); one whose bit is clear names a candidate. Up to
//! `SWAP_CLUSTER_MAX` candidates are collected, the map lock is dropped,
//! and each is evicted by the shared mechanism (`evict.rs`). Linux 2.4:
//! `swap_out`, `swap_out_mm`, `swap_out_vma`/`_pgd`/`_pmd`,
//! `try_to_swap_out`, with `swap_mm` and `mm->swap_address` as the cursor.
//!
//! Owns: the cursor (`Reclaimer::scan_mm`, `Reclaimer::scan_addr`: the
//! address space and the address to resume from), read and written only
//! under `Reclaimer::busy`. No lists: `lru_lists` is 0, the page tables
//! are the clock, and a page is aged once per PTE that maps it.
//!
//! Shared leaf tables (fork's `TABLE_COW`, an object's `TABLE_OBJ`,
//! `mm/shared_pt.rs`) are walked too, from one of their sharers only (the
//! one of lowest id), so that their entries age once per round as a
//! private table's do. They may hold most of memory: after a fork every
//! page the parent had is mapped from a shared table, and a table stays
//! marked shared in the last sharer's PD entry after the others left with
//! copies, until that sharer faults in its span. A shared table is frozen
//! but for reclaim (`shared_pt.rs`), which may clear an accessed bit there
//! for every sharer at once; each sharer's translation is then shot down.
//! Its candidates are evicted as any (`unmap_for_reclaim` changes shared
//! entries in place). A sharer's fault may unlink and release such a table
//! while the walk holds only the read lock: reclaim's walk mark
//! (`WalkTracker::begin_reclaim`, set by `Reclaimer::shrink`) keeps its
//! frame until the walk is over.
//!
//! How it sees accesses: only as the accessed bits the hardware walk sets.
//! A TLB hit sets nothing, so each cleared entry's translation is shot
//! down (the next access walks and sets the bit again): the cleared
//! entries of one batch go into one `PendingFlush::remote`, one shootdown
//! per address space per batch, after its map lock is released.
//!
//! `pgscan` counts the PTEs whose accessed bit was tested (and the swap
//! entries that led to a cached page), `pgsteal` the pages freed: the
//! seed's claim is about scans per page reclaimed. A page mapped by n PTEs
//! costs n scans. Seed 002 set its page-centric clock against this ("such
//! pages only get touched once for all mappings as opposed to the many
//! times by the old code"): in 2.4 a shared page stayed until all its PTEs
//! were found old, an advantage; here the first PTE found old evicts it
//! everywhere (below), so a shared page has none, rather the reverse.
//!
//! Difference from 2.4: `try_to_swap_out` unmapped only the PTE in hand
//! (its page went to the swap cache and stayed there until the walk had
//! found and unmapped every PTE that mapped it). vmlab evicts a candidate
//! through the shared mechanism, which unmaps it everywhere through the
//! reverse map, even where another mapping's accessed bit is set: one
//! eviction path for every design, no half-unmapped state for anonymous
//! pages to be in. The cost: a shared page is judged by the one PTE the
//! walk found old, and each eviction pays the reverse map's search (under
//! `rmap = none`, a walk of every address space).
//!
//! Swap entries: a swap-cache page that nothing maps (read back for one
//! sharer's fault, or left behind when a copy-on-write fault copied it)
//! has no PTE of its own, but the other sharers' swap entries name its
//! slot. The walk looks each swap entry up in the swap cache and takes such
//! a page as a candidate (no accessed bit can speak for it); without this
//! the swap cache fills RAM after a fork (`fork_cow_mremap_under_pressure`
//! did, and never finished). A cached page that is mapped somewhere is
//! judged where it is mapped.
//!
//! Known gaps of the design (kept, they are the point of comparing it):
//! a page no PTE maps or names (a page-cache page only read through
//! `read`, or one whose mappings are gone) is never found, so never
//! reclaimed (2.4 had `shrink_cache` over its LRU for those); an address
//! space whose map lock is busy is skipped for the round. Pages evicted
//! while the swap-in that read them waits to retry its fault (the fault
//! holds no reference across the retry) are read again, as under every
//! design.
//!
//! May call: `evict`, `registry` (through `RmapCx::mms`), `address_space`
//! (map lock by `try_read`, page table), `vma_map`, `pgtable`, `pte_ops`,
//! `swap_cache` (`lookup`), `shared_pt` (`object_table_sharers`), `phys`,
//! `tlb`.
//!
//! Lock order: one map lock at a time, for reading, by `try_read`; under
//! it only PTE compare-and-swaps, descriptor atomics, the swap object's
//! cache lock (a lookup), the leaf locks that list a shared table's
//! sharers (`PhysMem::table_sharers`, an object's `shared_tables`) and,
//! for a frame that turns out not to be worth keeping, `put_frame`.
//! Shootdowns and evictions run after it is dropped.

use super::evict::{evict, Evicted};
use super::{pageable, ReclaimCx, Reclaimer, SWAP_CLUSTER_MAX};
use crate::addr::{vpn, Pfn, PAGE_SIZE};
use crate::mm::address_space::{AddressSpace, MapState};
use crate::mm::pte_ops;
use crate::mm::shared_pt::{object_table_sharers, PD_SPAN};
use crate::mm::swap_cache;
use crate::mm::vma::VmFlags;
use crate::mm::vma_map::VmaMap;
use crate::pgtable::{LeafEntry, LeafRef, Pte, SwapEntry};
use crate::phys::{FrameUse, PG_IO};
use crate::sync::Ordering;
use crate::tlb::PendingFlush;
use alloc::vec::Vec;

/// Bytes a PDPT entry covers: where a walk that finds no PD goes on.
const PDPT_SPAN: u64 = 1 << 30;

/// What one visit of an address space found (also `mglru`'s aging walk).
#[derive(Default)]
pub(super) struct Batch {
    /// Old pages, one reference taken on each.
    pub(super) cands: Vec<Pfn>,
    /// Translations of the entries whose accessed bit was cleared.
    pub(super) flush: PendingFlush,
    /// PTEs whose accessed bit was tested, and swap entries whose page was
    /// cached (`pgscan`).
    pub(super) scanned: usize,
    /// Where to resume; `None` if the walk reached the end.
    pub(super) next: Option<u64>,
}

impl Batch {
    /// Note that the translation of `vpn` in `mm` must be dropped
    /// (contiguous pages make one range: the walk goes in address order,
    /// for each sharer of a shared table alike, so only `mm`'s latest range
    /// may grow).
    pub(super) fn young(&mut self, mm: u64, vpn: u64) {
        if let Some(last) = self.flush.remote.iter_mut().rev().find(|r| r.0 == mm) {
            if last.2 + 1 == vpn {
                last.2 = vpn;
                return;
            }
        }
        self.flush.remote.push((mm, vpn, vpn));
    }

    /// `young` for the entry at `va` of `mm`'s table and for every other
    /// address space that reaches the table (`sharers`, as `walk` gives
    /// them: each one's id and the vpn its span starts at).
    pub(super) fn young_shared(&mut self, mm: u64, sharers: &[(u64, u64)], va: u64) {
        self.young(mm, vpn(va));
        let off = vpn(va) - vpn(va & !(PD_SPAN - 1));
        for &(id, first) in sharers {
            self.young(id, first + off);
        }
    }
}

/// Walk address spaces until `want` frames are freed or every address
/// space was walked twice without one (once to clear the accessed bits,
/// once to find them still clear).
pub(super) fn shrink(r: &Reclaimer, cx: &ReclaimCx<'_>, want: usize) -> usize {
    let phys = cx.rcx.phys;
    let mms = cx.rcx.mms;
    let limit = 2 * mms.count();
    let mut freed = 0;
    let mut scanned = 0;
    // Walks (to an address space's end, or skipped) in a row that freed nothing.
    let mut fruitless = 0;
    // Freed by the walk under way.
    let mut walk_freed = 0;
    while freed < want && fruitless < limit {
        let at = r.scan_mm.load(Ordering::Relaxed);
        let Some(mm) = mms.next_from(at).or_else(|| mms.next_from(0)) else {
            break;
        };
        if mm.id != at {
            r.scan_mm.store(mm.id, Ordering::Relaxed);
            r.scan_addr.store(0, Ordering::Relaxed);
        }
        let from = r.scan_addr.load(Ordering::Relaxed);
        let next = match scan(cx, &mm, from) {
            // Its map lock is busy: skip it this round (2.4 spun on
            // `page_table_lock`; reclaim here never waits for a map lock).
            None => None,
            Some(mut b) => {
                scanned += b.scanned;
                if !b.flush.remote.is_empty() {
                    (cx.shootdown)(core::mem::take(&mut b.flush));
                }
                for pfn in b.cands {
                    // Held since the walk: the frame is the page its PTE
                    // mapped, but it may have left its cache since.
                    if !pageable(cx, pfn) {
                        phys.put_frame(pfn);
                        continue;
                    }
                    match evict(cx, pfn) {
                        Evicted::Freed => {
                            freed += 1;
                            walk_freed += 1;
                        }
                        Evicted::Kept => {
                            phys.put_frame(pfn);
                        }
                    }
                }
                b.next
            }
        };
        match next {
            Some(va) => r.scan_addr.store(va, Ordering::Relaxed),
            None => {
                if walk_freed == 0 {
                    fruitless += 1;
                } else {
                    fruitless = 0;
                }
                walk_freed = 0;
                r.scan_mm.store(mm.id + 1, Ordering::Relaxed);
                r.scan_addr.store(0, Ordering::Relaxed);
            }
        }
    }
    cx.account(scanned, freed);
    freed
}

/// Walk `mm` from `from` with its map lock held for reading (taken by
/// `try_read`: `None` if it is busy) until `SWAP_CLUSTER_MAX` candidates
/// are found or its VMAs end. Linux 2.4: `swap_out_mm`.
fn scan(cx: &ReclaimCx<'_>, mm: &AddressSpace, from: u64) -> Option<Batch> {
    walk(cx, mm, from, |va, e, sharers, b| {
        look(cx, (mm.id, sharers), va, e, b);
        b.cands.len() >= SWAP_CLUSTER_MAX
    })
}

/// Walk `mm`'s page tables from `from` with its map lock held for reading
/// (taken by `try_read`: `None` if it is busy), calling `visit` on every
/// leaf entry of its VMAs (not `VM_LOCKED` ones; a shared table only from
/// its sharer of lowest id, with the other sharers, `other_sharers`) in
/// address order until it returns true (the batch is full: `Batch::next`
/// says where to resume) or the VMAs end. `visit` runs under the map lock:
/// PTE compare-and-swaps, descriptor atomics, LRU moves and lookups only.
pub(super) fn walk(
    cx: &ReclaimCx<'_>,
    mm: &AddressSpace,
    from: u64,
    mut visit: impl FnMut(u64, LeafRef<'_>, &[(u64, u64)], &mut Batch) -> bool,
) -> Option<Batch> {
    let phys = cx.rcx.phys;
    let st = mm.map.try_read()?;
    let mut b = Batch::default();
    if st.dead {
        return Some(b);
    }
    let pt = mm.page_table();
    let mut addr = from;
    while let Some(v) = st.vmas.find(addr) {
        let (start, end) = (addr.max(v.start), v.end);
        addr = end;
        if v.flags.has(VmFlags::LOCKED) {
            continue;
        }
        let mut a = start;
        while a < end {
            // One leaf table at a time (2.4: `swap_out_pmd`).
            let table_end = ((a & !(PD_SPAN - 1)) + PD_SPAN).min(end);
            let Some(pe) = pt.pd_entry(phys, a) else {
                // No PD: nothing is mapped up to the next PDPT entry.
                a = ((a & !(PDPT_SPAN - 1)) + PDPT_SPAN).min(end);
                continue;
            };
            let pd = Pte(pe.load(Ordering::Acquire));
            let span = a & !(PD_SPAN - 1);
            let Some(sharers) = pd.present().then(|| other_sharers(cx, &st, mm.id, span, pd)).flatten() else {
                a = table_end;
                continue;
            };
            let mut stop = None;
            pt.for_each_leaf(phys, a, table_end, |va, e| {
                if stop.is_some() {
                    return;
                }
                if visit(va, e, &sharers, &mut b) {
                    stop = Some(va + PAGE_SIZE);
                }
            });
            if let Some(resume) = stop {
                b.next = st.vmas.find(resume).is_some().then_some(resume);
                return Some(b);
            }
            a = table_end;
        }
    }
    Some(b)
}

/// The other address spaces that reach the leaf table behind PD entry `pd`
/// of `mm` (span `span`), as (id, the vpn their span starts at): none for
/// a private table. `None` if a sharer of lower id walks the table instead.
fn other_sharers(cx: &ReclaimCx<'_>, st: &MapState, mm: u64, span: u64, pd: Pte) -> Option<Vec<(u64, u64)>> {
    let others: Vec<(u64, u64)> = if pd.0 & Pte::TABLE_COW != 0 {
        // Every sharer reaches it at the same span.
        let v = vpn(span);
        cx.rcx
            .phys
            .table_sharers(pd.pfn())
            .into_iter()
            .filter(|&id| id != mm)
            .map(|id| (id, v))
            .collect()
    } else if pd.0 & Pte::TABLE_OBJ != 0 {
        let obj = st.vmas.find(span).and_then(|v| v.backing.object().cloned())?;
        object_table_sharers(&obj, pd.pfn(), mm)
            .into_iter()
            .map(|(id, first, _)| (id, first))
            .collect()
    } else {
        Vec::new()
    };
    others.iter().all(|&(id, _)| id > mm).then_some(others)
}

/// Look at one leaf entry (2.4: `try_to_swap_out`) of `mm`'s table, which
/// `sharers` (`other_sharers`) reach too: age it if it was accessed (for
/// every sharer), else take its page as a candidate.
fn look(cx: &ReclaimCx<'_>, (mm, sharers): (u64, &[(u64, u64)]), va: u64, e: LeafRef<'_>, b: &mut Batch) {
    let phys = cx.rcx.phys;
    let p = e.load();
    // A claimed entry is a fault's, about to change.
    if p.locked() {
        return;
    }
    if let LeafEntry::Swap(se) = p.decode() {
        swapped(cx, se, b);
        return;
    }
    if !p.maps_frame() || p.special() {
        return;
    }
    let pfn = p.pfn();
    if !pageable(cx, pfn) {
        return;
    }
    b.scanned += 1;
    if p.accessed() {
        if let Some((old, _)) = pte_ops::update(e, va, None, |q| q.accessed().then(|| q.without(Pte::ACCESSED))) {
            if old.present() {
                b.young_shared(mm, sharers, va);
            }
        }
        return;
    }
    if b.cands.contains(&pfn) {
        return;
    }
    let Some(d) = phys.desc(pfn) else { return };
    if !d.try_get() {
        return;
    }
    // The frame may have been freed and reused since the load: keep it
    // only if this entry still maps it (then it is the page the walk saw).
    let now = e.load();
    if !now.maps_frame() || now.special() || now.pfn() != pfn || !pageable(cx, pfn) {
        phys.put_frame(pfn);
        return;
    }
    b.cands.push(pfn);
}

/// A swap entry whose slot's page is in the swap cache and mapped nowhere
/// (a page read back for a fault, or left by a copy-on-write copy, while
/// this entry's address space kept its swap entry): the only page-table
/// trace such a page has. No PTE's accessed bit can speak for it, so it is
/// old: a candidate. One mapped somewhere is judged where it is mapped.
fn swapped(cx: &ReclaimCx<'_>, se: SwapEntry, b: &mut Batch) {
    let phys = cx.rcx.phys;
    let Some(swap) = cx.swap else { return };
    let Some(pfn) = swap_cache::lookup(swap, phys, se) else {
        return;
    };
    b.scanned += 1;
    let unmapped = phys.desc(pfn).is_some_and(|d| {
        d.usage() == FrameUse::Anon && d.mapcount() == 0 && d.flags.load(Ordering::Acquire) & PG_IO == 0
    });
    if unmapped && !b.cands.contains(&pfn) {
        b.cands.push(pfn);
    } else {
        phys.put_frame(pfn);
    }
}
