//! Event counters of the mm layer, shared by every address space of a machine.

use crate::sync::{AtomicU64, Ordering};

/// Counters bumped on fault and syscall paths (relaxed atomics: statistics,
/// not synchronisation). Linux: `vm_event_states`.
#[derive(Default)]
pub struct MmCounters {
    /// Faults resolved without I/O. Linux: `PGFAULT` minus major.
    pub minor_faults: AtomicU64,
    /// Faults that had to read their page from a file first (dropping their
    /// locks for the read and retrying). Linux: `PGMAJFAULT` (`pgmajfault`).
    pub major_faults: AtomicU64,
    /// Faults that raised a signal or found no memory.
    pub failed_faults: AtomicU64,
    /// Pages mapped from the shared zero page.
    pub zero_page_maps: AtomicU64,
    /// Frames allocated by a fault and freed because another CPU filled the PTE first.
    pub pages_wasted: AtomicU64,
    /// Faults that found the lock their policy takes held by another CPU
    /// (the mm lock, a page-table lock, or a claimed PTE), once per fault.
    pub lock_waits: AtomicU64,
    /// TLB shootdown rounds (one per syscall that changed translations).
    pub shootdowns: AtomicU64,
    /// CPU TLBs invalidated by shootdowns (a round counts each CPU reached).
    pub shootdown_cpus: AtomicU64,
    /// Pages reclaim looked at, by kswapd's work and by direct reclaim in an
    /// allocating path, and those it freed (Linux /proc/vmstat names).
    pub pgscan_kswapd: AtomicU64,
    pub pgscan_direct: AtomicU64,
    pub pgsteal_kswapd: AtomicU64,
    pub pgsteal_direct: AtomicU64,
    /// Pages moved to the active list (or a younger generation), and back.
    pub pgactivate: AtomicU64,
    pub pgdeactivate: AtomicU64,
    /// Pages MADV_FREE made lazily freeable, and those reclaim then
    /// dropped without writing them anywhere (Linux `pglazyfree`,
    /// `pglazyfreed`; MAP_DROPPABLE pages dropped count in the second).
    pub pglazyfree: AtomicU64,
    pub pglazyfreed: AtomicU64,
    /// Pages read in again that left a shadow when evicted, and those of
    /// them the refault distance put back in the working set.
    pub workingset_refault: AtomicU64,
    pub workingset_activate: AtomicU64,
    /// Pages read from and written to swap.
    pub pswpin: AtomicU64,
    pub pswpout: AtomicU64,
    /// Processes the OOM killer killed.
    pub oom_kill: AtomicU64,
    /// Host nanoseconds spent reclaiming (kswapd's work and direct reclaim).
    pub reclaim_ns: AtomicU64,
    /// Pages reclaim freed that more than one PTE mapped when it took them
    /// (vmlab's own; with `Machine::residency_at_first_reclaim`, what seed
    /// 002's claim about shared pages is measured by).
    pub evicted_shared: AtomicU64,
    /// Rounds of the kswapd thread (woken, reclaimed to the high
    /// watermark). Linux: `pageoutrun`. kswapd's work done inline by an
    /// allocating CPU (no thread) is not counted here.
    pub pageoutrun: AtomicU64,
}

impl MmCounters {
    #[inline]
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}
