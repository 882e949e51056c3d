//! Page-table pages shared between address spaces (fork policy
//! `shared_pt`; the 2.5.49-mm shared page-table patch of seeds 001/003), in
//! two kinds:
//! - copy-on-write tables (`Pte::TABLE_COW`): fork lets the child reach the
//!   parent's leaf tables; described below;
//! - object tables (`Pte::TABLE_OBJ`): address spaces that map the same
//!   2 MiB-aligned block of a shared memory object (a MAP_SHARED file or
//!   shared anonymous memory), with the same protection, reach one leaf table
//!   for it, fork or not (seed 003's "large Oracle server"). Faults fill it
//!   for all of them. Each object keeps the registry of its tables
//!   (`MemObject::shared_tables`). Their frames count in no one's `rss`.
//!
//! Either kind is left (copied into a private table) before any mapping
//! change over its span, and detached without copying at exit and exec.
//!
//! A shared leaf table is reached from the PD entry of every address space
//! that shares it, with WRITE clear and `Pte::TABLE_COW` set there; its frame
//! descriptor's `refcount` is the number of such PD entries.
//!
//! Invariants:
//! - A shared table is frozen: no one changes its entries except to clear
//!   WRITE (when a sharer leaves with a copy), to set ACCESSED (a walk), and
//!   reclaim, which clears ACCESSED (aging) and replaces a frame by its swap
//!   entry or by nothing, in place for every sharer at once, flushing every
//!   sharer's CPUs (`Rmap::unmap_for_reclaim`; the owner's rss loses the frame).
//!   Any fault in its span, and any mapping change (mmap, munmap, mprotect,
//!   brk) over it, first gives the address space its own copy
//!   (`unshare_table_locked`). So an address space's view of a shared table
//!   is exactly what it was at fork.
//! - Frames mapped from a shared table count one mapping (one PTE) however
//!   many address spaces reach it. They count in the `rss` of one sharer at
//!   most, the table's owner (its descriptor's `mapping` holds the owner's
//!   address-space id; 0 for none): the address space that first shared it.
//!   A sharer that leaves with a copy counts the copy's frames from then on;
//!   the owner leaving leaves the table ownerless. So sharing a table costs
//!   the same whatever it maps: fork never reads the 512 entries.
//!   A table's frames lose their mapping when its last sharer leaves.

use super::address_space::{AddressSpace, MapState};
use super::fork::table_frames;
use super::object::MemObject;
use super::object::SharedTable;
use super::pte_ops::{self, Rss};
use super::vma::{Backing, VmFlags, Vma};
use super::vma_map::VmaMap;
use crate::addr::{vpn, Pfn, PAGE_SIZE};
use crate::mm::fault::NO_CPU;
use crate::pgtable::{leaf_slot, NoFrame, Pte};
use crate::phys::{Owner, PhysMem};
use crate::sync::Arc;
use crate::sync::{AtomicU64, Ordering};
use crate::tlb::PendingFlush;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// Bytes one leaf table covers.
pub const PD_SPAN: u64 = 1 << 21;

/// The span and object block of `addr` if `vma` maps that whole 2 MiB block
/// of a shared object, aligned to 2 MiB in the object too.
fn object_block(vma: &Vma, addr: u64) -> Option<(u64, u64)> {
    let span = addr & !(PD_SPAN - 1);
    let pages_per_table = PD_SPAN / PAGE_SIZE;
    if span < vma.start || span + PD_SPAN > vma.end || !vma.flags.has(VmFlags::SHARED) || !vma.prot.accessible() {
        return None;
    }
    let pg = vma.pgoff_of(span);
    pg.is_multiple_of(pages_per_table)
        .then_some((span, pg / pages_per_table))
}

/// Registry key of an object table.
fn object_key(block: u64, prot: u8) -> (u64, u8) {
    (block, prot)
}

/// The registry key under which `obj` keeps object table `table` (an object
/// has a few tables: one per 2 MiB block and protection mapped).
fn key_of_table(reg: &BTreeMap<(u64, u8), SharedTable>, table: Pfn) -> Option<(u64, u8)> {
    reg.iter().find(|(_, t)| t.table == table).map(|(k, _)| *k)
}

/// The object mapped at `span`, if a shared object VMA covers it.
fn object_at(st: &MapState, span: u64) -> Option<Arc<MemObject>> {
    match st.vmas.find(span).filter(|v| v.start <= span).map(|v| &v.backing) {
        Some(Backing::Object(o)) => Some(o.clone()),
        _ => None,
    }
}

/// Drop address space `mm`'s reference (from its PD entry at `span`) to
/// object table `table`; the last one removes it from the registry and
/// releases it.
fn put_object_table(phys: &PhysMem, obj: &MemObject, table: Pfn, (mm, span): (u64, u64), flush: &mut PendingFlush) {
    let Some(td) = phys.desc(table) else { return };
    let mut reg = obj.shared_tables.lock();
    let key = key_of_table(&reg, table);
    if let Some(t) = key.and_then(|k| reg.get_mut(&k)) {
        if let Some(i) = t.sharers.iter().position(|&s| s == (mm, span)) {
            t.sharers.swap_remove(i);
        }
    }
    if td.refcount.fetch_sub(1, Ordering::AcqRel) == 1 {
        if let Some(k) = key {
            reg.remove(&k);
        }
        drop(reg);
        release_table(phys, table, flush);
    }
}

/// The other address spaces that reach object table `table` of `obj`, as
/// (id, first vpn, last vpn) of their span: where a change `mm` makes in
/// the table must be shot down too.
pub(crate) fn object_table_sharers(obj: &MemObject, table: Pfn, mm: u64) -> Vec<(u64, u64, u64)> {
    let reg = obj.shared_tables.lock();
    key_of_table(&reg, table)
        .and_then(|k| reg.get(&k))
        .map(|t| {
            t.sharers
                .iter()
                .filter(|&&(id, _)| id != mm)
                .map(|&(id, span)| (id, vpn(span), vpn(span + PD_SPAN - PAGE_SIZE)))
                .collect()
        })
        .unwrap_or_default()
}

impl AddressSpace {
    /// Make `child` reach this address space's leaf table for the span at
    /// `span`, copy-on-write at the table level. Returns whether there was a
    /// table to share. The parent's translations of the span lose write
    /// permission, so the span goes into `flush`.
    pub(crate) fn share_table_with(
        &self,
        phys: &PhysMem,
        child: &AddressSpace,
        span: u64,
        flush: &mut PendingFlush,
    ) -> Result<bool, crate::errno::Errno> {
        let Some(pe) = self.page_table().pd_entry(phys, span) else {
            return Ok(false);
        };
        let cur = Pte(pe.load(Ordering::Acquire));
        if !cur.present() {
            return Ok(false);
        }
        let ce = child
            .page_table()
            .pd_entry_alloc(phys, span)
            .map_err(|_| crate::errno::Errno::ENOMEM)?;
        let table = cur.pfn();
        let Some(td) = phys.desc(table) else { return Ok(false) };
        // From now on a fault of either may unshare a table the other's CPUs
        // walk: both mark their walks (`phys::WalkTracker`).
        self.set_shares_tables_locked();
        child.set_shares_tables_locked();
        if cur.0 & Pte::TABLE_COW == 0 {
            let _ = pe.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                Some((v & !Pte::WRITE) | Pte::TABLE_COW)
            });
            flush.add_page(vpn(span));
            flush.add_page(vpn(span + PD_SPAN - PAGE_SIZE));
        }
        phys.table_share(table, self.id, child.id);
        if td.refcount.fetch_add(1, Ordering::AcqRel) == 1 && cur.0 & Pte::TABLE_COW == 0 {
            // First shared now: its frames stay in the parent's rss. A table
            // still shared copy-on-write by its last sharer keeps its owner,
            // or none if the owner left (its frames are in no one's rss).
            td.set_owner(Owner::PageTable { mm: self.id });
        }
        ce.store(
            Pte::new(table, (Pte::TABLE_FLAGS & !Pte::WRITE) | Pte::TABLE_COW).0,
            Ordering::Release,
        );
        Ok(true)
    }

    /// Give this address space its own copy of the shared leaf table behind
    /// PD entry `pe` (span `span`). The sole remaining sharer just takes the
    /// table back. Private frames end up write-protected in both tables, so
    /// the usual page copy-on-write applies next.
    ///
    /// Preconditions: `st` is `self.map`, held for reading or writing.
    pub(crate) fn unshare_table_locked(
        &self,
        st: &MapState,
        phys: &PhysMem,
        span: u64,
        pe: &AtomicU64,
        flush: &mut PendingFlush,
    ) -> Result<(), NoFrame> {
        loop {
            let cur = Pte(pe.load(Ordering::Acquire));
            if cur.0 & Pte::TABLE_COW == 0 || !cur.present() {
                return Ok(());
            }
            let table = cur.pfn();
            let Some(td) = phys.desc(table) else { return Ok(()) };
            let owned = td.owner() == Owner::PageTable { mm: self.id };
            if td.refcount.load(Ordering::Acquire) == 1 {
                let mine = cur.without(Pte::TABLE_COW).with(Pte::WRITE);
                if pe
                    .compare_exchange(cur.0, mine.0, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    if !owned {
                        self.rss.add(NO_CPU, table_frames(phys, table));
                    }
                    // Private again: its own address space's, as every private table.
                    td.set_table_owner(self.id, span);
                    phys.table_unshared(table);
                    return Ok(());
                }
                continue;
            }
            let copy = phys.alloc_table().ok_or(NoFrame)?;
            if let Some(cd) = phys.desc(copy) {
                cd.set_table_owner(self.id, span);
            }
            for idx in 0..512 {
                let (Some(e), Some(ce)) = (leaf_slot(phys, table, idx), leaf_slot(phys, copy, idx)) else {
                    break;
                };
                let v = e.load();
                if v.is_none() {
                    continue;
                }
                let mut out = v;
                if v.maps_frame() && !v.special() {
                    let va = span + idx as u64 * PAGE_SIZE;
                    let shared = st
                        .vmas
                        .find(va)
                        .is_some_and(|m| m.contains(va) && m.flags.has(VmFlags::SHARED));
                    if !shared && v.writable() {
                        // The frozen table's entries only lose WRITE; no
                        // sharer caches them writable (the PD entry is not).
                        pte_ops::update(e, va, None, |p| Some(p.without(Pte::WRITE)));
                        out = out.without(Pte::WRITE);
                    }
                }
                if !self.dup_if_swap(out) {
                    // The slot is at its limit: leave the entry behind
                    // (the page reads as zeros here).
                    continue;
                }
                // The copy's frames join this address space's rss below, as a whole.
                pte_ops::copy_into(phys, Rss::None, ce, out);
            }
            let want = Pte::new(copy, Pte::TABLE_FLAGS);
            if pe
                .compare_exchange(cur.0, want.0, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                // Another CPU of this address space unshared it first.
                release_table(phys, copy, flush);
                continue;
            }
            // The copy's frames are this address space's from now on.
            if owned {
                td.set_owner(Owner::PageTable { mm: 0 });
            } else {
                self.rss.add(NO_CPU, table_frames(phys, copy));
            }
            phys.table_leave(table, self.id);
            if td.refcount.fetch_sub(1, Ordering::AcqRel) == 1 {
                release_table(phys, table, flush);
            }
            return Ok(());
        }
    }

    /// Before a fault in a shared object VMA at `addr`: if this address space
    /// has no leaf table there yet and the VMA maps a whole 2 MiB block of the
    /// object, reach the object's table for that block (creating it if no
    /// one has). Returns whether the leaf table at `addr` is an object table.
    ///
    /// Preconditions: `self.map` is held (for reading suffices).
    pub(crate) fn attach_object_table_locked(
        &self,
        phys: &PhysMem,
        vma: &Vma,
        obj: &MemObject,
        addr: u64,
    ) -> Result<bool, NoFrame> {
        let Some((_, block)) = object_block(vma, addr) else {
            return Ok(self
                .page_table()
                .pd_entry(phys, addr)
                .is_some_and(|pe| pe.load(Ordering::Acquire) & Pte::TABLE_OBJ != 0));
        };
        let pe = self.page_table().pd_entry_alloc(phys, addr)?;
        let cur = Pte(pe.load(Ordering::Acquire));
        if cur.present() {
            return Ok(cur.0 & Pte::TABLE_OBJ != 0);
        }
        // The key's high bit: execute-only (its entries carry the key).
        let exec_only = if vma.flags.has(VmFlags::PKEY_EXEC_ONLY) {
            0x80
        } else {
            0
        };
        let key = object_key(block, vma.prot.0 | exec_only);
        let mut flags = Pte::TABLE_FLAGS | Pte::TABLE_OBJ;
        if !vma.prot.write() {
            flags &= !Pte::WRITE;
        }
        let span = addr & !(PD_SPAN - 1);
        let mut reg = obj.shared_tables.lock();
        let (table, fresh) = match reg.get(&key) {
            Some(t) => (t.table, false),
            None => (phys.alloc_table().ok_or(NoFrame)?, true),
        };
        if pe
            .compare_exchange(cur.0, Pte::new(table, flags).0, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // Another CPU of this address space put a table here first.
            if fresh {
                phys.free_table(table);
            }
            return Ok(pe.load(Ordering::Acquire) & Pte::TABLE_OBJ != 0);
        }
        let Some(td) = phys.desc(table) else { return Ok(true) };
        if fresh {
            td.set_owner(Owner::ObjectTable { object: obj.id().0 });
            reg.insert(
                key,
                SharedTable {
                    table,
                    sharers: alloc::vec![(self.id, span)],
                },
            );
        } else {
            td.refcount.fetch_add(1, Ordering::AcqRel);
            if let Some(t) = reg.get_mut(&key) {
                t.sharers.push((self.id, span));
            }
        }
        Ok(true)
    }

    /// Leave the object table behind PD entry `pe` with a private copy of it
    /// (its frames join this address space's `rss`).
    ///
    /// Preconditions: `st` is `self.map`, held for writing.
    fn unshare_object_table_locked(
        &self,
        st: &MapState,
        phys: &PhysMem,
        span: u64,
        pe: &AtomicU64,
        flush: &mut PendingFlush,
    ) -> Result<(), NoFrame> {
        let cur = Pte(pe.load(Ordering::Acquire));
        if cur.0 & Pte::TABLE_OBJ == 0 {
            return Ok(());
        }
        // Mapping changes come after unsharing, so the object VMA is still here.
        let Some(obj) = object_at(st, span) else { return Ok(()) };
        let table = cur.pfn();
        let copy = phys.alloc_table().ok_or(NoFrame)?;
        if let Some(cd) = phys.desc(copy) {
            cd.set_table_owner(self.id, span);
        }
        for idx in 0..512 {
            let (Some(e), Some(ce)) = (leaf_slot(phys, table, idx), leaf_slot(phys, copy, idx)) else {
                break;
            };
            let v = e.load();
            if !v.is_none() {
                pte_ops::copy_into(phys, Rss::None, ce, v);
            }
        }
        pe.store(Pte::new(copy, Pte::TABLE_FLAGS).0, Ordering::Release);
        self.rss.add(NO_CPU, table_frames(phys, copy));
        // Stale translations of the old table would still work (same
        // frames), but the span's permissions may change next.
        flush.add_page(vpn(span));
        flush.add_page(vpn(span + PD_SPAN - PAGE_SIZE));
        put_object_table(phys, &obj, table, (self.id, span), flush);
        Ok(())
    }

    /// Unshare every shared table whose span meets `[start, end)`: a mapping
    /// change there must not reach the other sharers.
    ///
    /// Preconditions: `st` is `self.map`, held for writing.
    pub(crate) fn unshare_range_locked(
        &self,
        st: &MapState,
        phys: &PhysMem,
        start: u64,
        end: u64,
        flush: &mut PendingFlush,
    ) -> Result<(), NoFrame> {
        let mut result = Ok(());
        self.page_table().for_each_pd_entry(phys, start, end, |span, pe| {
            let v = pe.load(Ordering::Acquire);
            if result.is_ok() && v & Pte::TABLE_COW != 0 {
                result = self.unshare_table_locked(st, phys, span, pe, flush);
            } else if result.is_ok() && v & Pte::TABLE_OBJ != 0 {
                result = self.unshare_object_table_locked(st, phys, span, pe, flush);
            }
        });
        result
    }

    /// Leave every shared table in `[start, end)` without copying it (exit,
    /// exec): clear the PD entry, drop the reference, and release the table
    /// if this was the last one.
    ///
    /// Preconditions: `self.map` is held for writing.
    pub(crate) fn detach_shared_tables_locked(
        &self,
        st: &MapState,
        phys: &PhysMem,
        start: u64,
        end: u64,
        flush: &mut PendingFlush,
    ) {
        self.page_table().for_each_pd_entry(phys, start, end, |span, pe| {
            let cur = Pte(pe.load(Ordering::Acquire));
            if cur.0 & Pte::TABLE_OBJ != 0 {
                if let Some(obj) = object_at(st, span) {
                    pe.store(0, Ordering::Release);
                    flush.add_page(vpn(span));
                    flush.add_page(vpn(span + PD_SPAN - PAGE_SIZE));
                    put_object_table(phys, &obj, cur.pfn(), (self.id, span), flush);
                }
                return;
            }
            if cur.0 & Pte::TABLE_COW == 0 {
                return;
            }
            pe.store(0, Ordering::Release);
            let table = cur.pfn();
            if let Some(d) = phys.desc(table) {
                if d.owner() == (Owner::PageTable { mm: self.id }) {
                    self.rss.sub(NO_CPU, table_frames(phys, table));
                    d.set_owner(Owner::PageTable { mm: 0 });
                }
            }
            flush.add_page(vpn(span));
            flush.add_page(vpn(span + PD_SPAN - PAGE_SIZE));
            phys.table_leave(table, self.id);
            if phys
                .desc(table)
                .is_some_and(|d| d.refcount.fetch_sub(1, Ordering::AcqRel) == 1)
            {
                release_table(phys, table, flush);
            }
        });
    }
}

/// Drop the mappings of a leaf table no one reaches any more and free it.
/// Its frames' references go into `flush`, released after the shootdown.
fn release_table(phys: &PhysMem, table: Pfn, flush: &mut PendingFlush) {
    // No address space reaches the table, so no TLB holds its entries by
    // `va`: the flush only carries the frames (a store made through the
    // table still reaches the file: `clear` moves the dirty bit).
    let mut frames = PendingFlush::default();
    for idx in 0..512 {
        if let Some(e) = leaf_slot(phys, table, idx) {
            if !e.load().is_none() {
                pte_ops::clear(phys, Rss::None, e, 0, &mut frames);
            }
        }
    }
    flush.frames.append(&mut frames.frames);
    flush.swap.append(&mut frames.swap);
    // A CPU of a former sharer may have read the parent entry before it was
    // cleared and still be walking the table (a fault unshares it holding
    // only the read lock): free it after every such walk.
    phys.free_table_after_walks(table);
}
