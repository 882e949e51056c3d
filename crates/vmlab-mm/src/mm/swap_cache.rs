//! The swap cache: the page cache of the swap object (`object::Kind::Swap`),
//! indexed by slot. An anonymous page is in it while reclaim writes it out,
//! after it is read back in and until a store makes its swap copy useless,
//! so a second process faulting on a shared swapped page finds it here (a
//! minor fault). Its frames stay anonymous (owned by their identity, for
//! the reverse map) with `PG_SWAPCACHE` set and the slot in the
//! descriptor's `swap` word.
//!
//! Reference rules: a cached page holds one frame reference (the cache's)
//! and one reference to its slot (`SwapArea`'s count), beside one slot
//! reference per swap entry in a page table. A slot is written only while
//! its page is cached, and read only into a page inserted first (`PG_IO`
//! until the read is done), so a read never sees a half-written slot.
//! Linux: `mm/swap_state.c` (`add_to_swap_cache`, `__delete_from_swap_cache`,
//! `free_swap_and_cache`, `folio_free_swap`), `SWAP_HAS_CACHE`.
//!
//! Lock order: the swap object's cache lock, then the slot map's (a leaf).
//! No I/O under either.

use super::object::{note_placed, MemObject, PageError};
use super::stats::MmCounters;
use crate::addr::{Pfn, PAGE_SIZE};
use crate::pgtable::{Pte, SwapEntry};
use crate::phys::{Fill, FrameUse, PhysMem, PG_DIRTY, PG_IO, PG_SWAPCACHE};
use crate::sync::Ordering;

/// The cached page of `e` with a reference taken for the caller.
pub(crate) fn lookup(swap: &MemObject, phys: &PhysMem, e: SwapEntry) -> Option<Pfn> {
    swap.lookup_ref(phys, e.offset).ok().flatten()
}

fn mark_cached(phys: &PhysMem, pfn: Pfn, e: SwapEntry) {
    if let Some(d) = phys.desc(pfn) {
        d.swap.store(Pte::swap(e).map_or(0, |p| p.0), Ordering::Release);
        d.flags.fetch_or(PG_SWAPCACHE, Ordering::AcqRel);
    }
}

fn unmark_cached(phys: &PhysMem, pfn: Pfn) {
    if let Some(d) = phys.desc(pfn) {
        d.flags.fetch_and(!PG_SWAPCACHE, Ordering::AcqRel);
        d.swap.store(0, Ordering::Release);
    }
}

/// Put anonymous page `pfn` in the cache at `e`, a slot just allocated
/// for it (whose one reference becomes the cache's); the cache takes a
/// frame reference. `false` if the slot is cached already (nothing done).
/// Linux: `add_to_swap_cache` from `add_to_swap`.
pub(crate) fn add(swap: &MemObject, phys: &PhysMem, pfn: Pfn, e: SwapEntry) -> bool {
    let mut c = swap.cache.lock();
    if c.contains_key(&e.offset) {
        return false;
    }
    c.insert(e.offset, pfn);
    c.shadows.remove(&e.offset);
    if let Some(d) = phys.desc(pfn) {
        d.refcount.fetch_add(1, Ordering::AcqRel);
    }
    mark_cached(phys, pfn, e);
    true
}

/// Take `pfn` out of the cache if it holds exactly `refs` references
/// (the cache's and the caller's: no one else can reach it), leaving
/// `shadow` in its place if given; drops the cache's frame and slot
/// references. Returns whether it went. Linux: `__remove_mapping` →
/// `__delete_from_swap_cache` (with `workingset_eviction`'s shadow).
pub(crate) fn remove_if(swap: &MemObject, phys: &PhysMem, pfn: Pfn, refs: u32, shadow: Option<u64>) -> bool {
    let Some(d) = phys.desc(pfn) else { return false };
    let Some(raw) = d.swap_entry() else { return false };
    let e = Pte(raw).swap_entry();
    let Some(area) = swap.swap_area() else { return false };
    {
        let mut c = swap.cache.lock();
        if c.get(&e.offset) != Some(&pfn) || d.refcount.load(Ordering::Acquire) != refs {
            return false;
        }
        c.remove(&e.offset);
        // A slot that only the cache held is free now: no shadow for it.
        let left = area.put(e).unwrap_or(0);
        if let (Some(s), true) = (shadow, left > 0) {
            c.shadows.insert(e.offset, s);
        }
        unmark_cached(phys, pfn);
    }
    phys.put_frame(pfn);
    true
}

/// Whether slot `e`'s page is in the cache and read in (not under
/// `PG_IO`). Linux: `mincore_swap` (`swap_cache_get_folio`,
/// `folio_test_uptodate`).
pub(crate) fn is_uptodate(swap: &MemObject, phys: &PhysMem, e: SwapEntry) -> bool {
    let c = swap.cache.lock();
    c.get(&e.offset)
        .and_then(|&pfn| phys.desc(pfn))
        .is_some_and(|d| d.flags.load(Ordering::Acquire) & PG_IO == 0)
}

/// A page about to be stored to (`do_wp_page` reusing it, exclusive): if
/// only this mapping and the cache hold it and no swap entry names its
/// slot, its swap copy is useless: free the slot. Linux: `folio_free_swap`.
pub(crate) fn free_swap_if_exclusive(swap: &MemObject, phys: &PhysMem, pfn: Pfn) {
    let Some(d) = phys.desc(pfn) else { return };
    let Some(raw) = d.swap_entry() else { return };
    let Some(area) = swap.swap_area() else { return };
    if area.count(Pte(raw).swap_entry()) == 1 && d.mapcount() == 1 {
        // The mapping's reference and the cache's.
        remove_if(swap, phys, pfn, 2, None);
    }
}

/// A swap entry left a page table (its reference is in a flush's `swap`):
/// drop the slot reference; a slot then held only by the cache, whose page
/// nothing else holds, goes with its page. Linux: `free_swap_and_cache`.
pub(crate) fn free_entry(swap: &MemObject, phys: &PhysMem, e: SwapEntry) {
    let Some(area) = swap.swap_area() else { return };
    match area.put(e) {
        Ok(0) => {
            swap.cache.lock().shadows.remove(&e.offset);
        }
        Ok(1) => {
            if let Some(pfn) = lookup(swap, phys, e) {
                // Ours and the cache's: unmapped, unused.
                remove_if(swap, phys, pfn, 2, None);
                phys.put_frame(pfn);
            }
        }
        _ => {}
    }
}

/// A frame is about to lose a mapping's reference (its PTE was zapped and
/// the TLBs flushed): if that leaves a swap-cache page unmapped, held only
/// by the cache, whose slot no swap entry names, drop it from the cache.
/// Linux: `free_pages_and_swap_cache` → `free_swap_cache`.
pub(crate) fn release_unmapped(swap: &MemObject, phys: &PhysMem, pfn: Pfn) {
    let Some(d) = phys.desc(pfn) else { return };
    let Some(raw) = d.swap_entry() else { return };
    let Some(area) = swap.swap_area() else { return };
    if d.mapcount() == 0 && area.count(Pte(raw).swap_entry()) == 1 {
        // The reference being dropped and the cache's.
        remove_if(swap, phys, pfn, 2, None);
    }
}

/// Read slot `e` into the cache, with no lock held (the fault retries
/// after): a frame is inserted first, `PG_IO` set, with a slot reference
/// for the cache, then filled from the device. Nothing to do if the slot
/// is cached already or was freed meanwhile. Counts `pswpin`, and a major
/// fault if `major` (a fault's read; MADV_WILLNEED's is not one). Returns
/// the cached page with a reference for the caller (`PageRead::read`), if
/// there is one. Linux: `__read_swap_cache_async` + `swap_read_folio`.
pub(crate) fn read_in(
    swap: &MemObject,
    phys: &PhysMem,
    counters: &MmCounters,
    e: SwapEntry,
    major: bool,
) -> Result<Option<Pfn>, PageError> {
    let Some(area) = swap.swap_area() else {
        return Err(PageError::Io);
    };
    if let Some(pfn) = lookup(swap, phys, e) {
        return Ok(Some(pfn));
    }
    let pfn = phys
        .alloc_page(super::fault::NO_CPU, FrameUse::Anon, Fill::Caller)
        .ok_or(PageError::NoMemory)?;
    let Some(d) = phys.desc(pfn) else {
        return Err(PageError::Io);
    };
    d.flags.fetch_or(PG_IO, Ordering::AcqRel);
    let shadow = {
        let mut c = swap.cache.lock();
        // Freed (every entry zapped) or cached by another reader: nothing to do.
        if c.contains_key(&e.offset) || area.count(e) == 0 || area.dup(e).is_err() {
            drop(c);
            phys.put_frame(pfn);
            return Ok(None);
        }
        c.insert(e.offset, pfn);
        mark_cached(phys, pfn, e);
        c.shadows.remove(&e.offset)
    };
    if major {
        MmCounters::bump(&counters.major_faults);
    }
    let mut buf = [0u8; PAGE_SIZE as usize];
    let ok = area.read(e, &mut buf).is_ok();
    if ok {
        phys.ram().write_bytes(pfn, 0, &buf);
    }
    d.flags.fetch_and(!(PG_IO | PG_DIRTY), Ordering::AcqRel);
    if !ok {
        // The cache's references go (the frame with them); a fault on the
        // entry reads again.
        remove_if(swap, phys, pfn, 1, None);
        return Err(PageError::Io);
    }
    MmCounters::bump(&counters.pswpin);
    note_placed(counters, phys.lru_place(pfn, shadow, crate::phys::Entry::Fault));
    // The caller's reference, beside the cache's.
    d.refcount.fetch_add(1, Ordering::AcqRel);
    Ok(Some(pfn))
}
