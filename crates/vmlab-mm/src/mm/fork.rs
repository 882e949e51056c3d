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
//! All three give the same visible semantics. As in Linux (`vma_needs_copy`),
//! only VMAs with an anonymous identity (anonymous pages, or guard markers:
//! MADV_GUARD_INSTALL gives one, shared VMAs included) have their page
//! tables copied, markers with the rest (`pte_ops::copy_into`: a marker
//! holds no frame); the child faults the rest in again from the zero page
//! or the memory object.

use super::address_space::AddressSpace;
use super::fault::FaultCtx;
use super::pte_ops::{self, Rss};
use super::shared_pt::PD_SPAN;
use super::vma::{VmFlags, Vma};
use super::vma_map::VmaMap;
use crate::addr::TASK_SIZE;
use crate::errno::{Errno, SysResult};
use crate::mm::fault::NO_CPU;
use crate::pgtable::{leaf_slot, Level, NoFrame, Pte};
use crate::phys::{Fill, FrameUse, Owner, PhysMem};
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
        let phys = cx.phys;
        let st = self.map.write();
        let mut cst = child.map.write();
        cst.mmap_base = st.mmap_base;
        cst.start_brk = st.start_brk;
        cst.brk = st.brk;
        cst.max_map_count = st.max_map_count;
        cst.commit_limit_pages = st.commit_limit_pages;
        // Resource limits are inherited (Linux `copy_signal`).
        cst.stack_rlimit = st.stack_rlimit;

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
            // Memory locks are not inherited (Linux `dup_mmap` clears VM_LOCKED).
            c.flags.0 &= !VmFlags::LOCKED;
            c.anon_forked = needs_copy(v);
            let id = match c.anon_forked {
                true => cx.next_anon_id.fetch_add(1, Ordering::Relaxed),
                false => 0,
            };
            c.anon.store(id, Ordering::Release);
            cst.vmas.insert(c);
        }
        let mut report = ForkReport::default();
        match policy {
            ForkPolicy::Cow | ForkPolicy::Eager => {
                for v in copied.iter().filter(|v| needs_copy(v)) {
                    let cv = cst
                        .vmas
                        .find(v.start)
                        .filter(|c| c.start == v.start)
                        .ok_or(Errno::ENOMEM)?;
                    self.copy_ptes(cx, child, v, cv.anon_id(), v.start, v.end, policy, flush, &mut report)?;
                }
            }
            ForkPolicy::SharedPt => {
                // Every 2 MiB span that holds part of a VMA to copy and has a
                // leaf table (a span without one has nothing to share or copy;
                // walking only the tables keeps a huge sparse VMA cheap).
                let mut spans: Vec<u64> = Vec::new();
                // Spans whose table is an object's (a shared VMA with an
                // anonymous identity, given by MADV_GUARD_INSTALL elsewhere
                // in it): that table is every mapper's, never fork-shared.
                let mut object_spans: Vec<u64> = Vec::new();
                for v in copied.iter().filter(|v| needs_copy(v)) {
                    self.page_table().for_each_pd_entry(phys, v.start, v.end, |s, pe| {
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
                    for s in st.vmas.starts_in(span, end) {
                        let not_inherited = VmFlags::DONTCOPY | VmFlags::WIPEONFORK;
                        if st.vmas.find(s).is_some_and(|v| v.flags.0 & not_inherited != 0) {
                            shareable = false;
                        }
                    }
                    if shareable {
                        if self.share_table_with(phys, child, span, flush)? {
                            report.tables_shared += 1;
                        }
                        continue;
                    }
                    for v in copied.iter().filter(|v| needs_copy(v) && v.start < end && v.end > span) {
                        let cv = cst
                            .vmas
                            .find(v.start)
                            .filter(|c| c.start == v.start)
                            .ok_or(Errno::ENOMEM)?;
                        let (a, b) = (v.start.max(span), v.end.min(end));
                        self.copy_ptes(cx, child, v, cv.anon_id(), a, b, ForkPolicy::Cow, flush, &mut report)?;
                    }
                }
            }
        }
        Ok(report)
    }

    /// Copy the leaf entries of `[start, end)` (inside parent VMA `v`) into
    /// `child`. Linux: `copy_pte_range` / `copy_present_pte`.
    #[allow(clippy::too_many_arguments)]
    fn copy_ptes(
        &self,
        cx: &FaultCtx<'_>,
        child: &AddressSpace,
        v: &Vma,
        child_anon: u64,
        start: u64,
        end: u64,
        policy: ForkPolicy,
        flush: &mut PendingFlush,
        report: &mut ForkReport,
    ) -> SysResult<()> {
        let phys = cx.phys;
        let private = !v.flags.has(VmFlags::SHARED);
        let mut ctable_span = u64::MAX;
        let mut ctable = crate::addr::Pfn(0);
        let mut err: Option<Errno> = None;
        self.page_table().for_each_leaf(phys, start, end, |va, e| {
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
                pte
            } else {
                let Some(d) = phys.desc(pte.pfn()) else { return };
                if policy == ForkPolicy::Eager && private && d.usage() == FrameUse::Anon {
                    let Some(copy) = phys.alloc_page(NO_CPU, FrameUse::Anon, Fill::Caller) else {
                        err = Some(Errno::ENOMEM);
                        return;
                    };
                    phys.ram().copy_frame(copy, pte.pfn());
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
                        Rss::Of(&child.rss, NO_CPU),
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
            pte_ops::copy_into(phys, Rss::Of(&child.rss, NO_CPU), ce, new);
            report.ptes_copied += 1;
        });
        match err {
            Some(e) => Err(e),
            None => Ok(()),
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
