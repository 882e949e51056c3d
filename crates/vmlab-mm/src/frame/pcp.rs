//! Per-CPU lists of free single frames in front of a zone allocator.
//! Linux: `struct per_cpu_pages` (`mm/page_alloc.c`): allocation is
//! `rmqueue_pcplist`, refilled by `rmqueue_bulk`; free is `free_unref_page`,
//! trimmed by `free_pcppages_bulk`; `drain_all_pages` empties every list.
//! FreeBSD's nearest equivalent is UMA's per-CPU buckets in front of `vm_phys`.
//!
//! Owns: one LIFO list of free order-0 frame numbers per CPU, each behind its
//! own lock and on its own cache line, and per-CPU counters of those lists.
//! It knows frames only by number (no descriptors, no RAM), like the
//! allocators beside it, and it keeps no books of the zone: every call that
//! moves frames between a list and the zone returns how many moved, so the
//! caller can keep its own used/free figures.
//! May call: `addr`, `frame` (the `FrameAllocator` trait), `sync`.
//!
//! Lock order: a CPU's list lock, then the zone lock. The zone lock is never
//! held while a list lock is taken, and at most one list lock is held at a
//! time, so no cycle is possible with any number of CPUs.
//!
//! Invariants (with the caller's help, see `PhysMem`):
//! * A frame in a list is free: it was handed out by the zone (`alloc(1, 1)`)
//!   and is held by no one; it is in at most one list, at most once.
//! * A list's frames are moved to or from the zone only under the list's lock,
//!   so a frame in no list and not allocated is free in the zone.
//! * `count` of a CPU equals its list's length whenever its lock is free.
//! * After a free returns, a list holds at most `high` frames.
//!
//! Sizing: an empty list is refilled with `batch` frames under one zone lock
//! acquisition; a list that grows past `high = 4 × batch` gives its `batch`
//! coldest frames back under one acquisition. Linux derives `high` from the
//! zone's size and `batch` from it (`zone_batchsize`, about a quarter of
//! `high`); the fixed ratio keeps the same shape: a CPU that frees as much as
//! it allocates touches the zone once per `batch` operations at most, and at
//! most `cpus × high` frames are parked in lists.

use crate::addr::Pfn;
use crate::frame::FrameAllocator;
use crate::sync::{AtomicU64, AtomicUsize, CachePadded, Mutex, Ordering};
use alloc::boxed::Box;
use alloc::vec::Vec;

/// `high` in units of `batch`.
pub const HIGH_PER_BATCH: usize = 4;

/// One CPU's list and counters; each is kept alone on its cache lines
/// (`sync::CachePadded`).
struct CpuPages {
    /// Free frames, hottest (most recently freed) last.
    list: Mutex<Vec<Pfn>>,
    /// `list.len()`, written under the list lock, readable without it so
    /// that summing the lists never takes their locks.
    count: AtomicUsize,
    /// Zone lock acquisitions made for this CPU (refills and trims).
    zone_trips: AtomicU64,
}

/// Per-CPU lists of free single frames over one zone.
pub struct PerCpuPages {
    cpus: Box<[CachePadded<CpuPages>]>,
    batch: usize,
    high: usize,
}

impl PerCpuPages {
    /// Lists for `cpus` CPUs moving `batch` frames at a time. `batch == 0`
    /// builds no lists: every call then reports the CPU as out of range.
    pub fn new(cpus: usize, batch: usize) -> PerCpuPages {
        let cpus = if batch == 0 { 0 } else { cpus };
        let high = batch.saturating_mul(HIGH_PER_BATCH);
        PerCpuPages {
            cpus: (0..cpus)
                .map(|_| {
                    CachePadded(CpuPages {
                        // Room for `high + 1` (the free that triggers a trim), so
                        // the lists never reallocate while their lock is held.
                        list: Mutex::new(Vec::with_capacity(high + 1)),
                        count: AtomicUsize::new(0),
                        zone_trips: AtomicU64::new(0),
                    })
                })
                .collect(),
            batch,
            high,
        }
    }

    /// CPUs with a list (0 when disabled).
    #[inline]
    pub fn cpus(&self) -> usize {
        self.cpus.len()
    }

    /// Frames moved per zone lock acquisition.
    #[inline]
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The most frames a list keeps after a free (`HIGH_PER_BATCH × batch`).
    #[inline]
    pub fn high(&self) -> usize {
        self.high
    }

    /// Whether `cpu` has a list.
    #[inline]
    pub fn has(&self, cpu: usize) -> bool {
        cpu < self.cpus.len()
    }

    /// Take one frame from `cpu`'s list, refilling an empty list with up to
    /// `batch` frames from `zone` under one acquisition of its lock. Returns
    /// the frame and how many frames the refill took from the zone (0 if
    /// none was needed). `None` if `cpu` has no list or the zone is empty.
    pub fn alloc<A: FrameAllocator>(&self, cpu: usize, zone: &Mutex<A>) -> Option<(Pfn, usize)> {
        let c = self.cpus.get(cpu)?;
        let mut list = c.list.lock();
        let mut refilled = 0;
        if list.is_empty() {
            let mut z = zone.lock();
            while refilled < self.batch {
                let Some(pfn) = z.alloc(1, 1) else { break };
                list.push(pfn);
                refilled += 1;
            }
            drop(z);
            c.zone_trips.fetch_add(1, Ordering::Relaxed);
            // The frames allocated first are the zone's lowest; hand them out
            // first, as Linux's `rmqueue_bulk` keeps the zone's order.
            list.reverse();
        }
        let pfn = list.pop()?;
        c.count.store(list.len(), Ordering::Relaxed);
        Some((pfn, refilled))
    }

    /// Put the free frame `pfn` (got from `alloc` on any CPU, or from the
    /// zone with `alloc(1, 1)`) on `cpu`'s list. A list that grows past
    /// `high` gives its `batch` coldest frames back to `zone` under one
    /// acquisition of its lock. Returns how many frames went to the zone,
    /// or `Err(pfn)` if `cpu` has no list (the frame is untouched).
    pub fn free<A: FrameAllocator>(&self, cpu: usize, pfn: Pfn, zone: &Mutex<A>) -> Result<usize, Pfn> {
        let Some(c) = self.cpus.get(cpu) else { return Err(pfn) };
        let mut list = c.list.lock();
        list.push(pfn);
        let mut returned = 0;
        if list.len() > self.high {
            let n = self.batch.min(list.len());
            returned = give_back(&mut list, n, zone);
            c.zone_trips.fetch_add(1, Ordering::Relaxed);
        }
        c.count.store(list.len(), Ordering::Relaxed);
        Ok(returned)
    }

    /// Return every frame of `cpu`'s list to `zone` (one acquisition).
    /// Returns how many went.
    pub fn drain<A: FrameAllocator>(&self, cpu: usize, zone: &Mutex<A>) -> usize {
        let Some(c) = self.cpus.get(cpu) else { return 0 };
        let mut list = c.list.lock();
        if list.is_empty() {
            return 0;
        }
        let n = list.len();
        let returned = give_back(&mut list, n, zone);
        c.zone_trips.fetch_add(1, Ordering::Relaxed);
        c.count.store(list.len(), Ordering::Relaxed);
        returned
    }

    /// Return every list's frames to `zone`, one CPU at a time (frames freed
    /// concurrently on a CPU already drained stay on its list). Linux:
    /// `drain_all_pages`. Returns how many went.
    pub fn drain_all<A: FrameAllocator>(&self, zone: &Mutex<A>) -> usize {
        (0..self.cpus.len()).map(|cpu| self.drain(cpu, zone)).sum()
    }

    /// Frames now in all lists. Exact when no CPU is allocating or freeing.
    pub fn frames(&self) -> usize {
        self.cpus.iter().map(|c| c.count.load(Ordering::Relaxed)).sum()
    }

    /// Frames now in `cpu`'s list (0 without a list).
    pub fn frames_on(&self, cpu: usize) -> usize {
        self.cpus.get(cpu).map_or(0, |c| c.count.load(Ordering::Relaxed))
    }

    /// Zone lock acquisitions made so far for `cpu` (refills, trims, drains).
    pub fn zone_trips(&self, cpu: usize) -> u64 {
        self.cpus.get(cpu).map_or(0, |c| c.zone_trips.load(Ordering::Relaxed))
    }

    /// Whether `pfn` is in some list. Exact when no CPU is allocating or freeing.
    pub fn contains(&self, pfn: Pfn) -> bool {
        self.cpus.iter().any(|c| c.list.lock().contains(&pfn))
    }

    /// Call `f(cpu, pfn)` for every frame in every list, one list locked at a
    /// time; `f` runs under that lock, so it must not use these lists.
    pub fn for_each(&self, mut f: impl FnMut(usize, Pfn)) {
        for (cpu, c) in self.cpus.iter().enumerate() {
            for &pfn in c.list.lock().iter() {
                f(cpu, pfn);
            }
        }
    }
}

/// Move the `n` coldest frames of `list` (its front) to `zone` under one lock
/// acquisition; returns how many the zone took back.
fn give_back<A: FrameAllocator>(list: &mut Vec<Pfn>, n: usize, zone: &Mutex<A>) -> usize {
    let mut z = zone.lock();
    let mut returned = 0;
    for pfn in list.drain(..n) {
        // Every listed frame came from this zone's `alloc(1, 1)`, so a
        // refusal means a caller broke the contract (a double free through
        // two CPUs); the frame is dropped from the list either way so that
        // it can never be handed out twice.
        let ok = z.free(pfn, 1).is_ok();
        debug_assert!(ok, "per-CPU list held frame {} the zone refused", pfn.0);
        returned += ok as usize;
    }
    returned
}
