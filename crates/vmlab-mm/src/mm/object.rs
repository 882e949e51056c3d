//! Memory objects behind VMAs: host files and shared anonymous memory, each
//! with its page cache. Linux: `struct address_space` (of a file's inode or
//! of a shmem inode); FreeBSD: `vm_object`.
//!
//! Owns: the page cache, indexed by (object, page offset); the table of live
//! objects (`ObjectTable`); the host-file seam (`BackingFile`).
//!
//! Rules:
//! - **Refcount.** A page-cache frame (`FrameUse::PageCache`, `mapping` = the
//!   object's id, `index` = its page offset) holds one reference for the
//!   cache and one more per PTE that maps it, and `mapcount` counts those
//!   PTEs: `refcount == 1 + mapcount` whenever no fault or shootdown is half
//!   done. So a page-cache page is never "exclusive" and a write to one
//!   mapped read-only in a private mapping always copies it (`do_wp_page`).
//! - **Faults.** A private mapping maps the cache page read-only; its first
//!   write copies it into a private anonymous frame (`do_cow_fault`, or
//!   `do_wp_page` if the page was read first). A shared mapping maps the
//!   cache page itself, writable if the VMA is, so stores reach the object.
//!   A page wholly beyond the end of the object is SIGBUS; the bytes of the
//!   last, partial page past the end read as zeros.
//! - **Dirty.** The PTE dirty bit records a store through a shared mapping
//!   (a CPU caches a translation writable only once its PTE is dirty). It
//!   moves to the page's `PG_DIRTY` when the PTE is zapped (`transfer_dirty`,
//!   Linux `zap_pte_range` → `folio_mark_dirty`) or cleaned by `msync`.
//! - **Writeback** (file objects only; shared anonymous pages have no file):
//!   a page is written to the file, the bytes before end of file only, by
//!   `msync` (MS_SYNC or MS_ASYNC) over a shared mapping of it, by the
//!   release of a frame whose last PTE in an address space was zapped
//!   (munmap, exit, exec, MAP_FIXED) once the TLBs are flushed, and when the
//!   object is released. `PG_DIRTY` is cleared before the bytes are copied,
//!   so a store racing with the copy leaves the page dirty for next time.
//!   Without a reverse map, `msync` cannot clean the PTEs of other address
//!   spaces: a page mapped anywhere else is written back whether or not it
//!   is dirty (extra writes of unchanged bytes, never a lost write).
//! - **Lifetime.** Each VMA of the object and each file-table entry holds an
//!   `Arc`; so does the machine's `ObjectTable`. When the table's is the
//!   last (no VMA maps the object and no fd names it), `ObjectTable::reap`
//!   writes back the dirty pages and frees the cache.
//!
//! Lock order: `AddressSpace::map` → `ObjectTable::objects` →
//! `MemObject::cache` → a zone's allocator lock. Host I/O is done with no
//! lock of this module held, except at reap (a dead object, which no one
//! else can reach).

use super::fault::NO_CPU;
use super::fault::{discard_frame, new_anon_frame, Access, FaultCtx, FaultError, PageRead};
use super::pte_ops::{self, Rss};
use super::stats::MmCounters;
use super::vma::{ObjectId, VmFlags, Vma};
use crate::addr::{page_floor, Pfn, PAGE_SHIFT, PAGE_SIZE};
use crate::errno::{Errno, Fault, FaultReason, Signal};
use crate::pgtable::{LeafRef, Pte, SwapEntry};
use crate::phys::{Entry, Fill, FrameUse, Owner, PhysMem, PG_DIRTY, PG_SWAPBACKED};
use crate::swap::SwapArea;
use crate::sync::{Arc, AtomicU32, AtomicU64, AtomicUsize, Mutex, Ordering, SleepLock};
use crate::tlb::PendingFlush;
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::address_space::AddressSpace;

/// Largest file size (`MAX_LFS_FILESIZE` on 64-bit), the limit of a file
/// system that sets no smaller `s_maxbytes`.
pub const MAX_LFS_FILESIZE: u64 = i64::MAX as u64;

/// The access mode of an open (`O_ACCMODE` of its flags).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AccessMode {
    /// `O_RDONLY`.
    ReadOnly,
    /// `O_WRONLY`.
    WriteOnly,
    /// `O_RDWR`.
    ReadWrite,
}

impl AccessMode {
    /// The mode of open flags `flags`; `None` for access mode 3, which
    /// vmlab does not model (Linux: neither read nor write, ioctl only).
    pub fn from_flags(flags: u32) -> Option<AccessMode> {
        match flags & super::uapi::O_ACCMODE {
            super::uapi::O_RDONLY => Some(AccessMode::ReadOnly),
            super::uapi::O_WRONLY => Some(AccessMode::WriteOnly),
            super::uapi::O_RDWR => Some(AccessMode::ReadWrite),
            _ => None,
        }
    }

    /// Whether the mode allows reading (`FMODE_READ`).
    pub fn readable(self) -> bool {
        self != AccessMode::WriteOnly
    }

    /// Whether the mode allows writing (`FMODE_WRITE`).
    pub fn writable(self) -> bool {
        self != AccessMode::ReadOnly
    }
}

/// An opened host file as the mm core sees it (Linux: a `struct file`, with
/// its `f_mode`, over the inode's `address_space_operations`): its length,
/// positional reads and writes, resizing and hole punching. The host crate
/// implements it over its files (`vmlab::host`). `read_at` is the page
/// cache's read-in: it works whatever the access mode (the kernel reads its
/// own pages); `readable`/`writable` are the mode the file was opened with,
/// which the fd's syscalls and `mmap` check.
pub trait BackingFile: Send + Sync {
    /// Current length in bytes (Linux `i_size`; cheap, called on faults).
    fn len(&self) -> u64;
    /// Read up to `buf.len()` bytes at `off`; the number read, 0 at or past
    /// the end of the file.
    fn read_at(&self, off: u64, buf: &mut [u8]) -> Result<usize, Errno>;
    /// Write all of `buf` at `off`.
    fn write_at(&self, off: u64, buf: &[u8]) -> Result<(), Errno>;
    /// Whether the file was opened for writing (Linux `FMODE_WRITE`).
    fn writable(&self) -> bool;
    /// Whether the file was opened for reading (Linux `FMODE_READ`).
    fn readable(&self) -> bool {
        true
    }
    /// Make the file `len` bytes long, new bytes reading as zeros (Linux
    /// `do_truncate` on the host inode). EFBIG past `max_len`.
    fn set_len(&self, _len: u64) -> Result<(), Errno> {
        Err(Errno::EINVAL)
    }
    /// Deallocate `[off, off + len)`, which then reads as zeros, keeping
    /// the length (Linux `fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)`).
    /// EOPNOTSUPP where the file system cannot.
    fn punch_hole(&self, _off: u64, _len: u64) -> Result<(), Errno> {
        Err(Errno::EOPNOTSUPP)
    }
    /// The largest size the file may have (Linux `s_maxbytes` of its file system).
    fn max_len(&self) -> u64 {
        MAX_LFS_FILESIZE
    }
    /// Whether the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What an object holds.
pub(super) enum Kind {
    /// Shared anonymous memory of a fixed size (Linux: a shmem file set up
    /// by `shmem_zero_setup`, pages zero-filled on demand). Reclaim writes
    /// its pages to swap (`swap`, the machine's swap object) and keeps their
    /// swap entries in `PageCache::swapped`, as shmem keeps them in its
    /// xarray.
    Shmem { pages: u64, swap: Option<Arc<MemObject>> },
    /// A host file.
    File(Box<dyn BackingFile>),
    /// The swap area: its page cache is the swap cache, indexed by slot
    /// (`mm/swap_cache.rs`). Its pages are anonymous pages (`PG_SWAPCACHE`,
    /// owned by their anonymous identity), not the object's.
    /// Linux: `swapper_spaces`.
    Swap(SwapArea),
}

/// A page cache: the cached pages by page offset (what `Deref` reaches),
/// and beside them what is left where a page was evicted: a shared
/// anonymous object's swap entries, and the refault shadows that the
/// reclaim designs read (Linux keeps both as value entries in `i_pages`).
#[derive(Default)]
pub(crate) struct PageCache {
    pages: BTreeMap<u64, Pfn>,
    /// Shared anonymous memory: page offset → the swap slot holding the
    /// page, one slot reference each.
    pub(crate) swapped: BTreeMap<u64, SwapEntry>,
    /// Page offset → the reclaim design's eviction stamp
    /// (`mm/reclaim/workingset.rs`). Linux: shadow entries.
    pub(crate) shadows: BTreeMap<u64, u64>,
}

impl core::ops::Deref for PageCache {
    type Target = BTreeMap<u64, Pfn>;
    fn deref(&self) -> &BTreeMap<u64, Pfn> {
        &self.pages
    }
}

impl core::ops::DerefMut for PageCache {
    fn deref_mut(&mut self) -> &mut BTreeMap<u64, Pfn> {
        &mut self.pages
    }
}

/// Why the page cache could not provide a page.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum PageError {
    BeyondEof,
    NoMemory,
    Io,
}

/// A memory object: a file or shared anonymous memory, with its page cache.
pub struct MemObject {
    id: ObjectId,
    pub(super) kind: Kind,
    /// Page offset → frame, and the evicted pages' entries. Linux: `mapping->i_pages`.
    pub(crate) cache: Mutex<PageCache>,
    /// Serialises the calls that change the file's size or contents from
    /// outside the mappings: `write`, `ftruncate`, hole punching (Linux
    /// `inode->i_rwsem`). Taken with no other lock held; under it the
    /// truncation takes `Machine::procs`, the map locks and the cache lock.
    pub(crate) io_lock: SleepLock<()>,
    /// Leaf tables shared by the address spaces that map a 2 MiB block of
    /// this object: (block, protection bits) → table and its sharers
    /// (`mm/shared_pt.rs`). An entry lives while its table's refcount is
    /// above zero; refcounts of these tables and their sharer lists change
    /// only under this lock.
    pub(crate) shared_tables: Mutex<BTreeMap<(u64, u8), SharedTable>>,
    /// Pages read from the file.
    reads: AtomicU64,
    /// Pages written back to the file.
    writes: AtomicU64,
    /// The errno of a writeback that had no caller to report it to (one at
    /// unmap), kept for the next `msync`. Linux: `mapping->wb_err`.
    wb_err: AtomicU32,
}

impl MemObject {
    fn new(id: ObjectId, kind: Kind) -> MemObject {
        MemObject {
            id,
            kind,
            cache: Mutex::new(PageCache::default()),
            io_lock: SleepLock::new(()),
            shared_tables: Mutex::new(BTreeMap::new()),
            reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            wb_err: AtomicU32::new(0),
        }
    }

    /// The object's id (the `mapping` of its page-cache frames).
    #[inline]
    pub fn id(&self) -> ObjectId {
        self.id
    }

    /// Whether it is a file (else shared anonymous memory).
    #[inline]
    pub fn is_file(&self) -> bool {
        matches!(self.kind, Kind::File(_))
    }

    /// The swap area, if this is the swap object.
    pub fn swap_area(&self) -> Option<&SwapArea> {
        match &self.kind {
            Kind::Swap(a) => Some(a),
            _ => None,
        }
    }

    /// Whether this is shared anonymous memory.
    pub fn is_shmem(&self) -> bool {
        matches!(self.kind, Kind::Shmem { .. })
    }

    /// The swap object a shared anonymous object's pages are written to.
    pub(crate) fn swap_object(&self) -> Option<&Arc<MemObject>> {
        match &self.kind {
            Kind::Shmem { swap, .. } => swap.as_ref(),
            _ => None,
        }
    }

    /// Whether a shared mapping may write to it: shared anonymous memory
    /// always, a file if it was opened for writing.
    pub fn writable(&self) -> bool {
        match &self.kind {
            Kind::Shmem { .. } | Kind::Swap(_) => true,
            Kind::File(f) => f.writable(),
        }
    }

    /// Whether the file was opened for reading (shared anonymous memory: yes).
    pub fn readable(&self) -> bool {
        match &self.kind {
            Kind::Shmem { .. } | Kind::Swap(_) => true,
            Kind::File(f) => f.readable(),
        }
    }

    /// The host file, if this object is one.
    pub fn file(&self) -> Option<&dyn BackingFile> {
        match &self.kind {
            Kind::File(f) => Some(&**f),
            _ => None,
        }
    }

    /// Size in bytes (Linux `i_size`).
    pub fn size(&self) -> u64 {
        match &self.kind {
            Kind::Shmem { pages, .. } => pages << PAGE_SHIFT,
            Kind::File(f) => f.len(),
            Kind::Swap(a) => (a.total() + 1) << PAGE_SHIFT,
        }
    }

    /// Pages that hold data: a page at or past this offset is beyond the end (SIGBUS).
    pub fn size_pages(&self) -> u64 {
        match &self.kind {
            Kind::Shmem { pages, .. } => *pages,
            Kind::File(f) => f.len().div_ceil(PAGE_SIZE),
            Kind::Swap(a) => a.total() + 1,
        }
    }

    /// Pages in the cache.
    pub fn cached_pages(&self) -> usize {
        self.cache.lock().len()
    }

    /// Every object table of this object: its key, frame and sharers (for
    /// the invariant checker).
    pub fn shared_tables_snapshot(&self) -> Vec<SharedTableView> {
        self.shared_tables
            .lock()
            .iter()
            .map(|(k, t)| (*k, t.table, t.sharers.clone()))
            .collect()
    }

    /// The sharers (address space, span) of this object's table `table`.
    pub fn table_sharers(&self, table: Pfn) -> Vec<(u64, u64)> {
        self.shared_tables
            .lock()
            .values()
            .find(|t| t.table == table)
            .map(|t| t.sharers.clone())
            .unwrap_or_default()
    }

    /// Whether the page cache holds page `pgoff` (Linux `mincore_page`:
    /// `filemap_get_entry`; a cached page of vmlab is always up to date).
    pub fn is_cached(&self, pgoff: u64) -> bool {
        self.cache.lock().contains_key(&pgoff)
    }

    /// The cached pages of offsets `[first, end)` as (page offset, frame),
    /// in offset order (a snapshot: the cache may change after).
    pub(crate) fn cached_range(&self, first: u64, end: u64) -> Vec<(u64, Pfn)> {
        self.cache.lock().range(first..end).map(|(&k, &v)| (k, v)).collect()
    }

    /// The cache as (page offset, frame) pairs, in offset order.
    pub fn cache_snapshot(&self) -> Vec<(u64, Pfn)> {
        self.cache.lock().iter().map(|(&k, &v)| (k, v)).collect()
    }

    /// Pages read from the file so far, and pages written back to it.
    pub fn io_counts(&self) -> (u64, u64) {
        (self.reads.load(Ordering::Relaxed), self.writes.load(Ordering::Relaxed))
    }

    /// The frame caching page `pgoff`, read in (or zero-filled) if absent,
    /// with one reference taken for the caller (who maps it or drops it).
    /// The size is checked under the cache lock on a hit and again before
    /// an insertion, so once a truncation has set the new size and emptied
    /// the cache past it, no page past the end is handed out (Linux
    /// `filemap_fault` checks `i_size` after locking the folio).
    /// Linux: `filemap_fault` / `shmem_get_folio`.
    pub(crate) fn get_page(&self, phys: &PhysMem, counters: &MmCounters, pgoff: u64) -> Result<Pfn, PageError> {
        self.get_page_by(phys, counters, pgoff, Entry::Fault)
    }

    /// `get_page` for a page brought in by `entry` (where a page read in
    /// goes on the LRU lists; `read`/`write` pass `Entry::Other`).
    pub(crate) fn get_page_by(
        &self,
        phys: &PhysMem,
        counters: &MmCounters,
        pgoff: u64,
        entry: Entry,
    ) -> Result<Pfn, PageError> {
        if let Some(pfn) = self.lookup_ref(phys, pgoff)? {
            return Ok(pfn);
        }
        // Read without the cache lock; a racing fault may insert first.
        let pfn = self.read_page(phys, pgoff)?;
        let mut c = self.cache.lock();
        if pgoff >= self.size_pages() {
            drop(c);
            phys.put_frame(pfn);
            return Err(PageError::BeyondEof);
        }
        if let Some(&other) = c.get(&pgoff) {
            get_ref(phys, other);
            drop(c);
            phys.put_frame(pfn);
            MmCounters::bump(&counters.pages_wasted);
            return Ok(other);
        }
        c.insert(pgoff, pfn);
        // The page is back: its swap copy and its eviction shadow go.
        let slot = c.swapped.remove(&pgoff);
        let shadow = c.shadows.remove(&pgoff);
        // The caller's reference, beside the cache's own from allocation.
        get_ref(phys, pfn);
        drop(c);
        if let (Some(e), Some(area)) = (slot, self.swap_object().and_then(|s| s.swap_area())) {
            let _ = area.put(e);
            MmCounters::bump(&counters.pswpin);
        }
        note_placed(counters, phys.lru_place(pfn, shadow, entry));
        Ok(pfn)
    }

    /// The cached frame of `pgoff` with a reference taken, `None` if not
    /// cached; BeyondEof past the end.
    pub(crate) fn lookup_ref(&self, phys: &PhysMem, pgoff: u64) -> Result<Option<Pfn>, PageError> {
        let c = self.cache.lock();
        if pgoff >= self.size_pages() {
            return Err(PageError::BeyondEof);
        }
        let Some(&pfn) = c.get(&pgoff) else { return Ok(None) };
        get_ref(phys, pfn);
        Ok(Some(pfn))
    }

    /// A new frame holding page `pgoff`: zeros for shared anonymous memory
    /// (or its swapped-out bytes), the file's bytes (zeros past its end) for
    /// a file. Refcount 1. Reads the host device: no lock held.
    fn read_page(&self, phys: &PhysMem, pgoff: u64) -> Result<Pfn, PageError> {
        let pfn = match &self.kind {
            Kind::Shmem { swap, .. } => {
                let slot = self.cache.lock().swapped.get(&pgoff).copied();
                match (slot, swap.as_ref().and_then(|s| s.swap_area().map(|a| (s, a)))) {
                    (Some(e), Some((_, area))) => {
                        let pfn = phys
                            .alloc_page(NO_CPU, FrameUse::PageCache, Fill::Caller)
                            .ok_or(PageError::NoMemory)?;
                        let mut buf = [0u8; PAGE_SIZE as usize];
                        if area.read(e, &mut buf).is_err() {
                            phys.put_frame(pfn);
                            return Err(PageError::Io);
                        }
                        phys.ram().write_bytes(pfn, 0, &buf);
                        self.reads.fetch_add(1, Ordering::Relaxed);
                        pfn
                    }
                    _ => phys
                        .alloc_page(NO_CPU, FrameUse::PageCache, Fill::Zero)
                        .ok_or(PageError::NoMemory)?,
                }
            }
            Kind::File(f) => {
                let pfn = phys
                    .alloc_page(NO_CPU, FrameUse::PageCache, Fill::Caller)
                    .ok_or(PageError::NoMemory)?;
                let mut buf = [0u8; PAGE_SIZE as usize];
                let off = pgoff << PAGE_SHIFT;
                let mut done = 0usize;
                while done < buf.len() {
                    match f.read_at(off + done as u64, &mut buf[done..]) {
                        Ok(0) => break,
                        Ok(n) => done += n.min(buf.len() - done),
                        Err(_) => {
                            phys.put_frame(pfn);
                            return Err(PageError::Io);
                        }
                    }
                }
                phys.ram().write_bytes(pfn, 0, &buf);
                self.reads.fetch_add(1, Ordering::Relaxed);
                pfn
            }
            // The swap cache is filled by `swap_cache::read_in`, never here.
            Kind::Swap(_) => return Err(PageError::Io),
        };
        if let Some(d) = phys.desc(pfn) {
            if !self.is_file() {
                d.flags.fetch_or(PG_SWAPBACKED, Ordering::Relaxed);
            }
            d.set_owner(Owner::Object {
                object: self.id.0,
                index: pgoff,
            });
        }
        Ok(pfn)
    }

    /// Take page `pgoff` (frame `pfn`) out of the cache if the frame holds
    /// exactly `refs` references (the cache's and the caller's) and is
    /// clean, leaving `shadow` (the eviction stamp) in its place, and for
    /// shared anonymous memory the slot its bytes were written to
    /// (`swapped`, whose reference the cache takes over); drops the cache's
    /// reference. On `false` the caller keeps the slot. Linux:
    /// `__remove_mapping` → `__filemap_remove_folio` (shmem: the swap entry
    /// `shmem_writeout` left in the mapping).
    pub(crate) fn remove_page_if(
        &self,
        phys: &PhysMem,
        pgoff: u64,
        pfn: Pfn,
        refs: u32,
        shadow: u64,
        swapped: Option<SwapEntry>,
    ) -> bool {
        let Some(d) = phys.desc(pfn) else { return false };
        {
            let mut c = self.cache.lock();
            if c.get(&pgoff) != Some(&pfn)
                || d.refcount.load(Ordering::Acquire) != refs
                || d.flags.load(Ordering::Acquire) & PG_DIRTY != 0
            {
                return false;
            }
            c.remove(&pgoff);
            c.shadows.insert(pgoff, shadow);
            if let Some(e) = swapped {
                c.swapped.insert(pgoff, e);
            }
        }
        phys.put_frame(pfn);
        true
    }

    /// Whether page `pgoff` of shared anonymous memory is out on swap (a
    /// fault must then drop its locks to read it: `FaultError::Retry`).
    pub(crate) fn is_swapped(&self, pgoff: u64) -> bool {
        !self.is_file() && self.cache.lock().swapped.contains_key(&pgoff)
    }

    /// Write page `pgoff` (in frame `pfn`) to the file, only the bytes
    /// before its end. Linux: `writepage` of the file system.
    fn write_page(&self, phys: &PhysMem, pgoff: u64, pfn: Pfn) -> Result<(), Errno> {
        let Kind::File(f) = &self.kind else { return Ok(()) };
        let off = pgoff << PAGE_SHIFT;
        let len = f.len();
        if off >= len {
            // The file shrank under the mapping: nothing to write.
            return Ok(());
        }
        let n = (len - off).min(PAGE_SIZE) as usize;
        let mut buf = [0u8; PAGE_SIZE as usize];
        phys.ram().read_bytes(pfn, 0, &mut buf[..n]);
        f.write_at(off, &buf[..n])?;
        self.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Write back page `pgoff` if it is dirty, or unconditionally if
    /// `force`. `PG_DIRTY` is cleared before the copy and set again if the
    /// write fails. Returns whether the page was written. Shared anonymous
    /// memory has nothing to write to. Linux: `folio_clear_dirty_for_io` + `writepage`.
    pub(crate) fn writeback_page(&self, phys: &PhysMem, pgoff: u64, pfn: Pfn, force: bool) -> Result<bool, Errno> {
        if !self.is_file() {
            return Ok(false);
        }
        let Some(d) = phys.desc(pfn) else { return Ok(false) };
        let was_dirty = d.flags.fetch_and(!PG_DIRTY, Ordering::AcqRel) & PG_DIRTY != 0;
        if !was_dirty && !force {
            return Ok(false);
        }
        match self.write_page(phys, pgoff, pfn) {
            Ok(()) => Ok(true),
            Err(e) => {
                if was_dirty {
                    d.flags.fetch_or(PG_DIRTY, Ordering::AcqRel);
                }
                Err(e)
            }
        }
    }

    /// Keep a writeback error for the next `msync` to report.
    pub(crate) fn record_wb_err(&self, e: Errno) {
        self.wb_err.store(e.code() as u32, Ordering::Release);
    }

    fn take_wb_err(&self) -> Option<Errno> {
        Errno::from_code(self.wb_err.swap(0, Ordering::AcqRel) as i32)
    }

    /// Write back the dirty pages of `[first, end)`: the caller has moved
    /// every mapping's dirty bit to its page first (its own PTEs by msync,
    /// the others' through the reverse map). Returns the first error (a kept
    /// writeback error first). Linux: `filemap_write_and_wait_range`.
    pub(crate) fn sync_range(&self, phys: &PhysMem, first: u64, end: u64) -> Result<(), Errno> {
        let pages = self.cached_range(first, end);
        let mut err = self.take_wb_err();
        for (pgoff, pfn) in pages {
            // Every mapping's dirty bit is on the page by now (this address
            // space's by msync, the others' through the reverse map):
            // write back only what is dirty.
            if let Err(e) = self.writeback_page(phys, pgoff, pfn, false) {
                err.get_or_insert(e);
            }
        }
        match err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Write back the dirty pages and drop the cache's reference to every
    /// page. Called once no VMA and no fd refers to the object. Returns the
    /// first writeback error; every page is dropped regardless.
    fn release(&self, phys: &PhysMem) -> Result<(), Errno> {
        let cache = core::mem::take(&mut *self.cache.lock());
        if let Some(area) = self.swap_object().and_then(|s| s.swap_area()) {
            for &e in cache.swapped.values() {
                let _ = area.put(e);
            }
        }
        let mut err = self.take_wb_err();
        for (pgoff, pfn) in cache.pages {
            if let Err(e) = self.writeback_page(phys, pgoff, pfn, false) {
                err.get_or_insert(e);
            }
            phys.put_frame(pfn);
        }
        match err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Count where `Lru::place` put a page read in.
pub(crate) fn note_placed(counters: &MmCounters, p: crate::phys::Placed) {
    match p {
        crate::phys::Placed::New => {}
        crate::phys::Placed::Refault => MmCounters::bump(&counters.workingset_refault),
        crate::phys::Placed::Activated => {
            MmCounters::bump(&counters.workingset_refault);
            MmCounters::bump(&counters.workingset_activate);
        }
    }
}

/// Take one more reference to a frame the caller knows is alive.
#[inline]
fn get_ref(phys: &PhysMem, pfn: Pfn) {
    if let Some(d) = phys.desc(pfn) {
        d.refcount.fetch_add(1, Ordering::AcqRel);
    }
}

pub use super::pte_ops::transfer_dirty;

/// What the checker sees of an object table: registry key, frame, sharers
/// as (address space id, span).
pub type SharedTableView = ((u64, u8), Pfn, Vec<(u64, u64)>);

/// An object table (`MemObject::shared_tables`): the leaf table, and every
/// (address space id, 2 MiB span) whose PD entry reaches it, one per
/// reference, so that a change to one of its entries can be shot down in
/// every sharer (`PendingFlush::remote`).
pub(crate) struct SharedTable {
    pub(crate) table: Pfn,
    pub(crate) sharers: Vec<(u64, u64)>,
}

/// The machine's live memory objects by id, each with one reference held
/// here. Lock order: after any map lock, before any object's cache lock.
pub struct ObjectTable {
    /// The swap object (`Kind::Swap`), which shared anonymous memory
    /// writes its pages to; not in `objects` (it is never released).
    swap: Option<Arc<MemObject>>,
    next_id: AtomicU64,
    /// Objects in `objects` (read without the lock to skip an empty table).
    live: AtomicUsize,
    objects: Mutex<BTreeMap<u64, Arc<MemObject>>>,
}

impl Default for ObjectTable {
    fn default() -> ObjectTable {
        ObjectTable::new()
    }
}

impl ObjectTable {
    pub fn new() -> ObjectTable {
        ObjectTable::with_swap(None)
    }

    /// A table whose shared anonymous objects swap to `area`'s swap object.
    pub fn with_swap(area: Option<SwapArea>) -> ObjectTable {
        ObjectTable {
            swap: area.map(|a| Arc::new(MemObject::new(ObjectId(0), Kind::Swap(a)))),
            next_id: AtomicU64::new(1),
            live: AtomicUsize::new(0),
            objects: Mutex::new(BTreeMap::new()),
        }
    }

    fn register(&self, kind: Kind) -> Arc<MemObject> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let o = Arc::new(MemObject::new(ObjectId(id), kind));
        self.objects.lock().insert(id, o.clone());
        self.live.fetch_add(1, Ordering::Relaxed);
        o
    }

    /// New shared anonymous memory of `len` bytes (page aligned).
    /// Linux: `shmem_zero_setup`.
    pub fn create_shmem(&self, len: u64) -> Arc<MemObject> {
        self.register(Kind::Shmem {
            pages: len >> PAGE_SHIFT,
            swap: self.swap.clone(),
        })
    }

    /// A new object for an opened host file.
    pub fn create_file(&self, f: Box<dyn BackingFile>) -> Arc<MemObject> {
        self.register(Kind::File(f))
    }

    /// The swap object (the swap cache is its page cache), if the machine swaps.
    pub fn swap(&self) -> Option<&Arc<MemObject>> {
        self.swap.as_ref()
    }

    /// The live object `id`.
    pub fn get(&self, id: ObjectId) -> Option<Arc<MemObject>> {
        if self.live.load(Ordering::Relaxed) == 0 {
            return None;
        }
        self.objects.lock().get(&id.0).cloned()
    }

    /// Live objects.
    pub fn len(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Whether no object is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every live object, in id order.
    pub fn snapshot(&self) -> Vec<Arc<MemObject>> {
        if self.is_empty() {
            return Vec::new();
        }
        self.objects.lock().values().cloned().collect()
    }

    /// Release every object that only this table still refers to (no VMA
    /// maps it, no fd names it): write back its dirty pages, free its
    /// cache. Returns the first writeback error. Call after anything that
    /// drops VMAs or fds, once the TLBs are flushed.
    pub fn reap(&self, phys: &PhysMem) -> Result<(), Errno> {
        self.reap_with(phys, |_| {})
    }

    /// `reap`, calling `gone` with the id of each object it releases.
    pub(crate) fn reap_with(&self, phys: &PhysMem, mut gone: impl FnMut(u64)) -> Result<(), Errno> {
        if self.is_empty() {
            return Ok(());
        }
        let dead: Vec<Arc<MemObject>> = {
            let mut objs = self.objects.lock();
            let ids: Vec<u64> = objs
                .iter()
                .filter(|(_, o)| Arc::strong_count(o) == 1)
                .map(|(&id, _)| id)
                .collect();
            ids.iter().filter_map(|id| objs.remove(id)).collect()
        };
        self.live.fetch_sub(dead.len(), Ordering::Relaxed);
        let mut err = None;
        for o in dead {
            gone(o.id().0);
            if let Err(e) = o.release(phys) {
                err.get_or_insert(e);
            }
        }
        match err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// A frame whose PTE was just zapped is about to lose that reference
    /// (the TLBs are flushed): if it is a dirty page of a file that no PTE
    /// maps any more, write it back now. A failure is kept for the object's
    /// next `msync`.
    pub fn writeback_unmapped(&self, phys: &PhysMem, pfn: Pfn) {
        let Some(d) = phys.desc(pfn) else { return };
        if d.usage() != FrameUse::PageCache {
            return;
        }
        let fl = d.flags.load(Ordering::Acquire);
        if fl & PG_DIRTY == 0 || fl & PG_SWAPBACKED != 0 {
            return;
        }
        // Still mapped elsewhere: the last unmapper (or msync, or the
        // object's release) writes it, once, as Linux's flusher would.
        if d.mapcount.load(Ordering::Acquire) > 0 {
            return;
        }
        let Owner::Object { object, index } = d.owner() else {
            return;
        };
        let Some(o) = self.get(ObjectId(object)) else {
            return;
        };
        if let Err(e) = o.writeback_page(phys, index, pfn, false) {
            o.record_wb_err(e);
        }
    }

    /// Pages cached by all live objects.
    pub fn cached_pages(&self) -> usize {
        self.snapshot().iter().map(|o| o.cached_pages()).sum()
    }
}

/// A fault on an empty PTE of a VMA backed by `obj`. Returns the PTE now in
/// place, or `None` if the entry changed under us (retry).
/// Linux: `do_read_fault` (read, either kind of mapping), `do_shared_fault`
/// (write, shared), `do_cow_fault` (write, private).
///
/// Preconditions: the map lock is held for reading; `entry` read `cur`, empty.
#[allow(clippy::too_many_arguments)]
pub(super) fn do_object_fault(
    cx: &FaultCtx<'_>,
    mm: &AddressSpace,
    vma: &Vma,
    obj: &Arc<MemObject>,
    (addr, access): (u64, Access),
    entry: LeafRef<'_>,
    cur: Pte,
    base: u64,
    rss: Rss<'_>,
    flush: &mut PendingFlush,
) -> Result<Option<Pte>, FaultError> {
    let phys = cx.phys;
    let pgoff = vma.pgoff_of(page_floor(addr));
    // A file page not in the cache, or a shared anonymous page out on
    // swap, needs I/O: not with our locks held.
    let page = if obj.is_file() || obj.is_swapped(pgoff) {
        match obj.lookup_ref(phys, pgoff).map_err(|e| page_error_fault(e, addr))? {
            Some(p) => p,
            None => {
                return Err(FaultError::Retry(PageRead::Object {
                    obj: obj.clone(),
                    pgoff,
                    addr,
                }))
            }
        }
    } else {
        obj.get_page(phys, cx.counters, pgoff)
            .map_err(|e| page_error_fault(e, addr))?
    };
    // `page` carries a reference of ours from here on.
    let shared = vma.flags.has(VmFlags::SHARED);
    if access == Access::Write && !shared {
        // A private copy of the page, mapped writable; the cache keeps its page.
        let Some(copy) = new_anon_frame(cx, vma, addr) else {
            return Err(FaultError::NoMemory { addr, keep: Some(page) });
        };
        phys.ram().copy_frame(copy, page);
        phys.put_frame(page);
        let new = Pte::new(copy, base | Pte::ACCESSED | Pte::DIRTY);
        // An anonymous copy counts in this address space's rss, whatever table holds it.
        if pte_ops::set(phys, mm.counts_on(cx.cpu), entry, addr, cur, new, flush) {
            return Ok(Some(new));
        }
        discard_frame(cx, copy);
        return Ok(None);
    }
    // Map the cache page: read-only in a private mapping (a write copies
    // it), as the VMA allows in a shared one, dirty if this is a store.
    let mut flags = base | Pte::ACCESSED;
    if !shared {
        flags &= !Pte::WRITE;
    } else if access == Access::Write {
        flags |= Pte::DIRTY;
    }
    let new = Pte::new(page, flags);
    // The reference `get_page` gave us becomes the mapping's.
    if pte_ops::set(phys, rss, entry, addr, cur, new, flush) {
        return Ok(Some(new));
    }
    phys.put_frame(page);
    Ok(None)
}

/// The signal a failed page lookup gives a fault at `addr`.
pub(super) fn page_error_fault(e: PageError, addr: u64) -> Fault {
    match e {
        PageError::NoMemory => Fault::oom(addr),
        PageError::BeyondEof => Fault {
            signal: Signal::Bus,
            addr,
            reason: FaultReason::BeyondEof,
        },
        PageError::Io => Fault {
            signal: Signal::Bus,
            addr,
            reason: FaultReason::IoError,
        },
    }
}

/// A store to a present, write-protected PTE of a shared mapping (write was
/// given back by mprotect, which leaves shared pages read-only): make the
/// PTE writable and dirty in place; nothing is copied and no other CPU can
/// hold a writable translation, so nothing is flushed. Returns `None` if the
/// entry changed under us (retry). Linux: `wp_page_shared` → `wp_page_reuse`.
pub(super) fn do_shared_wp(entry: LeafRef<'_>, addr: u64, cur: Pte) -> Option<Pte> {
    let new = cur.with(Pte::WRITE | Pte::ACCESSED | Pte::DIRTY);
    pte_ops::update(entry, addr, None, |p| (p == cur).then_some(new)).map(|(_, n)| n)
}
