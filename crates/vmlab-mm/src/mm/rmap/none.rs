//! `rmap = none`: no reverse map. Every live address space is a candidate
//! and is searched by walking its page tables over each VMA (Linux 2.4's
//! `swap_out` scanned the same way), so finding a frame's mappings costs
//! the size of every address space, not the number of mappings.

use super::{Find, RmapCx};
use alloc::vec::Vec;

pub(super) fn candidates(cx: &RmapCx<'_>) -> Vec<(u64, Find)> {
    cx.mms.ids().into_iter().map(|mm| (mm, Find::Scan)).collect()
}
