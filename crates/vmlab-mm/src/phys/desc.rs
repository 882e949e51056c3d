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
    /// The second frame of an order-1 leaf page table under `rmap =
    /// pte_chain`: word `i` links entry `i` of the table to the next PTE
    /// that maps the same frame (seed 002).
    RmapLinks = 6,
}

impl FrameUse {
    fn from_u8(v: u8) -> FrameUse {
        match v {
            1 => FrameUse::PageTable,
            2 => FrameUse::Anon,
            3 => FrameUse::Zero,
            4 => FrameUse::Kernel,
            5 => FrameUse::PageCache,
            6 => FrameUse::RmapLinks,
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
    /// Crate-private: the last reference dropped frees the frame, so a
    /// count changed from outside would let the VM free a mapped frame
    /// (`refcount()` reads it; `PhysMem::get` takes one as a handle).
    pub(crate) refcount: AtomicU32,
    /// Page-table entries that map the frame. Linux: `_mapcount + 1`.
    /// Crate-private: only `mm/pte_ops.rs` changes it (`mapcount()` reads it).
    pub(crate) mapcount: AtomicI32,
    /// Who owns the frame, as `Owner` encodes it (`owner()`, `set_owner`):
    /// a tag in bits 61-63 and an id below. Linux: `page->mapping`.
    owner: AtomicU64,
    /// The page offset within an anonymous or object owner; 0 otherwise.
    /// Linux: `page->index`.
    index: AtomicU64,
    /// Reverse-map word. A mapped frame under `rmap = pte_chain`: its first
    /// PTE (RAM word index + 1, 0 for none); under `pte_pool`: its first
    /// pool node (+ 1). A leaf page table: the virtual address its entry 0
    /// maps in its owner (Linux `ptdesc->pt_index`), which turns a PTE
    /// pointer back into an address. Crate-private: `phys/pte_links.rs`
    /// and the page-table code keep it.
    pub(crate) rmap: AtomicU64,
    /// LRU list links, used by reclaim: frame number + 1, 0 for none (so
    /// that a zeroed descriptor is on no list).
    pub lru_prev: AtomicU32,
    pub lru_next: AtomicU32,
    /// The swap slot of an anonymous page in the swap cache (`PG_SWAPCACHE`):
    /// its swap entry's raw PTE value, 0 otherwise. Linux: `folio->swap`.
    pub(crate) swap: AtomicU64,
}

/// Who a frame belongs to. Each variant says what its fields are; no field
/// means two things.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// Free, the zero page, or not yet given to anyone.
    None,
    /// Anonymous memory of anonymous identity `anon` (`Vma::anon`; an
    /// anon_vma-like object), at page offset `index` in it
    /// (`Vma::pgoff_of`). Linux: `page->mapping` = anon_vma | PAGE_MAPPING_ANON.
    Anon { anon: u64, index: u64 },
    /// Page `index` of memory object `object` (`MemObject::id`), in its
    /// page cache. Linux: `page->mapping` = the `address_space`.
    Object { object: u64, index: u64 },
    /// A page-table page of address space `mm` (its rss counts the frames
    /// the table maps), or of none (`mm` = 0): a table shared by fork whose
    /// owner left. Linux: `ptdesc->pt_mm`.
    PageTable { mm: u64 },
    /// An object table (`mm/shared_pt.rs`): a leaf table shared by every
    /// address space that maps one 2 MiB block of `object`; its sharers are
    /// listed in the object's registry.
    ObjectTable { object: u64 },
    /// Held by a kernel client (not mapped).
    Kernel,
}

impl Owner {
    const TAG_SHIFT: u32 = 61;
    const ID_MASK: u64 = (1 << Self::TAG_SHIFT) - 1;

    fn encode(self) -> (u64, u64) {
        let (tag, id, index) = match self {
            Owner::None => (0, 0, 0),
            Owner::Anon { anon, index } => (1, anon, index),
            Owner::Object { object, index } => (2, object, index),
            Owner::PageTable { mm } => (3, mm, 0),
            Owner::ObjectTable { object } => (4, object, 0),
            Owner::Kernel => (5, 0, 0),
        };
        debug_assert_eq!(id & !Self::ID_MASK, 0, "owner id {id:#x} too large");
        ((tag << Self::TAG_SHIFT) | (id & Self::ID_MASK), index)
    }

    fn decode(word: u64, index: u64) -> Owner {
        let id = word & Self::ID_MASK;
        match word >> Self::TAG_SHIFT {
            1 => Owner::Anon { anon: id, index },
            2 => Owner::Object { object: id, index },
            3 => Owner::PageTable { mm: id },
            4 => Owner::ObjectTable { object: id },
            5 => Owner::Kernel,
            _ => Owner::None,
        }
    }
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
/// Held while the frame's PTE-pointer list (`rmap = pte_chain`) changes or
/// is read. Linux 2.5: `PG_chainlock` (`pte_chain_lock`).
pub const PG_RMAP_LOCK: u32 = 1 << 14;
/// An anonymous page that is also in the swap cache (the page cache of the
/// swap object), its slot in `FrameDesc::swap`. Linux: `PG_swapcache`.
pub const PG_SWAPCACHE: u32 = 1 << 15;
/// A page being read in or written out: a fault that finds it in a cache
/// waits (retries) until the I/O is done. Linux: `PG_locked` held for I/O.
pub const PG_IO: u32 = 1 << 16;
/// Pages MADV_FREE made lazily freeable: reclaim drops them, without
/// writing, if no store dirtied them since. Linux: a clean anonymous folio
/// without `PG_swapbacked`.
pub const PG_LAZYFREE: u32 = 1 << 17;
/// Bits 24-27 of the flags: which LRU list a `PG_LRU` frame is on.
pub const LRU_LIST_SHIFT: u32 = 24;
pub const LRU_LIST_MASK: u32 = 0xf;

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
            owner: AtomicU64::new(0),
            index: AtomicU64::new(0),
            rmap: AtomicU64::new(0),
            lru_prev: AtomicU32::new(0),
            lru_next: AtomicU32::new(0),
            swap: AtomicU64::new(0),
        }
    }

    pub(crate) fn init_allocated(&self, usage: FrameUse) {
        self.flags.store(usage as u32, Ordering::Relaxed);
        self.refcount.store(1, Ordering::Relaxed);
        self.mapcount.store(0, Ordering::Relaxed);
        // A kernel client's frame is the kernel's from the start; every other
        // use gets its owner when the VM hands the frame to one.
        let owner = if usage == FrameUse::Kernel {
            Owner::Kernel
        } else {
            Owner::None
        };
        let (word, index) = owner.encode();
        self.owner.store(word, Ordering::Relaxed);
        self.index.store(index, Ordering::Relaxed);
        self.rmap.store(0, Ordering::Relaxed);
        self.swap.store(0, Ordering::Relaxed);
    }

    pub(crate) fn reset(&self) {
        self.flags.store(0, Ordering::Relaxed);
        self.refcount.store(0, Ordering::Relaxed);
        self.mapcount.store(0, Ordering::Relaxed);
        self.owner.store(0, Ordering::Relaxed);
        self.index.store(0, Ordering::Relaxed);
        self.rmap.store(0, Ordering::Relaxed);
        self.lru_prev.store(0, Ordering::Relaxed);
        self.lru_next.store(0, Ordering::Relaxed);
        self.swap.store(0, Ordering::Relaxed);
    }

    /// The swap entry (raw PTE value) of a page in the swap cache, if it is one.
    #[inline]
    pub fn swap_entry(&self) -> Option<u64> {
        if self.flags.load(Ordering::Acquire) & PG_SWAPCACHE == 0 {
            return None;
        }
        Some(self.swap.load(Ordering::Acquire)).filter(|&w| w != 0)
    }

    /// Take a reference to a frame that may be on its way to being freed
    /// (found on an LRU list or in a cache, under that list's or cache's
    /// lock): `false` if its count already reached zero. Linux: `folio_try_get`.
    /// Only under such a lock: a frame found by number alone may be in the
    /// middle of `init_allocated`, whose stores would undo what the caller
    /// then does to it.
    #[inline]
    pub(crate) fn try_get(&self) -> bool {
        let mut c = self.refcount.load(Ordering::Acquire);
        loop {
            if c == 0 {
                return false;
            }
            match self
                .refcount
                .compare_exchange_weak(c, c + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(now) => c = now,
            }
        }
    }

    /// The LRU list the frame is on (`PG_LRU`), as `phys/lru.rs` numbers them.
    #[inline]
    pub fn lru_list(&self) -> Option<usize> {
        let f = self.flags.load(Ordering::Acquire);
        (f & PG_LRU != 0).then_some(((f >> LRU_LIST_SHIFT) & LRU_LIST_MASK) as usize)
    }

    /// Who owns the frame.
    #[inline]
    pub fn owner(&self) -> Owner {
        // An owner is set before the frame is published (mapped, cached,
        // linked), so the two words never change under a reader that found it.
        let index = self.index.load(Ordering::Acquire);
        Owner::decode(self.owner.load(Ordering::Acquire), index)
    }

    /// Give the frame to `o`. The frame is not mapped yet, or (page tables)
    /// its owner changes under the lock that protects the table's sharing.
    #[inline]
    pub(crate) fn set_owner(&self, o: Owner) {
        let (word, index) = o.encode();
        self.index.store(index, Ordering::Relaxed);
        self.owner.store(word, Ordering::Release);
    }

    /// References held now (a momentary figure while other CPUs run).
    #[inline]
    pub fn refcount(&self) -> u32 {
        self.refcount.load(Ordering::Relaxed)
    }

    /// Page-table entries that map the frame now (a momentary figure).
    #[inline]
    pub fn mapcount(&self) -> i32 {
        self.mapcount.load(Ordering::Relaxed)
    }

    /// Give a page-table page to address space `mm`, its entry 0 mapping
    /// `base` (the table is not linked yet).
    #[inline]
    pub(crate) fn set_table_owner(&self, mm: u64, base: u64) {
        self.rmap.store(base, Ordering::Relaxed);
        self.set_owner(Owner::PageTable { mm });
    }

    /// For a leaf page table: the virtual address its entry 0 maps.
    #[inline]
    pub fn table_base(&self) -> u64 {
        self.rmap.load(Ordering::Acquire)
    }

    /// What the frame is used for.
    #[inline]
    pub fn usage(&self) -> FrameUse {
        FrameUse::from_u8(self.flags.load(Ordering::Relaxed) as u8)
    }
}
