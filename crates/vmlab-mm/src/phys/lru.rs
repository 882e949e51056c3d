//! LRU lists of pageable frames (anonymous and page-cache pages), linked
//! through their descriptors (`FrameDesc::lru_prev`/`lru_next`: the frame
//! number plus one, 0 for none). The reclaim design says how many lists it keeps and
//! what each means (`mm/reclaim/`: two_list's inactive and active lists,
//! mglru's generations); `clock` and `vma_scan` keep none. A frame is on at
//! most one list, `PG_LRU` set and the list's number in the flags
//! (`LRU_LIST_SHIFT`). Linux: `lruvec` with `lru_lock`.
//!
//! Lifetime: a listed frame is alive, or its last reference has just gone
//! and the free path is about to unlist it (`PhysMem::free_frames` unlists
//! before the frame goes back to its zone). So reclaim, under the list
//! lock, takes a reference with `FrameDesc::try_get` before it may use a
//! frame it found (Linux `folio_isolate_lru`), and skips one whose count
//! reached zero.
//!
//! Lock order: the list lock is taken with no zone lock held, and nothing
//! but descriptor atomics is touched under it.

use super::desc::{FrameDesc, LRU_LIST_MASK, LRU_LIST_SHIFT, PG_LRU};
use crate::addr::Pfn;
use crate::sync::{AtomicU64, Mutex, Ordering};
// Not loom's: a shared pointer to the design's state, no synchronisation
// of its own to model (and loom's cannot hold a trait object).
use alloc::sync::Arc;
use alloc::vec::Vec;

/// The most lists a design may keep.
pub const MAX_LRU_LISTS: usize = (LRU_LIST_MASK + 1) as usize;

#[derive(Copy, Clone, Default)]
struct Head {
    /// Most recently added (+ 1; 0 empty).
    head: u32,
    /// Least recently added (+ 1; 0 empty).
    tail: u32,
    len: usize,
}

/// How a page enters memory (what `Lru::place` is told).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// For a fault (anonymous zero-fill, a file page a fault read, a
    /// swap-in). Linux: `lru_gen_in_fault()`.
    Fault,
    /// Any other way: a page-cache page `read`/`write` brought in, a copy
    /// made by an eager fork.
    Other,
}

/// The lists `Lru::place` puts pages on; the design sets them, and moves
/// them as its lists change meaning (mglru: as generations are born and
/// retired).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct EntryLists {
    /// A first use or a refault too far back, by `Entry::Fault`.
    pub fault: usize,
    /// The same by `Entry::Other`.
    pub other: usize,
    /// A refault whose refault distance says it belongs to the working set.
    pub refault: usize,
}

/// What a shadow means, for a design that gives it its own meaning
/// instead of the refault distance (`clock_pro`'s test periods). Called
/// under the list lock: an implementation takes no lock but its own
/// leaf locks.
pub trait Workingset: Send + Sync {
    /// The shadow to leave where `pfn` is being evicted (no side effect:
    /// the eviction may still fail).
    fn shadow(&self, pfn: Pfn) -> u64;
    /// A page enters memory, `shadow` what its eviction left (`None`: a
    /// first use), `listed` the pages on each list now: whether it goes to
    /// the refault list (a refault the design counts as the working set,
    /// or whatever else the design puts there first).
    fn admit(&self, shadow: Option<u64>, listed: &[usize]) -> bool;
    /// `pfn` entered memory and was put at the head of a list.
    fn placed(&self, pfn: Pfn);
    /// The eviction `shadow` was made for succeeded (by reclaim or
    /// MADV_PAGEOUT alike): it stands where the page was.
    fn left(&self, shadow: u64);
}

struct Lists {
    heads: [Head; MAX_LRU_LISTS],
    entry: EntryLists,
    /// The design's meaning of shadows, if it has its own.
    workingset: Option<Arc<dyn Workingset>>,
}

/// The lists of one machine.
pub struct Lru {
    lists: usize,
    /// The lists, and where pages entering memory go (read under the same
    /// lock as the insertion, so that a design retiring a list with
    /// `set_entry_lists_if_empty` never gets a page on it afterwards).
    heads: Mutex<Lists>,
    /// Pages evicted so far: a shadow left where a page was evicted holds
    /// this count then (Linux `lruvec->nonresident_age`), and its refault
    /// distance is the evictions since.
    evictions: AtomicU64,
}

/// What `Lru::place` decided for a page entering memory.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Placed {
    /// No shadow: a first use.
    New,
    /// A refault (a shadow was left), too far back to count as the working set.
    Refault,
    /// A refault within the working set: put on the refault list
    /// (Linux `workingset_activation`).
    Activated,
}

fn link(pfn: Pfn) -> u32 {
    pfn.0 as u32 + 1
}

fn unlink_of(v: u32) -> Option<Pfn> {
    (v != 0).then(|| Pfn(v as usize - 1))
}

impl Lru {
    /// `lists` lists (0: the design keeps none, and every call is a no-op).
    pub fn new(lists: usize) -> Lru {
        Lru {
            lists: lists.min(MAX_LRU_LISTS),
            heads: Mutex::new(Lists {
                heads: [Head::default(); MAX_LRU_LISTS],
                entry: EntryLists {
                    fault: 0,
                    other: 0,
                    refault: lists.saturating_sub(1).min(1),
                },
                workingset: None,
            }),
            evictions: AtomicU64::new(0),
        }
    }

    /// Note one eviction of `pfn`; returns the shadow to leave where the
    /// page was: the eviction count (Linux `workingset_eviction`), or what
    /// the design's `Workingset` says.
    pub fn evicted(&self, pfn: Pfn) -> u64 {
        let n = self.evictions.fetch_add(1, Ordering::Relaxed) + 1;
        match &self.heads.lock().workingset {
            Some(w) => w.shadow(pfn),
            None => n,
        }
    }

    /// The eviction `evicted` gave `shadow` for succeeded: the page is
    /// gone from memory, its shadow left in its cache. Linux: the shadow
    /// `__remove_mapping` stores.
    pub fn shadow_left(&self, shadow: u64) {
        if self.lists == 0 {
            return;
        }
        if let Some(w) = &self.heads.lock().workingset {
            w.left(shadow);
        }
    }

    /// Evictions so far.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Let `w` say what shadows mean from now on (set by the design before
    /// any page is evicted).
    pub fn set_workingset(&self, w: Arc<dyn Workingset>) {
        self.heads.lock().workingset = Some(w);
    }

    /// List `pfn` (on no list) as a page entering memory by `entry`,
    /// `shadow` what its eviction left (if it was evicted before). By
    /// default a refault whose distance (evictions since) is at most the
    /// pages listed now would have stayed had memory held them all: it
    /// goes to the refault list (Linux `workingset_refault`, the distance
    /// against the LRU sizes); a design's `Workingset` decides instead.
    pub fn place(&self, descs: &[FrameDesc], pfn: Pfn, shadow: Option<u64>, entry: Entry) -> Placed {
        if self.lists == 0 {
            return match shadow {
                None => Placed::New,
                Some(_) => Placed::Refault,
            };
        }
        let mut h = self.heads.lock();
        let (placed, refault_list) = match &h.workingset {
            Some(w) => {
                let lens: [usize; MAX_LRU_LISTS] = core::array::from_fn(|i| h.heads[i].len);
                let admit = w.admit(shadow, &lens[..self.lists]);
                let placed = match (shadow, admit) {
                    (None, _) => Placed::New,
                    (Some(_), true) => Placed::Activated,
                    (Some(_), false) => Placed::Refault,
                };
                (placed, admit)
            }
            None => {
                let placed = match shadow {
                    None => Placed::New,
                    Some(s) => {
                        let distance = self.evictions().saturating_sub(s);
                        let listed: usize = h.heads[..self.lists].iter().map(|x| x.len).sum();
                        if distance <= listed as u64 {
                            Placed::Activated
                        } else {
                            Placed::Refault
                        }
                    }
                };
                (placed, placed == Placed::Activated)
            }
        };
        let e = h.entry;
        let list = match (refault_list, entry) {
            (true, _) => e.refault,
            (false, Entry::Fault) => e.fault,
            (false, Entry::Other) => e.other,
        };
        if list < self.lists && descs[pfn.0].flags.load(Ordering::Acquire) & PG_LRU == 0 {
            Self::push_head(&mut h.heads[list], descs, pfn, list);
            if let Some(w) = &h.workingset {
                w.placed(pfn);
            }
        }
        placed
    }

    /// Where `place` puts pages from now on.
    pub fn set_entry_lists(&self, e: EntryLists) {
        self.heads.lock().entry = e;
    }

    /// Where `place` puts pages from now on, if `list` is empty (then no
    /// page reaches it through `place` any more unless `e` names it);
    /// returns whether it was.
    pub fn set_entry_lists_if_empty(&self, list: usize, e: EntryLists) -> bool {
        let mut h = self.heads.lock();
        if h.heads.get(list).is_some_and(|x| x.len != 0) {
            return false;
        }
        h.entry = e;
        true
    }

    /// Where `place` puts pages now.
    pub fn entry_lists(&self) -> EntryLists {
        self.heads.lock().entry
    }

    /// Lists kept.
    #[inline]
    pub fn lists(&self) -> usize {
        self.lists
    }

    fn push_head(h: &mut Head, descs: &[FrameDesc], pfn: Pfn, list: usize) {
        let d = &descs[pfn.0];
        d.lru_prev.store(0, Ordering::Relaxed);
        d.lru_next.store(h.head, Ordering::Relaxed);
        if let Some(old) = unlink_of(h.head) {
            descs[old.0].lru_prev.store(link(pfn), Ordering::Relaxed);
        } else {
            h.tail = link(pfn);
        }
        h.head = link(pfn);
        h.len += 1;
        Self::mark_listed(d, list);
    }

    /// `pfn` (on no list) at the tail of `list`.
    fn push_tail(h: &mut Head, descs: &[FrameDesc], pfn: Pfn, list: usize) {
        let d = &descs[pfn.0];
        d.lru_next.store(0, Ordering::Relaxed);
        d.lru_prev.store(h.tail, Ordering::Relaxed);
        if let Some(old) = unlink_of(h.tail) {
            descs[old.0].lru_next.store(link(pfn), Ordering::Relaxed);
        } else {
            h.head = link(pfn);
        }
        h.tail = link(pfn);
        h.len += 1;
        Self::mark_listed(d, list);
    }

    /// `PG_LRU` and the list's number in the flags.
    fn mark_listed(d: &FrameDesc, list: usize) {
        d.flags.fetch_and(!(LRU_LIST_MASK << LRU_LIST_SHIFT), Ordering::AcqRel);
        d.flags
            .fetch_or(PG_LRU | ((list as u32) << LRU_LIST_SHIFT), Ordering::AcqRel);
    }

    fn remove(l: &mut Lists, descs: &[FrameDesc], pfn: Pfn) -> Option<usize> {
        let d = &descs[pfn.0];
        let f = d.flags.load(Ordering::Acquire);
        if f & PG_LRU == 0 {
            return None;
        }
        let list = ((f >> LRU_LIST_SHIFT) & LRU_LIST_MASK) as usize;
        let h = &mut l.heads[list];
        let prev = d.lru_prev.load(Ordering::Relaxed);
        let next = d.lru_next.load(Ordering::Relaxed);
        match unlink_of(prev) {
            Some(p) => descs[p.0].lru_next.store(next, Ordering::Relaxed),
            None => h.head = next,
        }
        match unlink_of(next) {
            Some(n) => descs[n.0].lru_prev.store(prev, Ordering::Relaxed),
            None => h.tail = prev,
        }
        h.len -= 1;
        d.lru_prev.store(0, Ordering::Relaxed);
        d.lru_next.store(0, Ordering::Relaxed);
        d.flags.fetch_and(!PG_LRU, Ordering::AcqRel);
        Some(list)
    }

    /// Put `pfn` (on no list) at the head of `list`. Linux: `folio_add_lru`.
    pub fn add(&self, descs: &[FrameDesc], pfn: Pfn, list: usize) {
        self.insert(descs, pfn, list, false);
    }

    /// Put `pfn` (on no list) at the tail of `list` (the end reclaim takes
    /// from next).
    pub fn add_tail(&self, descs: &[FrameDesc], pfn: Pfn, list: usize) {
        self.insert(descs, pfn, list, true);
    }

    /// `add` or `add_tail`: nothing if `pfn` is listed already (someone
    /// else put it back) or the design keeps no such list.
    fn insert(&self, descs: &[FrameDesc], pfn: Pfn, list: usize, tail: bool) {
        if list >= self.lists {
            return;
        }
        let mut h = self.heads.lock();
        if descs[pfn.0].flags.load(Ordering::Acquire) & PG_LRU != 0 {
            return;
        }
        if tail {
            Self::push_tail(&mut h.heads[list], descs, pfn, list);
        } else {
            Self::push_head(&mut h.heads[list], descs, pfn, list);
        }
    }

    /// Take `pfn` off its list, if it is on one; returns the list.
    pub fn del(&self, descs: &[FrameDesc], pfn: Pfn) -> Option<usize> {
        if self.lists == 0 || descs[pfn.0].flags.load(Ordering::Acquire) & PG_LRU == 0 {
            return None;
        }
        Self::remove(&mut self.heads.lock(), descs, pfn)
    }

    /// Move `pfn`, if it is on a list, to the head of `list`.
    /// Linux: `folio_activate` / `lru_note_cost`'s rotations.
    pub fn move_to(&self, descs: &[FrameDesc], pfn: Pfn, list: usize) -> bool {
        self.relist(descs, pfn, list, false)
    }

    /// Move `pfn`, if it is on a list, to the tail of `list` (the end
    /// reclaim takes from next). Linux: `lruvec_add_folio_tail`.
    pub fn move_to_tail(&self, descs: &[FrameDesc], pfn: Pfn, list: usize) -> bool {
        self.relist(descs, pfn, list, true)
    }

    /// `move_to` (head) or `move_to_tail`.
    fn relist(&self, descs: &[FrameDesc], pfn: Pfn, list: usize, tail: bool) -> bool {
        if list >= self.lists {
            return false;
        }
        let mut h = self.heads.lock();
        if Self::remove(&mut h, descs, pfn).is_none() {
            return false;
        }
        if tail {
            Self::push_tail(&mut h.heads[list], descs, pfn, list);
        } else {
            Self::push_head(&mut h.heads[list], descs, pfn, list);
        }
        true
    }

    /// The list `pfn` is on, if any.
    pub fn list_of(&self, descs: &[FrameDesc], pfn: Pfn) -> Option<usize> {
        let f = descs[pfn.0].flags.load(Ordering::Acquire);
        (self.lists > 0 && f & PG_LRU != 0).then_some(((f >> LRU_LIST_SHIFT) & LRU_LIST_MASK) as usize)
    }

    /// Take up to `n` frames from the tail of `list` off it, each with a
    /// reference taken for the caller (frames whose count reached zero are
    /// left for the free path). Linux: `isolate_lru_folios`.
    pub fn isolate_tail(&self, descs: &[FrameDesc], list: usize, n: usize) -> Vec<Pfn> {
        let mut out = Vec::new();
        if list >= self.lists {
            return out;
        }
        let mut h = self.heads.lock();
        let mut cur = h.heads[list].tail;
        // Every listed frame is looked at at most once per call.
        let mut budget = h.heads[list].len;
        while out.len() < n && budget > 0 {
            budget -= 1;
            let Some(pfn) = unlink_of(cur) else { break };
            let prev = descs[pfn.0].lru_prev.load(Ordering::Relaxed);
            if descs[pfn.0].try_get() {
                Self::remove(&mut h, descs, pfn);
                out.push(pfn);
            }
            cur = prev;
        }
        out
    }

    /// Take `pfn` off its list, with a reference for the caller, if it is
    /// on one and alive; `None` otherwise (a frame being allocated or freed
    /// is on no list, so a design that finds frames by number — `clock` —
    /// never holds one mid-initialisation). Returns the list it was on.
    pub fn isolate(&self, descs: &[FrameDesc], pfn: Pfn) -> Option<usize> {
        if self.lists == 0 || descs[pfn.0].flags.load(Ordering::Acquire) & PG_LRU == 0 {
            return None;
        }
        let mut h = self.heads.lock();
        if descs[pfn.0].flags.load(Ordering::Acquire) & PG_LRU == 0 || !descs[pfn.0].try_get() {
            return None;
        }
        Self::remove(&mut h, descs, pfn)
    }

    /// Frames on `list` now.
    pub fn len(&self, list: usize) -> usize {
        if list >= self.lists {
            return 0;
        }
        self.heads.lock().heads[list].len
    }

    /// Frames on every list.
    pub fn total(&self) -> usize {
        let h = self.heads.lock();
        h.heads[..self.lists].iter().map(|x| x.len).sum()
    }

    /// The frames of `list`, head (most recent) first (for the checker).
    pub fn frames(&self, descs: &[FrameDesc], list: usize) -> Vec<Pfn> {
        let mut out = Vec::new();
        if list >= self.lists {
            return out;
        }
        let h = self.heads.lock();
        let mut cur = h.heads[list].head;
        while let Some(p) = unlink_of(cur) {
            if out.len() > h.heads[list].len {
                break; // a broken list: the checker reports the length
            }
            out.push(p);
            cur = descs[p.0].lru_next.load(Ordering::Relaxed);
        }
        out
    }
}
