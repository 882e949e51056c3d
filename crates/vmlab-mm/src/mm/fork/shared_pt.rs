//! `shared_pt` (the 2.5.49-mm shared page-table patch, seeds 001/003): per
//! 2 MiB span whose VMAs the child all inherits, the child's PD entry points
//! at the parent's leaf table, which becomes copy-on-write at the table level
//! (`mm/shared_pt.rs`: `share_table_with`, unshared at the first fault or
//! mapping change). No per-page work. A span that also holds a VMA the
//! child does not inherit, or whose table is an object table, is copied as
//! `cow` copies it.

use super::cow::copy_ptes;
use super::{ForkCx, ForkDesign, ForkReport};
use crate::addr::TASK_SIZE;
use crate::errno::SysResult;
use crate::mm::shared_pt::PD_SPAN;
use crate::mm::vma::{VmFlags, Vma};
use crate::mm::vma_map::VmaMap;
use crate::pgtable::Pte;
use crate::sync::Ordering;
use crate::tlb::PendingFlush;
use alloc::vec::Vec;

/// The shared page-table design.
#[derive(Copy, Clone, Debug, Default)]
pub struct SharedPtFork;

impl ForkDesign for SharedPtFork {
    fn copy_tables(
        &self,
        fx: &ForkCx<'_>,
        to_copy: &[&Vma],
        flush: &mut PendingFlush,
        report: &mut ForkReport,
    ) -> SysResult<()> {
        let phys = fx.cx.phys;
        // Every 2 MiB span that holds part of a VMA to copy and has a
        // leaf table (a span without one has nothing to share or copy;
        // walking only the tables keeps a huge sparse VMA cheap).
        let mut spans: Vec<u64> = Vec::new();
        // Spans whose table is an object's (a shared VMA with an
        // anonymous identity, given by MADV_GUARD_INSTALL elsewhere
        // in it): that table is every mapper's, never fork-shared.
        let mut object_spans: Vec<u64> = Vec::new();
        for v in to_copy.iter() {
            fx.parent.page_table().for_each_pd_entry(phys, v.start, v.end, |s, pe| {
                if spans.last() != Some(&s) {
                    spans.push(s);
                }
                if pe.load(Ordering::Acquire) & Pte::TABLE_OBJ != 0 {
                    object_spans.push(s);
                }
            });
        }
        spans.dedup();
        for span in spans {
            let end = (span + PD_SPAN).min(TASK_SIZE);
            // A table can be shared only if the child inherits every
            // VMA in its span (a MADV_DONTFORK VMA must not leak).
            let mut shareable = !object_spans.contains(&span);
            for s in fx.st.vmas.starts_in(span, end) {
                let not_inherited = VmFlags::DONTCOPY | VmFlags::WIPEONFORK;
                if fx.st.vmas.find(s).is_some_and(|v| v.flags.0 & not_inherited != 0) {
                    shareable = false;
                }
            }
            if shareable {
                if fx.parent.share_table_with(phys, fx.child, span, flush)? {
                    report.tables_shared += 1;
                }
                continue;
            }
            for v in to_copy.iter().filter(|v| v.start < end && v.end > span) {
                let (a, b) = (v.start.max(span), v.end.min(end));
                copy_ptes(fx, v, (a, b), false, flush, report)?;
            }
        }
        Ok(())
    }
}
