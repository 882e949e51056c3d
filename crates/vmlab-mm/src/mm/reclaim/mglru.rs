//! Linux's multi-generation LRU (6.1+, `mm/vmscan.c` under
//! `CONFIG_LRU_GEN`): pages are kept in generations, numbered by sequence
//! numbers from `min_seq` (the oldest, evicted from) to `max_seq` (the
//! youngest); between `MIN_NR_GENS` (2) and `MAX_NR_GENS` (4) of them are
//! alive. Generation `seq` is LRU list `seq % MAX_NR_GENS`
//! (`lru_gen_from_seq`), so `lru_lists` is 4 and a list is reused once
//! its generation was retired and `max_seq` came round to it.
//!
//! Owns: the sequence numbers (`Reclaimer::gens`), changed only under
//! `Reclaimer::busy`, and the LRU lists' entry lists (`Lru::set_entry_lists`)
//! that follow them.
//!
//! Where pages enter (`Lru::place`, Linux `lru_gen_add_folio` with
//! `folio_add_lru`'s `lru_gen_in_fault()` rule): a page brought in by a
//! fault (anonymous zero-fill, a file page a fault read, a swap-in) goes
//! to the youngest generation, a page brought in any other way (a file
//! page `read`/`write` brought into the cache, an eager fork's copy) to
//! the oldest. A refault within the working set by its refault distance
//! goes to the youngest and counts `workingset_activate`.
//!
//! Aging (Linux `try_to_inc_max_seq`, `walk_mm`, `walk_pte_range`,
//! `inc_max_seq`): when only `MIN_NR_GENS` generations are left, every
//! address space's page tables are walked (`vma_scan::walk`, map locks by
//! `try_read`); a PTE of a pageable frame whose accessed bit is set has it
//! cleared and its page moved to the head of the youngest generation's
//! list (`pgactivate` if it was on another). The cleared entries'
//! translations of one batch (`MAX_LRU_BATCH` young PTEs) are shot down
//! once, after the map lock is dropped: a TLB hit sets no accessed bit,
//! so without the flush a page kept in use through its cached translation
//! would look idle at the next aging. Then `max_seq` goes up by one, and
//! faults' pages go to the new youngest generation; unless the youngest
//! list is empty even after the walk (nothing faulted in or found young
//! since the last aging): an empty generation would be retired at once and
//! leave the pages the last aging found young in the oldest, so the
//! generations stay and eviction goes on from the oldest. One call of
//! `shrink` ages once, and again only while it has freed nothing: a walk
//! right after another finds nothing young (no access ran in between).
//!
//! Eviction (Linux `evict_folios`, `scan_folios`, `sort_folio`,
//! `isolate_folio`, `lru_gen_look_around`): pages are isolated from the
//! tail of the oldest generation's list, `SWAP_CLUSTER_MAX` at a time, and
//! each is checked through the reverse map (`Rmap::referenced`, which also
//! clears the bits and gives the flush): one accessed since the aging, or
//! in a `VM_LOCKED` VMA, is promoted to the youngest generation
//! (`pgactivate`); the others go through the shared `evict`; a page
//! `evict` keeps (busy, no slot) goes to the second oldest generation
//! (`sort_folio`'s `folio_inc_gen` for pages it cannot take now), so one
//! batch never meets it again. When the oldest list is empty and more
//! than `MIN_NR_GENS` generations are left, `min_seq` goes up by one
//! (`inc_min_seq`/`try_to_inc_min_seq`).
//!
//! Simplified against Linux, on purpose or for now:
//! - one set of generations for anonymous and file pages (Linux keeps
//!   `min_seq[type]` per type and balances them by swappiness; there is no
//!   swappiness here);
//! - no tiers, no `PG_referenced`/`refs` counting of accesses through file
//!   descriptors, no PID controller choosing between types and tiers
//!   (`get_type_to_scan`, `lru_gen_refault`'s per-tier refaults); a page
//!   used only through `read` is never promoted;
//! - the refault test is the generic refault distance (evictions since the
//!   shadow, against the pages listed), not Linux's "evicted from the
//!   current `min_seq`" token in the shadow;
//! - the aging walk visits every address space every time (no
//!   `mm_struct` list with per-walk bloom filters skipping page tables
//!   found without young entries, no `MIN_LRU_BATCH` batching of
//!   generation updates: pages are moved on the list at once, not
//!   lazily by generation number in the flags);
//! - eviction's look-around checks only the page's own mappings (Linux
//!   also tests the neighbouring PTEs of the same table and promotes
//!   their pages);
//! - no timestamps, no `min_ttl_ms` thrashing protection, no
//!   `lru_gen_age_node` for kswapd (kswapd and direct reclaim both age
//!   when they need to, and both evict);
//! - pages in fork-shared `TABLE_COW` or object `TABLE_OBJ` tables are
//!   aged from the table's sharer of lowest id only (`vma_scan::walk`), the
//!   cleared bit shot down in every sharer, as for a private table;
//! - an anonymous page an eager fork copies goes to the oldest generation
//!   (Linux: `min_seq + 1` for an anonymous page outside the swap cache).
//!
//! Costs: an aging pays one PTE test per mapped PTE of every address space
//! and one shootdown per address space per batch of young PTEs, and every
//! page it finds young moves once on the lists; an eviction pays a
//! reverse-map search per page (to check and to unmap).
//!
//! May call: `evict`, `vma_scan::walk` (and through it `registry`,
//! `address_space`, `vma_map`, `pgtable`), `pte_ops`, `rmap`, `phys`, `tlb`.
//!
//! Lock order: as `vma_scan` under a map lock (the LRU lock is taken under
//! it by `Lru::move_to`); shootdowns and evictions run after it is dropped.

use super::evict::{evict, Evicted};
use super::vma_scan::walk;
use super::{pageable, ReclaimCx, Reclaimer, SWAP_CLUSTER_MAX};
use crate::mm::pte_ops;
use crate::pgtable::Pte;
use crate::phys::{EntryLists, Lru};
use crate::sync::Ordering;

/// Generations kept alive at least and at most (Linux `MIN_NR_GENS`,
/// `MAX_NR_GENS`); the lists are indexed by `seq % MAX_NR_GENS`.
pub const MIN_NR_GENS: u64 = 2;
pub const MAX_NR_GENS: u64 = 4;

/// Young PTEs an aging walk clears before it drops the map lock and
/// shoots their translations down (Linux `MAX_LRU_BATCH`).
const MAX_LRU_BATCH: usize = 128;

/// The live generations, oldest and youngest (Linux `lru_gen_folio`'s
/// `min_seq` and `max_seq`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Gens {
    pub min_seq: u64,
    pub max_seq: u64,
}

impl Gens {
    /// Linux `lru_gen_init_lruvec`: `max_seq = MIN_NR_GENS + 1`, `min_seq`
    /// 0: every list a live generation.
    pub const INITIAL: Gens = Gens {
        min_seq: 0,
        max_seq: MIN_NR_GENS + 1,
    };

    /// Generations alive (0 for a broken pair, `max_seq < min_seq`).
    pub fn count(self) -> u64 {
        match self.max_seq.checked_sub(self.min_seq) {
            Some(d) => d.saturating_add(1),
            None => 0,
        }
    }

    /// The list of generation `seq` (Linux `lru_gen_from_seq`).
    pub fn list(seq: u64) -> usize {
        (seq % MAX_NR_GENS) as usize
    }

    /// Whether list `list` holds a live generation.
    pub fn live(self, list: usize) -> bool {
        let n = self.count().min(MAX_NR_GENS);
        (0..n).any(|k| Gens::list(self.min_seq.wrapping_add(k)) == list)
    }

    /// Where `Lru::place` puts pages while these are the generations.
    fn entry(self) -> EntryLists {
        EntryLists {
            fault: Gens::list(self.max_seq),
            other: Gens::list(self.min_seq),
            refault: Gens::list(self.max_seq),
        }
    }
}

/// MADV_COLD, MADV_FREE: move `pfn`, if it is listed, to the oldest
/// generation (its tail, where eviction takes next, if `tail`). Whether it
/// moved. Precondition: `r.busy` held (the generations hold still).
pub(super) fn to_oldest(r: &Reclaimer, cx: &ReclaimCx<'_>, pfn: crate::addr::Pfn, tail: bool) -> bool {
    let phys = cx.rcx.phys;
    let oldest = Gens::list(r.gens.lock().min_seq);
    if tail {
        phys.lru().move_to_tail(phys.descs(), pfn, oldest)
    } else {
        phys.lru().move_to(phys.descs(), pfn, oldest)
    }
}

/// Point the LRU's entry lists at the initial generations.
pub(super) fn init(lru: &Lru) {
    lru.set_entry_lists(Gens::INITIAL.entry());
}

/// Evict until `want` frames are freed, aging when only `MIN_NR_GENS`
/// generations are left. Linux: `lru_gen_shrink_lruvec` / `try_to_shrink_lruvec`.
pub(super) fn shrink(r: &Reclaimer, cx: &ReclaimCx<'_>, want: usize) -> usize {
    let phys = cx.rcx.phys;
    let lru = phys.lru();
    let descs = phys.descs();
    let mut freed = 0;
    let mut scanned = 0;
    // Enough batches to look at every listed page twice.
    let mut batches = 2 * (lru.total() / SWAP_CLUSTER_MAX + 1);
    let mut agings = 0;
    // Whether another aging may run in this call: not after one that opened
    // no generation, and not once pages were freed after one (the process
    // must run before a walk can find anything young; a second walk at
    // once would find nothing, and the pages the first found young would be
    // evicted from the generation it left oldest).
    let mut may_age = true;
    while freed < want && batches > 0 {
        let g = *r.gens.lock();
        if g.count() <= MIN_NR_GENS {
            if agings > 0 && freed > 0 {
                break;
            }
            if may_age && agings < MAX_NR_GENS {
                agings += 1;
                may_age = age(r, cx, g);
                if may_age {
                    continue;
                }
            }
        }
        let batch = lru.isolate_tail(descs, Gens::list(g.min_seq), SWAP_CLUSTER_MAX);
        if batch.is_empty() {
            if g.count() <= MIN_NR_GENS {
                break;
            }
            if !inc_min_seq(r, lru, g) {
                batches -= 1;
            }
            continue;
        }
        batches -= 1;
        let youngest = Gens::list(g.max_seq);
        for pfn in batch {
            scanned += 1;
            let refs = cx.rmap.referenced(&cx.rcx, pfn);
            if !refs.flush.remote.is_empty() {
                (cx.shootdown)(refs.flush);
            }
            if refs.young > 0 || refs.locked {
                cx.counters.pgactivate.fetch_add(1, Ordering::Relaxed);
                lru.add(descs, pfn, youngest);
                phys.put_frame(pfn);
                continue;
            }
            match evict(cx, pfn) {
                Evicted::Freed => freed += 1,
                Evicted::Kept => {
                    lru.add(descs, pfn, Gens::list(g.min_seq + 1));
                    phys.put_frame(pfn);
                }
            }
        }
    }
    cx.account(scanned, freed);
    freed
}

/// Retire the oldest generation if its list is empty and more than
/// `MIN_NR_GENS` are alive; returns whether it was. Linux: `try_to_inc_min_seq`.
fn inc_min_seq(r: &Reclaimer, lru: &Lru, g: Gens) -> bool {
    if g.count() <= MIN_NR_GENS {
        return false;
    }
    let next = Gens {
        min_seq: g.min_seq + 1,
        ..g
    };
    // Under the list lock: a page `place` puts on the oldest list meanwhile
    // keeps it alive.
    let retired = lru.set_entry_lists_if_empty(Gens::list(g.min_seq), next.entry());
    if retired {
        *r.gens.lock() = next;
    }
    retired
}

/// Walk every address space's page tables, moving the pages whose accessed
/// bit was set (now cleared, their translations shot down) to the youngest
/// generation, then open a new youngest one if that one holds pages (an
/// empty generation between two would only be retired at once, leaving
/// the pages found young now in the oldest); returns whether it did.
/// Linux: `try_to_inc_max_seq` (`walk_mm` over the mm list,
/// `walk_pte_range`), then `inc_max_seq`.
fn age(r: &Reclaimer, cx: &ReclaimCx<'_>, g: Gens) -> bool {
    let phys = cx.rcx.phys;
    let lru = phys.lru();
    let descs = phys.descs();
    let youngest = Gens::list(g.max_seq);
    let mut next_mm = 0;
    while let Some(mm) = cx.rcx.mms.next_from(next_mm) {
        next_mm = mm.id + 1;
        let mut from = 0;
        loop {
            let mut young = 0;
            let walked = walk(cx, &mm, from, |va, e, sharers, b| {
                let p = e.load();
                if p.locked() || !p.maps_frame() || p.special() || !p.accessed() {
                    return false;
                }
                let pfn = p.pfn();
                if !pageable(cx, pfn) {
                    return false;
                }
                let Some((old, _)) = pte_ops::update(e, va, None, |q| q.accessed().then(|| q.without(Pte::ACCESSED)))
                else {
                    return false;
                };
                if old.present() {
                    b.young_shared(mm.id, sharers, va);
                }
                young += 1;
                // The entry mapped `pfn` when its bit was cleared; a frame
                // freed and listed anew since is only aged early.
                let was = phys.desc(pfn).and_then(|d| d.lru_list());
                if was != Some(youngest) && lru.move_to(descs, pfn, youngest) {
                    cx.counters.pgactivate.fetch_add(1, Ordering::Relaxed);
                }
                young >= MAX_LRU_BATCH
            });
            // A busy map lock: skipped this aging (Linux skips an mm it
            // cannot `mmap_read_trylock`).
            let Some(mut b) = walked else { break };
            if !b.flush.remote.is_empty() {
                (cx.shootdown)(core::mem::take(&mut b.flush));
            }
            match b.next {
                Some(va) => from = va,
                None => break,
            }
        }
    }
    if lru.len(youngest) == 0 {
        return false;
    }
    let next = Gens {
        max_seq: g.max_seq + 1,
        ..g
    };
    lru.set_entry_lists(next.entry());
    *r.gens.lock() = next;
    true
}
