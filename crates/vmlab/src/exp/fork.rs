//! `vmlab exp fork`: the three fork designs side by side, and the host
//! kernel's `fork()` as an outside anchor.
//!
//! For each resident size (16 MiB doubling up to the largest, 1 GiB by
//! default) and each policy (`cow`, `shared_pt`, `eager`), a process maps the
//! size and writes every page; then, per run, the experiment times
//! `Machine::fork_with` alone (`fork_ns`), counts the page-table pages the
//! fork allocated (`page_table_pages`, root of the child included), and
//! times the child's first store to every page through a CPU bound to the
//! child (`first_writes_ns`, all pages together). Before each run the parent
//! writes every page again, so every fork starts from the same state (all
//! pages dirty and writable); after it both processes' values are checked.
//! Each (policy, size) starts with one unmeasured warm-up run, so host page
//! faults on the lazily zeroed simulated RAM are not counted.
//!
//! The host rows come from a helper process: the `vmlab` executable spawned
//! afresh in its hidden `__fork-anchor` mode (never the experiment's own
//! process, which holds the simulated RAM): it maps and writes the same number of bytes (4 KiB pages, transparent
//! huge pages off), times `fork()` in the parent with a child that exits at
//! once, and has other children time their first write to every page.
//!
//! The claims (seeds 003 and 000) are evaluated at the largest size.

use super::{
    fmt_bytes, fmt_ns, host_mem_available, median_u64, ratio, Check, Claim, Column, Comparison, ExpError, Format,
    Report, MIN_RUNS,
};
use crate::mm::addr::PAGE_SIZE;
use crate::mm::mm::uapi::{MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE};
use crate::mm::mm::{ForkPolicy, ForkReport};
use crate::mm::system::config::ForkName;
use crate::mm::system::{ByteSize, Machine, MachineConfig, Pid};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The smallest resident size, and the step sizes double from.
pub const MIN_SIZE: u64 = 16 << 20;
/// The largest resident size unless `--max-size` says otherwise.
pub const DEFAULT_MAX_SIZE: u64 = 1 << 30;
/// The policies, in the order rows are shown.
pub const POLICIES: [ForkName; 3] = [ForkName::Cow, ForkName::SharedPt, ForkName::Eager];
/// The hidden argument that runs the `vmlab` executable as the host anchor.
pub const ANCHOR_ARG: &str = "__fork-anchor";

/// Claim 1 (seed 003): shared_pt's fork at least this many times faster than cow's.
pub const SPEEDUP_THRESHOLD: f64 = 20.0;
/// Claim 2 (seed 003): cow's fork allocates at least this many times the
/// page-table pages shared_pt's does. At 1 GiB a cow child needs 512-513
/// leaf tables plus 3-4 upper-level ones, a shared_pt child only the upper
/// levels, so the ideal ratio there is ~130-170; 100 means "shared_pt saves
/// at least 99% of the page-table memory a fork creates", which is what
/// "hundreds of MB" across a large server's processes needs.
pub const PT_SAVING_THRESHOLD: f64 = 100.0;
/// Claim 3 (seed 000): the band (eager total / cow total) must fall in for
/// "eager pays at fork what cow pays later" (same cost within 2x either way).
pub const EAGER_BAND: (f64, f64) = (0.5, 2.0);

/// What to measure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForkParams {
    /// Resident sizes in bytes, ascending.
    pub sizes: Vec<u64>,
    /// Measured runs per (policy, size), at least [`MIN_RUNS`].
    pub runs: usize,
    /// The host anchor binary; `None` to look for it with [`find_anchor`].
    pub anchor: Option<PathBuf>,
}

impl ForkParams {
    /// Sizes 16 MiB, 32 MiB, ... up to `max_size` (and `max_size` itself if it
    /// is not on that doubling ladder), `runs` runs each.
    pub fn new(max_size: u64, runs: usize) -> Result<ForkParams, ExpError> {
        if runs < MIN_RUNS {
            return Err(ExpError::Usage(format!(
                "--runs {runs}: at least {MIN_RUNS} runs are needed (latencies are medians)"
            )));
        }
        Ok(ForkParams {
            sizes: sizes_up_to(max_size)?,
            runs,
            anchor: None,
        })
    }
}

/// The resident sizes for `max`: 16 MiB doubling while ≤ `max`, then `max`
/// itself if it is not one of them. `max` must be at least 16 MiB and a
/// multiple of the 4 KiB page.
pub fn sizes_up_to(max: u64) -> Result<Vec<u64>, ExpError> {
    if max < MIN_SIZE {
        return Err(ExpError::Usage(format!(
            "--max-size {}: must be at least {}",
            fmt_bytes(max),
            fmt_bytes(MIN_SIZE)
        )));
    }
    if !max.is_multiple_of(PAGE_SIZE) {
        return Err(ExpError::Usage(format!(
            "--max-size {max}: must be a multiple of the 4 KiB page size"
        )));
    }
    let mut v = Vec::new();
    let mut s = MIN_SIZE;
    while s <= max {
        v.push(s);
        match s.checked_mul(2) {
            Some(n) => s = n,
            None => break,
        }
    }
    if v.last() != Some(&max) {
        v.push(max);
    }
    Ok(v)
}

/// Simulated RAM the machine needs for a process of `size` bytes and its
/// fully copied child: both copies, four times their page tables, and 32 MiB
/// of slack, rounded up to 2 MiB.
pub fn ram_needed(size: u64) -> u64 {
    let raw = 2 * size + size / 128 + (32 << 20);
    raw.div_ceil(2 << 20) * (2 << 20)
}

/// The executable to run as the host anchor: this one (the `vmlab` binary),
/// in its hidden `__fork-anchor` mode.
pub fn find_anchor() -> Result<PathBuf, ExpError> {
    std::env::current_exe().map_err(|e| ExpError::Runtime(format!("cannot locate the running executable: {e}")))
}

/// One (policy, size): medians over the runs, and what the fork did.
#[derive(Clone, Debug, PartialEq)]
struct Measured {
    policy: &'static str,
    size: u64,
    runs: usize,
    fork_ns: u64,
    first_writes_ns: u64,
    /// Page-table pages the fork allocated (vmlab only).
    pt_fork: Option<u64>,
    /// Page-table pages allocated from just before the fork to after the
    /// child's first writes (vmlab only).
    pt_after_writes: Option<u64>,
    report: Option<ForkReport>,
    /// Upper-level tables (root, PDPT, PD) a child needs to map the region (vmlab only).
    upper_tables: Option<u64>,
}

impl Measured {
    fn row(&self) -> serde_json::Map<String, Value> {
        let mib = self.size as f64 / (1u64 << 20) as f64;
        let pages = (self.size / PAGE_SIZE) as f64;
        let v = json!({
            "policy": self.policy,
            "resident_bytes": self.size,
            "runs": self.runs,
            "fork_ns": self.fork_ns,
            "fork_per_mib_ns": (self.fork_ns as f64 / mib).round(),
            "page_table_pages": self.pt_fork,
            "page_table_pages_after_writes": self.pt_after_writes,
            "first_writes_ns": self.first_writes_ns,
            "first_write_per_page_ns": (self.first_writes_ns as f64 / pages).round(),
            "tables_shared": self.report.map(|r| r.tables_shared),
            "ptes_copied": self.report.map(|r| r.ptes_copied),
            "pages_copied": self.report.map(|r| r.pages_copied),
        });
        match v {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        }
    }
}

/// The columns of the human table.
fn columns() -> Vec<Column> {
    vec![
        Column::new("policy", "policy", Format::Text),
        Column::new("resident_bytes", "resident", Format::Bytes),
        Column::new("fork_ns", "fork", Format::Nanos),
        Column::new("fork_per_mib_ns", "fork/MiB", Format::Nanos),
        Column::new("page_table_pages", "pt pages (fork)", Format::Int),
        Column::new("page_table_pages_after_writes", "pt pages (+writes)", Format::Int),
        Column::new("first_writes_ns", "first writes", Format::Nanos),
        Column::new("first_write_per_page_ns", "per page", Format::Nanos),
        Column::new("tables_shared", "tables shared", Format::Int),
        Column::new("pages_copied", "pages copied", Format::Int),
    ]
}

/// Run the experiment. `base` is the config from defaults, `--config` and
/// `--set`; each policy's machine is `base` with `fork` set to the policy and
/// `ram` raised to [`ram_needed`] for the largest size (never lowered).
/// `build` makes a machine from a config (the CLI passes its own, which may
/// open the config's files). `progress` gets one line per step.
pub fn run(
    base: &MachineConfig,
    params: &ForkParams,
    build: &dyn Fn(&MachineConfig) -> Result<Machine, String>,
    progress: &mut dyn FnMut(&str),
) -> Result<Report, ExpError> {
    if params.runs < MIN_RUNS {
        return Err(ExpError::Usage(format!(
            "--runs {}: at least {MIN_RUNS} runs are needed",
            params.runs
        )));
    }
    let Some(&max) = params.sizes.iter().max() else {
        return Err(ExpError::Usage("no resident sizes to measure".into()));
    };
    let anchor = match &params.anchor {
        Some(p) => p.clone(),
        None => find_anchor()?,
    };
    let ram = ram_needed(max).max(base.ram.0);
    if let Some(avail) = host_mem_available() {
        // The eager machine touches nearly all of its RAM; the frame
        // descriptors and the anchor's pages come on top.
        let need = ram_needed(max) + max / 8;
        if need > avail {
            return Err(ExpError::Usage(format!(
                "--max-size {}: the experiment needs about {} of host memory (the eager policy holds two copies), \
                 but only {} is available",
                fmt_bytes(max),
                fmt_bytes(need.div_ceil(1 << 20) << 20),
                fmt_bytes((avail >> 20) << 20)
            )));
        }
    }

    let mut results: Vec<Measured> = Vec::new();
    let mut used_cfg = base.clone();
    used_cfg.ram = ByteSize(ram);
    for name in POLICIES {
        let mut cfg = base.clone();
        cfg.ram = ByteSize(ram);
        cfg.fork = name;
        let machine = build(&cfg).map_err(|e| ExpError::Usage(format!("config error: {e}")))?;
        for &size in &params.sizes {
            progress(&format!(
                "exp fork: {} {}: {} runs (+1 warm-up)",
                name.as_str(),
                fmt_bytes(size),
                params.runs
            ));
            let m = measure(&machine, name, size, params.runs)?;
            progress(&format!(
                "exp fork: {} {}: fork {}, first writes {}",
                name.as_str(),
                fmt_bytes(size),
                fmt_ns(m.fork_ns as f64),
                fmt_ns(m.first_writes_ns as f64)
            ));
            results.push(m);
        }
        machine
            .check()
            .map_err(|e| ExpError::Runtime(format!("{}: invariant check failed: {e}", name.as_str())))?;
        let st = machine.stats();
        if st.frames_used != machine.reserved_frames() as u64 {
            return Err(ExpError::Runtime(format!(
                "{}: {} frames still in use after every process exited (expected {})",
                name.as_str(),
                st.frames_used,
                machine.reserved_frames()
            )));
        }
    }
    for &size in &params.sizes {
        progress(&format!(
            "exp fork: host {}: {} runs of {} (+1 warm-up)",
            fmt_bytes(size),
            params.runs,
            anchor.display()
        ));
        let m = host_anchor(&anchor, size, params.runs)?;
        progress(&format!(
            "exp fork: host {}: fork {}, first writes {}",
            fmt_bytes(size),
            fmt_ns(m.fork_ns as f64),
            fmt_ns(m.first_writes_ns as f64)
        ));
        results.push(m);
    }

    let order = |p: &str| {
        ["cow", "shared_pt", "eager", "host"]
            .iter()
            .position(|x| *x == p)
            .unwrap_or(9)
    };
    results.sort_by_key(|m| (m.size, order(m.policy)));
    let claims = claims(&results, max)?;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let params_json = json!({
        "sizes": params.sizes,
        "runs": params.runs,
        "policies": POLICIES.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        "ram": ByteSize(ram),
        "anchor": anchor.display().to_string(),
        "host_kernel": kernel,
    });
    Ok(Report {
        experiment: "fork".into(),
        config: serde_json::to_value(&used_cfg).unwrap_or(Value::Null),
        params: params_json,
        rows: results.iter().map(Measured::row).collect(),
        claims,
        columns: columns(),
        notes: vec![
            format!(
                "fork: Machine::fork_with alone; first writes: the child's first store to each of its pages, all \
                 pages together; pt pages: page-table pages allocated by the fork (child's root included), and by \
                 the fork plus the first writes. Medians of {} runs; machine RAM {}; claims at {}.",
                params.runs,
                fmt_bytes(ram),
                fmt_bytes(max)
            ),
            "host: the kernel's fork() of a helper process (vmlab __fork-anchor) with the same resident bytes."
                .to_string(),
        ],
    })
}

/// A value the parent stores in page `i` before run `gen`.
fn parent_value(i: u64, gen: u64) -> u64 {
    (1 << 63) | (gen << 40) | i
}

/// A value the child stores in page `i` in run `gen`.
fn child_value(i: u64, gen: u64) -> u64 {
    !parent_value(i, gen)
}

/// Number of `1 << shift`-byte aligned spans `[addr, addr + size)` meets.
fn spans(addr: u64, size: u64, shift: u32) -> u64 {
    ((addr + size - 1) >> shift) - (addr >> shift) + 1
}

fn measure(m: &Machine, name: ForkName, size: u64, runs: usize) -> Result<Measured, ExpError> {
    let policy: ForkPolicy = name.policy();
    let err = |what: &str, e: &dyn std::fmt::Display| {
        ExpError::Runtime(format!("{} {}: {what}: {e}", name.as_str(), fmt_bytes(size)))
    };
    let pages = size / PAGE_SIZE;
    let parent: Pid = m.spawn().map_err(|e| err("spawn", &e))?;
    let addr = m
        .mmap(parent, 0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        .map_err(|e| err("mmap", &e))?;
    let mut cpu = m.cpu(0).map_err(|e| err("taking CPU 0", &e))?;
    let (mut fork_ns, mut first_ns, mut pt_fork, mut pt_after) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut last_report = ForkReport::default();
    for run in 0..=runs {
        let gen = run as u64 + 1;
        cpu.switch_to(parent).map_err(|e| err("switch to parent", &e))?;
        for i in 0..pages {
            cpu.store_u64(addr + i * PAGE_SIZE, parent_value(i, gen))
                .map_err(|f| err("parent store", &f))?;
        }
        let pt0 = m.phys().page_table_pages() as u64;
        let t = Instant::now();
        let (child, report) = m.fork_with(parent, policy).map_err(|e| err("fork", &e))?;
        let dt_fork = t.elapsed().as_nanos() as u64;
        let pt1 = m.phys().page_table_pages() as u64;

        cpu.switch_to(child).map_err(|e| err("switch to child", &e))?;
        let t = Instant::now();
        for i in 0..pages {
            cpu.store_u64(addr + i * PAGE_SIZE, child_value(i, gen))
                .map_err(|f| err("child first write", &f))?;
        }
        let dt_first = t.elapsed().as_nanos() as u64;
        let pt2 = m.phys().page_table_pages() as u64;

        // Real bytes: each side sees its own values, in every page.
        for i in 0..pages {
            let a = addr + i * PAGE_SIZE;
            let got = cpu.load_u64(a).map_err(|f| err("child load", &f))?;
            if got != child_value(i, gen) {
                return Err(err(
                    "child load",
                    &format!("page {i} holds {got:#x}, expected {:#x}", child_value(i, gen)),
                ));
            }
        }
        cpu.switch_to(parent).map_err(|e| err("switch to parent", &e))?;
        for i in 0..pages {
            let a = addr + i * PAGE_SIZE;
            let got = cpu.load_u64(a).map_err(|f| err("parent load", &f))?;
            if got != parent_value(i, gen) {
                return Err(err(
                    "parent load",
                    &format!("page {i} holds {got:#x}, expected {:#x}", parent_value(i, gen)),
                ));
            }
        }
        m.exit(child).map_err(|e| err("exit child", &e))?;
        if run > 0 {
            fork_ns.push(dt_fork);
            first_ns.push(dt_first);
            pt_fork.push(pt1.saturating_sub(pt0));
            pt_after.push(pt2.saturating_sub(pt0));
            last_report = report;
        }
    }
    drop(cpu);
    m.exit(parent).map_err(|e| err("exit parent", &e))?;
    let upper = 1 + spans(addr, size, 39) + spans(addr, size, 30);
    Ok(Measured {
        policy: name.as_str(),
        size,
        runs,
        fork_ns: median_u64(&fork_ns).unwrap_or(0),
        first_writes_ns: median_u64(&first_ns).unwrap_or(0),
        pt_fork: median_u64(&pt_fork),
        pt_after_writes: median_u64(&pt_after),
        report: Some(last_report),
        upper_tables: Some(upper),
    })
}

/// What the anchor prints.
#[derive(serde::Deserialize)]
struct AnchorOut {
    bytes: u64,
    fork_ns: Vec<u64>,
    first_writes_ns: Vec<u64>,
}

fn host_anchor(anchor: &Path, size: u64, runs: usize) -> Result<Measured, ExpError> {
    let out = Command::new(anchor)
        .args([ANCHOR_ARG, "--bytes", &size.to_string(), "--runs", &runs.to_string()])
        .output()
        .map_err(|e| ExpError::Runtime(format!("cannot run {}: {e}", anchor.display())))?;
    if !out.status.success() {
        return Err(ExpError::Runtime(format!(
            "{} --bytes {size} failed ({}): {}",
            anchor.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let a: AnchorOut = serde_json::from_slice(&out.stdout).map_err(|e| {
        ExpError::Runtime(format!(
            "{} printed no valid JSON ({e}): {}",
            anchor.display(),
            String::from_utf8_lossy(&out.stdout).trim()
        ))
    })?;
    if a.bytes != size || a.fork_ns.len() != runs || a.first_writes_ns.len() != runs {
        return Err(ExpError::Runtime(format!(
            "{} measured {} bytes x {}/{} runs, expected {size} x {runs}",
            anchor.display(),
            a.bytes,
            a.fork_ns.len(),
            a.first_writes_ns.len()
        )));
    }
    Ok(Measured {
        policy: "host",
        size,
        runs,
        fork_ns: median_u64(&a.fork_ns).unwrap_or(0),
        first_writes_ns: median_u64(&a.first_writes_ns).unwrap_or(0),
        pt_fork: None,
        pt_after_writes: None,
        report: None,
        upper_tables: None,
    })
}

/// The claims, evaluated at size `at`.
fn claims(results: &[Measured], at: u64) -> Result<Vec<Claim>, ExpError> {
    let get = |p: &str| {
        results
            .iter()
            .find(|m| m.policy == p && m.size == at)
            .ok_or_else(|| ExpError::Runtime(format!("no {p} measurement at {}", fmt_bytes(at))))
    };
    let (cow, spt, eager, host) = (get("cow")?, get("shared_pt")?, get("eager")?, get("host")?);
    let l = fmt_bytes(at);
    let f = |x: u64| x as f64;
    let pt = |m: &Measured| m.pt_fork.map_or(f64::NAN, f);

    let speedup = Claim::new(
        "003",
        "The shared page-table patch speeds up fork() by a factor of almost 20 for very large processes",
        format!("cow fork_ns / shared_pt fork_ns at {l}"),
        ratio(f(cow.fork_ns), f(spt.fork_ns)),
        Comparison::AtLeast(SPEEDUP_THRESHOLD),
    );

    let upper = spt.upper_tables.unwrap_or(0);
    let spt_leaf = spt.pt_fork.map_or(f64::NAN, |p| p as f64 - upper as f64);
    let saving = Claim::new(
        "003",
        "Shared page tables greatly reduce the memory used for page tables (hundreds of MB for a large Oracle server)",
        format!("cow page_table_pages / shared_pt page_table_pages allocated by fork at {l}"),
        ratio(pt(cow), pt(spt)),
        Comparison::AtLeast(PT_SAVING_THRESHOLD),
    )
    .requires(Check::new(
        format!("leaf tables shared_pt's fork allocated at {l} (its page_table_pages minus the {upper} root/PDPT/PD tables any child needs)"),
        spt_leaf,
        Comparison::AtMost(0.0),
    ));

    let total = |m: &Measured| f(m.fork_ns) + f(m.first_writes_ns);
    let (lo, hi) = EAGER_BAND;
    let eager_claim = Claim::new(
        "000",
        "No COW on anonymous VMAs (major 1): copying at fork pays up front what COW pays at the first writes",
        format!("(eager fork_ns + first_writes_ns) / (cow fork_ns + first_writes_ns) at {l}"),
        ratio(total(eager), total(cow)),
        Comparison::Within(lo, hi),
    )
    .requires(Check::new(
        format!("eager fork_ns / cow fork_ns at {l}"),
        ratio(f(eager.fork_ns), f(cow.fork_ns)),
        Comparison::AtLeast(1.0),
    ))
    .requires(Check::new(
        format!("cow first_writes_ns / eager first_writes_ns at {l}"),
        ratio(f(cow.first_writes_ns), f(eager.first_writes_ns)),
        Comparison::AtLeast(1.0),
    ));

    let anchor = Claim::new(
        "anchor",
        "vmlab's cow fork is no slower than the host kernel's fork() of a process with the same resident size",
        format!("host fork_ns / cow fork_ns at {l}"),
        ratio(f(host.fork_ns), f(cow.fork_ns)),
        Comparison::AtLeast(1.0),
    );
    Ok(vec![speedup, saving, eager_claim, anchor])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_double_up_to_max() {
        assert_eq!(sizes_up_to(16 << 20).unwrap(), vec![16 << 20]);
        assert_eq!(
            sizes_up_to(1 << 30).unwrap(),
            vec![16 << 20, 32 << 20, 64 << 20, 128 << 20, 256 << 20, 512 << 20, 1 << 30]
        );
        let big = sizes_up_to(4 << 30).unwrap();
        assert_eq!(&big[big.len() - 3..], &[1 << 30, 2 << 30, 4 << 30]);
        assert_eq!(
            sizes_up_to(100 << 20).unwrap(),
            vec![16 << 20, 32 << 20, 64 << 20, 100 << 20]
        );
        assert!(matches!(sizes_up_to(8 << 20), Err(ExpError::Usage(_))));
        assert!(matches!(sizes_up_to((16 << 20) + 1), Err(ExpError::Usage(_))));
        assert!(matches!(ForkParams::new(16 << 20, 4), Err(ExpError::Usage(_))));
    }

    #[test]
    fn ram_covers_two_copies() {
        for s in [16u64 << 20, 1 << 30, 3 << 30] {
            let r = ram_needed(s);
            assert!(r >= 2 * s + s / 256);
            assert_eq!(r % (2 << 20), 0);
        }
    }

    #[test]
    fn span_counts() {
        assert_eq!(spans(0, 1 << 21, 21), 1);
        assert_eq!(spans(4096, 1 << 21, 21), 2);
        assert_eq!(spans(0x7fff_f7ff_f000 - (1 << 30), 1 << 30, 30), 2);
    }

    #[test]
    fn measures_every_policy_on_a_small_machine() {
        let cfg = MachineConfig {
            ram: ByteSize(ram_needed(MIN_SIZE)),
            ..MachineConfig::default()
        };
        for name in POLICIES {
            let m = Machine::new(&cfg).unwrap();
            let r = measure(&m, name, MIN_SIZE, MIN_RUNS).unwrap();
            assert!(r.fork_ns > 0 && r.first_writes_ns > 0);
            let pt = r.pt_fork.unwrap();
            let upper = r.upper_tables.unwrap();
            match name {
                ForkName::SharedPt => assert_eq!(pt, upper, "shared_pt allocates only upper levels"),
                _ => assert!(pt >= upper + MIN_SIZE / (2 << 20), "{name:?}: {pt}"),
            }
            m.check().unwrap();
            assert_eq!(m.stats().frames_used, m.reserved_frames() as u64);
        }
    }
}
