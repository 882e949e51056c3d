//! fork: copy an address space into a new one, by one of three designs.
//!
//! - `Cow` (Linux `dup_mmap` / `copy_page_range`): copy the page tables,
//!   write-protect private pages in both, copy on the first write.
//! - `SharedPt` (the 2.5.49-mm shared page-table patch, seeds 001/003): the
//!   child points at the parent's leaf tables, which become copy-on-write at
//!   the table level (see `shared_pt.rs`); nothing per page is touched.
//! - `Eager` (seed 000 "no COW on anonymous vma"): copy every private
//!   anonymous page now; nothing is owed later.
//!
//! Each design is one file (`cow.rs`, `shared_pt.rs`, `eager.rs`)
//! implementing `ForkDesign::copy_tables`, the part in which they differ;
//! `ForkPolicy` is the enum over them. What all three share (the VMAs, the
//! accounting, the anonymous identities) is `AddressSpace::fork_into` here.
//!
//! All three give the same visible semantics. As in Linux (`vma_needs_copy`),
//! only VMAs with an anonymous identity (anonymous pages, or guard markers:
//! MADV_GUARD_INSTALL gives one, shared VMAs included) have their page
//! tables copied, markers with the rest (`pte_ops::copy_into`: a marker
//! holds no frame); the child faults the rest in again from the zero page
//! or the memory object.

mod cow;
mod eager;
mod shared_pt;

pub use cow::CowFork;
pub use eager::EagerFork;
pub use shared_pt::SharedPtFork;

use super::address_space::{AddressSpace, MapState};
use super::fault::FaultCtx;
use super::vma::{VmFlags, Vma};
use super::vma_map::VmaMap;
use crate::errno::{Errno, SysResult};
use crate::pgtable::Pte;
use crate::phys::PhysMem;
use crate::sync::Ordering;
use crate::tlb::PendingFlush;
use alloc::vec::Vec;

/// Config values of `fork`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ForkPolicy {
    Cow,
    SharedPt,
    Eager,
}

/// What one fork did.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ForkReport {
    /// Leaf tables the child now shares with the parent (`SharedPt`).
    pub tables_shared: usize,
    /// Private pages copied at fork (`Eager`).
    pub pages_copied: usize,
    /// Page-table entries copied into the child.
    pub ptes_copied: usize,
}

impl AddressSpace {
    /// Copy this address space into `child`, which must be new and empty.
    /// Changes to the parent's translations go into `flush`, which the caller
    /// shoots down. ENOMEM if an inherited `VM_ACCOUNT` VMA is larger than
    /// the commit limit (found before anything is copied) or if frames run
    /// out; the child is then left partly built and the caller tears it
    /// down; the parent is intact (after a frame shortage some private pages
    /// may have been write-protected, which only costs a reuse fault later).
    /// Linux: `dup_mm` → `dup_mmap`.
    pub fn fork_into(
        &self,
        cx: &FaultCtx<'_>,
        child: &AddressSpace,
        policy: ForkPolicy,
        flush: &mut PendingFlush,
    ) -> SysResult<ForkReport> {
        let st = self.map.write();
        let mut cst = child.map.write();
        cst.mmap_base = st.mmap_base;
        cst.start_brk = st.start_brk;
        cst.brk = st.brk;
        cst.max_map_count = st.max_map_count;
        cst.commit_limit_pages = st.commit_limit_pages;
        // Resource limits are inherited (Linux `copy_signal`).
        cst.stack_rlimit = st.stack_rlimit;
        cst.memlock_rlimit = st.memlock_rlimit;
        // `mm->def_flags` (mlockall(MCL_FUTURE)) is not: the child's stays 0.

        let needs_copy = |v: &Vma| v.anon_id() != 0 && !v.flags.has(VmFlags::WIPEONFORK);
        let mut copied: Vec<Vma> = Vec::new();
        st.vmas.for_each(&mut |v| {
            if !v.flags.has(VmFlags::DONTCOPY) {
                copied.push(v.clone());
            }
        });
        for v in &copied {
            // dup_mmap charges each accountable VMA the child inherits
            // (`security_vm_enough_memory_mm` of its size; MADV_DONTFORK
            // ones were skipped above, MADV_WIPEONFORK ones are charged):
            // under the overcommit heuristic one VMA of more pages than
            // RAM + swap fails the fork with ENOMEM. mmap, mprotect and brk
            // check each request, but VMAs that merged (or grew by mremap)
            // can be larger than any one request was. Checked before any
            // page table is copied, so the parent is untouched; the caller
            // tears the child down.
            if v.flags.has(VmFlags::ACCOUNT) && v.pages() > st.commit_limit_pages {
                return Err(Errno::ENOMEM);
            }
            // The child's VMA gets an anonymous identity of its own, chained
            // to the parent's in Linux (`anon_vma_fork`); its pages keep the
            // parent's identity as their owner until the child copies them.
            // A MADV_WIPEONFORK VMA starts empty, with no identity.
            let mut c = v.clone();
            // Memory locks are not inherited (Linux `dup_mmap` clears
            // VM_LOCKED_MASK).
            c.flags.0 &= !VmFlags::LOCKED_MASK;
            c.anon_forked = needs_copy(v);
            let id = match c.anon_forked {
                true => cx.ids.fork_anon(child.id, v.anon_id()),
                false => 0,
            };
            if let Some(o) = c.backing.object() {
                cx.ids.map_object(child.id, o.id().0);
            }
            c.anon.store(id, Ordering::Release);
            cst.vmas.insert(c);
        }
        let mut report = ForkReport::default();
        let fx = ForkCx {
            cx,
            parent: self,
            child,
            st: &st,
            cst: &cst,
        };
        let to_copy: Vec<&Vma> = copied.iter().filter(|v| needs_copy(v)).collect();
        policy.copy_tables(&fx, &to_copy, flush, &mut report)?;
        Ok(report)
    }
}

/// What a design's `copy_tables` works with: the parent and the child with
/// both map locks held for writing, and the child's VMAs already in place.
pub struct ForkCx<'a> {
    pub(crate) cx: &'a FaultCtx<'a>,
    pub(crate) parent: &'a AddressSpace,
    pub(crate) child: &'a AddressSpace,
    pub(crate) st: &'a MapState,
    pub(crate) cst: &'a MapState,
}

impl ForkCx<'_> {
    /// The child's anonymous identity for the parent's VMA `v` (its copy).
    pub(crate) fn child_anon(&self, v: &Vma) -> SysResult<u64> {
        self.cst
            .vmas
            .find(v.start)
            .filter(|c| c.start == v.start)
            .map(|c| c.anon_id())
            .ok_or(Errno::ENOMEM)
    }
}

/// One fork design: how the page tables of the VMAs to copy (`to_copy`,
/// the inherited VMAs with anonymous pages) reach the child.
pub trait ForkDesign {
    fn copy_tables(
        &self,
        fx: &ForkCx<'_>,
        to_copy: &[&Vma],
        flush: &mut PendingFlush,
        report: &mut ForkReport,
    ) -> SysResult<()>;
}

impl ForkDesign for ForkPolicy {
    fn copy_tables(
        &self,
        fx: &ForkCx<'_>,
        to_copy: &[&Vma],
        flush: &mut PendingFlush,
        report: &mut ForkReport,
    ) -> SysResult<()> {
        match self {
            ForkPolicy::Cow => CowFork.copy_tables(fx, to_copy, flush, report),
            ForkPolicy::SharedPt => SharedPtFork.copy_tables(fx, to_copy, flush, report),
            ForkPolicy::Eager => EagerFork.copy_tables(fx, to_copy, flush, report),
        }
    }
}

/// Count the frames (not the zero page) a leaf table maps.
pub(crate) fn table_frames(phys: &PhysMem, table: crate::addr::Pfn) -> usize {
    let Some(words) = phys.ram().frame(table) else { return 0 };
    words
        .iter()
        .filter(|w| {
            let p = Pte(w.load(Ordering::Relaxed));
            p.maps_frame() && !p.special()
        })
        .count()
}
