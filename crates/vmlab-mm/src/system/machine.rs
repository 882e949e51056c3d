//! `Machine`: built from a config; holds RAM, TLBs and processes, and is the
//! syscall entry point (by pid). Every syscall that changes translations
//! ends in one batched TLB shootdown before it returns.

use super::config::MachineConfig;
use super::cpu::Cpu;
use super::files::OpenFile;
use super::host::Host;
use super::stats::{Residency, Stats};
use crate::addr::{Pfn, PAGE_SIZE, TASK_SIZE};
use crate::errno::{Errno, SysResult};
use crate::mm::fault::FaultCtx;
use crate::mm::oom::{oom_badness, oom_score, OomFootprint, OOM_SCORE_ADJ_MAX, OOM_SCORE_ADJ_MIN};
use crate::mm::reclaim::{ReclaimCx, Reclaimer};
use crate::mm::uapi::MAP_ANONYMOUS;
use crate::mm::{
    AddressSpace, AddressSpaceParams, BackingFile, ForkPolicy, ForkReport, MemObject, MmCounters, MmRegistry,
    MmapRequest, ObjectTable, Rlimit, Rmap, RmapCx, VmaMap,
};
use crate::phys::{PhysError, PhysMem};
use crate::swap::SwapArea;
use crate::sync::{Arc, AtomicBool, AtomicI32, AtomicU32, AtomicU64, Mutex, Ordering, PerCpu, RwLock};
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
    /// Also in `Machine::mms` (the mm registry) until the process exits.
    pub mm: Arc<AddressSpace>,
    /// `/proc/PID/oom_score_adj` (`mm/oom.rs`), inherited by fork. Linux
    /// keeps it in `signal_struct`; a vmlab process is one thread group.
    oom_score_adj: AtomicI32,
    /// The OOM killer chose it: its CPUs' next access gets `Fault::killed`.
    pub(crate) killed: core::sync::atomic::AtomicBool,
}

/// One kill of the OOM killer, with the figures it chose by (Linux prints
/// them in the kernel log: "Out of memory: Killed process ...").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OomKill {
    pub pid: Pid,
    /// Its `oom_badness` when chosen, and what that weighed.
    pub points: i64,
    pub footprint: crate::mm::oom::OomFootprint,
    pub oom_score_adj: i32,
    /// The process whose fault found no memory.
    pub trigger: Pid,
}

/// Building a machine failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MachineError {
    /// A config value is out of range; the message names the key.
    Config(String),
    /// RAM too small for the machine's own structures.
    NoMemory,
    /// The host refused memory for the machine (`PhysError::Host`).
    HostMemory { what: &'static str, bytes: u64 },
    /// The host could not make the swap device (`Host::swap_device`).
    Swap(String),
}

/// Host memory a machine keeps whatever its workload does (its metadata):
/// what `Machine::host_bytes_needed` computes, for a host to compare with
/// the memory it has before building the machine. The simulated RAM is not
/// in it: its pages cost the host only once the workload touches them.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct HostNeed {
    /// Simulated frames.
    pub frames: u64,
    /// Host bytes per frame: descriptor, frame allocator, checker arrays.
    pub bytes_per_frame: u64,
    /// Host bytes of all CPUs' TLBs.
    pub tlb_bytes: u64,
    /// `frames * bytes_per_frame + tlb_bytes`.
    pub total: u64,
}

impl fmt::Display for MachineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MachineError::Config(m) => f.write_str(m),
            MachineError::NoMemory => f.write_str("ram: too small to hold the machine's own structures"),
            MachineError::HostMemory { what, bytes } => {
                write!(f, "ram: the host refused {bytes} bytes of memory for {what}")
            }
            MachineError::Swap(m) => write!(f, "swap_size: {m}"),
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
    pub(super) phys: PhysMem,
    /// Event counters, one set per CPU (and one for syscalls), summed by `stats`.
    pub(crate) counters: PerCpu<MmCounters>,
    /// The reverse map (config `rmap`, `mm/rmap/`).
    pub(crate) rmap: Rmap,
    /// Reclaim (config `reclaim`, `mm/reclaim/`).
    reclaimer: Reclaimer,
    /// What the OOM killer did, in order.
    oom_kills: Mutex<alloc::vec::Vec<OomKill>>,
    /// Pageable pages, and those of them mapped more than once, when reclaim
    /// first ran (`residency_at_first_reclaim`); set once.
    first_reclaim: Mutex<Option<Residency>>,
    /// A `kswapd_thread` runs: allocations wake it instead of doing its
    /// work inline.
    kswapd_running: AtomicBool,
    next_mm_id: AtomicU64,
    next_pid: AtomicU32,
    /// The process table. Lock order: taken before any address space's map lock.
    pub(super) procs: RwLock<BTreeMap<Pid, Arc<Process>>>,
    /// Every live address space by id (`mm::registry`; a leaf lock).
    pub(super) mms: MmRegistry,
    /// One TLB per CPU, reachable from every CPU for shootdowns.
    tlbs: Box<[Tlb]>,
    /// Whether a `Cpu` handle for CPU i exists.
    cpu_taken: Box<[AtomicBool]>,
    /// Per CPU: odd while its thread is inside a load or store (between the
    /// TLB lookup and the RAM access), even otherwise; written only by that
    /// CPU's thread. A shootdown waits for the CPUs it flushed to leave the
    /// access they were in (see `host.rs`).
    pub(crate) cpu_active: PerCpu<AtomicU64>,
    /// OS services for the shootdown handshake.
    pub(super) host: Box<dyn Host>,
    /// Whether `host.remote_barrier` orders other threads' stores (so a TLB
    /// fill needs no fence of its own; see `Tlb::fill_checked`). Starts as
    /// the host says and turns false, for good, at the first barrier that
    /// fails, so fills fence again from then on.
    host_barrier_is_real: AtomicBool,
    /// TLB hits and misses published by CPU handles.
    pub(crate) tlb_hits: AtomicU64,
    pub(crate) tlb_misses: AtomicU64,
    /// Memory objects (files, shared anonymous memory) and their page caches.
    /// Lock order: after any map lock.
    objects: ObjectTable,
    /// The file table: fd → the open file (its object and offset). Lock
    /// order: before `objects`; released before an open file's locks.
    pub(super) files: Mutex<BTreeMap<i32, Arc<OpenFile>>>,
}

/// The first file descriptor `open_file` hands out (0-2 are stdio on Linux).
pub const FIRST_FD: i32 = 3;

impl Machine {
    /// Build a machine from `config`, with no OS services (`SpinHost`):
    /// right for one thread driving CPUs; a host that runs CPUs on several
    /// threads passes its `Host` to `with_host`.
    pub fn new(config: &MachineConfig) -> Result<Machine, MachineError> {
        Machine::with_host(config, Box::new(super::host::SpinHost))
    }

    /// The host memory a machine built from `config` keeps besides the
    /// simulated RAM's touched pages (see `HostNeed`). Computed from the
    /// types' sizes, so it follows them.
    pub fn host_bytes_needed(config: &MachineConfig) -> HostNeed {
        let frames = config.ram.0 / PAGE_SIZE;
        let bytes_per_frame = (PhysMem::host_bytes_per_frame(config.frame_allocator.policy())
            + super::check::HOST_BYTES_PER_FRAME) as u64;
        let tlb_bytes = (config.cpus as u64)
            .saturating_mul(Tlb::rounded_entries(config.tlb_entries) as u64)
            .saturating_mul(Tlb::HOST_BYTES_PER_ENTRY as u64);
        HostNeed {
            frames,
            bytes_per_frame,
            tlb_bytes,
            total: frames.saturating_mul(bytes_per_frame).saturating_add(tlb_bytes),
        }
    }

    /// Build a machine from `config` whose CPUs may run on several host threads.
    pub fn with_host(config: &MachineConfig, host: Box<dyn Host>) -> Result<Machine, MachineError> {
        config.validate().map_err(MachineError::Config)?;
        let frames = (config.ram.0 / PAGE_SIZE) as usize;
        let phys = PhysMem::build(
            host.ram_backing(),
            frames,
            config.frame_allocator.policy(),
            config.cpus,
            config.pcp_batch,
        )
        .map_err(|e| match e {
            PhysError::TooSmall => MachineError::NoMemory,
            PhysError::Host { what, bytes } => MachineError::HostMemory { what, bytes },
        })?
        .with_pte_links(config.rmap.policy().pte_links())
        .with_lru_lists(config.reclaim.policy().lru_lists());
        let phys = match config.watermarks {
            super::config::WatermarksName::Linux => phys,
            super::config::WatermarksName::None => phys.with_watermarks(Default::default()),
        };
        let swap = match config.swap_size.0 {
            0 => None,
            bytes => {
                let dev = host.swap_device(bytes, &config.swap_dir).map_err(MachineError::Swap)?;
                Some(SwapArea::new(0, dev).ok_or_else(|| {
                    MachineError::Swap(alloc::format!(
                        "the host's swap device of {bytes} bytes has no usable slot"
                    ))
                })?)
            }
        };
        let reclaimer = Reclaimer::new(config.reclaim.policy(), &phys);
        Ok(Machine {
            config: config.clone(),
            phys,
            counters: PerCpu::new(config.cpus),
            rmap: Rmap::new(config.rmap.policy()),
            reclaimer,
            oom_kills: Mutex::new(alloc::vec::Vec::new()),
            first_reclaim: Mutex::new(None),
            kswapd_running: AtomicBool::new(false),
            next_mm_id: AtomicU64::new(1),
            next_pid: AtomicU32::new(1),
            procs: RwLock::new(BTreeMap::new()),
            mms: MmRegistry::new(),
            tlbs: (0..config.cpus).map(|_| Tlb::new(config.tlb_entries)).collect(),
            cpu_taken: (0..config.cpus).map(|_| AtomicBool::new(false)).collect(),
            cpu_active: PerCpu::new(config.cpus),
            host_barrier_is_real: AtomicBool::new(host.remote_barrier_is_real()),
            host,
            tlb_hits: AtomicU64::new(0),
            tlb_misses: AtomicU64::new(0),
            objects: ObjectTable::with_swap(swap),
            files: Mutex::new(BTreeMap::new()),
        })
    }

    /// Whether TLB fills may rely on the shootdown's remote barrier instead
    /// of a fence of their own: the host's barrier is real and none has failed.
    #[inline]
    pub fn host_barrier_is_real(&self) -> bool {
        self.host_barrier_is_real.load(Ordering::Acquire)
    }

    /// The host's remote barrier; a failed one turns fills' own fences back on.
    fn remote_barrier(&self) {
        if !self.host.remote_barrier() && self.host_barrier_is_real.load(Ordering::Relaxed) {
            // Fills that read `true` before this store skipped their fence
            // and were not ordered by this barrier: a window that closes
            // here. A membarrier that succeeded at registration does not
            // fail later on Linux; this guards against hosts that do.
            self.host_barrier_is_real.store(false, Ordering::Release);
        }
    }

    /// What the reverse map needs of the machine.
    pub(crate) fn rmap_cx(&self) -> RmapCx<'_> {
        RmapCx {
            phys: &self.phys,
            mms: &self.mms,
            objects: &self.objects,
        }
    }

    /// The reverse map (config `rmap`).
    pub fn rmap(&self) -> &Rmap {
        &self.rmap
    }

    /// Every (address-space id, address) whose PTE maps `frame`, found
    /// through the reverse map, sorted. Takes each address space's map lock
    /// in turn: the caller holds none (no syscall or fault is in progress
    /// on this thread).
    pub fn mappings_of(&self, frame: Pfn) -> Vec<(u64, u64)> {
        self.rmap.mappings_of(&self.rmap_cx(), frame)
    }

    /// Unmap `frame` from every address space (Linux `try_to_unmap`), with
    /// one shootdown reaching every CPU that may cache a translation of it.
    /// Returns the PTEs cleared. A private anonymous page loses its data
    /// when its last mapping goes (there is no swap yet); a page-cache page
    /// stays in its cache. Accesses fault the page back in: demand-zero for
    /// anonymous memory, the cache for objects.
    pub fn unmap_everywhere(&self, frame: Pfn) -> usize {
        let u = self.rmap.unmap_everywhere(&self.rmap_cx(), frame);
        self.shootdown_all(u.flush);
        u.ptes
    }

    /// Release the objects no VMA and no fd refers to any more (writing
    /// their dirty pages back), and their reverse-map lists.
    fn reap_objects(&self) -> Result<(), Errno> {
        self.objects
            .reap_with(&self.phys, |id| self.rmap.identities().forget_object(id))
    }

    /// Write `/proc/PID/oom_score_adj`: EINVAL outside -1000..=1000, and,
    /// processes being unprivileged (no CAP_SYS_RESOURCE), EACCES below 0
    /// (Linux `__set_oom_adj` against an `oom_score_adj_min` of 0); ESRCH
    /// for no such process.
    pub fn set_oom_score_adj(&self, pid: Pid, adj: i32) -> SysResult<()> {
        if !(OOM_SCORE_ADJ_MIN..=OOM_SCORE_ADJ_MAX).contains(&adj) {
            return Err(Errno::EINVAL);
        }
        let p = self.process(pid)?;
        if adj < 0 {
            return Err(Errno::EACCES);
        }
        p.oom_score_adj.store(adj, Ordering::Relaxed);
        Ok(())
    }

    /// `/proc/PID/oom_score_adj`.
    pub fn oom_score_adj(&self, pid: Pid) -> SysResult<i32> {
        Ok(self.process(pid)?.oom_score_adj.load(Ordering::Relaxed))
    }

    /// What the OOM killer weighs for `pid` (Linux `oom_badness`): its rss,
    /// its swap entries (none yet) and the page-table pages it owns.
    pub fn oom_footprint(&self, pid: Pid) -> SysResult<OomFootprint> {
        let p = self.process(pid)?;
        let st = p.mm.map.read();
        let mut tables = 0u64;
        if !st.dead {
            p.mm.page_table().for_each_table(&self.phys, |_, t, _| {
                let own = self
                    .phys
                    .desc(t)
                    .is_some_and(|d| d.owner() == crate::phys::Owner::PageTable { mm: p.mm.id });
                tables += own as u64;
                true
            });
        }
        let per_table = if self.phys.pte_link_kind() == crate::phys::PteLinkKind::Chain {
            2
        } else {
            1
        };
        Ok(OomFootprint {
            rss: p.mm.rss.get() as u64,
            swap_entries: p.mm.swapents.get() as u64,
            page_table_pages: tables * per_table,
        })
    }

    /// RAM + swap in pages: what `oom_score_adj` is a thousandth of.
    pub fn oom_total_pages(&self) -> u64 {
        self.phys.total_frames() as u64 + self.swap().map_or(0, |s| s.total())
    }

    /// `/proc/PID/oom_score` (Linux `proc_oom_score`).
    pub fn oom_score(&self, pid: Pid) -> SysResult<u64> {
        let total = self.oom_total_pages();
        let badness = oom_badness(self.oom_footprint(pid)?, self.oom_score_adj(pid)?, total);
        Ok(oom_score(badness, total))
    }

    /// The swap area, if the machine has swap (config `swap_size`).
    pub fn swap(&self) -> Option<&SwapArea> {
        self.objects.swap().and_then(|s| s.swap_area())
    }

    /// Pages in the swap cache.
    pub fn swap_cache_pages(&self) -> usize {
        self.objects.swap().map_or(0, |s| s.cached_pages())
    }

    /// The reclaim design in force.
    pub fn reclaim_policy(&self) -> crate::mm::ReclaimPolicy {
        self.reclaimer.policy()
    }

    /// `reclaim = mglru`'s live generations, oldest and youngest
    /// (`min_seq`, `max_seq`); `None` under another design.
    pub fn lru_generations(&self) -> Option<(u64, u64)> {
        self.reclaimer.generations().map(|g| (g.min_seq, g.max_seq))
    }

    /// `reclaim = clock_pro`'s cold target and remembered non-resident
    /// pages; `None` under another design.
    pub fn clock_pro_state(&self) -> Option<crate::mm::ClockProState> {
        self.reclaimer.clock_pro()
    }

    /// Run reclaim for `want` frames, as kswapd (`kswapd`) or as direct
    /// reclaim; returns the frames freed. Time spent counts in `reclaim_ns`
    /// when the host has a clock.
    ///
    /// Preconditions: the caller holds no map lock, page-table lock or
    /// claimed PTE (a fault dropped them all first).
    pub fn reclaim(&self, cpu: usize, kswapd: bool, want: usize) -> usize {
        self.with_reclaim_cx(cpu, kswapd, |cx| self.reclaimer.shrink(cx, want))
    }

    /// Run `f` with what reclaim needs on CPU `cpu`; its time counts in
    /// `reclaim_ns` when the host has a clock.
    /// Let `oracle` name the pages reclaim evicts, one per round, instead
    /// of the `reclaim` design (`None`: the design again): the exact LRU
    /// and OPT bounds of a trace replay, which see every reference.
    pub fn set_victim_oracle(&self, oracle: Option<alloc::boxed::Box<dyn crate::mm::reclaim::VictimOracle>>) {
        self.reclaimer.set_oracle(oracle);
    }

    fn with_reclaim_cx<T>(&self, cpu: usize, kswapd: bool, f: impl FnOnce(&ReclaimCx<'_>) -> T) -> T {
        let counters = self.counters.get(cpu);
        let shootdown = |f: PendingFlush| self.shootdown_all(f);
        let cx = ReclaimCx {
            rmap: &self.rmap,
            rcx: self.rmap_cx(),
            swap: self.objects.swap(),
            counters,
            shootdown: &shootdown,
            kswapd,
        };
        {
            let mut first = self.first_reclaim.lock();
            if first.is_none() {
                *first = Some(self.residency());
            }
        }
        let t0 = self.host.now_ns();
        let n = f(&cx);
        if let (Some(a), Some(b)) = (t0, self.host.now_ns()) {
            counters.reclaim_ns.fetch_add(b.saturating_sub(a), Ordering::Relaxed);
        }
        n
    }

    /// Pageable pages in memory now (anonymous and page-cache frames), and
    /// those of them more than one PTE maps.
    pub fn residency(&self) -> Residency {
        use crate::phys::FrameUse;
        let mut r = Residency::default();
        for d in self.phys.descs() {
            if matches!(d.usage(), FrameUse::Anon | FrameUse::PageCache) {
                r.resident += 1;
                if d.mapcount() > 1 {
                    r.shared += 1;
                }
            }
        }
        r
    }

    /// `residency()` as it was when reclaim first ran on this machine
    /// (`None` before): the baseline against which `Stats::evicted_shared`
    /// says whether reclaim favours or disfavours shared pages.
    pub fn residency_at_first_reclaim(&self) -> Option<Residency> {
        *self.first_reclaim.lock()
    }

    /// The OOM killer (Linux `out_of_memory` → `select_bad_process`,
    /// `oom_kill_process`): when reclaim made no progress for
    /// `MAX_RECLAIM_RETRIES` rounds, kill the process of highest
    /// `oom_badness` (rss + swap entries + page tables, biased by
    /// `oom_score_adj`; -1000 exempt; the first of equal scores), freeing
    /// its memory at once. `trigger` is the process that found no memory.
    /// Returns the victim, `None` if every process is exempt.
    pub fn out_of_memory(&self, trigger: Pid) -> Option<Pid> {
        let total = self.oom_total_pages();
        let mut best: Option<(i64, Pid, crate::mm::oom::OomFootprint, i32)> = None;
        for pid in self.pids() {
            let Ok(p) = self.process(pid) else { continue };
            if p.killed.load(Ordering::Acquire) {
                continue;
            }
            let (Ok(f), adj) = (self.oom_footprint(pid), p.oom_score_adj.load(Ordering::Relaxed)) else {
                continue;
            };
            let Some(points) = crate::mm::oom::oom_badness(f, adj, total) else {
                continue;
            };
            if best.is_none_or(|b| points > b.0) {
                best = Some((points, pid, f, adj));
            }
        }
        let (points, pid, footprint, adj) = best?;
        if let Ok(p) = self.process(pid) {
            p.killed.store(true, Ordering::Release);
        }
        let _ = self.exit(pid);
        MmCounters::bump(&self.counters.get(crate::mm::fault::NO_CPU).oom_kill);
        self.oom_kills.lock().push(OomKill {
            pid,
            points,
            footprint,
            oom_score_adj: adj,
            trigger,
        });
        Some(pid)
    }

    /// Every kill of the OOM killer so far, in order.
    pub fn oom_kills(&self) -> alloc::vec::Vec<OomKill> {
        self.oom_kills.lock().clone()
    }

    /// An allocation left fewer than the low watermark's frames free: wake
    /// the kswapd thread if one runs (`kswapd_thread`), else do its work
    /// inline on CPU `cpu` (a machine whose CPUs are not threads stays
    /// deterministic). Linux: `wakeup_kswapd`.
    pub fn wake_kswapd(&self, cpu: usize) {
        if self.kswapd_running.load(Ordering::Acquire) {
            self.host.unpark_kswapd();
        } else {
            self.kswapd(cpu);
        }
    }

    /// The kswapd thread's body (Linux `kswapd`): sleep until woken
    /// (`wake_kswapd`), reclaim to the high watermark (`kswapd`), again,
    /// until `stop` is set and the thread woken (`stop_kswapd_thread`).
    /// While it runs, allocations wake it instead of doing its work inline.
    /// Needs a host that blocks in `park_kswapd` (`vmlab::host::OsHost`);
    /// on `SpinHost` it busy-waits. One such thread per machine: a second
    /// returns at once.
    pub fn kswapd_thread(&self, stop: &AtomicBool) {
        if self.kswapd_running.swap(true, Ordering::AcqRel) {
            return;
        }
        while !stop.load(Ordering::Acquire) {
            self.host.park_kswapd();
            if stop.load(Ordering::Acquire) {
                break;
            }
            if self.phys.free_frames_fast() < self.phys.watermarks().high as usize {
                MmCounters::bump(&self.counters.get(crate::mm::fault::NO_CPU).pageoutrun);
                self.kswapd(crate::mm::fault::NO_CPU);
            }
        }
        self.kswapd_running.store(false, Ordering::Release);
    }

    /// Make a `kswapd_thread` watching `stop` (already set) return.
    pub fn stop_kswapd_thread(&self) {
        self.host.unpark_kswapd();
    }

    /// kswapd's work: reclaim until the high watermark's frames are free,
    /// or no progress. Run where an allocation left fewer than the low
    /// watermark free or failed (`PhysMem::take_kswapd_wanted`): inline on
    /// the CPU that noticed (a machine on `SpinHost` stays deterministic).
    /// With `watermarks = none` (high 0) it has nothing to do: reclaim
    /// runs only on the allocation that fails, as CONFIG.md says (a trace
    /// replay's exact sizing depends on it). Linux: `balance_pgdat`.
    pub fn kswapd(&self, cpu: usize) -> usize {
        let high = self.phys.watermarks().high as usize;
        let mut freed = 0;
        while self.phys.free_frames_fast() < high {
            let n = self.reclaim(cpu, true, crate::mm::reclaim::SWAP_CLUSTER_MAX);
            if n == 0 {
                break;
            }
            freed += n;
        }
        freed
    }

    /// Bytes the reverse map uses now (`Rmap::rmap_bytes`).
    pub fn rmap_bytes(&self) -> u64 {
        self.rmap.rmap_bytes(&self.phys)
    }

    /// The config the machine was built from.
    pub fn config(&self) -> &MachineConfig {
        &self.config
    }

    /// Physical memory.
    pub fn phys(&self) -> &PhysMem {
        &self.phys
    }

    pub(crate) fn tlb(&self, cpu: usize) -> &Tlb {
        &self.tlbs[cpu]
    }

    /// What a fault on CPU `cpu` (or `NO_CPU`) needs from the machine.
    pub(crate) fn fault_ctx_on(&self, cpu: usize) -> FaultCtx<'_> {
        FaultCtx {
            phys: &self.phys,
            counters: self.counters.get(cpu),
            ids: self.rmap.identities(),
            share_object_tables: self.config.fork == super::config::ForkName::SharedPt,
            fault_lock: self.config.fault_lock.policy(),
            swap: self.objects.swap(),
            cpu,
            relax: &*self.host,
            reclaim: self,
        }
    }

    pub(crate) fn fault_ctx(&self) -> FaultCtx<'_> {
        self.fault_ctx_on(crate::mm::fault::NO_CPU)
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
            // Linux's overcommit heuristic (`__vm_enough_memory`, guess
            // mode) allows RAM + swap.
            commit_limit_pages: frames + self.swap().map_or(0, |s| s.total()),
            stack_rlimit: crate::mm::stack::DEFAULT_STACK_RLIMIT,
            memlock_rlimit: crate::mm::mlock::DEFAULT_MEMLOCK_RLIMIT,
            cpus: self.cpus(),
            pkeys: self.config.pkeys,
            swap: self.objects.swap().cloned(),
        };
        let id = self.next_mm_id.fetch_add(1, Ordering::Relaxed);
        let mm = AddressSpace::new(&self.phys, id, params).map_err(|_| Errno::ENOMEM)?;
        let pid = self.next_pid.fetch_add(1, Ordering::Relaxed);
        let mm = Arc::new(mm);
        self.mms.register(&mm);
        self.procs.write().insert(
            pid,
            Arc::new(Process {
                pid,
                mm,
                oom_score_adj: AtomicI32::new(0),
                killed: core::sync::atomic::AtomicBool::new(false),
            }),
        );
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
        self.mms.unregister(p.mm.id);
        self.rmap.forget_mm(p.mm.id);
        drop(p);
        // Objects this process mapped last (and no fd names) go now; exit
        // has no caller to report a write-back error to.
        let _ = self.reap_objects();
        Ok(())
    }

    /// `fork()` of process `pid` by the configured policy: a new process whose
    /// address space is a copy of `pid`'s. ESRCH if `pid` does not exist,
    /// ENOMEM (with nothing left behind) if memory runs out.
    pub fn fork(&self, pid: Pid) -> SysResult<Pid> {
        self.fork_with(pid, self.config.fork.policy()).map(|(child, _)| child)
    }

    /// `fork()` by an explicit policy, with a report of what it did.
    /// EINVAL for a policy other than `Eager` under `rmap = private_vma`,
    /// which cannot find a private page mapped by two processes (the
    /// config refuses the same combination).
    pub fn fork_with(&self, pid: Pid, policy: ForkPolicy) -> SysResult<(Pid, ForkReport)> {
        if self.rmap.policy() == crate::mm::RmapPolicy::PrivateVma && policy != ForkPolicy::Eager {
            return Err(Errno::EINVAL);
        }
        // Out of frames (page tables, eager copies): reclaim and try again,
        // until `MAX_RECLAIM_RETRIES` rounds in a row free nothing.
        let mut no_progress = 0;
        loop {
            match self.fork_once(pid, policy) {
                Err(Errno::ENOMEM) if no_progress < crate::mm::reclaim::MAX_RECLAIM_RETRIES => {
                    let want = self
                        .process(pid)?
                        .mm
                        .rss
                        .get()
                        .max(crate::mm::reclaim::SWAP_CLUSTER_MAX);
                    if self.reclaim(crate::mm::fault::NO_CPU, false, want) == 0 {
                        no_progress += 1;
                    } else {
                        no_progress = 0;
                    }
                }
                r => return r,
            }
        }
    }

    fn fork_once(&self, pid: Pid, policy: ForkPolicy) -> SysResult<(Pid, ForkReport)> {
        let parent = self.process(pid)?;
        let child_pid = self.spawn()?;
        let child = self.process(child_pid)?;
        // Linux `copy_signal` copies oom_score_adj.
        child
            .oom_score_adj
            .store(parent.oom_score_adj.load(Ordering::Relaxed), Ordering::Relaxed);
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
        self.with_mm(pid, |mm, fl| {
            mm.reset(&self.phys, fl);
            // Nothing of the old image is mapped any more.
            self.rmap.forget_mm(mm.id);
        })?;
        let _ = self.reap_objects();
        Ok(())
    }

    /// Run `f` on `pid`'s address space, then shoot down what it changed.
    fn with_mm<T>(&self, pid: Pid, f: impl FnOnce(&AddressSpace, &mut PendingFlush) -> T) -> SysResult<T> {
        let p = self.process(pid)?;
        let mut flush = PendingFlush::default();
        let r = f(&p.mm, &mut flush);
        self.shootdown(&p.mm, flush);
        let gone = p.mm.take_retired();
        if !gone.is_empty() {
            self.rmap.identities().settle(p.mm.id, &p.mm.map.read(), &gone);
        }
        Ok(r)
    }

    /// Invalidate `flush.range` on every CPU that may cache `mm`, then drop
    /// the references of the frames it unmapped. Linux: `tlb_finish_mmu`.
    pub(crate) fn shootdown(&self, mm: &AddressSpace, flush: PendingFlush) {
        self.shootdown_on(crate::mm::fault::NO_CPU, mm, flush)
    }

    /// `shootdown` started by CPU `cpu` (a fault's COW break): the frames
    /// go back through that CPU's free list.
    pub(crate) fn shootdown_on(&self, cpu: usize, mm: &AddressSpace, flush: PendingFlush) {
        let own = flush.range.map(|r| (mm.cpu_mask.load(Ordering::Acquire), r));
        self.shootdown_jobs(cpu, own, flush)
    }

    /// One shootdown of every address space's range in `flush.remote`
    /// (`flush.range` unused), then the frames' references dropped: what a
    /// reverse-map operation changed in many address spaces at once.
    pub(crate) fn shootdown_all(&self, flush: PendingFlush) {
        debug_assert!(flush.range.is_none());
        self.shootdown_jobs(crate::mm::fault::NO_CPU, None, flush)
    }

    fn shootdown_jobs(&self, cpu: usize, own: Option<(u64, (u64, u64))>, flush: PendingFlush) {
        // Each job: the CPUs that may cache translations of one address
        // space, and its page range: `mm`'s own, and for a change to a page
        // table shared with other address spaces, theirs (`remote`, almost
        // always empty: then nothing is allocated on this path).
        let remote: alloc::vec::Vec<(u64, (u64, u64))> = flush
            .remote
            .iter()
            .filter_map(|&(id, a, b)| self.mms.get(id).map(|o| (o.cpu_mask.load(Ordering::Acquire), (a, b))))
            .collect();
        if own.is_some() || !remote.is_empty() {
            let jobs = || own.iter().chain(remote.iter());
            let mask = jobs().fold(0, |m, j| m | j.0);
            // The CPU that starts a shootdown is in its slow path: it is not
            // filling its TLB or inside an access, so it needs no barrier.
            let others = mask & !1u64.checked_shl(cpu as u32).unwrap_or(0);
            let targets = |mask: u64| self.tlbs.iter().enumerate().filter(move |(i, _)| mask & (1 << i) != 0);
            for (_, tlb) in targets(mask) {
                tlb.begin_invalidation();
            }
            if others != 0 {
                // A fill that missed the bump is visible before the clear (see `Tlb::fill_checked`).
                self.remote_barrier();
            }
            let mut reached = 0;
            for &(m, (a, b)) in jobs() {
                for (_, tlb) in targets(m) {
                    tlb.clear_range(a, b);
                    reached += 1;
                }
            }
            if others != 0 {
                self.wait_for_accesses(others);
            }
            let c = self.counters.get(cpu);
            MmCounters::bump(&c.shootdowns);
            c.shootdown_cpus.fetch_add(reached, Ordering::Relaxed);
        }
        for pfn in flush.frames {
            // A dirty file page goes to its file before the mapping's
            // reference goes (the TLBs no longer let a store reach it).
            self.objects.writeback_unmapped(&self.phys, pfn);
            if let Some(swap) = self.objects.swap() {
                crate::mm::swap_cache::release_unmapped(swap, &self.phys, pfn);
            }
            self.phys.put_frame_on(cpu, pfn);
        }
        if let Some(swap) = self.objects.swap() {
            for e in flush.swap {
                crate::mm::swap_cache::free_entry(swap, &self.phys, crate::pgtable::Pte(e).swap_entry());
            }
        }
        // Page tables whose walkers have left since they were unlinked.
        self.phys.reap_tables();
    }

    /// Wait until every CPU in `mask` has left the load or store it was in
    /// when its TLB was flushed: one that looked up a translation before the
    /// flush may not reach RAM through it after the shootdown returns (the
    /// IPI's acknowledgement). A CPU in its slow path is not in an access.
    fn wait_for_accesses(&self, mask: u64) {
        self.remote_barrier();
        for i in 0..self.cpus() {
            if mask & (1 << i) == 0 {
                continue;
            }
            let word = self.cpu_active.get(i);
            let seen = word.load(Ordering::Acquire);
            if seen & 1 == 1 {
                while word.load(Ordering::Acquire) == seen {
                    self.host.relax();
                }
            }
        }
    }

    /// `mmap(addr, len, prot, flags, -1, 0)` in process `pid`: anonymous
    /// memory, private or (MAP_SHARED) shared with the process's future children.
    pub fn mmap(&self, pid: Pid, addr: u64, len: u64, prot: u32, flags: u32) -> SysResult<u64> {
        self.mmap_fd(pid, addr, len, prot, flags, -1, 0)
    }

    /// `mmap(addr, len, prot, flags, fd, offset)` in process `pid`, with
    /// Linux's checks and errno: EINVAL for an offset not page aligned,
    /// EBADF for an fd not open (unless MAP_ANONYMOUS, which ignores the fd
    /// and the offset), EINVAL for MAP_HUGETLB on a file, then `do_mmap`'s
    /// (EOVERFLOW when the offset plus the length passes the largest file
    /// size, EACCES for a writable MAP_SHARED of a file opened read-only, ...).
    #[allow(clippy::too_many_arguments)]
    pub fn mmap_fd(
        &self,
        pid: Pid,
        addr: u64,
        len: u64,
        prot: u32,
        flags: u32,
        fd: i32,
        offset: u64,
    ) -> SysResult<u64> {
        if offset & (PAGE_SIZE - 1) != 0 {
            return Err(Errno::EINVAL);
        }
        let file = if flags & MAP_ANONYMOUS == 0 {
            let f = self.file_object(fd)?;
            if flags & crate::mm::uapi::MAP_HUGETLB != 0 {
                return Err(Errno::EINVAL);
            }
            Some(f)
        } else {
            None
        };
        let req = MmapRequest {
            addr,
            len,
            prot,
            flags,
            file: file.as_ref(),
            pgoff: offset >> crate::addr::PAGE_SHIFT,
        };
        let cx = self.fault_ctx();
        let r = self.with_mm(pid, |mm, fl| mm.mmap_and_populate(&cx, &self.objects, req, fl))?;
        // MAP_FIXED may have replaced the last mapping of an object.
        drop(file);
        let _ = self.reap_objects();
        r
    }

    /// `munmap(addr, len)` in process `pid`. Dirty file pages it unmaps
    /// are written back; an object left unmapped and not open is released.
    pub fn munmap(&self, pid: Pid, addr: u64, len: u64) -> SysResult<()> {
        let r = self.with_mm(pid, |mm, fl| mm.munmap(&self.phys, addr, len, fl))?;
        let _ = self.reap_objects();
        r
    }

    /// `msync(addr, len, flags)` in process `pid`: with MS_SYNC or MS_ASYNC,
    /// write back the pages of shared file mappings in the range that
    /// stores changed (see `mm/msync.rs`). Linux's errno: EINVAL for an
    /// unaligned `addr`, unknown flags, or MS_SYNC with MS_ASYNC; ENOMEM if
    /// part of the range is unmapped (the rest is still written back);
    /// EBUSY for MS_INVALIDATE over locked memory; a write error of the file.
    pub fn msync(&self, pid: Pid, addr: u64, len: u64, flags: u32) -> SysResult<()> {
        let (work, result) = self.with_mm(pid, |mm, fl| mm.msync(&self.phys, addr, len, flags, fl))??;
        // The cleaned PTEs are flushed: a store from now on dirties them again.
        for w in &work {
            // Pages mapped elsewhere too: clean every mapping through the
            // reverse map, one shootdown for all (before, such a page was
            // written back whether or not any mapping had dirtied it).
            let mut fl = PendingFlush::default();
            for pfn in w.mapped_elsewhere(&self.phys) {
                fl.merge(self.rmap.clean_everywhere(&self.rmap_cx(), pfn));
            }
            if !fl.remote.is_empty() {
                self.shootdown_all(fl);
            }
            w.run(&self.phys)?;
        }
        result
    }

    /// `mincore(addr, len, vec)` in process `pid`: one byte per page of the
    /// range (`len` rounded up), bit 0 set if the page is resident (see
    /// `mm/mincore.rs`). Linux's errno: EINVAL for an unaligned `addr`,
    /// ENOMEM if `addr + len` wraps or passes TASK_SIZE, or if the range
    /// runs into a hole (Linux has then filled the vector up to the hole;
    /// here only the errno is returned). ESRCH if there is no such process.
    pub fn mincore(&self, pid: Pid, addr: u64, len: u64) -> SysResult<Vec<u8>> {
        let p = self.process(pid)?;
        p.mm.mincore(&self.phys, self.objects.swap().map(|s| &**s), addr, len)
    }

    /// `mremap(old_addr, old_len, new_len, flags, new_addr)` in process
    /// `pid`: the mapping's address afterwards. Shrinks, grows in place or
    /// by moving (MREMAP_MAYMOVE), moves to `new_addr` (MREMAP_FIXED), or
    /// moves leaving the old range mapped and empty (MREMAP_DONTUNMAP); the
    /// page-table entries move, never the data (see `mm/mremap.rs`). The old
    /// range is shot down before this returns. Linux's errno (EINVAL,
    /// EFAULT, ENOMEM); ESRCH if there is no such process.
    pub fn mremap(
        &self,
        pid: Pid,
        old_addr: u64,
        old_len: u64,
        new_len: u64,
        flags: u32,
        new_addr: u64,
    ) -> SysResult<u64> {
        let cx = self.fault_ctx();
        let r = self.with_mm(pid, |mm, fl| {
            let r = mm.mremap(&self.phys, old_addr, old_len, new_len, flags, new_addr, fl);
            if let Ok(at) = r {
                mm.populate_locked_growth(&cx, at, old_len, new_len, fl);
            }
            r
        })?;
        // Shrinking, or MREMAP_FIXED over a mapping, may have unmapped the
        // last mapping of an object.
        let _ = self.reap_objects();
        r
    }

    /// `madvise(addr, len, advice)` in process `pid`, with Linux's errno for
    /// every advice value (see `mm/madvise.rs` for what each does in vmlab).
    /// ESRCH if there is no such process.
    /// What needs the map lock released is done after it is, and after
    /// the walk's shootdown: MADV_FREE's, MADV_COLD's and MADV_PAGEOUT's
    /// pages go to the reclaim design (`Reclaimer::lazyfree`, `deactivate`,
    /// `pageout`: reclaim takes map locks itself), MADV_WILLNEED's reads
    /// (swap slots into the swap cache, file pages into the page cache)
    /// are done, and MADV_REMOVE punches its holes (Linux's
    /// `madvise_remove` drops the lock for `vfs_fallocate`), in order; the
    /// first error of a punch is returned, else the walk's.
    pub fn madvise(&self, pid: Pid, addr: u64, len: u64, advice: u32) -> SysResult<()> {
        let cx = self.fault_ctx();
        let mut work = crate::mm::AdviceWork::default();
        let r = self.with_mm(pid, |mm, fl| mm.madvise(&cx, addr, len, advice, fl, &mut work))?;
        self.advice_work(&mut work);
        for rm in work.removes {
            self.punch_hole(&rm.obj, rm.off, rm.len)?;
        }
        r
    }

    /// The pages and reads an advice queued (see `madvise`), with no map
    /// lock held; every listed page's reference is dropped after (the
    /// pageout's by `Reclaimer::pageout`).
    fn advice_work(&self, work: &mut crate::mm::AdviceWork) {
        let no_cpu = crate::mm::fault::NO_CPU;
        if !(work.lazyfree.is_empty() && work.deactivate.is_empty() && work.pageout.is_empty()) {
            self.with_reclaim_cx(no_cpu, false, |rcx| {
                self.reclaimer.lazyfree(rcx, &work.lazyfree);
                self.reclaimer.deactivate(rcx, &work.deactivate);
                self.reclaimer.pageout(rcx, &work.pageout);
            });
            work.pageout.clear();
            for pfn in work.lazyfree.drain(..).chain(work.deactivate.drain(..)) {
                let _ = self.phys.put_frame(pfn);
            }
        }
        let counters = self.counters.get(no_cpu);
        if let Some(swap) = self.objects.swap() {
            for e in work.swapin.drain(..) {
                match crate::mm::swap_cache::read_in(swap, &self.phys, counters, e, false) {
                    Ok(p) => crate::mm::fault::PageRead::release(&self.phys, p),
                    // No memory or a read error: read-ahead is a hint.
                    Err(_) => break,
                }
            }
        }
        for (obj, first, end) in work.readahead.drain(..) {
            for pg in first..end.min(obj.size_pages()) {
                if obj.is_cached(pg) {
                    continue;
                }
                match obj.get_page(&self.phys, counters, pg) {
                    Ok(pfn) => {
                        self.phys.put_frame(pfn);
                    }
                    Err(_) => break,
                }
            }
        }
    }

    /// Add an opened host file to the file table (Linux: the `open` that
    /// made the fd). The file's access mode (O_RDONLY, O_WRONLY, O_RDWR) is
    /// the one it was opened with (`BackingFile::readable`/`writable`;
    /// `vmlab::host::open_mode` opens a host file with a mode). Returns the
    /// lowest free descriptor from 3 on, with file offset 0. The file gets a
    /// memory object of its own (two opens of one host file are two
    /// objects with two caches: the mm core cannot tell they are the same).
    pub fn open_file(&self, file: Box<dyn BackingFile>) -> i32 {
        let obj = Arc::new(OpenFile::new(self.objects.create_file(file)));
        let mut files = self.files.lock();
        let mut fd = FIRST_FD;
        while files.contains_key(&fd) {
            fd += 1;
        }
        files.insert(fd, obj);
        fd
    }

    /// `close(fd)`: drop the file table's reference to the file. Its pages
    /// stay cached while a VMA maps it; once none does, the dirty pages are
    /// written back and the cache freed (a write-back error is returned).
    /// EBADF if `fd` is not open.
    pub fn close(&self, fd: i32) -> SysResult<()> {
        let obj = self.files.lock().remove(&fd).ok_or(Errno::EBADF)?;
        drop(obj);
        self.reap_objects()
    }

    /// Open file descriptors, ascending.
    pub fn fds(&self) -> Vec<i32> {
        self.files.lock().keys().copied().collect()
    }

    /// The memory object of open file `fd`. EBADF if it is not open.
    pub fn file_object(&self, fd: i32) -> SysResult<Arc<MemObject>> {
        self.files.lock().get(&fd).map(|f| f.obj.clone()).ok_or(Errno::EBADF)
    }

    /// The live memory objects.
    pub fn objects(&self) -> &ObjectTable {
        &self.objects
    }

    /// Pages held by the page caches of all live objects.
    pub fn page_cache_pages(&self) -> usize {
        self.objects.cached_pages()
    }

    /// `mprotect(addr, len, prot)` in process `pid`.
    pub fn mprotect(&self, pid: Pid, addr: u64, len: u64, prot: u32) -> SysResult<()> {
        let cx = self.fault_ctx();
        self.with_mm(pid, |mm, fl| mm.mprotect(&cx, addr, len, prot, fl))?
    }

    /// `brk(addr)` in process `pid`: the new break, or the old one if the
    /// request failed (Linux's syscall returns no errno). After
    /// `mlockall(MCL_FUTURE)` the new heap is locked and populated.
    pub fn brk(&self, pid: Pid, addr: u64) -> SysResult<u64> {
        let cx = self.fault_ctx();
        self.with_mm(pid, |mm, fl| mm.brk(&cx, addr, fl))
    }

    /// Place process `pid`'s heap at `addr` (`mm->start_brk` and `brk`),
    /// as the ELF loader does: for replaying a recorded program at its
    /// recorded break. EINVAL past TASK_SIZE, or once the heap has grown
    /// (the break is off its start); ESRCH if there is no such process.
    pub fn set_brk_base(&self, pid: Pid, addr: u64) -> SysResult<()> {
        let p = self.process(pid)?;
        let mut st = p.mm.map.write();
        if addr > TASK_SIZE || st.brk != st.start_brk {
            return Err(Errno::EINVAL);
        }
        st.start_brk = addr;
        st.brk = addr;
        Ok(())
    }

    /// `mlock(addr, len)` in process `pid` (see `mm/mlock.rs`): lock the
    /// range's VMAs and fault every page in. Linux's errno: ENOMEM for an
    /// unmapped page or more than RLIMIT_MEMLOCK, EPERM if the limit is 0,
    /// EINVAL if the range wraps, EAGAIN if memory runs out while populating.
    pub fn mlock(&self, pid: Pid, addr: u64, len: u64) -> SysResult<()> {
        self.mlock2(pid, addr, len, 0)
    }

    /// `mlock2(addr, len, flags)` in process `pid`: `mlock`, or with
    /// MLOCK_ONFAULT lock pages only as they are faulted in (no populating).
    /// EINVAL for any other flag.
    pub fn mlock2(&self, pid: Pid, addr: u64, len: u64, flags: u32) -> SysResult<()> {
        let cx = self.fault_ctx();
        self.with_mm(pid, |mm, fl| mm.mlock2(&cx, addr, len, flags, fl))?
    }

    /// `munlock(addr, len)` in process `pid`.
    pub fn munlock(&self, pid: Pid, addr: u64, len: u64) -> SysResult<()> {
        self.with_mm(pid, |mm, _| mm.munlock(addr, len))?
    }

    /// `mlockall(flags)` in process `pid` (MCL_CURRENT, MCL_FUTURE,
    /// MCL_ONFAULT).
    pub fn mlockall(&self, pid: Pid, flags: u32) -> SysResult<()> {
        let cx = self.fault_ctx();
        self.with_mm(pid, |mm, fl| mm.mlockall(&cx, flags, fl))?
    }

    /// `munlockall()` in process `pid`: unlock everything, MCL_FUTURE too.
    pub fn munlockall(&self, pid: Pid) -> SysResult<()> {
        self.with_mm(pid, |mm, _| mm.munlockall())?
    }

    /// Pages `pid` has locked (`VmLck` of /proc/PID/status, in pages).
    pub fn locked_pages(&self, pid: Pid) -> SysResult<u64> {
        Ok(self.process(pid)?.mm.locked_pages())
    }

    /// `getrlimit(RLIMIT_MEMLOCK)` of process `pid`.
    pub fn memlock_rlimit(&self, pid: Pid) -> SysResult<Rlimit> {
        Ok(self.process(pid)?.mm.map.read().memlock_rlimit)
    }

    /// `setrlimit(RLIMIT_MEMLOCK, new)` in process `pid`: how much it may
    /// lock from now on (what is locked stays). EINVAL if `new.cur >
    /// new.max`, EPERM for a higher hard limit. Inherited by fork.
    pub fn set_memlock_rlimit(&self, pid: Pid, new: Rlimit) -> SysResult<()> {
        let p = self.process(pid)?;
        let mut st = p.mm.map.write();
        crate::mm::stack::check_new_rlimit(st.memlock_rlimit, new)?;
        st.memlock_rlimit = new;
        Ok(())
    }

    /// `getrlimit(RLIMIT_STACK)` of process `pid`.
    pub fn stack_rlimit(&self, pid: Pid) -> SysResult<Rlimit> {
        Ok(self.process(pid)?.mm.map.read().stack_rlimit)
    }

    /// `setrlimit(RLIMIT_STACK, new)` in process `pid`: how far its
    /// `VM_GROWSDOWN` VMAs may grow from now on (a stack already larger
    /// stays). EINVAL if `new.cur > new.max`, EPERM for a higher hard
    /// limit (a vmlab process is unprivileged). Linux: `do_prlimit`.
    pub fn set_stack_rlimit(&self, pid: Pid, new: Rlimit) -> SysResult<()> {
        let p = self.process(pid)?;
        let mut st = p.mm.map.write();
        crate::mm::stack::check_new_rlimit(st.stack_rlimit, new)?;
        st.stack_rlimit = new;
        Ok(())
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
        let sum = |f: fn(&MmCounters) -> &AtomicU64| self.counters.iter().map(|c| f(c).load(Ordering::Relaxed)).sum();
        let procs = self.procs.read();
        let (mut vmas, mut rss, mut swapents) = (0u64, 0u64, 0u64);
        for p in procs.values() {
            vmas += p.mm.map.read().vmas.len() as u64;
            rss += p.mm.rss.get() as u64;
            swapents += p.mm.swapents.get() as u64;
        }
        Stats {
            tlb_hits: self.tlb_hits.load(Ordering::Relaxed),
            tlb_misses: self.tlb_misses.load(Ordering::Relaxed),
            minor_faults: sum(|c| &c.minor_faults),
            major_faults: sum(|c| &c.major_faults),
            failed_faults: sum(|c| &c.failed_faults),
            zero_page_maps: sum(|c| &c.zero_page_maps),
            pages_wasted: sum(|c| &c.pages_wasted),
            lock_waits: sum(|c| &c.lock_waits),
            shootdowns: sum(|c| &c.shootdowns),
            shootdown_cpus: sum(|c| &c.shootdown_cpus),
            frames_total: self.phys.total_frames() as u64,
            frames_free: self.phys.free_frames_count() as u64,
            frames_used: self.phys.frames_used() as u64,
            pcp_frames: self.phys.pcp_frames() as u64,
            page_table_pages: self.phys.page_table_pages() as u64,
            rmap_bytes: self.rmap_bytes(),
            swap_total: self.swap().map_or(0, |s| s.total()),
            swap_used: self.swap().map_or(0, |s| s.used()),
            pgscan_kswapd: sum(|c| &c.pgscan_kswapd),
            pgscan_direct: sum(|c| &c.pgscan_direct),
            pgsteal_kswapd: sum(|c| &c.pgsteal_kswapd),
            pgsteal_direct: sum(|c| &c.pgsteal_direct),
            pgactivate: sum(|c| &c.pgactivate),
            pgdeactivate: sum(|c| &c.pgdeactivate),
            pglazyfree: sum(|c| &c.pglazyfree),
            pglazyfreed: sum(|c| &c.pglazyfreed),
            workingset_refault: sum(|c| &c.workingset_refault),
            workingset_activate: sum(|c| &c.workingset_activate),
            pswpin: sum(|c| &c.pswpin),
            pswpout: sum(|c| &c.pswpout),
            oom_kill: sum(|c| &c.oom_kill),
            reclaim_ns: sum(|c| &c.reclaim_ns),
            evicted_shared: sum(|c| &c.evicted_shared),
            pageoutrun: sum(|c| &c.pageoutrun),
            swap_entries: swapents,
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
        // Quiescent: no CPU walks, so every deferred page table can go.
        self.phys.reap_tables();
        let procs = self.procs.read();
        super::check::check(self, &procs)?;
        super::check::check_objects(self, &procs, &self.files.lock())
    }
}

impl Drop for Machine {
    /// Shutting the machine down writes dirty file pages back to their files,
    /// as if every process exited and every file were closed.
    fn drop(&mut self) {
        if self.objects.is_empty() {
            return;
        }
        for pid in self.pids() {
            let _ = self.exit(pid);
        }
        self.files.lock().clear();
        let _ = self.reap_objects();
    }
}

impl crate::mm::reclaim::DirectReclaim for Machine {
    fn direct_reclaim(&self, cpu: usize) -> usize {
        self.reclaim(cpu, false, crate::mm::reclaim::SWAP_CLUSTER_MAX)
    }
}
