//! 4-level radix page tables (48-bit virtual addresses) in the real x86-64
//! entry layout, held in simulated RAM, and the walker API.
//!
//! Owns: the format of entries, the shape of the tree, allocation and freeing
//! of page-table pages. It does not decide what a leaf maps: `mm` does.
//! May call: `addr`, `phys`, `sync`.
//!
//! Entries are RAM words (`AtomicU64`); upper levels are installed with
//! compare-and-swap so that concurrent faults may populate one tree. A level
//! is freed only by `prune`/`destroy`, which the caller runs with the address
//! space's map lock held for writing (no fault can be walking it then).

mod pte;
pub mod ptl;
mod walk;

pub use pte::*;
pub use walk::*;
