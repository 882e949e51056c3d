//! Per-CPU lists of free frames (`frame/pcp.rs`) and their use by `PhysMem`:
//! exclusive ownership across real threads, exact books, one zone lock
//! acquisition per batch, and batch 0 as the plain zone allocator.

mod common;

use std::sync::Mutex as StdMutex;
use vmlab_mm::addr::Pfn;
use vmlab_mm::frame::buddy::Buddy;
use vmlab_mm::frame::pcp::PerCpuPages;
use vmlab_mm::frame::{FrameAllocator, FreeError};
use vmlab_mm::phys::{FrameAllocatorPolicy, FrameUse, OwnedFrame, PhysMem};
use vmlab_mm::sync::{Mutex, Ordering};
use vmlab_mm::system::{ByteSize, Machine, MachineConfig};

/// 32 MiB: one Normal zone, no DMA zone.
const FRAMES: usize = 8192;

fn phys(cpus: usize, batch: usize) -> PhysMem {
    PhysMem::with_pcp(FRAMES, FrameAllocatorPolicy::Buddy, cpus, batch).unwrap()
}

/// Free frames in the zones' own books (without the lists).
fn zone_free(p: &PhysMem) -> usize {
    p.zones().iter().map(|z| z.free_frames()).sum()
}

/// Who wrote a held frame: (thread, round, index in round).
type Tag = (usize, usize, usize);

/// A value no other thread, round or frame writes.
fn pattern(thread: usize, round: usize, i: usize, word: usize) -> u64 {
    ((thread as u64 + 1) << 56) ^ ((round as u64) << 36) ^ ((i as u64) << 12) ^ word as u64
}

fn fill(p: &PhysMem, pfn: Pfn, tag: Tag) {
    for (w, word) in p.ram().frame(pfn).unwrap().iter().enumerate() {
        word.store(pattern(tag.0, tag.1, tag.2, w), Ordering::Relaxed);
    }
}

/// Panics if any word of `pfn` is not the pattern of `tag`: some other
/// holder wrote the frame, so it was handed out twice.
fn verify(p: &PhysMem, pfn: Pfn, tag: Tag) {
    for (w, word) in p.ram().frame(pfn).unwrap().iter().enumerate() {
        let v = word.load(Ordering::Relaxed);
        assert_eq!(
            v,
            pattern(tag.0, tag.1, tag.2, w),
            "frame {} word {w} overwritten",
            pfn.0
        );
    }
}

#[test]
fn threads_never_share_a_frame_and_drain_restores_the_zone() {
    const THREADS: usize = 4;
    const ROUNDS: usize = 200;
    const HELD: usize = 40;
    // A small batch, so that refills, trims and cross-CPU handoffs are frequent.
    let p = phys(THREADS, 4);
    let used0 = p.frames_used();
    assert_eq!(used0, 1, "the zero page");
    // mailbox[t]: frames allocated by thread t - 1, to be checked and freed by t.
    let mailbox: Vec<StdMutex<Vec<(OwnedFrame, Tag)>>> = (0..THREADS).map(|_| StdMutex::new(Vec::new())).collect();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (p, mailbox) = (&p, &mailbox);
            s.spawn(move || {
                let mut held: Vec<(OwnedFrame, Tag)> = Vec::new();
                for round in 0..ROUNDS {
                    for i in 0..HELD {
                        let frame = p.alloc_zeroed_on(t, FrameUse::Kernel).expect("memory");
                        let pfn = frame.pfn();
                        let d = p.desc(pfn).unwrap();
                        assert_eq!(d.usage(), FrameUse::Kernel);
                        assert_eq!(d.refcount(), 1);
                        assert!(p
                            .ram()
                            .frame(pfn)
                            .unwrap()
                            .iter()
                            .all(|w| w.load(Ordering::Relaxed) == 0));
                        fill(p, pfn, (t, round, i));
                        held.push((frame, (t, round, i)));
                    }
                    // Half of this round's frames go to the next CPU, half are freed here.
                    let give: Vec<_> = held
                        .drain(..)
                        .enumerate()
                        .filter_map(|(k, f)| {
                            if k % 2 == 0 {
                                Some(f)
                            } else {
                                verify(p, f.0.pfn(), f.1);
                                assert!(p.put_on(t, f.0));
                                None
                            }
                        })
                        .collect();
                    mailbox[(t + 1) % THREADS].lock().unwrap().extend(give);
                    let got = std::mem::take(&mut *mailbox[t].lock().unwrap());
                    for (frame, tag) in got {
                        verify(p, frame.pfn(), tag);
                        assert!(p.put_on(t, frame));
                    }
                }
            });
        }
    });
    for m in &mailbox {
        for (frame, tag) in std::mem::take(&mut *m.lock().unwrap()) {
            verify(&p, frame.pfn(), tag);
            assert!(p.put_on(0, frame));
        }
    }
    // Lists hold free frames only: the books already read as if they were in the zone.
    let listed = p.pcp_frames();
    assert!(listed > 0 && listed <= THREADS * p.pcp().high());
    assert_eq!(p.frames_used(), used0);
    assert_eq!(p.free_frames_count(), FRAMES - used0);
    assert_eq!(zone_free(&p), FRAMES - used0 - listed);
    let mut seen = vec![false; FRAMES];
    let mut frames = Vec::new();
    p.pcp().for_each(|_, pfn| frames.push(pfn));
    for pfn in frames {
        assert!(
            !std::mem::replace(&mut seen[pfn.0], true),
            "frame {} listed twice",
            pfn.0
        );
        assert!(p.is_free(pfn));
        assert_eq!(p.desc(pfn).unwrap().usage(), FrameUse::Free);
        assert_eq!(p.desc(pfn).unwrap().refcount(), 0);
    }

    assert_eq!(p.drain_pcp(), listed);
    assert_eq!(p.pcp_frames(), 0);
    assert_eq!(p.frames_used(), used0);
    assert_eq!(zone_free(&p), FRAMES - 1, "all but the zero page back in the zone");
    for z in p.zones() {
        z.check().unwrap();
    }
}

#[test]
fn books_count_listed_frames_as_free() {
    let p = phys(2, 8);
    let used0 = p.frames_used();
    let a = p.alloc_zeroed_on(0, FrameUse::Anon).unwrap();
    assert_eq!(p.frames_used(), used0 + 1);
    assert_eq!(p.pcp_frames(), 7, "a refill of one batch, one frame handed out");
    assert_eq!(p.free_frames_count(), FRAMES - used0 - 1);
    assert_eq!(zone_free(&p), FRAMES - used0 - 8);
    assert!(!p.is_free(a.pfn()));
    let mut listed = Vec::new();
    p.pcp().for_each(|cpu, pfn| {
        assert_eq!(cpu, 0);
        listed.push(pfn);
    });
    assert!(listed.iter().all(|&f| p.is_free(f)));

    // Page-table pages may use the lists; their count stays exact.
    let pt = p.alloc_zeroed_on(1, FrameUse::PageTable).unwrap();
    let pt_pfn = pt.pfn();
    assert_eq!(p.page_table_pages(), 1);
    assert!(p.put_on(1, pt));
    assert_eq!(p.page_table_pages(), 0);
    assert!(p.is_free(pt_pfn));

    // A frame with another reference is not freed.
    let a_pfn = a.pfn();
    let again = p.get(&a);
    assert_eq!(p.desc(a_pfn).unwrap().refcount(), 2);
    assert!(!p.put_on(1, a));
    assert!(!p.is_free(a_pfn));
    assert!(p.put_on(1, again), "cross-CPU free");
    assert!(p.is_free(a_pfn));
    assert_eq!(p.frames_used(), used0);
    // The zero page is never freed: no handle names it (`put_frame_on` by
    // number is crate-private; `phys`'s unit tests check its guard).
    assert!(!p.is_free(p.zero_pfn()));
    assert_eq!(p.desc(p.zero_pfn()).unwrap().usage(), FrameUse::Zero);

    // A CPU without a list takes the zone path.
    let before = p.pcp_frames();
    let g = p.alloc_zeroed_on(7, FrameUse::Kernel).unwrap();
    assert_eq!(p.pcp_frames(), before);
    assert!(p.put_on(7, g));
    assert_eq!(p.pcp_frames(), before);
    assert_eq!(p.frames_used(), used0);
}

#[test]
fn parked_frames_never_cause_a_failure() {
    // 64 frames, one zone; CPU 1's list can park up to 32 of them.
    let p = PhysMem::with_pcp(64, FrameAllocatorPolicy::Buddy, 2, 8).unwrap();
    let mut got = Vec::new();
    while let Some(f) = p.alloc_zeroed_on(0, FrameUse::Kernel) {
        got.push(f);
    }
    assert_eq!(got.len(), 63, "every frame but the zero page");
    for f in got.drain(..) {
        assert!(p.put_on(1, f));
    }
    assert!(p.pcp_frames() > 0);
    // An order-3 run needs the parked frames back in the zone.
    let run = p
        .alloc_frames(8, 8, FrameUse::Kernel)
        .expect("lists drained on failure");
    assert_eq!(run.count(), 8);
    assert!(p.put(run));
    // CPU 0 refills from the zone even though CPU 1 parked frames.
    while let Some(f) = p.alloc_zeroed_on(0, FrameUse::Kernel) {
        got.push(f);
    }
    assert_eq!(got.len(), 63);
    for f in got {
        assert!(p.put_on(0, f));
    }
    p.drain_pcp();
    assert_eq!(zone_free(&p), 63);
}

#[test]
fn batch_zero_is_the_global_allocator() {
    let plain = PhysMem::new(FRAMES, FrameAllocatorPolicy::Buddy).unwrap();
    let off = phys(4, 0);
    assert_eq!(off.pcp().cpus(), 0);
    let mut a = Vec::new();
    let mut b = Vec::new();
    for i in 0..300 {
        let cpu = i % 4;
        a.push(plain.alloc_zeroed(FrameUse::Anon).unwrap());
        b.push(off.alloc_zeroed_on(cpu, FrameUse::Anon).unwrap());
        if i % 3 == 0 {
            let (x, y) = (a.swap_remove(i % a.len()), b.swap_remove(i % b.len()));
            assert!(plain.put(x));
            assert!(off.put_on(cpu, y));
        }
        assert!(
            a.iter().map(OwnedFrame::pfn).eq(b.iter().map(OwnedFrame::pfn)),
            "same frames in the same order"
        );
        assert_eq!(off.pcp_frames(), 0);
        assert_eq!(off.frames_used(), plain.frames_used());
        assert_eq!(zone_free(&off), zone_free(&plain));
    }
    assert_eq!(off.drain_pcp(), 0);
}

/// A zone allocator that counts the calls made to it.
struct Counting {
    inner: Buddy,
    allocs: usize,
    frees: usize,
}

impl FrameAllocator for Counting {
    fn alloc(&mut self, count: usize, align: usize) -> Option<Pfn> {
        self.allocs += 1;
        self.inner.alloc(count, align)
    }
    fn free(&mut self, pfn: Pfn, count: usize) -> Result<(), FreeError> {
        self.frees += 1;
        self.inner.free(pfn, count)
    }
    fn free_frames(&self) -> usize {
        self.inner.free_frames()
    }
    fn total_frames(&self) -> usize {
        self.inner.total_frames()
    }
    fn frames_for(&self, count: usize) -> usize {
        self.inner.frames_for(count)
    }
    fn is_free(&self, pfn: Pfn) -> bool {
        self.inner.is_free(pfn)
    }
    fn largest_free_run(&self) -> usize {
        self.inner.largest_free_run()
    }
    fn check(&self) -> Result<(), String> {
        self.inner.check()
    }
    fn name(&self) -> &'static str {
        "counting"
    }
}

#[test]
fn refill_and_trim_take_the_zone_lock_once_per_batch() {
    let zone = Mutex::new(Counting {
        inner: Buddy::new(Pfn(0), 256),
        allocs: 0,
        frees: 0,
    });
    let pcp = PerCpuPages::new(2, 4);
    assert_eq!(pcp.high(), 16);

    // 40 allocations on CPU 0: a refill of 4 every 4th, 10 in all.
    let mut got = Vec::new();
    for _ in 0..40 {
        let (pfn, refilled) = pcp.alloc(0, &zone).unwrap();
        assert!(refilled == 0 || refilled == 4);
        got.push(pfn);
    }
    assert_eq!(pcp.zone_trips(0), 10);
    assert_eq!(zone.lock().allocs, 40);
    assert_eq!(pcp.frames_on(0), 0);

    // 40 frees on CPU 1: the 17th exceeds high and gives 4 back, as does
    // every 4th after it (21, 25, ..., 37): 6 trims of one batch each.
    let mut returned = 0;
    for f in got {
        returned += pcp.free(1, f, &zone).unwrap();
    }
    assert_eq!(pcp.zone_trips(1), 6);
    assert_eq!(returned, 24);
    assert_eq!(zone.lock().frees, 24);
    assert_eq!(pcp.frames_on(1), 16);
    assert!(pcp.frames() <= 2 * pcp.high());

    // A drain is one more acquisition per non-empty list.
    assert_eq!(pcp.drain_all(&zone), 16);
    assert_eq!((pcp.zone_trips(0), pcp.zone_trips(1)), (10, 7));
    let z = zone.lock();
    assert_eq!((z.frees, z.free_frames()), (40, 256));
    z.check().unwrap();
    drop(z);

    // A CPU without a list is refused and the frame left with the caller.
    assert!(pcp.alloc(2, &zone).is_none());
    assert_eq!(pcp.free(2, Pfn(3), &zone), Err(Pfn(3)));
    assert!(PerCpuPages::new(4, 0).alloc(0, &zone).is_none());
}

#[test]
fn machine_checker_accepts_listed_frames_and_catches_a_double_free() {
    let m = Machine::new(&MachineConfig {
        ram: ByteSize(32 << 20),
        cpus: 2,
        pcp_batch: 8,
        ..common::test_config()
    })
    .unwrap();
    let p = m.phys();
    assert_eq!(p.pcp().cpus(), 2);
    assert_eq!(p.pcp().batch(), 8);
    let a = p.alloc_zeroed_on(0, FrameUse::Kernel).unwrap();
    let b = p.alloc_zeroed_on(1, FrameUse::Kernel).unwrap();
    m.check().unwrap();
    assert!(p.put_on(1, a));
    assert!(p.put_on(0, b));
    m.check().unwrap();
    assert_eq!(m.stats().pcp_frames as usize, p.pcp_frames());
    assert_eq!(p.frames_used(), m.reserved_frames());
    // That the checker catches a listed frame freed in the zone as well
    // needs the zone's allocator, which is crate-private: `system::check`'s
    // unit test `a_listed_frame_freed_in_the_zone_too_is_caught`.
}

#[test]
fn pcp_batch_is_validated() {
    let e = Machine::new(&MachineConfig {
        pcp_batch: 1025,
        ..common::test_config()
    })
    .err()
    .unwrap()
    .to_string();
    assert!(e.starts_with("pcp_batch: 1025"), "{e}");
    let m = Machine::new(&MachineConfig {
        pcp_batch: 0,
        cpus: 4,
        ..common::test_config()
    })
    .unwrap();
    assert_eq!(m.phys().pcp().cpus(), 0);
}
