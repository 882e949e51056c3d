//! The eviction of one page, the same for every design: unmap it
//! everywhere (anonymous pages' PTEs become swap entries), write it to swap
//! or to its file if it is dirty, and take it out of its cache, or give up
//! and keep it if anything still holds it. Linux: `shrink_folio_list` with
//! `add_to_swap`, `try_to_unmap`, `pageout` and `__remove_mapping`.
//!
//! A lazily freed page (`PG_LAZYFREE`: MADV_FREE, or any page of a
//! MAP_DROPPABLE VMA) is neither swapped nor written: if no store dirtied
//! it since the advice it is unmapped everywhere and dropped, so the next
//! read sees zero (`pglazyfreed`); one stored to is kept and is an ordinary
//! swap-backed page again (`PG_LAZYFREE` cleared). This needs no swap.
//! Droppable pages are dropped dirty or not, and stay lazily freeable.
//! Linux: `shrink_folio_list` with `try_to_unmap_one`'s MADV_FREE branch.
//!
//! The caller holds one reference (isolation); `evict` consumes it if the
//! page was freed, and leaves it to the caller (to put the page back) if not.

use super::ReclaimCx;
use crate::addr::{Pfn, PAGE_SIZE};
use crate::mm::object::MemObject;
use crate::mm::rmap::UnmapMode;
use crate::mm::swap_cache;
use crate::mm::vma::ObjectId;
use crate::pgtable::Pte;
use crate::phys::{FrameDesc, FrameUse, Owner, PG_DIRTY, PG_LAZYFREE, PG_SWAPBACKED};
use crate::sync::{Arc, Ordering};

/// What became of a page reclaim tried to evict.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Evicted {
    /// Its frame is free (or will be once the last racing holder drops it).
    Freed,
    /// It stays: mapped where reclaim could not unmap it, locked, busy,
    /// no swap slot, an I/O error.
    Kept,
}

/// Evict `pfn` (see the module doc).
pub(super) fn evict(cx: &ReclaimCx<'_>, pfn: Pfn) -> Evicted {
    let phys = cx.rcx.phys;
    let Some(d) = phys.desc(pfn) else { return Evicted::Kept };
    // Being read in: its bytes are not there yet, and the reader still
    // writes into the frame.
    if d.flags.load(Ordering::Acquire) & crate::phys::PG_IO != 0 {
        return Evicted::Kept;
    }
    let shared = d.mapcount() > 1;
    let r = match d.usage() {
        FrameUse::Anon if d.flags.load(Ordering::Acquire) & PG_LAZYFREE != 0 => evict_lazyfree(cx, pfn),
        FrameUse::Anon => evict_anon(cx, pfn),
        FrameUse::PageCache if d.flags.load(Ordering::Acquire) & PG_SWAPBACKED == 0 => evict_file(cx, pfn),
        FrameUse::PageCache => evict_shmem(cx, pfn),
        _ => false,
    };
    if r {
        if shared {
            cx.counters.evicted_shared.fetch_add(1, Ordering::Relaxed);
        }
        phys.put_frame(pfn);
        Evicted::Freed
    } else {
        Evicted::Kept
    }
}

/// An anonymous page: to the swap cache, its PTEs to swap entries, out to
/// its slot if dirty, out of the cache.
fn evict_anon(cx: &ReclaimCx<'_>, pfn: Pfn) -> bool {
    let phys = cx.rcx.phys;
    let (Some(swap), Some(d)) = (cx.swap, phys.desc(pfn)) else {
        return false;
    };
    let Some(area) = swap.swap_area() else { return false };
    let entry = match d.swap_entry() {
        Some(raw) => Pte(raw).swap_entry(),
        None => {
            let Ok(e) = area.alloc() else { return false };
            if !swap_cache::add(swap, phys, pfn, e) {
                let _ = area.put(e);
                return false;
            }
            // Its slot holds nothing yet.
            d.flags.fetch_or(PG_DIRTY, Ordering::AcqRel);
            e
        }
    };
    let Some(swp) = Pte::swap(entry) else { return false };
    let un = cx
        .rmap
        .unmap_for_reclaim(&cx.rcx, pfn, UnmapMode::Swap(swp), &|| area.dup(entry).is_ok(), &|| {
            let _ = area.put(entry);
        });
    (cx.shootdown)(un.flush);
    if d.mapcount() > 0 {
        return false;
    }
    if d.flags.fetch_and(!PG_DIRTY, Ordering::AcqRel) & PG_DIRTY != 0 {
        // No PTE maps the page and the TLBs are flushed: no store reaches
        // it while it is copied out.
        let mut buf = [0u8; PAGE_SIZE as usize];
        phys.ram().read_bytes(pfn, 0, &mut buf);
        if area.write(entry, &buf).is_err() {
            d.flags.fetch_or(PG_DIRTY, Ordering::AcqRel);
            return false;
        }
        cx.counters.pswpout.fetch_add(1, Ordering::Relaxed);
    }
    // Ours and the cache's: a fault that found it meanwhile keeps it.
    leave_shadow(phys, pfn, |shadow| {
        swap_cache::remove_if(swap, phys, pfn, 2, Some(shadow))
    })
}

/// Take `pfn` out of its cache by `remove`, which leaves the shadow it is
/// given there and says whether it did; the design hears of a shadow that
/// stands (`Lru::shadow_left`). Every eviction that leaves a shadow goes
/// through here.
fn leave_shadow(phys: &crate::phys::PhysMem, pfn: Pfn, remove: impl FnOnce(u64) -> bool) -> bool {
    let lru = phys.lru();
    let shadow = lru.evicted(pfn);
    let removed = remove(shadow);
    if removed {
        lru.shadow_left(shadow);
    }
    removed
}

/// A lazily freed anonymous page: unmapped everywhere while clean, then
/// dropped; kept (and swap-backed again) if a store dirtied it.
fn evict_lazyfree(cx: &ReclaimCx<'_>, pfn: Pfn) -> bool {
    let phys = cx.rcx.phys;
    let Some(d) = phys.desc(pfn) else { return false };
    let un = cx
        .rmap
        .unmap_for_reclaim(&cx.rcx, pfn, UnmapMode::Lazyfree, &|| true, &|| {});
    (cx.shootdown)(un.flush);
    if un.redirtied {
        // `folio_set_swapbacked`: reclaim swaps it from now on. A
        // droppable VMA's page is never found redirtied.
        d.flags.fetch_and(!PG_LAZYFREE, Ordering::AcqRel);
        return false;
    }
    if d.mapcount() > 0 {
        return false;
    }
    cx.counters.pglazyfreed.fetch_add(1, Ordering::Relaxed);
    true
}

/// The descriptor of page-cache page `pfn`, its object and its index there.
fn object_page<'a>(cx: &ReclaimCx<'a>, pfn: Pfn) -> Option<(&'a FrameDesc, Arc<MemObject>, u64)> {
    let d = cx.rcx.phys.desc(pfn)?;
    let Owner::Object { object, index } = d.owner() else {
        return None;
    };
    Some((d, cx.rcx.objects.get(ObjectId(object))?, index))
}

/// Clear every PTE that maps page-cache page `pfn` (and shoot them down);
/// whether none maps it now.
fn unmap_cleared(cx: &ReclaimCx<'_>, pfn: Pfn) -> bool {
    let Some(d) = cx.rcx.phys.desc(pfn) else { return false };
    if d.mapcount() > 0 {
        let un = cx
            .rmap
            .unmap_for_reclaim(&cx.rcx, pfn, UnmapMode::Clear, &|| true, &|| {});
        (cx.shootdown)(un.flush);
    }
    d.mapcount() == 0
}

/// A file page: unmapped everywhere, written back if dirty, dropped.
fn evict_file(cx: &ReclaimCx<'_>, pfn: Pfn) -> bool {
    let phys = cx.rcx.phys;
    let Some((d, obj, index)) = object_page(cx, pfn) else {
        return false;
    };
    if !unmap_cleared(cx, pfn) {
        return false;
    }
    if d.flags.load(Ordering::Acquire) & PG_DIRTY != 0 {
        match obj.writeback_page(phys, index, pfn, false) {
            Ok(_) => {}
            Err(e) => {
                obj.record_wb_err(e);
                return false;
            }
        }
    }
    // Ours and the cache's.
    leave_shadow(phys, pfn, |shadow| {
        obj.remove_page_if(phys, index, pfn, 2, shadow, None)
    })
}

/// A page of shared anonymous memory: unmapped everywhere, copied to a
/// new slot, and replaced in its object's cache by that slot
/// (`PageCache::swapped`, read back by the object's fault path). Linux:
/// `shmem_writeout` (which goes through the swap cache; here the object
/// holds the entry at once, and a fault reads it back from the slot).
fn evict_shmem(cx: &ReclaimCx<'_>, pfn: Pfn) -> bool {
    let phys = cx.rcx.phys;
    let Some((d, obj, index)) = object_page(cx, pfn) else {
        return false;
    };
    let Some(area) = obj.swap_object().and_then(|s| s.swap_area()) else {
        return false;
    };
    if !unmap_cleared(cx, pfn) {
        return false;
    }
    let Ok(e) = area.alloc() else { return false };
    // Unmapped everywhere, its PTEs' dirty bits on the page: a store from
    // here on comes through a new mapping, whose reference `remove_page_if`
    // sees, or sets PG_DIRTY again.
    d.flags.fetch_and(!PG_DIRTY, Ordering::AcqRel);
    let mut buf = [0u8; PAGE_SIZE as usize];
    phys.ram().read_bytes(pfn, 0, &mut buf);
    if area.write(e, &buf).is_err() {
        d.flags.fetch_or(PG_DIRTY, Ordering::AcqRel);
        let _ = area.put(e);
        return false;
    }
    cx.counters.pswpout.fetch_add(1, Ordering::Relaxed);
    if leave_shadow(phys, pfn, |shadow| {
        obj.remove_page_if(phys, index, pfn, 2, shadow, Some(e))
    }) {
        true
    } else {
        d.flags.fetch_or(PG_DIRTY, Ordering::AcqRel);
        let _ = area.put(e);
        false
    }
}
