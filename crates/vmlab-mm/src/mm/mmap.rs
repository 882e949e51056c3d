//! `mmap` of anonymous memory, and address-space placement.
//! Linux: `do_mmap`, `mmap_region`, `arch_get_unmapped_area_topdown`.

use super::address_space::{AddressSpace, MapState};
use super::uapi::*;
use super::vma::{Backing, Prot, VmFlags, Vma};
use super::vma_map::VmaMap;
use crate::addr::{is_page_aligned, page_ceil, page_floor, MMAP_MIN_ADDR, PAGE_SHIFT, PAGE_SIZE, TASK_SIZE};
use crate::errno::{Errno, SysResult};
use crate::phys::PhysMem;
use crate::tlb::PendingFlush;

/// Flags `mmap` understands; with MAP_SHARED_VALIDATE any other bit is EOPNOTSUPP.
const KNOWN_FLAGS: u32 = MAP_TYPE
    | MAP_FIXED
    | MAP_32BIT
    | MAP_ANONYMOUS
    | MAP_GROWSDOWN
    | MAP_DENYWRITE
    | MAP_EXECUTABLE
    | MAP_LOCKED
    | MAP_NORESERVE
    | MAP_POPULATE
    | MAP_NONBLOCK
    | MAP_STACK
    | MAP_HUGETLB
    | MAP_SYNC
    | MAP_FIXED_NOREPLACE
    | MAP_UNINITIALIZED;

/// x86 `MAP_32BIT`: place the mapping in the low 2 GiB (ignored with MAP_FIXED).
pub const MAP_32BIT: u32 = 0x40;
/// The range `MAP_32BIT` placement searches, bottom-up (x86 `find_start_end`,
/// without randomisation).
const MAP_32BIT_RANGE: (u64, u64) = (0x4000_0000, 0x8000_0000);

/// Guard gap Linux keeps below a MAP_GROWSDOWN VMA (`stack_guard_gap`, 256 pages).
pub const STACK_GUARD_GAP: u64 = 256 * PAGE_SIZE;

impl AddressSpace {
    /// `mmap(addr, len, prot, flags, -1, 0)` for anonymous memory. Returns
    /// the mapped address. Mappings it replaces (MAP_FIXED) are zapped into `flush`.
    pub fn mmap(
        &self,
        phys: &PhysMem,
        addr: u64,
        len: u64,
        prot: u32,
        flags: u32,
        flush: &mut PendingFlush,
    ) -> SysResult<u64> {
        if flags & MAP_ANONYMOUS == 0 {
            // No file descriptor is passed: Linux's `fget(-1)` fails first.
            return Err(Errno::EBADF);
        }
        if flags & MAP_HUGETLB != 0 {
            // No hugetlbfs pool is configured (Linux: ENOMEM from hugetlb_file_setup).
            return Err(Errno::ENOMEM);
        }
        let map_type = flags & MAP_TYPE;
        if map_type == MAP_SHARED_VALIDATE && flags & !KNOWN_FLAGS != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        if len == 0 {
            return Err(Errno::EINVAL);
        }
        let mut flags = flags;
        if flags & MAP_FIXED_NOREPLACE != 0 {
            flags |= MAP_FIXED;
        }
        let mut hint = addr;
        if flags & MAP_FIXED == 0 {
            // Linux `round_hint_to_min`.
            hint &= !(PAGE_SIZE - 1);
            if hint != 0 && hint < MMAP_MIN_ADDR {
                hint = MMAP_MIN_ADDR;
            }
        }
        let len = match page_ceil(len) {
            Some(l) if l != 0 => l,
            _ => return Err(Errno::ENOMEM),
        };
        let mut st = self.map.write();
        if st.vmas.len() > st.max_map_count {
            return Err(Errno::ENOMEM);
        }
        let start = get_unmapped_area(&st, hint, len, flags)?;
        let end = start + len;
        if flags & MAP_FIXED_NOREPLACE != 0 && !st.vmas.starts_in(start, end).is_empty() {
            return Err(Errno::EEXIST);
        }
        let mut vm_flags = 0u32;
        match map_type {
            MAP_PRIVATE => {}
            MAP_SHARED | MAP_SHARED_VALIDATE => {
                // Shared anonymous memory needs a memory object (the fork issue).
                return Err(Errno::EOPNOTSUPP);
            }
            _ => return Err(Errno::EINVAL),
        }
        if flags & MAP_GROWSDOWN != 0 {
            vm_flags |= VmFlags::GROWSDOWN;
        }
        if flags & MAP_LOCKED != 0 {
            vm_flags |= VmFlags::LOCKED;
        }
        if flags & MAP_STACK != 0 {
            // Linux `calc_vm_flag_bits` (with THP): a stack gets no huge pages.
            vm_flags |= VmFlags::NOHUGEPAGE;
        }
        if flags & MAP_NORESERVE != 0 {
            // Linux `do_mmap`, overcommit not "never": VM_NORESERVE.
            vm_flags |= VmFlags::NORESERVE;
        }
        let prot_v = Prot::from_bits(prot);
        // Linux `accountable_mapping`: private, writable, not VM_NORESERVE.
        if prot_v.write() && vm_flags & VmFlags::NORESERVE == 0 {
            if (len >> PAGE_SHIFT) > st.commit_limit_pages {
                return Err(Errno::ENOMEM);
            }
            vm_flags |= VmFlags::ACCOUNT;
        }
        // MAP_FIXED replaces whatever was there (Linux unmaps first).
        if !st.vmas.starts_in(start, end).is_empty() {
            self.unmap_locked(&mut st, phys, start, end, flush)?;
        }
        let vma = Vma::new(
            start,
            end,
            prot_v,
            VmFlags(vm_flags),
            Backing::Anon,
            start >> PAGE_SHIFT,
        );
        st.vmas.insert(vma);
        Self::merge_range_locked(&mut st, start, end);
        Ok(start)
    }
}

/// Choose where `[addr, addr+len)` goes. Linux: `__get_unmapped_area` with
/// `arch_get_unmapped_area_topdown`.
fn get_unmapped_area(st: &MapState, hint: u64, len: u64, flags: u32) -> SysResult<u64> {
    if len > TASK_SIZE - MMAP_MIN_ADDR {
        return Err(Errno::ENOMEM);
    }
    let addr = if flags & MAP_FIXED != 0 {
        hint
    } else if flags & MAP_32BIT != 0 {
        // x86 arch_get_unmapped_area_topdown: MAP_32BIT ignores the hint.
        find_gap_bottomup(st, len, MAP_32BIT_RANGE.0, MAP_32BIT_RANGE.1).ok_or(Errno::ENOMEM)?
    } else if hint != 0 && hint_fits(st, hint, len) {
        hint
    } else {
        find_gap_topdown(st, len)
            .or_else(|| find_gap_bottomup(st, len, page_floor(TASK_SIZE / 3), TASK_SIZE))
            .ok_or(Errno::ENOMEM)?
    };
    if addr > TASK_SIZE - len {
        return Err(Errno::ENOMEM);
    }
    if !is_page_aligned(addr) {
        return Err(Errno::EINVAL);
    }
    if addr < MMAP_MIN_ADDR {
        // `security_mmap_addr`: an unprivileged process may not map below mmap_min_addr.
        return Err(Errno::EPERM);
    }
    Ok(addr)
}

/// Linux's start of the gap a VMA needs below it (`vm_start_gap`).
pub(crate) fn start_gap_of(v: &Vma) -> u64 {
    if v.flags.has(VmFlags::GROWSDOWN) {
        v.start.saturating_sub(STACK_GUARD_GAP)
    } else {
        v.start
    }
}

fn hint_fits(st: &MapState, addr: u64, len: u64) -> bool {
    if TASK_SIZE - len < addr || addr < MMAP_MIN_ADDR {
        return false;
    }
    let next_ok = st.vmas.find(addr).is_none_or(|v| addr + len <= start_gap_of(v));
    let prev_ok = st.vmas.prev(addr).is_none_or(|p| addr >= p.end);
    next_ok && prev_ok
}

/// Highest gap below `mmap_base` that holds `len` bytes.
fn find_gap_topdown(st: &MapState, len: u64) -> Option<u64> {
    let low = PAGE_SIZE.max(MMAP_MIN_ADDR);
    let mut hi = st.mmap_base.min(TASK_SIZE);
    // A VMA straddling the base bounds the first gap.
    if let Some(v) = st.vmas.find(hi) {
        if v.start < hi {
            hi = start_gap_of(v);
        }
    }
    loop {
        let below = st.vmas.prev(hi);
        let gap_lo = below.map_or(low, |v| v.end.max(low));
        if hi >= gap_lo && hi - gap_lo >= len {
            return Some(hi - len);
        }
        let v = below?;
        hi = start_gap_of(v);
        if hi < low + len {
            return None;
        }
    }
}

/// Lowest gap in `[low, high)` that holds `len` bytes (the bottom-up fallback).
fn find_gap_bottomup(st: &MapState, len: u64, low: u64, high: u64) -> Option<u64> {
    let mut lo = low;
    loop {
        if let Some(p) = st.vmas.prev(lo + 1) {
            lo = lo.max(p.end);
        }
        let next = st.vmas.find(lo);
        let gap_hi = next.map_or(high, |v| start_gap_of(v).min(high));
        if gap_hi >= lo && gap_hi - lo >= len {
            return Some(lo);
        }
        lo = next?.end;
        if lo >= high {
            return None;
        }
    }
}
