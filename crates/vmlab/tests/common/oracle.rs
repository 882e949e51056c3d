//! The Linux oracle: run one list of memory operations on the HOST kernel and
//! on vmlab, every address relative to a window base, and return comparable
//! results.
//!
//! Host side. The test binary re-executes itself (`std::env::current_exe()`)
//! with `VMLAB_ORACLE_CHILD=1` and the filter `oracle_child --exact`, so that
//! one dedicated `#[test]` function (each test file that uses the oracle
//! defines `fn oracle_child` calling [`child_main`]) runs in a fresh process
//! made with `std::process::Command`: nothing is ever `fork()`ed from the
//! multi-threaded harness. The child reads the op lists as JSON on stdin and,
//! for each list:
//!  1. allocates what it will need (result slots, one buffer for
//!     `/proc/self/maps` snapshots) *before* it touches the window, so no
//!     malloc-driven mmap can land among the window's mappings while ops run;
//!  2. finds free address space: mmap(NULL, GUARD + WINDOW + GUARD,
//!     PROT_NONE), munmap it, and uses `base = start + GUARD`, so at least
//!     `GUARD_PAGES` free pages lie either side of the window;
//!  3. performs the ops with raw libc calls; a load or store is one `mov`
//!     instruction of known encoding, and a SIGSEGV/SIGBUS handler that
//!     recognises it records the signal and `si_code` and skips it (no
//!     longjmp, no unwinding through a signal frame);
//!  4. unmaps the whole region, then formats results: returned addresses
//!     relative to the base, errno names, `/proc/self/maps` lines clipped to
//!     the region, in pages relative to the base.
//!
//! It prints one line `VMLAB_ORACLE_RESULT <json>`.
//!
//! vmlab side: the same ops in a fresh vmlab process, window at `VMLAB_BASE`
//! (far from vmlab's mmap_base near the top and from its heap at START_BRK),
//! with `Machine::check()` after every op and "every frame free" at exit.
//!
//! Only comparable things are compared. MAP_FIXED results, errnos and maps
//! lines compare directly (relative to the base). A hinted (non-FIXED) mmap
//! lands where each kernel's top-down search chooses when the hint is not
//! free, so `MmapHint` reports only whether the hint was honoured (`At`) or
//! not (`Elsewhere`; the stray mapping is then unmapped at once on both
//! sides, so the windows stay comparable). `Mremap` does the same for a
//! mapping the kernel moved to an address of its choosing, or moves it back
//! into the window (`back`) so that what moved with it can be inspected.
//!
//! `Fork` forks: on the host with `fork()` in the helper process (the child
//! runs its ops with raw syscalls only and records results and maps text in
//! a `MAP_SHARED` area set up before any case runs, then `_exit`s); on vmlab
//! with `Machine::fork`, the child's ops run on the same CPU switched to the
//! child, which then exits. The parent's ops go on afterwards.

use serde::{Deserialize, Serialize};
use vmlab_mm::errno::{Errno, Fault, FaultReason, Signal};
use vmlab_mm::system::{ByteSize, Cpu, Machine, MachineConfig, Pid};

/// Page size of both sides.
pub const P: u64 = 4096;
/// Pages of the window ops work in.
pub const WINDOW_PAGES: u64 = 1024;
/// Free pages kept on each side of the window (on the host: at least this many).
pub const GUARD_PAGES: u64 = 4096;
/// Window base in the vmlab process.
pub const VMLAB_BASE: u64 = 0x2000_0000_0000;
/// Environment variable that turns `oracle_child` into the host child.
pub const CHILD_ENV: &str = "VMLAB_ORACLE_CHILD";
const RESULT_MARK: &str = "VMLAB_ORACLE_RESULT ";

/// An address: relative to the window base (bytes), or absolute.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum A {
    Rel(i64),
    Abs(u64),
}

impl A {
    pub fn at(self, base: u64) -> u64 {
        match self {
            A::Rel(o) => base.wrapping_add(o as u64),
            A::Abs(a) => a,
        }
    }
}

/// One operation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `mmap(a, len, prot, flags, -1, 0)`; result `At(rel)` or an errno.
    Mmap {
        a: A,
        len: u64,
        prot: u32,
        flags: u32,
    },
    /// A hinted mmap (flags without MAP_FIXED): `At(rel)` if the hint
    /// (rounded down to a page) was honoured, else `Elsewhere` and the
    /// mapping is unmapped again.
    MmapHint {
        a: A,
        len: u64,
        prot: u32,
        flags: u32,
    },
    Munmap {
        a: A,
        len: u64,
    },
    Mprotect {
        a: A,
        len: u64,
        prot: u32,
    },
    /// 8-byte load: `Val(v)` or `Segv(kind)`.
    Load {
        a: A,
    },
    /// 8-byte store: `Ok` or `Segv(kind)`.
    Store {
        a: A,
        val: u64,
    },
    /// Snapshot of the maps lines around the window.
    Maps,
    /// `mremap(a, old_len, new_len, flags, new_a)`: `At(rel)` or an errno.
    /// If the kernel chose the new address (MREMAP_MAYMOVE without
    /// MREMAP_FIXED, and not at the DONTUNMAP hint), `Elsewhere`, and the
    /// mapping is moved to `back` with MREMAP_FIXED (keeping its length) or,
    /// without `back`, unmapped.
    Mremap {
        a: A,
        old_len: u64,
        new_len: u64,
        flags: u32,
        new_a: A,
        back: Option<A>,
    },
    /// `madvise(a, len, advice)`: `Ok` or an errno.
    Madvise {
        a: A,
        len: u64,
        advice: u32,
    },
    /// `mincore(a, len, vec)`: `Resident` (one digit per page, `1` where
    /// the byte is non-zero) or an errno. At most `MINCORE_MAX_PAGES` pages.
    Mincore {
        a: A,
        len: u64,
    },
    /// `fork()`: the child runs `ops` (no further `Fork`) and exits; the
    /// result is `Child(its results)`.
    Fork {
        ops: Vec<Op>,
    },
    /// `setrlimit(RLIMIT_STACK)` with soft limit `cur` (bytes) and the hard
    /// limit unchanged: `Ok` or an errno. On the host the helper's limit is
    /// restored after the case (lowering it does not shrink the helper's
    /// own stack, which is far smaller than any limit a case sets).
    SetStackLimit {
        cur: u64,
    },
    /// `mlock(a, len)`: `Ok` or an errno.
    Mlock {
        a: A,
        len: u64,
    },
    /// `mlock2(a, len, flags)`: `Ok` or an errno.
    Mlock2 {
        a: A,
        len: u64,
        flags: u32,
    },
    /// `munlock(a, len)`: `Ok` or an errno.
    Munlock {
        a: A,
        len: u64,
    },
    /// `mlockall(flags)`: `Ok` or an errno. The host helper calls
    /// `munlockall()` after each case, so MCL_FUTURE does not outlive it.
    Mlockall {
        flags: u32,
    },
    /// `munlockall()`: `Ok` or an errno.
    Munlockall,
    /// `setrlimit(RLIMIT_MEMLOCK)` with soft limit `cur` (bytes), the hard
    /// limit unchanged: `Ok` or an errno; restored after the case.
    SetMemlockLimit {
        cur: u64,
    },
    /// Make the process unprivileged for memory locking, as every vmlab
    /// process is: on the host, drop CAP_IPC_LOCK from the effective set
    /// (capset; restored after the case, the permitted set keeps it); on
    /// vmlab nothing. `Ok`.
    DropIpcLock,
    /// Which of `pages` pages from `a` are resident: `Val(bits)`, bit i for
    /// page i (mincore on both sides, as a mask), or an errno.
    Resident {
        a: A,
        pages: u64,
    },
    /// Pages the process has locked: `Val(n)` (`VmLck` of
    /// /proc/self/status on the host, `Machine::locked_pages` on vmlab).
    LockedPages,
}

/// One result.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum R {
    Ok,
    /// mmap returned `base + rel`.
    At(i64),
    /// mmap returned an address outside the region around the window.
    AtAbs(u64),
    /// Hinted mmap placed away from the hint (and unmapped again).
    Elsewhere,
    /// An errno name.
    Err(String),
    Val(u64),
    /// `MAPERR` (no mapping), `ACCERR` (mapping forbids the access), other kinds spelled out.
    Segv(String),
    /// Maps lines `(start page, end page, perms)` relative to the base,
    /// clipped to the guard region; a `!` after the perms marks a line
    /// that extended beyond it.
    Maps(Vec<(i64, i64, String)>),
    /// The results of a forked child's ops.
    Child(Vec<R>),
    /// A mincore vector: `'1'` for a resident page, `'0'` otherwise.
    Resident(String),
}

/// Most pages one `Op::Mincore` may ask about (the host child keeps the
/// vector as a bit mask, so that results need no allocation).
pub const MINCORE_MAX_PAGES: u64 = 64;

/// `R::Resident` of a mincore vector.
pub fn resident_of(v: impl IntoIterator<Item = u8>) -> R {
    R::Resident(v.into_iter().map(|b| if b != 0 { '1' } else { '0' }).collect())
}

pub type MapsView = Vec<(i64, i64, String)>;

/// Parse `"0-1:rw-p 2-3:r--p"` (pages relative to the base).
pub fn maps_of(s: &str) -> R {
    R::Maps(
        s.split_whitespace()
            .map(|t| {
                let (range, perms) = t.split_once(':').expect("maps entry needs ':'");
                let (a, b) = range.split_once('-').expect("maps entry needs '-'");
                (a.parse().unwrap(), b.parse().unwrap(), perms.to_string())
            })
            .collect(),
    )
}

/// Render a maps view in the `maps_of` notation.
pub fn show_maps(v: &MapsView) -> String {
    v.iter()
        .map(|(a, b, p)| format!("{a}-{b}:{p}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn region(base: u64) -> (u64, u64) {
    (base - GUARD_PAGES * P, base + (WINDOW_PAGES + GUARD_PAGES) * P)
}

fn clip_maps(base: u64, lines: impl Iterator<Item = (u64, u64, String)>) -> MapsView {
    let (lo, hi) = region(base);
    let mut out = Vec::new();
    for (s, e, mut perms) in lines {
        if e <= lo || s >= hi {
            continue;
        }
        if s < lo || e > hi {
            perms.push('!');
        }
        let rel = |x: u64| (x.wrapping_sub(base) as i64) / P as i64;
        out.push((rel(s.max(lo)), rel(e.min(hi)), perms));
    }
    out
}

fn ret_of(base: u64, addr: u64) -> R {
    let (lo, hi) = region(base);
    if (lo..hi).contains(&addr) {
        R::At(addr.wrapping_sub(base) as i64)
    } else {
        R::AtAbs(addr)
    }
}

pub fn errno_name(code: i32) -> String {
    Errno::from_code(code).map_or_else(|| format!("errno{code}"), |e| e.name().to_string())
}

fn fault_name(f: Fault) -> String {
    match (f.signal, f.reason) {
        (Signal::Segv, FaultReason::NotMapped | FaultReason::Guard) => "MAPERR".into(),
        (Signal::Segv, FaultReason::Protection) => "ACCERR".into(),
        (Signal::Segv, FaultReason::ProtectionKey) => "PKUERR".into(),
        // SIGBUS with BUS_ADRERR: a page wholly past the end of an object.
        (Signal::Bus, FaultReason::BeyondEof) => "BUS_ADRERR".into(),
        (s, r) => format!("{s:?}/{r:?}"),
    }
}

/// Whether an mremap that returned `got` was placed by the kernel rather
/// than by the caller (see `Op::Mremap`).
fn mremap_elsewhere(a: u64, flags: u32, new_a: u64, got: u64) -> bool {
    use vmlab_mm::mm::uapi::{MREMAP_DONTUNMAP, MREMAP_FIXED};
    flags & MREMAP_FIXED == 0 && got != a && !(flags & MREMAP_DONTUNMAP != 0 && got == new_a)
}

/// Whether `ops` fork.
pub fn forks(ops: &[Op]) -> bool {
    ops.iter().any(|o| matches!(o, Op::Fork { .. }))
}

/// The machine the vmlab side runs on: configured from the host's facts
/// (`vmlab::host::HostFacts`: protection keys), since the host judges it.
pub fn vmlab_config() -> MachineConfig {
    vmlab_config_for(vmlab::host::HostFacts::get().pkeys)
}

/// The machine the vmlab side runs on, with protection keys or without.
pub fn vmlab_config_for(pkeys: bool) -> MachineConfig {
    MachineConfig {
        ram: ByteSize(64 << 20),
        pkeys,
        ..super::test_config()
    }
}

/// Run `ops` on a fresh vmlab process; `check()` after every op; at the end
/// the process exits and every frame must be free again.
pub fn run_vmlab(ops: &[Op]) -> Vec<R> {
    run_vmlab_with(&vmlab_config(), ops)
}

/// `run_vmlab` on a machine built from `config` (a fork policy, a map count).
pub fn run_vmlab_with(config: &MachineConfig, ops: &[Op]) -> Vec<R> {
    let m = Machine::new(config).expect("machine");
    let pid = m.spawn().expect("spawn");
    let out;
    {
        let mut cpu = m.cpu(0).expect("cpu 0");
        cpu.switch_to(pid).expect("switch_to");
        out = run_vmlab_ops(&m, &mut cpu, pid, ops, ops);
    }
    m.exit(pid).expect("exit");
    m.check().expect("check() after exit");
    assert_eq!(
        m.phys().frames_used(),
        m.reserved_frames(),
        "frames still used after the process exited"
    );
    out
}

/// Run `ops` in process `pid` (which `cpu` runs), `check()` after each.
fn run_vmlab_ops(m: &Machine, cpu: &mut Cpu<'_>, pid: Pid, ops: &[Op], all: &[Op]) -> Vec<R> {
    let base = VMLAB_BASE;
    let mut out = Vec::with_capacity(ops.len());
    let err = |e: Errno| R::Err(e.name().into());
    for (i, op) in ops.iter().enumerate() {
        let r = match op {
            &Op::Mmap { a, len, prot, flags } => match m.mmap(pid, a.at(base), len, prot, flags) {
                Ok(x) => ret_of(base, x),
                Err(e) => err(e),
            },
            &Op::MmapHint { a, len, prot, flags } => {
                let hint = a.at(base);
                match m.mmap(pid, hint, len, prot, flags) {
                    Ok(x) if x == hint & !(P - 1) => ret_of(base, x),
                    Ok(x) => {
                        m.munmap(pid, x, len).expect("unmap a misplaced hinted mapping");
                        R::Elsewhere
                    }
                    Err(e) => err(e),
                }
            }
            &Op::Munmap { a, len } => m.munmap(pid, a.at(base), len).map_or_else(err, |()| R::Ok),
            &Op::Mprotect { a, len, prot } => m.mprotect(pid, a.at(base), len, prot).map_or_else(err, |()| R::Ok),
            &Op::Load { a } => match cpu.load_u64(a.at(base)) {
                Ok(v) => R::Val(v),
                Err(f) => R::Segv(fault_name(f)),
            },
            &Op::Store { a, val } => match cpu.store_u64(a.at(base), val) {
                Ok(()) => R::Ok,
                Err(f) => R::Segv(fault_name(f)),
            },
            Op::Maps => R::Maps(clip_maps(
                base,
                m.maps(pid)
                    .expect("maps")
                    .into_iter()
                    .map(|l| (l.start, l.end, l.perms_str().to_string())),
            )),
            &Op::Mremap {
                a,
                old_len,
                new_len,
                flags,
                new_a,
                back,
            } => {
                let (a, new_a) = (a.at(base), new_a.at(base));
                match m.mremap(pid, a, old_len, new_len, flags, new_a) {
                    Ok(got) if mremap_elsewhere(a, flags, new_a, got) => {
                        match back {
                            Some(b) => {
                                let len = new_len.next_multiple_of(P);
                                let fixed = vmlab_mm::mm::uapi::MREMAP_MAYMOVE | vmlab_mm::mm::uapi::MREMAP_FIXED;
                                m.mremap(pid, got, len, len, fixed, b.at(base)).expect("move back");
                            }
                            None => m.munmap(pid, got, new_len).expect("unmap a moved mapping"),
                        }
                        R::Elsewhere
                    }
                    Ok(got) => ret_of(base, got),
                    Err(e) => err(e),
                }
            }
            &Op::Madvise { a, len, advice } => m.madvise(pid, a.at(base), len, advice).map_or_else(err, |()| R::Ok),
            &Op::Mincore { a, len } => {
                assert!(
                    len.div_ceil(P) <= MINCORE_MAX_PAGES || len > 1 << 47,
                    "mincore case too long"
                );
                m.mincore(pid, a.at(base), len).map_or_else(err, resident_of)
            }
            &Op::SetStackLimit { cur } => {
                let max = m.stack_rlimit(pid).expect("getrlimit").max;
                m.set_stack_rlimit(pid, vmlab_mm::mm::Rlimit { cur, max })
                    .map_or_else(err, |()| R::Ok)
            }
            &Op::Mlock { a, len } => m.mlock(pid, a.at(base), len).map_or_else(err, |()| R::Ok),
            &Op::Mlock2 { a, len, flags } => m.mlock2(pid, a.at(base), len, flags).map_or_else(err, |()| R::Ok),
            &Op::Munlock { a, len } => m.munlock(pid, a.at(base), len).map_or_else(err, |()| R::Ok),
            &Op::Mlockall { flags } => m.mlockall(pid, flags).map_or_else(err, |()| R::Ok),
            Op::Munlockall => m.munlockall(pid).map_or_else(err, |()| R::Ok),
            &Op::SetMemlockLimit { cur } => {
                let max = m.memlock_rlimit(pid).expect("getrlimit").max;
                m.set_memlock_rlimit(pid, vmlab_mm::mm::Rlimit { cur, max })
                    .map_or_else(err, |()| R::Ok)
            }
            Op::DropIpcLock => R::Ok,
            &Op::Resident { a, pages } => vmlab_resident(m, pid, a.at(base), pages),
            Op::LockedPages => R::Val(m.locked_pages(pid).expect("locked pages")),
            Op::Fork { ops: child_ops } => {
                let child = m.fork(pid).expect("fork");
                if let Err(e) = m.check() {
                    panic!("vmlab check() failed after fork (op {i}): {e}\nops: {all:?}");
                }
                cpu.switch_to(child).expect("switch to the child");
                let rs = run_vmlab_ops(m, cpu, child, child_ops, all);
                cpu.switch_to(pid).expect("switch back to the parent");
                m.exit(child).expect("exit the child");
                R::Child(rs)
            }
        };
        out.push(r);
        if let Err(e) = m.check() {
            panic!("vmlab check() failed after op {i} ({op:?}) of pid {pid}: {e}\nops: {all:?}");
        }
    }
    out
}

/// `Op::Resident` on vmlab: `Machine::mincore` folded into a bit mask
/// (one residency for both ops).
fn vmlab_resident(m: &Machine, pid: Pid, start: u64, pages: u64) -> R {
    match m.mincore(pid, start, pages * P) {
        Ok(v) => R::Val(
            v.iter()
                .enumerate()
                .filter(|(_, &b)| b & 1 != 0)
                .fold(0u64, |b, (i, _)| b | 1 << i),
        ),
        Err(e) => R::Err(e.name().into()),
    }
}

/// Whether this build can run the host oracle (Linux on x86-64: the probes
/// are x86-64 instructions).
pub const HOST_ORACLE: bool = cfg!(all(target_os = "linux", target_arch = "x86_64"));

/// Run each op list on the host kernel in one child process; `None` if the
/// host oracle is not supported on this platform. Panics if the child fails.
pub fn run_host(cases: &[Vec<Op>]) -> Option<Vec<Vec<R>>> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    if !HOST_ORACLE {
        return None;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = Command::new(exe)
        .args(["oracle_child", "--exact", "--test-threads=1", "--nocapture", "--quiet"])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the oracle child");
    let input = serde_json::to_vec(cases).expect("serialize ops");
    if let Some(mut stdin) = child.stdin.take() {
        // A child that dies early closes the pipe; its output says why.
        let _ = stdin.write_all(&input);
    }
    let out = child.wait_with_output().expect("wait for the oracle child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    match stdout.lines().find_map(|l| l.strip_prefix(RESULT_MARK)) {
        Some(json) => Some(serde_json::from_str(json).expect("parse oracle result")),
        None => panic!(
            "oracle child failed ({})\n--- stdout\n{stdout}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Body of the `oracle_child` test: does nothing unless `CHILD_ENV` is set.
pub fn child_main() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    host::main();
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod host {
    use super::*;
    use std::io::Read;
    use std::ptr::null_mut;

    use vmlab_mm::mm::uapi::{BUS_ADRERR, SEGV_ACCERR, SEGV_MAPERR, SEGV_PKUERR};

    /// A result recorded while ops run: plain data, no allocation.
    #[derive(Clone, Copy)]
    enum Raw {
        Ok,
        Ret(u64),
        Elsewhere,
        Err(i32),
        Val(u64),
        Sig(i32, i32),
        Maps(usize, usize),
        MapsFailed(i32),
        /// A moved mapping could not be moved back (errno).
        MoveBackFailed(i32),
        /// A forked child's results: `count` raws from slot `first` of the shared area.
        Fork(usize, usize),
        /// The forked child did not exit with status 0 (wait status).
        ChildDied(i32),
        /// A mincore vector of `n` pages, bit `i` set if byte `i` was non-zero.
        Resident(u64, u32),
    }

    /// Memory shared with forked children, set up before any case runs (so
    /// it never lands in a window): maps text of every snapshot, and the
    /// children's results. Fill counters live in the area too, so what a
    /// child appended is seen by the parent.
    struct Shared {
        base: *mut u8,
    }

    const TEXT_LEN: usize = 32 << 20;
    const RAW_SLOTS: usize = 1 << 16;
    const HDR: usize = 64;

    impl Shared {
        fn new() -> Shared {
            let len = HDR + TEXT_LEN + RAW_SLOTS * std::mem::size_of::<Raw>();
            // SAFETY: a fresh anonymous shared mapping, ours until exit.
            let p = unsafe {
                libc::mmap(
                    null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            assert_ne!(p, libc::MAP_FAILED, "shared area for forked children");
            Shared { base: p.cast() }
        }
        /// Counter `i`: 0 = text bytes used, 1 = raw slots used.
        fn counter(&self, i: usize) -> usize {
            // SAFETY: the header is inside the mapping; a child writes it
            // before the parent reads it (after waitpid).
            unsafe { std::ptr::read_volatile((self.base as *const usize).add(i)) }
        }
        fn set_counter(&self, i: usize, v: usize) {
            // SAFETY: as `counter`.
            unsafe { std::ptr::write_volatile((self.base as *mut usize).add(i), v) }
        }
        /// The text part of the mapping (maps snapshots).
        fn text(&self) -> *mut u8 {
            // SAFETY: `HDR` is inside the mapping.
            unsafe { self.base.add(HDR) }
        }
        fn raws(&self) -> *mut Raw {
            // SAFETY: the raw slots follow the text; `Raw` needs 8-byte alignment.
            unsafe { self.base.add(HDR + TEXT_LEN).cast() }
        }
        fn push_raw(&self, r: Raw) {
            let n = self.counter(1);
            if n < RAW_SLOTS {
                // SAFETY: slot `n` is inside the mapping.
                unsafe { std::ptr::write_volatile(self.raws().add(n), r) };
                self.set_counter(1, n + 1);
            }
        }
        fn raw(&self, i: usize) -> Raw {
            // SAFETY: slot `i` was written by `push_raw`.
            unsafe { std::ptr::read_volatile(self.raws().add(i)) }
        }
    }

    pub fn main() {
        let mut input = String::new();
        std::io::stdin().read_to_string(&mut input).expect("read ops");
        let cases: Vec<Vec<Op>> = serde_json::from_str(&input).expect("parse ops");
        for ops in &cases {
            for op in ops {
                if let Op::Fork { ops } = op {
                    assert!(!forks(ops), "a forked child cannot fork again in the oracle");
                }
            }
        }
        probe::install();
        let shared = Shared::new();
        let results: Vec<Vec<R>> = cases.iter().map(|ops| run_case(ops, &shared)).collect();
        println!("{RESULT_MARK}{}", serde_json::to_string(&results).expect("serialize"));
    }

    fn errno() -> i32 {
        // SAFETY: reads this thread's errno.
        unsafe { *libc::__errno_location() }
    }

    fn run_case(ops: &[Op], shared: &Shared) -> Vec<R> {
        let mut raw: Vec<Raw> = Vec::with_capacity(ops.len());
        // Each case formats its results before the next one starts.
        shared.set_counter(0, 0);
        shared.set_counter(1, 0);
        let total = ((2 * GUARD_PAGES + WINDOW_PAGES) * P) as usize;
        // SAFETY: anonymous PROT_NONE reservation, released at once: we only
        // want to learn a free range.
        let start = unsafe {
            let r = libc::mmap(
                null_mut(),
                total,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            );
            assert_ne!(r, libc::MAP_FAILED, "reserve the oracle window");
            assert_eq!(libc::munmap(r, total), 0);
            r as u64
        };
        let base = start + GUARD_PAGES * P;
        // `SetStackLimit` changes it; the next case starts from the same one.
        let mut stack_limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit into a local.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_STACK, &mut stack_limit) }, 0);
        // `SetMemlockLimit` and `DropIpcLock` change these; restored below.
        let mut memlock_limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit into a local.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut memlock_limit) }, 0);
        let caps = caps::get();
        // From here to the final munmap: no allocation (raw has its capacity).
        for op in ops {
            // SAFETY: every address is in the private window region or is a
            // call documented to fail before touching memory (the case tables
            // never map, unmap or advise absolute addresses successfully).
            let x = unsafe { exec(op, base, shared) };
            raw.push(x);
        }
        // SAFETY: the region is ours; anything the ops left there goes.
        unsafe { libc::munmap(start as *mut _, total) };
        // SAFETY: setrlimit from a local; the old value is always allowed.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_STACK, &stack_limit) }, 0);
        // Memory locks and MCL_FUTURE end with the case; then the limit
        // and the capabilities come back (the permitted set kept them).
        // SAFETY: munlockall and setrlimit/capset from locals.
        unsafe {
            assert_eq!(libc::munlockall(), 0);
            caps::set(&caps);
            assert_eq!(libc::setrlimit(libc::RLIMIT_MEMLOCK, &memlock_limit), 0);
        }
        raw.iter().map(|r| format(*r, base, shared)).collect()
    }

    fn format(r: Raw, base: u64, shared: &Shared) -> R {
        match r {
            Raw::Ok => R::Ok,
            Raw::Ret(p) => ret_of(base, p),
            Raw::Elsewhere => R::Elsewhere,
            Raw::Err(c) => R::Err(errno_name(c)),
            Raw::Val(v) => R::Val(v),
            Raw::Sig(s, c) => R::Segv(match (s, c) {
                (libc::SIGSEGV, SEGV_MAPERR) => "MAPERR".into(),
                (libc::SIGSEGV, SEGV_ACCERR) => "ACCERR".into(),
                (libc::SIGSEGV, SEGV_PKUERR) => "PKUERR".into(),
                (libc::SIGSEGV, c) => format!("SEGV/{c}"),
                (libc::SIGBUS, BUS_ADRERR) => "BUS_ADRERR".into(),
                (s, c) => format!("signal {s}/{c}"),
            }),
            Raw::Maps(off, n) => {
                // SAFETY: `off..off + n` was written by `snapshot`, inside the text part.
                let bytes = unsafe { std::slice::from_raw_parts(shared.text().add(off), n) };
                let text = String::from_utf8_lossy(bytes);
                R::Maps(clip_maps(
                    base,
                    text.lines().filter_map(|l| {
                        let mut f = l.split_whitespace();
                        let (a, b) = f.next()?.split_once('-')?;
                        let perms = f.next()?.to_string();
                        Some((
                            u64::from_str_radix(a, 16).ok()?,
                            u64::from_str_radix(b, 16).ok()?,
                            perms,
                        ))
                    }),
                ))
            }
            Raw::MapsFailed(c) => R::Err(format!("reading /proc/self/maps: {}", errno_name(c))),
            Raw::MoveBackFailed(c) => R::Err(format!("moving the mapping back: {}", errno_name(c))),
            Raw::Fork(first, n) => R::Child(
                (first..first + n)
                    .map(|i| format(shared.raw(i), base, shared))
                    .collect(),
            ),
            Raw::ChildDied(status) => R::Err(format!("forked child died, wait status {status:#x}")),
            Raw::Resident(bits, n) => resident_of((0..n).map(|i| (bits >> i) as u8 & 1)),
        }
    }

    /// Run one op with raw syscalls; no allocation (a forked child runs this).
    ///
    /// # Safety
    /// Addresses must be in the window region or make the call fail.
    unsafe fn exec(op: &Op, base: u64, shared: &Shared) -> Raw {
        // SAFETY: see the function's contract.
        unsafe {
            match *op {
                Op::Mmap { a, len, prot, flags } => {
                    let p = libc::mmap(a.at(base) as *mut _, len as usize, prot as i32, flags as i32, -1, 0);
                    if p == libc::MAP_FAILED {
                        Raw::Err(errno())
                    } else {
                        Raw::Ret(p as u64)
                    }
                }
                Op::MmapHint { a, len, prot, flags } => {
                    let hint = a.at(base);
                    let p = libc::mmap(hint as *mut _, len as usize, prot as i32, flags as i32, -1, 0);
                    if p == libc::MAP_FAILED {
                        Raw::Err(errno())
                    } else if p as u64 == hint & !(P - 1) {
                        Raw::Ret(p as u64)
                    } else {
                        libc::munmap(p, len as usize);
                        Raw::Elsewhere
                    }
                }
                Op::Munmap { a, len } => {
                    if libc::munmap(a.at(base) as *mut _, len as usize) == 0 {
                        Raw::Ok
                    } else {
                        Raw::Err(errno())
                    }
                }
                Op::Mprotect { a, len, prot } => {
                    if libc::mprotect(a.at(base) as *mut _, len as usize, prot as i32) == 0 {
                        Raw::Ok
                    } else {
                        Raw::Err(errno())
                    }
                }
                Op::Load { a } => match probe::load(a.at(base)) {
                    Ok(v) => Raw::Val(v),
                    Err((s, c)) => Raw::Sig(s, c),
                },
                Op::Store { a, val } => match probe::store(a.at(base), val) {
                    Ok(()) => Raw::Ok,
                    Err((s, c)) => Raw::Sig(s, c),
                },
                Op::Maps => snapshot(shared),
                Op::Mremap {
                    a,
                    old_len,
                    new_len,
                    flags,
                    new_a,
                    back,
                } => {
                    let (a, new_a) = (a.at(base), new_a.at(base));
                    // The raw syscall: glibc's wrapper passes new_address
                    // only with MREMAP_FIXED, losing a DONTUNMAP hint.
                    let got = libc::syscall(libc::SYS_mremap, a, old_len, new_len, flags as u64, new_a);
                    if got == -1 {
                        return Raw::Err(errno());
                    }
                    let got = got as u64;
                    if !mremap_elsewhere(a, flags, new_a, got) {
                        return Raw::Ret(got);
                    }
                    let r = match back {
                        Some(b) => {
                            let len = new_len.next_multiple_of(P);
                            let fixed = (libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED) as u64;
                            libc::syscall(libc::SYS_mremap, got, len, len, fixed, b.at(base))
                        }
                        None => libc::munmap(got as *mut _, new_len as usize) as i64,
                    };
                    if r == -1 {
                        Raw::MoveBackFailed(errno())
                    } else {
                        Raw::Elsewhere
                    }
                }
                Op::Madvise { a, len, advice } => {
                    if libc::madvise(a.at(base) as *mut _, len as usize, advice as i32) == 0 {
                        Raw::Ok
                    } else {
                        Raw::Err(errno())
                    }
                }
                Op::Mincore { a, len } => {
                    // A length the table uses only for argument checks may
                    // be huge; the call fails before writing the vector then.
                    let mut vec = [0u8; MINCORE_MAX_PAGES as usize];
                    let pages = len.div_ceil(P);
                    if pages > MINCORE_MAX_PAGES && len <= 1 << 47 {
                        return Raw::Err(libc::E2BIG);
                    }
                    if libc::mincore(a.at(base) as *mut _, len as usize, vec.as_mut_ptr()) != 0 {
                        return Raw::Err(errno());
                    }
                    let bits = vec[..pages as usize]
                        .iter()
                        .enumerate()
                        .fold(0u64, |m, (i, &b)| m | (u64::from(b != 0) << i));
                    Raw::Resident(bits, pages as u32)
                }
                Op::SetStackLimit { cur } => {
                    let mut rl = libc::rlimit {
                        rlim_cur: 0,
                        rlim_max: 0,
                    };
                    if libc::getrlimit(libc::RLIMIT_STACK, &mut rl) != 0 {
                        return Raw::Err(errno());
                    }
                    rl.rlim_cur = cur;
                    if libc::setrlimit(libc::RLIMIT_STACK, &rl) == 0 {
                        Raw::Ok
                    } else {
                        Raw::Err(errno())
                    }
                }
                Op::Mlock { a, len } => ok_or_errno(libc::mlock(a.at(base) as *const _, len as usize)),
                Op::Mlock2 { a, len, flags } => {
                    ok_or_errno(libc::syscall(libc::SYS_mlock2, a.at(base), len, flags as u64) as i32)
                }
                Op::Munlock { a, len } => ok_or_errno(libc::munlock(a.at(base) as *const _, len as usize)),
                Op::Mlockall { flags } => ok_or_errno(libc::mlockall(flags as i32)),
                Op::Munlockall => ok_or_errno(libc::munlockall()),
                Op::SetMemlockLimit { cur } => {
                    let mut rl = libc::rlimit {
                        rlim_cur: 0,
                        rlim_max: 0,
                    };
                    if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut rl) != 0 {
                        return Raw::Err(errno());
                    }
                    rl.rlim_cur = cur;
                    ok_or_errno(libc::setrlimit(libc::RLIMIT_MEMLOCK, &rl))
                }
                Op::DropIpcLock => {
                    let mut c = caps::get();
                    c[0].effective &= !(1 << caps::CAP_IPC_LOCK);
                    caps::set(&c);
                    Raw::Ok
                }
                Op::Resident { a, pages } => {
                    let mut vec = [0u8; 64];
                    let n = (pages as usize).min(vec.len());
                    if libc::mincore(a.at(base) as *mut _, n * P as usize, vec.as_mut_ptr()) != 0 {
                        return Raw::Err(errno());
                    }
                    let bits = (0..n).filter(|&i| vec[i] & 1 != 0).fold(0u64, |b, i| b | 1 << i);
                    Raw::Val(bits)
                }
                Op::LockedPages => vm_lck(),
                Op::Fork { ref ops } => {
                    let first = shared.counter(1);
                    let pid = libc::fork();
                    if pid == 0 {
                        // The child: raw syscalls only, results into the shared area.
                        for o in ops {
                            let r = exec(o, base, shared);
                            shared.push_raw(r);
                        }
                        libc::_exit(0);
                    }
                    if pid < 0 {
                        return Raw::Err(errno());
                    }
                    let mut status = 0;
                    libc::waitpid(pid, &mut status, 0);
                    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
                        return Raw::ChildDied(status);
                    }
                    Raw::Fork(first, shared.counter(1) - first)
                }
            }
        }
    }

    /// `VmLck` of /proc/self/status, in pages, read with raw syscalls
    /// into a stack buffer (no allocation).
    fn vm_lck() -> Raw {
        let mut buf = [0u8; 8192];
        // SAFETY: plain file syscalls into a local buffer.
        let n = unsafe {
            let fd = libc::open(c"/proc/self/status".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Raw::Err(errno());
            }
            let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
            libc::close(fd);
            n
        };
        if n <= 0 {
            return Raw::Err(errno());
        }
        let text = &buf[..n as usize];
        let key = b"VmLck:";
        let Some(at) = text.windows(key.len()).position(|w| w == key) else {
            return Raw::Err(libc::ENOENT);
        };
        let kb = text[at + key.len()..]
            .iter()
            .skip_while(|b| b.is_ascii_whitespace())
            .take_while(|b| b.is_ascii_digit())
            .fold(0u64, |v, &d| v * 10 + u64::from(d - b'0'));
        Raw::Val(kb / 4)
    }

    fn ok_or_errno(r: i32) -> Raw {
        if r == 0 {
            Raw::Ok
        } else {
            Raw::Err(errno())
        }
    }

    /// The helper's capabilities through the raw capget/capset syscalls
    /// (no allocation; `_LINUX_CAPABILITY_VERSION_3`, two 32-bit words).
    mod caps {
        pub const CAP_IPC_LOCK: u32 = 14;
        const VERSION_3: u32 = 0x2008_0522;

        #[repr(C)]
        struct Header {
            version: u32,
            pid: i32,
        }

        #[repr(C)]
        #[derive(Clone, Copy, Default)]
        pub struct Data {
            pub effective: u32,
            pub permitted: u32,
            pub inheritable: u32,
        }

        pub fn get() -> [Data; 2] {
            let mut h = Header {
                version: VERSION_3,
                pid: 0,
            };
            let mut d = [Data::default(); 2];
            // SAFETY: capget into locals of the layout the kernel expects.
            let r = unsafe { libc::syscall(libc::SYS_capget, &mut h as *mut Header, d.as_mut_ptr()) };
            assert_eq!(r, 0, "capget");
            d
        }

        pub fn set(d: &[Data; 2]) {
            let mut h = Header {
                version: VERSION_3,
                pid: 0,
            };
            // SAFETY: capset from locals of the layout the kernel expects.
            let r = unsafe { libc::syscall(libc::SYS_capset, &mut h as *mut Header, d.as_ptr()) };
            assert_eq!(r, 0, "capset");
        }
    }

    /// Append `/proc/self/maps` to the shared text with raw syscalls.
    fn snapshot(shared: &Shared) -> Raw {
        // SAFETY: the text part of the shared mapping; only this process
        // writes it while the snapshot is taken.
        let buf = unsafe { std::slice::from_raw_parts_mut(shared.text(), TEXT_LEN) };
        let mut used = shared.counter(0);
        // SAFETY: plain file syscalls into our own buffer.
        unsafe {
            let fd = libc::open(c"/proc/self/maps".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Raw::MapsFailed(errno());
            }
            let start = used;
            loop {
                if used == buf.len() {
                    libc::close(fd);
                    return Raw::MapsFailed(libc::ENOSPC);
                }
                let n = libc::read(fd, buf[used..].as_mut_ptr().cast(), buf.len() - used);
                if n < 0 {
                    let e = errno();
                    libc::close(fd);
                    return Raw::MapsFailed(e);
                }
                if n == 0 {
                    break;
                }
                used += n as usize;
            }
            libc::close(fd);
            shared.set_counter(0, used);
            Raw::Maps(start, used - start)
        }
    }

    /// Loads and stores that report a fault instead of dying: each is one
    /// `mov` of known encoding with the fault flag in rdx; the signal handler
    /// recognises the instruction at the faulting rip, records signal and
    /// `si_code`, sets rdx = 1 and resumes after the instruction.
    mod probe {
        use std::sync::atomic::{AtomicBool, AtomicI32, Ordering::SeqCst};

        static PROBING: AtomicBool = AtomicBool::new(false);
        static SIG: AtomicI32 = AtomicI32::new(0);
        static CODE: AtomicI32 = AtomicI32::new(0);
        /// `mov rax, qword ptr [rdi]`
        const LOAD: [u8; 3] = [0x48, 0x8b, 0x07];
        /// `mov qword ptr [rdi], rsi`
        const STORE: [u8; 3] = [0x48, 0x89, 0x37];

        extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
            // SAFETY: the kernel passes a valid siginfo and ucontext; rip
            // points at the faulting instruction, which is readable code.
            unsafe {
                let uc = &mut *(ctx as *mut libc::ucontext_t);
                let rip = uc.uc_mcontext.gregs[libc::REG_RIP as usize] as *const u8;
                let ours = PROBING.load(SeqCst) && {
                    let b = std::slice::from_raw_parts(rip, 3);
                    b == LOAD || b == STORE
                };
                if !ours {
                    // A real crash: restore the default action; returning
                    // re-executes the instruction, which then kills us.
                    libc::signal(sig, libc::SIG_DFL);
                    return;
                }
                SIG.store(sig, SeqCst);
                CODE.store((*info).si_code, SeqCst);
                uc.uc_mcontext.gregs[libc::REG_RIP as usize] += 3;
                uc.uc_mcontext.gregs[libc::REG_RDX as usize] = 1;
            }
        }

        pub fn install() {
            // SAFETY: installs a handler for this (child) process only.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction =
                    handler as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) as usize;
                sa.sa_flags = libc::SA_SIGINFO;
                libc::sigemptyset(&mut sa.sa_mask);
                for s in [libc::SIGSEGV, libc::SIGBUS] {
                    assert_eq!(libc::sigaction(s, &sa, std::ptr::null_mut()), 0);
                }
            }
        }

        /// # Safety
        /// `addr` must not alias Rust-owned memory.
        pub unsafe fn load(addr: u64) -> Result<u64, (i32, i32)> {
            let val: u64;
            let faulted: u64;
            PROBING.store(true, SeqCst);
            // SAFETY: a faulting load is caught by the handler above.
            unsafe {
                core::arch::asm!(
                    "xor edx, edx",
                    ".byte 0x48, 0x8b, 0x07",
                    in("rdi") addr,
                    out("rax") val,
                    out("rdx") faulted,
                    options(nostack),
                );
            }
            PROBING.store(false, SeqCst);
            if faulted != 0 {
                Err((SIG.load(SeqCst), CODE.load(SeqCst)))
            } else {
                Ok(val)
            }
        }

        /// # Safety
        /// `addr` must not alias Rust-owned memory.
        pub unsafe fn store(addr: u64, val: u64) -> Result<(), (i32, i32)> {
            let faulted: u64;
            PROBING.store(true, SeqCst);
            // SAFETY: a faulting store is caught by the handler above.
            unsafe {
                core::arch::asm!(
                    "xor edx, edx",
                    ".byte 0x48, 0x89, 0x37",
                    in("rdi") addr,
                    in("rsi") val,
                    out("rdx") faulted,
                    options(nostack),
                );
            }
            PROBING.store(false, SeqCst);
            if faulted != 0 {
                Err((SIG.load(SeqCst), CODE.load(SeqCst)))
            } else {
                Ok(())
            }
        }
    }
}
