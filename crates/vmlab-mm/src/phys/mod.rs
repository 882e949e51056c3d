//! Physical memory: simulated RAM that holds real bytes, one descriptor per
//! frame, and the zones whose allocators hand frames out.
//!
//! Owns: RAM words, frame descriptors, zone allocators, the per-CPU lists of
//! free frames in front of the first zone (`frame/pcp.rs`), the shared zero page.
//! May call: `addr`, `frame`, `sync`.
//!
//! Lock order: a CPU's per-CPU list lock, then a zone's allocator lock; the
//! zone lock is a leaf, nothing is taken under it.
//!
//! Who may free a frame: outside this crate, only the holder of an
//! [`OwnedFrame`], the handle the public allocation functions
//! (`alloc_frames`, `alloc_zeroed`, `alloc_zeroed_on`) return. It is neither
//! `Copy` nor `Clone`, stands for one reference, names the `PhysMem` that
//! made it, and is consumed by `put`/`put_on` (`get` takes another
//! reference as a second handle). So safe code outside vmlab-mm frees only
//! frames it allocated and still holds, never one a PTE, a page cache or a
//! page table holds. The VM frees by frame number (`put_frame`,
//! `put_frame_on`, `free_frames`, `free_table_after_walks`: a reference
//! dropped after a shootdown, a page table, a page-cache page), and those
//! are `pub(crate)`; it takes frames only through `alloc_page`, also
//! `pub(crate)`. The zones' allocators and the per-CPU lists are reached
//! from outside only through read-only views (`Zone::free_frames`,
//! [`PcpView`]).
//!
//! ```compile_fail,E0624
//! use vmlab_mm::phys::{FrameAllocatorPolicy, PhysMem};
//! let p = PhysMem::new(64, FrameAllocatorPolicy::Buddy).unwrap();
//! // Freeing by number (here the zero page, mapped by every read fault
//! // on anonymous memory) is the VM's, not a caller's: E0624, private.
//! p.put_frame(p.zero_pfn());
//! ```
//!
//! ```compile_fail,E0382
//! use vmlab_mm::phys::{FrameAllocatorPolicy, FrameUse, PhysMem};
//! let p = PhysMem::new(64, FrameAllocatorPolicy::Buddy).unwrap();
//! let f = p.alloc_zeroed(FrameUse::Kernel).unwrap();
//! assert!(p.put(f));
//! p.put(f); // a handle frees once: use of moved value
//! ```
//!
//! ```
//! use vmlab_mm::phys::{FrameAllocatorPolicy, FrameUse, PhysMem};
//! let p = PhysMem::new(64, FrameAllocatorPolicy::Buddy).unwrap();
//! let f = p.alloc_zeroed(FrameUse::Kernel).unwrap();
//! let again = p.get(&f);
//! assert!(!p.put(f), "another reference is held");
//! assert!(p.put(again), "the last one frees it");
//! ```
//!
//! Books: `frames_used` counts frames taken out of the zones, including those
//! parked in per-CPU lists; the public `frames_used()` subtracts the lists, so
//! a listed frame counts as free everywhere (`free_frames_count`, `is_free`,
//! its descriptor says `Free`). Only refills, trims and drains touch the
//! shared counter, so CPUs allocating from their own lists share no line.

mod backing;
mod desc;
mod lru;
mod pte_links;
mod ram;
mod table_sharers;
mod walks;
mod watermarks;

pub use backing::{GlobalBacking, RamBacking, Zeroable, ZeroedArray, ZeroedWords};
pub use desc::*;
pub use lru::{Entry, EntryLists, Lru, Placed, Workingset, MAX_LRU_LISTS};
pub use pte_links::{PteLinkKind, POOL_SLOTS};
pub use ram::Ram;
pub use walks::WalkTracker;
pub use watermarks::{min_free_kbytes, zone_watermarks, Watermarks, WATERMARK_SCALE_FACTOR};

use crate::addr::{Pfn, PAGE_SIZE};
use crate::frame::buddy::Buddy;
use crate::frame::pcp::PerCpuPages;
use crate::frame::{FrameAllocator, FreeError};
use crate::sync::{AtomicUsize, Mutex, Ordering};
use alloc::string::String;
use alloc::vec::Vec;
use core::num::NonZeroU32;

/// The frame-allocator policy of a zone, chosen once at machine build time
/// (static dispatch: no `dyn` call on the fault path).
pub enum ZoneAllocator {
    Buddy(Buddy),
}

macro_rules! dispatch {
    ($self:expr, $a:ident => $e:expr) => {
        match $self {
            ZoneAllocator::Buddy($a) => $e,
        }
    };
}

impl ZoneAllocator {
    /// Build the allocator named `policy` over `[base, base + frames)`;
    /// `None` if the host cannot hold its books.
    pub fn new(policy: FrameAllocatorPolicy, base: Pfn, frames: usize) -> Option<ZoneAllocator> {
        match policy {
            FrameAllocatorPolicy::Buddy => Buddy::try_new(base, frames).map(ZoneAllocator::Buddy),
        }
    }

    /// Host bytes the policy keeps per frame it manages.
    pub const fn host_bytes_per_frame(policy: FrameAllocatorPolicy) -> usize {
        match policy {
            FrameAllocatorPolicy::Buddy => Buddy::HOST_BYTES_PER_FRAME,
        }
    }
}

impl FrameAllocator for ZoneAllocator {
    #[inline]
    fn alloc(&mut self, count: usize, align: usize) -> Option<Pfn> {
        dispatch!(self, a => a.alloc(count, align))
    }
    #[inline]
    fn free(&mut self, pfn: Pfn, count: usize) -> Result<(), FreeError> {
        dispatch!(self, a => a.free(pfn, count))
    }
    fn free_frames(&self) -> usize {
        dispatch!(self, a => a.free_frames())
    }
    fn total_frames(&self) -> usize {
        dispatch!(self, a => a.total_frames())
    }
    fn frames_for(&self, count: usize) -> usize {
        dispatch!(self, a => a.frames_for(count))
    }
    fn is_free(&self, pfn: Pfn) -> bool {
        dispatch!(self, a => a.is_free(pfn))
    }
    fn largest_free_run(&self) -> usize {
        dispatch!(self, a => a.largest_free_run())
    }
    fn check(&self) -> Result<(), String> {
        dispatch!(self, a => a.check())
    }
    fn name(&self) -> &'static str {
        dispatch!(self, a => a.name())
    }
}

/// Config values of `frame_allocator`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FrameAllocatorPolicy {
    /// Binary buddy, orders 0..=10 (Linux `mm/page_alloc.c`).
    Buddy,
}

/// A range of frames with its own allocator. Linux: `struct zone`.
pub struct Zone {
    pub name: &'static str,
    pub start: Pfn,
    pub frames: usize,
    /// Leaf lock. Crate-private: a caller holding it could free any frame
    /// by number; outside code reads the zone through the methods below.
    pub(crate) alloc: Mutex<ZoneAllocator>,
    /// Its watermarks (`watermarks.rs`), set when the machine is built.
    pub watermarks: Watermarks,
}

impl Zone {
    /// Free frames in the zone allocator's own books (per-CPU lists not included).
    pub fn free_frames(&self) -> usize {
        self.alloc.lock().free_frames()
    }

    /// The zone allocator's own consistency check.
    pub fn check(&self) -> Result<(), String> {
        self.alloc.lock().check()
    }

    /// Whether the zone allocator holds `pfn` as free.
    pub fn is_free(&self, pfn: Pfn) -> bool {
        self.alloc.lock().is_free(pfn)
    }

    fn holds(&self, pfn: Pfn) -> bool {
        pfn.0 >= self.start.0 && pfn.0 < self.start.0 + self.frames
    }
}

/// One reference to a frame, or to the head of an aligned run of frames,
/// that its holder allocated from one `PhysMem` (`alloc_frames`,
/// `alloc_zeroed`, `alloc_zeroed_on`, or `get` for another reference).
/// Neither `Copy` nor `Clone`: giving it to `PhysMem::put`/`put_on` drops
/// the reference, and the frames are freed when it was the last. Dropping
/// the handle instead leaks the frames (safe: they stay allocated).
/// A newtype of the frame number, its run length and its `PhysMem`'s id,
/// 16 bytes, so `Option<OwnedFrame>` comes back in two registers.
#[must_use = "dropping an OwnedFrame leaks its frames: give it to PhysMem::put"]
#[derive(Debug)]
pub struct OwnedFrame {
    pfn: Pfn,
    count: u32,
    phys: NonZeroU32,
}

// The handle costs what a frame number costs: `None` sits in the id's niche.
#[cfg(target_pointer_width = "64")]
const _: () = assert!(core::mem::size_of::<Option<OwnedFrame>>() == 16);

impl OwnedFrame {
    /// The frame (the head of the run).
    #[inline]
    pub fn pfn(&self) -> Pfn {
        self.pfn
    }

    /// Frames in the run (1 for a single frame).
    #[inline]
    pub fn count(&self) -> usize {
        self.count as usize
    }
}

/// Read-only view of a `PhysMem`'s per-CPU lists (`frame/pcp.rs`): the
/// lists themselves take frame numbers, so only `phys` changes them.
#[derive(Copy, Clone)]
pub struct PcpView<'a>(&'a PerCpuPages);

impl PcpView<'_> {
    /// CPUs with a list (0 when `batch` is 0).
    pub fn cpus(&self) -> usize {
        self.0.cpus()
    }
    /// Frames moved per refill or trim.
    pub fn batch(&self) -> usize {
        self.0.batch()
    }
    /// A list longer than this is trimmed.
    pub fn high(&self) -> usize {
        self.0.high()
    }
    /// Whether CPU `cpu` has a list.
    pub fn has(&self, cpu: usize) -> bool {
        self.0.has(cpu)
    }
    /// Frames in every list.
    pub fn frames(&self) -> usize {
        self.0.frames()
    }
    /// Frames in CPU `cpu`'s list.
    pub fn frames_on(&self, cpu: usize) -> usize {
        self.0.frames_on(cpu)
    }
    /// Times CPU `cpu`'s list took the zone lock.
    pub fn zone_trips(&self, cpu: usize) -> u64 {
        self.0.zone_trips(cpu)
    }
    /// Whether `pfn` is in some list.
    pub fn contains(&self, pfn: Pfn) -> bool {
        self.0.contains(pfn)
    }
    /// Every listed frame with its CPU.
    pub fn for_each(&self, f: impl FnMut(usize, Pfn)) {
        self.0.for_each(f)
    }
}

/// Ids of `PhysMem`s, so that a handle is given back only to its own.
static NEXT_PHYS_ID: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(1);

fn next_phys_id() -> NonZeroU32 {
    use core::sync::atomic::Ordering as O;
    let id = NEXT_PHYS_ID
        .fetch_update(O::Relaxed, O::Relaxed, |v| v.checked_add(1))
        .expect("more than 2^32 PhysMems built: handle ids would repeat");
    NonZeroU32::new(id).expect("ids start at 1")
}

/// Frames below this are ZONE_DMA (16 MiB), as on x86.
const DMA_FRAMES: usize = (16 << 20) / PAGE_SIZE as usize;

/// All of physical memory. Linux: `mem_map` + `pg_data_t`; FreeBSD: `vm_page_array` + `vm_phys`.
pub struct PhysMem {
    ram: Ram,
    descs: ZeroedArray<FrameDesc>,
    /// Allocation tries these in order (Linux's zonelist: NORMAL, then DMA).
    zones: Vec<Zone>,
    /// A frame of zeros mapped read-only by read faults on anonymous memory
    /// (Linux `ZERO_PAGE`). Never freed, never counted in `mapcount`.
    zero_pfn: Pfn,
    /// Per-CPU lists of free single frames of `zones[0]` (none if batch 0).
    pcp: PerCpuPages,
    /// Frames out of the zones' allocators, per-CPU lists included.
    frames_used: AtomicUsize,
    pt_pages: AtomicUsize,
    /// CPUs' page-table walks and the tables waiting for them (`walks.rs`).
    walks: WalkTracker,
    /// Named by every `OwnedFrame` this made.
    id: NonZeroU32,
    /// Frames' PTE pointers, for the reverse maps that keep them (`pte_links.rs`).
    links: pte_links::PteLinks,
    /// Frames per leaf page table: 2 under `PteLinkKind::Chain` (the second
    /// holds the chain links), else 1.
    table_frames: usize,
    /// Sharers of each fork-shared leaf table (`table_sharers.rs`).
    cow_sharers: Mutex<alloc::collections::BTreeSet<(usize, u64)>>,
    /// The reclaim design's LRU lists (`lru.rs`; none by default).
    lru: Lru,
    /// The zones' watermarks summed, in frames: kswapd is wanted once fewer
    /// than `low` frames are free and works until `high` are.
    wmark: Watermarks,
    /// Set by an allocation that left fewer than `wmark.low` frames free;
    /// taken by whoever runs kswapd's work (`take_kswapd_wanted`).
    kswapd_wanted: crate::sync::AtomicBool,
}

/// What `PhysMem::alloc_page` leaves in the frame.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Fill {
    /// Zeros (a demand-zero page, a page table, shared anonymous memory).
    Zero,
    /// Whatever was there: the caller overwrites every byte before anyone
    /// can read it (a COW copy, a page read from a file).
    Caller,
}

/// Why `PhysMem::build` failed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PhysError {
    /// Fewer frames than the zero page and a few tables need.
    TooSmall,
    /// The host refused `bytes` bytes of memory for `what`.
    Host { what: &'static str, bytes: u64 },
}

impl core::fmt::Display for PhysError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PhysError::TooSmall => f.write_str("too small to hold the machine's own structures"),
            PhysError::Host { what, bytes } => write!(f, "the host refused {bytes} bytes of memory for {what}"),
        }
    }
}

impl PhysMem {
    /// Host bytes kept per frame, whatever the workload does: its
    /// descriptor and its frame allocator's books (the RAM word array costs
    /// only what is touched). Computed from the types so it cannot drift
    /// from them; docs/CONFIG.md gives the figure.
    pub const fn host_bytes_per_frame(policy: FrameAllocatorPolicy) -> usize {
        core::mem::size_of::<FrameDesc>() + ZoneAllocator::host_bytes_per_frame(policy)
    }

    /// Build `frames` frames of zeroed RAM, zones, allocators and the zero page.
    /// `None` if `frames` is too small to hold the zero page and a few tables,
    /// or the global allocator refuses the memory.
    /// No per-CPU lists: every allocation goes to the zones.
    pub fn new(frames: usize, policy: FrameAllocatorPolicy) -> Option<PhysMem> {
        PhysMem::with_pcp(frames, policy, 0, 0)
    }

    /// As `new`, with a per-CPU list of free single frames for each of `cpus`
    /// CPUs, refilled and trimmed `batch` frames at a time (`frame/pcp.rs`).
    /// `batch == 0` builds no lists.
    pub fn with_pcp(frames: usize, policy: FrameAllocatorPolicy, cpus: usize, batch: usize) -> Option<PhysMem> {
        PhysMem::build(&GlobalBacking, frames, policy, cpus, batch).ok()
    }

    /// As `with_pcp`, with the RAM words and descriptors from `backing`, and
    /// saying why it failed. Nothing here aborts on a host that cannot hold
    /// the machine: every large allocation is fallible.
    pub fn build(
        backing: &dyn RamBacking,
        frames: usize,
        policy: FrameAllocatorPolicy,
        cpus: usize,
        batch: usize,
    ) -> Result<PhysMem, PhysError> {
        if frames < 16 {
            return Err(PhysError::TooSmall);
        }
        let bytes = |each: usize| (frames as u64).saturating_mul(each as u64);
        let ram = Ram::zeroed_in(backing, frames).ok_or(PhysError::Host {
            what: "simulated RAM",
            bytes: bytes(PAGE_SIZE as usize),
        })?;
        let descs = ZeroedArray::new(backing, frames).ok_or(PhysError::Host {
            what: "frame descriptors",
            bytes: bytes(core::mem::size_of::<FrameDesc>()),
        })?;
        let zone = |base: usize, n: usize| {
            ZoneAllocator::new(policy, Pfn(base), n).ok_or(PhysError::Host {
                what: "the frame allocator",
                bytes: bytes(ZoneAllocator::host_bytes_per_frame(policy)),
            })
        };
        let mut zones = Vec::new();
        // Keep a DMA zone only when it leaves a useful NORMAL zone beside it.
        if frames > 4 * DMA_FRAMES {
            zones.push(Zone {
                name: "Normal",
                start: Pfn(DMA_FRAMES),
                frames: frames - DMA_FRAMES,
                alloc: Mutex::new(zone(DMA_FRAMES, frames - DMA_FRAMES)?),
                watermarks: Watermarks::default(),
            });
            zones.push(Zone {
                name: "DMA",
                start: Pfn(0),
                frames: DMA_FRAMES,
                alloc: Mutex::new(zone(0, DMA_FRAMES)?),
                watermarks: Watermarks::default(),
            });
        } else {
            zones.push(Zone {
                name: "Normal",
                start: Pfn(0),
                frames,
                alloc: Mutex::new(zone(0, frames)?),
                watermarks: Watermarks::default(),
            });
        }
        // Linux's boot-time watermarks: every frame is low memory here.
        let managed: Vec<u64> = zones.iter().map(|z| z.frames as u64).collect();
        let kb = min_free_kbytes(frames as u64 * (PAGE_SIZE / 1024));
        for (z, w) in zones
            .iter_mut()
            .zip(zone_watermarks(kb, WATERMARK_SCALE_FACTOR, &managed))
        {
            z.watermarks = w;
        }
        let mut pm = PhysMem {
            ram,
            descs,
            zones,
            zero_pfn: Pfn(0),
            pcp: PerCpuPages::new(cpus, batch),
            frames_used: AtomicUsize::new(0),
            pt_pages: AtomicUsize::new(0),
            walks: WalkTracker::new(cpus),
            id: next_phys_id(),
            links: pte_links::PteLinks::new(PteLinkKind::None),
            table_frames: 1,
            cow_sharers: Mutex::new(alloc::collections::BTreeSet::new()),
            lru: Lru::new(0),
            wmark: Watermarks::default(),
            kswapd_wanted: crate::sync::AtomicBool::new(false),
        };
        pm.wmark = pm.zones.iter().fold(Watermarks::default(), |a, z| Watermarks {
            min: a.min + z.watermarks.min,
            low: a.low + z.watermarks.low,
            high: a.high + z.watermarks.high,
        });
        pm.zero_pfn = pm.alloc_run(1, 1, FrameUse::Zero).ok_or(PhysError::TooSmall)?;
        Ok(pm)
    }

    /// Keep frames' PTE pointers in `kind` (the machine's reverse map).
    /// Set once, before any page table is made.
    pub fn with_pte_links(mut self, kind: PteLinkKind) -> PhysMem {
        debug_assert_eq!(self.page_table_pages(), 0);
        self.links = pte_links::PteLinks::new(kind);
        self.table_frames = if kind == PteLinkKind::Chain { 2 } else { 1 };
        self
    }

    /// Keep `lists` LRU lists (the reclaim design's; `lru.rs`). Set once,
    /// before any frame is listed.
    pub fn with_lru_lists(mut self, lists: usize) -> PhysMem {
        self.lru = Lru::new(lists);
        self
    }

    /// Use `w` (in frames, summed over the zones) instead of Linux's
    /// watermarks: a config that sets them to zero makes every frame usable
    /// before kswapd wakes.
    pub fn with_watermarks(mut self, w: Watermarks) -> PhysMem {
        self.wmark = w;
        self
    }

    /// The LRU lists.
    #[inline]
    pub fn lru(&self) -> &Lru {
        &self.lru
    }

    /// List a page entering memory (`Lru::place`; a no-op list-wise for
    /// a design that keeps no lists). Linux: `folio_add_lru` (+ `workingset_refault`).
    #[inline]
    pub(crate) fn lru_place(&self, pfn: Pfn, shadow: Option<u64>, entry: Entry) -> Placed {
        self.lru.place(self.descs.as_slice(), pfn, shadow, entry)
    }

    /// The descriptors as one slice (for the LRU lists).
    #[inline]
    pub(crate) fn descs(&self) -> &[FrameDesc] {
        self.descs.as_slice()
    }

    /// The machine's watermarks in frames (the zones' summed).
    #[inline]
    pub fn watermarks(&self) -> Watermarks {
        self.wmark
    }

    /// Frames free by the allocators' counters (cheap, momentary; per-CPU
    /// lists counted as free).
    #[inline]
    pub fn free_frames_fast(&self) -> usize {
        self.total_frames().saturating_sub(self.frames_used())
    }

    /// Whether an allocation found free frames below the low watermark
    /// since the last call (and clear the flag). Linux: `wakeup_kswapd`.
    #[inline]
    pub fn take_kswapd_wanted(&self) -> bool {
        self.kswapd_wanted.load(Ordering::Relaxed) && self.kswapd_wanted.swap(false, Ordering::AcqRel)
    }

    #[inline]
    fn note_allocation(&self) {
        let used = self.frames_used.load(Ordering::Relaxed);
        if self.total_frames().saturating_sub(used) < self.wmark.low as usize {
            self.kswapd_wanted.store(true, Ordering::Relaxed);
        }
    }

    /// A zeroed page-table page (any level), owned by nobody yet. Order 1
    /// under `PteLinkKind::Chain`: the second frame holds the chain links
    /// (`FrameUse::RmapLinks`). Not from a per-CPU list: a table is not on
    /// any CPU's fault fast path. Linux: `pte_alloc_one`.
    pub(crate) fn alloc_table(&self) -> Option<Pfn> {
        let n = self.table_frames;
        let pfn = self.alloc_run(n, n, FrameUse::PageTable)?;
        for i in 0..n {
            // SAFETY: the allocator just handed the run to us alone.
            unsafe { self.ram.zero_frame_exclusive(Pfn(pfn.0 + i)) };
        }
        if n == 2 {
            self.descs.as_slice()[pfn.0 + 1].init_allocated(FrameUse::RmapLinks);
        }
        Some(pfn)
    }

    /// Free a page-table page `alloc_table` made, now unreachable from any
    /// parent entry and any walk.
    pub(crate) fn free_table(&self, table: Pfn) {
        if let Some(d) = self.desc(table) {
            // `free_frames` expects the allocation's own reference.
            d.refcount.store(1, Ordering::Release);
        }
        if self.table_frames == 2 {
            if let Some(d) = self.desc(Pfn(table.0 + 1)) {
                d.reset();
            }
        }
        self.table_unshared(table);
        let _ = self.free_frames(table, self.table_frames);
    }

    /// The CPUs' page-table walks (`walks.rs`).
    #[inline]
    pub fn walks(&self) -> &WalkTracker {
        &self.walks
    }

    /// Free a page-table page that no parent entry reaches any more, once
    /// no CPU's walk can still be inside it (at once if none is walking).
    /// Linux: `tlb_remove_table` / `pte_free_defer`.
    pub(crate) fn free_table_after_walks(&self, table: Pfn) {
        self.walks.defer(table);
        self.reap_tables();
    }

    /// Free the deferred page-table pages whose walkers have all left.
    /// Returns how many it freed.
    pub fn reap_tables(&self) -> usize {
        let ready = self.walks.ready();
        for &t in &ready {
            self.free_table(t);
        }
        ready.len()
    }

    /// The RAM bytes.
    #[inline]
    pub fn ram(&self) -> &Ram {
        &self.ram
    }

    /// Frames of RAM.
    #[inline]
    pub fn total_frames(&self) -> usize {
        self.ram.frames()
    }

    /// The shared zero page.
    #[inline]
    pub fn zero_pfn(&self) -> Pfn {
        self.zero_pfn
    }

    /// The descriptor of `pfn`; `None` outside RAM.
    #[inline]
    pub fn desc(&self, pfn: Pfn) -> Option<&FrameDesc> {
        self.descs.as_slice().get(pfn.0)
    }

    /// The zones, in allocation-fallback order.
    pub fn zones(&self) -> &[Zone] {
        &self.zones
    }

    /// Frames handed out (rounded as each allocator rounds); frames in
    /// per-CPU lists are free, not used. Exact when no CPU is allocating or
    /// freeing; otherwise a momentary figure.
    pub fn frames_used(&self) -> usize {
        // The counter and the list lengths change apart (a refill lists its
        // frames before counting them), so a racing read may see a list's
        // frames not yet counted: saturate rather than wrap.
        let listed = self.pcp.frames();
        self.frames_used.load(Ordering::Relaxed).saturating_sub(listed)
    }

    /// Free frames now sitting in per-CPU lists.
    pub fn pcp_frames(&self) -> usize {
        self.pcp.frames()
    }

    /// The per-CPU lists, read-only (for stats, tests and the checker;
    /// allocate through `alloc_zeroed_on`/`put_on`, which keep the books).
    pub fn pcp(&self) -> PcpView<'_> {
        PcpView(&self.pcp)
    }

    /// Frames in use as page-table pages.
    pub fn page_table_pages(&self) -> usize {
        self.pt_pages.load(Ordering::Relaxed)
    }

    #[inline]
    fn owned(&self, pfn: Pfn, count: usize) -> OwnedFrame {
        OwnedFrame {
            pfn,
            count: count as u32,
            phys: self.id,
        }
    }

    /// Take `frame` back, checking that this `PhysMem` made it (a handle
    /// of another would name a frame here that someone else holds).
    #[inline]
    fn take(&self, frame: OwnedFrame) -> Pfn {
        assert!(
            frame.phys == self.id,
            "frame {} given back to a PhysMem that did not allocate it",
            frame.pfn.0
        );
        frame.pfn
    }

    /// Allocate a run of `count` frames aligned to `align` frames for `usage`,
    /// trying zones in fallback order. The head descriptor gets refcount 1,
    /// which the handle holds. Contents are not zeroed (see `alloc_zeroed`).
    /// When every zone fails, the per-CPU lists are drained and the zones
    /// tried once more, so frames parked in lists never cause a failure
    /// (Linux drains them on the slow path too). Linux: `alloc_pages`.
    #[inline]
    pub fn alloc_frames(&self, count: usize, align: usize, usage: FrameUse) -> Option<OwnedFrame> {
        if count == 0 || count > u32::MAX as usize {
            return None;
        }
        let pfn = self.alloc_run(count, align, usage)?;
        Some(self.owned(pfn, count))
    }

    /// Allocate one zero-filled frame for `usage`. Linux: `alloc_page(__GFP_ZERO)`.
    #[inline]
    pub fn alloc_zeroed(&self, usage: FrameUse) -> Option<OwnedFrame> {
        let pfn = self.zeroed_pfn(usage)?;
        Some(self.owned(pfn, 1))
    }

    /// As `alloc_zeroed`, taking the frame from CPU `cpu`'s list of free
    /// frames (refilled from the first zone when empty). A `cpu` without a
    /// list, or an empty first zone, takes the `alloc_zeroed` path.
    /// Linux: `alloc_page(__GFP_ZERO)` reaching `rmqueue_pcplist`.
    #[inline]
    pub fn alloc_zeroed_on(&self, cpu: usize, usage: FrameUse) -> Option<OwnedFrame> {
        let pfn = self.zeroed_pfn_on(cpu, usage)?;
        Some(self.owned(pfn, 1))
    }

    /// Another reference to `frame`'s head frame, as a second handle: the
    /// frames are freed when the last handle is put. Linux: `get_page`.
    #[inline]
    pub fn get(&self, frame: &OwnedFrame) -> OwnedFrame {
        assert!(frame.phys == self.id, "a handle of another PhysMem");
        self.descs.as_slice()[frame.pfn.0]
            .refcount
            .fetch_add(1, Ordering::Relaxed);
        self.owned(frame.pfn, frame.count as usize)
    }

    /// Drop `frame`'s reference; when it was the last, give the run back
    /// to its zone. Returns whether the frames were freed. Panics if
    /// another `PhysMem` made the handle. Linux: `put_page` / `__free_pages`.
    #[inline]
    pub fn put(&self, frame: OwnedFrame) -> bool {
        let count = frame.count as usize;
        let pfn = self.take(frame);
        if count == 1 {
            return self.put_frame(pfn);
        }
        let desc = &self.descs.as_slice()[pfn.0];
        if desc.refcount.fetch_sub(1, Ordering::AcqRel) != 1 {
            return false;
        }
        // The handle's run, allocated with this count: the free cannot fail.
        self.free_frames(pfn, count).is_ok()
    }

    /// As `put`, putting a freed single frame of the first zone on CPU
    /// `cpu`'s list (`put_frame_on`); a run goes to its zone.
    /// Linux: `put_page` reaching `free_unref_page`.
    #[inline]
    pub fn put_on(&self, cpu: usize, frame: OwnedFrame) -> bool {
        if frame.count != 1 {
            return self.put(frame);
        }
        let pfn = self.take(frame);
        self.put_frame_on(cpu, pfn)
    }

    fn alloc_run(&self, count: usize, align: usize, usage: FrameUse) -> Option<Pfn> {
        if let Some(pfn) = self.alloc_from_zones(count, align, usage) {
            return Some(pfn);
        }
        if self.pcp.frames() == 0 || self.drain_pcp() == 0 {
            return None;
        }
        self.alloc_from_zones(count, align, usage)
    }

    fn alloc_from_zones(&self, count: usize, align: usize, usage: FrameUse) -> Option<Pfn> {
        for zone in &self.zones {
            let mut a = zone.alloc.lock();
            if let Some(pfn) = a.alloc(count, align) {
                let taken = a.frames_for(count);
                drop(a);
                self.frames_used.fetch_add(taken, Ordering::Relaxed);
                self.init_allocated(pfn, usage);
                return Some(pfn);
            }
        }
        None
    }

    fn init_allocated(&self, pfn: Pfn, usage: FrameUse) {
        if usage == FrameUse::PageTable {
            self.pt_pages.fetch_add(1, Ordering::Relaxed);
        }
        self.descs.as_slice()[pfn.0].init_allocated(usage);
    }

    fn zeroed_pfn(&self, usage: FrameUse) -> Option<Pfn> {
        let pfn = self.alloc_run(1, 1, usage)?;
        // SAFETY: the allocator just handed `pfn` to us alone.
        unsafe { self.ram.zero_frame_exclusive(pfn) };
        Some(pfn)
    }

    fn zeroed_pfn_on(&self, cpu: usize, usage: FrameUse) -> Option<Pfn> {
        let Some((pfn, refilled)) = self.pcp.alloc(cpu, &self.zones[0].alloc) else {
            return self.zeroed_pfn(usage);
        };
        if refilled > 0 {
            self.frames_used.fetch_add(refilled, Ordering::Relaxed);
        }
        self.init_allocated(pfn, usage);
        // SAFETY: the per-CPU list just handed `pfn` to us alone.
        unsafe { self.ram.zero_frame_exclusive(pfn) };
        Some(pfn)
    }

    /// The one place the VM (faults, the page cache, page tables, fork)
    /// takes a frame: a single frame for `usage`, from CPU `cpu`'s list if
    /// it has one (`NO_CPU`-like values past the last CPU take the zones),
    /// zero-filled or left for the caller to fill (a COW copy, a file read).
    /// The VM frees it by number (`put_frame`, `put_frame_on`,
    /// `free_frames`). `None` when no frame is free; the next issue makes
    /// this reclaim first instead. Linux: `alloc_pages` with `__GFP_ZERO` or without.
    #[inline]
    pub(crate) fn alloc_page(&self, cpu: usize, usage: FrameUse, fill: Fill) -> Option<Pfn> {
        let r = match fill {
            Fill::Zero if self.pcp.has(cpu) => self.zeroed_pfn_on(cpu, usage),
            Fill::Zero => self.zeroed_pfn(usage),
            Fill::Caller => self.alloc_run(1, 1, usage),
        };
        if r.is_none() {
            self.kswapd_wanted.store(true, Ordering::Relaxed);
        } else {
            self.note_allocation();
        }
        r
    }

    /// Give every per-CPU list's frames back to the zone. Returns how many
    /// went. Linux: `drain_all_pages`.
    pub fn drain_pcp(&self) -> usize {
        let n = self.pcp.drain_all(&self.zones[0].alloc);
        if n > 0 {
            self.frames_used.fetch_sub(n, Ordering::Relaxed);
        }
        n
    }

    /// Return a run of `count` frames at `pfn`, allocated with that count,
    /// whatever its references. The descriptor is reset. Crate-private: the
    /// caller must know that nothing maps or holds the frames (outside code
    /// gives back an `OwnedFrame` to `put`). Linux: `__free_pages`.
    pub(crate) fn free_frames(&self, pfn: Pfn, count: usize) -> Result<(), FreeError> {
        let desc = self.descs.as_slice().get(pfn.0).ok_or(FreeError::OutOfRange)?;
        let zone = self.zones.iter().find(|z| z.holds(pfn)).ok_or(FreeError::OutOfRange)?;
        let was_pt = desc.usage() == FrameUse::PageTable;
        self.lru.del(self.descs.as_slice(), pfn);
        let mut a = zone.alloc.lock();
        let taken = a.frames_for(count);
        a.free(pfn, count)?;
        // Reset before the lock is released: once it is, another CPU may
        // allocate the frame and initialise its descriptor.
        desc.reset();
        drop(a);
        self.frames_used.fetch_sub(taken, Ordering::Relaxed);
        if was_pt {
            self.pt_pages.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Drop one reference to a single frame; free it when none is left.
    /// Returns whether the frame was freed. Crate-private: the caller holds
    /// the reference it drops (a PTE's, after the shootdown that makes it
    /// unreachable; a page cache's). Linux: `put_page`.
    pub(crate) fn put_frame(&self, pfn: Pfn) -> bool {
        let Some(desc) = self.descs.as_slice().get(pfn.0) else {
            return false;
        };
        if pfn == self.zero_pfn {
            return false;
        }
        if desc.refcount.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Refcount reached zero: no other holder can see the frame any more.
            let _ = self.free_frames(pfn, 1);
            return true;
        }
        false
    }

    /// As `put_frame`, putting a freed frame of the first zone on CPU `cpu`'s
    /// list (which gives `batch` frames back to the zone when it grows past
    /// `high`). A `cpu` without a list takes the `put_frame` path.
    /// Crate-private, as `put_frame`. Linux: `put_page` reaching `free_unref_page`.
    pub(crate) fn put_frame_on(&self, cpu: usize, pfn: Pfn) -> bool {
        let Some(desc) = self.descs.as_slice().get(pfn.0) else {
            return false;
        };
        if pfn == self.zero_pfn {
            return false;
        }
        if desc.refcount.fetch_sub(1, Ordering::AcqRel) != 1 {
            return false;
        }
        let z = &self.zones[0];
        if !self.pcp.has(cpu) || pfn.0 < z.start.0 || pfn.0 >= z.start.0 + z.frames {
            let _ = self.free_frames(pfn, 1);
            return true;
        }
        let was_pt = desc.usage() == FrameUse::PageTable;
        self.lru.del(self.descs.as_slice(), pfn);
        // Reset before the frame is listed: from then on a drain may give it
        // to the zone and another CPU may allocate it.
        desc.reset();
        if let Ok(returned) = self.pcp.free(cpu, pfn, &z.alloc) {
            if returned > 0 {
                self.frames_used.fetch_sub(returned, Ordering::Relaxed);
            }
        }
        if was_pt {
            self.pt_pages.fetch_sub(1, Ordering::Relaxed);
        }
        true
    }

    /// Free frames according to the allocators' own books, plus the frames
    /// in per-CPU lists.
    pub fn free_frames_count(&self) -> usize {
        let zones: usize = self.zones.iter().map(|z| z.alloc.lock().free_frames()).sum();
        zones + self.pcp.frames()
    }

    /// Whether the allocator of `pfn`'s zone holds it as free or it is in a
    /// per-CPU list. Exact when no CPU is allocating or freeing.
    pub fn is_free(&self, pfn: Pfn) -> bool {
        self.zones
            .iter()
            .find(|z| z.holds(pfn))
            .is_some_and(|z| z.alloc.lock().is_free(pfn))
            || self.pcp.contains(pfn)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn phys() -> PhysMem {
        PhysMem::with_pcp(256, FrameAllocatorPolicy::Buddy, 2, 4).unwrap()
    }

    /// Every frame's state: (free in a zone or a list, usage, refcount).
    fn snapshot(p: &PhysMem) -> Vec<(bool, FrameUse, u32)> {
        (0..p.total_frames())
            .map(|i| {
                let d = p.desc(Pfn(i)).unwrap();
                (p.is_free(Pfn(i)), d.usage(), d.refcount.load(Ordering::Relaxed))
            })
            .collect()
    }

    /// A handle frees exactly the frames it allocated: no other frame
    /// changes state, and the books come back to where they were.
    #[test]
    fn a_handle_frees_exactly_what_it_allocated() {
        let p = phys();
        // Some frames held by "the VM" by number, that no handle may touch.
        let vm: Vec<Pfn> = (0..8)
            .map(|i| p.alloc_page(i % 3, FrameUse::Anon, Fill::Zero).unwrap())
            .collect();
        let before = snapshot(&p);
        let used = p.frames_used();

        let single = p.alloc_zeroed(FrameUse::Kernel).unwrap();
        let listed = p.alloc_zeroed_on(1, FrameUse::Kernel).unwrap();
        let run = p.alloc_frames(4, 4, FrameUse::Kernel).unwrap();
        assert_eq!((single.count(), listed.count(), run.count()), (1, 1, 4));
        assert_eq!(run.pfn().0 % 4, 0);
        let mine: Vec<Pfn> = [single.pfn(), listed.pfn()]
            .into_iter()
            .chain((0..4).map(|i| Pfn(run.pfn().0 + i)))
            .collect();
        assert_eq!(p.frames_used(), used + 6);
        for &f in &mine {
            assert!(!p.is_free(f));
            assert!(!vm.contains(&f));
        }
        let during = snapshot(&p);
        for (i, (b, d)) in before.iter().zip(&during).enumerate() {
            // Frames free before may move between a list and the zone.
            if !mine.contains(&Pfn(i)) && !b.0 {
                assert_eq!(b, d, "frame {i} changed by an allocation that did not return it");
            }
        }

        assert!(p.put(single));
        assert!(p.put_on(0, listed));
        assert!(p.put_on(1, run), "a run goes to its zone");
        assert_eq!(p.frames_used(), used);
        for &f in &mine {
            assert!(p.is_free(f), "frame {} not freed", f.0);
        }
        // Every frame the VM holds is as it was.
        for &f in &vm {
            let d = p.desc(f).unwrap();
            assert!(!p.is_free(f));
            assert_eq!((d.usage(), d.refcount.load(Ordering::Relaxed)), (FrameUse::Anon, 1));
        }
        let after = snapshot(&p);
        let changed: Vec<usize> = (0..after.len()).filter(|&i| before[i] != after[i]).collect();
        assert!(
            changed.iter().all(|&i| before[i].0),
            "only frames free before may differ (which free frame a list holds): {changed:?}"
        );
        for f in vm {
            assert!(p.put_frame(f));
        }
    }

    #[test]
    fn get_and_put_count_references() {
        let p = phys();
        let run = p.alloc_frames(2, 2, FrameUse::Kernel).unwrap();
        let head = run.pfn();
        let again = p.get(&run);
        assert_eq!(again.count(), 2);
        assert!(!p.put(run));
        assert!(!p.is_free(head) && !p.is_free(Pfn(head.0 + 1)));
        assert!(p.put_on(0, again));
        assert!(p.is_free(head) && p.is_free(Pfn(head.0 + 1)));
        assert!(p.alloc_frames(0, 1, FrameUse::Kernel).is_none());
    }

    #[test]
    #[should_panic(expected = "did not allocate it")]
    fn a_handle_of_another_phys_mem_is_refused() {
        let a = phys();
        let b = phys();
        let f = a.alloc_zeroed(FrameUse::Kernel).unwrap();
        // The same frame number is allocated (and could be mapped) in `b`.
        let mine = b.alloc_zeroed(FrameUse::Kernel).unwrap();
        assert_eq!(f.pfn(), mine.pfn());
        b.put(f);
    }

    /// The by-number frees (crate-private) never free the zero page.
    #[test]
    fn the_zero_page_is_never_freed() {
        let p = phys();
        let z = p.zero_pfn();
        assert!(!p.put_frame(z));
        assert!(!p.put_frame_on(0, z));
        assert!(!p.is_free(z));
        assert_eq!(p.desc(z).unwrap().usage(), FrameUse::Zero);
        assert!(!p.put_frame(Pfn(p.total_frames())), "outside RAM");
    }
}
