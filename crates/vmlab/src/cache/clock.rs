//! Clock (second chance; Corbató 1968): pages in a ring with a reference
//! bit; a hit sets the bit; to evict, the hand clears set bits as it
//! passes and takes the first page whose bit is clear.
//!
//! libCacheSim (`cache/eviction/Clock.c`, 1-bit counter): the ring is a
//! queue, newest at the head; the hand is the tail. Eviction looks at the
//! tail: bit set → clear it and move the page to the head (the hand moves
//! on), bit clear → evict it. A hit sets the bit (saturating at 1). A new
//! page is inserted at the head with the bit CLEAR (`freq = 0`) — unlike a
//! VM fault, which leaves the accessed bit set: `Options::clock_init_ref`
//! gives that. With the bit clear on insert this is exactly libCacheSim's
//! miss sequence. Amortised O(1): every bit the hand clears was set by one
//! hit.

use super::list::PageQueue;
use super::CachePolicy;

const REF: u8 = 1;

pub struct Clock {
    frames: usize,
    init_ref: bool,
    pq: PageQueue,
}

impl Clock {
    pub fn new(frames: usize, init_ref: bool) -> Clock {
        Clock {
            frames,
            init_ref,
            pq: PageQueue::new(frames),
        }
    }

    fn evict(&mut self) {
        // Terminates: each turn clears a bit, and cleared bits stay clear
        // until the next hit, which cannot happen inside this loop.
        while let Some(t) = self.pq.q.tail_slot() {
            let n = self.pq.arena.node_mut(t);
            if n.flags & REF == 0 {
                self.pq.evict_tail();
                return;
            }
            n.flags &= !REF;
            self.pq.arena.move_head(&mut self.pq.q, t);
        }
    }
}

impl CachePolicy for Clock {
    #[inline]
    fn access(&mut self, page: u64) -> bool {
        if let Some(i) = self.pq.find(page) {
            self.pq.arena.node_mut(i).flags |= REF;
            return true;
        }
        if self.pq.q.len >= self.frames {
            self.evict();
        }
        self.pq.push_new(page, if self.init_ref { REF } else { 0 });
        false
    }
    fn name(&self) -> &'static str {
        "clock"
    }
    fn resident(&self) -> usize {
        self.pq.q.len
    }
    #[inline]
    fn prefetch(&self, page: u64) {
        self.pq.map.prefetch(page);
    }
}
