//! Cache-only replacement policies: a fixed number of frames, a stream of
//! page references, a hit or a miss for each. No machine, no page tables:
//! the policy alone, as a cache simulator sees it (libCacheSim's model,
//! object size 1), so that vmlab's policies can be checked number for
//! number against a peer simulator and against the papers.
//!
//! One file per policy, each behind [`CachePolicy`]; [`build`] makes one
//! by name. `opt` needs the future of the trace (each reference's next use),
//! which only a caller that has read the trace can give it ([`Opt::new`]);
//! `replay::cache` does that.
//!
//! Owns: the policies' state (lists in slot-indexed arenas, page→slot maps).
//! May call: `std` only. Used by `replay::cache`, the cross-check test and
//! the benches.

pub mod arc;
pub mod clock;
pub mod clock_pro;
pub mod fifo;
pub mod lirs;
pub(crate) mod list;
pub mod lru;
pub mod mglru;
pub mod opt;
mod slot_map;
pub mod two_list;

pub use opt::Opt;

use std::hash::{BuildHasherDefault, Hasher};

/// A replacement policy over `frames` frames.
pub trait CachePolicy {
    /// Reference `page`: true on a hit. A miss brings the page in, evicting
    /// first if every frame is in use (so a full cache stays full).
    fn access(&mut self, page: u64) -> bool;
    /// The policy's name, as [`build`] takes it.
    fn name(&self) -> &'static str;
    /// Pages resident now (at most the frames).
    fn resident(&self) -> usize;
    /// A hint that `page` will be referenced soon: a policy may start
    /// fetching where its map keeps `page`. Changes no state.
    #[inline]
    fn prefetch(&self, _page: u64) {}
    /// A hint that `page` comes sooner still, [`PREFETCH_NEAR`] references
    /// ahead where [`CachePolicy::prefetch`] was [`PREFETCH_FAR`] ahead: its
    /// map entry should be in cache by now, so the policy may start
    /// fetching what the entry points to. Changes no state.
    #[inline]
    fn prefetch_near(&self, _page: u64) {}
    /// Reference `pages` in order, passing each page to the prefetch
    /// hints [`PREFETCH_FAR`] and [`PREFETCH_NEAR`] references before it
    /// is referenced: the replay's hot loop. Returns the misses. (A
    /// provided method, so each policy gets its own copy with `access` and
    /// the hints inlined: one dynamic call per batch, not three per page.)
    fn serve(&mut self, pages: &[u64]) -> u64 {
        let mut misses = 0;
        for (i, &page) in pages.iter().enumerate() {
            if let Some(&far) = pages.get(i + PREFETCH_FAR) {
                self.prefetch(far);
            }
            if let Some(&near) = pages.get(i + PREFETCH_NEAR) {
                self.prefetch_near(near);
            }
            misses += u64::from(!self.access(page));
        }
        misses
    }
}

/// How far ahead of the reference being served a replay passes pages to
/// [`CachePolicy::prefetch`] and [`CachePolicy::prefetch_near`]: far
/// enough that a line arrives in time (serving a reference takes tens of
/// nanoseconds, a line from memory about a hundred), near enough that it
/// is still in cache when used.
pub const PREFETCH_FAR: usize = 16;
pub const PREFETCH_NEAR: usize = 8;

/// Options of the policies that have any (`--set KEY=VALUE` in the CLI).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Clock: a page comes in with its reference bit set, as a VM fault
    /// leaves the accessed bit. Off by default: libCacheSim's Clock inserts
    /// with the bit clear, and the cross-check needs its numbers.
    pub clock_init_ref: bool,
}

/// The names [`build`] takes.
pub const NAMES: &[&str] = &[
    "fifo",
    "lru",
    "clock",
    "two_list",
    "mglru",
    "arc",
    "lirs",
    "clock_pro",
    "opt",
];

/// Why a policy cannot be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("unknown cache policy `{0}` (one of: {names})", names = NAMES.join(", "))]
    Unknown(String),
    #[error("a cache needs at least one frame")]
    NoFrames,
    #[error("{0} frames: more than a cache of u32 slots can index")]
    TooManyFrames(u64),
    #[error("opt needs the trace's future (each reference's next use): build it with cache::Opt::new")]
    NeedsFuture,
}

/// Whether `name` needs the future of the trace (only `opt`).
pub fn needs_future(name: &str) -> bool {
    name == "opt"
}

/// Check a frame count every policy can hold: slots are u32 (with one
/// value kept as the null link), and ghost lists hold up to twice the
/// frames.
pub fn check_frames(frames: u64) -> Result<usize, PolicyError> {
    if frames == 0 {
        return Err(PolicyError::NoFrames);
    }
    if frames > (u32::MAX as u64) / 4 {
        return Err(PolicyError::TooManyFrames(frames));
    }
    Ok(frames as usize)
}

/// The policy `name` over `frames` frames. `opt` is [`Opt::new`]: it needs
/// the future.
pub fn build(name: &str, frames: u64, opts: &Options) -> Result<Box<dyn CachePolicy>, PolicyError> {
    let known = NAMES.contains(&name);
    if !known {
        return Err(PolicyError::Unknown(name.to_string()));
    }
    let f = check_frames(frames)?;
    Ok(match name {
        "fifo" => Box::new(fifo::Fifo::new(f)),
        "lru" => Box::new(lru::Lru::new(f)),
        "clock" => Box::new(clock::Clock::new(f, opts.clock_init_ref)),
        "two_list" => Box::new(two_list::TwoList::new(f)),
        "mglru" => Box::new(mglru::Mglru::new(f)),
        "arc" => Box::new(arc::Arc::new(f)),
        "lirs" => Box::new(lirs::Lirs::new(f)),
        "clock_pro" => Box::new(clock_pro::ClockPro::new(f)),
        _ => return Err(PolicyError::NeedsFuture),
    })
}

/// A multiplicative hash of a u64 page id (Fibonacci hashing, the high
/// half folded into the low half since hashbrown takes bucket bits from
/// the bottom and tag bits from the top). Page ids are not adversarial
/// input here, and SipHash would cost more than the policy itself.
#[derive(Default, Clone, Copy)]
pub struct PageHasher(u64);

impl Hasher for PageHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0 ^ x).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 32)
    }
}

/// A map from page id to slot with [`PageHasher`].
pub type PageMap<V> = std::collections::HashMap<u64, V, BuildHasherDefault<PageHasher>>;

/// Most entries a policy reserves room for up front: beyond, its maps and
/// arenas grow as pages come (a cache of a billion frames over a small
/// trace must not allocate for a billion).
pub const PREALLOC_MAX: usize = 1 << 16;

/// A [`PageMap`] with room for `n` pages (at most [`PREALLOC_MAX`]).
pub fn page_map<V>(n: usize) -> PageMap<V> {
    PageMap::with_capacity_and_hasher(n.min(PREALLOC_MAX), Default::default())
}

#[cfg(test)]
mod tests;
