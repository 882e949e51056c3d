//! Reclaim: taking frames back from pages when memory runs short. The
//! mechanism is shared (`evict.rs`: unmap a page everywhere through the
//! reverse map, write it to swap or its file, drop it from its cache); the
//! designs differ only in which pages they look at and in what order, one
//! file each, and see accesses only as the accessed bits the hardware walk
//! sets (`Rmap::referenced` clears them and flushes the cleared entries'
//! translations, since a TLB hit sets nothing).
//!
//! - `clock.rs`: seed 002's page-centric single-handed clock over every
//!   frame, through the reverse map.
//! - `two_list.rs`: Linux's active and inactive lists (the design wherever
//!   the multi-generation LRU is off).
//! - `vma_scan.rs`: seed 000 #6 and Linux 2.4's `swap_out`: a walk of the
//!   address spaces' VMAs and page tables, round robin, instead of the
//!   frames.
//! - `mglru.rs`: Linux 6.1's multi-generation LRU: four lists as
//!   generations, aged by a walk of the page tables (`vma_scan`'s), evicted
//!   from the oldest.
//! - `clock_pro.rs`: CLOCK-Pro (Jiang, Chen & Zhang 2005, proposed for
//!   Linux): hot and cold pages, a cold page's test period, non-resident
//!   pages remembered through their shadows (`phys::Workingset`), an
//!   adaptive cold target.
//! - `external.rs`: not a design but a bound: while a `VictimOracle` is set
//!   (a trace replayer's exact LRU or OPT), it names the victims instead.
//!
//! Who runs it: kswapd's work (`Machine::kswapd`, after an allocation left
//! fewer free frames than the low watermark, until the high one is free
//! again) and direct reclaim (a fault that found no free frame, with every
//! lock dropped), and MADV_PAGEOUT (`Reclaimer::pageout`, after the
//! syscall dropped the map lock). MADV_COLD and MADV_FREE tell the design
//! about pages (`Reclaimer::deactivate`, `Reclaimer::lazyfree`), each
//! design answering in its own terms. One reclaimer runs at a time (`Reclaimer::busy`); reclaim
//! never waits for a map lock (`try_read`), so it may run from any path
//! that holds none.
//!
//! May call: `rmap`, `object`, `swap_cache`, `pte_ops`, `phys`, `swap`;
//! `vma_scan` and `mglru` also `registry`, `address_space`, `vma_map` and
//! `pgtable` (the page-table walk, `vma_scan::walk`).

mod clock;
mod clock_pro;
mod evict;
mod external;
mod mglru;
mod two_list;
mod vma_scan;

pub use external::VictimOracle;
pub(crate) use mglru::{Gens, MAX_NR_GENS, MIN_NR_GENS};

use super::object::MemObject;
use super::rmap::{Rmap, RmapCx};
use super::stats::MmCounters;
use crate::addr::Pfn;
use crate::phys::PhysMem;
use crate::sync::{Arc, AtomicU64, AtomicUsize, Mutex, Ordering};
use crate::tlb::PendingFlush;

/// Config values of `reclaim`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ReclaimPolicy {
    /// Seed 002: one hand over every frame, a referenced page's bit cleared
    /// (a second chance), an unreferenced one evicted.
    Clock,
    /// Linux: inactive and active lists, a referenced inactive page
    /// promoted, refaults activated by their refault distance.
    TwoList,
    /// Seed 000 #6, Linux 2.4's `swap_out`: walk the address spaces' page
    /// tables over their VMAs in turn, a PTE's accessed bit cleared (a
    /// second chance), the page of one found clear evicted.
    VmaScan,
    /// Linux 6.1+: the multi-generation LRU, 2 to 4 generations on four
    /// lists, aged by a page-table walk, evicted from the oldest.
    Mglru,
    /// CLOCK-Pro: hot and cold pages, a re-use in a cold page's test
    /// period (or a refault while it is remembered non-resident) making
    /// it hot, the cold share adapting to those.
    ClockPro,
}

impl ReclaimPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ReclaimPolicy::Clock => "clock",
            ReclaimPolicy::TwoList => "two_list",
            ReclaimPolicy::VmaScan => "vma_scan",
            ReclaimPolicy::Mglru => "mglru",
            ReclaimPolicy::ClockPro => "clock_pro",
        }
    }

    /// LRU lists the design keeps (`phys::Lru`).
    pub fn lru_lists(self) -> usize {
        match self {
            // One list, for membership only: the hand goes by frame
            // number, and isolates through the list's lock.
            ReclaimPolicy::Clock => 1,
            ReclaimPolicy::TwoList => 2,
            ReclaimPolicy::VmaScan => 0,
            ReclaimPolicy::Mglru => MAX_NR_GENS as usize,
            // Cold, hot, and mlocked pages parked.
            ReclaimPolicy::ClockPro => clock_pro::LISTS,
        }
    }
}

/// Pages reclaim looks at per batch (Linux `SWAP_CLUSTER_MAX`).
pub const SWAP_CLUSTER_MAX: usize = 32;

/// Rounds of direct reclaim without progress before the OOM killer runs
/// (Linux `MAX_RECLAIM_RETRIES`).
pub const MAX_RECLAIM_RETRIES: usize = 16;

/// Direct reclaim as a syscall path that found no free frame reaches it
/// (`FaultCtx::reclaim`; the machine answers with `Machine::reclaim`).
/// Preconditions of `direct_reclaim`: the caller holds no map lock,
/// page-table lock or claimed PTE.
pub trait DirectReclaim: Sync {
    /// Try to free a batch of frames for CPU `cpu` (or `NO_CPU`); the
    /// frames freed.
    fn direct_reclaim(&self, cpu: usize) -> usize;
}

/// For a context with nothing to reclaim (tests of one layer).
pub struct NoReclaim;

impl DirectReclaim for NoReclaim {
    fn direct_reclaim(&self, _cpu: usize) -> usize {
        0
    }
}

/// What reclaim needs from the machine.
pub struct ReclaimCx<'a> {
    pub rmap: &'a Rmap,
    pub rcx: RmapCx<'a>,
    /// The swap object (its cache is the swap cache), if the machine swaps.
    pub swap: Option<&'a Arc<MemObject>>,
    pub counters: &'a MmCounters,
    /// Shoot down a flush whose changes span address spaces (`remote`),
    /// then drop its frames' and swap entries' references.
    pub shootdown: &'a dyn Fn(PendingFlush),
    /// kswapd's work (counted in `*_kswapd`), else direct reclaim.
    pub kswapd: bool,
}

impl ReclaimCx<'_> {
    /// Count a batch: `scanned` pages looked at, `stolen` freed, as
    /// kswapd's or direct reclaim's (`pgscan_*`, `pgsteal_*`).
    fn account(&self, scanned: usize, stolen: usize) {
        let c = self.counters;
        let (scan, steal) = if self.kswapd {
            (&c.pgscan_kswapd, &c.pgsteal_kswapd)
        } else {
            (&c.pgscan_direct, &c.pgsteal_direct)
        };
        scan.fetch_add(scanned as u64, Ordering::Relaxed);
        steal.fetch_add(stolen as u64, Ordering::Relaxed);
    }
}

/// What `clock_pro` has adapted to (`Reclaimer::clock_pro`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ClockProState {
    /// Resident pages the cold ones may fill (the rest may be hot).
    pub cold_target: usize,
    /// Cold pages evicted in their test period and not yet refaulted or
    /// forgotten.
    pub nonresident: usize,
}

/// The design's state, one per machine.
pub struct Reclaimer {
    policy: ReclaimPolicy,
    /// One reclaimer at a time.
    busy: Mutex<()>,
    /// `clock`: the hand (the next frame to look at).
    hand: AtomicUsize,
    /// `vma_scan`: the address space to walk next (the first live one with
    /// an id at least this; Linux 2.4's `swap_mm`) and the address to
    /// resume its walk from (`mm->swap_address`).
    scan_mm: AtomicU64,
    scan_addr: AtomicU64,
    /// `mglru`: the live generations (changed under `busy`).
    gens: Mutex<Gens>,
    /// The oracle that names victims instead of the design, if one is set
    /// (`external.rs`); taken under `busy`.
    oracle: Mutex<Option<alloc::boxed::Box<dyn VictimOracle>>>,
    /// `clock_pro`: ring positions, hand-hot, the cold target and the
    /// non-resident pages (also the lists' `Workingset`).
    clock_pro: Option<alloc::sync::Arc<clock_pro::State>>,
}

impl Reclaimer {
    /// The design `policy`, reclaiming from `phys`'s lists (whose entry
    /// lists, and meaning of shadows, it sets).
    pub fn new(policy: ReclaimPolicy, phys: &PhysMem) -> Reclaimer {
        let lru = phys.lru();
        if policy == ReclaimPolicy::Mglru {
            mglru::init(lru);
        }
        let clock_pro = (policy == ReclaimPolicy::ClockPro).then(|| {
            let s = alloc::sync::Arc::new(clock_pro::State::new(phys.descs().len()));
            lru.set_workingset(s.clone());
            s
        });
        Reclaimer {
            policy,
            busy: Mutex::new(()),
            hand: AtomicUsize::new(0),
            scan_mm: AtomicU64::new(0),
            scan_addr: AtomicU64::new(0),
            gens: Mutex::new(Gens::INITIAL),
            oracle: Mutex::new(None),
            clock_pro,
        }
    }

    pub fn policy(&self) -> ReclaimPolicy {
        self.policy
    }

    /// `mglru`'s live generations; `None` under another design.
    pub fn generations(&self) -> Option<Gens> {
        (self.policy == ReclaimPolicy::Mglru).then(|| *self.gens.lock())
    }

    /// `clock_pro`'s adaptive state; `None` under another design.
    pub fn clock_pro(&self) -> Option<ClockProState> {
        self.clock_pro.as_ref().map(|s| s.snapshot())
    }

    /// Try to free `want` frames; returns how many were freed. Linux:
    /// `shrink_node` (from `balance_pgdat` or `try_to_free_pages`).
    ///
    /// Preconditions: the caller holds no map lock, page-table lock or
    /// claimed PTE.
    pub fn shrink(&self, cx: &ReclaimCx<'_>, want: usize) -> usize {
        let _one = self.busy.lock();
        let walks = cx.rcx.phys.walks();
        // Every design reaches page tables under read locks (the reverse
        // map's walks, `vma_scan`'s), fork-shared ones among them, which a
        // sharer's fault may unlink and release meanwhile: their frames are
        // freed only after this walk (Linux: reclaim's page-table walks
        // under RCU, `pte_offset_map`).
        walks.begin_reclaim();
        let mut oracle = self.oracle.lock();
        let n = if let Some(o) = oracle.as_mut() {
            external::shrink(self, cx, &mut **o)
        } else {
            match self.policy {
                ReclaimPolicy::Clock => clock::shrink(self, cx, want),
                ReclaimPolicy::TwoList => two_list::shrink(cx, want),
                ReclaimPolicy::VmaScan => vma_scan::shrink(self, cx, want),
                ReclaimPolicy::Mglru => mglru::shrink(self, cx, want),
                ReclaimPolicy::ClockPro => match &self.clock_pro {
                    Some(s) => clock_pro::shrink(s, cx, want),
                    None => 0,
                },
            }
        };
        drop(oracle);
        walks.end_reclaim();
        cx.rcx.phys.reap_tables();
        n
    }
}

impl Reclaimer {
    /// Let `oracle` name the victims from now on (`external.rs`), or the
    /// design again (`None`).
    pub fn set_oracle(&self, oracle: Option<alloc::boxed::Box<dyn VictimOracle>>) {
        let _one = self.busy.lock();
        *self.oracle.lock() = oracle;
    }

    /// MADV_COLD: the design's answer to "these pages are cold" for
    /// `pfns` (each with a reference the caller keeps), whose mappings'
    /// accessed bits madvise has cleared already. two_list moves active
    /// pages to the inactive list (Linux `folio_deactivate` →
    /// `lru_deactivate`, counting `pgdeactivate`); clock and vma_scan have
    /// no active list, so their reference state is cleared and each page
    /// counts (as Linux counts every folio under the multi-generation LRU).
    /// clock_pro makes each a cold page out of its test period at the cold
    /// tail. mglru moves them to the oldest generation (Linux `lru_deactivate`
    /// under `CONFIG_LRU_GEN`: `lru_gen_add_folio` with the folio's
    /// generation reset to the oldest).
    pub fn deactivate(&self, cx: &ReclaimCx<'_>, pfns: &[Pfn]) {
        // The generations hold still while pages move between them.
        let _one = (self.policy == ReclaimPolicy::Mglru).then(|| self.busy.lock());
        for &pfn in pfns {
            let Some(d) = cx.rcx.phys.desc(pfn) else { continue };
            d.flags.fetch_and(!crate::phys::PG_REFERENCED, Ordering::AcqRel);
            let moved = match self.policy {
                ReclaimPolicy::TwoList => two_list::deactivate(cx, pfn),
                ReclaimPolicy::ClockPro => match &self.clock_pro {
                    Some(s) => clock_pro::deactivate(s, cx, pfn),
                    None => false,
                },
                ReclaimPolicy::Mglru => mglru::to_oldest(self, cx, pfn, false),
                ReclaimPolicy::Clock | ReclaimPolicy::VmaScan => true,
            };
            if moved {
                cx.counters.pgdeactivate.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// MADV_FREE made `pfns` lazily freeable (each with a reference the
    /// caller keeps): put them where reclaim finds them soon. two_list:
    /// the inactive tail (Linux `lru_lazyfree` puts them at the head of the
    /// inactive file list, which reclaim scans before the anonymous lists
    /// when it cannot or need not swap; vmlab has one pair of lists for
    /// both, and the tail stands for that). clock, vma_scan: their accessed
    /// bits are already clear, so the hand or the walk takes them the next
    /// time it passes. mglru: the tail of the oldest generation.
    pub fn lazyfree(&self, cx: &ReclaimCx<'_>, pfns: &[Pfn]) {
        let _one = (self.policy == ReclaimPolicy::Mglru).then(|| self.busy.lock());
        for &pfn in pfns {
            let Some(d) = cx.rcx.phys.desc(pfn) else { continue };
            d.flags.fetch_and(!crate::phys::PG_REFERENCED, Ordering::AcqRel);
            match self.policy {
                ReclaimPolicy::TwoList | ReclaimPolicy::ClockPro => two_list::to_inactive_tail(cx, pfn),
                ReclaimPolicy::Mglru => {
                    mglru::to_oldest(self, cx, pfn, true);
                }
                ReclaimPolicy::Clock | ReclaimPolicy::VmaScan => {}
            }
        }
    }

    /// MADV_PAGEOUT: evict `pfns` now, whatever their references say. Each
    /// comes with a reference of the caller's, which this consumes (held
    /// beside the isolation's, it would make the page look in use to
    /// `evict`). Returns the pages freed.
    /// An anonymous page stays without swap, as on Linux. Linux:
    /// `reclaim_pages` → `reclaim_folio_list` → `shrink_folio_list`, which
    /// counts no `pgscan`/`pgsteal` (those are `shrink_inactive_list`'s);
    /// neither does this: `pswpout`, `pglazyfreed` count what it did.
    ///
    /// Preconditions: as `shrink`.
    pub fn pageout(&self, cx: &ReclaimCx<'_>, pfns: &[Pfn]) -> usize {
        let _one = self.busy.lock();
        self.pageout_locked(cx, pfns)
    }

    /// `pageout` with `busy` held.
    fn pageout_locked(&self, cx: &ReclaimCx<'_>, pfns: &[Pfn]) -> usize {
        let phys = cx.rcx.phys;
        let lru = phys.lru();
        let mut freed = 0;
        for &pfn in pfns {
            if !pageable(cx, pfn) {
                phys.put_frame(pfn);
                continue;
            }
            // Isolate it as the designs do (`folio_isolate_lru`), then drop
            // the caller's reference: a page on no list is being reclaimed
            // or freed by someone else. vma_scan keeps no lists: the
            // caller's reference is its isolation.
            let list = if lru.lists() > 0 {
                let l = lru.isolate(phys.descs(), pfn);
                phys.put_frame(pfn);
                match l {
                    Some(l) => Some(l),
                    None => continue,
                }
            } else {
                None
            };
            match evict::evict(cx, pfn) {
                evict::Evicted::Freed => freed += 1,
                evict::Evicted::Kept => {
                    if let Some(l) = list {
                        lru.add(phys.descs(), pfn, l);
                    }
                    phys.put_frame(pfn);
                }
            }
        }
        freed
    }
}

/// Whether `pfn` was used since reclaim last looked: an accessed bit on one
/// of its mappings (cleared, and the cleared remote translations shot
/// down, so the next access walks and sets it again) or else
/// `PG_REFERENCED` (cleared); with whether a mapping is mlocked. Linux:
/// `folio_referenced` + `folio_test_clear_referenced`.
fn used_since(cx: &ReclaimCx<'_>, pfn: Pfn) -> (bool, bool) {
    let refs = cx.rmap.referenced(&cx.rcx, pfn);
    if !refs.flush.remote.is_empty() {
        (cx.shootdown)(refs.flush);
    }
    // A page found accessed keeps its mark for the next look.
    let used = refs.young > 0
        || cx.rcx.phys.desc(pfn).is_some_and(|d| {
            d.flags.fetch_and(!crate::phys::PG_REFERENCED, Ordering::AcqRel) & crate::phys::PG_REFERENCED != 0
        });
    (used, refs.locked)
}

/// Whether reclaim may take `pfn` at all: an anonymous or page-cache page
/// (not a table, the zero page, a kernel client's frame).
fn pageable(cx: &ReclaimCx<'_>, pfn: Pfn) -> bool {
    use crate::phys::FrameUse;
    cx.rcx
        .phys
        .desc(pfn)
        .is_some_and(|d| matches!(d.usage(), FrameUse::Anon | FrameUse::PageCache))
}
