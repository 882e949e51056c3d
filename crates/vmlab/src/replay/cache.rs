//! Cache-mode replay: every page reference of a trace through one policy,
//! read in batches (`TraceReader::read_batch`) so the hot loop is a loop
//! over a slice. Address-space events in the trace are skipped: a cache
//! sees only references.
//!
//! `opt` needs each reference's next use: a first pass reads the trace's
//! pages into memory (8 bytes a reference) and computes the next uses
//! backwards (8 bytes a reference more), then the second pass replays.

use super::ReplayError;
use crate::cache::{self, CachePolicy, Options};
use crate::trace::{self, Format, Record};
use std::path::Path;
use std::time::Instant;

/// One replay's result (a row of `vmlab replay --mode cache`).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CacheRun {
    pub policy: String,
    pub frames: u64,
    pub references: u64,
    pub misses: u64,
    pub miss_ratio: f64,
    pub refs_per_s: f64,
    /// The trace's format (as given, or sniffed).
    #[serde(skip)]
    pub format: Format,
}

/// Replay the trace at `path` (in `format`, or sniffed) through `policy`
/// over `frames` frames. `progress` is told the references done so far
/// after each batch.
pub fn run(
    path: &Path,
    format: Option<Format>,
    policy: &str,
    frames: u64,
    opts: &Options,
    progress: &mut dyn FnMut(u64),
) -> Result<CacheRun, ReplayError> {
    let mut p: Box<dyn CachePolicy> = if cache::needs_future(policy) {
        let f = cache::check_frames(frames).map_err(|e| ReplayError::Usage(e.to_string()))?;
        let pages = read_pages(path, format.clone())?;
        Box::new(cache::Opt::new(f, cache::opt::next_uses(&pages)))
    } else {
        cache::build(policy, frames, opts).map_err(|e| ReplayError::Usage(e.to_string()))?
    };
    let (format, mut reader) = trace::open(path, format)?;
    let mut batch = Vec::with_capacity(trace::BATCH);
    let (mut refs, mut misses) = (0u64, 0u64);
    let start = Instant::now();
    loop {
        reader.read_batch(&mut batch, trace::BATCH)?;
        if batch.is_empty() {
            break;
        }
        for r in &batch {
            if let Record::Ref(r) = r {
                refs += 1;
                misses += u64::from(!p.access(r.page));
            }
        }
        progress(refs);
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(CacheRun {
        policy: policy.to_string(),
        frames,
        references: refs,
        misses,
        miss_ratio: if refs == 0 { 0.0 } else { misses as f64 / refs as f64 },
        refs_per_s: if secs > 0.0 { refs as f64 / secs } else { 0.0 },
        format,
    })
}

/// Every page reference of the trace, in order.
pub fn read_pages(path: &Path, format: Option<Format>) -> Result<Vec<u64>, ReplayError> {
    let (_, mut reader) = trace::open(path, format)?;
    let mut batch = Vec::with_capacity(trace::BATCH);
    let mut pages = Vec::new();
    loop {
        reader.read_batch(&mut batch, trace::BATCH)?;
        if batch.is_empty() {
            return Ok(pages);
        }
        pages.extend(batch.iter().filter_map(|r| match r {
            Record::Ref(r) => Some(r.page),
            Record::Event(_) => None,
        }));
    }
}
