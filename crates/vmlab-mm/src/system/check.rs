//! The invariant checker: walks every structure and reports the first
//! broken invariant. Tests call it after every operation sequence.
//!
//! Invariants:
//! 1. Each zone allocator's own `check()` holds.
//! 2. Free frames + frames handed out == total frames; a frame is free in
//!    its allocator iff its descriptor says `Free`.
//! 3. Page-table pages reachable from live address spaces == page-table
//!    pages allocated.
//! 4. Every mapped frame's `mapcount` equals the number of leaf PTEs that map
//!    it, and its `refcount` equals its `mapcount` (no other holders exist
//!    yet); every anonymous frame is mapped at least once (no leak).
//! 5. VMAs are page aligned, non-empty, sorted and disjoint; every leaf PTE
//!    lies inside a VMA and grants no more than the VMA allows; an address
//!    space's `rss` equals the frames it maps.
//!
//! The checker needs a quiescent machine: no CPU may be faulting while it runs.

use super::machine::{Machine, Pid, Process};
use crate::addr::{is_page_aligned, Pfn, TASK_SIZE};
use crate::frame::FrameAllocator;
use crate::mm::{Vma, VmaMap};
use crate::pgtable::Pte;
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
    let mut tables = 0usize;
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
        tables += pt.count_tables(phys);
        let mut rss = 0usize;
        let mut bad: Option<String> = None;
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
            match maps.get_mut(pte.pfn().0) {
                Some(c) => *c += 1,
                None => {
                    bad = Some(format!(
                        "pid {}: PTE at {va:#x} maps frame {} beyond RAM",
                        p.pid,
                        pte.pfn().0
                    ))
                }
            }
            rss += 1;
        });
        if let Some(b) = bad {
            return Err(InvariantError(b));
        }
        let counted = p.mm.rss.load(Ordering::Relaxed);
        ensure!(counted == rss, "pid {}: rss {counted} but {rss} frames mapped", p.pid);
    }
    ensure!(
        tables == phys.page_table_pages(),
        "page tables: {tables} reachable but {} allocated",
        phys.page_table_pages()
    );
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
