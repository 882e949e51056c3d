//! `mprotect`: change protection of a range, splitting and merging VMAs as
//! Linux does. Linux: `do_mprotect_pkey`, `mprotect_fixup`, `vma_modify_flags`.

use super::address_space::{is_private_anon, AddressSpace};
use super::fault::FaultCtx;
use super::populate::Gup;
use super::uapi::*;
use super::vma::{Prot, VmFlags};
use super::vma_map::VmaMap;
use crate::addr::{is_page_aligned, page_ceil, PAGE_SHIFT};
use crate::errno::{Errno, SysResult};
use crate::phys::PhysMem;
use crate::tlb::PendingFlush;
use alloc::vec::Vec;

impl AddressSpace {
    /// `mprotect(addr, len, prot)`. As in Linux, VMAs before a hole in the
    /// range (or before a VMA that cannot be changed) are changed before
    /// ENOMEM is returned.
    ///
    /// A locked private VMA that was not writable and becomes so is
    /// populated for write (COW broken now), errors ignored, as
    /// `mprotect_fixup` calls `populate_vma_page_range` (here once the
    /// walk is over, through the populate path of `populate.rs`).
    pub fn mprotect(
        &self,
        cx: &FaultCtx<'_>,
        addr: u64,
        len: u64,
        prot: u32,
        flush: &mut PendingFlush,
    ) -> SysResult<()> {
        let mut populate = Vec::new();
        let r = self.mprotect_vmas(cx.phys, addr, len, prot, flush, &mut populate);
        for (a, b) in populate {
            let _ = self.populate(cx, self.map.write(), a, b, Gup::Mm { ignore_errors: true }, flush);
        }
        r
    }

    /// `mprotect` but the populating: the ranges to populate go into `populate`.
    fn mprotect_vmas(
        &self,
        phys: &PhysMem,
        addr: u64,
        len: u64,
        prot: u32,
        flush: &mut PendingFlush,
        populate: &mut Vec<(u64, u64)>,
    ) -> SysResult<()> {
        let grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP);
        let prot = prot & !grows;
        if grows == PROT_GROWSDOWN | PROT_GROWSUP {
            return Err(Errno::EINVAL);
        }
        if !is_page_aligned(addr) {
            return Err(Errno::EINVAL);
        }
        if len == 0 {
            return Ok(());
        }
        let end = match page_ceil(len).and_then(|l| addr.checked_add(l)) {
            Some(e) if e > addr => e,
            _ => return Err(Errno::ENOMEM),
        };
        if prot & !(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM) != 0 {
            return Err(Errno::EINVAL);
        }
        let new_prot = Prot::from_bits(prot);
        let new_pkey = self.pkey_flag_for(prot);
        let mut st = self.map.write();
        // The first VMA that intersects the range.
        let first = match st.vmas.find(addr) {
            Some(v) if v.start < end => v,
            _ => return Err(Errno::ENOMEM),
        };
        let mut at = addr;
        if grows & PROT_GROWSDOWN != 0 {
            // The change extends down to the start of a grows-down VMA.
            if !first.flags.has(VmFlags::GROWSDOWN) {
                return Err(Errno::EINVAL);
            }
            at = first.start;
        } else {
            if first.start > addr {
                return Err(Errno::ENOMEM);
            }
            if grows & PROT_GROWSUP != 0 {
                // x86 has no VM_GROWSUP, so no VMA can take PROT_GROWSUP.
                return Err(Errno::EINVAL);
            }
        }
        // Shared page tables over the range must not see this change.
        self.unshare_range_locked(&st, phys, at, end, flush)
            .map_err(|_| Errno::ENOMEM)?;
        // Walk the VMAs in order; stop at the first hole or failure.
        while at < end {
            let v = match st.vmas.find(at) {
                Some(v) if v.start <= at => v,
                _ => return Err(Errno::ENOMEM),
            };
            // A shared mapping of a file opened read-only never gains write
            // (Linux: no VM_MAYWRITE, EACCES).
            if new_prot.write() && v.flags.has(VmFlags::MAYSHARE) && !v.flags.has(VmFlags::SHARED) {
                return Err(Errno::EACCES);
            }
            let piece_end = v.end.min(end);
            // mprotect_fixup: gaining write charges the commit and sets
            // VM_ACCOUNT (unless accounted already, or never accountable);
            // losing write drops VM_ACCOUNT only from anonymous memory that
            // has no pages yet (no anon_vma).
            if new_prot == v.prot && v.flags.0 & VmFlags::PKEY_EXEC_ONLY == new_pkey {
                // Linux `mprotect_fixup` returns before touching VM_ACCOUNT
                // when the flags (protection and key) do not change: no
                // split, no merge.
                at = v.end;
                continue;
            }
            let locked_gains_write = v.flags.0 & (VmFlags::LOCKED | VmFlags::SHARED) == VmFlags::LOCKED
                && !v.prot.write()
                && new_prot.write();
            let mut flags = VmFlags((v.flags.0 & !VmFlags::PKEY_EXEC_ONLY) | new_pkey);
            let mut charge = 0;
            if new_prot.write() {
                let exempt = VmFlags::ACCOUNT | VmFlags::SHARED | VmFlags::NORESERVE;
                if !v.prot.write() && flags.0 & exempt == 0 {
                    charge = (piece_end - at) >> PAGE_SHIFT;
                    flags.0 |= VmFlags::ACCOUNT;
                }
            } else if flags.has(VmFlags::ACCOUNT) && is_private_anon(v) && v.anon_id() == 0 {
                flags.0 &= !VmFlags::ACCOUNT;
            }
            // Linux's overcommit heuristic (`__vm_enough_memory`, OVERCOMMIT_GUESS).
            if charge > st.commit_limit_pages {
                return Err(Errno::ENOMEM);
            }
            // vma_modify: a piece at one end of its VMA that can merge into
            // the neighbour on that side moves the boundary (no new VMA);
            // otherwise each split is refused once map_count reaches the
            // limit (split_vma), and a split done before a refused one stays.
            let need_front = v.start < at;
            let need_back = piece_end < v.end;
            let mut piece = v.clone();
            piece.pgoff = v.pgoff_of(at);
            piece.start = at;
            piece.end = piece_end;
            piece.prot = new_prot;
            piece.flags = flags;
            let absorbed = match (need_front, need_back) {
                (false, true) => st.vmas.prev(at).is_some_and(|p| p.can_merge_with_next(&piece)),
                (true, false) => st.vmas.find(piece_end).is_some_and(|n| piece.can_merge_with_next(n)),
                _ => false,
            };
            for (needed, split) in [(need_front, at), (need_back, piece_end)] {
                if needed {
                    if !absorbed && st.vmas.len() >= st.max_map_count {
                        return Err(Errno::ENOMEM);
                    }
                    Self::split_at_locked(&mut st, split);
                }
            }
            let Some(v) = st.vmas.find_mut(at) else { break };
            v.prot = new_prot;
            v.flags = flags;
            self.change_protection(phys, (at, piece_end), new_prot, flags, flush);
            if locked_gains_write {
                populate.push((at, piece_end));
            }
            Self::merge_range_locked(&mut st, at, piece_end);
            at = st.vmas.find(at).map_or(piece_end, |v| v.end);
        }
        Ok(())
    }
}
