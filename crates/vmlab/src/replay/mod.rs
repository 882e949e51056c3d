//! Replaying a trace: `cache` mode runs its page references through one
//! cache-only replacement policy (`crate::cache`) and counts misses;
//! `full` mode runs them through the whole simulated machine (`full`).
//!
//! Owns: the replay loops and their results. May call: `crate::trace` (the
//! readers), `crate::cache` (the policies), `vmlab_mm` (full mode). Used
//! by the CLI's `replay`.

pub mod cache;
pub mod full;
pub mod program;

/// How far a replay has got, as its progress callback is told after each
/// batch: the references so far, and the fraction of the trace's file
/// read (by bytes, so known on a first pass, before the trace's length in
/// references is; `None` for a trace read from a pipe).
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Tick {
    pub refs: u64,
    pub fraction: Option<f64>,
}

impl Tick {
    /// `refs` done, with `extent`'s share of the file read.
    pub fn at(refs: u64, extent: &crate::trace::Extent) -> Tick {
        Tick {
            refs,
            fraction: extent.fraction(),
        }
    }
}

/// How a trace is replayed (`--mode`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Page references only, through a cache policy.
    Cache,
    /// References and address-space events on the simulated machine.
    Full,
}

impl Mode {
    pub const NAMES: &'static [&'static str] = &["cache", "full"];

    pub fn parse(s: &str) -> Result<Mode, String> {
        match s {
            "cache" => Ok(Mode::Cache),
            "full" => Ok(Mode::Full),
            other => Err(format!("unknown replay mode `{other}` (one of: cache, full)")),
        }
    }
}

/// Why a replay did not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Bad parameters: an unknown policy, no frames (the CLI exits 2).
    #[error("{0}")]
    Usage(String),
    /// The trace cannot be read (the CLI exits 2: bad input).
    #[error("{0}")]
    Trace(#[from] crate::trace::TraceError),
}
