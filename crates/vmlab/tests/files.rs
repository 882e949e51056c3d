//! Host files mapped into the simulated machine (`vmlab::host`): the bytes
//! of a real file read through a mapping, MAP_SHARED stores reaching it
//! (checked with `std::fs`), MAP_PRIVATE ones never, write-back at exit and
//! when the machine is dropped, the config's `files` list, and the errno of
//! `mmap` with a file and of `msync` compared with the host kernel's own.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use vmlab::host;
use vmlab::mm::errno::{Errno, FaultReason, Signal};
use vmlab::mm::mm::uapi::*;
use vmlab::mm::mm::ForkPolicy;
use vmlab::mm::system::{ByteSize, Machine, MachineConfig};

const PAGE: u64 = 4096;
const R: u32 = PROT_READ;
const RW: u32 = PROT_READ | PROT_WRITE;

/// A file under the temp dir with a name no other test (or run) uses,
/// removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str, bytes: &[u8]) -> TempFile {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "vmlab-files-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&p, bytes).unwrap();
        TempFile(p)
    }
    fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.0).unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn config() -> MachineConfig {
    MachineConfig {
        ram: ByteSize(64 << 20),
        cpus: 2,
        ..common::test_config()
    }
}

fn pattern(tag: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(13).wrapping_add(tag)).collect()
}

fn read(m: &Machine, pid: u32, addr: u64, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    m.read(pid, addr, &mut b).unwrap().unwrap();
    b
}

fn write(m: &Machine, pid: u32, addr: u64, data: &[u8]) {
    m.write(pid, addr, data).unwrap().unwrap();
}

fn check(m: &Machine, what: &str) {
    m.check().unwrap_or_else(|e| panic!("{what}: {e}"));
}

/// Every process exits, every file is closed: no frame is left.
fn finish(m: &Machine) {
    for pid in m.pids() {
        m.exit(pid).unwrap();
    }
    for fd in m.fds() {
        m.close(fd).unwrap();
    }
    check(m, "after exit and close");
    assert_eq!(m.phys().frames_used(), m.reserved_frames(), "frames leaked");
}

#[test]
fn a_host_file_through_shared_and_private_mappings() {
    let data = pattern(1, 3 * PAGE as usize + 1000);
    let t = TempFile::new("rw", &data);
    let m = Machine::new(&config()).unwrap();
    let fd = host::open(&m, &t.0, true).unwrap();
    assert_eq!(fd, 3);
    let p = m.spawn().unwrap();
    let s = m.mmap_fd(p, 0, 5 * PAGE, RW, MAP_SHARED, fd, 0).unwrap();
    let v = m.mmap_fd(p, 0, 4 * PAGE, RW, MAP_PRIVATE, fd, 0).unwrap();
    // The real bytes, zeros after the end in the last page, SIGBUS past it.
    assert_eq!(read(&m, p, s, data.len()), data);
    assert_eq!(read(&m, p, v, data.len()), data);
    assert!(read(&m, p, s + data.len() as u64, 3096).iter().all(|&b| b == 0));
    let f = m.read(p, s + 4 * PAGE, &mut [0u8; 1]).unwrap().unwrap_err();
    assert_eq!((f.signal, f.reason), (Signal::Bus, FaultReason::BeyondEof));
    // Stores.
    write(&m, p, v + 5, b"private");
    write(&m, p, s + PAGE, b"shared");
    // A store in the last page past the end stays in memory only.
    write(&m, p, s + data.len() as u64 + 10, b"beyond");
    assert_eq!(t.bytes(), data, "nothing reaches the file before msync");
    m.msync(p, s, 5 * PAGE, MS_SYNC).unwrap();
    let mut want = data.clone();
    want[PAGE as usize..PAGE as usize + 6].copy_from_slice(b"shared");
    assert_eq!(t.bytes(), want, "MAP_SHARED store in the host file after msync");
    m.msync(p, v, 4 * PAGE, MS_SYNC).unwrap();
    assert_eq!(t.bytes(), want, "MAP_PRIVATE stores never reach the file");
    check(&m, "after msync");
    m.exit(p).unwrap();
    m.close(fd).unwrap();
    assert_eq!(t.bytes(), want, "nor at exit");
    finish(&m);
}

#[test]
fn stores_reach_the_file_at_exit_and_when_the_machine_is_dropped() {
    if !common::fork_allowed(ForkPolicy::Cow) {
        return;
    }
    let t = TempFile::new("exit", &[0u8; 2 * PAGE as usize]);
    let m = Machine::new(&config()).unwrap();
    let fd = host::open(&m, &t.0, true).unwrap();
    let p = m.spawn().unwrap();
    let s = m.mmap_fd(p, 0, 2 * PAGE, RW, MAP_SHARED, fd, 0).unwrap();
    let (c, _) = m.fork_with(p, ForkPolicy::Cow).unwrap();
    write(&m, c, s, b"from the child");
    m.exit(c).unwrap();
    assert_eq!(&t.bytes()[..14], b"from the child", "written back at exit");
    write(&m, p, s + PAGE, b"at drop");
    drop(m);
    assert_eq!(
        &t.bytes()[PAGE as usize..PAGE as usize + 7],
        b"at drop",
        "written back at shutdown"
    );
}

#[test]
fn build_machine_opens_the_config_files_in_order() {
    let a = TempFile::new("a", b"first file");
    let b = TempFile::new("b", &pattern(2, 5000));
    let mut cfg = config();
    cfg.files = vec![a.0.display().to_string(), b.0.display().to_string()];
    let m = host::build_machine(&cfg).unwrap();
    assert_eq!(m.fds(), vec![3, 4]);
    let p = m.spawn().unwrap();
    let x = m.mmap_fd(p, 0, PAGE, R, MAP_PRIVATE, 3, 0).unwrap();
    let y = m.mmap_fd(p, 0, PAGE, RW, MAP_SHARED, 4, PAGE).unwrap();
    assert_eq!(read(&m, p, x, 10), b"first file");
    assert_eq!(read(&m, p, y, 904), &pattern(2, 5000)[4096..]);
    write(&m, p, y, b"!");
    m.msync(p, y, PAGE, MS_SYNC).unwrap();
    assert_eq!(b.bytes()[4096], b'!');
    finish(&m);
    // Another host file opened after: the lowest free fd.
    let fd = host::open(&m, &a.0, false).unwrap();
    assert_eq!(fd, 3);
    let p = m.spawn().unwrap();
    assert_eq!(m.mmap_fd(p, 0, PAGE, RW, MAP_SHARED, fd, 0), Err(Errno::EACCES));
    finish(&m);

    // A missing file is a config error naming it.
    let mut bad = config();
    let missing = std::env::temp_dir().join(format!("vmlab-files-missing-{}", std::process::id()));
    bad.files = vec![missing.display().to_string()];
    let e = host::build_machine(&bad)
        .err()
        .expect("a missing file fails")
        .to_string();
    assert!(e.contains(&missing.display().to_string()) && e.contains("files"), "{e}");
}

/// Which fd a case passes.
#[derive(Copy, Clone, Debug)]
enum Fd {
    Rw,
    Ro,
    Wo,
    Bad,
    Anon,
}

/// `mmap` with a file (and anonymous memory with odd offsets), on the host
/// kernel and on vmlab: the same success or the same errno. Only cases that
/// do not replace host mappings (no MAP_FIXED).
#[test]
fn mmap_errno_matches_the_host_kernel() {
    let t = TempFile::new("errno", &pattern(3, 10_000));
    let rw = std::fs::OpenOptions::new().read(true).write(true).open(&t.0).unwrap();
    let ro = std::fs::File::open(&t.0).unwrap();
    let wo = std::fs::OpenOptions::new().write(true).open(&t.0).unwrap();
    let m = Machine::new(&config()).unwrap();
    let vrw = host::open(&m, &t.0, true).unwrap();
    let vro = host::open(&m, &t.0, false).unwrap();
    let vwo = host::open_flags(&m, &t.0, O_WRONLY).unwrap();
    let p = m.spawn().unwrap();
    let big = 0x7fff_ffff_ffff_f000u64;
    let cases: Vec<(&str, u64, u32, u32, Fd, u64)> = vec![
        ("offset unaligned", PAGE, R, MAP_SHARED, Fd::Rw, 100),
        ("bad fd", PAGE, R, MAP_SHARED, Fd::Bad, 0),
        ("bad fd, offset unaligned", PAGE, R, MAP_SHARED, Fd::Bad, 100),
        ("bad fd, len 0", 0, R, MAP_SHARED, Fd::Bad, 0),
        ("len 0", 0, R, MAP_SHARED, Fd::Rw, 0),
        ("shared rw, ro fd", PAGE, RW, MAP_SHARED, Fd::Ro, 0),
        ("shared w, ro fd", PAGE, PROT_WRITE, MAP_SHARED, Fd::Ro, 0),
        ("shared r, ro fd", PAGE, R, MAP_SHARED, Fd::Ro, 0),
        ("private rw, ro fd", PAGE, RW, MAP_PRIVATE, Fd::Ro, 0),
        ("shared rw", PAGE, RW, MAP_SHARED, Fd::Rw, 0),
        ("shared r, wo fd", PAGE, R, MAP_SHARED, Fd::Wo, 0),
        ("shared rw, wo fd", PAGE, RW, MAP_SHARED, Fd::Wo, 0),
        ("shared w, wo fd", PAGE, PROT_WRITE, MAP_SHARED, Fd::Wo, 0),
        ("private r, wo fd", PAGE, R, MAP_PRIVATE, Fd::Wo, 0),
        ("private none, wo fd", PAGE, PROT_NONE, MAP_PRIVATE, Fd::Wo, 0),
        ("validate, wo fd", PAGE, R, MAP_SHARED_VALIDATE, Fd::Wo, 0),
        ("type 0, wo fd", PAGE, R, 0, Fd::Wo, 0),
        ("offset unaligned, wo fd", PAGE, R, MAP_SHARED, Fd::Wo, 100),
        ("eoverflow, wo fd", 2 * PAGE, R, MAP_SHARED, Fd::Wo, big),
        ("shared r|x, ro fd", PAGE, R | PROT_EXEC, MAP_SHARED, Fd::Ro, 0),
        ("shared growsdown", PAGE, R, MAP_SHARED | MAP_GROWSDOWN, Fd::Rw, 0),
        ("private growsdown", PAGE, R, MAP_PRIVATE | MAP_GROWSDOWN, Fd::Rw, 0),
        (
            "shared rw growsdown, ro fd",
            PAGE,
            RW,
            MAP_SHARED | MAP_GROWSDOWN,
            Fd::Ro,
            0,
        ),
        ("offset past max file size", 2 * PAGE, R, MAP_SHARED, Fd::Rw, big),
        ("offset at max - 1 page", 2 * PAGE, R, MAP_SHARED, Fd::Rw, big - PAGE),
        (
            "offset at max - 2 pages",
            2 * PAGE,
            R,
            MAP_SHARED,
            Fd::Rw,
            big - 2 * PAGE,
        ),
        ("offset -4096", 2 * PAGE, R, MAP_SHARED, Fd::Rw, u64::MAX - PAGE + 1),
        ("eoverflow, len 0", 0, R, MAP_SHARED, Fd::Rw, big),
        ("eoverflow, rw on ro fd", 2 * PAGE, RW, MAP_SHARED, Fd::Ro, big),
        ("eoverflow, type 0", 2 * PAGE, R, 0, Fd::Rw, big),
        ("eoverflow, huge len", 1 << 50, R, MAP_SHARED, Fd::Rw, big),
        ("huge len, rw on ro fd", 1 << 50, RW, MAP_SHARED, Fd::Ro, 0),
        ("offset past the end of the file", PAGE, R, MAP_SHARED, Fd::Rw, 1 << 20),
        ("validate", PAGE, R, MAP_SHARED_VALIDATE, Fd::Rw, 0),
        ("validate|0x400", PAGE, R, MAP_SHARED_VALIDATE | 0x400, Fd::Rw, 0),
        (
            "validate|0x400, rw on ro fd",
            PAGE,
            RW,
            MAP_SHARED_VALIDATE | 0x400,
            Fd::Ro,
            0,
        ),
        ("validate|sync", PAGE, R, MAP_SHARED_VALIDATE | MAP_SYNC, Fd::Rw, 0),
        ("validate|32bit", PAGE, R, MAP_SHARED_VALIDATE | 0x40, Fd::Rw, 0),
        ("shared|sync", PAGE, R, MAP_SHARED | MAP_SYNC, Fd::Rw, 0),
        ("private|sync", PAGE, R, MAP_PRIVATE | MAP_SYNC, Fd::Rw, 0),
        ("shared|0x400", PAGE, R, MAP_SHARED | 0x400, Fd::Rw, 0),
        ("private|0x400", PAGE, R, MAP_PRIVATE | 0x400, Fd::Rw, 0),
        ("private|hugetlb", PAGE, R, MAP_PRIVATE | MAP_HUGETLB, Fd::Rw, 0),
        (
            "private|hugetlb, bad fd",
            PAGE,
            R,
            MAP_PRIVATE | MAP_HUGETLB,
            Fd::Bad,
            0,
        ),
        ("type 0", PAGE, R, 0, Fd::Rw, 0),
        ("type 0, rw on ro fd", PAGE, RW, 0, Fd::Ro, 0),
        ("type droppable", PAGE, R, 0x08, Fd::Rw, 0),
        ("type 0xf", PAGE, R, 0xf, Fd::Rw, 0),
        ("private rw, 1 TiB (accounted)", 1 << 40, RW, MAP_PRIVATE, Fd::Rw, 0),
        (
            "anon, offset unaligned",
            PAGE,
            R,
            MAP_PRIVATE | MAP_ANONYMOUS,
            Fd::Anon,
            100,
        ),
        ("anon, bad fd", PAGE, R, MAP_PRIVATE | MAP_ANONYMOUS, Fd::Bad, 0),
        (
            "anon private, offset -4096",
            2 * PAGE,
            R,
            MAP_PRIVATE | MAP_ANONYMOUS,
            Fd::Anon,
            u64::MAX - PAGE + 1,
        ),
        (
            "anon shared, offset -4096",
            2 * PAGE,
            R,
            MAP_SHARED | MAP_ANONYMOUS,
            Fd::Anon,
            u64::MAX - PAGE + 1,
        ),
        (
            "anon shared, offset past max",
            2 * PAGE,
            R,
            MAP_SHARED | MAP_ANONYMOUS,
            Fd::Anon,
            big,
        ),
        (
            "anon shared growsdown",
            PAGE,
            R,
            MAP_SHARED | MAP_ANONYMOUS | MAP_GROWSDOWN,
            Fd::Anon,
            0,
        ),
        (
            "anon validate",
            PAGE,
            R,
            MAP_SHARED_VALIDATE | MAP_ANONYMOUS,
            Fd::Anon,
            0,
        ),
        (
            "anon validate|0x400",
            PAGE,
            R,
            MAP_SHARED_VALIDATE | MAP_ANONYMOUS | 0x400,
            Fd::Anon,
            0,
        ),
        (
            "anon shared|sync",
            PAGE,
            R,
            MAP_SHARED | MAP_ANONYMOUS | MAP_SYNC,
            Fd::Anon,
            0,
        ),
        (
            "anon shared, 1 TiB (accounted)",
            1 << 40,
            R,
            MAP_SHARED | MAP_ANONYMOUS,
            Fd::Anon,
            0,
        ),
        (
            "anon shared, 1 TiB, noreserve",
            1 << 40,
            R,
            MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE,
            Fd::Anon,
            0,
        ),
    ];
    let mut diffs = Vec::new();
    for (name, len, prot, flags, fd, off) in cases {
        let host_fd = match fd {
            Fd::Rw => std::os::fd::AsRawFd::as_raw_fd(&rw),
            Fd::Ro => std::os::fd::AsRawFd::as_raw_fd(&ro),
            Fd::Wo => std::os::fd::AsRawFd::as_raw_fd(&wo),
            Fd::Bad => 999,
            Fd::Anon => -1,
        };
        // SAFETY: no MAP_FIXED, so no existing mapping of this process is
        // replaced; a mapping made is unmapped at once and never touched.
        let host = unsafe {
            let a = libc::mmap(
                std::ptr::null_mut(),
                len as usize,
                prot as i32,
                flags as i32,
                host_fd,
                off as i64,
            );
            if a == libc::MAP_FAILED {
                Err(Errno::from_code(
                    std::io::Error::last_os_error().raw_os_error().unwrap(),
                ))
            } else {
                libc::munmap(a, len as usize);
                Ok(())
            }
        };
        let vm_fd = match fd {
            Fd::Rw => vrw,
            Fd::Ro => vro,
            Fd::Wo => vwo,
            Fd::Bad => 999,
            Fd::Anon => -1,
        };
        let vm = m.mmap_fd(p, 0, len, prot, flags, vm_fd, off).map(|_| ()).map_err(Some);
        if vm != host {
            diffs.push(format!("{name}: host {host:?}, vmlab {vm:?}"));
        }
    }
    assert!(
        diffs.is_empty(),
        "differences from the host kernel:\n{}",
        diffs.join("\n")
    );
    check(&m, "after the cases");
    finish(&m);
}

/// `msync` and `mprotect` on file mappings, on the host kernel and on vmlab,
/// over the same layout at the same fixed address (far below where the
/// host places mappings itself, and claimed with MAP_FIXED_NOREPLACE).
#[test]
fn msync_errno_matches_the_host_kernel() {
    const B: u64 = 0x6000_0000_0000;
    let t = TempFile::new("msync", &pattern(4, 4 * PAGE as usize));
    let rw = std::fs::OpenOptions::new().read(true).write(true).open(&t.0).unwrap();
    let ro = std::fs::File::open(&t.0).unwrap();
    let m = Machine::new(&config()).unwrap();
    let vrw = host::open(&m, &t.0, true).unwrap();
    let vro = host::open(&m, &t.0, false).unwrap();
    let p = m.spawn().unwrap();
    // [B, B+P) shared file; hole; [B+2P, B+4P) shared file; hole;
    // [B+8P, B+10P) locked anonymous; [B+12P, B+13P) shared, file read-only.
    let noreplace = MAP_FIXED_NOREPLACE;
    let layout: [(u64, u64, u32, u32, bool); 3] = [
        (0, 4 * PAGE, RW, MAP_SHARED | noreplace, true),
        (
            8 * PAGE,
            2 * PAGE,
            RW,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED | noreplace,
            false,
        ),
        (12 * PAGE, PAGE, R, MAP_SHARED | noreplace, false),
    ];
    for (i, &(off, len, prot, flags, writable)) in layout.iter().enumerate() {
        let anon = flags & MAP_ANONYMOUS != 0;
        let (hfd, vfd) = match (anon, writable) {
            (true, _) => (-1, -1),
            (false, true) => (std::os::fd::AsRawFd::as_raw_fd(&rw), vrw),
            (false, false) => (std::os::fd::AsRawFd::as_raw_fd(&ro), vro),
        };
        // SAFETY: MAP_FIXED_NOREPLACE never replaces a mapping; the
        // address is far from anything the host or the allocator places.
        let a = unsafe { libc::mmap((B + off) as *mut _, len as usize, prot as i32, flags as i32, hfd, 0) };
        assert_eq!(
            a as u64,
            B + off,
            "host layout {i}: {}",
            std::io::Error::last_os_error()
        );
        assert_eq!(m.mmap_fd(p, B + off, len, prot, flags, vfd, 0), Ok(B + off));
    }
    // SAFETY: the page is ours (mapped just above).
    assert_eq!(unsafe { libc::munmap((B + PAGE) as *mut _, PAGE as usize) }, 0);
    m.munmap(p, B + PAGE, PAGE).unwrap();
    let cases: Vec<(&str, u64, u64, u32)> = vec![
        ("unaligned", B + 1, PAGE, MS_SYNC),
        ("unknown flag", B, PAGE, 8),
        ("sync|async", B, PAGE, MS_SYNC | MS_ASYNC),
        ("len 0", B, 0, MS_SYNC),
        ("len 0 in a hole", B + 5 * PAGE, 0, MS_SYNC),
        ("hole, sync", B + 5 * PAGE, PAGE, MS_SYNC),
        ("hole, async", B + 5 * PAGE, PAGE, MS_ASYNC),
        ("hole, no flag", B + 5 * PAGE, PAGE, 0),
        ("hole, invalidate", B + 5 * PAGE, PAGE, MS_INVALIDATE),
        ("len wraps to 0", B, u64::MAX, MS_SYNC),
        ("end wraps", B, u64::MAX - 2 * PAGE + 1, MS_SYNC),
        ("first page", B, PAGE, MS_SYNC),
        ("first page, no flag", B, PAGE, 0),
        ("hole in the middle, sync", B, 4 * PAGE, MS_SYNC),
        ("hole in the middle, async", B, 4 * PAGE, MS_ASYNC),
        ("starts in a hole, async", B + PAGE, 3 * PAGE, MS_ASYNC),
        ("starts in a hole, sync", B + PAGE, 3 * PAGE, MS_SYNC),
        ("mapped part", B + 2 * PAGE, 2 * PAGE, MS_ASYNC),
        ("runs past the end", B + 2 * PAGE, 100 * PAGE, MS_SYNC),
        ("locked, invalidate", B + 8 * PAGE, 2 * PAGE, MS_INVALIDATE),
        (
            "locked, invalidate|sync",
            B + 8 * PAGE,
            2 * PAGE,
            MS_INVALIDATE | MS_SYNC,
        ),
        ("locked, sync", B + 8 * PAGE, 2 * PAGE, MS_SYNC),
        ("read-only file, sync", B + 12 * PAGE, PAGE, MS_SYNC),
    ];
    let mut diffs = Vec::new();
    let os_err = || Errno::from_code(std::io::Error::last_os_error().raw_os_error().unwrap());
    for (name, addr, len, flags) in cases {
        // SAFETY: msync reads no memory of ours and changes no mapping.
        let rc = unsafe { libc::msync(addr as *mut _, len as usize, flags as i32) };
        let host = if rc == 0 { Ok(()) } else { Err(os_err()) };
        let vm = m.msync(p, addr, len, flags).map_err(Some);
        if vm != host {
            diffs.push(format!("msync {name}: host {host:?}, vmlab {vm:?}"));
        }
    }
    for (name, addr, len, prot) in [
        ("shared, read-only file: write", B + 12 * PAGE, PAGE, RW),
        ("shared, read-only file: exec", B + 12 * PAGE, PAGE, R | PROT_EXEC),
        ("shared, writable file: read-only", B + 2 * PAGE, PAGE, R),
        ("shared, writable file: write again", B + 2 * PAGE, PAGE, RW),
    ] {
        // SAFETY: the pages are ours and untouched by Rust code.
        let rc = unsafe { libc::mprotect(addr as *mut _, len as usize, prot as i32) };
        let host = if rc == 0 { Ok(()) } else { Err(os_err()) };
        let vm = m.mprotect(p, addr, len, prot).map_err(Some);
        if vm != host {
            diffs.push(format!("mprotect {name}: host {host:?}, vmlab {vm:?}"));
        }
    }
    // SAFETY: the range is the layout mapped above.
    unsafe { libc::munmap(B as *mut _, 13 * PAGE as usize) };
    assert!(
        diffs.is_empty(),
        "differences from the host kernel:\n{}",
        diffs.join("\n")
    );
    check(&m, "after the cases");
    finish(&m);
}

/// Which fd a file-syscall case uses.
#[derive(Copy, Clone, Debug)]
enum F {
    Ro,
    Wo,
    Rw,
    Bad,
}

/// A file syscall, run the same way on the host and on vmlab.
#[derive(Clone, Debug)]
enum Call {
    Read(F, usize),
    Write(F, &'static [u8]),
    Pread(F, usize, i64),
    Pwrite(F, &'static [u8], i64),
    Lseek(F, i64, u32),
    Ftruncate(F, i64),
    Fstat(F),
}

/// The result of a call: the return value and the bytes read, or the errno.
type Out = Result<(i64, Vec<u8>), Option<Errno>>;

fn host_call(fds: [i32; 3], c: &Call) -> Out {
    let fd = |f: F| match f {
        F::Ro => fds[0],
        F::Wo => fds[1],
        F::Rw => fds[2],
        F::Bad => 999,
    };
    let mut buf = Vec::new();
    // SAFETY: every buffer passed is ours and as long as the count given.
    let rc: i64 = unsafe {
        match *c {
            Call::Read(f, n) => {
                buf = vec![0u8; n];
                libc::read(fd(f), buf.as_mut_ptr().cast(), n) as i64
            }
            Call::Write(f, b) => libc::write(fd(f), b.as_ptr().cast(), b.len()) as i64,
            Call::Pread(f, n, off) => {
                buf = vec![0u8; n];
                libc::pread(fd(f), buf.as_mut_ptr().cast(), n, off) as i64
            }
            Call::Pwrite(f, b, off) => libc::pwrite(fd(f), b.as_ptr().cast(), b.len(), off) as i64,
            Call::Lseek(f, off, w) => libc::lseek(fd(f), off, w as i32),
            Call::Ftruncate(f, len) => libc::ftruncate(fd(f), len) as i64,
            Call::Fstat(f) => {
                let mut st: libc::stat = std::mem::zeroed();
                let rc = libc::fstat(fd(f), &mut st) as i64;
                if rc == 0 {
                    st.st_size
                } else {
                    rc
                }
            }
        }
    };
    if rc < 0 {
        return Err(Errno::from_code(
            std::io::Error::last_os_error().raw_os_error().unwrap(),
        ));
    }
    buf.truncate(rc.max(0) as usize);
    Ok((rc, buf))
}

fn vm_call(m: &Machine, fds: [i32; 3], c: &Call) -> Out {
    let fd = |f: F| match f {
        F::Ro => fds[0],
        F::Wo => fds[1],
        F::Rw => fds[2],
        F::Bad => 999,
    };
    let mut buf = Vec::new();
    let r = match *c {
        Call::Read(f, n) => {
            buf = vec![0u8; n];
            m.read_fd(fd(f), &mut buf).map(|n| n as i64)
        }
        Call::Write(f, b) => m.write_fd(fd(f), b).map(|n| n as i64),
        Call::Pread(f, n, off) => {
            buf = vec![0u8; n];
            m.pread(fd(f), &mut buf, off).map(|n| n as i64)
        }
        Call::Pwrite(f, b, off) => m.pwrite(fd(f), b, off).map(|n| n as i64),
        Call::Lseek(f, off, w) => m.lseek(fd(f), off, w),
        Call::Ftruncate(f, len) => m.ftruncate(fd(f), len).map(|()| 0),
        Call::Fstat(f) => m.fstat(fd(f)).map(|s| s.size as i64),
    };
    let rc = r.map_err(Some)?;
    buf.truncate(rc.max(0) as usize);
    Ok((rc, buf))
}

/// open with each access mode, read, write, pread, pwrite, lseek, ftruncate
/// and fstat on the host kernel (a temp file) and on vmlab (another temp
/// file with the same bytes, opened with `host::open_flags`): the same
/// results, errno, bytes read and, at the end, file contents. Data calls
/// go through one fd (the O_RDWR one) while the others are open, since
/// vmlab's opens of one host file are separate objects; a second phase
/// writes through a fresh O_WRONLY open. The largest size is the host file
/// system's (`s_maxbytes`), which vmlab reads from the host.
#[test]
fn file_syscalls_match_the_host_kernel() {
    let data = b"hello world, a file of some bytes".to_vec();
    let th = TempFile::new("sys-host", &data);
    let tv = TempFile::new("sys-vm", &data);
    let open_host = |flags: i32| {
        let p = std::ffi::CString::new(th.0.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid path string.
        let fd = unsafe { libc::open(p.as_ptr(), flags) };
        assert!(fd >= 0);
        fd
    };
    let hfds = [
        open_host(libc::O_RDONLY),
        open_host(libc::O_WRONLY),
        open_host(libc::O_RDWR),
    ];
    let m = Machine::new(&config()).unwrap();
    let vfds = [O_RDONLY, O_WRONLY, O_RDWR].map(|f| host::open_flags(&m, &tv.0, f).unwrap());
    let max = 1i64 << 44;
    use Call::*;
    let phase1: Vec<Call> = vec![
        Read(F::Ro, 5),
        Read(F::Ro, 100),
        Read(F::Ro, 4),
        Lseek(F::Ro, 3, SEEK_SET),
        Read(F::Ro, 4),
        Read(F::Wo, 4),
        Read(F::Wo, 0),
        Read(F::Bad, 4),
        Pread(F::Wo, 4, 0),
        Pread(F::Rw, 4, -1),
        Pread(F::Bad, 4, -1),
        Pread(F::Bad, 4, 0),
        Pread(F::Wo, 4, -1),
        Pread(F::Rw, 0, -1),
        Pread(F::Rw, 4, 100),
        Pread(F::Rw, 4, i64::MAX - 1),
        Pread(F::Rw, 4, 6),
        Write(F::Ro, b"x"),
        Write(F::Ro, b""),
        Write(F::Bad, b"x"),
        Pwrite(F::Ro, b"x", 0),
        Pwrite(F::Rw, b"x", -1),
        Pwrite(F::Rw, b"x", i64::MAX),
        Lseek(F::Rw, -1, SEEK_SET),
        Lseek(F::Rw, 5, SEEK_SET),
        Lseek(F::Rw, -6, SEEK_CUR),
        Lseek(F::Rw, -5, SEEK_CUR),
        Lseek(F::Rw, 0, SEEK_END),
        Lseek(F::Rw, -100, SEEK_END),
        Lseek(F::Rw, 100, SEEK_END),
        Lseek(F::Rw, 0, SEEK_CUR),
        Lseek(F::Rw, 0, 5),
        Lseek(F::Rw, 0, u32::MAX),
        Lseek(F::Bad, 0, 5),
        Lseek(F::Bad, -1, SEEK_SET),
        Lseek(F::Wo, 3, SEEK_SET),
        Lseek(F::Rw, i64::MAX, SEEK_SET),
        Lseek(F::Rw, max, SEEK_SET),
        Lseek(F::Rw, max - 4096, SEEK_SET),
        Lseek(F::Rw, max >> 1, SEEK_SET),
        Lseek(F::Rw, i64::MAX, SEEK_END),
        Lseek(F::Rw, 5, SEEK_SET),
        Lseek(F::Rw, i64::MAX, SEEK_CUR),
        Lseek(F::Rw, 0, SEEK_DATA),
        Lseek(F::Rw, 7, SEEK_DATA),
        Lseek(F::Rw, 0, SEEK_HOLE),
        Lseek(F::Rw, 100, SEEK_DATA),
        Lseek(F::Rw, -1, SEEK_HOLE),
        Ftruncate(F::Ro, 5),
        Ftruncate(F::Rw, -1),
        Ftruncate(F::Bad, -1),
        Ftruncate(F::Bad, 5),
        Ftruncate(F::Ro, -1),
        Ftruncate(F::Rw, i64::MAX),
        Ftruncate(F::Rw, max),
        Fstat(F::Rw),
        Fstat(F::Bad),
        // Data, through the O_RDWR fd.
        Lseek(F::Rw, 40, SEEK_SET),
        Write(F::Rw, b"Z"),
        Fstat(F::Rw),
        Lseek(F::Rw, 0, SEEK_CUR),
        Pread(F::Rw, 64, 0),
        Lseek(F::Rw, 100, SEEK_SET),
        Read(F::Rw, 4),
        Lseek(F::Rw, 0, SEEK_CUR),
        Pwrite(F::Rw, b"Q", 0),
        Lseek(F::Rw, 0, SEEK_CUR),
        Write(F::Rw, b""),
        Fstat(F::Rw),
        Lseek(F::Rw, 0, SEEK_SET),
        Read(F::Rw, 6),
        Write(F::Rw, b"WORLD"),
        Pread(F::Rw, 12, 0),
        Ftruncate(F::Rw, 3),
        Pread(F::Rw, 10, 0),
        Read(F::Rw, 10),
        Lseek(F::Rw, 0, SEEK_CUR),
        Ftruncate(F::Rw, 5000),
        Pread(F::Rw, 5000, 0),
        Pwrite(F::Rw, b"across a page boundary", 4090),
        Pread(F::Rw, 30, 4085),
        Fstat(F::Rw),
        Pwrite(F::Rw, b"far", 3 * 4096 + 5),
        Pread(F::Rw, 3 * 4096 + 20, 0),
        Ftruncate(F::Rw, 4096),
        Fstat(F::Rw),
        Ftruncate(F::Rw, 4096),
        Pread(F::Rw, 10, 4090),
        Pwrite(F::Rw, b"", max + 10),
        Pwrite(F::Rw, b"x", max),
        Ftruncate(F::Rw, 4100),
    ];
    let mut diffs = Vec::new();
    let run = |calls: &[Call], hfds: [i32; 3], vfds: [i32; 3], diffs: &mut Vec<String>| {
        for c in calls {
            let h = host_call(hfds, c);
            let v = vm_call(&m, vfds, c);
            if h != v {
                diffs.push(format!("{c:?}: host {h:?}, vmlab {v:?}"));
            }
            m.check().unwrap_or_else(|e| panic!("after {c:?}: {e}"));
        }
    };
    run(&phase1, hfds, vfds, &mut diffs);
    // The s_maxbytes edge: a short write there (on the host it allocates
    // one block at the end of a sparse file).
    let edge = host_call(hfds, &Lseek(F::Rw, i64::MAX, SEEK_SET));
    if edge.is_err() {
        // SAFETY: none of our memory is involved.
        let mut lo = 0i64;
        let mut hi = i64::MAX;
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if unsafe { libc::lseek(hfds[2], mid, libc::SEEK_SET) } >= 0 {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let edge_calls = [Pwrite(F::Rw, b"xy", lo - 1), Fstat(F::Rw), Ftruncate(F::Rw, 4100)];
        let calls: Vec<Call> = edge_calls.to_vec();
        run(&calls, hfds, vfds, &mut diffs);
    }
    for &fd in &vfds {
        m.close(fd).unwrap();
    }
    // SAFETY: our fds.
    unsafe {
        hfds.iter().for_each(|&fd| {
            libc::close(fd);
        })
    };
    assert_eq!(th.bytes(), tv.bytes(), "file contents after phase 1");
    // Phase 2: a fresh write-only open.
    let h2 = [-1, open_host(libc::O_WRONLY), -1];
    let v2 = [-1, host::open_flags(&m, &tv.0, O_WRONLY).unwrap(), -1];
    let phase2 = vec![
        Write(F::Wo, b"wo"),
        Read(F::Wo, 2),
        Lseek(F::Wo, 0, SEEK_CUR),
        Pwrite(F::Wo, b"tail", 4098),
        Fstat(F::Wo),
        Ftruncate(F::Wo, 4099),
        Fstat(F::Wo),
        Write(F::Wo, b"!"),
    ];
    run(&phase2, h2, v2, &mut diffs);
    m.close(v2[1]).unwrap();
    // SAFETY: our fd.
    unsafe { libc::close(h2[1]) };
    assert!(
        diffs.is_empty(),
        "differences from the host kernel:\n{}",
        diffs.join("\n")
    );
    assert_eq!(th.bytes(), tv.bytes(), "file contents after phase 2");
    finish(&m);
}

/// MADV_REMOVE on the host and on vmlab: the same results for a shared
/// writable file mapping (also past the end of the file), a shared
/// read-only mapping of a writable and of a read-only fd, a private file
/// mapping, shared and private anonymous memory, and the same file contents.
#[test]
fn madvise_remove_matches_the_host_kernel() {
    const B: u64 = 0x6100_0000_0000;
    let data = pattern(6, 3 * PAGE as usize);
    let th = TempFile::new("remove-host", &data);
    let tv = TempFile::new("remove-vm", &data);
    let rw = std::fs::OpenOptions::new().read(true).write(true).open(&th.0).unwrap();
    let ro = std::fs::File::open(&th.0).unwrap();
    let m = Machine::new(&config()).unwrap();
    let vrw = host::open(&m, &tv.0, true).unwrap();
    let vro = host::open(&m, &tv.0, false).unwrap();
    let p = m.spawn().unwrap();
    let nr = MAP_FIXED_NOREPLACE;
    // (offset in pages, pages, prot, flags, fd: 0 anon, 1 rw, 2 ro)
    let layout: [(u64, u64, u32, u32, u8); 6] = [
        (0, 4, RW, MAP_SHARED | nr, 1),
        (8, 2, RW, MAP_PRIVATE | nr, 1),
        (12, 1, R, MAP_SHARED | nr, 2),
        (16, 1, R, MAP_SHARED | nr, 1),
        (20, 2, RW, MAP_SHARED | MAP_ANONYMOUS | nr, 0),
        (24, 1, RW, MAP_PRIVATE | MAP_ANONYMOUS | nr, 0),
    ];
    for (off, pages, prot, flags, which) in layout {
        let (hfd, vfd) = match which {
            0 => (-1, -1),
            1 => (std::os::fd::AsRawFd::as_raw_fd(&rw), vrw),
            _ => (std::os::fd::AsRawFd::as_raw_fd(&ro), vro),
        };
        let a = B + off * PAGE;
        // SAFETY: MAP_FIXED_NOREPLACE never replaces a mapping.
        let h = unsafe { libc::mmap(a as *mut _, (pages * PAGE) as usize, prot as i32, flags as i32, hfd, 0) };
        assert_eq!(h as u64, a, "{}", std::io::Error::last_os_error());
        assert_eq!(m.mmap_fd(p, a, pages * PAGE, prot, flags, vfd, 0), Ok(a));
    }
    // Dirty a page through the shared mapping, copy one privately.
    let stores: [(u64, u8); 3] = [(PAGE + 5, 0xee), (8 * PAGE + 1, 0x11), (20 * PAGE, 0x22)];
    for (off, val) in stores {
        // SAFETY: the pages are mapped writable above.
        unsafe { *((B + off) as *mut u8) = val };
        write(&m, p, B + off, &[val]);
    }
    let cases: [(&str, u64, u64); 8] = [
        ("shared file, page 1", PAGE, PAGE),
        ("shared file, past the end", 2 * PAGE, 2 * PAGE),
        ("private file", 8 * PAGE, PAGE),
        ("shared, read-only fd", 12 * PAGE, PAGE),
        ("shared read-only, writable fd", 16 * PAGE, PAGE),
        ("shared anonymous", 20 * PAGE, PAGE),
        ("private anonymous", 24 * PAGE, PAGE),
        ("a hole", 5 * PAGE, PAGE),
    ];
    let os_err = || Errno::from_code(std::io::Error::last_os_error().raw_os_error().unwrap());
    let mut diffs = Vec::new();
    for (name, off, len) in cases {
        // SAFETY: madvise on our own mappings; MADV_REMOVE only drops their contents.
        let rc = unsafe { libc::madvise((B + off) as *mut _, len as usize, libc::MADV_REMOVE) };
        let h = if rc == 0 { Ok(()) } else { Err(os_err()) };
        let v = m.madvise(p, B + off, len, MADV_REMOVE).map_err(Some);
        if h != v {
            diffs.push(format!("{name}: host {h:?}, vmlab {v:?}"));
        }
        check(&m, name);
    }
    // What the mappings read now.
    for off in [PAGE + 5, 8 * PAGE + 1, 20 * PAGE, 0] {
        // SAFETY: mapped and readable.
        let h = unsafe { *((B + off) as *const u8) };
        let v = read(&m, p, B + off, 1)[0];
        if h != v {
            diffs.push(format!("load at page offset {off:#x}: host {h}, vmlab {v}"));
        }
    }
    // SAFETY: the layout mapped above.
    unsafe { libc::munmap(B as *mut _, 25 * PAGE as usize) };
    drop((rw, ro));
    m.exit(p).unwrap();
    m.close(vrw).unwrap();
    m.close(vro).unwrap();
    assert!(
        diffs.is_empty(),
        "differences from the host kernel:\n{}",
        diffs.join("\n")
    );
    assert_eq!(th.bytes(), tv.bytes(), "file contents");
    finish(&m);
}

/// One step of `mincore_matches_the_host_kernel`, done on both sides.
enum Mc {
    Load(u64),
    Store(u64),
    Advise(u64, u64, u32),
    /// mincore(offset, pages): the vector is compared.
    Core(u64, u64),
}

/// mincore over file mappings (mm/mincore.c: a none PTE or a PTE marker is
/// looked up in the file's page cache, `mincore_page`), on the host and in
/// vmlab, step by step. The file is sparse and fresh (made by `set_len`,
/// never written), so the host's page cache holds none of its pages until
/// a fault reads one in, whatever file system the temp dir is on; the host
/// mappings are MADV_RANDOM, so a fault reads no neighbours ahead (host
/// facts this depends on: no read-ahead under MADV_RANDOM, and order-0
/// folios for the temp dir's files: a tmpfs mounted `huge=always` would
/// cache 2 MiB at a time). Runs as the file's owner, so `can_do_mincore`
/// reports the cache (vmlab does not model file owners).
#[test]
fn mincore_matches_the_host_kernel() {
    const B: u64 = 0x6200_0000_0000;
    let th = TempFile::new("mincore-host", &[]);
    let tv = TempFile::new("mincore-vm", &[]);
    let rw = std::fs::OpenOptions::new().read(true).write(true).open(&th.0).unwrap();
    rw.set_len(4 * PAGE).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&tv.0)
        .unwrap()
        .set_len(4 * PAGE)
        .unwrap();
    let m = Machine::new(&config()).unwrap();
    let vfd = host::open(&m, &tv.0, true).unwrap();
    let p = m.spawn().unwrap();
    let nr = MAP_FIXED_NOREPLACE;
    // (offset in pages, pages, prot, flags, file offset in pages)
    let layout: [(u64, u64, u32, u32, u64); 3] = [
        (0, 4, RW, MAP_SHARED | nr, 0),
        (8, 4, RW, MAP_PRIVATE | nr, 0),
        (16, 2, R, MAP_SHARED | nr, 2),
    ];
    let hfd = std::os::fd::AsRawFd::as_raw_fd(&rw);
    for (off, pages, prot, flags, fo) in layout {
        let a = B + off * PAGE;
        let len = (pages * PAGE) as usize;
        // SAFETY: MAP_FIXED_NOREPLACE never replaces a mapping.
        let h = unsafe { libc::mmap(a as *mut _, len, prot as i32, flags as i32, hfd, (fo * PAGE) as i64) };
        assert_eq!(h as u64, a, "{}", std::io::Error::last_os_error());
        // SAFETY: advice on the mapping just made.
        assert_eq!(unsafe { libc::madvise(h, len, libc::MADV_RANDOM) }, 0);
        assert_eq!(m.mmap_fd(p, a, pages * PAGE, prot, flags, vfd, fo * PAGE), Ok(a));
        m.madvise(p, a, pages * PAGE, MADV_RANDOM).unwrap();
    }
    let steps = [
        Mc::Core(0, 4),
        Mc::Core(8, 4),
        Mc::Core(16, 2),
        // A read through the shared mapping caches page 1 for every mapping.
        Mc::Load(PAGE),
        Mc::Core(0, 4),
        Mc::Core(8, 4),
        // A private write reads page 2 into the cache, then copies it.
        Mc::Store(10 * PAGE),
        Mc::Core(8, 4),
        Mc::Core(0, 4),
        Mc::Core(16, 2),
        Mc::Store(3 * PAGE),
        // Zapping the private copy: the cache still has the page.
        Mc::Advise(10 * PAGE, PAGE, MADV_DONTNEED),
        Mc::Core(8, 4),
        // A guard marker over a cached page (file mappings: Linux 6.15).
        Mc::Advise(9 * PAGE, 2 * PAGE, MADV_GUARD_INSTALL),
        Mc::Core(8, 4),
        Mc::Core(16, 2),
        // The whole layout at once runs into the hole after the first mapping.
        Mc::Core(0, 9),
    ];
    let os_err = || Errno::from_code(std::io::Error::last_os_error().raw_os_error().unwrap());
    let mut diffs = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        match *step {
            Mc::Load(off) => {
                // SAFETY: mapped and readable.
                let _ = unsafe { std::ptr::read_volatile((B + off) as *const u8) };
                read(&m, p, B + off, 1);
            }
            Mc::Store(off) => {
                // SAFETY: mapped writable.
                unsafe { std::ptr::write_volatile((B + off) as *mut u8, 9) };
                write(&m, p, B + off, &[9]);
            }
            Mc::Advise(off, len, advice) => {
                // SAFETY: advice on our own mappings.
                let rc = unsafe { libc::madvise((B + off) as *mut _, len as usize, advice as i32) };
                let h = if rc == 0 { Ok(()) } else { Err(os_err()) };
                let v = m.madvise(p, B + off, len, advice).map_err(Some);
                if h != v {
                    diffs.push(format!("step {i}: madvise host {h:?}, vmlab {v:?}"));
                }
            }
            Mc::Core(off, pages) => {
                let mut vec = vec![0u8; pages as usize];
                // SAFETY: `vec` holds one byte per page asked about.
                let rc =
                    unsafe { libc::mincore((B + off * PAGE) as *mut _, (pages * PAGE) as usize, vec.as_mut_ptr()) };
                let h = if rc == 0 { Ok(vec) } else { Err(os_err()) };
                let v = m.mincore(p, B + off * PAGE, pages * PAGE).map_err(Some);
                if h != v {
                    diffs.push(format!("step {i}: mincore at page {off}: host {h:?}, vmlab {v:?}"));
                }
            }
        }
        check(&m, "mincore step");
    }
    // SAFETY: the layout mapped above.
    unsafe { libc::munmap(B as *mut _, 18 * PAGE as usize) };
    drop(rw);
    m.exit(p).unwrap();
    m.close(vfd).unwrap();
    assert!(
        diffs.is_empty(),
        "differences from the host kernel:\n{}",
        diffs.join("\n")
    );
    finish(&m);
}
