//! CLOCK-Pro (Jiang, Chen & Zhang, USENIX 2005): LIRS's idea on a clock.
//! One ring holds hot pages, resident cold pages and non-resident cold
//! pages still in their test period; a cold page's test period starts when
//! it comes in (or is re-used after its period ended) and ends when
//! hand-hot passes it — so a re-use within it means a reuse distance
//! shorter than the hot pages' recency. Three hands sweep the ring:
//! - hand-cold finds a victim among the resident cold pages: referenced and
//!   in its test period → hot; referenced after it → a new test period,
//!   still cold; unreferenced → evicted, staying in the ring non-resident
//!   if in its test period (else leaving it);
//! - hand-hot turns unreferenced hot pages cold (clearing the bits of the
//!   referenced ones) while there are more hot pages than
//!   `frames - cold_target`; it ends the test periods it passes (a
//!   non-resident page leaves the ring and the cold target shrinks by one);
//! - hand-test drops non-resident pages while more than `frames` are kept,
//!   each shrinking the cold target by one.
//!
//! A miss on a page in its test period grows the cold target by one and
//! brings the page back hot; a miss on a page not in the ring brings it in
//! cold (hot while the cache fills, up to `frames - cold_target`). The
//! cold target adapts between 1% of the frames (at least 1) and all of
//! them, starting at the least, as the authors' simulator starts.
//!
//! The hand mechanics follow the paper, not libCacheSim's ClockPro (which
//! behaves differently: docs/REPLAY.md), nor exactly the authors'
//! simulator (which also moves the pages hand-hot passes to the clock's
//! head and credits the cold target through a counter). Amortised O(1): a
//! hand's step either changes a page's state, which needs a reference or a
//! miss to undo, or moves past a page another hand's work put there.

use super::list::NIL;
use super::slot_map::SlotMap;
use super::CachePolicy;

#[derive(Copy, Clone, PartialEq, Eq, Debug)]
enum Kind {
    Hot,
    Cold,
    /// Non-resident, in its test period.
    Test,
}

struct Entry {
    page: u64,
    kind: Kind,
    referenced: bool,
    /// A resident cold page in its test period (always true of `Test`).
    in_test: bool,
    prev: u32,
    next: u32,
}

pub struct ClockPro {
    frames: usize,
    cold_target: usize,
    hot: usize,
    cold: usize,
    test: usize,
    ring: Vec<Entry>,
    free: Vec<u32>,
    map: SlotMap,
    hand_hot: u32,
    hand_cold: u32,
    hand_test: u32,
}

/// A ring entry's page, for [`SlotMap`] (a free function, so that the ring
/// is borrowed while the map is changed).
fn page_of(ring: &[Entry]) -> impl Fn(u32) -> u64 + '_ {
    move |i| ring[i as usize].page
}

/// The least cold target: 1% of the frames, at least 1 (the original
/// simulator's MIN_COLD_ALLOC band, LIRS's HIR share).
fn min_cold(frames: usize) -> usize {
    (frames / 100).max(1)
}

/// The most cold target: every frame.
fn max_cold(frames: usize) -> usize {
    frames
}

impl ClockPro {
    pub fn new(frames: usize) -> ClockPro {
        ClockPro {
            frames,
            cold_target: min_cold(frames),
            hot: 0,
            cold: 0,
            test: 0,
            ring: Vec::with_capacity((2 * frames).min(super::PREALLOC_MAX)),
            free: Vec::new(),
            map: SlotMap::with_capacity(2 * frames),
            hand_hot: NIL,
            hand_cold: NIL,
            hand_test: NIL,
        }
    }

    fn next(&self, i: u32) -> u32 {
        self.ring[i as usize].next
    }

    /// Put `page` in the ring just behind hand-hot (the newest position).
    fn add(&mut self, page: u64, kind: Kind) {
        let e = Entry {
            page,
            kind,
            referenced: false,
            in_test: true,
            prev: NIL,
            next: NIL,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.ring[i as usize] = e;
                i
            }
            None => {
                self.ring.push(e);
                (self.ring.len() - 1) as u32
            }
        };
        self.map.insert(page, i, page_of(&self.ring));
        if self.hand_hot == NIL {
            self.ring[i as usize].prev = i;
            self.ring[i as usize].next = i;
            self.hand_hot = i;
            self.hand_cold = i;
            self.hand_test = i;
        } else {
            let at = self.hand_hot;
            let p = self.ring[at as usize].prev;
            self.ring[i as usize].prev = p;
            self.ring[i as usize].next = at;
            self.ring[p as usize].next = i;
            self.ring[at as usize].prev = i;
        }
        match kind {
            Kind::Hot => self.hot += 1,
            Kind::Cold => self.cold += 1,
            Kind::Test => self.test += 1,
        }
    }

    /// Take entry `i` out of the ring; hands on it move to the next entry.
    fn remove(&mut self, i: u32) {
        let (p, n, page, kind) = {
            let e = &self.ring[i as usize];
            (e.prev, e.next, e.page, e.kind)
        };
        match kind {
            Kind::Hot => self.hot -= 1,
            Kind::Cold => self.cold -= 1,
            Kind::Test => self.test -= 1,
        }
        self.map.remove(page, page_of(&self.ring));
        let alone = n == i;
        for h in [&mut self.hand_hot, &mut self.hand_cold, &mut self.hand_test] {
            if *h == i {
                *h = if alone { NIL } else { n };
            }
        }
        if !alone {
            self.ring[p as usize].next = n;
            self.ring[n as usize].prev = p;
        }
        self.free.push(i);
    }

    fn run_hand_cold(&mut self) {
        let i = self.hand_cold;
        if i == NIL {
            return;
        }
        let e = &mut self.ring[i as usize];
        if e.kind == Kind::Cold {
            if e.referenced && e.in_test {
                // Re-used within its test period: hot.
                e.referenced = false;
                e.kind = Kind::Hot;
                self.cold -= 1;
                self.hot += 1;
            } else if e.referenced {
                // Re-used, but later than hand-hot's sweep: a new test period.
                e.referenced = false;
                e.in_test = true;
            } else if e.in_test {
                e.kind = Kind::Test;
                self.cold -= 1;
                self.test += 1;
                while self.test > self.frames {
                    self.run_hand_test();
                }
            } else {
                self.hand_cold = self.next(i);
                self.remove(i);
                self.balance_hot();
                return;
            }
        }
        // The entry may have gone (hand-test ran): the hand moved with it.
        if self.hand_cold == i {
            self.hand_cold = self.next(i);
        }
        self.balance_hot();
    }

    fn balance_hot(&mut self) {
        while self.hot > self.frames - self.cold_target.min(self.frames) {
            if !self.run_hand_hot() {
                break;
            }
        }
    }

    /// One step of hand-hot; false if the ring is empty.
    fn run_hand_hot(&mut self) -> bool {
        if self.hand_hot == self.hand_test && self.hand_test != NIL {
            self.run_hand_test();
        }
        let i = self.hand_hot;
        if i == NIL {
            return false;
        }
        let e = &mut self.ring[i as usize];
        match e.kind {
            Kind::Hot => {
                if e.referenced {
                    e.referenced = false;
                } else {
                    e.kind = Kind::Cold;
                    e.in_test = false;
                    self.hot -= 1;
                    self.cold += 1;
                }
            }
            // Hand-hot ends the test periods it passes.
            Kind::Cold => e.in_test = false,
            Kind::Test => {
                self.remove(i);
                if self.cold_target > min_cold(self.frames) {
                    self.cold_target -= 1;
                }
                return true;
            }
        }
        if self.hand_hot == i {
            self.hand_hot = self.next(i);
        }
        true
    }

    fn run_hand_test(&mut self) {
        if self.hand_test == self.hand_cold && self.hand_cold != NIL {
            self.run_hand_cold_once();
        }
        let i = self.hand_test;
        if i == NIL {
            return;
        }
        if self.ring[i as usize].kind == Kind::Test {
            // remove() moves the hand on.
            self.remove(i);
            if self.cold_target > min_cold(self.frames) {
                self.cold_target -= 1;
            }
        } else {
            self.hand_test = self.next(i);
        }
    }

    /// hand-cold's step as hand-test triggers it: without the recursion
    /// back into hand-test (the reference simulator's mutual recursion
    /// can only come back here with hand-test one entry further on; this
    /// stops it at one level).
    fn run_hand_cold_once(&mut self) {
        let i = self.hand_cold;
        let e = &mut self.ring[i as usize];
        if e.kind == Kind::Cold {
            if e.referenced {
                e.referenced = false;
                e.kind = Kind::Hot;
                self.cold -= 1;
                self.hot += 1;
            } else {
                e.kind = Kind::Test;
                self.cold -= 1;
                self.test += 1;
            }
        }
        self.hand_cold = self.next(i);
    }

    fn make_room(&mut self) {
        // Each turn of hand-cold turns a resident page non-resident or hot,
        // or moves past a hot or test page; hand-hot makes hot pages cold.
        let mut guard = 0usize;
        while self.hot + self.cold >= self.frames {
            self.run_hand_cold();
            guard += 1;
            if guard > 16 * (self.ring.len() + 1) {
                // Cannot happen with frames ≥ 1 (hand-hot keeps a cold
                // page resident); better a cache one over than a hang.
                break;
            }
        }
    }
}

impl CachePolicy for ClockPro {
    fn access(&mut self, page: u64) -> bool {
        if let Some(i) = self.map.get(page, page_of(&self.ring)) {
            let e = &mut self.ring[i as usize];
            if e.kind != Kind::Test {
                e.referenced = true;
                return true;
            }
            // A miss in its test period: its reuse distance beat the cold
            // pages', so the cold target grows and the page comes back hot.
            if self.cold_target < max_cold(self.frames) {
                self.cold_target += 1;
            }
            self.remove(i);
            self.make_room();
            self.add(page, Kind::Hot);
            return false;
        }
        self.make_room();
        // While the cache fills, pages come in hot up to the frames the
        // cold target leaves them (the original simulator's start).
        let kind = if self.hot + self.cold < self.frames && self.hot < self.frames - self.cold_target.min(self.frames) {
            Kind::Hot
        } else {
            Kind::Cold
        };
        self.add(page, kind);
        false
    }
    fn name(&self) -> &'static str {
        "clock_pro"
    }
    fn resident(&self) -> usize {
        self.hot + self.cold
    }
}
