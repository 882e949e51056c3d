//! The host behind the simulated machine: the `BackingFile` the mm core
//! maps, implemented over `std::fs::File`; `OsHost`, the OS services its
//! CPUs need when they run on several threads (membarrier, yield);
//! building a machine with both; and `HostFacts`, what of this host changes
//! Linux's answers (so that tests judged by the host configure vmlab alike).
//!
//! What `open`, `close` and exit mean (see `vmlab_mm::mm::object`): an open
//! file is a memory object with a page cache; a MAP_SHARED mapping of it
//! writes to the cached pages, which reach the host file on `msync`, when
//! the mapping goes (munmap, exit, exec, MAP_FIXED over it), and when the
//! last fd and the last mapping are gone (the cache is then freed). A
//! MAP_PRIVATE mapping never writes to the file. Dropping the machine
//! writes back whatever is still dirty. Writes reach the host file with
//! positional writes (the host's page cache); vmlab never calls `fsync`.

use crate::mm::errno::Errno;
use crate::mm::mm::BackingFile;
use crate::mm::sync::Relax;
use crate::mm::system::{Host, Machine, MachineConfig, MachineError};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::OnceLock;

/// A host file as a `BackingFile`.
pub struct HostFile {
    file: File,
    writable: bool,
}

impl HostFile {
    /// Open `path` for reading, and for writing too if `writable`. The file
    /// must exist.
    pub fn open(path: &Path, writable: bool) -> io::Result<HostFile> {
        let file = OpenOptions::new().read(true).write(writable).open(path)?;
        if file.metadata()?.is_dir() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "is a directory"));
        }
        Ok(HostFile { file, writable })
    }
}

/// The errno of a host I/O error (EIO if it has none vmlab knows).
fn errno_of(e: &io::Error) -> Errno {
    e.raw_os_error().and_then(Errno::from_code).unwrap_or(Errno::EIO)
}

impl BackingFile for HostFile {
    fn len(&self) -> u64 {
        self.file.metadata().map_or(0, |m| m.len())
    }

    fn read_at(&self, off: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        loop {
            match self.file.read_at(buf, off) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(errno_of(&e)),
            }
        }
    }

    fn write_at(&self, off: u64, buf: &[u8]) -> Result<(), Errno> {
        if !self.writable {
            return Err(Errno::EBADF);
        }
        self.file.write_all_at(buf, off).map_err(|e| errno_of(&e))
    }

    fn writable(&self) -> bool {
        self.writable
    }
}

/// Open the host file `path` in `machine`'s file table; returns its fd.
/// `writable` opens it for writing too (needed for MAP_SHARED with PROT_WRITE).
pub fn open(machine: &Machine, path: impl AsRef<Path>, writable: bool) -> io::Result<i32> {
    let f = HostFile::open(path.as_ref(), writable)?;
    Ok(machine.open_file(Box::new(f)))
}

/// Building a machine on this host failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("config error: {0}")]
    Machine(MachineError),
    #[error("config error: files: cannot open {}: {err}", path.display())]
    File { path: PathBuf, err: io::Error },
}

/// Build the machine `cfg` describes and open the host files of its
/// `files` list as fds 3, 4, ... in order. Each is opened for reading and
/// writing if the host allows, else for reading only (then a writable
/// MAP_SHARED of it fails with EACCES, as on Linux).
pub fn build_machine(cfg: &MachineConfig) -> Result<Machine, HostError> {
    let m = Machine::with_host(cfg, Box::new(OsHost::new())).map_err(HostError::Machine)?;
    for p in &cfg.files {
        let path = PathBuf::from(p);
        let f = match HostFile::open(&path, true) {
            Ok(f) => f,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
                ) =>
            {
                HostFile::open(&path, false).map_err(|err| HostError::File {
                    path: path.clone(),
                    err,
                })?
            }
            Err(err) => return Err(HostError::File { path, err }),
        };
        m.open_file(Box::new(f));
    }
    Ok(m)
}

/// Facts about the host that change Linux's answers to memory calls, as an
/// oracle recording carries them (`"host": {"pkeys": .., "kernel": ..}`,
/// /work/shared/ORACLE-FORMAT.md) and as host-judged tests configure the
/// simulated machine from them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFacts {
    /// The CPU has protection keys and the kernel enabled them (`pku` and
    /// `ospke` in /proc/cpuinfo): exactly-PROT_EXEC memory is execute-only.
    pub pkeys: bool,
    /// The kernel release (`uname -r`), informative.
    #[serde(default)]
    pub kernel: String,
}

impl HostFacts {
    /// This machine's facts, read once per process.
    pub fn get() -> &'static HostFacts {
        static FACTS: OnceLock<HostFacts> = OnceLock::new();
        FACTS.get_or_init(|| HostFacts {
            pkeys: std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|t| cpuinfo_has_pkeys(&t)),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
        })
    }

    /// `config` with what these facts decide (`pkeys`).
    pub fn apply(&self, config: &mut MachineConfig) {
        config.pkeys = self.pkeys;
    }
}

/// Whether a /proc/cpuinfo text shows protection keys in use: the first
/// CPU's `flags` line has both `pku` (the CPU has them) and `ospke` (the
/// kernel set CR4.PKE). A kernel built without them shows no `ospke`.
pub fn cpuinfo_has_pkeys(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == "flags").then_some(v)
        })
        .is_some_and(|flags| {
            let has = |want: &str| flags.split_whitespace().any(|w| w == want);
            has("pku") && has("ospke")
        })
}

/// `membarrier(2)` commands (linux/membarrier.h; the libc crate has no constants).
const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

/// The host services of a machine whose CPUs are this process's threads:
/// `remote_barrier` is Linux's private expedited `membarrier` (an IPI to
/// every CPU running one of our threads); `relax` yields the host CPU.
/// Where membarrier is missing (old kernels, valgrind) it falls back to a
/// local fence and says so in `has_membarrier`.
pub struct OsHost {
    /// A registered membarrier that has not failed yet; false for good after
    /// the first failure (the barrier is then a local fence).
    membarrier: AtomicBool,
    /// The membarrier command `remote_barrier` issues (a test may make it fail).
    command: libc::c_long,
}

impl OsHost {
    /// Register this process for private expedited membarrier (once per
    /// process; registering again is harmless).
    pub fn new() -> OsHost {
        // SAFETY: membarrier takes two integer arguments and touches no
        // memory of ours; a kernel without it returns -1 (ENOSYS/EINVAL).
        let r = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0) };
        OsHost {
            membarrier: AtomicBool::new(r == 0),
            command: MEMBARRIER_CMD_PRIVATE_EXPEDITED,
        }
    }

    /// Whether `remote_barrier` is a real membarrier (and none has failed).
    pub fn has_membarrier(&self) -> bool {
        self.membarrier.load(Ordering::Acquire)
    }
}

impl Default for OsHost {
    fn default() -> OsHost {
        OsHost::new()
    }
}

impl Host for OsHost {
    fn remote_barrier(&self) -> bool {
        if self.membarrier.load(Ordering::Acquire) {
            // SAFETY: as in `new`: two integer arguments, no memory of ours.
            let r = unsafe { libc::syscall(libc::SYS_membarrier, self.command, 0) };
            if r == 0 {
                return true;
            }
            self.membarrier.store(false, Ordering::Release);
        }
        fence(Ordering::SeqCst);
        false
    }

    fn remote_barrier_is_real(&self) -> bool {
        self.has_membarrier()
    }
}

impl Relax for OsHost {
    fn relax(&self) {
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkeys_need_both_cpu_and_kernel() {
        let line = |f: &str| format!("processor\t: 0\nflags\t\t: fpu vme {f} sse\n\nprocessor\t: 1\n");
        assert!(cpuinfo_has_pkeys(&line("pku ospke")));
        assert!(cpuinfo_has_pkeys(&line("ospke avx pku")));
        assert!(!cpuinfo_has_pkeys(&line("pku")), "a kernel that did not enable them");
        assert!(!cpuinfo_has_pkeys(&line("ospke")));
        assert!(!cpuinfo_has_pkeys(&line("pkuu ospkey")), "whole words only");
        assert!(!cpuinfo_has_pkeys("processor\t: 0\n"));
    }

    /// A membarrier that fails at run time (here: a command the kernel
    /// refuses with EINVAL, after a registration that succeeded or not)
    /// turns the flag false, and a machine built on that host fences its
    /// fills from then on. Host fact: none (an unknown command fails on
    /// every kernel; without membarrier the flag starts false).
    #[test]
    fn failed_membarrier_clears_the_flag_everywhere() {
        let mut host = OsHost::new();
        host.command = 1 << 30;
        let started_real = host.has_membarrier();
        assert!(
            !host.remote_barrier(),
            "an unknown membarrier command must not count as a barrier"
        );
        assert!(!host.has_membarrier() && !host.remote_barrier_is_real());

        let mut bad = OsHost::new();
        bad.command = 1 << 30;
        let cfg = MachineConfig {
            cpus: 2,
            ..Default::default()
        };
        let m = Machine::with_host(&cfg, Box::new(bad)).unwrap();
        assert_eq!(m.host_barrier_is_real(), started_real);
        let pid = m.spawn().unwrap();
        let a = m
            .mmap(
                pid,
                0,
                4096,
                crate::mm::mm::uapi::PROT_READ,
                crate::mm::mm::uapi::MAP_PRIVATE | crate::mm::mm::uapi::MAP_ANONYMOUS,
            )
            .unwrap();
        // Two CPUs in the address space, so munmap's shootdown calls the barrier.
        let mut c0 = m.cpu(0).unwrap();
        let mut c1 = m.cpu(1).unwrap();
        c0.switch_to(pid).unwrap();
        c1.switch_to(pid).unwrap();
        assert_eq!(c0.load_u64(a).unwrap(), 0);
        assert_eq!(c1.load_u64(a).unwrap(), 0);
        m.munmap(pid, a, 4096).unwrap();
        assert!(
            !m.host_barrier_is_real(),
            "the machine must stop trusting a barrier that failed"
        );
        assert!(c1.load_u64(a).is_err());
    }
}
