//! The recorder: runs generated sequences on the HOST kernel and writes
//! what it answered, in the record format.
//!
//! The calls run in a helper process, never in the process that asks for
//! the recording: [`Recorder`] spawns an executable (the `vmlab` binary, in
//! its hidden [`CHILD_ARG`] mode, whose `main` calls [`child_main`]) with
//! `std::process::Command` (fork + exec: nothing is ever `fork()`ed and left
//! running inside a multi-threaded process). It writes one [`Plan`] per line
//! to the child's stdin and reads one recorded line back from its stdout. A
//! child that dies on a sequence yields an `{"seed", "seq", "error"}` line and
//! is spawned afresh for the next one.
//!
//! The child, for each plan:
//! 1. allocates everything it will need (result slots, a buffer for
//!    `/proc/self/maps`, a page buffer) *before* it touches the window, so
//!    no malloc-driven mmap lands near the window while calls run;
//! 2. finds free address space: mmap(NULL, (4096 + W + 4096) pages,
//!    PROT_NONE), munmap it, and takes `base` 4096 pages in, so at least
//!    4096 free pages lie on each side of the window;
//! 3. makes the calls with raw libc calls (mremap through `syscall`, so all
//!    five arguments reach the kernel). An mmap/mremap whose result lies
//!    outside the slack area [-128, W+128) is unmapped at once (`"outside"`,
//!    `outside_munmap`). A load or store is one `mov` of known encoding; a
//!    SIGSEGV/SIGBUS handler that recognises it records the signal and
//!    resumes after it (no longjmp, no unwinding through a signal frame);
//! 4. snapshots `/proc/self/maps` with raw syscalls, reads every window page
//!    the same way (a probed load of its first byte, then the page), and
//!    unmaps the whole reserved region;
//! 5. formats the line (only now may it allocate again).
//!
//! Only Linux on x86-64 can record (the probes are x86-64 instructions).

use super::format::{
    addr_of, page_offset_in_slack, perms_at, window_views, ErrorLine, Line, MapLine, PageEntry, Res, Sequence,
    DEFAULT_W, PAGE_SIZE,
};
use super::gen::{plan, OpMix, Plan};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// The hidden argument that runs the `vmlab` executable as the recorder child.
pub const CHILD_ARG: &str = "__oracle-child";

/// Whether this build can record on its host.
pub const HOST_ORACLE: bool = cfg!(all(target_os = "linux", target_arch = "x86_64"));

/// Free pages the child keeps on each side of the window.
pub const GUARD_PAGES: i64 = 4096;

/// How far from the window a plan's addresses and lengths may reach, in
/// pages: well inside the guard, so that nothing a call does can touch the
/// child's own memory. The child refuses plans that reach further.
pub const REACH: i64 = 1024;

/// The largest window the child accepts.
pub const MAX_CHILD_W: i64 = 1 << 16;

/// Checks the child makes before running a plan.
pub fn check_plan(p: &Plan) -> Result<(), String> {
    if !(1..=MAX_CHILD_W).contains(&p.w) {
        return Err(format!("W {} out of range 1..={MAX_CHILD_W}", p.w));
    }
    let near = |pg: i64| (-REACH..p.w + REACH).contains(&pg);
    let short = |len: u64| len <= REACH as u64 * PAGE_SIZE;
    for (k, op) in p.ops.iter().enumerate() {
        use super::format::Call::*;
        op.call.validate().map_err(|e| format!("op {k}: {e}"))?;
        let ok = match &op.call {
            Mmap { addr_pg, len_b, .. }
            | Munmap { addr_pg, len_b, .. }
            | Mprotect { addr_pg, len_b, .. }
            | Madvise { addr_pg, len_b, .. } => near(*addr_pg) && short(*len_b),
            Mremap {
                addr_pg,
                old_len_b,
                new_len_b,
                new_addr_pg,
                ..
            } => near(*addr_pg) && short(*old_len_b) && short(*new_len_b) && new_addr_pg.is_none_or(near),
            Store { pg, .. } | Load { pg, .. } => near(*pg),
        };
        if !ok {
            return Err(format!("op {k} reaches further than {REACH} pages from the window"));
        }
    }
    Ok(())
}

struct Running {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// The parent's side: spawns the child and exchanges lines with it.
pub struct Recorder {
    exe: PathBuf,
    running: Option<Running>,
}

impl Recorder {
    /// A recorder that will run `exe CHILD_ARG` (started at the first plan).
    pub fn new(exe: impl Into<PathBuf>) -> Recorder {
        Recorder {
            exe: exe.into(),
            running: None,
        }
    }

    fn spawn(&mut self) -> io::Result<&mut Running> {
        if self.running.is_none() {
            let mut child = Command::new(&self.exe)
                .arg(CHILD_ARG)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|e| io::Error::new(e.kind(), format!("cannot start {}: {e}", self.exe.display())))?;
            let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::other("the recorder child has no pipes"));
            };
            self.running = Some(Running {
                child,
                stdin,
                stdout: BufReader::new(stdout),
            });
        }
        Ok(self.running.as_mut().expect("just spawned"))
    }

    /// End the child (after a failure): it may be wedged, so kill it.
    fn stop(&mut self) -> String {
        match self.running.take() {
            Some(mut r) => {
                drop(r.stdin);
                let _ = r.child.kill();
                match r.child.wait() {
                    Ok(st) => st.to_string(),
                    Err(e) => format!("wait failed: {e}"),
                }
            }
            None => "not running".into(),
        }
    }

    /// Record one plan. A child that dies or answers nonsense gives an
    /// error line (and a fresh child next time); only failing to start
    /// the child at all is an `Err`.
    pub fn record(&mut self, plan: &Plan) -> io::Result<Line> {
        let request = serde_json::to_string(plan).map_err(io::Error::other)?;
        let r = self.spawn()?;
        let mut answer = String::new();
        let sent = writeln!(r.stdin, "{request}").and_then(|()| r.stdin.flush());
        let got = sent.and_then(|()| r.stdout.read_line(&mut answer));
        let error = |msg: String| {
            Line::Error(ErrorLine {
                seed: plan.seed,
                seq: plan.seq,
                error: msg,
            })
        };
        let fail = match got {
            Ok(0) | Err(_) => {
                let status = self.stop();
                return Ok(error(format!("the recorder child died on this sequence ({status})")));
            }
            Ok(_) => match super::format::parse_line(answer.trim_end()) {
                Ok(line) => {
                    let (seed, seq) = match &line {
                        Line::Seq(s) => (s.seed, s.seq),
                        Line::Error(e) => (e.seed, e.seq),
                    };
                    if (seed, seq) == (plan.seed, plan.seq) {
                        return Ok(line);
                    }
                    format!("the recorder child answered sequence {seq} of seed {seed}")
                }
                Err(e) => format!("the recorder child's answer does not parse: {e}"),
            },
        };
        self.stop();
        Ok(error(fail))
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(mut r) = self.running.take() {
            // Closing stdin ends the child's loop.
            drop(r.stdin);
            let _ = r.child.wait();
        }
    }
}

/// What a recording produced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordSummary {
    pub sequences: u64,
    /// Lines written as `{"error": ...}`.
    pub errors: u64,
}

/// Record sequences `first .. first + sequences` of `seed`, `ops` calls each,
/// on the host through `exe`'s child mode; one line per sequence to `out`.
pub fn record(
    exe: &Path,
    seed: u64,
    first: u64,
    sequences: u64,
    ops: usize,
    mix: &OpMix,
    out: &mut dyn Write,
) -> io::Result<RecordSummary> {
    let mut rec = Recorder::new(exe);
    let mut sum = RecordSummary::default();
    for seq in first..first.saturating_add(sequences) {
        let line = rec.record(&plan(seed, seq, DEFAULT_W, ops, mix))?;
        if let Line::Error(e) = &line {
            sum.errors += 1;
            eprintln!("vmlab oracle record: sequence {seq}: {}", e.error);
        }
        writeln!(out, "{}", line.to_json())?;
        sum.sequences += 1;
    }
    out.flush()?;
    Ok(sum)
}

/// A result recorded while the window is live: plain data, no allocation.
#[derive(Clone, Copy, Debug)]
enum Raw {
    /// munmap/mprotect/madvise succeeded.
    Zero,
    /// An errno value.
    Errno(i32),
    /// mmap/mremap placed the mapping at this page offset (in the slack area).
    At(i64),
    /// mmap/mremap placed it outside; the munmap that followed returned this
    /// (0 or an errno value).
    Outside(i32),
    Byte(u8),
    Stored,
    /// SIGSEGV or SIGBUS.
    Sig(i32),
}

/// A window page, read after the calls.
#[derive(Clone, Copy, Debug)]
enum PageRaw {
    Sum(u8, u64),
    Sig(i32),
}

fn errno_res(code: i32) -> Res {
    match crate::mm::errno::Errno::from_code(code) {
        Some(e) => Res::errno(e.name()),
        None => Res::errno(&errno_name(code)),
    }
}

/// Names of errno values vmlab's `Errno` lacks (x86-64 numbers).
fn errno_name(code: i32) -> String {
    let known = [
        (4, "EINTR"),
        (6, "ENXIO"),
        (7, "E2BIG"),
        (8, "ENOEXEC"),
        (10, "ECHILD"),
        (15, "ENOTBLK"),
        (18, "EXDEV"),
        (20, "ENOTDIR"),
        (21, "EISDIR"),
        (23, "ENFILE"),
        (24, "EMFILE"),
        (25, "ENOTTY"),
        (26, "ETXTBSY"),
        (29, "ESPIPE"),
        (30, "EROFS"),
        (31, "EMLINK"),
        (32, "EPIPE"),
        (33, "EDOM"),
        (34, "ERANGE"),
        (35, "EDEADLK"),
        (36, "ENAMETOOLONG"),
        (37, "ENOLCK"),
        (39, "ENOTEMPTY"),
        (40, "ELOOP"),
        (61, "ENODATA"),
        (62, "ETIME"),
        (110, "ETIMEDOUT"),
        (133, "EHWPOISON"),
    ];
    known
        .iter()
        .find(|&&(c, _)| c == code)
        .map_or_else(|| format!("E{code}"), |&(_, n)| n.to_string())
}

fn sig_name(sig: i32) -> &'static str {
    if sig == 7 {
        "BUS"
    } else {
        "SEGV"
    }
}

/// Turn what the child saw into a sequence line (after the window is gone).
fn assemble(plan: &Plan, raw: &[Raw], maps: &[MapLine], pages: &[PageRaw]) -> Sequence {
    let ops = plan
        .ops
        .iter()
        .zip(raw)
        .map(|(p, r)| {
            let (res, om) = match *r {
                Raw::Zero => (Res::Int(0), None),
                Raw::Errno(c) => (errno_res(c), None),
                Raw::At(pg) => (Res::Int(pg), None),
                Raw::Outside(c) => (Res::outside(), Some(if c == 0 { Res::Int(0) } else { errno_res(c) })),
                Raw::Byte(b) => (Res::Int(b as i64), None),
                Raw::Stored => (Res::text("ok"), None),
                Raw::Sig(s) => (Res::text(sig_name(s)), None),
            };
            super::format::Op {
                i: p.i,
                call: p.call.clone(),
                res,
                prov: p.prov.clone(),
                outside_munmap: om,
            }
        })
        .collect();
    let (win, ext) = window_views(maps, plan.w);
    let pages = pages
        .iter()
        .enumerate()
        .filter_map(|(pg, r)| {
            let pg = pg as i64;
            match *r {
                PageRaw::Sum(first, h) => Some(PageEntry::Sum(pg, first, super::format::fnv_hex(h))),
                PageRaw::Sig(s) => perms_at(&win, pg)
                    .is_some_and(|p| p.starts_with('r'))
                    .then(|| PageEntry::Fault(pg, sig_name(s).to_string())),
            }
        })
        .collect();
    Sequence {
        seed: plan.seed,
        seq: plan.seq,
        w: plan.w,
        page_size: PAGE_SIZE,
        ops,
        maps: win,
        maps_ext: ext,
        pages,
        host: Some(crate::host::HostFacts::get().clone()),
    }
}

/// `/proc/self/maps` text → lines in pages relative to `base`.
fn parse_maps(text: &str, base: u64) -> Vec<MapLine> {
    let rel = |x: u64| ((x as i128 - base as i128) / PAGE_SIZE as i128) as i64;
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (a, b) = f.next()?.split_once('-')?;
            let perms = f.next()?.to_string();
            Some((
                rel(u64::from_str_radix(a, 16).ok()?),
                rel(u64::from_str_radix(b, 16).ok()?),
                perms,
            ))
        })
        .collect()
}

/// The child's `main`: answer plans read on stdin until it closes. Exit
/// status 0 at end of input, 2 for a line that is not a plan, 1 if output fails.
pub fn child_main() -> i32 {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        imp::main()
    }
    #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
    {
        eprintln!("vmlab {CHILD_ARG}: recording needs Linux on x86-64");
        2
    }
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod imp {
    use super::*;
    use crate::oracle::format::{page_hash, Call};
    use std::ptr::null_mut;

    const P: u64 = PAGE_SIZE;
    /// Room for `/proc/self/maps` (a small process has a few KiB).
    const MAPS_BUF: usize = 1 << 20;

    struct Scratch {
        raw: Vec<Raw>,
        pages: Vec<PageRaw>,
        maps: Vec<u8>,
        page: Vec<u8>,
    }

    pub fn main() -> i32 {
        probe::install();
        let mut sc = Scratch {
            raw: Vec::new(),
            pages: Vec::new(),
            maps: vec![0u8; MAPS_BUF],
            page: vec![0u8; P as usize],
        };
        let stdin = io::stdin();
        let mut stdout = io::stdout().lock();
        for line in stdin.lock().lines() {
            let Ok(line) = line else {
                eprintln!("vmlab {CHILD_ARG}: reading stdin failed");
                return 1;
            };
            if line.trim().is_empty() {
                continue;
            }
            let plan: Plan = match serde_json::from_str(&line) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("vmlab {CHILD_ARG}: not a plan: {e}");
                    return 2;
                }
            };
            let out = match run_plan(&plan, &mut sc) {
                Ok(s) => Line::Seq(s),
                Err(error) => Line::Error(ErrorLine {
                    seed: plan.seed,
                    seq: plan.seq,
                    error,
                }),
            };
            if writeln!(stdout, "{}", out.to_json())
                .and_then(|()| stdout.flush())
                .is_err()
            {
                return 1;
            }
        }
        0
    }

    fn errno() -> i32 {
        io::Error::last_os_error().raw_os_error().unwrap_or(0)
    }

    fn run_plan(plan: &Plan, sc: &mut Scratch) -> Result<Sequence, String> {
        check_plan(plan)?;
        let w = plan.w;
        // Everything allocated before the window exists.
        sc.raw.clear();
        sc.raw.reserve(plan.ops.len());
        sc.pages.clear();
        sc.pages.reserve(w as usize);
        let total = ((2 * GUARD_PAGES + w) as u64 * P) as usize;
        // SAFETY: an anonymous PROT_NONE reservation, released at once: we
        // only want to learn a free range.
        let start = unsafe {
            let r = libc::mmap(
                null_mut(),
                total,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            );
            if r == libc::MAP_FAILED {
                return Err(format!("cannot reserve the window: errno {}", errno()));
            }
            libc::munmap(r, total);
            r as u64
        };
        let base = start + GUARD_PAGES as u64 * P;
        for op in &plan.ops {
            // SAFETY: `check_plan` keeps every address and length within
            // REACH pages of the window, inside the free region found above.
            let r = unsafe { exec(&op.call, base, w) };
            sc.raw.push(r);
        }
        let maps = read_maps(&mut sc.maps);
        for pg in 0..w {
            let a = addr_of(base, pg, 0);
            // SAFETY: window pages are ours; a fault is caught by the probe.
            let r = unsafe {
                match probe::load(a) {
                    Err(sig) => PageRaw::Sig(sig),
                    Ok(first) => {
                        // The page's protection is page-wide: its first byte
                        // read, so does the rest.
                        for (k, chunk) in sc.page.chunks_exact_mut(8).enumerate() {
                            let v = std::ptr::read_volatile((a as *const u64).add(k));
                            chunk.copy_from_slice(&v.to_le_bytes());
                        }
                        PageRaw::Sum(first, page_hash(&sc.page))
                    }
                }
            };
            sc.pages.push(r);
        }
        // SAFETY: the region is ours; anything the calls left there goes.
        unsafe { libc::munmap(start as *mut _, total) };
        let n = maps.map_err(|e| format!("reading /proc/self/maps failed: errno {e}"))?;
        let lines = parse_maps(&String::from_utf8_lossy(&sc.maps[..n]), base);
        Ok(assemble(plan, &sc.raw, &lines, &sc.pages))
    }

    /// Where a mmap/mremap result lands: in the slack area, or outside
    /// (then unmapped at once).
    ///
    /// # Safety
    /// `addr..addr+len` must be a mapping the kernel just made for us.
    unsafe fn placed(addr: u64, len: u64, base: u64, w: i64) -> Raw {
        match page_offset_in_slack(addr, base, w) {
            Some(pg) => Raw::At(pg),
            None => {
                // SAFETY: see above.
                let r = unsafe { libc::munmap(addr as *mut _, len as usize) };
                Raw::Outside(if r == 0 { 0 } else { errno() })
            }
        }
    }

    fn rc(r: libc::c_int) -> Raw {
        if r == 0 {
            Raw::Zero
        } else {
            Raw::Errno(errno())
        }
    }

    /// Make one call.
    ///
    /// # Safety
    /// Every address the call names must lie in the child's reserved region.
    unsafe fn exec(call: &Call, base: u64, w: i64) -> Raw {
        // SAFETY: the caller's promise; each call only changes mappings of
        // the reserved region, or fails.
        unsafe {
            match *call {
                Call::Mmap {
                    addr_pg,
                    addr_b,
                    len_b,
                    prot,
                    flags,
                } => {
                    let a = addr_of(base, addr_pg, addr_b);
                    let p = libc::mmap(a as *mut _, len_b as usize, prot.0 as i32, flags.0 as i32, -1, 0);
                    if p == libc::MAP_FAILED {
                        Raw::Errno(errno())
                    } else {
                        placed(p as u64, len_b, base, w)
                    }
                }
                Call::Munmap { addr_pg, addr_b, len_b } => {
                    rc(libc::munmap(addr_of(base, addr_pg, addr_b) as *mut _, len_b as usize))
                }
                Call::Mprotect {
                    addr_pg,
                    addr_b,
                    len_b,
                    prot,
                } => rc(libc::mprotect(
                    addr_of(base, addr_pg, addr_b) as *mut _,
                    len_b as usize,
                    prot.0 as i32,
                )),
                Call::Madvise {
                    addr_pg,
                    addr_b,
                    len_b,
                    advice,
                } => rc(libc::madvise(
                    addr_of(base, addr_pg, addr_b) as *mut _,
                    len_b as usize,
                    advice.0 as i32,
                )),
                Call::Mremap {
                    addr_pg,
                    addr_b,
                    old_len_b,
                    new_len_b,
                    flags,
                    new_addr_pg,
                    ..
                } => {
                    let new_addr = new_addr_pg.map_or(0, |pg| addr_of(base, pg, 0));
                    let r = libc::syscall(
                        libc::SYS_mremap,
                        addr_of(base, addr_pg, addr_b) as usize,
                        old_len_b as usize,
                        new_len_b as usize,
                        flags.0 as usize,
                        new_addr as usize,
                    );
                    if r == -1 {
                        Raw::Errno(errno())
                    } else {
                        placed(r as u64, new_len_b, base, w)
                    }
                }
                Call::Store { pg, byte, val } => match probe::store(addr_of(base, pg, byte), val) {
                    Ok(()) => Raw::Stored,
                    Err(s) => Raw::Sig(s),
                },
                Call::Load { pg, byte } => match probe::load(addr_of(base, pg, byte)) {
                    Ok(b) => Raw::Byte(b),
                    Err(s) => Raw::Sig(s),
                },
            }
        }
    }

    /// Read `/proc/self/maps` into `buf` with raw syscalls; its length, or an errno value.
    fn read_maps(buf: &mut [u8]) -> Result<usize, i32> {
        // SAFETY: plain file syscalls into our own buffer.
        unsafe {
            let fd = libc::open(c"/proc/self/maps".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(errno());
            }
            let mut used = 0;
            loop {
                if used == buf.len() {
                    libc::close(fd);
                    return Err(libc::ENOSPC);
                }
                let n = libc::read(fd, buf[used..].as_mut_ptr().cast(), buf.len() - used);
                if n < 0 {
                    let e = errno();
                    if e == libc::EINTR {
                        continue;
                    }
                    libc::close(fd);
                    return Err(e);
                }
                if n == 0 {
                    break;
                }
                used += n as usize;
            }
            libc::close(fd);
            Ok(used)
        }
    }

    /// One-byte loads and stores that report a fault instead of dying: each
    /// is one instruction of known encoding with the fault flag in rdx; the
    /// signal handler recognises the instruction at the faulting rip,
    /// records the signal, sets rdx = 1 and resumes after the instruction.
    mod probe {
        use std::sync::atomic::{AtomicBool, AtomicI32, Ordering::SeqCst};

        static PROBING: AtomicBool = AtomicBool::new(false);
        static SIG: AtomicI32 = AtomicI32::new(0);
        /// `movzx eax, byte ptr [rdi]`
        const LOAD: [u8; 3] = [0x0f, 0xb6, 0x07];
        /// `mov byte ptr [rdi], sil`
        const STORE: [u8; 3] = [0x40, 0x88, 0x37];

        extern "C" fn handler(sig: libc::c_int, _info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
            // SAFETY: the kernel passes a valid ucontext; rip points at the
            // faulting instruction, which is readable code.
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
                    libc::sigaction(s, &sa, std::ptr::null_mut());
                }
            }
        }

        /// Load the byte at `addr`, or the signal the load raised.
        ///
        /// # Safety
        /// `addr` must not alias memory Rust owns.
        pub unsafe fn load(addr: u64) -> Result<u8, i32> {
            let val: u64;
            let faulted: u64;
            PROBING.store(true, SeqCst);
            // SAFETY: a faulting load is caught by the handler above.
            unsafe {
                core::arch::asm!(
                    "xor edx, edx",
                    ".byte 0x0f, 0xb6, 0x07",
                    in("rdi") addr,
                    out("rax") val,
                    out("rdx") faulted,
                    options(nostack),
                );
            }
            PROBING.store(false, SeqCst);
            if faulted != 0 {
                Err(SIG.load(SeqCst))
            } else {
                Ok(val as u8)
            }
        }

        /// Store `val` at `addr`, or the signal the store raised.
        ///
        /// # Safety
        /// `addr` must not alias memory Rust owns.
        pub unsafe fn store(addr: u64, val: u8) -> Result<(), i32> {
            let faulted: u64;
            PROBING.store(true, SeqCst);
            // SAFETY: a faulting store is caught by the handler above.
            unsafe {
                core::arch::asm!(
                    "xor edx, edx",
                    ".byte 0x40, 0x88, 0x37",
                    in("rdi") addr,
                    in("rsi") val as u64,
                    out("rdx") faulted,
                    options(nostack),
                );
            }
            PROBING.store(false, SeqCst);
            if faulted != 0 {
                Err(SIG.load(SeqCst))
            } else {
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_text_is_parsed_relative_to_the_base() {
        let base = 0x7f00_0000_0000u64;
        let text = "7effffffe000-7f0000002000 rw-p 00000000 00:00 0 \n\
                    7f0000010000-7f0000011000 r--s 00000000 00:01 5   /dev/zero (deleted)\n\
                    ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0  [vsyscall]\n";
        let lines = parse_maps(text, base);
        assert_eq!(lines[0], (-2, 2, "rw-p".to_string()));
        assert_eq!(lines[1], (16, 17, "r--s".to_string()));
        let (win, ext) = window_views(&lines, 256);
        assert_eq!(win, vec![(0, 2, "rw-p".to_string()), (16, 17, "r--s".to_string())]);
        assert_eq!(ext[0], (-2, 2, "rw-p".to_string()));
        assert_eq!(ext.len(), 2);
    }

    #[test]
    fn plans_that_reach_too_far_are_refused() {
        let mut p = plan(1, 0, 256, 5, &OpMix::default());
        check_plan(&p).unwrap();
        p.ops[0].call = super::super::format::Call::Munmap {
            addr_pg: -5000,
            addr_b: 0,
            len_b: 4096,
        };
        assert!(check_plan(&p).is_err());
    }

    #[test]
    fn errno_names() {
        assert_eq!(errno_res(22), Res::errno("EINVAL"));
        assert_eq!(errno_res(95), Res::errno("EOPNOTSUPP"));
        assert_eq!(errno_res(4), Res::errno("EINTR"));
        assert_eq!(errno_res(999), Res::errno("E999"));
    }
}
