//! The VMA map of an address space behind a small trait, one file per policy.
//!
//! Owns: the set of VMAs, sorted and non-overlapping. It knows nothing of
//! page tables; `mm`'s syscalls keep the two in step.
//! May call: `mm::vma`.

mod btree;

pub use btree::BTreeVmaMap;

use crate::mm::vma::Vma;
use alloc::vec::Vec;

/// An ordered set of non-overlapping VMAs keyed by start address.
/// Linux: the maple tree (formerly the rbtree + list); FreeBSD: `vm_map`.
pub trait VmaMap {
    /// The first VMA with `end > addr` (it may start above `addr`). Linux: `find_vma`.
    fn find(&self, addr: u64) -> Option<&Vma>;
    /// Mutable form of `find`. The caller must not change `start`/`end` so that
    /// the order or disjointness breaks.
    fn find_mut(&mut self, addr: u64) -> Option<&mut Vma>;
    /// The last VMA with `start < addr`. Linux: `find_vma_prev`'s `prev`.
    fn prev(&self, addr: u64) -> Option<&Vma>;
    /// Insert; the caller guarantees it overlaps nothing.
    fn insert(&mut self, vma: Vma);
    /// Remove the VMA that starts at `start`.
    fn remove(&mut self, start: u64) -> Option<Vma>;
    /// Start addresses of the VMAs that intersect `[start, end)`, in order.
    fn starts_in(&self, start: u64, end: u64) -> Vec<u64>;
    /// Every VMA in address order.
    fn for_each(&self, f: &mut dyn FnMut(&Vma));
    /// Number of VMAs (Linux `mm->map_count`).
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Config values of `vma_map`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum VmaMapPolicy {
    /// A balanced B-tree (`alloc::collections::BTreeMap`): O(log n) lookups.
    Btree,
}

/// The VMA map chosen in config (static dispatch).
pub enum VmaTree {
    Btree(BTreeVmaMap),
}

macro_rules! dispatch {
    ($self:expr, $m:ident => $e:expr) => {
        match $self {
            VmaTree::Btree($m) => $e,
        }
    };
}

impl VmaTree {
    pub fn new(policy: VmaMapPolicy) -> VmaTree {
        match policy {
            VmaMapPolicy::Btree => VmaTree::Btree(BTreeVmaMap::default()),
        }
    }
}

impl VmaMap for VmaTree {
    #[inline]
    fn find(&self, addr: u64) -> Option<&Vma> {
        dispatch!(self, m => m.find(addr))
    }
    #[inline]
    fn find_mut(&mut self, addr: u64) -> Option<&mut Vma> {
        dispatch!(self, m => m.find_mut(addr))
    }
    fn prev(&self, addr: u64) -> Option<&Vma> {
        dispatch!(self, m => m.prev(addr))
    }
    fn insert(&mut self, vma: Vma) {
        dispatch!(self, m => m.insert(vma))
    }
    fn remove(&mut self, start: u64) -> Option<Vma> {
        dispatch!(self, m => m.remove(start))
    }
    fn starts_in(&self, start: u64, end: u64) -> Vec<u64> {
        dispatch!(self, m => m.starts_in(start, end))
    }
    fn for_each(&self, f: &mut dyn FnMut(&Vma)) {
        dispatch!(self, m => m.for_each(f))
    }
    fn len(&self) -> usize {
        dispatch!(self, m => m.len())
    }
}
