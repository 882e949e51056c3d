//! A CPU: its TLB and the process it runs. Accesses go through here; a TLB
//! hit is an index, a tag compare and a permission check, with no lock, no
//! map lookup by pid and no allocation.

use super::machine::{Machine, Pid, Process};
use crate::addr::{vpn, Pfn, PAGE_SIZE, TASK_SIZE};
use crate::errno::{Errno, Fault, FaultReason, SysResult};
use crate::mm::fault::{handle_fault_locked, Access, FaultError, PageRead};
use crate::mm::MmCounters;
use crate::pgtable::Pte;
use crate::phys::Ram;
use crate::sync::{compiler_fence, Arc, AtomicU64, Ordering};
use crate::tlb::PendingFlush;
use crate::tlb::Tlb;

/// The handle of one simulated CPU, owned by the thread that drives it.
/// Linux has no one type for this: it is the hardware plus `current`.
pub struct Cpu<'m> {
    m: &'m Machine,
    id: usize,
    tlb: &'m Tlb,
    ram: &'m Ram,
    /// `tlb.slots()` and `ram.words()`, kept so that a hit is one hop shorter.
    tlb_slots: &'m [AtomicU64],
    words: &'m [AtomicU64],
    proc: Option<Arc<Process>>,
    /// This CPU's word of `Machine::cpu_active`, and the last even value stored in it.
    active: &'m AtomicU64,
    seq: u64,
    /// This CPU's page-table walk mark (`phys::WalkTracker`) and the last
    /// even value stored in it: two plain stores per walk, as for `active`.
    walk_mark: &'m AtomicU64,
    walk_seq: u64,
    hits: u64,
    misses: u64,
}

impl<'m> Cpu<'m> {
    pub(crate) fn new(m: &'m Machine, id: usize) -> Cpu<'m> {
        let tlb = m.tlb(id);
        tlb.flush_all();
        Cpu {
            m,
            id,
            tlb,
            ram: m.phys().ram(),
            tlb_slots: tlb.slots(),
            words: m.phys().ram().words(),
            proc: None,
            active: m.cpu_active.get(id),
            seq: m.cpu_active.get(id).load(Ordering::Relaxed) & !1,
            // `id` is below the machine's CPU count (`Machine::cpu`).
            walk_mark: m.phys().walks().mark(id),
            walk_seq: m.phys().walks().mark(id).load(Ordering::Relaxed).wrapping_add(1) & !1,
            hits: 0,
            misses: 0,
        }
    }

    /// This CPU's number.
    pub fn id(&self) -> usize {
        self.id
    }

    /// The process this CPU runs, if any.
    pub fn pid(&self) -> Option<Pid> {
        self.proc.as_ref().map(|p| p.pid)
    }

    /// Run process `pid` from now on (a context switch: the TLB, which has
    /// no address-space tags, is flushed). ESRCH if there is no such process.
    pub fn switch_to(&mut self, pid: Pid) -> SysResult<()> {
        let p = self.m.process(pid)?;
        let bit = 1u64 << self.id;
        if let Some(old) = self.proc.take() {
            old.mm.cpu_mask.fetch_and(!bit, Ordering::AcqRel);
        }
        // Join the new mask before the flush so that no shootdown is missed
        // between the flush and the first fill.
        p.mm.cpu_mask.fetch_or(bit, Ordering::AcqRel);
        self.tlb.flush_all();
        self.proc = Some(p);
        Ok(())
    }

    /// TLB hits and misses counted by this CPU and not yet published.
    pub fn local_tlb_counts(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }

    fn publish(&mut self) {
        self.m.tlb_hits.fetch_add(self.hits, Ordering::Relaxed);
        self.m.tlb_misses.fetch_add(self.misses, Ordering::Relaxed);
        self.hits = 0;
        self.misses = 0;
    }

    /// Mark the start of an access (see `system/host.rs`): a plain store,
    /// ordered before the TLB lookup for remote shootdowns by their
    /// `Host::remote_barrier`; the compiler fence keeps the compiler from
    /// moving the lookup above it.
    #[inline(always)]
    fn enter(&mut self) {
        self.active.store(self.seq | 1, Ordering::Relaxed);
        compiler_fence(Ordering::SeqCst);
    }

    /// Mark the end of an access: the RAM access is done.
    #[inline(always)]
    fn leave(&mut self) {
        self.seq = self.seq.wrapping_add(2);
        self.active.store(self.seq, Ordering::Release);
    }

    /// Load the 8 bytes at `addr` (little endian).
    #[inline]
    pub fn load_u64(&mut self, addr: u64) -> Result<u64, Fault> {
        if addr & 7 == 0 {
            self.enter();
            let e = Tlb::lookup_in(self.tlb_slots, addr >> 12);
            if e != 0 {
                if let Some(w) = self.words.get(Tlb::raw_pfn(e) * 512 + ((addr & 0xfff) >> 3) as usize) {
                    self.hits += 1;
                    let v = w.load(Ordering::Relaxed);
                    self.leave();
                    return Ok(v);
                }
            }
            self.leave();
            return self.load_u64_slow(addr);
        }
        self.load_u64_unaligned(addr)
    }

    /// An aligned load that missed the fast path. Same effect as `read` of
    /// 8 bytes, without its byte loop.
    #[cold]
    #[inline(never)]
    fn load_u64_slow(&mut self, addr: u64) -> Result<u64, Fault> {
        let pfn = self.pin(addr, Access::Read)?;
        // A frame outside RAM reads as zeros, as `Ram::read_bytes` leaves them.
        let v = self
            .ram
            .word(pfn.first_word() + ((addr & 0xfff) >> 3) as usize)
            .map_or(0, |w| w.load(Ordering::Relaxed));
        self.leave();
        Ok(v)
    }

    #[cold]
    #[inline(never)]
    fn load_u64_unaligned(&mut self, addr: u64) -> Result<u64, Fault> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Store 8 bytes at `addr` (little endian).
    #[inline]
    pub fn store_u64(&mut self, addr: u64, val: u64) -> Result<(), Fault> {
        if addr & 7 == 0 {
            self.enter();
            let e = Tlb::lookup_in(self.tlb_slots, addr >> 12);
            if Tlb::raw_writable(e) {
                if let Some(w) = self.words.get(Tlb::raw_pfn(e) * 512 + ((addr & 0xfff) >> 3) as usize) {
                    self.hits += 1;
                    w.store(val, Ordering::Relaxed);
                    self.leave();
                    return Ok(());
                }
            }
            self.leave();
            return self.store_u64_slow(addr, val);
        }
        self.store_u64_unaligned(addr, val)
    }

    /// An aligned store that missed the fast path. Same effect as `write`
    /// of 8 bytes, without its byte loop.
    #[cold]
    #[inline(never)]
    fn store_u64_slow(&mut self, addr: u64, val: u64) -> Result<(), Fault> {
        let pfn = self.pin(addr, Access::Write)?;
        // A frame outside RAM drops the store, as `Ram::write_bytes` does.
        if let Some(w) = self.ram.word(pfn.first_word() + ((addr & 0xfff) >> 3) as usize) {
            w.store(val, Ordering::Relaxed);
        }
        self.leave();
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn store_u64_unaligned(&mut self, addr: u64, val: u64) -> Result<(), Fault> {
        self.write(addr, &val.to_le_bytes())
    }

    /// Touch `addr` as `kind` without moving data (trace replay).
    #[inline]
    pub fn access(&mut self, addr: u64, kind: Access) -> Result<(), Fault> {
        self.translate(addr, kind).map(|_| ())
    }

    /// Copy `buf.len()` bytes from `addr`. On a fault, the bytes before the
    /// faulting page have been copied.
    pub fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), Fault> {
        let mut done = 0usize;
        while done < buf.len() {
            let va = addr
                .checked_add(done as u64)
                .ok_or(Fault::segv(addr, FaultReason::BadAddress))?;
            let off = (va % PAGE_SIZE) as usize;
            let n = (PAGE_SIZE as usize - off).min(buf.len() - done);
            let pfn = self.pin(va, Access::Read)?;
            self.ram.read_bytes(pfn, off, &mut buf[done..done + n]);
            self.leave();
            done += n;
        }
        Ok(())
    }

    /// Copy `buf` to `addr`. On a fault, the bytes before the faulting page
    /// have been stored.
    pub fn write(&mut self, addr: u64, buf: &[u8]) -> Result<(), Fault> {
        let mut done = 0usize;
        while done < buf.len() {
            let va = addr
                .checked_add(done as u64)
                .ok_or(Fault::segv(addr, FaultReason::BadAddress))?;
            let off = (va % PAGE_SIZE) as usize;
            let n = (PAGE_SIZE as usize - off).min(buf.len() - done);
            let pfn = self.pin(va, Access::Write)?;
            self.ram.write_bytes(pfn, off, &buf[done..done + n]);
            self.leave();
            done += n;
        }
        Ok(())
    }

    /// The frame `addr` is in, for an access of `kind`: TLB, then a page-table
    /// walk (setting accessed/dirty as hardware does), then the fault handler.
    /// The frame may be unmapped by another CPU as soon as this returns;
    /// the handle's own loads and stores do not have that gap.
    #[inline]
    pub fn translate(&mut self, addr: u64, kind: Access) -> Result<Pfn, Fault> {
        let pfn = self.pin(addr, kind)?;
        self.leave();
        Ok(pfn)
    }

    /// The frame `addr` is in for an access of `kind`, returned *inside* an
    /// access (`enter` done): no shootdown can complete until the caller has
    /// used the frame and called `leave`. On a fault the CPU is not in an access.
    #[inline]
    fn pin(&mut self, addr: u64, kind: Access) -> Result<Pfn, Fault> {
        loop {
            self.enter();
            let e = Tlb::lookup_in(self.tlb_slots, vpn(addr));
            let allowed = match kind {
                Access::Read => true,
                Access::Write => Tlb::raw_writable(e),
                Access::Exec => Tlb::raw_exec(e),
            };
            if e != 0 && allowed {
                self.hits += 1;
                return Ok(Pfn(Tlb::raw_pfn(e)));
            }
            self.leave();
            // Walk or fault outside any access: a shootdown this CPU starts
            // (a COW break) or waits for must not wait for this CPU.
            let (pfn, gen) = self.translate_slow(addr, kind)?;
            self.enter();
            // No invalidation since the fill: the translation still holds,
            // and any shootdown from now on waits for `leave`.
            if self.tlb.generation_relaxed() == gen {
                return Ok(pfn);
            }
            self.leave();
        }
    }

    /// Walk the page table (or fault) and fill the TLB; returns the frame
    /// and the TLB generation the fill was checked against.
    #[cold]
    fn translate_slow(&mut self, addr: u64, kind: Access) -> Result<(Pfn, u64), Fault> {
        self.misses += 1;
        if self.misses >= 4096 {
            self.publish();
        }
        loop {
            // kswapd's work, if an allocation asked for it, runs here: before
            // the walk, not after a try that mapped the page (it could evict
            // that very page before the access uses it, and the access would
            // fault again, for ever: a MAP_DROPPABLE page as the only
            // reclaimable one), and before `gen` is read (its shootdowns
            // would fail the fill, and the walk again after it would wake it
            // again, for ever: each round's fault allocates below the low
            // watermark).
            if self.m.phys().take_kswapd_wanted() {
                self.m.wake_kswapd(self.id);
            }
            let gen = self.tlb.generation();
            let (pfn, perm) = self.walk_or_fault(addr, kind)?;
            let Some((writable, exec)) = perm else {
                return Ok((pfn, gen));
            };
            // A shootdown that raced with the walk: walk again (see `Tlb::fill_checked`).
            if self
                .tlb
                .fill_checked(vpn(addr), pfn, writable, exec, gen, !self.m.host_barrier_is_real())
            {
                return Ok((pfn, gen));
            }
        }
    }

    /// The frame `addr` is in for an access of `kind`, and what the TLB may
    /// cache of it: `(writable, executable)`, or `None` if nothing (the TLB
    /// serves loads and stores without a key check, so an execute-only page,
    /// found by an instruction fetch, is never cached).
    fn walk_or_fault(&mut self, addr: u64, kind: Access) -> Result<(Pfn, Option<(bool, bool)>), Fault> {
        let mut no_progress = 0;
        // A page held over the work between two tries and dropped just
        // before the next try (held during the try, it would make the page
        // look shared to that fault): the page the last read brought in, or
        // the page a fault that found no frame was working from
        // (`FaultError::NoMemory`). Reclaim cannot take it meanwhile.
        let mut pinned = None;
        loop {
            PageRead::release(self.m.phys(), pinned.take());
            // Every lock of the try is dropped whatever it returned.
            match self.walk_or_fault_once(addr, kind) {
                Ok(t) => return Ok(t),
                Err(Again::Read(read)) => {
                    match read.read(self.m.phys(), self.m.counters.get(self.id), &*self.m.host) {
                        Ok(p) => {
                            pinned = p;
                            continue;
                        }
                        // The read found no frame: reclaim below.
                        Err(f) if f.reason == FaultReason::OutOfMemory => {}
                        Err(f) => return Err(f),
                    }
                }
                Err(Again::NoMemory(keep)) => pinned = keep,
                Err(Again::Signal(f)) => return Err(f),
            }
            // No frame: direct reclaim, then try again; after
            // `MAX_RECLAIM_RETRIES` rounds in a row that freed nothing, the
            // OOM killer, then try again unless it chose us.
            if self.m.reclaim(self.id, false, crate::mm::reclaim::SWAP_CLUSTER_MAX) > 0 {
                no_progress = 0;
                continue;
            }
            no_progress += 1;
            if no_progress < crate::mm::reclaim::MAX_RECLAIM_RETRIES {
                continue;
            }
            let me = self.proc.as_ref().map_or(0, |p| p.pid);
            match self.m.out_of_memory(me) {
                Some(v) if v != me => no_progress = 0,
                chosen => {
                    PageRead::release(self.m.phys(), pinned.take());
                    return Err(if chosen.is_some() {
                        Fault::killed(addr)
                    } else {
                        Fault::oom(addr)
                    });
                }
            }
        }
    }

    /// One try of `walk_or_fault` (see `Again`).
    fn walk_or_fault_once(&mut self, addr: u64, kind: Access) -> Result<(Pfn, Option<(bool, bool)>), Again> {
        let Some(p) = self.proc.as_ref() else {
            return Err(Fault::segv(addr, FaultReason::BadAddress).into());
        };
        if addr >= TASK_SIZE {
            return Err(Fault::segv(addr, FaultReason::BadAddress).into());
        }
        let mm = &p.mm;
        let phys = self.m.phys();
        // Walk and fill under the map lock held for reading: a munmap (which
        // holds it for writing) then shoots down after any fill made here.
        let st = mm.map.read_on(self.id);
        if st.dead {
            if p.killed.load(Ordering::Acquire) {
                return Err(Fault::killed(addr).into());
            }
            return Err(Fault::segv(addr, FaultReason::BadAddress).into());
        }
        // Only a table shared by fork can be freed while the read lock is
        // held (a fault unsharing it): in an address space that has such
        // tables, mark the walk, then fence, then read the tables, so that
        // the table is freed only after the mark moves on
        // (`phys::WalkTracker`). The flag is set by fork, under the write
        // lock, so it cannot change while this walk holds the read lock.
        let _walk = if mm.shares_tables() {
            let w = WalkMark::begin(self.walk_mark, &mut self.walk_seq);
            crate::sync::fence(Ordering::SeqCst);
            Some(w)
        } else {
            None
        };
        let walked = mm
            .page_table()
            .leaf_walk(phys, addr)
            .and_then(|(leaf, upper_writable)| {
                let pte = leaf.load();
                let ok = pte.present()
                    && (kind != Access::Write || (pte.writable() && upper_writable))
                    && (kind != Access::Exec || pte.0 & Pte::NX == 0)
                    // The key is checked on every data access (PKRU); a
                    // denied one is a fault, never a TLB fill.
                    && (kind == Access::Exec || !pte.pkey_denies_data());
                if !ok {
                    return None;
                }
                let mut bits = Pte::ACCESSED;
                if kind == Access::Write {
                    bits |= Pte::DIRTY;
                }
                let pte = if pte.0 & bits == bits {
                    pte
                } else {
                    // Changed since the load (reclaim took the page): fault.
                    leaf.mmu_set_accessed_dirty(pte, bits)?
                };
                Some((pte, upper_writable))
            });
        let (pte, upper_writable) = match walked {
            Some(w) => w,
            None => {
                let cx = self.m.fault_ctx_on(self.id);
                let mut flush = PendingFlush::default();
                let mut r = handle_fault_locked(&cx, mm, &st, addr, kind, &mut flush);
                if matches!(r, Err(FaultError::ExpandStack)) {
                    // Linux 6.5+ `lock_mm_and_find_vma`: a stack grows with
                    // the mmap lock held for writing. Drop the read lock and
                    // take the write lock (a reader cannot upgrade in place:
                    // two upgraders would wait for each other);
                    // `expand_stack_locked` looks the VMA up again, and the
                    // fault goes on under the write lock, as Linux's goes on
                    // after downgrading it. The write lock is released before
                    // any shootdown, as a syscall's is.
                    drop(st);
                    let mut w = mm.map.write();
                    r = match mm.expand_stack_locked(&mut w, addr, cx.ids) {
                        Ok(()) => handle_fault_locked(&cx, mm, &w, addr, kind, &mut flush),
                        Err(_) => {
                            MmCounters::bump(&cx.counters.failed_faults);
                            Err(Fault::segv(addr, FaultReason::NotMapped).into())
                        }
                    };
                }
                // A COW break or an unshared table: other CPUs drop the old
                // translation before the old frame's reference goes.
                if flush.range.is_some() || !flush.frames.is_empty() || !flush.swap.is_empty() {
                    self.m.shootdown_on(self.id, mm, flush);
                }
                match r {
                    // The fault left the page's table private to this address space.
                    Ok(pte) => (pte, true),
                    Err(FaultError::Signal(f)) => return Err(Again::Signal(f)),
                    Err(FaultError::Retry(read)) => return Err(Again::Read(read)),
                    Err(FaultError::NoMemory { keep, .. }) => return Err(Again::NoMemory(keep)),
                    // Only after a growth that just succeeded under the write
                    // lock, which cannot happen; never loop on it.
                    Err(FaultError::ExpandStack) => {
                        return Err(Again::Signal(Fault::segv(addr, FaultReason::NotMapped)))
                    }
                }
            }
        };
        // Cache writable only once dirty, so the first store through a clean
        // entry comes back here to set the dirty bit.
        let perm = (pte.writable() && pte.dirty() && upper_writable, pte.0 & Pte::NX == 0);
        Ok((pte.pfn(), (!pte.pkey_denies_data()).then_some(perm)))
    }
}

/// The span of one walk of a CPU (`phys::WalkTracker`): its mark is odd
/// from `begin` to the drop, then the next even value.
struct WalkMark<'a> {
    mark: &'a AtomicU64,
    end: u64,
}

impl<'a> WalkMark<'a> {
    #[inline]
    fn begin(mark: &'a AtomicU64, seq: &mut u64) -> WalkMark<'a> {
        mark.store(*seq | 1, Ordering::Relaxed);
        *seq = seq.wrapping_add(2);
        WalkMark { mark, end: *seq }
    }
}

impl Drop for WalkMark<'_> {
    #[inline]
    fn drop(&mut self) {
        self.mark.store(self.end, Ordering::Release);
    }
}

impl Drop for Cpu<'_> {
    fn drop(&mut self) {
        self.publish();
        if let Some(p) = self.proc.take() {
            p.mm.cpu_mask.fetch_and(!(1u64 << self.id), Ordering::AcqRel);
        }
        self.tlb.flush_all();
        self.m.release_cpu(self.id);
    }
}

impl Machine {
    /// Convenience: read `buf.len()` bytes at `addr` in `pid` through CPU 0's
    /// handle if it is free (tests, tools; not the hot path).
    pub fn read(&self, pid: Pid, addr: u64, buf: &mut [u8]) -> SysResult<Result<(), Fault>> {
        let mut cpu = self.any_cpu()?;
        cpu.switch_to(pid)?;
        Ok(cpu.read(addr, buf))
    }

    /// Convenience: write `buf` at `addr` in `pid` (see `read`).
    pub fn write(&self, pid: Pid, addr: u64, buf: &[u8]) -> SysResult<Result<(), Fault>> {
        let mut cpu = self.any_cpu()?;
        cpu.switch_to(pid)?;
        Ok(cpu.write(addr, buf))
    }

    /// The first CPU whose handle is free. EBUSY if all are taken.
    pub fn any_cpu(&self) -> SysResult<Cpu<'_>> {
        (0..self.cpus()).find_map(|i| self.cpu(i).ok()).ok_or(Errno::EBUSY)
    }
}

/// Why a try of `Cpu::walk_or_fault` did not give a translation, with every
/// lock of the try dropped.
enum Again {
    /// The access fails with this signal.
    Signal(Fault),
    /// Read this page, then try again.
    Read(PageRead),
    /// No free frame: reclaim, holding this page over it (see
    /// `FaultError::NoMemory`), then try again.
    NoMemory(Option<Pfn>),
}

impl From<Fault> for Again {
    fn from(f: Fault) -> Again {
        Again::Signal(f)
    }
}
