//! Where a frame's PTE pointers are kept, for the reverse maps that record
//! each mapping (`rmap = pte_chain`, `pte_pool`; `mm/rmap/` turns the
//! pointers into address spaces and addresses). A PTE pointer is the RAM
//! word index of the entry (`table pfn * 512 + slot`). Every install and
//! clear of an entry that maps a frame links or unlinks it here
//! (`mm/pte_ops.rs`, so none is missed).
//!
//! - `Chain` (seed 002, Rik van Riel's pte chains as first proposed): leaf
//!   tables are allocated with order 1 (`PhysMem::alloc_table`); word `i`
//!   of the second frame links entry `i` to the next PTE mapping the same
//!   frame; the frame's descriptor (`FrameDesc::rmap`) points at the first.
//!   Linking pushes at the head; unlinking walks the chain (its length is
//!   the frame's mapcount). Changed and read under the frame's
//!   `PG_RMAP_LOCK` bit.
//! - `Pool` (Mark Hemment's alternative, named in seed 002): per frame, a
//!   list of pool nodes each holding up to `POOL_SLOTS` PTE pointers, taken
//!   from one arena; the descriptor points at the first node. One lock
//!   (the arena's) covers every frame's pool.
//!
//! Lock order: the frame's `PG_RMAP_LOCK` or the pool arena lock is a leaf,
//! taken under the page-table lock or a PTE claim; nothing is taken under it.

use super::{FrameDesc, PhysMem, PG_RMAP_LOCK};
use crate::addr::{Pfn, WORDS_PER_PAGE};
use crate::sync::{Mutex, Ordering};
use alloc::vec::Vec;

/// Which PTE-pointer store the machine keeps (none for the reverse maps
/// that find mappings another way).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PteLinkKind {
    None,
    Chain,
    Pool,
}

/// PTE pointers one pool node holds.
pub const POOL_SLOTS: usize = 7;

/// One node of a frame's pool: 64 bytes, as a slab object would be.
#[derive(Copy, Clone)]
struct PoolNode {
    ptes: [u64; POOL_SLOTS],
    /// Next node of the same frame + 1; 0 ends the list.
    next: u32,
    used: u32,
}

const EMPTY_NODE: PoolNode = PoolNode {
    ptes: [0; POOL_SLOTS],
    next: 0,
    used: 0,
};

/// The arena every frame's pool nodes come from.
#[derive(Default)]
pub(crate) struct PoolArena {
    nodes: Vec<PoolNode>,
    /// Indices of free nodes.
    free: Vec<u32>,
}

/// A frame's PTE pointers and the store they live in.
pub(crate) struct PteLinks {
    pub(crate) kind: PteLinkKind,
    pool: Mutex<PoolArena>,
}

impl PteLinks {
    pub(crate) fn new(kind: PteLinkKind) -> PteLinks {
        PteLinks {
            kind,
            pool: Mutex::new(PoolArena::default()),
        }
    }
}

/// Holds a frame's `PG_RMAP_LOCK` until dropped.
struct ChainLock<'a>(&'a FrameDesc);

impl<'a> ChainLock<'a> {
    fn take(d: &'a FrameDesc) -> ChainLock<'a> {
        while d.flags.fetch_or(PG_RMAP_LOCK, Ordering::Acquire) & PG_RMAP_LOCK != 0 {
            core::hint::spin_loop();
        }
        ChainLock(d)
    }
}

impl Drop for ChainLock<'_> {
    fn drop(&mut self) {
        self.0.flags.fetch_and(!PG_RMAP_LOCK, Ordering::Release);
    }
}

impl PhysMem {
    /// Which PTE-pointer store this machine keeps.
    #[inline]
    pub fn pte_link_kind(&self) -> PteLinkKind {
        self.links.kind
    }

    /// The RAM word index of `word` if it is a word of RAM (a PTE pointer).
    #[inline]
    pub(crate) fn word_index(&self, word: &crate::sync::AtomicU64) -> Option<u64> {
        let base = self.ram().words().as_ptr() as usize;
        let at = word as *const _ as usize;
        let i = at.checked_sub(base)? / core::mem::size_of::<crate::sync::AtomicU64>();
        (i < self.ram().words().len()).then_some(i as u64)
    }

    /// Record that the entry at RAM word `pte` maps `frame`.
    pub(crate) fn link_pte(&self, frame: Pfn, pte: u64) {
        let Some(d) = self.desc(frame) else { return };
        match self.links.kind {
            PteLinkKind::None => {}
            PteLinkKind::Chain => {
                let Some(link) = self.chain_link(pte) else { return };
                let _g = ChainLock::take(d);
                link.store(d.rmap.load(Ordering::Relaxed), Ordering::Relaxed);
                d.rmap.store(pte + 1, Ordering::Relaxed);
            }
            PteLinkKind::Pool => {
                let mut a = self.links.pool.lock();
                let head = d.rmap.load(Ordering::Relaxed);
                if head != 0 {
                    let n = &mut a.nodes[head as usize - 1];
                    if (n.used as usize) < POOL_SLOTS {
                        n.ptes[n.used as usize] = pte;
                        n.used += 1;
                        return;
                    }
                }
                let mut node = EMPTY_NODE;
                node.ptes[0] = pte;
                node.used = 1;
                node.next = head as u32;
                let idx = match a.free.pop() {
                    Some(i) => {
                        a.nodes[i as usize] = node;
                        i
                    }
                    None => {
                        a.nodes.push(node);
                        a.nodes.len() as u32 - 1
                    }
                };
                d.rmap.store(idx as u64 + 1, Ordering::Relaxed);
            }
        }
    }

    /// Forget that the entry at RAM word `pte` maps `frame`.
    pub(crate) fn unlink_pte(&self, frame: Pfn, pte: u64) {
        let Some(d) = self.desc(frame) else { return };
        match self.links.kind {
            PteLinkKind::None => {}
            PteLinkKind::Chain => {
                let Some(link) = self.chain_link(pte) else { return };
                let _g = ChainLock::take(d);
                let next = link.load(Ordering::Relaxed);
                let mut cur = d.rmap.load(Ordering::Relaxed);
                if cur == pte + 1 {
                    d.rmap.store(next, Ordering::Relaxed);
                    link.store(0, Ordering::Relaxed);
                    return;
                }
                while cur != 0 {
                    let Some(l) = self.chain_link(cur - 1) else { return };
                    let after = l.load(Ordering::Relaxed);
                    if after == pte + 1 {
                        l.store(next, Ordering::Relaxed);
                        link.store(0, Ordering::Relaxed);
                        return;
                    }
                    cur = after;
                }
                debug_assert!(false, "pte_chain: entry {pte} not on frame {}'s chain", frame.0);
            }
            PteLinkKind::Pool => {
                let mut a = self.links.pool.lock();
                let head = d.rmap.load(Ordering::Relaxed) as usize;
                if head == 0 {
                    debug_assert!(false, "pte_pool: frame {} has no pool", frame.0);
                    return;
                }
                // Fill the hole from the head node's last slot, so that only
                // the head node is ever partly used.
                let Some(last) = a.nodes[head - 1].used.checked_sub(1) else {
                    return;
                };
                let filler = a.nodes[head - 1].ptes[last as usize];
                let mut at = head;
                let found = loop {
                    if at == 0 {
                        break false;
                    }
                    let n = &mut a.nodes[at - 1];
                    if let Some(i) = n.ptes[..n.used as usize].iter().position(|&p| p == pte) {
                        n.ptes[i] = filler;
                        break true;
                    }
                    at = n.next as usize;
                };
                debug_assert!(found, "pte_pool: entry {pte} not in frame {}'s pool", frame.0);
                if !found {
                    return;
                }
                let h = &mut a.nodes[head - 1];
                h.used = last;
                if last == 0 {
                    let next = h.next;
                    *h = EMPTY_NODE;
                    a.free.push(head as u32 - 1);
                    d.rmap.store(next as u64, Ordering::Relaxed);
                }
            }
        }
    }

    /// The PTE pointers recorded for `frame`, in no particular order.
    pub(crate) fn linked_ptes(&self, frame: Pfn) -> Vec<u64> {
        let mut out = Vec::new();
        let Some(d) = self.desc(frame) else { return out };
        match self.links.kind {
            PteLinkKind::None => {}
            PteLinkKind::Chain => {
                let _g = ChainLock::take(d);
                let mut cur = d.rmap.load(Ordering::Relaxed);
                while cur != 0 && out.len() <= self.ram().words().len() {
                    out.push(cur - 1);
                    cur = self.chain_link(cur - 1).map_or(0, |l| l.load(Ordering::Relaxed));
                }
            }
            PteLinkKind::Pool => {
                let a = self.links.pool.lock();
                let mut at = d.rmap.load(Ordering::Relaxed) as usize;
                while at != 0 {
                    let n = &a.nodes[at - 1];
                    out.extend_from_slice(&n.ptes[..n.used as usize]);
                    at = n.next as usize;
                }
            }
        }
        out
    }

    /// Bytes the PTE-pointer store uses now: the chain's second table
    /// pages, or the pool nodes in use, plus the descriptor word that
    /// points at the first (8 bytes per frame of RAM).
    pub fn pte_link_bytes(&self) -> u64 {
        let head_words = 8 * self.total_frames() as u64;
        match self.links.kind {
            PteLinkKind::None => 0,
            PteLinkKind::Chain => head_words + self.page_table_pages() as u64 * crate::addr::PAGE_SIZE,
            PteLinkKind::Pool => {
                let a = self.links.pool.lock();
                head_words + ((a.nodes.len() - a.free.len()) * core::mem::size_of::<PoolNode>()) as u64
            }
        }
    }

    /// The chain link word of the entry at RAM word `pte`: the same slot of
    /// its table's second frame.
    #[inline]
    fn chain_link(&self, pte: u64) -> Option<&crate::sync::AtomicU64> {
        self.ram().word(pte as usize + WORDS_PER_PAGE)
    }
}
