//! The machine's address spaces by id, inside `mm`: what a change made from
//! outside an address space needs to reach it (a shared page table's other
//! sharers, whose CPUs must drop a translation; the `none` reverse map and
//! VMA-scanning reclaim, which walk every address space). Linux has no one
//! list: the task list (`for_each_process`) and `init_mm.mmlist` serve.
//!
//! Lock order: a leaf. It may be taken under any lock, and nothing is taken
//! while it is held; it hands out strong references for use after.

use super::address_space::AddressSpace;
use crate::sync::{Arc, Mutex};
use alloc::collections::BTreeMap;

/// Live address spaces by `AddressSpace::id`, each held until its process
/// exits (`unregister`); a lookup after that finds none.
pub struct MmRegistry {
    map: Mutex<BTreeMap<u64, Arc<AddressSpace>>>,
}

impl Default for MmRegistry {
    fn default() -> MmRegistry {
        MmRegistry::new()
    }
}

impl MmRegistry {
    pub fn new() -> MmRegistry {
        MmRegistry {
            map: Mutex::new(BTreeMap::new()),
        }
    }

    /// Register `mm` under its id.
    pub fn register(&self, mm: &Arc<AddressSpace>) {
        self.map.lock().insert(mm.id, mm.clone());
    }

    /// Forget address space `id` (at exit).
    pub fn unregister(&self, id: u64) {
        self.map.lock().remove(&id);
    }

    /// The ids of every live address space, in order.
    pub fn ids(&self) -> alloc::vec::Vec<u64> {
        self.map.lock().keys().copied().collect()
    }

    /// Live address spaces.
    pub fn count(&self) -> usize {
        self.map.lock().len()
    }

    /// The live address space with the smallest id at least `id`, if any
    /// (VMA-scanning reclaim's round robin).
    pub fn next_from(&self, id: u64) -> Option<Arc<AddressSpace>> {
        self.map.lock().range(id..).next().map(|(_, mm)| mm.clone())
    }

    /// The live address space `id`, if any.
    pub fn get(&self, id: u64) -> Option<Arc<AddressSpace>> {
        self.map.lock().get(&id).cloned()
    }
}
