//! MADV_GUARD_INSTALL / MADV_GUARD_REMOVE on vmlab's own terms: frame
//! accounting (install over written pages frees them), the invariant
//! checker after every step, every frame free at exit, under every fork
//! policy; tables shared with other address spaces (fork-shared, frozen;
//! object tables, every mapper's) are unshared before a marker is written.
//! What Linux answers is judged by the host in
//! `crates/vmlab/tests/linux_semantics.rs` (`guard_cases`).

mod common;

use vmlab_mm::errno::{Errno, FaultReason};
use vmlab_mm::mm::uapi::*;
use vmlab_mm::mm::{ForkPolicy, MemFile};
use vmlab_mm::pgtable::{LeafEntry, Pte};
use vmlab_mm::system::config::ForkName;
use vmlab_mm::system::{ByteSize, Machine, MachineConfig, Pid};

const PAGE: u64 = 4096;
const MIB2: u64 = 2 << 20;
const RW: u32 = PROT_READ | PROT_WRITE;
const A: u64 = 0x5000_0000_0000;

/// A machine whose configured fork policy is `fork`; `None`, and the test
/// skips it, if `VMLAB_TEST_SET` forbids that policy (see `common::allowed`).
fn machine(fork: ForkName) -> Option<Machine> {
    let cfg = MachineConfig {
        ram: ByteSize(64 << 20),
        fork,
        ..common::test_config()
    };
    common::allowed(&cfg).then(|| Machine::new(&cfg).unwrap())
}

fn load(m: &Machine, pid: Pid, addr: u64) -> Result<u64, FaultReason> {
    let mut b = [0u8; 8];
    m.read(pid, addr, &mut b).unwrap().map_err(|f| f.reason)?;
    Ok(u64::from_le_bytes(b))
}

fn store(m: &Machine, pid: Pid, addr: u64, v: u64) -> Result<(), FaultReason> {
    m.write(pid, addr, &v.to_le_bytes()).unwrap().map_err(|f| f.reason)
}

/// The PD entry of `pid` over `addr`.
fn pd(m: &Machine, pid: Pid, addr: u64) -> Pte {
    let p = m.process(pid).unwrap();
    Pte(p
        .mm
        .page_table()
        .pd_entry(m.phys(), addr)
        .unwrap()
        .load(vmlab_mm::sync::Ordering::Acquire))
}

/// The leaf entry of `pid` at `addr`.
fn leaf(m: &Machine, pid: Pid, addr: u64) -> LeafEntry {
    let p = m.process(pid).unwrap();
    p.mm.page_table()
        .leaf(m.phys(), addr)
        .map_or(LeafEntry::None, |e| e.load().decode())
}

fn all_free(m: &Machine) {
    m.check().unwrap();
    assert_eq!(m.phys().frames_used(), m.reserved_frames(), "every frame free");
}

#[test]
fn install_frees_written_pages_and_fork_copies_markers_under_every_policy() {
    for policy in [ForkPolicy::Cow, ForkPolicy::SharedPt, ForkPolicy::Eager]
        .into_iter()
        .filter(|&p| common::fork_allowed(p))
    {
        let Some(m) = machine(ForkName::Cow) else { return };
        let pid = m.spawn().unwrap();
        let n = 8;
        m.mmap(pid, A, n * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
            .unwrap();
        for i in 0..n {
            store(&m, pid, A + i * PAGE, 100 + i).unwrap();
        }
        m.check().unwrap();
        let used = m.phys().frames_used();
        let rss = m.stats().rss_pages;
        // Pages 2..6 become guard pages: their four frames are freed.
        m.madvise(pid, A + 2 * PAGE, 4 * PAGE, MADV_GUARD_INSTALL).unwrap();
        m.check().unwrap();
        assert_eq!(
            m.phys().frames_used(),
            used - 4,
            "{policy:?}: install frees the zapped frames"
        );
        assert_eq!(m.stats().rss_pages, rss - 4, "{policy:?}: markers are not in rss");
        for i in 2..6 {
            assert_eq!(leaf(&m, pid, A + i * PAGE), LeafEntry::Guard);
            assert_eq!(load(&m, pid, A + i * PAGE), Err(FaultReason::Guard));
            assert_eq!(store(&m, pid, A + i * PAGE, 1), Err(FaultReason::Guard));
        }
        // Installing again over markers changes nothing.
        m.madvise(pid, A, n * PAGE, MADV_GUARD_INSTALL).unwrap();
        m.check().unwrap();
        assert_eq!(m.phys().frames_used(), used - n as usize);
        m.madvise(pid, A, 2 * PAGE, MADV_GUARD_REMOVE).unwrap();
        m.madvise(pid, A + 6 * PAGE, 2 * PAGE, MADV_GUARD_REMOVE).unwrap();
        for i in [0, 1, 6, 7] {
            store(&m, pid, A + i * PAGE, 200 + i).unwrap();
        }
        m.check().unwrap();
        let used = m.phys().frames_used();

        let (child, _) = m.fork_with(pid, policy).unwrap();
        m.check().unwrap();
        for i in 0..n {
            let want = if (2..6).contains(&i) {
                Err(FaultReason::Guard)
            } else {
                Ok(200 + i)
            };
            assert_eq!(load(&m, child, A + i * PAGE), want, "{policy:?}: child page {i}");
        }
        // The child's writes and removals are its own.
        store(&m, child, A, 1).unwrap();
        m.madvise(child, A + 2 * PAGE, PAGE, MADV_GUARD_REMOVE).unwrap();
        m.check().unwrap();
        assert_eq!(load(&m, child, A + 2 * PAGE), Ok(0));
        assert_eq!(load(&m, pid, A + 2 * PAGE), Err(FaultReason::Guard));
        assert_eq!(load(&m, pid, A), Ok(200));
        // DONTNEED in the child keeps its markers.
        m.madvise(child, A, n * PAGE, MADV_DONTNEED).unwrap();
        m.check().unwrap();
        assert_eq!(load(&m, child, A + 3 * PAGE), Err(FaultReason::Guard));
        m.exit(child).unwrap();
        m.check().unwrap();
        assert_eq!(m.phys().frames_used(), used, "{policy:?}: the child's frames are back");
        // The parent's DONTNEED keeps the markers too; munmap drops them.
        m.madvise(pid, A, n * PAGE, MADV_DONTNEED).unwrap();
        m.check().unwrap();
        assert_eq!(load(&m, pid, A + 5 * PAGE), Err(FaultReason::Guard));
        m.munmap(pid, A + 4 * PAGE, PAGE).unwrap();
        m.check().unwrap();
        m.mmap(pid, A + 4 * PAGE, PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
            .unwrap();
        assert_eq!(load(&m, pid, A + 4 * PAGE), Ok(0));
        m.check().unwrap();
        m.exit(pid).unwrap();
        all_free(&m);
    }
}

#[test]
fn markers_go_into_a_private_copy_of_a_fork_shared_table() {
    let Some(m) = machine(ForkName::SharedPt) else { return };
    let parent = m.spawn().unwrap();
    m.mmap(parent, A, 8 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
        .unwrap();
    for i in 0..8 {
        store(&m, parent, A + i * PAGE, 10 + i).unwrap();
    }
    let child = m.fork(parent).unwrap();
    assert_ne!(pd(&m, child, A).0 & Pte::TABLE_COW, 0, "fork shared the table");
    // The child installs: the frozen table must not change under the parent.
    m.madvise(child, A + PAGE, PAGE, MADV_GUARD_INSTALL).unwrap();
    m.check().unwrap();
    assert_eq!(pd(&m, child, A).0 & Pte::TABLE_COW, 0, "the child has its own table");
    assert_eq!(load(&m, child, A + PAGE), Err(FaultReason::Guard));
    assert_eq!(load(&m, parent, A + PAGE), Ok(11), "the parent keeps its page");
    assert!(matches!(leaf(&m, parent, A + PAGE), LeafEntry::Present(_)));

    // Markers the parent had before a fork are shared with the table; a
    // removal in one sharer unshares first.
    let child2 = m.fork(parent).unwrap();
    m.madvise(parent, A + 3 * PAGE, PAGE, MADV_GUARD_INSTALL).unwrap();
    m.check().unwrap();
    assert_eq!(load(&m, child2, A + 3 * PAGE), Ok(13), "installed after the fork");
    let child3 = m.fork(parent).unwrap();
    assert_ne!(pd(&m, child3, A).0 & Pte::TABLE_COW, 0);
    assert_eq!(
        leaf(&m, child3, A + 3 * PAGE),
        LeafEntry::Guard,
        "shared with the table"
    );
    m.madvise(child3, A, 8 * PAGE, MADV_GUARD_REMOVE).unwrap();
    m.check().unwrap();
    assert_eq!(pd(&m, child3, A).0 & Pte::TABLE_COW, 0);
    assert_eq!(load(&m, child3, A + 3 * PAGE), Ok(0));
    assert_eq!(load(&m, parent, A + 3 * PAGE), Err(FaultReason::Guard));
    // DONTNEED over the whole 2 MiB span of a shared table with markers
    // copies it (leaving the table would lose them).
    let child4 = m.fork(parent).unwrap();
    m.mmap(
        child4,
        A + 8 * PAGE,
        MIB2 - 8 * PAGE,
        RW,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
    )
    .unwrap();
    m.madvise(child4, A, MIB2, MADV_DONTNEED).unwrap();
    m.check().unwrap();
    assert_eq!(load(&m, child4, A + 3 * PAGE), Err(FaultReason::Guard));
    assert_eq!(load(&m, child4, A), Ok(0));
    for c in [child, child2, child3, child4] {
        m.exit(c).unwrap();
        m.check().unwrap();
    }
    assert_eq!(load(&m, parent, A), Ok(10));
    m.exit(parent).unwrap();
    all_free(&m);
}

#[test]
fn markers_never_go_into_an_object_table() {
    let Some(m) = machine(ForkName::SharedPt) else { return };
    let data = MemFile::new(&vec![7u8; MIB2 as usize], true);
    let fd = m.open_file(Box::new(data.clone()));
    let p1 = m.spawn().unwrap();
    let p2 = m.spawn().unwrap();
    for p in [p1, p2] {
        m.mmap_fd(p, A, MIB2, RW, MAP_SHARED | MAP_FIXED, fd, 0).unwrap();
        load(&m, p, A).unwrap();
        assert_ne!(pd(&m, p, A).0 & Pte::TABLE_OBJ, 0, "an object table");
    }
    store(&m, p1, A + PAGE, 5).unwrap();
    m.madvise(p1, A + PAGE, PAGE, MADV_GUARD_INSTALL).unwrap();
    m.check().unwrap();
    assert_eq!(pd(&m, p1, A).0 & Pte::TABLE_OBJ, 0, "p1 has a private table");
    assert_eq!(load(&m, p1, A + PAGE), Err(FaultReason::Guard));
    assert_eq!(load(&m, p2, A + PAGE), Ok(5), "p2 still sees the page");
    // Fork copies the marker of the shared mapping (the VMA has an
    // anonymous identity now, as Linux's anon_vma_prepare gives it).
    let c = m.fork(p1).unwrap();
    m.check().unwrap();
    assert_eq!(load(&m, c, A + PAGE), Err(FaultReason::Guard));
    assert_eq!(load(&m, c, A), Ok(0x0707_0707_0707_0707));
    m.madvise(p1, A + PAGE, PAGE, MADV_GUARD_REMOVE).unwrap();
    assert_eq!(load(&m, p1, A + PAGE), Ok(5), "the object keeps its page");
    for p in [c, p1, p2] {
        m.exit(p).unwrap();
        m.check().unwrap();
    }
    m.close(fd).unwrap();
    all_free(&m);
}

#[test]
fn private_file_mapping_guard_drops_the_private_copy() {
    let Some(m) = machine(ForkName::Cow) else { return };
    let data = MemFile::new(&vec![3u8; 4 * PAGE as usize], true);
    let fd = m.open_file(Box::new(data.clone()));
    let p = m.spawn().unwrap();
    m.mmap_fd(p, A, 4 * PAGE, RW, MAP_PRIVATE | MAP_FIXED, fd, 0).unwrap();
    store(&m, p, A, 9).unwrap();
    let used = m.phys().frames_used();
    m.madvise(p, A, PAGE, MADV_GUARD_INSTALL).unwrap();
    m.check().unwrap();
    assert_eq!(m.phys().frames_used(), used - 1, "the private copy is freed");
    assert_eq!(load(&m, p, A), Err(FaultReason::Guard));
    m.madvise(p, A, PAGE, MADV_GUARD_REMOVE).unwrap();
    assert_eq!(load(&m, p, A), Ok(0x0303_0303_0303_0303), "the file's page again");
    // A locked VMA refuses install, not remove.
    m.mmap(
        p,
        A + 8 * PAGE,
        PAGE,
        RW,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_LOCKED,
    )
    .unwrap();
    assert_eq!(m.madvise(p, A + 8 * PAGE, PAGE, MADV_GUARD_INSTALL), Err(Errno::EINVAL));
    assert_eq!(m.madvise(p, A + 8 * PAGE, PAGE, MADV_GUARD_REMOVE), Ok(()));
    m.exit(p).unwrap();
    m.close(fd).unwrap();
    all_free(&m);
}
