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
//! sides, so the windows stay comparable).

use serde::{Deserialize, Serialize};
use vmlab_mm::errno::{Errno, Fault, FaultReason, Signal};
use vmlab_mm::system::{ByteSize, Machine, MachineConfig};

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
        (Signal::Segv, FaultReason::NotMapped) => "MAPERR".into(),
        (Signal::Segv, FaultReason::Protection) => "ACCERR".into(),
        (s, r) => format!("{s:?}/{r:?}"),
    }
}

/// The machine the vmlab side runs on.
pub fn vmlab_config() -> MachineConfig {
    MachineConfig {
        ram: ByteSize(64 << 20),
        ..Default::default()
    }
}

/// Run `ops` on a fresh vmlab process; `check()` after every op; at the end
/// the process exits and every frame must be free again.
pub fn run_vmlab(ops: &[Op]) -> Vec<R> {
    let m = Machine::new(&vmlab_config()).expect("machine");
    let pid = m.spawn().expect("spawn");
    let base = VMLAB_BASE;
    let mut out = Vec::with_capacity(ops.len());
    {
        let mut cpu = m.cpu(0).expect("cpu 0");
        cpu.switch_to(pid).expect("switch_to");
        for (i, op) in ops.iter().enumerate() {
            let r = match *op {
                Op::Mmap { a, len, prot, flags } => match m.mmap(pid, a.at(base), len, prot, flags) {
                    Ok(x) => ret_of(base, x),
                    Err(e) => R::Err(e.name().into()),
                },
                Op::MmapHint { a, len, prot, flags } => {
                    let hint = a.at(base);
                    match m.mmap(pid, hint, len, prot, flags) {
                        Ok(x) if x == hint & !(P - 1) => ret_of(base, x),
                        Ok(x) => {
                            m.munmap(pid, x, len).expect("unmap a misplaced hinted mapping");
                            R::Elsewhere
                        }
                        Err(e) => R::Err(e.name().into()),
                    }
                }
                Op::Munmap { a, len } => match m.munmap(pid, a.at(base), len) {
                    Ok(()) => R::Ok,
                    Err(e) => R::Err(e.name().into()),
                },
                Op::Mprotect { a, len, prot } => match m.mprotect(pid, a.at(base), len, prot) {
                    Ok(()) => R::Ok,
                    Err(e) => R::Err(e.name().into()),
                },
                Op::Load { a } => match cpu.load_u64(a.at(base)) {
                    Ok(v) => R::Val(v),
                    Err(f) => R::Segv(fault_name(f)),
                },
                Op::Store { a, val } => match cpu.store_u64(a.at(base), val) {
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
            };
            out.push(r);
            if let Err(e) = m.check() {
                panic!("vmlab check() failed after op {i} ({op:?}): {e}\nops: {ops:?}");
            }
        }
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

    /// `si_code` values of SIGSEGV (include/uapi/asm-generic/siginfo.h).
    const SEGV_MAPERR: i32 = 1;
    const SEGV_ACCERR: i32 = 2;

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
    }

    pub fn main() {
        let mut input = String::new();
        std::io::stdin().read_to_string(&mut input).expect("read ops");
        let cases: Vec<Vec<Op>> = serde_json::from_str(&input).expect("parse ops");
        probe::install();
        let mut buf = vec![0u8; 16 << 20];
        let results: Vec<Vec<R>> = cases.iter().map(|ops| run_case(ops, &mut buf)).collect();
        println!("{RESULT_MARK}{}", serde_json::to_string(&results).expect("serialize"));
    }

    fn errno() -> i32 {
        // SAFETY: reads this thread's errno.
        unsafe { *libc::__errno_location() }
    }

    fn run_case(ops: &[Op], buf: &mut [u8]) -> Vec<R> {
        let mut raw: Vec<Raw> = Vec::with_capacity(ops.len());
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
        let mut used = 0usize;
        // From here to the final munmap: no allocation (raw has its capacity).
        for op in ops {
            // SAFETY: every address is in the private window region or is a
            // call documented to fail before touching memory (the case tables
            // never map or unmap absolute addresses successfully).
            let x = unsafe {
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
                            assert_eq!(libc::munmap(p, len as usize), 0);
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
                    Op::Maps => snapshot(buf, &mut used),
                }
            };
            raw.push(x);
        }
        // SAFETY: the region is ours; anything the ops left there goes.
        unsafe { libc::munmap(start as *mut _, total) };
        raw.iter()
            .map(|r| match *r {
                Raw::Ok => R::Ok,
                Raw::Ret(p) => ret_of(base, p),
                Raw::Elsewhere => R::Elsewhere,
                Raw::Err(c) => R::Err(errno_name(c)),
                Raw::Val(v) => R::Val(v),
                Raw::Sig(s, c) => R::Segv(match (s, c) {
                    (libc::SIGSEGV, SEGV_MAPERR) => "MAPERR".into(),
                    (libc::SIGSEGV, SEGV_ACCERR) => "ACCERR".into(),
                    (libc::SIGSEGV, c) => format!("SEGV/{c}"),
                    (s, c) => format!("signal {s}/{c}"),
                }),
                Raw::Maps(off, n) => {
                    let text = String::from_utf8_lossy(&buf[off..off + n]);
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
            })
            .collect()
    }

    /// Append `/proc/self/maps` to `buf` with raw syscalls.
    fn snapshot(buf: &mut [u8], used: &mut usize) -> Raw {
        // SAFETY: plain file syscalls into our own buffer.
        unsafe {
            let fd = libc::open(c"/proc/self/maps".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Raw::MapsFailed(errno());
            }
            let start = *used;
            loop {
                if *used == buf.len() {
                    libc::close(fd);
                    return Raw::MapsFailed(libc::ENOSPC);
                }
                let n = libc::read(fd, buf[*used..].as_mut_ptr().cast(), buf.len() - *used);
                if n < 0 {
                    let e = errno();
                    libc::close(fd);
                    return Raw::MapsFailed(e);
                }
                if n == 0 {
                    break;
                }
                *used += n as usize;
            }
            libc::close(fd);
            Raw::Maps(start, *used - start)
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
