//! Criterion benchmarks of vmlab's hot paths, each beside an outside anchor
//! measured in the same run (DESIGN.md, "the hot path").
//!
//! | group        | vmlab                                   | anchor                                      | target  |
//! |--------------|-----------------------------------------|---------------------------------------------|---------|
//! | `fault`      | demand-zero store fault via `Cpu`       | the host kernel's anonymous write fault     | ≤ 0.25x |
//! | `frame`      | `Buddy` order-0 alloc + free            | `buddy_system_allocator::FrameAllocator<32>` | ≤ 0.67x |
//! | `mprotect`   | one page to R and back among 32k VMAs   | the host's `mprotect` among 32k VMAs        | ≤ 0.25x |
//! | `tlb`        | TLB-hit `load_u64`/`store_u64`, walk    | (absolute: ≥ 300 M hits/s per thread)       |         |
//! | `smp_fault`  | demand-zero store faults by 1 and 2 CPU threads of one process on disjoint pages, per `fault_lock`, frames warm or cold in the host caches | 1 thread of the same policy | `pte_bit` 2 threads ≥ 1.8x |
//! | `pcp`        | `alloc_zeroed_on` + `put_on` via per-CPU lists, 1 and 2 threads | the same pair on the zone allocator alone (`pcp_batch` 0) | ≤ 1x; 2 threads: pairs/s scale |
//!
//! Run one group with, e.g.:
//! `cargo bench -p vmlab --bench hot_paths -- fault --warm-up-time 1 --measurement-time 3`

use buddy_system_allocator::FrameAllocator as Bsa;
use criterion::measurement::WallTime;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use std::time::{Duration, Instant};
use vmlab_mm::addr::Pfn;
use vmlab_mm::frame::buddy::Buddy;
use vmlab_mm::frame::FrameAllocator;
use vmlab_mm::mm::uapi::{MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE};
use vmlab_mm::phys::{FrameAllocatorPolicy, FrameUse, OwnedFrame, PhysMem};
use vmlab_mm::system::{ByteSize, Machine, MachineConfig};

const PAGE: u64 = 4096;
const RW: u32 = PROT_READ | PROT_WRITE;
const ANON: u32 = MAP_PRIVATE | MAP_ANONYMOUS;

/// A machine as the CLI builds it (with the host's membarrier).
fn machine(ram: u64, tlb_entries: usize) -> Machine {
    vmlab::host::build_machine(&MachineConfig {
        ram: ByteSize(ram),
        tlb_entries,
        ..Default::default()
    })
    .expect("machine")
}

// ---------------------------------------------------------------------------
// 1. Demand-zero fault: first store to a fresh page.

/// Pages per mapping; the mapping is made and unmapped outside the timed part.
const FAULT_CHUNK: u64 = 4096;

/// Host anonymous mapping of `pages` pages, 4 KiB pages only (no THP).
fn host_map(pages: u64, prot: i32) -> *mut u8 {
    let len = (pages * PAGE) as usize;
    // SAFETY: an anonymous private mapping at an address of the kernel's
    // choosing touches no existing memory.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED, "host mmap");
    // SAFETY: advice on the mapping just made.
    unsafe { libc::madvise(p, len, libc::MADV_NOHUGEPAGE) };
    p.cast()
}

fn host_unmap(p: *mut u8, pages: u64) {
    // SAFETY: `p` came from `host_map(pages)` and nothing refers to it any more.
    let r = unsafe { libc::munmap(p.cast(), (pages * PAGE) as usize) };
    assert_eq!(r, 0, "host munmap");
}

fn bench_fault(c: &mut Criterion) {
    let mut g = c.benchmark_group("fault");
    g.throughput(Throughput::Elements(1));

    // Enough RAM for a chunk and its tables several times over; the first
    // chunks make the simulated RAM resident on the host, later ones reuse it.
    let m = machine(256 << 20, 512);
    let pid = m.spawn().unwrap();
    let mut cpu = m.cpu(0).unwrap();
    cpu.switch_to(pid).unwrap();
    let mut vmlab_chunk = |n: u64| -> Duration {
        let a = m.mmap(pid, 0, n * PAGE, RW, ANON).unwrap();
        let t = Instant::now();
        for i in 0..n {
            cpu.store_u64(a + i * PAGE, i).unwrap();
        }
        let d = t.elapsed();
        m.munmap(pid, a, n * PAGE).unwrap();
        d
    };
    let mut warm = false;
    g.bench_function("vmlab_demand_zero_store", |b| {
        b.iter_custom(|iters| {
            if !warm {
                warm = true;
                for _ in 0..4 {
                    vmlab_chunk(FAULT_CHUNK);
                }
            }
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(FAULT_CHUNK);
                total += vmlab_chunk(n);
                left -= n;
            }
            total
        })
    });

    let host_chunk = |n: u64| -> Duration {
        let p = host_map(n, libc::PROT_READ | libc::PROT_WRITE);
        let t = Instant::now();
        for i in 0..n as usize {
            // SAFETY: inside the mapping, which is readable and writable.
            unsafe { p.add(i * PAGE as usize).write_volatile(1) };
        }
        let d = t.elapsed();
        host_unmap(p, n);
        d
    };
    g.bench_function("host_demand_zero_store", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(FAULT_CHUNK);
                total += host_chunk(n);
                left -= n;
            }
            total
        })
    });
    g.finish();
    drop(cpu);
    m.check().unwrap();
}

// ---------------------------------------------------------------------------
// 2. Order-0 alloc + free against buddy_system_allocator.

const BUDDY_BASE: usize = 1 << 20;
const BUDDY_FRAMES: usize = 1 << 16;

/// The frames allocator `A` takes in a steady state with some frames held:
/// every frame allocated, then every other one freed, so each free order-0
/// frame has an allocated buddy and an alloc+free pair neither splits nor
/// merges (the common case of a busy system's order-0 traffic).
fn vmlab_fragmented() -> Buddy {
    let mut b = Buddy::new(Pfn(BUDDY_BASE), BUDDY_FRAMES);
    let ps: Vec<Pfn> = (0..BUDDY_FRAMES).map(|_| b.alloc(1, 1).unwrap()).collect();
    for p in ps.iter().filter(|p| p.0 % 2 == 0) {
        b.free(*p, 1).unwrap();
    }
    b
}

fn bsa_fragmented() -> Bsa<32> {
    let mut a = Bsa::<32>::new();
    a.add_frame(BUDDY_BASE, BUDDY_BASE + BUDDY_FRAMES);
    let ps: Vec<usize> = (0..BUDDY_FRAMES).map(|_| a.alloc(1).unwrap()).collect();
    for p in ps.iter().filter(|p| *p % 2 == 0) {
        a.dealloc(*p, 1);
    }
    a
}

/// The benchmarks' pseudo-random numbers (xorshift64), cheap enough not to
/// weigh on what is timed.
struct XorShift(u64);

impl XorShift {
    fn new() -> XorShift {
        XorShift(0x9e37_79b9_7f4a_7c15)
    }

    #[inline(always)]
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// xorshift indices into the live set of the churn scenario.
fn churn_indices(n: usize, live: usize) -> Vec<usize> {
    let mut x = XorShift::new();
    (0..n).map(|_| (x.next() % live as u64) as usize).collect()
}

fn bench_frame(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame");
    g.throughput(Throughput::Elements(1));

    // (a) Steady state, half the frames held: alloc(1) + free of that frame.
    fn pair<A: FrameAllocator>(a: &mut A) {
        let p = a.alloc(black_box(1), 1).unwrap();
        a.free(black_box(p), 1).unwrap();
    }
    let mut b = vmlab_fragmented();
    g.bench_function("vmlab_buddy_alloc1_free/held_half", |bn| bn.iter(|| pair(&mut b)));
    let mut a = bsa_fragmented();
    g.bench_function("bsa_alloc1_free/held_half", |bn| {
        bn.iter(|| {
            let p = a.alloc(black_box(1)).unwrap();
            a.dealloc(black_box(p), 1);
        })
    });

    // (b) Random churn: 60% of a pool held; free a random live frame, allocate
    // another (splits and merges happen as the pattern dictates).
    const POOL: usize = 1024;
    const LIVE: usize = 600;
    let idx = churn_indices(1 << 16, LIVE);
    let mut b = Buddy::new(Pfn(BUDDY_BASE), POOL);
    let mut live: Vec<Pfn> = (0..LIVE).map(|_| b.alloc(1, 1).unwrap()).collect();
    let mut k = 0usize;
    g.bench_function("vmlab_buddy_free_alloc1/churn", |bn| {
        bn.iter(|| {
            let i = idx[k & (idx.len() - 1)];
            k = k.wrapping_add(1);
            FrameAllocator::free(&mut b, live[i], 1).unwrap();
            live[i] = FrameAllocator::alloc(&mut b, black_box(1), 1).unwrap();
        })
    });
    let mut a = Bsa::<32>::new();
    a.add_frame(BUDDY_BASE, BUDDY_BASE + POOL);
    let mut live: Vec<usize> = (0..LIVE).map(|_| a.alloc(1).unwrap()).collect();
    let mut k = 0usize;
    g.bench_function("bsa_free_alloc1/churn", |bn| {
        bn.iter(|| {
            let i = idx[k & (idx.len() - 1)];
            k = k.wrapping_add(1);
            a.dealloc(live[i], 1);
            live[i] = a.alloc(black_box(1)).unwrap();
        })
    });
    g.finish();
}

// ---------------------------------------------------------------------------
// 3. mprotect of one page among 32k VMAs (seed 001's claim).

/// Pages of the mapping; blocks of 2 RW pages then 2 R pages give 32768 VMAs.
const MPROT_PAGES: u64 = 65536;
const MPROT_VMAS: usize = 32768;

/// The page toggled: the first page of a read-write block in the middle.
/// To R it splits its block and merges with the read-only block before it;
/// back to RW it splits that block and merges again.
const MPROT_PAGE: u64 = MPROT_PAGES / 2;

fn host_vma_count() -> usize {
    std::fs::read_to_string("/proc/self/maps").map_or(0, |s| s.lines().count())
}

fn bench_mprotect(c: &mut Criterion) {
    let mut g = c.benchmark_group("mprotect");
    g.throughput(Throughput::Elements(1));

    let m = machine(512 << 20, 512);
    let pid = m.spawn().unwrap();
    let a = m.mmap(pid, 0, MPROT_PAGES * PAGE, RW, ANON).unwrap();
    let page = a + MPROT_PAGE * PAGE;
    let mut made = false;
    g.bench_function("vmlab_one_page_r_and_back/32k_vmas", |b| {
        if !made {
            made = true;
            for blk in (0..MPROT_PAGES).step_by(4) {
                m.mprotect(pid, a + (blk + 2) * PAGE, 2 * PAGE, PROT_READ).unwrap();
            }
            assert_eq!(m.maps(pid).unwrap().len(), MPROT_VMAS);
            m.write(pid, page, &[1]).unwrap().unwrap();
        }
        b.iter(|| {
            m.mprotect(pid, black_box(page), PAGE, PROT_READ).unwrap();
            m.mprotect(pid, black_box(page), PAGE, RW).unwrap();
        })
    });
    if made {
        assert_eq!(m.maps(pid).unwrap().len(), MPROT_VMAS);
    }

    let mut host: Option<*mut u8> = None;
    g.bench_function("host_one_page_r_and_back/32k_vmas", |b| {
        let p = *host.get_or_insert_with(|| {
            let before = host_vma_count();
            let p = host_map(MPROT_PAGES, libc::PROT_READ | libc::PROT_WRITE);
            for blk in (0..MPROT_PAGES as usize).step_by(4) {
                // SAFETY: a sub-range of the mapping made above.
                let r = unsafe {
                    libc::mprotect(
                        p.add((blk + 2) * PAGE as usize).cast(),
                        2 * PAGE as usize,
                        libc::PROT_READ,
                    )
                };
                assert_eq!(r, 0, "host mprotect");
            }
            let host_vmas = host_vma_count() - before;
            assert!(host_vmas >= MPROT_VMAS - 1, "host made {host_vmas} VMAs");
            p
        });
        // SAFETY: inside the mapping; the page is read-write.
        let hp = unsafe { p.add((MPROT_PAGE * PAGE) as usize) };
        unsafe { hp.write_volatile(1) };
        b.iter(|| {
            // SAFETY: one page of the mapping, which stays mapped.
            unsafe {
                assert_eq!(libc::mprotect(black_box(hp).cast(), PAGE as usize, libc::PROT_READ), 0);
                assert_eq!(
                    libc::mprotect(black_box(hp).cast(), PAGE as usize, libc::PROT_READ | libc::PROT_WRITE),
                    0
                );
            }
        })
    });
    if let Some(p) = host {
        host_unmap(p, MPROT_PAGES);
    }
    g.finish();
}

// ---------------------------------------------------------------------------
// 4. The TLB: hits, and misses resolved by a page-table walk.

/// Accesses per criterion iteration.
const TLB_ACCESSES: u64 = 4096;

/// Address of access `i` over `pages` pages from `base`: one word per page in
/// turn, moving to the next word each round.
#[inline(always)]
fn tlb_addr(base: u64, i: u64, pages: u64) -> u64 {
    base + (i % pages) * PAGE + (((i / pages) * 8) & (PAGE - 8))
}

/// Which way the TLB is expected to go in a `tlb` benchmark.
#[derive(Copy, Clone)]
enum Expect {
    Hits,
    Misses,
}

/// Benchmark `load_u64` and `store_u64` over `PAGES` resident, dirty pages
/// with a TLB of `tlb_entries`, and check afterwards that the TLB really
/// hit (or missed) as the benchmark's name says.
fn bench_tlb_case<const PAGES: u64>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    tag: &str,
    tlb_entries: usize,
    expect: Expect,
) {
    // A constant page count keeps the address arithmetic a mask, not a division.
    let pages = PAGES;
    let m = machine(64 << 20, tlb_entries);
    let pid = m.spawn().unwrap();
    let a = m.mmap(pid, 0, pages * PAGE, RW, ANON).unwrap();
    let mut cpu = m.cpu(0).unwrap();
    cpu.switch_to(pid).unwrap();
    for i in 0..pages {
        cpu.store_u64(a + i * PAGE, i).unwrap();
    }
    g.bench_function(format!("load_u64_{tag}"), |b| {
        b.iter(|| {
            let mut s = 0u64;
            for i in 0..TLB_ACCESSES {
                s = s.wrapping_add(cpu.load_u64(tlb_addr(a, i, pages)).unwrap());
            }
            black_box(s)
        })
    });
    g.bench_function(format!("store_u64_{tag}"), |b| {
        b.iter(|| {
            for i in 0..TLB_ACCESSES {
                cpu.store_u64(tlb_addr(a, i, pages), i).unwrap();
            }
        })
    });
    drop(cpu);
    let st = m.stats();
    if st.tlb_hits + st.tlb_misses > 1 << 20 {
        let (more, fewer) = match expect {
            Expect::Hits => (st.tlb_hits, st.tlb_misses),
            Expect::Misses => (st.tlb_misses, st.tlb_hits),
        };
        assert!(more > 100 * fewer, "hits {} misses {}", st.tlb_hits, st.tlb_misses);
    }
}

fn bench_tlb(c: &mut Criterion) {
    let mut g = c.benchmark_group("tlb");
    g.throughput(Throughput::Elements(TLB_ACCESSES));
    // Hits: 4 pages, all cached after the first round.
    bench_tlb_case::<4>(&mut g, "hit/4_pages", 512, Expect::Hits);
    // Misses: a 64-entry TLB and 4096 resident, dirty pages visited in turn,
    // so every access evicts the entry the next visit to its slot would need.
    bench_tlb_case::<4096>(&mut g, "miss_walk/4096_pages_tlb64", 64, Expect::Misses);
    g.finish();
}

// ---------------------------------------------------------------------------
// 5. Per-CPU frame lists against the zone allocator alone.

/// 64 MiB: one Normal zone (no DMA zone), as much RAM as the pairs need many times over.
const PCP_FRAMES: usize = 16384;
/// The default `pcp_batch`.
const PCP_BATCH: usize = 32;

/// Physical memory with `batch`-frame per-CPU lists on 2 CPUs (0: none),
/// its zone fragmented as in `vmlab_fragmented` (every other frame held), so
/// that a zone alloc+free of one frame neither splits nor merges.
fn pcp_phys(batch: usize) -> (PhysMem, Vec<OwnedFrame>) {
    let p = PhysMem::with_pcp(PCP_FRAMES, FrameAllocatorPolicy::Buddy, 2, batch).expect("phys");
    let mut all = Vec::new();
    while let Some(f) = p.alloc_frames(1, 1, FrameUse::Kernel) {
        all.push(f);
    }
    let (held, free): (Vec<_>, Vec<_>) = all.into_iter().partition(|f| f.pfn().0 % 2 == 1);
    for f in free {
        assert!(p.put(f));
    }
    (p, held)
}

/// One order-0 allocation and free on `cpu`, as the fault path will do them.
#[inline(always)]
fn pcp_pair(p: &PhysMem, cpu: usize) {
    let f = p.alloc_zeroed_on(black_box(cpu), FrameUse::Anon).unwrap();
    assert!(p.put_on(cpu, black_box(f)));
}

/// Wall time of `iters` pairs split between two threads (CPUs 0 and 1) that
/// start together: the time per pair of the pair.
fn pcp_two_threads(p: &PhysMem, iters: u64) -> Duration {
    let start = std::sync::Barrier::new(3);
    std::thread::scope(|s| {
        for cpu in 0..2 {
            let (p, start) = (p, &start);
            let n = iters / 2 + (iters % 2) * (cpu as u64 == 0) as u64;
            s.spawn(move || {
                start.wait();
                for _ in 0..n {
                    pcp_pair(p, cpu);
                }
            });
        }
        start.wait();
        let t = Instant::now();
        // Leaving the scope joins both threads.
        t
    })
    .elapsed()
}

fn bench_pcp(c: &mut Criterion) {
    let mut g = c.benchmark_group("pcp");
    g.throughput(Throughput::Elements(1));
    for (name, batch) in [("pcp_lists", PCP_BATCH), ("zone_only", 0)] {
        let (p, held) = pcp_phys(batch);
        g.bench_function(format!("{name}/1_thread"), |b| b.iter(|| pcp_pair(&p, 0)));
        g.bench_function(format!("{name}/2_threads"), |b| {
            b.iter_custom(|iters| pcp_two_threads(&p, iters))
        });
        p.drain_pcp();
        assert_eq!(p.frames_used(), 1 + held.len(), "no frame leaked");
        for f in held {
            assert!(p.put(f));
        }
    }
    g.finish();
}

// ---------------------------------------------------------------------------
// 6. Fault throughput on several CPUs, per fault_lock policy.

/// Pages each thread faults per timed round: `warm` (32 MiB a thread; the
/// frames, freed by the previous round, are still in the host's caches,
/// often another core's) and `cold` (128 MiB a thread, beyond the caches,
/// as a first touch of fresh memory usually is).
const SMP_CHUNKS: [(&str, u64); 2] = [("warm", 8192), ("cold", 32768)];

/// `threads` CPU threads of one process each fault `SMP_CHUNK` fresh pages of
/// its own (disjoint); the time from a common start to the last thread's end.
fn smp_round(m: &Machine, pid: u32, threads: usize, chunk: u64) -> Duration {
    let a = m.mmap(pid, 0, threads as u64 * chunk * PAGE, RW, ANON).unwrap();
    let start = std::sync::Barrier::new(threads);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let start = &start;
                s.spawn(move || {
                    let mut cpu = m.cpu(t).unwrap();
                    cpu.switch_to(pid).unwrap();
                    let base = a + t as u64 * chunk * PAGE;
                    start.wait();
                    // Each thread reads the clock itself: the spawning thread
                    // may not run again until the workers are done.
                    let t0 = Instant::now();
                    for i in 0..chunk {
                        cpu.store_u64(base + i * PAGE, i).unwrap();
                    }
                    (t0, Instant::now())
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    m.munmap(pid, a, threads as u64 * chunk * PAGE).unwrap();
    let first = spans.iter().map(|s| s.0).min().unwrap();
    let last = spans.iter().map(|s| s.1).max().unwrap();
    last - first
}

fn bench_smp_fault(c: &mut Criterion) {
    use vmlab_mm::mm::FaultLock;
    use vmlab_mm::system::config::FaultLockName;
    let mut g = c.benchmark_group("smp_fault");
    for policy in FaultLock::ALL {
        let m = vmlab::host::build_machine(&MachineConfig {
            ram: ByteSize(320 << 20),
            cpus: 2,
            fault_lock: FaultLockName::of(policy),
            ..Default::default()
        })
        .expect("machine");
        let pid = m.spawn().unwrap();
        for (name, chunk) in SMP_CHUNKS {
            for _ in 0..2 {
                smp_round(&m, pid, 2, chunk);
            }
            for threads in [1usize, 2] {
                // Elements: pages faulted per round, so criterion's thrpt is faults/s.
                g.throughput(Throughput::Elements(threads as u64 * chunk));
                g.bench_function(format!("{}/{name}/{threads}_threads", policy.as_str()), |b| {
                    b.iter_custom(|iters| (0..iters).map(|_| smp_round(&m, pid, threads, chunk)).sum())
                });
            }
        }
    }
    g.finish();
}

// ---------------------------------------------------------------------------
// 7. Paging: accesses under 4x overcommit per reclaim design, and the
// swap-in of one page from a real swap file against the host's own 4 KiB
// read from a file on this machine.

/// A machine of `ram` bytes with a swap file of `swap` bytes, design `reclaim`.
fn paging_machine(ram: u64, swap: u64, reclaim: &str) -> Machine {
    let mut cfg = MachineConfig {
        ram: ByteSize(ram),
        swap_size: ByteSize(swap),
        ..Default::default()
    };
    cfg.apply_pairs(&format!("reclaim={reclaim}"))
        .expect("a reclaim design");
    vmlab::host::build_machine(&cfg).expect("machine")
}

/// Accesses per timed run of the overcommit benchmark.
const OVERCOMMIT_ACCESSES: u64 = 1 << 20;

fn bench_reclaim(c: &mut Criterion) {
    let mut g = c.benchmark_group("reclaim");
    g.sample_size(10);
    g.throughput(Throughput::Elements(OVERCOMMIT_ACCESSES));
    let ram = 16u64 << 20;
    let pages = 4 * ram / PAGE;
    for reclaim in vmlab_mm::system::config::ReclaimName::ALL {
        let m = paging_machine(ram, 8 * ram, reclaim);
        let pid = m.spawn().unwrap();
        let a = m.mmap(pid, 0, pages * PAGE, RW, ANON).unwrap();
        let mut cpu = m.cpu(0).unwrap();
        cpu.switch_to(pid).unwrap();
        for i in 0..pages {
            cpu.store_u64(a + i * PAGE, i).unwrap();
        }
        // A skewed stream: 90% of accesses to a hot eighth of the pages,
        // the rest anywhere (xorshift), a store every fourth.
        let mut rng = XorShift::new();
        g.bench_function(format!("1M_accesses_4x_overcommit/{reclaim}"), |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for _ in 0..iters {
                    for k in 0..OVERCOMMIT_ACCESSES {
                        let x = rng.next();
                        let page = if x % 10 < 9 { x % (pages / 8) } else { (x >> 8) % pages };
                        let va = a + page * PAGE + (x >> 40) % 512 * 8;
                        if k % 4 == 0 {
                            cpu.store_u64(va, page).unwrap();
                        } else {
                            black_box(cpu.load_u64(va).unwrap());
                        }
                    }
                }
                t.elapsed()
            })
        });
        drop(cpu);
        m.check().unwrap();
    }

    g.throughput(Throughput::Elements(1));
    // Swap-in: a page pushed out by filling RAM with another mapping,
    // then loaded again (a major fault reading the swap file).
    let m = paging_machine(4 << 20, 64 << 20, "two_list");
    let pid = m.spawn().unwrap();
    let npages = 4 * (4 << 20) / PAGE;
    let a = m.mmap(pid, 0, npages * PAGE, RW, ANON).unwrap();
    let mut cpu = m.cpu(0).unwrap();
    cpu.switch_to(pid).unwrap();
    let mut next = 0u64;
    g.bench_function("vmlab_swap_in_4k", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // Touch a window of RAM's worth of other pages so that page
                // `next` is out on swap, then time its load.
                let target = next % npages;
                for k in 1..=(4 << 20) / PAGE + 64 {
                    let p = (target + k) % npages;
                    cpu.store_u64(a + p * PAGE, p).unwrap();
                }
                let before = m.stats().pswpin;
                let t = Instant::now();
                black_box(cpu.load_u64(a + target * PAGE).unwrap());
                total += t.elapsed();
                debug_assert!(m.stats().pswpin > before);
                next += 97;
            }
            total
        })
    });
    drop(cpu);
    m.check().unwrap();

    // The host: a 4 KiB pread of a page of a file not in its page cache.
    let dir = std::env::temp_dir();
    let mut f = tempfile::tempfile_in(&dir).unwrap();
    let file_pages = 4096u64;
    {
        use std::io::Write;
        let page = [7u8; PAGE as usize];
        for _ in 0..file_pages {
            f.write_all(&page).unwrap();
        }
        f.sync_all().unwrap();
    }
    let mut off = 0u64;
    g.bench_function("host_pread_4k_uncached", |b| {
        use std::os::unix::fs::FileExt;
        use std::os::unix::io::AsRawFd;
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut buf = [0u8; PAGE as usize];
            for _ in 0..iters {
                let at = off % file_pages * PAGE;
                // SAFETY: advice on an open fd; no memory is touched.
                unsafe {
                    libc::posix_fadvise(f.as_raw_fd(), at as i64, PAGE as i64, libc::POSIX_FADV_DONTNEED);
                }
                let t = Instant::now();
                f.read_at(&mut buf, at).unwrap();
                total += t.elapsed();
                off += 97;
            }
            total
        })
    });
    // The same read when the page is in the host's page cache (as a swap
    // file's recently written slots usually are).
    g.bench_function("host_pread_4k_cached", |b| {
        use std::os::unix::fs::FileExt;
        b.iter_custom(|iters| {
            let mut buf = [0u8; PAGE as usize];
            let t = Instant::now();
            for _ in 0..iters {
                f.read_at(&mut buf, off % file_pages * PAGE).unwrap();
                off += 97;
            }
            t.elapsed()
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_fault,
    bench_frame,
    bench_mprotect,
    bench_tlb,
    bench_pcp,
    bench_smp_fault,
    bench_reclaim
);
criterion_main!(benches);
