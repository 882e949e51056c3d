//! Cache-mode replay: every page reference of a trace through one policy,
//! read in batches (`TraceReader::read_batch`) so the hot loop is a loop
//! over a slice. Address-space events in the trace are skipped: a cache
//! sees only references.
//!
//! `opt` needs each reference's next use: a first pass spills the trace's
//! pages to a temporary file, a backward pass over it writes each
//! reference's next use to a second one (holding one map entry per
//! distinct page), and the replay streams them: memory is bounded by the
//! distinct pages, not the trace's length.

use super::{ReplayError, Tick};
use crate::cache::{self, CachePolicy, Options};
use crate::trace::{self, Format, Record};
use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
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
/// over `frames` frames. `progress` is told how far it has got after
/// each batch.
pub fn run(
    path: &Path,
    format: Option<Format>,
    policy: &str,
    frames: u64,
    opts: &Options,
    progress: &mut dyn FnMut(Tick),
) -> Result<CacheRun, ReplayError> {
    let start = Instant::now();
    let (format, refs, misses) = if cache::needs_future(policy) {
        let f = cache::check_frames(frames).map_err(|e| ReplayError::Usage(e.to_string()))?;
        let future = spill_next_uses(path, format.clone())?;
        let mut o = cache::Opt::streaming(f, Box::new(future));
        let r = replay(&mut o, path, format, progress)?;
        if let Some(e) = o.error() {
            return Err(ReplayError::Usage(format!(
                "{}: opt: reading back the next uses spilled to a temporary file: {e}",
                path.display()
            )));
        }
        r
    } else {
        let mut p = cache::build(policy, frames, opts).map_err(|e| ReplayError::Usage(e.to_string()))?;
        replay(p.as_mut(), path, format, progress)?
    };
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

/// The hot loop: every reference of the trace through `p`, a batch at a
/// time. Returns the format, the references and the misses.
fn replay<P: CachePolicy + ?Sized>(
    p: &mut P,
    path: &Path,
    format: Option<Format>,
    progress: &mut dyn FnMut(Tick),
) -> Result<(Format, u64, u64), ReplayError> {
    let (format, mut reader, extent) = trace::open_counted(path, format)?;
    let (mut refs, mut misses) = (0u64, 0u64);
    let mut pages = Vec::with_capacity(trace::BATCH);
    trace::for_each_batch(&mut *reader, |batch| {
        pages.clear();
        pages.extend(batch.iter().filter_map(|r| match r {
            Record::Ref(r) => Some(r.page),
            Record::Event(_) => None,
        }));
        refs += pages.len() as u64;
        misses += p.serve(&pages);
        progress(Tick::at(refs, &extent));
        Ok::<(), ReplayError>(())
    })?;
    Ok((format, refs, misses))
}

/// Each reference's next use ([`cache::opt::next_uses`]'s numbers), as
/// little-endian u64s in trace order in an unlinked temporary file, read
/// from its start. The backward pass is the oracleGeneral writer's
/// (`trace::oracle_general::for_each_with_next`: memory in proportion to
/// the distinct pages), its vtimes (the next reference's number from 1)
/// turned into indices.
pub fn spill_next_uses(path: &Path, format: Option<Format>) -> Result<File, ReplayError> {
    let spill_err = |e: io::Error| trace::TraceError::new(path, trace::At::File, format!("opt: temporary file: {e}"));
    let (_, mut reader) = trace::open(path, format)?;
    let next = tempfile::tempfile().map_err(spill_err)?;
    {
        let mut w = BufWriter::with_capacity(1 << 16, &next);
        trace::oracle_general::for_each_with_next(
            &mut trace::Pages::new(&mut *reader),
            trace::oracle_general::Never::MinusOne,
            &mut |_| Ok(()),
            &mut |_, _, vtime| {
                let nu = if vtime < 1 { cache::opt::NEVER } else { vtime as u64 - 1 };
                w.write_all(&nu.to_le_bytes())
            },
            &spill_err,
        )?;
        w.flush().map_err(spill_err)?;
    }
    (&next).seek(SeekFrom::Start(0)).map_err(spill_err)?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// A trc file of `pages` (big-endian u32s).
    fn trc(pages: &[u64]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        for &p in pages {
            f.write_all(&(p as u32).to_be_bytes()).unwrap();
        }
        f.flush().unwrap();
        f
    }

    #[test]
    fn spilled_next_uses_equal_in_memory() {
        // Longer than two of the backward pass's blocks (2^16 references),
        // so it crosses block edges.
        let pages: Vec<u64> = (0..((1u64 << 17) + 123)).map(|i| (i * 7919 + i / 3) % 5003).collect();
        let f = trc(&pages);
        let mut spilled = Vec::new();
        spill_next_uses(f.path(), Some(Format::Trc))
            .unwrap()
            .read_to_end(&mut spilled)
            .unwrap();
        let want: Vec<u8> = cache::opt::next_uses(&pages)
            .iter()
            .flat_map(|n| n.to_le_bytes())
            .collect();
        assert_eq!(spilled.len(), pages.len() * 8);
        assert!(spilled == want, "spilled next uses differ from next_uses");
        // And the streamed opt gives the in-memory one's misses.
        let r = run(
            f.path(),
            Some(Format::Trc),
            "opt",
            300,
            &Options::default(),
            &mut |_| {},
        )
        .unwrap();
        let mut o = cache::Opt::new(300, cache::opt::next_uses(&pages));
        let m = pages.iter().filter(|&&p| !o.access(p)).count() as u64;
        assert_eq!((r.references, r.misses), (pages.len() as u64, m));
        assert!(m > 5003, "{m}: more than the cold misses");
    }

    #[test]
    fn bad_policy_and_frames_are_usage_errors() {
        let f = trc(&[1, 2, 3]);
        for (p, n) in [("nope", 3), ("lru", 0), ("opt", 0)] {
            let e = run(f.path(), None, p, n, &Options::default(), &mut |_| {});
            assert!(matches!(e, Err(ReplayError::Usage(_))), "{p} {n}");
        }
    }
}
