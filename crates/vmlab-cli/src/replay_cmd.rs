//! `vmlab replay FILE --mode cache|full`: a trace's page references through
//! one cache-only replacement policy per run (`vmlab::replay::cache`) or
//! through the whole simulated machine (`vmlab::replay::full`), one row
//! per `--frames` value, as a table or one JSON object
//! `{"experiment": "replay", "config", "rows"}`.
//!
//! The policy is `--set reclaim=NAME` (default `lru`), which the machine
//! config does not know (its `reclaim` is clock|two_list|vma_scan|mglru|clock_pro):
//! this module takes `reclaim` and the cache-only keys (`clock_init_ref`)
//! out of `--set` before the machine config is loaded, so the rest of
//! `--set` and `--config` are still checked as for every command.

use crate::{out, Failure};
use clap::Args;
use serde_json::json;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use vmlab::cache::{self, Options};
use vmlab::replay::{self, Mode, ReplayError};
use vmlab::trace::Format;

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The trace (gzip or zstd compressed or not).
    file: PathBuf,

    /// cache: references only, through the `--set reclaim=NAME` policy (default lru).
    /// full: every reference through the simulated machine with exactly --frames usable
    /// frames, under the machine's reclaim design or the lru/opt bounds (default: the config's reclaim).
    #[arg(long, default_value = "cache", value_parser = clap::builder::PossibleValuesParser::new(Mode::NAMES))]
    mode: String,

    /// Cache sizes in frames (pages), comma separated: one row each (e.g. 20,35,50).
    #[arg(long, value_delimiter = ',', value_name = "N,...", value_parser = clap::value_parser!(u64).range(1..))]
    frames: Vec<u64>,

    /// The trace's format (default: from its first bytes): lackey, trc, csv, oracle_general, lcs, vmlab.
    #[arg(long, value_name = "F")]
    format: Option<String>,

    /// csv parameters, as libCacheSim's -t (e.g. obj-id-col=2,delimiter=,,has-header=true).
    #[arg(long, value_name = "PARAMS")]
    trace_params: Option<String>,

    /// Print one JSON object {"experiment", "config", "rows"} instead of a table.
    #[arg(long)]
    json: bool,

    /// No progress bar.
    #[arg(long)]
    quiet: bool,

    /// full mode, a recorded program: the bytes of the file it mapped at RECORDED come
    /// from HOST (cut or zero-filled to the recorded size). Repeatable; other files are zeros.
    #[arg(long = "file", value_name = "RECORDED=HOST")]
    files: Vec<String>,

    /// full mode, a recorded program: read every file it mapped from the same path on this
    /// host where one exists (the executable, its libraries, its input), not zeros.
    #[arg(long)]
    host_files: bool,
}

/// `--file` and `--host-files` as the program replay takes them.
fn replay_files(a: &ReplayArgs) -> Result<vmlab::replay::program::Files, Failure> {
    let mut files = vmlab::replay::program::Files {
        from_host: a.host_files,
        ..Default::default()
    };
    for f in &a.files {
        match f.split_once('=') {
            Some((rec, host)) if !rec.is_empty() && !host.is_empty() => {
                if files.given.insert(rec.to_string(), host.into()).is_some() {
                    return Err(Failure::Usage(format!("--file {rec}=...: given twice")));
                }
            }
            _ => {
                return Err(Failure::Usage(format!(
                    "--file {f}: expected RECORDED=HOST (the path the program mapped, then a file here)"
                )))
            }
        }
    }
    Ok(files)
}

/// The `--set` keys replay takes for itself.
const REPLAY_KEYS: &[&str] = &["reclaim", "clock_init_ref"];

/// Split `sets` into replay's own keys and the machine config's.
fn split_sets(sets: &[String]) -> (Vec<(String, String)>, Vec<String>) {
    let mut own = Vec::new();
    let mut machine = Vec::new();
    for s in sets {
        match s.split_once('=') {
            Some((k, v)) if REPLAY_KEYS.contains(&k.trim()) => own.push((k.trim().to_string(), v.trim().to_string())),
            _ => machine.push(s.clone()),
        }
    }
    (own, machine)
}

pub fn run(config: Option<&Path>, sets: &[String], a: &ReplayArgs) -> Result<(), Failure> {
    let (own, machine_sets) = split_sets(sets);
    // The machine config is checked as for every command, even if cache
    // mode does not use it.
    let cfg = vmlab::config::load(config, &machine_sets)?;
    let mut policy: Option<String> = None;
    let mut opts = Options::default();
    for (k, v) in &own {
        match k.as_str() {
            "reclaim" => policy = Some(v.clone()),
            _ => {
                opts.clock_init_ref = match v.as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    other => {
                        return Err(Failure::Usage(format!(
                            "--set clock_init_ref={other}: expected true or false"
                        )))
                    }
                }
            }
        }
    }
    let mode = Mode::parse(&a.mode).map_err(Failure::Usage)?;
    if a.frames.is_empty() {
        return Err(Failure::Usage(format!(
            "replay --mode {} needs --frames N[,N...]",
            a.mode
        )));
    }
    let format = trace_format(a)?;
    let files = replay_files(a)?;
    if mode == Mode::Full {
        return full(&cfg, policy.as_deref(), format, &files, a);
    }
    if files.any() {
        return Err(Failure::Usage(
            "--file and --host-files are for --mode full (cache mode reads no bytes)".into(),
        ));
    }
    let policy = policy.unwrap_or_else(|| "lru".to_string());
    if !cache::NAMES.contains(&policy.as_str()) {
        return Err(Failure::Usage(format!(
            "--set reclaim={policy}: not a cache policy (one of: {})",
            cache::NAMES.join(", ")
        )));
    }
    let mut bar = Progress::new(!a.quiet && !a.json);
    let mut rows = Vec::new();
    for (n, &frames) in a.frames.iter().enumerate() {
        let mut progress = |t| bar.tick(&policy, frames, n, a.frames.len(), t);
        let r = replay::cache::run(&a.file, format.clone(), &policy, frames, &opts, &mut progress).map_err(
            |e| match e {
                ReplayError::Usage(m) => Failure::Usage(m),
                ReplayError::Trace(t) => Failure::Usage(t.to_string()),
            },
        )?;
        rows.push(r);
    }
    bar.finish();
    if a.json {
        let doc = json!({
            "experiment": "replay",
            "config": {
                "mode": "cache",
                "trace": a.file.display().to_string(),
                "format": rows.first().map(|r: &replay::cache::CacheRun| r.format.name()),
                "reclaim": policy,
                "clock_init_ref": opts.clock_init_ref,
                "frames": a.frames,
                "machine": cfg,
            },
            "rows": rows,
        });
        let text =
            serde_json::to_string_pretty(&doc).map_err(|e| Failure::Runtime(format!("cannot write JSON: {e}")))?;
        return out(&(text + "\n"));
    }
    let mut o = String::new();
    let _ = writeln!(o, "vmlab replay --mode cache {}", a.file.display());
    let _ = writeln!(
        o,
        "{:<10} {:>10} {:>12} {:>12} {:>10} {:>14}",
        "policy", "frames", "references", "misses", "miss_ratio", "refs_per_s"
    );
    for r in &rows {
        let _ = writeln!(
            o,
            "{:<10} {:>10} {:>12} {:>12} {:>10.4} {:>14.0}",
            r.policy, r.frames, r.references, r.misses, r.miss_ratio, r.refs_per_s
        );
    }
    out(&o)
}

/// `--format` (with `--trace-params`), or a csv if only `--trace-params` is given.
fn trace_format(a: &ReplayArgs) -> Result<Option<Format>, Failure> {
    Ok(match &a.format {
        Some(f) => {
            Some(Format::parse(f, a.trace_params.as_deref()).map_err(|e| Failure::Usage(format!("--format: {e}")))?)
        }
        None if a.trace_params.is_some() => Some(
            Format::parse("csv", a.trace_params.as_deref())
                .map_err(|e| Failure::Usage(format!("--trace-params: {e}")))?,
        ),
        None => None,
    })
}

/// A progress bar on stderr for runs longer than a second (none when hidden,
/// and indicatif draws nothing when stderr is not a terminal): the share of
/// the trace's file read, with an ETA (a spinner for a trace from a pipe),
/// and the references so far and their rate. Each `--frames` value's run
/// gets its own bar.
struct Progress {
    show: bool,
    /// When the first run started: the bar appears after a second of it.
    start: Instant,
    bar: Option<indicatif::ProgressBar>,
    /// The run the bar shows, and when it started.
    run: usize,
    run_start: Instant,
}

/// The bar's length: the file read, in thousandths.
const PER_MILLE: u64 = 1000;

impl Progress {
    fn new(show: bool) -> Progress {
        Progress {
            show,
            start: Instant::now(),
            bar: None,
            run: 0,
            run_start: Instant::now(),
        }
    }

    fn tick(&mut self, policy: &str, frames: u64, run: usize, runs: usize, t: vmlab::replay::Tick) {
        if !self.show {
            return;
        }
        if run != self.run {
            self.run = run;
            self.run_start = Instant::now();
            if let Some(b) = self.bar.take() {
                b.finish_and_clear();
            }
        }
        let per_mille = t.fraction.map(|f| (f * PER_MILLE as f64) as u64);
        if self.bar.is_none() && self.start.elapsed() > Duration::from_secs(1) {
            // A trace from a pipe has no length: a spinner.
            let b = match per_mille {
                Some(at) => {
                    let b = indicatif::ProgressBar::new(PER_MILLE);
                    if let Ok(style) = indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {percent}% ETA {eta}")
                    {
                        b.set_style(style.progress_chars("=> "));
                    }
                    // The ETA is indicatif's, from the bar's rate since it
                    // began: start it at the run's position so far.
                    b.set_position(at);
                    b.reset_eta();
                    b
                }
                None => indicatif::ProgressBar::new_spinner(),
            };
            b.enable_steady_tick(Duration::from_millis(200));
            self.bar = Some(b);
        }
        if let Some(b) = &self.bar {
            // The run's first batch came before its first tick: no rate
            // until the run has gone on a while.
            let secs = self.run_start.elapsed().as_secs_f64();
            let rate = if secs > 0.2 {
                format!(", {:.0}/s", t.refs as f64 / secs)
            } else {
                String::new()
            };
            if let Some(at) = per_mille {
                b.set_position(at);
            }
            b.set_message(format!(
                "{policy} {frames} frames (run {}/{runs}): {} references{rate}",
                run + 1,
                t.refs
            ));
        }
    }

    fn finish(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}

/// `--mode full`: each `--frames` value on a fresh machine (`vmlab::replay::full`).
fn full(
    cfg: &vmlab::mm::system::MachineConfig,
    policy: Option<&str>,
    format: Option<Format>,
    files: &vmlab::replay::program::Files,
    a: &ReplayArgs,
) -> Result<(), Failure> {
    use vmlab::replay::full::{self, FullError, FullPolicy};
    let policy = match policy {
        Some(p) => FullPolicy::parse(p),
        None => Ok(FullPolicy::Design(cfg.reclaim)),
    }
    .map_err(|e| Failure::Usage(e.to_string()))?;
    let name = match policy {
        FullPolicy::Design(d) => d.as_str().to_string(),
        FullPolicy::Bound(b) => b.name().to_string(),
    };
    let build = |c: &vmlab::mm::system::MachineConfig| vmlab::host::build_machine(c).map_err(|e| e.to_string());
    let mut bar = Progress::new(!a.quiet && !a.json);
    let mut rows = Vec::new();
    // A recorded program's faults outside its mappings, and its syscalls that
    // did not do on replay what they did when recorded.
    let mut unexpected: Vec<String> = Vec::new();
    let mut host_notes: Vec<String> = Vec::new();
    let input = full::Input {
        path: &a.file,
        format,
        files,
    };
    for (n, &frames) in a.frames.iter().enumerate() {
        let mut progress = |t| bar.tick(&name, frames, n, a.frames.len(), t);
        let r = full::run_any_file(&input, cfg, frames, policy, &build, &mut progress).map_err(|e| match e {
            FullError::Trace(t) => Failure::Usage(t.to_string()),
            FullError::Usage(m) => Failure::Usage(m),
            other => Failure::Runtime(other.to_string()),
        })?;
        let row = |references: u64, misses: u64, elapsed: Duration, stats: &vmlab::mm::system::Stats| {
            json!({
                "policy": name,
                "frames": frames,
                "references": references,
                "misses": misses,
                "miss_ratio": if references == 0 { 0.0 } else { misses as f64 / references as f64 },
                "refs_per_s": references as f64 / elapsed.as_secs_f64().max(1e-9),
                "pgscan": stats.pgscan_direct + stats.pgscan_kswapd,
                "pgsteal": stats.pgsteal_direct + stats.pgsteal_kswapd,
                "pswpout": stats.pswpout,
            })
        };
        let v = match &r {
            full::Replayed::Pages(p) => {
                let mut v = row(p.references, p.misses, p.elapsed, &p.stats);
                v["distinct"] = json!(p.distinct);
                v["first_touches"] = json!(p.first_touches);
                v["major_faults"] = json!(p.major_faults);
                v
            }
            full::Replayed::Program(p) => {
                let mut v = row(p.references, p.misses, p.elapsed, &p.stats);
                v["distinct"] = json!(p.distinct);
                v["first_touches"] = json!(p.first_touches);
                v["major_faults"] = json!(p.major_faults);
                v["events"] = json!(p.events);
                v["outside"] = json!(p.outside);
                v["protection"] = json!(p.protection);
                v["other_faults"] = json!(p.other_faults);
                v["divergences"] = json!(p.divergences);
                v["files_from_host"] = json!(p
                    .files_from_host
                    .iter()
                    .map(|f| json!({"path": f.path, "host": f.host, "host_len": f.host_len, "len": f.len}))
                    .collect::<Vec<_>>());
                if n == 0 {
                    for f in &p.files_from_host {
                        let fit = match f.host_len.cmp(&f.len) {
                            std::cmp::Ordering::Equal => String::new(),
                            std::cmp::Ordering::Less => format!(", zero-filled from {} bytes", f.host_len),
                            std::cmp::Ordering::Greater => format!(", cut from {} bytes", f.host_len),
                        };
                        host_notes.push(format!("{}: bytes from {} ({} bytes{fit})", f.path, f.host, f.len));
                    }
                }
                for f in &p.reported {
                    unexpected.push(format!(
                        "{frames} frames: reference {} ({:?} of page {:#x}): {}",
                        f.reference, f.kind, f.page, f.why
                    ));
                }
                unexpected.extend(p.divergence_list.iter().map(|d| format!("{frames} frames: {d}")));
                v
            }
        };
        rows.push(v);
    }
    bar.finish();
    if a.json {
        let doc = json!({
            "experiment": "replay",
            "config": {
                "mode": "full",
                "trace": a.file.display().to_string(),
                "reclaim": name,
                "frames": a.frames,
                "machine": cfg,
            },
            "rows": rows,
        });
        let text =
            serde_json::to_string_pretty(&doc).map_err(|e| Failure::Runtime(format!("cannot write JSON: {e}")))?;
        out(&(text + "\n"))?;
        return unexpected_faults(&unexpected);
    }
    let mut o = String::new();
    let _ = writeln!(o, "vmlab replay --mode full {}", a.file.display());
    let _ = writeln!(
        o,
        "{:<10} {:>10} {:>12} {:>12} {:>10} {:>12} {:>14}",
        "policy", "frames", "references", "misses", "miss_ratio", "major", "refs_per_s"
    );
    for r in &rows {
        let _ = writeln!(
            o,
            "{:<10} {:>10} {:>12} {:>12} {:>10.4} {:>12} {:>14.0}",
            r["policy"].as_str().unwrap_or(""),
            r["frames"].as_u64().unwrap_or(0),
            r["references"].as_u64().unwrap_or(0),
            r["misses"].as_u64().unwrap_or(0),
            r["miss_ratio"].as_f64().unwrap_or(0.0),
            r["major_faults"].as_u64().unwrap_or(0),
            r["refs_per_s"].as_f64().unwrap_or(0.0)
        );
    }
    for n in &host_notes {
        let _ = writeln!(o, "file {n}");
    }
    out(&o)?;
    unexpected_faults(&unexpected)
}

/// A recorded program that faulted outside its mappings or whose syscalls
/// diverged did not replay as it ran: list the first ones, exit 1.
fn unexpected_faults(list: &[String]) -> Result<(), Failure> {
    if list.is_empty() {
        return Ok(());
    }
    for l in list.iter().take(20) {
        eprintln!("vmlab replay: {l}");
    }
    Err(Failure::Runtime(format!(
        "the recorded program did not replay as it ran: {} unexpected faults or divergences (first ones above)",
        list.len()
    )))
}
