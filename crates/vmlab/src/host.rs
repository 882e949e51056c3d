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
use crate::mm::mm::{AccessMode, BackingFile};
use crate::mm::phys::{RamBacking, ZeroedWords};
use crate::mm::swap::SwapDevice;
use crate::mm::sync::Relax;
use crate::mm::system::{Host, HostNeed, Machine, MachineConfig, MachineError};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

/// A host file as a `BackingFile`: the access mode it was opened with, and
/// its length, kept here as the file's `i_size` (set at open, changed by
/// the machine's writes and truncations; a change another host process
/// makes to the file's length is not seen).
pub struct HostFile {
    file: File,
    readable: bool,
    writable: bool,
    len: AtomicU64,
    max_len: OnceLock<u64>,
}

impl HostFile {
    /// Open `path` for reading, and for writing too if `writable`. The file
    /// must exist.
    pub fn open(path: &Path, writable: bool) -> io::Result<HostFile> {
        let mode = if writable {
            AccessMode::ReadWrite
        } else {
            AccessMode::ReadOnly
        };
        HostFile::open_mode(path, mode)
    }

    /// Open `path` with access mode `mode` (O_RDONLY, O_WRONLY, O_RDWR).
    /// The file must exist. A write-only file is opened for reading too on
    /// the host if the host allows, since the page cache reads pages in
    /// whatever the mode (a kernel reads its own inode); if it does not,
    /// reading a page in fails with the host's errno (a write to a partial
    /// page not yet cached is then EIO).
    pub fn open_mode(path: &Path, mode: AccessMode) -> io::Result<HostFile> {
        let file = match mode {
            AccessMode::ReadOnly => File::open(path)?,
            AccessMode::ReadWrite => OpenOptions::new().read(true).write(true).open(path)?,
            AccessMode::WriteOnly => match OpenOptions::new().read(true).write(true).open(path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => OpenOptions::new().write(true).open(path)?,
                Err(e) => return Err(e),
            },
        };
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "is a directory"));
        }
        Ok(HostFile {
            file,
            readable: mode.readable(),
            writable: mode.writable(),
            len: AtomicU64::new(meta.len()),
            max_len: OnceLock::new(),
        })
    }
}

/// The errno of a host I/O error (EIO if it has none vmlab knows).
fn errno_of(e: &io::Error) -> Errno {
    e.raw_os_error().and_then(Errno::from_code).unwrap_or(Errno::EIO)
}

impl BackingFile for HostFile {
    fn len(&self) -> u64 {
        self.len.load(Ordering::Acquire)
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
        self.file.write_all_at(buf, off).map_err(|e| errno_of(&e))?;
        self.len
            .fetch_max(off.saturating_add(buf.len() as u64), Ordering::AcqRel);
        Ok(())
    }

    fn writable(&self) -> bool {
        self.writable
    }

    fn readable(&self) -> bool {
        self.readable
    }

    fn set_len(&self, len: u64) -> Result<(), Errno> {
        if !self.writable {
            return Err(Errno::EBADF);
        }
        self.file.set_len(len).map_err(|e| errno_of(&e))?;
        self.len.store(len, Ordering::Release);
        Ok(())
    }

    fn punch_hole(&self, off: u64, len: u64) -> Result<(), Errno> {
        let (Ok(off), Ok(len)) = (i64::try_from(off), i64::try_from(len)) else {
            return Err(Errno::EINVAL);
        };
        // SAFETY: fallocate reads no memory of ours; the fd is open.
        let rc = unsafe {
            libc::fallocate(
                self.file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                off,
                len,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(errno_of(&io::Error::last_os_error()))
        }
    }

    /// The host file system's `s_maxbytes`, found once by seeking: Linux's
    /// `lseek` refuses (EINVAL) exactly the offsets past it. vmlab reads and
    /// writes with positional calls, so the host file offset is free to move.
    fn max_len(&self) -> u64 {
        *self.max_len.get_or_init(|| {
            let fd = self.file.as_raw_fd();
            // SAFETY: lseek only moves this file's offset.
            let ok = |x: u64| unsafe { libc::lseek(fd, x as i64, libc::SEEK_SET) } >= 0;
            if ok(i64::MAX as u64) {
                return i64::MAX as u64;
            }
            let (mut lo, mut hi) = (0u64, i64::MAX as u64);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if ok(mid) {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            lo
        })
    }
}

/// Open the host file `path` in `machine`'s file table; returns its fd.
/// `writable` opens it for writing too (needed for MAP_SHARED with PROT_WRITE).
pub fn open(machine: &Machine, path: impl AsRef<Path>, writable: bool) -> io::Result<i32> {
    let f = HostFile::open(path.as_ref(), writable)?;
    Ok(machine.open_file(Box::new(f)))
}

/// `open(path, flags)` of an existing host file in `machine`'s file table,
/// with the access mode of `flags` (`O_RDONLY`, `O_WRONLY`, `O_RDWR`; other
/// bits are ignored, access mode 3 is `InvalidInput`); returns its fd.
pub fn open_flags(machine: &Machine, path: impl AsRef<Path>, flags: u32) -> io::Result<i32> {
    let mode = AccessMode::from_flags(flags)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "access mode 3 is not modelled"))?;
    let f = HostFile::open_mode(path.as_ref(), mode)?;
    Ok(machine.open_file(Box::new(f)))
}

/// Building a machine on this host failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("config error: {0}")]
    Machine(MachineError),
    #[error("config error: files: cannot open {}: {err}", path.display())]
    File { path: PathBuf, err: io::Error },
    #[error(
        "config error: ram: a machine with {ram} of RAM needs {} of host memory for its metadata \
         ({} frames x {} bytes, plus {} of TLBs), but the host has {} available ({measured_by}); \
         lower ram",
        mib(need.total),
        need.frames,
        need.bytes_per_frame,
        mib(need.tlb_bytes),
        mib(*available)
    )]
    HostMemory {
        ram: crate::mm::system::ByteSize,
        need: HostNeed,
        available: u64,
        measured_by: &'static str,
    },
}

/// `bytes` as MiB with one decimal, for messages.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// What `check_host_memory` compares the machine's metadata with.
pub const MEMINFO_SOURCE: &str = "MemAvailable in /proc/meminfo";

/// The host's available memory in bytes: `MemAvailable` of `/proc/meminfo`
/// (what the kernel thinks can be allocated without swapping), or `None`
/// where there is no such file or line.
pub fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_available(&text)
}

/// `MemAvailable:  123456 kB` → bytes.
fn parse_mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut words = line.split_whitespace().skip(1);
    let n: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => n.checked_mul(1024),
        None => Some(n),
        Some(_) => None,
    }
}

/// Refuse a machine whose metadata (`Machine::host_bytes_needed`: frame
/// descriptors, frame allocator, checker arrays, TLBs) is more than the
/// host's `available` bytes: it would fail part-way or be killed by the
/// host's OOM killer. The simulated RAM itself is not counted, since it is
/// reserved without commitment and costs only the pages the workload
/// touches (docs/CONFIG.md).
pub fn check_host_memory(
    cfg: &MachineConfig,
    available: u64,
    measured_by: &'static str,
) -> Result<HostNeed, HostError> {
    let need = Machine::host_bytes_needed(cfg);
    if need.total > available {
        return Err(HostError::HostMemory {
            ram: cfg.ram,
            need,
            available,
            measured_by,
        });
    }
    Ok(need)
}

/// Build the machine `cfg` describes and open the host files of its
/// `files` list as fds 3, 4, ... in order. Each is opened for reading and
/// writing if the host allows, else for reading only (then a writable
/// MAP_SHARED of it fails with EACCES, as on Linux). A machine whose
/// metadata the host cannot hold is refused first (`check_host_memory`;
/// skipped on a host without `/proc/meminfo`, where the fallible
/// allocations of the build still refuse it without an abort).
pub fn build_machine(cfg: &MachineConfig) -> Result<Machine, HostError> {
    if let Some(available) = mem_available() {
        check_host_memory(cfg, available, MEMINFO_SOURCE)?;
    }
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
    /// The kswapd thread's wake-up token and its sleep (`park_kswapd`).
    kswapd_token: std::sync::Mutex<bool>,
    kswapd_wake: std::sync::Condvar,
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
            kswapd_token: std::sync::Mutex::new(false),
            kswapd_wake: std::sync::Condvar::new(),
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

    fn ram_backing(&self) -> &dyn RamBacking {
        &MmapBacking
    }

    fn now_ns(&self) -> Option<u64> {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        Some(START.get_or_init(std::time::Instant::now).elapsed().as_nanos() as u64)
    }

    fn swap_device(&self, bytes: u64, dir: &str) -> Result<Box<dyn SwapDevice>, String> {
        HostSwapFile::create(bytes, dir).map(|f| Box::new(f) as Box<dyn SwapDevice>)
    }

    fn park_kswapd(&self) {
        let mut token = self.kswapd_token.lock().unwrap_or_else(|e| e.into_inner());
        if !*token {
            // A bounded sleep: kswapd also looks at the watermarks now and
            // then, as Linux's does after a timeout in `kswapd_try_to_sleep`.
            token = self
                .kswapd_wake
                .wait_timeout(token, KSWAPD_SLEEP)
                .map_or_else(|e| e.into_inner().0, |r| r.0);
        }
        *token = false;
    }

    fn unpark_kswapd(&self) {
        *self.kswapd_token.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.kswapd_wake.notify_one();
    }
}

/// Longest sleep of the kswapd thread between two looks at the watermarks.
const KSWAPD_SLEEP: std::time::Duration = std::time::Duration::from_millis(20);

/// Run `f` with `m`'s kswapd thread beside it (a scoped host thread running
/// `Machine::kswapd_thread`): allocations that leave fewer than the low
/// watermark's frames free wake it, and it reclaims to the high one while
/// `f`'s CPU threads go on. Stopped and joined before this returns. For a
/// machine built by `build_machine` (an `OsHost`, which blocks the thread
/// while it sleeps).
pub fn with_kswapd<R>(m: &Machine, f: impl FnOnce() -> R) -> R {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| m.kswapd_thread(&stop));
        let r = f();
        stop.store(true, Ordering::Release);
        m.stop_kswapd_thread();
        r
    })
}

/// The swap area as a real file: created for the run in the config's
/// `swap_dir` (the host's temporary directory if empty), unlinked as soon as
/// it is open (`tempfile::tempfile_in`: `O_TMPFILE` where the file system
/// has it), so a killed run leaves nothing a later one could read as swap,
/// and sized with `set_len` (sparse: blocks are used as slots are written).
/// Slots are read and written with `pread`/`pwrite` at `slot × 4096`.
pub struct HostSwapFile {
    file: File,
    slots: u64,
}

impl HostSwapFile {
    /// A swap file of `bytes` bytes in `dir`. The error names the directory
    /// and what the host refused.
    pub fn create(bytes: u64, dir: &str) -> Result<HostSwapFile, String> {
        let dir = if dir.is_empty() {
            std::env::temp_dir()
        } else {
            std::path::PathBuf::from(dir)
        };
        let file = tempfile::tempfile_in(&dir)
            .map_err(|e| format!("cannot create a swap file in {}: {e} (set swap_dir)", dir.display()))?;
        file.set_len(bytes)
            .map_err(|e| format!("cannot make the swap file in {} {bytes} bytes long: {e}", dir.display()))?;
        Ok(HostSwapFile {
            file,
            slots: bytes / crate::mm::addr::PAGE_SIZE,
        })
    }
}

impl SwapDevice for HostSwapFile {
    fn slots(&self) -> u64 {
        self.slots
    }

    fn read_slot(&self, slot: u64, buf: &mut [u8; 4096]) -> Result<(), Errno> {
        if slot >= self.slots {
            return Err(Errno::EIO);
        }
        self.file
            .read_exact_at(buf, slot * crate::mm::addr::PAGE_SIZE)
            .map_err(|_| Errno::EIO)
    }

    fn write_slot(&self, slot: u64, buf: &[u8; 4096]) -> Result<(), Errno> {
        if slot >= self.slots {
            return Err(Errno::EIO);
        }
        self.file
            .write_all_at(buf, slot * crate::mm::addr::PAGE_SIZE)
            .map_err(|_| Errno::EIO)
    }
}

/// Zeroed memory reserved with an anonymous private `MAP_NORESERVE`
/// mapping: the kernel hands out zero pages on first touch and charges no
/// commit up front, so RAM far larger than the host's (up to the config's
/// 256 GiB) can be reserved whatever `vm.overcommit_memory` heuristic says
/// about one huge `malloc`. (With `vm.overcommit_memory = 2` the kernel
/// ignores `MAP_NORESERVE`, and a refusal is reported, not aborted on.)
pub struct MmapBacking;

impl RamBacking for MmapBacking {
    fn zeroed_words(&self, words: usize) -> Option<ZeroedWords> {
        let len = words.max(1).checked_mul(8)?;
        // SAFETY: an anonymous mapping at an address of the kernel's choice
        // touches no memory of ours; failure is MAP_FAILED, checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        let ptr = NonNull::new(p as *mut u64)?;
        /// # Safety
        /// `ptr` and `words` are those of one `zeroed_words` mapping, which
        /// is unmapped here once (`ZeroedWords` calls this from its drop).
        unsafe fn release(ptr: NonNull<u64>, words: usize) {
            // SAFETY: the mapping is ours and nothing refers to it any more
            // (the caller's contract); an error leaves it mapped (a leak).
            unsafe { libc::munmap(ptr.as_ptr() as *mut libc::c_void, words.max(1) * 8) };
        }
        // SAFETY: a fresh anonymous mapping is page aligned, reads as zeros,
        // is readable and writable, is ours alone and stays at its address
        // until `release` munmaps it, which happens once, on drop.
        Some(unsafe { ZeroedWords::from_raw(ptr, words, release) })
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
    use crate::mm::system::ByteSize;

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

    fn cfg(ram: u64) -> MachineConfig {
        MachineConfig {
            ram: ByteSize(ram),
            cpus: 2,
            ..MachineConfig::default()
        }
    }

    #[test]
    fn meminfo_gives_mem_available_in_bytes() {
        let text = "MemTotal:       24683584 kB\nMemFree:        21000000 kB\nMemAvailable:   24145732 kB\n";
        assert_eq!(parse_mem_available(text), Some(24145732 * 1024));
        assert_eq!(parse_mem_available("MemTotal: 1 kB\n"), None);
        assert_eq!(parse_mem_available("MemAvailable: lots kB\n"), None);
    }

    #[test]
    fn a_machine_whose_metadata_the_host_cannot_hold_is_refused_with_the_numbers() {
        // 100 GiB: 26214400 frames of metadata, plus two 512-entry TLBs.
        let c = cfg(100 << 30);
        let need = Machine::host_bytes_needed(&c);
        assert_eq!(need.frames, 26_214_400);
        assert_eq!(need.tlb_bytes, 2 * 512 * 8);
        assert_eq!(need.total, need.frames * need.bytes_per_frame + need.tlb_bytes);
        // A host with 1 GiB available cannot hold it ...
        let e = check_host_memory(&c, 1 << 30, "a test figure").unwrap_err();
        let msg = e.to_string();
        for n in [
            "ram: a machine with 100GiB of RAM needs".to_string(),
            format!("{} of host memory", mib(need.total)),
            format!("26214400 frames x {} bytes", need.bytes_per_frame),
            "the host has 1024.0 MiB available (a test figure)".to_string(),
        ] {
            assert!(msg.contains(&n), "{msg:?} lacks {n:?}");
        }
        assert!(matches!(e, HostError::HostMemory { available, .. } if available == 1 << 30));
        // ... one with exactly what it needs can.
        assert_eq!(check_host_memory(&c, need.total, "a test figure").unwrap(), need);
        assert!(check_host_memory(&c, need.total - 1, "a test figure").is_err());
    }

    #[test]
    fn the_metadata_per_frame_follows_the_types() {
        // Descriptor, buddy link and state byte, checker arrays (i32, u32, bool).
        let need = Machine::host_bytes_needed(&cfg(1 << 30));
        let desc = std::mem::size_of::<crate::mm::phys::FrameDesc>() as u64;
        assert_eq!(desc, 56);
        assert_eq!(need.bytes_per_frame, desc + 8 + 1 + 4 + 4 + 1);
    }

    #[test]
    fn mmap_backing_reserves_more_than_the_host_has() {
        // 512 GiB of address space, no commitment: only the touched page costs.
        let w = MmapBacking
            .zeroed_words(64 << 30)
            .expect("a NORESERVE reservation succeeds");
        assert_eq!(w.len(), 64 << 30);
        let a: crate::mm::phys::ZeroedArray<std::sync::atomic::AtomicU64> =
            crate::mm::phys::ZeroedArray::new(&MmapBacking, 1 << 20).unwrap();
        assert_eq!(a.as_slice()[12345].load(Ordering::Relaxed), 0);
        a.as_slice()[12345].store(9, Ordering::Relaxed);
        assert_eq!(a.as_slice()[12345].load(Ordering::Relaxed), 9);
    }

    #[test]
    fn the_swap_file_is_real_unlinked_and_round_trips_pages() {
        let dir = tempfile::tempdir().unwrap();
        let f = HostSwapFile::create(16 * 4096, dir.path().to_str().unwrap()).unwrap();
        // Unlinked once open: nothing a later run could read as swap.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert_eq!(f.slots(), 16);
        let mut page = [0u8; 4096];
        page[0] = 1;
        page[4095] = 0xee;
        f.write_slot(15, &page).unwrap();
        let mut back = [0u8; 4096];
        f.read_slot(15, &mut back).unwrap();
        assert_eq!(back, page);
        f.read_slot(3, &mut back).unwrap();
        assert_eq!(back, [0u8; 4096], "a slot never written reads zeros (sparse file)");
        assert_eq!(f.write_slot(16, &page), Err(Errno::EIO));
        // A directory that does not exist is an error naming it.
        let e = HostSwapFile::create(4096 * 4, "/nonexistent/vmlab-swap").err().unwrap();
        assert!(e.contains("/nonexistent/vmlab-swap"), "{e}");
        // Built through the host: the machine counts the slots (the header excluded).
        let cfg = MachineConfig {
            swap_size: crate::mm::system::ByteSize(1 << 20),
            swap_dir: dir.path().to_str().unwrap().to_string(),
            ..MachineConfig::default()
        };
        let m = build_machine(&cfg).unwrap();
        let s = m.stats();
        assert_eq!((s.swap_total, s.swap_used), (255, 0));
        let bad = MachineConfig {
            swap_dir: "/nonexistent/vmlab-swap".into(),
            ..cfg
        };
        let e = build_machine(&bad).err().unwrap().to_string();
        assert!(
            e.starts_with("config error: swap_size: cannot create a swap file in /nonexistent"),
            "{e}"
        );
    }
}
