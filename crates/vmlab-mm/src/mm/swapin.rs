//! A fault on a swap entry: map the page from the swap cache, or ask the
//! caller to read it in first with every lock dropped
//! (`PageRead::Swap`). Linux: `do_swap_page`.
//!
//! Ownership: a page read back gets an owner when first mapped: the
//! faulting VMA's identity if its slot has no other entry (exclusive), else
//! the root of that identity's fork chain, which every VMA that may hold
//! the other entries is a member of (Linux `__folio_set_anon` with
//! `anon_vma->root` for a page that is not exclusive). Under `private_vma`,
//! where one identity is one address space, a slot shared by fork is
//! copied on swap-in instead (a COW break at swap-in).
//!
//! Exclusivity: a write fault on a slot that only this entry and the cache
//! hold maps the page writable and frees the slot (its copy would be
//! stale); otherwise the page is mapped read-only and a store takes
//! `do_wp_page`, which frees the slot then if the page became exclusive.
//!
//! May call: `fault`, `swap_cache`, `pte_ops`, `phys`, `pgtable`.

use super::address_space::{AddressSpace, MapState};
use super::fault::{discard_frame, new_anon_frame, Access, FaultCtx, FaultError, PageRead};
use super::pte_ops;
use super::swap_cache;
use super::vma::Vma;
use crate::addr::page_floor;
use crate::errno::{Fault, FaultReason};
use crate::pgtable::{LeafRef, Pte, SwapEntry};
use crate::phys::{Owner, PG_IO};
use crate::sync::Ordering;
use crate::tlb::PendingFlush;

/// Resolve a fault on `entry`, which held `cur`, the swap entry `se`.
/// `None`: the entry changed under us (retry).
///
/// Preconditions: the map lock is held for reading; the entry's table is
/// private to `mm` (a fork-shared one was copied first).
#[allow(clippy::too_many_arguments)]
pub(super) fn do_swap_page(
    cx: &FaultCtx<'_>,
    (mm, st): (&AddressSpace, &MapState),
    vma: &Vma,
    (addr, access): (u64, Access),
    entry: LeafRef<'_>,
    (cur, se): (Pte, SwapEntry),
    base: u64,
    flush: &mut PendingFlush,
) -> Result<Option<Pte>, FaultError> {
    let phys = cx.phys;
    let Some(swap) = cx.swap else {
        // A swap entry on a machine without swap: a state nothing writes.
        return Err(Fault::segv(addr, FaultReason::BadAddress).into());
    };
    let Some(area) = swap.swap_area() else {
        return Err(Fault::segv(addr, FaultReason::BadAddress).into());
    };
    let Some(pfn) = swap_cache::lookup(swap, phys, se) else {
        return Err(FaultError::Retry(PageRead::Swap {
            swap: swap.clone(),
            entry: se,
            addr,
        }));
    };
    // `pfn` carries a reference of ours from here on.
    let Some(d) = phys.desc(pfn) else {
        return Err(Fault::segv(addr, FaultReason::BadAddress).into());
    };
    if d.flags.load(Ordering::Acquire) & PG_IO != 0 {
        phys.put_frame(pfn);
        return Err(FaultError::Retry(PageRead::Wait));
    }
    if entry.load() != cur {
        phys.put_frame(pfn);
        return Ok(None);
    }
    let rss = mm.counts_on(cx.cpu);
    // This entry's slot reference and the cache's: no other entry names it.
    let exclusive = area.count(se) == 2;
    // A VMA holding swap entries had anonymous pages: it has an identity.
    let vid = AddressSpace::prepare_anon_locked(st, vma, cx.ids, mm.id);
    if !exclusive && !cx.ids.chained() {
        // `private_vma`: one identity per address space, so a page shared
        // by fork cannot be; this address space gets its own copy.
        let Some(copy) = new_anon_frame(cx, vma, addr) else {
            return Err(FaultError::NoMemory { addr, keep: Some(pfn) });
        };
        phys.ram().copy_frame(copy, pfn);
        phys.put_frame(pfn);
        let new = Pte::new(copy, base | Pte::ACCESSED | Pte::DIRTY);
        if pte_ops::set(phys, rss, entry, addr, cur, new, flush) {
            return Ok(Some(new));
        }
        discard_frame(cx, copy);
        return Ok(None);
    }
    if d.owner() == Owner::None {
        let anon = if exclusive { vid } else { cx.ids.root_of(vid) };
        d.set_owner(Owner::Anon {
            anon,
            index: vma.pgoff_of(page_floor(addr)),
        });
    }
    let new = if access == Access::Write && exclusive {
        // Ours and the cache's frame references: take it out of the cache.
        if swap_cache::remove_if(swap, phys, pfn, 2, None) {
            Pte::new(pfn, base | Pte::ACCESSED | Pte::DIRTY)
        } else {
            Pte::new(pfn, (base & !Pte::WRITE) | Pte::ACCESSED)
        }
    } else {
        Pte::new(pfn, (base & !Pte::WRITE) | Pte::ACCESSED)
    };
    // Our reference becomes the mapping's; the swap entry's slot reference
    // goes with the flush (`PendingFlush::swap`).
    if pte_ops::set(phys, rss, entry, addr, cur, new, flush) {
        if new.dirty() {
            d.flags.fetch_or(crate::phys::PG_DIRTY, Ordering::AcqRel);
        }
        // A store that got a read-only mapping (the page is not exclusive)
        // goes on in the fault loop: `do_wp_page` reuses or copies it. The
        // fault returns only an entry that allows its access.
        if access == Access::Write && !new.writable() {
            return Ok(None);
        }
        return Ok(Some(new));
    }
    phys.put_frame(pfn);
    Ok(None)
}
