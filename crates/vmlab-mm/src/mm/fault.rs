//! The page-fault handler: for anonymous private memory demand-zero pages,
//! the shared zero page on read, write-protect faults (zero page to private
//! frame, and reuse or copy of a frame mapped elsewhere); for VMAs backed by
//! a memory object, pages from its page cache (`object.rs`).
//!
//! Runs with the map lock held for reading; PTEs are filled by
//! compare-and-swap, so two CPUs faulting on one page both see one frame.
//! A fault below a grows-down VMA changes nothing and asks the caller to
//! grow the stack under the write lock first (`FaultError::ExpandStack`,
//! `stack.rs`).
//! Linux: `handle_mm_fault`, `do_anonymous_page`, `do_wp_page`.

use super::address_space::{leaf_pkey_bits, AddressSpace, MapState};
use super::fault_lock::{FaultLock, FaultLockPolicy, Install};
use super::object;
use super::pte_ops::{self, Rss};
use super::rmap::identities::Identities;
use super::shared_pt::PD_SPAN;
use super::stats::MmCounters;
use super::vma::{Backing, VmFlags, Vma};
use super::vma_map::VmaMap;
use crate::addr::{page_floor, Pfn, TASK_SIZE};
use crate::errno::{Fault, FaultReason};
use crate::pgtable::{LeafEntry, LeafRef, Pte};
use crate::phys::{Fill, FrameUse, Owner, PhysMem};
use crate::sync::{Ordering, Relax};
use crate::tlb::PendingFlush;

/// The kind of access that faulted.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    Read,
    Write,
    Exec,
}

/// What the fault handler needs from the machine besides the address space.
pub struct FaultCtx<'a> {
    pub phys: &'a PhysMem,
    pub counters: &'a MmCounters,
    /// The anonymous identities (machine-wide, never 0) and object lists
    /// the reverse map finds pages through (`rmap/identities.rs`).
    pub ids: &'a Identities,
    /// Share the page tables of large shared objects between address spaces
    /// (fork policy `shared_pt`).
    pub share_object_tables: bool,
    /// How concurrent faults exclude each other (`fault_lock/`).
    pub fault_lock: FaultLock,
    /// The swap object (its page cache is the swap cache), if the machine swaps.
    pub swap: Option<&'a crate::sync::Arc<super::object::MemObject>>,
    /// The CPU the fault runs on (its per-CPU frame list), or `NO_CPU` for a
    /// fault made by a syscall (madvise populate) on no particular CPU.
    pub cpu: usize,
    /// Called while waiting for another CPU's claim or table lock, every
    /// `SPINS_PER_RELAX` spins: the holder may be a preempted host thread.
    pub relax: &'a dyn Relax,
    /// Direct reclaim, for a syscall path (populate) that found no free
    /// frame and has dropped its locks.
    pub reclaim: &'a dyn super::reclaim::DirectReclaim,
}

/// Spins of a wait between two calls of `FaultCtx::relax`.
pub const SPINS_PER_RELAX: u32 = 128;

/// `FaultCtx::cpu` of a fault that no CPU takes (it uses the global allocator).
pub const NO_CPU: usize = usize::MAX;

/// Why `handle_fault_locked` did not resolve a fault.
#[derive(Clone, Debug)]
pub enum FaultError {
    /// The access fails: deliver this signal.
    Signal(Fault),
    /// `addr` lies below a `VM_GROWSDOWN` VMA with no VMA in between: the
    /// stack must grow first, which needs the map lock for writing. The
    /// caller drops its read lock, takes the write lock, calls
    /// `AddressSpace::expand_stack_locked` and, if that succeeds, faults
    /// again (else SIGSEGV `SEGV_MAPERR`). Linux 6.5+: `lock_mm_and_find_vma`
    /// upgrading the mmap lock for `expand_stack_locked`.
    ExpandStack,
    /// No free frame (for a page, a copy or a table): the caller drops its
    /// locks, runs direct reclaim and faults again. `keep` is the page the
    /// fault was working from when the frame it needed was missing (the
    /// source of a copy-on-write copy, a cache or swap-cache page to copy
    /// privately), with a reference for the caller, who holds it over that
    /// reclaim and drops it (`PageRead::release`) just before the next try:
    /// else reclaim could take that page back, the retry read it in again
    /// with the frame just freed, and the two would take turns for ever,
    /// each round counting as progress. Linux holds the page the same way
    /// over the direct reclaim of the copy's allocation (`wp_page_copy`
    /// under `do_wp_page`'s `folio_get`). Every fault that finds no frame
    /// returns this (`From<Fault>` turns `Fault::oom` into it).
    NoMemory { addr: u64, keep: Option<Pfn> },
    /// The page must be read from its file first. No host I/O happens with
    /// a spin lock, a page-table lock or the map lock held: the caller drops
    /// its locks, reads the page into the cache (`PageRead::read`, a major
    /// fault) and faults again. Linux: `VM_FAULT_RETRY` from `filemap_fault`
    /// dropping the mmap lock for the read (`lock_page_maybe_drop_mmap`).
    Retry(PageRead),
}

/// What a fault needs done with no lock held before it is tried again.
#[derive(Clone)]
pub enum PageRead {
    /// Read page `pgoff` of `obj` into its page cache (a file page, or a
    /// page of shared anonymous memory out on swap).
    Object {
        obj: crate::sync::Arc<super::object::MemObject>,
        pgoff: u64,
        /// The faulting address (for the signal if the read fails).
        addr: u64,
    },
    /// Read swap slot `entry` into the swap cache (`swap`'s page cache).
    /// Linux: `do_swap_page` → `swapin_readahead`.
    Swap {
        swap: crate::sync::Arc<super::object::MemObject>,
        entry: crate::pgtable::SwapEntry,
        addr: u64,
    },
    /// Another CPU is reading the page in: let it finish, then try again.
    /// Linux: `folio_lock_or_retry` waiting for the I/O.
    Wait,
}

impl core::fmt::Debug for PageRead {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PageRead::Object { obj, pgoff, addr } => {
                write!(f, "PageRead(object {} page {} for {:#x})", obj.id().0, pgoff, addr)
            }
            PageRead::Swap { entry, addr, .. } => {
                write!(f, "PageRead(swap slot {} for {:#x})", entry.offset, addr)
            }
            PageRead::Wait => f.write_str("PageRead(wait)"),
        }
    }
}

impl PageRead {
    /// Do the read; counts a major fault. A read error or a page past the
    /// end is the SIGBUS the fault gives; no memory is OOM. Returns the page
    /// read with a reference held for the caller, who keeps it over any
    /// reclaim it runs before the retry (so that reclaim cannot take the
    /// page back first: a read and an eviction taking turns would never
    /// end) and drops it (`PageRead::release`) just before the retry.
    pub fn read(&self, phys: &PhysMem, counters: &MmCounters, relax: &dyn Relax) -> Result<Option<Pfn>, Fault> {
        match self {
            PageRead::Object { obj, pgoff, addr } => {
                MmCounters::bump(&counters.major_faults);
                match obj.get_page(phys, counters, *pgoff) {
                    Ok(pfn) => Ok(Some(pfn)),
                    Err(e) => Err(object::page_error_fault(e, *addr)),
                }
            }
            PageRead::Swap { swap, entry, addr } => super::swap_cache::read_in(swap, phys, counters, *entry, true)
                .map_err(|e| object::page_error_fault(e, *addr)),
            PageRead::Wait => {
                relax.relax();
                Ok(None)
            }
        }
    }

    /// Drop the reference `read` returned.
    pub fn release(phys: &PhysMem, pinned: Option<Pfn>) {
        if let Some(p) = pinned {
            phys.put_frame(p);
        }
    }
}

impl From<Fault> for FaultError {
    /// An out-of-memory fault is not a signal yet (see `NoMemory`).
    fn from(f: Fault) -> FaultError {
        if f.reason == FaultReason::OutOfMemory {
            FaultError::NoMemory {
                addr: f.addr,
                keep: None,
            }
        } else {
            FaultError::Signal(f)
        }
    }
}

/// Resolve a fault at `addr` and return the leaf PTE now in place, which
/// allows `access`. Linux: `handle_mm_fault` (and, for the VMA lookup,
/// `lock_mm_and_find_vma`).
///
/// A fault that breaks copy-on-write or unshares a page table leaves in
/// `flush` the translations other CPUs must drop and the frames to release
/// after they have; the caller shoots it down. A fault below a grows-down
/// VMA returns `FaultError::ExpandStack` and changes nothing.
///
/// Preconditions: `st` is `mm.map` held for reading (or writing).
pub fn handle_fault_locked(
    cx: &FaultCtx<'_>,
    mm: &AddressSpace,
    st: &MapState,
    addr: u64,
    access: Access,
    flush: &mut PendingFlush,
) -> Result<Pte, FaultError> {
    let r = {
        let _whole_fault = cx.fault_lock.whole_fault(cx, mm);
        handle_fault_inner(cx, mm, st, addr, access, flush)
    };
    match r {
        Ok(_) => MmCounters::bump(&cx.counters.minor_faults),
        Err(FaultError::Signal(_) | FaultError::NoMemory { .. }) => MmCounters::bump(&cx.counters.failed_faults),
        // Not over yet: the fault is retried once the stack has grown or
        // the page has been read.
        Err(FaultError::ExpandStack | FaultError::Retry(_)) => {}
    }
    r
}

fn handle_fault_inner(
    cx: &FaultCtx<'_>,
    mm: &AddressSpace,
    st: &MapState,
    addr: u64,
    access: Access,
    flush: &mut PendingFlush,
) -> Result<Pte, FaultError> {
    if addr >= TASK_SIZE || st.dead {
        return Err(Fault::segv(addr, FaultReason::BadAddress).into());
    }
    // `find_vma`: the first VMA ending above `addr`. One that starts above
    // it covers `addr` only if it is a stack that may grow down to it
    // (`lock_mm_and_find_vma`; no check against the stack pointer since
    // Linux 4.20). The growth comes before the access check, so a store
    // below a read-only stack grows it and then fails with SEGV_ACCERR.
    let vma = match st.vmas.find(addr) {
        Some(v) if v.start <= addr => v,
        Some(v) if v.flags.has(VmFlags::GROWSDOWN) => return Err(FaultError::ExpandStack),
        _ => return Err(Fault::segv(addr, FaultReason::NotMapped).into()),
    };
    // x86 `access_error`: a protection-key violation comes first (a store
    // to execute-only memory is a key fault, not a write fault).
    if access != Access::Exec && vma.flags.has(VmFlags::PKEY_EXEC_ONLY) {
        return Err(Fault::segv(addr, FaultReason::ProtectionKey).into());
    }
    // Linux `access_error`: any permission lets a read through on x86.
    let allowed = match access {
        Access::Read => vma.prot.accessible(),
        Access::Write => vma.prot.write(),
        Access::Exec => vma.prot.exec(),
    };
    if !allowed {
        return Err(Fault::segv(addr, FaultReason::Protection).into());
    }
    let shared = vma.flags.has(VmFlags::SHARED);
    if access == Access::Write && !shared {
        // Linux `anon_vma_prepare`: the identity may come from a neighbour.
        // A shared mapping has no anonymous pages, so it never gets one.
        AddressSpace::prepare_anon_locked(st, vma, cx.ids, mm.id);
    }
    let oom = Fault::oom(addr);
    // A table shared copy-on-write with another address space is frozen:
    // take a private copy before filling or changing any of its entries.
    if let Some(pe) = mm.page_table().pd_entry(cx.phys, addr) {
        if pe.load(Ordering::Acquire) & Pte::TABLE_COW != 0 {
            // A guard marker changes nothing: fault on it without a copy
            // (which would need a frame, and could turn SIGSEGV into OOM).
            // Frozen tables change under no one, so the read stands.
            if mm
                .page_table()
                .leaf(cx.phys, addr)
                .is_some_and(|e| e.load().decode() == LeafEntry::Guard)
            {
                return Err(Fault::segv(addr, FaultReason::Guard).into());
            }
            mm.unshare_table_locked(st, cx.phys, addr & !(PD_SPAN - 1), pe, flush)
                .map_err(|_| oom)?;
        }
    }
    // A whole 2 MiB block of a shared object: use the table every address
    // space mapping that block shares. Its frames count in no one's rss.
    let mut count_rss = true;
    if cx.share_object_tables {
        if let Backing::Object(obj) = &vma.backing {
            count_rss = !mm
                .attach_object_table_locked(cx.phys, vma, obj, addr)
                .map_err(|_| oom)?;
        }
    }
    let (table, entry) = mm.page_table().leaf_alloc_in(cx.phys, addr).map_err(|_| oom)?;
    let base = leaf_flags(vma);
    let rss = if count_rss { mm.counts_on(cx.cpu) } else { Rss::None };
    let mut waited = false;
    let mut spins = 0u32;
    loop {
        let cur = entry.load();
        if cur.locked() {
            // Another CPU claimed the entry (`pte_bit`): wait for what it
            // publishes, counting one wait per fault.
            if !waited {
                waited = true;
                MmCounters::bump(&cx.counters.lock_waits);
            }
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(SPINS_PER_RELAX) {
                cx.relax.relax();
            }
            core::hint::spin_loop();
            #[cfg(loom)]
            loom::thread::yield_now();
            continue;
        }
        match cur.decode() {
            LeafEntry::None => {}
            LeafEntry::Present(_) => {
                if access == Access::Write && !cur.writable() {
                    let r = if shared {
                        // A shared page is written in place, never copied.
                        object::do_shared_wp(entry, addr, cur)
                    } else {
                        do_wp_page(cx, mm, vma, addr, (table, entry), cur, base, flush)?
                    };
                    match r {
                        Some(p) => return Ok(p),
                        None => continue,
                    }
                }
                // Present and permitted: a TLB miss that the hardware walk
                // would resolve; set the accessed/dirty bits it would set.
                let mut bits = Pte::ACCESSED;
                if access == Access::Write {
                    bits |= Pte::DIRTY;
                }
                match entry.mmu_set_accessed_dirty(cur, bits) {
                    Some(p) => return Ok(p),
                    None => continue,
                }
            }
            LeafEntry::ProtNone(_) => {
                // A PROT_NONE entry in a VMA that allows this access. mprotect
                // rewrites PTEs under the map lock held for writing, so this
                // is not a race: make the entry present as the VMA says
                // (read-only; a store then takes the write-protect path).
                let keep = cur.0 & (Pte::SPECIAL | Pte::ACCESSED | Pte::DIRTY);
                let fixed = Pte::new(cur.pfn(), (base & !Pte::WRITE) | keep);
                pte_ops::update(entry, addr, None, |p| (p == cur).then_some(fixed));
                continue;
            }
            // Entry kinds the next issues bring (swap-in, migration wait)
            // have no writer yet: an entry holding one is a broken state.
            // A guard page (MADV_GUARD_INSTALL): the access was allowed by
            // the VMA, so this comes after the protection check, as Linux's
            // `handle_pte_marker` does.
            LeafEntry::Guard => return Err(Fault::segv(addr, FaultReason::Guard).into()),
            // Anonymous memory only: shared memory keeps its swap entries
            // in its object.
            LeafEntry::Swap(se) if !shared => {
                match super::swapin::do_swap_page(cx, (mm, st), vma, (addr, access), entry, (cur, se), base, flush)? {
                    Some(p) => return Ok(p),
                    None => continue,
                }
            }
            LeafEntry::Swap(_) | LeafEntry::Migration { .. } | LeafEntry::Invalid(_) => {
                return Err(Fault::segv(addr, FaultReason::BadAddress).into());
            }
        }
        // A file or shared anonymous memory: the page comes from the object.
        if let Backing::Object(obj) = &vma.backing {
            match object::do_object_fault(cx, mm, vma, obj, (addr, access), entry, cur, base, rss, flush)? {
                Some(p) => return Ok(p),
                None => continue,
            }
        }
        // do_anonymous_page: reads map the zero page (no allocation, so a
        // compare-and-swap is the whole update under every policy), writes
        // a fresh frame.
        if access != Access::Write {
            let new = Pte::new(cx.phys.zero_pfn(), (base & !Pte::WRITE) | Pte::SPECIAL | Pte::ACCESSED);
            if pte_ops::set(cx.phys, rss, entry, addr, cur, new, flush) {
                MmCounters::bump(&cx.counters.zero_page_maps);
                return Ok(new);
            }
            continue;
        }
        let make = || new_anon_frame(cx, vma, addr).map(|pfn| Pte::new(pfn, base | Pte::ACCESSED | Pte::DIRTY));
        match cx
            .fault_lock
            .install_fresh(cx, rss, (table, entry), addr, cur, make, flush)
        {
            Install::Done(new) => return Ok(new),
            Install::Retry => continue,
            Install::NoMemory => return Err(oom.into()),
        }
    }
}

/// PTE permission bits for a page of `vma` (before COW state is considered).
fn leaf_flags(vma: &Vma) -> u64 {
    let mut f = Pte::PRESENT | Pte::USER | leaf_pkey_bits(vma.flags);
    if vma.prot.write() {
        f |= Pte::WRITE;
    }
    if !vma.prot.exec() {
        f |= Pte::NX;
    }
    f
}

/// The VMA's anonymous identity, assigned on first need. Linux: `anon_vma_prepare`.
/// `vma`'s anonymous identity, which a write fault gave it
/// (`prepare_anon_locked`) before it allocates a page.
fn anon_id(vma: &Vma) -> u64 {
    let id = vma.anon_id();
    debug_assert_ne!(id, 0, "an anonymous page allocated for a VMA with no identity");
    id
}

/// A zeroed frame owned by `vma`'s anonymous identity at the page of `addr`,
/// not mapped yet (`pte_ops` maps it). Linux: `alloc_zeroed_user_highpage_movable`.
pub(super) fn new_anon_frame(cx: &FaultCtx<'_>, vma: &Vma, addr: u64) -> Option<Pfn> {
    let pfn = cx.phys.alloc_page(cx.cpu, FrameUse::Anon, Fill::Zero)?;
    if let Some(d) = cx.phys.desc(pfn) {
        d.set_owner(Owner::Anon {
            anon: anon_id(vma),
            index: vma.pgoff_of(page_floor(addr)),
        });
        // A droppable VMA's pages are never swap-backed: reclaim drops them
        // (`folio_add_new_anon_rmap` leaves `PG_swapbacked` clear for
        // `VM_DROPPABLE`).
        if vma.flags.has(super::vma::VmFlags::DROPPABLE) {
            d.flags.fetch_or(crate::phys::PG_LAZYFREE, Ordering::AcqRel);
        }
    }
    cx.phys.lru_place(pfn, None, crate::phys::Entry::Fault);
    Some(pfn)
}

/// Give back a frame that lost the race to fill a PTE.
pub(super) fn discard_frame(cx: &FaultCtx<'_>, pfn: Pfn) {
    cx.phys.put_frame_on(cx.cpu, pfn);
    MmCounters::bump(&cx.counters.pages_wasted);
}

/// A store to a present, write-protected PTE in a writable VMA. Returns the
/// new PTE, or `None` if the entry changed under us (retry).
/// Linux: `do_wp_page` (reuse when exclusive, else `wp_page_copy`).
#[allow(clippy::too_many_arguments)]
fn do_wp_page(
    cx: &FaultCtx<'_>,
    mm: &AddressSpace,
    vma: &Vma,
    addr: u64,
    (table, entry): (Pfn, LeafRef<'_>),
    cur: Pte,
    base: u64,
    flush: &mut PendingFlush,
) -> Result<Option<Pte>, FaultError> {
    let old_pfn = cur.pfn();
    let rss = mm.counts_on(cx.cpu);
    if !cur.special() {
        if let Some(swap) = cx.swap {
            // A store makes the swap copy of a page only this mapping holds useless.
            super::swap_cache::free_swap_if_exclusive(swap, cx.phys, old_pfn);
        }
        let exclusive = cx
            .phys
            .desc(old_pfn)
            .is_some_and(|d| d.mapcount.load(Ordering::Acquire) == 1 && d.refcount.load(Ordering::Acquire) == 1);
        if exclusive {
            // No other CPU can hold a writable translation: nothing to flush.
            let new = cur.with(Pte::WRITE | Pte::ACCESSED | Pte::DIRTY);
            return Ok(pte_ops::update(entry, addr, None, |p| (p == cur).then_some(new)).map(|(_, n)| n));
        }
    }
    // The old frame loses this mapping; other CPUs may still cache the old
    // translation, so its reference is dropped after the shootdown (`flush`).
    let make = || {
        let pfn = new_anon_frame(cx, vma, addr)?;
        if !cur.special() {
            cx.phys.ram().copy_frame(pfn, old_pfn);
        }
        Some(Pte::new(pfn, base | Pte::ACCESSED | Pte::DIRTY))
    };
    match cx
        .fault_lock
        .install_fresh(cx, rss, (table, entry), addr, cur, make, flush)
    {
        Install::Done(new) => Ok(Some(new)),
        Install::Retry => Ok(None),
        Install::NoMemory => Err(FaultError::NoMemory {
            addr,
            keep: if cur.special() {
                None
            } else {
                pte_ops::hold_mapped(cx.phys, entry, cur)
            },
        }),
    }
}
