//! The invariant checker: walks every structure and reports the first
//! broken invariant. Tests call it after every operation sequence.
//!
//! Invariants:
//! 1. Each zone allocator's own `check()` holds.
//! 2. Free frames + frames handed out == total frames; a frame is free in
//!    its allocator iff its descriptor says `Free`.
//! 3. Page-table pages reachable from live address spaces == page-table
//!    pages allocated; each one's refcount is the number of entries that
//!    reach it (more than one for a table shared by fork policy `shared_pt`,
//!    whose PD entries must be read-only).
//! 4. Every mapped frame's `mapcount` equals the number of leaf PTEs that map
//!    it (a PTE in a shared table counts once), and its `refcount` equals its `mapcount` (no other holders exist
//!    yet); every anonymous frame is mapped at least once (no leak).
//! 5. VMAs are page aligned, non-empty, sorted and disjoint; every leaf PTE
//!    lies inside a VMA and grants no more than the VMA allows; an address
//!    space's `rss` equals the frames it reaches (shared tables included).
//!
//! The checker needs a quiescent machine: no CPU may be faulting while it runs.

use super::machine::{Machine, Pid, Process};
use crate::addr::{is_page_aligned, Pfn, TASK_SIZE};
use crate::frame::FrameAllocator;
use crate::mm::{Vma, VmaMap};
use crate::pgtable::{Level, Pte};
use crate::phys::FrameUse;
use crate::sync::{Arc, Ordering};
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

/// A broken invariant, described.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvariantError(pub String);

impl fmt::Display for InvariantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! ensure {
    ($c:expr, $($arg:tt)*) => {
        if !$c {
            return Err(InvariantError(format!($($arg)*)));
        }
    };
}

pub(crate) fn check(m: &Machine, procs: &BTreeMap<Pid, Arc<Process>>) -> Result<(), InvariantError> {
    let phys = m.phys();
    let total = phys.total_frames();

    // 1, 2.
    let mut free = 0;
    for z in phys.zones() {
        let a = z.alloc.lock();
        a.check().map_err(|e| InvariantError(format!("zone {}: {e}", z.name)))?;
        free += a.free_frames();
    }
    ensure!(
        free + phys.frames_used() == total,
        "frames: {free} free + {} used != {total} total",
        phys.frames_used()
    );
    for i in 0..total {
        let pfn = Pfn(i);
        let Some(d) = phys.desc(pfn) else { continue };
        let is_free = phys.is_free(pfn);
        ensure!(
            is_free == (d.usage() == FrameUse::Free),
            "frame {i}: allocator says free={is_free} but descriptor says {:?}",
            d.usage()
        );
    }

    // 3, 4, 5.
    let mut maps = vec![0i32; total];
    // Parent entries that reach each page-table page (a shared table is
    // reached from several address spaces; the root from none, counted as 1).
    let mut table_refs = vec![0u32; total];
    for p in procs.values() {
        let st = p.mm.map.read();
        if st.dead {
            continue;
        }
        let mut vmas: Vec<Vma> = Vec::with_capacity(st.vmas.len());
        st.vmas.for_each(&mut |v| vmas.push(v.clone()));
        let mut prev_end = 0u64;
        for v in &vmas {
            ensure!(
                is_page_aligned(v.start) && is_page_aligned(v.end) && v.start < v.end && v.end <= TASK_SIZE,
                "pid {}: bad VMA {:#x}-{:#x}",
                p.pid,
                v.start,
                v.end
            );
            ensure!(
                v.start >= prev_end,
                "pid {}: VMAs overlap or are unsorted at {:#x}",
                p.pid,
                v.start
            );
            prev_end = v.end;
        }
        let pt = p.mm.page_table();
        let mut bad: Option<String> = None;
        pt.for_each_table(phys, |level, table, parent| {
            let Some(r) = table_refs.get_mut(table.0) else {
                bad = Some(format!("pid {}: page table {} beyond RAM", p.pid, table.0));
                return false;
            };
            *r += 1;
            if parent.0 & Pte::TABLE_COW != 0 && (level != Level::Pt || parent.writable()) {
                bad = Some(format!(
                    "pid {}: copy-on-write table {} is writable or not a leaf table",
                    p.pid, table.0
                ));
            }
            let first = *r == 1;
            if first && level == Level::Pt {
                // Count each leaf table's mappings once, however many share it.
                if let Some(words) = phys.ram().frame(table) {
                    for w in words {
                        let pte = Pte(w.load(Ordering::Acquire));
                        if pte.maps_frame() && !pte.special() {
                            if let Some(c) = maps.get_mut(pte.pfn().0) {
                                *c += 1;
                            }
                        }
                    }
                }
            }
            first
        });
        let mut rss = 0usize;
        let mut vi = 0usize;
        pt.for_each_leaf(phys, 0, TASK_SIZE, |va, e| {
            let pte = Pte(e.load(Ordering::Acquire));
            if pte.is_none() || bad.is_some() {
                return;
            }
            while vi < vmas.len() && vmas[vi].end <= va {
                vi += 1;
            }
            let Some(v) = vmas.get(vi).filter(|v| v.start <= va) else {
                bad = Some(format!("pid {}: PTE {:#x} at {va:#x} outside every VMA", p.pid, pte.0));
                return;
            };
            if pte.locked() {
                bad = Some(format!("pid {}: PTE at {va:#x} left locked", p.pid));
                return;
            }
            if pte.writable() && !v.prot.write() {
                bad = Some(format!(
                    "pid {}: writable PTE at {va:#x} in a VMA without PROT_WRITE",
                    p.pid
                ));
                return;
            }
            if pte.present() != v.prot.accessible() {
                bad = Some(format!(
                    "pid {}: PTE at {va:#x} present={} but VMA prot {:?}",
                    p.pid,
                    pte.present(),
                    v.prot
                ));
                return;
            }
            if pte.special() {
                if pte.pfn() != phys.zero_pfn() || pte.writable() {
                    bad = Some(format!(
                        "pid {}: special PTE at {va:#x} is not a read-only zero page",
                        p.pid
                    ));
                }
                return;
            }
            if pte.pfn().0 >= total {
                bad = Some(format!(
                    "pid {}: PTE at {va:#x} maps frame {} beyond RAM",
                    p.pid,
                    pte.pfn().0
                ));
            }
            rss += 1;
        });
        if let Some(b) = bad {
            return Err(InvariantError(b));
        }
        let counted = p.mm.rss.load(Ordering::Relaxed);
        ensure!(counted == rss, "pid {}: rss {counted} but {rss} frames mapped", p.pid);
    }
    let tables = table_refs.iter().filter(|&&r| r > 0).count();
    ensure!(
        tables == phys.page_table_pages(),
        "page tables: {tables} reachable but {} allocated",
        phys.page_table_pages()
    );
    for (i, &r) in table_refs.iter().enumerate() {
        if r == 0 {
            continue;
        }
        let rc = phys.desc(Pfn(i)).map_or(0, |d| d.refcount.load(Ordering::Relaxed));
        ensure!(rc == r, "page table {i}: refcount {rc} but {r} entries reach it");
    }
    for (i, &n) in maps.iter().enumerate() {
        let Some(d) = phys.desc(Pfn(i)) else { continue };
        let mc = d.mapcount.load(Ordering::Relaxed);
        ensure!(mc == n, "frame {i}: mapcount {mc} but {n} PTEs map it");
        if d.usage() == FrameUse::Anon {
            let rc = d.refcount.load(Ordering::Relaxed);
            ensure!(n >= 1, "frame {i}: anonymous frame mapped nowhere (leaked)");
            ensure!(rc as i32 == n, "frame {i}: refcount {rc} != mapcount {n}");
        } else if n > 0 {
            ensure!(false, "frame {i}: mapped but used as {:?}", d.usage());
        }
    }
    Ok(())
}
