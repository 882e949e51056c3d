//! `MemFile`: a file held in memory, the `BackingFile` of tests, the fuzz
//! target and library users without a host filesystem.
//!
//! Clones share one file, so a caller keeps a clone to look at what
//! write-back wrote, to count write-backs, to resize the file under a
//! mapping, or to make reads and writes fail (EIO, ENOSPC) and test the
//! error paths. A write to a file opened read-only is refused with EBADF and
//! counted, so that a test can assert the mm core never tries one.
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
    writable: bool,
    fail_reads: AtomicBool,
    fail_writes: AtomicBool,
    writes: AtomicUsize,
    refused_writes: AtomicUsize,
}

impl MemFile {
    /// A file holding `bytes`, opened for writing too if `writable`.
    pub fn new(bytes: &[u8], writable: bool) -> MemFile {
        MemFile(Arc::new(State {
            data: Mutex::new(bytes.to_vec()),
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
        let end = usize::try_from(off)
            .ok()
            .and_then(|o| o.checked_add(buf.len()))
            .ok_or(Errno::EFBIG)?;
        let mut d = self.0.data.lock();
        if d.len() < end {
            d.resize(end, 0);
        }
        d[end - buf.len()..end].copy_from_slice(buf);
        self.0.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn writable(&self) -> bool {
        self.0.writable
    }
}
