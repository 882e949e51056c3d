//! The host's own answer for `vmlab exp reclaim`: a page-reference stream
//! replayed over a real file mapping by a child process confined to a
//! memory cgroup, with the major faults the host counted. This is the
//! "Linux" row printed beside vmlab's `two_list` row on `file_scan`.
//!
//! How one run goes ([`replay_file_stream`]):
//!
//! 1. **Cgroup.** The memory controller is found in /proc/self/mountinfo
//!    and /proc/self/cgroup: cgroup v1 (`cgroup` mounted with `memory`,
//!    here /sys/fs/cgroup/memory) first, else cgroup2 if `memory` is in its
//!    parent's `cgroup.subtree_control` (or can be put there). A child
//!    `vmlab-<pid>-<n>` is made *under the calling process's own memory
//!    cgroup* (so the run stays inside whatever limits the caller lives
//!    under; nothing escapes to the root). v1: `memory.limit_in_bytes` is
//!    set to the limit and `memory.oom_control` to 0 (a new v1 cgroup
//!    inherits `oom_kill_disable` from its parent; disabled, an over-limit
//!    child would hang instead of being killed). v2: `memory.max`, and
//!    `memory.swap.max = 0` where it exists. The cgroup is removed (rmdir,
//!    after v1's `memory.force_empty` gives back the pages it still holds)
//!    on every path, errors included.
//! 2. **File.** An unnamed temporary file (`O_TMPFILE` where the file
//!    system has it) of `file_pages` × 4096 bytes in `dir`, every byte
//!    non-zero, is written, `fsync`ed and dropped from the page cache
//!    (`posix_fadvise(POSIX_FADV_DONTNEED)`). The parent maps it
//!    `PROT_READ, MAP_SHARED`, advises `MADV_RANDOM`, and checks with
//!    `mincore` that at most 1% of its pages (none, for fewer than 100
//!    pages) are still resident, advising DONTNEED up to three more times.
//!    **If more stay resident** (a file system whose pages are not page
//!    cache, such as tmpfs, or pages someone else holds) it returns `Err`:
//!    every resident page would be one major fault short.
//! 3. **Child.** The parent forks. The child does only async-signal-safe
//!    work: it blocks in `read` on a socket until the parent has written
//!    its pid into the cgroup's `cgroup.procs` (so everything it faults in
//!    afterwards is charged to the cgroup: page cache is charged at fault
//!    time to the faulting task's memcg), reads one byte of each page of
//!    `refs` in order (volatile loads through the inherited mapping),
//!    takes `CLOCK_MONOTONIC` around that loop, sends the elapsed time and
//!    `_exit(0)`s. A `MAP_SHARED` file mapping is not copied at fork, so
//!    the child starts with none of the file mapped. Nothing in the child
//!    allocates, locks or can panic; the parent owns every resource.
//! 4. **Counts.** The parent reaps the child with `wait4` and reads the
//!    cgroup's `memory.stat`.
//!
//! **Fault sources.** Two counts of major faults are at hand, and on this
//! host (Linux 6.18, cgroup v1) they agree exactly on every run measured
//! (see docs/SEMANTICS.md, host facts):
//! - `memory.stat` `pgmajfault` (v1: the cgroup's own events; `total_pgmajfault`
//!   adds its descendants, which it has none of). Linux counts it in
//!   `filemap_fault` when the page is not in the page cache at all
//!   (`count_memcg_event_mm`, charged to the memcg of the mm's owner, the
//!   child). Memcg statistics are flushed lazily (per-CPU deltas below a
//!   batch wait for a 2-second periodic flush), so the parent re-reads the
//!   file until the count is at least the rusage count or 2.5 s have
//!   passed.
//! - the child's rusage `ru_majflt` (from `wait4`), counted by
//!   `mm_account_fault`: a fault that returned `VM_FAULT_MAJOR` *or* one
//!   that was retried (`FAULT_FLAG_TRIED`, after the fault handler dropped
//!   its lock to wait). It is exact at once, but would count a retry after
//!   a wait on a page already in the cache (a locked folio under reclaim)
//!   as major too. Here no fault was retried: the cgroup's `pgfault` (one
//!   per fault entry, retries included) was 513 for a 512-page scan with
//!   512 major faults.
//!
//! [`CgroupRun::major_faults`] is the `memory.stat` count
//! ([`CgroupRun::source`] says so); where the cgroup's `memory.stat` has no
//! `pgmajfault` line it is `ru_majflt` (source `"wait4 ru_majflt"`).
//! [`CgroupRun::minor_faults`] is always the child's `ru_minflt`: the
//! cgroup does not count minor faults apart (`pgfault` counts every fault),
//! and `ru_minflt` includes a handful of copy-on-write faults on the
//! child's stack around the fork.
//!
//! **Read-ahead and fault-around.** `MADV_RANDOM` turns off read-ahead for
//! the mapping (`do_sync_mmap_readahead` returns at once), so each major
//! fault reads exactly one page. Fault-around (`fault_around_bytes` in
//! debugfs, 64 KiB by default) still runs on read faults of file mappings:
//! `filemap_map_pages` maps the *already cached, up-to-date* pages in the
//! aligned 64 KiB window around the faulting address. It reads nothing in,
//! so it lowers minor faults (a page evicted from the mapping but still in
//! the cache may be mapped by a neighbour's fault) but never adds or hides
//! a major fault: a scan of N uncached pages under no limit gives N major
//! faults (measured: exactly N, for N = 512).
//! (Without `MADV_RANDOM`, measured: the same scan is 1 major fault, the
//! rest read ahead.)
//!
//! **Limits.** Besides the file's pages the cgroup is charged about 3 pages
//! (the child's page tables for the mapping and the page-cache tree node;
//! measured as a whole: a 1-page file needs a 4-page limit, not itemised).
//! Memcg reclaim needs room beyond that: a loop twice over a 512-page file
//! was ended by the cgroup's OOM killer under limits up to about 40 pages
//! and ran under 42 pages and more (the edge moves from run to run), and
//! under a quarter of the file (128 pages) it re-read nearly every page
//! (1018-1024 major faults of 1024 references).

use std::fs::File;
use std::io::Write as _;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The host's page size, which the replay assumes (x86-64).
const PAGE: u64 = 4096;

/// What the host measured replaying a page-reference stream over a file mapping in a memory cgroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupRun {
    /// Major faults of the child (see [`CgroupRun::source`]).
    pub major_faults: u64,
    /// The child's minor faults (`ru_minflt`: its whole life, a few
    /// copy-on-write faults on its stack included).
    pub minor_faults: u64,
    /// The limit the cgroup held, as the kernel read it back (v1 rounds the
    /// requested limit up to a page).
    pub limit_bytes: u64,
    /// Pages in the file.
    pub pages: u64,
    /// References replayed (`refs.len()`).
    pub refs: u64,
    /// Time the child spent in its replay loop (`CLOCK_MONOTONIC`, taken in
    /// the child around the loop: no fork, join or exit in it).
    pub elapsed_ns: u64,
    /// Where `major_faults` came from: `"memory.stat pgmajfault"` or
    /// `"wait4 ru_majflt"`.
    pub source: &'static str,
}

/// Replay `refs` (page indices into a file of `file_pages` pages, read accesses) in a fresh child process
/// confined to a memory cgroup whose limit is `limit_bytes`. Err(reason) says in one sentence why the host
/// does not allow it (not root, no v1 memory controller mounted, cgroup creation refused, ...). Never panics.
///
/// The steps, and which fault count is reported, are in the module
/// documentation. The file is made in `dir` (which must be on a file
/// system with a page cache: not tmpfs) and is gone when this returns; if
/// more than 1% of its pages are still resident after being dropped from
/// the cache, this returns `Err`. A child the cgroup's OOM killer ended (a
/// limit too small for even the child's own pages) is an `Err` too.
pub fn replay_file_stream(file_pages: u64, refs: &[u64], limit_bytes: u64, dir: &Path) -> Result<CgroupRun, String> {
    if limit_bytes == 0 {
        return Err("a memory limit of 0 bytes cannot hold even the one page a fault reads in".into());
    }
    if file_pages == 0 {
        return Err("a file of 0 pages has no page to reference".into());
    }
    let len = file_pages
        .checked_mul(PAGE)
        .filter(|&l| usize::try_from(l).is_ok() && i64::try_from(l).is_ok())
        .ok_or_else(|| format!("a file of {file_pages} pages is larger than this host can map"))?;
    if let Some(&bad) = refs.iter().find(|&&r| r >= file_pages) {
        return Err(format!(
            "reference to page {bad} is outside the file of {file_pages} pages"
        ));
    }
    if !dir.is_dir() {
        return Err(format!("{} is not a directory to make the file in", dir.display()));
    }
    let cg = Cgroup::create(limit_bytes)?;
    let run = replay_in(&cg, file_pages, len, refs, dir);
    let removed = cg.remove();
    match (run, removed) {
        (Ok(run), Ok(())) => Ok(run),
        (Ok(run), Err(e)) => Err(format!("measured {} major faults, but {e}", run.major_faults)),
        (Err(e), _) => Err(e),
    }
}

/// Steps 2-4 of the module docs, inside the cgroup `cg`, which outlives
/// the file, the mapping and the child (all dropped here).
fn replay_in(cg: &Cgroup, file_pages: u64, len: u64, refs: &[u64], dir: &Path) -> Result<CgroupRun, String> {
    let file = make_file(dir, file_pages)?;
    let map = Mapping::new(&file, len as usize)?;
    drop_cached(&file, &map, file_pages)?;
    let procs = cg.path.join("cgroup.procs");
    let child = fork_child(&map, refs)?;
    let outcome = child.run(|pid| cg.join(&procs, pid));
    let (status, usage, elapsed) = outcome?;
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        let why = if cg.oom_kills() > 0 {
            format!(
                "the cgroup's OOM killer ended the child (signal {sig}): reclaim could not keep its pages within a limit of {} bytes",
                cg.limit
            )
        } else {
            format!("the child was killed by signal {sig} during the replay")
        };
        return Err(why);
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!("the child ended with wait status {status:#x} before replaying"));
    }
    let elapsed = elapsed.ok_or("the child exited without reporting its replay time")?;
    let ru_maj = usage.ru_majflt.max(0) as u64;
    let (major_faults, source) = match cg.major_faults(ru_maj) {
        Some(n) => (n, "memory.stat pgmajfault"),
        None => (ru_maj, "wait4 ru_majflt"),
    };
    Ok(CgroupRun {
        major_faults,
        minor_faults: usage.ru_minflt.max(0) as u64,
        limit_bytes: cg.limit,
        pages: file_pages,
        refs: refs.len() as u64,
        elapsed_ns: elapsed,
        source,
    })
}

fn os_err(what: &str, path: &Path, e: &std::io::Error) -> String {
    format!("{what} {}: {e}", path.display())
}

// ---------------------------------------------------------------- cgroup

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// A child memory cgroup of this process's own, removed by [`Cgroup::remove`]
/// (or, failing that, on drop).
struct Cgroup {
    path: PathBuf,
    version: Version,
    /// The limit as read back from the kernel.
    limit: u64,
    removed: bool,
}

static NEXT_CGROUP: AtomicU64 = AtomicU64::new(0);

impl Cgroup {
    fn create(limit: u64) -> Result<Cgroup, String> {
        let (parent, version) = memory_cgroup_parent()?;
        if version == Version::V2 {
            enable_v2_memory(&parent)?;
        }
        let pid = std::process::id();
        let mut last = None;
        for _ in 0..16 {
            let n = NEXT_CGROUP.fetch_add(1, Ordering::Relaxed);
            let path = parent.join(format!("vmlab-{pid}-{n}"));
            match std::fs::create_dir(&path) {
                Ok(()) => {
                    let mut cg = Cgroup {
                        path,
                        version,
                        limit: 0,
                        removed: false,
                    };
                    // On error `cg` is dropped, which removes it.
                    cg.configure(limit)?;
                    return Ok(cg);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(os_err("the host refused to create the memory cgroup", &path, &e)),
            }
        }
        Err(format!(
            "every cgroup name tried under {} already exists ({})",
            parent.display(),
            last.map(|e| e.to_string()).unwrap_or_default()
        ))
    }

    fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    fn write(&self, name: &str, value: &str) -> Result<(), String> {
        let p = self.file(name);
        std::fs::write(&p, value).map_err(|e| os_err(&format!("the host refused to write {value:?} to"), &p, &e))
    }

    fn read(&self, name: &str) -> Result<String, String> {
        let p = self.file(name);
        std::fs::read_to_string(&p).map_err(|e| os_err("cannot read", &p, &e))
    }

    fn configure(&mut self, limit: u64) -> Result<(), String> {
        let limit_file = match self.version {
            Version::V1 => "memory.limit_in_bytes",
            Version::V2 => "memory.max",
        };
        self.write(limit_file, &limit.to_string())?;
        let back = self.read(limit_file)?;
        self.limit = back
            .trim()
            .parse()
            .map_err(|_| format!("{limit_file} reads back {:?}, not a number of bytes", back.trim()))?;
        match self.version {
            Version::V1 => self.write("memory.oom_control", "0")?,
            Version::V2 => {
                if self.file("memory.swap.max").exists() {
                    self.write("memory.swap.max", "0")?;
                }
            }
        }
        Ok(())
    }

    /// Moves `pid` into this cgroup and checks it is there.
    fn join(&self, procs: &Path, pid: libc::pid_t) -> Result<(), String> {
        std::fs::write(procs, pid.to_string())
            .map_err(|e| os_err(&format!("the host refused to move pid {pid} into"), procs, &e))?;
        let listed = std::fs::read_to_string(procs).map_err(|e| os_err("cannot read", procs, &e))?;
        if listed.lines().any(|l| l.trim() == pid.to_string()) {
            Ok(())
        } else {
            Err(format!(
                "pid {pid} is not listed in {} after joining it",
                procs.display()
            ))
        }
    }

    /// One `key value` line of a flat keyed file such as `memory.stat`.
    fn stat(&self, file: &str, key: &str) -> Option<u64> {
        let text = self.read(file).ok()?;
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse().ok()).flatten()
        })
    }

    /// The cgroup's `pgmajfault`, re-read (memcg statistics are flushed
    /// lazily, every 2 s at the latest) until it reaches `at_least` or
    /// 2.5 s have passed. `None` if `memory.stat` has no such line.
    fn major_faults(&self, at_least: u64) -> Option<u64> {
        let deadline = Instant::now() + Duration::from_millis(2500);
        loop {
            let n = self.stat("memory.stat", "pgmajfault")?;
            if n >= at_least || Instant::now() >= deadline {
                return Some(n);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// How many times the cgroup's OOM killer has killed a task in it.
    fn oom_kills(&self) -> u64 {
        match self.version {
            Version::V1 => self.stat("memory.oom_control", "oom_kill"),
            Version::V2 => self.stat("memory.events", "oom_kill"),
        }
        .unwrap_or(0)
    }

    /// Gives back the pages still charged here (v1; best effort) and
    /// removes the directory. The child has been reaped, so it has no task.
    fn remove(mut self) -> Result<(), String> {
        self.removed = true;
        self.rmdir()
    }

    fn rmdir(&self) -> Result<(), String> {
        if self.version == Version::V1 {
            let _ = std::fs::write(self.file("memory.force_empty"), "0");
        }
        let mut tries = 0;
        loop {
            match std::fs::remove_dir(&self.path) {
                Ok(()) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(os_err("the host refused to remove the cgroup", &self.path, &e)),
            }
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if !self.removed {
            let _ = self.rmdir();
        }
    }
}

/// Undoes the octal escapes (`\040` for a space) of a /proc/self/mountinfo field.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push(d.iter().fold(0u8, |a, c| a.wrapping_mul(8).wrapping_add(c - b'0')));
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The directory of this process's own memory cgroup: v1 if a v1 hierarchy
/// has the memory controller, else cgroup2.
fn memory_cgroup_parent() -> Result<(PathBuf, Version), String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    let cgroups =
        std::fs::read_to_string("/proc/self/cgroup").map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    // (mount root, mount point) of the v1 memory hierarchy and of cgroup2.
    let (mut v1, mut v2) = (None, None);
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        let (Some(root), Some(point), Some(fstype)) = (l.get(3), l.get(4), r.first()) else {
            continue;
        };
        let entry = (unescape(root), PathBuf::from(unescape(point)));
        match *fstype {
            "cgroup" if r.get(2).is_some_and(|o| o.split(',').any(|o| o == "memory")) => v1 = v1.or(Some(entry)),
            "cgroup2" => v2 = v2.or(Some(entry)),
            _ => {}
        }
    }
    let own = |want: &dyn Fn(&str) -> bool| {
        cgroups.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            want(ctrls).then(|| path.to_string())
        })
    };
    let (root, point, path, version) = if let Some((root, point)) = v1 {
        let path = own(&|c| c.split(',').any(|c| c == "memory"))
            .ok_or("the v1 memory controller is mounted but /proc/self/cgroup has no memory line")?;
        (root, point, path, Version::V1)
    } else if let Some((root, point)) = v2 {
        let path = own(&|c| c.is_empty()).ok_or("cgroup2 is mounted but /proc/self/cgroup has no 0:: line")?;
        (root, point, path, Version::V2)
    } else {
        return Err("the host has no memory cgroup: no v1 memory controller and no cgroup2 mounted".into());
    };
    let rel = path
        .strip_prefix(root.as_str())
        .unwrap_or(&path)
        .trim_start_matches('/');
    let dir = if rel.is_empty() { point } else { point.join(rel) };
    if !dir.is_dir() {
        return Err(format!(
            "this process's memory cgroup {} is not a directory",
            dir.display()
        ));
    }
    Ok((dir, version))
}

/// Makes sure a cgroup2 child of `parent` gets the memory controller.
fn enable_v2_memory(parent: &Path) -> Result<(), String> {
    let has = |file: &str| {
        std::fs::read_to_string(parent.join(file)).is_ok_and(|s| s.split_whitespace().any(|c| c == "memory"))
    };
    if !has("cgroup.controllers") {
        return Err(format!(
            "the memory controller is not available in cgroup2 at {} (no v1 memory hierarchy either)",
            parent.display()
        ));
    }
    if has("cgroup.subtree_control") {
        return Ok(());
    }
    let p = parent.join("cgroup.subtree_control");
    std::fs::write(&p, "+memory").map_err(|e| os_err("the host refused to enable memory in", &p, &e))
}

// ---------------------------------------------------------------- file

/// An unnamed temporary file of `pages` pages, every byte non-zero, on disk.
fn make_file(dir: &Path, pages: u64) -> Result<File, String> {
    let mut f = tempfile::tempfile_in(dir).map_err(|e| os_err("cannot create a temporary file in", dir, &e))?;
    const CHUNK: u64 = 256;
    let mut buf = vec![0u8; (CHUNK * PAGE) as usize];
    let mut page = 0;
    while page < pages {
        let n = CHUNK.min(pages - page);
        for (i, p) in buf.chunks_mut(PAGE as usize).take(n as usize).enumerate() {
            // Non-zero, and different from page to page.
            p.fill(((page + i as u64) % 255 + 1) as u8);
        }
        f.write_all(&buf[..(n * PAGE) as usize])
            .map_err(|e| os_err("cannot write the file in", dir, &e))?;
        page += n;
    }
    f.sync_all().map_err(|e| os_err("cannot fsync the file in", dir, &e))?;
    Ok(f)
}

/// A `PROT_READ, MAP_SHARED` mapping of a whole file, advised `MADV_RANDOM`.
struct Mapping {
    base: *mut libc::c_void,
    len: usize,
}

impl Mapping {
    fn new(file: &File, len: usize) -> Result<Mapping, String> {
        // SAFETY: a fresh mapping at an address of the kernel's choice
        // touches no memory of ours; failure is MAP_FAILED, checked below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(format!("cannot map the file: {}", std::io::Error::last_os_error()));
        }
        let map = Mapping { base, len };
        // SAFETY: [base, base + len) is the mapping just made, ours alone.
        if unsafe { libc::madvise(map.base, map.len, libc::MADV_RANDOM) } != 0 {
            return Err(format!(
                "madvise(MADV_RANDOM) refused: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(map)
    }

    /// How many of the mapping's pages are in the page cache (`mincore`).
    fn resident(&self) -> Result<u64, String> {
        let mut vec = vec![0u8; self.len.div_ceil(PAGE as usize)];
        // SAFETY: the range is our mapping; `vec` has one byte per page of it.
        if unsafe { libc::mincore(self.base, self.len, vec.as_mut_ptr()) } != 0 {
            return Err(format!("mincore refused: {}", std::io::Error::last_os_error()));
        }
        Ok(vec.iter().filter(|&&b| b & 1 != 0).count() as u64)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours; the child that read through it has
        // been reaped (or never made), and nothing else refers to it.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// Drops the (clean, fsynced) file from the page cache and checks with
/// `mincore` that at most 1% of its pages stay.
fn drop_cached(file: &File, map: &Mapping, pages: u64) -> Result<(), String> {
    let allowed = pages / 100;
    let mut resident = u64::MAX;
    for attempt in 0..4 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: fadvise reads no memory of ours; the fd is open.
        let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        if rc != 0 {
            return Err(format!(
                "posix_fadvise(DONTNEED) refused: {}",
                std::io::Error::from_raw_os_error(rc)
            ));
        }
        resident = map.resident()?;
        if resident <= allowed {
            return Ok(());
        }
    }
    Err(format!(
        "{resident} of the file's {pages} pages stay in the page cache after POSIX_FADV_DONTNEED \
         (a file system without a page cache, such as tmpfs?), so their faults would not be major"
    ))
}

// ---------------------------------------------------------------- child

/// The byte that tells the child to start (anything else, or end of file: exit).
const GO: u8 = b'g';
const ABORT: u8 = b'x';

/// A forked child that has not been reaped yet: on drop it is killed and
/// reaped, so no path leaves it behind.
struct Child {
    pid: libc::pid_t,
    /// The parent's end of the socket pair.
    sock: OwnedFd,
    reaped: bool,
}

fn fork_child(map: &Mapping, refs: &[u64]) -> Result<Child, String> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors socketpair writes.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } != 0
    {
        return Err(format!("socketpair refused: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: socketpair returned two fresh descriptors, each owned once here.
    let (ours, theirs) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let base = map.base as *const u8;
    // SAFETY: fork has no memory-safety precondition; the child runs only
    // `child_main`, which makes async-signal-safe calls alone (this process
    // may have other threads, whose locks the child must not touch).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork refused: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        child_main(theirs.as_raw_fd(), base, refs);
    }
    drop(theirs);
    Ok(Child {
        pid,
        sock: ours,
        reaped: false,
    })
}

/// The child: wait for [`GO`], read one byte of each referenced page, send
/// the loop's elapsed nanoseconds, exit. Only async-signal-safe calls
/// (`read`, `clock_gettime`, `write`, `_exit`), no allocation, no panic
/// path (slice iteration and wrapping arithmetic only).
fn child_main(sock: RawFd, base: *const u8, refs: &[u64]) -> ! {
    let mut b = [0u8; 1];
    let got = loop {
        // SAFETY: `b` is one writable byte.
        let n = unsafe { libc::read(sock, b.as_mut_ptr().cast(), 1) };
        // SAFETY: errno is this thread's; reading it is async-signal-safe.
        if n >= 0 || unsafe { *libc::__errno_location() } != libc::EINTR {
            break n;
        }
    };
    if got != 1 || b[0] != GO {
        // SAFETY: _exit ends the process without running anything of ours.
        unsafe { libc::_exit(3) };
    }
    let t0 = monotonic_ns();
    for &r in refs {
        let p = base.wrapping_add((r as usize).wrapping_mul(PAGE as usize));
        // SAFETY: the parent checked r < file_pages, so `p` is in the
        // read-only shared mapping, which stays mapped until this process
        // exits (the parent unmaps its own copy only after reaping us).
        unsafe { std::ptr::read_volatile(p) };
    }
    let ns = monotonic_ns().wrapping_sub(t0).to_ne_bytes();
    // SAFETY: `ns` is 8 readable bytes; a failed write shows as no report.
    unsafe { libc::write(sock, ns.as_ptr().cast(), ns.len()) };
    // SAFETY: as above.
    unsafe { libc::_exit(0) }
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is writable; clock_gettime is async-signal-safe.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

impl Child {
    fn send(&self, byte: u8) -> bool {
        // SAFETY: one readable byte; MSG_NOSIGNAL: no SIGPIPE if the child is gone.
        unsafe { libc::send(self.sock.as_raw_fd(), [byte].as_ptr().cast(), 1, libc::MSG_NOSIGNAL) == 1 }
    }

    /// Lets `join` put the child in its cgroup, starts it and reaps it:
    /// its wait status, rusage and reported replay time.
    fn run(
        mut self,
        join: impl FnOnce(libc::pid_t) -> Result<(), String>,
    ) -> Result<(i32, libc::rusage, Option<u64>), String> {
        if let Err(e) = join(self.pid) {
            self.send(ABORT);
            return Err(e); // dropped: killed if still there, and reaped
        }
        if !self.send(GO) {
            let e = std::io::Error::last_os_error();
            return Err(format!("cannot start the child: {e}"));
        }
        let (status, usage) = self.wait()?;
        let mut ns = [0u8; 8];
        // SAFETY: `ns` has 8 writable bytes; MSG_DONTWAIT: the child is
        // reaped, so what it sent is already queued (a copy of its end may
        // live on in a sibling forked by another thread, so never block).
        let n = unsafe { libc::recv(self.sock.as_raw_fd(), ns.as_mut_ptr().cast(), 8, libc::MSG_DONTWAIT) };
        Ok((status, usage, (n == 8).then(|| u64::from_ne_bytes(ns))))
    }

    fn wait(&mut self) -> Result<(i32, libc::rusage), String> {
        let mut status = 0;
        // SAFETY: rusage is plain data, for which all zeros is a value.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: both out-pointers are writable; `pid` is our unreaped child.
            let r = unsafe { libc::wait4(self.pid, &mut status, 0, &mut usage) };
            if r == self.pid {
                self.reaped = true;
                return Ok((status, usage));
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(format!("cannot wait for the child {}: {e}", self.pid));
            }
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            // SAFETY: `pid` is our child, not yet reaped, so it names no
            // other process; kill and wait4 touch no memory of ours but `status`.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let _ = self.wait();
        }
    }
}
