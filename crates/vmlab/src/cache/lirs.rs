//! LIRS, Low Inter-reference Recency Set (Jiang & Zhang, SIGMETRICS 2002):
//! pages with a short reuse distance (LIR) hold most frames; the rest
//! (`hirs_limit` frames) hold resident HIR pages in a queue Q. The stack S
//! keeps recency of LIR pages, resident HIR and non-resident HIR pages; a
//! HIR page referenced again while still in S has a reuse distance shorter
//! than the oldest LIR's and becomes LIR, demoting the LIR at the bottom
//! of S to Q. S's bottom is kept a LIR page ("stack pruning").
//!
//! Followed exactly: libCacheSim's `cache/eviction/LIRS.c`, whose
//! structure and parameters this file reproduces step for step because its
//! miss counts depend on them:
//! - `hirs_limit = max(1, floor(0.01 * c))`, `lirs_limit = c - hirs_limit`.
//! - S, Q and NH (the non-resident HIR pages, oldest first) are three LRU
//!   queues with entries of their own: a page in S and Q has two entries
//!   with separate flags (`is_lir`, `in_cache`). A lookup moves the page's
//!   S and Q entries to their heads (LRU `find` with update).
//! - A hit on a LIR page prunes S. A hit on a resident HIR page in S drops
//!   its Q entry, evicts LIRs (the bottom of S to Q) while
//!   `lirs_count + 1 > lirs_limit`, and makes it LIR. A hit on a HIR page in
//!   Q only also evicts LIRs while `lirs_count + 1 > lirs_limit`, then
//!   pushes a resident HIR entry on S (evicting a LIR to Q may evict the
//!   page's own Q entry when Q has one frame: libCacheSim then keeps it as
//!   "resident" in S only; so does this file).
//! - A miss on a non-resident HIR page in S evicts LIRs while
//!   `lirs_count + 1 > lirs_limit` and drops its NH entry; then, while the
//!   cache is full, evicts HIRs while `hirs_count >= hirs_limit` and one
//!   more LIR; then makes the page LIR. A miss on a page in neither S nor Q
//!   evicts HIRs while both LIR and HIR counts are at their limits, and
//!   inserts the page as LIR while `lirs_count < lirs_limit`, else as a
//!   resident HIR on S and Q.
//! - Evicting a LIR moves S's tail (whatever it is: after the stack limit
//!   below it may be a HIR entry, and libCacheSim still counts it as a LIR)
//!   to Q's head as a resident HIR (evicting HIRs first while Q is full),
//!   then prunes. Evicting a HIR takes Q's tail; if the page has an S
//!   entry, that entry turns non-resident and the page goes on NH.
//! - After every reference, while S holds more than `2c` entries, the
//!   oldest NH page is removed from S and NH (libCacheSim's `limitStack`).
//!
//! Counters are u64 with wrap-around, as libCacheSim's `uint64_t`. Where
//! libCacheSim would loop forever or dereference an empty queue (never on
//! the paper traces), this file stops the loop instead.

use super::list::{Arena, List, NIL};
use super::slot_map::SlotMap;
use super::CachePolicy;

const LIR: u8 = 1;
const IN_CACHE: u8 = 2;

/// An LRU queue of entries keyed by page, where (as a chained hash table
/// that prepends to its bucket) a page may have more than one entry: a
/// lookup finds the newest. `aux` links a page's entries, newest first.
struct IdList {
    l: List,
    map: SlotMap,
}

impl IdList {
    fn new(n: usize) -> IdList {
        IdList {
            l: List::new(),
            map: SlotMap::with_capacity(n),
        }
    }

    fn find(&self, a: &Arena, page: u64) -> Option<u32> {
        self.map.get(page, a.page_of())
    }

    /// A new entry for `page` at the head, with `flags`.
    fn insert(&mut self, a: &mut Arena, page: u64, flags: u8) -> u32 {
        let i = a.alloc(page, 0);
        let older = self.map.insert(page, i, a.page_of()).unwrap_or(NIL);
        let n = a.node_mut(i);
        n.aux = older;
        n.flags = flags;
        a.push_head(&mut self.l, i);
        i
    }

    /// Take entry `i` off the queue and out of the map.
    fn remove_entry(&mut self, a: &mut Arena, i: u32) {
        a.unlink(&mut self.l, i);
        let (page, older) = (a.node(i).page, a.node(i).aux);
        match self.map.get(page, a.page_of()) {
            Some(h) if h == i => {
                if older == NIL {
                    self.map.remove(page, a.page_of());
                } else {
                    self.map.insert(page, older, a.page_of());
                }
            }
            Some(mut h) => {
                // An older entry: splice it out of the page's chain.
                while h != NIL {
                    let next = a.node(h).aux;
                    if next == i {
                        a.node_mut(h).aux = older;
                        break;
                    }
                    h = next;
                }
            }
            None => {}
        }
        a.release(i);
    }

    /// Remove the newest entry of `page`, if any (libCacheSim's `remove`).
    fn remove(&mut self, a: &mut Arena, page: u64) -> bool {
        match self.find(a, page) {
            Some(i) => {
                self.remove_entry(a, i);
                true
            }
            None => false,
        }
    }

    fn evict_tail(&mut self, a: &mut Arena) {
        let t = self.l.tail;
        if t != NIL {
            self.remove_entry(a, t);
        }
    }
}

pub struct Lirs {
    c: u64,
    hirs_limit: u64,
    lirs_limit: u64,
    hirs_count: u64,
    lirs_count: u64,
    nonresident: u64,
    /// Resident pages as libCacheSim's `occupied_byte` counts them.
    occupied: i64,
    a: Arena,
    s: IdList,
    q: IdList,
    nh: IdList,
}

impl Lirs {
    pub fn new(frames: usize) -> Lirs {
        let c = frames as u64;
        // (uint64_t)(0.01 * cache_size), at least 1.
        let hirs_limit = ((0.01 * c as f64) as u64).max(1);
        Lirs {
            c,
            hirs_limit,
            lirs_limit: c.wrapping_sub(hirs_limit),
            hirs_count: 0,
            lirs_count: 0,
            nonresident: 0,
            occupied: 0,
            a: Arena::with_capacity(3 * frames),
            s: IdList::new(2 * frames),
            q: IdList::new(frames),
            nh: IdList::new(frames),
        }
    }

    fn flags(&self, i: u32) -> u8 {
        self.a.node(i).flags
    }

    /// Drop entries off the bottom of S until a LIR entry (or S's head).
    fn prune(&mut self) {
        loop {
            let t = self.s.l.tail;
            if t == NIL || t == self.s.l.head || self.flags(t) & LIR != 0 {
                return;
            }
            let page = self.a.node(t).page;
            if self.flags(t) & IN_CACHE == 0 && self.nh.remove(&mut self.a, page) {
                self.nonresident = self.nonresident.wrapping_sub(1);
            }
            self.s.evict_tail(&mut self.a);
        }
    }

    /// Q's tail leaves the cache; its S entry, if any, turns non-resident.
    fn evict_hir(&mut self) {
        let t = self.q.l.tail;
        if t == NIL {
            return;
        }
        let page = self.a.node(t).page;
        self.hirs_count = self.hirs_count.wrapping_sub(1);
        self.q.evict_tail(&mut self.a);
        if let Some(s) = self.s.find(&self.a, page) {
            self.a.node_mut(s).flags &= !IN_CACHE;
            self.nh.insert(&mut self.a, page, 0);
            self.nonresident = self.nonresident.wrapping_add(1);
        }
        self.occupied -= 1;
    }

    /// S's tail goes to Q as a resident HIR page.
    fn evict_lir(&mut self) {
        let t = self.s.l.tail;
        if t == NIL {
            return;
        }
        let page = self.a.node(t).page;
        self.lirs_count = self.lirs_count.wrapping_sub(1);
        self.s.evict_tail(&mut self.a);
        self.occupied -= 1;
        // Object size 1 ≤ hirs_limit always.
        while self.hirs_count.wrapping_add(1) > self.hirs_limit && self.q.l.len > 0 {
            self.evict_hir();
        }
        self.q.insert(&mut self.a, page, IN_CACHE);
        self.hirs_count = self.hirs_count.wrapping_add(1);
        self.occupied += 1;
        self.prune();
    }

    /// Evict LIRs while the LIR set is full (bounded by S's length, so a
    /// count that went wrong cannot loop forever).
    fn make_lir_room(&mut self) {
        while self.lirs_count.wrapping_add(1) > self.lirs_limit && self.s.l.len > 0 {
            self.evict_lir();
        }
    }

    fn find(&mut self, page: u64) -> bool {
        let s = self.s.find(&self.a, page);
        let q = self.q.find(&self.a, page);
        if let Some(i) = s {
            self.a.move_head(&mut self.s.l, i);
        }
        if let Some(i) = q {
            self.a.move_head(&mut self.q.l, i);
        }
        match (s, q) {
            (Some(s), _) if self.flags(s) & LIR != 0 => {
                self.prune();
                true
            }
            (Some(s), q) if self.flags(s) & IN_CACHE != 0 => {
                // A resident HIR page in S: it becomes LIR.
                if let Some(q) = q {
                    self.hirs_count = self.hirs_count.wrapping_sub(1);
                    self.q.remove_entry(&mut self.a, q);
                    self.occupied -= 1;
                }
                self.make_lir_room();
                // The entry is S's head, which neither pruning nor LIR
                // eviction (S's tail) takes while S has another entry.
                if let Some(s) = self.s.find(&self.a, page) {
                    self.a.node_mut(s).flags |= LIR;
                }
                self.lirs_count = self.lirs_count.wrapping_add(1);
                self.occupied += 1;
                true
            }
            (Some(_), _) => false,
            (None, Some(_)) => {
                // A resident HIR page in Q only: it goes on S again.
                self.make_lir_room();
                self.s.insert(&mut self.a, page, IN_CACHE);
                true
            }
            (None, None) => false,
        }
    }

    /// Whether `page` has a non-resident HIR entry in S.
    fn nonresident_in_s(&self, page: u64) -> Option<u32> {
        self.s
            .find(&self.a, page)
            .filter(|&s| self.flags(s) & (LIR | IN_CACHE) == 0)
    }

    fn miss(&mut self, page: u64) {
        // libCacheSim's LIRS_can_insert (which evicts).
        let in_s = self.nonresident_in_s(page);
        let in_none = self.s.find(&self.a, page).is_none() && self.q.find(&self.a, page).is_none();
        if in_s.is_some() {
            self.make_lir_room();
            if self.nh.remove(&mut self.a, page) {
                self.nonresident = self.nonresident.wrapping_sub(1);
            }
        } else if in_none && self.lirs_limit < 1 {
            // libCacheSim's can_insert refuses a page larger than the LIR
            // set (one frame: lirs_limit 0): a miss that inserts nothing.
            return;
        } else if in_none
            && self.lirs_count.wrapping_add(1) > self.lirs_limit
            && self.hirs_count.wrapping_add(1) > self.hirs_limit
        {
            while self.hirs_count.wrapping_add(1) > self.hirs_limit && self.q.l.len > 0 {
                self.evict_hir();
            }
        }
        // cache_get_base's eviction loop, with LIRS_evict.
        while self.occupied + 1 > self.c as i64 {
            let before = (self.occupied, self.lirs_count, self.hirs_count);
            self.evict_for(page);
            if (self.occupied, self.lirs_count, self.hirs_count) == before {
                break;
            }
        }
        // LIRS_insert.
        if let Some(s) = self.nonresident_in_s(page) {
            self.a.node_mut(s).flags |= LIR | IN_CACHE;
            self.lirs_count = self.lirs_count.wrapping_add(1);
            self.occupied += 1;
        } else if self.s.find(&self.a, page).is_none() && self.q.find(&self.a, page).is_none() {
            if self.lirs_count < self.lirs_limit {
                self.s.insert(&mut self.a, page, LIR | IN_CACHE);
                self.lirs_count = self.lirs_count.wrapping_add(1);
            } else {
                self.s.insert(&mut self.a, page, IN_CACHE);
                self.q.insert(&mut self.a, page, IN_CACHE);
                self.hirs_count = self.hirs_count.wrapping_add(1);
            }
            self.occupied += 1;
        }
    }

    /// libCacheSim's LIRS_evict for a miss on `page`.
    fn evict_for(&mut self, page: u64) {
        if self.nonresident_in_s(page).is_some() {
            while self.hirs_count >= self.hirs_limit && self.q.l.len > 0 {
                self.evict_hir();
            }
            self.evict_lir();
        } else if self.s.find(&self.a, page).is_none()
            && self.q.find(&self.a, page).is_none()
            && self.lirs_count.wrapping_add(1) > self.lirs_limit
            && self.hirs_count.wrapping_add(1) > self.hirs_limit
        {
            self.evict_hir();
        }
    }

    /// S holds at most 2c entries: the oldest non-resident pages go.
    fn limit_stack(&mut self) {
        while self.s.l.len as u64 > 2 * self.c {
            let t = self.nh.l.tail;
            if t == NIL {
                return;
            }
            let page = self.a.node(t).page;
            self.nonresident = self.nonresident.wrapping_sub(1);
            self.s.remove(&mut self.a, page);
            self.nh.evict_tail(&mut self.a);
        }
    }
}

impl CachePolicy for Lirs {
    fn access(&mut self, page: u64) -> bool {
        let hit = self.find(page);
        if !hit {
            self.miss(page);
        }
        self.limit_stack();
        hit
    }
    fn name(&self) -> &'static str {
        "lirs"
    }
    fn resident(&self) -> usize {
        self.occupied.max(0) as usize
    }
}
