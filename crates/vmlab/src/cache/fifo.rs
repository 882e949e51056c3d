//! FIFO: evict the page that came in first; a hit changes nothing.
//!
//! libCacheSim (`cache/eviction/FIFO.c`, with `cache_get_base` of
//! `cache/cache.c`): a miss on a full cache evicts the queue's tail, then
//! inserts the new page at the head; the number of misses is therefore the
//! textbook FIFO's.

use super::list::PageQueue;
use super::CachePolicy;

pub struct Fifo {
    frames: usize,
    pq: PageQueue,
}

impl Fifo {
    pub fn new(frames: usize) -> Fifo {
        Fifo {
            frames,
            pq: PageQueue::new(frames),
        }
    }
}

impl CachePolicy for Fifo {
    #[inline]
    fn access(&mut self, page: u64) -> bool {
        self.pq.access(page, self.frames, false)
    }
    fn name(&self) -> &'static str {
        "fifo"
    }
    fn resident(&self) -> usize {
        self.pq.q.len
    }
    #[inline]
    fn prefetch(&self, page: u64) {
        self.pq.map.prefetch(page);
    }
}
