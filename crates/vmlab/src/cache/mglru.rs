//! A simplified multi-generational LRU (Linux's MGLRU, `mm/vmscan.c`
//! `lru_gen_*`, Zhao 2022), as a pure cache policy: resident pages are in
//! generations numbered by sequence, `min_seq` (oldest) to `max_seq`
//! (youngest), at most [`MAX_GENS`] of them.
//!
//! - A new page joins the youngest generation, unreferenced.
//! - A hit sets the page's referenced bit (the accessed bit a later page
//!   table walk would find). Nothing moves at hit time.
//! - To free a frame, eviction takes the oldest generation's tail:
//!   referenced → clear the bit and move it to the youngest generation
//!   (what aging's walk does with an accessed page: `folio_inc_gen` /
//!   `lru_gen_look_around`); unreferenced → evict.
//! - When the oldest generation is empty it is retired (`min_seq + 1`);
//!   when fewer than [`MIN_GENS`] generations would be left, aging first
//!   opens a new youngest generation (`max_seq + 1`), so pages that came
//!   in or were promoted before it start to age.
//!
//! Simplifications against Linux: one type (no anon/file split), no
//! tiers or refault-distance feedback (the PID controller), no bloom
//! filters or page-table walk — the bit is looked at only when a page
//! reaches the oldest generation —, one page per eviction step.

use super::list::{Arena, List};
use super::slot_map::SlotMap;
use super::CachePolicy;

/// Generations at most (Linux's MAX_NR_GENS).
pub const MAX_GENS: u64 = 4;
/// Generations at least (Linux's MIN_NR_GENS).
pub const MIN_GENS: u64 = 2;

const REF: u8 = 1;

pub struct Mglru {
    frames: usize,
    resident: usize,
    min_seq: u64,
    max_seq: u64,
    arena: Arena,
    gens: [List; MAX_GENS as usize],
    map: SlotMap,
}

impl Mglru {
    pub fn new(frames: usize) -> Mglru {
        Mglru {
            frames,
            resident: 0,
            min_seq: 0,
            max_seq: MIN_GENS - 1,
            arena: Arena::with_capacity(frames),
            gens: [List::new(); MAX_GENS as usize],
            map: SlotMap::with_capacity(frames),
        }
    }

    /// Open a new youngest generation if there is room for one.
    fn age(&mut self) {
        if self.max_seq - self.min_seq + 1 < MAX_GENS {
            self.max_seq += 1;
        }
    }

    fn evict(&mut self) {
        if self.resident == 0 {
            // Nothing to evict (a cache of no frames: `build` refuses one).
            return;
        }
        // Each promotion clears a bit, so after every resident page has
        // been looked at once the oldest generation's tail is evictable.
        loop {
            let oldest = self.min_seq;
            let Some(t) = self.arena.pop_tail(&mut self.gens[(oldest % MAX_GENS) as usize]) else {
                // Oldest generation empty: retire it, aging first if that
                // would leave fewer than MIN_GENS.
                if self.max_seq - self.min_seq < MIN_GENS {
                    self.age();
                }
                if self.max_seq > self.min_seq {
                    self.min_seq += 1;
                } else if self.resident == 0 {
                    return;
                }
                continue;
            };
            let n = self.arena.node_mut(t);
            if n.flags & REF != 0 {
                n.flags &= !REF;
                let young = self.max_seq;
                let l = &mut self.gens[(young % MAX_GENS) as usize];
                self.arena.push_head(l, t);
            } else {
                self.map.remove(self.arena.node(t).page, self.arena.page_of());
                self.arena.release(t);
                self.resident -= 1;
                return;
            }
        }
    }
}

impl CachePolicy for Mglru {
    fn access(&mut self, page: u64) -> bool {
        if let Some(i) = self.map.get(page, self.arena.page_of()) {
            self.arena.node_mut(i).flags |= REF;
            return true;
        }
        if self.resident >= self.frames {
            self.evict();
        }
        let young = self.max_seq;
        let i = self.arena.alloc(page, 0);
        let l = &mut self.gens[(young % MAX_GENS) as usize];
        self.arena.push_head(l, i);
        self.map.insert(page, i, self.arena.page_of());
        self.resident += 1;
        false
    }
    fn name(&self) -> &'static str {
        "mglru"
    }
    fn resident(&self) -> usize {
        self.resident
    }
}
