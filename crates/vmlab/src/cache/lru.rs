//! LRU: evict the page referenced least recently.
//!
//! libCacheSim (`cache/eviction/LRU.c`): a hit moves the page to the head
//! of the queue; a miss on a full cache evicts the tail, then inserts at
//! the head. O(1): one map lookup and a few link updates per reference.

use super::list::{Arena, List};
use super::{page_map, CachePolicy, PageMap};

pub struct Lru {
    frames: usize,
    arena: Arena,
    q: List,
    map: PageMap<u32>,
}

impl Lru {
    pub fn new(frames: usize) -> Lru {
        Lru {
            frames,
            arena: Arena::with_capacity(frames),
            q: List::new(),
            map: page_map(frames),
        }
    }
}

impl CachePolicy for Lru {
    #[inline]
    fn access(&mut self, page: u64) -> bool {
        if let Some(&i) = self.map.get(&page) {
            self.arena.move_head(&mut self.q, i);
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
        "lru"
    }
    fn resident(&self) -> usize {
        self.q.len
    }
}
