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
//!
//! Who runs it: kswapd's work (`Machine::kswapd`, after an allocation left
//! fewer free frames than the low watermark, until the high one is free
//! again) and direct reclaim (a fault that found no free frame, with every
//! lock dropped). One reclaimer runs at a time (`Reclaimer::busy`); reclaim
//! never waits for a map lock (`try_read`), so it may run from any path
//! that holds none.
//!
//! May call: `rmap`, `object`, `swap_cache`, `pte_ops`, `phys`, `swap`;
//! `vma_scan` also `registry`, `address_space`, `vma_map` and `pgtable`
//! (its walk).

mod clock;
mod evict;
mod two_list;
mod vma_scan;

use super::object::MemObject;
use super::rmap::{Rmap, RmapCx};
use super::stats::MmCounters;
use crate::addr::Pfn;
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
}

impl ReclaimPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ReclaimPolicy::Clock => "clock",
            ReclaimPolicy::TwoList => "two_list",
            ReclaimPolicy::VmaScan => "vma_scan",
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
}

impl Reclaimer {
    pub fn new(policy: ReclaimPolicy) -> Reclaimer {
        Reclaimer {
            policy,
            busy: Mutex::new(()),
            hand: AtomicUsize::new(0),
            scan_mm: AtomicU64::new(0),
            scan_addr: AtomicU64::new(0),
        }
    }

    pub fn policy(&self) -> ReclaimPolicy {
        self.policy
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
        let n = match self.policy {
            ReclaimPolicy::Clock => clock::shrink(self, cx, want),
            ReclaimPolicy::TwoList => two_list::shrink(cx, want),
            ReclaimPolicy::VmaScan => vma_scan::shrink(self, cx, want),
        };
        walks.end_reclaim();
        cx.rcx.phys.reap_tables();
        n
    }
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
