//! `MemFile`: a file held in memory, the `BackingFile` of tests, the fuzz
//! target and library users without a host filesystem.
//!
//! Clones share one file, so a caller keeps a clone to look at what
//! write-back wrote, to count write-backs, to resize the file under a
//! mapping, or to make reads and writes fail (EIO, ENOSPC) and test the
//! error paths. A write to a file opened read-only is refused with EBADF and
//! counted, so that a test can assert the mm core never tries one. The file
//! system it stands for holds at most `MemFile::MAX_LEN` bytes (its
//! `s_maxbytes`): a longer `set_len` or a write past it is EFBIG.
//! May call: `errno`, `sync`.

use super::object::BackingFile;
use crate::errno::Errno;
use crate::sync::{Arc, AtomicBool, AtomicUsize, Mutex, Ordering};
use alloc::vec::Vec;

/// An in-memory file; clones are handles to the same file.
#[derive(Clone)]
pub struct MemFile(Arc<State>);

struct State {
    data: Mutex<Vec<u8>>,
    readable: bool,
    writable: bool,
    fail_reads: AtomicBool,
    fail_writes: AtomicBool,
    writes: AtomicUsize,
    refused_writes: AtomicUsize,
}

impl MemFile {
    /// The largest length a `MemFile` may have (its file system's `s_maxbytes`).
    pub const MAX_LEN: u64 = 64 << 20;

    /// A file holding `bytes`, opened for reading, and for writing too if `writable`.
    pub fn new(bytes: &[u8], writable: bool) -> MemFile {
        MemFile::with_mode(bytes, true, writable)
    }

    /// A file holding `bytes`, opened with the access mode `readable` /
    /// `writable` says (O_RDONLY, O_WRONLY, O_RDWR; neither is Linux's
    /// access mode 3, which allows no read or write).
    pub fn with_mode(bytes: &[u8], readable: bool, writable: bool) -> MemFile {
        MemFile(Arc::new(State {
            data: Mutex::new(bytes.to_vec()),
            readable,
            writable,
            fail_reads: AtomicBool::new(false),
            fail_writes: AtomicBool::new(false),
            writes: AtomicUsize::new(0),
            refused_writes: AtomicUsize::new(0),
        }))
    }

    /// The file's bytes now.
    pub fn contents(&self) -> Vec<u8> {
        self.0.data.lock().clone()
    }

    /// Run `f` on the bytes (to change them as another writer of the file would).
    pub fn with_data<T>(&self, f: impl FnOnce(&mut Vec<u8>) -> T) -> T {
        f(&mut self.0.data.lock())
    }

    /// Truncate or extend the file to `len` bytes, new bytes being `fill`.
    pub fn resize(&self, len: usize, fill: u8) {
        self.0.data.lock().resize(len, fill);
    }

    /// Successful `write_at` calls so far.
    pub fn writes(&self) -> usize {
        self.0.writes.load(Ordering::Relaxed)
    }

    /// `write_at` calls refused because the file is read-only.
    pub fn refused_writes(&self) -> usize {
        self.0.refused_writes.load(Ordering::Relaxed)
    }

    /// Make every `read_at` fail with EIO (or succeed again).
    pub fn set_fail_reads(&self, fail: bool) {
        self.0.fail_reads.store(fail, Ordering::Relaxed);
    }

    /// Make every `write_at` fail with ENOSPC (or succeed again).
    pub fn set_fail_writes(&self, fail: bool) {
        self.0.fail_writes.store(fail, Ordering::Relaxed);
    }
}

impl BackingFile for MemFile {
    fn len(&self) -> u64 {
        self.0.data.lock().len() as u64
    }

    fn read_at(&self, off: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        if self.0.fail_reads.load(Ordering::Relaxed) {
            return Err(Errno::EIO);
        }
        let d = self.0.data.lock();
        let Ok(off) = usize::try_from(off) else { return Ok(0) };
        if off >= d.len() {
            return Ok(0);
        }
        let n = buf.len().min(d.len() - off);
        buf[..n].copy_from_slice(&d[off..off + n]);
        Ok(n)
    }

    fn write_at(&self, off: u64, buf: &[u8]) -> Result<(), Errno> {
        if !self.0.writable {
            self.0.refused_writes.fetch_add(1, Ordering::Relaxed);
            return Err(Errno::EBADF);
        }
        if self.0.fail_writes.load(Ordering::Relaxed) {
            return Err(Errno::ENOSPC);
        }
        let end = off
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= Self::MAX_LEN)
            .ok_or(Errno::EFBIG)? as usize;
        let mut d = self.0.data.lock();
        if d.len() < end {
            grow(&mut d, end)?;
        }
        d[end - buf.len()..end].copy_from_slice(buf);
        self.0.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn writable(&self) -> bool {
        self.0.writable
    }

    fn readable(&self) -> bool {
        self.0.readable
    }

    fn set_len(&self, len: u64) -> Result<(), Errno> {
        if !self.0.writable {
            self.0.refused_writes.fetch_add(1, Ordering::Relaxed);
            return Err(Errno::EBADF);
        }
        if len > Self::MAX_LEN {
            return Err(Errno::EFBIG);
        }
        let mut d = self.0.data.lock();
        if (len as usize) > d.len() {
            grow(&mut d, len as usize)
        } else {
            d.truncate(len as usize);
            Ok(())
        }
    }

    fn punch_hole(&self, off: u64, len: u64) -> Result<(), Errno> {
        if !self.0.writable {
            self.0.refused_writes.fetch_add(1, Ordering::Relaxed);
            return Err(Errno::EBADF);
        }
        let mut d = self.0.data.lock();
        let size = d.len() as u64;
        let (a, b) = (off.min(size) as usize, off.saturating_add(len).min(size) as usize);
        d[a..b].fill(0);
        Ok(())
    }

    fn max_len(&self) -> u64 {
        Self::MAX_LEN
    }
}

/// Extend `d` with zeros to `len` bytes; ENOSPC if the host has no memory for it.
fn grow(d: &mut Vec<u8>, len: usize) -> Result<(), Errno> {
    d.try_reserve(len.saturating_sub(d.len())).map_err(|_| Errno::ENOSPC)?;
    d.resize(len, 0);
    Ok(())
}
