//! The madvise advice that work through reclaim and swap, as Linux 6.18
//! does them, for every reclaim design (they go through `Reclaimer`):
//! MADV_FREE (lazily freed pages dropped by reclaim unless stored to again;
//! swap entries freed at once), MADV_COLD (deactivated, evicted before a
//! hot set), MADV_PAGEOUT (reclaimed now: swapped, kept without swap,
//! dropped from the page cache), MADV_WILLNEED (swap-in into the swap
//! cache, read-ahead into the page cache), mincore of swap-cache pages, and
//! MAP_DROPPABLE (dropped by reclaim, never an OOM kill).

mod common;

use vmlab_mm::mm::uapi::*;
use vmlab_mm::mm::{ForkPolicy, MemFile};
use vmlab_mm::system::config::ReclaimName;
use vmlab_mm::system::{ByteSize, Machine, MachineConfig, Pid};

const P: u64 = 4096;
const RW: u32 = PROT_READ | PROT_WRITE;
const PA: u32 = MAP_PRIVATE | MAP_ANONYMOUS;
const RAM_PAGES: u64 = (4 << 20) / P;

/// A 4 MiB machine of reclaim design `reclaim`, with 64 MiB of swap or none.
fn machine(reclaim: &str, swap: bool) -> Option<Machine> {
    let mut cfg = MachineConfig {
        ram: ByteSize(4 << 20),
        cpus: 1,
        ..common::test_config()
    };
    let swap_size = if swap { "64M" } else { "0" };
    cfg.apply_pairs(&format!("reclaim={reclaim},swap_size={swap_size}"))
        .unwrap();
    if !common::allowed(&cfg) {
        return None;
    }
    Some(Machine::new(&cfg).unwrap())
}

/// A machine as `machine` says, a process, and `n` private anonymous
/// pages of it written (generation 1).
fn filled(reclaim: &str, swap: bool, n: u64) -> Option<(Machine, Pid, u64)> {
    let m = machine(reclaim, swap)?;
    let pid = m.spawn().unwrap();
    let base = m.mmap(pid, 0, n * P, RW, PA).unwrap();
    fill(&m, pid, base, n, 1);
    Some((m, pid, base))
}

fn word(page: u64, gen: u64) -> u64 {
    0x5a5a_0000_0000_0000 | page << 8 | gen
}

fn fill(m: &Machine, pid: Pid, base: u64, pages: u64, gen: u64) {
    let mut cpu = m.cpu(0).unwrap();
    cpu.switch_to(pid).unwrap();
    for i in 0..pages {
        cpu.store_u64(base + i * P, word(i, gen)).unwrap();
    }
}

fn read(m: &Machine, pid: Pid, base: u64, pages: u64) -> Vec<u64> {
    let mut cpu = m.cpu(0).unwrap();
    cpu.switch_to(pid).unwrap();
    (0..pages).map(|i| cpu.load_u64(base + i * P).unwrap()).collect()
}

fn verify(m: &Machine, pid: Pid, base: u64, pages: u64, gen: u64, what: &str) {
    for (i, w) in read(m, pid, base, pages).into_iter().enumerate() {
        assert_eq!(w, word(i as u64, gen), "{what}: page {i}");
    }
}

fn byte(cpu: &mut vmlab_mm::system::Cpu<'_>, addr: u64) -> u8 {
    let mut b = [0u8];
    cpu.read(addr, &mut b).unwrap();
    b[0]
}

fn resident(m: &Machine, pid: Pid, base: u64, pages: u64) -> usize {
    m.mincore(pid, base, pages * P)
        .unwrap()
        .iter()
        .filter(|b| **b & 1 != 0)
        .count()
}

/// Write `pages` fresh pages in a new mapping of `pid` (memory pressure).
fn pressure(m: &Machine, pid: Pid, pages: u64) -> u64 {
    let base = m.mmap(pid, 0, pages * P, RW, PA).unwrap();
    fill(m, pid, base, pages, 9);
    base
}

fn designs() -> &'static [&'static str] {
    ReclaimName::ALL
}

/// MADV_FREE, then memory pressure: the lazily freed pages are dropped,
/// not swapped (reading them back is no major fault and gives zero), with
/// swap and without it (where nothing else could be reclaimed).
#[test]
fn freed_pages_are_dropped_under_pressure_without_swap_io() {
    for &reclaim in designs() {
        for swap in [true, false] {
            let n = 256;
            let Some((m, pid, base)) = filled(reclaim, swap, n) else {
                continue;
            };
            let what = format!("{reclaim}, swap {swap}");
            let s0 = m.stats();
            m.madvise(pid, base, n * P, MADV_FREE).unwrap();
            let s1 = m.stats();
            assert_eq!(s1.pglazyfree - s0.pglazyfree, n, "{what}");
            // Linux: the contents stay until reclaim wants the memory.
            verify(&m, pid, base, n, 1, &what);
            m.madvise(pid, base, n * P, MADV_FREE).unwrap();
            // Without swap only the lazily freed pages can give memory back.
            let more = if swap {
                2 * RAM_PAGES
            } else {
                m.stats().frames_free + 64
            };
            pressure(&m, pid, more);
            let s2 = m.stats();
            let dropped = s2.pglazyfreed - s1.pglazyfreed;
            assert!(dropped > 0, "{what}: {s2:?}");
            let gone = n as usize - resident(&m, pid, base, n);
            assert_eq!(gone as u64, dropped, "{what}: non-resident pages are the dropped ones");
            if swap {
                assert_eq!(dropped, n, "{what}: every freed page goes before swapped ones");
            } else {
                assert_eq!(s2.pswpout, 0, "{what}");
                assert!(m.oom_kills().is_empty(), "{what}");
            }
            let before = m.stats().major_faults;
            let words = read(&m, pid, base, n);
            assert_eq!(
                m.stats().major_faults,
                before,
                "{what}: dropped pages are not read from swap"
            );
            let zeros = words.iter().filter(|w| **w == 0).count();
            assert_eq!(zeros as u64, dropped, "{what}");
            for (i, w) in words.into_iter().enumerate() {
                assert!(w == 0 || w == word(i as u64, 1), "{what}: page {i} holds {w:#x}");
            }
            common::finish(&m);
        }
    }
}

/// A page stored to after MADV_FREE is swap-backed again: reclaim keeps
/// (or swaps) it, and it reads back what was stored.
#[test]
fn a_store_after_free_keeps_the_page() {
    for &reclaim in designs() {
        for swap in [true, false] {
            let n = 128;
            let Some((m, pid, base)) = filled(reclaim, swap, n) else {
                continue;
            };
            let what = format!("{reclaim}, swap {swap}");
            m.madvise(pid, base, n * P, MADV_FREE).unwrap();
            let mut cpu = m.cpu(0).unwrap();
            cpu.switch_to(pid).unwrap();
            for i in (0..n).step_by(8) {
                cpu.store_u64(base + i * P, word(i, 2)).unwrap();
            }
            drop(cpu);
            let more = if swap {
                2 * RAM_PAGES
            } else {
                m.stats().frames_free + 64
            };
            pressure(&m, pid, more);
            let s = m.stats();
            assert!(s.pglazyfreed > 0 && s.pglazyfreed <= n - n / 8, "{what}: {s:?}");
            for (i, w) in read(&m, pid, base, n).into_iter().enumerate() {
                let i = i as u64;
                if i.is_multiple_of(8) {
                    assert_eq!(w, word(i, 2), "{what}: stored page {i}");
                } else {
                    assert!(w == 0 || w == word(i, 1), "{what}: page {i} holds {w:#x}");
                }
            }
            common::finish(&m);
        }
    }
}

/// A page a fork child shares is not made lazily freeable: under
/// pressure both keep their data.
#[test]
fn free_leaves_pages_shared_with_a_child() {
    for &reclaim in designs() {
        let n = 64;
        let Some((m, parent, base)) = filled(reclaim, true, n) else {
            continue;
        };
        let child = m.fork(parent).unwrap();
        let s0 = m.stats();
        m.madvise(parent, base, n * P, MADV_FREE).unwrap();
        // fork = eager copies every page: the parent's are its own.
        let shares = m.config().fork.policy() != ForkPolicy::Eager;
        if shares {
            assert_eq!(m.stats().pglazyfree, s0.pglazyfree, "{reclaim}");
        }
        pressure(&m, parent, 2 * RAM_PAGES);
        verify(&m, child, base, n, 1, reclaim);
        if shares {
            verify(&m, parent, base, n, 1, reclaim);
        }
        common::finish(&m);
    }
}

/// MADV_FREE over swapped-out pages frees their slots at once.
#[test]
fn free_releases_swap_entries_at_once() {
    for &reclaim in designs() {
        let n = 64;
        let Some((m, pid, base)) = filled(reclaim, true, n) else {
            continue;
        };
        m.madvise(pid, base, n * P, MADV_PAGEOUT).unwrap();
        assert_eq!(m.swap().unwrap().used(), n, "{reclaim}");
        assert_eq!(m.stats().swap_entries, n, "{reclaim}");
        m.madvise(pid, base, n * P, MADV_FREE).unwrap();
        assert_eq!(m.swap().unwrap().used(), 0, "{reclaim}");
        assert_eq!(m.stats().swap_entries, 0, "{reclaim}");
        assert!(read(&m, pid, base, n).iter().all(|w| *w == 0), "{reclaim}");
        common::finish(&m);
    }
}

/// MADV_COLD deactivates the pages (`pgdeactivate`), so that pressure
/// evicts them before a set that stays in use, though that set is older.
#[test]
fn cold_pages_go_before_hot_ones() {
    for &reclaim in designs() {
        let n = 160;
        let Some((m, pid, hot)) = filled(reclaim, true, n) else {
            continue;
        };
        let cold = m.mmap(pid, 0, n * P, RW, PA).unwrap();
        fill(&m, pid, cold, n, 2);
        // Paged out and read back, the cold set refaults into the working
        // set (two_list: the active list).
        m.madvise(pid, cold, n * P, MADV_PAGEOUT).unwrap();
        verify(&m, pid, cold, n, 2, reclaim);
        let s0 = m.stats();
        m.madvise(pid, cold, n * P, MADV_COLD).unwrap();
        let s1 = m.stats();
        assert!(s1.pgdeactivate - s0.pgdeactivate >= n / 2, "{reclaim}: {s1:?}");
        // Still resident and intact: COLD is only a hint.
        assert_eq!(resident(&m, pid, cold, n), n as usize, "{reclaim}");
        verify(&m, pid, hot, n, 1, reclaim);
        let more = m.stats().frames_free + n / 2;
        pressure(&m, pid, more);
        let hot_gone = n as usize - resident(&m, pid, hot, n);
        let cold_gone = n as usize - resident(&m, pid, cold, n);
        assert!(
            cold_gone > hot_gone,
            "{reclaim}: cold {cold_gone} evicted, hot {hot_gone}"
        );
        verify(&m, pid, cold, n, 2, reclaim);
        verify(&m, pid, hot, n, 1, reclaim);
        common::finish(&m);
    }
}

/// Under clock_pro, a page MADV_PAGEOUT evicts in its test period is
/// remembered as non-resident as hand-cold's evictions are (the shadow it
/// leaves stands: `Workingset::left`), and its refault is one: it comes
/// back hot, forgotten as non-resident.
#[test]
fn clock_pro_remembers_pages_paged_out_in_their_test_period() {
    let n = 64;
    let Some((m, pid, base)) = filled("clock_pro", true, n) else {
        return;
    };
    let before = m.clock_pro_state().unwrap();
    assert_eq!(before.nonresident, 0, "{before:?}");
    m.madvise(pid, base, n * P, MADV_PAGEOUT).unwrap();
    let out = m.clock_pro_state().unwrap();
    assert_eq!(out.nonresident, n as usize, "{out:?}");
    verify(&m, pid, base, n, 1, "clock_pro");
    let back = m.clock_pro_state().unwrap();
    assert_eq!(back.nonresident, 0, "{back:?}");
    assert!(back.cold_target > before.cold_target, "{before:?} -> {back:?}");
    common::finish(&m);
}

/// MADV_PAGEOUT with swap: written out now, not resident, read back
/// intact by major faults.
#[test]
fn pageout_swaps_out_at_once() {
    for &reclaim in designs() {
        let n = 64;
        let Some((m, pid, base)) = filled(reclaim, true, n) else {
            continue;
        };
        let s0 = m.stats();
        m.madvise(pid, base, n * P, MADV_PAGEOUT).unwrap();
        let s1 = m.stats();
        assert_eq!(s1.pswpout - s0.pswpout, n, "{reclaim}");
        assert_eq!(resident(&m, pid, base, n), 0, "{reclaim}");
        verify(&m, pid, base, n, 1, reclaim);
        let s2 = m.stats();
        assert_eq!(s2.major_faults - s1.major_faults, n, "{reclaim}");
        // A page shared with a child is not this process's to page out.
        let child = m.fork(pid).unwrap();
        let s3 = m.stats();
        m.madvise(pid, base, n * P, MADV_PAGEOUT).unwrap();
        if m.config().fork.policy() != ForkPolicy::Eager {
            assert_eq!(m.stats().pswpout, s3.pswpout, "{reclaim}");
            assert_eq!(resident(&m, pid, base, n), n as usize, "{reclaim}");
        }
        verify(&m, child, base, n, 1, reclaim);
        common::finish(&m);
    }
}

/// MADV_PAGEOUT without swap: anonymous pages stay; a clean file page is
/// dropped and read again intact, a dirty shared one written back first.
#[test]
fn pageout_without_swap_keeps_anon_and_drops_file_pages() {
    for &reclaim in designs() {
        let n = 16;
        let Some((m, pid, base)) = filled(reclaim, false, n) else {
            continue;
        };
        m.madvise(pid, base, n * P, MADV_PAGEOUT).unwrap();
        assert_eq!(resident(&m, pid, base, n), n as usize, "{reclaim}");
        assert_eq!(m.stats().pswpout, 0, "{reclaim}");
        verify(&m, pid, base, n, 1, reclaim);

        let data: Vec<u8> = (0..8 * P).map(|i| (i / P) as u8 + 1).collect();
        let fd = m.open_file(Box::new(MemFile::new(&data, true)));
        let f = m.mmap_fd(pid, 0, 8 * P, RW, MAP_SHARED, fd, 0).unwrap();
        let mut cpu = m.cpu(0).unwrap();
        cpu.switch_to(pid).unwrap();
        for i in 0..8 {
            assert_eq!(byte(&mut cpu, f + i * P), i as u8 + 1);
        }
        cpu.write(f + 3 * P + 1, &[0xee]).unwrap();
        drop(cpu);
        assert_eq!(resident(&m, pid, f, 8), 8, "{reclaim}");
        m.madvise(pid, f, 8 * P, MADV_PAGEOUT).unwrap();
        assert_eq!(resident(&m, pid, f, 8), 0, "{reclaim}");
        let mut cpu = m.cpu(0).unwrap();
        cpu.switch_to(pid).unwrap();
        for i in 0..8 {
            assert_eq!(byte(&mut cpu, f + i * P), i as u8 + 1, "{reclaim}");
        }
        assert_eq!(byte(&mut cpu, f + 3 * P + 1), 0xee, "{reclaim}");
        drop(cpu);
        common::finish(&m);
    }
}

/// MADV_WILLNEED after MADV_PAGEOUT reads the pages into the swap cache,
/// not mapped: mincore reports them resident, and the next access is a
/// minor fault. On a file mapping, the pages are read into the page cache.
#[test]
fn willneed_reads_swap_and_file_pages_ahead() {
    for &reclaim in designs() {
        let n = 32;
        let Some((m, pid, base)) = filled(reclaim, true, n) else {
            continue;
        };
        m.madvise(pid, base, n * P, MADV_PAGEOUT).unwrap();
        assert_eq!(resident(&m, pid, base, n), 0, "{reclaim}");
        let s0 = m.stats();
        m.madvise(pid, base, n * P, MADV_WILLNEED).unwrap();
        let s1 = m.stats();
        assert_eq!(resident(&m, pid, base, n), n as usize, "{reclaim}: in the swap cache");
        assert_eq!(s1.swap_entries, n, "{reclaim}: not mapped");
        assert_eq!(s1.pswpin - s0.pswpin, n, "{reclaim}");
        assert_eq!(s1.major_faults, s0.major_faults, "{reclaim}");
        verify(&m, pid, base, n, 1, reclaim);
        let s2 = m.stats();
        assert_eq!(s2.major_faults, s1.major_faults, "{reclaim}: minor faults only");
        assert_eq!(s2.minor_faults - s1.minor_faults, n, "{reclaim}");

        let fd = m.open_file(Box::new(MemFile::new(&vec![7u8; 8 * P as usize], true)));
        let f = m.mmap_fd(pid, 0, 8 * P, PROT_READ, MAP_PRIVATE, fd, 0).unwrap();
        assert_eq!(resident(&m, pid, f, 8), 0, "{reclaim}");
        m.madvise(pid, f + P, 4 * P, MADV_WILLNEED).unwrap();
        assert_eq!(m.mincore(pid, f, 8 * P).unwrap(), [0, 1, 1, 1, 1, 0, 0, 0], "{reclaim}");
        common::finish(&m);
    }
}

/// MAP_DROPPABLE: with no swap, twice RAM of it is written without an OOM
/// kill, its pages dropped (read back as zero or as written); with swap,
/// none of it is swapped.
#[test]
fn droppable_pages_are_dropped_never_swapped() {
    for &reclaim in designs() {
        for swap in [false, true] {
            let Some(m) = machine(reclaim, swap) else { continue };
            let what = format!("{reclaim}, swap {swap}");
            let pid = m.spawn().unwrap();
            let n = 2 * RAM_PAGES;
            let base = m.mmap(pid, 0, n * P, RW, MAP_DROPPABLE | MAP_ANONYMOUS).unwrap();
            fill(&m, pid, base, n, 1);
            let s = m.stats();
            assert!(m.oom_kills().is_empty(), "{what}");
            assert!(s.pglazyfreed >= n - RAM_PAGES, "{what}: {s:?}");
            assert_eq!(s.pswpout, 0, "{what}");
            let words = read(&m, pid, base, n);
            for (i, w) in words.iter().enumerate() {
                assert!(*w == 0 || *w == word(i as u64, 1), "{what}: page {i} holds {w:#x}");
            }
            assert!(words.iter().any(|w| *w != 0), "{what}");
            assert!(m.oom_kills().is_empty(), "{what}");
            common::finish(&m);
        }
    }
}
