//! `vmlab exp reclaim`: every reclaim design (config `reclaim`) on five
//! workloads whose processes touch four times the machine's RAM.
//!
//! A workload has a footprint of F pages (`--pages`); each machine has
//! F/4 pages of RAM and twice F of swap (a real file in `swap_dir`), one CPU
//! per process. Its setup maps and fills the memory, then `--accesses`
//! page references follow (a reference to a page is a load of its first
//! word, or a store to it). Every load is checked against what was last
//! stored there (or the file's bytes), so a row is also a test: a design
//! that loses a byte fails the experiment.
//!
//! - `zipf`: one process, F anonymous pages; Zipf-skewed references
//!   (exponent 1, ranks scattered), a store one time in four.
//! - `loop`: one process, F anonymous pages read and written in order,
//!   round and round: a loop larger than RAM (LRU's worst case).
//! - `shared_mix`: four processes share a file mapping (`MAP_SHARED`) of
//!   F/8 pages and have F×7/32 private anonymous pages each. One Zipf
//!   stream runs over all F pages; a shared page's reference is a load by
//!   every process in turn, a private page's a reference by its owner. So
//!   each page, shared or private, is referenced at the same rate for its
//!   rank, and a policy that neither favours nor disfavours shared pages
//!   evicts them in proportion to their share of memory. Setup fills the
//!   pages in a random order (a shared page loaded by all four).
//! - `fork_mix`: a parent fills F/8 anonymous pages (they fit in RAM) and
//!   forks three children, which share them copy-on-write; then each of
//!   the four fills F×3/16 private pages. Zipf over all pages: a shared
//!   page is referenced by a random process, and a child's store (one in
//!   four) to its own third of the shared region breaks the sharing.
//! - `file_scan`: one process reads a file of F pages through a
//!   `MAP_SHARED` mapping, Zipf-skewed (no setup: the first touches are
//!   the reads from the file).
//!
//! Per row, over the whole run (setup and references): `major_faults`,
//! `minor_faults`, `pages_scanned` (pgscan kswapd + direct),
//! `pages_reclaimed` (pgsteal), `scanned_per_reclaimed`, `reclaim_ns`
//! (host time inside reclaim), `reclaimed_per_s` (pages reclaimed per
//! second of `reclaim_ns`), `elapsed_ns` (the whole run), and
//! `shared_evicted_fraction` = (shared pages among those evicted / pages
//! evicted) ÷ (shared pages / pages resident when reclaim first ran),
//! where a page is shared if more than one PTE maps it
//! (`Stats::evicted_shared`, `Machine::residency_at_first_reclaim`).
//!
//! The Linux row: `file_scan`'s reference stream replayed by a child over a
//! real file mapping in a memory cgroup limited to the machine's RAM
//! (`linux_cgroup.rs`), beside the designs' rows; the row holds the reason
//! where the host does not allow it.
//!
//! Claims (`claims`, a pure function of the rows):
//! - seed 002: shared pages have no advantage under the rmap-driven
//!   `clock` (its `shared_evicted_fraction` on `shared_mix` within
//!   [0.8, 1.25]);
//! - seed 002: kswapd frees pages faster with the page-centric clock
//!   (`clock`'s `reclaimed_per_s` over all workloads / `vma_scan`'s ≥ 1);
//! - seed 000 #6: scanning VMAs needs fewer scans per page reclaimed
//!   (`vma_scan`'s `scanned_per_reclaimed` over all workloads / `clock`'s
//!   ≤ 1).

use super::linux_cgroup::{replay_file_stream, CgroupRun};
use super::{check_all_freed, num, ratio, row_of, Claim, Column, Comparison, ExpError, Format, Report};
use crate::mm::addr::PAGE_SIZE;
use crate::mm::errno::Fault;
use crate::mm::mm::uapi::{MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE};
use crate::mm::mm::MemFile;
use crate::mm::system::config::ReclaimName;
use crate::mm::system::{ByteSize, Cpu, Machine, MachineConfig, Pid, Stats};
use crate::workload::zipf::Zipf;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

/// The workloads, in row order.
pub const WORKLOADS: [&str; 5] = ["zipf", "loop", "shared_mix", "fork_mix", "file_scan"];
/// Default footprint of a workload, in pages (32 MiB: 8 MiB of RAM).
pub const DEFAULT_PAGES: u64 = 8192;
/// Default page references after setup.
pub const DEFAULT_ACCESSES: u64 = 300_000;
/// Largest footprint accepted, in pages (64 GiB).
pub const MAX_PAGES: u64 = 1 << 24;
/// `--quick`'s footprint and references (tests, debug builds).
pub const QUICK_PAGES: u64 = 1024;
pub const QUICK_ACCESSES: u64 = 20_000;
/// Processes of `shared_mix` and `fork_mix`.
pub const PROCESSES: usize = 4;
/// Seed 002's shared-page claim: `clock`'s `shared_evicted_fraction` band.
pub const FAIR_BAND: (f64, f64) = (0.8, 1.25);
/// Pages above the machine's RAM the Linux row's cgroup may hold: the
/// child's own stack and the page tables it charges (v1 memcg reclaim gives
/// up on a limit the replay alone fills, and its OOM killer ends the child).
pub const LINUX_SLACK_PAGES: u64 = 3;

/// Where every mapping starts (one address in every process).
const BASE: u64 = 0x1000_0000_0000;
/// Where each process's private region starts.
const PRIVATE: u64 = 0x2000_0000_0000;
/// The first word of file page `i`.
fn file_word(i: u64) -> u64 {
    0xf11e_0000_0000_0000 | i
}

/// The experiment's parameters.
#[derive(Clone, Debug)]
pub struct ReclaimParams {
    /// Footprint of each workload, in pages.
    pub pages: u64,
    /// Page references after setup.
    pub accesses: u64,
    pub seed: u64,
    /// The workloads to run (a subset of `WORKLOADS`, in its order).
    pub workloads: Vec<&'static str>,
    /// Whether to measure the Linux row.
    pub linux: bool,
}

impl ReclaimParams {
    /// Parameters, checked: at least 1024 pages and a multiple of 32 (RAM is
    /// a quarter, the workloads split it in eighths of four), at least one
    /// access, known workload names.
    pub fn new(
        pages: u64,
        accesses: u64,
        seed: u64,
        workloads: &[String],
        linux: bool,
    ) -> Result<ReclaimParams, ExpError> {
        if pages < 1024 || !pages.is_multiple_of(32) {
            return Err(ExpError::Usage(format!(
                "--pages {pages}: must be at least 1024 and a multiple of 32"
            )));
        }
        if pages > MAX_PAGES {
            return Err(ExpError::Usage(format!(
                "--pages {pages}: at most {MAX_PAGES} (a 64 GiB footprint)"
            )));
        }
        if accesses == 0 {
            return Err(ExpError::Usage("--accesses 0: at least one reference".into()));
        }
        let mut chosen = Vec::new();
        for w in workloads {
            if !WORKLOADS.contains(&w.as_str()) {
                return Err(ExpError::Usage(format!(
                    "--workloads {w}: not a workload (one of {})",
                    WORKLOADS.join(", ")
                )));
            }
        }
        for w in WORKLOADS {
            if workloads.is_empty() || workloads.iter().any(|x| x == w) {
                chosen.push(w);
            }
        }
        Ok(ReclaimParams {
            pages,
            accesses,
            seed,
            workloads: chosen,
            linux,
        })
    }

    fn ram_pages(&self) -> u64 {
        self.pages / 4
    }
}

/// One design's run of one workload.
#[derive(Clone, Debug)]
struct Measured {
    policy: String,
    workload: &'static str,
    processes: usize,
    s: Stats,
    elapsed_ns: u64,
    resident_at_first: Option<(u64, u64)>,
}

impl Measured {
    fn shared_evicted_fraction(&self) -> f64 {
        let Some((shared, resident)) = self.resident_at_first else {
            return f64::NAN;
        };
        let evicted = (self.s.pgsteal_kswapd + self.s.pgsteal_direct) as f64;
        ratio(
            ratio(self.s.evicted_shared as f64, evicted),
            ratio(shared as f64, resident as f64),
        )
    }

    fn row(&self, p: &ReclaimParams) -> Map<String, Value> {
        let scanned = self.s.pgscan_kswapd + self.s.pgscan_direct;
        let reclaimed = self.s.pgsteal_kswapd + self.s.pgsteal_direct;
        row_of(json!({
            "policy": self.policy,
            "workload": self.workload,
            "processes": self.processes,
            "pages": p.pages,
            "ram_pages": p.ram_pages(),
            "accesses": p.accesses,
            "major_faults": self.s.major_faults,
            "minor_faults": self.s.minor_faults,
            "pages_scanned": scanned,
            "pages_reclaimed": reclaimed,
            "scanned_per_reclaimed": num(ratio(scanned as f64, reclaimed as f64)),
            "reclaim_ns": self.s.reclaim_ns,
            "reclaimed_per_s": num(ratio(reclaimed as f64 * 1e9, self.s.reclaim_ns as f64).round()),
            "shared_evicted_fraction": num(self.shared_evicted_fraction()),
            "pswpin": self.s.pswpin,
            "pswpout": self.s.pswpout,
            "pgactivate": self.s.pgactivate,
            "workingset_refault": self.s.workingset_refault,
            "elapsed_ns": self.elapsed_ns,
        }))
    }
}

fn columns() -> Vec<Column> {
    vec![
        Column::new("workload", "workload", Format::Text),
        Column::new("policy", "policy", Format::Text),
        Column::new("major_faults", "major", Format::Int),
        Column::new("minor_faults", "minor", Format::Int),
        Column::new("pages_scanned", "scanned", Format::Int),
        Column::new("pages_reclaimed", "reclaimed", Format::Int),
        Column::new("scanned_per_reclaimed", "scan/recl", Format::Float),
        Column::new("reclaim_ns", "reclaim time", Format::Nanos),
        Column::new("reclaimed_per_s", "reclaimed/s", Format::Int),
        Column::new("shared_evicted_fraction", "shared evict", Format::Float),
        Column::new("elapsed_ns", "elapsed", Format::Nanos),
    ]
}

/// The designs measured: every value of config `reclaim`.
pub fn policies() -> &'static [&'static str] {
    ReclaimName::ALL
}

/// Run the experiment: for each workload, one fresh machine per design
/// (`base` with `reclaim`, `ram`, `swap_size` and `cpus` set), then the
/// Linux row for `file_scan`.
pub fn run(
    base: &MachineConfig,
    params: &ReclaimParams,
    build: &dyn Fn(&MachineConfig) -> Result<Machine, String>,
    progress: &mut dyn FnMut(&str),
) -> Result<Report, ExpError> {
    // Host memory: the machine's RAM, and a file workload's bytes held by
    // its in-memory file (the page cache is inside RAM).
    let need = params.ram_pages() * PAGE_SIZE + params.pages * PAGE_SIZE;
    if let Some(avail) = super::host_mem_available() {
        if need + need / 8 > avail {
            return Err(ExpError::Usage(format!(
                "--pages {}: the experiment needs about {} of host memory, {} is available",
                params.pages,
                super::fmt_bytes(need + need / 8),
                super::fmt_bytes(avail)
            )));
        }
    }
    let mut used = base.clone();
    used.ram = ByteSize(params.ram_pages() * PAGE_SIZE);
    used.swap_size = ByteSize(2 * params.pages * PAGE_SIZE);
    used.cpus = base.cpus.max(PROCESSES);
    let mut rows = Vec::new();
    let mut measured = Vec::new();
    for &workload in &params.workloads {
        for &policy in policies() {
            let mut cfg = used.clone();
            cfg.apply_pairs(&format!("reclaim={policy}"))
                .map_err(|e| ExpError::Usage(format!("config error: {e}")))?;
            let m = build(&cfg).map_err(|e| ExpError::Usage(format!("config error: {e}")))?;
            let what = format!("{policy} {workload}");
            let t0 = Instant::now();
            let d = drive(&m, workload, params, &what)?;
            let elapsed_ns = t0.elapsed().as_nanos() as u64;
            let s = m.stats();
            let resident_at_first = m.residency_at_first_reclaim().map(|r| (r.shared, r.resident));
            let processes = d.finish()?;
            let r = Measured {
                policy: policy.to_string(),
                workload,
                processes,
                s,
                elapsed_ns,
                resident_at_first,
            };
            check_all_freed(&m, &what, "every process exited")?;
            if m.swap().is_some_and(|a| a.used() != 0) {
                return Err(ExpError::Runtime(format!(
                    "{what}: swap slots left after every process exited"
                )));
            }
            progress(&format!(
                "exp reclaim: {what}: {} major faults, {} reclaimed, {:.2} scanned per reclaimed",
                r.s.major_faults,
                r.s.pgsteal_kswapd + r.s.pgsteal_direct,
                ratio(
                    (r.s.pgscan_kswapd + r.s.pgscan_direct) as f64,
                    (r.s.pgsteal_kswapd + r.s.pgsteal_direct) as f64
                )
            ));
            rows.push(r.row(params));
            measured.push(r);
        }
        if workload == "file_scan" && params.linux {
            let refs = file_scan_refs(params);
            let dir = linux_dir(base);
            let limit = (params.ram_pages() + LINUX_SLACK_PAGES) * PAGE_SIZE;
            let row = linux_row(replay_file_stream(params.pages, &refs, limit, &dir), params);
            progress(&format!(
                "exp reclaim: linux file_scan: {}",
                row.get("major_faults").unwrap_or(&Value::Null)
            ));
            rows.push(row);
        }
    }
    let claims = claims(&rows);
    let notes = vec![
        format!(
            "Each workload touches {} pages ({}) on a machine of {} pages of RAM and {} of swap; {} references \
             after setup. Counts cover the whole run, setup included. reclaimed/s = pages reclaimed per second \
             spent inside reclaim; shared evict = shared_evicted_fraction (1: shared pages evicted in proportion \
             to their share of memory when reclaim first ran).",
            params.pages,
            super::fmt_bytes(params.pages * PAGE_SIZE),
            params.ram_pages(),
            2 * params.pages,
            params.accesses
        ),
        "Every load was checked against the last value stored (or the file's bytes); every process exited with \
         no frame or swap slot left."
            .to_string(),
    ];
    Ok(Report {
        experiment: "reclaim".into(),
        config: serde_json::to_value(&used).unwrap_or(Value::Null),
        params: json!({
            "pages": params.pages,
            "ram_pages": params.ram_pages(),
            "accesses": params.accesses,
            "seed": params.seed,
            "workloads": params.workloads,
            "policies": policies(),
            "processes": PROCESSES,
        }),
        rows,
        claims,
        columns: columns(),
        notes,
    })
}

/// Where the Linux row's file goes: `swap_dir` if set, else /var/tmp (on
/// disk on Debian, where /tmp may be tmpfs).
fn linux_dir(base: &MachineConfig) -> PathBuf {
    if base.swap_dir.is_empty() {
        PathBuf::from("/var/tmp")
    } else {
        PathBuf::from(&base.swap_dir)
    }
}

fn linux_row(r: Result<CgroupRun, String>, p: &ReclaimParams) -> Map<String, Value> {
    match r {
        Ok(run) => row_of(json!({
            "policy": "linux",
            "workload": "file_scan",
            "processes": 1,
            "pages": p.pages,
            "ram_pages": p.ram_pages(),
            "accesses": p.accesses,
            "major_faults": run.major_faults,
            "minor_faults": run.minor_faults,
            "elapsed_ns": run.elapsed_ns,
            "limit_bytes": run.limit_bytes,
            "source": run.source,
        })),
        Err(why) => row_of(json!({
            "policy": "linux",
            "workload": "file_scan",
            "missing": why,
        })),
    }
}

/// `file_scan`'s references: page indices into the file.
fn file_scan_refs(p: &ReclaimParams) -> Vec<u64> {
    let mut rng = SmallRng::seed_from_u64(p.seed ^ 0xf11e);
    let mut z = Zipf::new(p.pages, 1, crate::workload::zipf::DEFAULT_EXPONENT);
    (0..p.accesses).map(|_| z.next_word(&mut rng)).collect()
}

/// The processes of a workload, each with its own CPU, and what every page
/// they store to should hold.
struct Driver<'m> {
    m: &'m Machine,
    cpus: Vec<Cpu<'m>>,
    pids: Vec<Pid>,
    /// Files opened for the workload, closed when it ends.
    fds: Vec<i32>,
    /// (process, address) → the first word last stored there (or the
    /// file's), for every page a load checks.
    shadow: HashMap<(usize, u64), u64>,
    next_value: u64,
    what: String,
}

impl<'m> Driver<'m> {
    fn new(m: &'m Machine, what: &str) -> Driver<'m> {
        Driver {
            m,
            cpus: Vec::new(),
            pids: Vec::new(),
            fds: Vec::new(),
            shadow: HashMap::new(),
            next_value: 1,
            what: what.to_string(),
        }
    }

    fn fail(&self, e: impl std::fmt::Debug, doing: &str) -> ExpError {
        ExpError::Runtime(format!("{}: {doing}: {e:?}", self.what))
    }

    /// A process on the next CPU; returns its index.
    fn add(&mut self, pid: Pid) -> Result<usize, ExpError> {
        let mut cpu = self.m.cpu(self.cpus.len()).map_err(|e| self.fail(e, "take a CPU"))?;
        cpu.switch_to(pid).map_err(|e| self.fail(e, "switch"))?;
        self.cpus.push(cpu);
        self.pids.push(pid);
        Ok(self.pids.len() - 1)
    }

    fn spawn(&mut self) -> Result<usize, ExpError> {
        let pid = self.m.spawn().map_err(|e| self.fail(e, "spawn"))?;
        self.add(pid)
    }

    /// Fork process `p`; the child inherits its shadow.
    fn fork(&mut self, p: usize) -> Result<usize, ExpError> {
        let pid = self.m.fork(self.pids[p]).map_err(|e| self.fail(e, "fork"))?;
        let c = self.add(pid)?;
        let inherited: Vec<_> = self
            .shadow
            .iter()
            .filter(|(k, _)| k.0 == p)
            .map(|(k, v)| ((c, k.1), *v))
            .collect();
        self.shadow.extend(inherited);
        Ok(c)
    }

    fn map_anon(&mut self, p: usize, addr: u64, pages: u64) -> Result<(), ExpError> {
        self.m
            .mmap(
                self.pids[p],
                addr,
                pages * PAGE_SIZE,
                PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | crate::mm::mm::uapi::MAP_FIXED,
            )
            .map(|_| ())
            .map_err(|e| self.fail(e, "mmap"))
    }

    fn map_file(&mut self, p: usize, fd: i32, addr: u64, pages: u64) -> Result<(), ExpError> {
        self.m
            .mmap_fd(
                self.pids[p],
                addr,
                pages * PAGE_SIZE,
                PROT_READ,
                MAP_SHARED | crate::mm::mm::uapi::MAP_FIXED,
                fd,
                0,
            )
            .map(|_| ())
            .map_err(|e| self.fail(e, "mmap of the file"))?;
        for i in 0..pages {
            self.shadow.insert((p, addr + i * PAGE_SIZE), file_word(i));
        }
        Ok(())
    }

    fn fault(&self, p: usize, addr: u64, f: Fault) -> ExpError {
        ExpError::Runtime(format!(
            "{}: pid {} at {addr:#x}: {f:?} (oom kills: {:?})",
            self.what,
            self.pids[p],
            self.m.oom_kills()
        ))
    }

    fn load(&mut self, p: usize, addr: u64) -> Result<(), ExpError> {
        let got = match self.cpus[p].load_u64(addr) {
            Ok(v) => v,
            Err(f) => return Err(self.fault(p, addr, f)),
        };
        let want = self.shadow.get(&(p, addr)).copied().unwrap_or(0);
        if got != want {
            return Err(ExpError::Runtime(format!(
                "{}: pid {} read {got:#x} at {addr:#x}, wrote {want:#x}",
                self.what, self.pids[p]
            )));
        }
        Ok(())
    }

    fn store(&mut self, p: usize, addr: u64) -> Result<(), ExpError> {
        let v = self.next_value;
        self.next_value += 1;
        if let Err(f) = self.cpus[p].store_u64(addr, v) {
            return Err(self.fault(p, addr, f));
        }
        self.shadow.insert((p, addr), v);
        Ok(())
    }

    fn touch(&mut self, p: usize, addr: u64, write: bool) -> Result<(), ExpError> {
        if write {
            self.store(p, addr)
        } else {
            self.load(p, addr)
        }
    }
}

impl Driver<'_> {
    /// A file of `pages` pages whose page `i` starts with `file_word(i)`.
    fn open_file(&mut self, pages: u64) -> i32 {
        let mut bytes = vec![0u8; (pages * PAGE_SIZE) as usize];
        for i in 0..pages {
            let at = (i * PAGE_SIZE) as usize;
            bytes[at..at + 8].copy_from_slice(&file_word(i).to_le_bytes());
        }
        let fd = self.m.open_file(Box::new(MemFile::new(&bytes, false)));
        self.fds.push(fd);
        fd
    }

    /// Exit every process and close the files.
    fn finish(self) -> Result<usize, ExpError> {
        let n = self.pids.len();
        for &pid in &self.pids {
            self.m.exit(pid).map_err(|e| self.fail(e, "exit"))?;
        }
        for &fd in &self.fds {
            self.m.close(fd).map_err(|e| self.fail(e, "close"))?;
        }
        Ok(n)
    }
}

/// Set up `workload` on `m` and replay its references; returns its
/// processes, still running.
fn drive<'m>(m: &'m Machine, workload: &str, p: &ReclaimParams, what: &str) -> Result<Driver<'m>, ExpError> {
    let mut d = Driver::new(m, what);
    let mut rng = SmallRng::seed_from_u64(p.seed);
    let f = p.pages;
    let page = |i: u64| BASE + i * PAGE_SIZE;
    match workload {
        "zipf" | "loop" => {
            let a = d.spawn()?;
            d.map_anon(a, BASE, f)?;
            for i in 0..f {
                d.store(a, page(i))?;
            }
            let mut z = Zipf::new(f, 1, crate::workload::zipf::DEFAULT_EXPONENT);
            for k in 0..p.accesses {
                let i = if workload == "loop" {
                    k % f
                } else {
                    z.next_word(&mut rng)
                };
                let write = rng.gen_ratio(1, 4);
                d.touch(a, page(i), write)?;
            }
        }
        "shared_mix" => {
            let n = PROCESSES as u64;
            let shared = f / 8;
            let private = (f - shared) / n;
            let fd = d.open_file(shared);
            for _ in 0..n {
                let q = d.spawn()?;
                d.map_file(q, fd, BASE, shared)?;
                d.map_anon(q, PRIVATE, private)?;
            }
            // Global page g: shared page g, or private page (g - shared) % private of process (g - shared) / private.
            let touch = |d: &mut Driver<'_>, g: u64, write: bool| -> Result<(), ExpError> {
                if g < shared {
                    for q in 0..PROCESSES {
                        d.load(q, page(g))?;
                    }
                    Ok(())
                } else {
                    let q = ((g - shared) / private) as usize;
                    d.touch(q, PRIVATE + (g - shared) % private * PAGE_SIZE, write)
                }
            };
            let total = shared + n * private;
            let mut order: Vec<u64> = (0..total).collect();
            order.shuffle(&mut rng);
            for g in order {
                touch(&mut d, g, true)?;
            }
            let mut z = Zipf::new(total, 1, crate::workload::zipf::DEFAULT_EXPONENT);
            for _ in 0..p.accesses {
                let g = z.next_word(&mut rng);
                let write = rng.gen_ratio(1, 4);
                touch(&mut d, g, write)?;
            }
        }
        "fork_mix" => {
            let n = PROCESSES as u64;
            let shared = f / 8;
            let private = f * 3 / 16;
            let parent = d.spawn()?;
            d.map_anon(parent, BASE, shared)?;
            for i in 0..shared {
                d.store(parent, page(i))?;
            }
            for _ in 1..n {
                d.fork(parent)?;
            }
            for q in 0..PROCESSES {
                d.map_anon(q, PRIVATE, private)?;
            }
            let slice = shared.div_ceil(n - 1);
            let total = shared + n * private;
            let mut order: Vec<u64> = (shared..total).collect();
            order.shuffle(&mut rng);
            for g in order {
                let q = ((g - shared) / private) as usize;
                d.store(q, PRIVATE + (g - shared) % private * PAGE_SIZE)?;
            }
            let mut z = Zipf::new(total, 1, crate::workload::zipf::DEFAULT_EXPONENT);
            for _ in 0..p.accesses {
                let g = z.next_word(&mut rng);
                let write = rng.gen_ratio(1, 4);
                if g < shared {
                    let q = rng.gen_range(0..PROCESSES);
                    // Child q writes only its own slice of the shared pages.
                    let own = q > 0 && g / slice == q as u64 - 1;
                    d.touch(q, page(g), write && own)?;
                } else {
                    let q = ((g - shared) / private) as usize;
                    d.touch(q, PRIVATE + (g - shared) % private * PAGE_SIZE, write)?;
                }
            }
        }
        "file_scan" => {
            let fd = d.open_file(f);
            let a = d.spawn()?;
            d.map_file(a, fd, BASE, f)?;
            for i in file_scan_refs(p) {
                d.load(a, page(i))?;
            }
        }
        other => return Err(ExpError::Usage(format!("workload {other}: unknown"))),
    }
    Ok(d)
}

fn get(rows: &[Map<String, Value>], policy: &str, workload: &str, key: &str) -> f64 {
    rows.iter()
        .find(|r| {
            r.get("policy").and_then(Value::as_str) == Some(policy)
                && r.get("workload").and_then(Value::as_str) == Some(workload)
        })
        .and_then(|r| r.get(key))
        .and_then(Value::as_f64)
        .unwrap_or(f64::NAN)
}

/// `key` summed over a policy's rows.
fn sum(rows: &[Map<String, Value>], policy: &str, key: &str) -> f64 {
    rows.iter()
        .filter(|r| r.get("policy").and_then(Value::as_str) == Some(policy))
        .filter_map(|r| r.get(key).and_then(Value::as_f64))
        .sum()
}

/// The claims, from the rows alone.
pub fn claims(rows: &[Map<String, Value>]) -> Vec<Claim> {
    let per_s = |p: &str| ratio(sum(rows, p, "pages_reclaimed") * 1e9, sum(rows, p, "reclaim_ns"));
    let scans = |p: &str| ratio(sum(rows, p, "pages_scanned"), sum(rows, p, "pages_reclaimed"));
    vec![
        Claim::new(
            "002",
            "A page-centric kswapd: with the reverse map a shared page is looked at once for all its mappings, so \
             shared pages do not have an advantage over non-shared ones (rmap-driven clock evicts them in \
             proportion to their share of memory).",
            "shared_evicted_fraction(clock, shared_mix)",
            get(rows, "clock", "shared_mix", "shared_evicted_fraction"),
            Comparison::Within(FAIR_BAND.0, FAIR_BAND.1),
        ),
        Claim::new(
            "002",
            "... making kswapd able to free pages much faster (the page-centric clock against the walk of the \
             processes' page tables).",
            "reclaimed_per_s(clock) / reclaimed_per_s(vma_scan), over all workloads",
            ratio(per_s("clock"), per_s("vma_scan")),
            Comparison::AtLeast(1.0),
        ),
        Claim::new(
            "000 #6",
            "Swap out pages by scanning all VMAs instead of scanning pages: fewer pages scanned per page reclaimed.",
            "scanned_per_reclaimed(vma_scan) / scanned_per_reclaimed(clock), over all workloads",
            ratio(scans("vma_scan"), scans("clock")),
            Comparison::AtMost(1.0),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exp::Verdict;

    fn row(policy: &str, workload: &str, scanned: f64, reclaimed: f64, ns: f64, fraction: f64) -> Map<String, Value> {
        row_of(json!({
            "policy": policy, "workload": workload, "pages_scanned": scanned, "pages_reclaimed": reclaimed,
            "reclaim_ns": ns, "shared_evicted_fraction": fraction,
        }))
    }

    #[test]
    fn claims_come_out_either_way() {
        let good = vec![
            row("clock", "shared_mix", 200.0, 100.0, 1e6, 1.0),
            row("vma_scan", "shared_mix", 150.0, 100.0, 2e6, 0.5),
        ];
        let v: Vec<_> = claims(&good).iter().map(Claim::verdict).collect();
        assert_eq!(v, [Verdict::Reproduced; 3]);
        let bad = vec![
            row("clock", "shared_mix", 100.0, 100.0, 3e6, 0.2),
            row("vma_scan", "shared_mix", 400.0, 100.0, 1e6, 1.0),
        ];
        let v: Vec<_> = claims(&bad).iter().map(Claim::verdict).collect();
        assert_eq!(v, [Verdict::Refuted; 3]);
        // A missing row is refuted, not reproduced.
        assert!(claims(&[]).iter().all(|c| c.verdict() == Verdict::Refuted));
    }

    #[test]
    fn bad_parameters_are_usage_errors() {
        assert!(matches!(
            ReclaimParams::new(1000, 1, 0, &[], false),
            Err(ExpError::Usage(_))
        ));
        assert!(matches!(
            ReclaimParams::new(1024, 0, 0, &[], false),
            Err(ExpError::Usage(_))
        ));
        let e = ReclaimParams::new(1024, 1, 0, &["zip".into()], false).unwrap_err();
        assert!(e.to_string().contains("zip"), "{e}");
        let p = ReclaimParams::new(1024, 1, 0, &["file_scan".into(), "zipf".into()], false).unwrap();
        assert_eq!(p.workloads, ["zipf", "file_scan"]);
    }
}
