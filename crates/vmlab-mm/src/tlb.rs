//! A per-CPU software TLB, and the `#[must_use]` flush token that makes a
//! forgotten shootdown a compiler warning.
//!
//! Owns: cached translations of one CPU. Filled only by its own CPU (on a
//! miss, from the page table); invalidated by any CPU (a shootdown), so each
//! entry is one atomic word.
//! May call: `addr`, `sync`.
//!
//! An entry is installed writable only if the PTE is already dirty, so the
//! first store through a clean translation takes the slow path and sets the
//! dirty bit, as x86 hardware does with its page walk on a write to a clean
//! entry.

use crate::addr::Pfn;
use crate::sync::{fence, AtomicU64, Ordering};
use alloc::boxed::Box;

/// Entry layout: bits 0..35 virtual page number (every user page: below
/// `TASK_SIZE`, 2^47), 35..61 frame number, bit 61 executable, bit 62
/// writable, bit 63 valid. A lookup of a page number of more than 35 bits
/// never matches (`match_raw`), so it walks and faults.
const VPN_BITS: u32 = 35;
const VPN_MASK: u64 = (1 << VPN_BITS) - 1;
const PFN_MASK: u64 = (1 << 26) - 1;
const EXEC: u64 = 1 << 61;
const WRITABLE: u64 = 1 << 62;
const VALID: u64 = 1 << 63;
const _: () = assert!(VPN_BITS as u64 + 26 <= 61);
const _: () = assert!(crate::addr::TASK_SIZE >> crate::addr::PAGE_SHIFT <= VPN_MASK + 1);

/// Largest frame number a TLB entry can hold (so RAM of up to `MAX_PFN + 1`
/// frames, 256 GiB).
pub const MAX_PFN: usize = PFN_MASK as usize;

/// A direct-mapped software TLB of one CPU. Linux has no analogue (the MMU
/// does it); this is the hardware.
pub struct Tlb {
    entries: Box<[AtomicU64]>,
    mask: u64,
    /// Bumped by every invalidation before it clears slots. A fill checks it
    /// did not change between the page-table walk and the fill, so that a
    /// translation walked before a remote shootdown is not cached after it
    /// (hardware gets this for free: an IPI lands between instructions).
    gen: AtomicU64,
}

/// A translation found in the TLB.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Translation {
    pub pfn: Pfn,
    pub writable: bool,
    pub exec: bool,
}

impl Tlb {
    /// Host bytes per slot (part of `Machine::host_bytes_needed`).
    pub const HOST_BYTES_PER_ENTRY: usize = core::mem::size_of::<AtomicU64>();

    /// The slots a TLB of `entries` gets: rounded up to a power of two, at least 1.
    pub fn rounded_entries(entries: usize) -> usize {
        entries.max(1).next_power_of_two()
    }

    /// A TLB of `entries` slots, rounded up to a power of two (at least 1).
    pub fn new(entries: usize) -> Tlb {
        let n = Tlb::rounded_entries(entries);
        Tlb {
            entries: (0..n).map(|_| AtomicU64::new(0)).collect(),
            mask: n as u64 - 1,
            gen: AtomicU64::new(0),
        }
    }

    /// Slots in this TLB.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    #[inline]
    fn slot(&self, vpn: u64) -> &AtomicU64 {
        // `mask` is len - 1 and len is a power of two, so the index is in bounds.
        &self.entries[(vpn & self.mask) as usize]
    }

    /// The raw entry word for `vpn` if it is valid and tags match, else 0.
    /// The hot path: one load, one compare.
    #[inline(always)]
    pub fn lookup_raw(&self, vpn: u64) -> u64 {
        Self::match_raw(self.slot(vpn).load(Ordering::Relaxed), vpn)
    }

    /// The slots, for a CPU to keep at hand (see `lookup_in`).
    #[inline]
    pub(crate) fn slots(&self) -> &[AtomicU64] {
        &self.entries
    }

    /// `lookup_raw` on the slots `slots()` returned: one pointer hop less on
    /// the hit path of a CPU that keeps them.
    #[inline(always)]
    pub(crate) fn lookup_in(slots: &[AtomicU64], vpn: u64) -> u64 {
        // The length is a power of two, at least 1, so the index is in bounds.
        let i = vpn as usize & (slots.len().wrapping_sub(1));
        match slots.get(i) {
            Some(s) => Self::match_raw(s.load(Ordering::Relaxed), vpn),
            None => 0,
        }
    }

    #[inline(always)]
    fn match_raw(e: u64, vpn: u64) -> u64 {
        // `vpn` unmasked: one with bits above VPN_MASK (below bit 52, never
        // VALID's) cannot equal a masked tag.
        if e & (VALID | VPN_MASK) == VALID | vpn {
            e
        } else {
            0
        }
    }

    /// Frame number of a raw entry from `lookup_raw`.
    #[inline(always)]
    pub fn raw_pfn(e: u64) -> usize {
        ((e >> VPN_BITS) & PFN_MASK) as usize
    }

    /// Whether a raw entry allows stores.
    #[inline(always)]
    pub fn raw_writable(e: u64) -> bool {
        e & WRITABLE != 0
    }

    /// Whether a raw entry allows instruction fetches (the PTE has no NX).
    #[inline(always)]
    pub fn raw_exec(e: u64) -> bool {
        e & EXEC != 0
    }

    /// The translation of `vpn`, if cached.
    #[inline]
    pub fn lookup(&self, vpn: u64) -> Option<Translation> {
        let e = self.lookup_raw(vpn);
        (e != 0).then(|| Translation {
            pfn: Pfn(Self::raw_pfn(e)),
            writable: Self::raw_writable(e),
            exec: Self::raw_exec(e),
        })
    }

    /// Cache `vpn -> pfn`. Only the owning CPU fills.
    #[inline]
    pub fn fill(&self, vpn: u64, pfn: Pfn, writable: bool, exec: bool) {
        self.slot(vpn)
            .store(Self::entry(vpn, pfn, writable, exec), Ordering::Release);
    }

    fn entry(vpn: u64, pfn: Pfn, writable: bool, exec: bool) -> u64 {
        let mut e = VALID | (vpn & VPN_MASK) | ((pfn.0 as u64 & PFN_MASK) << VPN_BITS);
        if writable {
            e |= WRITABLE;
        }
        if exec {
            e |= EXEC;
        }
        e
    }

    /// The invalidation generation, read by the owning CPU before it walks
    /// the page table for a fill (see `fill_checked`).
    #[inline]
    pub fn generation(&self) -> u64 {
        self.gen.load(Ordering::SeqCst)
    }

    /// The invalidation generation read without ordering, by the owning CPU
    /// inside an access (whose remote ordering `Host::remote_barrier` gives).
    #[inline]
    pub fn generation_relaxed(&self) -> u64 {
        self.gen.load(Ordering::Relaxed)
    }

    /// Cache `vpn -> pfn` if no invalidation began since `generation()`
    /// returned `gen`; otherwise leave the slot empty and return `false`
    /// (the walk may have read an entry a shootdown has since replaced, and
    /// the caller walks again).
    ///
    /// Why it is enough: an invalidation bumps the generation and then clears
    /// slots, both after its page-table change. If the walk read the old
    /// entry, `gen` predates the bump; then either the re-read below sees the
    /// bump and the fill is undone here, or it does not and the fill was
    /// visible before the invalidation's clear, which removes it. That the
    /// fill is visible needs a StoreLoad barrier between the fill and the
    /// re-read: here (`fence_here`), or, when the shootdown puts a host
    /// `remote_barrier` between its bump and its clear (`Machine::shootdown_on`
    /// with a real membarrier), there, and the miss path saves a fence.
    #[inline]
    pub fn fill_checked(&self, vpn: u64, pfn: Pfn, writable: bool, exec: bool, gen: u64, fence_here: bool) -> bool {
        let s = self.slot(vpn);
        let e = Self::entry(vpn, pfn, writable, exec);
        s.store(e, Ordering::Relaxed);
        if fence_here {
            fence(Ordering::SeqCst);
        }
        if self.gen.load(Ordering::SeqCst) == gen {
            return true;
        }
        let _ = s.compare_exchange(e, 0, Ordering::AcqRel, Ordering::Relaxed);
        false
    }

    /// Start an invalidation: see `fill_checked`. A remote shootdown calls
    /// this, then `clear_range`; the other invalidations do both.
    pub(crate) fn begin_invalidation(&self) {
        self.gen.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// Drop the translation of `vpn` if cached. Linux: `flush_tlb_page`.
    #[inline]
    pub fn invalidate_page(&self, vpn: u64) {
        self.begin_invalidation();
        self.clear_page(vpn);
    }

    fn clear_page(&self, vpn: u64) {
        let s = self.slot(vpn);
        let e = s.load(Ordering::Relaxed);
        if e & VALID != 0 && e & VPN_MASK == vpn & VPN_MASK {
            // Only clear it if it still holds this page: a concurrent fill of
            // another page into the slot is left alone.
            let _ = s.compare_exchange(e, 0, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    /// Drop translations of pages `[first, last]`; a range larger than the
    /// TLB flushes it whole, as Linux's `flush_tlb_mm_range` ceiling does.
    pub fn invalidate_range(&self, first_vpn: u64, last_vpn: u64) {
        if last_vpn < first_vpn {
            return;
        }
        self.begin_invalidation();
        self.clear_range(first_vpn, last_vpn);
    }

    /// The clearing half of `invalidate_range`, for a caller that has begun
    /// the invalidation (`begin_invalidation`).
    pub(crate) fn clear_range(&self, first_vpn: u64, last_vpn: u64) {
        if last_vpn < first_vpn {
            return;
        }
        if last_vpn - first_vpn >= self.mask {
            self.clear_all();
        } else {
            for v in first_vpn..=last_vpn {
                self.clear_page(v);
            }
        }
    }

    /// Drop everything. Linux: `flush_tlb_all` on one CPU (a CR3 reload).
    pub fn flush_all(&self) {
        self.begin_invalidation();
        self.clear_all();
    }

    fn clear_all(&self) {
        for e in self.entries.iter() {
            e.store(0, Ordering::Release);
        }
    }
}

/// A page range whose translations were changed in the page table and must
/// still be shot down on every CPU that may cache them. Dropping it without
/// calling the machine's flush is a compile-time warning (`#[must_use]`), as
/// the `x86_64` crate's `MapperFlush` does. Frames unmapped by the change are
/// freed only after the flush, as Linux's `mmu_gather` does.
#[must_use = "a page-table change must be followed by a TLB shootdown"]
#[derive(Debug, Default)]
pub struct PendingFlush {
    /// First and last virtual page number to invalidate; `None` if nothing changed.
    pub range: Option<(u64, u64)>,
    /// Frames to release (one reference each) once no TLB can reach them.
    pub frames: alloc::vec::Vec<Pfn>,
    /// Other address spaces (by id) whose CPUs must drop translations of
    /// their page range `[first, last]` too: a change made in a page table
    /// they share (an object table of fork policy `shared_pt`).
    pub remote: alloc::vec::Vec<(u64, u64, u64)>,
    /// Swap entries (raw PTE values) cleared from page tables: one slot
    /// reference each, dropped with the frames (no TLB caches them, but the
    /// release is the machine's: the slot's swap-cache page may go too).
    pub swap: alloc::vec::Vec<u64>,
}

impl PendingFlush {
    /// Record that the translation of `vpn` changed.
    #[inline]
    pub fn add_page(&mut self, vpn: u64) {
        self.range = Some(match self.range {
            None => (vpn, vpn),
            Some((a, b)) => (a.min(vpn), b.max(vpn)),
        });
    }

    /// Merge another pending flush into this one.
    pub fn merge(&mut self, other: PendingFlush) {
        if let Some((a, b)) = other.range {
            self.add_page(a);
            self.add_page(b);
        }
        self.frames.extend(other.frames);
        self.remote.extend(other.remote);
        self.swap.extend(other.swap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_bit_and_page_numbers_beyond_the_tag() {
        let t = Tlb::new(16);
        t.fill(5, Pfn(MAX_PFN), false, true);
        let tr = t.lookup(5).unwrap();
        assert_eq!((tr.pfn, tr.writable, tr.exec), (Pfn(MAX_PFN), false, true));
        t.fill(6, Pfn(1), true, false);
        assert!(!t.lookup(6).unwrap().exec);
        // A page number past the tag's bits never matches the entry its low
        // bits name.
        assert_eq!(t.lookup(5 | (1 << VPN_BITS)), None);
        assert_eq!(t.lookup_raw(6 | (1 << 40)), 0);
    }

    #[test]
    fn fill_lookup_invalidate() {
        let t = Tlb::new(100);
        assert_eq!(t.capacity(), 128);
        assert_eq!(t.lookup(5), None);
        t.fill(5, Pfn(77), false, false);
        assert_eq!(
            t.lookup(5),
            Some(Translation {
                pfn: Pfn(77),
                writable: false,
                exec: false
            })
        );
        // Same slot, other tag: a miss, and invalidating it leaves entry 5 alone.
        assert_eq!(t.lookup(5 + 128), None);
        t.invalidate_page(5 + 128);
        assert!(t.lookup(5).is_some());
        t.fill(5 + 128, Pfn(3), true, false);
        assert_eq!(t.lookup(5), None, "direct mapped: the new fill evicts");
        assert_eq!(
            t.lookup(133),
            Some(Translation {
                pfn: Pfn(3),
                writable: true,
                exec: false
            })
        );
        t.invalidate_range(130, 140);
        assert_eq!(t.lookup(133), None);
    }

    #[test]
    fn large_range_flushes_all() {
        let t = Tlb::new(8);
        for v in 0..8 {
            t.fill(v * 1000, Pfn(v as usize), true, false);
        }
        t.invalidate_range(0, 100);
        assert!((0..8).all(|v| t.lookup(v * 1000).is_none()));
    }

    #[test]
    fn pending_flush_tracks_range() {
        let mut f = PendingFlush::default();
        f.add_page(10);
        f.add_page(4);
        let mut g = PendingFlush::default();
        g.add_page(20);
        g.frames.push(Pfn(1));
        f.merge(g);
        assert_eq!(f.range, Some((4, 20)));
        assert_eq!(f.frames, alloc::vec![Pfn(1)]);
    }
}
