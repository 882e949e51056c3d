//! `vmlab exp rmap`: the five reverse-map designs (config `rmap`: `object`,
//! `pte_chain`, `pte_pool`, `private_vma`, `none`) side by side.
//!
//! Three scenarios, each on fresh machines with `rmap` set per design:
//!
//! - `unmap`: the cost of `Machine::unmap_everywhere` (Linux
//!   `try_to_unmap`) on one page mapped by S processes, for each S of
//!   `--sharers` (1, 10, 100, 1000 by default). Every process has a
//!   footprint of `--footprint-pages` mapped pages ([`FOOTPRINT_PAGES`],
//!   1 MiB, by default), so that `none`,
//!   which walks every address space's page tables, has entries to scan.
//!   Two cases:
//!   - `forked` (`fork = cow`): a parent writes its 256 pages of private
//!     anonymous memory and forks S − 1 children; the page is the parent's
//!     first page, mapped read-only by all S. Each run rebuilds this state
//!     (the unmap frees the page: re-faulting it would give each process
//!     its own zero page). Not measured for `private_vma`, whose
//!     `fork = eager` copies every private page at fork, so no anonymous
//!     page is shared: the row says so in `skipped`.
//!   - `file`: S spawned processes each map one 1 MiB file (`SparseFile`)
//!     `MAP_SHARED` and read all its pages; the page is the file's first.
//!     Between runs every sharer reads the page again (it stays in the page
//!     cache, so the same frame is mapped again).
//!
//!   Each run times `unmap_everywhere` alone with `Instant` (median of
//!   `--runs`, after one unmeasured warm-up run), checks it cleared S
//!   entries, and checks the page is mapped nowhere after.
//! - `rmap_memory`: `Machine::rmap_bytes` on a fixed workload: a parent
//!   writes `--workload-size` (64 MiB) of private anonymous memory and maps
//!   one file of the same size `MAP_SHARED` and reads it, then forks
//!   `--processes` (64) children, each of which reads every page of the
//!   file. `fork = eager` for every design, so `private_vma` runs the same
//!   workload. The row also gives the page-table bytes
//!   (`page_table_pages × 4 KiB`, first pages only).
//! - `fork`: the latency of `Machine::fork_with` of a process with
//!   `--fork-size` (1 GiB) resident, as `vmlab exp fork` measures it (the
//!   parent writes every page before each run, one warm-up run, the fork
//!   timed alone, the child exits), per design under `fork = cow`, and
//!   under `shared_pt` too for `pte_chain` (seed 003's setting); under
//!   `eager` for `private_vma`, the only fork it allows.
//!
//! `claims` is a pure function of the rows, so its tests feed it rows that
//! reproduce and rows that refute every claim.

use super::fork::SparseFile;
use super::{
    check_all_freed, fmt_bytes, fmt_ns, host_mem_available, median_u64, ratio, row_of, Claim, Column, Comparison,
    ExpError, Format, Report, MIN_RUNS,
};
use crate::mm::addr::{Pfn, PAGE_SIZE};
use crate::mm::mm::uapi::{MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE};
use crate::mm::mm::BackingFile;
use crate::mm::system::config::{ForkName, RmapName};
use crate::mm::system::{ByteSize, Cpu, Machine, MachineConfig, Pid};
use serde_json::{json, Map, Value};
use std::time::Instant;

/// The designs, in row order.
pub const DESIGNS: [RmapName; 5] = [
    RmapName::Object,
    RmapName::PteChain,
    RmapName::PtePool,
    RmapName::PrivateVma,
    RmapName::None,
];
/// Sharer counts unless `--sharers` says otherwise.
pub const DEFAULT_SHARERS: [usize; 4] = [1, 10, 100, 1000];
/// Pages every process of the unmap scenario maps unless
/// `--footprint-pages` says otherwise (1 MiB).
pub const FOOTPRINT_PAGES: u64 = 256;
/// Children of the rmap-memory workload unless `--processes` says otherwise.
pub const DEFAULT_PROCESSES: usize = 64;
/// Anonymous bytes (and file bytes) of the rmap-memory workload.
pub const DEFAULT_WORKLOAD: u64 = 64 << 20;
/// Resident size of the fork-latency scenario.
pub const DEFAULT_FORK_SIZE: u64 = 1 << 30;
/// Seed 002: `none`'s unmap at least this many times `object`'s.
pub const UNMAP_SPEEDUP: f64 = 10.0;
/// Seed 000 #4: `object`'s rmap bytes at least this times `private_vma`'s.
pub const MEMORY_RATIO: f64 = 1.0;
/// Seed 003: cow fork at least this many times shared_pt's, under pte_chain.
pub const FORK_SPEEDUP: f64 = 20.0;
/// pte_chain's second page: its rmap bytes at least this times the page-table bytes.
pub const CHAIN_COST: f64 = 1.0;

/// The experiment's parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RmapParams {
    /// Processes sharing the unmapped page, ascending, each at least 1.
    pub sharers: Vec<usize>,
    /// Measured runs per row (after one warm-up), at least [`MIN_RUNS`].
    pub runs: usize,
    /// Pages every process of the unmap scenario maps.
    pub footprint_pages: u64,
    /// Children of the rmap-memory workload.
    pub processes: usize,
    /// Anonymous bytes and file bytes of the rmap-memory workload.
    pub workload: u64,
    /// Resident bytes of the fork-latency scenario.
    pub fork_size: u64,
}

impl RmapParams {
    /// The defaults (the sizes) with `runs` runs.
    pub fn new(runs: usize) -> Result<RmapParams, ExpError> {
        RmapParams {
            sharers: DEFAULT_SHARERS.to_vec(),
            runs,
            footprint_pages: FOOTPRINT_PAGES,
            processes: DEFAULT_PROCESSES,
            workload: DEFAULT_WORKLOAD,
            fork_size: DEFAULT_FORK_SIZE,
        }
        .checked()
    }

    /// A small run for tests and debug builds: 1 and 10 sharers, 4 children
    /// of a 4 MiB workload, a 16 MiB fork.
    pub fn quick(runs: usize) -> Result<RmapParams, ExpError> {
        RmapParams {
            sharers: vec![1, 10],
            runs,
            footprint_pages: FOOTPRINT_PAGES,
            processes: 4,
            workload: 4 << 20,
            fork_size: 16 << 20,
        }
        .checked()
    }

    /// The parameters, or the first one out of range.
    pub fn checked(mut self) -> Result<RmapParams, ExpError> {
        if self.runs < MIN_RUNS {
            return Err(ExpError::Usage(format!(
                "--runs {}: at least {MIN_RUNS} runs are needed (latencies are medians)",
                self.runs
            )));
        }
        self.sharers.sort_unstable();
        self.sharers.dedup();
        if self.sharers.is_empty() || self.sharers[0] == 0 || *self.sharers.last().unwrap_or(&0) > 10_000 {
            return Err(ExpError::Usage(format!(
                "--sharers {:?}: give 1 to 10000 processes per count",
                self.sharers
            )));
        }
        if !(1..=1 << 20).contains(&self.footprint_pages) {
            return Err(ExpError::Usage(format!(
                "--footprint-pages {}: must be 1..=1048576",
                self.footprint_pages
            )));
        }
        if !(1..=1024).contains(&self.processes) {
            return Err(ExpError::Usage(format!(
                "--processes {}: must be 1..=1024",
                self.processes
            )));
        }
        for (flag, v) in [("--workload-size", self.workload), ("--fork-size", self.fork_size)] {
            if v == 0 || !v.is_multiple_of(PAGE_SIZE) {
                return Err(ExpError::Usage(format!(
                    "{flag} {v}: must be a positive multiple of the 4 KiB page size"
                )));
            }
        }
        Ok(self)
    }

    /// The largest sharer count (where the unmap claims are evaluated).
    pub fn max_sharers(&self) -> usize {
        self.sharers.last().copied().unwrap_or(0)
    }
}

/// One row: a measurement of one design in one scenario (`None` where the
/// scenario has no such value).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Row {
    /// `unmap`, `rmap_memory` or `fork`.
    pub scenario: &'static str,
    /// The rmap design.
    pub policy: &'static str,
    /// The fork policy the machine ran with (or the fork measured).
    pub fork: &'static str,
    /// The unmap case: `forked` or `file`.
    pub case: Option<&'static str>,
    pub sharers: Option<usize>,
    /// Pages every process of the unmap scenario maps.
    pub footprint_pages: Option<u64>,
    pub runs: Option<usize>,
    pub unmap_ns: Option<u64>,
    pub ptes_cleared: Option<u64>,
    /// Bytes of the design's reverse map (unmap: just before the unmap;
    /// rmap_memory: the workload's; fork: with the child alive).
    pub rmap_bytes: Option<u64>,
    /// Bytes the fork added to the reverse map.
    pub rmap_bytes_added: Option<u64>,
    /// Page-table pages (unmap, rmap_memory: all the machine's; fork: those
    /// the fork allocated).
    pub page_table_pages: Option<u64>,
    pub fork_ns: Option<u64>,
    pub resident_bytes: Option<u64>,
    /// Processes of the rmap-memory workload (parent and children).
    pub processes: Option<usize>,
    /// Why the row has no measurement.
    pub skipped: Option<String>,
}

impl Row {
    fn json(&self) -> Map<String, Value> {
        let per_sharer = match (self.unmap_ns, self.sharers) {
            (Some(t), Some(s)) if s > 0 => Some((t as f64 / s as f64).round() as u64),
            _ => None,
        };
        let per_mib = match (self.fork_ns, self.resident_bytes) {
            (Some(t), Some(b)) if b > 0 => Some((t as f64 / (b as f64 / (1u64 << 20) as f64)).round() as u64),
            _ => None,
        };
        let pt_bytes = self.page_table_pages.map(|p| p * PAGE_SIZE);
        let rmap_per_pt = match (self.rmap_bytes, pt_bytes) {
            (Some(r), Some(p)) if p > 0 && self.scenario == "rmap_memory" => Some(r as f64 / p as f64),
            _ => None,
        };
        let (anon, file) = if self.scenario == "rmap_memory" {
            (self.resident_bytes, self.resident_bytes)
        } else {
            (None, None)
        };
        row_of(json!({
            "scenario": self.scenario,
            "policy": self.policy,
            "fork": self.fork,
            "case": self.case,
            "sharers": self.sharers,
            "footprint_pages": self.footprint_pages,
            "runs": self.runs,
            "unmap_ns": self.unmap_ns,
            "unmap_per_sharer_ns": per_sharer,
            "ptes_cleared": self.ptes_cleared,
            "rmap_bytes": self.rmap_bytes,
            "rmap_bytes_added": self.rmap_bytes_added,
            "page_table_pages": self.page_table_pages,
            "page_table_bytes": pt_bytes,
            "rmap_per_page_table_byte": rmap_per_pt,
            "fork_ns": self.fork_ns,
            "fork_per_mib_ns": per_mib,
            "resident_bytes": if self.scenario == "fork" { self.resident_bytes } else { None },
            "processes": self.processes,
            "anon_bytes_per_process": anon,
            "file_bytes": file,
            "skipped": self.skipped,
        }))
    }
}

fn columns() -> Vec<Column> {
    vec![
        Column::new("scenario", "scenario", Format::Text),
        Column::new("policy", "rmap", Format::Text),
        Column::new("fork", "fork", Format::Text),
        Column::new("case", "case", Format::Text),
        Column::new("sharers", "sharers", Format::Int),
        Column::new("unmap_ns", "unmap", Format::Nanos),
        Column::new("unmap_per_sharer_ns", "per sharer", Format::Nanos),
        Column::new("ptes_cleared", "ptes", Format::Int),
        Column::new("processes", "procs", Format::Int),
        Column::new("rmap_bytes", "rmap bytes", Format::Bytes),
        Column::new("page_table_bytes", "pt bytes", Format::Bytes),
        Column::new("rmap_per_page_table_byte", "rmap/pt", Format::Float),
        Column::new("resident_bytes", "resident", Format::Bytes),
        Column::new("fork_ns", "fork", Format::Nanos),
        Column::new("rmap_bytes_added", "rmap +fork", Format::Bytes),
    ]
}

const MIB: u64 = 1 << 20;

fn round_2mib(b: u64) -> u64 {
    b.div_ceil(2 * MIB) * (2 * MIB)
}

/// RAM for the unmap scenario: every process's own tables (root, PDPT, PD,
/// leaf; two frames each under pte_chain), with room to spare, the
/// parent's pages, the file, and 64 MiB of slack.
pub fn unmap_ram(max_sharers: usize, footprint_pages: u64) -> u64 {
    let tables = 2 * (footprint_pages.div_ceil(512) + 6);
    round_2mib(max_sharers as u64 * tables * PAGE_SIZE + 2 * footprint_pages * PAGE_SIZE + 64 * MIB)
}

/// RAM for the rmap-memory workload: every process's copy of the anonymous
/// memory (eager fork), the file's cache, every process's tables (twice
/// under pte_chain), and 64 MiB of slack.
pub fn workload_ram(processes: usize, bytes: u64) -> u64 {
    let procs = processes as u64 + 1;
    round_2mib(procs * bytes + bytes + procs * (2 * bytes / 512 * 2 + 16 * PAGE_SIZE) + 64 * MIB)
}

/// RAM for a fork of `size` bytes: two copies under eager, one otherwise,
/// with the tables of both (twice under pte_chain) and 64 MiB of slack.
pub fn fork_ram(size: u64, fork: ForkName) -> u64 {
    let copies = if fork == ForkName::Eager { 2 } else { 1 };
    round_2mib(copies * size + size / 64 + 64 * MIB)
}

/// The fork scenario's (design, fork) pairs.
pub fn fork_configs() -> Vec<(RmapName, ForkName)> {
    DESIGNS
        .iter()
        .flat_map(|&d| match d {
            RmapName::PrivateVma => vec![(d, ForkName::Eager)],
            RmapName::PteChain => vec![(d, ForkName::Cow), (d, ForkName::SharedPt)],
            _ => vec![(d, ForkName::Cow)],
        })
        .collect()
}

/// The fork policy the unmap machine of `design` runs with.
fn unmap_fork(design: RmapName) -> ForkName {
    if design == RmapName::PrivateVma {
        ForkName::Eager
    } else {
        ForkName::Cow
    }
}

/// Run the experiment. Each machine is `base` with `rmap` and `fork` set
/// and `ram` raised to what its scenario needs (never lowered). `build`
/// makes a machine from a config; `progress` gets one line per step.
pub fn run(
    base: &MachineConfig,
    params: &RmapParams,
    build: &dyn Fn(&MachineConfig) -> Result<Machine, String>,
    progress: &mut dyn FnMut(&str),
) -> Result<Report, ExpError> {
    let params = params.clone().checked()?;
    let ram_unmap = unmap_ram(params.max_sharers(), params.footprint_pages).max(base.ram.0);
    let ram_work = workload_ram(params.processes, params.workload).max(base.ram.0);
    let ram_fork = |f: ForkName| fork_ram(params.fork_size, f).max(base.ram.0);
    if let Some(avail) = host_mem_available() {
        let need = [ram_unmap, ram_work, ram_fork(ForkName::Eager)]
            .into_iter()
            .max()
            .unwrap_or(0);
        let need = need + need / 8;
        if need > avail {
            return Err(ExpError::Usage(format!(
                "the experiment needs about {} of host memory (the largest machine: {}), only {} is available; \
                 try --quick or smaller --processes / --workload-size / --fork-size",
                fmt_bytes(need.div_ceil(MIB) * MIB),
                fmt_bytes(need - need / 9),
                fmt_bytes((avail >> 20) << 20)
            )));
        }
    }
    let machine_for = |design: RmapName, fork: ForkName, ram: u64| -> Result<Machine, ExpError> {
        let mut cfg = base.clone();
        cfg.rmap = design;
        cfg.fork = fork;
        cfg.ram = ByteSize(ram);
        build(&cfg).map_err(|e| ExpError::Usage(format!("config error: {e}")))
    };

    let mut rows: Vec<Row> = Vec::new();
    for design in DESIGNS {
        let m = machine_for(design, unmap_fork(design), ram_unmap)?;
        let name = design.as_str();
        if design == RmapName::PrivateVma {
            for &s in &params.sharers {
                rows.push(Row {
                    scenario: "unmap",
                    policy: name,
                    fork: "eager",
                    case: Some("forked"),
                    sharers: Some(s),
                    footprint_pages: Some(params.footprint_pages),
                    skipped: Some(
                        "private_vma needs fork = eager, which copies every private page: no anonymous page is \
                         shared by forked processes (file case only)"
                            .into(),
                    ),
                    ..Row::default()
                });
            }
        } else {
            progress(&format!(
                "exp rmap: unmap {name} forked, sharers {:?}, {} runs (+1 warm-up)",
                params.sharers, params.runs
            ));
            let r = unmap_forked(&m, design, &params)?;
            log_unmap(progress, &r);
            rows.extend(r);
        }
        progress(&format!(
            "exp rmap: unmap {name} file, sharers {:?}, {} runs (+1 warm-up)",
            params.sharers, params.runs
        ));
        let r = unmap_file(&m, design, &params)?;
        log_unmap(progress, &r);
        rows.extend(r);
        check_all_freed(
            &m,
            &format!("unmap {name}"),
            "every process exited and the file was closed",
        )?;
    }
    for design in DESIGNS {
        let name = design.as_str();
        let m = machine_for(design, ForkName::Eager, ram_work)?;
        progress(&format!(
            "exp rmap: rmap memory {name}: {} children of a parent with {} anonymous + {} file",
            params.processes,
            fmt_bytes(params.workload),
            fmt_bytes(params.workload)
        ));
        let r = rmap_memory(&m, design, &params)?;
        progress(&format!(
            "exp rmap: rmap memory {name}: {} of rmap, {} of page tables",
            fmt_bytes(r.rmap_bytes.unwrap_or(0)),
            fmt_bytes(r.page_table_pages.unwrap_or(0) * PAGE_SIZE)
        ));
        rows.push(r);
        check_all_freed(
            &m,
            &format!("rmap memory {name}"),
            "every process exited and the file was closed",
        )?;
    }
    for (design, fork) in fork_configs() {
        let name = design.as_str();
        let m = machine_for(design, fork, ram_fork(fork))?;
        progress(&format!(
            "exp rmap: fork {name} {} {}: {} runs (+1 warm-up)",
            fork.as_str(),
            fmt_bytes(params.fork_size),
            params.runs
        ));
        let r = fork_latency(&m, design, fork, params.fork_size, params.runs)?;
        progress(&format!(
            "exp rmap: fork {name} {}: {}",
            fork.as_str(),
            fmt_ns(r.fork_ns.unwrap_or(0) as f64)
        ));
        rows.push(r);
        check_all_freed(&m, &format!("fork {name} {}", fork.as_str()), "every process exited")?;
    }

    let claims = claims(&rows, params.max_sharers(), params.fork_size);
    let mut used = base.clone();
    used.ram = ByteSize(ram_unmap);
    Ok(Report {
        experiment: "rmap".into(),
        config: serde_json::to_value(&used).unwrap_or(Value::Null),
        params: json!({
            "designs": DESIGNS.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
            "sharers": params.sharers,
            "runs": params.runs,
            "footprint_pages": params.footprint_pages,
            "footprint_bytes": params.footprint_pages * PAGE_SIZE,
            "unmap_ram": ByteSize(ram_unmap),
            "unmap_fork": DESIGNS.iter().map(|&d| (d.as_str().to_string(), Value::from(unmap_fork(d).as_str()))).collect::<Map<String, Value>>(),
            "forked_case_skipped": ["private_vma"],
            "workload_processes": params.processes + 1,
            "workload_children": params.processes,
            "workload_bytes": params.workload,
            "workload_fork": "eager",
            "workload_ram": ByteSize(ram_work),
            "fork_size": params.fork_size,
            "fork_configs": fork_configs().iter().map(|(d, f)| format!("{}/{}", d.as_str(), f.as_str())).collect::<Vec<_>>(),
            "fork_ram_eager": ByteSize(ram_fork(ForkName::Eager)),
            "fork_ram_cow": ByteSize(ram_fork(ForkName::Cow)),
        }),
        rows: rows.iter().map(Row::json).collect(),
        claims,
        columns: columns(),
        notes: vec![
            format!(
                "unmap: Machine::unmap_everywhere on one page mapped by `sharers` processes, each with a footprint of \
                 {} mapped pages ({}); medians of {} runs after one warm-up; machine RAM {}. \
                 forked (fork = cow): a parent wrote its anonymous pages and forked sharers - 1 children, the page \
                 is its first (the state is rebuilt each run). file: spawned processes each map one file of that size \
                 MAP_SHARED and read it, the page is the file's first (every sharer reads it again between runs). \
                 private_vma has no forked rows: its fork = eager copies every private page, so none is shared.",
                params.footprint_pages,
                fmt_bytes(params.footprint_pages * PAGE_SIZE),
                params.runs,
                fmt_bytes(ram_unmap)
            ),
            format!(
                "rmap_memory: fork = eager for every design; a parent wrote {} of anonymous memory and read a {} file \
                 mapped MAP_SHARED, then forked {} children, each of which read the whole file ({} processes); rmap \
                 bytes: Machine::rmap_bytes; pt bytes: page_table_pages x 4 KiB (first pages only: pte_chain's second \
                 pages are its rmap); machine RAM {}.",
                fmt_bytes(params.workload),
                fmt_bytes(params.workload),
                params.processes,
                params.processes + 1,
                fmt_bytes(ram_work)
            ),
            format!(
                "fork: Machine::fork_with of a process with {} written, timed alone (the parent writes every page \
                 before each run; the child exits after), medians of {} runs; rmap +fork: what the fork added to \
                 rmap_bytes; pt pages in the JSON: tables the fork allocated. private_vma forks eagerly (the only \
                 fork it allows); machine RAM {} (eager) / {} (cow, shared_pt).",
                fmt_bytes(params.fork_size),
                params.runs,
                fmt_bytes(ram_fork(ForkName::Eager)),
                fmt_bytes(ram_fork(ForkName::Cow))
            ),
        ],
    })
}

fn log_unmap(progress: &mut dyn FnMut(&str), rows: &[Row]) {
    for r in rows {
        progress(&format!(
            "exp rmap: unmap {} {} {} sharers: {}",
            r.policy,
            r.case.unwrap_or("-"),
            r.sharers.unwrap_or(0),
            fmt_ns(r.unmap_ns.unwrap_or(0) as f64)
        ));
    }
}

/// The frame `pid` maps at `va`, if a present entry maps one.
fn frame_at(m: &Machine, pid: Pid, va: u64) -> Option<Pfn> {
    let p = m.process(pid).ok()?;
    let e = p.mm.page_table().leaf(m.phys(), va)?.load();
    e.present().then(|| e.pfn())
}

/// The value stored in (or written to the file at) page `i`, generation `gen`.
fn value(i: u64, gen: u64) -> u64 {
    (1 << 63) | (gen << 32) | i
}

fn rt(what: String) -> ExpError {
    ExpError::Runtime(what)
}

/// One unmap row's measured runs (the warm-up left out).
#[derive(Default)]
struct UnmapSamples {
    ns: Vec<u64>,
    rmap_bytes: Vec<u64>,
    page_table_pages: Vec<u64>,
}

impl UnmapSamples {
    fn push(&mut self, ns: u64, rmap_bytes: u64, page_table_pages: u64) {
        self.ns.push(ns);
        self.rmap_bytes.push(rmap_bytes);
        self.page_table_pages.push(page_table_pages);
    }

    /// The row of `case` with `sharers` sharers: medians of the runs.
    fn row(&self, design: RmapName, case: &'static str, sharers: usize, params: &RmapParams) -> Row {
        Row {
            scenario: "unmap",
            policy: design.as_str(),
            fork: unmap_fork(design).as_str(),
            case: Some(case),
            sharers: Some(sharers),
            footprint_pages: Some(params.footprint_pages),
            runs: Some(params.runs),
            unmap_ns: median_u64(&self.ns),
            ptes_cleared: Some(sharers as u64),
            rmap_bytes: median_u64(&self.rmap_bytes),
            page_table_pages: median_u64(&self.page_table_pages),
            ..Row::default()
        }
    }
}

/// The forked case for every sharer count.
fn unmap_forked(m: &Machine, design: RmapName, params: &RmapParams) -> Result<Vec<Row>, ExpError> {
    let name = design.as_str();
    let err = |what: &str, e: &dyn std::fmt::Display| rt(format!("unmap {name} forked: {what}: {e}"));
    let fp = params.footprint_pages;
    let len = fp * PAGE_SIZE;
    let parent = m.spawn().map_err(|e| err("spawn", &e))?;
    let addr = m
        .mmap(parent, 0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        .map_err(|e| err("mmap", &e))?;
    let mut cpu = m.cpu(0).map_err(|e| err("taking CPU 0", &e))?;
    let mut rows = Vec::new();
    let mut gen = 0;
    for &s in &params.sharers {
        let mut samples = UnmapSamples::default();
        for run in 0..=params.runs {
            gen += 1;
            cpu.switch_to(parent).map_err(|e| err("switch to parent", &e))?;
            for i in 0..fp {
                cpu.store_u64(addr + i * PAGE_SIZE, value(i, gen))
                    .map_err(|f| err("parent store", &format!("{f:?}")))?;
            }
            let mut kids = Vec::with_capacity(s - 1);
            for _ in 1..s {
                kids.push(m.fork(parent).map_err(|e| err("fork", &e))?);
            }
            let frame = frame_at(m, parent, addr).ok_or_else(|| err("frame", &"the parent's page is not mapped"))?;
            if run == 0 {
                let n = m.mappings_of(frame).len();
                if n != s {
                    return Err(err("mappings_of", &format!("{n} mappings of the page, expected {s}")));
                }
            }
            let rb = m.rmap_bytes();
            let pt = m.phys().page_table_pages() as u64;
            let t = Instant::now();
            let cleared = m.unmap_everywhere(frame);
            let dt = t.elapsed().as_nanos() as u64;
            if cleared != s {
                return Err(err(
                    "unmap_everywhere",
                    &format!("cleared {cleared} entries, expected {s}"),
                ));
            }
            if frame_at(m, parent, addr) == Some(frame) {
                return Err(err("unmap_everywhere", &"the parent still maps the page"));
            }
            if let Some(&k) = kids.last() {
                if frame_at(m, k, addr) == Some(frame) {
                    return Err(err("unmap_everywhere", &"a child still maps the page"));
                }
            }
            // The page's data went with its last mapping: it reads as zero.
            let got = cpu.load_u64(addr).map_err(|f| err("parent load", &format!("{f:?}")))?;
            if got != 0 {
                return Err(err(
                    "parent load",
                    &format!("the unmapped page reads {got:#x}, expected 0"),
                ));
            }
            // The newest child's PTEs are at the head of pte_chain's chains.
            for &k in kids.iter().rev() {
                m.exit(k).map_err(|e| err("exit child", &e))?;
            }
            if run > 0 {
                samples.push(dt, rb, pt);
            }
        }
        rows.push(samples.row(design, "forked", s, params));
    }
    drop(cpu);
    m.exit(parent).map_err(|e| err("exit parent", &e))?;
    Ok(rows)
}

/// Read every page of `pids`' mapping at `addr` and check each holds `want(i)`.
fn read_all(cpu: &mut Cpu<'_>, pid: Pid, addr: u64, pages: u64, want: &dyn Fn(u64) -> u64) -> Result<(), String> {
    cpu.switch_to(pid).map_err(|e| format!("switch: {e}"))?;
    for i in 0..pages {
        let got = cpu
            .load_u64(addr + i * PAGE_SIZE)
            .map_err(|f| format!("load of page {i}: {f:?}"))?;
        if got != want(i) {
            return Err(format!("page {i} holds {got:#x}, expected {:#x}", want(i)));
        }
    }
    Ok(())
}

/// The file case for every sharer count (processes are added as the count grows).
fn unmap_file(m: &Machine, design: RmapName, params: &RmapParams) -> Result<Vec<Row>, ExpError> {
    let name = design.as_str();
    let err = |what: &str, e: &dyn std::fmt::Display| rt(format!("unmap {name} file: {what}: {e}"));
    let fp = params.footprint_pages;
    let len = fp * PAGE_SIZE;
    let file = SparseFile::new(len);
    for i in 0..fp {
        file.write_at(i * PAGE_SIZE, &value(i, 0).to_le_bytes())
            .map_err(|e| err("file write", &e))?;
    }
    let fd = m.open_file(Box::new(file.clone()));
    let mut cpu = m.cpu(0).map_err(|e| err("taking CPU 0", &e))?;
    let mut procs: Vec<(Pid, u64)> = Vec::new();
    let mut rows = Vec::new();
    for &s in &params.sharers {
        while procs.len() < s {
            let pid = m.spawn().map_err(|e| err("spawn", &e))?;
            let a = m
                .mmap_fd(pid, 0, len, PROT_READ, MAP_SHARED, fd, 0)
                .map_err(|e| err("mmap", &e))?;
            read_all(&mut cpu, pid, a, fp, &|i| value(i, 0)).map_err(|e| err("read", &e))?;
            procs.push((pid, a));
        }
        // The page was unmapped at the end of the previous count: every
        // process maps it again.
        for &(pid, a) in &procs {
            read_all(&mut cpu, pid, a, 1, &|i| value(i, 0)).map_err(|e| err("re-fault", &e))?;
        }
        let (p0, a0) = procs[0];
        let frame = frame_at(m, p0, a0).ok_or_else(|| err("frame", &"the file's page is not mapped"))?;
        let n = m.mappings_of(frame).len();
        if n != s {
            return Err(err("mappings_of", &format!("{n} mappings of the page, expected {s}")));
        }
        let mut samples = UnmapSamples::default();
        for run in 0..=params.runs {
            if run > 0 {
                // Every sharer maps the page again, from the page cache.
                for &(pid, a) in &procs {
                    read_all(&mut cpu, pid, a, 1, &|i| value(i, 0)).map_err(|e| err("re-fault", &e))?;
                    if frame_at(m, pid, a) != Some(frame) {
                        return Err(err("re-fault", &"the page came back in another frame"));
                    }
                }
            }
            let rb = m.rmap_bytes();
            let pt = m.phys().page_table_pages() as u64;
            let t = Instant::now();
            let cleared = m.unmap_everywhere(frame);
            let dt = t.elapsed().as_nanos() as u64;
            if cleared != s {
                return Err(err(
                    "unmap_everywhere",
                    &format!("cleared {cleared} entries, expected {s}"),
                ));
            }
            let left = m.mappings_of(frame);
            if !left.is_empty() {
                return Err(err(
                    "unmap_everywhere",
                    &format!("{} mappings of the page left, first {:?}", left.len(), left[0]),
                ));
            }
            if run > 0 {
                samples.push(dt, rb, pt);
            }
        }
        rows.push(samples.row(design, "file", s, params));
    }
    drop(cpu);
    for &(pid, _) in procs.iter().rev() {
        m.exit(pid).map_err(|e| err("exit", &e))?;
    }
    m.close(fd).map_err(|e| err("close", &e))?;
    Ok(rows)
}

/// The fixed rmap-memory workload (see the module docs).
fn rmap_memory(m: &Machine, design: RmapName, params: &RmapParams) -> Result<Row, ExpError> {
    let name = design.as_str();
    let err = |what: &str, e: &dyn std::fmt::Display| rt(format!("rmap memory {name}: {what}: {e}"));
    let size = params.workload;
    let pages = size / PAGE_SIZE;
    let file = SparseFile::new(size);
    for i in 0..pages {
        file.write_at(i * PAGE_SIZE, &value(i, 0).to_le_bytes())
            .map_err(|e| err("file write", &e))?;
    }
    let fd = m.open_file(Box::new(file.clone()));
    let parent = m.spawn().map_err(|e| err("spawn", &e))?;
    let anon = m
        .mmap(parent, 0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        .map_err(|e| err("mmap", &e))?;
    let fa = m
        .mmap_fd(parent, 0, size, PROT_READ, MAP_SHARED, fd, 0)
        .map_err(|e| err("mmap file", &e))?;
    let mut cpu = m.cpu(0).map_err(|e| err("taking CPU 0", &e))?;
    cpu.switch_to(parent).map_err(|e| err("switch", &e))?;
    for i in 0..pages {
        cpu.store_u64(anon + i * PAGE_SIZE, value(i, 1))
            .map_err(|f| err("store", &format!("{f:?}")))?;
    }
    read_all(&mut cpu, parent, fa, pages, &|i| value(i, 0)).map_err(|e| err("read file", &e))?;
    let mut kids = Vec::with_capacity(params.processes);
    for _ in 0..params.processes {
        let k = m.fork(parent).map_err(|e| err("fork", &e))?;
        read_all(&mut cpu, k, fa, pages, &|i| value(i, 0)).map_err(|e| err("child read file", &e))?;
        for i in [0, pages - 1] {
            let got = cpu
                .load_u64(anon + i * PAGE_SIZE)
                .map_err(|f| err("child load", &format!("{f:?}")))?;
            if got != value(i, 1) {
                return Err(err("child load", &format!("page {i} holds {got:#x}")));
            }
        }
        kids.push(k);
    }
    let rmap_bytes = m.rmap_bytes();
    let pt = m.phys().page_table_pages() as u64;
    drop(cpu);
    for &k in kids.iter().rev() {
        m.exit(k).map_err(|e| err("exit child", &e))?;
    }
    m.exit(parent).map_err(|e| err("exit parent", &e))?;
    m.close(fd).map_err(|e| err("close", &e))?;
    Ok(Row {
        scenario: "rmap_memory",
        policy: name,
        fork: "eager",
        rmap_bytes: Some(rmap_bytes),
        page_table_pages: Some(pt),
        resident_bytes: Some(size),
        processes: Some(params.processes + 1),
        ..Row::default()
    })
}

/// Fork latency of a process with `size` bytes written (see the module docs).
fn fork_latency(m: &Machine, design: RmapName, fork: ForkName, size: u64, runs: usize) -> Result<Row, ExpError> {
    let name = design.as_str();
    let err = |what: &str, e: &dyn std::fmt::Display| {
        rt(format!(
            "fork {name} {} {}: {what}: {e}",
            fork.as_str(),
            fmt_bytes(size)
        ))
    };
    let pages = size / PAGE_SIZE;
    let parent = m.spawn().map_err(|e| err("spawn", &e))?;
    let addr = m
        .mmap(parent, 0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        .map_err(|e| err("mmap", &e))?;
    let mut cpu = m.cpu(0).map_err(|e| err("taking CPU 0", &e))?;
    let (mut times, mut pts, mut rbytes, mut added) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 0..=runs {
        let gen = run as u64 + 1;
        cpu.switch_to(parent).map_err(|e| err("switch", &e))?;
        for i in 0..pages {
            cpu.store_u64(addr + i * PAGE_SIZE, value(i, gen))
                .map_err(|f| err("store", &format!("{f:?}")))?;
        }
        let pt0 = m.phys().page_table_pages() as u64;
        let rb0 = m.rmap_bytes();
        let t = Instant::now();
        let (child, _) = m.fork_with(parent, fork.policy()).map_err(|e| err("fork", &e))?;
        let dt = t.elapsed().as_nanos() as u64;
        let pt1 = m.phys().page_table_pages() as u64;
        let rb1 = m.rmap_bytes();
        // The child sees the parent's values.
        cpu.switch_to(child).map_err(|e| err("switch to child", &e))?;
        for i in [0, pages / 2, pages - 1] {
            let got = cpu
                .load_u64(addr + i * PAGE_SIZE)
                .map_err(|f| err("child load", &format!("{f:?}")))?;
            if got != value(i, gen) {
                return Err(err("child load", &format!("page {i} holds {got:#x}")));
            }
        }
        m.exit(child).map_err(|e| err("exit child", &e))?;
        if run > 0 {
            times.push(dt);
            pts.push(pt1.saturating_sub(pt0));
            rbytes.push(rb1);
            added.push(rb1.saturating_sub(rb0));
        }
    }
    drop(cpu);
    m.exit(parent).map_err(|e| err("exit parent", &e))?;
    Ok(Row {
        scenario: "fork",
        policy: name,
        fork: fork.as_str(),
        runs: Some(runs),
        fork_ns: median_u64(&times),
        page_table_pages: median_u64(&pts),
        rmap_bytes: median_u64(&rbytes),
        rmap_bytes_added: median_u64(&added),
        resident_bytes: Some(size),
        ..Row::default()
    })
}

fn find<'a>(rows: &'a [Row], scenario: &str, policy: &str, pred: impl Fn(&Row) -> bool) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.scenario == scenario && r.policy == policy && r.skipped.is_none() && pred(r))
}

fn num(x: Option<u64>) -> f64 {
    x.map_or(f64::NAN, |v| v as f64)
}

/// The claims, from the rows: the unmap claims at `sharers`, the fork claim
/// at `fork_size`. A missing row gives a NaN metric (refuted).
pub fn claims(rows: &[Row], sharers: usize, fork_size: u64) -> Vec<Claim> {
    let unmap = |policy: &str, case: &str| {
        num(find(rows, "unmap", policy, |r| {
            r.case == Some(case) && r.sharers == Some(sharers)
        })
        .and_then(|r| r.unmap_ns))
    };
    let unmap_claim = |case: &str, what: &str| {
        let fp = find(rows, "unmap", "object", |r| {
            r.case == Some(case) && r.sharers == Some(sharers)
        })
        .and_then(|r| r.footprint_pages)
        .map_or_else(|| "?".to_string(), |p| p.to_string());
        Claim::new(
            "002",
            format!(
                "A reverse map makes unmapping a shared page cheap: with {sharers} processes mapping one {what} page \
                 (each with {fp} pages mapped), finding and clearing its PTEs without one (none: walk \
                 every address space's page tables) costs at least {UNMAP_SPEEDUP} times what the object rmap does"
            ),
            format!("none unmap_ns / object unmap_ns, {case} case, {sharers} sharers"),
            ratio(unmap("none", case), unmap("object", case)),
            Comparison::AtLeast(UNMAP_SPEEDUP),
        )
    };
    let mem = |policy: &str| find(rows, "rmap_memory", policy, |_| true);
    let rb = |policy: &str| num(mem(policy).and_then(|r| r.rmap_bytes));
    let procs = mem("object").and_then(|r| r.processes).unwrap_or(0);
    let fork = |f: &str| {
        num(find(rows, "fork", "pte_chain", |r| {
            r.fork == f && r.resident_bytes == Some(fork_size)
        })
        .and_then(|r| r.fork_ns))
    };
    let l = fmt_bytes(fork_size);
    let chain = mem("pte_chain");
    let chain_pt = num(chain.and_then(|r| r.page_table_pages.map(|p| p * PAGE_SIZE)));
    vec![
        unmap_claim("forked", "forked anonymous"),
        unmap_claim("file", "shared file"),
        Claim::new(
            "000 #4",
            format!(
                "PrivateVMA: a private page pointing at its one VMA (fork = eager, no anon_vma chain) needs no more \
                 reverse-map memory than the object rmap: {procs} processes forked eagerly, each with its anonymous \
                 copy and one shared file mapping"
            ),
            "object rmap_bytes / private_vma rmap_bytes, rmap_memory workload",
            ratio(rb("object"), rb("private_vma")),
            Comparison::AtLeast(MEMORY_RATIO),
        ),
        Claim::new(
            "003",
            format!(
                "With pte chains (the 2.5-mm setting the shared page-table patch measured), sharing page tables at \
                 fork also saves setting up a chain entry per PTE: fork of a {l} process at least {FORK_SPEEDUP} \
                 times faster under shared_pt than cow"
            ),
            format!("pte_chain cow fork_ns / pte_chain shared_pt fork_ns at {l}"),
            ratio(fork("cow"), fork("shared_pt")),
            Comparison::AtLeast(FORK_SPEEDUP),
        ),
        Claim::new(
            "002",
            "What pte_chain's second page costs (reported): the chain's link words, one per PTE in the second page \
             of every page table, plus a head word per frame, take at least as much memory as the page tables \
             themselves",
            "pte_chain rmap_bytes / pte_chain page_table_bytes, rmap_memory workload",
            ratio(num(chain.and_then(|r| r.rmap_bytes)), chain_pt),
            Comparison::AtLeast(CHAIN_COST),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exp::Verdict;

    fn unmap_row(policy: &'static str, case: &'static str, sharers: usize, ns: u64) -> Row {
        Row {
            scenario: "unmap",
            policy,
            fork: "cow",
            case: Some(case),
            sharers: Some(sharers),
            footprint_pages: Some(256),
            runs: Some(5),
            unmap_ns: Some(ns),
            ptes_cleared: Some(sharers as u64),
            rmap_bytes: Some(1000),
            page_table_pages: Some(100),
            ..Row::default()
        }
    }

    fn mem_row(policy: &'static str, rmap: u64, pt_pages: u64) -> Row {
        Row {
            scenario: "rmap_memory",
            policy,
            fork: "eager",
            rmap_bytes: Some(rmap),
            page_table_pages: Some(pt_pages),
            resident_bytes: Some(64 << 20),
            processes: Some(65),
            ..Row::default()
        }
    }

    fn fork_row(policy: &'static str, fork: &'static str, ns: u64) -> Row {
        Row {
            scenario: "fork",
            policy,
            fork,
            runs: Some(5),
            fork_ns: Some(ns),
            resident_bytes: Some(1 << 30),
            ..Row::default()
        }
    }

    /// Rows: none's and object's unmap at 1000 sharers, the memory of
    /// object, private_vma and pte_chain (with its page tables), pte_chain's
    /// cow and shared_pt forks.
    fn rows(none_ns: u64, object_ns: u64, object_rb: u64, pv_rb: u64, chain_rb: u64, cow: u64, spt: u64) -> Vec<Row> {
        let mut v = Vec::new();
        for case in ["forked", "file"] {
            v.push(unmap_row("none", case, 1000, none_ns));
            v.push(unmap_row("object", case, 1000, object_ns));
            v.push(unmap_row("none", case, 10, 1));
            v.push(unmap_row("object", case, 10, 1));
        }
        v.push(Row {
            skipped: Some("n/a".into()),
            ..unmap_row("private_vma", "forked", 1000, 0)
        });
        v.push(mem_row("object", object_rb, 100));
        v.push(mem_row("private_vma", pv_rb, 100));
        v.push(mem_row("pte_chain", chain_rb, 100));
        v.push(fork_row("pte_chain", "cow", cow));
        v.push(fork_row("pte_chain", "shared_pt", spt));
        v.push(fork_row("object", "cow", 1));
        v
    }

    fn verdicts(rows: &[Row]) -> Vec<Verdict> {
        claims(rows, 1000, 1 << 30).iter().map(|c| c.verdict()).collect()
    }

    #[test]
    fn rows_that_meet_every_claim_reproduce_it() {
        // none 20x object; object 2x private_vma; cow 30x shared_pt;
        // pte_chain's rmap 1.5x its 100 page-table pages.
        let r = rows(2_000_000, 100_000, 2000, 1000, 600 * 1024, 30_000_000, 1_000_000);
        assert_eq!(verdicts(&r), vec![Verdict::Reproduced; 5]);
        let c = claims(&r, 1000, 1 << 30);
        assert_eq!(c[0].main().measured(), 20.0);
        assert_eq!(c[2].main().measured(), 2.0);
        assert_eq!(c[3].main().measured(), 30.0);
        assert_eq!(c[4].main().measured(), 1.5);
        assert_eq!(c[0].seed(), "002");
        assert_eq!(c[2].seed(), "000 #4");
        assert_eq!(c[3].seed(), "003");
    }

    #[test]
    fn rows_that_miss_every_claim_refute_it() {
        // none only 2x object; object 0.25x private_vma; cow 5x shared_pt;
        // pte_chain's rmap 0.4x its page tables.
        let r = rows(200_000, 100_000, 250, 1000, 160 * 1024, 5_000_000, 1_000_000);
        assert_eq!(verdicts(&r), vec![Verdict::Refuted; 5]);
    }

    #[test]
    fn between_the_bands_is_partial_and_missing_rows_refute() {
        // none 6x object (>= 5), object 0.6x, cow 12x, pte_chain 0.8x.
        let r = rows(600_000, 100_000, 600, 1000, 320 * 1024, 12_000_000, 1_000_000);
        assert_eq!(verdicts(&r), vec![Verdict::Partial; 5]);
        // The unmap claims read the rows at the claimed sharer count only.
        assert_eq!(claims(&r, 10, 1 << 30)[0].main().measured(), 1.0);
        // No rows at all: every metric is NaN, every claim refuted, no panic.
        assert_eq!(verdicts(&[]), vec![Verdict::Refuted; 5]);
        // A skipped row is not a measurement.
        let only_skipped = vec![Row {
            skipped: Some("n/a".into()),
            ..unmap_row("object", "forked", 1000, 5)
        }];
        assert!(!claims(&only_skipped, 1000, 1 << 30)[0].main().measured().is_finite());
    }

    #[test]
    fn params_are_checked() {
        assert!(RmapParams::new(4).is_err());
        let p = RmapParams::new(5).unwrap();
        assert_eq!(p.max_sharers(), 1000);
        let bad = RmapParams {
            sharers: vec![0, 3],
            ..p.clone()
        };
        assert!(matches!(bad.checked(), Err(ExpError::Usage(_))));
        let unsorted = RmapParams {
            sharers: vec![10, 1, 10],
            ..p.clone()
        };
        assert_eq!(unsorted.checked().unwrap().sharers, vec![1, 10]);
        let odd = RmapParams { workload: 5000, ..p };
        assert!(odd.checked().is_err());
        assert_eq!(fork_configs().len(), 6);
    }

    #[test]
    fn quick_run_measures_every_design() {
        let base = MachineConfig::default();
        let params = RmapParams {
            sharers: vec![1, 3],
            ..RmapParams::quick(5).unwrap()
        };
        let build = |c: &MachineConfig| Machine::new(c).map_err(|e| e.to_string());
        let r = run(&base, &params, &build, &mut |_| {}).unwrap();
        // 5 designs x 2 cases x 2 counts, 5 memory rows, 6 fork rows.
        assert_eq!(r.rows.len(), 20 + 5 + 6);
        for d in DESIGNS {
            assert!(r
                .rows
                .iter()
                .any(|row| row["policy"] == d.as_str() && row["scenario"] == "unmap"));
        }
        for row in r.rows.iter().filter(|row| row["scenario"] == "unmap") {
            if row["skipped"].is_null() {
                assert_eq!(row["ptes_cleared"], row["sharers"], "{row:?}");
                assert!(row["unmap_ns"].as_u64().unwrap() > 0, "{row:?}");
            } else {
                assert_eq!(row["policy"], "private_vma");
                assert_eq!(row["case"], "forked");
            }
        }
        let mem = |p: &str| {
            r.rows
                .iter()
                .find(|row| row["scenario"] == "rmap_memory" && row["policy"] == p)
                .unwrap()
        };
        assert_eq!(mem("none")["rmap_bytes"], 0);
        // pte_chain: a second page per table, and a head word per frame.
        let chain = mem("pte_chain");
        assert!(chain["rmap_bytes"].as_u64().unwrap() > chain["page_table_bytes"].as_u64().unwrap());
        // Every design's workload has the same page tables (first pages).
        for d in DESIGNS {
            assert_eq!(mem(d.as_str())["page_table_pages"], chain["page_table_pages"], "{d:?}");
        }
        assert_eq!(r.claims.len(), 5);
    }
}
