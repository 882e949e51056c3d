//! Frame descriptors. Linux: `struct page`; FreeBSD: `struct vm_page`.

use crate::sync::{AtomicI32, AtomicU32, AtomicU64, Ordering};

/// What a frame is being used for. Stored in the low byte of `FrameDesc::flags`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameUse {
    /// On an allocator's free list.
    Free = 0,
    /// A page of a page table (any level). Linux: `PageTable()`.
    PageTable = 1,
    /// Anonymous memory of one or more processes. Linux: `PageAnon()`.
    Anon = 2,
    /// The shared zero page.
    Zero = 3,
    /// Owned by a kernel client (slab, a test) that is not mapped.
    Kernel = 4,
    /// A page of a memory object's page cache (file or shared anonymous
    /// memory, `mm/object.rs`): `mapping` is the object's id, `index` the
    /// page offset in it. The cache holds one reference, each PTE that maps
    /// it one more. Linux: a page with `page->mapping` an `address_space`.
    PageCache = 5,
}

impl FrameUse {
    fn from_u8(v: u8) -> FrameUse {
        match v {
            1 => FrameUse::PageTable,
            2 => FrameUse::Anon,
            3 => FrameUse::Zero,
            4 => FrameUse::Kernel,
            5 => FrameUse::PageCache,
            _ => FrameUse::Free,
        }
    }
}

/// One per frame, in an array indexed by frame number; kept small so that the
/// array stays cache-friendly. Fields change under concurrency, so they are atomics.
///
/// The all-zero bit pattern is the initial state (a free frame, no
/// references, no owner, on no list), so the array is taken zeroed from the
/// host (`phys::backing`) and descriptors of frames never allocated are
/// never written: building a 100 GiB machine does not touch 1 GiB of them.
/// Its size is part of the host memory each simulated frame costs
/// (`PhysMem::HOST_BYTES_PER_FRAME`, docs/CONFIG.md).
pub struct FrameDesc {
    /// Low byte: `FrameUse`; higher bits: page flags (`PG_*` below).
    pub flags: AtomicU32,
    /// References held (page tables through mapcount, caches, I/O). Linux: `_refcount`.
    pub refcount: AtomicU32,
    /// Page-table entries that map the frame. Linux: `_mapcount + 1`.
    pub mapcount: AtomicI32,
    /// Owner: the anonymous-memory identity (or, later, memory object) the
    /// frame belongs to; 0 for none. Linux: `page->mapping`.
    pub mapping: AtomicU64,
    /// Page offset within the owner. Linux: `page->index`.
    pub index: AtomicU64,
    /// LRU list links, used by reclaim: frame number + 1, 0 for none (so
    /// that a zeroed descriptor is on no list).
    pub lru_prev: AtomicU32,
    pub lru_next: AtomicU32,
}

/// Page flag bits above the `FrameUse` byte.
pub const PG_DIRTY: u32 = 1 << 8;
pub const PG_REFERENCED: u32 = 1 << 9;
pub const PG_ACTIVE: u32 = 1 << 10;
pub const PG_LRU: u32 = 1 << 11;
pub const PG_LOCKED: u32 = 1 << 12;
/// A page-cache page of shared anonymous memory (no file to write back to).
/// Linux: `PG_swapbacked`.
pub const PG_SWAPBACKED: u32 = 1 << 13;

// SAFETY: every field is an atomic integer, for which zero is a valid value
// (padding may hold anything); the alignment is that of `AtomicU64`, 8, and
// a size is a multiple of the alignment (`ZeroedArray` asserts both).
unsafe impl super::backing::Zeroable for FrameDesc {
    fn zero() -> FrameDesc {
        FrameDesc::new()
    }
}

impl FrameDesc {
    /// A free frame's descriptor: every field zero.
    pub(crate) fn new() -> FrameDesc {
        FrameDesc {
            flags: AtomicU32::new(0),
            refcount: AtomicU32::new(0),
            mapcount: AtomicI32::new(0),
            mapping: AtomicU64::new(0),
            index: AtomicU64::new(0),
            lru_prev: AtomicU32::new(0),
            lru_next: AtomicU32::new(0),
        }
    }

    pub(crate) fn init_allocated(&self, usage: FrameUse) {
        self.flags.store(usage as u32, Ordering::Relaxed);
        self.refcount.store(1, Ordering::Relaxed);
        self.mapcount.store(0, Ordering::Relaxed);
        self.mapping.store(0, Ordering::Relaxed);
        self.index.store(0, Ordering::Relaxed);
    }

    pub(crate) fn reset(&self) {
        self.flags.store(0, Ordering::Relaxed);
        self.refcount.store(0, Ordering::Relaxed);
        self.mapcount.store(0, Ordering::Relaxed);
        self.mapping.store(0, Ordering::Relaxed);
        self.index.store(0, Ordering::Relaxed);
        self.lru_prev.store(0, Ordering::Relaxed);
        self.lru_next.store(0, Ordering::Relaxed);
    }

    /// What the frame is used for.
    #[inline]
    pub fn usage(&self) -> FrameUse {
        FrameUse::from_u8(self.flags.load(Ordering::Relaxed) as u8)
    }
}
