//! The invariant checker: walks every structure and reports the first
//! broken invariant. Tests call it after every operation sequence.
//!
//! Invariants:
//! 1. Each zone allocator's own `check()` holds.
//! 2. Free frames + frames handed out == total frames, where free frames are
//!    those free in a zone allocator plus those in per-CPU lists; a frame is
//!    free (in its zone or in a list, never both) iff its descriptor says
//!    `Free`; a listed frame is in the first zone, in one list, once, and is
//!    neither mapped nor a reachable page table.
//! 3. Page-table pages reachable from live address spaces == page-table
//!    pages allocated; each one's refcount is the number of entries that
//!    reach it (more than one for a table shared by fork policy `shared_pt`,
//!    whose PD entries must be read-only).
//! 4. Every mapped frame's `mapcount` equals the number of leaf PTEs that map
//!    it (a PTE in a shared table counts once), and its `refcount` equals its `mapcount` (no other holders exist
//!    yet; a page-cache frame has one more, see 6); every anonymous frame is mapped at least once (no leak).
//! 5. VMAs are page aligned, non-empty, sorted and disjoint; every leaf PTE
//!    lies inside a VMA and grants no more than the VMA allows, with the
//!    protection key the VMA's flags name (execute-only or none); an address
//!    space's `rss` equals the frames it reaches, counting a fork-shared
//!    table's frames only in its owner's and an object table's in no one's
//!    (see `mm/shared_pt.rs`).
//! 6. Memory objects (`check_objects`): every page-cache frame is in exactly
//!    one object's cache, at the offset its descriptor names, is used as
//!    `PageCache` and has `refcount == 1 + mapcount`; every `PageCache`
//!    frame is in a cache; every live object is mapped by a VMA or open in
//!    the file table; a PTE that maps a page-cache frame lies in a VMA
//!    backed by that object at that offset, read-only unless the VMA is
//!    shared; a shared VMA maps only its object's pages (never the zero page
//!    or an anonymous frame), and a VMA backed by an object never maps the zero page.
//!
//! 7. The reverse map (`mm/rmap/`): for every mapped frame, the design finds
//!    exactly the (address space, address) pairs whose PTE maps it; under
//!    `pte_chain`/`pte_pool` the frame's PTE pointers are exactly its
//!    mapping entries, one each (none stale, none missing), and a frame
//!    mapped nowhere has none; each fork-shared table's sharer list is the
//!    set of address spaces that reach it.
//!
//! 8. Swap and reclaim (`check_swap`): every slot's count equals the swap
//!    entries that name it (an entry of a fork-shared table once), plus
//!    one per shared anonymous object that keeps it, plus one if the swap
//!    cache holds its page; a swap entry lies in a private VMA; each
//!    swap-cache page is anonymous, has `PG_SWAPCACHE` and names its slot,
//!    is not `PG_LAZYFREE` (lazily freed pages are dropped, never swapped),
//!    and holds one reference more than its mappings; an address space's
//!    `swapents` equals the entries of its own tables (not checked once it
//!    shared tables by fork); every LRU list holds exactly its counted
//!    pages, each pageable and marked with that list, and under a design
//!    that keeps lists every pageable page not being read in is on one;
//!    under `mglru`, `MIN_NR_GENS` to `MAX_NR_GENS` generations are alive
//!    and every non-empty list is a live generation's (`seq % MAX_NR_GENS`
//!    for a `seq` from `min_seq` to `max_seq`), as are the lists new pages
//!    go to.
//!
//! The checker needs a quiescent machine: no CPU may be faulting while it runs.

use super::machine::{Machine, Pid, Process};
use crate::addr::{is_page_aligned, Pfn, TASK_SIZE};
use crate::frame::FrameAllocator;
use crate::mm::reclaim::{Gens, MAX_NR_GENS, MIN_NR_GENS};
use crate::mm::{VmFlags, Vma, VmaMap};
use crate::pgtable::{LeafEntry, Level, Pte};
use crate::phys::{FrameUse, Owner, PG_IO, PG_LAZYFREE, PG_SWAPBACKED};
use crate::sync::{Arc, Ordering};
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// A broken invariant, described.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvariantError(pub String);

impl fmt::Display for InvariantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! ensure {
    ($c:expr, $($arg:tt)*) => {
        if !$c {
            return Err(InvariantError(format!($($arg)*)));
        }
    };
}

/// The checker's per-frame arrays: mappings counted per frame, parent
/// entries per page-table page, per-CPU list membership.
type MapCount = i32;
type TableRefs = u32;
type Listed = bool;

/// Host bytes per frame the checker allocates while it runs (`Machine::check`
/// at the end of `vmlab run`); part of `Machine::host_bytes_needed`.
pub const HOST_BYTES_PER_FRAME: usize =
    core::mem::size_of::<MapCount>() + core::mem::size_of::<TableRefs>() + core::mem::size_of::<Listed>();

/// `n` copies of `v`, or an error if the host cannot hold them (never an
/// abort; `Machine::host_bytes_needed` counts these arrays, so a host that
/// passed that check can).
fn per_frame<T: Clone>(n: usize, v: T) -> Result<Vec<T>, InvariantError> {
    let mut out = Vec::new();
    out.try_reserve_exact(n).map_err(|_| {
        InvariantError(format!(
            "checker: the host cannot hold {} bytes for its per-frame counts",
            n.saturating_mul(core::mem::size_of::<T>())
        ))
    })?;
    out.resize(n, v);
    Ok(out)
}

pub(crate) fn check(m: &Machine, procs: &BTreeMap<Pid, Arc<Process>>) -> Result<(), InvariantError> {
    let phys = m.phys();
    let total = phys.total_frames();

    // 1, 2.
    let mut free = 0;
    for z in phys.zones() {
        let a = z.alloc.lock();
        a.check().map_err(|e| InvariantError(format!("zone {}: {e}", z.name)))?;
        free += a.free_frames();
    }
    let listed = listed_frames(phys)?;
    let n_listed = listed.iter().filter(|&&l| l).count();
    ensure!(
        n_listed == phys.pcp_frames(),
        "per-CPU lists: {n_listed} frames listed but {} counted",
        phys.pcp_frames()
    );
    free += n_listed;
    ensure!(
        free + phys.frames_used() == total,
        "frames: {free} free ({n_listed} in per-CPU lists) + {} used != {total} total",
        phys.frames_used()
    );
    for (i, &in_list) in listed.iter().enumerate() {
        let pfn = Pfn(i);
        let Some(d) = phys.desc(pfn) else { continue };
        let in_zone = phys
            .zones()
            .iter()
            .find(|z| i >= z.start.0 && i < z.start.0 + z.frames)
            .is_some_and(|z| z.alloc.lock().is_free(pfn));
        ensure!(
            !(in_zone && in_list),
            "frame {i}: free in its zone and in a per-CPU list"
        );
        let is_free = in_zone || in_list;
        ensure!(
            is_free == (d.usage() == FrameUse::Free),
            "frame {i}: allocator says free={is_free} (per-CPU list: {in_list}) but descriptor says {:?}",
            d.usage()
        );
        // Typed owners: each use has its kind of owner.
        let owner = d.owner();
        let fits = match d.usage() {
            FrameUse::Free | FrameUse::Zero | FrameUse::RmapLinks => owner == Owner::None,
            // A page read into the swap cache has no owner until first mapped.
            FrameUse::Anon => {
                matches!(owner, Owner::Anon { anon, .. } if anon != 0)
                    || (owner == Owner::None && d.swap_entry().is_some())
            }
            FrameUse::PageCache => matches!(owner, Owner::Object { .. }),
            FrameUse::PageTable => matches!(owner, Owner::None | Owner::PageTable { .. } | Owner::ObjectTable { .. }),
            FrameUse::Kernel => owner == Owner::Kernel,
        };
        ensure!(fits, "frame {i}: used as {:?} but owned by {owner:?}", d.usage());
    }

    // 3, 4, 5.
    let mut maps: Vec<MapCount> = per_frame(total, 0)?;
    // Parent entries that reach each page-table page (a shared table is
    // reached from several address spaces; the root from none, counted as 1).
    let mut table_refs: Vec<TableRefs> = per_frame(total, 0)?;
    // 7: who maps each frame (address space, address), and who reaches each
    // fork-shared table, as the walk finds them.
    let mut views: BTreeMap<usize, Vec<(u64, u64)>> = BTreeMap::new();
    let mut cow_reach: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    // 8: swap entries by the RAM word that holds them (an entry of a
    // shared table is seen through each sharer, counted once).
    let mut swap_ptes: BTreeMap<usize, u64> = BTreeMap::new();
    for p in procs.values() {
        let st = p.mm.map.read();
        if st.dead {
            continue;
        }
        let mut vmas: Vec<Vma> = Vec::with_capacity(st.vmas.len());
        st.vmas.for_each(&mut |v| vmas.push(v.clone()));
        let mut prev_end = 0u64;
        for v in &vmas {
            ensure!(
                is_page_aligned(v.start) && is_page_aligned(v.end) && v.start < v.end && v.end <= TASK_SIZE,
                "pid {}: bad VMA {:#x}-{:#x}",
                p.pid,
                v.start,
                v.end
            );
            ensure!(
                v.start >= prev_end,
                "pid {}: VMAs overlap or are unsorted at {:#x}",
                p.pid,
                v.start
            );
            prev_end = v.end;
        }
        let pt = p.mm.page_table();
        let mut bad: Option<String> = None;
        // Frames of shared tables this address space does not own: not in its rss.
        let mut not_owned = 0usize;
        pt.for_each_table(phys, |level, table, parent| {
            let Some(r) = table_refs.get_mut(table.0) else {
                bad = Some(format!("pid {}: page table {} beyond RAM", p.pid, table.0));
                return false;
            };
            *r += 1;
            if parent.0 & Pte::TABLE_COW != 0 && (level != Level::Pt || parent.writable()) {
                bad = Some(format!(
                    "pid {}: copy-on-write table {} is writable or not a leaf table",
                    p.pid, table.0
                ));
            }
            let first = *r == 1;
            if parent.0 & Pte::TABLE_COW != 0 {
                cow_reach.entry(table.0).or_default().push(p.mm.id);
            }
            let owner = phys.desc(table).map_or(Owner::None, |d| d.owner());
            let owner_ok = match owner {
                Owner::PageTable { mm } => {
                    parent.0 & Pte::TABLE_OBJ == 0 && (mm == p.mm.id || parent.0 & Pte::TABLE_COW != 0)
                }
                // Private tables are not given an owner yet (their frames
                // are their address space's by construction).
                Owner::None => parent.0 & Pte::TABLE_OBJ == 0,
                Owner::ObjectTable { .. } => parent.0 & Pte::TABLE_OBJ != 0,
                _ => false,
            };
            if !owner_ok {
                bad = Some(format!(
                    "pid {}: page table {} reached through {:#x} has owner {owner:?}",
                    p.pid, table.0, parent.0
                ));
            }
            let owns = owner == (Owner::PageTable { mm: p.mm.id });
            if (parent.0 & Pte::TABLE_COW != 0 && !owns) || parent.0 & Pte::TABLE_OBJ != 0 {
                not_owned += count_frames(phys, table);
            }
            if first && level == Level::Pt {
                // Count each leaf table's mappings once, however many share it.
                if let Some(words) = phys.ram().frame(table) {
                    for w in words {
                        let pte = Pte(w.load(Ordering::Acquire));
                        if parent.0 & Pte::TABLE_OBJ != 0 && pte.decode() == LeafEntry::Guard {
                            bad = Some(format!("pid {}: guard marker in object table {}", p.pid, table.0));
                        }
                        if pte.maps_frame() && !pte.special() {
                            if let Some(c) = maps.get_mut(pte.pfn().0) {
                                *c += 1;
                            }
                        }
                    }
                }
            }
            first
        });
        let mut rss = 0usize;
        let mut own_swap = 0usize;
        let mut vi = 0usize;
        pt.for_each_leaf(phys, 0, TASK_SIZE, |va, e| {
            let pte = e.load();
            if pte.is_none() || bad.is_some() {
                return;
            }
            while vi < vmas.len() && vmas[vi].end <= va {
                vi += 1;
            }
            let Some(v) = vmas.get(vi).filter(|v| v.start <= va) else {
                bad = Some(format!("pid {}: PTE {:#x} at {va:#x} outside every VMA", p.pid, pte.0));
                return;
            };
            if pte.locked() {
                bad = Some(format!("pid {}: PTE at {va:#x} left locked", p.pid));
                return;
            }
            match pte.decode() {
                // A guard marker (MADV_GUARD_INSTALL) may be in any VMA,
                // of any protection; it maps no frame (no rss, no mapcount).
                LeafEntry::Guard => return,
                LeafEntry::Swap(se) => {
                    if v.flags.has(crate::mm::VmFlags::SHARED) {
                        bad = Some(format!("pid {}: swap entry at {va:#x} in a shared VMA", p.pid));
                    }
                    if let Some(w) = phys.word_index(e.word()) {
                        swap_ptes.insert(w as usize, se.offset);
                    }
                    own_swap += 1;
                    return;
                }
                LeafEntry::None | LeafEntry::Present(_) | LeafEntry::ProtNone(_) => {}
                // Nothing writes the others yet.
                other => {
                    bad = Some(format!("pid {}: PTE {:#x} at {va:#x} holds {other:?}", p.pid, pte.0));
                    return;
                }
            }
            if pte.maps_frame() && pte.0 & Pte::PKEY_MASK != crate::mm::address_space::leaf_pkey_bits(v.flags) {
                bad = Some(format!(
                    "pid {}: PTE at {va:#x} has protection key {} but its VMA flags {:?}",
                    p.pid,
                    pte.pkey(),
                    v.flags
                ));
                return;
            }
            if pte.writable() && !v.prot.write() {
                bad = Some(format!(
                    "pid {}: writable PTE at {va:#x} in a VMA without PROT_WRITE",
                    p.pid
                ));
                return;
            }
            if pte.present() != v.prot.accessible() {
                bad = Some(format!(
                    "pid {}: PTE at {va:#x} present={} but VMA prot {:?}",
                    p.pid,
                    pte.present(),
                    v.prot
                ));
                return;
            }
            if pte.special() {
                if pte.pfn() != phys.zero_pfn() || pte.writable() {
                    bad = Some(format!(
                        "pid {}: special PTE at {va:#x} is not a read-only zero page",
                        p.pid
                    ));
                }
                return;
            }
            if pte.pfn().0 >= total {
                bad = Some(format!(
                    "pid {}: PTE at {va:#x} maps frame {} beyond RAM",
                    p.pid,
                    pte.pfn().0
                ));
            }
            views.entry(pte.pfn().0).or_default().push((p.mm.id, va));
            rss += 1;
        });
        if let Some(b) = bad {
            return Err(InvariantError(b));
        }
        let counted = p.mm.rss.get();
        // A broken state can reach more frames through tables it does not
        // own than through its own walk: report it, never underflow.
        let Some(rss) = rss.checked_sub(not_owned) else {
            return Err(InvariantError(format!(
                "pid {}: {not_owned} frames in page tables it does not own, but only {rss} frames mapped below TASK_SIZE",
                p.pid
            )));
        };
        ensure!(counted == rss, "pid {}: rss {counted} but {rss} frames mapped", p.pid);
        if !p.mm.shares_tables() {
            let sc = p.mm.swapents.get();
            ensure!(
                sc == own_swap,
                "pid {}: swapents {sc} but {own_swap} swap entries",
                p.pid
            );
        }
    }
    for (i, _) in listed.iter().enumerate().filter(|(_, &l)| l) {
        ensure!(
            maps[i] == 0 && table_refs[i] == 0,
            "frame {i}: in a per-CPU list but mapped by {} PTEs and reached by {} table entries",
            maps[i],
            table_refs[i]
        );
    }
    let tables = table_refs.iter().filter(|&&r| r > 0).count();
    ensure!(
        phys.walks().pending() == 0,
        "page tables: {} unlinked tables still deferred while no CPU walks",
        phys.walks().pending()
    );
    ensure!(
        tables == phys.page_table_pages(),
        "page tables: {tables} reachable but {} allocated",
        phys.page_table_pages()
    );
    for (i, &r) in table_refs.iter().enumerate() {
        if r == 0 {
            continue;
        }
        let rc = phys.desc(Pfn(i)).map_or(0, |d| d.refcount.load(Ordering::Relaxed));
        ensure!(rc == r, "page table {i}: refcount {rc} but {r} entries reach it");
    }
    for (i, &n) in maps.iter().enumerate() {
        let Some(d) = phys.desc(Pfn(i)) else { continue };
        let mc = d.mapcount.load(Ordering::Relaxed);
        ensure!(mc == n, "frame {i}: mapcount {mc} but {n} PTEs map it");
        if d.usage() == FrameUse::Anon {
            let rc = d.refcount.load(Ordering::Relaxed);
            // The swap cache holds one reference of its own (8).
            let cached = d.swap_entry().is_some() as i32;
            ensure!(n + cached >= 1, "frame {i}: anonymous frame mapped nowhere (leaked)");
            ensure!(
                rc as i32 == n + cached,
                "frame {i}: refcount {rc} != mapcount {n} + swap cache {cached}"
            );
        } else if n > 0 && d.usage() != FrameUse::PageCache {
            // Page-cache frames: see `check_objects`.
            ensure!(false, "frame {i}: mapped but used as {:?}", d.usage());
        }
    }
    check_swap(m, &swap_ptes)?;
    check_rmap(m, &maps, &views, &cow_reach)
}

/// 8 (see the module doc).
fn check_swap(m: &Machine, swap_ptes: &BTreeMap<usize, u64>) -> Result<(), InvariantError> {
    let phys = m.phys();
    let lru = phys.lru();
    let gens = m.lru_generations().map(|(min_seq, max_seq)| Gens { min_seq, max_seq });
    if let Some(g) = gens {
        ensure!(
            (MIN_NR_GENS..=MAX_NR_GENS).contains(&g.count()),
            "LRU generations {}..={}: not {MIN_NR_GENS} to {MAX_NR_GENS} alive",
            g.min_seq,
            g.max_seq
        );
        let e = lru.entry_lists();
        ensure!(
            g.live(e.fault) && g.live(e.other) && g.live(e.refault),
            "LRU generations {}..={}: new pages go to a dead one ({e:?})",
            g.min_seq,
            g.max_seq
        );
    }
    for list in 0..lru.lists() {
        if let Some(g) = gens {
            ensure!(
                lru.len(list) == 0 || g.live(list),
                "LRU list {list}: {} frames in no live generation ({}..={})",
                lru.len(list),
                g.min_seq,
                g.max_seq
            );
        }
        let frames = lru.frames(phys.descs(), list);
        ensure!(
            frames.len() == lru.len(list),
            "LRU list {list}: {} frames linked but {} counted",
            frames.len(),
            lru.len(list)
        );
        for f in frames {
            let Some(d) = phys.desc(f) else { continue };
            ensure!(
                matches!(d.usage(), FrameUse::Anon | FrameUse::PageCache) && d.lru_list() == Some(list),
                "frame {}: on LRU list {list} but used as {:?}, marked {:?}",
                f.0,
                d.usage(),
                d.lru_list()
            );
        }
    }
    // A design that keeps lists finds every page it may reclaim on them
    // (the clock isolates through the list): a pageable page on none, not
    // being read in, is out of reclaim's reach for good (Linux: a folio
    // that missed `folio_add_lru`).
    if lru.lists() > 0 {
        for (i, d) in phys.descs().iter().enumerate() {
            let live = matches!(d.usage(), FrameUse::Anon | FrameUse::PageCache) && d.refcount() > 0;
            ensure!(
                !live || d.lru_list().is_some() || d.flags.load(Ordering::Acquire) & PG_IO != 0,
                "frame {i}: a pageable page ({:?}, owner {:?}, refcount {}, mapcount {}) on no LRU list",
                d.usage(),
                d.owner(),
                d.refcount(),
                d.mapcount()
            );
        }
    }
    let Some(area) = m.swap() else {
        ensure!(
            swap_ptes.is_empty(),
            "{} swap entries on a machine without swap",
            swap_ptes.len()
        );
        return Ok(());
    };
    let mut want: BTreeMap<u64, u64> = BTreeMap::new();
    for &slot in swap_ptes.values() {
        *want.entry(slot).or_default() += 1;
    }
    for o in m.objects().snapshot() {
        for e in o.cache.lock().swapped.values() {
            *want.entry(e.offset).or_default() += 1;
        }
    }
    if let Some(swap) = m.objects().swap() {
        for (slot, pfn) in swap.cache_snapshot() {
            *want.entry(slot).or_default() += 1;
            let Some(d) = phys.desc(pfn) else { continue };
            ensure!(
                d.usage() == FrameUse::Anon && d.swap_entry().map(|w| Pte(w).swap_entry().offset) == Some(slot),
                "frame {}: in the swap cache at slot {slot} but used as {:?}, naming {:?}",
                pfn.0,
                d.usage(),
                d.swap_entry()
            );
            // A lazily freed page is dropped, never swapped: MADV_FREE
            // frees its swap copy first, and eviction takes it before it
            // could join the cache.
            ensure!(
                d.flags.load(Ordering::Relaxed) & PG_LAZYFREE == 0,
                "frame {}: in the swap cache at slot {slot} and PG_LAZYFREE",
                pfn.0
            );
        }
    }
    let have: BTreeMap<u64, u64> = area.counts().into_iter().map(|(s, c)| (s, c as u64)).collect();
    ensure!(
        have == want,
        "swap slots: counts {:?} but references {:?}",
        have.iter().take(8).collect::<Vec<_>>(),
        want.iter().take(8).collect::<Vec<_>>()
    );
    ensure!(
        area.used() == have.len() as u64,
        "swap: {} slots used but {} have references",
        area.used(),
        have.len()
    );
    Ok(())
}

/// Invariant 7: the reverse map (see the module doc). Runs after every
/// address space's map lock is released: `mappings_of` takes them.
fn check_rmap(
    m: &Machine,
    maps: &[MapCount],
    views: &BTreeMap<usize, Vec<(u64, u64)>>,
    cow_reach: &BTreeMap<usize, Vec<u64>>,
) -> Result<(), InvariantError> {
    let phys = m.phys();
    for (table, sharers) in phys.shared_tables() {
        let mut want = cow_reach.get(&table.0).cloned().unwrap_or_default();
        want.sort_unstable();
        let mut got = sharers;
        got.sort_unstable();
        ensure!(
            got == want,
            "page table {}: sharer list {got:?} but reached copy-on-write from {want:?}",
            table.0
        );
    }
    for (&t, reach) in cow_reach {
        ensure!(
            !phys.table_sharers(Pfn(t)).is_empty(),
            "page table {t}: shared by {reach:?} but has no sharer list"
        );
    }
    if phys.pte_link_kind() != crate::phys::PteLinkKind::None {
        for (i, &n) in maps.iter().enumerate() {
            let Some(d) = phys.desc(Pfn(i)) else { continue };
            if !matches!(d.usage(), FrameUse::Anon | FrameUse::PageCache) {
                continue;
            }
            let ptes = phys.linked_ptes(Pfn(i));
            ensure!(
                ptes.len() == n as usize,
                "frame {i}: {} PTE pointers recorded but {n} PTEs map it",
                ptes.len()
            );
            for w in ptes {
                let now = phys
                    .ram()
                    .word(w as usize)
                    .map_or(Pte(0), |e| Pte(e.load(Ordering::Relaxed)));
                ensure!(
                    now.maps_frame() && !now.special() && now.pfn().0 == i,
                    "frame {i}: recorded PTE pointer {w} holds {:#x}, which does not map it",
                    now.0
                );
            }
        }
    }
    // Under `none` every lookup walks every address space: check a bounded
    // number of frames so that the checker stays linear.
    let limit = if m.rmap().policy() == crate::mm::RmapPolicy::None {
        256
    } else {
        usize::MAX
    };
    for (&frame, want) in views.iter().take(limit) {
        let mut want = want.clone();
        want.sort_unstable();
        let got = m.mappings_of(Pfn(frame));
        ensure!(
            got == want,
            "frame {frame}: rmap ({}) finds {got:x?} but it is mapped at {want:x?}",
            m.rmap().policy().as_str()
        );
    }
    Ok(())
}

/// Invariant 6: memory objects and their page caches (see the module doc).
pub(crate) fn check_objects(
    m: &Machine,
    procs: &BTreeMap<Pid, Arc<Process>>,
    files: &BTreeMap<i32, Arc<super::files::OpenFile>>,
) -> Result<(), InvariantError> {
    let phys = m.phys();
    let objects = m.objects().snapshot();
    ensure!(
        objects.len() == m.objects().len(),
        "objects: {} in the table but {} counted live",
        objects.len(),
        m.objects().len()
    );
    // Which object caches each frame.
    let mut owner: BTreeMap<usize, u64> = BTreeMap::new();
    for o in &objects {
        let id = o.id().0;
        // References: the table's, this snapshot's, and at least one VMA's or fd's.
        ensure!(
            Arc::strong_count(o) > 2,
            "object {id}: neither mapped nor open, but not released"
        );
        // Object tables: one sharer per reference, each a PD entry of a
        // live address space at its span that reaches the table.
        for (key, table, sharers) in o.shared_tables_snapshot() {
            let rc = phys.desc(table).map_or(0, |d| d.refcount.load(Ordering::Relaxed));
            ensure!(
                sharers.len() as u64 == rc as u64,
                "object {id}: shared table {key:?} (frame {}) has refcount {rc} but {} sharers",
                table.0,
                sharers.len()
            );
            for (mm_id, span) in sharers {
                let p = procs.values().find(|p| p.mm.id == mm_id);
                let reaches = p
                    .and_then(|p| p.mm.page_table().pd_entry(phys, span))
                    .is_some_and(|pe| {
                        let v = Pte(pe.load(Ordering::Acquire));
                        v.0 & Pte::TABLE_OBJ != 0 && v.pfn() == table
                    });
                ensure!(
                    reaches,
                    "object {id}: shared table {} lists address space {mm_id} at {span:#x}, which does not reach it",
                    table.0
                );
            }
        }
        for (pgoff, pfn) in o.cache_snapshot() {
            ensure!(
                owner.insert(pfn.0, id).is_none(),
                "frame {}: in the caches of two objects",
                pfn.0
            );
            let Some(d) = phys.desc(pfn) else {
                return Err(InvariantError(format!(
                    "object {id}: cached frame {} beyond RAM",
                    pfn.0
                )));
            };
            ensure!(
                d.usage() == FrameUse::PageCache,
                "frame {}: cached by object {id} but used as {:?}",
                pfn.0,
                d.usage()
            );
            ensure!(
                d.owner()
                    == (Owner::Object {
                        object: id,
                        index: pgoff
                    }),
                "frame {}: cached by object {id} at page {pgoff} but its descriptor says {:?}",
                pfn.0,
                d.owner()
            );
            let swapbacked = d.flags.load(Ordering::Relaxed) & PG_SWAPBACKED != 0;
            ensure!(
                swapbacked != o.is_file(),
                "frame {}: PG_SWAPBACKED={swapbacked} on a page of a {}",
                pfn.0,
                if o.is_file() { "file" } else { "shared anonymous object" }
            );
            let (rc, mc) = (d.refcount.load(Ordering::Relaxed), d.mapcount.load(Ordering::Relaxed));
            ensure!(
                mc >= 0 && rc as i64 == 1 + mc as i64,
                "frame {}: page-cache page with refcount {rc} != 1 + mapcount {mc}",
                pfn.0
            );
        }
    }
    for (fd, o) in files.iter().map(|(fd, f)| (fd, &f.obj)) {
        ensure!(
            objects.iter().any(|x| Arc::ptr_eq(x, o)),
            "fd {fd}: its object {} is not in the object table",
            o.id().0
        );
    }
    for i in 0..phys.total_frames() {
        let Some(d) = phys.desc(Pfn(i)) else { continue };
        if d.usage() == FrameUse::PageCache {
            ensure!(
                owner.contains_key(&i),
                "frame {i}: page-cache frame in no cache (leaked)"
            );
        }
    }
    // PTEs against the VMAs that hold them.
    for p in procs.values() {
        let st = p.mm.map.read();
        if st.dead {
            continue;
        }
        let mut vmas: Vec<Vma> = Vec::with_capacity(st.vmas.len());
        st.vmas.for_each(&mut |v| vmas.push(v.clone()));
        for v in &vmas {
            if let Some(o) = v.backing.object() {
                ensure!(
                    objects.iter().any(|x| Arc::ptr_eq(x, o)),
                    "pid {}: VMA {:#x}-{:#x} maps object {}, which is not in the object table",
                    p.pid,
                    v.start,
                    v.end,
                    o.id().0
                );
            }
        }
        let mut bad: Option<String> = None;
        let mut vi = 0usize;
        p.mm.page_table().for_each_leaf(phys, 0, TASK_SIZE, |va, e| {
            let pte = e.load();
            if bad.is_some() || !pte.maps_frame() {
                return;
            }
            while vi < vmas.len() && vmas[vi].end <= va {
                vi += 1;
            }
            // A PTE outside every VMA is reported by `check`.
            let Some(v) = vmas.get(vi).filter(|v| v.start <= va) else {
                return;
            };
            let obj = v.backing.object();
            let shared = v.flags.has(VmFlags::SHARED);
            if pte.special() {
                if obj.is_some() {
                    bad = Some(format!(
                        "pid {}: zero page mapped at {va:#x} in a VMA backed by an object",
                        p.pid
                    ));
                }
                return;
            }
            let Some(d) = phys.desc(pte.pfn()) else { return };
            if d.usage() != FrameUse::PageCache {
                if shared {
                    bad = Some(format!(
                        "pid {}: shared VMA maps frame {} ({:?}) at {va:#x}, not a page of its object",
                        p.pid,
                        pte.pfn().0,
                        d.usage()
                    ));
                }
                return;
            }
            match (obj, d.owner()) {
                (Some(o), Owner::Object { object, index }) if o.id().0 == object && v.pgoff_of(va) == index => {}
                (_, owner) => {
                    bad = Some(format!(
                        "pid {}: PTE at {va:#x} maps a page owned by {owner:?}, but the VMA is {:?} at page {}",
                        p.pid,
                        v.backing,
                        v.pgoff_of(va)
                    ));
                    return;
                }
            }
            if pte.writable() && !shared {
                bad = Some(format!(
                    "pid {}: page-cache page writable at {va:#x} in a private mapping",
                    p.pid
                ));
            }
        });
        if let Some(b) = bad {
            return Err(InvariantError(b));
        }
    }
    Ok(())
}

/// Which frames are in per-CPU lists; an error if one is outside the first
/// zone or listed twice (in one list or in two).
fn listed_frames(phys: &crate::phys::PhysMem) -> Result<Vec<Listed>, InvariantError> {
    let mut listed: Vec<Listed> = per_frame(phys.total_frames(), false)?;
    let (start, frames) = phys.zones().first().map_or((0, 0), |z| (z.start.0, z.frames));
    let mut bad: Option<String> = None;
    phys.pcp().for_each(|cpu, pfn| {
        if bad.is_some() {
            return;
        }
        if pfn.0 < start || pfn.0 >= start + frames {
            bad = Some(format!(
                "frame {}: in CPU {cpu}'s per-CPU list but outside the first zone",
                pfn.0
            ));
        } else if core::mem::replace(&mut listed[pfn.0], true) {
            bad = Some(format!(
                "frame {}: listed twice in per-CPU lists (again on CPU {cpu})",
                pfn.0
            ));
        }
    });
    match bad {
        Some(b) => Err(InvariantError(b)),
        None => Ok(listed),
    }
}

/// Frames (not the zero page) mapped by leaf table `table`.
fn count_frames(phys: &crate::phys::PhysMem, table: Pfn) -> usize {
    phys.ram().frame(table).map_or(0, |words| {
        words
            .iter()
            .filter(|w| {
                let p = Pte(w.load(Ordering::Relaxed));
                p.maps_frame() && !p.special()
            })
            .count()
    })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::frame::FrameAllocator;
    use crate::phys::{Fill, FrameUse};
    use crate::system::{ByteSize, Machine, MachineConfig};

    /// Moved from `tests/pcp.rs` when the zones' allocators became
    /// crate-private: the corruption it plants needs one.
    #[test]
    fn a_listed_frame_freed_in_the_zone_too_is_caught() {
        let m = Machine::new(&MachineConfig {
            ram: ByteSize(32 << 20),
            cpus: 2,
            pcp_batch: 8,
            ..Default::default()
        })
        .unwrap();
        let p = m.phys();
        let pfn = p.alloc_page(0, FrameUse::Kernel, Fill::Zero).unwrap();
        assert!(p.put_frame_on(1, pfn));
        m.check().unwrap();
        assert!(p.pcp().contains(pfn));
        // Freeing a listed frame in the zone as well makes it free twice.
        p.zones()[0].alloc.lock().free(pfn, 1).unwrap();
        let e = m.check().unwrap_err().0;
        assert!(e.contains("per-CPU"), "{e}");
    }

    /// The checker is not a test that cannot fail: corrupting a mapcount, a
    /// refcount or the rss is reported. (Moved from `tests/machine.rs` when
    /// a frame's counts became crate-private.)
    #[test]
    fn checker_reports_corruption() {
        use crate::mm::uapi::{MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE};
        use crate::sync::Ordering;
        let m = Machine::new(&MachineConfig {
            ram: ByteSize(64 << 20),
            ..Default::default()
        })
        .unwrap();
        let pid = m.spawn().unwrap();
        let a = m
            .mmap(pid, 0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
            .unwrap();
        m.write(pid, a, &[1]).unwrap().unwrap();
        m.check().unwrap();
        let p = m.process(pid).unwrap();
        let pte = p.mm.page_table().leaf(m.phys(), a).unwrap().load();
        let d = m.phys().desc(pte.pfn()).unwrap();
        d.mapcount.fetch_add(1, Ordering::Relaxed);
        assert!(m.check().unwrap_err().0.contains("mapcount"));
        d.mapcount.fetch_sub(1, Ordering::Relaxed);
        d.refcount.fetch_add(1, Ordering::Relaxed);
        assert!(m.check().unwrap_err().0.contains("refcount"));
        d.refcount.fetch_sub(1, Ordering::Relaxed);
        p.mm.rss.add(0, 1);
        assert!(m.check().unwrap_err().0.contains("rss"));
        p.mm.rss.sub(0, 1);
        m.check().unwrap();
    }

    /// Under `mglru`, a page on a list no live generation owns is reported
    /// (one there would never be evicted until `max_seq` came round to it).
    #[test]
    fn a_page_in_a_dead_generation_is_caught() {
        use crate::mm::reclaim::Gens;
        use crate::mm::uapi::{MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE};
        let mut cfg = MachineConfig {
            ram: ByteSize(4 << 20),
            swap_size: ByteSize(16 << 20),
            cpus: 1,
            ..Default::default()
        };
        cfg.apply_pairs("reclaim=mglru").unwrap();
        let m = Machine::new(&cfg).unwrap();
        let pid = m.spawn().unwrap();
        let pages = 2 * (4 << 20) / 4096;
        let a = m
            .mmap(
                pid,
                0,
                pages * 4096,
                PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS,
            )
            .unwrap();
        let mut cpu = m.cpu(0).unwrap();
        cpu.switch_to(pid).unwrap();
        for i in 0..pages {
            cpu.store_u64(a + i * 4096, i).unwrap();
        }
        drop(cpu);
        m.check().unwrap();
        let (min_seq, max_seq) = m.lru_generations().unwrap();
        assert!(max_seq - min_seq + 1 < 4, "{min_seq}..={max_seq}");
        let dead = Gens::list(min_seq + 3);
        let p = m.process(pid).unwrap();
        let pfn = (0..pages)
            .find_map(|i| {
                let e = p.mm.page_table().leaf(m.phys(), a + i * 4096)?.load();
                e.present().then(|| e.pfn())
            })
            .unwrap();
        assert!(m.phys().lru().move_to(m.phys().descs(), pfn, dead));
        let e = m.check().unwrap_err().0;
        assert!(e.contains("no live generation"), "{e}");
    }
}
