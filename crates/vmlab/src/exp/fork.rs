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
//! The second part, `scenario: "shared_segment"` (seed 003's "large Oracle
//! server"), forks nothing: for each policy, `--processes` P unrelated
//! processes (spawned, not forked) each map the same `--max-size` S bytes of
//! one file MAP_SHARED at the same 1 GiB-aligned address, one after another
//! read and write one word in every page, and the page-table pages they hold
//! together are counted (`page_table_pages`, their roots included). The file
//! is a [`SparseFile`] in host memory. Under `shared_pt` the processes reach
//! one set of the object's leaf tables (mm/shared_pt.rs, object tables);
//! under `cow` and `eager` each process has its own.
//!
//! The fork claims (seeds 003 and 000) are evaluated at the largest size,
//! the segment claim (seed 003) at P × S.

use super::{
    check_all_freed, fmt_bytes, fmt_ns, host_mem_available, median_u64, ratio, row_of, Check, Claim, Column,
    Comparison, ExpError, Format, Report, MIN_RUNS,
};
use crate::mm::addr::PAGE_SIZE;
use crate::mm::errno::Errno;
use crate::mm::mm::uapi::{MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE};
use crate::mm::mm::{BackingFile, ForkPolicy, ForkReport};
use crate::mm::system::config::ForkName;
use crate::mm::system::{ByteSize, Machine, MachineConfig, Pid};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// The smallest resident size, and the step sizes double from.
pub const MIN_SIZE: u64 = 16 << 20;
/// The largest resident size unless `--max-size` says otherwise.
pub const DEFAULT_MAX_SIZE: u64 = 1 << 30;
/// The policies, in the order rows are shown.
pub const POLICIES: [ForkName; 3] = [ForkName::Cow, ForkName::SharedPt, ForkName::Eager];
/// The policies of the shared-segment scenario. `eager` is left out: with
/// no fork it maps the segment exactly as `cow` does (the unit test
/// `shared_segment_on_a_small_machine` checks it), and its pass would add
/// as much time as cow's, mostly the write-back of every process's dirty
/// pages at its exit.
pub const SEGMENT_POLICIES: [ForkName; 2] = [ForkName::Cow, ForkName::SharedPt];
/// Processes mapping the shared segment unless `--processes` says otherwise.
pub const DEFAULT_PROCESSES: usize = 32;
/// Where every process maps the shared segment: 1 GiB aligned, so a segment
/// of up to 1 GiB needs one PDPT and one PD per process.
pub const SEGMENT_ADDR: u64 = 0x4000_0000_0000;
/// Bytes of page tables one leaf table maps (2 MiB), i.e. 512 bytes of
/// segment per byte of leaf table.
const LEAF_SPAN: u64 = 2 << 20;
/// Claim 5 (seed 003, "hundreds of megabytes in the large Oracle server
/// scenario"): shared_pt's saving over cow for the shared segment, in bytes.
pub const SEGMENT_SAVING_THRESHOLD: u64 = 100 << 20;
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
    /// Processes mapping the shared segment (at least 2).
    pub processes: usize,
    /// Bytes of the shared segment (the largest resident size).
    pub segment: u64,
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
            processes: DEFAULT_PROCESSES,
            segment: max_size,
        })
    }

    /// The same with `processes` processes mapping the shared segment.
    pub fn with_processes(mut self, processes: usize) -> Result<ForkParams, ExpError> {
        if processes < 2 {
            return Err(ExpError::Usage(format!(
                "--processes {processes}: at least 2 processes are needed to share a segment"
            )));
        }
        self.processes = processes;
        Ok(self)
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

/// Simulated RAM the shared-segment scenario needs: the segment's page
/// cache, every process's own leaf tables (as under cow) and upper tables,
/// and 32 MiB of slack, rounded up to 2 MiB.
pub fn segment_ram_needed(segment: u64, processes: usize) -> u64 {
    let p = processes as u64;
    let raw = segment + p * (segment.div_ceil(LEAF_SPAN) + 8) * PAGE_SIZE + (32 << 20);
    raw.div_ceil(2 << 20) * (2 << 20)
}

/// Processes needed for shared_pt to save `bytes` of page tables over cow
/// when each maps `segment` bytes: every process but one saves the
/// segment's leaf tables (segment / 512 bytes).
pub fn processes_to_save(bytes: u64, segment: u64) -> u64 {
    let per = (segment.div_ceil(LEAF_SPAN) * PAGE_SIZE).max(1);
    1 + bytes.div_ceil(per)
}

/// A sparse file in host memory for the shared-segment scenario: `len`
/// bytes, zero except the 8-byte words last written non-zero, kept per
/// 4 KiB page (so a 1 GiB segment with one word written per page holds a
/// few MiB, not 1 GiB). Clones share the contents, so the experiment keeps a
/// handle to check what was written back after the machine closed it.
#[derive(Clone, Debug)]
pub struct SparseFile(Arc<Mutex<SparseState>>);

#[derive(Debug)]
struct SparseState {
    len: u64,
    /// Page index → (word index in the page, value), non-zero values only.
    pages: HashMap<u64, Vec<(u16, u64)>>,
}

const WORDS_PER_PAGE: usize = (PAGE_SIZE / 8) as usize;

impl SparseFile {
    /// A file of `len` zero bytes.
    pub fn new(len: u64) -> SparseFile {
        SparseFile(Arc::new(Mutex::new(SparseState {
            len,
            pages: HashMap::new(),
        })))
    }

    fn state(&self) -> MutexGuard<'_, SparseState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The 8-byte little-endian word at `off` (a multiple of 8).
    pub fn word(&self, off: u64) -> u64 {
        let st = self.state();
        let w = ((off % PAGE_SIZE) / 8) as u16;
        st.pages
            .get(&(off / PAGE_SIZE))
            .and_then(|v| v.iter().find(|e| e.0 == w))
            .map_or(0, |e| e.1)
    }

    /// How many 8-byte words of the file are not zero.
    pub fn nonzero_words(&self) -> u64 {
        self.state().pages.values().map(|v| v.len() as u64).sum()
    }
}

impl SparseState {
    /// Page `p`'s bytes.
    fn page(&self, p: u64) -> [u8; PAGE_SIZE as usize] {
        let mut b = [0u8; PAGE_SIZE as usize];
        for &(w, v) in self.pages.get(&p).map_or(&[][..], |v| &v[..]) {
            let o = w as usize * 8;
            b[o..o + 8].copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    fn set_page(&mut self, p: u64, b: &[u8; PAGE_SIZE as usize]) {
        let words: Vec<(u16, u64)> = (0..WORDS_PER_PAGE)
            .filter_map(|w| {
                let v = u64::from_le_bytes(b[w * 8..w * 8 + 8].try_into().unwrap_or([0; 8]));
                (v != 0).then_some((w as u16, v))
            })
            .collect();
        if words.is_empty() {
            self.pages.remove(&p);
        } else {
            self.pages.insert(p, words);
        }
    }
}

impl BackingFile for SparseFile {
    fn len(&self) -> u64 {
        self.state().len
    }

    fn read_at(&self, off: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        let st = self.state();
        let n = st.len.saturating_sub(off).min(buf.len() as u64) as usize;
        let mut done = 0;
        while done < n {
            let pos = off + done as u64;
            let (p, in_page) = (pos / PAGE_SIZE, (pos % PAGE_SIZE) as usize);
            let k = (PAGE_SIZE as usize - in_page).min(n - done);
            let out = &mut buf[done..done + k];
            out.fill(0);
            for &(w, v) in st.pages.get(&p).map_or(&[][..], |v| &v[..]) {
                // The bytes of word `w` that fall in [in_page, in_page + k).
                let (ws, bytes) = (w as usize * 8, v.to_le_bytes());
                let (lo, hi) = (ws.max(in_page), (ws + 8).min(in_page + k));
                if lo < hi {
                    out[lo - in_page..hi - in_page].copy_from_slice(&bytes[lo - ws..hi - ws]);
                }
            }
            done += k;
        }
        Ok(n)
    }

    fn write_at(&self, off: u64, buf: &[u8]) -> Result<(), Errno> {
        let mut st = self.state();
        let end = off.checked_add(buf.len() as u64).ok_or(Errno::EINVAL)?;
        let mut done = 0;
        while done < buf.len() {
            let pos = off + done as u64;
            let (p, in_page) = (pos / PAGE_SIZE, (pos % PAGE_SIZE) as usize);
            let k = (PAGE_SIZE as usize - in_page).min(buf.len() - done);
            if k == PAGE_SIZE as usize {
                // A whole page (write-back): keep its non-zero words.
                let words = st.pages.entry(p).or_default();
                words.clear();
                // 64 bytes at a time: most of a page is zero.
                for (b, block) in buf[done..done + k].chunks_exact(64).enumerate() {
                    if block.iter().fold(0u8, |a, &x| a | x) == 0 {
                        continue;
                    }
                    for (w, c) in block.chunks_exact(8).enumerate() {
                        let v = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
                        if v != 0 {
                            words.push(((b * 8 + w) as u16, v));
                        }
                    }
                }
                if words.is_empty() {
                    st.pages.remove(&p);
                }
            } else {
                let mut page = st.page(p);
                page[in_page..in_page + k].copy_from_slice(&buf[done..done + k]);
                st.set_page(p, &page);
            }
            done += k;
        }
        st.len = st.len.max(end);
        Ok(())
    }

    fn writable(&self) -> bool {
        true
    }
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
            "scenario": "fork",
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
        row_of(v)
    }
}

/// One policy of the shared-segment scenario.
#[derive(Clone, Debug, PartialEq)]
struct Segment {
    policy: &'static str,
    processes: usize,
    size: u64,
    /// Page-table pages the processes hold together once all touched the
    /// segment (from before the first spawn: roots included).
    pt_pages: u64,
    /// Root, PDPT and PD tables one process needs to map the segment.
    upper_tables: u64,
    /// Leaf tables one process needs to map the segment.
    leaf_tables: u64,
    /// Every process's pass over the segment, one after another.
    touch_ns: u64,
    /// The first process's pass (it faults the file's pages into the cache).
    first_touch_ns: u64,
    /// The median of the other processes' passes.
    later_touch_ns: u64,
    /// Minor faults the passes took, all processes together.
    faults: u64,
}

impl Segment {
    fn row(&self) -> serde_json::Map<String, Value> {
        let pages = self.size / PAGE_SIZE;
        let v = json!({
            "scenario": "shared_segment",
            "policy": self.policy,
            "processes": self.processes,
            "segment_bytes": self.size,
            "page_table_pages": self.pt_pages,
            "page_table_bytes": self.pt_pages * PAGE_SIZE,
            "page_table_mib": self.pt_pages as f64 * PAGE_SIZE as f64 / (1u64 << 20) as f64,
            "page_table_pages_per_process": self.pt_pages as f64 / self.processes as f64,
            "touch_ns": self.touch_ns,
            "touch_per_page_ns": (self.touch_ns as f64 / (pages * self.processes as u64) as f64).round(),
            "first_process_touch_ns": self.first_touch_ns,
            "later_process_touch_ns": self.later_touch_ns,
            "faults": self.faults,
        });
        row_of(v)
    }
}

/// The columns of the human table (fork rows and shared-segment rows; a
/// row shows `-` where it has no value).
fn columns() -> Vec<Column> {
    vec![
        Column::new("scenario", "scenario", Format::Text),
        Column::new("policy", "policy", Format::Text),
        Column::new("resident_bytes", "resident", Format::Bytes),
        Column::new("fork_ns", "fork", Format::Nanos),
        Column::new("fork_per_mib_ns", "fork/MiB", Format::Nanos),
        Column::new("page_table_pages", "pt pages", Format::Int),
        Column::new("page_table_pages_after_writes", "pt pages (+writes)", Format::Int),
        Column::new("first_writes_ns", "first writes", Format::Nanos),
        Column::new("first_write_per_page_ns", "per page", Format::Nanos),
        Column::new("tables_shared", "tables shared", Format::Int),
        Column::new("pages_copied", "pages copied", Format::Int),
        Column::new("processes", "procs", Format::Int),
        Column::new("segment_bytes", "segment", Format::Bytes),
        Column::new("page_table_mib", "pt MiB", Format::Float),
        Column::new("faults", "faults", Format::Int),
        Column::new("touch_ns", "touch", Format::Nanos),
        Column::new("later_process_touch_ns", "touch/proc", Format::Nanos),
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
    if params.processes < 2 {
        return Err(ExpError::Usage(format!(
            "--processes {}: at least 2 processes are needed to share a segment",
            params.processes
        )));
    }
    let (seg, procs) = (params.segment, params.processes);
    if seg == 0 || !seg.is_multiple_of(PAGE_SIZE) {
        return Err(ExpError::Usage(format!(
            "shared segment of {seg} bytes: must be a positive multiple of the 4 KiB page size"
        )));
    }
    let ram = ram_needed(max).max(base.ram.0);
    let seg_ram = segment_ram_needed(seg, procs).max(base.ram.0);
    if let Some(avail) = host_mem_available() {
        // The eager machine touches nearly all of its RAM; the frame
        // descriptors and the anchor's pages come on top. The segment's
        // machine touches the segment and every process's tables.
        let need = (ram_needed(max) + max / 8).max(segment_ram_needed(seg, procs) + seg / 8);
        if need > avail {
            return Err(ExpError::Usage(format!(
                "--max-size {} --processes {procs}: the experiment needs about {} of host memory (the eager \
                 policy holds two copies; the segment's processes their page tables), but only {} is available",
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
        check_all_freed(&machine, name.as_str(), "every process exited")?;
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

    let mut segments: Vec<Segment> = Vec::new();
    for name in SEGMENT_POLICIES {
        let mut cfg = base.clone();
        cfg.ram = ByteSize(seg_ram);
        cfg.fork = name;
        let machine = build(&cfg).map_err(|e| ExpError::Usage(format!("config error: {e}")))?;
        progress(&format!(
            "exp fork: shared segment {} {} x {procs} processes",
            name.as_str(),
            fmt_bytes(seg)
        ));
        let t = Instant::now();
        let s = measure_segment(&machine, name, seg, procs)?;
        progress(&format!(
            "exp fork: shared segment {}: {} page-table pages, touch {} (all of it, exits and write-back \
             included: {})",
            name.as_str(),
            s.pt_pages,
            fmt_ns(s.touch_ns as f64),
            fmt_ns(t.elapsed().as_nanos() as f64)
        ));
        check_all_freed(
            &machine,
            &format!("shared segment {}", name.as_str()),
            "every process exited and the file was closed",
        )?;
        segments.push(s);
    }

    let order = |p: &str| {
        ["cow", "shared_pt", "eager", "host"]
            .iter()
            .position(|x| *x == p)
            .unwrap_or(9)
    };
    results.sort_by_key(|m| (m.size, order(m.policy)));
    let mut claims = claims(&results, max)?;
    claims.push(segment_claim(&segments)?);
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
        "processes": procs,
        "segment_bytes": seg,
        "segment_ram": ByteSize(seg_ram),
        "segment_addr": SEGMENT_ADDR,
        "segment_policies": SEGMENT_POLICIES.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
    });
    Ok(Report {
        experiment: "fork".into(),
        config: serde_json::to_value(&used_cfg).unwrap_or(Value::Null),
        params: params_json,
        rows: results
            .iter()
            .map(Measured::row)
            .chain(segments.iter().map(Segment::row))
            .collect(),
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
            format!(
                "shared_segment: {procs} processes (spawned, no fork) each map one {} file MAP_SHARED at {:#x} and, \
                 one after another, read and write a word in every page; pt pages: the tables they hold together \
                 (roots included), machine RAM {}; touch: all processes' passes, one run; touch/proc: the median of \
                 the passes of processes 2..{procs}.",
                fmt_bytes(seg),
                SEGMENT_ADDR,
                fmt_bytes(seg_ram)
            ),
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

/// A value process `k` stores in page `i` of the shared segment.
fn segment_value(k: usize, i: u64) -> u64 {
    (1 << 63) | ((k as u64 + 1) << 40) | i
}

/// The shared-segment scenario under one policy: `processes` processes,
/// spawned, each map the same `size` bytes of one file MAP_SHARED at
/// [`SEGMENT_ADDR`]; one after another, each reads word 0 of every page (it
/// must hold what the previous process stored: the processes really share
/// the bytes) and stores its own value there. Then all exit, the file is
/// closed, and what was written back to it is checked.
fn measure_segment(m: &Machine, name: ForkName, size: u64, processes: usize) -> Result<Segment, ExpError> {
    let err = |what: &str, e: &dyn std::fmt::Display| {
        ExpError::Runtime(format!(
            "shared segment {} {} x {processes}: {what}: {e}",
            name.as_str(),
            fmt_bytes(size)
        ))
    };
    let pages = size / PAGE_SIZE;
    let file = SparseFile::new(size);
    let fd = m.open_file(Box::new(file.clone()));
    let pt0 = m.stats().page_table_pages;
    let mut pids = Vec::with_capacity(processes);
    for _ in 0..processes {
        let pid = m.spawn().map_err(|e| err("spawn", &e))?;
        pids.push(pid);
        let a = m
            .mmap_fd(
                pid,
                SEGMENT_ADDR,
                size,
                PROT_READ | PROT_WRITE,
                MAP_SHARED | MAP_FIXED,
                fd,
                0,
            )
            .map_err(|e| err("mmap", &e))?;
        if a != SEGMENT_ADDR {
            return Err(err("mmap", &format!("mapped at {a:#x}, not {SEGMENT_ADDR:#x}")));
        }
    }
    let mut cpu = m.cpu(0).map_err(|e| err("taking CPU 0", &e))?;
    let mut per_process = Vec::with_capacity(processes);
    let faults0 = m.stats().minor_faults;
    let t_all = Instant::now();
    for (k, &pid) in pids.iter().enumerate() {
        let t = Instant::now();
        cpu.switch_to(pid).map_err(|e| err("switch", &e))?;
        for i in 0..pages {
            let a = SEGMENT_ADDR + i * PAGE_SIZE;
            let got = cpu.load_u64(a).map_err(|f| err("load", &f))?;
            let want = if k == 0 { 0 } else { segment_value(k - 1, i) };
            if got != want {
                return Err(err(
                    "load",
                    &format!("process {k}, page {i} holds {got:#x}, expected {want:#x}"),
                ));
            }
            cpu.store_u64(a, segment_value(k, i)).map_err(|f| err("store", &f))?;
        }
        per_process.push(t.elapsed().as_nanos() as u64);
    }
    let touch_ns = t_all.elapsed().as_nanos() as u64;
    drop(cpu);
    let st = m.stats();
    let pt_pages = st.page_table_pages.saturating_sub(pt0);
    let faults = st.minor_faults.saturating_sub(faults0);
    for pid in pids {
        m.exit(pid).map_err(|e| err("exit", &e))?;
    }
    m.close(fd).map_err(|e| err("close", &e))?;
    // Every page was written back with the last process's value in word 0.
    let last = processes - 1;
    for i in 0..pages {
        let got = file.word(i * PAGE_SIZE);
        if got != segment_value(last, i) {
            return Err(err(
                "write-back",
                &format!("file page {i} holds {got:#x}, expected {:#x}", segment_value(last, i)),
            ));
        }
    }
    if file.nonzero_words() != pages {
        return Err(err(
            "write-back",
            &format!("the file has {} non-zero words, expected {pages}", file.nonzero_words()),
        ));
    }
    Ok(Segment {
        policy: name.as_str(),
        processes,
        size,
        pt_pages,
        upper_tables: 1 + spans(SEGMENT_ADDR, size, 39) + spans(SEGMENT_ADDR, size, 30),
        leaf_tables: spans(SEGMENT_ADDR, size, 21),
        touch_ns,
        first_touch_ns: per_process[0],
        later_touch_ns: median_u64(&per_process[1..]).unwrap_or(0),
        faults,
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
        "Shared page tables greatly reduce the memory used for page tables: a forked child needs almost none",
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

/// Claim 5 (seed 003): shared_pt saves hundreds of MB of page tables when
/// many processes map one large shared segment.
fn segment_claim(segs: &[Segment]) -> Result<Claim, ExpError> {
    let get = |p: &str| {
        segs.iter()
            .find(|s| s.policy == p)
            .ok_or_else(|| ExpError::Runtime(format!("no shared-segment measurement for {p}")))
    };
    let (cow, spt) = (get("cow")?, get("shared_pt")?);
    let (procs, seg) = (spt.processes, spt.size);
    let mib = |pages: f64| pages * PAGE_SIZE as f64 / (1u64 << 20) as f64;
    let saved = mib(cow.pt_pages as f64 - spt.pt_pages as f64);
    let threshold = SEGMENT_SAVING_THRESHOLD as f64 / (1u64 << 20) as f64;
    let need = processes_to_save(SEGMENT_SAVING_THRESHOLD, seg);
    let need_gib = (SEGMENT_SAVING_THRESHOLD.div_ceil(PAGE_SIZE) * LEAF_SPAN) >> 30;
    // Ideal shared_pt: one set of leaf tables for the segment, and each
    // process's own root, PDPT and PD.
    let extra_leaves = spt.pt_pages as f64 - (spt.leaf_tables + procs as u64 * spt.upper_tables) as f64;
    Ok(Claim::new(
        "003",
        format!(
            "Shared page tables save hundreds of MB of page tables in the large Oracle server scenario (many \
             processes mapping one large shared segment); shared_pt saves (P - 1) x S / 512 bytes, so 100 MiB \
             needs (P - 1) x S >= {need_gib} GiB: here S = {} needs P >= {need}, and P = {procs} was measured",
            fmt_bytes(seg)
        ),
        format!(
            "page-table MiB saved by shared_pt vs cow: {procs} spawned processes each mapping one {} shared file",
            fmt_bytes(seg)
        ),
        saved,
        Comparison::AtLeast(threshold),
    )
    .requires(Check::new(
        format!(
            "leaf tables shared_pt's processes hold beyond one set for the segment (its page_table_pages minus {} \
             leaf tables and {procs} x {} root/PDPT/PD tables)",
            spt.leaf_tables, spt.upper_tables
        ),
        extra_leaves,
        Comparison::AtMost(0.0),
    )))
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

    #[test]
    fn sparse_file_reads_back_what_was_written() {
        let f = SparseFile::new(3 * PAGE_SIZE);
        let mut buf = vec![0xffu8; 5000];
        assert_eq!(f.read_at(PAGE_SIZE, &mut buf).unwrap(), 5000);
        assert!(buf.iter().all(|&b| b == 0));
        // Unaligned, across a page boundary.
        f.write_at(PAGE_SIZE - 3, &[1, 2, 3, 4, 5, 6]).unwrap();
        let mut b = [0u8; 8];
        f.read_at(PAGE_SIZE - 4, &mut b).unwrap();
        assert_eq!(b, [0, 1, 2, 3, 4, 5, 6, 0]);
        assert_eq!(f.word(PAGE_SIZE), u64::from_le_bytes([4, 5, 6, 0, 0, 0, 0, 0]));
        assert_eq!(f.nonzero_words(), 2);
        // A whole page of zeros clears it; past the end extends the file.
        f.write_at(PAGE_SIZE, &[0u8; PAGE_SIZE as usize]).unwrap();
        assert_eq!(f.nonzero_words(), 1);
        f.write_at(3 * PAGE_SIZE, &7u64.to_le_bytes()).unwrap();
        assert_eq!(f.len(), 3 * PAGE_SIZE + 8);
        assert_eq!(f.word(3 * PAGE_SIZE), 7);
        assert_eq!(f.read_at(3 * PAGE_SIZE + 8, &mut b).unwrap(), 0);
        assert_eq!(f.read_at(3 * PAGE_SIZE + 4, &mut b).unwrap(), 4);
    }

    #[test]
    fn processes_needed_for_100_mib() {
        // 1 GiB: 512 leaf tables (2 MiB) saved per process but one.
        assert_eq!(processes_to_save(100 << 20, 1 << 30), 51);
        assert_eq!(processes_to_save(100 << 20, 4 << 30), 14);
        assert!(segment_ram_needed(1 << 30, 32) >= (1 << 30) + 32 * (2 << 20));
    }

    #[test]
    fn shared_segment_on_a_small_machine() {
        let (size, procs) = (MIN_SIZE, 4);
        let cfg = MachineConfig {
            ram: ByteSize(segment_ram_needed(size, procs)),
            ..MachineConfig::default()
        };
        let mut got = Vec::new();
        for name in POLICIES {
            let m = Machine::new(&MachineConfig {
                fork: name,
                ..cfg.clone()
            })
            .unwrap();
            let s = measure_segment(&m, name, size, procs).unwrap();
            assert_eq!((s.leaf_tables, s.upper_tables), (8, 3));
            match name {
                ForkName::SharedPt => assert_eq!(s.pt_pages, 8 + 4 * 3, "one set of leaf tables"),
                _ => assert_eq!(s.pt_pages, 4 * (8 + 3), "{name:?}: own leaf tables"),
            }
            assert!(s.touch_ns >= s.first_touch_ns && s.later_touch_ns > 0);
            m.check().unwrap();
            assert_eq!(m.stats().frames_used, m.reserved_frames() as u64);
            got.push(s);
        }
        let c = segment_claim(&got).unwrap();
        // 3 processes x 8 leaf tables x 4 KiB saved.
        assert_eq!(c.main().measured(), 3.0 * 8.0 * 4096.0 / (1u64 << 20) as f64);
        assert_eq!(c.verdict(), crate::exp::Verdict::Refuted);
        assert_eq!(c.requirements()[0].measured(), 0.0);
    }
}
