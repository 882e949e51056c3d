//! FIFO: evict the page that came in first; a hit changes nothing.
//!
//! libCacheSim (`cache/eviction/FIFO.c`, with `cache_get_base` of
//! `cache/cache.c`): a miss on a full cache evicts the queue's tail, then
//! inserts the new page at the head; the number of misses is therefore the
//! textbook FIFO's.

use super::list::{Arena, List};
use super::{page_map, CachePolicy, PageMap};

pub struct Fifo {
    frames: usize,
    arena: Arena,
    q: List,
    map: PageMap<u32>,
}

impl Fifo {
    pub fn new(frames: usize) -> Fifo {
        Fifo {
            frames,
            arena: Arena::with_capacity(frames),
            q: List::new(),
            map: page_map(frames),
        }
    }
}

impl CachePolicy for Fifo {
    #[inline]
    fn access(&mut self, page: u64) -> bool {
        if self.map.contains_key(&page) {
            return true;
        }
        if self.q.len >= self.frames {
            if let Some(t) = self.arena.pop_tail(&mut self.q) {
                self.map.remove(&self.arena.node(t).page);
                self.arena.release(t);
            }
        }
        let i = self.arena.alloc(page, 0);
        self.arena.push_head(&mut self.q, i);
        self.map.insert(page, i);
        false
    }
    fn name(&self) -> &'static str {
        "fifo"
    }
    fn resident(&self) -> usize {
        self.q.len
    }
}
