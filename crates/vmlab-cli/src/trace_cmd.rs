//! `vmlab trace info|convert`: a trace's summary (references, distinct
//! pages, footprint, address-space events, LRU reuse distances) and its
//! conversion to vmlab, oracleGeneral, lcs v1 or csv (docs/TRACES.md).
//!
//! Owns: the commands and the reuse-distance computation. May call:
//! `vmlab::trace` (readers and writers), `serde_json`, `std`.

use crate::Failure;
use clap::{Args, Subcommand};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use vmlab::trace::{self, Event, Format, Record, TraceError, TraceReader};

/// `vmlab trace info|convert`.
#[derive(Subcommand, Debug)]
pub enum TraceCommand {
    /// References, distinct pages, footprint, address-space events and the LRU reuse-distance histogram.
    Info(InfoArgs),
    /// Convert a trace to another format (events are kept only by --to vmlab).
    Convert(ConvertArgs),
    /// Run CMD under valgrind lackey and write its references and address-space events in vmlab's format.
    Record(RecordArgs),
}

#[derive(Args, Debug)]
pub struct RecordArgs {
    /// The file to write (vmlab format).
    #[arg(short = 'o', long = "output", default_value = "vmlab.trace")]
    pub output: PathBuf,
    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// The program and its arguments (after `--`). Single-threaded programs that do not fork.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

#[derive(Args, Debug)]
pub struct FormatArgs {
    /// The input's format (lackey, trc, csv, oracle_general, lcs, vmlab); sniffed from its content if not given.
    #[arg(long)]
    format: Option<String>,
    /// libCacheSim's csv parameters, e.g. "obj-id-col=2,delimiter=,,has-header=true" (implies --format csv).
    #[arg(long)]
    trace_params: Option<String>,
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    file: PathBuf,
    #[command(flatten)]
    format: FormatArgs,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct ConvertArgs {
    input: PathBuf,
    /// The file to write.
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// vmlab, oracle_general, lcs (v1) or csv (one page number a line).
    #[arg(long)]
    to: String,
    /// oracle_general: every object's size in bytes (default a page, 4096; 1 makes
    /// libCacheSim's cache size count objects, as vmlab's --frames does).
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(1..))]
    obj_size: Option<u32>,
    #[command(flatten)]
    format: FormatArgs,
}

pub fn run(cmd: &TraceCommand) -> Result<(), Failure> {
    match cmd {
        TraceCommand::Info(a) => info(a),
        TraceCommand::Convert(a) => convert(a),
        TraceCommand::Record(a) => crate::record::record(a),
    }
}

/// A bad or unknown trace file is the user's to fix: exit 2.
fn bad(e: TraceError) -> Failure {
    e.into()
}

fn open(path: &Path, f: &FormatArgs) -> Result<(Format, Box<dyn TraceReader>), Failure> {
    let format = match (&f.format, &f.trace_params) {
        (Some(name), Some(_)) if name != "csv" => {
            return Err(Failure::Usage(format!(
                "--trace-params are csv parameters: not for --format {name}"
            )))
        }
        (Some(name), p) => Some(Format::parse(name, p.as_deref()).map_err(Failure::Usage)?),
        (None, Some(p)) => Some(Format::parse("csv", Some(p)).map_err(Failure::Usage)?),
        (None, None) => None,
    };
    trace::open(path, format).map_err(bad)
}

/// Call `f` on every record of `r`.
fn each(r: &mut dyn TraceReader, mut f: impl FnMut(&Record) -> Result<(), Failure>) -> Result<(), Failure> {
    trace::for_each_batch(r, |batch| batch.iter().try_for_each(&mut f))
}

/// LRU stack distances: for each reference, how many distinct pages were
/// referenced since this page's last reference, plus one (the smallest
/// LRU cache, in pages, that hits it). A Fenwick tree over access times
/// holds a 1 at each page's last access; the distance is the count of 1s
/// after it. Times are renumbered (compacted) when they run out, so the
/// tree is ∝ distinct pages (at most twice), not references: O(log d) a
/// reference, amortised.
pub struct StackDistance {
    last: HashMap<u64, usize>,
    tree: Vec<u32>,
    now: usize,
}

impl Default for StackDistance {
    fn default() -> StackDistance {
        StackDistance {
            last: HashMap::new(),
            tree: vec![0; 1024],
            now: 0,
        }
    }
}

impl StackDistance {
    fn add(&mut self, i: usize, d: i32) {
        let mut i = i + 1;
        while i <= self.tree.len() {
            self.tree[i - 1] = self.tree[i - 1].wrapping_add_signed(d);
            i += i & i.wrapping_neg();
        }
    }

    /// Sum of marks at times `0..i`.
    fn prefix(&self, i: usize) -> u64 {
        let mut i = i;
        let mut s = 0u64;
        while i > 0 {
            s += self.tree[i - 1] as u64;
            i -= i & i.wrapping_neg();
        }
        s
    }

    fn compact(&mut self) {
        let mut live: Vec<(usize, u64)> = self.last.iter().map(|(&p, &t)| (t, p)).collect();
        live.sort_unstable();
        let size = (live.len() * 2).max(1024);
        self.tree = vec![0; size];
        for (t, (_, p)) in live.iter().enumerate() {
            self.last.insert(*p, t);
        }
        self.now = live.len();
        for t in 0..self.now {
            self.add(t, 1);
        }
    }

    /// The stack distance of a reference to `page`, `None` if it is its first.
    pub fn reference(&mut self, page: u64) -> Option<u64> {
        if self.now == self.tree.len() {
            self.compact();
        }
        let t = self.now;
        self.now += 1;
        let prev = self.last.insert(page, t);
        let d = prev.map(|p| {
            let after = self.prefix(t) - self.prefix(p + 1);
            self.add(p, -1);
            after + 1
        });
        self.add(t, 1);
        d
    }
}

/// The log2 bucket of a distance ≥ 1: bucket k holds [2^k, 2^(k+1)).
fn bucket(d: u64) -> usize {
    63 - d.leading_zeros() as usize
}

#[derive(Default)]
struct Summary {
    references: u64,
    events: [u64; 7],
    cold: u64,
    buckets: Vec<u64>,
}

const EVENT_NAMES: [&str; 7] = ["initial", "brk_base", "mmap", "munmap", "mprotect", "mremap", "brk"];

fn event_index(e: &Event) -> usize {
    match e {
        Event::Initial { .. } => 0,
        Event::BrkBase { .. } => 1,
        Event::Mmap { .. } => 2,
        Event::Munmap { .. } => 3,
        Event::Mprotect { .. } => 4,
        Event::Mremap { .. } => 5,
        Event::Brk { .. } => 6,
    }
}

fn info(a: &InfoArgs) -> Result<(), Failure> {
    let (format, mut r) = open(&a.file, &a.format)?;
    let mut s = Summary::default();
    let mut sd = StackDistance::default();
    each(&mut *r, |rec| {
        match rec {
            Record::Ref(x) => {
                s.references += 1;
                match sd.reference(x.page) {
                    None => s.cold += 1,
                    Some(d) => {
                        let b = bucket(d);
                        if s.buckets.len() <= b {
                            s.buckets.resize(b + 1, 0);
                        }
                        s.buckets[b] += 1;
                    }
                }
            }
            Record::Event(e) => s.events[event_index(e)] += 1,
        }
        Ok(())
    })?;
    let distinct = sd.last.len() as u64;
    let footprint = distinct << trace::PAGE_SHIFT;
    let buckets: Vec<(u64, u64, u64)> = s
        .buckets
        .iter()
        .enumerate()
        .map(|(k, &n)| (1u64 << k, u64::MAX >> (63 - k), n))
        .collect();
    let text = if a.json {
        let events: serde_json::Map<String, serde_json::Value> = EVENT_NAMES
            .iter()
            .zip(s.events)
            .map(|(n, c)| (n.to_string(), c.into()))
            .collect();
        let doc = serde_json::json!({
            "file": a.file.display().to_string(),
            "format": format.name(),
            "references": s.references,
            "distinct_pages": distinct,
            "footprint_bytes": footprint,
            "events": events,
            "reuse_distance": {
                "cold": s.cold,
                "buckets": buckets.iter().map(|&(lo, hi, n)| serde_json::json!({"min": lo, "max": hi, "count": n})).collect::<Vec<_>>(),
            },
        });
        format!("{doc}\n")
    } else {
        let mut t = format!(
            "file: {}\nformat: {}\nreferences: {}\ndistinct pages: {}\nfootprint: {} bytes ({:.1} MiB)\n",
            a.file.display(),
            format.name(),
            s.references,
            distinct,
            footprint,
            footprint as f64 / (1 << 20) as f64
        );
        t += "events:";
        for (n, c) in EVENT_NAMES.iter().zip(s.events) {
            t += &format!(" {n} {c}");
        }
        t += "\nreuse distance (LRU stack depth, pages: references):\n";
        t += &format!("  cold: {}\n", s.cold);
        for (lo, hi, n) in buckets {
            t += &format!("  {lo}-{hi}: {n}\n");
        }
        t
    };
    crate::out(&text)
}

/// The pages of a reader, events counted and dropped.
fn convert(a: &ConvertArgs) -> Result<(), Failure> {
    let to = a.to.as_str();
    if !matches!(to, "vmlab" | "oracle_general" | "oracleGeneral" | "lcs" | "csv") {
        return Err(Failure::Usage(format!(
            "--to {to}: one of vmlab, oracle_general, lcs, csv"
        )));
    }
    if a.obj_size.is_some() && !matches!(to, "oracle_general" | "oracleGeneral") {
        return Err(Failure::Usage(format!(
            "--obj-size: only --to oracle_general has object sizes, not --to {to}"
        )));
    }
    let (_, mut r) = open(&a.input, &a.format)?;
    let out_name = a.output.display().to_string();
    let file =
        std::fs::File::create(&a.output).map_err(|e| Failure::Runtime(format!("{out_name}: cannot create: {e}")))?;
    let r = write_out(a, &mut *r, file);
    // A bad input leaves no half-written output that looks like a trace.
    if let Err(Failure::Usage(_)) = r {
        let _ = std::fs::remove_file(&a.output);
    }
    r
}

/// Read `r` and write it to `file` as `a.to`.
fn write_out(a: &ConvertArgs, r: &mut dyn TraceReader, file: std::fs::File) -> Result<(), Failure> {
    let to = a.to.as_str();
    let out_name = a.output.display().to_string();
    let werr = |e: std::io::Error| Failure::Runtime(format!("{out_name}: cannot write: {e}"));
    // Spill and output write errors surface as TraceErrors of the output file.
    let spill_err = |e: std::io::Error| TraceError::new(&a.output, trace::At::File, format!("cannot write: {e}"));
    let run_err = |e: TraceError| match e.at {
        trace::At::File if e.file == a.output => Failure::Runtime(e.to_string()),
        _ => bad(e),
    };
    let mut file = std::io::BufWriter::with_capacity(1 << 16, file);
    if to == "vmlab" {
        let mut w = trace::vmlab_fmt::VmlabWriter::new(&mut file).map_err(werr)?;
        each(r, |rec| w.write(rec).map_err(werr))?;
        w.finish().map_err(werr)?;
        file.flush().map_err(werr)?;
        return Ok(());
    }
    let mut pages = trace::Pages::new(r);
    match to {
        "lcs" => {
            trace::lcs::write_v1(&mut pages, &mut file, &spill_err).map_err(run_err)?;
        }
        "csv" => {
            for p in &mut pages {
                let p = p.map_err(bad)?;
                writeln!(file, "{p}").map_err(werr)?;
            }
        }
        _ => {
            let size = a.obj_size.unwrap_or(trace::oracle_general::PAGE_BYTES);
            trace::oracle_general::write_sized(&mut pages, &mut file, size, &spill_err).map_err(run_err)?;
        }
    }
    file.flush().map_err(werr)?;
    if pages.dropped > 0 {
        eprintln!(
            "vmlab: {}: {} address-space events dropped ({to} holds references only)",
            a.input.display(),
            pages.dropped
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_distances_match_a_naive_lru_stack_through_compactions() {
        let mut sd = StackDistance::default();
        let mut stack: Vec<u64> = Vec::new();
        let mut x: u64 = 12345;
        for _ in 0..20_000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let page = (x >> 33) % 700;
            let want = stack.iter().rposition(|&p| p == page).map(|i| (stack.len() - i) as u64);
            if let Some(i) = stack.iter().rposition(|&p| p == page) {
                stack.remove(i);
            }
            stack.push(page);
            assert_eq!(sd.reference(page), want);
        }
        assert!(sd.tree.len() <= 2 * 700 + 1024);
    }
}
