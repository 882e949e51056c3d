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
}

impl MmCounters {
    #[inline]
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}
