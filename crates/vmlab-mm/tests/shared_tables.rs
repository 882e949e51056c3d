//! Page tables shared between unrelated processes that map one large shared
//! object at the same 2 MiB alignment (fork policy `shared_pt`, seed 003's
//! "large Oracle server"), fork or not.

mod common;

use vmlab_mm::errno::FaultReason;
use vmlab_mm::mm::uapi::*;
use vmlab_mm::mm::MemFile;
use vmlab_mm::system::config::ForkName;
use vmlab_mm::system::{ByteSize, Machine, MachineConfig, Pid};

const PAGE: u64 = 4096;
const MIB2: u64 = 2 << 20;
const RW: u32 = PROT_READ | PROT_WRITE;

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

fn touch_all(m: &Machine, pid: Pid, a: u64, len: u64) {
    let mut cpu = m.cpu(0).unwrap();
    cpu.switch_to(pid).unwrap();
    for off in (0..len).step_by(PAGE as usize) {
        cpu.load_u64(a + off).unwrap();
    }
}

fn load(m: &Machine, pid: Pid, addr: u64) -> u64 {
    let mut b = [0u8; 8];
    m.read(pid, addr, &mut b).unwrap().unwrap();
    u64::from_le_bytes(b)
}

fn store(m: &Machine, pid: Pid, addr: u64, v: u64) {
    m.write(pid, addr, &v.to_le_bytes()).unwrap().unwrap();
}

/// Two processes map an 8 MiB file at different, 2 MiB-aligned addresses.
/// Returns the leaf tables both together needed.
fn two_mappers(m: &Machine, data: &MemFile) -> (Pid, Pid, u64, u64, i32, u64) {
    let fd = m.open_file(Box::new(data.clone()));
    let len = 8 << 20;
    let p1 = m.spawn().unwrap();
    let p2 = m.spawn().unwrap();
    let a1 = m
        .mmap_fd(p1, 0x6000_0000_0000, len, RW, MAP_SHARED | MAP_FIXED, fd, 0)
        .unwrap();
    let a2 = m
        .mmap_fd(p2, 0x6100_0020_0000, len, RW, MAP_SHARED | MAP_FIXED, fd, 0)
        .unwrap();
    let before = m.stats().page_table_pages;
    touch_all(m, p1, a1, len);
    touch_all(m, p2, a2, len);
    let tables = m.stats().page_table_pages - before;
    (p1, p2, a1, a2, fd, tables)
}

#[test]
fn unrelated_processes_share_object_tables_and_see_each_others_writes() {
    let data = MemFile::new(&(0..8u64 << 20).map(|i| (i % 251) as u8).collect::<Vec<u8>>(), true);
    let Some(m) = machine(ForkName::SharedPt) else { return };
    let (p1, p2, a1, a2, fd, tables) = two_mappers(&m, &data);
    m.check().unwrap();
    // 8 MiB = 4 leaf tables, shared; each process also needs PDPT and PD.
    assert!(tables <= 4 + 2 * 2, "shared: {tables} tables");
    let Some(cow) = machine(ForkName::Cow) else { return };
    let (.., cow_tables) = two_mappers(&cow, &data);
    assert!(cow_tables >= 8, "private tables: {cow_tables}");
    assert!(tables + 4 <= cow_tables, "shared {tables} vs private {cow_tables}");

    store(&m, p1, a1 + 5 * PAGE, 0x1111);
    assert_eq!(load(&m, p2, a2 + 5 * PAGE), 0x1111);
    store(&m, p2, a2 + (3 << 20), 0x2222);
    assert_eq!(load(&m, p1, a1 + (3 << 20)), 0x2222);
    m.check().unwrap();

    // p2 makes one page read-only: it leaves the shared table for a copy of
    // its own; p1 keeps writing, and p2 still sees p1's writes.
    m.mprotect(p2, a2 + 6 * PAGE, PAGE, PROT_READ).unwrap();
    m.check().unwrap();
    let mut cpu = m.cpu(0).unwrap();
    cpu.switch_to(p2).unwrap();
    assert_eq!(
        cpu.store_u64(a2 + 6 * PAGE, 1).unwrap_err().reason,
        FaultReason::Protection
    );
    drop(cpu);
    store(&m, p1, a1 + 6 * PAGE, 0x3333);
    assert_eq!(load(&m, p2, a2 + 6 * PAGE), 0x3333);
    // p1's store made its PTE writable again; p2's view stays read-only.
    let mut cpu = m.cpu(0).unwrap();
    cpu.switch_to(p2).unwrap();
    assert_eq!(
        cpu.store_u64(a2 + 6 * PAGE, 1).unwrap_err().reason,
        FaultReason::Protection
    );
    drop(cpu);
    store(&m, p2, a2 + 7 * PAGE, 0x4444);
    assert_eq!(load(&m, p1, a1 + 7 * PAGE), 0x4444);
    // p1 unmaps its first 2 MiB: p2 is untouched.
    m.munmap(p1, a1, MIB2).unwrap();
    assert_eq!(load(&m, p2, a2 + 5 * PAGE), 0x1111);
    m.check().unwrap();

    m.msync(p2, a2, 8 << 20, MS_SYNC).unwrap();
    let bytes = data.contents();
    assert_eq!(
        u64::from_le_bytes(bytes[(3 << 20)..(3 << 20) + 8].try_into().unwrap()),
        0x2222
    );
    drop(bytes);
    m.exit(p1).unwrap();
    m.check().unwrap();
    assert_eq!(load(&m, p2, a2 + (3 << 20)), 0x2222);
    m.exit(p2).unwrap();
    m.close(fd).unwrap();
    m.check().unwrap();
    assert_eq!(m.phys().frames_used(), m.reserved_frames());
    assert_eq!(
        u64::from_le_bytes(
            data.contents()[6 * PAGE as usize..6 * PAGE as usize + 8]
                .try_into()
                .unwrap()
        ),
        0x3333
    );
}

/// Different 2 MiB alignment, or a different protection, means no sharing;
/// it must still be correct.
#[test]
fn misaligned_or_differently_protected_mappers_do_not_share() {
    let data = MemFile::new(&vec![7u8; 4 << 20], true);
    let Some(m) = machine(ForkName::SharedPt) else { return };
    let fd = m.open_file(Box::new(data.clone()));
    let p1 = m.spawn().unwrap();
    let p2 = m.spawn().unwrap();
    let p3 = m.spawn().unwrap();
    let a1 = m
        .mmap_fd(p1, 0x6000_0000_0000, 4 << 20, RW, MAP_SHARED | MAP_FIXED, fd, 0)
        .unwrap();
    // One page off the 2 MiB alignment of the object.
    let a2 = m
        .mmap_fd(p2, 0x6100_0000_1000, 4 << 20, RW, MAP_SHARED | MAP_FIXED, fd, 0)
        .unwrap();
    let a3 = m
        .mmap_fd(p3, 0x6200_0000_0000, 4 << 20, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0)
        .unwrap();
    touch_all(&m, p1, a1, 4 << 20);
    touch_all(&m, p2, a2, 4 << 20);
    touch_all(&m, p3, a3, 4 << 20);
    m.check().unwrap();
    store(&m, p1, a1 + 9 * PAGE, 99);
    assert_eq!(load(&m, p2, a2 + 9 * PAGE), 99);
    assert_eq!(load(&m, p3, a3 + 9 * PAGE), 99);
    let mut cpu = m.cpu(0).unwrap();
    cpu.switch_to(p3).unwrap();
    assert_eq!(cpu.store_u64(a3, 1).unwrap_err().reason, FaultReason::Protection);
    drop(cpu);
    for p in [p1, p2, p3] {
        m.exit(p).unwrap();
        m.check().unwrap();
    }
    m.close(fd).unwrap();
    assert_eq!(m.phys().frames_used(), m.reserved_frames());
}

/// Shared anonymous memory inherited by fork is reached through the same
/// table in parent and child; writes on either side are seen on the other.
#[test]
fn shared_anonymous_memory_tables_across_fork() {
    let Some(m) = machine(ForkName::SharedPt) else { return };
    let p = m.spawn().unwrap();
    let len = 4 << 20;
    let a = m
        .mmap(p, 0x6000_0000_0000, len, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED)
        .unwrap();
    touch_all(&m, p, a, len);
    store(&m, p, a + 3 * PAGE, 5);
    let c = m.fork(p).unwrap();
    let before = m.stats().page_table_pages;
    assert_eq!(load(&m, c, a + 3 * PAGE), 5);
    touch_all(&m, c, a, len);
    assert!(
        m.stats().page_table_pages - before <= 2,
        "child reuses the parent's object tables"
    );
    store(&m, c, a + (2 << 20), 6);
    assert_eq!(load(&m, p, a + (2 << 20)), 6);
    m.check().unwrap();
    m.exit(p).unwrap();
    assert_eq!(load(&m, c, a + 3 * PAGE), 5);
    m.check().unwrap();
    m.exit(c).unwrap();
    m.check().unwrap();
    assert_eq!(m.phys().frames_used(), m.reserved_frames());
}

/// Issue 10, defect 1: a lost write. A and B share an object table; B's CPU
/// caches a writable, dirty translation; A's msync cleans the entry in the
/// shared table. Every sharer's CPUs must drop the translation, or B's next
/// store sets no dirty bit and never reaches the file.
#[test]
fn msync_through_a_shared_object_table_flushes_every_sharer() {
    for fork in [ForkName::SharedPt, ForkName::Cow] {
        let cfg = MachineConfig {
            ram: ByteSize(64 << 20),
            cpus: 2,
            fork,
            ..common::test_config()
        };
        if !common::allowed(&cfg) {
            continue;
        }
        let m = Machine::new(&cfg).unwrap();
        let data = MemFile::new(&vec![0u8; 4 << 20], true);
        let fd = m.open_file(Box::new(data.clone()));
        let a = m.spawn().unwrap();
        let b = m.spawn().unwrap();
        let at = 0x6000_0000_0000;
        let bt = 0x6100_0020_0000;
        m.mmap_fd(a, at, MIB2, RW, MAP_SHARED | MAP_FIXED, fd, 0).unwrap();
        m.mmap_fd(b, bt, MIB2, RW, MAP_SHARED | MAP_FIXED, fd, 0).unwrap();
        let mut ca = m.cpu(0).unwrap();
        let mut cb = m.cpu(1).unwrap();
        ca.switch_to(a).unwrap();
        cb.switch_to(b).unwrap();
        assert_eq!(ca.load_u64(at).unwrap(), 0);
        cb.store_u64(bt, 1).unwrap();
        m.msync(a, at, MIB2, MS_SYNC).unwrap();
        assert_eq!(
            &data.contents()[..8],
            &1u64.to_le_bytes(),
            "{fork:?}: msync wrote the first store"
        );
        cb.store_u64(bt, 2).unwrap();
        m.check().unwrap();
        drop((ca, cb));
        m.exit(a).unwrap();
        m.exit(b).unwrap();
        m.close(fd).unwrap();
        assert_eq!(
            &data.contents()[..8],
            &2u64.to_le_bytes(),
            "{fork:?}: the second store was lost"
        );
        m.check().unwrap();
    }
}

/// Issue 10, defect 2: a use-after-free. The parent unshares a fork-shared
/// leaf table in a fault (holding only its read lock) while another of its
/// CPUs may still be walking the old table; when the child lets the table
/// go, it must not be freed until that walk is over, or the walker's
/// accessed/dirty update lands in a frame that may already be reused.
#[test]
fn a_shared_table_outlives_the_walks_that_may_be_inside_it() {
    use vmlab_mm::pgtable::Pte;
    use vmlab_mm::phys::FrameUse;
    use vmlab_mm::sync::Ordering;
    let cfg = MachineConfig {
        ram: ByteSize(64 << 20),
        cpus: 2,
        fork: ForkName::SharedPt,
        ..common::test_config()
    };
    if !common::allowed(&cfg) {
        return;
    }
    let m = Machine::new(&cfg).unwrap();
    let parent = m.spawn().unwrap();
    let a = m.mmap(parent, 0, 4 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS).unwrap();
    store(&m, parent, a, 7);
    let child = m.fork(parent).unwrap();
    let phys = m.phys();
    let p = m.process(parent).unwrap();
    let table = Pte(p.mm.page_table().pd_entry(phys, a).unwrap().load(Ordering::Acquire));
    assert_ne!(table.0 & Pte::TABLE_COW, 0, "fork shared the table");
    let table = table.pfn();
    // CPU 1 of the parent read the old PD entry and is inside the table.
    phys.walks().begin(1);
    let mut c0 = m.cpu(0).unwrap();
    c0.switch_to(parent).unwrap();
    c0.store_u64(a, 8).unwrap(); // unshares: the parent gets its own copy
    drop(c0);
    m.exit(child).unwrap(); // the last sharer lets the old table go
    let d = phys.desc(table).unwrap();
    assert_eq!(d.usage(), FrameUse::PageTable, "freed while CPU 1 may still walk it");
    assert!(!phys.is_free(table));
    assert_eq!(phys.walks().pending(), 1);
    // The walk ends: the next reap (here the checker's) frees it.
    phys.walks().end(1);
    m.check().unwrap();
    assert!(phys.is_free(table));
    assert_eq!(load(&m, parent, a), 8);
    m.exit(parent).unwrap();
    m.check().unwrap();
    assert_eq!(m.phys().frames_used(), 1, "only the zero page is left");
}
