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
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Arena {
    pub nodes: Vec<Node>,
    free: Vec<u32>,
}

impl Arena {
    pub fn with_capacity(n: usize) -> Arena {
        Arena {
            nodes: Vec::with_capacity(n),
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
