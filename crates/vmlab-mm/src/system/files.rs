//! The machine's open files and the file syscalls on them: `read`,
//! `write`, `pread`, `pwrite`, `lseek`, `ftruncate` and `fstat`'s size,
//! with Linux's checks and errno (`ksys_read`, `ksys_pread64`,
//! `rw_verify_area`, `generic_write_checks`, `generic_file_llseek_size`,
//! `do_ftruncate`), and the unmapping that truncation and hole punching
//! need (`Machine::unmap_object_range`).
//!
//! An fd names an `OpenFile` (Linux `struct file`): the memory object of the
//! file, whose `BackingFile` carries the access mode it was opened with
//! (`f_mode`), and the file offset (`f_pos`). Every open of a host file is a
//! file of its own with an object of its own (two opens of one host file
//! are two objects with two caches: the mm core cannot tell they are the
//! same file). All data goes through the object's page cache (`mm/filemap.rs`),
//! so reads and writes are coherent with every mapping of the object.
//!
//! Lock order: `OpenFile::pos` → `MemObject::io_lock` → `Machine::procs`
//! → `AddressSpace::map` → the object's cache lock.

use super::machine::Machine;
use crate::addr::{PAGE_SHIFT, PAGE_SIZE};
use crate::errno::{Errno, SysResult};
use crate::mm::fault::NO_CPU;
use crate::mm::uapi::{SEEK_CUR, SEEK_DATA, SEEK_END, SEEK_HOLE, SEEK_SET};
use crate::mm::{MemObject, VmFlags, VmaMap};
use crate::sync::{Arc, SleepLock};
use crate::tlb::PendingFlush;
use alloc::vec::Vec;

/// An open file: what an fd names. Linux: `struct file`.
pub struct OpenFile {
    pub(crate) obj: Arc<MemObject>,
    /// The file offset of `read`, `write` and `lseek` (Linux `f_pos`, its
    /// lock `f_pos_lock` held across each of them).
    pos: SleepLock<u64>,
}

impl OpenFile {
    pub(crate) fn new(obj: Arc<MemObject>) -> OpenFile {
        OpenFile {
            obj,
            pos: SleepLock::new(0),
        }
    }
}

/// What `fstat` reports of a file (only its size so far).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FileStat {
    /// `st_size`.
    pub size: u64,
}

/// `rw_verify_area`: a count that would carry the offset past the largest
/// `loff_t` is EINVAL.
fn verify_area(pos: u64, count: usize) -> SysResult<()> {
    match (pos as i64).checked_add(i64::try_from(count).map_err(|_| Errno::EINVAL)?) {
        Some(_) => Ok(()),
        None => Err(Errno::EINVAL),
    }
}

impl Machine {
    fn open_fd(&self, fd: i32) -> SysResult<Arc<OpenFile>> {
        self.files.lock().get(&fd).cloned().ok_or(Errno::EBADF)
    }

    /// `read(fd, buf)`: bytes from the file offset on, which advances by
    /// the count returned (0 at or past the end). EBADF for an fd not open
    /// or not opened for reading; EIO if the file cannot be read; ENOMEM if
    /// no frame is free for the page cache.
    pub fn read_fd(&self, fd: i32, buf: &mut [u8]) -> SysResult<usize> {
        let f = self.open_fd(fd)?;
        if !f.obj.readable() {
            return Err(Errno::EBADF);
        }
        let mut pos = f.pos.lock(&*self.host);
        verify_area(*pos, buf.len())?;
        let n = f.obj.read_cached(&self.phys, self.counters.get(NO_CPU), *pos, buf)?;
        *pos += n as u64;
        Ok(n)
    }

    /// `pread(fd, buf, off)`: as `read` at `off`, the file offset unchanged.
    /// EINVAL for a negative `off` (checked before the fd, as Linux does).
    pub fn pread(&self, fd: i32, buf: &mut [u8], off: i64) -> SysResult<usize> {
        if off < 0 {
            return Err(Errno::EINVAL);
        }
        let f = self.open_fd(fd)?;
        if !f.obj.readable() {
            return Err(Errno::EBADF);
        }
        verify_area(off as u64, buf.len())?;
        f.obj
            .read_cached(&self.phys, self.counters.get(NO_CPU), off as u64, buf)
    }

    /// `write(fd, buf)`: copy `buf` into the file at the file offset, which
    /// advances by the count returned; the file grows if the write ends
    /// past its end (a gap reads as zeros). EBADF for an fd not open or not
    /// opened for writing; EFBIG at or past the file system's largest size
    /// (a write that crosses it is short); ENOSPC or EIO from the file.
    pub fn write_fd(&self, fd: i32, buf: &[u8]) -> SysResult<usize> {
        let f = self.open_fd(fd)?;
        if !f.obj.writable() {
            return Err(Errno::EBADF);
        }
        let mut pos = f.pos.lock(&*self.host);
        let n = self.write_at(&f.obj, *pos, buf)?;
        *pos += n as u64;
        Ok(n)
    }

    /// `pwrite(fd, buf, off)`: as `write` at `off`, the file offset
    /// unchanged. EINVAL for a negative `off` (before the fd is looked up).
    pub fn pwrite(&self, fd: i32, buf: &[u8], off: i64) -> SysResult<usize> {
        if off < 0 {
            return Err(Errno::EINVAL);
        }
        let f = self.open_fd(fd)?;
        if !f.obj.writable() {
            return Err(Errno::EBADF);
        }
        self.write_at(&f.obj, off as u64, buf)
    }

    /// `rw_verify_area` + `generic_write_checks` + the write.
    fn write_at(&self, obj: &MemObject, pos: u64, buf: &[u8]) -> SysResult<usize> {
        verify_area(pos, buf.len())?;
        let file = obj.file().ok_or(Errno::EINVAL)?;
        if buf.is_empty() {
            return Ok(0);
        }
        let max = file.max_len();
        if pos >= max {
            return Err(Errno::EFBIG);
        }
        let n = (buf.len() as u64).min(max - pos) as usize;
        obj.write_cached(&self.phys, self.counters.get(NO_CPU), &*self.host, pos, &buf[..n])
    }

    /// `lseek(fd, off, whence)`: the new file offset. SEEK_SET, SEEK_CUR,
    /// SEEK_END; SEEK_DATA and SEEK_HOLE as `generic_file_llseek_size`
    /// answers them (the whole file is data: punched holes are not
    /// reported; ENXIO at or past the end). EBADF for an fd not open,
    /// EINVAL for an unknown `whence` or a result that is negative or past
    /// the file system's largest size.
    pub fn lseek(&self, fd: i32, off: i64, whence: u32) -> SysResult<i64> {
        let f = self.open_fd(fd)?;
        if whence > SEEK_HOLE {
            return Err(Errno::EINVAL);
        }
        let file = f.obj.file().ok_or(Errno::EINVAL)?;
        let mut pos = f.pos.lock(&*self.host);
        let size = file.len() as i64;
        let new = match whence {
            SEEK_SET => Some(off),
            SEEK_CUR if off == 0 => return Ok(*pos as i64),
            SEEK_CUR => (*pos as i64).checked_add(off),
            SEEK_END => size.checked_add(off),
            SEEK_DATA | SEEK_HOLE => {
                if off < 0 || off >= size {
                    return Err(Errno::ENXIO);
                }
                Some(if whence == SEEK_DATA { off } else { size })
            }
            _ => None,
        };
        let new = new
            .filter(|&n| n >= 0 && n as u64 <= file.max_len())
            .ok_or(Errno::EINVAL)?;
        *pos = new as u64;
        Ok(new)
    }

    /// `fstat(fd)`: the file's size. EBADF for an fd not open.
    pub fn fstat(&self, fd: i32) -> SysResult<FileStat> {
        let f = self.open_fd(fd)?;
        Ok(FileStat { size: f.obj.size() })
    }

    /// `ftruncate(fd, len)`: make the file `len` bytes long. Shrinking
    /// unmaps the pages wholly past the new end from every mapping of the
    /// file, private copies included (an access there is then SIGBUS),
    /// drops them from the page cache and zeroes the rest of the page the
    /// new end falls in; growing makes the new range read as zeros, through
    /// existing mappings too. Linux's checks in its order: EINVAL for a
    /// negative `len`, EBADF for an fd not open, EINVAL if it is not open
    /// for writing, EFBIG past the file system's largest size; ENOMEM if a
    /// shared page table could not be copied to unmap part of it (the size
    /// has changed then; the pages still mapped stay cached).
    /// Linux: `do_ftruncate` → `truncate_setsize` → `truncate_pagecache`.
    pub fn ftruncate(&self, fd: i32, len: i64) -> SysResult<()> {
        if len < 0 {
            return Err(Errno::EINVAL);
        }
        let f = self.open_fd(fd)?;
        if !f.obj.writable() {
            return Err(Errno::EINVAL);
        }
        let obj = &f.obj;
        let file = obj.file().ok_or(Errno::EINVAL)?;
        let new = len as u64;
        if new > file.max_len() {
            return Err(Errno::EFBIG);
        }
        let _io = obj.io_lock.lock(&*self.host);
        let old = file.len();
        if new > old {
            return obj.grow_locked(&self.phys, file, old, new);
        }
        file.set_len(new)?;
        if new < old {
            // The size is set first: from here on no fault or read finds a
            // page past it (`MemObject::get_page`).
            let r = self.unmap_object_range(obj, new.div_ceil(PAGE_SIZE), u64::MAX, true);
            obj.truncate_cache_locked(&self.phys, new);
            r?;
        }
        Ok(())
    }

    /// Punch a hole in `obj` over bytes `[off, off + len)`, keeping its
    /// size: the host file's blocks go (`BackingFile::punch_hole`; EOPNOTSUPP
    /// where it cannot, with nothing changed), the whole pages in the hole are unmapped from every shared mapping and
    /// from private ones that still map the cache page (private copies
    /// stay), then dropped from the cache; partial pages at the edges are
    /// zeroed there. Shared anonymous memory loses the pages' contents.
    /// Linux: `vfs_fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)`
    /// → `truncate_pagecache_range` (`shmem_fallocate` for shmem).
    pub(crate) fn punch_hole(&self, obj: &Arc<MemObject>, off: u64, len: u64) -> SysResult<()> {
        let end = off.saturating_add(len);
        let _io = obj.io_lock.lock(&*self.host);
        // Punched first so that a file system that cannot refuses before
        // anything changes, and again at the end: unmapping a dirty page
        // writes it back (`Machine::shootdown`) before the cache drops it.
        if let Some(file) = obj.file() {
            file.punch_hole(off, len)?;
        }
        let (first, last) = (off.div_ceil(PAGE_SIZE), end >> PAGE_SHIFT);
        // A fault may map a page of the hole again between the unmapping
        // and the drop (nothing stops it finding the cached page, as
        // truncation's new size does); the drop leaves such a page, and
        // the unmapping is repeated for it, as `truncate_inode_folio` does.
        for _ in 0..4 {
            self.unmap_object_range(obj, first, last, false)?;
            if obj.punch_cache_locked(&self.phys, off, end) == 0 {
                break;
            }
        }
        match obj.file() {
            Some(file) => file.punch_hole(off, len),
            None => Ok(()),
        }
    }

    /// Remove every PTE that maps a page of `[first, end)` (page offsets)
    /// of `obj`, in every address space: in shared mappings, and in private
    /// ones either every PTE of the range (`even_cows`: truncation, so a
    /// private copy past the new end goes too) or only those that map the
    /// object's cache pages (hole punching). The TLBs are shot down and
    /// page-table pages left empty freed. Linux: `unmap_mapping_range`.
    ///
    /// There is no reverse map yet: this walks every process's VMAs that
    /// the object backs. The reverse map of issue 10 (the object's list of
    /// VMAs, Linux `i_mmap`) replaces the walk; this is the one function
    /// that looks for an object's mappings, to swap it then.
    ///
    /// Locks: `procs` for reading across the whole walk, so that no process
    /// is created (fork's `spawn`) until it is done; pids ascend, so a fork
    /// parent is visited before its child, and a child that a fork still
    /// fills from a parent visited later is visited after it. Then each map
    /// lock for writing (the unmap path of MADV_DONTNEED, which leaves
    /// shared page tables correctly), released before that address space's
    /// shootdown. Never called with a map lock held. ENOMEM (after doing
    /// the rest) if a shared page table could not be copied.
    pub(crate) fn unmap_object_range(
        &self,
        obj: &Arc<MemObject>,
        first: u64,
        end: u64,
        even_cows: bool,
    ) -> SysResult<()> {
        if first >= end {
            return Ok(());
        }
        let mut result = Ok(());
        // The address spaces that map the object, from its list (Linux
        // `unmap_mapping_range` walks `i_mmap`); every one under `rmap = none`.
        for id in self.rmap.object_mappers(&self.rmap_cx(), obj.id().0) {
            let Some(mm) = self.mms.get(id) else { continue };
            let mut flush = PendingFlush::default();
            {
                let st = mm.map.write();
                if st.dead {
                    continue;
                }
                let mut ranges: Vec<(u64, u64, bool)> = Vec::new();
                st.vmas.for_each(&mut |v| {
                    if !v.backing.object().is_some_and(|o| Arc::ptr_eq(o, obj)) {
                        return;
                    }
                    let v_end = v.pgoff + ((v.end - v.start) >> PAGE_SHIFT);
                    let (a, b) = (first.max(v.pgoff), end.min(v_end));
                    if a < b {
                        let va = |pg: u64| v.start + ((pg - v.pgoff) << PAGE_SHIFT);
                        ranges.push((va(a), va(b), v.flags.has(VmFlags::SHARED)));
                    }
                });
                for (a, b, shared) in ranges {
                    let r = if shared || even_cows {
                        mm.zap_advised_locked(&st, &self.phys, a, b, &mut flush)
                    } else {
                        mm.zap_object_pages_locked(&st, &self.phys, a, b, obj.id(), &mut flush)
                    };
                    if r.is_err() {
                        result = Err(Errno::ENOMEM);
                    }
                }
            }
            self.shootdown(&mm, flush);
        }
        result
    }
}
