//! One swap area: a device and its slot allocator. Each slot has a count
//! of the references to it (Linux `swap_map`): one per swap entry in a PTE
//! or a shared object, one for the swap cache while a page is there. Fork
//! duplicates the entries of the pages it copies (`dup`), so a slot is free
//! again only when its last reference goes. Slot 0 is never handed out
//! (Linux keeps the swap header there).
//!
//! Allocation is next-fit from a cursor (Linux's `scan_swap_map_slots`
//! without the per-CPU clusters), so consecutive swap-outs get consecutive
//! slots, which swap-in read-ahead by slot relies on.
//!
//! Lock order: the slot map's lock is a leaf.

use super::device::SwapDevice;
use crate::errno::Errno;
use crate::pgtable::SwapEntry;
use crate::sync::Mutex;
use alloc::boxed::Box;
use alloc::vec::Vec;

/// The most references one slot may have (Linux: `SWAP_MAP_MAX`, beyond
/// which it chains continuation pages; vmlab refuses the `dup` instead).
pub const MAX_SWAP_COUNT: u16 = u16::MAX - 1;

/// No free slot (Linux: `get_swap_page` returns an empty entry).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SwapFull;

struct SlotMap {
    /// References per slot; 0 is free.
    count: Vec<u16>,
    /// Where the next allocation starts looking.
    cursor: usize,
    used: u64,
}

/// A swap area of type `ty` (the entries' `SwapEntry::ty`).
pub struct SwapArea {
    ty: u8,
    dev: Box<dyn SwapDevice>,
    map: Mutex<SlotMap>,
}

impl SwapArea {
    /// An area over `dev`; its slot 0 is reserved. `None` if the device
    /// has no usable slot or more than the entry format can name.
    pub fn new(ty: u8, dev: Box<dyn SwapDevice>) -> Option<SwapArea> {
        let n = dev.slots();
        // Offsets live in PTE bits 12-51 (`Pte::swap`).
        if !(2..=(1u64 << 40)).contains(&n) || n > usize::MAX as u64 {
            return None;
        }
        let mut count = Vec::new();
        count.try_reserve_exact(n as usize).ok()?;
        count.resize(n as usize, 0);
        count[0] = u16::MAX; // the header: never free, never counted as used
        Some(SwapArea {
            ty,
            dev,
            map: Mutex::new(SlotMap {
                count,
                cursor: 1,
                used: 0,
            }),
        })
    }

    /// Slots that can hold pages (the header excluded). Linux `SwapTotal`.
    pub fn total(&self) -> u64 {
        self.dev.slots() - 1
    }

    /// Slots in use.
    pub fn used(&self) -> u64 {
        self.map.lock().used
    }

    /// A free slot, with one reference (Linux `folio_alloc_swap`).
    pub fn alloc(&self) -> Result<SwapEntry, SwapFull> {
        let mut m = self.map.lock();
        let n = m.count.len();
        if m.used as usize >= n - 1 {
            return Err(SwapFull);
        }
        let start = m.cursor;
        let mut i = start;
        loop {
            if m.count[i] == 0 {
                m.count[i] = 1;
                m.used += 1;
                m.cursor = if i + 1 == n { 1 } else { i + 1 };
                return Ok(SwapEntry {
                    ty: self.ty,
                    offset: i as u64,
                });
            }
            i = if i + 1 == n { 1 } else { i + 1 };
            if i == start {
                return Err(SwapFull);
            }
        }
    }

    /// One more reference to `e` (fork copying a swap entry, the swap cache
    /// taking the slot). EINVAL for a free or out-of-range slot, ENOMEM at
    /// `MAX_SWAP_COUNT` (Linux `swap_duplicate`).
    pub fn dup(&self, e: SwapEntry) -> Result<(), Errno> {
        let mut m = self.map.lock();
        let c = Self::slot(&mut m, self.ty, e)?;
        if *c >= MAX_SWAP_COUNT {
            return Err(Errno::ENOMEM);
        }
        *c += 1;
        Ok(())
    }

    /// Drop one reference to `e`; the slot is free when none is left.
    /// Returns the references left. EINVAL for a free or out-of-range slot
    /// (Linux `swap_free`, which warns "Bad swap file entry").
    pub fn put(&self, e: SwapEntry) -> Result<u16, Errno> {
        let mut m = self.map.lock();
        let c = Self::slot(&mut m, self.ty, e)?;
        *c -= 1;
        let left = *c;
        if left == 0 {
            m.used -= 1;
        }
        Ok(left)
    }

    /// References to `e` now (0 if free or out of range).
    pub fn count(&self, e: SwapEntry) -> u16 {
        let m = self.map.lock();
        if e.ty != self.ty || e.offset == 0 {
            return 0;
        }
        m.count.get(e.offset as usize).copied().unwrap_or(0)
    }

    /// Write a page to `e`'s slot. `e` must be allocated.
    pub fn write(&self, e: SwapEntry, page: &[u8; 4096]) -> Result<(), Errno> {
        if self.count(e) == 0 {
            return Err(Errno::EINVAL);
        }
        self.dev.write_slot(e.offset, page)
    }

    /// Read `e`'s slot into `page`. `e` must be allocated.
    pub fn read(&self, e: SwapEntry, page: &mut [u8; 4096]) -> Result<(), Errno> {
        if self.count(e) == 0 {
            return Err(Errno::EINVAL);
        }
        self.dev.read_slot(e.offset, page)
    }

    /// Every slot with its count (for the checker), header excluded.
    pub fn counts(&self) -> Vec<(u64, u16)> {
        let m = self.map.lock();
        m.count
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(_, &c)| c > 0)
            .map(|(i, &c)| (i as u64, c))
            .collect()
    }

    fn slot(m: &mut SlotMap, ty: u8, e: SwapEntry) -> Result<&mut u16, Errno> {
        if e.ty != ty || e.offset == 0 {
            return Err(Errno::EINVAL);
        }
        match m.count.get_mut(e.offset as usize) {
            Some(c) if *c > 0 => Ok(c),
            _ => Err(Errno::EINVAL),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::swap::MemSwap;

    fn area(slots: u64) -> SwapArea {
        SwapArea::new(3, Box::new(MemSwap::new(slots))).unwrap()
    }

    #[test]
    fn slots_are_handed_out_next_fit_until_full_and_free_again_at_zero() {
        let a = area(5);
        assert_eq!(a.total(), 4);
        let e: Vec<SwapEntry> = (0..4).map(|_| a.alloc().unwrap()).collect();
        assert_eq!(
            e.iter().map(|e| e.offset).collect::<Vec<_>>(),
            [1, 2, 3, 4],
            "slot 0 is the header"
        );
        assert!(e.iter().all(|e| e.ty == 3));
        assert_eq!(a.alloc(), Err(SwapFull));
        assert_eq!(a.used(), 4);
        // A slot shared by a fork is free only when both references go.
        a.dup(e[1]).unwrap();
        assert_eq!(a.count(e[1]), 2);
        assert_eq!(a.put(e[1]), Ok(1));
        assert_eq!(a.alloc(), Err(SwapFull));
        assert_eq!(a.put(e[1]), Ok(0));
        assert_eq!(a.used(), 3);
        // Next fit: the cursor wrapped to the freed slot.
        assert_eq!(a.alloc().unwrap().offset, 2);
        assert_eq!(a.counts(), alloc::vec![(1, 1), (2, 1), (3, 1), (4, 1)]);
    }

    #[test]
    fn bad_entries_are_refused_and_change_nothing() {
        let a = area(4);
        let e = a.alloc().unwrap();
        assert_eq!(a.put(e), Ok(0));
        assert_eq!(a.put(e), Err(Errno::EINVAL), "double free");
        assert_eq!(a.dup(e), Err(Errno::EINVAL), "dup of a free slot");
        let header = SwapEntry { ty: 3, offset: 0 };
        assert_eq!(a.put(header), Err(Errno::EINVAL));
        assert_eq!(a.dup(SwapEntry { ty: 3, offset: 99 }), Err(Errno::EINVAL));
        assert_eq!(
            a.dup(SwapEntry { ty: 4, offset: 1 }),
            Err(Errno::EINVAL),
            "another area's entry"
        );
        assert_eq!(a.used(), 0);
        assert!(
            SwapArea::new(0, Box::new(MemSwap::new(1))).is_none(),
            "no slot besides the header"
        );
    }

    #[test]
    fn pages_round_trip_through_the_device_and_failures_are_eio() {
        let dev = alloc::sync::Arc::new(MemSwap::new(8));
        struct Shared(alloc::sync::Arc<MemSwap>);
        impl SwapDevice for Shared {
            fn slots(&self) -> u64 {
                self.0.slots()
            }
            fn read_slot(&self, s: u64, b: &mut [u8; 4096]) -> Result<(), Errno> {
                self.0.read_slot(s, b)
            }
            fn write_slot(&self, s: u64, b: &[u8; 4096]) -> Result<(), Errno> {
                self.0.write_slot(s, b)
            }
        }
        let a = SwapArea::new(0, Box::new(Shared(dev.clone()))).unwrap();
        let e = a.alloc().unwrap();
        let mut page = [0u8; 4096];
        page[17] = 0xab;
        page[4095] = 7;
        a.write(e, &page).unwrap();
        let mut back = [1u8; 4096];
        a.read(e, &mut back).unwrap();
        assert_eq!(back, page);
        dev.set_failing(true);
        assert_eq!(a.read(e, &mut back), Err(Errno::EIO));
        dev.set_failing(false);
        a.put(e).unwrap();
        assert_eq!(a.write(e, &page), Err(Errno::EINVAL), "a free slot is not written");
    }
}
