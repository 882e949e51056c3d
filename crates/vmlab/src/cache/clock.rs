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

use super::list::{Arena, List};
use super::{page_map, CachePolicy, PageMap};

const REF: u8 = 1;

pub struct Clock {
    frames: usize,
    init_ref: bool,
    arena: Arena,
    q: List,
    map: PageMap<u32>,
}

impl Clock {
    pub fn new(frames: usize, init_ref: bool) -> Clock {
        Clock {
            frames,
            init_ref,
            arena: Arena::with_capacity(frames),
            q: List::new(),
            map: page_map(frames),
        }
    }

    fn evict(&mut self) {
        // Terminates: each turn clears a bit, and cleared bits stay clear
        // until the next hit, which cannot happen inside this loop.
        while let Some(t) = self.arena.pop_tail(&mut self.q) {
            let n = self.arena.node_mut(t);
            if n.flags & REF != 0 {
                n.flags &= !REF;
                self.arena.push_head(&mut self.q, t);
            } else {
                self.map.remove(&self.arena.node(t).page);
                self.arena.release(t);
                return;
            }
        }
    }
}

impl CachePolicy for Clock {
    #[inline]
    fn access(&mut self, page: u64) -> bool {
        if let Some(&i) = self.map.get(&page) {
            self.arena.node_mut(i).flags |= REF;
            return true;
        }
        if self.q.len >= self.frames {
            self.evict();
        }
        let i = self.arena.alloc(page, 0);
        if self.init_ref {
            self.arena.node_mut(i).flags = REF;
        }
        self.arena.push_head(&mut self.q, i);
        self.map.insert(page, i);
        false
    }
    fn name(&self) -> &'static str {
        "clock"
    }
    fn resident(&self) -> usize {
        self.q.len
    }
}
