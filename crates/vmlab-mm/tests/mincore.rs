//! `mincore` (mm/mincore.rs): argument checks in Linux's order, residency
//! of anonymous, shared anonymous and file pages (present PTEs, the zero
//! page, PROT_NONE, guard markers, page-cache lookups for none PTEs), and
//! reads through tables shared by fork. Each test ends with the checker and
//! with every frame free.

mod common;

use vmlab_mm::addr::TASK_SIZE;
use vmlab_mm::errno::Errno;
use vmlab_mm::mm::uapi::*;
use vmlab_mm::mm::{ForkPolicy, MemFile};
use vmlab_mm::system::{ByteSize, Machine, MachineConfig, Pid};

const PAGE: u64 = 4096;
const R: u32 = PROT_READ;
const RW: u32 = PROT_READ | PROT_WRITE;
const PA: u32 = MAP_PRIVATE | MAP_ANONYMOUS;

fn machine() -> Machine {
    Machine::new(&MachineConfig {
        ram: ByteSize(32 << 20),
        cpus: 2,
        ..common::test_config()
    })
    .unwrap()
}

fn touch_read(m: &Machine, pid: Pid, addr: u64) {
    let mut b = [0u8; 1];
    m.read(pid, addr, &mut b).unwrap().unwrap();
}

fn touch_write(m: &Machine, pid: Pid, addr: u64) {
    m.write(pid, addr, &[7]).unwrap().unwrap();
}

#[test]
fn argument_checks_in_linux_order() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, 4 * PAGE, RW, PA).unwrap();
    // EINVAL for an unaligned start comes first, even with len 0.
    assert_eq!(m.mincore(p, a + 1, PAGE), Err(Errno::EINVAL));
    assert_eq!(m.mincore(p, a + 1, 0), Err(Errno::EINVAL));
    // len 0: nothing is looked at, not even whether it is mapped.
    assert_eq!(m.mincore(p, a, 0), Ok(vec![]));
    assert_eq!(m.mincore(p, 0x1000_0000_0000, 0), Ok(vec![]));
    assert_eq!(m.mincore(p, TASK_SIZE, 0), Ok(vec![]));
    // access_ok: past TASK_SIZE or wrapping is ENOMEM.
    assert_eq!(m.mincore(p, TASK_SIZE + PAGE, 0), Err(Errno::ENOMEM));
    assert_eq!(m.mincore(p, a, u64::MAX - PAGE), Err(Errno::ENOMEM));
    assert_eq!(m.mincore(p, 0, u64::MAX), Err(Errno::ENOMEM));
    // len rounds up to pages.
    assert_eq!(m.mincore(p, a, 1), Ok(vec![0]));
    assert_eq!(m.mincore(p, a, PAGE + 1), Ok(vec![0, 0]));
    // A hole in the middle, at the start, or past the end: ENOMEM.
    m.munmap(p, a + 2 * PAGE, PAGE).unwrap();
    assert_eq!(m.mincore(p, a, 4 * PAGE), Err(Errno::ENOMEM));
    assert_eq!(m.mincore(p, a + 2 * PAGE, PAGE), Err(Errno::ENOMEM));
    assert_eq!(m.mincore(p, a, 2 * PAGE), Ok(vec![0, 0]));
    // A range over two VMAs is one vector.
    m.mprotect(p, a + PAGE, PAGE, R).unwrap();
    assert_eq!(m.mincore(p, a, 2 * PAGE), Ok(vec![0, 0]));
    // The top of the address space: a mapping ending at TASK_SIZE.
    let top = m
        .mmap(p, TASK_SIZE - 2 * PAGE, 2 * PAGE, RW, PA | MAP_FIXED_NOREPLACE)
        .unwrap();
    touch_write(&m, p, top + PAGE);
    assert_eq!(m.mincore(p, top, 2 * PAGE), Ok(vec![0, 1]));
    assert_eq!(m.mincore(p, top, 2 * PAGE - 1), Ok(vec![0, 1]));
    assert_eq!(m.mincore(p, top, 2 * PAGE + 1), Err(Errno::ENOMEM));
    assert_eq!(m.mincore(99, a, PAGE), Err(Errno::ESRCH));
    common::finish(&m);
}

#[test]
fn anonymous_residency() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, 6 * PAGE, RW, PA).unwrap();
    assert_eq!(m.mincore(p, a, 6 * PAGE).unwrap(), [0; 6]);
    touch_write(&m, p, a);
    touch_write(&m, p, a + 2 * PAGE);
    // A read fault maps the zero page: resident.
    touch_read(&m, p, a + 3 * PAGE);
    assert_eq!(m.mincore(p, a, 6 * PAGE).unwrap(), [1, 0, 1, 1, 0, 0]);
    m.madvise(p, a, PAGE, MADV_DONTNEED).unwrap();
    m.madvise(p, a + 3 * PAGE, PAGE, MADV_DONTNEED).unwrap();
    assert_eq!(m.mincore(p, a, 6 * PAGE).unwrap(), [0, 0, 1, 0, 0, 0]);
    // PROT_NONE keeps the page: still resident.
    m.mprotect(p, a + 2 * PAGE, PAGE, PROT_NONE).unwrap();
    assert_eq!(m.mincore(p, a, 6 * PAGE).unwrap(), [0, 0, 1, 0, 0, 0]);
    m.mprotect(p, a + 2 * PAGE, PAGE, RW).unwrap();
    // A guard marker in anonymous memory is not resident.
    touch_write(&m, p, a + 4 * PAGE);
    m.madvise(p, a + 4 * PAGE, PAGE, MADV_GUARD_INSTALL).unwrap();
    assert_eq!(m.mincore(p, a, 6 * PAGE).unwrap(), [0, 0, 1, 0, 0, 0]);
    m.check().unwrap();
    common::finish(&m);
}

#[test]
fn file_and_shared_residency_is_the_page_cache() {
    let m = machine();
    let p = m.spawn().unwrap();
    let f = MemFile::new(&vec![3u8; 4 * PAGE as usize], true);
    let fd = m.open_file(Box::new(f));
    let s = m.mmap_fd(p, 0, 4 * PAGE, RW, MAP_SHARED, fd, 0).unwrap();
    let q = m.mmap_fd(p, 0, 4 * PAGE, RW, MAP_PRIVATE, fd, 0).unwrap();
    assert_eq!(m.mincore(p, s, 4 * PAGE).unwrap(), [0; 4]);
    assert_eq!(m.mincore(p, q, 4 * PAGE).unwrap(), [0; 4]);
    // Page 1 read through the shared mapping is cached: the private
    // mapping reports it too, without a PTE.
    touch_read(&m, p, s + PAGE);
    assert_eq!(m.mincore(p, s, 4 * PAGE).unwrap(), [0, 1, 0, 0]);
    assert_eq!(m.mincore(p, q, 4 * PAGE).unwrap(), [0, 1, 0, 0]);
    // A private write reads the page into the cache, then copies it.
    touch_write(&m, p, q + 2 * PAGE);
    assert_eq!(m.mincore(p, q, 4 * PAGE).unwrap(), [0, 1, 1, 0]);
    assert_eq!(m.mincore(p, s, 4 * PAGE).unwrap(), [0, 1, 1, 0]);
    // Zapping the private copy leaves the cached page: still resident.
    m.madvise(p, q + 2 * PAGE, PAGE, MADV_DONTNEED).unwrap();
    assert_eq!(m.mincore(p, q, 4 * PAGE).unwrap(), [0, 1, 1, 0]);
    // A guard marker over a cached file page: the cache decides (Linux
    // looks the cache up for PTE markers).
    m.madvise(p, q + PAGE, 2 * PAGE, MADV_GUARD_INSTALL).unwrap();
    assert_eq!(m.mincore(p, q, 4 * PAGE).unwrap(), [0, 1, 1, 0]);
    // An offset mapping looks up its own page offsets.
    let o = m.mmap_fd(p, 0, 2 * PAGE, R, MAP_SHARED, fd, 2 * PAGE).unwrap();
    assert_eq!(m.mincore(p, o, 2 * PAGE).unwrap(), [1, 0]);
    // Shared anonymous memory: its object's pages.
    let sh = m.mmap(p, 0, 3 * PAGE, RW, MAP_SHARED | MAP_ANONYMOUS).unwrap();
    assert_eq!(m.mincore(p, sh, 3 * PAGE).unwrap(), [0; 3]);
    touch_write(&m, p, sh + PAGE);
    assert_eq!(m.mincore(p, sh, 3 * PAGE).unwrap(), [0, 1, 0]);
    m.madvise(p, sh + PAGE, PAGE, MADV_DONTNEED).unwrap();
    assert_eq!(m.mincore(p, sh, 3 * PAGE).unwrap(), [0, 1, 0]);
    common::finish(&m);
}

#[test]
fn residency_across_fork_for_every_policy() {
    for policy in [ForkPolicy::Cow, ForkPolicy::SharedPt, ForkPolicy::Eager] {
        if !common::fork_allowed(policy) {
            continue;
        }
        let m = machine();
        let p = m.spawn().unwrap();
        // Whole 2 MiB spans, so that shared_pt shares (and object-shares) tables.
        let span = 2 << 20;
        let a = m.mmap(p, 0, 2 * span, RW, PA).unwrap();
        let sh = m.mmap(p, 0, 2 * span, RW, MAP_SHARED | MAP_ANONYMOUS).unwrap();
        for i in [0, 5, 511, 512, 700] {
            touch_write(&m, p, a + i * PAGE);
        }
        let want: Vec<u8> = (0..1024u64)
            .map(|i| u8::from([0, 5, 511, 512, 700].contains(&i)))
            .collect();
        let (c, _) = m.fork_with(p, policy).unwrap();
        assert_eq!(m.mincore(c, a, 2 * span).unwrap(), want, "{policy:?} child");
        assert_eq!(m.mincore(p, a, 2 * span).unwrap(), want, "{policy:?} parent");
        // A write by the child to a shared object page shows in the parent.
        touch_write(&m, c, sh + 3 * PAGE);
        assert_eq!(m.mincore(p, sh, 4 * PAGE).unwrap(), [0, 0, 0, 1], "{policy:?}");
        // The child's COW break and zap change only the child's view.
        touch_write(&m, c, a + PAGE);
        m.madvise(c, a, PAGE, MADV_DONTNEED).unwrap();
        let got = m.mincore(c, a, 4 * PAGE).unwrap();
        assert_eq!(got, [0, 1, 0, 0], "{policy:?} child after");
        assert_eq!(
            m.mincore(p, a, 4 * PAGE).unwrap(),
            [1, 0, 0, 0],
            "{policy:?} parent after"
        );
        m.check().unwrap();
        common::finish(&m);
    }
}

/// mincore from outside any CPU while the CPUs of a parent and its
/// `shared_pt` child break COW page by page, so that both leave the
/// fork-shared tables (the last one frees them) as mincore reads them:
/// every page stays resident throughout, in both, and the checker passes.
/// A smoke test: it does not show that mincore's re-check of the PD entry
/// is needed (a stale copy of a left table still reads resident here).
#[test]
fn mincore_races_table_unsharing() {
    if !common::fork_allowed(ForkPolicy::SharedPt) {
        return;
    }
    let m = Machine::new(&MachineConfig {
        ram: ByteSize(32 << 20),
        cpus: 2,
        ..common::test_config()
    })
    .unwrap();
    let span = 2 << 20;
    let pages = 3 * span / PAGE;
    for round in 0..4 {
        let p = m.spawn().unwrap();
        let a = m.mmap(p, 0, 3 * span, RW, PA).unwrap();
        for i in 0..pages {
            touch_write(&m, p, a + i * PAGE);
        }
        let (c, _) = m.fork_with(p, ForkPolicy::SharedPt).unwrap();
        let done = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|sc| {
            for (id, pid) in [(0usize, p), (1, c)] {
                let (m, done) = (&m, &done);
                sc.spawn(move || {
                    let mut cpu = m.cpu(id).unwrap();
                    cpu.switch_to(pid).unwrap();
                    // Opposite orders, so the two leave each table at different times.
                    for k in 0..pages {
                        let i = if id == 0 { k } else { pages - 1 - k };
                        cpu.store_u64(a + i * PAGE, round + 1).unwrap();
                    }
                    done.fetch_add(1, std::sync::atomic::Ordering::Release);
                });
            }
            while done.load(std::sync::atomic::Ordering::Acquire) < 2 {
                for pid in [p, c] {
                    let v = m.mincore(pid, a, 3 * span).unwrap();
                    assert!(v.iter().all(|&b| b == 1), "round {round}: a page read as not resident");
                }
            }
        });
        m.check().unwrap();
        m.exit(c).unwrap();
        m.exit(p).unwrap();
    }
    common::finish(&m);
}
