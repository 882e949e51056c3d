//! Page-table lifetime: a page-table page is freed only when no CPU's walk
//! can still reach it. A CPU marks the span of each walk of its address
//! space's tables (a TLB-miss walk, a fault) in its own word; a table
//! unlinked from every parent while such walks may be inside it (a table
//! shared by fork and let go by a fault holding only the read lock) is put
//! on a list with a snapshot of the marks, and freed once every CPU that
//! was walking then has left that walk: RCU's grace period, with the end
//! of a walk as the quiescent state (Asterinas frees page-table nodes
//! through RCU; Linux frees them after `tlb_remove_table`'s IPI or RCU).
//!
//! Ordering: a walker sets its mark, then makes a SeqCst fence, then reads
//! the table entries (`Cpu::walk_or_fault`, only in address spaces that
//! share tables by fork: the only tables freed while walks hold the read
//! lock); the unlinker clears the parent entry, makes a SeqCst fence, then
//! reads the marks. Either it sees the walker's mark and waits for it,
//! or the walker's reads see the entry cleared and never reach the table.
//!
//! Walks that hold their address space's map lock for writing (syscalls)
//! exclude every fault of that address space, so only walks under the read
//! lock need a mark: CPUs', and reclaim's (`begin_reclaim`, in the no-CPU
//! slot).

use crate::addr::Pfn;
use crate::sync::{fence, AtomicU64, AtomicUsize, Mutex, Ordering, PerCpu};
use alloc::vec::Vec;

/// Per-CPU walk marks and the tables waiting for their walkers.
pub struct WalkTracker {
    cpus: usize,
    /// CPU i's mark: odd while it walks; only CPU i writes it.
    marks: PerCpu<AtomicU64>,
    /// Unlinked tables and the marks seen when they were unlinked.
    deferred: Mutex<Vec<(Pfn, Vec<u64>)>>,
    /// `deferred.len()`, read without the lock.
    pending: AtomicUsize,
}

impl WalkTracker {
    pub fn new(cpus: usize) -> WalkTracker {
        WalkTracker {
            cpus,
            marks: PerCpu::new(cpus.max(1)),
            deferred: Mutex::new(Vec::new()),
            pending: AtomicUsize::new(0),
        }
    }

    /// CPU `cpu` begins a walk; the caller fences (SeqCst) before the
    /// walk's reads. A caller that is no CPU (`cpu` past the last) walks
    /// under its map lock held for writing and needs no mark.
    #[inline]
    pub fn begin(&self, cpu: usize) {
        if cpu >= self.cpus {
            return;
        }
        let m = self.marks.get(cpu);
        m.store(m.load(Ordering::Relaxed) | 1, Ordering::Relaxed);
    }

    /// CPU `cpu` has left its walk: nothing it read may be used after this.
    #[inline]
    pub fn end(&self, cpu: usize) {
        if cpu >= self.cpus {
            return;
        }
        let m = self.marks.get(cpu);
        let v = m.load(Ordering::Relaxed);
        if v & 1 == 1 {
            m.store(v + 1, Ordering::Release);
        }
    }

    /// Reclaim begins a walk: it reaches page tables under a map lock held
    /// for reading only (the reverse map's walks, `vma_scan`'s), fork-shared
    /// ones among them, which a fault of a sharer may unlink meanwhile. Its
    /// mark is the no-CPU slot, which only the one reclaimer running
    /// (`Reclaimer::busy`) writes. Fences (SeqCst) before returning, as a
    /// CPU's walk does before its reads.
    pub(crate) fn begin_reclaim(&self) {
        let m = self.marks.get(usize::MAX);
        m.store(m.load(Ordering::Relaxed) | 1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// Reclaim has left its walk (`begin_reclaim`).
    pub(crate) fn end_reclaim(&self) {
        let m = self.marks.get(usize::MAX);
        let v = m.load(Ordering::Relaxed);
        if v & 1 == 1 {
            m.store(v + 1, Ordering::Release);
        }
    }

    /// CPU `cpu`'s mark word (`cpu` below the CPU count), for a CPU handle
    /// that keeps its own count (`Cpu`: odd while walking, +2 per walk, only
    /// it writes the word). Crate-private: a word written from outside could
    /// make a table look left by a CPU still inside it.
    pub(crate) fn mark(&self, cpu: usize) -> &AtomicU64 {
        debug_assert!(cpu < self.cpus);
        self.marks.get(cpu)
    }

    /// Table frames waiting for a walker to leave.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    /// Defer `table`, already unlinked from every parent entry, until every
    /// CPU walking now has left its walk. Crate-private, as every free by
    /// frame number: `PhysMem::reap_tables` frees what this lists.
    pub(crate) fn defer(&self, table: Pfn) {
        fence(Ordering::SeqCst);
        let seen: Vec<u64> = self.marks.iter().map(|m| m.load(Ordering::Acquire)).collect();
        let mut d = self.deferred.lock();
        d.push((table, seen));
        self.pending.store(d.len(), Ordering::Release);
    }

    /// The deferred tables whose walkers have all left (removed from the list).
    pub(crate) fn ready(&self) -> Vec<Pfn> {
        if self.pending() == 0 {
            return Vec::new();
        }
        let now: Vec<u64> = self.marks.iter().map(|m| m.load(Ordering::Acquire)).collect();
        let mut d = self.deferred.lock();
        let mut out = Vec::new();
        d.retain(|(pfn, seen)| {
            let clear = seen.iter().zip(&now).all(|(s, n)| s & 1 == 0 || s != n);
            if clear {
                out.push(*pfn);
            }
            !clear
        });
        self.pending.store(d.len(), Ordering::Release);
        out
    }

    /// Whether `table` is waiting (for the invariant checker).
    pub fn is_deferred(&self, table: Pfn) -> bool {
        self.pending() != 0 && self.deferred.lock().iter().any(|(p, _)| *p == table)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_table_waits_for_the_walks_that_began_before_it_went() {
        let t = WalkTracker::new(3);
        t.begin(1);
        t.begin(2);
        t.end(2);
        t.defer(Pfn(7));
        assert!(t.ready().is_empty(), "CPU 1 may be inside the table");
        assert!(t.is_deferred(Pfn(7)));
        // A walk that begins after the unlink cannot reach the table; CPU 1's
        // next walk means it left the old one.
        t.begin(2);
        assert!(t.ready().is_empty());
        t.end(1);
        t.begin(1);
        assert_eq!(t.ready(), [Pfn(7)]);
        assert_eq!(t.pending(), 0);
        assert!(!t.is_deferred(Pfn(7)));
        t.end(1);
        t.end(2);
        t.defer(Pfn(8));
        assert_eq!(t.ready(), [Pfn(8)], "nobody walking: free at once");
    }

    #[test]
    fn a_table_waits_for_reclaims_walk() {
        let t = WalkTracker::new(2);
        t.begin_reclaim();
        // A CPU's walks begin and end while reclaim's goes on.
        t.begin(0);
        t.defer(Pfn(3));
        t.end(0);
        assert!(t.ready().is_empty(), "reclaim may be inside the table");
        t.end_reclaim();
        assert_eq!(t.ready(), [Pfn(3)]);
    }
}
