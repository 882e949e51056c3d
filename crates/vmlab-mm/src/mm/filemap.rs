//! File I/O through the page cache: `read`/`write` of an object's bytes,
//! growing a file, and dropping or zeroing cached pages when a file is
//! truncated or a hole is punched. Linux: mm/filemap.c (`filemap_read`,
//! `generic_perform_write`), mm/truncate.c (`truncate_inode_pages_range`,
//! `truncate_inode_partial_folio`).
//!
//! The cache is the file: a `write` copies into the cache page (reading it
//! in first, through `MemObject::get_page`, the path faults use) and marks
//! it `PG_DIRTY`, so a load through a MAP_SHARED mapping, or through a
//! MAP_PRIVATE mapping's pages not yet copied on write (they map the cache
//! page read-only), sees it at once; a `read` copies out of the cache page,
//! so it sees stores through shared mappings. Write-back is unchanged: dirty
//! pages reach the file at msync, at the last unmap, and at release.
//!
//! Unmapping the pages of a truncation from every address space is the
//! machine's (`Machine::unmap_object_range`): these functions change only
//! the cache. Callers hold `MemObject::io_lock` for anything that changes
//! the size or drops pages.
//! May call: `phys`, `errno`, `sync`.

use super::object::{BackingFile, MemObject, PageError};
use super::stats::MmCounters;
use crate::addr::{PAGE_SHIFT, PAGE_SIZE};
use crate::errno::Errno;
use crate::phys::Entry;
use crate::phys::{PhysMem, PG_DIRTY};
use crate::sync::Ordering;
use alloc::vec::Vec;

fn errno_of(e: PageError) -> Errno {
    match e {
        PageError::NoMemory => Errno::ENOMEM,
        PageError::Io => Errno::EIO,
        // The file shrank under the call: nothing more to copy.
        PageError::BeyondEof => Errno::EINVAL,
    }
}

/// One page's piece of `[pos, pos + left)`: (page offset, byte in the page, length).
fn piece(pos: u64, left: usize) -> (u64, usize, usize) {
    let in_page = (pos & (PAGE_SIZE - 1)) as usize;
    (pos >> PAGE_SHIFT, in_page, (PAGE_SIZE as usize - in_page).min(left))
}

impl MemObject {
    /// Copy the bytes at `off` into `buf`, through the cache: the count
    /// copied, 0 at or past the end. An error after some bytes were copied
    /// ends the copy short, as Linux's `filemap_read` does.
    pub(crate) fn read_cached(
        &self,
        phys: &PhysMem,
        counters: &MmCounters,
        off: u64,
        buf: &mut [u8],
    ) -> Result<usize, Errno> {
        let size = self.size();
        if off >= size {
            return Ok(0);
        }
        let want = (size - off).min(buf.len() as u64) as usize;
        let mut done = 0;
        while done < want {
            let (pgoff, in_page, n) = piece(off + done as u64, want - done);
            let pfn = match self.get_page_by(phys, counters, pgoff, Entry::Other) {
                Ok(p) => p,
                Err(PageError::BeyondEof) => break,
                Err(_) if done > 0 => break,
                Err(e) => return Err(errno_of(e)),
            };
            phys.ram().read_bytes(pfn, in_page, &mut buf[done..done + n]);
            phys.put_frame(pfn);
            done += n;
        }
        Ok(done)
    }

    /// Copy `buf` into the file at `off` through the cache, growing the
    /// file first where it ends before the piece written: the count
    /// written. The caller checked the access mode and the size limit.
    /// Takes `io_lock`. Linux: `generic_perform_write`.
    pub(crate) fn write_cached(
        &self,
        phys: &PhysMem,
        counters: &MmCounters,
        relax: &dyn crate::sync::Relax,
        off: u64,
        buf: &[u8],
    ) -> Result<usize, Errno> {
        let Some(f) = self.file() else {
            return Err(Errno::EINVAL);
        };
        let _io = self.io_lock.lock(relax);
        let mut done = 0;
        while done < buf.len() {
            let pos = off + done as u64;
            let (pgoff, in_page, n) = piece(pos, buf.len() - done);
            let old = f.len();
            let end = pos + n as u64;
            let grew = end > old;
            let r = if grew {
                self.grow_locked(phys, f, old, end)
            } else {
                Ok(())
            };
            let r = r.and_then(|()| self.get_page_by(phys, counters, pgoff, Entry::Other).map_err(errno_of));
            let pfn = match r {
                Ok(p) => p,
                Err(e) => {
                    if grew {
                        // Nothing was written past the old end: keep it.
                        let _ = f.set_len(old);
                    }
                    if done > 0 {
                        break;
                    }
                    return Err(e);
                }
            };
            phys.ram().write_bytes(pfn, in_page, &buf[done..done + n]);
            if let Some(d) = phys.desc(pfn) {
                d.flags.fetch_or(PG_DIRTY, Ordering::AcqRel);
            }
            phys.put_frame(pfn);
            done += n;
        }
        Ok(done)
    }

    /// Grow the file from `old` to `new` bytes: the host file first, then
    /// the cached page that held the old end gets zeros after it (a store
    /// through a mapping past the old end must not reappear inside the
    /// file). Preconditions: `io_lock` held, `new > old`.
    pub(crate) fn grow_locked(&self, phys: &PhysMem, f: &dyn BackingFile, old: u64, new: u64) -> Result<(), Errno> {
        f.set_len(new)?;
        self.zero_in_page(phys, old, PAGE_SIZE - (old & (PAGE_SIZE - 1)));
        Ok(())
    }

    /// Zero `len` bytes at `pos`, cut at the end of its page, in the cached
    /// page if it is cached. A whole page is left alone: the callers drop
    /// such a page, or it lies past the end and is not cached.
    fn zero_in_page(&self, phys: &PhysMem, pos: u64, len: u64) {
        let in_page = (pos & (PAGE_SIZE - 1)) as usize;
        let len = (len as usize).min(PAGE_SIZE as usize - in_page);
        if len == 0 || len == PAGE_SIZE as usize {
            return;
        }
        let c = self.cache.lock();
        if let Some(&pfn) = c.get(&(pos >> PAGE_SHIFT)) {
            let zeros = [0u8; PAGE_SIZE as usize];
            phys.ram().write_bytes(pfn, in_page, &zeros[..len]);
        }
    }

    /// Drop the cached pages of `[first, end)` (page offsets) that no PTE
    /// maps any more: their data is gone (past the end of the file, or in a
    /// punched hole), so a dirty one is not written back. A page still
    /// mapped (an unmapping that failed for want of memory) stays cached;
    /// `get_page` never hands out one past the end. Returns how many such
    /// pages were kept. Preconditions: `io_lock` held, and the caller has
    /// unmapped the range everywhere.
    pub(crate) fn drop_cached_range(&self, phys: &PhysMem, first: u64, end: u64) -> usize {
        if first >= end {
            return 0;
        }
        let mut kept = 0;
        let gone: Vec<_> = {
            let mut c = self.cache.lock();
            let keys: Vec<u64> = c.range(first..end).map(|(&k, _)| k).collect();
            let mut gone = Vec::with_capacity(keys.len());
            for k in keys {
                let Some(&pfn) = c.get(&k) else { continue };
                if phys.desc(pfn).is_some_and(|d| d.mapcount.load(Ordering::Acquire) > 0) {
                    kept += 1;
                    continue;
                }
                c.remove(&k);
                gone.push(pfn);
            }
            // Shared anonymous pages out on swap are in the range too.
            let out: Vec<u64> = c.swapped.range(first..end).map(|(&k, _)| k).collect();
            let area = self.swap_object().and_then(|s| s.swap_area());
            for k in out {
                if let (Some(e), Some(area)) = (c.swapped.remove(&k), area) {
                    let _ = area.put(e);
                }
            }
            gone
        };
        for pfn in gone {
            if let Some(d) = phys.desc(pfn) {
                d.flags.fetch_and(!PG_DIRTY, Ordering::AcqRel);
            }
            phys.put_frame(pfn);
        }
        kept
    }

    /// After a truncation to `size` bytes (set on the file, pages past it
    /// unmapped): drop the cached pages wholly past the end and zero the
    /// tail of the page the end falls in. Linux: `truncate_inode_pages`.
    pub(crate) fn truncate_cache_locked(&self, phys: &PhysMem, size: u64) {
        let _ = self.drop_cached_range(phys, size.div_ceil(PAGE_SIZE), u64::MAX);
        self.zero_in_page(phys, size, PAGE_SIZE);
    }

    /// After a hole `[start, end)` (bytes) was punched in the file and its
    /// whole pages unmapped: drop those pages from the cache and zero the
    /// parts of the partial pages at its edges. Shared anonymous memory
    /// loses the pages' contents the same way (they refault as zeros).
    /// Returns how many pages of the hole stayed because a PTE maps them
    /// again (see `drop_cached_range`).
    /// Linux: `truncate_inode_pages_range`, `shmem_truncate_range`.
    pub(crate) fn punch_cache_locked(&self, phys: &PhysMem, start: u64, end: u64) -> usize {
        if start >= end {
            return 0;
        }
        let first = start.div_ceil(PAGE_SIZE);
        let last = end >> PAGE_SHIFT;
        if first > last {
            // Inside one page.
            self.zero_in_page(phys, start, end - start);
            return 0;
        }
        self.zero_in_page(phys, start, (first << PAGE_SHIFT) - start);
        let kept = self.drop_cached_range(phys, first, last);
        self.zero_in_page(phys, last << PAGE_SHIFT, end - (last << PAGE_SHIFT));
        kept
    }
}
