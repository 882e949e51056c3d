//! `eager` (seed 000, "no COW on anonymous vma"): the child's tables are
//! copied as `cow` copies them, but every private anonymous page gets a
//! fresh frame and a 4 KiB copy now, so nothing is owed later: the child's
//! entries keep the parent's bits and a write costs at most a TLB miss.
//! Shared and file pages are mapped as `cow` maps them.

use super::cow::copy_ptes;
use super::{ForkCx, ForkDesign, ForkReport};
use crate::errno::SysResult;
use crate::mm::vma::Vma;
use crate::tlb::PendingFlush;

/// The copy-everything-now design.
#[derive(Copy, Clone, Debug, Default)]
pub struct EagerFork;

impl ForkDesign for EagerFork {
    fn copy_tables(
        &self,
        fx: &ForkCx<'_>,
        to_copy: &[&Vma],
        flush: &mut PendingFlush,
        report: &mut ForkReport,
    ) -> SysResult<()> {
        for v in to_copy {
            copy_ptes(fx, v, (v.start, v.end), true, flush, report)?;
        }
        Ok(())
    }
}
