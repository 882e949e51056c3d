//! Intrusive doubly linked lists whose nodes live in one arena `Vec`,
//! linked by u32 slot numbers: O(1) push, unlink and move without an
//! allocation per page, and several lists (a policy's T1/T2/B1/B2, its
//! generations) sharing one arena. Head is the newest end (MRU), tail the
//! oldest (LRU), as libCacheSim's `q_head`/`q_tail`.

/// The null link.
pub(crate) const NIL: u32 = u32::MAX;

#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub page: u64,
    /// Towards the head (newer).
    pub prev: u32,
    /// Towards the tail (older).
    pub next: u32,
    /// Which list of its policy the node is on.
    pub list: u8,
    /// A policy's bits (reference bit, LIR, resident, ...).
    pub flags: u8,
    /// A policy's small number (a generation, a frequency).
    pub aux: u32,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct List {
    pub head: u32,
    pub tail: u32,
    pub len: usize,
}

impl List {
    pub const fn new() -> List {
        List {
            head: NIL,
            tail: NIL,
            len: 0,
        }
    }

    /// The tail's slot, if the list is not empty.
    #[inline]
    pub fn tail_slot(&self) -> Option<u32> {
        (self.tail != NIL).then_some(self.tail)
    }
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Arena {
    pub nodes: Vec<Node>,
    free: Vec<u32>,
}

impl Arena {
    pub fn with_capacity(n: usize) -> Arena {
        Arena {
            nodes: Vec::with_capacity(n.min(super::PREALLOC_MAX)),
            free: Vec::new(),
        }
    }

    /// A fresh node for `page`, on no list.
    pub fn alloc(&mut self, page: u64, list: u8) -> u32 {
        let n = Node {
            page,
            prev: NIL,
            next: NIL,
            list,
            flags: 0,
            aux: 0,
        };
        if let Some(i) = self.free.pop() {
            self.nodes[i as usize] = n;
            i
        } else {
            self.nodes.push(n);
            (self.nodes.len() - 1) as u32
        }
    }

    /// Give slot `i` back (it must be on no list).
    pub fn release(&mut self, i: u32) {
        self.free.push(i);
    }

    #[inline]
    pub fn node(&self, i: u32) -> &Node {
        &self.nodes[i as usize]
    }

    /// A slot's page, as [`SlotMap`](super::slot_map::SlotMap) asks for
    /// it to tell apart pages with equal tags.
    #[inline]
    pub fn page_of(&self) -> impl Fn(u32) -> u64 + '_ {
        move |i| self.node(i).page
    }

    #[inline]
    pub fn node_mut(&mut self, i: u32) -> &mut Node {
        &mut self.nodes[i as usize]
    }

    /// Put `i` (on no list) at the head of `l`.
    #[inline]
    pub fn push_head(&mut self, l: &mut List, i: u32) {
        let old = l.head;
        {
            let n = self.node_mut(i);
            n.prev = NIL;
            n.next = old;
        }
        if old != NIL {
            self.node_mut(old).prev = i;
        } else {
            l.tail = i;
        }
        l.head = i;
        l.len += 1;
    }

    /// Take `i` off `l`.
    #[inline]
    pub fn unlink(&mut self, l: &mut List, i: u32) {
        let (p, n) = {
            let x = self.node(i);
            (x.prev, x.next)
        };
        if p != NIL {
            self.node_mut(p).next = n;
        } else {
            l.head = n;
        }
        if n != NIL {
            self.node_mut(n).prev = p;
        } else {
            l.tail = p;
        }
        let x = self.node_mut(i);
        x.prev = NIL;
        x.next = NIL;
        l.len -= 1;
    }

    /// Move `i` from wherever it is on `l` to the head of `l`.
    #[inline]
    pub fn move_head(&mut self, l: &mut List, i: u32) {
        if l.head != i {
            self.unlink(l, i);
            self.push_head(l, i);
        }
    }

    /// Take the tail off `l`, if any.
    #[inline]
    pub fn pop_tail(&mut self, l: &mut List) -> Option<u32> {
        let t = l.tail;
        if t == NIL {
            return None;
        }
        self.unlink(l, t);
        Some(t)
    }
}

/// One queue of resident pages with its page→slot map: what FIFO, LRU and
/// Clock are made of.
pub(crate) struct PageQueue {
    pub arena: Arena,
    pub q: List,
    pub map: super::slot_map::SlotMap,
}

impl PageQueue {
    pub fn new(frames: usize) -> PageQueue {
        PageQueue {
            arena: Arena::with_capacity(frames),
            q: List::new(),
            map: super::slot_map::SlotMap::with_capacity(frames),
        }
    }

    #[inline]
    pub fn find(&self, page: u64) -> Option<u32> {
        self.map.get(page, self.arena.page_of())
    }

    /// Drop the page at the tail.
    #[inline]
    pub fn evict_tail(&mut self) {
        if let Some(t) = self.arena.pop_tail(&mut self.q) {
            self.map.remove(self.arena.node(t).page, self.arena.page_of());
            self.arena.release(t);
            self.prefetch_tail();
        }
    }

    /// Start fetching what the next two evictions will touch: the new
    /// tail's map entry (its node was fetched by the eviction before) and
    /// the node after it. Hints only: a hit that moves either page first
    /// just wastes them.
    #[inline]
    pub fn prefetch_tail(&self) {
        if !self.map.is_large() {
            return;
        }
        if let Some(t) = self.q.tail_slot() {
            let n = self.arena.node(t);
            self.map.prefetch(n.page);
            if n.prev != NIL {
                super::slot_map::prefetch(self.arena.node(n.prev));
            }
        }
    }

    /// Start fetching `page`'s node, if its map entry says where it is
    /// (the entry should be in cache already: see [`SlotMap::prefetch`]).
    #[inline]
    pub fn prefetch_node(&self, page: u64) {
        if !self.map.is_large() {
            return;
        }
        if let Some(i) = self.map.likely(page) {
            super::slot_map::prefetch(self.arena.node(i));
        }
    }

    /// A new page at the head, with `flags`.
    #[inline]
    pub fn push_new(&mut self, page: u64, flags: u8) {
        let i = self.arena.alloc(page, 0);
        self.arena.node_mut(i).flags = flags;
        self.arena.push_head(&mut self.q, i);
        self.map.insert(page, i, self.arena.page_of());
    }

    /// A reference in a queue that evicts its tail when `frames` are full:
    /// a hit moves the page to the head if `promote` (LRU) or leaves it
    /// (FIFO). True on a hit.
    #[inline]
    pub fn access(&mut self, page: u64, frames: usize, promote: bool) -> bool {
        if let Some(i) = self.find(page) {
            if promote {
                self.arena.move_head(&mut self.q, i);
            }
            return true;
        }
        if self.q.len >= frames {
            self.evict_tail();
        }
        self.push_new(page, 0);
        false
    }
}
