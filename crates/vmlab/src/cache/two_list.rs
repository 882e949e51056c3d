//! Two lists, as Linux reclaims without MGLRU (`mm/vmscan.c`,
//! `mm/swap.c`), as a pure cache policy: resident pages sit on an inactive
//! or an active LRU list, each page with a referenced bit.
//!
//! - A new page goes to the head of the inactive list, unreferenced.
//! - A hit sets the referenced bit (the accessed bit / `mark_page_accessed`
//!   first step). Nothing moves at hit time.
//! - To free a frame, the scan takes the inactive list's tail: referenced →
//!   clear the bit and promote it to the active list's head
//!   (`folio_check_references` → activate); unreferenced → evict.
//! - The active list is kept at most half the frames
//!   (`inactive_is_low` with an inactive ratio of 1): before each scan step
//!   the active list's tail pages beyond that go to the inactive list's
//!   head with their bit cleared (`shrink_active_list` deactivates
//!   referenced non-executable pages too).
//!
//! Simplifications: no separate anon/file lists, no swappiness, no
//! refault (workingset) activation, one page per scan step.

use super::list::{Arena, List};
use super::slot_map::SlotMap;
use super::CachePolicy;

const INACTIVE: u8 = 0;
const ACTIVE: u8 = 1;
const REF: u8 = 1;

pub struct TwoList {
    frames: usize,
    arena: Arena,
    inactive: List,
    active: List,
    map: SlotMap,
}

impl TwoList {
    pub fn new(frames: usize) -> TwoList {
        TwoList {
            frames,
            arena: Arena::with_capacity(frames),
            inactive: List::new(),
            active: List::new(),
            map: SlotMap::with_capacity(frames),
        }
    }

    fn balance(&mut self) {
        let max_active = self.frames / 2;
        while self.active.len > max_active {
            let Some(t) = self.arena.pop_tail(&mut self.active) else {
                return;
            };
            let n = self.arena.node_mut(t);
            n.flags &= !REF;
            n.list = INACTIVE;
            self.arena.push_head(&mut self.inactive, t);
        }
    }

    fn evict(&mut self) {
        // Each promotion clears a bit; a page demoted back comes back
        // unreferenced: at most every resident page is looked at twice.
        loop {
            self.balance();
            let Some(t) = self.arena.pop_tail(&mut self.inactive) else {
                // All active (frames == 1): the balance left none inactive.
                if let Some(t) = self.arena.pop_tail(&mut self.active) {
                    self.map.remove(self.arena.node(t).page, self.arena.page_of());
                    self.arena.release(t);
                }
                return;
            };
            let n = self.arena.node_mut(t);
            if n.flags & REF != 0 {
                n.flags &= !REF;
                n.list = ACTIVE;
                self.arena.push_head(&mut self.active, t);
            } else {
                self.map.remove(self.arena.node(t).page, self.arena.page_of());
                self.arena.release(t);
                return;
            }
        }
    }
}

impl CachePolicy for TwoList {
    fn access(&mut self, page: u64) -> bool {
        if let Some(i) = self.map.get(page, self.arena.page_of()) {
            self.arena.node_mut(i).flags |= REF;
            return true;
        }
        if self.inactive.len + self.active.len >= self.frames {
            self.evict();
        }
        let i = self.arena.alloc(page, INACTIVE);
        self.arena.push_head(&mut self.inactive, i);
        self.map.insert(page, i, self.arena.page_of());
        false
    }
    fn name(&self) -> &'static str {
        "two_list"
    }
    fn resident(&self) -> usize {
        self.inactive.len + self.active.len
    }
}
