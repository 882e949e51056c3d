//! One process's address space: VMA map + page table, and the mechanisms the
//! syscalls share (split, merge, zap a range, change protection, teardown).
//!
//! Lock order (outermost first):
//! ```text
//! AddressSpace::map (RwLock, "mmap_lock")
//!   page-table entries (atomic words; updated by compare-and-swap)
//!     Zone::alloc (Mutex, leaf)
//! ```
//! Syscalls hold `map` for writing; faults hold it for reading and install
//! PTEs by compare-and-swap. Functions that need `map` held end in `_locked`
//! and take the guarded `MapState` as an argument.

use super::fault::NO_CPU;
use super::pte_ops::{self, Markers, Rss};
use super::rmap::identities::{Identities, Listed};
use super::stack::Rlimit;
use super::vma::{Backing, Prot, VmFlags, Vma};
use super::vma_map::{VmaMap, VmaMapPolicy, VmaTree};
use crate::addr::{vpn, PAGE_SIZE, TASK_SIZE};
use crate::errno::{Errno, SysResult};
use crate::pgtable::{NoFrame, PageTable, Pte};
use crate::phys::PhysMem;
use crate::sync::{AtomicBool, AtomicU64, BrLock, Mutex, Ordering, PerCpuCounter};
use crate::tlb::PendingFlush;
use alloc::vec::Vec;

/// Per-address-space settings from config.
#[derive(Clone)]
pub struct AddressSpaceParams {
    pub vma_map: VmaMapPolicy,
    /// Linux `vm.max_map_count`.
    pub max_map_count: usize,
    /// Top of the mmap area (`mm->mmap_base`); top-down placement starts below it.
    pub mmap_base: u64,
    /// Start of the brk heap (`mm->start_brk`).
    pub start_brk: u64,
    /// Frames a private writable mapping may not exceed (Linux's overcommit
    /// heuristic compares against RAM + swap).
    pub commit_limit_pages: u64,
    /// RLIMIT_STACK: how far a `VM_GROWSDOWN` VMA may grow (`stack.rs`).
    pub stack_rlimit: Rlimit,
    /// RLIMIT_MEMLOCK: how much a process may lock (`mlock.rs`).
    pub memlock_rlimit: Rlimit,
    /// CPUs of the machine (slots of the per-CPU counters).
    pub cpus: usize,
    /// The CPU has protection keys and the kernel uses them (x86 `pku` and
    /// `ospke`): exactly-`PROT_EXEC` memory is execute-only.
    pub pkeys: bool,
    /// The machine's swap object, if it swaps: copying a swap entry out of
    /// a fork-shared table takes a slot reference from its area.
    pub swap: Option<crate::sync::Arc<super::object::MemObject>>,
}

/// State protected by the map lock. Linux: the fields of `mm_struct` under `mmap_lock`.
pub struct MapState {
    pub vmas: VmaTree,
    pub mmap_base: u64,
    pub start_brk: u64,
    pub brk: u64,
    pub max_map_count: usize,
    pub commit_limit_pages: u64,
    /// RLIMIT_STACK of the process (Linux keeps rlimits in `signal_struct`;
    /// a vmlab process is one address space). Inherited by fork, kept by exec.
    pub stack_rlimit: Rlimit,
    /// RLIMIT_MEMLOCK of the process (bytes a vmlab process, never
    /// privileged, may lock). Inherited by fork, kept by exec.
    pub memlock_rlimit: Rlimit,
    /// Flags every new VMA gets (`mm->def_flags`): `VmFlags::LOCKED` (and
    /// `LOCKONFAULT`) after `mlockall(MCL_FUTURE)`. Not inherited by fork,
    /// cleared by exec (Linux `mm_init` keeps only `VM_INIT_DEF_MASK`).
    pub def_flags: u32,
    /// Set by `teardown`: the page table is gone and every access faults.
    pub dead: bool,
}

/// An address space. Linux: `struct mm_struct`; FreeBSD: `struct vmspace`.
pub struct AddressSpace {
    /// Unique id (what an ASID would be).
    pub id: u64,
    /// The page table; its root never changes.
    pt: PageTable,
    /// The mmap lock and everything it protects.
    pub map: BrLock<MapState>,
    /// Bit i set: CPU i may hold translations of this address space in its TLB
    /// (Linux `mm_cpumask`). Set by a CPU when it switches to the address space.
    pub cpu_mask: AtomicU64,
    /// Held for the whole of each fault under the `mm_lock` fault policy
    /// (Linux 2.4's `mm->page_table_lock`); unused by the other policies.
    /// Lock order: inside `map`; only frame allocation is done under it.
    pub page_table_lock: Mutex<()>,
    /// Frames mapped (zero page excluded), anonymous and page-cache alike,
    /// counted per CPU so that threads faulting at once do not share a line.
    /// Linux: `MM_ANONPAGES` + `MM_FILEPAGES` + `MM_SHMEMPAGES` (`percpu_counter`).
    pub rss: PerCpuCounter,
    /// Swap entries in this address space's own page tables. Linux: `MM_SWAPENTS`.
    pub swapents: PerCpuCounter,
    /// The machine's swap object (`AddressSpaceParams::swap`).
    pub(crate) swap: Option<crate::sync::Arc<super::object::MemObject>>,
    /// Protection keys are in use (`AddressSpaceParams::pkeys`); fixed at creation.
    pub pkeys: bool,
    /// Some leaf table of this address space is, or was, shared by fork
    /// (`TABLE_COW`): its CPUs' walks must be marked (`phys::WalkTracker`).
    /// Set by fork with both map locks held for writing; never cleared.
    shares_tables: AtomicBool,
    /// Identities and objects whose VMAs `unmap_locked` removed since the
    /// last `take_retired` (the machine settles them with the reverse
    /// map's records after the syscall). A leaf lock.
    retired: Mutex<Vec<Listed>>,
}

impl AddressSpace {
    /// The counts a PTE change in this address space's own tables keeps,
    /// on CPU slot `cpu` (`pte_ops::Rss`).
    #[inline]
    pub(crate) fn counts_on(&self, cpu: usize) -> Rss<'_> {
        Rss::Of(&self.rss, &self.swapents, cpu)
    }

    /// Take the extra slot reference that copying swap entry `p` into
    /// another table needs (`pte_ops::copy_into`); `true` for any other
    /// entry. `false`: the slot is at its count limit.
    pub(crate) fn dup_if_swap(&self, p: Pte) -> bool {
        if !pte_ops::is_swap(p) {
            return true;
        }
        self.swap
            .as_ref()
            .and_then(|s| s.swap_area())
            .is_some_and(|a| a.dup(p.swap_entry()).is_ok())
    }

    /// The `VmFlags::PKEY_EXEC_ONLY` bit a mapping with protection `prot`
    /// (the caller's bits, before masking) gets: Linux gives exactly
    /// `PROT_EXEC` the execute-only key (`do_mmap`,
    /// `arch_override_mprotect_pkey`) and any other protection key 0.
    /// Whether walks of this address space need marking (see `shares_tables`).
    #[inline]
    pub fn shares_tables(&self) -> bool {
        self.shares_tables.load(Ordering::Relaxed)
    }

    /// Record that a leaf table of this address space is shared by fork.
    /// Preconditions: the map lock is held for writing.
    pub(crate) fn set_shares_tables_locked(&self) {
        self.shares_tables.store(true, Ordering::Relaxed);
    }

    pub fn pkey_flag_for(&self, prot: u32) -> u32 {
        if self.pkeys && prot == crate::mm::uapi::PROT_EXEC {
            VmFlags::PKEY_EXEC_ONLY
        } else {
            0
        }
    }

    /// An empty address space.
    pub fn new(phys: &PhysMem, id: u64, p: AddressSpaceParams) -> Result<AddressSpace, NoFrame> {
        Ok(AddressSpace {
            id,
            pt: PageTable::new(phys, id)?,
            map: BrLock::new(
                p.cpus,
                MapState {
                    vmas: VmaTree::new(p.vma_map),
                    mmap_base: p.mmap_base,
                    start_brk: p.start_brk,
                    brk: p.start_brk,
                    max_map_count: p.max_map_count,
                    commit_limit_pages: p.commit_limit_pages,
                    stack_rlimit: p.stack_rlimit,
                    memlock_rlimit: p.memlock_rlimit,
                    def_flags: 0,
                    dead: false,
                },
            ),
            cpu_mask: AtomicU64::new(0),
            page_table_lock: Mutex::new(()),
            rss: PerCpuCounter::new(p.cpus),
            swapents: PerCpuCounter::new(p.cpus),
            swap: p.swap.clone(),
            pkeys: p.pkeys,
            shares_tables: AtomicBool::new(false),
            retired: Mutex::new(Vec::new()),
        })
    }

    /// Note that VMA `v` was removed: its identity and object may no
    /// longer be mapped here.
    pub(crate) fn retire_vma_locked(&self, v: &Vma) {
        let mut r = self.retired.lock();
        if v.anon_id() != 0 {
            r.push(Listed::Anon(v.anon_id()));
        }
        if let Some(o) = v.backing.object() {
            r.push(Listed::Object(o.id().0));
        }
    }

    /// What `retire_vma_locked` noted since the last call.
    pub(crate) fn take_retired(&self) -> Vec<Listed> {
        core::mem::take(&mut *self.retired.lock())
    }

    /// The page table.
    #[inline]
    pub fn page_table(&self) -> &PageTable {
        &self.pt
    }

    /// Unmap everything and free the page table, root included; afterwards
    /// every access faults. Idempotent. Linux: `exit_mmap`.
    pub fn teardown(&self, phys: &PhysMem, flush: &mut PendingFlush) {
        let mut st = self.map.write();
        if st.dead {
            return;
        }
        self.clear_locked(&mut st, phys, flush);
        // The map lock is held for writing and `dead` is set before it is
        // released, so no walker can reach the freed tables.
        self.pt.destroy(phys);
        st.dead = true;
    }

    /// Unmap everything and free every table but the root, leaving an empty
    /// address space (what `exec` starts from). Linux: `exec_mmap` swaps in a
    /// fresh `mm_struct`; the effect is the same.
    pub fn reset(&self, phys: &PhysMem, flush: &mut PendingFlush) {
        let mut st = self.map.write();
        if st.dead {
            return;
        }
        self.clear_locked(&mut st, phys, flush);
        self.pt.prune(phys, 0, TASK_SIZE);
        st.brk = st.start_brk;
        st.def_flags = 0;
    }

    /// Leave shared tables, then remove and zap every VMA.
    fn clear_locked(&self, st: &mut MapState, phys: &PhysMem, flush: &mut PendingFlush) {
        self.detach_shared_tables_locked(st, phys, 0, TASK_SIZE, flush);
        for s in st.vmas.starts_in(0, TASK_SIZE) {
            if let Some(v) = st.vmas.remove(s) {
                self.zap_range(phys, v.start, v.end, flush);
            }
        }
    }

    /// Split the VMA that strictly contains `addr` so that a VMA boundary lies at `addr`.
    pub fn split_at_locked(st: &mut MapState, addr: u64) {
        if let Some(v) = st.vmas.find_mut(addr) {
            if v.start < addr && addr < v.end {
                let tail = v.split_off(addr);
                st.vmas.insert(tail);
            }
        }
    }

    /// The VMA that contains `addr`. Linux: `vma_lookup`.
    pub fn vma_lookup(st: &MapState, addr: u64) -> Option<&Vma> {
        st.vmas.find(addr).filter(|v| v.start <= addr)
    }

    /// Give `[start, end)`, which lies inside one VMA, the flags `flags`:
    /// split at the ends and merge with the neighbours as Linux's
    /// `vma_modify_flags` does. A split is refused (ENOMEM; a split already
    /// made stays) when the map count is at its limit, unless the piece, at
    /// one end of its VMA, merges into the neighbour on that side and so adds
    /// no VMA (`vma_merge_existing_range` before `split_vma`).
    pub(crate) fn modify_flags_locked(st: &mut MapState, start: u64, end: u64, flags: VmFlags) -> SysResult<()> {
        let Some(v) = Self::vma_lookup(st, start).filter(|v| end <= v.end) else {
            return Ok(());
        };
        if v.flags == flags {
            return Ok(());
        }
        let need_front = v.start < start;
        let need_back = end < v.end;
        let mut piece = v.clone();
        piece.pgoff = v.pgoff_of(start);
        piece.start = start;
        piece.end = end;
        piece.flags = flags;
        let absorbed = match (need_front, need_back) {
            (false, true) => st.vmas.prev(start).is_some_and(|p| p.can_merge_with_next(&piece)),
            (true, false) => st.vmas.find(end).is_some_and(|n| piece.can_merge_with_next(n)),
            _ => false,
        };
        for (needed, at) in [(need_front, start), (need_back, end)] {
            if needed {
                if !absorbed && st.vmas.len() >= st.max_map_count {
                    return Err(Errno::ENOMEM);
                }
                Self::split_at_locked(st, at);
            }
        }
        if let Some(v) = st.vmas.find_mut(start) {
            v.flags = flags;
        }
        Self::merge_range_locked(st, start, end);
        Ok(())
    }

    /// Merge neighbouring VMAs that Linux would have merged, over the
    /// boundaries that lie in `[start, end]`. Linux: the `vma_merge_*` calls of
    /// `mmap_region`, `mprotect_fixup` and `do_brk_flags`.
    pub fn merge_range_locked(st: &mut MapState, start: u64, end: u64) {
        // The VMA ending at or containing `start` is the first candidate.
        let mut cur = match st.vmas.prev(start.max(1)) {
            Some(v) => v.start,
            None => match st.vmas.find(start) {
                Some(v) => v.start,
                None => return,
            },
        };
        loop {
            let Some(v) = st.vmas.find(cur) else { return };
            let v_end = v.end;
            if v_end > end {
                return;
            }
            let Some(n) = st.vmas.find(v_end) else { return };
            let n_start = n.start;
            if !(n_start == v_end && v.can_merge_with_next(n)) {
                // Not mergeable, or a hole after `v`: go on from the next VMA.
                cur = n_start;
                continue;
            }
            let Some(n) = st.vmas.remove(v_end) else {
                return;
            };
            if let Some(v) = st.vmas.find_mut(cur) {
                v.end = n.end;
                if v.anon_id() == 0 {
                    // The merged VMA adopts the identity, chain and all.
                    v.anon.store(n.anon_id(), Ordering::Release);
                    v.anon_forked = n.anon_forked;
                }
            }
        }
    }

    /// The anonymous identity of `vma` (a VMA of `st`), assigned now if it
    /// has none: that of the next, else the previous, adjacent VMA if the two
    /// are `anon_compatible_with_next`, else a fresh one from `next_id`.
    /// Called when a fault is about to need an anonymous page, so that two
    /// VMAs that differ only in protection and were written side by side
    /// share an identity and merge once their protections agree.
    /// Linux: `anon_vma_prepare` → `find_mergeable_anon_vma`, which reuses
    /// only an `anon_vma` whose chain is singular (`reusable_anon_vma`): not
    /// one a fork child inherited (`Vma::anon_forked`). The identity taken
    /// is never chained, so `anon_forked` stays false.
    ///
    /// Preconditions: `st` is the map lock, held for reading or writing.
    pub fn prepare_anon_locked(st: &MapState, vma: &Vma, ids: &Identities, mm: u64) -> u64 {
        let id = vma.anon_id();
        if id != 0 {
            return id;
        }
        let neighbour = |v: Option<&Vma>| v.filter(|v| !v.anon_forked).map_or(0, |v| v.anon_id());
        let mut reuse = neighbour(st.vmas.find(vma.end).filter(|n| vma.anon_compatible_with_next(n)));
        if reuse == 0 {
            reuse = neighbour(st.vmas.prev(vma.start).filter(|p| p.anon_compatible_with_next(vma)));
        }
        let new = if reuse != 0 { reuse } else { ids.new_anon(mm) };
        match vma.anon.compare_exchange(0, new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => new,
            Err(winner) => {
                if reuse == 0 {
                    ids.drop_anon(new);
                }
                winner
            }
        }
    }

    /// Clear every PTE of `[start, end)`, dropping mapcounts (a dirty PTE
    /// leaves its page-cache page dirty), and collect the frames to release
    /// once the TLBs are flushed. Page-table pages are
    /// pruned afterwards by the caller. Linux: `zap_page_range` /
    /// `zap_pte_range` into an `mmu_gather`.
    /// Guard markers go too (munmap, exit, exec, MAP_FIXED: Linux
    /// `ZAP_FLAG_DROP_MARKER`); `zap_range_keeping_guards` leaves them.
    pub fn zap_range(&self, phys: &PhysMem, start: u64, end: u64, flush: &mut PendingFlush) {
        self.zap_range_with(phys, start, end, Markers::Drop, flush, |_| true);
    }

    /// `zap_range` for MADV_DONTNEED / MADV_DONTNEED_LOCKED:
    /// guard markers stay (Linux `madvise_dontneed_single_vma`'s
    /// `zap_details` has no `ZAP_FLAG_DROP_MARKER`).
    pub fn zap_range_keeping_guards(&self, phys: &PhysMem, start: u64, end: u64, flush: &mut PendingFlush) {
        self.zap_range_with(phys, start, end, Markers::Keep, flush, |_| true);
    }

    /// `zap_range` of only the entries `pick` chooses (it sees each
    /// non-empty entry before it is cleared), keeping guard markers (a
    /// truncation or hole punch takes the file's pages, not the mapping's
    /// markers). The map lock is held for writing, so no walk changes an
    /// entry between the look and the zap.
    pub(crate) fn zap_range_if(
        &self,
        phys: &PhysMem,
        start: u64,
        end: u64,
        flush: &mut PendingFlush,
        pick: impl Fn(Pte) -> bool,
    ) {
        self.zap_range_with(phys, start, end, Markers::Keep, flush, pick);
    }

    fn zap_range_with(
        &self,
        phys: &PhysMem,
        start: u64,
        end: u64,
        markers: Markers,
        flush: &mut PendingFlush,
        pick: impl Fn(Pte) -> bool,
    ) {
        self.pt.for_each_leaf(phys, start, end, |va, e| {
            let cur = e.load();
            if cur.is_none() || !pick(cur) {
                return;
            }
            // A store through a shared mapping leaves the page dirty.
            pte_ops::zap(phys, self.counts_on(NO_CPU), e, va, markers, flush);
        });
    }

    /// Clear the PTEs of `[start, end)` that map page-cache pages of object
    /// `id`, leaving private copies (anonymous frames) mapped, after
    /// unsharing the shared page tables over the range; empty tables are
    /// freed. ENOMEM if no frame is free for a table copy. Linux:
    /// `unmap_mapping_range` without `even_cows` (`zap_details`).
    pub(crate) fn zap_object_pages_locked(
        &self,
        st: &MapState,
        phys: &PhysMem,
        start: u64,
        end: u64,
        id: super::vma::ObjectId,
        flush: &mut PendingFlush,
    ) -> SysResult<()> {
        self.unshare_range_locked(st, phys, start, end, flush)
            .map_err(|_| Errno::ENOMEM)?;
        self.zap_range_if(phys, start, end, flush, |pte| {
            pte.maps_frame()
                && !pte.special()
                && phys.desc(pte.pfn()).is_some_and(|d| {
                    d.usage() == crate::phys::FrameUse::PageCache
                        && matches!(d.owner(), crate::phys::Owner::Object { object, .. } if object == id.0)
                })
        });
        self.pt.prune(phys, start, end);
        Ok(())
    }

    /// Free page-table pages left with no entry in `[start, end)`; the
    /// caller holds the map lock for writing, so no fault is walking them.
    /// Linux: `free_pgtables`.
    pub fn prune_tables_locked(&self, _st: &mut MapState, phys: &PhysMem, start: u64, end: u64) {
        self.pt.prune(phys, start, end);
    }

    /// Rewrite the PTEs of `[start, end)` for protection `prot` and the
    /// protection key that `flags` names. Linux: `change_protection` /
    /// `change_pte_range`.
    pub fn change_protection(
        &self,
        phys: &PhysMem,
        (start, end): (u64, u64),
        prot: Prot,
        flags: VmFlags,
        flush: &mut PendingFlush,
    ) {
        let pkey = leaf_pkey_bits(flags);
        self.pt.for_each_leaf(phys, start, end, |va, e| {
            let changed = pte_ops::update(e, va, None, |old| {
                if !old.maps_frame() {
                    return None;
                }
                let mut new = old.without(Pte::WRITE | Pte::PRESENT | Pte::PROTNONE | Pte::NX | Pte::PKEY_MASK);
                new = new.with(pkey);
                if !prot.accessible() {
                    new = new.with(Pte::PROTNONE);
                } else {
                    new = new.with(Pte::PRESENT);
                    if !prot.exec() {
                        new = new.with(Pte::NX);
                    }
                    // Write is granted now only where no copy would be owed:
                    // a private frame mapped once (Linux `can_change_pte_writable`).
                    if prot.write() && !old.special() && exclusive(phys, old) {
                        new = new.with(Pte::WRITE);
                    }
                }
                Some(new)
            });
            // A PROT_NONE entry had no translation; dropping it anyway is harmless.
            if changed.is_some() {
                flush.add_page(vpn(va));
            }
        });
    }

    /// Check the arguments Linux checks before touching the map, for a range
    /// `[addr, addr + len)` given to munmap-like calls.
    pub fn check_unmap_range(addr: u64, len: u64) -> SysResult<u64> {
        if addr & (PAGE_SIZE - 1) != 0 || addr > TASK_SIZE || len > TASK_SIZE - addr {
            return Err(Errno::EINVAL);
        }
        let end = addr + crate::addr::page_ceil(len).ok_or(Errno::EINVAL)?;
        if end == addr {
            return Err(Errno::EINVAL);
        }
        Ok(end)
    }
}

/// The protection-key bits of a leaf PTE in a VMA with `flags`.
pub(crate) fn leaf_pkey_bits(flags: VmFlags) -> u64 {
    if flags.has(VmFlags::PKEY_EXEC_ONLY) {
        Pte::EXEC_ONLY_PKEY << Pte::PKEY_SHIFT
    } else {
        0
    }
}

/// Whether `pte` maps a frame no one else maps or references.
fn exclusive(phys: &PhysMem, pte: Pte) -> bool {
    phys.desc(pte.pfn())
        .is_some_and(|d| d.mapcount.load(Ordering::Acquire) == 1 && d.refcount.load(Ordering::Acquire) == 1)
}

/// Whether the VMA is private anonymous memory.
pub fn is_private_anon(v: &Vma) -> bool {
    v.backing == Backing::Anon && !v.flags.has(VmFlags::SHARED)
}
