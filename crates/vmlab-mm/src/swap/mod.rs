//! Swap areas: where anonymous pages go when reclaim takes their frames
//! (issue 11). This layer owns the block-device seam (`SwapDevice`, which
//! the host implements over a file) and the slot allocator with its
//! per-slot counts (`SwapArea`, Linux `swap_info_struct` and `swap_map`).
//! What maps a slot — swap entries in PTEs (`pgtable::SwapEntry`), the swap
//! cache — is the mm layer's.
//!
//! May call: `addr`, `errno`, `pgtable` (the entry type), `sync`.

mod area;
mod device;

pub use area::{SwapArea, SwapFull, MAX_SWAP_COUNT};
pub use device::{MemSwap, SwapDevice};
