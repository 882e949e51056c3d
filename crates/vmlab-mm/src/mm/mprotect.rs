//! `mprotect`: change protection of a range, splitting and merging VMAs as
//! Linux does. Linux: `do_mprotect_pkey`, `mprotect_fixup`.

use super::address_space::AddressSpace;
use super::uapi::*;
use super::vma::{Prot, VmFlags};
use super::vma_map::VmaMap;
use crate::addr::{is_page_aligned, page_ceil};
use crate::errno::{Errno, SysResult};
use crate::phys::PhysMem;
use crate::tlb::PendingFlush;

impl AddressSpace {
    /// `mprotect(addr, len, prot)`. As in Linux, VMAs before a hole in the
    /// range are changed before ENOMEM is returned for the hole.
    pub fn mprotect(&self, phys: &PhysMem, addr: u64, len: u64, prot: u32, flush: &mut PendingFlush) -> SysResult<()> {
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
        let mut st = self.map.write();
        let first = match st.vmas.find(addr) {
            Some(v) if v.start <= addr => v,
            _ => return Err(Errno::ENOMEM),
        };
        if grows & PROT_GROWSDOWN != 0 && !first.flags.has(VmFlags::GROWSDOWN) {
            return Err(Errno::EINVAL);
        }
        // Walk the VMAs in order from `addr`; stop at the first hole.
        let mut at = addr;
        let mut result = Ok(());
        while at < end {
            let splits = match st.vmas.find(at) {
                Some(v) if v.start <= at => usize::from(v.start < at) + usize::from(end < v.end),
                _ => {
                    result = Err(Errno::ENOMEM);
                    break;
                }
            };
            // Linux `__split_vma` refuses once map_count reaches the limit.
            if splits > 0 && st.vmas.len() >= st.max_map_count {
                result = Err(Errno::ENOMEM);
                break;
            }
            Self::split_at_locked(&mut st, at);
            Self::split_at_locked(&mut st, end);
            let Some(v) = st.vmas.find_mut(at) else { break };
            // Linux `mprotect_fixup`: gaining write charges the commit and
            // sets VM_ACCOUNT; losing write keeps it.
            if new_prot.write() && !v.prot.write() && !v.flags.has(VmFlags::SHARED) {
                v.flags.0 |= VmFlags::ACCOUNT;
            }
            v.prot = new_prot;
            let piece_end = v.end;
            self.change_protection(phys, at, piece_end, new_prot, flush);
            at = piece_end;
        }
        let merge_end = at.min(end);
        Self::merge_range_locked(&mut st, addr, merge_end);
        result
    }
}
