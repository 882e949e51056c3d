//! fork in its three designs: every policy gives the same visible semantics.

mod common;

use vmlab_mm::errno::{Errno, FaultReason};
use vmlab_mm::mm::uapi::*;
use vmlab_mm::mm::ForkPolicy;
use vmlab_mm::phys::PteLinkKind;
use vmlab_mm::system::{ByteSize, Machine, MachineConfig, Pid};

const POLICIES: [ForkPolicy; 3] = [ForkPolicy::Cow, ForkPolicy::SharedPt, ForkPolicy::Eager];
const PAGE: u64 = 4096;
const RW: u32 = PROT_READ | PROT_WRITE;
const ANON: u32 = MAP_PRIVATE | MAP_ANONYMOUS;

fn machine(ram: u64) -> Machine {
    Machine::new(&MachineConfig {
        ram: ByteSize(ram),
        ..common::test_config()
    })
    .unwrap()
}

fn pattern(tag: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(tag)).collect()
}

fn read(m: &Machine, pid: Pid, addr: u64, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    m.read(pid, addr, &mut b).unwrap().unwrap();
    b
}

fn write(m: &Machine, pid: Pid, addr: u64, data: &[u8]) {
    m.write(pid, addr, data).unwrap().unwrap();
}

/// Parent and child each see their own writes only, byte for byte, after
/// writes on both sides and after a second fork (grandchild).
#[test]
fn private_pages_are_isolated_for_every_policy() {
    for policy in POLICIES.into_iter().filter(|&p| common::fork_allowed(p)) {
        let m = machine(64 << 20);
        let p = m.spawn().unwrap();
        // 3 MiB: spans two leaf tables, partly written, partly zero-page.
        let len = 3 << 20;
        let a = m.mmap(p, 0, len, RW, ANON).unwrap();
        let orig = pattern(1, (len / 2) as usize);
        write(&m, p, a, &orig);
        let _ = read(&m, p, a + len / 2, PAGE as usize); // zero-page mappings too
        let (c, _) = m.fork_with(p, policy).unwrap();
        m.check().unwrap_or_else(|e| panic!("{policy:?} after fork: {e}"));
        assert_eq!(
            read(&m, c, a, orig.len()),
            orig,
            "{policy:?}: child sees parent's bytes"
        );
        assert!(read(&m, c, a + len / 2, PAGE as usize).iter().all(|&b| b == 0));

        let child_bytes = pattern(2, 3 * PAGE as usize);
        write(&m, c, a + PAGE, &child_bytes);
        write(&m, c, a + len - PAGE, &[9; 16]);
        assert_eq!(
            read(&m, p, a, orig.len()),
            orig,
            "{policy:?}: parent unchanged by child"
        );
        assert!(read(&m, p, a + len - PAGE, 16).iter().all(|&b| b == 0));
        let parent_bytes = pattern(3, 2 * PAGE as usize);
        write(&m, p, a + 10 * PAGE, &parent_bytes);
        let mut child_view = orig.clone();
        child_view[PAGE as usize..4 * PAGE as usize].copy_from_slice(&child_bytes);
        assert_eq!(
            read(&m, c, a, orig.len()),
            child_view,
            "{policy:?}: child unchanged by parent"
        );
        m.check().unwrap_or_else(|e| panic!("{policy:?} after writes: {e}"));

        let (g, _) = m.fork_with(c, policy).unwrap();
        write(&m, g, a, &[7; 8]);
        write(&m, c, a + 8, &[6; 8]);
        let mut g_view = child_view.clone();
        g_view[..8].copy_from_slice(&[7; 8]);
        assert_eq!(read(&m, g, a, orig.len()), g_view, "{policy:?}: grandchild");
        let mut c_view = child_view.clone();
        c_view[8..16].copy_from_slice(&[6; 8]);
        assert_eq!(
            read(&m, c, a, orig.len()),
            c_view,
            "{policy:?}: child after grandchild fork"
        );
        let mut p_view = orig.clone();
        p_view[10 * PAGE as usize..12 * PAGE as usize].copy_from_slice(&parent_bytes);
        assert_eq!(
            read(&m, p, a, orig.len()),
            p_view,
            "{policy:?}: parent after grandchild fork"
        );
        m.check().unwrap_or_else(|e| panic!("{policy:?} after grandchild: {e}"));

        for pid in [c, p, g] {
            m.exit(pid).unwrap();
            m.check().unwrap_or_else(|e| panic!("{policy:?} after exit {pid}: {e}"));
        }
        assert_eq!(
            m.phys().frames_used(),
            m.reserved_frames(),
            "{policy:?}: every frame free"
        );
    }
}

/// A child's munmap and mprotect change nothing in its parent, however the
/// page tables were copied; and the other way round.
#[test]
fn mapping_changes_stay_on_their_side() {
    for policy in POLICIES.into_iter().filter(|&p| common::fork_allowed(p)) {
        let m = machine(64 << 20);
        let p = m.spawn().unwrap();
        let len = 4 << 20;
        let a = m.mmap(p, 0, len, RW, ANON).unwrap();
        let data = pattern(5, len as usize);
        write(&m, p, a, &data);
        let (c, _) = m.fork_with(p, policy).unwrap();
        m.munmap(c, a + PAGE, PAGE).unwrap();
        m.mprotect(c, a + (2 << 20), PAGE, PROT_READ).unwrap();
        m.check().unwrap_or_else(|e| panic!("{policy:?}: {e}"));
        assert_eq!(read(&m, p, a, len as usize), data, "{policy:?}");
        write(&m, p, a + PAGE, &[1]);
        write(&m, p, a + (2 << 20), &[2]);
        let mut cpu = m.cpu(0).unwrap();
        cpu.switch_to(c).unwrap();
        assert_eq!(
            cpu.load_u64(a + PAGE).unwrap_err().reason,
            FaultReason::NotMapped,
            "{policy:?}"
        );
        assert_eq!(
            cpu.store_u64(a + (2 << 20), 1).unwrap_err().reason,
            FaultReason::Protection
        );
        assert_eq!(
            cpu.load_u64(a + (2 << 20)).unwrap(),
            u64::from_le_bytes(data[2 << 20..(2 << 20) + 8].try_into().unwrap())
        );
        drop(cpu);
        // And the parent's changes stay out of the child.
        m.munmap(p, a + (3 << 20), PAGE).unwrap();
        assert_eq!(
            read(&m, c, a + (3 << 20), 8),
            &data[3 << 20..(3 << 20) + 8],
            "{policy:?}"
        );
        m.check().unwrap_or_else(|e| panic!("{policy:?}: {e}"));
        m.exit(p).unwrap();
        m.exit(c).unwrap();
        assert_eq!(m.phys().frames_used(), m.reserved_frames(), "{policy:?}");
    }
}

/// What each design pays at fork: shared_pt allocates a small constant of
/// page-table pages and copies nothing; cow copies entries; eager copies pages.
#[test]
fn fork_costs_differ_by_design() {
    let m = machine(256 << 20);
    let p = m.spawn().unwrap();
    let len: u64 = 32 << 20;
    // 2 MiB aligned, so that 32 MiB is exactly 16 leaf tables.
    let a = m.mmap(p, 0x7000_0000_0000, len, RW, ANON | MAP_FIXED).unwrap();
    let mut cpu = m.cpu(0).unwrap();
    cpu.switch_to(p).unwrap();
    for off in (0..len).step_by(PAGE as usize) {
        cpu.store_u64(a + off, off).unwrap();
    }
    drop(cpu);
    let pages = (len / PAGE) as usize;
    let mut pt_pages = Vec::new();
    for policy in POLICIES.into_iter().filter(|&p| common::fork_allowed(p)) {
        let before = m.stats().page_table_pages;
        let used = m.phys().frames_used();
        let (c, r) = m.fork_with(p, policy).unwrap();
        let after = m.stats().page_table_pages;
        pt_pages.push(after - before);
        match policy {
            ForkPolicy::SharedPt => {
                assert_eq!(r.tables_shared, 16, "32 MiB = 16 leaf tables");
                assert_eq!(r.ptes_copied, 0);
                assert!(after - before <= 4, "root + PDPT + PD: {}", after - before);
            }
            ForkPolicy::Cow => {
                assert_eq!(r.ptes_copied, pages);
                assert_eq!(r.pages_copied, 0);
                // Each table is one frame, two under rmap = pte_chain (its links).
                let per_table = if m.phys().pte_link_kind() == PteLinkKind::Chain {
                    2
                } else {
                    1
                };
                assert_eq!(m.phys().frames_used() - used, per_table * (after - before) as usize);
            }
            ForkPolicy::Eager => {
                assert_eq!(r.pages_copied, pages);
                let per_table = if m.phys().pte_link_kind() == PteLinkKind::Chain {
                    2
                } else {
                    1
                };
                assert_eq!(
                    m.phys().frames_used() - used,
                    pages + per_table * (after - before) as usize
                );
            }
        }
        m.check().unwrap();
        m.exit(c).unwrap();
    }
    // (Unless VMLAB_TEST_SET left cow or shared_pt out.)
    if let [cow, shared_pt, _eager] = pt_pages[..] {
        assert!(shared_pt * 4 < cow, "shared_pt {shared_pt} vs cow {cow}");
    }
    m.exit(p).unwrap();
    assert_eq!(m.phys().frames_used(), m.reserved_frames());
}

/// Under shared_pt, after the parent exits the child takes the tables back
/// and its writes reuse the frames instead of copying them.
#[test]
fn last_sharer_takes_the_table_back() {
    if !common::fork_allowed(ForkPolicy::SharedPt) {
        return;
    }
    let m = machine(64 << 20);
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, 8 * PAGE, RW, ANON).unwrap();
    write(&m, p, a, &pattern(1, 8 * PAGE as usize));
    let (c, _) = m.fork_with(p, ForkPolicy::SharedPt).unwrap();
    m.exit(p).unwrap();
    m.check().unwrap();
    let used = m.phys().frames_used();
    write(&m, c, a, &[0xee; 8]);
    assert_eq!(m.phys().frames_used(), used, "exclusive frame reused, no copy");
    let mut want = pattern(1, 8 * PAGE as usize);
    want[..8].copy_from_slice(&[0xee; 8]);
    assert_eq!(read(&m, c, a, want.len()), want);
    m.check().unwrap();
    m.exit(c).unwrap();
    assert_eq!(m.phys().frames_used(), m.reserved_frames());
}

/// A CPU running the parent that cached a writable translation loses it at
/// fork: its next store breaks copy-on-write instead of writing the shared frame.
#[test]
fn fork_shoots_down_parent_write_translations() {
    for policy in [ForkPolicy::Cow, ForkPolicy::SharedPt]
        .into_iter()
        .filter(|&p| common::fork_allowed(p))
    {
        let m = Machine::new(&MachineConfig {
            ram: ByteSize(64 << 20),
            cpus: 2,
            ..common::test_config()
        })
        .unwrap();
        let p = m.spawn().unwrap();
        let a = m.mmap(p, 0, PAGE, RW, ANON).unwrap();
        let mut cpu = m.cpu(1).unwrap();
        cpu.switch_to(p).unwrap();
        cpu.store_u64(a, 1).unwrap();
        cpu.store_u64(a, 2).unwrap(); // a TLB hit, writable
        let (c, _) = m.fork_with(p, policy).unwrap();
        cpu.store_u64(a, 3).unwrap();
        drop(cpu);
        assert_eq!(read(&m, c, a, 8), 2u64.to_le_bytes(), "{policy:?}");
        assert_eq!(read(&m, p, a, 8), 3u64.to_le_bytes(), "{policy:?}");
        m.check().unwrap();
    }
}

#[test]
fn fork_errors() {
    let m = machine(64 << 20);
    assert_eq!(m.fork(99), Err(Errno::ESRCH));
    // Eager fork of more private memory than is free: ENOMEM, nothing left behind.
    let m = machine(4 << 20);
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, 600 * PAGE, RW, ANON).unwrap();
    write(&m, p, a, &pattern(4, 600 * PAGE as usize));
    let used = m.phys().frames_used();
    let procs = m.pids().len();
    assert_eq!(m.fork_with(p, ForkPolicy::Eager).map(|_| ()), Err(Errno::ENOMEM));
    assert_eq!(m.pids().len(), procs);
    assert_eq!(m.phys().frames_used(), used);
    m.check().unwrap();
    assert_eq!(read(&m, p, a, 600 * PAGE as usize), pattern(4, 600 * PAGE as usize));
}

/// exec leaves an empty address space whose memory is all returned.
#[test]
fn exec_resets_the_address_space() {
    for policy in POLICIES.into_iter().filter(|&p| common::fork_allowed(p)) {
        let m = machine(64 << 20);
        let p = m.spawn().unwrap();
        let a = m.mmap(p, 0, 4 << 20, RW, ANON).unwrap();
        write(&m, p, a, &pattern(8, 1 << 20));
        let (c, _) = m.fork_with(p, policy).unwrap();
        m.exec(c).unwrap();
        assert!(m.maps(c).unwrap().is_empty());
        m.check().unwrap();
        assert_eq!(read(&m, p, a, 1 << 20), pattern(8, 1 << 20));
        let b = m.mmap(c, 0, PAGE, RW, ANON).unwrap();
        assert_eq!(read(&m, c, b, 8), [0; 8]);
        m.exit(p).unwrap();
        m.exit(c).unwrap();
        m.check().unwrap();
        assert_eq!(m.phys().frames_used(), m.reserved_frames(), "{policy:?}");
    }
}
