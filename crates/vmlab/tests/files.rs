//! Host files mapped into the simulated machine (`vmlab::host`): the bytes
//! of a real file read through a mapping, MAP_SHARED stores reaching it
//! (checked with `std::fs`), MAP_PRIVATE ones never, write-back at exit and
//! when the machine is dropped, the config's `files` list, and the errno of
//! `mmap` with a file and of `msync` compared with the host kernel's own.

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
        ..Default::default()
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
    let m = Machine::new(&config()).unwrap();
    let vrw = host::open(&m, &t.0, true).unwrap();
    let vro = host::open(&m, &t.0, false).unwrap();
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
