//! loom models of the mm core's lock protocols, one module per protocol.
//!
//! Run with:
//! `LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p vmlab-mm --release --test loom`
//!
//! Under `cfg(loom)` the crate's `sync` module hands out loom's locks and
//! atomics, so the code modelled here is the code that runs normally.
#![cfg(loom)]

/// Per-CPU lists of free frames (`frame/pcp.rs`): two CPUs over one tiny
/// zone, with refills, a trim, a cross-CPU free and a drain racing the fast
/// path. Checked in every interleaving: no frame is owned by two holders at
/// once, no deadlock (lock order: list, then zone), and once everyone is done
/// and the lists are drained the zone has every frame back.
mod pcp {
    use loom::thread;
    use vmlab_mm::addr::Pfn;
    use vmlab_mm::frame::buddy::Buddy;
    use vmlab_mm::frame::pcp::PerCpuPages;
    use vmlab_mm::frame::FrameAllocator;
    use vmlab_mm::sync::{Arc, AtomicUsize, Mutex, Ordering};

    /// Frames in the zone: enough for the models' peak, small enough that the
    /// state stays tiny.
    const FRAMES: usize = 8;

    struct World {
        zone: Mutex<Buddy>,
        pcp: PerCpuPages,
        /// `owner[pfn]`: 1 + the thread holding the frame, 0 if free.
        owner: Vec<AtomicUsize>,
        /// A frame handed from CPU 0 to CPU 1 (as a page-table lock would
        /// hand a mapped frame to the CPU that unmaps it).
        mailbox: Mutex<Option<Pfn>>,
    }

    impl World {
        fn new(batch: usize) -> Arc<World> {
            Arc::new(World {
                zone: Mutex::new(Buddy::new(Pfn(0), FRAMES)),
                pcp: PerCpuPages::new(2, batch),
                owner: (0..FRAMES).map(|_| AtomicUsize::new(0)).collect(),
                mailbox: Mutex::new(None),
            })
        }

        fn alloc(&self, cpu: usize, who: usize) -> Pfn {
            let (pfn, _) = self.pcp.alloc(cpu, &self.zone).expect("a free frame");
            let prev = self.owner[pfn.0].swap(who + 1, Ordering::Relaxed);
            assert_eq!(prev, 0, "frame {} handed to {who} while held by {}", pfn.0, prev - 1);
            pfn
        }

        fn free(&self, cpu: usize, pfn: Pfn, who: usize) {
            let prev = self.owner[pfn.0].swap(0, Ordering::Relaxed);
            assert_eq!(prev, who + 1, "frame {} freed by {who} but held by {prev}", pfn.0);
            self.pcp.free(cpu, pfn, &self.zone).expect("a CPU with a list");
        }

        /// After every thread joined: drain and check the zone has every frame.
        fn settle(&self) {
            if let Some(pfn) = self.mailbox.lock().take() {
                // Still in the mailbox: its sender (thread 0) gives it up.
                let prev = self.owner[pfn.0].swap(1, Ordering::Relaxed);
                assert_eq!(prev, usize::MAX);
                self.free(1, pfn, 0);
            }
            self.pcp.drain_all(&self.zone);
            assert_eq!(self.pcp.frames(), 0);
            let z = self.zone.lock();
            assert_eq!(
                z.free_frames(),
                FRAMES,
                "frames lost or duplicated: {:?}",
                (0..FRAMES)
                    .map(|i| (z.is_free(Pfn(i)), self.owner[i].load(Ordering::Relaxed)))
                    .collect::<Vec<_>>()
            );
            z.check().unwrap();
            assert!(self.owner.iter().all(|o| o.load(Ordering::Relaxed) == 0));
        }
    }

    /// Batch 1 (high 4). CPU 0 refills six times, hands a frame to CPU 1 and
    /// frees five, the fifth trimming its list; CPU 1 refills, frees on its
    /// own list and frees the handed frame if it has arrived (else it is
    /// freed on CPU 1 after the join).
    #[test]
    fn handoff_refill_trim() {
        loom::model(|| {
            let w = World::new(1);
            let w0 = w.clone();
            let t0 = thread::spawn(move || {
                let got: Vec<Pfn> = (0..6).map(|_| w0.alloc(0, 0)).collect();
                // The mailbox takes ownership: clear it here, the receiver claims it.
                let prev = w0.owner[got[0].0].swap(usize::MAX, Ordering::Relaxed);
                assert_eq!(prev, 1);
                *w0.mailbox.lock() = Some(got[0]);
                for &f in &got[1..] {
                    w0.free(0, f, 0);
                }
                assert_eq!(w0.pcp.frames_on(0), 4, "the fifth free trimmed one frame");
            });
            let w1 = w.clone();
            let t1 = thread::spawn(move || {
                let f = w1.alloc(1, 1);
                w1.free(1, f, 1);
                let handed = w1.mailbox.lock().take();
                if let Some(pfn) = handed {
                    let prev = w1.owner[pfn.0].swap(2, Ordering::Relaxed);
                    assert_eq!(prev, usize::MAX, "handed frame {} was not in the mailbox", pfn.0);
                    w1.free(1, pfn, 1);
                }
            });
            t0.join().unwrap();
            t1.join().unwrap();
            w.settle();
        });
    }

    /// Batch 2. CPU 0 allocates and frees while CPU 1 drains every list
    /// (Linux `drain_all_pages` from another CPU) and then uses its own.
    #[test]
    fn drain_races_fast_path() {
        loom::model(|| {
            let w = World::new(2);
            let w0 = w.clone();
            let t0 = thread::spawn(move || {
                let a = w0.alloc(0, 0);
                let b = w0.alloc(0, 0);
                w0.free(0, a, 0);
                w0.free(0, b, 0);
            });
            let w1 = w.clone();
            let t1 = thread::spawn(move || {
                w1.pcp.drain_all(&w1.zone);
                let c = w1.alloc(1, 1);
                w1.free(1, c, 1);
            });
            t0.join().unwrap();
            t1.join().unwrap();
            w.settle();
        });
    }
}

/// The real anonymous write fault under `fault_lock = pte_bit`: two CPUs
/// of one address space fault on the same page at once, through
/// `handle_fault_locked` itself (VMA lookup, table allocation, the claim,
/// the frame allocation and zeroing, the publish: the production code under
/// loom's atomics and locks). Checked in every interleaving: one frame is
/// allocated (none wasted), both CPUs end with that frame, the entry ends
/// unlocked and mapped once, and what the first CPU stored through it is
/// what the second reads.
mod pte_lock_real {
    use loom::thread;
    use vmlab_mm::mm::fault::{handle_fault_locked, Access, FaultCtx};
    use vmlab_mm::mm::uapi::{MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_READ, PROT_WRITE};
    use vmlab_mm::mm::{
        AddressSpace, AddressSpaceParams, FaultLock, MmCounters, MmapRequest, ObjectTable, Rmap, RmapPolicy,
        VmaMapPolicy,
    };
    use vmlab_mm::phys::{FrameAllocatorPolicy, PhysMem};
    use vmlab_mm::sync::{Arc, Ordering, Relax};
    use vmlab_mm::tlb::PendingFlush;

    const ADDR: u64 = 0x4000_0000;

    struct Spin;
    impl Relax for Spin {
        fn relax(&self) {
            thread::yield_now();
        }
    }

    struct World {
        phys: PhysMem,
        counters: MmCounters,
        rmap: Rmap,
        mm: AddressSpace,
    }

    fn world(fail_alloc: bool) -> Arc<World> {
        let phys = PhysMem::new(16, FrameAllocatorPolicy::Buddy).unwrap();
        let params = AddressSpaceParams {
            vma_map: VmaMapPolicy::Btree,
            max_map_count: 16,
            mmap_base: 1 << 46,
            start_brk: 1 << 30,
            commit_limit_pages: 16,
            stack_rlimit: vmlab_mm::mm::stack::DEFAULT_STACK_RLIMIT,
            memlock_rlimit: vmlab_mm::mm::mlock::DEFAULT_MEMLOCK_RLIMIT,
            cpus: 2,
            pkeys: false,
            swap: None,
        };
        let mm = AddressSpace::new(&phys, 1, params).unwrap();
        let objects = ObjectTable::new();
        let rmap = Rmap::new(RmapPolicy::Object);
        let req = MmapRequest::anon(
            ADDR,
            4096,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
        );
        mm.mmap(&phys, &objects, rmap.identities(), req, &mut PendingFlush::default())
            .unwrap();
        if fail_alloc {
            // Leave no frame free but what the tables need, so the data
            // page's allocation fails and the claim is abandoned.
            while phys.free_frames_count() > 3 {
                // Held for the model's life (a dropped handle leaks its frame).
                let _held = phys.alloc_frames(1, 1, vmlab_mm::phys::FrameUse::Kernel);
            }
        }
        Arc::new(World {
            phys,
            counters: MmCounters::default(),
            rmap,
            mm,
        })
    }

    /// CPU `cpu`'s write fault at ADDR: the frame it ends with, if any.
    fn fault(w: &World, cpu: usize) -> Option<vmlab_mm::addr::Pfn> {
        let cx = FaultCtx {
            phys: &w.phys,
            counters: &w.counters,
            ids: w.rmap.identities(),
            share_object_tables: false,
            fault_lock: FaultLock::PteBit,
            swap: None,
            cpu,
            relax: &Spin,
            reclaim: &vmlab_mm::mm::reclaim::NoReclaim,
        };
        let st = w.mm.map.read_on(cpu);
        let mut flush = PendingFlush::default();
        let r = handle_fault_locked(&cx, &w.mm, &st, ADDR, Access::Write, &mut flush);
        assert!(
            flush.range.is_none() && flush.frames.is_empty(),
            "a demand-zero fault flushes nothing"
        );
        r.ok().map(|p| p.pfn())
    }

    #[test]
    fn two_cpus_fault_one_page_through_the_real_path() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        // Building the machine (allocator, tables, mmap) takes many steps.
        b.max_branches = 200_000;
        b.check(|| {
            let w = world(false);
            let used = w.phys.frames_used();
            let w2 = w.clone();
            let t = thread::spawn(move || {
                let pfn = fault(&w2, 1);
                if let Some(p) = pfn {
                    w2.phys.ram().frame(p).unwrap()[1].store(7, Ordering::Relaxed);
                }
                pfn
            });
            let a = fault(&w, 0);
            let b = t.join().unwrap();
            assert!(a.is_some() && a == b, "{a:?} {b:?}");
            // The leaf table's path (3 tables) and one data frame: nothing wasted.
            assert_eq!(w.phys.frames_used(), used + 4, "a frame was thrown away");
            assert_eq!(w.counters.pages_wasted.load(Ordering::Relaxed), 0);
            let e = w.mm.page_table().leaf(&w.phys, ADDR).unwrap().load();
            assert!(!e.locked() && e.present() && e.pfn() == a.unwrap());
            let d = w.phys.desc(e.pfn()).unwrap();
            assert_eq!(d.mapcount(), 1);
            assert_eq!(w.mm.rss.get(), 1);
            assert_eq!(w.phys.ram().frame(e.pfn()).unwrap()[1].load(Ordering::Relaxed), 7);
        });
    }

    /// No frame for the page: the claim is abandoned (never left locked),
    /// the other CPU is not stuck behind it, and both faults fail.
    #[test]
    fn a_failed_allocation_abandons_the_claim() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        // Building the machine (allocator, tables, mmap) takes many steps.
        b.max_branches = 200_000;
        b.check(|| {
            let w = world(true);
            let w2 = w.clone();
            let t = thread::spawn(move || fault(&w2, 1));
            let a = fault(&w, 0);
            let b = t.join().unwrap();
            assert_eq!((a, b), (None, None));
            let e = w.mm.page_table().leaf(&w.phys, ADDR).unwrap().load();
            assert!(e.is_none() && !e.locked(), "{e:?}");
        });
    }
}

/// A TLB fill racing a remote invalidation (`Tlb::fill_checked`, the
/// shootdown of `Machine::shootdown_on`). CPU 1 walks the entry and fills
/// its TLB; CPU 0 changes the entry (a COW break) and invalidates CPU 1's
/// TLB. Checked in every interleaving: once both are done, CPU 1's TLB does
/// not hold the old translation.
mod tlb_fill {
    use loom::thread;
    use vmlab_mm::addr::Pfn;
    use vmlab_mm::sync::{Arc, AtomicU64, Ordering};
    use vmlab_mm::tlb::Tlb;

    const VPN: u64 = 7;

    #[test]
    fn a_fill_never_outlives_the_invalidation() {
        loom::model(|| {
            let tlb = Arc::new(Tlb::new(1));
            let pte = Arc::new(AtomicU64::new(1)); // "frame 1"
            let (tlb2, pte2) = (tlb.clone(), pte.clone());
            let filler = thread::spawn(move || loop {
                let gen = tlb2.generation();
                let pfn = pte2.load(Ordering::Acquire) as usize;
                if tlb2.fill_checked(VPN, Pfn(pfn), false, false, gen, true) {
                    return pfn;
                }
            });
            pte.store(2, Ordering::Release);
            tlb.invalidate_page(VPN);
            let filled = filler.join().unwrap();
            match tlb.lookup(VPN) {
                Some(t) => assert_eq!(t.pfn, Pfn(2), "stale translation survived (filled {filled})"),
                None => {}
            }
        });
    }
}

/// The big-reader lock's protocol (`sync::BrGate`, the map lock's): a reader
/// on CPU 1 and a writer (a second reader makes the spin-waits' state space
/// too large for CI). Checked in every interleaving: the writer is never
/// inside while the reader is.
mod brlock {
    use loom::thread;
    use vmlab_mm::sync::{Arc, AtomicUsize, BrGate, Ordering};

    struct World {
        gate: BrGate,
        readers_in: AtomicUsize,
        writer_in: AtomicUsize,
    }

    fn reader(w: &World, cpu: usize) {
        let slot = w.gate.read_enter(cpu);
        w.readers_in.fetch_add(1, Ordering::SeqCst);
        assert_eq!(w.writer_in.load(Ordering::SeqCst), 0, "reader inside with the writer");
        w.readers_in.fetch_sub(1, Ordering::SeqCst);
        BrGate::read_exit(slot);
    }

    #[test]
    fn readers_and_the_writer_exclude_each_other() {
        let mut b = loom::model::Builder::new();
        // The spin-waits (each yields) make long but finite paths.
        b.max_branches = 100_000;
        b.check(|| {
            let w = Arc::new(World {
                gate: BrGate::new(2),
                readers_in: AtomicUsize::new(0),
                writer_in: AtomicUsize::new(0),
            });
            let readers: Vec<_> = (1..2)
                .map(|cpu| {
                    let w = w.clone();
                    thread::spawn(move || reader(&w, cpu))
                })
                .collect();
            let guard = w.gate.write_enter();
            w.writer_in.store(1, Ordering::SeqCst);
            assert_eq!(w.readers_in.load(Ordering::SeqCst), 0, "writer inside with a reader");
            w.writer_in.store(0, Ordering::SeqCst);
            w.gate.write_exit();
            drop(guard);
            for r in readers {
                r.join().unwrap();
            }
        });
    }
}
