//! Anonymous identities and object lists: what the VM records at mmap,
//! fork, a VMA's first write and exit, for the reverse maps to find pages
//! from their owners (`object`, `private_vma`) and for truncation (the
//! object lists, Linux `i_mmap`, kept under every design). Kept apart from
//! the designs (`mod.rs`) so that the address-space code, which records
//! here, does not depend on the code that walks address spaces.
//!
//! Lock order: `Identities::reg` is a leaf (taken under the map lock).

use crate::sync::{AtomicU64, Mutex, Ordering};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// An anonymous identity (Linux `anon_vma` with the `anon_vma_chain`s of
/// the VMAs that reach it).
#[derive(Clone, Debug, Default)]
pub(crate) struct AnonVma {
    /// The identities a VMA of this identity may map pages of: its
    /// ancestors' (through fork) and its own. Linux: the VMA's
    /// `anon_vma_chain` list.
    pub(crate) chain: Vec<u64>,
    /// (address space, VMA identity) pairs that may map a page owned by
    /// this identity. Linux: the anon_vma's interval tree of chains.
    pub(crate) members: Vec<(u64, u64)>,
}

/// What an address space is listed in, to forget it at exit.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Listed {
    Anon(u64),
    Object(u64),
}

#[derive(Default)]
pub(crate) struct Registry {
    pub(crate) anon: BTreeMap<u64, AnonVma>,
    /// Object id → address spaces with a VMA of it (Linux `i_mmap`).
    pub(crate) objects: BTreeMap<u64, Vec<u64>>,
    /// Address space → what it is listed in.
    pub(crate) by_mm: BTreeMap<u64, Vec<Listed>>,
}

/// Anonymous identities and object lists of one machine.
pub struct Identities {
    /// A fork child's identity is chained to its parent's (`object`); not
    /// under `private_vma`, whose fork copies every private page.
    chained: bool,
    /// Source of fresh anonymous identities (never 0).
    next_anon_id: AtomicU64,
    pub(crate) reg: Mutex<Registry>,
}

impl Identities {
    pub(super) fn new(chained: bool) -> Identities {
        Identities {
            chained,
            next_anon_id: AtomicU64::new(1),
            reg: Mutex::new(Registry::default()),
        }
    }

    /// A fresh anonymous identity for a VMA of address space `mm`
    /// (Linux `anon_vma_prepare`). Its pages are found in `mm`'s VMAs of
    /// that identity.
    pub(crate) fn new_anon(&self, mm: u64) -> u64 {
        let id = self.next_anon_id.fetch_add(1, Ordering::Relaxed);
        let mut r = self.reg.lock();
        r.anon.insert(
            id,
            AnonVma {
                chain: alloc::vec![id],
                members: alloc::vec![(mm, id)],
            },
        );
        r.by_mm.entry(mm).or_default().push(Listed::Anon(id));
        id
    }

    /// Whether fork chains identities (`object`; not `private_vma`).
    pub(crate) fn chained(&self) -> bool {
        self.chained
    }

    /// The oldest identity of `id`'s fork chain (itself if it has none):
    /// every VMA that may map a page of `id`'s is a member of it
    /// (Linux `anon_vma->root`).
    pub(crate) fn root_of(&self, id: u64) -> u64 {
        self.reg
            .lock()
            .anon
            .get(&id)
            .and_then(|a| a.chain.first().copied())
            .unwrap_or(id)
    }

    /// A fresh identity that lost the race to be a VMA's: forget it.
    pub(crate) fn drop_anon(&self, id: u64) {
        let mut r = self.reg.lock();
        if let Some(a) = r.anon.remove(&id) {
            for (mm, _) in a.members {
                if let Some(l) = r.by_mm.get_mut(&mm) {
                    l.retain(|&x| x != Listed::Anon(id));
                }
            }
        }
    }

    /// A fork child's VMA of address space `child` inherits the pages of a
    /// parent VMA of identity `parent` (0: none yet): its own fresh
    /// identity, chained to the parent's under `object` (Linux
    /// `anon_vma_fork`), alone under `private_vma`, whose fork copies every
    /// private page.
    pub(crate) fn fork_anon(&self, child: u64, parent: u64) -> u64 {
        let id = self.new_anon(child);
        if parent == 0 || !self.chained {
            return id;
        }
        let mut r = self.reg.lock();
        let chain = r.anon.get(&parent).map(|a| a.chain.clone()).unwrap_or_default();
        for &x in &chain {
            if let Some(a) = r.anon.get_mut(&x) {
                a.members.push((child, id));
            }
            r.by_mm.entry(child).or_default().push(Listed::Anon(x));
        }
        if let Some(a) = r.anon.get_mut(&id) {
            let mut c = chain;
            c.push(id);
            a.chain = c;
        }
        id
    }

    /// Address space `mm` has a VMA of object `object` (mmap, fork).
    pub(crate) fn map_object(&self, mm: u64, object: u64) {
        let mut r = self.reg.lock();
        let l = r.objects.entry(object).or_default();
        if !l.contains(&mm) {
            l.push(mm);
            r.by_mm.entry(mm).or_default().push(Listed::Object(object));
        }
    }

    /// Address space `mm` lost VMAs of the identities and objects in
    /// `gone` (munmap, MAP_FIXED, mremap, brk: `AddressSpace::take_retired`);
    /// those it no longer has any VMA of (`st`, its map state) stop listing
    /// it, so that an address space that maps and unmaps for long keeps its
    /// records bounded by what it maps now.
    ///
    /// Preconditions: `st` is `mm`'s map lock, held.
    pub(crate) fn settle(&self, mm: u64, st: &crate::mm::MapState, gone: &[Listed]) {
        use crate::mm::VmaMap;
        let still = |l: Listed| {
            let mut found = false;
            st.vmas.for_each(&mut |v| {
                found |= match l {
                    Listed::Anon(vid) => v.anon_id() == vid,
                    Listed::Object(o) => v.backing.object().is_some_and(|x| x.id().0 == o),
                }
            });
            found
        };
        let gone: Vec<Listed> = gone.iter().copied().filter(|&l| !still(l)).collect();
        if gone.is_empty() {
            return;
        }
        let mut r = self.reg.lock();
        let mut unlisted: Vec<Listed> = Vec::new();
        for l in gone {
            match l {
                Listed::Anon(vid) => {
                    let chain = r.anon.get(&vid).map(|a| a.chain.clone()).unwrap_or_default();
                    for x in chain {
                        let empty = r.anon.get_mut(&x).is_some_and(|a| {
                            let before = a.members.len();
                            a.members.retain(|&m| m != (mm, vid));
                            if a.members.len() < before {
                                unlisted.push(Listed::Anon(x));
                            }
                            a.members.is_empty()
                        });
                        if empty {
                            r.anon.remove(&x);
                        }
                    }
                }
                Listed::Object(o) => {
                    let empty = r.objects.get_mut(&o).is_some_and(|v| {
                        let before = v.len();
                        v.retain(|&m| m != mm);
                        if v.len() < before {
                            unlisted.push(Listed::Object(o));
                        }
                        v.is_empty()
                    });
                    if empty {
                        r.objects.remove(&o);
                    }
                }
            }
        }
        if let Some(list) = r.by_mm.get_mut(&mm) {
            for u in unlisted {
                if let Some(i) = list.iter().position(|&x| x == u) {
                    list.swap_remove(i);
                }
            }
        }
    }

    /// Object `object` is gone (no VMA, no fd): forget its list.
    pub(crate) fn forget_object(&self, object: u64) {
        let mut r = self.reg.lock();
        let Some(mms) = r.objects.remove(&object) else { return };
        for mm in mms {
            if let Some(list) = r.by_mm.get_mut(&mm) {
                list.retain(|&x| x != Listed::Object(object));
            }
        }
    }

    /// Forget address space `mm` (exit).
    pub(super) fn forget_mm(&self, mm: u64) {
        let mut r = self.reg.lock();
        let Some(listed) = r.by_mm.remove(&mm) else { return };
        for l in listed {
            match l {
                Listed::Anon(x) => {
                    let empty = r.anon.get_mut(&x).is_some_and(|a| {
                        a.members.retain(|&(m, _)| m != mm);
                        a.members.is_empty()
                    });
                    if empty {
                        r.anon.remove(&x);
                    }
                }
                Listed::Object(o) => {
                    let empty = r.objects.get_mut(&o).is_some_and(|v| {
                        v.retain(|&m| m != mm);
                        v.is_empty()
                    });
                    if empty {
                        r.objects.remove(&o);
                    }
                }
            }
        }
    }
}
