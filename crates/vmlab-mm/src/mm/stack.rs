//! Stack growth: an access below a `VM_GROWSDOWN` VMA extends the VMA down
//! to the page of the access, within the limits Linux enforces. Linux 6.x:
//! the fault path's `lock_mm_and_find_vma` (mm/memory.c), which finds the
//! VMA above the address and calls `expand_stack_locked` →
//! `expand_downwards` → `acct_stack_growth` (mm/mmap.c).
//!
//! The fault handler runs with the map lock held for reading; growth moves
//! a VMA's start, which needs it for writing. As in Linux 6.5 on, the fault
//! handler only reports that growth is needed (`FaultError::ExpandStack`);
//! the caller drops the read lock, takes the write lock, calls
//! `expand_stack_locked` (which looks the VMA up again: the map may have
//! changed in between) and, if it grew, runs the fault again under the
//! write lock (Linux downgrades it and goes on).

use super::address_space::{AddressSpace, MapState};
use super::rmap::identities::Identities;
use super::uapi::{RLIM_INFINITY, STACK_GUARD_GAP, STK_LIM};
use super::vma::VmFlags;
use super::vma_map::VmaMap;
use crate::addr::{page_floor, MMAP_MIN_ADDR, PAGE_SHIFT};
use crate::errno::{Errno, SysResult};

/// Linux's default `RLIMIT_STACK`: soft `_STK_LIM`, hard `RLIM_INFINITY`
/// (`INIT_RLIMITS`).
pub const DEFAULT_STACK_RLIMIT: Rlimit = Rlimit {
    cur: STK_LIM,
    max: RLIM_INFINITY,
};

/// A resource limit (`struct rlimit`): soft limit `cur`, hard limit `max`, in bytes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Rlimit {
    pub cur: u64,
    pub max: u64,
}

impl AddressSpace {
    /// Grow the `VM_GROWSDOWN` VMA above `addr` down to `addr`'s page.
    /// Ok if it grew or already covers `addr` (another fault grew it after
    /// this one dropped its read lock); an errno (which the fault path turns
    /// into SIGSEGV `SEGV_MAPERR`, as `lock_mm_and_find_vma` returning NULL
    /// does) if there is no such VMA or a limit refuses the growth.
    /// Linux: `expand_stack_locked` → `expand_downwards` → `acct_stack_growth`.
    ///
    /// Preconditions: `st` is `self.map` held for writing.
    pub fn expand_stack_locked(&self, st: &mut MapState, addr: u64, ids: &Identities) -> SysResult<()> {
        if st.dead {
            return Err(Errno::EFAULT);
        }
        let address = page_floor(addr);
        // The VMA the access would fall into once grown (`find_vma`, looked
        // up again: the map may have changed while no lock was held).
        let vma = st.vmas.find(addr).ok_or(Errno::EFAULT)?;
        if vma.start <= addr {
            return Ok(());
        }
        if !vma.flags.has(VmFlags::GROWSDOWN) {
            return Err(Errno::EFAULT);
        }
        // `expand_downwards` checks mmap_min_addr whatever the privilege.
        if address < MMAP_MIN_ADDR {
            return Err(Errno::EPERM);
        }
        // stack_guard_gap: the VMA below must end at least the gap below
        // the new start, unless it is a stack too or inaccessible
        // (PROT_NONE), which may even touch it. `find_vma` guarantees the
        // VMA below ends at or below `address`.
        if let Some(prev) = st.vmas.prev(vma.start) {
            if !prev.flags.has(VmFlags::GROWSDOWN)
                && prev.prot.accessible()
                && address.saturating_sub(prev.end) < STACK_GUARD_GAP
            {
                return Err(Errno::ENOMEM);
            }
        }
        // `anon_vma_prepare` comes before the limits: a growth they refuse
        // still leaves the VMA with its anonymous identity, as in Linux.
        AddressSpace::prepare_anon_locked(st, vma, ids, self.id);
        let (start, end, pgoff) = (vma.start, vma.end, vma.pgoff);
        let size = end - address;
        let grow = (start - address) >> PAGE_SHIFT;
        // The page offset may not go below 0.
        if grow > pgoff {
            return Err(Errno::ENOMEM);
        }
        acct_stack_growth(st, vma.flags, size, grow)?;
        // Move the start: the VMA keeps its flags, protection and identity,
        // and is not merged with anything (expand_downwards stores the same
        // VMA over the larger range).
        let Some(mut v) = st.vmas.remove(start) else {
            return Err(Errno::EFAULT);
        };
        v.start = address;
        v.pgoff = pgoff - grow;
        st.vmas.insert(v);
        Ok(())
    }
}

/// The limits a growth to `size` bytes (`grow` pages more) must pass.
/// Linux: `acct_stack_growth`, in its order: `may_expand_vm` (RLIMIT_AS and
/// RLIMIT_DATA: vmlab models neither, both unlimited by default, and a
/// stack is not a data mapping), RLIMIT_STACK, `mlock_future_ok` (a stack
/// locked by mlock or mapped after mlockall(MCL_FUTURE) may not grow past
/// RLIMIT_MEMLOCK), then the overcommit heuristic, which in
/// OVERCOMMIT_GUESS mode refuses a single request of more pages than RAM +
/// swap (`security_vm_enough_memory_mm` → `__vm_enough_memory`; charged
/// whatever the VMA's protection).
fn acct_stack_growth(st: &MapState, flags: VmFlags, size: u64, grow: u64) -> SysResult<()> {
    if size > st.stack_rlimit.cur {
        return Err(Errno::ENOMEM);
    }
    if !AddressSpace::mlock_future_ok(st, flags.0, grow << PAGE_SHIFT) {
        return Err(Errno::ENOMEM);
    }
    if grow > st.commit_limit_pages {
        return Err(Errno::ENOMEM);
    }
    Ok(())
}

/// `setrlimit(RLIMIT_STACK, new)` checks for a process that `old` limits:
/// the soft limit may not exceed the hard one (EINVAL), and only a
/// privileged process may raise the hard limit (EPERM; vmlab processes are
/// unprivileged). Linux: `do_prlimit`.
pub fn check_new_rlimit(old: Rlimit, new: Rlimit) -> SysResult<()> {
    if new.cur > new.max {
        return Err(Errno::EINVAL);
    }
    if new.max > old.max {
        return Err(Errno::EPERM);
    }
    Ok(())
}
