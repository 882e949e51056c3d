//! Reverse maps: from a frame to every PTE that maps it, in five designs
//! (config `rmap`), and the operations reclaim, msync and truncation stand
//! on: `for_each_mapping` (every address space, address and entry that
//! maps a frame) and `unmap_everywhere` (Linux `try_to_unmap`).
//!
//! Each design says only where the mappings may be (`candidates`, one file
//! each); the common part (`for_each_mapping`) takes each address space's
//! map lock, turns the candidate into addresses, walks to the entry and
//! keeps it only if it still maps the frame. So a candidate list may hold
//! stale entries, never miss a mapping; the checker verifies that each
//! design finds exactly the entries that map each frame.
//!
//! - `object` (`object.rs`): anonymous pages through their identity's
//!   anon_vma chain (every address space and VMA identity that may map a
//!   page owned by it: the identity's own VMAs and, through fork, its
//!   descendants'), object pages through the object's list of the address
//!   spaces that map it (Linux `anon_vma` / `anon_vma_chain` and `i_mmap`).
//! - `pte_chain`, `pte_pool` (`ptes.rs`): the PTE pointers kept per frame
//!   (`phys/pte_links.rs`), turned into (address space, address) through
//!   the page table's owner and the address its entry 0 maps, or its
//!   sharers for a shared table.
//! - `private_vma` (`private_vma.rs`, seed 000 #4): a private page's
//!   identity names its one VMA and address space, with no chain
//!   (`fork = eager` copies every private page, so none is shared).
//! - `none` (`none.rs`): no reverse map: walk every address space's page
//!   tables (the design rmap replaced).
//!
//! The object list (`i_mmap`) is kept under every design, since truncation
//! and hole punching unmap by range through it, as Linux's
//! `unmap_mapping_range` does whatever reverse map it has.
//!
//! Lock order: `Rmap::reg` is a leaf (taken under the map lock at fork,
//! mmap and a fault's first write); `for_each_mapping` copies what it
//! needs out of it and drops it before it takes any map lock, and its
//! caller holds no map lock (it takes several address spaces' in turn).
//!
//! May call: `address_space`, `pte_ops`, `shared_pt`, `object`, `registry`,
//! `pgtable`, `phys`, `tlb`, `sync`.

pub mod identities;
mod none;
mod object;
mod private_vma;
mod ptes;

use super::address_space::{AddressSpace, MapState};
use super::fault::NO_CPU;
use super::object::ObjectTable;
use super::pte_ops::{self, Rss};
use super::registry::MmRegistry;
use super::shared_pt::{object_table_sharers, PD_SPAN};
use super::vma::Vma;
use super::vma_map::VmaMap;
use crate::addr::{vpn, Pfn, PAGE_SHIFT};
use crate::pgtable::{LeafRef, Pte};
use crate::phys::{PhysMem, PteLinkKind, PG_DIRTY};
use crate::sync::Ordering;
use crate::tlb::PendingFlush;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

pub use identities::Identities;
use identities::Registry;

/// The reverse-map design (config `rmap`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RmapPolicy {
    /// Object-based: anonymous pages through their anon_vma chain, object
    /// pages through the object's list of address spaces mapping it.
    Object,
    /// Seed 002: a chain of PTE pointers per frame, its links in the second
    /// page of each order-1 page table.
    PteChain,
    /// Mark Hemment's alternative: per-frame pools of PTE pointers.
    PtePool,
    /// Seed 000 #4: a private page points at its one VMA (`fork = eager` only).
    PrivateVma,
    /// No reverse map: walk every address space's page tables.
    None,
}

impl RmapPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            RmapPolicy::Object => "object",
            RmapPolicy::PteChain => "pte_chain",
            RmapPolicy::PtePool => "pte_pool",
            RmapPolicy::PrivateVma => "private_vma",
            RmapPolicy::None => "none",
        }
    }

    /// The PTE-pointer store the design needs in `phys`.
    pub fn pte_links(self) -> PteLinkKind {
        match self {
            RmapPolicy::PteChain => PteLinkKind::Chain,
            RmapPolicy::PtePool => PteLinkKind::Pool,
            _ => PteLinkKind::None,
        }
    }
}

/// Where in one address space a frame may be mapped.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Find {
    /// At this address.
    Va(u64),
    /// In its VMAs of anonymous identity `vid`, at page offset `index`.
    Anon { vid: u64, index: u64 },
    /// In its VMAs of object `object`, at page offset `index`.
    Object { object: u64, index: u64 },
    /// Anywhere: walk its page tables.
    Scan,
}

/// The machine's reverse map.
pub struct Rmap {
    policy: RmapPolicy,
    /// Anonymous identities and object lists (`identities.rs`).
    ids: Identities,
}

/// What `for_each_mapping` needs of the machine.
pub struct RmapCx<'a> {
    pub phys: &'a PhysMem,
    pub mms: &'a MmRegistry,
    pub objects: &'a ObjectTable,
}

/// One mapping found: the address space, its map state (locked), the
/// address and the entry (which maps the frame when `f` is called).
pub struct Mapping<'a, 'b> {
    pub mm: &'b AddressSpace,
    pub st: &'b MapState,
    pub va: u64,
    pub entry: LeafRef<'a>,
}

/// What `unmap_everywhere` did.
#[derive(Debug, Default)]
pub struct Unmapped {
    /// Entries cleared (one per PTE; a shared table's entry once).
    pub ptes: usize,
    /// Every address space's translations to drop and the frames' references
    /// to release after: all in `remote`, for one shootdown.
    pub flush: PendingFlush,
    /// Mappings left in place (`unmap_for_reclaim`: a locked VMA, a
    /// fork-shared table, a busy map lock, no slot reference).
    pub left: usize,
    /// `UnmapMode::Lazyfree`: a mapping or the page was dirty (stored to
    /// since MADV_FREE), so the page is kept.
    pub redirtied: bool,
}

/// What `Rmap::unmap_for_reclaim` puts where a PTE mapped the page.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum UnmapMode {
    /// This swap entry (an anonymous page going to swap).
    Swap(Pte),
    /// Nothing (a page-cache page, clean or written back).
    Clear,
    /// Nothing, if the page is still clean (a page MADV_FREE made lazily
    /// freeable, dropped without being written; any page of a
    /// `VM_DROPPABLE` VMA, dropped dirty or not). Linux:
    /// `try_to_unmap_one`'s `!folio_test_swapbacked` branch.
    Lazyfree,
}

impl Rmap {
    pub fn new(policy: RmapPolicy) -> Rmap {
        Rmap {
            policy,
            ids: Identities::new(policy != RmapPolicy::PrivateVma),
        }
    }

    pub fn policy(&self) -> RmapPolicy {
        self.policy
    }

    /// The identities and object lists, which the VM keeps at mmap, fork, a
    /// first write and exit.
    pub fn identities(&self) -> &Identities {
        &self.ids
    }

    /// Forget address space `mm` (exit, exec).
    pub(crate) fn forget_mm(&self, mm: u64) {
        self.ids.forget_mm(mm)
    }

    /// The address spaces that may map pages of object `object` (all of
    /// them under `none`, which keeps no list).
    pub(crate) fn object_mappers(&self, cx: &RmapCx<'_>, object: u64) -> Vec<u64> {
        if self.policy == RmapPolicy::None {
            return cx.mms.ids();
        }
        self.ids.reg.lock().objects.get(&object).cloned().unwrap_or_default()
    }

    /// Bytes the design's reverse map uses now: its records (identities,
    /// chains, member and object lists, as the sizes of their elements), the
    /// PTE-pointer store (`pte_chain`: the second page of every leaf table;
    /// `pte_pool`: the pool nodes), and the descriptor word that points at a
    /// frame's first PTE pointer under those two.
    pub fn rmap_bytes(&self, phys: &PhysMem) -> u64 {
        let r = self.ids.reg.lock();
        let records = |r: &Registry| -> u64 {
            let anon: usize = r
                .anon
                .values()
                .map(|a| 8 + a.chain.len() * 8 + a.members.len() * 16)
                .sum();
            let objects: usize = r.objects.values().map(|v| 8 + v.len() * 8).sum();
            (anon + objects) as u64
        };
        match self.policy {
            RmapPolicy::Object => records(&r),
            RmapPolicy::PrivateVma => private_vma::bytes(&r),
            RmapPolicy::PteChain | RmapPolicy::PtePool => phys.pte_link_bytes(),
            RmapPolicy::None => 0,
        }
    }

    /// Where `frame` may be mapped, grouped by address space in the order
    /// the design lists them (deduplicated). The order matters for
    /// `pte_chain`: visiting the chain from its head makes each unlink of
    /// `unmap_everywhere` find its entry first, where an order of its own
    /// would walk the chain for each (quadratic in the sharers).
    fn candidates(&self, cx: &RmapCx<'_>, frame: Pfn) -> Vec<(u64, Find)> {
        let c = match self.policy {
            RmapPolicy::Object => object::candidates(&self.ids.reg.lock(), cx, frame),
            RmapPolicy::PrivateVma => private_vma::candidates(&self.ids.reg.lock(), cx, frame),
            RmapPolicy::PteChain | RmapPolicy::PtePool => ptes::candidates(cx, frame),
            RmapPolicy::None => none::candidates(cx),
        };
        let mut rank: BTreeMap<u64, usize> = BTreeMap::new();
        let mut seen = alloc::collections::BTreeSet::new();
        let mut out: Vec<(usize, u64, Find)> = Vec::with_capacity(c.len());
        for (mm, f) in c {
            if seen.insert((mm, f)) {
                let n = rank.len();
                let r = *rank.entry(mm).or_insert(n);
                out.push((r, mm, f));
            }
        }
        out.sort_by_key(|&(r, _, _)| r);
        out.into_iter().map(|(_, mm, f)| (mm, f)).collect()
    }

    /// Call `f` for every PTE that maps `frame`, with the map lock of its
    /// address space held for reading (entries change by compare-and-swap,
    /// as faults change them): every (address space, address)
    /// that reaches the entry, so an entry of a table shared by several
    /// address spaces is seen once through each. Address spaces are visited
    /// one at a time (only one map lock is held at once), in the design's
    /// order.
    ///
    /// Preconditions: the caller holds no map lock.
    pub fn for_each_mapping(&self, cx: &RmapCx<'_>, frame: Pfn, f: impl FnMut(Mapping<'_, '_>)) {
        self.visit_mappings(cx, frame, false, f);
    }

    /// `for_each_mapping`, taking each map lock only if it is free when
    /// `try_only` (reclaim: the caller may hold, or wait behind, one of
    /// them). Returns whether every address space was visited.
    fn visit_mappings(&self, cx: &RmapCx<'_>, frame: Pfn, try_only: bool, mut f: impl FnMut(Mapping<'_, '_>)) -> bool {
        let cands = self.candidates(cx, frame);
        let mut all = true;
        let mut i = 0;
        while i < cands.len() {
            let id = cands[i].0;
            let mut j = i;
            while j < cands.len() && cands[j].0 == id {
                j += 1;
            }
            let finds = &cands[i..j];
            i = j;
            let Some(mm) = cx.mms.get(id) else { continue };
            let visit = |st: &MapState, f: &mut dyn FnMut(Mapping<'_, '_>)| {
                if st.dead {
                    return;
                }
                let mut vas = Vec::new();
                for find in finds {
                    addresses(cx.phys, &mm, st, frame, find.1, &mut vas);
                }
                vas.sort_unstable();
                vas.dedup();
                for va in vas {
                    let Some(e) = mm.page_table().leaf(cx.phys, va) else {
                        continue;
                    };
                    if maps(e.load(), frame) {
                        f(Mapping {
                            mm: &mm,
                            st,
                            va,
                            entry: e,
                        });
                    }
                }
            };
            if try_only {
                match mm.map.try_read() {
                    Some(g) => visit(&g, &mut f),
                    None => all = false,
                }
            } else {
                visit(&mm.map.read(), &mut f);
            }
        }
        all
    }

    /// Test and clear the accessed bit of every PTE that maps `frame`
    /// (Linux `folio_referenced`), taking map locks by try-lock only. A
    /// cleared entry's translation goes into the returned flush (`remote`):
    /// a TLB hit sets no accessed bit, so the next access must walk to be
    /// seen. Also says whether a mapping lies in a `VM_LOCKED` VMA.
    ///
    /// Preconditions: the caller holds no map lock it would wait on.
    pub fn referenced(&self, cx: &RmapCx<'_>, frame: Pfn) -> Referenced {
        let mut out = Referenced::default();
        out.complete = self.visit_mappings(cx, frame, true, |m| {
            out.mapped += 1;
            if vma_locked(m.st, m.va) {
                out.locked = true;
            }
            if pte_ops::update(m.entry, m.va, None, |p| p.accessed().then(|| p.without(Pte::ACCESSED))).is_some() {
                out.young += 1;
                out.flush.remote.push((m.mm.id, vpn(m.va), vpn(m.va)));
                // An entry of a shared table was cleared for every sharer:
                // each one's CPUs may cache it.
                table_sharers_of(cx, &m, &mut out.flush.remote);
            }
        });
        out
    }

    /// Replace every PTE that maps `frame` as `mode` says: by a swap entry
    /// for an anonymous page (`Swap`, each taken only if `dup` gives it its
    /// slot reference), by nothing (`Clear`: a page-cache page), or by
    /// nothing only while the lazily freed page is clean (`Lazyfree`: an
    /// entry found dirty, or a page dirty or held by anyone but its mappings
    /// and the caller, is left and `redirtied` / `left` say so; an entry
    /// in a `VM_DROPPABLE` VMA is cleared dirty or not). Map locks by
    /// try-lock only; a mapping in a `VM_LOCKED` VMA is left. An entry of
    /// a fork-shared (`TABLE_COW`) or object table is changed in place,
    /// once for all its sharers, whose CPUs all drop the translation.
    /// Linux: `try_to_unmap` (`TTU_BATCH_FLUSH`).
    ///
    /// Preconditions: the caller holds no map lock it would wait on.
    pub fn unmap_for_reclaim(
        &self,
        cx: &RmapCx<'_>,
        frame: Pfn,
        mode: UnmapMode,
        dup: &dyn Fn() -> bool,
        undup: &dyn Fn(),
    ) -> Unmapped {
        let swap = match mode {
            UnmapMode::Swap(p) => Some(p),
            UnmapMode::Clear | UnmapMode::Lazyfree => None,
        };
        let mut out = Unmapped::default();
        let complete = self.visit_mappings(cx, frame, true, |m| {
            let Some(pe) = m.mm.page_table().pd_entry(cx.phys, m.va) else {
                return;
            };
            let pd = Pte(pe.load(Ordering::Acquire));
            if vma_locked(m.st, m.va) {
                out.left += 1;
                return;
            }
            let droppable =
                m.st.vmas
                    .find(m.va)
                    .is_some_and(|v| v.contains(m.va) && v.flags.has(super::vma::VmFlags::DROPPABLE));
            let obj_table = pd.0 & Pte::TABLE_OBJ != 0;
            let cow_table = pd.0 & Pte::TABLE_COW != 0;
            // A fork-shared table is changed in place, once for all its
            // sharers (its entries may only lose a frame to reclaim, or
            // WRITE, or the accessed bit): its frames count in its owner's
            // rss, and every sharer's CPUs drop the translation, busy map
            // lock or not. An object table's frames count in no one's.
            let owner = if cow_table {
                match cx.phys.desc(pd.pfn()).map(|d| d.owner()) {
                    Some(crate::phys::Owner::PageTable { mm }) if mm != 0 => cx.mms.get(mm),
                    _ => None,
                }
            } else {
                None
            };
            let rss = if obj_table || (cow_table && owner.is_none()) {
                Rss::None
            } else if let Some(o) = owner.as_ref() {
                o.counts_on(NO_CPU)
            } else {
                m.mm.counts_on(NO_CPU)
            };
            let mut fl = PendingFlush::default();
            loop {
                let cur = m.entry.load();
                if !maps(cur, frame) {
                    break;
                }
                if cur.locked() {
                    core::hint::spin_loop();
                    continue;
                }
                if mode == UnmapMode::Lazyfree && !droppable {
                    // try_to_unmap_one's MADV_FREE check: a store since
                    // the advice (through this entry or a kernel write that
                    // marked the page) keeps the page, swap-backed again.
                    let d = cx.phys.desc(frame);
                    if cur.dirty() || d.is_some_and(|d| d.flags.load(Ordering::Acquire) & PG_DIRTY != 0) {
                        out.redirtied = true;
                        out.left += 1;
                        break;
                    }
                    // Another holder (a pin, a read in progress) besides
                    // the mappings, the caller's isolation and the entries
                    // cleared so far (their references wait in the flush):
                    // not now.
                    let expect = 1 + out.ptes as i64;
                    if d.is_some_and(|d| d.refcount.load(Ordering::Acquire) as i64 != expect + d.mapcount() as i64) {
                        out.left += 1;
                        break;
                    }
                }
                let new = match swap {
                    Some(p) => {
                        if !dup() {
                            out.left += 1;
                            break;
                        }
                        // The soft-dirty-like bits of a swap entry stay none.
                        p
                    }
                    None => Pte(0),
                };
                if pte_ops::set(cx.phys, rss, m.entry, m.va, cur, new, &mut fl) {
                    out.ptes += 1;
                    break;
                }
                if swap.is_some() {
                    undup();
                }
            }
            if obj_table || fl.range.is_some() {
                table_sharers_of(cx, &m, &mut fl.remote);
            }
            out.flush.frames.append(&mut fl.frames);
            out.flush.remote.append(&mut fl.remote);
            out.flush.swap.append(&mut fl.swap);
            if let Some((a, b)) = fl.range {
                out.flush.remote.push((m.mm.id, a, b));
            }
        });
        if !complete {
            out.left += 1;
        }
        out
    }

    /// The (address space, address) pairs that map `frame`, sorted.
    pub fn mappings_of(&self, cx: &RmapCx<'_>, frame: Pfn) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        self.for_each_mapping(cx, frame, |m| out.push((m.mm.id, m.va)));
        out.sort_unstable();
        out
    }

    /// Clear every PTE that maps `frame` (Linux `try_to_unmap`). An entry of
    /// a fork-shared table is first given its own copy in that address
    /// space (the shared table is frozen); an entry of an object table is
    /// cleared once for all its sharers. The returned flush holds every
    /// address space's range in `remote` and the frame's references, for
    /// one shootdown (`Machine::shootdown_all`) reaching every CPU that may
    /// cache one. A frame that stays mapped (no frame for a table copy) is
    /// left where it could not be unmapped.
    ///
    /// Preconditions: the caller holds no map lock.
    pub fn unmap_everywhere(&self, cx: &RmapCx<'_>, frame: Pfn) -> Unmapped {
        let mut out = Unmapped::default();
        self.for_each_mapping(cx, frame, |m| {
            let mut fl = PendingFlush::default();
            let Some(pe) = m.mm.page_table().pd_entry(cx.phys, m.va) else {
                return;
            };
            let span = m.va & !(PD_SPAN - 1);
            let pd = Pte(pe.load(Ordering::Acquire));
            let mut entry = m.entry;
            if pd.0 & Pte::TABLE_COW != 0 {
                if m.mm.unshare_table_locked(m.st, cx.phys, span, pe, &mut fl).is_err() {
                    out.flush.merge(fl);
                    return;
                }
                let Some(e) = m.mm.page_table().leaf(cx.phys, m.va) else {
                    return;
                };
                entry = e;
            }
            let obj_table = Pte(pe.load(Ordering::Acquire)).0 & Pte::TABLE_OBJ != 0;
            let rss = if obj_table { Rss::None } else { m.mm.counts_on(NO_CPU) };
            loop {
                let cur = entry.load();
                if !maps(cur, frame) {
                    break;
                }
                if cur.locked() {
                    // A fault of this address space claimed it (it holds the
                    // map lock for reading too, and no lock this CPU holds):
                    // its publish comes soon.
                    core::hint::spin_loop();
                    continue;
                }
                if pte_ops::set(cx.phys, rss, entry, m.va, cur, Pte(0), &mut fl) {
                    out.ptes += 1;
                    break;
                }
            }
            if obj_table {
                if let Some(obj) = object_at(m.st, m.va) {
                    let table = Pte(pe.load(Ordering::Acquire)).pfn();
                    fl.remote.extend(object_table_sharers(&obj, table, m.mm.id));
                }
            }
            out.flush.frames.append(&mut fl.frames);
            out.flush.remote.append(&mut fl.remote);
            if let Some((a, b)) = fl.range {
                out.flush.remote.push((m.mm.id, a, b));
            }
        });
        out
    }

    /// Clear the dirty bit of every PTE that maps `frame`, moving it to the
    /// page (msync): returns the translations to drop in every address
    /// space that maps it (all in `remote`), so that a CPU caching one
    /// writable walks again and sets the bit at its next store.
    ///
    /// Preconditions: the caller holds no map lock.
    pub fn clean_everywhere(&self, cx: &RmapCx<'_>, frame: Pfn) -> PendingFlush {
        let mut out = PendingFlush::default();
        self.for_each_mapping(cx, frame, |m| {
            let mut fl = PendingFlush::default();
            let _ = pte_ops::clean(cx.phys, m.entry, m.va, &mut fl);
            // Every view drops its translation, cleaned now or not: an entry
            // of an object table is every sharer's, and only the first
            // visit finds it dirty.
            out.remote.push((m.mm.id, vpn(m.va), vpn(m.va)));
        });
        out
    }
}

/// Whether the VMA at `va` is `VM_LOCKED` (mlock: never reclaimed).
fn vma_locked(st: &MapState, va: u64) -> bool {
    st.vmas
        .find(va)
        .is_some_and(|v| v.contains(va) && v.flags.has(super::vma::VmFlags::LOCKED))
}

/// What `Rmap::referenced` found.
#[derive(Default)]
pub struct Referenced {
    /// Mappings seen, and those whose accessed bit was set (now cleared).
    pub mapped: usize,
    pub young: usize,
    /// A mapping is in a `VM_LOCKED` VMA.
    pub locked: bool,
    /// Every address space was visited (no map lock was busy).
    pub complete: bool,
    /// The cleared entries' translations, for one `shootdown_all`.
    pub flush: PendingFlush,
}

/// Whether `p` maps `frame` with a counted reference (present or PROT_NONE).
#[inline]
fn maps(p: Pte, frame: Pfn) -> bool {
    p.maps_frame() && !p.special() && p.pfn() == frame
}

/// The object VMA at `va`, if any.
/// The other address spaces that reach `m`'s entry through a shared leaf
/// table (an object table: its sharers' spans; a fork-shared `TABLE_COW`
/// table: its sharers at `m.va`), as flush ranges into `out`; nothing for
/// a table of `m.mm`'s own.
fn table_sharers_of(cx: &RmapCx<'_>, m: &Mapping<'_, '_>, out: &mut Vec<(u64, u64, u64)>) {
    let Some(pe) = m.mm.page_table().pd_entry(cx.phys, m.va) else {
        return;
    };
    let pd = Pte(pe.load(Ordering::Acquire));
    if pd.0 & Pte::TABLE_OBJ != 0 {
        if let Some(obj) = object_at(m.st, m.va) {
            out.extend(object_table_sharers(&obj, pd.pfn(), m.mm.id));
        }
    } else if pd.0 & Pte::TABLE_COW != 0 {
        let v = vpn(m.va);
        out.extend(
            cx.phys
                .table_sharers(pd.pfn())
                .into_iter()
                .filter(|&mm| mm != m.mm.id)
                .map(|mm| (mm, v, v)),
        );
    }
}

fn object_at(st: &MapState, va: u64) -> Option<crate::sync::Arc<super::object::MemObject>> {
    st.vmas
        .find(va)
        .filter(|v| v.contains(va))
        .and_then(|v| v.backing.object().cloned())
}

/// The address of page offset `index` in `v`, if `v` covers it.
fn address_in(v: &Vma, index: u64) -> Option<u64> {
    (index >= v.pgoff && index < v.pgoff + v.pages()).then(|| v.start + ((index - v.pgoff) << PAGE_SHIFT))
}

/// Append to `out` the addresses in `mm` that `find` names for `frame`.
fn addresses(phys: &PhysMem, mm: &AddressSpace, st: &MapState, frame: Pfn, find: Find, out: &mut Vec<u64>) {
    match find {
        Find::Va(va) => out.push(va),
        Find::Anon { vid, index } => st.vmas.for_each(&mut |v| {
            if v.anon_id() == vid {
                out.extend(address_in(v, index));
            }
        }),
        Find::Object { object, index } => st.vmas.for_each(&mut |v| {
            if v.backing.object().is_some_and(|o| o.id().0 == object) {
                out.extend(address_in(v, index));
            }
        }),
        Find::Scan => st.vmas.for_each(&mut |v| {
            mm.page_table().for_each_leaf(phys, v.start, v.end, |va, e| {
                if maps(e.load(), frame) {
                    out.push(va);
                }
            });
        }),
    }
}
