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

use super::ReplayError;
use crate::cache::{self, CachePolicy, Options};
use crate::trace::{self, Format, Record};
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
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
    progress: &mut dyn FnMut(u64),
) -> Result<(Format, u64, u64), ReplayError> {
    let (format, mut reader) = trace::open(path, format)?;
    let mut batch = Vec::with_capacity(trace::BATCH);
    let (mut refs, mut misses) = (0u64, 0u64);
    loop {
        reader.read_batch(&mut batch, trace::BATCH)?;
        if batch.is_empty() {
            return Ok((format, refs, misses));
        }
        for r in &batch {
            if let Record::Ref(r) = r {
                refs += 1;
                misses += u64::from(!p.access(r.page));
            }
        }
        progress(refs);
    }
}

/// References a chunk of the backward pass holds.
const CHUNK: usize = 1 << 16;

/// Each reference's next use ([`cache::opt::next_uses`]'s numbers), as
/// little-endian u64s in trace order in an unlinked temporary file, read
/// from its start.
pub fn spill_next_uses(path: &Path, format: Option<Format>) -> Result<File, ReplayError> {
    let tmp_err = |e: io::Error| ReplayError::Usage(format!("{}: opt: temporary file: {e}", path.display()));
    // Forward: the pages.
    let mut pages = BufWriter::new(tempfile::tempfile().map_err(tmp_err)?);
    let (_, mut reader) = trace::open(path, format)?;
    let mut batch = Vec::with_capacity(trace::BATCH);
    let mut n = 0u64;
    loop {
        reader.read_batch(&mut batch, trace::BATCH)?;
        if batch.is_empty() {
            break;
        }
        for r in &batch {
            if let Record::Ref(r) = r {
                pages.write_all(&r.page.to_le_bytes()).map_err(tmp_err)?;
                n += 1;
            }
        }
    }
    let mut pages = pages.into_inner().map_err(|e| tmp_err(e.into_error()))?;
    // Backward, a chunk at a time: each page's last use seen so far is the
    // next use of the reference before it.
    let mut next = tempfile::tempfile().map_err(tmp_err)?;
    next.set_len(n * 8).map_err(tmp_err)?;
    let mut last: cache::PageMap<u64> = cache::page_map(1024);
    let mut buf = vec![0u8; CHUNK * 8];
    let mut out = vec![0u8; CHUNK * 8];
    let mut end = n;
    while end > 0 {
        let begin = end.saturating_sub(CHUNK as u64);
        let len = ((end - begin) * 8) as usize;
        pages.seek(SeekFrom::Start(begin * 8)).map_err(tmp_err)?;
        pages.read_exact(&mut buf[..len]).map_err(tmp_err)?;
        for k in (0..(end - begin) as usize).rev() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[k * 8..k * 8 + 8]);
            let page = u64::from_le_bytes(b);
            let i = begin + k as u64;
            let nu = last.insert(page, i).unwrap_or(cache::opt::NEVER);
            out[k * 8..k * 8 + 8].copy_from_slice(&nu.to_le_bytes());
        }
        next.seek(SeekFrom::Start(begin * 8)).map_err(tmp_err)?;
        next.write_all(&out[..len]).map_err(tmp_err)?;
        end = begin;
    }
    next.seek(SeekFrom::Start(0)).map_err(tmp_err)?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // Longer than a chunk, so the backward pass crosses chunk edges.
        let pages: Vec<u64> = (0..(CHUNK as u64 * 2 + 123))
            .map(|i| (i * 7919 + i / 3) % 5003)
            .collect();
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
