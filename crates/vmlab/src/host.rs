//! The host behind the simulated machine: the `BackingFile` the mm core
//! maps, implemented over `std::fs::File`; `OsHost`, the OS services its
//! CPUs need when they run on several threads (membarrier, yield); and
//! building a machine with both.
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
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, Ordering};

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

/// `membarrier(2)` commands (linux/membarrier.h; the libc crate has no constants).
const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

/// The host services of a machine whose CPUs are this process's threads:
/// `remote_barrier` is Linux's private expedited `membarrier` (an IPI to
/// every CPU running one of our threads); `relax` yields the host CPU.
/// Where membarrier is missing (old kernels, valgrind) it falls back to a
/// local fence and says so in `has_membarrier`.
pub struct OsHost {
    membarrier: bool,
}

impl OsHost {
    /// Register this process for private expedited membarrier (once per
    /// process; registering again is harmless).
    pub fn new() -> OsHost {
        // SAFETY: membarrier takes two integer arguments and touches no
        // memory of ours; a kernel without it returns -1 (ENOSYS/EINVAL).
        let r = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0) };
        OsHost { membarrier: r == 0 }
    }

    /// Whether `remote_barrier` is a real membarrier.
    pub fn has_membarrier(&self) -> bool {
        self.membarrier
    }
}

impl Default for OsHost {
    fn default() -> OsHost {
        OsHost::new()
    }
}

impl Host for OsHost {
    fn remote_barrier(&self) {
        if self.membarrier {
            // SAFETY: as in `new`; the process is registered, so the
            // command cannot fail with EPERM.
            let r = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0) };
            if r == 0 {
                return;
            }
        }
        fence(Ordering::SeqCst);
    }

    fn remote_barrier_is_real(&self) -> bool {
        self.membarrier
    }
}

impl Relax for OsHost {
    fn relax(&self) {
        std::thread::yield_now();
    }
}
