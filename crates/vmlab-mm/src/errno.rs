//! Linux error numbers returned by syscalls, and fault values returned by accesses.
//!
//! Owns nothing; every other module may call it.

use core::fmt;

/// An error number with the value Linux uses on x86-64 (`include/uapi/asm-generic/errno-base.h`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum Errno {
    EPERM = 1,
    ENOENT = 2,
    ESRCH = 3,
    EIO = 5,
    ENXIO = 6,
    EBADF = 9,
    EAGAIN = 11,
    ENOMEM = 12,
    EACCES = 13,
    EFAULT = 14,
    EBUSY = 16,
    EEXIST = 17,
    ENODEV = 19,
    EINVAL = 22,
    EFBIG = 27,
    ENOSPC = 28,
    ENOSYS = 38,
    EOVERFLOW = 75,
    EOPNOTSUPP = 95,
}

impl Errno {
    /// The errno name as Linux spells it (`"EINVAL"`).
    pub const fn name(self) -> &'static str {
        match self {
            Errno::EPERM => "EPERM",
            Errno::ENOENT => "ENOENT",
            Errno::ESRCH => "ESRCH",
            Errno::EIO => "EIO",
            Errno::ENXIO => "ENXIO",
            Errno::EBADF => "EBADF",
            Errno::EAGAIN => "EAGAIN",
            Errno::ENOMEM => "ENOMEM",
            Errno::EACCES => "EACCES",
            Errno::EFAULT => "EFAULT",
            Errno::EBUSY => "EBUSY",
            Errno::EEXIST => "EEXIST",
            Errno::ENODEV => "ENODEV",
            Errno::EINVAL => "EINVAL",
            Errno::EFBIG => "EFBIG",
            Errno::ENOSPC => "ENOSPC",
            Errno::ENOSYS => "ENOSYS",
            Errno::EOVERFLOW => "EOVERFLOW",
            Errno::EOPNOTSUPP => "EOPNOTSUPP",
        }
    }

    /// The positive errno value.
    pub const fn code(self) -> i32 {
        self as i32
    }

    /// The errno with value `code`, if vmlab knows it.
    pub fn from_code(code: i32) -> Option<Errno> {
        const ALL: [Errno; 19] = [
            Errno::EPERM,
            Errno::ENOENT,
            Errno::ESRCH,
            Errno::EIO,
            Errno::ENXIO,
            Errno::EBADF,
            Errno::EAGAIN,
            Errno::ENOMEM,
            Errno::EACCES,
            Errno::EFAULT,
            Errno::EBUSY,
            Errno::EEXIST,
            Errno::ENODEV,
            Errno::EINVAL,
            Errno::EFBIG,
            Errno::ENOSPC,
            Errno::ENOSYS,
            Errno::EOVERFLOW,
            Errno::EOPNOTSUPP,
        ];
        ALL.into_iter().find(|e| e.code() == code)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Result of a syscall.
pub type SysResult<T> = Result<T, Errno>;

/// The signal an access would raise on Linux.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Signal {
    /// SIGSEGV.
    Segv,
    /// SIGBUS.
    Bus,
    /// SIGKILL: the OOM killer chose the process.
    Kill,
}

/// Why an access faulted. Mirrors the `si_code` Linux reports, plus out-of-memory.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum FaultReason {
    /// No VMA covers the address (`SEGV_MAPERR`).
    NotMapped,
    /// A VMA covers it but forbids this access (`SEGV_ACCERR`).
    Protection,
    /// The page's protection key forbids data access (`SEGV_PKUERR`): a
    /// load or store to execute-only memory on a machine with protection keys.
    ProtectionKey,
    /// No frame could be found to satisfy the fault (`VM_FAULT_OOM`; Linux would
    /// invoke the OOM killer).
    OutOfMemory,
    /// The access does not go to memory the process can reach (non-canonical
    /// or kernel address).
    BadAddress,
    /// The page is a guard page (MADV_GUARD_INSTALL): `SEGV_MAPERR`, as
    /// Linux's `handle_pte_marker` gives (`VM_FAULT_SIGSEGV`).
    Guard,
    /// The page lies wholly beyond the end of the mapped file or shared
    /// memory object (SIGBUS, `BUS_ADRERR`).
    BeyondEof,
    /// Reading the page from its backing file failed (SIGBUS; Linux
    /// `VM_FAULT_SIGBUS` from `filemap_fault`).
    IoError,
    /// The OOM killer killed the process (SIGKILL; no `si_code`): its
    /// next access after the kill, or the fault it was in, ends so.
    OomKilled,
}

/// A failed access: the signal, the faulting address and the reason.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Fault {
    pub signal: Signal,
    pub addr: u64,
    pub reason: FaultReason,
}

impl Fault {
    pub const fn segv(addr: u64, reason: FaultReason) -> Fault {
        Fault {
            signal: Signal::Segv,
            addr,
            reason,
        }
    }

    /// The fault value of a process the OOM killer killed.
    pub const fn killed(addr: u64) -> Fault {
        Fault {
            signal: Signal::Kill,
            addr,
            reason: FaultReason::OomKilled,
        }
    }

    /// A fault at `addr` that found no free frame (SIGBUS with
    /// `OutOfMemory`; Linux would invoke the OOM killer).
    pub const fn oom(addr: u64) -> Fault {
        Fault {
            signal: Signal::Bus,
            addr,
            reason: FaultReason::OutOfMemory,
        }
    }

    /// The `si_code` Linux would deliver with the signal (`SEGV_MAPERR`,
    /// `SEGV_ACCERR`, `SEGV_PKUERR`, `BUS_ADRERR`); `None` for a fault Linux
    /// would not deliver as a signal to the process (out of memory: the OOM
    /// killer; a kernel address is `SEGV_MAPERR`).
    pub const fn si_code(&self) -> Option<i32> {
        use crate::mm::uapi::{BUS_ADRERR, SEGV_ACCERR, SEGV_MAPERR, SEGV_PKUERR};
        match self.reason {
            FaultReason::NotMapped | FaultReason::BadAddress | FaultReason::Guard => Some(SEGV_MAPERR),
            FaultReason::Protection => Some(SEGV_ACCERR),
            FaultReason::ProtectionKey => Some(SEGV_PKUERR),
            FaultReason::BeyondEof => Some(BUS_ADRERR),
            // Linux `VM_FAULT_SIGBUS` from a read error: `BUS_ADRERR` too.
            FaultReason::IoError => Some(BUS_ADRERR),
            FaultReason::OutOfMemory | FaultReason::OomKilled => None,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sig = match self.signal {
            Signal::Segv => "SIGSEGV",
            Signal::Bus => "SIGBUS",
            Signal::Kill => "SIGKILL",
        };
        write!(f, "{sig} at {:#x} ({:?})", self.addr, self.reason)
    }
}
