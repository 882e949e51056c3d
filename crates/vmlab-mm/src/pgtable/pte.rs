//! Page-table entry bits, exactly as x86-64 lays them out.

use crate::addr::Pfn;

/// A page-table entry value. Linux: `pte_t`; FreeBSD: `pt_entry_t`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Pte(pub u64);

impl Pte {
    pub const PRESENT: u64 = 1 << 0;
    pub const WRITE: u64 = 1 << 1;
    pub const USER: u64 = 1 << 2;
    pub const PWT: u64 = 1 << 3;
    pub const PCD: u64 = 1 << 4;
    pub const ACCESSED: u64 = 1 << 5;
    pub const DIRTY: u64 = 1 << 6;
    /// Large page at PDPT/PD level; unused by vmlab for now.
    pub const HUGE: u64 = 1 << 7;
    pub const GLOBAL: u64 = 1 << 8;
    /// Software bit 9: the PTE lock bit of seed 000 #5 (held while a fault
    /// fills this entry). Hardware ignores bits 9-11.
    pub const LOCK: u64 = 1 << 9;
    /// Software bit 10: the frame is special (the zero page): it has no
    /// refcount or mapcount to maintain. Linux: `_PAGE_SPECIAL`.
    pub const SPECIAL: u64 = 1 << 10;
    /// Software bit 11: the entry maps a frame but the VMA is PROT_NONE, so
    /// PRESENT is clear. Linux: `_PAGE_PROTNONE`.
    pub const PROTNONE: u64 = 1 << 11;
    /// Software bit 10 at the PD level: the leaf table below maps pages of
    /// one memory object and is shared by every address space that maps the
    /// same 2 MiB-aligned block of that object with the same protection
    /// (fork policy `shared_pt`: seed 003's "large Oracle server").
    pub const TABLE_OBJ: u64 = 1 << 10;
    /// Software bit 11 at the PD level: the leaf table below is shared
    /// copy-on-write between address spaces (fork policy `shared_pt`); WRITE
    /// is clear in the PD entry, so no store goes through it, and any fault
    /// in its range first gives the faulting address space its own copy.
    pub const TABLE_COW: u64 = 1 << 11;
    /// Bits 59-62 of a leaf entry: the page's protection key (x86 PKU),
    /// looked up in the CPU's PKRU on every data access, TLB hit or not.
    /// vmlab's PKRU is fixed: key 0 allows everything, `EXEC_ONLY_PKEY`
    /// denies data access (Linux's `execute_only_pkey`, the only key it
    /// assigns without `pkey_mprotect`).
    pub const PKEY_SHIFT: u32 = 59;
    pub const PKEY_MASK: u64 = 0xf << Self::PKEY_SHIFT;
    /// The key of execute-only memory (Linux allocates key 1 for it first).
    pub const EXEC_ONLY_PKEY: u64 = 1;
    pub const NX: u64 = 1 << 63;
    /// Physical address bits 12..51.
    pub const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

    /// Flags for a non-leaf entry: the leaf decides permissions.
    pub const TABLE_FLAGS: u64 = Self::PRESENT | Self::WRITE | Self::USER | Self::ACCESSED;

    /// An entry mapping `pfn` with `flags`.
    #[inline]
    pub const fn new(pfn: Pfn, flags: u64) -> Pte {
        Pte(((pfn.0 as u64) << 12) & Self::ADDR_MASK | (flags & !Self::ADDR_MASK))
    }

    #[inline]
    pub const fn is_none(self) -> bool {
        self.0 & !Self::LOCK == 0
    }
    #[inline]
    pub const fn present(self) -> bool {
        self.0 & Self::PRESENT != 0
    }
    /// Maps a frame, present or PROT_NONE.
    #[inline]
    pub const fn maps_frame(self) -> bool {
        self.0 & (Self::PRESENT | Self::PROTNONE) != 0
    }
    #[inline]
    pub const fn writable(self) -> bool {
        self.0 & Self::WRITE != 0
    }
    #[inline]
    pub const fn dirty(self) -> bool {
        self.0 & Self::DIRTY != 0
    }
    #[inline]
    pub const fn accessed(self) -> bool {
        self.0 & Self::ACCESSED != 0
    }
    #[inline]
    pub const fn special(self) -> bool {
        self.0 & Self::SPECIAL != 0
    }
    #[inline]
    pub const fn locked(self) -> bool {
        self.0 & Self::LOCK != 0
    }
    #[inline]
    pub const fn pkey(self) -> u64 {
        (self.0 & Self::PKEY_MASK) >> Self::PKEY_SHIFT
    }

    /// Whether the entry's protection key denies loads and stores (the
    /// fixed PKRU above); instruction fetches are not checked against it.
    #[inline]
    pub const fn pkey_denies_data(self) -> bool {
        self.pkey() == Self::EXEC_ONLY_PKEY
    }

    #[inline]
    pub const fn pfn(self) -> Pfn {
        Pfn(((self.0 & Self::ADDR_MASK) >> 12) as usize)
    }
    #[inline]
    pub const fn with(self, bits: u64) -> Pte {
        Pte(self.0 | bits)
    }
    #[inline]
    pub const fn without(self, bits: u64) -> Pte {
        Pte(self.0 & !bits)
    }
}

/// Levels of the tree, named as x86-64 names them. Linux: pgd/pud/pmd/pte.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Level {
    Pml4 = 4,
    Pdpt = 3,
    Pd = 2,
    Pt = 1,
}

impl Level {
    /// Bit position of the lowest VA bit this level's index covers.
    #[inline]
    pub const fn shift(self) -> u32 {
        12 + 9 * (self as u32 - 1)
    }
    /// Bytes one entry of this level covers.
    #[inline]
    pub const fn entry_span(self) -> u64 {
        1 << self.shift()
    }
    /// Index of `va` in a table of this level.
    #[inline]
    pub const fn index(self, va: u64) -> usize {
        ((va >> self.shift()) & 511) as usize
    }
    /// The level below, `None` for the leaf level.
    #[inline]
    pub const fn next(self) -> Option<Level> {
        match self {
            Level::Pml4 => Some(Level::Pdpt),
            Level::Pdpt => Some(Level::Pd),
            Level::Pd => Some(Level::Pt),
            Level::Pt => None,
        }
    }
}
