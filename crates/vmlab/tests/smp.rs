//! Several CPUs as real threads in one address space, under every
//! `fault_lock` policy: concurrent faults and writes, munmap/mmap, mprotect,
//! mremap and fork while other threads fault and access memory. Bounded in
//! iterations (about a second in a debug build); `VMLAB_SMP_SCALE=N` runs
//! N times as many. Each test ends with the invariant checker and a frame count.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;
use vmlab::host::build_machine;
use vmlab::mm::errno::FaultReason;
use vmlab::mm::mm::uapi::*;
use vmlab::mm::mm::FaultLock;
use vmlab::mm::system::config::FaultLockName;
use vmlab::mm::system::{ByteSize, Machine, MachineConfig, Pid};

const PAGE: u64 = 4096;
/// Worker threads; one more CPU is left for the test's own reads.
const THREADS: usize = 4;

fn rounds(default: usize) -> usize {
    let scale: usize = std::env::var("VMLAB_SMP_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    default * scale.max(1)
}

fn machine(policy: FaultLock) -> Machine {
    build_machine(&MachineConfig {
        ram: ByteSize(128 << 20),
        cpus: THREADS + 1,
        fault_lock: FaultLockName::of(policy),
        ..common::test_config()
    })
    .unwrap()
}

fn anon(m: &Machine, pid: Pid, pages: u64) -> u64 {
    m.mmap(
        pid,
        0,
        pages * PAGE,
        PROT_READ | PROT_WRITE,
        MAP_PRIVATE | MAP_ANONYMOUS,
    )
    .unwrap()
}

/// Read a word of `pid` through the CPU no worker uses (CPU `THREADS`).
fn read_u64(m: &Machine, pid: Pid, addr: u64) -> u64 {
    let mut cpu = m.cpu(THREADS).unwrap();
    cpu.switch_to(pid).unwrap();
    cpu.load_u64(addr).unwrap()
}

/// A barrier whose wait panics after a minute instead of hanging the test
/// run when another participant panicked.
struct Barrier {
    n: usize,
    state: Mutex<(usize, u64)>,
    cv: Condvar,
}

impl Barrier {
    fn new(n: usize) -> Barrier {
        Barrier {
            n,
            state: Mutex::new((0, 0)),
            cv: Condvar::new(),
        }
    }

    fn wait(&self) {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let generation = g.1;
        g.0 += 1;
        if g.0 == self.n {
            *g = (0, generation + 1);
            self.cv.notify_all();
            return;
        }
        let (g, timeout) = self
            .cv
            .wait_timeout_while(g, Duration::from_secs(60), |g| g.1 == generation)
            .unwrap_or_else(|e| e.into_inner());
        drop(g);
        assert!(
            !timeout.timed_out(),
            "barrier: a participant never arrived (did it panic?)"
        );
    }
}

/// The value thread `t` writes in round `r` (never 0).
fn val(t: usize, r: usize) -> u64 {
    ((t as u64 + 1) << 40) | (r as u64 + 1)
}

fn finish(m: &Machine, pids: &[Pid], policy: FaultLock) {
    m.check().unwrap_or_else(|e| panic!("{policy:?}: live invariants: {e}"));
    for &p in pids {
        m.exit(p).unwrap();
    }
    m.check()
        .unwrap_or_else(|e| panic!("{policy:?}: invariants after exit: {e}"));
    assert_eq!(
        m.phys().frames_used(),
        m.reserved_frames(),
        "{policy:?}: frames left after exit"
    );
}

/// Threads fault in private pages and in pages they share (each thread its
/// own word of every shared page), all at once. Every word holds what its
/// thread wrote last; no frame is lost or mapped twice.
#[test]
fn concurrent_faults_keep_every_write() {
    for policy in FaultLock::ALL {
        let m = machine(policy);
        let pid = m.spawn().unwrap();
        let per_thread = 256u64;
        let shared_pages = 256u64;
        let private = anon(&m, pid, per_thread * THREADS as u64);
        let shared = anon(&m, pid, shared_pages);
        let passes = rounds(3);
        let barrier = Barrier::new(THREADS);
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let (m, barrier) = (&m, &barrier);
                s.spawn(move || {
                    let mut cpu = m.cpu(t).unwrap();
                    cpu.switch_to(pid).unwrap();
                    barrier.wait();
                    for r in 0..passes {
                        for i in 0..shared_pages {
                            // Every thread starts at page 0: they race for each entry.
                            cpu.store_u64(shared + i * PAGE + 8 * t as u64, val(t, r)).unwrap();
                        }
                        for i in 0..per_thread {
                            let a = private + (t as u64 * per_thread + i) * PAGE + 8 * (i % 512);
                            cpu.store_u64(a, val(t, r)).unwrap();
                            assert_eq!(cpu.load_u64(a).unwrap(), val(t, r));
                        }
                    }
                });
            }
        });
        for t in 0..THREADS {
            for i in 0..shared_pages {
                assert_eq!(read_u64(&m, pid, shared + i * PAGE + 8 * t as u64), val(t, passes - 1));
            }
            for i in 0..per_thread {
                let a = private + (t as u64 * per_thread + i) * PAGE + 8 * (i % 512);
                assert_eq!(
                    read_u64(&m, pid, a),
                    val(t, passes - 1),
                    "{policy:?} thread {t} page {i}"
                );
            }
        }
        let st = m.stats();
        assert_eq!(st.rss_pages, per_thread * THREADS as u64 + shared_pages, "{policy:?}");
        if policy != FaultLock::PtLock {
            assert_eq!(st.pages_wasted, 0, "{policy:?} threw a page away");
        }
        finish(&m, &[pid], policy);
    }
}

/// One thread unmaps and remaps a region, and mprotects it read-only and
/// back, while the others write and read their own word in each of its
/// pages. A read sees the thread's own last value, or 0 after a remap,
/// never another value; stores fail only as the map of the moment says.
#[test]
fn munmap_and_mprotect_while_others_fault() {
    for policy in FaultLock::ALL {
        let m = machine(policy);
        let pid = m.spawn().unwrap();
        let pages = 64u64;
        let region = anon(&m, pid, pages);
        let stop = AtomicBool::new(false);
        let bad = AtomicU64::new(0);
        let iterations = rounds(150);
        std::thread::scope(|s| {
            for t in 1..THREADS {
                let (m, stop, bad) = (&m, &stop, &bad);
                s.spawn(move || {
                    let mut cpu = m.cpu(t).unwrap();
                    cpu.switch_to(pid).unwrap();
                    let mut r = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        for i in 0..pages {
                            let a = region + i * PAGE + 8 * t as u64;
                            let v = val(t, r);
                            match cpu.store_u64(a, v) {
                                Ok(()) => {}
                                Err(f) => {
                                    assert!(
                                        matches!(f.reason, FaultReason::Protection | FaultReason::NotMapped),
                                        "{f:?}"
                                    );
                                    continue;
                                }
                            }
                            match cpu.load_u64(a) {
                                Ok(got) if got == v || got == 0 => {}
                                Ok(got) => {
                                    bad.store(got, Ordering::Relaxed);
                                }
                                Err(f) => assert_eq!(f.reason, FaultReason::NotMapped, "{f:?}"),
                            }
                        }
                        r += 1;
                    }
                });
            }
            for k in 0..iterations {
                if k % 2 == 0 {
                    m.munmap(pid, region, pages * PAGE).unwrap();
                    let again = m
                        .mmap(
                            pid,
                            region,
                            pages * PAGE,
                            PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                        )
                        .unwrap();
                    assert_eq!(again, region);
                } else {
                    m.mprotect(pid, region, pages * PAGE, PROT_READ).unwrap();
                    m.mprotect(pid, region, pages * PAGE, PROT_READ | PROT_WRITE).unwrap();
                }
            }
            stop.store(true, Ordering::Relaxed);
        });
        assert_eq!(
            bad.load(Ordering::Relaxed),
            0,
            "{policy:?}: a read returned a value its thread did not write"
        );
        finish(&m, &[pid], policy);
    }
}

/// Every CPU caches writable translations of a region; once
/// mprotect(PROT_READ) has returned, a store to any page faults on every CPU.
#[test]
fn store_after_mprotect_read_faults_on_every_cpu() {
    for policy in FaultLock::ALL {
        let m = machine(policy);
        let pid = m.spawn().unwrap();
        let pages = 32u64;
        let region = anon(&m, pid, pages);
        let warm = Barrier::new(THREADS + 1);
        let protected = Barrier::new(THREADS + 1);
        let checked = Barrier::new(THREADS + 1);
        let restored = Barrier::new(THREADS + 1);
        let rounds = rounds(20);
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let (m, warm, protected, checked, restored) = (&m, &warm, &protected, &checked, &restored);
                s.spawn(move || {
                    let mut cpu = m.cpu(t).unwrap();
                    cpu.switch_to(pid).unwrap();
                    for r in 0..rounds {
                        for i in 0..pages {
                            cpu.store_u64(region + i * PAGE + 8 * t as u64, val(t, r)).unwrap();
                        }
                        warm.wait();
                        protected.wait();
                        for i in 0..pages {
                            let a = region + i * PAGE + 8 * t as u64;
                            let f = cpu.store_u64(a, 1).unwrap_err();
                            assert_eq!(f.reason, FaultReason::Protection, "{policy:?} cpu {t} page {i}");
                            assert_eq!(cpu.load_u64(a).unwrap(), val(t, r));
                        }
                        checked.wait();
                        restored.wait();
                    }
                });
            }
            for _ in 0..rounds {
                warm.wait();
                m.mprotect(pid, region, pages * PAGE, PROT_READ).unwrap();
                protected.wait();
                checked.wait();
                m.mprotect(pid, region, pages * PAGE, PROT_READ | PROT_WRITE).unwrap();
                restored.wait();
            }
        });
        finish(&m, &[pid], policy);
    }
}

/// fork while the parent's threads write: the child's memory is the
/// snapshot fork took and stays so while the parent's threads go on
/// writing (breaking copy-on-write on several CPUs at once); the parent
/// keeps every thread's last value.
#[test]
fn fork_while_threads_write() {
    for policy in FaultLock::ALL {
        let m = machine(policy);
        let pid = m.spawn().unwrap();
        let per_thread = 64u64;
        let region = anon(&m, pid, per_thread * THREADS as u64);
        let forks = rounds(6);
        let stop = AtomicBool::new(false);
        let last: Vec<AtomicU64> = (0..THREADS).map(|_| AtomicU64::new(0)).collect();
        let mut children = Vec::new();
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let (m, stop, last) = (&m, &stop, &last);
                s.spawn(move || {
                    let mut cpu = m.cpu(t).unwrap();
                    cpu.switch_to(pid).unwrap();
                    let mut r = 0usize;
                    while !stop.load(Ordering::Relaxed) || r < 2 {
                        for i in 0..per_thread {
                            cpu.store_u64(region + (t as u64 * per_thread + i) * PAGE, val(t, r))
                                .unwrap();
                        }
                        last[t].store(r as u64, Ordering::Relaxed);
                        r += 1;
                    }
                });
            }
            for _ in 0..forks {
                std::thread::sleep(std::time::Duration::from_millis(2));
                let child = m.fork(pid).unwrap();
                let snap: Vec<u64> = (0..per_thread * THREADS as u64)
                    .map(|i| read_u64(&m, child, region + i * PAGE))
                    .collect();
                children.push((child, snap));
            }
            stop.store(true, Ordering::Relaxed);
        });
        for (child, snap) in &children {
            for (i, &v) in snap.iter().enumerate() {
                let t = i / per_thread as usize;
                // A thread's page holds 0 (not yet written) or one of its values.
                assert!(
                    v == 0 || v >> 40 == t as u64 + 1,
                    "{policy:?}: child page {i} holds {v:#x}"
                );
                assert_eq!(
                    read_u64(&m, *child, region + i as u64 * PAGE),
                    v,
                    "{policy:?}: the parent's later writes reached child {child}'s page {i}"
                );
            }
        }
        for (t, last) in last.iter().enumerate() {
            let r = last.load(Ordering::Relaxed) as usize;
            for i in 0..per_thread {
                assert_eq!(
                    read_u64(&m, pid, region + (t as u64 * per_thread + i) * PAGE),
                    val(t, r)
                );
            }
        }
        let mut pids = vec![pid];
        pids.extend(children.iter().map(|(c, _)| *c));
        finish(&m, &pids, policy);
    }
}

/// mremap moves a region back and forth while other threads fault in their
/// own regions: the moved bytes arrive intact and the others lose nothing.
#[test]
fn mremap_while_others_fault() {
    for policy in FaultLock::ALL {
        let m = machine(policy);
        let pid = m.spawn().unwrap();
        let per_thread = 128u64;
        let region = anon(&m, pid, per_thread * THREADS as u64);
        let moving_pages = 16u64;
        let mut moving = anon(&m, pid, moving_pages);
        for i in 0..moving_pages {
            m.write(pid, moving + i * PAGE, &(i + 7).to_le_bytes())
                .unwrap()
                .unwrap();
        }
        let moves = rounds(40);
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            for t in 1..THREADS {
                let (m, stop) = (&m, &stop);
                s.spawn(move || {
                    let mut cpu = m.cpu(t).unwrap();
                    cpu.switch_to(pid).unwrap();
                    let mut r = 0;
                    while !stop.load(Ordering::Relaxed) || r < 2 {
                        for i in 0..per_thread {
                            let a = region + (t as u64 * per_thread + i) * PAGE;
                            cpu.store_u64(a, val(t, r)).unwrap();
                            assert_eq!(cpu.load_u64(a).unwrap(), val(t, r));
                        }
                        r += 1;
                    }
                });
            }
            for _ in 0..moves {
                // Grow (which may move), then shrink back.
                moving = m
                    .mremap(
                        pid,
                        moving,
                        moving_pages * PAGE,
                        2 * moving_pages * PAGE,
                        MREMAP_MAYMOVE,
                        0,
                    )
                    .unwrap();
                moving = m
                    .mremap(pid, moving, 2 * moving_pages * PAGE, moving_pages * PAGE, 0, 0)
                    .unwrap();
                for i in 0..moving_pages {
                    assert_eq!(read_u64(&m, pid, moving + i * PAGE), i + 7, "{policy:?}");
                }
            }
            stop.store(true, Ordering::Relaxed);
        });
        finish(&m, &[pid], policy);
    }
}
