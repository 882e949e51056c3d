//! Synthetic workloads, one file per address pattern (`seq`, `random`,
//! `zipf`), and the driver that runs one on a machine.
//!
//! A run spawns several processes; each maps a few anonymous regions and then
//! makes its share of the accesses, loads and stores of 8-byte words at the
//! addresses its pattern picks, with mprotect/munmap churn every so often. A
//! store writes a value derived from the address (and the process, and how
//! often the page was remapped); a load checks the value against what was
//! stored last, or zero for a word never stored since the page was mapped.
//! Each simulated CPU is a host thread (`std::thread::scope`) that runs the
//! threads assigned to it round-robin, switching between them in slices.
//! A process may have several threads (`threads_per_process`): they share
//! its address space, each owns some of its regions (region r belongs to
//! thread r mod T) and makes its accesses and its churn there, and threads
//! of one process run on different CPUs, so they fault in one address space
//! at once while the others' mprotect and munmap shoot their TLBs down. The
//! values each thread checks stay exact, since no other thread writes or
//! remaps its regions. Everything is derived from the seed, so a run on one
//! CPU is reproducible.

pub mod random;
pub mod seq;
pub mod zipf;

use crate::mm::addr::PAGE_SIZE;
use crate::mm::errno::{Errno, Fault, FaultReason};
use crate::mm::mm::uapi::{MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_NONE, PROT_READ, PROT_WRITE};
use crate::mm::system::{Cpu, Machine, MachineConfig, Pid, Stats};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

const WORDS_PER_PAGE: u64 = PAGE_SIZE / 8;
/// Accesses a CPU makes in one process before switching to its next one.
const SLICE: u64 = 50_000;
/// At most this many errors are kept per run.
const MAX_ERRORS: usize = 20;

/// Which address pattern a workload follows.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadKind {
    Seq,
    Random,
    Zipf,
}

impl WorkloadKind {
    /// Every workload name, as the CLI accepts it.
    pub const NAMES: &'static [&'static str] = &["seq", "random", "zipf"];

    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Seq => "seq",
            WorkloadKind::Random => "random",
            WorkloadKind::Zipf => "zipf",
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for WorkloadKind {
    type Err = String;
    fn from_str(s: &str) -> Result<WorkloadKind, String> {
        match s {
            "seq" => Ok(WorkloadKind::Seq),
            "random" => Ok(WorkloadKind::Random),
            "zipf" => Ok(WorkloadKind::Zipf),
            _ => Err(format!(
                "unknown workload {s:?}, expected one of: {}",
                WorkloadKind::NAMES.join(", ")
            )),
        }
    }
}

/// The shape of a synthetic run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkloadSpec {
    #[serde(rename = "name")]
    pub kind: WorkloadKind,
    pub seed: u64,
    /// Loads and stores in total, over all processes.
    pub accesses: u64,
    pub processes: usize,
    /// Threads of each process (each on its own CPU when there are enough).
    pub threads_per_process: usize,
    /// Regions each process maps (at least `threads_per_process`).
    pub regions: usize,
    /// Pages in each region.
    pub region_pages: u64,
    /// Share of accesses that are stores, in percent.
    pub store_percent: u32,
    /// Accesses a process makes between two churn operations (mprotect or
    /// munmap + mmap of part of a region); 0 for none.
    pub churn_every: u64,
}

impl WorkloadSpec {
    /// Default accesses for a run.
    pub const DEFAULT_ACCESSES: u64 = 4_000_000;

    /// The built-in run for `kind` on a machine with `cfg`: at least 4
    /// processes (one per CPU beyond that), 4 regions of 1 MiB each, shrunk if
    /// the footprint would exceed half of RAM.
    pub fn new(kind: WorkloadKind, seed: u64, accesses: u64, cfg: &MachineConfig) -> WorkloadSpec {
        WorkloadSpec {
            kind,
            seed,
            accesses,
            processes: 0,
            threads_per_process: 1,
            regions: 4,
            region_pages: 0,
            store_percent: 30,
            churn_every: 20_000,
        }
        .with_processes(cfg.cpus.max(4), cfg)
    }

    /// The same run with `n` processes (at least 1), regions shrunk so that
    /// the footprint stays within half of RAM.
    pub fn with_processes(mut self, n: usize, cfg: &MachineConfig) -> WorkloadSpec {
        self.processes = n.max(1);
        let budget = (cfg.ram.0 / PAGE_SIZE / 2).max(1);
        self.region_pages = (budget / (self.processes * self.regions.max(1)) as u64).clamp(1, 256);
        self
    }

    /// The same run with `t` threads in every process (at least 1; at most
    /// 64): regions grow to at least `t`, so that each thread owns one, and
    /// shrink in size to keep the footprint within half of RAM.
    pub fn with_threads(mut self, t: usize, cfg: &MachineConfig) -> WorkloadSpec {
        self.threads_per_process = t.clamp(1, 64);
        self.regions = self.regions.max(self.threads_per_process);
        let n = self.processes;
        self.with_processes(n, cfg)
    }

    /// Pages each process maps.
    pub fn footprint_pages(&self) -> u64 {
        self.regions as u64 * self.region_pages
    }
}

/// What a run did, besides the machine's own counters.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RunStats {
    /// Machine counters just after the last access (processes still alive).
    #[serde(flatten)]
    pub machine: Stats,
    pub tlb_hit_ratio: f64,
    pub accesses: u64,
    pub loads: u64,
    pub stores: u64,
    /// Loads whose value was checked (all of them).
    pub loads_verified: u64,
    pub mprotects: u64,
    pub munmaps: u64,
    pub mmaps: u64,
    /// Faults the workload provoked on purpose and saw (PROT_NONE, read-only, unmapped).
    pub expected_faults: u64,
    pub elapsed_secs: f64,
    pub accesses_per_sec: f64,
}

/// The outcome of a run. `errors` lists wrong values and unexpected faults
/// (the first few); a run with errors failed.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RunReport {
    pub stats: RunStats,
    pub errors: Vec<String>,
}

/// The run could not be set up (no process, no mapping, no CPU handle).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

/// The address pattern of one process (static dispatch on the access path).
#[derive(Clone, Debug)]
enum Pattern {
    Seq(seq::Seq),
    Random(random::Random),
    Zipf(zipf::Zipf),
}

impl Pattern {
    fn new(kind: WorkloadKind, pages: u64, rng: &mut SmallRng) -> Pattern {
        let words = pages * WORDS_PER_PAGE;
        match kind {
            WorkloadKind::Seq => Pattern::Seq(seq::Seq::new(words, rng)),
            WorkloadKind::Random => Pattern::Random(random::Random::new(words)),
            WorkloadKind::Zipf => Pattern::Zipf(zipf::Zipf::new(pages, WORDS_PER_PAGE, zipf::DEFAULT_EXPONENT)),
        }
    }

    #[inline]
    fn next_word(&mut self, rng: &mut SmallRng) -> u64 {
        match self {
            Pattern::Seq(p) => p.next_word(),
            Pattern::Random(p) => p.next_word(rng),
            Pattern::Zipf(p) => p.next_word(rng),
        }
    }
}

/// splitmix64's finaliser.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[derive(Clone, Debug, Default)]
struct Counts {
    loads: u64,
    stores: u64,
    mprotects: u64,
    munmaps: u64,
    mmaps: u64,
    expected_faults: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.loads += o.loads;
        self.stores += o.stores;
        self.mprotects += o.mprotects;
        self.munmaps += o.munmaps;
        self.mmaps += o.mmaps;
        self.expected_faults += o.expected_faults;
    }
}

/// One thread of a workload process: the regions it owns and what it
/// expects them to hold.
struct Proc {
    pid: Pid,
    salt: u64,
    regions: Vec<u64>,
    region_pages: u64,
    /// One bit per word: stored since its page was last mapped.
    written: Vec<u64>,
    /// Per page: how many times it was remapped (part of stored values, so a
    /// stale translation to an old frame shows as a wrong value).
    gen: Vec<u32>,
    pattern: Pattern,
    rng: SmallRng,
    remaining: u64,
    until_churn: u64,
    churn_every: u64,
    store_threshold: u64,
    counts: Counts,
}

impl Proc {
    #[inline]
    fn addr_of(&self, word: u64) -> u64 {
        let per_region = self.region_pages * WORDS_PER_PAGE;
        self.regions[(word / per_region) as usize] + (word % per_region) * 8
    }

    #[inline]
    fn expected(&self, word: u64, addr: u64) -> u64 {
        if self.written[(word / 64) as usize] & (1 << (word % 64)) == 0 {
            0
        } else {
            self.stored_value(word, addr)
        }
    }

    /// What a store to `word` (at `addr`) writes: derived from the address,
    /// the process and the page's remap generation.
    #[inline]
    fn stored_value(&self, word: u64, addr: u64) -> u64 {
        mix(addr ^ self.salt ^ ((self.gen[(word / WORDS_PER_PAGE) as usize] as u64) << 40))
    }

    /// Make up to `n` accesses on `cpu`, which runs this process.
    fn run_slice(&mut self, m: &Machine, cpu: &mut Cpu<'_>, n: u64) -> Result<(), String> {
        let n = n.min(self.remaining);
        for _ in 0..n {
            if self.churn_every != 0 {
                self.until_churn -= 1;
                if self.until_churn == 0 {
                    self.until_churn = self.churn_every;
                    self.churn(m, cpu)?;
                }
            }
            let word = self.pattern.next_word(&mut self.rng);
            let addr = self.addr_of(word);
            if self.rng.gen::<u32>() as u64 % 100 < self.store_threshold {
                let v = self.stored_value(word, addr);
                cpu.store_u64(addr, v)
                    .map_err(|f| format!("pid {}: store at {addr:#x} faulted: {f}", self.pid))?;
                self.written[(word / 64) as usize] |= 1 << (word % 64);
                self.counts.stores += 1;
            } else {
                self.load_check(cpu, word, addr)?;
            }
        }
        self.remaining -= n;
        Ok(())
    }

    fn load_check(&mut self, cpu: &mut Cpu<'_>, word: u64, addr: u64) -> Result<(), String> {
        let got = cpu
            .load_u64(addr)
            .map_err(|f| format!("pid {}: load at {addr:#x} faulted: {f}", self.pid))?;
        let want = self.expected(word, addr);
        self.counts.loads += 1;
        if got != want {
            return Err(format!(
                "pid {}: load at {addr:#x} returned {got:#018x}, expected {want:#018x}",
                self.pid
            ));
        }
        Ok(())
    }

    fn expect_fault(&mut self, r: Result<(), Fault>, what: &str, addr: u64, reason: FaultReason) -> Result<(), String> {
        match r {
            Err(f) if f.reason == reason => {
                self.counts.expected_faults += 1;
                Ok(())
            }
            Err(f) => Err(format!(
                "pid {}: {what} at {addr:#x} faulted with {f}, expected {reason:?}",
                self.pid
            )),
            Ok(()) => Err(format!(
                "pid {}: {what} at {addr:#x} succeeded, expected a {reason:?} fault",
                self.pid
            )),
        }
    }

    fn sys<T>(&self, what: &str, r: Result<T, Errno>) -> Result<T, String> {
        r.map_err(|e| format!("pid {}: {what} failed: {e}", self.pid))
    }

    /// One churn operation on a random page range of a random region: make it
    /// read-only or inaccessible and back, or unmap and remap it; check that
    /// accesses fault as Linux would meanwhile, and that remapped memory is zero.
    fn churn(&mut self, m: &Machine, cpu: &mut Cpu<'_>) -> Result<(), String> {
        let r = self.rng.gen_range(0..self.regions.len());
        let len_pages = self.rng.gen_range(1..=self.region_pages.min(16));
        let first = self.rng.gen_range(0..=self.region_pages - len_pages);
        let start = self.regions[r] + first * PAGE_SIZE;
        let len = len_pages * PAGE_SIZE;
        let first_page = r as u64 * self.region_pages + first;
        let probe_word = first_page * WORDS_PER_PAGE + self.rng.gen_range(0..len_pages * WORDS_PER_PAGE);
        let probe = self.addr_of(probe_word);
        let rw = PROT_READ | PROT_WRITE;
        match self.rng.gen_range(0..3) {
            0 => {
                self.sys("mprotect(PROT_READ)", m.mprotect(self.pid, start, len, PROT_READ))?;
                self.load_check(cpu, probe_word, probe)?;
                let r = cpu.store_u64(probe, 1);
                self.expect_fault(r, "store to read-only page", probe, FaultReason::Protection)?;
                self.sys("mprotect(PROT_READ|PROT_WRITE)", m.mprotect(self.pid, start, len, rw))?;
                self.counts.mprotects += 2;
            }
            1 => {
                self.sys("mprotect(PROT_NONE)", m.mprotect(self.pid, start, len, PROT_NONE))?;
                let r = cpu.load_u64(probe).map(|_| ());
                self.expect_fault(r, "load from PROT_NONE page", probe, FaultReason::Protection)?;
                self.sys("mprotect(PROT_READ|PROT_WRITE)", m.mprotect(self.pid, start, len, rw))?;
                self.counts.mprotects += 2;
                self.load_check(cpu, probe_word, probe)?;
            }
            _ => {
                self.sys("munmap", m.munmap(self.pid, start, len))?;
                let r = cpu.load_u64(probe).map(|_| ());
                self.expect_fault(r, "load from unmapped page", probe, FaultReason::NotMapped)?;
                let flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
                let got = self.sys("mmap(MAP_FIXED)", m.mmap(self.pid, start, len, rw, flags))?;
                if got != start {
                    return Err(format!(
                        "pid {}: mmap(MAP_FIXED, {start:#x}) returned {got:#x}",
                        self.pid
                    ));
                }
                self.counts.munmaps += 1;
                self.counts.mmaps += 1;
                for p in first_page..first_page + len_pages {
                    self.gen[p as usize] = self.gen[p as usize].wrapping_add(1);
                    let w0 = p * WORDS_PER_PAGE;
                    for w in (w0..w0 + WORDS_PER_PAGE).step_by(64) {
                        self.written[(w / 64) as usize] = 0;
                    }
                }
                // Fresh anonymous memory reads as zero.
                self.load_check(cpu, probe_word, probe)?;
            }
        }
        Ok(())
    }
}

/// Spawn process `index` of the run, map its regions, and make its threads:
/// thread j owns regions j, j + T, j + 2T, ... and `accesses` split evenly.
fn setup(m: &Machine, spec: &WorkloadSpec, index: usize, accesses: u64) -> Result<Vec<Proc>, SetupError> {
    let pid = m
        .spawn()
        .map_err(|e| SetupError(format!("spawning process {index} failed: {e}")))?;
    let region_pages = spec.region_pages.max(1);
    let threads = spec.threads_per_process.max(1);
    let mut regions = Vec::with_capacity(spec.regions.max(threads));
    for r in 0..spec.regions.max(threads) {
        let len = region_pages * PAGE_SIZE;
        let addr = m
            .mmap(pid, 0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
            .map_err(|e| SetupError(format!("pid {pid}: mmap of region {r} ({len} bytes) failed: {e}")))?;
        regions.push(addr);
    }
    let churn_every = spec.churn_every;
    Ok((0..threads)
        .map(|t| {
            let mut rng = SmallRng::seed_from_u64(mix(spec.seed ^ mix(index as u64 + 1) ^ mix((t as u64) << 32)));
            let mine: Vec<u64> = regions.iter().copied().skip(t).step_by(threads).collect();
            let pages = mine.len() as u64 * region_pages;
            let pattern = Pattern::new(spec.kind, pages, &mut rng);
            let share = accesses / threads as u64 + u64::from((t as u64) < accesses % threads as u64);
            Proc {
                pid,
                salt: mix(spec.seed.wrapping_add(pid as u64) ^ ((t as u64) << 48)),
                regions: mine,
                region_pages,
                written: vec![0; (pages * WORDS_PER_PAGE).div_ceil(64) as usize],
                gen: vec![0; pages as usize],
                pattern,
                rng,
                remaining: share,
                until_churn: churn_every.max(1),
                churn_every,
                store_threshold: spec.store_percent.min(100) as u64,
                counts: Counts::default(),
            }
        })
        .collect())
}

/// Drive CPU `id` through its threads, round-robin in slices.
fn drive(m: &Machine, id: usize, procs: &mut [Proc]) -> Result<Vec<String>, SetupError> {
    let mut cpu = m
        .cpu(id)
        .map_err(|e| SetupError(format!("taking CPU {id} failed: {e}")))?;
    let mut errors = Vec::new();
    loop {
        let mut busy = false;
        for p in procs.iter_mut().filter(|p| p.remaining > 0) {
            busy = true;
            if let Err(e) = cpu.switch_to(p.pid) {
                return Err(SetupError(format!("CPU {id}: switching to pid {} failed: {e}", p.pid)));
            }
            if let Err(e) = p.run_slice(m, &mut cpu, SLICE) {
                errors.push(format!("CPU {id}: {e}"));
                p.remaining = 0;
            }
        }
        if !busy {
            return Ok(errors);
        }
    }
}

/// Run `spec` on `m`: set up its processes, drive one host thread per CPU
/// that has processes, and report. The processes are left alive so that the
/// caller can inspect and check the machine; [`teardown`] ends them.
pub fn run(m: &Machine, spec: &WorkloadSpec) -> Result<RunReport, SetupError> {
    let nproc = spec.processes.max(1);
    let tasks = nproc * spec.threads_per_process.max(1);
    let cpus = m.cpus().max(1);
    let threads = cpus.min(tasks);
    let mut per_cpu: Vec<Vec<Proc>> = (0..threads).map(|_| Vec::new()).collect();
    // Thread k overall runs on CPU k mod CPUs, so the threads of one process
    // land on different CPUs whenever there are enough.
    let mut k = 0;
    for i in 0..nproc {
        // Spread the total evenly; the first processes take the remainder.
        let share = spec.accesses / nproc as u64 + u64::from((i as u64) < spec.accesses % nproc as u64);
        for t in setup(m, spec, i, share)? {
            per_cpu[k % threads].push(t);
            k += 1;
        }
    }
    let start = Instant::now();
    // CPUs on host threads, and the kswapd thread beside them.
    let results: Vec<Result<Vec<String>, SetupError>> = crate::host::with_kswapd(m, || {
        std::thread::scope(|s| {
            let handles: Vec<_> = per_cpu
                .iter_mut()
                .enumerate()
                .map(|(id, procs)| s.spawn(move || drive(m, id, procs)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(SetupError("a CPU thread panicked".into())))
                })
                .collect()
        })
    });
    let elapsed = start.elapsed();
    let mut errors = Vec::new();
    for r in results {
        errors.extend(r?);
    }
    errors.truncate(MAX_ERRORS);
    let mut counts = Counts::default();
    for p in per_cpu.iter().flatten() {
        counts.add(&p.counts);
    }
    Ok(RunReport {
        stats: run_stats(m.stats(), &counts, elapsed),
        errors,
    })
}

fn run_stats(machine: Stats, c: &Counts, elapsed: Duration) -> RunStats {
    let lookups = machine.tlb_hits + machine.tlb_misses;
    let accesses = c.loads + c.stores;
    let secs = elapsed.as_secs_f64();
    RunStats {
        tlb_hit_ratio: if lookups == 0 {
            0.0
        } else {
            machine.tlb_hits as f64 / lookups as f64
        },
        machine,
        accesses,
        loads: c.loads,
        stores: c.stores,
        loads_verified: c.loads,
        mprotects: c.mprotects,
        munmaps: c.munmaps,
        mmaps: c.mmaps,
        expected_faults: c.expected_faults,
        elapsed_secs: secs,
        accesses_per_sec: if secs > 0.0 { accesses as f64 / secs } else { 0.0 },
    }
}

/// End every process and check that every frame came back: after it,
/// `frames_used` must equal the frames the machine keeps for itself.
pub fn teardown(m: &Machine) -> Result<(), String> {
    for pid in m.pids() {
        m.exit(pid).map_err(|e| format!("exit of pid {pid} failed: {e}"))?;
    }
    let used = m.phys().frames_used();
    if used != m.reserved_frames() {
        return Err(format!(
            "{} frames still in use after every process exited (expected {})",
            used,
            m.reserved_frames()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::system::ByteSize;

    fn small(kind: WorkloadKind, cpus: usize) -> (Machine, WorkloadSpec) {
        let cfg = MachineConfig {
            ram: ByteSize(32 << 20),
            cpus,
            ..MachineConfig::default()
        };
        let mut spec = WorkloadSpec::new(kind, 42, 200_000, &cfg);
        spec.region_pages = 32;
        spec.churn_every = 2_000;
        (Machine::new(&cfg).unwrap(), spec)
    }

    #[test]
    fn every_pattern_runs_clean_and_checks() {
        for kind in [WorkloadKind::Seq, WorkloadKind::Random, WorkloadKind::Zipf] {
            let (m, spec) = small(kind, 2);
            let r = run(&m, &spec).unwrap();
            assert!(r.errors.is_empty(), "{kind}: {:?}", r.errors);
            assert!(r.stats.accesses >= 200_000);
            assert!(r.stats.machine.minor_faults > 0);
            assert!(r.stats.munmaps > 0 && r.stats.mprotects > 0 && r.stats.expected_faults > 0);
            assert_eq!(r.stats.machine.processes, spec.processes as u64);
            m.check().unwrap();
            teardown(&m).unwrap();
            m.check().unwrap();
        }
    }

    /// Threads of one process on different CPUs fault, write, mprotect and
    /// munmap in one address space at once; every value checks out.
    #[test]
    fn threads_of_one_process_run_clean() {
        for kind in [WorkloadKind::Random, WorkloadKind::Seq] {
            let cfg = MachineConfig {
                ram: ByteSize(32 << 20),
                cpus: 3,
                ..MachineConfig::default()
            };
            let mut spec = WorkloadSpec::new(kind, 7, 300_000, &cfg)
                .with_processes(2, &cfg)
                .with_threads(3, &cfg);
            spec.churn_every = 1_000;
            assert_eq!(spec.regions, 4);
            let m = crate::host::build_machine(&cfg).unwrap();
            let r = run(&m, &spec).unwrap();
            assert!(r.errors.is_empty(), "{kind}: {:?}", r.errors);
            assert!(r.stats.accesses >= 300_000);
            assert_eq!(r.stats.machine.processes, 2);
            assert!(r.stats.machine.shootdowns > 0 && r.stats.munmaps > 0);
            m.check().unwrap();
            teardown(&m).unwrap();
            m.check().unwrap();
        }
    }

    #[test]
    fn deterministic_given_seed() {
        let run_once = || {
            let (m, spec) = small(WorkloadKind::Zipf, 1);
            let r = run(&m, &spec).unwrap();
            let s = r.stats.machine;
            (
                s.minor_faults,
                s.zero_page_maps,
                s.tlb_misses,
                s.frames_used,
                r.stats.loads,
            )
        };
        assert_eq!(run_once(), run_once());
    }

    #[test]
    fn workload_names_parse() {
        for n in WorkloadKind::NAMES {
            assert_eq!(n.parse::<WorkloadKind>().unwrap().name(), *n);
        }
        assert!("zipfian"
            .parse::<WorkloadKind>()
            .unwrap_err()
            .contains("seq, random, zipf"));
    }
}
