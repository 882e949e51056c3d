//! Memory objects behind VMAs: shared anonymous memory, file mappings
//! (MAP_SHARED and MAP_PRIVATE) over an in-memory `BackingFile`, the page
//! cache, dirty tracking and write-back, msync, SIGBUS past the end, and
//! sharing across fork in all three fork designs. Every sequence ends with
//! the invariant checker; every machine ends with every frame free.

mod common;

use vmlab_mm::errno::{Errno, FaultReason, Signal};
use vmlab_mm::mm::uapi::*;
use vmlab_mm::mm::{ForkPolicy, MemFile};
use vmlab_mm::system::{ByteSize, Machine, MachineConfig, Pid};

const POLICIES: [ForkPolicy; 3] = [ForkPolicy::Cow, ForkPolicy::SharedPt, ForkPolicy::Eager];
const PAGE: u64 = 4096;
const R: u32 = PROT_READ;
const RW: u32 = PROT_READ | PROT_WRITE;

fn machine() -> Machine {
    Machine::new(&MachineConfig {
        ram: ByteSize(32 << 20),
        cpus: 2,
        ..common::test_config()
    })
    .unwrap()
}

fn pattern(tag: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(tag)).collect()
}

/// Open a file holding `bytes`; returns the fd and the test's handle.
fn open(m: &Machine, bytes: &[u8], writable: bool) -> (i32, MemFile) {
    let f = MemFile::new(bytes, writable);
    (m.open_file(Box::new(f.clone())), f)
}

fn read(m: &Machine, pid: Pid, addr: u64, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    m.read(pid, addr, &mut b).unwrap().unwrap();
    b
}

fn write(m: &Machine, pid: Pid, addr: u64, data: &[u8]) {
    m.write(pid, addr, data).unwrap().unwrap();
}

fn check(m: &Machine, what: &str) {
    m.check().unwrap_or_else(|e| panic!("{what}: {e}"));
}

/// After every process exited and every file is closed, every frame is free.
fn finish(m: &Machine) {
    for pid in m.pids() {
        m.exit(pid).unwrap();
    }
    for fd in m.fds() {
        m.close(fd).unwrap();
    }
    check(m, "after exit and close");
    assert_eq!(m.objects().len(), 0, "objects left");
    assert_eq!(m.phys().frames_used(), m.reserved_frames(), "frames leaked");
}

#[test]
fn shared_anonymous_memory_is_shared_across_fork_for_every_policy() {
    for policy in POLICIES.into_iter().filter(|&p| common::fork_allowed(p)) {
        let m = machine();
        let p = m.spawn().unwrap();
        // A private anonymous neighbour written before fork, so that
        // `shared_pt` shares the leaf table that also maps the shared pages.
        let len = 8 * PAGE;
        let s = m.mmap(p, 0, len, RW, MAP_SHARED | MAP_ANONYMOUS).unwrap();
        let a = m
            .mmap(p, s - 4 * PAGE, 4 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
            .unwrap();
        write(&m, p, a, &[5; 64]);
        assert!(read(&m, p, s, len as usize).iter().all(|&b| b == 0), "zero filled");
        let before = pattern(1, 3 * PAGE as usize);
        write(&m, p, s, &before);
        // Half the pages are mapped in the parent before fork, half are not.
        let (c, _) = m.fork_with(p, policy).unwrap();
        check(&m, "after fork");
        assert_eq!(
            read(&m, c, s, before.len()),
            before,
            "{policy:?}: child sees parent's bytes"
        );
        let from_child = pattern(2, 2 * PAGE as usize);
        write(&m, c, s + 2 * PAGE, &from_child);
        write(&m, c, s + 7 * PAGE, b"child");
        assert_eq!(
            read(&m, p, s + 2 * PAGE, from_child.len()),
            from_child,
            "{policy:?}: parent sees child's write"
        );
        assert_eq!(read(&m, p, s + 7 * PAGE, 5), b"child");
        write(&m, p, s + 100, b"parent");
        write(&m, p, s + 6 * PAGE, b"later");
        assert_eq!(
            read(&m, c, s + 100, 6),
            b"parent",
            "{policy:?}: child sees parent's write"
        );
        assert_eq!(read(&m, c, s + 6 * PAGE, 5), b"later");
        // The private neighbour stays private.
        write(&m, c, a, &[6; 8]);
        assert_eq!(read(&m, p, a, 8), vec![5; 8]);
        check(&m, "after writes");
        // A grandchild shares it too.
        let (g, _) = m.fork_with(c, policy).unwrap();
        write(&m, g, s + 3 * PAGE, b"grand");
        assert_eq!(read(&m, p, s + 3 * PAGE, 5), b"grand");
        // Unmapping in one process leaves the others' view.
        m.munmap(c, s, len).unwrap();
        assert_eq!(read(&m, g, s + 7 * PAGE, 5), b"child");
        m.exit(p).unwrap();
        assert_eq!(read(&m, g, s + 100, 6), b"parent");
        check(&m, "after munmap and exit");
        assert_eq!(m.objects().len(), 1);
        m.exit(g).unwrap();
        // The last mapping gone, the object and its pages are too.
        assert_eq!(m.objects().len(), 0);
        assert_eq!(m.page_cache_pages(), 0);
        finish(&m);
    }
}

#[test]
fn shared_anonymous_vmas_do_not_merge_with_neighbours_but_their_own_pieces_do() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, 4 * PAGE, RW, MAP_SHARED | MAP_ANONYMOUS).unwrap();
    // Another shared anonymous mapping right below: a different object.
    let b = m
        .mmap(p, a - 4 * PAGE, 4 * PAGE, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED)
        .unwrap();
    assert_eq!(b + 4 * PAGE, a);
    let maps = m.maps(p).unwrap();
    assert_eq!(maps.len(), 2);
    assert!(maps.iter().all(|l| l.perms_str() == "rw-s"));
    // Split one by mprotect and put it back: the pieces merge again.
    m.mprotect(p, a + PAGE, PAGE, R).unwrap();
    assert_eq!(m.maps(p).unwrap().len(), 4);
    m.mprotect(p, a + PAGE, PAGE, RW).unwrap();
    assert_eq!(m.maps(p).unwrap().len(), 2);
    // Write access given back by mprotect: the store goes to the shared page.
    write(&m, p, a + PAGE, b"x");
    m.mprotect(p, a, 4 * PAGE, R).unwrap();
    assert_eq!(
        m.write(p, a, b"y").unwrap().unwrap_err().reason,
        FaultReason::Protection
    );
    m.mprotect(p, a, 4 * PAGE, RW).unwrap();
    write(&m, p, a + PAGE + 1, b"y");
    let c = m.fork(p).unwrap();
    assert_eq!(read(&m, c, a + PAGE, 2), b"xy");
    check(&m, "shared anonymous");
    finish(&m);
}

#[test]
fn file_pages_are_the_file_bytes_and_sigbus_past_the_end() {
    let m = machine();
    // 2.5 pages of data.
    let data = pattern(7, 10_000);
    let (fd, f) = open(&m, &data, true);
    let p = m.spawn().unwrap();
    for flags in [MAP_SHARED, MAP_PRIVATE] {
        let a = m.mmap_fd(p, 0, 4 * PAGE, RW, flags, fd, 0).unwrap();
        assert_eq!(read(&m, p, a, data.len()), data, "flags {flags:#x}");
        // The rest of the last, partial page reads as zeros.
        assert!(read(&m, p, a + 10_000, (3 * PAGE - 10_000) as usize)
            .iter()
            .all(|&b| b == 0));
        // The fourth page is wholly beyond the end: SIGBUS, for loads and stores.
        for r in [
            m.read(p, a + 3 * PAGE, &mut [0u8; 8]).unwrap(),
            m.write(p, a + 3 * PAGE + 8, &[1u8; 8]).unwrap(),
        ] {
            let e = r.unwrap_err();
            assert_eq!((e.signal, e.reason), (Signal::Bus, FaultReason::BeyondEof), "{e}");
            assert_eq!(e.addr & !(PAGE - 1), a + 3 * PAGE);
        }
        // An offset into the file.
        let b = m.mmap_fd(p, 0, PAGE, R, flags, fd, PAGE).unwrap();
        assert_eq!(read(&m, p, b, 100), &data[PAGE as usize..PAGE as usize + 100]);
        // A mapping that starts past the end maps, and faults.
        let c = m.mmap_fd(p, 0, PAGE, R, flags, fd, 8 * PAGE).unwrap();
        assert_eq!(m.read(p, c, &mut [0u8; 1]).unwrap().unwrap_err().signal, Signal::Bus);
        check(&m, "file mapping");
    }
    // One page cache for all the mappings: three pages read once each.
    assert_eq!(m.file_object(fd).unwrap().io_counts(), (3, 0));
    assert_eq!(m.page_cache_pages(), 3);
    // Nothing was dirtied through a shared mapping, so nothing was written.
    finish(&m);
    assert_eq!(f.contents(), data);
    assert_eq!(f.writes(), 0);
}

#[test]
fn shared_file_writes_reach_the_file_on_msync_and_private_ones_never() {
    let m = machine();
    let data = pattern(3, 3 * PAGE as usize);
    let (fd, f) = open(&m, &data, true);
    let p = m.spawn().unwrap();
    let s = m.mmap_fd(p, 0, 3 * PAGE, RW, MAP_SHARED, fd, 0).unwrap();
    let v = m.mmap_fd(p, 0, 3 * PAGE, RW, MAP_PRIVATE, fd, 0).unwrap();
    // A private copy of page 0 before the shared write...
    write(&m, p, v, b"private");
    write(&m, p, s, b"shared!");
    write(&m, p, s + PAGE + 10, b"second");
    // ...keeps its own bytes; page 1, not copied yet, shows the shared write.
    assert_eq!(read(&m, p, v, 7), b"private");
    assert_eq!(read(&m, p, v + PAGE + 10, 6), b"second");
    assert_eq!(f.contents(), data, "nothing written before msync");
    m.msync(p, s, 3 * PAGE, MS_SYNC).unwrap();
    let mut want = data.clone();
    want[..7].copy_from_slice(b"shared!");
    want[PAGE as usize + 10..PAGE as usize + 16].copy_from_slice(b"second");
    assert_eq!(f.contents(), want);
    // Only the two dirty pages were written.
    assert_eq!(f.writes(), 2);
    // A second msync with nothing dirty writes nothing: page 1 is mapped by
    // the private mapping too, and its PTE's dirty bit is cleaned through the
    // reverse map (it was clean), so it is not written again. (Before the
    // reverse map, a page mapped elsewhere was always written.)
    m.msync(p, s, 3 * PAGE, MS_ASYNC).unwrap();
    assert_eq!(f.writes(), 2, "a clean page mapped elsewhere was written");
    m.msync(p, s, PAGE, MS_SYNC).unwrap();
    assert_eq!(f.writes(), 2, "a clean page mapped once is not written");
    // msync of the private mapping, and of the whole lot, never writes private bytes.
    write(&m, p, v + 2 * PAGE, b"never");
    m.msync(p, v, 3 * PAGE, MS_SYNC).unwrap();
    assert_eq!(f.contents(), want);
    check(&m, "after msync");
    m.exit(p).unwrap();
    m.close(fd).unwrap();
    assert_eq!(f.contents(), want, "private writes never reach the file");
    finish(&m);
}

#[test]
fn msync_cleans_dirty_bits_and_a_later_store_dirties_again() {
    let m = machine();
    let (fd, f) = open(&m, &[0u8; 2 * PAGE as usize], true);
    let p = m.spawn().unwrap();
    let s = m.mmap_fd(p, 0, 2 * PAGE, RW, MAP_SHARED, fd, 0).unwrap();
    // A CPU that keeps its TLB across the msyncs: its translation is cached
    // writable once dirty, and msync must shoot it down.
    let mut cpu = m.cpu(0).unwrap();
    cpu.switch_to(p).unwrap();
    cpu.store_u64(s, 1).unwrap();
    cpu.store_u64(s + 8, 2).unwrap();
    m.msync(p, s, 2 * PAGE, MS_SYNC).unwrap();
    assert_eq!(&f.contents()[..16], &[1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
    cpu.store_u64(s + 16, 3).unwrap();
    m.msync(p, s, PAGE, MS_SYNC).unwrap();
    assert_eq!(f.contents()[16], 3, "a store after msync is written by the next one");
    // A read-faulted page in a shared writable mapping is clean until stored to.
    assert_eq!(cpu.load_u64(s + PAGE).unwrap(), 0);
    let writes = f.writes();
    m.msync(p, s, 2 * PAGE, MS_SYNC).unwrap();
    assert_eq!(f.writes(), writes);
    cpu.store_u64(s + PAGE, 4).unwrap();
    drop(cpu);
    m.msync(p, s + PAGE, PAGE, MS_SYNC).unwrap();
    assert_eq!(f.contents()[PAGE as usize], 4);
    check(&m, "msync");
    finish(&m);
}

#[test]
fn dirty_pages_are_written_back_at_munmap_exit_and_release() {
    let m = machine();
    let (fd, f) = open(&m, &[0u8; 4 * PAGE as usize], true);
    let p = m.spawn().unwrap();
    let s = m.mmap_fd(p, 0, 4 * PAGE, RW, MAP_SHARED, fd, 0).unwrap();
    write(&m, p, s, b"unmap");
    write(&m, p, s + PAGE, b"exit");
    m.munmap(p, s, PAGE).unwrap();
    assert_eq!(&f.contents()[..5], b"unmap", "written back at munmap");
    assert_eq!(&f.contents()[PAGE as usize..PAGE as usize + 4], &[0; 4]);
    // Still open and still mapped: the cache stays.
    assert!(m.page_cache_pages() >= 2);
    m.exit(p).unwrap();
    assert_eq!(
        &f.contents()[PAGE as usize..PAGE as usize + 4],
        b"exit",
        "written back at exit"
    );
    // Open but unmapped: the pages stay cached until close.
    assert_eq!(m.page_cache_pages(), 2);
    check(&m, "after exit, file open");
    m.close(fd).unwrap();
    assert_eq!(m.page_cache_pages(), 0);
    assert_eq!(m.close(fd), Err(Errno::EBADF));

    // Closed first, then mapped until exit: the mapping keeps the object.
    let (fd, f) = open(&m, &[0u8; PAGE as usize], true);
    let p = m.spawn().unwrap();
    let s = m.mmap_fd(p, 0, PAGE, RW, MAP_SHARED, fd, 0).unwrap();
    m.close(fd).unwrap();
    assert_eq!(m.objects().len(), 1);
    write(&m, p, s + 100, b"after close");
    let c = m.fork(p).unwrap();
    m.exit(p).unwrap();
    assert_eq!(read(&m, c, s + 100, 11), b"after close");
    m.exit(c).unwrap();
    assert_eq!(&f.contents()[100..111], b"after close");
    finish(&m);
}

#[test]
fn shared_file_mappings_are_shared_across_fork_for_every_policy() {
    for policy in POLICIES.into_iter().filter(|&p| common::fork_allowed(p)) {
        let m = machine();
        let data = pattern(9, 6 * PAGE as usize);
        let (fd, f) = open(&m, &data, true);
        let p = m.spawn().unwrap();
        let s = m.mmap_fd(p, 0, 6 * PAGE, RW, MAP_SHARED, fd, 0).unwrap();
        // Private file and anonymous neighbours, written, so that every
        // policy has tables to copy or share around the shared mapping.
        let v = m
            .mmap_fd(p, s + 6 * PAGE, 2 * PAGE, RW, MAP_PRIVATE | MAP_FIXED, fd, 0)
            .unwrap();
        let a = m
            .mmap(p, s - 2 * PAGE, 2 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
            .unwrap();
        write(&m, p, v, b"parent private");
        write(&m, p, a, b"anon");
        write(&m, p, s + 10, b"before fork");
        let _ = read(&m, p, s + 3 * PAGE, 1);
        let (c, _) = m.fork_with(p, policy).unwrap();
        check(&m, "after fork");
        assert_eq!(read(&m, c, s + 10, 11), b"before fork", "{policy:?}");
        assert_eq!(read(&m, c, v, 14), b"parent private", "{policy:?}");
        write(&m, c, s + 3 * PAGE, b"child");
        write(&m, c, s + 5 * PAGE, b"child2");
        write(&m, p, s + 4 * PAGE, b"parent");
        assert_eq!(read(&m, p, s + 3 * PAGE, 5), b"child", "{policy:?}: parent sees child");
        assert_eq!(read(&m, p, s + 5 * PAGE, 6), b"child2", "{policy:?}");
        assert_eq!(read(&m, c, s + 4 * PAGE, 6), b"parent", "{policy:?}: child sees parent");
        // Private pages stay private both ways.
        write(&m, c, v + PAGE, b"child private");
        assert_eq!(read(&m, p, v + PAGE, 13), &data[PAGE as usize..PAGE as usize + 13]);
        check(&m, "after writes");
        // msync in the parent writes the child's stores too.
        m.msync(p, s, 6 * PAGE, MS_SYNC).unwrap();
        let file = f.contents();
        assert_eq!(&file[10..21], b"before fork", "{policy:?}");
        assert_eq!(&file[3 * PAGE as usize..3 * PAGE as usize + 5], b"child", "{policy:?}");
        assert_eq!(&file[5 * PAGE as usize..5 * PAGE as usize + 6], b"child2", "{policy:?}");
        assert_eq!(&file[4 * PAGE as usize..4 * PAGE as usize + 6], b"parent", "{policy:?}");
        // Stores after the msync, in the child, reach the file at its exit.
        write(&m, c, s + 2 * PAGE, b"late");
        m.exit(c).unwrap();
        m.exit(p).unwrap();
        m.close(fd).unwrap();
        let file = f.contents();
        assert_eq!(&file[2 * PAGE as usize..2 * PAGE as usize + 4], b"late", "{policy:?}");
        // Private writes never reached it.
        assert_eq!(&file[10..21], b"before fork");
        assert_eq!(
            &file[PAGE as usize..PAGE as usize + 13],
            &data[PAGE as usize..PAGE as usize + 13]
        );
        finish(&m);
    }
}

#[test]
fn mmap_fd_errors_follow_linux() {
    let m = machine();
    let (w, _) = open(&m, &[1u8; 10_000], true);
    let (ro, _) = open(&m, &[2u8; 10_000], false);
    let p = m.spawn().unwrap();
    let e = |r: Result<u64, Errno>| r.err();
    // The syscall's own checks: offset alignment first, then the fd.
    assert_eq!(e(m.mmap_fd(p, 0, PAGE, R, MAP_SHARED, w, 100)), Some(Errno::EINVAL));
    assert_eq!(e(m.mmap_fd(p, 0, PAGE, R, MAP_SHARED, 99, 100)), Some(Errno::EINVAL));
    assert_eq!(e(m.mmap_fd(p, 0, PAGE, R, MAP_SHARED, 99, 0)), Some(Errno::EBADF));
    assert_eq!(e(m.mmap_fd(p, 0, 0, R, MAP_SHARED, 99, 0)), Some(Errno::EBADF));
    assert_eq!(e(m.mmap_fd(p, 0, PAGE, R, MAP_SHARED, -1, 0)), Some(Errno::EBADF));
    assert_eq!(
        e(m.mmap_fd(p, 0, PAGE, R, MAP_PRIVATE | MAP_HUGETLB, w, 0)),
        Some(Errno::EINVAL)
    );
    assert_eq!(
        e(m.mmap_fd(p, 0, PAGE, R, MAP_PRIVATE | MAP_HUGETLB, 99, 0)),
        Some(Errno::EBADF)
    );
    assert_eq!(e(m.mmap_fd(p, 0, 0, R, MAP_SHARED, w, 0)), Some(Errno::EINVAL));
    // Write access to a file opened read-only.
    assert_eq!(e(m.mmap_fd(p, 0, PAGE, RW, MAP_SHARED, ro, 0)), Some(Errno::EACCES));
    assert_eq!(
        e(m.mmap_fd(p, 0, PAGE, PROT_WRITE, MAP_SHARED, ro, 0)),
        Some(Errno::EACCES)
    );
    assert_eq!(
        e(m.mmap_fd(p, 0, PAGE, RW, MAP_SHARED_VALIDATE, ro, 0)),
        Some(Errno::EACCES)
    );
    // Offset + length past the largest file size; before EACCES and the type.
    let big = 0x7fff_ffff_ffff_f000;
    assert_eq!(
        e(m.mmap_fd(p, 0, 2 * PAGE, R, MAP_SHARED, w, big)),
        Some(Errno::EOVERFLOW)
    );
    assert_eq!(
        e(m.mmap_fd(p, 0, 2 * PAGE, R, MAP_SHARED, w, big - PAGE)),
        Some(Errno::EOVERFLOW)
    );
    assert_eq!(
        e(m.mmap_fd(p, 0, 2 * PAGE, RW, MAP_SHARED, ro, big)),
        Some(Errno::EOVERFLOW)
    );
    assert_eq!(e(m.mmap_fd(p, 0, 2 * PAGE, R, 0, w, big)), Some(Errno::EOVERFLOW));
    assert_eq!(
        e(m.mmap_fd(p, 0, 2 * PAGE, R, MAP_SHARED, w, u64::MAX - PAGE + 1)),
        Some(Errno::EOVERFLOW)
    );
    assert!(m.mmap_fd(p, 0, 2 * PAGE, R, MAP_SHARED, w, big - 2 * PAGE).is_ok());
    // ...but after the length and the placement.
    assert_eq!(e(m.mmap_fd(p, 0, 0, R, MAP_SHARED, w, big)), Some(Errno::EINVAL));
    assert_eq!(e(m.mmap_fd(p, 0, 1 << 50, R, MAP_SHARED, w, big)), Some(Errno::ENOMEM));
    // Map type and flags.
    assert_eq!(e(m.mmap_fd(p, 0, PAGE, R, 0, w, 0)), Some(Errno::EINVAL));
    assert_eq!(e(m.mmap_fd(p, 0, PAGE, RW, 0, ro, 0)), Some(Errno::EINVAL));
    assert_eq!(
        e(m.mmap_fd(p, 0, PAGE, R, MAP_SHARED | MAP_GROWSDOWN, w, 0)),
        Some(Errno::EINVAL)
    );
    assert_eq!(
        e(m.mmap_fd(p, 0, PAGE, R, MAP_PRIVATE | MAP_GROWSDOWN, w, 0)),
        Some(Errno::EINVAL)
    );
    assert_eq!(
        e(m.mmap_fd(p, 0, PAGE, RW, MAP_SHARED | MAP_GROWSDOWN, ro, 0)),
        Some(Errno::EACCES)
    );
    assert_eq!(
        e(m.mmap_fd(p, 0, PAGE, R, MAP_SHARED_VALIDATE | 0x400, w, 0)),
        Some(Errno::EOPNOTSUPP)
    );
    assert_eq!(
        e(m.mmap_fd(p, 0, PAGE, RW, MAP_SHARED_VALIDATE | 0x400, ro, 0)),
        Some(Errno::EOPNOTSUPP)
    );
    assert_eq!(
        e(m.mmap_fd(p, 0, PAGE, R, MAP_SHARED_VALIDATE | MAP_SYNC, w, 0)),
        Some(Errno::EOPNOTSUPP)
    );
    assert_eq!(
        e(m.mmap_fd(p, 0, PAGE, R, MAP_SHARED | MAP_SYNC, w, 0)),
        Some(Errno::EOPNOTSUPP)
    );
    assert_eq!(
        e(m.mmap_fd(p, 0, PAGE, R, MAP_PRIVATE | MAP_SYNC, w, 0)),
        Some(Errno::EOPNOTSUPP)
    );
    assert!(m.mmap_fd(p, 0, PAGE, R, MAP_SHARED | 0x400, w, 0).is_ok());
    assert!(m.mmap_fd(p, 0, PAGE, R, MAP_SHARED_VALIDATE, w, 0).is_ok());
    assert!(m.mmap_fd(p, 0, PAGE, R, MAP_PRIVATE | 0x400, w, 0).is_ok());
    // What is allowed on a read-only file.
    assert!(m.mmap_fd(p, 0, PAGE, RW, MAP_PRIVATE, ro, 0).is_ok());
    let s = m.mmap_fd(p, 0, 2 * PAGE, R, MAP_SHARED, ro, 0).unwrap();
    assert_eq!(
        m.maps(p).unwrap().iter().find(|l| l.start == s).unwrap().perms_str(),
        "r--s"
    );
    // ...and it never becomes writable.
    assert_eq!(m.mprotect(p, s, 2 * PAGE, RW), Err(Errno::EACCES));
    assert_eq!(m.mprotect(p, s, 2 * PAGE, R | PROT_EXEC), Ok(()));
    // Anonymous memory ignores the fd, not the offset's alignment.
    assert!(m.mmap_fd(p, 0, PAGE, R, MAP_PRIVATE | MAP_ANONYMOUS, 99, 0).is_ok());
    assert!(m.mmap_fd(p, 0, PAGE, R, MAP_SHARED | MAP_ANONYMOUS, 99, big).is_ok());
    assert_eq!(
        e(m.mmap_fd(p, 0, PAGE, R, MAP_PRIVATE | MAP_ANONYMOUS, -1, 100)),
        Some(Errno::EINVAL)
    );
    // Shared anonymous: no MAP_SHARED_VALIDATE, no grows-down, charged whole.
    assert_eq!(
        e(m.mmap(p, 0, PAGE, R, MAP_SHARED_VALIDATE | MAP_ANONYMOUS)),
        Some(Errno::EINVAL)
    );
    assert_eq!(
        e(m.mmap(p, 0, PAGE, R, MAP_SHARED | MAP_ANONYMOUS | MAP_GROWSDOWN)),
        Some(Errno::EINVAL)
    );
    assert_eq!(
        e(m.mmap(p, 0, 1 << 40, R, MAP_SHARED | MAP_ANONYMOUS)),
        Some(Errno::ENOMEM)
    );
    assert!(m
        .mmap(p, 0, 1 << 40, R, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE)
        .is_ok());
    // A failed MAP_FIXED leaves the old mapping.
    let old = m.mmap_fd(p, 0, PAGE, R, MAP_PRIVATE, w, 0).unwrap();
    assert_eq!(
        e(m.mmap_fd(p, old, PAGE, R, MAP_SHARED | MAP_FIXED | MAP_SYNC, w, 0)),
        Some(Errno::EOPNOTSUPP)
    );
    assert_eq!(read(&m, p, old, 1), [1]);
    check(&m, "errno cases");
    finish(&m);
}

#[test]
fn msync_errors_follow_linux() {
    let m = machine();
    let (fd, _) = open(&m, &[0u8; 4 * PAGE as usize], true);
    let p = m.spawn().unwrap();
    let s = m.mmap_fd(p, 0, 4 * PAGE, RW, MAP_SHARED, fd, 0).unwrap();
    assert_eq!(m.msync(p, s + 1, PAGE, MS_SYNC), Err(Errno::EINVAL));
    assert_eq!(m.msync(p, s, PAGE, 8), Err(Errno::EINVAL));
    assert_eq!(m.msync(p, s, PAGE, MS_SYNC | MS_ASYNC), Err(Errno::EINVAL));
    assert_eq!(m.msync(p, s, 0, MS_SYNC), Ok(()));
    assert_eq!(m.msync(p, 0x10_0000, 0, MS_SYNC), Ok(()));
    assert_eq!(m.msync(p, 0x10_0000, PAGE, MS_SYNC), Err(Errno::ENOMEM));
    assert_eq!(m.msync(p, 0x10_0000, PAGE, MS_ASYNC), Err(Errno::ENOMEM));
    assert_eq!(m.msync(p, 0x10_0000, PAGE, 0), Err(Errno::ENOMEM));
    assert_eq!(m.msync(p, 0x10_0000, PAGE, MS_INVALIDATE), Err(Errno::ENOMEM));
    // A length that wraps to 0 when rounded is no range; one that wraps the end is ENOMEM.
    assert_eq!(m.msync(p, s, u64::MAX, MS_SYNC), Ok(()));
    assert_eq!(m.msync(p, s, u64::MAX - 2 * PAGE + 1, MS_SYNC), Err(Errno::ENOMEM));
    assert_eq!(m.msync(p, 1 << 47, PAGE, MS_SYNC), Err(Errno::ENOMEM));
    assert_eq!(m.msync(p, s, 4 * PAGE, MS_SYNC), Ok(()));
    assert_eq!(m.msync(p, s, 4 * PAGE, 0), Ok(()));
    assert_eq!(m.msync(p, s, 4 * PAGE, MS_INVALIDATE), Ok(()));
    // Holes: in the middle, after the end, at the start.
    m.munmap(p, s + PAGE, PAGE).unwrap();
    write(&m, p, s + 2 * PAGE, b"past the hole");
    assert_eq!(m.msync(p, s, 4 * PAGE, MS_SYNC), Err(Errno::ENOMEM));
    // The mapped part after the hole was still written back.
    assert_eq!(m.file_object(fd).unwrap().io_counts().1, 1);
    assert_eq!(m.msync(p, s, 4 * PAGE, MS_ASYNC), Err(Errno::ENOMEM));
    assert_eq!(m.msync(p, s + PAGE, 3 * PAGE, MS_ASYNC), Err(Errno::ENOMEM));
    assert_eq!(m.msync(p, s + PAGE, 3 * PAGE, MS_SYNC), Err(Errno::ENOMEM));
    assert_eq!(m.msync(p, s + 3 * PAGE, 100 * PAGE, MS_SYNC), Err(Errno::ENOMEM));
    // Anonymous memory: nothing to do, no error. Locked memory with MS_INVALIDATE: EBUSY.
    let a = m.mmap(p, 0, 2 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS).unwrap();
    assert_eq!(m.msync(p, a, 2 * PAGE, MS_SYNC), Ok(()));
    let l = m
        .mmap(p, 0, 2 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED)
        .unwrap();
    assert_eq!(m.msync(p, l, 2 * PAGE, MS_INVALIDATE), Err(Errno::EBUSY));
    assert_eq!(m.msync(p, l, 2 * PAGE, MS_INVALIDATE | MS_SYNC), Err(Errno::EBUSY));
    assert_eq!(m.msync(p, l, 2 * PAGE, MS_SYNC), Ok(()));
    assert_eq!(m.msync(99, s, PAGE, MS_SYNC), Err(Errno::ESRCH));
    check(&m, "msync errno");
    finish(&m);
}

#[test]
fn a_failed_write_back_is_reported_and_the_page_stays_dirty() {
    let m = machine();
    let (fd, f) = open(&m, &[0u8; PAGE as usize], true);
    let p = m.spawn().unwrap();
    let s = m.mmap_fd(p, 0, PAGE, RW, MAP_SHARED, fd, 0).unwrap();
    write(&m, p, s, b"data");
    f.set_fail_writes(true);
    assert_eq!(m.msync(p, s, PAGE, MS_SYNC), Err(Errno::ENOSPC));
    f.set_fail_writes(false);
    m.msync(p, s, PAGE, MS_SYNC).unwrap();
    assert_eq!(&f.contents()[..4], b"data");
    // A failure at munmap (no caller to tell) is reported by the next msync of the file.
    write(&m, p, s, b"more");
    let t = m.mmap_fd(p, 0, PAGE, RW, MAP_SHARED, fd, 0).unwrap();
    f.set_fail_writes(true);
    m.munmap(p, s, PAGE).unwrap();
    f.set_fail_writes(false);
    assert_eq!(m.msync(p, t, PAGE, MS_SYNC), Err(Errno::ENOSPC));
    assert_eq!(m.msync(p, t, PAGE, MS_SYNC), Ok(()));
    assert_eq!(&f.contents()[..4], b"more");
    check(&m, "write-back errors");
    finish(&m);
}

#[test]
fn private_file_mappings_copy_on_write_and_fork_for_every_policy() {
    for policy in POLICIES.into_iter().filter(|&p| common::fork_allowed(p)) {
        let m = machine();
        let data = pattern(4, 4 * PAGE as usize);
        let (fd, f) = open(&m, &data, false);
        let p = m.spawn().unwrap();
        let v = m.mmap_fd(p, 0, 4 * PAGE, RW, MAP_PRIVATE, fd, 0).unwrap();
        // Page 0 read first (then copied on write), page 1 written at once.
        assert_eq!(read(&m, p, v, 16), &data[..16]);
        write(&m, p, v, b"p0");
        write(&m, p, v + PAGE, b"p1");
        let _ = read(&m, p, v + 2 * PAGE, 1);
        let (c, _) = m.fork_with(p, policy).unwrap();
        check(&m, "after fork");
        assert_eq!(read(&m, c, v, 2), b"p0", "{policy:?}");
        assert_eq!(read(&m, c, v + PAGE, 2), b"p1");
        assert_eq!(
            read(&m, c, v + 3 * PAGE, 8),
            &data[3 * PAGE as usize..3 * PAGE as usize + 8]
        );
        write(&m, c, v, b"c0");
        write(&m, c, v + 2 * PAGE, b"c2");
        assert_eq!(read(&m, p, v, 2), b"p0", "{policy:?}");
        assert_eq!(
            read(&m, p, v + 2 * PAGE, 2),
            &data[2 * PAGE as usize..2 * PAGE as usize + 2]
        );
        write(&m, p, v + 3 * PAGE, b"p3");
        assert_eq!(
            read(&m, c, v + 3 * PAGE, 2),
            &data[3 * PAGE as usize..3 * PAGE as usize + 2]
        );
        check(&m, "after writes");
        m.exit(p).unwrap();
        m.exit(c).unwrap();
        finish(&m);
        assert_eq!(f.contents(), data);
        assert_eq!(f.writes(), 0);
    }
}

#[test]
fn file_vmas_merge_as_linux_does() {
    let m = machine();
    let (fd, _) = open(&m, &[0u8; 8 * PAGE as usize], true);
    let (fd2, _) = open(&m, &[0u8; 8 * PAGE as usize], true);
    let p = m.spawn().unwrap();
    let base = m.mmap(p, 0, 8 * PAGE, R, MAP_PRIVATE | MAP_ANONYMOUS).unwrap();
    m.munmap(p, base, 8 * PAGE).unwrap();
    let fixed = MAP_SHARED | MAP_FIXED;
    // Same file, contiguous offsets: one VMA.
    m.mmap_fd(p, base, 2 * PAGE, RW, fixed, fd, 0).unwrap();
    m.mmap_fd(p, base + 2 * PAGE, 2 * PAGE, RW, fixed, fd, 2 * PAGE)
        .unwrap();
    assert_eq!(m.maps(p).unwrap().len(), 1);
    // Offsets that do not continue: two.
    m.mmap_fd(p, base + 4 * PAGE, PAGE, RW, fixed, fd, 6 * PAGE).unwrap();
    assert_eq!(m.maps(p).unwrap().len(), 2);
    // Another file (another object) at the right offset: no merge.
    m.mmap_fd(p, base + 5 * PAGE, PAGE, RW, fixed, fd2, 7 * PAGE).unwrap();
    assert_eq!(m.maps(p).unwrap().len(), 3);
    // Private and shared mappings of one file: no merge.
    m.mmap_fd(p, base + 6 * PAGE, PAGE, RW, MAP_PRIVATE | MAP_FIXED, fd2, 8 * PAGE)
        .unwrap();
    assert_eq!(m.maps(p).unwrap().len(), 4);
    // Replacing the mapping of fd2 at base+5 by one of fd that continues: merges.
    m.mmap_fd(p, base + 5 * PAGE, PAGE, RW, fixed, fd, 7 * PAGE).unwrap();
    assert_eq!(m.maps(p).unwrap().len(), 3);
    check(&m, "merges");
    finish(&m);
}

#[test]
fn many_cpus_fault_one_shared_file_page_cache() {
    let m = Machine::new(&MachineConfig {
        ram: ByteSize(64 << 20),
        cpus: 4,
        ..common::test_config()
    })
    .unwrap();
    let pages = 64u64;
    let data = pattern(11, (pages * PAGE) as usize);
    let (fd, f) = open(&m, &data, true);
    let p = m.spawn().unwrap();
    let s = m.mmap_fd(p, 0, pages * PAGE, RW, MAP_SHARED, fd, 0).unwrap();
    let v = m.mmap_fd(p, 0, pages * PAGE, RW, MAP_PRIVATE, fd, 0).unwrap();
    std::thread::scope(|sc| {
        for id in 0..4usize {
            let (m, data) = (&m, &data);
            sc.spawn(move || {
                let mut cpu = m.cpu(id).unwrap();
                cpu.switch_to(p).unwrap();
                for i in 0..pages {
                    let off = i * PAGE + 8 * id as u64;
                    let w = cpu.load_u64(s + off).unwrap();
                    assert_eq!(w.to_le_bytes(), data[off as usize..off as usize + 8]);
                    cpu.store_u64(s + off, id as u64 + 1).unwrap();
                    let _ = cpu.load_u64(v + off).unwrap();
                    cpu.store_u64(v + off + 64, 7).unwrap();
                }
            });
        }
    });
    check(&m, "after concurrent faults");
    m.msync(p, s, pages * PAGE, MS_SYNC).unwrap();
    let file = f.contents();
    for i in 0..pages {
        for id in 0..4u64 {
            let off = (i * PAGE + 8 * id) as usize;
            assert_eq!(file[off..off + 8], (id + 1).to_le_bytes());
            assert_eq!(file[off + 64..off + 72], data[off + 64..off + 72]);
        }
    }
    finish(&m);
}

/// A store through a shared file mapping made before a `shared_pt` fork
/// lives in a leaf table the two processes share; when the last of them
/// exits, the table's release must pass the PTE's dirty bit on to the page.
#[test]
fn a_dirty_pte_in_a_shared_table_reaches_the_file_when_the_table_goes() {
    if !common::fork_allowed(ForkPolicy::SharedPt) {
        return;
    }
    let m = machine();
    let (fd, f) = open(&m, &[0u8; 2 * PAGE as usize], true);
    let p = m.spawn().unwrap();
    let s = m.mmap_fd(p, 0, 2 * PAGE, RW, MAP_SHARED, fd, 0).unwrap();
    let a = m
        .mmap(p, s - PAGE, PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
        .unwrap();
    write(&m, p, a, b"anon");
    write(&m, p, s, b"dirty before fork");
    let (c, report) = m.fork_with(p, ForkPolicy::SharedPt).unwrap();
    assert_eq!(report.tables_shared, 1);
    m.close(fd).unwrap();
    m.exit(p).unwrap();
    m.exit(c).unwrap();
    assert_eq!(&f.contents()[..17], b"dirty before fork");
    finish(&m);
}

// ---- File syscalls through the page cache (read, write, lseek, ftruncate, MADV_REMOVE) ----

fn sigbus(m: &Machine, pid: Pid, addr: u64) -> bool {
    match m.read(pid, addr, &mut [0u8; 1]).unwrap() {
        Err(f) => f.signal == Signal::Bus && f.reason == FaultReason::BeyondEof,
        Ok(()) => false,
    }
}

fn pread_all(m: &Machine, fd: i32, off: u64, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    let n = m.pread(fd, &mut b, off as i64).unwrap();
    b.truncate(n);
    b
}

/// A `write` is seen at once by a load through a MAP_SHARED mapping and
/// through a MAP_PRIVATE mapping's pages not yet written (mapped before or
/// not), a private copy keeps its bytes, and a store through a shared
/// mapping is seen by `read`; write-back then puts it all in the file.
#[test]
fn write_and_read_are_coherent_with_shared_and_private_mappings() {
    let m = machine();
    let data = pattern(7, 3 * PAGE as usize);
    let (fd, file) = open(&m, &data, true);
    let p = m.spawn().unwrap();
    let s = m.mmap_fd(p, 0, 3 * PAGE, RW, MAP_SHARED, fd, 0).unwrap();
    let v = m.mmap_fd(p, 0, 3 * PAGE, RW, MAP_PRIVATE, fd, 0).unwrap();
    // Page 0 mapped read-only in the private mapping, page 1 copied on
    // write, page 2 never touched (not even cached).
    assert_eq!(read(&m, p, v, 8), data[..8]);
    assert_eq!(read(&m, p, s + PAGE, 8), data[PAGE as usize..PAGE as usize + 8]);
    write(&m, p, v + PAGE, b"mine");
    check(&m, "mapped");
    for pg in 0..3u64 {
        assert_eq!(m.pwrite(fd, b"NEW!", (pg * PAGE + 100) as i64), Ok(4));
    }
    check(&m, "after pwrite");
    for pg in 0..3u64 {
        assert_eq!(read(&m, p, s + pg * PAGE + 100, 4), b"NEW!", "shared page {pg}");
    }
    assert_eq!(read(&m, p, v + 100, 4), b"NEW!", "private page mapped from the cache");
    assert_eq!(
        read(&m, p, v + 2 * PAGE + 100, 4),
        b"NEW!",
        "private page not yet faulted"
    );
    assert_eq!(
        read(&m, p, v + PAGE + 100, 4),
        data[PAGE as usize + 100..PAGE as usize + 104],
        "a private copy keeps its bytes"
    );
    assert_eq!(read(&m, p, v + PAGE, 4), b"mine");
    // A store through the shared mapping, then read and the file offset.
    write(&m, p, s + 2 * PAGE + 7, b"stored");
    assert_eq!(m.lseek(fd, 2 * PAGE as i64 + 7, SEEK_SET), Ok(2 * PAGE as i64 + 7));
    let mut b = [0u8; 6];
    assert_eq!(m.read_fd(fd, &mut b), Ok(6));
    assert_eq!(&b, b"stored");
    assert_eq!(m.lseek(fd, 0, SEEK_CUR), Ok(2 * PAGE as i64 + 13));
    assert_eq!(file.contents(), data, "nothing written back yet");
    // write() at the offset: seen through the private mapping too.
    assert_eq!(m.write_fd(fd, b"xyz"), Ok(3));
    assert_eq!(read(&m, p, v + 2 * PAGE + 13, 3), b"xyz");
    check(&m, "after read and write");
    m.exit(p).unwrap();
    m.close(fd).unwrap();
    let c = file.contents();
    assert_eq!(&c[100..104], b"NEW!");
    assert_eq!(&c[2 * PAGE as usize + 7..2 * PAGE as usize + 16], b"storedxyz");
    assert_eq!(
        &c[PAGE as usize..PAGE as usize + 4],
        &data[PAGE as usize..PAGE as usize + 4]
    );
    finish(&m);
}

/// Writes past the end grow the file (a gap reads as zeros, a store past
/// the old end through a mapping does not reappear); a read-only or
/// write-only fd refuses what its mode does not allow; mmap of a write-only
/// fd is EACCES; EFBIG at the file system's largest size.
#[test]
fn writes_grow_the_file_and_access_modes_are_enforced() {
    let m = machine();
    let (fd, file) = open(&m, b"0123456789", true);
    let p = m.spawn().unwrap();
    let s = m.mmap_fd(p, 0, 2 * PAGE, RW, MAP_SHARED, fd, 0).unwrap();
    // A store past the end of the file in its last page stays in memory only...
    write(&m, p, s + 20, b"junk");
    assert!(sigbus(&m, p, s + PAGE));
    // ...and a write past it must not bring it back.
    assert_eq!(m.pwrite(fd, b"Z", 30), Ok(1));
    assert_eq!(m.fstat(fd).map(|st| st.size), Ok(31));
    let mut want = b"0123456789".to_vec();
    want.resize(30, 0);
    want.push(b'Z');
    assert_eq!(pread_all(&m, fd, 0, 100), want);
    assert_eq!(read(&m, p, s + 20, 4), [0; 4], "the old tail was zeroed");
    // Growing into the next page: the mapping reaches it now.
    assert_eq!(m.pwrite(fd, b"P2", PAGE as i64 + 1), Ok(2));
    assert_eq!(read(&m, p, s + PAGE, 3), b"\0P2");
    check(&m, "grown");
    // Modes.
    let ro = m.open_file(Box::new(MemFile::with_mode(b"ro", true, false)));
    let wo_file = MemFile::with_mode(b"wo", false, true);
    let wo = m.open_file(Box::new(wo_file.clone()));
    let mut b = [0u8; 4];
    assert_eq!(m.read_fd(wo, &mut b), Err(Errno::EBADF));
    assert_eq!(m.pread(wo, &mut b, 0), Err(Errno::EBADF));
    assert_eq!(m.write_fd(ro, b"x"), Err(Errno::EBADF));
    assert_eq!(m.pwrite(ro, b"x", 0), Err(Errno::EBADF));
    assert_eq!(m.ftruncate(ro, 0), Err(Errno::EINVAL));
    assert_eq!(m.ftruncate(999, 0), Err(Errno::EBADF));
    assert_eq!(m.ftruncate(999, -1), Err(Errno::EINVAL));
    assert_eq!(m.pread(999, &mut b, -1), Err(Errno::EINVAL));
    assert_eq!(m.read_fd(999, &mut b), Err(Errno::EBADF));
    assert_eq!(m.lseek(ro, 0, 5), Err(Errno::EINVAL));
    assert_eq!(m.lseek(ro, -1, SEEK_SET), Err(Errno::EINVAL));
    assert_eq!(m.lseek(ro, 0, SEEK_END), Ok(2));
    assert_eq!(m.lseek(ro, 2, SEEK_DATA), Err(Errno::ENXIO));
    assert_eq!(m.read_fd(ro, &mut b), Ok(0));
    for flags in [MAP_SHARED, MAP_PRIVATE] {
        assert_eq!(m.mmap_fd(p, 0, PAGE, R, flags, wo, 0), Err(Errno::EACCES));
    }
    assert_eq!(m.mmap_fd(p, 0, PAGE, RW, MAP_SHARED, ro, 0), Err(Errno::EACCES));
    // A write-only file is written through the cache all the same.
    assert_eq!(m.write_fd(wo, b"W"), Ok(1));
    assert_eq!(m.pwrite(wo, b"x", MemFile::MAX_LEN as i64), Err(Errno::EFBIG));
    assert_eq!(m.pwrite(wo, b"ab", MemFile::MAX_LEN as i64 - 1), Ok(1));
    assert_eq!(m.ftruncate(wo, MemFile::MAX_LEN as i64 + 1), Err(Errno::EFBIG));
    assert_eq!(m.ftruncate(wo, 3), Ok(()));
    assert_eq!(m.pwrite(wo, b"x", i64::MAX), Err(Errno::EINVAL));
    check(&m, "modes");
    m.close(wo).unwrap();
    assert_eq!(wo_file.contents(), b"Wo\0");
    assert_eq!(wo_file.refused_writes(), 0);
    finish(&m);
    assert_eq!(&file.contents()[PAGE as usize..PAGE as usize + 3], b"\0P2");
}

/// ftruncate to a smaller size unmaps the pages past the new end from every
/// mapping in every address space (a shared mapping, a private one with a
/// copy past the end, a forked child under each fork policy): an access
/// there is SIGBUS; the tail of the partial last page reads zeros; the
/// pages leave the cache. Growing again makes the range read as zeros.
#[test]
fn truncation_unmaps_every_mapping_and_growth_reads_zeros() {
    for policy in POLICIES.into_iter().filter(|&p| common::fork_allowed(p)) {
        let m = machine();
        let data = pattern(3, 4 * PAGE as usize);
        let (fd, file) = open(&m, &data, true);
        let a = m.spawn().unwrap();
        let b = m.spawn().unwrap();
        let s = m.mmap_fd(a, 0, 4 * PAGE, RW, MAP_SHARED, fd, 0).unwrap();
        let v = m.mmap_fd(b, 0, 4 * PAGE, RW, MAP_PRIVATE, fd, 0).unwrap();
        // A private anonymous page beside, so fork has page tables to copy or share.
        let anon = m
            .mmap(a, s - PAGE, PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
            .unwrap();
        write(&m, a, anon, b"anon");
        for pg in 0..4 {
            read(&m, a, s + pg * PAGE, 1);
            read(&m, b, v + pg * PAGE, 1);
        }
        write(&m, b, v + 3 * PAGE, b"copy");
        write(&m, a, s + 2 * PAGE, b"dirty");
        let (c, _) = m.fork_with(a, policy).unwrap();
        for pg in 0..4 {
            read(&m, c, s + pg * PAGE, 1);
        }
        check(&m, "before truncation");
        let new = PAGE + 100;
        assert_eq!(m.ftruncate(fd, new as i64), Ok(()), "{policy:?}");
        check(&m, "after truncation");
        assert_eq!(m.fstat(fd).unwrap().size, new);
        assert_eq!(file.contents(), &data[..new as usize]);
        for (who, pid, base) in [("shared", a, s), ("child", c, s), ("private", b, v)] {
            for pg in 2..4 {
                assert!(sigbus(&m, pid, base + pg * PAGE), "{policy:?} {who} page {pg}");
            }
            assert_eq!(read(&m, pid, base + 100, 4), data[100..104], "{who}");
            assert_eq!(read(&m, pid, base + new, 8), [0; 8], "{who}: tail of the last page");
        }
        assert_eq!(read(&m, c, anon, 4), b"anon");
        assert!(m
            .file_object(fd)
            .unwrap()
            .cache_snapshot()
            .iter()
            .all(|&(pg, _)| pg < 2));
        check(&m, "after the SIGBUS accesses");
        // Grow: zeros, through the old mappings.
        assert_eq!(m.ftruncate(fd, 4 * PAGE as i64), Ok(()));
        for (who, pid, base) in [("shared", a, s), ("child", c, s), ("private", b, v)] {
            assert_eq!(
                read(&m, pid, base + 3 * PAGE, 8),
                [0; 8],
                "{policy:?} {who}: grown page"
            );
            assert_eq!(read(&m, pid, base + new, 8), [0; 8], "{who}: old tail");
        }
        assert_eq!(
            pread_all(&m, fd, new - 4, 8),
            [&data[new as usize - 4..new as usize], &[0u8; 4][..]].concat()
        );
        check(&m, "after growth");
        finish(&m);
        let mut want = data[..new as usize].to_vec();
        want.resize(4 * PAGE as usize, 0);
        assert_eq!(file.contents(), want, "{policy:?}");
    }
}

/// Truncation in the middle of a 2 MiB block that processes map through
/// one shared object page table (`fork = shared_pt`): every sharer faults.
#[test]
fn truncation_reaches_processes_sharing_an_object_page_table() {
    let cfg = MachineConfig {
        ram: ByteSize(32 << 20),
        cpus: 2,
        fork: vmlab_mm::system::config::ForkName::SharedPt,
        ..common::test_config()
    };
    if !common::allowed(&cfg) {
        return;
    }
    let m = Machine::new(&cfg).unwrap();
    let block = 2u64 << 20;
    let (fd, _file) = open(&m, &pattern(9, block as usize), true);
    let base = 0x4000_0000u64;
    let pids: Vec<Pid> = (0..3).map(|_| m.spawn().unwrap()).collect();
    for &p in &pids {
        m.mmap_fd(p, base, block, RW, MAP_SHARED | MAP_FIXED, fd, 0).unwrap();
        read(&m, p, base + 100 * PAGE, 1);
        read(&m, p, base + 300 * PAGE, 1);
    }
    check(&m, "shared table");
    assert_eq!(m.ftruncate(fd, (200 * PAGE) as i64), Ok(()));
    check(&m, "after truncation");
    for &p in &pids {
        assert!(sigbus(&m, p, base + 300 * PAGE));
        assert_eq!(
            read(&m, p, base + 100 * PAGE, 1),
            pattern(9, block as usize)[100 * PAGE as usize..][..1]
        );
    }
    finish(&m);
}

/// MADV_REMOVE on a shared file mapping punches a hole: the file reads
/// zeros there, every shared mapping and the private mapping's pages that
/// still map the cache see zeros, a private copy stays; on shared
/// anonymous memory the pages go for every process that shares it.
#[test]
fn madvise_remove_punches_a_hole_in_every_mapping() {
    if !common::fork_allowed(ForkPolicy::Cow) {
        return;
    }
    let m = machine();
    let data = pattern(5, 4 * PAGE as usize);
    let (fd, file) = open(&m, &data, true);
    let a = m.spawn().unwrap();
    let s = m.mmap_fd(a, 0, 4 * PAGE, RW, MAP_SHARED, fd, 0).unwrap();
    let v = m.mmap_fd(a, 0, 4 * PAGE, RW, MAP_PRIVATE, fd, 0).unwrap();
    let sh = m.mmap(a, 0, 2 * PAGE, RW, MAP_SHARED | MAP_ANONYMOUS).unwrap();
    write(&m, a, sh, b"shm0");
    write(&m, a, sh + PAGE, b"shm1");
    for pg in 0..4 {
        read(&m, a, v + pg * PAGE, 1);
    }
    write(&m, a, v + 2 * PAGE, b"copy");
    write(&m, a, s + PAGE, b"dirty");
    let (c, _) = m.fork_with(a, ForkPolicy::Cow).unwrap();
    read(&m, c, s + PAGE, 1);
    assert_eq!(m.madvise(c, s + PAGE, 2 * PAGE, MADV_REMOVE), Ok(()));
    check(&m, "after MADV_REMOVE");
    let c0 = file.contents();
    assert!(
        c0[PAGE as usize..3 * PAGE as usize].iter().all(|&x| x == 0),
        "a hole in the file"
    );
    assert_eq!(c0[..PAGE as usize], data[..PAGE as usize]);
    assert_eq!(c0.len(), data.len(), "the size is kept");
    for (pid, base) in [(a, s), (c, s), (a, v), (c, v)] {
        assert_eq!(read(&m, pid, base + PAGE, 8), [0; 8]);
    }
    assert_eq!(read(&m, a, v + 2 * PAGE, 4), b"copy", "a private copy stays");
    assert_eq!(read(&m, a, s + 2 * PAGE, 4), [0; 4]);
    assert_eq!(read(&m, a, s + 3 * PAGE, 4), data[3 * PAGE as usize..][..4]);
    // Shared anonymous memory.
    assert_eq!(m.madvise(a, sh + PAGE, PAGE, MADV_REMOVE), Ok(()));
    assert_eq!(read(&m, c, sh, 4), b"shm0");
    assert_eq!(read(&m, c, sh + PAGE, 4), [0; 4]);
    assert_eq!(read(&m, a, sh + PAGE, 4), [0; 4]);
    // Linux's refusals.
    assert_eq!(m.madvise(a, v, PAGE, MADV_REMOVE), Err(Errno::EACCES));
    let anon = m.mmap(a, 0, PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS).unwrap();
    assert_eq!(m.madvise(a, anon, PAGE, MADV_REMOVE), Err(Errno::EINVAL));
    check(&m, "end");
    finish(&m);
}

/// A fault on a file page not in the page cache is major: it drops its
/// locks, reads the page, and faults again (Linux VM_FAULT_RETRY), under
/// every fault_lock policy; a cached page is a minor fault; MADV_POPULATE
/// reads pages the same way; a read error is still SIGBUS.
#[test]
fn file_faults_that_read_are_major_and_retried() {
    use vmlab_mm::system::config::FaultLockName;
    for fault_lock in [FaultLockName::MmLock, FaultLockName::PtLock, FaultLockName::PteBit] {
        let m = Machine::new(&MachineConfig {
            ram: ByteSize(32 << 20),
            cpus: 2,
            fault_lock,
            ..common::test_config()
        })
        .unwrap();
        let bytes = pattern(3, 8 * 4096);
        let (fd, file) = open(&m, &bytes, true);
        let pid = m.spawn().unwrap();
        let a = m.mmap_fd(pid, 0, 8 * 4096, PROT_READ, MAP_SHARED, fd, 0).unwrap();
        let majors = |m: &Machine| m.stats().major_faults;
        assert_eq!(read(&m, pid, a + 4096, 16), &bytes[4096..4096 + 16], "{fault_lock:?}");
        assert_eq!(majors(&m), 1, "{fault_lock:?}: one page read");
        let minors = m.stats().minor_faults;
        assert_eq!(read(&m, pid, a + 4096 + 100, 8), &bytes[4196..4204]);
        assert_eq!(majors(&m), 1, "{fault_lock:?}: no second read of a cached page");
        // Another process maps the cached page: a minor fault.
        let other = m.spawn().unwrap();
        let b = m.mmap_fd(other, 0, 8 * 4096, PROT_READ, MAP_PRIVATE, fd, 0).unwrap();
        assert_eq!(read(&m, other, b + 4096, 8), &bytes[4096..4104]);
        assert_eq!(majors(&m), 1);
        assert!(m.stats().minor_faults > minors);
        // MADV_POPULATE_READ reads the other seven pages, one major fault each.
        m.madvise(pid, a, 8 * 4096, MADV_POPULATE_READ).unwrap();
        assert_eq!(majors(&m), 8, "{fault_lock:?}");
        assert_eq!(read(&m, pid, a + 7 * 4096, 4096), &bytes[7 * 4096..]);
        assert_eq!(majors(&m), 8);
        check(&m, "after populate");
        // A read error is SIGBUS (the retried fault never happens).
        let (fd2, bad) = open(&m, &bytes[..4096], true);
        let c = m.mmap_fd(pid, 0, 4096, PROT_READ, MAP_SHARED, fd2, 0).unwrap();
        bad.set_fail_reads(true);
        let mut buf = [0u8; 8];
        let f = m.read(pid, c, &mut buf).unwrap().unwrap_err();
        assert_eq!(
            (f.signal, f.reason),
            (Signal::Bus, FaultReason::IoError),
            "{fault_lock:?}"
        );
        assert_eq!(majors(&m), 9);
        assert_eq!(
            m.madvise(pid, c, 4096, MADV_POPULATE_READ),
            Err(Errno::EFAULT),
            "populate of an unreadable page"
        );
        bad.set_fail_reads(false);
        assert_eq!(read(&m, pid, c, 8), &bytes[..8]);
        drop(file);
        finish(&m);
    }
}
