//! A snapshot of machine counters.

use serde::Serialize;

/// Counters and gauges of a machine at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub tlb_hits: u64,
    pub tlb_misses: u64,
    pub minor_faults: u64,
    pub major_faults: u64,
    pub failed_faults: u64,
    pub zero_page_maps: u64,
    pub pages_wasted: u64,
    pub lock_waits: u64,
    pub shootdowns: u64,
    pub shootdown_cpus: u64,
    pub frames_total: u64,
    pub frames_free: u64,
    pub frames_used: u64,
    /// Free frames parked in per-CPU lists (counted in `frames_free`).
    pub pcp_frames: u64,
    pub page_table_pages: u64,
    /// Bytes the reverse map keeps (`Machine::rmap_bytes`; config `rmap`).
    pub rmap_bytes: u64,
    /// Swap slots (pages) of the swap area, and those in use (Linux
    /// `SwapTotal`, `SwapTotal - SwapFree`, in pages).
    pub swap_total: u64,
    pub swap_used: u64,
    /// Reclaim and paging counters, named as Linux's /proc/vmstat
    /// (`major_faults` above is `pgmajfault`).
    pub pgscan_kswapd: u64,
    pub pgscan_direct: u64,
    pub pgsteal_kswapd: u64,
    pub pgsteal_direct: u64,
    pub pgactivate: u64,
    pub pgdeactivate: u64,
    pub pglazyfree: u64,
    pub pglazyfreed: u64,
    pub workingset_refault: u64,
    pub workingset_activate: u64,
    pub pswpin: u64,
    pub pswpout: u64,
    pub oom_kill: u64,
    /// Host nanoseconds spent in reclaim (needs a clock from the host; 0 without).
    pub reclaim_ns: u64,
    /// Pages reclaim freed that more than one PTE mapped (`MmCounters::evicted_shared`).
    pub evicted_shared: u64,
    /// Rounds of the kswapd thread (`MmCounters::pageoutrun`).
    pub pageoutrun: u64,
    /// Swap entries in page tables, summed over processes (Linux `MM_SWAPENTS`).
    pub swap_entries: u64,
    pub rss_pages: u64,
    pub vmas: u64,
    pub processes: u64,
}

/// Pageable pages in memory (anonymous and page-cache frames) and those of
/// them that more than one page-table entry maps (`Machine::residency`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Residency {
    pub resident: u64,
    pub shared: u64,
}
