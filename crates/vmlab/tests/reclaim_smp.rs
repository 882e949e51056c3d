//! Paging with CPUs on host threads: each thread drives one CPU, writing
//! and re-reading its own process's memory while the processes together
//! touch 4x the machine's RAM, and one of them forks children that read
//! the COW-shared (and swapped) pages and exit. Every byte written is read
//! back; the checker passes and no frame or slot is left after exit. For
//! every reclaim design, under each fault-lock policy.
//! `VMLAB_SMP_SCALE=N` runs N times as many rounds.

mod common;

use vmlab::host::build_machine;
use vmlab::mm::mm::uapi::*;
use vmlab::mm::system::config::{FaultLockName, ReclaimName};
use vmlab::mm::system::{ByteSize, Machine, MachineConfig, Pid};

const P: u64 = 4096;
const THREADS: usize = 3;

fn rounds() -> usize {
    std::env::var("VMLAB_SMP_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1usize)
        .max(1)
        * 2
}

fn word(pid: Pid, page: u64, gen: u64) -> u64 {
    ((pid as u64) << 40) ^ (page << 8) ^ gen
}

/// One worker: its process's `pages` pages, written with generation `g`
/// and read back, `rounds()` times; worker 0 also forks a child each round
/// that must see the parent's previous generation.
fn worker(m: &Machine, cpu_id: usize, pid: Pid, base: u64, pages: u64) {
    let mut cpu = m.cpu(cpu_id).unwrap();
    for g in 1..=rounds() as u64 {
        cpu.switch_to(pid).unwrap();
        for i in 0..pages {
            cpu.store_u64(base + i * P, word(pid, i, g)).unwrap();
        }
        for i in 0..pages {
            assert_eq!(
                cpu.load_u64(base + i * P).unwrap(),
                word(pid, i, g),
                "pid {pid} page {i} gen {g}"
            );
        }
        if cpu_id == 0 {
            let child = m.fork(pid).unwrap();
            cpu.switch_to(child).unwrap();
            for i in (0..pages).step_by(3) {
                assert_eq!(cpu.load_u64(base + i * P).unwrap(), word(pid, i, g), "child page {i}");
            }
            // The child's writes stay its own.
            for i in (0..pages).step_by(7) {
                cpu.store_u64(base + i * P, !0).unwrap();
            }
            cpu.switch_to(pid).unwrap();
            m.exit(child).unwrap();
        }
    }
}

#[test]
fn threads_page_four_times_ram() {
    let only = std::env::var("VMLAB_RECLAIM_ONLY").unwrap_or_default();
    for (ri, reclaim) in ReclaimName::ALL.iter().enumerate() {
        for (li, lock) in ["pt_lock", "pte_bit", "mm_lock"].into_iter().enumerate() {
            if !only.is_empty() && only != format!("{reclaim}/{lock}") {
                continue;
            }
            let mut cfg = MachineConfig {
                ram: ByteSize(6 << 20),
                swap_size: ByteSize(128 << 20),
                cpus: THREADS,
                ..common::test_config()
            };
            cfg.apply_pairs(&format!("reclaim={reclaim}")).unwrap();
            cfg.fault_lock = match lock {
                "pt_lock" => FaultLockName::PtLock,
                "pte_bit" => FaultLockName::PteBit,
                _ => FaultLockName::MmLock,
            };
            let _: ReclaimName = cfg.reclaim;
            if !common::allowed(&cfg) {
                continue;
            }
            let m = build_machine(&cfg).unwrap();
            let pages = 4 * (6 << 20) / P / THREADS as u64;
            let procs: Vec<(Pid, u64)> = (0..THREADS)
                .map(|_| {
                    let pid = m.spawn().unwrap();
                    let base = m
                        .mmap(pid, 0, pages * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
                        .unwrap();
                    (pid, base)
                })
                .collect();
            // Every other run with the kswapd thread beside the CPUs.
            let cpus = || {
                std::thread::scope(|s| {
                    for (i, &(pid, base)) in procs.iter().enumerate() {
                        let m = &m;
                        s.spawn(move || worker(m, i, pid, base, pages));
                    }
                })
            };
            let threaded = (ri + li) % 2 == 0;
            if threaded {
                vmlab::host::with_kswapd(&m, cpus);
            } else {
                cpus();
            }
            let st = m.stats();
            assert!(st.pswpout > 0 && st.pswpin > 0, "{reclaim}/{lock}: no paging: {st:?}");
            m.check().unwrap_or_else(|e| panic!("{reclaim}/{lock}: {e:?}"));
            for (pid, _) in procs {
                m.exit(pid).unwrap();
            }
            m.check().unwrap();
            assert_eq!(
                m.phys().frames_used(),
                m.reserved_frames(),
                "{reclaim}/{lock}: frames left"
            );
            assert_eq!(m.swap().unwrap().used(), 0, "{reclaim}/{lock}: slots left");
        }
    }
}

/// kswapd as a thread of its own (`vmlab::host::with_kswapd`): woken by
/// allocations below the low watermark, it reclaims while a CPU thread
/// writes and reads back 4x RAM (`pageoutrun` counts its rounds); with no
/// thread, the same work runs inline on the CPU and `pageoutrun` stays 0.
#[test]
fn kswapd_thread_reclaims_beside_the_cpus() {
    for thread in [true, false] {
        let cfg = MachineConfig {
            ram: ByteSize(4 << 20),
            swap_size: ByteSize(64 << 20),
            cpus: 1,
            ..common::test_config()
        };
        if !common::allowed(&cfg) {
            return;
        }
        let m = build_machine(&cfg).unwrap();
        let pages = 4 * (4 << 20) / P;
        let pid = m.spawn().unwrap();
        let base = m
            .mmap(pid, 0, pages * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
            .unwrap();
        let cpu = || {
            std::thread::scope(|s| {
                s.spawn(|| {
                    let mut c = m.cpu(0).unwrap();
                    c.switch_to(pid).unwrap();
                    for i in 0..pages {
                        c.store_u64(base + i * P, i ^ 0x5a5a).unwrap();
                    }
                    for i in 0..pages {
                        assert_eq!(c.load_u64(base + i * P).unwrap(), i ^ 0x5a5a, "page {i}");
                    }
                });
            })
        };
        if thread {
            vmlab::host::with_kswapd(&m, cpu);
        } else {
            cpu();
        }
        let st = m.stats();
        assert!(st.pgscan_kswapd > 0 && st.pswpout > 0, "thread {thread}: {st:?}");
        assert_eq!(st.pageoutrun > 0, thread, "thread {thread}: {st:?}");
        m.check().unwrap();
        m.exit(pid).unwrap();
        assert_eq!(m.swap().unwrap().used(), 0);
    }
}
