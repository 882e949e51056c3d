//! The reverse maps (config `rmap`): every design finds every mapping of a
//! frame and `unmap_everywhere` clears them all; msync cleans through it;
//! the checker catches a mapping the reverse map cannot find.

mod common;
use vmlab_mm::addr::{Pfn, PAGE_SIZE};
use vmlab_mm::mm::uapi::*;
use vmlab_mm::mm::MemFile;
use vmlab_mm::system::config::{ForkName, RmapName};
use vmlab_mm::system::{Machine, MachineConfig, Pid};

const PAGE: u64 = PAGE_SIZE;
const RW: u32 = PROT_READ | PROT_WRITE;

fn machine(rmap: RmapName) -> Machine {
    let fork = if rmap == RmapName::PrivateVma {
        ForkName::Eager
    } else {
        ForkName::Cow
    };
    Machine::new(&MachineConfig {
        rmap,
        fork,
        ..common::test_config()
    })
    .unwrap()
}

fn designs() -> Vec<RmapName> {
    vec![
        RmapName::Object,
        RmapName::PteChain,
        RmapName::PtePool,
        RmapName::PrivateVma,
        RmapName::None,
    ]
}

/// The frame `pid` maps at `va`.
fn frame_at(m: &Machine, pid: Pid, va: u64) -> Pfn {
    let p = m.process(pid).unwrap();
    let e = p.mm.page_table().leaf(m.phys(), va).unwrap().load();
    assert!(e.present() && !e.special(), "{va:#x} not mapped: {:#x}", e.0);
    e.pfn()
}

fn load(m: &Machine, pid: Pid, va: u64) -> u64 {
    let mut b = [0u8; 8];
    m.read(pid, va, &mut b).unwrap().unwrap();
    u64::from_le_bytes(b)
}

#[test]
fn every_design_finds_and_unmaps_a_page_forked_into_four_processes() {
    for d in designs() {
        let m = machine(d);
        let p = m.spawn().unwrap();
        let a = m.mmap(p, 0, 16 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS).unwrap();
        for i in 0..16 {
            m.write(p, a + i * PAGE, &(i + 1).to_le_bytes()).unwrap().unwrap();
        }
        let kids: Vec<Pid> = (0..3).map(|_| m.fork(p).unwrap()).collect();
        for &k in &kids {
            assert_eq!(load(&m, k, a + 5 * PAGE), 6);
        }
        let f = frame_at(&m, p, a + 5 * PAGE);
        let mut want: Vec<(u64, u64)> = [p]
            .iter()
            .chain(&kids)
            .map(|&q| (m.process(q).unwrap().mm.id, a + 5 * PAGE))
            .collect();
        if d == RmapName::PrivateVma {
            // fork = eager copied the page: the parent alone maps this frame.
            want.truncate(1);
        }
        want.sort();
        assert_eq!(m.mappings_of(f), want, "{d:?}");
        m.check().unwrap_or_else(|e| panic!("{d:?}: {e}"));
        assert_eq!(m.unmap_everywhere(f), want.len(), "{d:?}");
        assert!(m.mappings_of(f).is_empty(), "{d:?}");
        m.check().unwrap_or_else(|e| panic!("{d:?} after unmap: {e}"));
        // No swap yet: the private page's contents are gone where it was
        // unmapped; the neighbours are untouched.
        assert_eq!(load(&m, p, a + 5 * PAGE), 0, "{d:?}");
        assert_eq!(load(&m, kids[0], a + 4 * PAGE), 5, "{d:?}");
        m.check().unwrap_or_else(|e| panic!("{d:?} at the end: {e}"));
    }
}

#[test]
fn every_design_unmaps_a_file_page_from_every_process_and_it_faults_back() {
    for d in designs() {
        let m = machine(d);
        let mut data = vec![0u8; 4 * PAGE as usize];
        data[PAGE as usize..PAGE as usize + 8].copy_from_slice(&77u64.to_le_bytes());
        let fd = m.open_file(Box::new(MemFile::new(&data, true)));
        let procs: Vec<Pid> = (0..4).map(|_| m.spawn().unwrap()).collect();
        let mut addrs = Vec::new();
        for &q in &procs {
            // Different addresses in each process: the object list, not a
            // shared address, must lead to each mapping.
            let pad = m
                .mmap(q, 0, (q as u64) * PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS)
                .unwrap();
            let _ = pad;
            let b = m.mmap_fd(q, 0, 4 * PAGE, RW, MAP_SHARED, fd, 0).unwrap();
            assert_eq!(load(&m, q, b + PAGE), 77);
            addrs.push(b);
        }
        let f = frame_at(&m, procs[0], addrs[0] + PAGE);
        let mut want: Vec<(u64, u64)> = procs
            .iter()
            .zip(&addrs)
            .map(|(&q, &b)| (m.process(q).unwrap().mm.id, b + PAGE))
            .collect();
        want.sort();
        assert_eq!(m.mappings_of(f), want, "{d:?}");
        assert_eq!(m.unmap_everywhere(f), 4, "{d:?}");
        m.check().unwrap_or_else(|e| panic!("{d:?}: {e}"));
        // The page stays in the cache: each process faults it back.
        for (&q, &b) in procs.iter().zip(&addrs) {
            assert_eq!(load(&m, q, b + PAGE), 77, "{d:?}");
        }
        assert_eq!(m.mappings_of(f), want, "{d:?}");
    }
}

#[test]
fn msync_writes_back_a_page_mapped_elsewhere_only_when_some_mapping_dirtied_it() {
    for d in designs() {
        let m = machine(d);
        let data = vec![1u8; 2 * PAGE as usize];
        let fd = m.open_file(Box::new(MemFile::new(&data, true)));
        let (a, b) = (m.spawn().unwrap(), m.spawn().unwrap());
        let va = m.mmap_fd(a, 0, 2 * PAGE, RW, MAP_SHARED, fd, 0).unwrap();
        let vb = m.mmap_fd(b, 0, 2 * PAGE, RW, MAP_SHARED, fd, 0).unwrap();
        assert_eq!(load(&m, a, va), 0x0101_0101_0101_0101);
        assert_eq!(load(&m, b, vb), 0x0101_0101_0101_0101);
        let obj = m.file_object(fd).unwrap();
        let writes = obj.io_counts().1;
        // Nobody stored: nothing to write (before, a page mapped elsewhere
        // was written back whatever its state).
        m.msync(a, va, 2 * PAGE, MS_SYNC).unwrap();
        assert_eq!(obj.io_counts().1, writes, "{d:?}: a clean page was written");
        // B stores; A's msync finds B's dirty bit through the reverse map.
        m.write(b, vb + 8, &[9]).unwrap().unwrap();
        m.msync(a, va, 2 * PAGE, MS_SYNC).unwrap();
        assert_eq!(obj.io_counts().1, writes + 1, "{d:?}: B's store was not written");
        // And B's CPU lost its writable translation: its next store dirties
        // the page again and the next msync writes it.
        m.write(b, vb + 16, &[7]).unwrap().unwrap();
        m.msync(a, va, 2 * PAGE, MS_SYNC).unwrap();
        assert_eq!(obj.io_counts().1, writes + 2, "{d:?}: B's second store was lost");
        m.check().unwrap_or_else(|e| panic!("{d:?}: {e}"));
    }
}

#[test]
fn the_checker_catches_a_mapping_the_reverse_map_cannot_find() {
    // Move a present PTE to another slot of its table behind the VM's back:
    // counts stay right, but the page's owner names its old address, so the
    // object design cannot find it (pte_chain/pte_pool keep the old pointer).
    for d in [RmapName::Object, RmapName::PteChain, RmapName::PtePool] {
        let m = machine(d);
        let p = m.spawn().unwrap();
        let a = m.mmap(p, 0, 4 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS).unwrap();
        m.write(p, a, &[1]).unwrap().unwrap();
        m.check().unwrap();
        let mm = m.process(p).unwrap().mm.clone();
        let from = mm.page_table().leaf(m.phys(), a).unwrap();
        let to = mm.page_table().leaf(m.phys(), a + 2 * PAGE).unwrap();
        let v = from.load();
        // `Ram::frame` gives safe code every RAM word (a known gap).
        let ram = m.phys().ram();
        let words = ram.words();
        let idx = |e: &vmlab_mm::pgtable::LeafRef<'_>| {
            words.iter().position(|w| std::ptr::eq(w, e.word_for_tests())).unwrap()
        };
        let (fi, ti) = (idx(&from), idx(&to));
        words[ti].store(v.0, std::sync::atomic::Ordering::SeqCst);
        words[fi].store(0, std::sync::atomic::Ordering::SeqCst);
        let e = m.check().unwrap_err().0;
        assert!(e.contains("rmap") || e.contains("PTE pointer"), "{d:?}: {e}");
        // Put it back: the checker passes again.
        words[fi].store(v.0, std::sync::atomic::Ordering::SeqCst);
        words[ti].store(0, std::sync::atomic::Ordering::SeqCst);
        m.check().unwrap();
    }
}

#[test]
fn private_vma_is_refused_with_another_fork_design() {
    let e = Machine::new(&MachineConfig {
        rmap: RmapName::PrivateVma,
        fork: ForkName::Cow,
        ..MachineConfig::default()
    })
    .err()
    .expect("refused");
    let msg = format!("{e}");
    assert!(msg.contains("private_vma") && msg.contains("eager"), "{msg}");
    let m = machine(RmapName::PrivateVma);
    let p = m.spawn().unwrap();
    assert_eq!(
        m.fork_with(p, vmlab_mm::mm::ForkPolicy::Cow).err(),
        Some(vmlab_mm::errno::Errno::EINVAL)
    );
}

#[test]
fn rmap_bytes_follow_the_design() {
    let mut bytes = Vec::new();
    for d in designs() {
        let m = machine(d);
        let p = m.spawn().unwrap();
        let a = m.mmap(p, 0, 64 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS).unwrap();
        for i in 0..64 {
            m.write(p, a + i * PAGE, &[1]).unwrap().unwrap();
        }
        for _ in 0..4 {
            m.fork(p).unwrap();
        }
        bytes.push((d, m.rmap_bytes()));
    }
    let get = |d| bytes.iter().find(|x| x.0 == d).unwrap().1;
    assert_eq!(get(RmapName::None), 0);
    assert!(get(RmapName::Object) > 0);
    // pte_chain: at least one second page per leaf table, plus the heads.
    assert!(get(RmapName::PteChain) >= 5 * PAGE, "{bytes:?}");
    // pte_pool: 5 mappings of each of 64 pages (eager copies under private_vma).
    assert!(get(RmapName::PtePool) > 0, "{bytes:?}");
    assert!(get(RmapName::Object) > get(RmapName::PrivateVma), "{bytes:?}");
}

fn shared_pt_machine(rmap: RmapName) -> Machine {
    Machine::new(&MachineConfig {
        rmap,
        fork: ForkName::SharedPt,
        ..common::test_config()
    })
    .unwrap()
}

#[test]
fn unmapping_from_fork_shared_tables_copies_them_first() {
    for d in [RmapName::Object, RmapName::PteChain, RmapName::PtePool, RmapName::None] {
        let m = shared_pt_machine(d);
        let p = m.spawn().unwrap();
        let a = m.mmap(p, 0, 8 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS).unwrap();
        for i in 0..8 {
            m.write(p, a + i * PAGE, &(i + 10).to_le_bytes()).unwrap().unwrap();
        }
        let kids: Vec<Pid> = (0..2).map(|_| m.fork(p).unwrap()).collect();
        let f = frame_at(&m, kids[1], a + 3 * PAGE);
        let shared = m.phys().shared_tables();
        assert!(!shared.is_empty(), "{d:?}: fork shared no table");
        assert_eq!(m.mappings_of(f).len(), 3, "{d:?}");
        m.check().unwrap_or_else(|e| panic!("{d:?}: {e}"));
        assert_eq!(m.unmap_everywhere(f), 3, "{d:?}");
        assert!(m.mappings_of(f).is_empty(), "{d:?}");
        m.check().unwrap_or_else(|e| panic!("{d:?} after: {e}"));
        for &q in [p].iter().chain(&kids) {
            assert_eq!(load(&m, q, a + 3 * PAGE), 0, "{d:?}");
            assert_eq!(load(&m, q, a + 4 * PAGE), 14, "{d:?}");
        }
        m.check().unwrap_or_else(|e| panic!("{d:?} at the end: {e}"));
    }
}

#[test]
fn an_object_table_entry_is_cleared_once_for_all_its_sharers() {
    const SPAN: u64 = 2 << 20;
    for d in [RmapName::Object, RmapName::PteChain, RmapName::PtePool, RmapName::None] {
        let m = shared_pt_machine(d);
        let mut data = vec![3u8; 2 * SPAN as usize];
        data[5 * PAGE as usize] = 42;
        let fd = m.open_file(Box::new(MemFile::new(&data, true)));
        let (a, b) = (m.spawn().unwrap(), m.spawn().unwrap());
        let va = m
            .mmap_fd(a, 0x6000_0000_0000, SPAN, RW, MAP_SHARED | MAP_FIXED, fd, 0)
            .unwrap();
        let vb = m
            .mmap_fd(b, 0x6100_0000_0000, SPAN, RW, MAP_SHARED | MAP_FIXED, fd, 0)
            .unwrap();
        assert_eq!(load(&m, a, va + 5 * PAGE) & 0xff, 42);
        assert_eq!(load(&m, b, vb + 5 * PAGE) & 0xff, 42);
        let f = frame_at(&m, a, va + 5 * PAGE);
        let both = m.mappings_of(f);
        assert_eq!(both.len(), 2, "{d:?}: {both:x?}");
        let obj = m.file_object(fd).unwrap();
        assert_eq!(
            obj.shared_tables_snapshot().len(),
            1,
            "{d:?}: the block's table is not shared"
        );
        m.check().unwrap_or_else(|e| panic!("{d:?}: {e}"));
        // One entry, seen from two address spaces: cleared once.
        assert_eq!(m.unmap_everywhere(f), 1, "{d:?}");
        assert!(m.mappings_of(f).is_empty(), "{d:?}");
        m.check().unwrap_or_else(|e| panic!("{d:?} after: {e}"));
        m.write(b, vb + 5 * PAGE, &[43]).unwrap().unwrap();
        assert_eq!(load(&m, a, va + 5 * PAGE) & 0xff, 43, "{d:?}");
        m.check().unwrap_or_else(|e| panic!("{d:?} at the end: {e}"));
    }
}

#[test]
fn records_stay_bounded_while_a_process_maps_and_unmaps() {
    // A long-lived process that maps, touches and unmaps anonymous and
    // shared memory over and over: the reverse map's records follow what it
    // maps now, not what it ever mapped.
    for d in [RmapName::Object, RmapName::PrivateVma] {
        let m = machine(d);
        let p = m.spawn().unwrap();
        let keep = m.mmap(p, 0, 4 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS).unwrap();
        m.write(p, keep, &[1]).unwrap().unwrap();
        // Far from it, so that no new mapping borrows its identity (Linux
        // `reusable_anon_vma` takes an adjacent one): each round's first
        // write makes a new one.
        let round = |m: &Machine| {
            let fixed = MAP_FIXED | MAP_ANONYMOUS;
            let a = m.mmap(p, 0x5000_0000_0000, 2 * PAGE, RW, MAP_PRIVATE | fixed).unwrap();
            let s = m.mmap(p, 0x5100_0000_0000, 2 * PAGE, RW, MAP_SHARED | fixed).unwrap();
            m.write(p, a, &[2]).unwrap().unwrap();
            m.write(p, s, &[3]).unwrap().unwrap();
            m.munmap(p, a, 2 * PAGE).unwrap();
            m.munmap(p, s, 2 * PAGE).unwrap();
        };
        for _ in 0..10 {
            round(&m);
        }
        let after_10 = m.rmap_bytes();
        for _ in 0..500 {
            round(&m);
        }
        assert_eq!(m.rmap_bytes(), after_10, "{d:?}: records grew with unmapped memory");
        // What is still mapped is still found.
        let f = frame_at(&m, p, keep);
        assert_eq!(m.mappings_of(f), vec![(m.process(p).unwrap().mm.id, keep)]);
        m.check().unwrap();
    }
}
