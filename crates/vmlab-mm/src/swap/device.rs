//! The swap device seam: page-sized slots read and written by number. The
//! host implements it over a real file (`vmlab::host::HostSwapFile`,
//! created for the run and unlinked at once); `MemSwap` keeps the slots in
//! memory, for tests, the fuzz target and hosts without a filesystem, and
//! can be made to fail.

use crate::addr::PAGE_SIZE;
use crate::errno::Errno;
use crate::sync::{AtomicBool, Mutex, Ordering};
use alloc::vec::Vec;

/// Bytes of a slot: one page.
const SLOT: usize = PAGE_SIZE as usize;

/// A block device of page-sized slots (Linux: the swap file's
/// `address_space` or block device, reached by `swap_read_folio` /
/// `swap_writepage`). Slot numbers run from 0 to `slots() - 1`.
pub trait SwapDevice: Send + Sync {
    /// Slots the device holds.
    fn slots(&self) -> u64;
    /// Read slot `slot` into `buf`. EIO if the device fails.
    fn read_slot(&self, slot: u64, buf: &mut [u8; SLOT]) -> Result<(), Errno>;
    /// Write `buf` to slot `slot`. EIO if the device fails.
    fn write_slot(&self, slot: u64, buf: &[u8; SLOT]) -> Result<(), Errno>;
}

/// Swap slots in host memory. A slot never written reads as zeros.
pub struct MemSwap {
    slots: u64,
    data: Mutex<Vec<Option<alloc::boxed::Box<[u8; SLOT]>>>>,
    fail: AtomicBool,
}

impl MemSwap {
    pub fn new(slots: u64) -> MemSwap {
        MemSwap {
            slots,
            data: Mutex::new(Vec::new()),
            fail: AtomicBool::new(false),
        }
    }

    /// From now on every read and write fails with EIO (`false`: works again).
    pub fn set_failing(&self, fail: bool) {
        self.fail.store(fail, Ordering::Relaxed);
    }
}

impl SwapDevice for MemSwap {
    fn slots(&self) -> u64 {
        self.slots
    }

    fn read_slot(&self, slot: u64, buf: &mut [u8; SLOT]) -> Result<(), Errno> {
        if self.fail.load(Ordering::Relaxed) || slot >= self.slots {
            return Err(Errno::EIO);
        }
        match self.data.lock().get(slot as usize).and_then(|s| s.as_ref()) {
            Some(s) => buf.copy_from_slice(&s[..]),
            None => buf.fill(0),
        }
        Ok(())
    }

    fn write_slot(&self, slot: u64, buf: &[u8; SLOT]) -> Result<(), Errno> {
        if self.fail.load(Ordering::Relaxed) || slot >= self.slots {
            return Err(Errno::EIO);
        }
        let mut d = self.data.lock();
        if d.len() <= slot as usize {
            d.resize_with(slot as usize + 1, || None);
        }
        d[slot as usize] = Some(alloc::boxed::Box::new(*buf));
        Ok(())
    }
}
