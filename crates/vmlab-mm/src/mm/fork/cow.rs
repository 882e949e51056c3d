//! `cow` (Linux `dup_mmap` → `copy_page_range`): the child gets its own
//! leaf tables, one per 2 MiB span, with every entry copied; private
//! writable pages are write-protected in both and their frames' counts
//! raised, so the first write of either side copies the page
//! (`fault.rs` `do_wp_page`), or reuses it once the writer is its only
//! mapper.

use super::{ForkCx, ForkDesign, ForkReport};
use crate::errno::{Errno, SysResult};
use crate::mm::fault::NO_CPU;
use crate::mm::pte_ops;
use crate::mm::shared_pt::PD_SPAN;
use crate::mm::vma::{VmFlags, Vma};
use crate::pgtable::{leaf_slot, Level, NoFrame, Pte};
use crate::phys::{Fill, FrameUse, Owner};
use crate::tlb::PendingFlush;

/// The copy-on-write design.
#[derive(Copy, Clone, Debug, Default)]
pub struct CowFork;

impl ForkDesign for CowFork {
    fn copy_tables(
        &self,
        fx: &ForkCx<'_>,
        to_copy: &[&Vma],
        flush: &mut PendingFlush,
        report: &mut ForkReport,
    ) -> SysResult<()> {
        for v in to_copy {
            copy_ptes(fx, v, (v.start, v.end), false, flush, report)?;
        }
        Ok(())
    }
}

/// Copy the leaf entries of `[start, end)` (inside parent VMA `v`) into the
/// child: present private frames are shared write-protected in both
/// (copy-on-write), or, with `eager`, private anonymous frames are copied
/// now. Linux: `copy_pte_range` / `copy_present_pte`.
pub(super) fn copy_ptes(
    fx: &ForkCx<'_>,
    v: &Vma,
    (start, end): (u64, u64),
    eager: bool,
    flush: &mut PendingFlush,
    report: &mut ForkReport,
) -> SysResult<()> {
    let (cx, child) = (fx.cx, fx.child);
    let child_anon = fx.child_anon(v)?;
    let phys = cx.phys;
    let private = !v.flags.has(VmFlags::SHARED);
    let mut ctable_span = u64::MAX;
    let mut ctable = crate::addr::Pfn(0);
    let mut err: Option<Errno> = None;
    fx.parent.page_table().for_each_leaf(phys, start, end, |va, e| {
        if err.is_some() {
            return;
        }
        let pte = e.load();
        if pte.is_none() {
            return;
        }
        if va & !(PD_SPAN - 1) != ctable_span {
            match child.page_table().leaf_table_alloc(phys, va) {
                Ok(t) => {
                    ctable = t;
                    ctable_span = va & !(PD_SPAN - 1);
                }
                Err(NoFrame) => {
                    err = Some(Errno::ENOMEM);
                    return;
                }
            }
        }
        let Some(ce) = leaf_slot(phys, ctable, Level::Pt.index(va)) else {
            return;
        };
        let new = if pte.special() || !pte.maps_frame() {
            // A swap entry: both sides hold a reference to its slot.
            if !fx.parent.dup_if_swap(pte) {
                err = Some(Errno::ENOMEM);
                return;
            }
            pte
        } else {
            let Some(d) = phys.desc(pte.pfn()) else { return };
            if eager && private && d.usage() == FrameUse::Anon {
                let Some(copy) = phys.alloc_page(NO_CPU, FrameUse::Anon, Fill::Caller) else {
                    err = Some(Errno::ENOMEM);
                    return;
                };
                phys.ram().copy_frame(copy, pte.pfn());
                phys.lru_place(copy, None, crate::phys::Entry::Other);
                if let Some(cd) = phys.desc(copy) {
                    let index = match d.owner() {
                        Owner::Anon { index, .. } => index,
                        _ => v.pgoff_of(va),
                    };
                    cd.set_owner(Owner::Anon {
                        anon: child_anon,
                        index,
                    });
                }
                report.pages_copied += 1;
                // The fresh frame's reference becomes the child's mapping.
                pte_ops::publish(
                    phys,
                    child.counts_on(NO_CPU),
                    ce,
                    va,
                    Pte(0),
                    Pte::new(copy, pte.0 & !Pte::ADDR_MASK),
                    flush,
                );
                report.ptes_copied += 1;
                return;
            } else {
                if private && pte.writable() {
                    // Both sides now share the frame read-only.
                    pte_ops::update(e, va, Some(flush), |p| Some(p.without(Pte::WRITE)));
                }
                let bits = if private {
                    Pte::WRITE | Pte::ACCESSED
                } else {
                    Pte::ACCESSED
                };
                pte.without(bits)
            }
        };
        pte_ops::copy_into(phys, child.counts_on(NO_CPU), ce, new);
        report.ptes_copied += 1;
    });
    match err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
