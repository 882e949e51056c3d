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

/// The PTE lock bit (`mm/fault_lock.rs`, fault policy `pte_bit`): two CPUs
/// fault on one empty entry. Whoever claims the entry allocates and zeroes a
/// frame, then publishes the entry; the other waits on the bit. Checked in
/// every interleaving: exactly one frame is allocated (none is thrown away),
/// both CPUs end with the same frame, the entry ends unlocked, and a CPU that
/// sees the published entry sees the frame's contents written before it.
mod pte_lock {
    use loom::thread;
    use vmlab_mm::addr::Pfn;
    use vmlab_mm::mm::pte_ops::{abandon, claim, publish_uncounted};
    use vmlab_mm::pgtable::LeafRef;
    use vmlab_mm::pgtable::Pte;
    use vmlab_mm::sync::{Arc, AtomicU64, AtomicUsize, Ordering};

    const FLAGS: u64 = Pte::PRESENT | Pte::WRITE | Pte::USER;
    /// What "zeroing" leaves in a frame's word, so a reader can tell it ran.
    const CLEARED: u64 = 0x5a5a;

    struct World {
        entry: AtomicU64,
        /// Frames handed out so far; frame n's one word is `words[n]`.
        allocated: AtomicUsize,
        words: [AtomicU64; 3],
        /// Allocations that fail (to model an OOM that abandons the claim).
        fail_first: bool,
    }

    impl World {
        fn new(fail_first: bool) -> Arc<World> {
            Arc::new(World {
                entry: AtomicU64::new(0),
                allocated: AtomicUsize::new(0),
                words: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
                fail_first,
            })
        }

        /// A fresh frame (numbered from 1), its word initialised; `None`
        /// for the first request when `fail_first`.
        fn alloc(&self) -> Option<Pfn> {
            let n = self.allocated.fetch_add(1, Ordering::Relaxed);
            if self.fail_first && n == 0 {
                return None;
            }
            self.words[n].store(CLEARED, Ordering::Relaxed);
            Some(Pfn(n + 1))
        }

        /// The anonymous write fault of `fault.rs` under `pte_bit`, reduced
        /// to the entry: `Some(frame)` mapped, or `None` on OOM.
        fn fault(&self) -> Option<Pfn> {
            loop {
                let cur = Pte(self.entry.load(Ordering::Acquire));
                if cur.locked() {
                    thread::yield_now();
                    continue;
                }
                if cur.present() {
                    // Published by the other CPU: its frame's contents are visible.
                    let w = self.words[cur.pfn().0 - 1].load(Ordering::Relaxed);
                    assert_eq!(w, CLEARED, "entry visible before the frame's contents");
                    return Some(cur.pfn());
                }
                if !claim(LeafRef::from_word(&self.entry), cur) {
                    continue;
                }
                let Some(pfn) = self.alloc() else {
                    abandon(LeafRef::from_word(&self.entry), cur);
                    return None;
                };
                publish_uncounted(LeafRef::from_word(&self.entry), Pte::new(pfn, FLAGS));
                return Some(pfn);
            }
        }
    }

    #[test]
    fn one_frame_for_two_racing_faults() {
        loom::model(|| {
            let w = World::new(false);
            let w2 = w.clone();
            let t = thread::spawn(move || w2.fault());
            let a = w.fault();
            let b = t.join().unwrap();
            assert!(a.is_some() && a == b, "{a:?} {b:?}");
            assert_eq!(w.allocated.load(Ordering::Relaxed), 1, "a frame was thrown away");
            let e = Pte(w.entry.load(Ordering::Relaxed));
            assert!(!e.locked() && e.present());
        });
    }

    #[test]
    fn an_abandoned_claim_lets_the_other_fault_through() {
        loom::model(|| {
            let w = World::new(true);
            let w2 = w.clone();
            let t = thread::spawn(move || w2.fault());
            let a = w.fault();
            let b = t.join().unwrap();
            // One fault met the OOM; the other retried the unlocked entry and
            // mapped the second frame (or saw the first fault's abandon and
            // then mapped), so exactly one of them failed unless the failing
            // one came second and found the entry mapped.
            let mapped: Vec<Pfn> = [a, b].into_iter().flatten().collect();
            assert!(!mapped.is_empty());
            assert!(mapped.iter().all(|p| *p == Pfn(2)), "{a:?} {b:?}");
            let e = Pte(w.entry.load(Ordering::Relaxed));
            assert!(!e.locked() && e.present() && e.pfn() == Pfn(2));
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
                if tlb2.fill_checked(VPN, Pfn(pfn), false, gen, true) {
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
