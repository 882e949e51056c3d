//! `vmlab replay FILE --mode cache`: a trace's page references through one
//! cache-only replacement policy per run (`vmlab::replay::cache`), one row
//! per `--frames` value, as a table or one JSON object
//! `{"experiment": "replay", "config", "rows"}`.
//!
//! The policy is `--set reclaim=NAME` (default `lru`), which the machine
//! config does not know (its `reclaim` is clock|two_list|vma_scan|mglru):
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
    /// full: the recorded program on the simulated machine (not built yet).
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
    let mut policy = "lru".to_string();
    let mut opts = Options::default();
    for (k, v) in &own {
        match k.as_str() {
            "reclaim" => policy = v.clone(),
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
    match Mode::parse(&a.mode).map_err(Failure::Usage)? {
        Mode::Full => return Err(Failure::Usage("replay: full mode is not built yet".into())),
        Mode::Cache => {}
    }
    if !cache::NAMES.contains(&policy.as_str()) {
        return Err(Failure::Usage(format!(
            "--set reclaim={policy}: not a cache policy (one of: {})",
            cache::NAMES.join(", ")
        )));
    }
    if a.frames.is_empty() {
        return Err(Failure::Usage("replay --mode cache needs --frames N[,N...]".into()));
    }
    let format = match &a.format {
        Some(f) => {
            Some(Format::parse(f, a.trace_params.as_deref()).map_err(|e| Failure::Usage(format!("--format: {e}")))?)
        }
        None if a.trace_params.is_some() => Some(
            Format::parse("csv", a.trace_params.as_deref())
                .map_err(|e| Failure::Usage(format!("--trace-params: {e}")))?,
        ),
        None => None,
    };
    let show = !a.quiet && !a.json;
    let start = Instant::now();
    let mut bar: Option<indicatif::ProgressBar> = None;
    let mut rows = Vec::new();
    for (n, &frames) in a.frames.iter().enumerate() {
        let mut progress = |refs: u64| {
            if !show {
                return;
            }
            // Only runs longer than a second get a bar.
            if bar.is_none() && start.elapsed() > Duration::from_secs(1) {
                let b = indicatif::ProgressBar::new_spinner();
                b.enable_steady_tick(Duration::from_millis(200));
                bar = Some(b);
            }
            if let Some(b) = &bar {
                b.set_message(format!(
                    "{policy} {frames} frames (run {}/{}): {refs} references",
                    n + 1,
                    a.frames.len()
                ));
            }
        };
        let r = replay::cache::run(&a.file, format.clone(), &policy, frames, &opts, &mut progress).map_err(
            |e| match e {
                ReplayError::Usage(m) => Failure::Usage(m),
                ReplayError::Trace(t) => Failure::Usage(t.to_string()),
            },
        )?;
        rows.push(r);
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
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
