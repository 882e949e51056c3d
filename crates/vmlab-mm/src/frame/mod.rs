//! Frame allocation: the `FrameAllocator` trait and one file per policy.
//!
//! Owns the free/used state of physical frames inside one zone. It knows
//! frames only by number; it never touches frame bytes or descriptors
//! (`phys` does that), so an allocator here can be reused on its own.
//! May call: `addr`.

pub mod buddy;
pub mod pcp;

use crate::addr::Pfn;
use core::fmt;

/// Why a `free` was refused. The allocator's state is unchanged when it is.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FreeError {
    /// The run is not (wholly) inside the frames this allocator manages.
    OutOfRange,
    /// The run does not start where an allocation of this size starts.
    Misaligned,
    /// Some frame of the run is already free.
    DoubleFree,
}

impl fmt::Display for FreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FreeError::OutOfRange => "run outside the allocator's frames",
            FreeError::Misaligned => "run does not start an allocation of that size",
            FreeError::DoubleFree => "frame already free",
        })
    }
}

/// An allocator of runs of physical frames.
///
/// A run is asked for by `count` (any length ≥ 1) and `align` (a power of
/// two, in frames), so that allocators serving any length (page arrays,
/// boundary-tag best fit) fit the same trait; buddy rounds the run up to a
/// power of two. Linux: `alloc_pages`/`__free_pages`; FreeBSD: `vm_phys_alloc_pages`.
pub trait FrameAllocator {
    /// Allocate `count` contiguous frames whose first frame number is a
    /// multiple of `align`. `None` if no such run is free, or if `count` is 0
    /// or `align` is not a power of two.
    fn alloc(&mut self, count: usize, align: usize) -> Option<Pfn>;

    /// Return a run got from `alloc` with the same `count`. A run that an
    /// allocator enlarged to honour `align` (buddy: `alloc(1, 8)` takes 8
    /// frames) is freed whole by its requested count.
    fn free(&mut self, pfn: Pfn, count: usize) -> Result<(), FreeError>;

    /// Frames currently free.
    fn free_frames(&self) -> usize;

    /// Frames this allocator manages.
    fn total_frames(&self) -> usize;

    /// Frames a request for `count` frames with `align <= count` really takes
    /// (buddy: the next power of two). Callers that ask for `align > count`
    /// pass `max(count, align)` here.
    fn frames_for(&self, count: usize) -> usize;

    /// Whether `pfn` is free in this allocator's own books.
    fn is_free(&self, pfn: Pfn) -> bool;

    /// Largest run that `alloc(n, 1)` would grant now.
    fn largest_free_run(&self) -> usize;

    /// Verify the allocator's internal invariants; describe the first broken one.
    fn check(&self) -> Result<(), alloc::string::String>;

    /// Policy name as written in config (`"buddy"`).
    fn name(&self) -> &'static str;
}
