//! VMA map as a balanced B-tree keyed by start address (seed 001: a
//! balanced tree, not FreeBSD's O(N) list).

use super::VmaMap;
use crate::mm::vma::Vma;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

#[derive(Default)]
pub struct BTreeVmaMap {
    /// Invariant: keyed by `vma.start`; VMAs sorted and disjoint.
    tree: BTreeMap<u64, Vma>,
}

impl VmaMap for BTreeVmaMap {
    #[inline]
    fn find(&self, addr: u64) -> Option<&Vma> {
        if let Some((_, v)) = self.tree.range(..=addr).next_back() {
            if v.end > addr {
                return Some(v);
            }
        }
        self.tree
            .range(addr.saturating_add(1)..)
            .next()
            .map(|(_, v)| v)
            .filter(|v| v.start > addr)
    }

    fn find_mut(&mut self, addr: u64) -> Option<&mut Vma> {
        let key = match self.tree.range(..=addr).next_back() {
            Some((k, v)) if v.end > addr => *k,
            _ => *self.tree.range(addr.saturating_add(1)..).next()?.0,
        };
        self.tree.get_mut(&key)
    }

    fn prev(&self, addr: u64) -> Option<&Vma> {
        self.tree.range(..addr).next_back().map(|(_, v)| v)
    }

    fn insert(&mut self, vma: Vma) {
        self.tree.insert(vma.start, vma);
    }

    fn remove(&mut self, start: u64) -> Option<Vma> {
        self.tree.remove(&start)
    }

    fn starts_in(&self, start: u64, end: u64) -> Vec<u64> {
        let mut out = Vec::new();
        if start >= end {
            return out;
        }
        if let Some((k, v)) = self.tree.range(..start).next_back() {
            if v.end > start {
                out.push(*k);
            }
        }
        out.extend(self.tree.range(start..end).map(|(k, _)| *k));
        out
    }

    fn for_each(&self, f: &mut dyn FnMut(&Vma)) {
        for v in self.tree.values() {
            f(v);
        }
    }

    fn len(&self) -> usize {
        self.tree.len()
    }
}
