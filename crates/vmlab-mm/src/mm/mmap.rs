//! `mmap` of anonymous memory (private or shared) and of files, and
//! address-space placement.
//! Linux: `do_mmap`, `mmap_region`, `arch_get_unmapped_area_topdown`.

use super::address_space::{AddressSpace, MapState};
use super::fault::FaultCtx;
use super::object::{MemObject, ObjectTable};
use super::populate::Gup;
use super::rmap::identities::Identities;
use super::uapi::*;
use super::vma::{Backing, Prot, VmFlags, Vma};
use super::vma_map::VmaMap;
use crate::addr::{is_page_aligned, page_ceil, page_floor, MMAP_MIN_ADDR, PAGE_SHIFT, PAGE_SIZE, TASK_SIZE};
use crate::errno::{Errno, SysResult};
use crate::phys::PhysMem;
use crate::sync::Arc;
use crate::tlb::PendingFlush;

/// Flags a file mapping with MAP_SHARED_VALIDATE accepts; any other bit is
/// EOPNOTSUPP (Linux `LEGACY_MAP_MASK`, x86: with MAP_32BIT, MAP_ABOVE4G and
/// the MAP_HUGE_2MB/1GB size encodings).
const LEGACY_MAP_MASK: u32 = MAP_SHARED
    | MAP_PRIVATE
    | MAP_FIXED
    | MAP_ANONYMOUS
    | MAP_DENYWRITE
    | MAP_EXECUTABLE
    | MAP_UNINITIALIZED
    | MAP_GROWSDOWN
    | MAP_LOCKED
    | MAP_NORESERVE
    | MAP_POPULATE
    | MAP_NONBLOCK
    | MAP_STACK
    | MAP_HUGETLB
    | MAP_32BIT
    | MAP_ABOVE4G
    | MAP_HUGE_2MB
    | MAP_HUGE_1GB;

/// Largest file size (`MAX_LFS_FILESIZE` on 64-bit): a file mapping may not
/// reach past it (`file_mmap_ok`).
const MAX_LFS_FILESIZE: u64 = i64::MAX as u64;

/// The arguments of one `mmap` call, after the file descriptor has been
/// resolved (Linux `ksys_mmap_pgoff` → `do_mmap`).
#[derive(Clone, Copy)]
pub struct MmapRequest<'a> {
    pub addr: u64,
    pub len: u64,
    pub prot: u32,
    pub flags: u32,
    /// The file's object, `None` for anonymous memory (MAP_ANONYMOUS).
    pub file: Option<&'a Arc<MemObject>>,
    /// Page offset in the file (the byte offset, already checked to be page
    /// aligned, shifted right by 12). Ignored for anonymous memory.
    pub pgoff: u64,
}

impl MmapRequest<'_> {
    /// Anonymous memory: `mmap(addr, len, prot, flags, -1, 0)`.
    pub fn anon(addr: u64, len: u64, prot: u32, flags: u32) -> MmapRequest<'static> {
        MmapRequest {
            addr,
            len,
            prot,
            flags,
            file: None,
            pgoff: 0,
        }
    }
}

/// The range `MAP_32BIT` placement searches, bottom-up (x86 `find_start_end`,
/// without randomisation).
const MAP_32BIT_RANGE: (u64, u64) = (0x4000_0000, 0x8000_0000);

impl AddressSpace {
    /// `mmap`: anonymous memory (private, or shared in a new shared
    /// anonymous object created in `objects`), or a file (`req.file`).
    /// Returns the mapped address. Mappings it replaces (MAP_FIXED) are
    /// zapped into `flush`. Checks come in Linux's order and with its errno
    /// (`do_mmap`; the syscall's own checks of the offset and the fd are the
    /// caller's).
    pub fn mmap(
        &self,
        phys: &PhysMem,
        objects: &ObjectTable,
        ids: &Identities,
        req: MmapRequest<'_>,
        flush: &mut PendingFlush,
    ) -> SysResult<u64> {
        let MmapRequest {
            addr,
            len,
            prot,
            flags,
            file,
            pgoff,
        } = req;
        if file.is_none() {
            if flags & MAP_ANONYMOUS == 0 {
                // No file descriptor is passed: Linux's `fget(-1)` fails first.
                return Err(Errno::EBADF);
            }
            if flags & MAP_HUGETLB != 0 {
                // Linux backs the mapping with a hugetlbfs file, whose map
                // type check (`do_mmap`'s file switch) comes before the
                // reservation, which fails: no hugetlbfs pool is configured.
                return Err(match flags & MAP_TYPE {
                    MAP_SHARED | MAP_PRIVATE | MAP_SHARED_VALIDATE => Errno::ENOMEM,
                    _ => Errno::EINVAL,
                });
            }
        }
        let map_type = flags & MAP_TYPE;
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
        // Offset overflow (cannot happen for a 52-bit page offset; kept as Linux has it).
        if pgoff.checked_add(len >> PAGE_SHIFT).is_none() {
            return Err(Errno::EOVERFLOW);
        }
        let mut st = self.map.write();
        if st.vmas.len() > st.max_map_count {
            return Err(Errno::ENOMEM);
        }
        let start = get_unmapped_area(&st, hint, len, flags)?;
        let end = start + len;
        if flags & MAP_FIXED_NOREPLACE != 0 && !st.vmas.starts_in(start, end).is_empty() {
            return Err(Errno::EEXIST);
        }
        let prot_v = Prot::from_bits(prot);
        // Linux `calc_vm_flag_bits`, and `mm->def_flags` (VM_LOCKED after
        // mlockall(MCL_FUTURE)).
        let mut vm_flags = st.def_flags;
        if flags & MAP_GROWSDOWN != 0 {
            vm_flags |= VmFlags::GROWSDOWN;
        }
        if flags & MAP_LOCKED != 0 {
            vm_flags |= VmFlags::LOCKED;
            // can_do_mlock: a vmlab process has no CAP_IPC_LOCK.
            if st.memlock_rlimit.cur == 0 {
                return Err(Errno::EPERM);
            }
        }
        if !Self::mlock_future_ok(&st, vm_flags, len) {
            return Err(Errno::EAGAIN);
        }
        vm_flags |= self.pkey_flag_for(prot);
        if flags & MAP_STACK != 0 {
            // Linux `calc_vm_flag_bits` (with THP): a stack gets no huge pages.
            vm_flags |= VmFlags::NOHUGEPAGE;
        }
        let vma_pgoff;
        let mut shared_anon = false;
        match file {
            Some(obj) => {
                if len > MAX_LFS_FILESIZE || pgoff > (MAX_LFS_FILESIZE - len) >> PAGE_SHIFT {
                    return Err(Errno::EOVERFLOW);
                }
                match map_type {
                    MAP_SHARED | MAP_SHARED_VALIDATE => {
                        // MAP_SHARED ignores the flags it does not know;
                        // MAP_SHARED_VALIDATE refuses them.
                        if map_type == MAP_SHARED_VALIDATE && flags & !LEGACY_MAP_MASK != 0 {
                            return Err(Errno::EOPNOTSUPP);
                        }
                        if prot_v.write() && !obj.writable() {
                            return Err(Errno::EACCES);
                        }
                        // A file opened read-only is mapped "shared" but
                        // can never be written (no VM_SHARED, no VM_MAYWRITE).
                        vm_flags |= VmFlags::MAYSHARE;
                        if obj.writable() {
                            vm_flags |= VmFlags::SHARED;
                        }
                    }
                    MAP_PRIVATE => {}
                    _ => return Err(Errno::EINVAL),
                }
                // Both map types need a file opened for reading (do_mmap's
                // MAP_PRIVATE case, which MAP_SHARED falls through to).
                if !obj.readable() {
                    return Err(Errno::EACCES);
                }
                if vm_flags & VmFlags::GROWSDOWN != 0 {
                    return Err(Errno::EINVAL);
                }
                vma_pgoff = pgoff;
            }
            None => match map_type {
                MAP_SHARED => {
                    if vm_flags & VmFlags::GROWSDOWN != 0 {
                        return Err(Errno::EINVAL);
                    }
                    // A new shared anonymous object, mapped from offset 0.
                    vm_flags |= VmFlags::SHARED | VmFlags::MAYSHARE;
                    shared_anon = true;
                    vma_pgoff = 0;
                }
                MAP_DROPPABLE => {
                    // Linux `do_mmap` (6.11): a locked or stack area cannot
                    // be droppable. Its pages may vanish at any time, so it
                    // reserves nothing and is wiped on fork and not dumped.
                    if flags & MAP_LOCKED != 0 || vm_flags & VmFlags::GROWSDOWN != 0 {
                        return Err(Errno::EINVAL);
                    }
                    vm_flags |= VmFlags::DROPPABLE | VmFlags::NORESERVE | VmFlags::WIPEONFORK | VmFlags::DONTDUMP;
                    vma_pgoff = start >> PAGE_SHIFT;
                }
                // Set pgoff from the address, for the anonymous identity.
                MAP_PRIVATE => vma_pgoff = start >> PAGE_SHIFT,
                // Including MAP_SHARED_VALIDATE: Linux knows it for files only.
                _ => return Err(Errno::EINVAL),
            },
        }
        if flags & MAP_NORESERVE != 0 {
            // Linux `do_mmap`, overcommit not "never": VM_NORESERVE.
            vm_flags |= VmFlags::NORESERVE;
        }
        let pages = len >> PAGE_SHIFT;
        if vm_flags & VmFlags::NORESERVE == 0 {
            if shared_anon {
                // Shared anonymous memory is charged whole, writable or not
                // (`shmem_acct_size`), but the VMA is not VM_ACCOUNT.
                if pages > st.commit_limit_pages {
                    return Err(Errno::ENOMEM);
                }
            } else if prot_v.write() && vm_flags & VmFlags::SHARED == 0 {
                // Linux `accountable_mapping`: private, writable, not VM_NORESERVE.
                if pages > st.commit_limit_pages {
                    return Err(Errno::ENOMEM);
                }
                vm_flags |= VmFlags::ACCOUNT;
            }
        }
        if file.is_some() && flags & MAP_SYNC != 0 {
            // The host file system has no DAX: its mmap hook refuses VM_SYNC
            // whatever the map type (ext4/xfs `daxdev_mapping_supported`).
            return Err(Errno::EOPNOTSUPP);
        }
        // MAP_FIXED replaces whatever was there (Linux unmaps first).
        if !st.vmas.starts_in(start, end).is_empty() {
            self.unmap_locked(&mut st, phys, start, end, flush)?;
        }
        let backing = match file {
            Some(obj) => Backing::Object(obj.clone()),
            None if shared_anon => Backing::Object(objects.create_shmem(len)),
            None => Backing::Anon,
        };
        if let Backing::Object(o) = &backing {
            // Listed before any page can be mapped (Linux `vma_link` → `i_mmap`).
            ids.map_object(self.id, o.id().0);
        }
        let vma = Vma::new(start, end, prot_v, VmFlags(vm_flags), backing, vma_pgoff);
        st.vmas.insert(vma);
        Self::merge_range_locked(&mut st, start, end);
        Ok(start)
    }
}

impl AddressSpace {
    /// The `mmap` syscall: `mmap`, then, as Linux's `vm_mmap_pgoff` does
    /// once the map lock is dropped (`mm_populate`, errors ignored), fault
    /// the new range in if it is locked (MAP_LOCKED, or `def_flags` after
    /// mlockall(MCL_FUTURE); not with MCL_ONFAULT) or MAP_POPULATE is given
    /// without MAP_NONBLOCK (`do_mmap`'s `*populate`), through the
    /// populate path MADV_POPULATE and mlock take (`populate.rs`).
    pub fn mmap_and_populate(
        &self,
        cx: &FaultCtx<'_>,
        objects: &ObjectTable,
        req: MmapRequest<'_>,
        flush: &mut PendingFlush,
    ) -> SysResult<u64> {
        let start = self.mmap(cx.phys, objects, cx.ids, req, flush)?;
        let len = page_ceil(req.len).unwrap_or(0);
        let st = self.map.write();
        // The new mapping's flags: those of the VMA now holding `start`
        // (a merge joins only VMAs with equal flags).
        let locked = Self::vma_lookup(&st, start).is_some_and(|v| v.flags.has(VmFlags::LOCKED));
        if locked || req.flags & (MAP_POPULATE | MAP_NONBLOCK) == MAP_POPULATE {
            // Errors ignored: the mapping stands.
            let _ = self.populate(cx, st, start, start + len, Gup::Mm { ignore_errors: true }, flush);
        }
        Ok(start)
    }
}

/// Choose where `[addr, addr+len)` goes. Linux: `__get_unmapped_area` with
/// `arch_get_unmapped_area_topdown`.
pub(crate) fn get_unmapped_area(st: &MapState, hint: u64, len: u64, flags: u32) -> SysResult<u64> {
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
