//! Page-table entry bits, exactly as x86-64 lays them out, and the one
//! decoder/encoder of leaf entries (`LeafEntry`).
//!
//! A leaf entry is in one of these states (bit layout beside Linux x86-64's):
//!
//! | state | vmlab bits | Linux x86-64 |
//! |---|---|---|
//! | none | all zero | all zero |
//! | present | P=1; pfn 12-51; W, U, A, D, NX as hardware; SPECIAL (10) for the zero page; key 59-62 | the same; `_PAGE_SPECIAL` is bit 9 |
//! | PROT_NONE | P=0, PROTNONE (11); otherwise as present | P=0, `_PAGE_PROTNONE` = bit 8 (the global bit) |
//! | swap | P=0, PROTNONE=0, kind 52-53 = 1; type 54-58; offset 12-51 | P=0; type in bits 1-5 (5 bits) with the *inverted* offset from bit 9 (L1TF mitigation); PROTNONE clear |
//! | migration | kind = 2; pfn 12-51; writable at 54 | a swap entry of a reserved type (`SWP_MIGRATION_READ/WRITE`) |
//! | guard marker | kind = 3, nothing else (MADV_GUARD_INSTALL; `pte_ops::install_guard`/`remove_guard`; kept by DONTNEED, dropped by munmap) | a PTE marker (`PTE_MARKER_GUARD`), a swap entry of type `SWP_PTE_MARKER` |
//! | claimed | LOCK (9) set on any of the above (`fault_lock = pte_bit`) | (none: seed 000 #5's proposal) |
//!
//! vmlab's software bits are 9 (LOCK), 10 (SPECIAL), 11 (PROTNONE), which
//! hardware ignores in every entry, and 52-53 (kind) and 54-58 (swap type,
//! migration's writable bit), which hardware ignores in a leaf entry. A
//! non-present software entry never has PROTNONE set, and no state uses
//! bit 9, so every state can be claimed with the same compare-and-swap.
//! vmlab need not invert the offset: no CPU speculates through its tables.

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

    /// Bits 52-53 of a non-present entry: which software entry it is.
    pub const KIND_SHIFT: u32 = 52;
    pub const KIND_MASK: u64 = 0b11 << Self::KIND_SHIFT;
    const KIND_SWAP: u64 = 1;
    const KIND_MIGRATION: u64 = 2;
    const KIND_GUARD: u64 = 3;
    /// Bits 54-58: a swap entry's type (its swap area), 32 areas.
    pub const SWAP_TYPE_SHIFT: u32 = 54;
    pub const SWAP_TYPE_MASK: u64 = 0x1f << Self::SWAP_TYPE_SHIFT;
    /// Number of swap types a swap entry can name.
    pub const MAX_SWAP_TYPES: u8 = 32;
    /// Largest swap offset (40 bits, in pages).
    pub const MAX_SWAP_OFFSET: u64 = (1 << 40) - 1;
    /// Bit 54 of a migration entry: the page was mapped writable.
    pub const MIGRATION_WRITE: u64 = 1 << 54;

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

    /// The state of a leaf entry, its lock bit ignored (see `locked`).
    #[inline]
    pub const fn decode(self) -> LeafEntry {
        let v = self.without(Self::LOCK);
        if v.0 == 0 {
            return LeafEntry::None;
        }
        if v.present() {
            return LeafEntry::Present(v);
        }
        if v.0 & Self::PROTNONE != 0 {
            return LeafEntry::ProtNone(v);
        }
        match (v.0 & Self::KIND_MASK) >> Self::KIND_SHIFT {
            Self::KIND_SWAP => LeafEntry::Swap(SwapEntry {
                ty: ((v.0 & Self::SWAP_TYPE_MASK) >> Self::SWAP_TYPE_SHIFT) as u8,
                offset: (v.0 & Self::ADDR_MASK) >> 12,
            }),
            Self::KIND_MIGRATION => LeafEntry::Migration {
                pfn: v.pfn(),
                writable: v.0 & Self::MIGRATION_WRITE != 0,
            },
            Self::KIND_GUARD if v.0 == Self::GUARD.0 => LeafEntry::Guard,
            _ => LeafEntry::Invalid(v),
        }
    }

    /// A swap entry for slot `offset` of swap area `ty`; `None` if either
    /// does not fit the layout.
    #[inline]
    pub const fn swap(e: SwapEntry) -> Option<Pte> {
        if e.ty >= Self::MAX_SWAP_TYPES || e.offset > Self::MAX_SWAP_OFFSET {
            return None;
        }
        Some(Pte((Self::KIND_SWAP << Self::KIND_SHIFT)
            | ((e.ty as u64) << Self::SWAP_TYPE_SHIFT)
            | (e.offset << 12)))
    }

    /// The slot a swap entry names (for another kind of entry, whatever its
    /// bits say: callers know it is one, having decoded it or made it).
    #[inline]
    pub const fn swap_entry(self) -> SwapEntry {
        SwapEntry {
            ty: ((self.0 & Self::SWAP_TYPE_MASK) >> Self::SWAP_TYPE_SHIFT) as u8,
            offset: (self.0 & Self::ADDR_MASK) >> 12,
        }
    }

    /// A migration entry: the page at `pfn` is being moved; a fault on it
    /// waits until the move is done.
    #[inline]
    pub const fn migration(pfn: Pfn, writable: bool) -> Pte {
        let w = if writable { Self::MIGRATION_WRITE } else { 0 };
        Pte((Self::KIND_MIGRATION << Self::KIND_SHIFT) | w | (((pfn.0 as u64) << 12) & Self::ADDR_MASK))
    }

    /// The guard marker (MADV_GUARD_INSTALL): any access is SIGSEGV.
    pub const GUARD: Pte = Pte(Self::KIND_GUARD << Self::KIND_SHIFT);

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

/// A swap slot: the swap area (`ty`) and the page offset in it.
/// Linux: `swp_entry_t` (`swp_type`, `swp_offset`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct SwapEntry {
    pub ty: u8,
    pub offset: u64,
}

/// What a leaf entry holds (`Pte::decode`). The lock bit is not part of the
/// state: any state can be claimed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LeafEntry {
    None,
    /// Maps a frame the CPU may reach.
    Present(Pte),
    /// Maps a frame, but the VMA is PROT_NONE: no access.
    ProtNone(Pte),
    /// The page is in swap.
    Swap(SwapEntry),
    /// The page is being migrated from `pfn`.
    Migration {
        pfn: Pfn,
        writable: bool,
    },
    /// A guard page (MADV_GUARD_INSTALL).
    Guard,
    /// No state: a bit pattern no code of vmlab writes (the checker reports it).
    Invalid(Pte),
}

impl LeafEntry {
    /// The frame the entry maps (present or PROT_NONE).
    #[inline]
    pub const fn frame(self) -> Option<Pte> {
        match self {
            LeafEntry::Present(p) | LeafEntry::ProtNone(p) => Some(p),
            _ => None,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_round_trips_and_can_be_claimed() {
        let present = Pte::new(
            Pfn(0x12345),
            Pte::PRESENT | Pte::WRITE | Pte::USER | Pte::ACCESSED | Pte::NX,
        );
        let protnone = Pte::new(Pfn(7), Pte::PROTNONE | Pte::USER | Pte::DIRTY);
        let swap = SwapEntry {
            ty: 31,
            offset: Pte::MAX_SWAP_OFFSET,
        };
        let cases = [
            (Pte(0), LeafEntry::None),
            (present, LeafEntry::Present(present)),
            (protnone, LeafEntry::ProtNone(protnone)),
            (Pte::swap(swap).unwrap(), LeafEntry::Swap(swap)),
            (
                Pte::swap(SwapEntry { ty: 0, offset: 0 }).unwrap(),
                LeafEntry::Swap(SwapEntry { ty: 0, offset: 0 }),
            ),
            (
                Pte::migration(Pfn(99), true),
                LeafEntry::Migration {
                    pfn: Pfn(99),
                    writable: true,
                },
            ),
            (
                Pte::migration(Pfn(0xf_ffff_ffff), false),
                LeafEntry::Migration {
                    pfn: Pfn(0xf_ffff_ffff),
                    writable: false,
                },
            ),
            (Pte::GUARD, LeafEntry::Guard),
        ];
        for (pte, state) in cases {
            assert_eq!(pte.decode(), state, "{:#x}", pte.0);
            let claimed = pte.with(Pte::LOCK);
            assert!(claimed.locked());
            assert_eq!(claimed.decode(), state, "claiming keeps the state: {:#x}", pte.0);
            assert_eq!(claimed.without(Pte::LOCK), pte);
        }
        // Only present and PROT_NONE entries map a frame.
        for (pte, maps) in [
            (present, true),
            (protnone, true),
            (Pte::swap(swap).unwrap(), false),
            (Pte::migration(Pfn(3), true), false),
            (Pte::GUARD, false),
        ] {
            assert_eq!(pte.maps_frame(), maps, "{:#x}", pte.0);
            assert_eq!(pte.decode().frame().is_some(), maps);
            assert!(!pte.is_none());
        }
    }

    #[test]
    fn out_of_range_swap_entries_and_stray_bits_are_refused() {
        assert_eq!(Pte::swap(SwapEntry { ty: 32, offset: 0 }), None);
        assert_eq!(
            Pte::swap(SwapEntry {
                ty: 0,
                offset: Pte::MAX_SWAP_OFFSET + 1
            }),
            None
        );
        // A guard marker with other bits, or a kind-0 non-present pattern, is no state.
        assert!(matches!(Pte(Pte::GUARD.0 | 1 << 12).decode(), LeafEntry::Invalid(_)));
        assert!(matches!(Pte(Pte::USER).decode(), LeafEntry::Invalid(_)));
        // The software fields do not overlap each other or the hardware's.
        let fields = [
            Pte::LOCK,
            Pte::SPECIAL,
            Pte::PROTNONE,
            Pte::KIND_MASK,
            Pte::SWAP_TYPE_MASK,
            Pte::PKEY_MASK,
            Pte::ADDR_MASK,
            Pte::NX,
            Pte::PRESENT | Pte::WRITE | Pte::USER | Pte::ACCESSED | Pte::DIRTY,
        ];
        for (i, a) in fields.iter().enumerate() {
            for b in &fields[i + 1..] {
                assert_eq!(a & b, 0, "{a:#x} overlaps {b:#x}");
            }
        }
    }
}
