//! Victims named from outside the machine (`VictimOracle`): the bounds a
//! trace replayer computes from every reference (exact LRU, Belady's OPT),
//! which no real design can be, since the machine shows a design accesses
//! only as accessed bits. While an oracle is set (`Reclaimer::set_oracle`)
//! every `shrink` evicts the pages it names, one page per call whatever
//! the caller asked for: a bound that took a batch where its policy takes
//! one page would not be that policy. The pages go through the shared
//! eviction (`Reclaimer::pageout_locked`), as MADV_PAGEOUT's do.
//!
//! May call: `registry`, `address_space`, `pgtable` (to turn a named page
//! into its frame), `pte_ops` (to hold it), `phys`, and the shared eviction.

use super::{ReclaimCx, Reclaimer};
use crate::addr::Pfn;

/// A policy outside the machine that names the pages reclaim evicts.
pub trait VictimOracle: Send {
    /// The next page to evict, as (address-space id, virtual address);
    /// `None` if it has none to name. A page it names that is not resident
    /// (or cannot be evicted now) is skipped and the next one asked for.
    fn victim(&mut self) -> Option<(u64, u64)>;
}

/// Pages `shrink` asks the oracle for at most per call before it gives up
/// (a named page may be gone, or busy).
const MAX_NAMED: usize = 64;

/// Evict the first page `oracle` names that can be evicted: 1 if one was,
/// 0 if none. Precondition: `r.busy` held.
pub(super) fn shrink(r: &Reclaimer, cx: &ReclaimCx<'_>, oracle: &mut dyn VictimOracle) -> usize {
    for _ in 0..MAX_NAMED {
        let Some((mm, va)) = oracle.victim() else { break };
        let Some(pfn) = frame_of(cx, mm, va) else { continue };
        let freed = r.pageout_locked(cx, &[pfn]);
        cx.account(1, freed);
        if freed > 0 {
            return freed;
        }
    }
    0
}

/// The frame that `va` of address space `mm` maps, with a reference for
/// the caller; `None` if it maps none (or its map lock is busy).
fn frame_of(cx: &ReclaimCx<'_>, mm: u64, va: u64) -> Option<Pfn> {
    let phys = cx.rcx.phys;
    let mm = cx.rcx.mms.get(mm)?;
    let st = mm.map.try_read()?;
    if st.dead {
        return None;
    }
    let e = mm.page_table().leaf(phys, va)?;
    let p = e.load();
    if !p.maps_frame() || p.special() || p.locked() {
        return None;
    }
    crate::mm::pte_ops::hold_mapped(phys, e, p)
}
