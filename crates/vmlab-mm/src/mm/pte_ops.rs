//! The PTE-operations layer: the only code that changes a leaf entry —
//! installs, clears, copies (fork, table unshare), moves (mremap), puts and
//! removes guard markers, changes protection, cleans (msync), claims and
//! publishes (`fault_lock = pte_bit`) — and the only code that changes a
//! mapped frame's `mapcount`. Every
//! operation keeps in step, with the entry: the frame's `mapcount` and
//! `refcount`, the owner's `rss`, the dirty state moved to the page when a
//! dirty entry goes, and what the TLBs must drop (`PendingFlush`).
//!
//! The one other writer is the hardware walk, which sets accessed and dirty
//! bits of a present entry (`LeafRef::mmu_set_accessed_dirty`).
//! `tests/pte_writers.rs` scans the source so that no other file writes a
//! leaf entry or a mapcount.
//!
//! Reference rules: an entry that maps a frame (present or PROT_NONE, not
//! the special zero page) holds one `mapcount` and one `refcount` of it. A
//! caller installing a frame hands over one reference it holds (a fresh
//! allocation's, or one `MemObject::get_page` returned); an entry cleared or
//! replaced leaves its reference in `flush.frames`, dropped once no TLB can
//! reach the frame.
//!
//! Reverse map: the designs that record each mapping (`rmap = pte_chain`,
//! `pte_pool`) link the entry's PTE pointer to its frame where the mapcount
//! is raised and unlink it where it is lowered (`phys/pte_links.rs`), so
//! a frame's recorded PTEs are exactly the entries that map it.
//!
//! Ordering: a frame's `mapcount` is raised before the entry that maps it is
//! visible and lowered after the entry is gone, so a CPU that finds an entry
//! never sees its frame unmapped (`do_wp_page` reads it to decide reuse).
//!
//! Linux: `set_pte_at` with `folio_add_*_rmap_pte` (install),
//! `ptep_get_and_clear` + `folio_remove_rmap_pte` in `zap_pte_range`,
//! `copy_present_pte`, `move_ptes`, `change_pte_range`, `ptep_clear_flush`
//! in `wp_page_copy`.
//!
//! May call: `addr`, `pgtable`, `phys`, `tlb`, `sync` (nothing else of `mm`:
//! it is the layer the rest of `mm` stands on).

use crate::addr::{vpn, Pfn};
use crate::pgtable::{LeafEntry, LeafRef, Pte};
use crate::phys::{FrameDesc, FrameUse, PhysMem, PteLinkKind, PG_DIRTY};
use crate::sync::{Ordering, PerCpuCounter};
use crate::tlb::PendingFlush;

/// Whose `rss` an entry's frame counts in: the address space whose table
/// holds it (its `AddressSpace::rss`, counted on CPU slot `usize`), or none
/// (a table shared by several address spaces, whose frames count in its
/// owner's rss as a whole, or an object table's in no one's).
/// The second counter is the address space's swap entries (`MM_SWAPENTS`).
#[derive(Copy, Clone)]
pub enum Rss<'a> {
    Of(&'a PerCpuCounter, &'a PerCpuCounter, usize),
    None,
}

#[inline]
fn add_to(c: &PerCpuCounter, cpu: usize, n: isize) {
    if n > 0 {
        c.add(cpu, n as usize);
    } else if n < 0 {
        c.sub(cpu, n.unsigned_abs());
    }
}

impl Rss<'_> {
    /// `cur` → `new` in one entry: frames and swap entries counted in step.
    #[inline]
    fn change(self, cur: Pte, new: Pte) {
        if let Rss::Of(rss, swap, cpu) = self {
            add_to(rss, cpu, counted(new) as isize - counted(cur) as isize);
            add_to(swap, cpu, is_swap(new) as isize - is_swap(cur) as isize);
        }
    }
}

/// Whether `p` is a swap entry (holding one reference to its slot).
#[inline]
pub fn is_swap(p: Pte) -> bool {
    matches!(p.decode(), LeafEntry::Swap(_))
}

/// Move the dirty bit of a PTE being cleared to the page it mapped, if that
/// is a page-cache page (anonymous pages have nowhere to be written back to
/// yet). Linux: `zap_pte_range` → `folio_mark_dirty`. Every path that clears
/// a PTE mapping a page for good does this (here, in `retire`).
/// An anonymous page's `PG_DIRTY` says its swap copy (if any) is stale:
/// reclaim writes it again.
#[inline]
pub fn transfer_dirty(d: &FrameDesc, old: Pte) {
    if old.dirty() && matches!(d.usage(), FrameUse::PageCache | FrameUse::Anon) {
        d.flags.fetch_or(PG_DIRTY, Ordering::AcqRel);
    }
}

/// Whether `p` holds a counted reference to its frame (maps one that is not special).
#[inline]
fn counted(p: Pte) -> bool {
    p.maps_frame() && !p.special()
}

/// Record in the reverse map that `e` maps `frame` (`rmap = pte_chain` or
/// `pte_pool`; the other designs keep nothing per PTE).
#[inline]
fn rmap_link(phys: &PhysMem, e: LeafRef<'_>, frame: Pfn) {
    if phys.pte_link_kind() != PteLinkKind::None {
        if let Some(at) = phys.word_index(e.word()) {
            phys.link_pte(frame, at);
        }
    }
}

/// Undo `rmap_link`.
#[inline]
fn rmap_unlink(phys: &PhysMem, e: LeafRef<'_>, frame: Pfn) {
    if phys.pte_link_kind() != PteLinkKind::None {
        if let Some(at) = phys.word_index(e.word()) {
            phys.unlink_pte(frame, at);
        }
    }
}

/// Give the frame of `new` its mapping (mapcount and reverse map) before
/// `new` becomes visible in `e`.
#[inline]
fn pre_install(phys: &PhysMem, e: LeafRef<'_>, new: Pte) {
    if counted(new) {
        if let Some(d) = phys.desc(new.pfn()) {
            d.mapcount.fetch_add(1, Ordering::AcqRel);
            rmap_link(phys, e, new.pfn());
        }
    }
}

/// Undo `pre_install` after a failed install: the caller keeps its reference.
#[inline]
fn undo_install(phys: &PhysMem, e: LeafRef<'_>, new: Pte) {
    if counted(new) {
        if let Some(d) = phys.desc(new.pfn()) {
            rmap_unlink(phys, e, new.pfn());
            d.mapcount.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// After `old` left its entry `e` for good (replaced or cleared): its dirty
/// bit goes to the page, its mapping ends (its PTE pointer too, unless the
/// caller `unlinked` it already), and its reference is released after the
/// shootdown; the TLBs must drop the translation.
#[inline]
fn retire(phys: &PhysMem, e: LeafRef<'_>, va: u64, old: Pte, unlinked: bool, flush: &mut PendingFlush) {
    if old.is_none() {
        return;
    }
    if is_swap(old) {
        // Not a translation: no TLB holds it. Its slot reference goes
        // with the flush's release (`PendingFlush::swap`).
        flush.swap.push(old.0);
        return;
    }
    flush.add_page(vpn(va));
    if counted(old) {
        if let Some(d) = phys.desc(old.pfn()) {
            transfer_dirty(d, old);
            if !unlinked {
                rmap_unlink(phys, e, old.pfn());
            }
            d.mapcount.fetch_sub(1, Ordering::AcqRel);
        }
        flush.frames.push(old.pfn());
    }
}

/// `cur` → `new` by `write` (a compare-and-swap that may fail, or the store
/// of a claimer), with the counts kept in step around it: `new`'s frame is
/// mapped before the entry is visible, `cur`'s retired after it is gone.
#[inline]
fn install_with(
    phys: &PhysMem,
    rss: Rss<'_>,
    (e, va): (LeafRef<'_>, u64),
    (cur, new): (Pte, Pte),
    flush: &mut PendingFlush,
    write: impl FnOnce() -> bool,
) -> bool {
    // A replaced frame's PTE pointer goes before the new one is linked:
    // under `pte_chain` both would use the entry's one link word.
    let relink = counted(cur) && phys.pte_link_kind() != PteLinkKind::None;
    if relink {
        rmap_unlink(phys, e, cur.pfn());
    }
    pre_install(phys, e, new);
    if !write() {
        undo_install(phys, e, new);
        if relink {
            rmap_link(phys, e, cur.pfn());
        }
        return false;
    }
    retire(phys, e, va, cur, relink, flush);
    rss.change(cur, new);
    true
}

/// Replace `cur` by `new` in `e` if it still holds `cur` (compare-and-swap),
/// keeping every count in step (see the module doc): `new`'s frame gains the
/// mapping and the reference the caller hands over, `cur`'s frame loses its
/// own into `flush`. `false`: the entry changed, nothing was done, and the
/// caller still holds its reference.
///
/// `new` must not be claimed; `cur` may be only if this CPU claimed it
/// (then use `publish`).
#[inline]
pub(crate) fn set(
    phys: &PhysMem,
    rss: Rss<'_>,
    e: LeafRef<'_>,
    va: u64,
    cur: Pte,
    new: Pte,
    flush: &mut PendingFlush,
) -> bool {
    debug_assert!(!new.locked() && !cur.locked());
    if phys.pte_link_kind() != PteLinkKind::None {
        // The reverse map's record of the entry (`pte_chain`'s one link
        // word per entry) must have one writer: claim the entry first, as
        // `pte_bit` does, so that two CPUs installing into it at once (object
        // faults install by compare-and-swap) never both link it.
        if !claim(e, cur) {
            return false;
        }
        return install_with(phys, rss, (e, va), (cur, new), flush, || {
            e.raw_store(new);
            true
        });
    }
    install_with(phys, rss, (e, va), (cur, new), flush, || {
        e.raw_cas(cur, new, Ordering::AcqRel).is_ok()
    })
}

/// Claim the entry that holds `cur` (not claimed) by setting its lock bit
/// (`fault_lock = pte_bit`, seed 000 #5). `false` if the entry changed.
/// While claimed only the claimer changes the entry, except that a walk may
/// still set the accessed bit of a present one (the publish overwrites it).
#[inline]
pub fn claim(e: LeafRef<'_>, cur: Pte) -> bool {
    debug_assert!(!cur.locked());
    e.raw_cas(cur, cur.with(Pte::LOCK), Ordering::Acquire).is_ok()
}

/// Give up a claim on an entry that held `cur`, leaving it as it was.
#[inline]
pub fn abandon(e: LeafRef<'_>, cur: Pte) {
    e.raw_store(cur.without(Pte::LOCK));
}

/// Publish `new` into the entry this CPU claimed when it held `cur`, which
/// releases the claim; counts as `set`. The release store orders the page's
/// contents (zeroed or copied) before any CPU that sees the entry reads them.
#[inline]
pub(crate) fn publish(
    phys: &PhysMem,
    rss: Rss<'_>,
    e: LeafRef<'_>,
    va: u64,
    cur: Pte,
    new: Pte,
    flush: &mut PendingFlush,
) {
    debug_assert!(!new.locked());
    install_with(phys, rss, (e, va), (cur.without(Pte::LOCK), new), flush, || {
        e.raw_store(new);
        true
    });
}

/// Clear `e` (`[va]`), whatever it holds, with `set`'s accounting: the
/// frame's dirty bit goes to the page and its reference into `flush`.
/// Returns what it held. Linux: `ptep_get_and_clear` in `zap_pte_range`.
#[inline]
pub(crate) fn clear(phys: &PhysMem, rss: Rss<'_>, e: LeafRef<'_>, va: u64, flush: &mut PendingFlush) -> Pte {
    let old = e.raw_swap(Pte(0));
    retire(phys, e, va, old, false, flush);
    rss.change(old, Pte(0));
    old
}

/// Which non-frame markers a zap leaves in place.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Markers {
    /// MADV_DONTNEED, MADV_DONTNEED_LOCKED: guard markers stay
    /// (Linux `zap_details` without `ZAP_FLAG_DROP_MARKER`).
    Keep,
    /// munmap, exit, exec, MAP_FIXED replacement, a table released: every
    /// entry goes (Linux `unmap_vmas` with `ZAP_FLAG_DROP_MARKER`).
    Drop,
}

/// Zap `e` (`[va]`) as `clear` does, except that a guard marker stays when
/// `markers` is `Keep`. Returns what it held (`Pte(0)` if it was left).
/// Linux: `zap_pte_range` → `zap_nonpresent_ptes` → `zap_install_uffd_wp_if_needed`
/// / `should_zap_markers`.
#[inline]
pub(crate) fn zap(
    phys: &PhysMem,
    rss: Rss<'_>,
    e: LeafRef<'_>,
    va: u64,
    markers: Markers,
    flush: &mut PendingFlush,
) -> Pte {
    let cur = e.load();
    if cur.is_none() || (markers == Markers::Keep && cur.decode() == LeafEntry::Guard) {
        return Pte(0);
    }
    clear(phys, rss, e, va, flush)
}

/// Put the guard marker into the entry `e` if it still holds `cur`, which
/// must be none (MADV_GUARD_INSTALL zaps the range first). No frame and no
/// translation is involved: nothing to count or flush. `false` if the entry
/// changed. Linux: `guard_install_set_pte` (`set_pte_at` of
/// `make_pte_marker(PTE_MARKER_GUARD)`).
#[inline]
pub(crate) fn install_guard(e: LeafRef<'_>, cur: Pte) -> bool {
    debug_assert!(cur.is_none() && !cur.locked());
    e.raw_cas(cur, Pte::GUARD, Ordering::AcqRel).is_ok()
}

/// Remove the guard marker from `e` if it holds one (MADV_GUARD_REMOVE);
/// any other entry is left alone. Returns whether a marker went.
/// Linux: `guard_remove_pte_entry` (`pte_clear` of a guard marker only).
#[inline]
pub(crate) fn remove_guard(e: LeafRef<'_>) -> bool {
    e.raw_cas(Pte::GUARD, Pte(0), Ordering::AcqRel).is_ok()
}

/// Change the bits of `e` without changing what it maps (protection,
/// write-protect, reuse after COW, the dirty bit): `f` maps the entry to its
/// new value or `None` to leave it. The frame must stay the same, so no
/// count changes; if the entry was present, its translation goes into
/// `flush`. Returns (old, new) if it changed.
#[inline]
pub(crate) fn update(
    e: LeafRef<'_>,
    va: u64,
    flush: Option<&mut PendingFlush>,
    mut f: impl FnMut(Pte) -> Option<Pte>,
) -> Option<(Pte, Pte)> {
    let r = e.raw_update(|cur| {
        if cur.locked() {
            return None;
        }
        let new = f(cur)?;
        debug_assert!(!new.locked());
        debug_assert_eq!(counted(new), counted(cur));
        debug_assert!(!counted(cur) || new.pfn() == cur.pfn());
        (new != cur).then_some(new)
    });
    if let (Some((old, _)), Some(flush)) = (r, flush) {
        if old.present() {
            flush.add_page(vpn(va));
        }
    }
    r
}

/// Clear the dirty bit of `e` and move it to its page (msync): a CPU that
/// caches the translation writable must drop it, so that its next store
/// walks and sets the bit again. Returns the entry as it was.
#[inline]
pub(crate) fn clean(phys: &PhysMem, e: LeafRef<'_>, va: u64, flush: &mut PendingFlush) -> Option<Pte> {
    let (old, _) = update(e, va, None, |p| p.dirty().then(|| p.without(Pte::DIRTY)))?;
    if let Some(d) = phys.desc(old.pfn()) {
        transfer_dirty(d, old);
    }
    flush.add_page(vpn(va));
    Some(old)
}

/// Copy entry value `pte` into the empty entry `dst` of another table (fork,
/// a shared table's private copy): `pte`'s frame gains a mapping and a
/// reference. The caller has made `pte` what the copy should hold (write
/// protected for copy-on-write); for a swap entry it has taken the slot's
/// extra reference (`SwapArea::dup`). Linux: `copy_present_pte`,
/// `copy_nonpresent_pte`.
#[inline]
pub(crate) fn copy_into(phys: &PhysMem, rss: Rss<'_>, dst: LeafRef<'_>, pte: Pte) {
    debug_assert!(dst.load().is_none() && !pte.locked());
    if counted(pte) {
        if let Some(d) = phys.desc(pte.pfn()) {
            d.refcount.fetch_add(1, Ordering::AcqRel);
        }
    }
    pre_install(phys, dst, pte);
    dst.raw_store(pte);
    rss.change(Pte(0), pte);
}

/// Move the entry `src` (`[va]`) to the empty entry `dst` of the same
/// address space (mremap): counts stay, the old translation goes into
/// `flush`. Linux: `move_ptes`.
#[inline]
pub(crate) fn move_to(phys: &PhysMem, src: LeafRef<'_>, va: u64, dst: LeafRef<'_>, flush: &mut PendingFlush) {
    let v = src.raw_swap(Pte(0));
    if v.is_none() {
        return;
    }
    debug_assert!(dst.load().is_none());
    if counted(v) && phys.desc(v.pfn()).is_some() {
        // The frame's mapping moves: its PTE pointer changes, not its counts.
        rmap_link(phys, dst, v.pfn());
        dst.raw_store(v);
        rmap_unlink(phys, src, v.pfn());
    } else {
        dst.raw_store(v);
    }
    flush.add_page(vpn(va));
}

/// A reference on the frame `cur` maps through `entry`, if `entry` still
/// maps it once the reference is taken (then it is the page `cur` named;
/// else the reference, perhaps on a frame freed and reused since, is
/// dropped and `None` returned). For a caller that read `cur` without a
/// lock that keeps the entry still: a fault's `FaultError::NoMemory`, an
/// oracle's victim.
pub(crate) fn hold_mapped(phys: &PhysMem, entry: LeafRef<'_>, cur: Pte) -> Option<Pfn> {
    let pfn = cur.pfn();
    if !phys.desc(pfn)?.try_get() {
        return None;
    }
    let now = entry.load();
    if now.maps_frame() && now.pfn() == pfn {
        Some(pfn)
    } else {
        phys.put_frame(pfn);
        None
    }
}
