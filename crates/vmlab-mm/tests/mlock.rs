//! Memory locking (mlock, mlock2, munlock, mlockall, munlockall,
//! MAP_LOCKED, MAP_POPULATE, RLIMIT_MEMLOCK): errno, VMA splits and merges,
//! and what is pre-faulted, seen in the page table. Each sequence ends with
//! the invariant checker and every frame free after exit. The host-judged
//! cases are in crates/vmlab/tests/linux_semantics.rs (`mlock_*`).

mod common;

use vmlab_mm::errno::Errno;
use vmlab_mm::mm::uapi::*;
use vmlab_mm::mm::{MemFile, Rlimit};
use vmlab_mm::system::{ByteSize, Machine, MachineConfig, Pid};

const P: u64 = 4096;
const R: u32 = PROT_READ;
const RW: u32 = PROT_READ | PROT_WRITE;
const PA: u32 = MAP_PRIVATE | MAP_ANONYMOUS;
const BASE: u64 = 0x7000_0000_0000;

fn machine() -> Machine {
    Machine::new(&MachineConfig {
        ram: ByteSize(32 << 20),
        cpus: 2,
        ..common::test_config()
    })
    .unwrap()
}

/// MAP_FIXED anonymous private mapping of `n` pages at page `at` of BASE.
fn map(m: &Machine, pid: Pid, at: u64, n: u64, prot: u32, extra: u32) -> u64 {
    m.mmap(pid, BASE + at * P, n * P, prot, PA | MAP_FIXED | extra).unwrap()
}

/// The leaf PTE of `va`, if present.
fn pte(m: &Machine, pid: Pid, va: u64) -> Option<vmlab_mm::pgtable::Pte> {
    let p = m.process(pid).unwrap();
    let e = p.mm.page_table().leaf(m.phys(), va)?.load();
    e.present().then_some(e)
}

/// Which of the `n` pages from page `at` are present, as a string of 0/1
/// (`w` for present and writable, i.e. COW already broken).
fn resident(m: &Machine, pid: Pid, at: u64, n: u64) -> String {
    (0..n)
        .map(|i| match pte(m, pid, BASE + (at + i) * P) {
            None => '0',
            Some(e) if e.writable() => 'w',
            Some(_) => '1',
        })
        .collect()
}

/// Whether any of the `n` pages from page `at` has a dirty PTE.
fn dirty(m: &Machine, pid: Pid, at: u64, n: u64) -> bool {
    (0..n).any(|i| pte(m, pid, BASE + (at + i) * P).is_some_and(|e| e.dirty()))
}

/// VMAs in the window as (start page, end page).
fn vmas(m: &Machine, pid: Pid) -> Vec<(u64, u64)> {
    m.maps(pid)
        .unwrap()
        .into_iter()
        .filter(|l| l.start >= BASE && l.start < BASE + (1 << 30))
        .map(|l| ((l.start - BASE) / P, (l.end - BASE) / P))
        .collect()
}

#[test]
fn mlock_populates_writable_private_memory_for_write_and_splits() {
    let m = machine();
    let pid = m.spawn().unwrap();
    map(&m, pid, 0, 8, RW, 0);
    assert_eq!(resident(&m, pid, 0, 8), "00000000");
    // Unaligned start: rounded down; the length covers the last byte.
    m.mlock(pid, BASE + 2 * P + 100, 2 * P).unwrap();
    assert_eq!(resident(&m, pid, 0, 8), "00www000");
    assert_eq!(vmas(&m, pid), [(0, 2), (2, 5), (5, 8)]);
    assert_eq!(m.locked_pages(pid), Ok(3));
    m.check().unwrap();
    // munlock merges the pieces back; the pages stay.
    m.munlock(pid, BASE + 2 * P, 3 * P).unwrap();
    assert_eq!(vmas(&m, pid), [(0, 8)]);
    assert_eq!(m.locked_pages(pid), Ok(0));
    assert_eq!(resident(&m, pid, 0, 8), "00www000");
    // Locked memory keeps its contents through the lock.
    m.write(pid, BASE + 3 * P, &[7; 8]).unwrap().unwrap();
    m.mlock(pid, BASE, 8 * P).unwrap();
    let mut b = [0u8; 8];
    m.read(pid, BASE + 3 * P, &mut b).unwrap().unwrap();
    assert_eq!(b, [7; 8]);
    assert_eq!(resident(&m, pid, 0, 8), "wwwwwwww");
    common::finish(&m);
}

#[test]
fn mlock_of_read_only_memory_maps_for_read() {
    let m = machine();
    let pid = m.spawn().unwrap();
    map(&m, pid, 0, 4, R, 0);
    m.mlock(pid, BASE, 4 * P).unwrap();
    // Read faults of anonymous memory map the zero page, read-only.
    assert_eq!(resident(&m, pid, 0, 4), "1111");
    let zero = m.phys().zero_pfn();
    assert!((0..4).all(|i| pte(&m, pid, BASE + i * P).unwrap().pfn() == zero));
    // A shared writable mapping is not dirtied: read faults too.
    let s = m
        .mmap(pid, BASE + 10 * P, 2 * P, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED)
        .unwrap();
    m.mlock(pid, s, 2 * P).unwrap();
    assert_eq!(resident(&m, pid, 10, 2), "ww");
    assert!(!dirty(&m, pid, 10, 2));
    common::finish(&m);
}

#[test]
fn mlock2_onfault_locks_without_populating() {
    let m = machine();
    let pid = m.spawn().unwrap();
    map(&m, pid, 0, 4, RW, 0);
    assert_eq!(m.mlock2(pid, BASE, 4 * P, 2), Err(Errno::EINVAL));
    m.mlock2(pid, BASE, 2 * P, MLOCK_ONFAULT).unwrap();
    assert_eq!(resident(&m, pid, 0, 4), "0000");
    assert_eq!(vmas(&m, pid), [(0, 2), (2, 4)]);
    assert_eq!(m.locked_pages(pid), Ok(2));
    // mlock over it: VM_LOCKONFAULT goes, the range is populated, and the
    // two pieces (now equal) merge.
    m.mlock(pid, BASE, 4 * P).unwrap();
    assert_eq!(resident(&m, pid, 0, 4), "wwww");
    assert_eq!(vmas(&m, pid), [(0, 4)]);
    common::finish(&m);
}

#[test]
fn mlock_errno() {
    let m = machine();
    let pid = m.spawn().unwrap();
    map(&m, pid, 0, 2, RW, 0);
    map(&m, pid, 3, 2, RW, 0);
    // Unmapped start: ENOMEM, nothing changes.
    assert_eq!(m.mlock(pid, BASE + 2 * P, P), Err(Errno::ENOMEM));
    // A hole in the middle: ENOMEM after locking the part before it.
    assert_eq!(m.mlock(pid, BASE + P, 3 * P), Err(Errno::ENOMEM));
    assert_eq!(vmas(&m, pid), [(0, 1), (1, 2), (3, 5)]);
    assert_eq!(m.locked_pages(pid), Ok(1));
    assert_eq!(m.munlock(pid, BASE, 5 * P), Err(Errno::ENOMEM));
    assert_eq!(vmas(&m, pid), [(0, 2), (3, 5)]);
    // Zero length: 0, even unmapped.
    assert_eq!(m.mlock(pid, BASE + 100 * P, 0), Ok(()));
    // A wrapping range: ENOMEM (the limit is checked first, unprivileged).
    assert_eq!(m.mlock(pid, BASE, u64::MAX - BASE), Err(Errno::ENOMEM));
    assert_eq!(m.munlock(pid, BASE, u64::MAX - BASE), Err(Errno::EINVAL));
    // PROT_NONE: locked, but populating fails: ENOMEM (EFAULT from GUP).
    map(&m, pid, 10, 2, PROT_NONE, 0);
    assert_eq!(m.mlock(pid, BASE + 10 * P, 2 * P), Err(Errno::ENOMEM));
    assert_eq!(m.locked_pages(pid), Ok(2));
    assert_eq!(m.mlockall(pid, 0), Err(Errno::EINVAL));
    assert_eq!(m.mlockall(pid, MCL_ONFAULT), Err(Errno::EINVAL));
    assert_eq!(m.mlockall(pid, 8), Err(Errno::EINVAL));
    common::finish(&m);
}

#[test]
fn rlimit_memlock() {
    let m = machine();
    let pid = m.spawn().unwrap();
    assert_eq!(
        m.memlock_rlimit(pid),
        Ok(Rlimit {
            cur: 8 << 20,
            max: 8 << 20
        })
    );
    map(&m, pid, 0, 8, RW, 0);
    m.set_memlock_rlimit(
        pid,
        Rlimit {
            cur: 4 * P,
            max: 8 << 20,
        },
    )
    .unwrap();
    assert_eq!(m.mlock(pid, BASE, 5 * P), Err(Errno::ENOMEM));
    m.mlock(pid, BASE, 4 * P).unwrap();
    // Locking what is locked already does not count twice.
    m.mlock(pid, BASE + P, 3 * P).unwrap();
    assert_eq!(m.mlock(pid, BASE + 4 * P, P), Err(Errno::ENOMEM));
    // MAP_LOCKED over the limit: EAGAIN; mlockall(MCL_CURRENT) with more
    // mapped than the limit: ENOMEM; MCL_FUTURE alone is fine.
    assert_eq!(
        m.mmap(pid, BASE + 20 * P, P, RW, PA | MAP_FIXED | MAP_LOCKED),
        Err(Errno::EAGAIN)
    );
    assert_eq!(m.mlockall(pid, MCL_CURRENT), Err(Errno::ENOMEM));
    m.mlockall(pid, MCL_FUTURE).unwrap();
    assert_eq!(m.mmap(pid, BASE + 20 * P, P, RW, PA | MAP_FIXED), Err(Errno::EAGAIN));
    m.munlockall(pid).unwrap();
    m.mmap(pid, BASE + 20 * P, P, RW, PA | MAP_FIXED).unwrap();
    // Limit 0: EPERM.
    m.set_memlock_rlimit(pid, Rlimit { cur: 0, max: 8 << 20 }).unwrap();
    assert_eq!(m.mlock(pid, BASE, P), Err(Errno::EPERM));
    assert_eq!(m.mlockall(pid, MCL_FUTURE), Err(Errno::EPERM));
    assert_eq!(
        m.mmap(pid, BASE + 30 * P, P, RW, PA | MAP_FIXED | MAP_LOCKED),
        Err(Errno::EPERM)
    );
    // munlock needs no limit.
    m.munlock(pid, BASE, 8 * P).unwrap();
    // setrlimit rules: soft above hard EINVAL, raising the hard limit EPERM.
    assert_eq!(
        m.set_memlock_rlimit(pid, Rlimit { cur: 2 * P, max: P }),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        m.set_memlock_rlimit(pid, Rlimit { cur: 0, max: 16 << 20 }),
        Err(Errno::EPERM)
    );
    // Inherited by fork.
    let child = m.fork(pid).unwrap();
    assert_eq!(m.memlock_rlimit(child), m.memlock_rlimit(pid));
    common::finish(&m);
}

#[test]
fn map_locked_and_map_populate_prefault() {
    let m = machine();
    let pid = m.spawn().unwrap();
    map(&m, pid, 0, 3, RW, MAP_POPULATE);
    assert_eq!(resident(&m, pid, 0, 3), "www");
    assert_eq!(m.locked_pages(pid), Ok(0));
    // MAP_POPULATE | MAP_NONBLOCK does not populate.
    map(&m, pid, 4, 2, RW, MAP_POPULATE | MAP_NONBLOCK);
    assert_eq!(resident(&m, pid, 4, 2), "00");
    map(&m, pid, 8, 2, RW, MAP_LOCKED);
    assert_eq!(resident(&m, pid, 8, 2), "ww");
    assert_eq!(m.locked_pages(pid), Ok(2));
    // Read-only populate maps the zero page.
    map(&m, pid, 12, 2, R, MAP_POPULATE);
    assert_eq!(resident(&m, pid, 12, 2), "11");
    // PROT_NONE with MAP_POPULATE: the mapping stands, nothing faulted.
    map(&m, pid, 16, 2, PROT_NONE, MAP_POPULATE | MAP_LOCKED);
    assert_eq!(resident(&m, pid, 16, 2), "00");
    // Droppable memory is never locked; MAP_LOCKED with it is EINVAL.
    assert_eq!(
        m.mmap(
            pid,
            BASE + 20 * P,
            P,
            RW,
            MAP_DROPPABLE | MAP_ANONYMOUS | MAP_FIXED | MAP_LOCKED
        ),
        Err(Errno::EINVAL)
    );
    common::finish(&m);
}

#[test]
fn map_populate_of_a_file_reads_every_page_dropping_the_lock() {
    let m = machine();
    let pid = m.spawn().unwrap();
    let bytes: Vec<u8> = (0..3 * P as usize).map(|i| (i / P as usize) as u8 + 1).collect();
    let fd = m.open_file(Box::new(MemFile::new(&bytes, true)));
    // Shared: the cache pages, faulted for read (mapped writable as the
    // VMA is, but not dirtied).
    let a = m
        .mmap_fd(pid, BASE, 3 * P, RW, MAP_SHARED | MAP_FIXED | MAP_POPULATE, fd, 0)
        .unwrap();
    assert_eq!(resident(&m, pid, 0, 3), "www");
    assert!(!dirty(&m, pid, 0, 3));
    // Private writable and locked: every page copied now (FOLL_WRITE).
    let b = m
        .mmap_fd(
            pid,
            BASE + 8 * P,
            3 * P,
            RW,
            MAP_PRIVATE | MAP_FIXED | MAP_LOCKED,
            fd,
            0,
        )
        .unwrap();
    assert_eq!(resident(&m, pid, 8, 3), "www");
    let mut buf = [0u8; 1];
    for i in 0..3 {
        m.read(pid, a + i * P, &mut buf).unwrap().unwrap();
        assert_eq!(buf[0], i as u8 + 1);
        m.read(pid, b + i * P, &mut buf).unwrap().unwrap();
        assert_eq!(buf[0], i as u8 + 1);
    }
    // Past the end of the file: mlock fails with ENOMEM (SIGBUS → EFAULT
    // → ENOMEM), after populating the pages before it.
    let c = m
        .mmap_fd(pid, BASE + 16 * P, 5 * P, R, MAP_SHARED | MAP_FIXED, fd, 0)
        .unwrap();
    assert_eq!(m.mlock(pid, c, 5 * P), Err(Errno::ENOMEM));
    assert_eq!(resident(&m, pid, 16, 5), "11100");
    m.munmap(pid, c, 5 * P).unwrap();
    common::finish(&m);
}

#[test]
fn mlockall_current_future_and_munlockall() {
    let m = machine();
    let pid = m.spawn().unwrap();
    map(&m, pid, 0, 2, RW, 0);
    map(&m, pid, 2, 2, R, 0);
    m.mlockall(pid, MCL_CURRENT | MCL_ONFAULT).unwrap();
    assert_eq!(resident(&m, pid, 0, 4), "0000");
    assert_eq!(m.locked_pages(pid), Ok(4));
    m.mlockall(pid, MCL_CURRENT).unwrap();
    assert_eq!(resident(&m, pid, 0, 4), "ww11");
    // MCL_FUTURE: later mmaps are locked and populated.
    m.mlockall(pid, MCL_FUTURE).unwrap();
    map(&m, pid, 6, 2, RW, 0);
    assert_eq!(resident(&m, pid, 6, 2), "ww");
    assert_eq!(m.locked_pages(pid), Ok(6));
    // brk is locked and populated too.
    let b0 = m.brk(pid, 0).unwrap();
    let b1 = m.brk(pid, b0 + 2 * P).unwrap();
    assert_eq!(b1, b0 + 2 * P);
    assert!(pte(&m, pid, b0).is_some_and(|e| e.writable()));
    assert_eq!(m.locked_pages(pid), Ok(8));
    // A forked child inherits neither the locks nor MCL_FUTURE.
    let child = m.fork(pid).unwrap();
    assert_eq!(m.locked_pages(child), Ok(0));
    let c = m.mmap(child, BASE + 20 * P, P, RW, PA | MAP_FIXED).unwrap();
    assert!(pte(&m, child, c).is_none());
    m.exit(child).unwrap();
    // MCL_FUTURE | MCL_ONFAULT: locked, not populated.
    m.mlockall(pid, MCL_FUTURE | MCL_ONFAULT).unwrap();
    map(&m, pid, 10, 2, RW, 0);
    assert_eq!(resident(&m, pid, 10, 2), "00");
    assert_eq!(m.locked_pages(pid), Ok(10));
    m.munlockall(pid).unwrap();
    assert_eq!(m.locked_pages(pid), Ok(0));
    map(&m, pid, 14, 2, RW, 0);
    assert_eq!(resident(&m, pid, 14, 2), "00");
    // exec clears MCL_FUTURE.
    m.mlockall(pid, MCL_FUTURE).unwrap();
    m.exec(pid).unwrap();
    map(&m, pid, 0, 1, RW, 0);
    assert_eq!(m.locked_pages(pid), Ok(0));
    common::finish(&m);
}

#[test]
fn locked_stack_growth_counts_against_the_limit() {
    let m = machine();
    let pid = m.spawn().unwrap();
    let top = BASE + 100 * P;
    m.mmap(pid, top - P, P, RW, PA | MAP_FIXED | MAP_GROWSDOWN | MAP_LOCKED)
        .unwrap();
    m.set_memlock_rlimit(
        pid,
        Rlimit {
            cur: 3 * P,
            max: 8 << 20,
        },
    )
    .unwrap();
    m.write(pid, top - 3 * P, &[1]).unwrap().unwrap();
    assert_eq!(m.locked_pages(pid), Ok(3));
    assert!(m.write(pid, top - 4 * P, &[1]).unwrap().is_err());
    common::finish(&m);
}

#[test]
fn mremap_growth_of_locked_memory_is_populated_and_limited() {
    let m = machine();
    let pid = m.spawn().unwrap();
    map(&m, pid, 0, 2, RW, MAP_LOCKED);
    assert_eq!(m.mremap(pid, BASE, 2 * P, 4 * P, 0, 0), Ok(BASE));
    assert_eq!(resident(&m, pid, 0, 4), "wwww");
    assert_eq!(m.locked_pages(pid), Ok(4));
    m.set_memlock_rlimit(
        pid,
        Rlimit {
            cur: 5 * P,
            max: 8 << 20,
        },
    )
    .unwrap();
    assert_eq!(m.mremap(pid, BASE, 4 * P, 6 * P, 0, 0), Err(Errno::EAGAIN));
    // Moving it keeps the lock (and counts the same pages).
    let to = BASE + 100 * P;
    assert_eq!(
        m.mremap(pid, BASE, 4 * P, 4 * P, MREMAP_MAYMOVE | MREMAP_FIXED, to),
        Ok(to)
    );
    assert_eq!(m.locked_pages(pid), Ok(4));
    common::finish(&m);
}

#[test]
fn mprotect_making_locked_memory_writable_breaks_cow_now() {
    let m = machine();
    let pid = m.spawn().unwrap();
    map(&m, pid, 0, 4, R, 0);
    m.mlock(pid, BASE, 4 * P).unwrap();
    assert_eq!(resident(&m, pid, 0, 4), "1111");
    m.mprotect(pid, BASE + P, 2 * P, RW).unwrap();
    assert_eq!(resident(&m, pid, 0, 4), "1ww1");
    // Not locked: nothing is faulted.
    map(&m, pid, 8, 2, R, MAP_POPULATE);
    m.mprotect(pid, BASE + 8 * P, 2 * P, RW).unwrap();
    assert_eq!(resident(&m, pid, 8, 2), "11");
    common::finish(&m);
}

#[test]
fn mlock_after_fork_breaks_cow_in_each_process_under_every_fork_policy() {
    use vmlab_mm::mm::ForkPolicy;
    for policy in [ForkPolicy::Cow, ForkPolicy::SharedPt, ForkPolicy::Eager] {
        let m = machine();
        let pid = m.spawn().unwrap();
        // Enough pages for a whole leaf table to be shared by shared_pt.
        let n = 600;
        let a = m.mmap(pid, 0, n * P, RW, PA).unwrap();
        for i in 0..n {
            m.write(pid, a + i * P, &(i as u32).to_le_bytes()).unwrap().unwrap();
        }
        let child = match m.fork_with(pid, policy) {
            Ok((c, _)) => c,
            // rmap = private_vma allows only the eager fork.
            Err(Errno::EINVAL) if policy != ForkPolicy::Eager => {
                common::finish(&m);
                continue;
            }
            Err(e) => panic!("{policy:?}: fork: {e}"),
        };
        m.check().unwrap();
        // The child locks: every page copied (written) now, in the child only.
        m.mlock(child, a, n * P).unwrap();
        m.check().unwrap();
        m.write(child, a + 5 * P, &[0xee; 4]).unwrap().unwrap();
        m.mlockall(pid, MCL_CURRENT).unwrap();
        m.check().unwrap();
        for i in 0..n {
            let mut b = [0u8; 4];
            m.read(pid, a + i * P, &mut b).unwrap().unwrap();
            assert_eq!(b, (i as u32).to_le_bytes(), "{policy:?}: parent page {i}");
            m.read(child, a + i * P, &mut b).unwrap().unwrap();
            let want = if i == 5 { [0xee; 4] } else { (i as u32).to_le_bytes() };
            assert_eq!(b, want, "{policy:?}: child page {i}");
            let p = m.process(child).unwrap();
            let e = p.mm.page_table().leaf(m.phys(), a + i * P).unwrap().load();
            assert!(
                e.present() && e.writable(),
                "{policy:?}: child page {i} not populated for write"
            );
        }
        assert_eq!(m.locked_pages(child), Ok(n));
        common::finish(&m);
    }
}
