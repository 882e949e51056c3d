//! LRU: evict the page referenced least recently.
//!
//! libCacheSim (`cache/eviction/LRU.c`): a hit moves the page to the head
//! of the queue; a miss on a full cache evicts the tail, then inserts at
//! the head. O(1): one map lookup and a few link updates per reference.

use super::list::PageQueue;
use super::CachePolicy;

pub struct Lru {
    frames: usize,
    pq: PageQueue,
}

impl Lru {
    pub fn new(frames: usize) -> Lru {
        Lru {
            frames,
            pq: PageQueue::new(frames),
        }
    }
}

impl CachePolicy for Lru {
    #[inline]
    fn access(&mut self, page: u64) -> bool {
        self.pq.access(page, self.frames, true)
    }
    fn name(&self) -> &'static str {
        "lru"
    }
    fn resident(&self) -> usize {
        self.pq.q.len
    }
    #[inline]
    fn prefetch(&self, page: u64) {
        self.pq.map.prefetch(page);
    }
    #[inline]
    fn prefetch_near(&self, page: u64) {
        self.pq.prefetch_node(page);
    }
}
