//! `Machine`: built from a config; holds RAM, TLBs and processes, and is the
//! syscall entry point (by pid). Every syscall that changes translations
//! ends in one batched TLB shootdown before it returns.

use super::config::MachineConfig;
use super::cpu::Cpu;
use super::stats::Stats;
use crate::addr::{PAGE_SIZE, TASK_SIZE};
use crate::errno::{Errno, SysResult};
use crate::mm::fault::FaultCtx;
use crate::mm::{AddressSpace, AddressSpaceParams, ForkPolicy, ForkReport, MmCounters, VmaMap};
use crate::phys::PhysMem;
use crate::sync::{Arc, AtomicBool, AtomicU32, AtomicU64, Ordering, RwLock};
use crate::tlb::{PendingFlush, Tlb};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// A process id.
pub type Pid = u32;

/// A process: for now, an address space with an id. Linux: `task_struct` + `mm_struct`.
pub struct Process {
    pub pid: Pid,
    pub mm: AddressSpace,
}

/// Building a machine failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MachineError {
    /// A config value is out of range; the message names the key.
    Config(String),
    /// RAM too small for the machine's own structures.
    NoMemory,
}

impl fmt::Display for MachineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MachineError::Config(m) => f.write_str(m),
            MachineError::NoMemory => f.write_str("ram: too small to hold the machine's own structures"),
        }
    }
}

/// One line of `/proc/PID/maps` (no file name column for anonymous memory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapsLine {
    pub start: u64,
    pub end: u64,
    /// `rw-p` and the like.
    pub perms: [u8; 4],
}

impl MapsLine {
    pub fn perms_str(&self) -> &str {
        core::str::from_utf8(&self.perms).unwrap_or("????")
    }
}

/// Gap below the top of the user address space that Linux leaves for the
/// stack when placing `mmap_base` (its minimum, 128 MiB, with no randomisation).
const MMAP_BASE_GAP: u64 = 128 << 20;
/// Where the heap starts (no ELF image is loaded, so a fixed address in the
/// range Linux uses for PIE programs without randomisation).
pub const START_BRK: u64 = 0x5555_5600_0000;

/// The simulated machine.
pub struct Machine {
    config: MachineConfig,
    phys: PhysMem,
    pub(crate) counters: MmCounters,
    next_anon_id: AtomicU64,
    next_mm_id: AtomicU64,
    next_pid: AtomicU32,
    /// The process table. Lock order: taken before any address space's map lock.
    procs: RwLock<BTreeMap<Pid, Arc<Process>>>,
    /// One TLB per CPU, reachable from every CPU for shootdowns.
    tlbs: Box<[Tlb]>,
    /// Whether a `Cpu` handle for CPU i exists.
    cpu_taken: Box<[AtomicBool]>,
    /// TLB hits and misses published by CPU handles.
    pub(crate) tlb_hits: AtomicU64,
    pub(crate) tlb_misses: AtomicU64,
}

impl Machine {
    /// Build a machine from `config`.
    pub fn new(config: &MachineConfig) -> Result<Machine, MachineError> {
        config.validate().map_err(MachineError::Config)?;
        let frames = (config.ram.0 / PAGE_SIZE) as usize;
        let phys = PhysMem::new(frames, config.frame_allocator.policy()).ok_or(MachineError::NoMemory)?;
        Ok(Machine {
            config: config.clone(),
            phys,
            counters: MmCounters::default(),
            next_anon_id: AtomicU64::new(1),
            next_mm_id: AtomicU64::new(1),
            next_pid: AtomicU32::new(1),
            procs: RwLock::new(BTreeMap::new()),
            tlbs: (0..config.cpus).map(|_| Tlb::new(config.tlb_entries)).collect(),
            cpu_taken: (0..config.cpus).map(|_| AtomicBool::new(false)).collect(),
            tlb_hits: AtomicU64::new(0),
            tlb_misses: AtomicU64::new(0),
        })
    }

    /// The config the machine was built from.
    pub fn config(&self) -> &MachineConfig {
        &self.config
    }

    /// Physical memory.
    pub fn phys(&self) -> &PhysMem {
        &self.phys
    }

    /// Machine-wide mm counters.
    pub fn counters(&self) -> &MmCounters {
        &self.counters
    }

    pub(crate) fn tlb(&self, cpu: usize) -> &Tlb {
        &self.tlbs[cpu]
    }

    pub(crate) fn fault_ctx(&self) -> FaultCtx<'_> {
        FaultCtx {
            phys: &self.phys,
            counters: &self.counters,
            next_anon_id: &self.next_anon_id,
        }
    }

    /// Number of CPUs.
    pub fn cpus(&self) -> usize {
        self.tlbs.len()
    }

    /// Take the handle of CPU `id`. EINVAL if there is no such CPU, EBUSY if
    /// its handle is already taken (each CPU is driven by one thread).
    pub fn cpu(&self, id: usize) -> SysResult<Cpu<'_>> {
        let taken = self.cpu_taken.get(id).ok_or(Errno::EINVAL)?;
        if taken.swap(true, Ordering::AcqRel) {
            return Err(Errno::EBUSY);
        }
        Ok(Cpu::new(self, id))
    }

    pub(crate) fn release_cpu(&self, id: usize) {
        if let Some(t) = self.cpu_taken.get(id) {
            t.store(false, Ordering::Release);
        }
    }

    /// Create a process with an empty address space. ENOMEM if no frame is
    /// free for its page-table root.
    pub fn spawn(&self) -> SysResult<Pid> {
        let frames = self.phys.total_frames() as u64;
        let params = AddressSpaceParams {
            vma_map: self.config.vma_map.policy(),
            max_map_count: self.config.max_map_count,
            mmap_base: TASK_SIZE - MMAP_BASE_GAP,
            start_brk: START_BRK,
            commit_limit_pages: frames,
        };
        let id = self.next_mm_id.fetch_add(1, Ordering::Relaxed);
        let mm = AddressSpace::new(&self.phys, id, params).map_err(|_| Errno::ENOMEM)?;
        let pid = self.next_pid.fetch_add(1, Ordering::Relaxed);
        self.procs.write().insert(pid, Arc::new(Process { pid, mm }));
        Ok(pid)
    }

    /// The process `pid`. ESRCH if there is none.
    pub fn process(&self, pid: Pid) -> SysResult<Arc<Process>> {
        self.procs.read().get(&pid).cloned().ok_or(Errno::ESRCH)
    }

    /// Live process ids, ascending.
    pub fn pids(&self) -> Vec<Pid> {
        self.procs.read().keys().copied().collect()
    }

    /// End process `pid`, freeing its memory and page tables. A CPU still
    /// bound to it faults on its next access. Linux: `do_exit` → `exit_mmap`.
    pub fn exit(&self, pid: Pid) -> SysResult<()> {
        let p = self.procs.write().remove(&pid).ok_or(Errno::ESRCH)?;
        let mut flush = PendingFlush::default();
        p.mm.teardown(&self.phys, &mut flush);
        self.shootdown(&p.mm, flush);
        Ok(())
    }

    /// `fork()` of process `pid` by the configured policy: a new process whose
    /// address space is a copy of `pid`'s. ESRCH if `pid` does not exist,
    /// ENOMEM (with nothing left behind) if memory runs out.
    pub fn fork(&self, pid: Pid) -> SysResult<Pid> {
        self.fork_with(pid, self.config.fork.policy()).map(|(child, _)| child)
    }

    /// `fork()` by an explicit policy, with a report of what it did.
    pub fn fork_with(&self, pid: Pid, policy: ForkPolicy) -> SysResult<(Pid, ForkReport)> {
        let parent = self.process(pid)?;
        let child_pid = self.spawn()?;
        let child = self.process(child_pid)?;
        let mut flush = PendingFlush::default();
        let r = parent.mm.fork_into(&self.fault_ctx(), &child.mm, policy, &mut flush);
        self.shootdown(&parent.mm, flush);
        match r {
            Ok(report) => Ok((child_pid, report)),
            Err(e) => {
                let _ = self.exit(child_pid);
                Err(e)
            }
        }
    }

    /// Replace `pid`'s address space with an empty one, as `execve` does
    /// before loading a program (no program is loaded here).
    pub fn exec(&self, pid: Pid) -> SysResult<()> {
        self.with_mm(pid, |mm, fl| mm.reset(&self.phys, fl))
    }

    /// Run `f` on `pid`'s address space, then shoot down what it changed.
    fn with_mm<T>(&self, pid: Pid, f: impl FnOnce(&AddressSpace, &mut PendingFlush) -> T) -> SysResult<T> {
        let p = self.process(pid)?;
        let mut flush = PendingFlush::default();
        let r = f(&p.mm, &mut flush);
        self.shootdown(&p.mm, flush);
        Ok(r)
    }

    /// Invalidate `flush.range` on every CPU that may cache `mm`, then drop
    /// the references of the frames it unmapped. Linux: `tlb_finish_mmu`.
    pub(crate) fn shootdown(&self, mm: &AddressSpace, flush: PendingFlush) {
        if let Some((a, b)) = flush.range {
            let mask = mm.cpu_mask.load(Ordering::Acquire);
            let mut reached = 0;
            for (i, tlb) in self.tlbs.iter().enumerate() {
                if mask & (1 << i) != 0 {
                    tlb.invalidate_range(a, b);
                    reached += 1;
                }
            }
            MmCounters::bump(&self.counters.shootdowns);
            self.counters.shootdown_cpus.fetch_add(reached, Ordering::Relaxed);
        }
        for pfn in flush.frames {
            self.phys.put_frame(pfn);
        }
    }

    /// `mmap(addr, len, prot, flags, -1, 0)` in process `pid` (anonymous memory).
    pub fn mmap(&self, pid: Pid, addr: u64, len: u64, prot: u32, flags: u32) -> SysResult<u64> {
        self.with_mm(pid, |mm, fl| mm.mmap(&self.phys, addr, len, prot, flags, fl))?
    }

    /// `munmap(addr, len)` in process `pid`.
    pub fn munmap(&self, pid: Pid, addr: u64, len: u64) -> SysResult<()> {
        self.with_mm(pid, |mm, fl| mm.munmap(&self.phys, addr, len, fl))?
    }

    /// `mprotect(addr, len, prot)` in process `pid`.
    pub fn mprotect(&self, pid: Pid, addr: u64, len: u64, prot: u32) -> SysResult<()> {
        self.with_mm(pid, |mm, fl| mm.mprotect(&self.phys, addr, len, prot, fl))?
    }

    /// `brk(addr)` in process `pid`: the new break, or the old one if the
    /// request failed (Linux's syscall returns no errno).
    pub fn brk(&self, pid: Pid, addr: u64) -> SysResult<u64> {
        self.with_mm(pid, |mm, fl| mm.brk(&self.phys, addr, fl))
    }

    /// The `/proc/PID/maps` lines of `pid`.
    pub fn maps(&self, pid: Pid) -> SysResult<Vec<MapsLine>> {
        let p = self.process(pid)?;
        let st = p.mm.map.read();
        let mut out = Vec::with_capacity(st.vmas.len());
        st.vmas.for_each(&mut |v| {
            out.push(MapsLine {
                start: v.start,
                end: v.end,
                perms: v.perms(),
            })
        });
        Ok(out)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        let procs = self.procs.read();
        let (mut vmas, mut rss) = (0u64, 0u64);
        for p in procs.values() {
            vmas += p.mm.map.read().vmas.len() as u64;
            rss += p.mm.rss.load(Ordering::Relaxed) as u64;
        }
        Stats {
            tlb_hits: self.tlb_hits.load(Ordering::Relaxed),
            tlb_misses: self.tlb_misses.load(Ordering::Relaxed),
            minor_faults: c.minor_faults.load(Ordering::Relaxed),
            failed_faults: c.failed_faults.load(Ordering::Relaxed),
            zero_page_maps: c.zero_page_maps.load(Ordering::Relaxed),
            pages_wasted: c.pages_wasted.load(Ordering::Relaxed),
            shootdowns: c.shootdowns.load(Ordering::Relaxed),
            shootdown_cpus: c.shootdown_cpus.load(Ordering::Relaxed),
            frames_total: self.phys.total_frames() as u64,
            frames_free: self.phys.free_frames_count() as u64,
            frames_used: self.phys.frames_used() as u64,
            page_table_pages: self.phys.page_table_pages() as u64,
            rss_pages: rss,
            vmas,
            processes: procs.len() as u64,
        }
    }

    /// Frames the machine itself keeps for its whole life (the zero page):
    /// after every process exits, `frames_used` equals this.
    pub fn reserved_frames(&self) -> usize {
        1
    }

    /// Walk every structure and verify the invariants (see `check.rs`).
    pub fn check(&self) -> Result<(), super::check::InvariantError> {
        super::check::check(self, &self.procs.read())
    }
}
