//! Virtual memory areas: a contiguous range of one address space with one
//! protection and one backing. Linux: `struct vm_area_struct`; FreeBSD:
//! `struct vm_map_entry`.
//!
//! A VMA carries everything Linux's merge rules look at (`vma_merge`,
//! `is_mergeable_vma`, `is_mergeable_anon_vma`): flags, backing object and page
//! offset, and the anonymous-memory identity.

use crate::mm::object::MemObject;
use crate::mm::uapi::{PROT_EXEC, PROT_READ, PROT_WRITE};
use crate::sync::{Arc, AtomicU64, Ordering};
use core::fmt;

/// Access permissions of a VMA, as `PROT_*` bits (read, write, exec only).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Prot(pub u8);

impl Prot {
    pub const NONE: Prot = Prot(0);
    pub const READ: u8 = PROT_READ as u8;
    pub const WRITE: u8 = PROT_WRITE as u8;
    pub const EXEC: u8 = PROT_EXEC as u8;

    pub fn from_bits(p: u32) -> Prot {
        Prot((p & (PROT_READ | PROT_WRITE | PROT_EXEC)) as u8)
    }
    #[inline]
    pub fn read(self) -> bool {
        self.0 & Self::READ != 0
    }
    #[inline]
    pub fn write(self) -> bool {
        self.0 & Self::WRITE != 0
    }
    #[inline]
    pub fn exec(self) -> bool {
        self.0 & Self::EXEC != 0
    }
    /// Whether any access is allowed: on x86 any of R/W/X lets loads through
    /// (Linux `vma_is_accessible`).
    #[inline]
    pub fn accessible(self) -> bool {
        self.0 != 0
    }
}

/// VMA flags beyond protection. Linux: the non-protection `VM_*` bits.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct VmFlags(pub u32);

impl VmFlags {
    /// Writes are shared with the backing object (`VM_SHARED`).
    pub const SHARED: u32 = 1 << 0;
    /// Stack that grows down (`VM_GROWSDOWN`).
    pub const GROWSDOWN: u32 = 1 << 1;
    /// Not inherited by fork (`VM_DONTCOPY`, MADV_DONTFORK).
    pub const DONTCOPY: u32 = 1 << 2;
    /// Read-ahead hints (`VM_SEQ_READ`, `VM_RAND_READ`).
    pub const SEQ_READ: u32 = 1 << 3;
    pub const RAND_READ: u32 = 1 << 4;
    /// Memory was accounted at mmap (`VM_ACCOUNT`; absent with MAP_NORESERVE).
    pub const ACCOUNT: u32 = 1 << 5;
    /// Locked in memory (`VM_LOCKED`: mlock, mlock2, mlockall, MAP_LOCKED,
    /// `mm->def_flags` after `mlockall(MCL_FUTURE)`). Reclaim must never
    /// evict a page mapped by a VMA with this flag (Linux: `try_to_unmap_one`
    /// finds VM_LOCKED, mlocks the folio and gives up; the page goes to the
    /// unevictable list). Not inherited by fork. See `mm/mlock.rs`.
    pub const LOCKED: u32 = 1 << 6;
    /// Not charged against the commit limit (`VM_NORESERVE`: MAP_NORESERVE
    /// while overcommit is not "never"; vmlab models the heuristic mode).
    pub const NORESERVE: u32 = 1 << 7;
    /// No transparent huge pages (`VM_NOHUGEPAGE`): Linux sets it for
    /// MAP_STACK (`calc_vm_flag_bits`, kernels with THP, since 6.7). vmlab
    /// has no THP; the flag is kept because it decides merging.
    pub const NOHUGEPAGE: u32 = 1 << 8;
    /// Mapped with MAP_SHARED (`VM_MAYSHARE`). Without `SHARED` beside it,
    /// the mapping is of a file opened read-only: it can never be made
    /// writable (Linux clears `VM_SHARED` and `VM_MAYWRITE` for it in `do_mmap`).
    pub const MAYSHARE: u32 = 1 << 9;
    /// Left out of core dumps (`VM_DONTDUMP`, MADV_DONTDUMP).
    pub const DONTDUMP: u32 = 1 << 10;
    /// The child of a fork gets zero-filled memory here (`VM_WIPEONFORK`,
    /// MADV_WIPEONFORK; private anonymous memory only).
    pub const WIPEONFORK: u32 = 1 << 11;
    /// Transparent huge pages wanted (`VM_HUGEPAGE`, MADV_HUGEPAGE). vmlab
    /// has no THP; the flag is kept because it decides merging.
    pub const HUGEPAGE: u32 = 1 << 12;
    /// KSM may merge these pages (`VM_MERGEABLE`, MADV_MERGEABLE on a
    /// private mapping). vmlab has no KSM; the flag decides merging.
    pub const MERGEABLE: u32 = 1 << 13;
    /// The VMA's protection key is the execute-only key (Linux: the
    /// `VM_PKEY_BIT*` bits holding `execute_only_pkey`): set by mmap and
    /// mprotect for exactly `PROT_EXEC` on a machine with protection keys
    /// (`arch_override_mprotect_pkey`), so loads and stores fault with
    /// `SEGV_PKUERR`. Part of the flags, so it decides merging as in Linux.
    pub const PKEY_EXEC_ONLY: u32 = 1 << 14;
    /// Pages may be dropped instead of swapped under memory pressure
    /// (`VM_DROPPABLE`, MAP_DROPPABLE, Linux 6.11; private anonymous memory
    /// only, always with `NORESERVE`, `WIPEONFORK` and `DONTDUMP`, which
    /// madvise cannot clear). Reclaim frees its pages rather than swap them.
    pub const DROPPABLE: u32 = 1 << 15;
    /// With `LOCKED`: pages are locked as they are faulted in, the range is
    /// not populated when locked (`VM_LOCKONFAULT`: `mlock2(MLOCK_ONFAULT)`,
    /// `mlockall(MCL_ONFAULT)`). Never set without `LOCKED`.
    pub const LOCKONFAULT: u32 = 1 << 16;
    /// The lock bits (`VM_LOCKED_MASK`).
    pub const LOCKED_MASK: u32 = Self::LOCKED | Self::LOCKONFAULT;

    #[inline]
    pub fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }
}

/// Identity of a memory object behind a VMA (a file, or shared anonymous
/// memory): `MemObject::id`, and the `mapping` of its page-cache frames.
/// Linux: the `address_space`; FreeBSD: `vm_object`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId(pub u64);

/// What backs a VMA.
#[derive(Clone)]
pub enum Backing {
    /// Private anonymous memory: demand-zero pages owned by the VMA's
    /// anonymous identity.
    Anon,
    /// A memory object (file or shared anonymous memory, `mm/object.rs`),
    /// from page `Vma::pgoff` on. Each VMA holds a reference, so a VMA
    /// cloned by fork reaches the same object. Linux: `vm_file`.
    Object(Arc<MemObject>),
}

impl PartialEq for Backing {
    /// Same kind, and for objects the same object (not equal contents).
    fn eq(&self, o: &Backing) -> bool {
        match (self, o) {
            (Backing::Anon, Backing::Anon) => true,
            (Backing::Object(a), Backing::Object(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Backing {}

impl fmt::Debug for Backing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backing::Anon => f.write_str("Anon"),
            Backing::Object(o) => write!(f, "Object({})", o.id().0),
        }
    }
}

impl Backing {
    /// The object, if any.
    #[inline]
    pub fn object(&self) -> Option<&Arc<MemObject>> {
        match self {
            Backing::Anon => None,
            Backing::Object(o) => Some(o),
        }
    }
}

/// A virtual memory area.
#[derive(Debug)]
pub struct Vma {
    /// First byte; page aligned.
    pub start: u64,
    /// One past the last byte; page aligned; `end > start`.
    pub end: u64,
    pub prot: Prot,
    pub flags: VmFlags,
    pub backing: Backing,
    /// Page offset of `start` in the backing. For private anonymous memory
    /// Linux sets it to `start >> PAGE_SHIFT` at mmap, and a moved VMA keeps
    /// it; merging requires it to be contiguous.
    pub pgoff: u64,
    /// Anonymous-memory identity (Linux `anon_vma`), 0 until the first fault
    /// that needs it. Set by compare-and-swap under the map lock held for
    /// reading (Linux's `anon_vma_prepare` takes `page_table_lock` for this).
    pub anon: AtomicU64,
    /// The identity is chained to a fork relative's: set on a fork child's
    /// VMAs that inherit pages (Linux `anon_vma_fork` leaves the child VMA's
    /// `anon_vma_chain` with more than one entry) and carried wherever the
    /// identity goes (split, mremap, a merge that adopts it). Linux then
    /// neither lends the identity to a neighbour (`reusable_anon_vma`) nor
    /// merges the VMA with one that has no identity yet
    /// (`is_mergeable_anon_vma` → `vma_had_uncowed_parents`). Changed only
    /// under the map lock held for writing, or together with `anon` from 0.
    pub anon_forked: bool,
}

impl Clone for Vma {
    fn clone(&self) -> Vma {
        Vma {
            start: self.start,
            end: self.end,
            prot: self.prot,
            flags: self.flags,
            backing: self.backing.clone(),
            pgoff: self.pgoff,
            anon: AtomicU64::new(self.anon_id()),
            anon_forked: self.anon_forked,
        }
    }
}

impl PartialEq for Vma {
    fn eq(&self, o: &Vma) -> bool {
        self.start == o.start
            && self.end == o.end
            && self.prot == o.prot
            && self.flags == o.flags
            && self.backing == o.backing
            && self.pgoff == o.pgoff
            && self.anon_id() == o.anon_id()
            && self.anon_forked == o.anon_forked
    }
}

impl Vma {
    /// A new VMA without anonymous identity.
    pub fn new(start: u64, end: u64, prot: Prot, flags: VmFlags, backing: Backing, pgoff: u64) -> Vma {
        Vma {
            start,
            end,
            prot,
            flags,
            backing,
            pgoff,
            anon: AtomicU64::new(0),
            anon_forked: false,
        }
    }

    /// Pages covered.
    #[inline]
    pub fn pages(&self) -> u64 {
        (self.end - self.start) >> crate::addr::PAGE_SHIFT
    }

    /// Anonymous identity, 0 if none yet.
    #[inline]
    pub fn anon_id(&self) -> u64 {
        self.anon.load(Ordering::Acquire)
    }

    /// Page offset in the backing of the page holding `addr`.
    #[inline]
    pub fn pgoff_of(&self, addr: u64) -> u64 {
        self.pgoff + ((addr - self.start) >> crate::addr::PAGE_SHIFT)
    }

    /// Whether `addr` is inside.
    #[inline]
    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }

    /// Whether `next`, starting where `self` ends, can become one VMA with it,
    /// by Linux's rules: same flags, protection and backing, page offsets that
    /// continue, and anonymous identities that are equal or not yet assigned
    /// on one side (`is_mergeable_vma`, `is_mergeable_anon_vma`).
    pub fn can_merge_with_next(&self, next: &Vma) -> bool {
        self.end == next.start
            && self.prot == next.prot
            && self.flags == next.flags
            && self.backing == next.backing
            && self.pgoff + self.pages() == next.pgoff
            && self.anon_mergeable_with(next)
    }

    /// Whether the anonymous identities of `self` and `other` allow a merge:
    /// equal, or one side has none yet and the other's identity is not
    /// chained to a fork relative (Linux `is_mergeable_anon_vma`: with one
    /// side NULL the other VMA's `anon_vma_chain` must be singular).
    pub fn anon_mergeable_with(&self, other: &Vma) -> bool {
        let (a, b) = (self.anon_id(), other.anon_id());
        a == b || (a == 0 && !other.anon_forked) || (b == 0 && !self.anon_forked)
    }

    /// Whether `next`, starting where `self` ends, may share `self`'s
    /// anonymous identity: everything but the protection would allow a merge.
    /// Linux: `anon_vma_compatible` (which ignores the access flags), used by
    /// `find_mergeable_anon_vma` when a VMA first needs an `anon_vma`.
    pub fn anon_compatible_with_next(&self, next: &Vma) -> bool {
        self.end == next.start
            && self.flags == next.flags
            && self.backing == next.backing
            && self.pgoff + self.pages() == next.pgoff
    }

    /// Split at `addr` (strictly inside): `self` keeps `[start, addr)`, the
    /// returned VMA is `[addr, end)` with the same identity and offset continued.
    /// Linux: `__split_vma`.
    pub fn split_off(&mut self, addr: u64) -> Vma {
        let mut tail = self.clone();
        tail.pgoff = self.pgoff_of(addr);
        tail.start = addr;
        self.end = addr;
        tail
    }

    /// The four-character permission field of `/proc/PID/maps`.
    pub fn perms(&self) -> [u8; 4] {
        [
            if self.prot.read() { b'r' } else { b'-' },
            if self.prot.write() { b'w' } else { b'-' },
            if self.prot.exec() { b'x' } else { b'-' },
            if self.flags.0 & (VmFlags::SHARED | VmFlags::MAYSHARE) != 0 {
                b's'
            } else {
                b'p'
            },
        ]
    }
}
