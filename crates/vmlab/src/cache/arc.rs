//! ARC, Adaptive Replacement Cache (Megiddo & Modha, FAST 2003): two LRU
//! lists of resident pages, T1 (seen once recently) and T2 (seen at least
//! twice), with ghost lists B1 and B2 of the pages each recently evicted;
//! a hit in a ghost list moves the target size `p` of T1 towards the list
//! that would have hit.
//!
//! The exact behaviour followed is libCacheSim's (`cache/eviction/ARC.c`),
//! which differs from the paper's pseudo-code in when it trims:
//! - `p` is a float (`double`): a ghost hit in B1 adds
//!   `max(|B2| / |B1|, 1)` (a float division), capped at c; in B2 it
//!   subtracts `max(|B1| / |B2|, 1)`, floored at 0. REPLACE compares the
//!   integer |T1| with that float: evict from T1 if `|T1| > 0 && (|T1| > p
//!   || (|T1| == p && the hit was in B2))` or if T2 is empty.
//! - A ghost hit removes the ghost entry first (B1/B2 shrink), then, only
//!   if the cache is full, REPLACE runs; the page goes to T2's head.
//! - A miss in all four lists evicts only if the cache is full (the paper
//!   trims the ghosts on every miss): if `|T1| + |B1| + 1 > c` then, with B1
//!   non-empty, B1's tail is dropped and REPLACE runs, else T1's tail is
//!   dropped without a ghost; otherwise, if `|T1|+|B1|+|T2|+|B2| >= 2c`,
//!   B2's tail (if any) is dropped, and REPLACE runs. The page goes to T1's
//!   head.
//! - A hit in T1 moves the page to T2's head; in T2, to T2's head.

use super::list::{Arena, List};
use super::slot_map::SlotMap;
use super::CachePolicy;

const T1: u8 = 0;
const T2: u8 = 1;
const B1: u8 = 2;
const B2: u8 = 3;

pub struct Arc {
    c: usize,
    p: f64,
    arena: Arena,
    /// T1, T2, B1, B2 by their list number.
    lists: [List; 4],
    map: SlotMap,
}

impl Arc {
    pub fn new(frames: usize) -> Arc {
        Arc {
            c: frames,
            p: 0.0,
            arena: Arena::with_capacity(2 * frames),
            lists: [List::new(); 4],
            map: SlotMap::with_capacity(2 * frames),
        }
    }

    fn len(&self, l: u8) -> usize {
        self.lists[l as usize].len
    }

    /// Move the tail of resident list `from` to the head of ghost list `to`.
    fn demote(&mut self, from: u8, to: u8) {
        let [t1, t2, b1, b2] = &mut self.lists;
        let (src, dst) = match from {
            T1 => (t1, b1),
            _ => (t2, b2),
        };
        if let Some(t) = self.arena.pop_tail(src) {
            self.arena.node_mut(t).list = to;
            self.arena.push_head(dst, t);
        }
    }

    /// Drop the tail of list `l` altogether.
    fn drop_tail(&mut self, l: u8) {
        if let Some(t) = self.arena.pop_tail(&mut self.lists[l as usize]) {
            self.map.remove(self.arena.node(t).page, self.arena.page_of());
            self.arena.release(t);
        }
    }

    /// The paper's REPLACE, with libCacheSim's float comparison.
    fn replace(&mut self, hit_in_b2: bool) {
        let t1 = self.len(T1);
        let from_t1 = (t1 > 0 && ((t1 as f64) > self.p || ((t1 as f64) == self.p && hit_in_b2))) || self.len(T2) == 0;
        if from_t1 {
            self.demote(T1, B1);
        } else {
            self.demote(T2, B2);
        }
    }
}

impl CachePolicy for Arc {
    #[inline]
    fn access(&mut self, page: u64) -> bool {
        // Which ghost list the page was in, if it was in one.
        let mut ghost = None;
        if let Some(i) = self.map.get(page, self.arena.page_of()) {
            match self.arena.node(i).list {
                T1 => {
                    self.arena.unlink(&mut self.lists[T1 as usize], i);
                    self.arena.node_mut(i).list = T2;
                    self.arena.push_head(&mut self.lists[T2 as usize], i);
                    return true;
                }
                T2 => {
                    self.arena.move_head(&mut self.lists[T2 as usize], i);
                    return true;
                }
                l => {
                    let (b1, b2) = (self.len(B1) as f64, self.len(B2) as f64);
                    if l == B1 {
                        self.p = (self.p + (b2 / b1).max(1.0)).min(self.c as f64);
                    } else {
                        self.p = (self.p - (b1 / b2).max(1.0)).max(0.0);
                    }
                    self.arena.unlink(&mut self.lists[l as usize], i);
                    self.map.remove(page, self.arena.page_of());
                    self.arena.release(i);
                    ghost = Some(l);
                }
            }
        }
        if self.len(T1) + self.len(T2) >= self.c {
            match ghost {
                Some(l) => self.replace(l == B2),
                None => {
                    if self.len(T1) + self.len(B1) + 1 > self.c {
                        if self.len(B1) > 0 {
                            self.drop_tail(B1);
                            self.replace(false);
                        } else {
                            self.drop_tail(T1);
                        }
                    } else {
                        if self.len(T1) + self.len(B1) + self.len(T2) + self.len(B2) >= 2 * self.c && self.len(B2) > 0 {
                            self.drop_tail(B2);
                        }
                        self.replace(false);
                    }
                }
            }
        }
        let to = if ghost.is_some() { T2 } else { T1 };
        let i = self.arena.alloc(page, to);
        self.arena.push_head(&mut self.lists[to as usize], i);
        self.map.insert(page, i, self.arena.page_of());
        false
    }
    fn name(&self) -> &'static str {
        "arc"
    }
    fn resident(&self) -> usize {
        self.len(T1) + self.len(T2)
    }
}
