//! The page-table tree and the walker API: find a leaf, populate a path,
//! visit every leaf of a range (the page-walking API of seed 003), prune
//! empty tables, tear the tree down.

use super::pte::{Level, Pte};
use crate::addr::Pfn;
use crate::phys::{Owner, PhysMem};
use crate::sync::{AtomicU64, Ordering};

/// No frame was free for a page-table page.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct NoFrame;

/// One process's page-table tree, by its root (PML4) frame. Linux: `mm->pgd`.
///
/// Invariant: every non-leaf entry that is present points at a frame with
/// `FrameUse::PageTable`; no table is reachable from two parents (sharing
/// comes with the shared-page-table fork policy, which refcounts tables).
#[derive(Debug)]
pub struct PageTable {
    root: Pfn,
    /// The address space whose tables these are (`Owner::PageTable`).
    mm: u64,
}

/// Entry `idx` of the table in frame `table` (an upper-level entry; leaf
/// entries are reached as `LeafRef`s, `leaf_slot`).
#[inline]
pub fn slot(phys: &PhysMem, table: Pfn, idx: usize) -> Option<&AtomicU64> {
    phys.ram().word(table.first_word() + idx)
}

/// Entry `idx` of the leaf table in frame `table`.
#[inline]
pub fn leaf_slot(phys: &PhysMem, table: Pfn, idx: usize) -> Option<LeafRef<'_>> {
    slot(phys, table, idx).map(LeafRef)
}

/// One leaf entry of a page table, as the walker hands it out. Linux: a
/// `pte_t *`. Anyone may read it; it is changed only by `mm::pte_ops`,
/// which keeps the frame's counts, the rss and the rmap in step with it.
/// The write methods below are crate-private and called from nowhere else
/// (`tests/pte_writers.rs` scans the source), except `mmu_set_accessed_dirty`,
/// which is the hardware walk's own update.
#[derive(Copy, Clone, Debug)]
pub struct LeafRef<'a>(&'a AtomicU64);

impl<'a> LeafRef<'a> {
    /// A leaf entry at `word` (a model test's own word; the walker makes the rest).
    #[inline]
    pub fn from_word(word: &'a AtomicU64) -> LeafRef<'a> {
        LeafRef(word)
    }

    /// The entry now (acquire: what a published entry points at is visible).
    #[inline]
    pub fn load(self) -> Pte {
        Pte(self.0.load(Ordering::Acquire))
    }

    /// Whether two references name the same entry.
    #[inline]
    pub fn same(self, o: LeafRef<'_>) -> bool {
        core::ptr::eq(self.0, o.0)
    }

    /// The entry's word, for tests that stand in for a stray writer
    /// (the checker must catch it).
    #[doc(hidden)]
    pub fn word_for_tests(self) -> &'a AtomicU64 {
        self.0
    }

    /// The entry's word, for `mm::pte_ops` to name it (a PTE pointer is its
    /// RAM word index, `PhysMem::word_index`).
    #[inline]
    pub(crate) fn word(self) -> &'a AtomicU64 {
        self.0
    }

    /// What a hardware walk does to the present entry `seen` it read and
    /// uses: set accessed, and dirty for a store (`bits` ⊆ A|D), atomically
    /// with the check that the entry still maps the same frame as present
    /// (and writable, for a store), as x86's page walker sets A/D with a
    /// locked compare-exchange on the entry it walked. Returns the entry
    /// after, or `None` if it changed meanwhile (reclaim may turn a present
    /// entry into a swap entry under the map lock held for reading) or is
    /// claimed (`Pte::LOCK`): the walk must look again.
    #[inline]
    pub(crate) fn mmu_set_accessed_dirty(self, seen: Pte, bits: u64) -> Option<Pte> {
        debug_assert_eq!(bits & !(Pte::ACCESSED | Pte::DIRTY), 0);
        let mut cur = seen;
        loop {
            // A claimed entry is about to be replaced (`pte_ops::publish`
            // overwrites it): a dirty bit set now would be lost with it.
            let same = cur.present()
                && !cur.locked()
                && cur.pfn() == seen.pfn()
                && (bits & Pte::DIRTY == 0 || cur.writable() == seen.writable());
            if !same {
                return None;
            }
            if cur.0 & bits == bits {
                return Some(cur);
            }
            match self
                .0
                .compare_exchange_weak(cur.0, cur.0 | bits, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(Pte(cur.0 | bits)),
                Err(now) => cur = Pte(now),
            }
        }
    }

    /// Compare-and-swap (`mm::pte_ops` only).
    #[inline]
    pub(crate) fn raw_cas(self, cur: Pte, new: Pte, success: Ordering) -> Result<Pte, Pte> {
        self.0
            .compare_exchange(cur.0, new.0, success, Ordering::Acquire)
            .map(Pte)
            .map_err(Pte)
    }

    /// Unconditional store (`mm::pte_ops` only: an entry this CPU owns).
    #[inline]
    pub(crate) fn raw_store(self, new: Pte) {
        self.0.store(new.0, Ordering::Release);
    }

    /// Swap (`mm::pte_ops` only).
    #[inline]
    pub(crate) fn raw_swap(self, new: Pte) -> Pte {
        Pte(self.0.swap(new.0, Ordering::AcqRel))
    }

    /// Read-modify-write loop (`mm::pte_ops` only); `f` returns `None` to
    /// leave the entry as it is. Returns (old, new) if it changed.
    #[inline]
    pub(crate) fn raw_update(self, mut f: impl FnMut(Pte) -> Option<Pte>) -> Option<(Pte, Pte)> {
        let mut new = Pte(0);
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                let n = f(Pte(v))?;
                new = n;
                Some(n.0)
            })
            .ok()
            .map(|old| (Pte(old), new))
    }
}

impl PageTable {
    /// A new tree with an empty root, for address space `mm` (every table
    /// it allocates is owned by `mm` and knows the address it starts at:
    /// how a PTE pointer is turned back into an address space and an
    /// address, Linux `ptep_to_mm`/`ptep_to_address`).
    pub fn new(phys: &PhysMem, mm: u64) -> Result<PageTable, NoFrame> {
        let root = phys.alloc_table().ok_or(NoFrame)?;
        if let Some(d) = phys.desc(root) {
            d.set_owner(Owner::PageTable { mm });
        }
        Ok(PageTable { root, mm })
    }

    /// The root (PML4) frame, what CR3 would hold.
    #[inline]
    pub fn root(&self) -> Pfn {
        self.root
    }

    /// The leaf entry for `va` if every table on the path exists.
    #[inline]
    pub fn leaf<'a>(&self, phys: &'a PhysMem, va: u64) -> Option<LeafRef<'a>> {
        let ram = phys.ram();
        let mut table = self.root;
        // A fixed-length array loop that the compiler unrolls: no per-level
        // dispatch on `Level::next` in the TLB-miss path.
        for level in UPPER_LEVELS {
            let v = Pte(ram.word(table.first_word() + level.index(va))?.load(Ordering::Acquire));
            if !v.present() {
                return None;
            }
            table = v.pfn();
        }
        ram.word(table.first_word() + Level::Pt.index(va)).map(LeafRef)
    }

    /// The leaf entry for `va` and whether every level above it allows
    /// writes (x86 grants a store only if WRITE is set at every level; a
    /// table shared copy-on-write has it clear in its PD entry).
    #[inline]
    pub fn leaf_walk<'a>(&self, phys: &'a PhysMem, va: u64) -> Option<(LeafRef<'a>, bool)> {
        let ram = phys.ram();
        let mut table = self.root;
        let mut upper = Pte::WRITE;
        for level in UPPER_LEVELS {
            let v = Pte(ram.word(table.first_word() + level.index(va))?.load(Ordering::Acquire));
            if !v.present() {
                return None;
            }
            upper &= v.0;
            table = v.pfn();
        }
        Some((LeafRef(ram.word(table.first_word() + Level::Pt.index(va))?), upper != 0))
    }

    /// The PD entry (the one that points at the leaf table) for `va`, if the
    /// levels above it exist. Linux: `pmd_offset`.
    pub fn pd_entry<'a>(&self, phys: &'a PhysMem, va: u64) -> Option<&'a AtomicU64> {
        let mut table = self.root;
        for level in [Level::Pml4, Level::Pdpt] {
            let v = Pte(slot(phys, table, level.index(va))?.load(Ordering::Acquire));
            if !v.present() {
                return None;
            }
            table = v.pfn();
        }
        slot(phys, table, Level::Pd.index(va))
    }

    /// The PD entry for `va`, allocating the levels above it. Linux: `pmd_alloc`.
    pub fn pd_entry_alloc<'a>(&self, phys: &'a PhysMem, va: u64) -> Result<&'a AtomicU64, NoFrame> {
        let mut table = self.root;
        for level in [Level::Pml4, Level::Pdpt] {
            let e = slot(phys, table, level.index(va)).ok_or(NoFrame)?;
            let mut v = Pte(e.load(Ordering::Acquire));
            if !v.present() {
                v = install_table(phys, e, v, self.mm, va & !(level.entry_span() - 1))?;
            }
            table = v.pfn();
        }
        slot(phys, table, Level::Pd.index(va)).ok_or(NoFrame)
    }

    /// The leaf table for `va`, allocating it and the levels above.
    pub fn leaf_table_alloc(&self, phys: &PhysMem, va: u64) -> Result<Pfn, NoFrame> {
        let e = self.pd_entry_alloc(phys, va)?;
        let mut v = Pte(e.load(Ordering::Acquire));
        if !v.present() {
            v = install_table(phys, e, v, self.mm, va & !(Level::Pd.entry_span() - 1))?;
        }
        Ok(v.pfn())
    }

    /// Call `f(span_start, entry)` for every present PD entry whose 2 MiB
    /// span intersects `[start, end)`, in address order, skipping absent
    /// subtrees whole (so a huge range over a sparse tree is cheap).
    pub fn for_each_pd_entry<'a>(
        &self,
        phys: &'a PhysMem,
        start: u64,
        end: u64,
        mut f: impl FnMut(u64, &'a AtomicU64),
    ) {
        if start >= end {
            return;
        }
        for i4 in index_range(Level::Pml4, 0, start, end) {
            let Some(pdpt) = child(phys, self.root, i4) else {
                continue;
            };
            let b4 = i4 as u64 * Level::Pml4.entry_span();
            for i3 in index_range(Level::Pdpt, b4, start, end) {
                let Some(pd) = child(phys, pdpt, i3) else { continue };
                let b3 = b4 + i3 as u64 * Level::Pdpt.entry_span();
                for i2 in index_range(Level::Pd, b3, start, end) {
                    if let Some(e) = slot(phys, pd, i2) {
                        if Pte(e.load(Ordering::Acquire)).present() {
                            f(b3 + i2 as u64 * Level::Pd.entry_span(), e);
                        }
                    }
                }
            }
        }
    }

    /// Call `f(level, table, parent_entry)` for every table of the tree,
    /// root first (with `parent_entry` 0), depth first. `f` returns whether
    /// to descend into the table's children. For the invariant checker.
    pub fn for_each_table(&self, phys: &PhysMem, mut f: impl FnMut(Level, Pfn, Pte) -> bool) {
        fn go(phys: &PhysMem, table: Pfn, level: Level, parent: Pte, f: &mut impl FnMut(Level, Pfn, Pte) -> bool) {
            if !f(level, table, parent) {
                return;
            }
            if let Some(next) = level.next() {
                for idx in 0..512 {
                    let Some(e) = slot(phys, table, idx) else { return };
                    let v = Pte(e.load(Ordering::Acquire));
                    if v.present() {
                        go(phys, v.pfn(), next, v, f);
                    }
                }
            }
        }
        go(phys, self.root, Level::Pml4, Pte(0), &mut f);
    }

    /// The leaf entry for `va`, allocating missing tables on the way.
    /// A table is installed by compare-and-swap; the loser of a race frees
    /// its table and uses the winner's. Linux: `__pte_alloc` and friends.
    #[inline]
    pub fn leaf_alloc<'a>(&self, phys: &'a PhysMem, va: u64) -> Result<LeafRef<'a>, NoFrame> {
        self.leaf_alloc_in(phys, va).map(|(_, e)| e)
    }

    /// `leaf_alloc`, also naming the leaf table's frame (whose lock, under
    /// the `pt_lock` fault policy, guards the entry).
    #[inline]
    pub fn leaf_alloc_in<'a>(&self, phys: &'a PhysMem, va: u64) -> Result<(Pfn, LeafRef<'a>), NoFrame> {
        let ram = phys.ram();
        let mut table = self.root;
        for level in UPPER_LEVELS {
            let e = ram.word(table.first_word() + level.index(va)).ok_or(NoFrame)?;
            let mut v = Pte(e.load(Ordering::Acquire));
            if !v.present() {
                v = install_table(phys, e, v, self.mm, va & !(level.entry_span() - 1))?;
            }
            table = v.pfn();
        }
        let e = ram.word(table.first_word() + Level::Pt.index(va)).ok_or(NoFrame)?;
        Ok((table, LeafRef(e)))
    }

    /// Call `f(va, entry)` for every leaf entry of `[start, end)` whose table
    /// exists, in address order, skipping absent subtrees whole.
    pub fn for_each_leaf<'a>(&self, phys: &'a PhysMem, start: u64, end: u64, mut f: impl FnMut(u64, LeafRef<'a>)) {
        if start < end {
            visit(phys, self.root, Level::Pml4, 0, start, end, &mut f);
        }
    }

    /// Free every table below the root that covers part of `[start, end)` and
    /// holds no entry at all. The caller holds the map lock for writing.
    /// Linux: `free_pgtables`.
    pub fn prune(&self, phys: &PhysMem, start: u64, end: u64) {
        if start < end {
            prune_level(phys, self.root, Level::Pml4, 0, start, end);
        }
    }

    /// Free the whole tree. Leaves must already be zapped: frames they still
    /// map are not released here. The caller must never use this tree again
    /// (`AddressSpace` guarantees it with its `dead` flag).
    pub fn destroy(&self, phys: &PhysMem) {
        free_level(phys, self.root, Level::Pml4);
    }

    /// Page-table pages in the tree, root included (for the invariant checker).
    pub fn count_tables(&self, phys: &PhysMem) -> usize {
        count_level(phys, self.root, Level::Pml4)
    }
}

/// The levels above the leaf, root first.
const UPPER_LEVELS: [Level; 3] = [Level::Pml4, Level::Pdpt, Level::Pd];

/// Install a fresh zeroed table in the non-present entry `e` (whose value was
/// `cur`) and return the entry now in place, the winner's if another CPU
/// installed one first. Off the hot path: a table covers 512 pages or more.
#[cold]
#[inline(never)]
fn install_table(phys: &PhysMem, e: &AtomicU64, cur: Pte, mm: u64, base: u64) -> Result<Pte, NoFrame> {
    let new = phys.alloc_table().ok_or(NoFrame)?;
    if let Some(d) = phys.desc(new) {
        d.set_table_owner(mm, base);
    }
    let want = Pte::new(new, Pte::TABLE_FLAGS);
    match e.compare_exchange(cur.0, want.0, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Ok(want),
        Err(now) => {
            phys.free_table(new);
            Ok(Pte(now))
        }
    }
}

/// Child table of entry `idx` of `table`, if present.
#[inline]
fn child(phys: &PhysMem, table: Pfn, idx: usize) -> Option<Pfn> {
    let v = Pte(slot(phys, table, idx)?.load(Ordering::Acquire));
    v.present().then(|| v.pfn())
}

/// Indices of `level`'s table based at `base` that `[start, end)` touches.
#[inline]
fn index_range(level: Level, base: u64, start: u64, end: u64) -> core::ops::Range<usize> {
    let span = level.entry_span();
    let lo = start.max(base);
    let first = ((lo - base) / span) as usize;
    let last = ((end - 1 - base) / span).min(511) as usize;
    first..last + 1
}

fn visit<'a>(
    phys: &'a PhysMem,
    table: Pfn,
    level: Level,
    base: u64,
    start: u64,
    end: u64,
    f: &mut impl FnMut(u64, LeafRef<'a>),
) {
    let span = level.entry_span();
    for idx in index_range(level, base, start, end) {
        let va = base + idx as u64 * span;
        match level.next() {
            None => {
                if let Some(e) = slot(phys, table, idx) {
                    f(va, LeafRef(e));
                }
            }
            Some(next) => {
                if let Some(c) = child(phys, table, idx) {
                    visit(phys, c, next, va, start, end, f);
                }
            }
        }
    }
}

fn table_empty(phys: &PhysMem, table: Pfn) -> bool {
    phys.ram()
        .frame(table)
        .is_some_and(|f| f.iter().all(|w| w.load(Ordering::Relaxed) == 0))
}

/// Returns whether `table` is empty after pruning its children.
fn prune_level(phys: &PhysMem, table: Pfn, level: Level, base: u64, start: u64, end: u64) -> bool {
    if let Some(next) = level.next() {
        let span = level.entry_span();
        for idx in index_range(level, base, start, end) {
            let Some(c) = child(phys, table, idx) else {
                continue;
            };
            if slot(phys, table, idx)
                .is_some_and(|e| e.load(Ordering::Relaxed) & (Pte::TABLE_COW | Pte::TABLE_OBJ) != 0)
            {
                // A table shared with other address spaces is theirs too.
                continue;
            }
            let va = base + idx as u64 * span;
            if prune_level(phys, c, next, va, start, end) {
                if let Some(e) = slot(phys, table, idx) {
                    e.store(0, Ordering::Release);
                }
                phys.free_table(c);
            }
        }
    }
    table_empty(phys, table)
}

fn free_level(phys: &PhysMem, table: Pfn, level: Level) {
    if let Some(next) = level.next() {
        for idx in 0..512 {
            if let Some(c) = child(phys, table, idx) {
                free_level(phys, c, next);
            }
        }
    }
    phys.free_table(table);
}

fn count_level(phys: &PhysMem, table: Pfn, level: Level) -> usize {
    let mut n = 1;
    if let Some(next) = level.next() {
        for idx in 0..512 {
            if let Some(c) = child(phys, table, idx) {
                n += count_level(phys, c, next);
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phys::FrameAllocatorPolicy;
    use crate::phys::FrameUse;

    #[test]
    fn populate_walk_prune_destroy() {
        let phys = PhysMem::new(1024, FrameAllocatorPolicy::Buddy).unwrap();
        let used0 = phys.frames_used();
        let pt = PageTable::new(&phys, 1).unwrap();
        let va = 0x7fff_1234_5000u64;
        assert!(pt.leaf(&phys, va).is_none());
        let e = pt.leaf_alloc(&phys, va).unwrap();
        e.raw_store(Pte::new(Pfn(9), Pte::PRESENT));
        assert_eq!(pt.count_tables(&phys), 4);
        assert_eq!(phys.page_table_pages(), 4);
        // The same slot is found again, and a neighbour shares the leaf table.
        assert!(pt.leaf(&phys, va).unwrap().same(e));
        pt.leaf_alloc(&phys, va + 4096).unwrap();
        assert_eq!(pt.count_tables(&phys), 4);
        let mut seen = alloc::vec::Vec::new();
        pt.for_each_leaf(&phys, va - 4096, va + 8192, |v, w| {
            if !w.load().is_none() {
                seen.push(v)
            }
        });
        assert_eq!(seen, [va]);
        // A non-empty table survives pruning; an empty one goes.
        pt.prune(&phys, 0, 1 << 47);
        assert_eq!(pt.count_tables(&phys), 4);
        e.raw_store(Pte(0));
        pt.prune(&phys, va, va + 4096);
        assert_eq!(pt.count_tables(&phys), 1);
        pt.destroy(&phys);
        assert_eq!(phys.frames_used(), used0);
        assert_eq!(phys.page_table_pages(), 0);
    }

    #[test]
    fn no_frame_for_tables_is_an_error() {
        let phys = PhysMem::new(16, FrameAllocatorPolicy::Buddy).unwrap();
        let pt = PageTable::new(&phys, 1).unwrap();
        let mut held = alloc::vec::Vec::new();
        while let Some(p) = phys.alloc_frames(1, 1, FrameUse::Kernel) {
            held.push(p);
        }
        assert_eq!(pt.leaf_alloc(&phys, 0x1000).err(), Some(NoFrame));
        for p in held {
            assert!(phys.put(p));
        }
        assert!(pt.leaf_alloc(&phys, 0x1000).is_ok());
    }
}
