//! vmlab's memory syscalls against Linux.
//!
//! Where Linux defines the behaviour, Linux on the machine running the tests
//! is the oracle: `host_oracle_table` runs every case of `cases()` on the host
//! kernel (in a child process, see `common/oracle.rs`) and on vmlab, and the
//! two result lists must be equal. Each case also carries the results the
//! Linux source prescribes (`.is(...)`, citing the kernel function); vmlab
//! must show them even where no host oracle can run, and they document what
//! the host was seen to do (verified on 6.18).
//!
//! The second half holds vmlab-only tests of Linux behaviour a user process
//! cannot safely or portably provoke on the host (map-count limit, address
//! space exhaustion, out-of-memory faults, brk), checked against the
//! documented Linux code paths.

mod common;

use common::oracle::{self, maps_of, run_host, run_vmlab_with, show_maps, Op, A, P, R};
use vmlab_mm::addr::TASK_SIZE;
use vmlab_mm::errno::{Errno, FaultReason, Signal};
use vmlab_mm::mm::uapi::*;
use vmlab_mm::mm::{Access, ForkPolicy};
use vmlab_mm::system::config::ForkName;
use vmlab_mm::system::{ByteSize, Machine, MachineConfig, Pid};

/// The host child (see `common/oracle.rs`); a no-op in a normal test run.
#[test]
fn oracle_child() {
    oracle::child_main();
}

const R_: u32 = PROT_READ;
const RW: u32 = PROT_READ | PROT_WRITE;
const RX: u32 = PROT_READ | PROT_EXEC;
const RWX: u32 = PROT_READ | PROT_WRITE | PROT_EXEC;
const PA: u32 = MAP_PRIVATE | MAP_ANONYMOUS;
const FX: u32 = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
const DROP: u32 = MAP_DROPPABLE | MAP_ANONYMOUS | MAP_FIXED;

fn pg(n: i64) -> A {
    A::Rel(n * P as i64)
}
/// MAP_FIXED anonymous private mapping of `n` pages at page `at`.
fn mm(at: i64, n: u64, prot: u32) -> Op {
    mmf(at, n, prot, FX)
}
fn mmf(at: i64, n: u64, prot: u32, flags: u32) -> Op {
    Op::Mmap {
        a: pg(at),
        len: n * P,
        prot,
        flags,
    }
}
fn hint(a: A, len: u64, prot: u32) -> Op {
    Op::MmapHint {
        a,
        len,
        prot,
        flags: PA,
    }
}
fn un(at: i64, n: u64) -> Op {
    Op::Munmap { a: pg(at), len: n * P }
}
fn mp(at: i64, n: u64, prot: u32) -> Op {
    Op::Mprotect {
        a: pg(at),
        len: n * P,
        prot,
    }
}
fn st(at: i64, val: u64) -> Op {
    Op::Store { a: pg(at), val }
}
fn ld(at: i64) -> Op {
    Op::Load { a: pg(at) }
}
fn at(page: i64) -> R {
    R::At(page * P as i64)
}
fn err(e: Errno) -> R {
    R::Err(e.name().into())
}
fn segv(kind: &str) -> R {
    R::Segv(kind.into())
}
const MV: u32 = MREMAP_MAYMOVE;
const FXD: u32 = MREMAP_MAYMOVE | MREMAP_FIXED;
const DU: u32 = MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP;
const SH: u32 = MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED;
/// MAP_FIXED shared anonymous mapping of `n` pages at page `at`.
fn shm(at: i64, n: u64, prot: u32) -> Op {
    mmf(at, n, prot, SH)
}
/// `mremap` of `old` pages at page `at` to `new` pages, new address page `to`.
fn mr(at: i64, old: u64, new: u64, flags: u32, to: i64) -> Op {
    Op::Mremap {
        a: pg(at),
        old_len: old * P,
        new_len: new * P,
        flags,
        new_a: pg(to),
        back: None,
    }
}
/// `mremap` (MREMAP_MAYMOVE) that the kernel places; the harness moves the
/// result to page `back` (see `Op::Mremap`).
fn mr_back(at: i64, old: u64, new: u64, back: i64) -> Op {
    Op::Mremap {
        a: pg(at),
        old_len: old * P,
        new_len: new * P,
        flags: MV,
        new_a: pg(0),
        back: Some(pg(back)),
    }
}
/// `mremap` with raw arguments (lengths in bytes).
fn mr_raw(a: A, old_len: u64, new_len: u64, flags: u32, new_a: A) -> Op {
    Op::Mremap {
        a,
        old_len,
        new_len,
        flags,
        new_a,
        back: None,
    }
}
fn ma(at: i64, n: u64, advice: u32) -> Op {
    Op::Madvise {
        a: pg(at),
        len: n * P,
        advice,
    }
}
fn ma_raw(a: A, len: u64, advice: u32) -> Op {
    Op::Madvise { a, len, advice }
}
fn fork(ops: Vec<Op>) -> Op {
    Op::Fork { ops }
}
/// A forked child's results (all of them, in order).
fn child(rs: Vec<R>) -> R {
    R::Child(rs)
}
fn maps(s: &str) -> R {
    maps_of(s)
}

struct Case {
    name: &'static str,
    ops: Vec<Op>,
    /// (op index, result Linux prescribes).
    expect: Vec<(usize, R)>,
}

fn case(name: &'static str) -> Case {
    Case {
        name,
        ops: Vec::new(),
        expect: Vec::new(),
    }
}

impl Case {
    fn op(mut self, op: Op) -> Case {
        self.ops.push(op);
        self
    }
    /// The last op's result must be `r`.
    fn is(mut self, r: R) -> Case {
        self.expect.push((self.ops.len() - 1, r));
        self
    }
    /// Snapshot maps and expect `s` (see `maps_of`).
    fn maps(self, s: &str) -> Case {
        self.op(Op::Maps).is(maps_of(s))
    }
}

/// The table. Every expectation is Linux's (mm/vma.c, mm/mmap.c,
/// mm/mprotect.c, arch/x86/kernel/sys_x86_64.c, arch/x86/mm/pkeys.c), named
/// in the comments, for a host with protection keys (`pkeys`) or without.
fn cases(pkeys: bool) -> Vec<Case> {
    // With protection keys, exactly-PROT_EXEC memory gets the execute-only
    // key (do_mmap; arch_override_mprotect_pkey) and loads and stores fault
    // with SEGV_PKUERR before any other check (x86 access_error).
    let exec_only_load = |v: u64| if pkeys { segv("PKUERR") } else { R::Val(v) };
    let exec_only_store = || if pkeys { segv("PKUERR") } else { segv("ACCERR") };
    let mut all = vec![
        // do_vmi_munmap → vms_gather_munmap_vmas splits at both ends.
        case("munmap_middle_page_splits_vma_in_two")
            .op(mm(0, 3, RW))
            .is(at(0))
            .op(un(1, 1))
            .is(R::Ok)
            .maps("0-1:rw-p 2-3:rw-p")
            .op(ld(0))
            .is(R::Val(0))
            .op(ld(1))
            .is(segv("MAPERR"))
            .op(ld(2))
            .is(R::Val(0)),
        case("munmap_head_then_tail")
            .op(mm(0, 4, RW))
            .op(st(0, 10))
            .op(st(1, 11))
            .op(st(2, 12))
            .op(st(3, 13))
            .op(un(0, 1))
            .is(R::Ok)
            .maps("1-4:rw-p")
            .op(un(3, 1))
            .is(R::Ok)
            .maps("1-3:rw-p")
            .op(ld(0))
            .is(segv("MAPERR"))
            .op(ld(1))
            .is(R::Val(11))
            .op(ld(2))
            .is(R::Val(12))
            .op(ld(3))
            .is(segv("MAPERR")),
        case("munmap_spanning_several_vmas_and_holes")
            .op(mm(0, 2, RW))
            .op(mm(3, 2, R_))
            .op(mm(6, 2, RWX))
            .maps("0-2:rw-p 3-5:r--p 6-8:rwxp")
            .op(un(1, 6))
            .is(R::Ok)
            .maps("0-1:rw-p 7-8:rwxp"),
        // munmap of nothing succeeds (no VMA found: return 0).
        case("munmap_of_never_mapped_range_is_ok")
            .op(un(10, 5))
            .is(R::Ok)
            .op(mm(0, 1, RW))
            .op(un(2, 3))
            .is(R::Ok)
            .maps("0-1:rw-p"),
        // Lengths are rounded up to pages: PAGE_ALIGN(len).
        case("lengths_round_up_to_pages")
            .op(Op::Mmap {
                a: pg(0),
                len: 100,
                prot: RW,
                flags: FX,
            })
            .is(at(0))
            .op(mm(1, 3, RW))
            .maps("0-4:rw-p")
            .op(Op::Munmap { a: pg(1), len: 1 })
            .is(R::Ok)
            .op(Op::Mprotect {
                a: pg(2),
                len: P + 1,
                prot: R_,
            })
            .is(R::Ok)
            .maps("0-1:rw-p 2-4:r--p"),
        case("munmap_then_remap_reads_zero")
            .op(mm(0, 1, RW))
            .op(st(0, 5))
            .op(un(0, 1))
            .op(mm(0, 1, RW))
            .op(ld(0))
            .is(R::Val(0)),
        // mprotect_fixup → vma_modify_flags splits, and merging back is
        // vma_merge_existing_range. RW→R on a VMA without anon_vma drops
        // VM_ACCOUNT; R→RW sets it again, so the middle matches its
        // neighbours and all three merge.
        case("mprotect_middle_splits_in_three_and_restoring_merges")
            .op(mm(0, 3, RW))
            .op(mp(1, 1, R_))
            .is(R::Ok)
            .maps("0-1:rw-p 1-2:r--p 2-3:rw-p")
            .op(mp(1, 1, RW))
            .is(R::Ok)
            .maps("0-3:rw-p"),
        // Written first: one anon_vma, VM_ACCOUNT kept: still merges back.
        case("mprotect_middle_of_written_vma_and_back")
            .op(mm(0, 3, RW))
            .op(st(0, 1))
            .op(st(1, 2))
            .op(st(2, 3))
            .op(mp(1, 1, R_))
            .maps("0-1:rw-p 1-2:r--p 2-3:rw-p")
            .op(st(1, 9))
            .is(segv("ACCERR"))
            .op(mp(1, 1, RW))
            .maps("0-3:rw-p")
            .op(ld(0))
            .is(R::Val(1))
            .op(ld(1))
            .is(R::Val(2))
            .op(ld(2))
            .is(R::Val(3)),
        case("mprotect_across_two_vmas_with_different_prot")
            .op(mm(0, 2, R_))
            .op(mm(2, 2, RW))
            .maps("0-2:r--p 2-4:rw-p")
            .op(mp(1, 2, RWX))
            .is(R::Ok)
            .maps("0-1:r--p 1-3:rwxp 3-4:rw-p"),
        // R→RW sets VM_ACCOUNT (mprotect_fixup), matching the RW neighbour.
        case("mprotect_making_neighbours_equal_merges_them")
            .op(mm(0, 2, R_))
            .op(mm(2, 2, RW))
            .op(mp(0, 2, RW))
            .is(R::Ok)
            .maps("0-4:rw-p"),
        case("mprotect_three_vmas_to_one_prot_merges_all")
            .op(mm(0, 1, R_))
            .op(mm(1, 1, RW))
            .op(mm(2, 1, RX))
            .maps("0-1:r--p 1-2:rw-p 2-3:r-xp")
            .op(mp(0, 3, RW))
            .maps("0-3:rw-p"),
        // mprotect_fixup: losing write on an anonymous VMA that has no
        // anon_vma yet clears VM_ACCOUNT, so it merges with a never-writable
        // read-only neighbour...
        case("vm_account_dropped_when_rw_becomes_ro_untouched")
            .op(mm(0, 2, R_))
            .op(mm(2, 2, RW))
            .op(mp(2, 2, R_))
            .is(R::Ok)
            .maps("0-4:r--p"),
        // ...but once written (anon_vma exists) VM_ACCOUNT stays: two lines.
        case("vm_account_kept_when_rw_becomes_ro_after_write")
            .op(mm(0, 2, R_))
            .op(mm(2, 2, RW))
            .op(st(2, 7))
            .op(mp(2, 2, R_))
            .is(R::Ok)
            .maps("0-2:r--p 2-4:r--p")
            .op(ld(2))
            .is(R::Val(7)),
        // The R → RW → R round trip: same rule.
        case("vm_account_ro_rw_ro_untouched_merges")
            .op(mm(0, 1, R_))
            .op(mm(1, 1, RX))
            .maps("0-1:r--p 1-2:r-xp")
            .op(mp(1, 1, RW))
            .op(mp(1, 1, R_))
            .maps("0-2:r--p"),
        case("vm_account_ro_rw_ro_written_stays_two_lines")
            .op(mm(0, 1, R_))
            .op(mm(1, 1, RX))
            .op(mp(1, 1, RW))
            .op(st(1, 3))
            .op(mp(1, 1, R_))
            .maps("0-1:r--p 1-2:r--p"),
        // mmap_region → vma_merge_new_range with prev and next.
        case("adjacent_anonymous_mmaps_merge")
            .op(mm(0, 1, RW))
            .op(mm(1, 1, RW))
            .maps("0-2:rw-p")
            .op(mm(3, 1, RW))
            .op(mm(2, 1, RW))
            .maps("0-4:rw-p"),
        // A hole before the new VMA does not stop it merging with the next.
        case("mmap_merges_with_next_across_a_hole_before")
            .op(mm(0, 1, R_))
            .op(mm(3, 1, RW))
            .op(mm(2, 1, RW))
            .maps("0-1:r--p 2-4:rw-p")
            .op(mm(6, 1, R_))
            .op(mm(5, 1, R_))
            .maps("0-1:r--p 2-4:rw-p 5-7:r--p"),
        case("mprotect_merges_with_next_across_a_hole_before")
            .op(mm(0, 1, R_))
            .op(mm(2, 1, R_))
            .op(mm(3, 1, RW))
            .op(mp(2, 1, RW))
            .maps("0-1:r--p 2-4:rw-p"),
        // A new VMA (no anon_vma) merges with a written one (is_mergeable_anon_vma).
        case("new_mapping_merges_with_written_neighbour")
            .op(mm(0, 1, RW))
            .op(st(0, 1))
            .op(mm(1, 1, RW))
            .maps("0-2:rw-p")
            .op(st(1, 2))
            .maps("0-2:rw-p"),
        // Both written while apart: two anon_vmas. Filling the gap merges the
        // new VMA with prev only (can_vma_merge_right: prev and next anon_vmas
        // are incompatible), and nothing merges them later.
        case("written_before_adjacency_do_not_merge")
            .op(mm(0, 1, RW))
            .op(st(0, 1))
            .op(mm(2, 1, RW))
            .op(st(2, 2))
            .op(mm(1, 1, RW))
            .maps("0-2:rw-p 2-3:rw-p")
            .op(mp(0, 3, R_))
            .maps("0-2:r--p 2-3:r--p")
            .op(mp(0, 3, RW))
            .maps("0-2:rw-p 2-3:rw-p")
            .op(ld(0))
            .is(R::Val(1))
            .op(ld(2))
            .is(R::Val(2)),
        // anon_vma_prepare → find_mergeable_anon_vma: a VMA that faults next
        // to one whose flags differ only in access bits reuses its anon_vma,
        // so equalising the protection later merges them.
        case("written_neighbours_with_different_prot_share_anon_vma")
            .op(mm(0, 1, RW))
            .op(st(0, 1))
            .op(mm(1, 1, RWX))
            .op(st(1, 2))
            .maps("0-1:rw-p 1-2:rwxp")
            .op(mp(1, 1, RW))
            .maps("0-2:rw-p")
            .op(ld(0))
            .is(R::Val(1))
            .op(ld(1))
            .is(R::Val(2)),
        // ...looking at next first, then prev.
        case("anon_vma_reused_from_next_neighbour")
            .op(mm(1, 1, RW))
            .op(st(1, 1))
            .op(mm(0, 1, RWX))
            .op(st(0, 2))
            .op(mp(0, 1, RW))
            .maps("0-2:rw-p"),
        // VM_ACCOUNT differs (RW vs MAP_NORESERVE): not anon_vma compatible.
        case("anon_vma_not_reused_across_incompatible_flags")
            .op(mm(0, 1, RW))
            .op(st(0, 1))
            .op(mmf(1, 1, RW, FX | MAP_NORESERVE))
            .op(st(1, 2))
            .maps("0-1:rw-p 1-2:rw-p"),
        // MAP_NORESERVE sets VM_NORESERVE (overcommit not "never") and no
        // VM_ACCOUNT: never merges with ordinary anonymous memory.
        case("map_noreserve_does_not_merge_with_plain")
            .op(mm(0, 1, RW))
            .op(mmf(1, 1, RW, FX | MAP_NORESERVE))
            .maps("0-1:rw-p 1-2:rw-p")
            .op(mm(3, 1, R_))
            .op(mmf(4, 1, R_, FX | MAP_NORESERVE))
            .maps("0-1:rw-p 1-2:rw-p 3-4:r--p 4-5:r--p")
            .op(mmf(5, 1, R_, FX | MAP_NORESERVE))
            .maps("0-1:rw-p 1-2:rw-p 3-4:r--p 4-6:r--p")
            // VM_NORESERVE: gaining write does not set VM_ACCOUNT.
            .op(mp(4, 2, RW))
            .maps("0-1:rw-p 1-2:rw-p 3-4:r--p 4-6:rw-p"),
        // calc_vm_flag_bits: MAP_STACK sets VM_NOHUGEPAGE (with THP).
        case("map_stack_does_not_merge_with_plain")
            .op(mm(0, 1, RW))
            .op(mmf(1, 1, RW, FX | MAP_STACK))
            .maps("0-1:rw-p 1-2:rw-p")
            .op(mmf(2, 1, RW, FX | MAP_STACK))
            .maps("0-1:rw-p 1-3:rw-p"),
        // MAP_FIXED unmaps what was there (mmap_region), then maps fresh
        // zero-fill memory.
        case("map_fixed_over_middle_of_mapping")
            .op(mm(0, 4, RW))
            .op(st(0, 1))
            .op(st(1, 2))
            .op(st(2, 3))
            .op(st(3, 4))
            .op(mm(1, 2, R_))
            .is(at(1))
            .maps("0-1:rw-p 1-3:r--p 3-4:rw-p")
            .op(ld(0))
            .is(R::Val(1))
            .op(ld(1))
            .is(R::Val(0))
            .op(ld(2))
            .is(R::Val(0))
            .op(ld(3))
            .is(R::Val(4)),
        // Same protection: the new VMA merges with both remaining halves.
        case("map_fixed_same_prot_over_middle_merges_back")
            .op(mm(0, 4, RW))
            .op(st(0, 1))
            .op(st(1, 2))
            .op(st(3, 4))
            .op(mm(1, 2, RW))
            .maps("0-4:rw-p")
            .op(ld(0))
            .is(R::Val(1))
            .op(ld(1))
            .is(R::Val(0))
            .op(ld(3))
            .is(R::Val(4)),
        case("map_fixed_across_several_vmas")
            .op(mm(0, 2, R_))
            .op(mm(3, 2, RWX))
            .op(mm(1, 3, RW))
            .is(at(1))
            .maps("0-1:r--p 1-4:rw-p 4-5:rwxp"),
        // do_mmap: MAP_FIXED_NOREPLACE over any existing VMA → EEXIST.
        case("map_fixed_noreplace_collision")
            .op(mm(0, 2, RW))
            .op(mmf(1, 2, RW, PA | MAP_FIXED_NOREPLACE))
            .is(err(Errno::EEXIST))
            .op(mmf(0, 1, RW, PA | MAP_FIXED_NOREPLACE))
            .is(err(Errno::EEXIST))
            .op(mmf(2, 1, RW, PA | MAP_FIXED_NOREPLACE))
            .is(at(2))
            .maps("0-3:rw-p"),
        // do_mprotect_pkey: VMAs before a hole are changed, then ENOMEM.
        case("mprotect_hole_in_range")
            .op(mm(0, 2, RW))
            .op(mm(3, 2, RW))
            .op(mp(0, 5, R_))
            .is(err(Errno::ENOMEM))
            .maps("0-2:r--p 3-5:rw-p"),
        case("mprotect_hole_after_split_point")
            .op(mm(0, 4, RW))
            .op(mm(5, 1, RW))
            .op(mp(2, 5, R_))
            .is(err(Errno::ENOMEM))
            .maps("0-2:rw-p 2-4:r--p 5-6:rw-p"),
        case("mprotect_hole_at_start_changes_nothing")
            .op(mm(1, 2, RW))
            .op(mp(0, 3, R_))
            .is(err(Errno::ENOMEM))
            .maps("1-3:rw-p"),
        case("mprotect_hole_at_end")
            .op(mm(0, 2, RW))
            .op(mp(0, 3, R_))
            .is(err(Errno::ENOMEM))
            .maps("0-2:r--p"),
        case("mprotect_none_and_back_keeps_data")
            .op(mm(0, 2, RW))
            .op(st(0, 1))
            .op(st(1, 2))
            .op(mp(0, 2, PROT_NONE))
            .op(ld(0))
            .is(segv("ACCERR"))
            .maps("0-2:---p")
            .op(mp(0, 2, RW))
            .op(ld(0))
            .is(R::Val(1))
            .op(ld(1))
            .is(R::Val(2))
            .maps("0-2:rw-p"),
        // Loads and stores: x86 lets any of R/W/X read (access_error).
        case("loads_and_stores")
            .op(mm(0, 1, RW))
            .op(ld(0))
            .is(R::Val(0))
            .op(st(0, 0xabc))
            .is(R::Ok)
            .op(ld(0))
            .is(R::Val(0xabc))
            .op(mp(0, 1, R_))
            .op(st(0, 1))
            .is(segv("ACCERR"))
            .op(ld(0))
            .is(R::Val(0xabc))
            .op(mp(0, 1, PROT_NONE))
            .op(ld(0))
            .is(segv("ACCERR"))
            .op(st(0, 1))
            .is(segv("ACCERR"))
            .op(mp(0, 1, PROT_WRITE))
            .op(ld(0))
            .is(R::Val(0xabc))
            .op(st(0, 0xdef))
            .is(R::Ok)
            .op(mp(0, 1, PROT_EXEC))
            .op(ld(0))
            .is(exec_only_load(0xdef))
            .op(st(0, 1))
            .is(exec_only_store())
            .op(mm(2, 1, PROT_NONE))
            .op(ld(2))
            .is(segv("ACCERR"))
            .op(st(1, 1))
            .is(segv("MAPERR"))
            .op(un(0, 1))
            .op(ld(0))
            .is(segv("MAPERR"))
            .op(st(0, 1))
            .is(segv("MAPERR")),
        // Execute-only memory and protection keys: the key is part of the
        // VMA's flags, decided by the exact prot argument (PROT_EXEC|PROT_SEM
        // is not execute-only), so it splits and merges VMAs whose maps
        // lines look alike.
        case("exec_only_memory_protection_keys")
            .op(mm(0, 2, PROT_EXEC))
            .op(ld(0))
            .is(exec_only_load(0))
            .op(st(1, 1))
            .is(exec_only_store())
            .op(mp(0, 2, RX))
            .op(ld(1))
            .is(R::Val(0))
            .op(mp(0, 2, PROT_EXEC))
            .op(ld(1))
            .is(exec_only_load(0))
            .op(mp(1, 1, PROT_EXEC | PROT_SEM))
            .is(R::Ok)
            .op(ld(1))
            .is(R::Val(0))
            .op(ld(0))
            .is(exec_only_load(0))
            .maps(if pkeys { "0-1:--xp 1-2:--xp" } else { "0-2:--xp" })
            .op(mm(2, 1, PROT_EXEC))
            .op(mp(1, 1, PROT_EXEC))
            .maps("0-3:--xp")
            .op(ld(2))
            .is(exec_only_load(0)),
        // MAP_DROPPABLE (Linux 6.11, do_mmap): a map type of its own for
        // anonymous memory only (a file, or MAP_SHARED/MAP_PRIVATE beside
        // it, is EINVAL; no MAP_ANONYMOUS is EBADF: no fd), never locked or
        // a stack, MAP_HUGETLB refused by the hugetlbfs file's type check;
        // it reserves nothing (a mapping larger than RAM is fine), and
        // madvise cannot make it inherited or dumped again.
        case("map_droppable")
            .op(mmf(0, 2, RW, DROP))
            .is(at(0))
            .op(st(1, 3))
            .op(ld(1))
            .is(R::Val(3))
            .op(mmf(2, 1, RW, DROP | MAP_SHARED))
            .is(err(Errno::EINVAL))
            .op(mmf(2, 1, RW, DROP | MAP_PRIVATE))
            .is(err(Errno::EINVAL))
            .op(mmf(2, 1, RW, DROP | MAP_LOCKED))
            .is(err(Errno::EINVAL))
            .op(mmf(2, 1, RW, DROP | MAP_GROWSDOWN))
            .is(err(Errno::EINVAL))
            .op(mmf(2, 1, RW, DROP | MAP_HUGETLB))
            .is(err(Errno::EINVAL))
            .op(mmf(2, 1, RW, MAP_ANONYMOUS | MAP_FIXED | MAP_HUGETLB))
            .is(err(Errno::EINVAL))
            .op(mmf(2, 1, RW, DROP & !MAP_ANONYMOUS))
            .is(err(Errno::EBADF))
            .op(mmf(2, 1, RW, DROP | MAP_NORESERVE | MAP_POPULATE | MAP_STACK))
            .is(at(2))
            // Merges only with its own kind.
            .op(mmf(3, 1, RW, DROP))
            .op(mm(4, 1, RW))
            .maps("0-2:rw-p 2-3:rw-p 3-4:rw-p 4-5:rw-p")
            .op(ma(0, 1, MADV_KEEPONFORK))
            .is(err(Errno::EINVAL))
            .op(ma(0, 1, MADV_DODUMP))
            .is(err(Errno::EINVAL))
            .op(ma(0, 1, MADV_WIPEONFORK))
            .is(R::Ok)
            .op(ma(0, 1, MADV_DONTDUMP))
            .is(R::Ok)
            .op(ma(1, 1, MADV_DONTNEED))
            .is(R::Ok)
            .op(ld(1))
            .is(R::Val(0))
            .op(mp(0, 1, R_))
            .maps("0-1:r--p 1-2:rw-p 2-3:rw-p 3-4:rw-p 4-5:rw-p"),
        // Hints (arch_get_unmapped_area_topdown): a free hint is honoured
        // (rounded down to a page); a busy one is not.
        case("mmap_hints")
            .op(hint(pg(5), 2 * P, RW))
            .is(at(5))
            .op(hint(A::Rel(5 * P as i64 + 123), P, RW))
            .is(R::Elsewhere)
            .op(hint(A::Rel(20 * P as i64 + 123), P, R_))
            .is(at(20))
            .op(hint(pg(4), 2 * P, RW))
            .is(R::Elsewhere)
            .op(hint(pg(7), P, RW))
            .is(at(7))
            .op(hint(A::Abs(1 << 47), P, RW))
            .is(R::Elsewhere)
            .maps("5-8:rw-p 20-21:r--p"),
        // VM_GROWSDOWN: a hint must leave stack_guard_gap (256 pages) below
        // it (vm_start_gap); mprotect with PROT_GROWSDOWN runs from the VMA's
        // start (do_mprotect_pkey).
        case("growsdown_guard_gap_and_prot_growsdown")
            .op(mmf(300, 2, RW, FX | MAP_GROWSDOWN))
            .is(at(300))
            .maps("300-302:rw-p")
            .op(hint(pg(299), P, RW))
            .is(R::Elsewhere)
            .op(hint(pg(44), P, RW))
            .is(R::Elsewhere)
            .op(hint(pg(43), P, RW))
            .is(at(43))
            .op(mp(301, 1, R_ | PROT_GROWSDOWN))
            .is(R::Ok)
            .maps("43-44:rw-p 300-302:r--p")
            .op(mp(43, 1, R_ | PROT_GROWSDOWN))
            .is(err(Errno::EINVAL))
            // A MAP_FIXED mapping may go right below it.
            .op(mm(299, 1, RW))
            .is(at(299))
            .maps("43-44:rw-p 299-300:rw-p 300-302:r--p"),
        // MAP_32BIT (x86): without MAP_FIXED the hint is ignored and the
        // mapping goes bottom-up below 2 GiB; with MAP_FIXED it is ignored.
        case("map_32bit")
            .op(Op::MmapHint {
                a: pg(5),
                len: P,
                prot: RW,
                flags: PA | 0x40,
            })
            .is(R::Elsewhere)
            .op(mmf(6, 1, RW, FX | 0x40))
            .is(at(6))
            .maps("6-7:rw-p"),
        // Argument errors, in the order the syscalls check them.
        case("errno_table")
            .op(mm(0, 2, RW))
            .op(st(0, 42))
            // Unaligned address.
            .op(Op::Munmap { a: A::Rel(100), len: P })
            .is(err(Errno::EINVAL))
            .op(Op::Mprotect {
                a: A::Rel(100),
                len: P,
                prot: R_,
            })
            .is(err(Errno::EINVAL))
            .op(Op::Mprotect {
                a: A::Rel(100),
                len: 0,
                prot: R_,
            })
            .is(err(Errno::EINVAL))
            .op(Op::Mmap {
                a: A::Rel(100),
                len: P,
                prot: RW,
                flags: FX,
            })
            .is(err(Errno::EINVAL))
            .op(Op::Mmap {
                a: A::Rel(100),
                len: P,
                prot: RW,
                flags: PA | MAP_FIXED_NOREPLACE,
            })
            .is(err(Errno::EINVAL))
            // Zero length.
            .op(Op::Mmap {
                a: pg(8),
                len: 0,
                prot: RW,
                flags: FX,
            })
            .is(err(Errno::EINVAL))
            .op(hint(pg(8), 0, RW))
            .is(err(Errno::EINVAL))
            .op(Op::Munmap { a: pg(0), len: 0 })
            .is(err(Errno::EINVAL))
            .op(Op::Mprotect {
                a: pg(0),
                len: 0,
                prot: R_,
            })
            .is(R::Ok)
            .op(Op::Mprotect {
                a: pg(0),
                len: 0,
                prot: 0x10,
            })
            .is(R::Ok)
            .op(Op::Mprotect {
                a: pg(50),
                len: 0,
                prot: R_,
            })
            .is(R::Ok)
            // Overflowing length.
            .op(Op::Mmap {
                a: pg(8),
                len: u64::MAX,
                prot: RW,
                flags: FX,
            })
            .is(err(Errno::ENOMEM))
            .op(Op::Mmap {
                a: pg(8),
                len: u64::MAX - 2 * P + 1,
                prot: R_,
                flags: FX,
            })
            .is(err(Errno::ENOMEM))
            .op(hint(pg(8), u64::MAX, R_))
            .is(err(Errno::ENOMEM))
            .op(hint(pg(8), TASK_SIZE, PROT_NONE))
            .is(err(Errno::ENOMEM))
            .op(Op::Munmap {
                a: pg(0),
                len: u64::MAX,
            })
            .is(err(Errno::EINVAL))
            .op(Op::Munmap {
                a: pg(0),
                len: u64::MAX - 2 * P + 1,
            })
            .is(err(Errno::EINVAL))
            .op(Op::Mprotect {
                a: pg(0),
                len: u64::MAX,
                prot: R_,
            })
            .is(err(Errno::ENOMEM))
            // Protection bits (arch_validate_prot; PROT_SEM is allowed).
            .op(mp(0, 1, R_ | 0x10))
            .is(err(Errno::EINVAL))
            .op(mp(0, 1, RW | PROT_SEM))
            .is(R::Ok)
            .op(mp(0, 1, R_ | PROT_GROWSDOWN))
            .is(err(Errno::EINVAL))
            .op(mp(0, 1, R_ | PROT_GROWSUP))
            .is(err(Errno::EINVAL))
            .op(mp(0, 1, R_ | PROT_GROWSDOWN | PROT_GROWSUP))
            .is(err(Errno::EINVAL))
            .op(mp(50, 1, R_ | PROT_GROWSUP))
            .is(err(Errno::ENOMEM))
            .op(mp(50, 1, R_ | PROT_GROWSDOWN))
            .is(err(Errno::ENOMEM))
            // mmap does not validate prot bits: unknown ones are ignored.
            .op(mm(8, 1, RW | 0x10))
            .is(at(8))
            .op(mm(10, 1, R_ | PROT_SEM | PROT_GROWSUP))
            .is(at(10))
            // Map type: neither PRIVATE nor SHARED → EINVAL, before
            // MAP_FIXED unmaps anything.
            .op(mmf(0, 1, RW, MAP_ANONYMOUS | MAP_FIXED))
            .is(err(Errno::EINVAL))
            .op(mmf(0, 1, RW, 0x4 | MAP_ANONYMOUS | MAP_FIXED))
            .is(err(Errno::EINVAL))
            .op(ld(0))
            .is(R::Val(42))
            // No MAP_ANONYMOUS: fd -1 → EBADF.
            .op(mmf(12, 1, RW, MAP_PRIVATE | MAP_FIXED))
            .is(err(Errno::EBADF))
            // Flags mmap ignores for anonymous private memory.
            .op(mmf(14, 1, RW, FX | 0x200 | MAP_DENYWRITE | MAP_EXECUTABLE))
            .is(at(14))
            // Above TASK_SIZE (__get_unmapped_area: addr > TASK_SIZE - len).
            .op(Op::Mmap {
                a: A::Abs(1 << 47),
                len: P,
                prot: RW,
                flags: FX,
            })
            .is(err(Errno::ENOMEM))
            .op(Op::Mmap {
                a: A::Abs(TASK_SIZE),
                len: P,
                prot: RW,
                flags: FX,
            })
            .is(err(Errno::ENOMEM))
            .op(Op::Mmap {
                a: A::Abs(TASK_SIZE - P),
                len: 2 * P,
                prot: RW,
                flags: FX,
            })
            .is(err(Errno::ENOMEM))
            .op(Op::Mmap {
                a: A::Abs(1 << 47),
                len: P,
                prot: RW,
                flags: PA | MAP_FIXED_NOREPLACE,
            })
            .is(err(Errno::ENOMEM))
            .op(Op::Mmap {
                a: A::Abs(0xffff_8000_0000_0000),
                len: P,
                prot: RW,
                flags: FX,
            })
            .is(err(Errno::ENOMEM))
            .op(Op::Munmap {
                a: A::Abs(TASK_SIZE),
                len: P,
            })
            .is(err(Errno::EINVAL))
            .op(Op::Munmap {
                a: A::Abs(TASK_SIZE - P),
                len: 2 * P,
            })
            .is(err(Errno::EINVAL))
            .op(Op::Munmap {
                a: A::Abs(1 << 47),
                len: P,
            })
            .is(err(Errno::EINVAL))
            .op(Op::Mprotect {
                a: A::Abs(TASK_SIZE),
                len: P,
                prot: R_,
            })
            .is(err(Errno::ENOMEM))
            .op(Op::Mprotect {
                a: A::Abs(!(P - 1)),
                len: 2 * P,
                prot: R_,
            })
            .is(err(Errno::ENOMEM))
            .maps("0-2:rw-p 8-9:rw-p 10-11:r--p 14-15:rw-p"),
    ];
    all.extend(mremap_cases());
    all.extend(madvise_cases());
    all.extend(fork_cases());
    all.extend(stack_cases());
    all.extend(guard_cases());
    all.extend(mincore_cases());
    // First: the host helper runs every case in one process, and Linux
    // never gives back the locked_vm of a locked VMA that MREMAP_DONTUNMAP
    // unlocked (`madvise_locked_memory` does that), so RLIMIT_MEMLOCK cases
    // must run before it (docs/SEMANTICS.md, known differences).
    all.splice(0..0, mlock_cases(pkeys));
    all
}

fn mc(at: i64, n: u64) -> Op {
    Op::Mincore { a: pg(at), len: n * P }
}
fn mc_raw(a: A, len: u64) -> Op {
    Op::Mincore { a, len }
}
fn res(s: &str) -> R {
    R::Resident(s.into())
}

/// mincore (mm/mincore.c, 6.18): `sys_mincore` checks the alignment
/// (EINVAL), then `access_ok(start, len)` (ENOMEM), rounds `len` up and
/// walks VMA by VMA (`do_mincore`: ENOMEM at the first address in no VMA);
/// `mincore_pte_range`: a present PTE (the zero page, PROT_NONE) is
/// resident; a none PTE or a PTE marker (the guard marker) is looked up in
/// the page cache of `vm_file` (shmem for shared anonymous memory) and is
/// never resident in private anonymous memory. File mappings are compared
/// with the host in `files::mincore_matches_the_host_kernel`.
fn mincore_cases() -> Vec<Case> {
    let g = MADV_GUARD_INSTALL;
    vec![
        case("mincore_anonymous_untouched_touched_zero_page_and_dontneed")
            .op(mm(0, 6, RW))
            .op(mc(0, 6))
            .is(res("000000"))
            .op(st(0, 1))
            .op(st(2, 1))
            .op(ld(3))
            .op(mc(0, 6))
            .is(res("101100"))
            // len is rounded up to pages.
            .op(mc_raw(pg(0), P + 1))
            .is(res("10"))
            .op(mc_raw(pg(2), 1))
            .is(res("1"))
            .op(ma(0, 1, MADV_DONTNEED))
            .op(ma(3, 1, MADV_DONTNEED))
            .op(mc(0, 6))
            .is(res("001000")),
        case("mincore_prot_none_pages_stay_resident")
            .op(mm(0, 2, RW))
            .op(st(0, 1))
            .op(mp(0, 2, PROT_NONE))
            .op(mc(0, 2))
            .is(res("10"))
            .op(mm(4, 2, PROT_NONE))
            .op(mc(4, 2))
            .is(res("00")),
        case("mincore_argument_checks_and_holes")
            .op(mm(0, 2, RW))
            .op(mm(3, 2, RW))
            .op(st(0, 1))
            .op(st(3, 1))
            .op(mc_raw(A::Rel(P as i64 + 1), P))
            .is(err(Errno::EINVAL))
            .op(mc_raw(A::Rel(1), 0))
            .is(err(Errno::EINVAL))
            // len 0 looks at nothing, mapped or not.
            .op(mc(10, 0))
            .is(res(""))
            .op(mc_raw(A::Abs(TASK_SIZE), 0))
            .is(res(""))
            // access_ok: the end may be TASK_SIZE, not past it, and must not wrap.
            .op(mc_raw(A::Abs(TASK_SIZE + P), 0))
            .is(err(Errno::ENOMEM))
            .op(mc_raw(A::Abs(TASK_SIZE), 1))
            .is(err(Errno::ENOMEM))
            .op(mc_raw(pg(0), u64::MAX - 2 * P))
            .is(err(Errno::ENOMEM))
            .op(mc_raw(A::Abs(0), u64::MAX))
            .is(err(Errno::ENOMEM))
            // A hole in the middle, at the start, at the end: ENOMEM.
            .op(mc(0, 5))
            .is(err(Errno::ENOMEM))
            .op(mc(2, 2))
            .is(err(Errno::ENOMEM))
            .op(mc(3, 3))
            .is(err(Errno::ENOMEM))
            // Two VMAs side by side are one vector.
            .op(mp(4, 1, R_))
            .op(mc(3, 2))
            .is(res("10"))
            .op(mc(0, 2))
            .is(res("10")),
        case("mincore_shared_anonymous_is_its_page_cache")
            .op(shm(0, 3, RW))
            .op(mc(0, 3))
            .is(res("000"))
            .op(st(1, 1))
            .op(ma(1, 1, MADV_DONTNEED))
            .op(mc(0, 3))
            .is(res("010"))
            // The child has no PTE for the page (fork copies no shared
            // PTEs) but the object caches it; a page the child writes is
            // resident for the parent too.
            .op(fork(vec![mc(0, 3), st(2, 1), mc(0, 3)]))
            .is(R::Child(vec![res("010"), R::Ok, res("011")]))
            .op(mc(0, 3))
            .is(res("011")),
        case("mincore_private_anonymous_across_fork")
            .op(mm(0, 3, RW))
            .op(st(0, 1))
            .op(fork(vec![mc(0, 3), st(1, 1), ma(0, 1, MADV_DONTNEED), mc(0, 3)]))
            .is(R::Child(vec![res("100"), R::Ok, R::Ok, res("010")]))
            .op(mc(0, 3))
            .is(res("100")),
        // Guard markers: a PTE marker is looked up like a none PTE
        // ("we need to do cache lookup too for markers").
        case("mincore_guard_markers_private_and_shared")
            .op(mm(0, 3, RW))
            .op(st(0, 1))
            .op(st(1, 1))
            .op(ma(1, 1, g))
            .is(R::Ok)
            .op(mc(0, 3))
            .is(res("100"))
            .op(shm(4, 2, RW))
            .op(st(4, 1))
            .op(ma(4, 2, g))
            .is(R::Ok)
            .op(mc(4, 2))
            .is(res("10")),
        case("mincore_pages_move_with_mremap")
            .op(mm(0, 3, RW))
            .op(st(0, 1))
            .op(st(2, 1))
            .op(mr(0, 3, 3, FXD, 8))
            .is(at(8))
            .op(mc(8, 3))
            .is(res("101"))
            .op(mc(0, 1))
            .is(err(Errno::ENOMEM)),
    ]
}

/// MAP_GROWSDOWN mapping of `n` pages at page `at` (MAP_FIXED, private anonymous).
/// MADV_GUARD_INSTALL / MADV_GUARD_REMOVE (Linux 6.13; shared and file
/// mappings since 6.15): mm/madvise.c `madvise_guard_install`,
/// `madvise_guard_remove`, `is_valid_guard_vma`; the marker is a PTE marker
/// (`PTE_MARKER_GUARD`) that `handle_pte_marker` answers with SIGSEGV
/// (SEGV_MAPERR), that `zap_pte_range` keeps unless `ZAP_FLAG_DROP_MARKER`
/// (munmap, exit), that `copy_pte_range` copies and `move_ptes` moves.
fn guard_cases() -> Vec<Case> {
    let g = MADV_GUARD_INSTALL;
    let gr = MADV_GUARD_REMOVE;
    let maperr = || segv("MAPERR");
    vec![
        // Install zaps the page (data gone), an access is SEGV_MAPERR, the
        // VMA is not split; remove clears markers only.
        case("guard_install_faults_zaps_and_remove_clears_only_markers")
            .op(mm(0, 4, RW))
            .op(st(0, 1))
            .op(st(1, 2))
            .op(st(2, 3))
            .op(ld(3))
            .op(ma(1, 1, g))
            .is(R::Ok)
            .op(ld(1))
            .is(maperr())
            .op(st(1, 5))
            .is(maperr())
            .op(ma(1, 3, g))
            .is(R::Ok)
            .op(ld(2))
            .is(maperr())
            .op(ld(3))
            .is(maperr())
            .op(ld(0))
            .is(R::Val(1))
            .maps("0-4:rw-p")
            .op(ma(1, 1, gr))
            .is(R::Ok)
            .op(ld(1))
            .is(R::Val(0))
            .op(ld(2))
            .is(maperr())
            .op(ma(0, 4, gr))
            .is(R::Ok)
            .op(ld(0))
            .is(R::Val(1))
            .op(ld(2))
            .is(R::Val(0))
            .op(ma(0, 4, gr))
            .is(R::Ok)
            .maps("0-4:rw-p"),
        // madvise_dontneed_single_vma zaps without ZAP_FLAG_DROP_MARKER.
        case("guard_kept_by_dontneed_free_and_dontneed_locked")
            .op(mm(0, 2, RW))
            .op(st(0, 1))
            .op(st(1, 2))
            .op(ma(0, 1, g))
            .op(ma(0, 2, MADV_DONTNEED))
            .is(R::Ok)
            .op(ld(0))
            .is(maperr())
            .op(ld(1))
            .is(R::Val(0))
            .op(ma(0, 2, MADV_FREE))
            .is(R::Ok)
            .op(ld(0))
            .is(maperr())
            .op(ma(0, 2, MADV_DONTNEED_LOCKED))
            .is(R::Ok)
            .op(ld(0))
            .is(maperr()),
        // mprotect keeps markers; the VMA's own check comes first
        // (access_error: SEGV_ACCERR), install works on PROT_NONE memory.
        case("guard_survives_mprotect_and_vma_check_comes_first")
            .op(mm(0, 2, RW))
            .op(ma(0, 1, g))
            .op(mp(0, 2, R_))
            .is(R::Ok)
            .op(ld(0))
            .is(maperr())
            .op(st(0, 1))
            .is(segv("ACCERR"))
            .op(mp(0, 2, PROT_NONE))
            .op(ld(0))
            .is(segv("ACCERR"))
            .op(ma(1, 1, g))
            .is(R::Ok)
            .maps("0-2:---p")
            .op(mp(0, 2, RW))
            .op(ld(0))
            .is(maperr())
            .op(ld(1))
            .is(maperr())
            .maps("0-2:rw-p"),
        // GUP over a marker fails: faultin_page_range gives EFAULT.
        case("guard_populate_over_marker_is_efault")
            .op(mm(0, 3, RW))
            .op(ma(1, 1, g))
            .op(ma(0, 3, MADV_POPULATE_READ))
            .is(err(Errno::EFAULT))
            .op(ma(0, 3, MADV_POPULATE_WRITE))
            .is(err(Errno::EFAULT))
            .op(ma(0, 1, MADV_POPULATE_WRITE))
            .is(R::Ok)
            .op(ma(2, 1, MADV_POPULATE_READ))
            .is(R::Ok)
            .op(ld(1))
            .is(maperr()),
        // move_ptes moves markers with the pages; shrinking drops them.
        case("guard_moves_with_mremap_and_shrink_drops_it")
            .op(mm(0, 3, RW))
            .op(st(0, 1))
            .op(st(2, 3))
            .op(ma(1, 1, g))
            .op(mr(0, 3, 3, FXD, 10))
            .is(at(10))
            .op(ld(11))
            .is(maperr())
            .op(ld(10))
            .is(R::Val(1))
            .op(ld(12))
            .is(R::Val(3))
            .op(ld(1))
            .is(maperr())
            .op(ma(12, 1, g))
            .op(mr(10, 3, 2, 0, 0))
            .is(at(10))
            .op(mr(10, 2, 3, 0, 0))
            .is(at(10))
            .op(ld(12))
            .is(R::Val(0))
            .op(ld(11))
            .is(maperr())
            .maps("10-13:rw-p"),
        // munmap and MAP_FIXED replacement zap with ZAP_FLAG_DROP_MARKER.
        case("guard_removed_by_munmap_and_map_fixed")
            .op(mm(0, 2, RW))
            .op(ma(0, 2, g))
            .op(un(0, 1))
            .op(mm(0, 1, RW))
            .op(ld(0))
            .is(R::Val(0))
            .op(mm(1, 1, RW))
            .op(ld(1))
            .is(R::Val(0))
            .op(mm(3, 3, RW))
            .op(ma(3, 3, g))
            .op(un(4, 1))
            .is(R::Ok)
            .op(ld(3))
            .is(maperr())
            .op(ld(5))
            .is(maperr())
            .maps("0-2:rw-p 3-4:rw-p 5-6:rw-p"),
        // is_valid_guard_vma: VM_LOCKED refuses install (EINVAL), not
        // remove; madvise_walk_vmas stops at the refusing VMA, keeping
        // what it did before.
        case("guard_locked_vma_einval_after_earlier_vmas")
            .op(mmf(0, 2, RW, FX | MAP_LOCKED))
            .op(ma(0, 1, g))
            .is(err(Errno::EINVAL))
            .op(ma(0, 1, gr))
            .is(R::Ok)
            .op(ld(0))
            .is(R::Val(0))
            .op(mm(4, 2, RW))
            .op(mmf(6, 1, RW, FX | MAP_LOCKED))
            .op(mm(7, 1, RW))
            .op(ma(4, 4, g))
            .is(err(Errno::EINVAL))
            .op(ld(4))
            .is(maperr())
            .op(ld(5))
            .is(maperr())
            .op(ld(6))
            .is(R::Val(0))
            .op(ld(7))
            .is(R::Val(0))
            .maps("0-2:rw-p 4-6:rw-p 6-7:rw-p 7-8:rw-p"),
        // Holes: ENOMEM at the end, the mapped parts done all the same.
        case("guard_holes_enomem_but_mapped_parts_done")
            .op(mm(0, 2, RW))
            .op(mm(3, 2, RW))
            .op(ma(0, 5, g))
            .is(err(Errno::ENOMEM))
            .op(ld(0))
            .is(maperr())
            .op(ld(4))
            .is(maperr())
            .op(ma(0, 5, gr))
            .is(err(Errno::ENOMEM))
            .op(ld(0))
            .is(R::Val(0))
            .op(ld(4))
            .is(R::Val(0))
            .op(ma(2, 2, g))
            .is(err(Errno::ENOMEM))
            .op(ld(3))
            .is(maperr())
            .op(ma(2, 1, g))
            .is(err(Errno::ENOMEM))
            .op(ma(2, 1, gr))
            .is(err(Errno::ENOMEM))
            .maps("0-2:rw-p 3-5:rw-p"),
        // Shared memory (6.15): the marker hides the page, the object
        // keeps its contents.
        case("guard_shared_anon_keeps_object_contents")
            .op(shm(0, 2, RW))
            .op(st(0, 5))
            .op(ma(0, 1, g))
            .is(R::Ok)
            .op(ld(0))
            .is(maperr())
            .op(ma(0, 2, MADV_DONTNEED))
            .op(ld(0))
            .is(maperr())
            .op(ma(0, 1, gr))
            .is(R::Ok)
            .op(ld(0))
            .is(R::Val(5))
            .maps("0-2:rw-s"),
        case("guard_droppable_accepted")
            .op(mmf(0, 1, RW, DROP))
            .op(ma(0, 1, g))
            .is(R::Ok)
            .op(ld(0))
            .is(maperr()),
        // Install calls anon_vma_prepare, so fork copies the page tables
        // even with no page ever faulted; the child's markers are its own.
        case("guard_fork_copies_markers_of_untouched_vma")
            .op(mm(0, 3, RW))
            .op(ma(1, 1, g))
            .op(fork(vec![ld(0), ld(1), ld(2), Op::Maps, ma(1, 1, gr), ld(1)]))
            .is(child(vec![
                R::Val(0),
                maperr(),
                R::Val(0),
                maps("0-3:rw-p"),
                R::Ok,
                R::Val(0),
            ]))
            .op(ld(1))
            .is(maperr()),
        case("guard_fork_copies_markers_between_written_pages")
            .op(mm(0, 3, RW))
            .op(st(0, 1))
            .op(st(2, 3))
            .op(ma(1, 1, g))
            .op(fork(vec![ld(0), ld(1), ld(2), st(0, 9), st(1, 9), ld(0)]))
            .is(child(vec![R::Val(1), maperr(), R::Val(3), R::Ok, maperr(), R::Val(9)]))
            .op(ld(0))
            .is(R::Val(1))
            .op(ld(1))
            .is(maperr()),
        case("guard_fork_shared_anon_copies_markers")
            .op(shm(0, 2, RW))
            .op(st(1, 7))
            .op(ma(0, 1, g))
            .op(fork(vec![ld(0), ld(1)]))
            .is(child(vec![maperr(), R::Val(7)])),
        // dup_mmap copies no page table of a VM_WIPEONFORK VMA; a
        // VM_DONTCOPY VMA is not in the child at all.
        case("guard_fork_wipeonfork_and_dontfork")
            .op(mm(0, 2, RW))
            .op(ma(1, 1, g))
            .op(ma(0, 2, MADV_WIPEONFORK))
            .op(mm(3, 2, RW))
            .op(ma(4, 1, g))
            .op(ma(3, 2, MADV_DONTFORK))
            .op(fork(vec![ld(1), ld(0), Op::Maps]))
            .is(child(vec![R::Val(0), R::Val(0), maps("0-2:rw-p")]))
            .op(ld(1))
            .is(maperr())
            .op(ld(4))
            .is(maperr()),
        // Markers installed in the child after fork: its tables are its own
        // (shared_pt: the fork-shared table is unshared first).
        case("guard_install_in_child_after_fork")
            .op(mm(0, 2, RW))
            .op(st(0, 1))
            .op(st(1, 2))
            .op(fork(vec![ma(0, 1, g), ld(0), ld(1), ma(0, 1, gr), ld(0)]))
            .is(child(vec![R::Ok, maperr(), R::Val(2), R::Ok, R::Val(0)]))
            .op(ld(0))
            .is(R::Val(1)),
        // DONTNEED over whole 2 MiB spans in the child keeps the markers the
        // parent's tables held (shared_pt: such a table is copied, not left).
        case("guard_fork_then_dontneed_whole_window_keeps_markers")
            .op(mm(0, 1024, RW))
            .op(st(0, 1))
            .op(st(600, 2))
            .op(ma(5, 1, g))
            .op(ma(700, 1, g))
            .op(fork(vec![ma(0, 1024, MADV_DONTNEED), ld(5), ld(700), ld(0), ld(600)]))
            .is(child(vec![R::Ok, maperr(), maperr(), R::Val(0), R::Val(0)]))
            .op(ld(0))
            .is(R::Val(1))
            .op(ld(5))
            .is(maperr()),
    ]
}

fn ml(at: i64, n: u64) -> Op {
    Op::Mlock { a: pg(at), len: n * P }
}
fn ml2(at: i64, n: u64, flags: u32) -> Op {
    Op::Mlock2 {
        a: pg(at),
        len: n * P,
        flags,
    }
}
fn mul(at: i64, n: u64) -> Op {
    Op::Munlock { a: pg(at), len: n * P }
}
fn mla(flags: u32) -> Op {
    Op::Mlockall { flags }
}
/// Resident pages among `n` from page `at`, as a bit mask (mincore's
/// answer, folded for the RLIMIT_MEMLOCK cases' `Val` results).
fn resident(at: i64, n: u64) -> Op {
    Op::Resident { a: pg(at), pages: n }
}
fn memlock_limit(pages: u64) -> Op {
    Op::SetMemlockLimit { cur: pages * P }
}

/// Memory locking (Linux 6.18 mm/mlock.c do_mlock, apply_vma_lock_flags,
/// mlock_fixup, apply_mlockall_flags; mm/gup.c __mm_populate,
/// populate_vma_page_range; mm/mmap.c do_mmap, mlock_future_ok). The lock
/// is a VMA flag, so it splits and merges VMAs (two lines with equal
/// perms); residency is mincore's on the host and a present PTE on vmlab.
/// The host runs the cases as root: cases about RLIMIT_MEMLOCK drop
/// CAP_IPC_LOCK first (`DropIpcLock`), as every vmlab process is unprivileged.
fn mlock_cases(pkeys: bool) -> Vec<Case> {
    let onfault = MLOCK_ONFAULT;
    vec![
        // apply_vma_lock_flags → mlock_fixup → vma_modify_flags: split at
        // both ends; munlock gives the pieces equal flags again: merged.
        case("mlock_middle_splits_vma_and_munlock_merges_it_back")
            .op(Op::LockedPages)
            .is(R::Val(0))
            .op(mm(0, 4, RW))
            .op(ml(1, 2))
            .is(R::Ok)
            .maps("0-1:rw-p 1-3:rw-p 3-4:rw-p")
            // populate_vma_page_range: the locked pages are faulted in.
            .op(resident(0, 4))
            .is(R::Val(0b0110))
            .op(mul(1, 2))
            .is(R::Ok)
            .maps("0-4:rw-p")
            // Unlocking leaves the pages.
            .op(resident(0, 4))
            .is(R::Val(0b0110)),
        // do_mlock: len = PAGE_ALIGN(len + offset_in_page(start)), start
        // rounded down: one page from page 1 + 100 bytes covers pages 1-2.
        case("mlock_unaligned_start_rounds_down_and_length_up")
            .op(mm(0, 4, RW))
            .op(Op::Mlock {
                a: A::Rel(P as i64 + 100),
                len: P,
            })
            .is(R::Ok)
            .maps("0-1:rw-p 1-3:rw-p 3-4:rw-p")
            .op(resident(0, 4))
            .is(R::Val(0b0110))
            .op(Op::Munlock {
                a: A::Rel(P as i64 + 100),
                len: P,
            })
            .is(R::Ok)
            .maps("0-4:rw-p"),
        // apply_vma_lock_flags: end == start returns 0, mapped or not.
        case("mlock_zero_length_is_ok_even_unmapped")
            .op(ml(10, 0))
            .is(R::Ok)
            .op(mul(10, 0))
            .is(R::Ok)
            .op(ml2(10, 0, onfault))
            .is(R::Ok),
        // No VMA at start: ENOMEM, nothing changed; a hole later: ENOMEM
        // after the VMAs before it were locked (or unlocked).
        case("mlock_unmapped_start_or_hole_is_enomem")
            .op(mm(0, 2, RW))
            .op(mm(3, 2, RW))
            .op(ml(2, 1))
            .is(err(Errno::ENOMEM))
            .op(ml(-1, 2))
            .is(err(Errno::ENOMEM))
            .maps("0-2:rw-p 3-5:rw-p")
            .op(ml(1, 3))
            .is(err(Errno::ENOMEM))
            .maps("0-1:rw-p 1-2:rw-p 3-5:rw-p")
            .op(resident(0, 2))
            .is(R::Val(0))
            .op(mul(0, 5))
            .is(err(Errno::ENOMEM))
            .maps("0-2:rw-p 3-5:rw-p")
            .op(mul(2, 1))
            .is(err(Errno::ENOMEM)),
        // mlock2: flags other than MLOCK_ONFAULT are EINVAL (first).
        case("mlock2_unknown_flags_are_einval")
            .op(mm(0, 1, RW))
            .op(ml2(0, 1, 2))
            .is(err(Errno::EINVAL))
            .op(ml2(5, 1, 0x100))
            .is(err(Errno::EINVAL))
            .op(ml2(0, 1, 0))
            .is(R::Ok),
        // VM_LOCKONFAULT: populate_vma_page_range returns at once; a later
        // mlock clears it (the two pieces then merge) and populates.
        case("mlock2_onfault_locks_without_faulting_in")
            .op(mm(0, 4, RW))
            .op(ml2(0, 2, onfault))
            .is(R::Ok)
            .maps("0-2:rw-p 2-4:rw-p")
            .op(resident(0, 4))
            .is(R::Val(0))
            .op(st(1, 5))
            .op(resident(0, 4))
            .is(R::Val(0b0010))
            .op(ml(0, 4))
            .is(R::Ok)
            .maps("0-4:rw-p")
            .op(resident(0, 4))
            .is(R::Val(0b1111))
            .op(ld(1))
            .is(R::Val(5)),
        // A PROT_NONE VMA is locked, but populate_vma_page_range refuses it
        // (EFAULT), which __mlock_posix_error_return makes ENOMEM.
        case("mlock_of_prot_none_locks_and_fails_with_enomem")
            .op(mm(0, 2, RW))
            .op(mm(2, 2, PROT_NONE))
            .op(ml(0, 4))
            .is(err(Errno::ENOMEM))
            .op(resident(0, 4))
            .is(R::Val(0b0011))
            .op(mul(0, 4))
            .is(R::Ok),
        // Read-only and write-only private memory is faulted for read
        // (FOLL_FORCE): the zero page; writable memory for write.
        case("mlock_populates_read_only_and_write_only_memory")
            .op(mm(0, 2, R_))
            .op(mm(2, 2, PROT_WRITE))
            .op(mm(4, 2, PROT_EXEC))
            // With protection keys the exec-only VMA's key denies GUP's
            // read (arch_vma_access_permitted: EFAULT, so ENOMEM).
            .op(ml(0, 6))
            .is(if pkeys { err(Errno::ENOMEM) } else { R::Ok })
            .op(resident(0, 6))
            .is(R::Val(if pkeys { 0b00_1111 } else { 0b11_1111 }))
            .op(ld(0))
            .is(R::Val(0)),
        // mlockall: EINVAL for no flag, an unknown one, MCL_ONFAULT alone.
        case("mlockall_bad_flags_are_einval")
            .op(mla(0))
            .is(err(Errno::EINVAL))
            .op(mla(MCL_ONFAULT))
            .is(err(Errno::EINVAL))
            .op(mla(MCL_CURRENT | 8))
            .is(err(Errno::EINVAL))
            .op(Op::Munlockall)
            .is(R::Ok),
        // MCL_CURRENT locks every VMA whole (no split) and populates them
        // (mm_populate, errors ignored: the PROT_NONE VMA is skipped);
        // with MCL_ONFAULT nothing is faulted in.
        case("mlockall_current_populates_every_vma")
            .op(mm(0, 2, RW))
            .op(mm(2, 2, R_))
            .op(mm(4, 1, PROT_NONE))
            .op(mla(MCL_CURRENT | MCL_ONFAULT))
            .is(R::Ok)
            .op(resident(0, 5))
            .is(R::Val(0))
            .op(mla(MCL_CURRENT))
            .is(R::Ok)
            .op(resident(0, 5))
            .is(R::Val(0b01111))
            .maps("0-2:rw-p 2-4:r--p 4-5:---p")
            .op(Op::Munlockall)
            .is(R::Ok),
        // MCL_FUTURE sets mm->def_flags: a later mmap is locked and
        // populated; munlockall clears it, and then a new mapping is not.
        case("mlockall_future_locks_and_populates_later_mappings")
            .op(mla(MCL_FUTURE))
            .is(R::Ok)
            .op(mm(0, 2, RW))
            .is(at(0))
            .op(resident(0, 2))
            .is(R::Val(0b11))
            .op(mm(2, 2, RW))
            .maps("0-4:rw-p")
            .op(Op::LockedPages)
            .is(R::Val(4))
            .op(Op::Munlockall)
            .is(R::Ok)
            .op(mm(4, 2, RW))
            .maps("0-6:rw-p")
            .op(resident(0, 6))
            .is(R::Val(0b1111)),
        // MCL_FUTURE | MCL_ONFAULT: locked (so it does not merge with an
        // unlocked neighbour) but not populated.
        case("mlockall_future_onfault_locks_without_populating")
            .op(mm(0, 2, RW))
            .op(mla(MCL_FUTURE | MCL_ONFAULT))
            .is(R::Ok)
            .op(mm(2, 2, RW))
            .maps("0-2:rw-p 2-4:rw-p")
            .op(resident(0, 4))
            .is(R::Val(0)),
        // The child of a fork inherits neither VM_LOCKED (dup_mmap) nor
        // def_flags (mm_init keeps only VM_INIT_DEF_MASK).
        case("fork_child_inherits_no_memory_lock")
            .op(mm(0, 2, RW))
            .op(ml(0, 1))
            .maps("0-1:rw-p 1-2:rw-p")
            .op(mla(MCL_FUTURE))
            .op(fork(vec![
                Op::Maps,
                Op::LockedPages,
                mm(4, 1, RW),
                resident(4, 1),
                // Locking in the child splits as in the parent.
                ml(1, 1),
                Op::Maps,
            ]))
            // The child's VMAs lose VM_LOCKED but stay split (dup_mmap
            // copies VMAs one by one and merges nothing).
            .is(child(vec![
                maps_of("0-1:rw-p 1-2:rw-p"),
                R::Val(0),
                at(4),
                R::Val(0),
                R::Ok,
                maps_of("0-1:rw-p 1-2:rw-p 4-5:rw-p"),
            ])),
        // do_mmap: VM_LOCKED or MAP_POPULATE (without MAP_NONBLOCK) makes
        // vm_mmap_pgoff populate the new range (errors ignored).
        case("map_populate_and_map_locked_prefault")
            .op(mmf(0, 3, RW, FX | MAP_POPULATE))
            .is(at(0))
            .op(resident(0, 3))
            .is(R::Val(0b111))
            .op(mmf(4, 2, RW, FX | MAP_LOCKED))
            .op(resident(4, 2))
            .is(R::Val(0b11))
            .op(mmf(8, 2, R_, FX | MAP_POPULATE))
            .op(resident(8, 2))
            .is(R::Val(0b11))
            .op(mmf(10, 2, RW, FX | MAP_POPULATE | MAP_NONBLOCK))
            .op(resident(10, 2))
            .is(R::Val(0))
            .op(mmf(12, 2, PROT_NONE, FX | MAP_POPULATE))
            .is(at(12))
            .op(resident(12, 2))
            .is(R::Val(0))
            // The populated mapping has its anonymous identity at once:
            // an unpopulated neighbour merges into it all the same.
            .op(mm(3, 1, RW))
            .maps("0-4:rw-p 4-6:rw-p 8-10:r--p 10-12:rw-p 12-14:---p")
            .op(ld(1))
            .is(R::Val(0)),
        // RLIMIT_MEMLOCK, unprivileged: do_mlock counts locked_vm plus the
        // request, less what of it is locked already (ENOMEM); do_mmap's
        // mlock_future_ok (EAGAIN, also under MCL_FUTURE); mlockall
        // compares total_vm (ENOMEM); a zero limit is EPERM (can_do_mlock).
        case("rlimit_memlock_unprivileged")
            .op(Op::LockedPages)
            .is(R::Val(0))
            .op(Op::DropIpcLock)
            .is(R::Ok)
            .op(memlock_limit(2))
            .is(R::Ok)
            .op(mm(0, 4, RW))
            .op(ml(0, 3))
            .is(err(Errno::ENOMEM))
            .op(ml(0, 2))
            .is(R::Ok)
            .op(ml(1, 1))
            .is(R::Ok)
            .op(Op::LockedPages)
            .is(R::Val(2))
            .op(ml(1, 2))
            .is(err(Errno::ENOMEM))
            .op(mmf(6, 1, RW, FX | MAP_LOCKED))
            .is(err(Errno::EAGAIN))
            .op(mla(MCL_CURRENT))
            .is(err(Errno::ENOMEM))
            .op(mla(MCL_FUTURE))
            .is(R::Ok)
            .op(mm(8, 1, RW))
            .is(err(Errno::EAGAIN))
            .op(Op::Munlockall)
            .op(mm(8, 1, RW))
            .is(at(8))
            .maps("0-4:rw-p 8-9:rw-p")
            // A range that wraps: the limit refuses it before the range
            // is looked at (a privileged caller would get EINVAL).
            .op(Op::Mlock {
                a: pg(0),
                len: u64::MAX - 2 * P,
            })
            .is(err(Errno::ENOMEM))
            .op(memlock_limit(0))
            .is(R::Ok)
            .op(ml(0, 1))
            .is(err(Errno::EPERM))
            .op(ml2(0, 1, onfault))
            .is(err(Errno::EPERM))
            .op(mla(MCL_FUTURE))
            .is(err(Errno::EPERM))
            .op(mmf(6, 1, RW, FX | MAP_LOCKED))
            .is(err(Errno::EPERM))
            .op(mul(0, 4))
            .is(R::Ok)
            .op(Op::Munlockall)
            .is(R::Ok),
        // GUP faults on a guard marker (VM_FAULT_SIGSEGV → EFAULT): mlock
        // is ENOMEM, the VMA stays locked, the page before is faulted in;
        // mlock2(MLOCK_ONFAULT) populates nothing and succeeds.
        case("mlock_over_guard_page_is_enomem")
            .op(mm(0, 3, RW))
            .op(ma(1, 1, MADV_GUARD_INSTALL))
            .is(R::Ok)
            .op(ml(0, 3))
            .is(err(Errno::ENOMEM))
            .op(resident(0, 3))
            .is(R::Val(0b001))
            .op(Op::LockedPages)
            .is(R::Val(3))
            .op(mul(0, 3))
            .op(ml2(0, 3, onfault))
            .is(R::Ok)
            .op(ld(1))
            .is(segv("MAPERR")),
        // mremap's check_prep_vma: a locked VMA may grow only within
        // RLIMIT_MEMLOCK (EAGAIN); the growth is populated (populate_expand).
        case("mremap_growth_of_locked_memory")
            .op(Op::DropIpcLock)
            .op(memlock_limit(5))
            .op(mmf(0, 2, RW, FX | MAP_LOCKED))
            .op(mr(0, 2, 4, 0, 0))
            .is(at(0))
            .op(resident(0, 4))
            .is(R::Val(0b1111))
            .op(Op::LockedPages)
            .is(R::Val(4))
            .op(mr(0, 4, 6, 0, 0))
            .is(err(Errno::EAGAIN))
            .maps("0-4:rw-p"),
        // acct_stack_growth: a locked stack may not grow past
        // RLIMIT_MEMLOCK (mlock_future_ok; SEGV_MAPERR).
        case("locked_stack_growth_stops_at_rlimit_memlock")
            .op(Op::DropIpcLock)
            .op(memlock_limit(3))
            .op(stack_limit(64))
            .op(mmf(99, 1, RW, FX | MAP_GROWSDOWN | MAP_LOCKED))
            .is(at(99))
            .op(st(97, 1))
            .is(R::Ok)
            .maps("97-100:rw-p")
            .op(st(96, 1))
            .is(segv("MAPERR"))
            .maps("97-100:rw-p"),
    ]
}

fn gd(at: i64, n: u64, prot: u32) -> Op {
    mmf(at, n, prot, FX | MAP_GROWSDOWN)
}
/// `setrlimit(RLIMIT_STACK)` to `pages` pages (soft limit; hard limit kept).
fn stack_limit(pages: u64) -> Op {
    Op::SetStackLimit { cur: pages * P }
}

/// Stack growth (Linux 6.18 mm/memory.c lock_mm_and_find_vma →
/// mm/mmap.c expand_stack_locked → expand_downwards → acct_stack_growth):
/// an access below a VM_GROWSDOWN VMA, with no VMA in between, grows it
/// down to the accessed page, however far below (no stack-pointer check),
/// unless the VMA below is accessible, not itself a stack, and would end
/// less than stack_guard_gap (256 pages) below the new start, or the new
/// size exceeds RLIMIT_STACK (both SEGV_MAPERR). Growth extends vm_start
/// and lowers vm_pgoff by the pages grown and merges with nothing; the
/// access is checked against the protection after it. Cases that grow far
/// set RLIMIT_STACK themselves (the host's may differ from the default).
fn stack_cases() -> Vec<Case> {
    vec![
        case("stack_grows_on_load_and_store_below_growsdown_vma")
            .op(stack_limit(2048))
            .is(R::Ok)
            .op(gd(1000, 2, RW))
            .is(at(1000))
            .op(st(1001, 7))
            .op(ld(990))
            .is(R::Val(0))
            .maps("990-1002:rw-p")
            .op(st(500, 5))
            .is(R::Ok)
            .maps("500-1002:rw-p")
            .op(ld(500))
            .is(R::Val(5))
            .op(ld(1001))
            .is(R::Val(7))
            // Far below, with nothing mapped near: one access grows 500 pages.
            .op(ld(0))
            .is(R::Val(0))
            .maps("0-1002:rw-p")
            // A hole punched in the stack: the upper part grows into it
            // again; the part below is a stack too, so no gap is kept.
            .op(un(400, 200))
            .is(R::Ok)
            .maps("0-400:rw-p 600-1002:rw-p")
            .op(st(450, 9))
            .is(R::Ok)
            .maps("0-400:rw-p 450-1002:rw-p")
            .op(ld(400))
            .is(R::Val(0))
            .maps("0-400:rw-p 400-1002:rw-p")
            .op(ld(450))
            .is(R::Val(9))
            // Page 500 was in the hole: grown back, it reads zero.
            .op(ld(500))
            .is(R::Val(0))
            // The grown VMA's page offset went down by the pages grown, so
            // once the two halves have one protection they merge again.
            .op(mp(0, 1002, R_))
            .is(R::Ok)
            .maps("0-1002:r--p"),
        case("stack_growth_keeps_guard_gap_to_mapping_below")
            .op(stack_limit(2048))
            .op(mm(0, 1, RW))
            .op(gd(600, 1, RW))
            .is(at(600))
            // 255 pages above the mapping below: refused.
            .op(ld(256))
            .is(segv("MAPERR"))
            .op(st(256, 1))
            .is(segv("MAPERR"))
            .maps("0-1:rw-p 600-601:rw-p")
            // 256 pages above it: allowed, 344 pages in one access.
            .op(ld(257))
            .is(R::Val(0))
            .maps("0-1:rw-p 257-601:rw-p")
            // A read-only mapping below keeps the gap too...
            .op(mp(0, 1, R_))
            .op(ld(200))
            .is(segv("MAPERR"))
            // ...an inaccessible one does not: the stack may touch it.
            .op(mp(0, 1, PROT_NONE))
            .op(ld(200))
            .is(R::Val(0))
            .maps("0-1:---p 200-601:rw-p")
            .op(st(1, 4))
            .is(R::Ok)
            .maps("0-1:---p 1-601:rw-p")
            .op(ld(0))
            .is(segv("ACCERR")),
        // A stack below another stack: no gap; growth does not merge them.
        case("stack_growth_up_to_another_stack")
            .op(gd(0, 1, RW))
            .op(gd(10, 1, RW))
            .op(st(1, 3))
            .is(R::Ok)
            .maps("0-1:rw-p 1-11:rw-p")
            .op(ld(1))
            .is(R::Val(3))
            .op(ld(0))
            .is(R::Val(0)),
        // acct_stack_growth: size = vm_end - new start; size > RLIMIT_STACK
        // fails. A limit lowered below the stack's size stops growth there.
        case("stack_growth_limited_by_rlimit_stack")
            .op(stack_limit(256))
            .is(R::Ok)
            .op(gd(1000, 2, RW))
            .op(ld(745))
            .is(segv("MAPERR"))
            .maps("1000-1002:rw-p")
            .op(ld(746))
            .is(R::Val(0))
            .maps("746-1002:rw-p")
            .op(st(745, 1))
            .is(segv("MAPERR"))
            .op(stack_limit(257))
            .op(st(745, 1))
            .is(R::Ok)
            .maps("745-1002:rw-p")
            .op(stack_limit(10))
            .op(ld(744))
            .is(segv("MAPERR"))
            .op(ld(745))
            .is(R::Val(1))
            .maps("745-1002:rw-p"),
        // The VMA grows before the access is checked: a store below a
        // read-only stack, or a load below an inaccessible one, grows it
        // and then fails with SEGV_ACCERR.
        case("stack_growth_precedes_the_access_check")
            .op(gd(10, 1, R_))
            .op(st(5, 1))
            .is(segv("ACCERR"))
            .maps("5-11:r--p")
            .op(ld(5))
            .is(R::Val(0))
            .op(gd(30, 1, PROT_NONE))
            .op(ld(25))
            .is(segv("ACCERR"))
            .maps("5-11:r--p 25-31:---p")
            .op(mp(25, 6, RW))
            .op(st(25, 2))
            .is(R::Ok)
            .op(ld(25))
            .is(R::Val(2)),
        // Rlimits and stacks are inherited; each side grows its own.
        case("fork_child_grows_its_own_stack")
            .op(stack_limit(64))
            .op(gd(100, 1, RW))
            .op(st(100, 1))
            .op(fork(vec![ld(50), Op::Maps, st(40, 2), ld(40), ld(36), ld(37), ld(100)]))
            .is(child(vec![
                R::Val(0),
                maps("50-101:rw-p"),
                R::Ok,
                R::Val(2),
                segv("MAPERR"),
                R::Val(0),
                R::Val(1),
            ]))
            .maps("100-101:rw-p")
            .op(ld(40))
            .is(R::Val(0))
            .maps("40-101:rw-p"),
    ]
}

/// mremap (Linux 6.18 mm/mremap.c: check_mremap_params, check_prep_vma,
/// remap_move, mremap_to, expand_vma, move_vma; mm/vma.c: copy_vma).
fn mremap_cases() -> Vec<Case> {
    vec![
        // shrink_vma: the tail is unmapped; the rest keeps its pages.
        case("mremap_shrink_in_place")
            .op(mm(0, 4, RW))
            .op(st(0, 1))
            .op(st(3, 4))
            .op(mr(0, 4, 2, 0, 0))
            .is(at(0))
            .maps("0-2:rw-p")
            .op(ld(0))
            .is(R::Val(1))
            .op(ld(2))
            .is(segv("MAPERR"))
            .op(ld(3))
            .is(segv("MAPERR")),
        // vma_expandable + vma_merge_extend: grows over free space.
        case("mremap_grow_in_place")
            .op(mm(0, 2, RW))
            .op(st(1, 7))
            .op(mr(0, 2, 4, 0, 0))
            .is(at(0))
            .maps("0-4:rw-p")
            .op(ld(1))
            .is(R::Val(7))
            .op(ld(3))
            .is(R::Val(0))
            .op(st(3, 9))
            .is(R::Ok)
            .op(ld(3))
            .is(R::Val(9)),
        // ...and merges with the next VMA it reaches.
        case("mremap_grow_in_place_merges_with_next")
            .op(mm(0, 2, RW))
            .op(mm(4, 2, RW))
            .op(mr(0, 2, 4, 0, 0))
            .is(at(0))
            .maps("0-6:rw-p"),
        // An old range that ends where its VMA ends may start inside it.
        case("mremap_grow_from_middle_of_vma")
            .op(mm(0, 4, RW))
            .op(mr(2, 2, 3, 0, 0))
            .is(at(2))
            .maps("0-5:rw-p"),
        // expand_vma without MREMAP_MAYMOVE: ENOMEM when blocked (or when the
        // range does not end at its VMA's end); EFAULT when the range to keep
        // crosses its VMA's end (check_prep_vma), whatever the flags.
        case("mremap_grow_blocked")
            .op(mm(0, 4, RW))
            .op(mm(4, 1, R_))
            .op(mr(0, 4, 5, 0, 0))
            .is(err(Errno::ENOMEM))
            .op(mr(1, 2, 4, 0, 0))
            .is(err(Errno::ENOMEM))
            .op(mr(1, 3, 4, 0, 0))
            .is(err(Errno::ENOMEM))
            .op(mr(0, 5, 6, 0, 0))
            .is(err(Errno::EFAULT))
            .op(mr(0, 5, 6, MV, 0))
            .is(err(Errno::EFAULT))
            .op(mr(2, 10, 11, MV, 0))
            .is(err(Errno::EFAULT))
            .maps("0-4:rw-p 4-5:r--p"),
        // With MREMAP_MAYMOVE the kernel moves it (the harness brings it back
        // to page 20): contents move with it, the old range is gone.
        case("mremap_grow_by_moving")
            .op(mm(0, 2, RW))
            .op(st(0, 3))
            .op(st(1, 4))
            .op(mm(2, 1, R_))
            .op(mr_back(0, 2, 4, 20))
            .is(R::Elsewhere)
            .maps("2-3:r--p 20-24:rw-p")
            .op(ld(20))
            .is(R::Val(3))
            .op(ld(21))
            .is(R::Val(4))
            .op(ld(23))
            .is(R::Val(0))
            .op(ld(0))
            .is(segv("MAPERR")),
        // MREMAP_FIXED: the pages move, the target is unmapped first.
        case("mremap_fixed_moves_contents")
            .op(mm(0, 3, RW))
            .op(st(0, 1))
            .op(st(1, 2))
            .op(st(2, 3))
            .op(mr(0, 3, 3, FXD, 10))
            .is(at(10))
            .maps("10-13:rw-p")
            .op(ld(10))
            .is(R::Val(1))
            .op(ld(11))
            .is(R::Val(2))
            .op(ld(12))
            .is(R::Val(3))
            .op(ld(0))
            .is(segv("MAPERR")),
        case("mremap_fixed_replaces_target")
            .op(mm(0, 2, RW))
            .op(st(0, 5))
            .op(mm(10, 4, R_))
            .op(mr(0, 2, 2, FXD, 11))
            .is(at(11))
            .maps("10-11:r--p 11-13:rw-p 13-14:r--p")
            .op(ld(11))
            .is(R::Val(5))
            .op(ld(12))
            .is(R::Val(0)),
        // FIXED with a size change: shrink first (across VMAs too), then move;
        // or move into a larger range.
        case("mremap_fixed_shrink_and_grow")
            .op(mm(0, 2, RW))
            .op(mm(2, 1, R_))
            .op(st(0, 1))
            .op(mr(0, 4, 1, FXD, 20))
            .is(at(20))
            .maps("20-21:rw-p")
            .op(ld(20))
            .is(R::Val(1))
            .op(mr(20, 1, 3, FXD, 30))
            .is(at(30))
            .maps("30-33:rw-p")
            .op(ld(30))
            .is(R::Val(1))
            .op(ld(32))
            .is(R::Val(0)),
        // check_prep_vma runs before the target is unmapped: an EFAULT
        // leaves the target alone.
        case("mremap_fixed_efault_leaves_target")
            .op(mm(0, 2, RW))
            .op(mm(2, 1, R_))
            .op(mm(20, 3, RW))
            .op(mr(0, 3, 4, FXD, 20))
            .is(err(Errno::EFAULT))
            .maps("0-2:rw-p 2-3:r--p 20-23:rw-p"),
        // remap_move: a fixed move keeping the length takes every VMA in the
        // range, keeping the gaps between them; the target's gaps keep what
        // was mapped there.
        case("mremap_fixed_move_across_vmas_keeps_gaps")
            .op(mm(0, 2, RW))
            .op(mm(3, 1, R_))
            .op(st(0, 1))
            .op(mm(102, 1, PROT_EXEC))
            .op(mr(0, 4, 4, FXD, 100))
            .is(at(100))
            .maps("100-102:rw-p 102-103:--xp 103-104:r--p")
            .op(ld(100))
            .is(R::Val(1)),
        case("mremap_fixed_move_across_vmas")
            .op(mm(0, 4, RW))
            .op(mm(4, 1, R_))
            .op(st(3, 3))
            .op(mr(0, 5, 5, FXD, 100))
            .is(at(100))
            .maps("100-104:rw-p 104-105:r--p")
            .op(ld(103))
            .is(R::Val(3)),
        // ...but the range must start in a VMA.
        case("mremap_fixed_move_hole_at_start")
            .op(mm(1, 2, RW))
            .op(mr(0, 3, 3, FXD, 20))
            .is(err(Errno::EFAULT))
            .maps("1-3:rw-p"),
        // MREMAP_DONTUNMAP: the pages move, the old range stays mapped and
        // reads zero (private anonymous memory).
        case("mremap_dontunmap_private_anon")
            .op(mm(0, 2, RW))
            .op(st(0, 7))
            .op(st(1, 8))
            .op(mr(0, 2, 2, DU, 10))
            .is(at(10))
            .maps("0-2:rw-p 10-12:rw-p")
            .op(ld(0))
            .is(R::Val(0))
            .op(ld(10))
            .is(R::Val(7))
            .op(ld(11))
            .is(R::Val(8))
            .op(st(0, 1))
            .is(R::Ok)
            .op(ld(10))
            .is(R::Val(7)),
        // DONTUNMAP without FIXED: `new_addr` is a hint.
        case("mremap_dontunmap_hint")
            .op(mm(0, 2, RW))
            .op(st(0, 7))
            .op(mr(0, 2, 2, MV | MREMAP_DONTUNMAP, 10))
            .is(at(10))
            .op(mm(20, 2, RW))
            .op(mr(10, 2, 2, MV | MREMAP_DONTUNMAP, 20))
            .is(R::Elsewhere)
            .maps("0-2:rw-p 10-12:rw-p 20-22:rw-p")
            .op(ld(10))
            .is(R::Val(0)),
        // On shared memory the old range maps the object again.
        case("mremap_dontunmap_shared_anon")
            .op(shm(0, 2, RW))
            .op(st(0, 9))
            .op(mr(0, 2, 2, DU, 10))
            .is(at(10))
            .maps("0-2:rw-s 10-12:rw-s")
            .op(ld(0))
            .is(R::Val(9))
            .op(st(0, 10))
            .op(ld(10))
            .is(R::Val(10)),
        // dontunmap_complete: a VMA moved whole loses its anon_vma (and, being
        // untouched now, VM_ACCOUNT when made read-only: it merges); a VMA moved
        // in part keeps both.
        case("mremap_dontunmap_whole_vma_loses_identity")
            .op(mm(0, 2, RW))
            .op(st(0, 1))
            .op(mm(2, 1, R_))
            .op(mr(0, 2, 2, DU, 10))
            .is(at(10))
            .op(mp(0, 2, R_))
            .maps("0-3:r--p 10-12:rw-p"),
        case("mremap_dontunmap_part_keeps_identity")
            .op(mm(0, 2, RW))
            .op(st(0, 1))
            .op(mm(2, 1, R_))
            .op(mr(0, 1, 1, DU, 10))
            .is(at(10))
            .maps("0-2:rw-p 2-3:r--p 10-11:rw-p")
            .op(mp(0, 2, R_))
            .maps("0-2:r--p 2-3:r--p 10-11:rw-p"),
        // copy_vma: an anonymous VMA never written takes the page offset of
        // its new address, so it merges there like a new mapping.
        case("mremap_untouched_move_merges_at_destination")
            .op(mm(0, 2, RW))
            .op(mm(10, 1, RW))
            .op(mm(13, 1, RW))
            .op(mr(0, 2, 2, FXD, 11))
            .is(at(11))
            .maps("10-14:rw-p"),
        // A written VMA keeps its page offset and identity: no merge at the
        // destination, but back where it came from it merges again.
        case("mremap_touched_move_merges_back")
            .op(mm(1, 2, RW))
            .op(st(1, 1))
            .op(mm(10, 1, RW))
            .op(mm(13, 1, RW))
            .op(mr(1, 2, 2, FXD, 11))
            .is(at(11))
            .maps("10-11:rw-p 11-13:rw-p 13-14:rw-p")
            .op(mm(0, 1, RW))
            .op(mm(3, 1, RW))
            .op(mr(11, 2, 2, FXD, 1))
            .is(at(1))
            .maps("0-4:rw-p 10-11:rw-p 13-14:rw-p")
            .op(ld(1))
            .is(R::Val(1)),
        case("mremap_part_out_and_back_merges")
            .op(mm(0, 3, RW))
            .op(st(1, 1))
            .op(mr(1, 1, 1, FXD, 11))
            .is(at(11))
            .maps("0-1:rw-p 2-3:rw-p 11-12:rw-p")
            .op(mr(11, 1, 1, FXD, 1))
            .is(at(1))
            .maps("0-3:rw-p")
            .op(ld(1))
            .is(R::Val(1)),
        // The offset continues but the VMAs are not adjacent: no merge.
        case("mremap_touched_shift_does_not_merge")
            .op(mm(0, 3, RW))
            .op(st(0, 1))
            .op(mr(2, 1, 1, FXD, 3))
            .is(at(3))
            .maps("0-2:rw-p 3-4:rw-p")
            .op(mr(0, 1, 1, FXD, 2))
            .is(at(2))
            .maps("1-2:rw-p 2-3:rw-p 3-4:rw-p"),
        // Moves within one VMA: the target is cut out of it first; never
        // written, the moved piece takes its new offset and closes the hole.
        case("mremap_within_one_vma")
            .op(mm(0, 10, RW))
            .op(mr(0, 2, 2, FXD, 5))
            .is(at(5))
            .maps("2-10:rw-p")
            .op(mr(8, 2, 2, FXD, 0))
            .is(at(0))
            .maps("0-8:rw-p")
            .op(mm(20, 10, RW))
            .op(st(20, 1))
            .op(mr(20, 2, 2, FXD, 25))
            .is(at(25))
            .maps("0-8:rw-p 22-25:rw-p 25-27:rw-p 27-30:rw-p")
            .op(ld(25))
            .is(R::Val(1))
            // Next to itself: untouched, it merges with its own remains.
            .op(mm(40, 2, RW))
            .op(mr(40, 2, 2, FXD, 42))
            .is(at(42))
            .op(mm(44, 1, RW))
            .maps("0-8:rw-p 22-25:rw-p 25-27:rw-p 27-30:rw-p 42-45:rw-p"),
        // Two shared anonymous mappings are two objects: never merged; pieces
        // of one object merge again when their offsets continue.
        case("mremap_shared_anon_objects")
            .op(shm(0, 2, RW))
            .op(shm(2, 2, RW))
            .maps("0-2:rw-s 2-4:rw-s")
            .op(mr(2, 2, 2, FXD, 10))
            .op(mr(10, 2, 2, FXD, 2))
            .is(at(2))
            .maps("0-2:rw-s 2-4:rw-s")
            .op(mr(0, 1, 1, FXD, 10))
            .op(mr(10, 1, 1, FXD, 0))
            .is(at(0))
            .maps("0-2:rw-s 2-4:rw-s"),
        // Growing a shared anonymous mapping does not grow its object: the
        // new pages are past its end (SIGBUS, BUS_ADRERR).
        case("mremap_shared_anon_grow_past_object")
            .op(shm(0, 2, RW))
            .op(st(1, 5))
            .op(mr(0, 2, 4, 0, 0))
            .is(at(0))
            .maps("0-4:rw-s")
            .op(ld(1))
            .is(R::Val(5))
            .op(ld(2))
            .is(segv("BUS_ADRERR"))
            .op(st(3, 1))
            .is(segv("BUS_ADRERR")),
        // old_len 0 "duplicates" a shared mapping (its object, from the page
        // at addr); it is EINVAL for a private one, and without MAYMOVE it
        // cannot grow in place (ENOMEM).
        case("mremap_old_len_zero_duplicates_shared")
            .op(shm(0, 2, RW))
            .op(st(0, 5))
            .op(st(1, 6))
            .op(mr(0, 0, 1, 0, 0))
            .is(err(Errno::ENOMEM))
            .op(mr(1, 0, 2, FXD, 10))
            .is(at(10))
            .maps("0-2:rw-s 10-12:rw-s")
            .op(ld(10))
            .is(R::Val(6))
            .op(ld(11))
            .is(segv("BUS_ADRERR"))
            .op(st(10, 7))
            .op(ld(1))
            .is(R::Val(7))
            .op(mr(0, 0, 1, FXD, 1))
            .is(at(1))
            .maps("0-1:rw-s 1-2:rw-s 10-12:rw-s")
            .op(ld(1))
            .is(R::Val(5))
            .op(mr(0, 0, 1, DU, 20))
            .is(err(Errno::EINVAL))
            .op(mm(20, 1, RW))
            .op(mr(20, 0, 1, MV, 0))
            .is(err(Errno::EINVAL))
            .op(mr(20, 0, 1, FXD, 30))
            .is(err(Errno::EINVAL))
            .op(mr(20, 0, 1, 0, 0))
            .is(err(Errno::EINVAL)),
        // Shrinking (or keeping the size) in place does not look past the
        // first VMA: the range may cross VMAs and holes.
        case("mremap_shrink_and_noresize_across_vmas")
            .op(mm(0, 4, RW))
            .op(mm(4, 1, R_))
            .op(mm(6, 2, RW))
            .op(mr(0, 8, 3, 0, 0))
            .is(at(0))
            .maps("0-3:rw-p")
            .op(mm(10, 2, RW))
            .op(mr(10, 6, 6, 0, 0))
            .is(at(10))
            .op(mr(10, 6, 6, MV, 0))
            .is(at(10))
            .op(mr(10, 6, 5, MV, 0))
            .is(at(10))
            .op(mr(12, 2, 1, 0, 0))
            .is(err(Errno::EFAULT))
            .maps("0-3:rw-p 10-12:rw-p"),
        // PROT_NONE and written-then-protected mappings move like any other.
        case("mremap_prot_none_and_readonly")
            .op(mm(0, 2, PROT_NONE))
            .op(mr(0, 2, 3, 0, 0))
            .is(at(0))
            .op(mm(10, 2, RW))
            .op(st(10, 4))
            .op(mp(10, 2, R_))
            .op(mr(10, 2, 2, FXD, 20))
            .is(at(20))
            .maps("0-3:---p 20-22:r--p")
            .op(ld(20))
            .is(R::Val(4))
            .op(st(20, 1))
            .is(segv("ACCERR"))
            .op(ld(0))
            .is(segv("ACCERR")),
        // Flags set by madvise move with the VMA.
        case("mremap_keeps_madvise_flags")
            .op(mm(0, 4, RW))
            .op(ma(0, 2, MADV_DONTFORK))
            .op(mr(0, 2, 2, FXD, 10))
            .is(at(10))
            .op(mm(12, 1, RW))
            .maps("2-4:rw-p 10-12:rw-p 12-13:rw-p"),
        // check_mremap_params (all EINVAL, before any VMA is looked at, so
        // before EFAULT), then check_prep_vma.
        case("mremap_errno_table")
            .op(mm(0, 4, RW))
            .op(st(0, 42))
            .op(mr(0, 1, 1, 8, 0))
            .is(err(Errno::EINVAL))
            .op(mr_raw(A::Rel(1), P, P, 8, pg(0)))
            .is(err(Errno::EINVAL))
            .op(mr_raw(A::Rel(1), P, P, 0, pg(0)))
            .is(err(Errno::EINVAL))
            .op(mr(0, 1, 0, 0, 0))
            .is(err(Errno::EINVAL))
            .op(mr(0, 0, 0, 0, 0))
            .is(err(Errno::EINVAL))
            .op(mr_raw(pg(0), P, u64::MAX, 0, pg(0)))
            .is(err(Errno::EINVAL))
            .op(mr_raw(pg(0), P, u64::MAX - P + 2, 0, pg(0)))
            .is(err(Errno::EINVAL))
            .op(mr_raw(pg(0), P, TASK_SIZE + P, MV, pg(0)))
            .is(err(Errno::EINVAL))
            .op(mr_raw(pg(0), P, 1 << 47, 0, pg(0)))
            .is(err(Errno::EINVAL))
            // FIXED and DONTUNMAP need MAYMOVE; DONTUNMAP keeps the size.
            .op(mr(0, 1, 1, MREMAP_FIXED, 10))
            .is(err(Errno::EINVAL))
            .op(mr(0, 1, 1, MREMAP_DONTUNMAP, 10))
            .is(err(Errno::EINVAL))
            .op(mr(0, 1, 2, DU, 10))
            .is(err(Errno::EINVAL))
            .op(mr(0, 2, 1, MV | MREMAP_DONTUNMAP, 10))
            .is(err(Errno::EINVAL))
            // The new address: aligned, below TASK_SIZE, not overlapping.
            .op(mr_raw(pg(0), P, P, FXD, A::Rel(10 * P as i64 + 1)))
            .is(err(Errno::EINVAL))
            .op(mr_raw(pg(0), P, P, MREMAP_FIXED, A::Rel(10 * P as i64 + 1)))
            .is(err(Errno::EINVAL))
            .op(mr_raw(pg(0), P, P, FXD, A::Abs(TASK_SIZE)))
            .is(err(Errno::EINVAL))
            .op(mr_raw(pg(0), P, 2 * P, FXD, A::Abs(TASK_SIZE - P)))
            .is(err(Errno::EINVAL))
            .op(mr_raw(pg(0), P, P, FXD, A::Abs(1 << 47)))
            .is(err(Errno::EINVAL))
            .op(mr(0, 2, 2, FXD, 1))
            .is(err(Errno::EINVAL))
            .op(mr(0, 2, 4, FXD, -3))
            .is(err(Errno::EINVAL))
            .op(mr(0, 2, 2, DU, 0))
            .is(err(Errno::EINVAL))
            // Overlap is EINVAL even where nothing is mapped.
            .op(mr(50, 1, 1, FXD, 50))
            .is(err(Errno::EINVAL))
            // Not mapped: EFAULT.
            .op(mr(50, 1, 1, 0, 0))
            .is(err(Errno::EFAULT))
            .op(mr(50, 1, 2, MV, 0))
            .is(err(Errno::EFAULT))
            .op(mr(50, 1, 1, FXD, 60))
            .is(err(Errno::EFAULT))
            .op(mr(50, 2, 1, 0, 0))
            .is(err(Errno::EFAULT))
            .op(mr_raw(A::Abs(1 << 47), P, 2 * P, MV, pg(0)))
            .is(err(Errno::EFAULT))
            .op(mr_raw(A::Abs(TASK_SIZE), P, P, 0, pg(0)))
            .is(err(Errno::EFAULT))
            // Nothing changed.
            .op(ld(0))
            .is(R::Val(42))
            .maps("0-4:rw-p"),
    ]
}

/// madvise (Linux 6.18 mm/madvise.c: do_madvise, madvise_walk_vmas,
/// madvise_vma_behavior, madvise_dontneed_free, madvise_populate).
fn madvise_cases() -> Vec<Case> {
    vec![
        // zap_page_range_single: private anonymous pages read zero again.
        case("madvise_dontneed_zeroes_private_anon")
            .op(mm(0, 3, RW))
            .op(st(0, 1))
            .op(st(1, 2))
            .op(st(2, 3))
            .op(ma(1, 1, MADV_DONTNEED))
            .is(R::Ok)
            .op(ld(0))
            .is(R::Val(1))
            .op(ld(1))
            .is(R::Val(0))
            .op(ld(2))
            .is(R::Val(3))
            .maps("0-3:rw-p")
            .op(st(1, 9))
            .op(ld(1))
            .is(R::Val(9))
            .op(ma(0, 3, MADV_DONTNEED_LOCKED))
            .is(R::Ok)
            .op(ld(2))
            .is(R::Val(0)),
        // Shared memory keeps its contents in the object.
        case("madvise_dontneed_shared_keeps_contents")
            .op(shm(0, 2, RW))
            .op(st(0, 4))
            .op(ma(0, 2, MADV_DONTNEED))
            .is(R::Ok)
            .op(ld(0))
            .is(R::Val(4)),
        // Holes: ENOMEM at the end, the mapped parts advised all the same.
        case("madvise_hole_enomem_but_mapped_parts_advised")
            .op(mm(0, 1, RW))
            .op(mm(2, 1, RW))
            .op(st(0, 1))
            .op(st(2, 2))
            .op(ma(0, 3, MADV_DONTNEED))
            .is(err(Errno::ENOMEM))
            .op(ld(0))
            .is(R::Val(0))
            .op(ld(2))
            .is(R::Val(0))
            .op(ma(-1, 2, MADV_DONTFORK))
            .is(err(Errno::ENOMEM))
            .op(ma(2, 2, MADV_DONTFORK))
            .is(err(Errno::ENOMEM))
            .maps("0-1:rw-p 2-3:rw-p")
            .op(ma(0, 1, MADV_DOFORK))
            .op(ma(2, 1, MADV_DOFORK))
            .op(mm(1, 1, RW))
            // The new page joins its left neighbour (both identities came
            // from separate first writes, so the right one stays apart).
            .maps("0-2:rw-p 2-3:rw-p"),
        // MADV_FREE: private anonymous memory only (vma_is_anonymous); a store
        // after it is kept. (Not loaded before that store: Linux keeps the old
        // bytes until reclaim, vmlab frees at once; both are allowed.)
        case("madvise_free")
            .op(mm(0, 2, RW))
            .op(st(0, 5))
            .op(ma(0, 2, MADV_FREE))
            .is(R::Ok)
            .op(st(0, 6))
            .op(ld(0))
            .is(R::Val(6))
            .op(shm(4, 1, RW))
            .op(ma(4, 1, MADV_FREE))
            .is(err(Errno::EINVAL))
            .op(ma(0, 5, MADV_FREE))
            .is(err(Errno::EINVAL))
            .maps("0-2:rw-p 4-5:rw-s"),
        // Flag advice splits a VMA (madvise_update_vma → vma_modify_flags);
        // the opposite advice merges it back.
        case("madvise_flags_split_and_merge_back")
            .op(mm(0, 4, RW))
            .op(st(0, 1))
            .op(ma(1, 1, MADV_DONTFORK))
            .maps("0-1:rw-p 1-2:rw-p 2-4:rw-p")
            .op(ma(1, 1, MADV_DOFORK))
            .maps("0-4:rw-p")
            .op(ma(1, 1, MADV_DONTDUMP))
            .maps("0-1:rw-p 1-2:rw-p 2-4:rw-p")
            .op(ma(1, 1, MADV_DODUMP))
            .maps("0-4:rw-p")
            .op(ma(1, 2, MADV_WIPEONFORK))
            .maps("0-1:rw-p 1-3:rw-p 3-4:rw-p")
            .op(ma(1, 2, MADV_KEEPONFORK))
            .maps("0-4:rw-p")
            .op(ma(0, 1, MADV_MERGEABLE))
            .maps("0-1:rw-p 1-4:rw-p")
            .op(ma(0, 1, MADV_UNMERGEABLE))
            .maps("0-4:rw-p")
            .op(ma(3, 1, MADV_SEQUENTIAL))
            .maps("0-3:rw-p 3-4:rw-p")
            .op(ma(3, 1, MADV_RANDOM))
            .maps("0-3:rw-p 3-4:rw-p")
            .op(ma(3, 1, MADV_NORMAL))
            .maps("0-4:rw-p")
            // Advice that changes no flag splits nothing.
            .op(ma(1, 1, MADV_NORMAL))
            .op(ma(1, 1, MADV_WILLNEED))
            .op(ma(1, 1, MADV_COLD))
            .op(ma(1, 1, MADV_PAGEOUT))
            .op(ma(1, 1, MADV_DOFORK))
            .op(ma(1, 1, MADV_KEEPONFORK))
            .op(ma(1, 1, MADV_UNMERGEABLE))
            .is(R::Ok)
            .maps("0-4:rw-p")
            .op(ld(0))
            .is(R::Val(1)),
        // VM_HUGEPAGE and VM_NOHUGEPAGE replace each other; MAP_STACK sets
        // VM_NOHUGEPAGE, so MADV_NOHUGEPAGE lets a plain neighbour merge with it.
        case("madvise_hugepage_flags")
            .op(mm(0, 3, RW))
            .op(ma(0, 1, MADV_HUGEPAGE))
            .op(ma(2, 1, MADV_NOHUGEPAGE))
            .maps("0-1:rw-p 1-2:rw-p 2-3:rw-p")
            .op(ma(1, 1, MADV_HUGEPAGE))
            .maps("0-2:rw-p 2-3:rw-p")
            .op(ma(0, 2, MADV_NOHUGEPAGE))
            .maps("0-3:rw-p")
            .op(mmf(5, 1, RW, FX | MAP_STACK))
            .op(mm(6, 1, RW))
            .maps("0-3:rw-p 5-6:rw-p 6-7:rw-p")
            .op(ma(6, 1, MADV_NOHUGEPAGE))
            .maps("0-3:rw-p 5-7:rw-p"),
        // Flags set by madvise keep new mappings apart, like any flag.
        case("madvise_flags_keep_new_neighbours_apart")
            .op(mm(0, 2, RW))
            .op(ma(0, 2, MADV_DONTDUMP))
            .op(mm(2, 1, RW))
            .maps("0-2:rw-p 2-3:rw-p")
            .op(ma(2, 1, MADV_DONTDUMP))
            .maps("0-3:rw-p"),
        // What is refused on shared memory, and what is ignored.
        case("madvise_shared_memory")
            .op(shm(0, 2, RW))
            .op(ma(0, 1, MADV_MERGEABLE))
            .is(R::Ok)
            .maps("0-2:rw-s")
            .op(ma(0, 1, MADV_WIPEONFORK))
            .is(err(Errno::EINVAL))
            .op(ma(0, 1, MADV_DONTFORK))
            .is(R::Ok)
            .maps("0-1:rw-s 1-2:rw-s")
            .op(ma(0, 1, MADV_HUGEPAGE))
            .op(ma(0, 1, MADV_COLD))
            .op(ma(0, 1, MADV_PAGEOUT))
            .op(ma(0, 1, MADV_WILLNEED))
            .is(R::Ok)
            .op(mm(4, 1, RW))
            .op(ma(4, 1, MADV_REMOVE))
            .is(err(Errno::EINVAL)),
        // madvise_populate → faultin_page_range: the VMA must allow the
        // access (a read needs PROT_READ even on x86), a hole is ENOMEM, a
        // fault that would signal is EFAULT.
        case("madvise_populate")
            .op(mm(0, 1, PROT_WRITE))
            .op(mm(1, 1, PROT_EXEC))
            .op(mm(2, 1, PROT_NONE))
            .op(mm(3, 1, R_))
            .op(ma(0, 1, MADV_POPULATE_READ))
            .is(err(Errno::EINVAL))
            .op(ma(1, 1, MADV_POPULATE_READ))
            .is(err(Errno::EINVAL))
            .op(ma(2, 1, MADV_POPULATE_READ))
            .is(err(Errno::EINVAL))
            .op(ma(3, 1, MADV_POPULATE_READ))
            .is(R::Ok)
            .op(ma(0, 1, MADV_POPULATE_WRITE))
            .is(R::Ok)
            .op(ma(3, 1, MADV_POPULATE_WRITE))
            .is(err(Errno::EINVAL))
            .op(mm(10, 1, RW))
            .op(mm(12, 1, RW))
            .op(ma(10, 3, MADV_POPULATE_WRITE))
            .is(err(Errno::ENOMEM))
            .op(ld(10))
            .is(R::Val(0))
            .op(shm(20, 1, RW))
            .op(mr(20, 1, 2, 0, 0))
            .is(at(20))
            .op(ma(20, 2, MADV_POPULATE_READ))
            .is(err(Errno::EFAULT))
            .op(ma(20, 1, MADV_POPULATE_WRITE))
            .is(R::Ok)
            .maps("0-1:-w-p 1-2:--xp 2-3:---p 3-4:r--p 10-11:rw-p 12-13:rw-p 20-22:rw-s"),
        // Locked memory (MAP_LOCKED): DONTNEED, FREE, COLD, PAGEOUT, REMOVE
        // are EINVAL; MADV_DONTNEED_LOCKED is not.
        case("madvise_locked_memory")
            .op(mmf(0, 2, RW, FX | MAP_LOCKED))
            .op(st(0, 3))
            .op(ma(0, 1, MADV_DONTNEED))
            .is(err(Errno::EINVAL))
            .op(ma(0, 1, MADV_FREE))
            .is(err(Errno::EINVAL))
            .op(ma(0, 1, MADV_COLD))
            .is(err(Errno::EINVAL))
            .op(ma(0, 1, MADV_PAGEOUT))
            .is(err(Errno::EINVAL))
            .op(ma(0, 1, MADV_REMOVE))
            .is(err(Errno::EINVAL))
            .op(ld(0))
            .is(R::Val(3))
            .op(ma(0, 1, MADV_DONTNEED_LOCKED))
            .is(R::Ok)
            .op(ld(0))
            .is(R::Val(0))
            // MREMAP_DONTUNMAP unlocks the old VMA (moved whole, it also loses
            // its identity, so it merges with a plain neighbour).
            .op(mr(0, 2, 2, DU, 10))
            .is(at(10))
            .op(mm(2, 1, RW))
            .maps("0-3:rw-p 10-12:rw-p"),
        // is_valid_madvise, then the walk. HWPOISON and SOFT_OFFLINE are
        // unknown without CONFIG_MEMORY_FAILURE (the host kernel's config).
        case("madvise_errno_table")
            .op(mm(0, 4, RW))
            .op(st(0, 42))
            .op(ma(0, 1, 5))
            .is(err(Errno::EINVAL))
            .op(ma(0, 1, 7))
            .is(err(Errno::EINVAL))
            .op(ma(0, 1, 26))
            .is(err(Errno::EINVAL))
            .op(ma(0, 1, 99))
            .is(err(Errno::EINVAL))
            .op(ma(0, 1, 104))
            .is(err(Errno::EINVAL))
            .op(ma(0, 1, u32::MAX))
            .is(err(Errno::EINVAL))
            .op(ma(0, 0, 999))
            .is(err(Errno::EINVAL))
            .op(ma(0, 0, MADV_HWPOISON))
            .is(err(Errno::EINVAL))
            .op(ma(0, 0, MADV_SOFT_OFFLINE))
            .is(err(Errno::EINVAL))
            .op(ma_raw(A::Rel(1), 0, MADV_DONTNEED))
            .is(err(Errno::EINVAL))
            .op(ma_raw(A::Rel(1), P, MADV_NORMAL))
            .is(err(Errno::EINVAL))
            .op(ma(0, 0, MADV_DONTNEED))
            .is(R::Ok)
            .op(ma(50, 0, MADV_DONTNEED))
            .is(R::Ok)
            .op(ma_raw(pg(0), u64::MAX, MADV_DONTNEED))
            .is(err(Errno::EINVAL))
            .op(ma_raw(pg(0), u64::MAX - P + 1, MADV_DONTNEED))
            .is(err(Errno::EINVAL))
            .op(ma_raw(pg(0), 0u64.wrapping_sub(2 * P), MADV_DONTNEED))
            .is(err(Errno::EINVAL))
            .op(ma(50, 1, MADV_DONTNEED))
            .is(err(Errno::ENOMEM))
            .op(ma(50, 1, MADV_WILLNEED))
            .is(err(Errno::ENOMEM))
            .op(ma(50, 1, MADV_POPULATE_READ))
            .is(err(Errno::ENOMEM))
            .op(ma(50, 1, MADV_COLLAPSE))
            .is(err(Errno::ENOMEM))
            .op(ma_raw(A::Abs(1 << 47), P, MADV_DONTFORK))
            .is(err(Errno::ENOMEM))
            .op(ma_raw(A::Abs(TASK_SIZE - P), 2 * P, MADV_NORMAL))
            .is(err(Errno::ENOMEM))
            // A length short of a page rounds up: no split.
            .op(ma_raw(pg(0), 1, MADV_DONTFORK))
            .is(R::Ok)
            .maps("0-1:rw-p 1-4:rw-p")
            // A VMA too small for a huge page: MADV_COLLAPSE is EINVAL.
            .op(ma(0, 1, MADV_COLLAPSE))
            .is(err(Errno::EINVAL))
            .op(ld(0))
            .is(R::Val(42)),
    ]
}

/// fork with madvise and mremap (kernel/fork.c dup_mmap: VM_DONTCOPY VMAs
/// skipped, VM_WIPEONFORK ones inherited empty, anon_vma_fork chaining the
/// child's identities). Run on vmlab under every fork policy.
fn fork_cases() -> Vec<Case> {
    vec![
        case("fork_dontfork_vma_absent_in_child")
            .op(mm(0, 3, RW))
            .op(st(0, 1))
            .op(st(1, 2))
            .op(ma(1, 1, MADV_DONTFORK))
            .op(fork(vec![Op::Maps, ld(0), ld(1), ld(2), st(0, 9)]))
            .is(child(vec![
                maps("0-1:rw-p 2-3:rw-p"),
                R::Val(1),
                segv("MAPERR"),
                R::Val(0),
                R::Ok,
            ]))
            .maps("0-1:rw-p 1-2:rw-p 2-3:rw-p")
            .op(ld(0))
            .is(R::Val(1))
            .op(ld(1))
            .is(R::Val(2)),
        case("fork_wipeonfork_child_reads_zero")
            .op(mm(0, 2, RW))
            .op(st(0, 5))
            .op(st(1, 6))
            .op(ma(0, 1, MADV_WIPEONFORK))
            .op(fork(vec![ld(0), ld(1), Op::Maps, st(0, 7), ld(0)]))
            .is(child(vec![
                R::Val(0),
                R::Val(6),
                maps("0-1:rw-p 1-2:rw-p"),
                R::Ok,
                R::Val(7),
            ]))
            .op(ld(0))
            .is(R::Val(5)),
        // MAP_DROPPABLE (do_mmap, 6.11) implies VM_WIPEONFORK: the child
        // reads zeros; the mapping keeps its own VMA (VM_DROPPABLE,
        // VM_NORESERVE, VM_DONTDUMP differ from a plain private mapping).
        case("fork_droppable_child_reads_zero")
            .op(mmf(0, 1, RW, DROP))
            .op(mm(1, 1, RW))
            .op(st(0, 5))
            .op(st(1, 6))
            .op(fork(vec![ld(0), ld(1), Op::Maps]))
            .is(child(vec![R::Val(0), R::Val(6), maps("0-1:rw-p 1-2:rw-p")]))
            .op(ld(0))
            .is(R::Val(5)),
        // The COW state moves with the pages: the child moves and writes,
        // the parent still sees its own bytes.
        case("fork_then_mremap_in_child_parent_unchanged")
            .op(mm(0, 2, RW))
            .op(st(0, 1))
            .op(st(1, 2))
            .op(fork(vec![
                mr(0, 2, 2, FXD, 10),
                ld(10),
                st(10, 9),
                ld(10),
                ld(11),
                mr(10, 2, 3, 0, 0),
                st(12, 3),
                Op::Maps,
            ]))
            .is(child(vec![
                at(10),
                R::Val(1),
                R::Ok,
                R::Val(9),
                R::Val(2),
                at(10),
                R::Ok,
                maps("10-13:rw-p"),
            ]))
            .op(ld(0))
            .is(R::Val(1))
            .op(ld(1))
            .is(R::Val(2))
            .maps("0-2:rw-p")
            // And the parent moves after the fork: the child's copy is gone
            // with the child, the parent's pages are its own again.
            .op(mr(0, 2, 2, FXD, 20))
            .op(st(20, 5))
            .op(ld(20))
            .is(R::Val(5)),
        case("fork_then_dontneed_in_child_parent_unchanged")
            .op(mm(0, 2, RW))
            .op(st(0, 3))
            .op(fork(vec![ma(0, 2, MADV_DONTNEED), ld(0), st(1, 4)]))
            .is(child(vec![R::Ok, R::Val(0), R::Ok]))
            .op(ld(0))
            .is(R::Val(3))
            .op(ld(1))
            .is(R::Val(0)),
        // anon_vma_fork: a child VMA's identity is chained to the parent's.
        // A new neighbour without one does not merge with it (vma_had_uncowed_parents),
        // nor does a neighbour's first write reuse it (reusable_anon_vma); the
        // parent is unaffected. The child's own fresh identities are reusable.
        case("fork_child_identity_is_not_shared_with_neighbours")
            .op(mm(0, 2, RW))
            .op(st(0, 1))
            .op(fork(vec![
                mm(2, 1, RW),
                Op::Maps,
                mp(0, 1, R_),
                mp(0, 1, RW),
                Op::Maps,
                mm(4, 1, RWX),
                st(4, 1),
                mm(5, 1, RW),
                st(5, 1),
                mp(4, 1, RW),
                Op::Maps,
            ]))
            .is(child(vec![
                at(2),
                maps("0-2:rw-p 2-3:rw-p"),
                R::Ok,
                R::Ok,
                maps("0-2:rw-p 2-3:rw-p"),
                at(4),
                R::Ok,
                at(5),
                R::Ok,
                R::Ok,
                maps("0-2:rw-p 2-3:rw-p 4-6:rw-p"),
            ]))
            .op(mm(2, 1, RW))
            .maps("0-3:rw-p"),
        case("fork_child_identity_not_reused_on_first_write")
            .op(mm(0, 2, RW))
            .op(st(0, 1))
            .op(fork(vec![mm(2, 1, RWX), st(2, 1), mp(2, 1, RW), Op::Maps]))
            .is(child(vec![at(2), R::Ok, R::Ok, maps("0-2:rw-p 2-3:rw-p")]))
            .op(mm(2, 1, RWX))
            .op(st(2, 1))
            .op(mp(2, 1, RW))
            .maps("0-3:rw-p"),
        // Moved, the child's VMA keeps its chained identity: back next to a
        // new neighbour whose offset continues, it still does not merge.
        case("fork_child_moved_vma_keeps_chained_identity")
            .op(mm(1, 2, RW))
            .op(st(1, 1))
            .op(fork(vec![
                mr(1, 2, 2, FXD, 20),
                mm(0, 1, RW),
                mr(20, 2, 2, FXD, 1),
                mm(3, 1, RW),
                Op::Maps,
                ld(1),
            ]))
            .is(child(vec![
                at(20),
                at(0),
                at(1),
                at(3),
                maps("0-1:rw-p 1-3:rw-p 3-4:rw-p"),
                R::Val(1),
            ]))
            .op(mr(1, 2, 2, FXD, 20))
            .op(mm(0, 1, RW))
            .op(mr(20, 2, 2, FXD, 1))
            .op(mm(3, 1, RW))
            .maps("0-4:rw-p"),
        // A whole 2 MiB block (on vmlab the window base is 2 MiB aligned, so
        // the shared_pt policy shares its page tables): DONTNEED and mremap
        // in the child, on shared and on private memory.
        case("fork_2mib_shared_block_dontneed_and_mremap")
            .op(shm(0, 512, RW))
            .op(st(0, 1))
            .op(st(511, 2))
            .op(fork(vec![
                ld(0),
                ma(0, 512, MADV_DONTNEED),
                ld(0),
                ld(511),
                ma(0, 1, MADV_DONTNEED),
                mr(0, 512, 512, FXD, 512),
                ld(512),
                ld(1023),
                st(512, 5),
            ]))
            .is(child(vec![
                R::Val(1),
                R::Ok,
                R::Val(1),
                R::Val(2),
                R::Ok,
                at(512),
                R::Val(1),
                R::Val(2),
                R::Ok,
            ]))
            .op(ld(0))
            .is(R::Val(5))
            .maps("0-512:rw-s"),
        case("fork_2mib_private_block_dontneed_and_mremap")
            .op(mm(0, 512, RW))
            .op(st(0, 1))
            .op(st(300, 2))
            .op(fork(vec![
                ld(300),
                ma(0, 512, MADV_DONTNEED),
                ld(0),
                st(1, 3),
                mr(0, 256, 256, FXD, 600),
                ld(601),
                ld(300),
            ]))
            .is(child(vec![
                R::Val(2),
                R::Ok,
                R::Val(0),
                R::Ok,
                at(600),
                R::Val(3),
                R::Val(0),
            ]))
            .op(ld(0))
            .is(R::Val(1))
            .op(ld(300))
            .is(R::Val(2))
            .op(ma(256, 256, MADV_DONTNEED))
            .op(ld(300))
            .is(R::Val(0))
            .op(ld(0))
            .is(R::Val(1)),
    ]
}

/// Every case's prescribed results hold on vmlab, and vmlab's whole result
/// list equals the host kernel's.
///
/// Host facts it depends on: protection keys (`vmlab::host::HostFacts`).
/// The table is run for the host's setting, judged by the host, and for the
/// other setting, judged by the table alone, so both are checked on every host.
#[test]
fn host_oracle_table() {
    let host_pkeys = vmlab::host::HostFacts::get().pkeys;
    let mut failures = Vec::new();
    for pkeys in [host_pkeys, !host_pkeys] {
        let cases = cases(pkeys);
        let host = if pkeys == host_pkeys {
            let ops: Vec<Vec<Op>> = cases.iter().map(|c| c.ops.clone()).collect();
            let h = run_host(&ops);
            if h.is_none() {
                eprintln!("host oracle unavailable on this platform: checking vmlab against the table only");
            }
            h
        } else {
            None
        };
        table_against(&cases, pkeys, host.as_deref(), &mut failures);
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Run every case on vmlab (with `pkeys` as given) and compare with the
/// table and, if given, the host's results.
fn table_against(cases: &[Case], pkeys: bool, host: Option<&[Vec<R>]>, failures: &mut Vec<String>) {
    for (i, c) in cases.iter().enumerate() {
        // A case that forks runs under every fork policy: same results.
        let policies: &[ForkName] = if oracle::forks(&c.ops) {
            &[ForkName::Cow, ForkName::SharedPt, ForkName::Eager]
        } else {
            &[ForkName::Cow]
        };
        for &policy in policies {
            let config = MachineConfig {
                fork: policy,
                ..oracle::vmlab_config_for(pkeys)
            };
            let ours = run_vmlab_with(&config, &c.ops);
            let name = format!("{} [fork={}, pkeys={pkeys}]", c.name, policy.as_str());
            compare_case(
                &name,
                c,
                &ours,
                host.map(|h| &h[i][..]),
                policy == policies[0],
                failures,
            );
        }
    }
}

/// Compare vmlab's results `ours` for case `c` with what the table
/// prescribes and with the host's (`host`); table-vs-host mismatches are
/// reported once (`first`).
fn compare_case(name: &str, c: &Case, ours: &[R], host: Option<&[R]>, first: bool, failures: &mut Vec<String>) {
    for (k, want) in &c.expect {
        if &ours[*k] != want {
            failures.push(format!(
                "{name}: op {k} {:?}: vmlab {} but Linux prescribes {}",
                c.ops[*k],
                show(&ours[*k]),
                show(want)
            ));
        }
        if let Some(h) = host {
            if first && &h[*k] != want {
                failures.push(format!(
                    "{name}: op {k} {:?}: the host gave {}, the table says {} (fix the table)",
                    c.ops[*k],
                    show(&h[*k]),
                    show(want)
                ));
            }
        }
    }
    if let Some(h) = host {
        for (k, (a, b)) in h.iter().zip(ours).enumerate() {
            if a != b {
                failures.push(format!(
                    "{name}: op {k} {:?}: host {} vmlab {}",
                    c.ops[k],
                    show(a),
                    show(b)
                ));
            }
        }
    }
}

fn show(r: &R) -> String {
    match r {
        R::Maps(v) => format!("maps[{}]", show_maps(v)),
        R::Child(rs) => format!("child[{}]", rs.iter().map(show).collect::<Vec<_>>().join(", ")),
        R::Resident(v) => format!("resident[{v}]"),
        R::At(x) if x % P as i64 == 0 => format!("At(page {})", x / P as i64),
        r => format!("{r:?}"),
    }
}

// ---------------------------------------------------------------------------
// vmlab-only tests: behaviour a test process cannot provoke on the host
// without disturbing itself, checked against Linux's code.

fn machine_with(f: impl FnOnce(&mut MachineConfig)) -> Machine {
    let mut c = MachineConfig {
        ram: ByteSize(64 << 20),
        ..common::test_config()
    };
    f(&mut c);
    Machine::new(&c).unwrap()
}

fn all_free(m: &Machine) {
    m.check().unwrap();
    assert_eq!(m.phys().frames_used(), m.reserved_frames());
}

const BASE: u64 = oracle::VMLAB_BASE;

/// `vm.max_map_count`: do_mmap refuses when `map_count > max` (so mmap
/// can take the count to max + 1); split_vma refuses when `map_count >= max`,
/// and so does munmap's hole punch (vms_gather_munmap_vmas); unmapping whole
/// VMAs or a VMA's end always works.
#[test]
fn map_count_limit() {
    const MAX: usize = 8;
    let m = machine_with(|c| c.max_map_count = MAX);
    let pid = m.spawn().unwrap();
    let count = || m.maps(pid).unwrap().len();
    // One 3-page VMA, then separate one-page VMAs.
    m.mmap(pid, BASE, 3 * P, RW, FX).unwrap();
    let small = |i: u64| BASE + (10 + 2 * i) * P;
    for i in 0..MAX as u64 {
        assert_eq!(m.mmap(pid, small(i), P, RW, FX), Ok(small(i)), "vma {i}");
    }
    assert_eq!(count(), MAX + 1, "mmap lets map_count reach max + 1");
    assert_eq!(m.mmap(pid, BASE + 100 * P, P, RW, FX), Err(Errno::ENOMEM));
    assert_eq!(m.mmap(pid, 0, P, RW, PA), Err(Errno::ENOMEM), "hinted mmap too");
    // Even a mapping that would merge: the check precedes the merge.
    assert_eq!(m.mmap(pid, BASE + 3 * P, P, RW, FX), Err(Errno::ENOMEM));
    // Punching the middle of the big VMA needs a split: refused, nothing changed.
    let before = m.maps(pid).unwrap();
    assert_eq!(m.munmap(pid, BASE + P, P), Err(Errno::ENOMEM));
    assert_eq!(m.mprotect(pid, BASE + P, P, R_), Err(Errno::ENOMEM));
    assert_eq!(m.mmap(pid, BASE + P, P, R_, FX), Err(Errno::ENOMEM));
    assert_eq!(m.maps(pid).unwrap(), before);
    m.check().unwrap();
    // Unmapping the end of a VMA is allowed over the limit.
    m.munmap(pid, BASE + 2 * P, P).unwrap();
    assert_eq!(count(), MAX + 1);
    // Whole VMAs: count MAX - 1.
    m.munmap(pid, small(0), P).unwrap();
    m.munmap(pid, small(1), P).unwrap();
    assert_eq!(count(), MAX - 1);
    // A split is allowed below the limit: mprotect of the big VMA's tail.
    m.mprotect(pid, BASE + P, P, R_).unwrap();
    assert_eq!(count(), MAX);
    // At the limit, changing the head to match the tail moves the boundary
    // by a merge (vma_merge_existing_range) with no new VMA: allowed.
    m.mprotect(pid, BASE, P, R_).unwrap();
    assert_eq!(count(), MAX - 1);
    m.mprotect(pid, BASE + P, P, RW).unwrap();
    assert_eq!(count(), MAX);
    // ...and the same when the tail joins the next VMA.
    m.mmap(pid, BASE + 2 * P, P, RW, FX).unwrap();
    assert_eq!(count(), MAX);
    m.mprotect(pid, BASE + P, P, R_).unwrap();
    assert_eq!(count(), MAX);
    m.mprotect(pid, BASE + P, P, RW).unwrap();
    assert_eq!(count(), MAX);
    // But a head or tail that matches no neighbour needs a real split: refused.
    assert_eq!(m.mprotect(pid, BASE + 2 * P, P, R_), Err(Errno::ENOMEM));
    assert_eq!(m.mprotect(pid, BASE + P, P, PROT_NONE), Err(Errno::ENOMEM));
    assert_eq!(count(), MAX);
    m.check().unwrap();
    m.exit(pid).unwrap();
    all_free(&m);
}

/// mprotect splits one at a time (vma_modify: split the front, then the
/// back), each refused when `map_count >= max`: with count = max - 1 a
/// middle mprotect splits the front, then fails ENOMEM on the back, and
/// the front split stays.
#[test]
fn map_count_limit_mprotect_partial_split() {
    const MAX: usize = 4;
    let m = machine_with(|c| c.max_map_count = MAX);
    let pid = m.spawn().unwrap();
    m.mmap(pid, BASE, 3 * P, RW, FX).unwrap();
    m.mmap(pid, BASE + 10 * P, P, RW, FX).unwrap();
    m.mmap(pid, BASE + 20 * P, P, RW, FX).unwrap();
    assert_eq!(m.maps(pid).unwrap().len(), MAX - 1);
    assert_eq!(m.mprotect(pid, BASE + P, P, R_), Err(Errno::ENOMEM));
    let lines: Vec<_> = m
        .maps(pid)
        .unwrap()
        .iter()
        .map(|l| ((l.start - BASE) / P, (l.end - BASE) / P, l.perms_str().to_string()))
        .collect();
    assert_eq!(
        lines,
        vec![
            (0, 1, "rw-p".into()),
            (1, 3, "rw-p".into()),
            (10, 11, "rw-p".into()),
            (20, 21, "rw-p".into())
        ]
    );
    m.check().unwrap();
    m.exit(pid).unwrap();
    all_free(&m);
}

/// Address space exhaustion: a length larger than TASK_SIZE - mmap_min_addr
/// is ENOMEM at once (__get_unmapped_area); filling the space with hinted
/// mappings ends in ENOMEM from the gap search, and the map stays sound.
#[test]
fn address_space_exhaustion() {
    let m = machine_with(|_| {});
    let pid = m.spawn().unwrap();
    assert_eq!(m.mmap(pid, 0, TASK_SIZE, PROT_NONE, PA), Err(Errno::ENOMEM));
    assert_eq!(m.mmap(pid, 0, TASK_SIZE + P, PROT_NONE, PA), Err(Errno::ENOMEM));
    // PROT_NONE is not accounted, so only address space limits these.
    let mut chunk = 1u64 << 44;
    let mut maps = 0;
    while chunk >= P {
        match m.mmap(pid, 0, chunk, PROT_NONE, PA) {
            Ok(a) => {
                assert!(a % P == 0 && a + chunk <= TASK_SIZE && a >= 0x10000, "{a:#x}");
                maps += 1;
                assert!(maps < 10_000, "address space never ran out");
            }
            Err(e) => {
                assert_eq!(e, Errno::ENOMEM);
                chunk /= 2;
            }
        }
    }
    assert_eq!(m.mmap(pid, 0, P, PROT_NONE, PA), Err(Errno::ENOMEM));
    m.check().unwrap();
    // Everything merged into few VMAs (all PROT_NONE anonymous, untouched).
    assert!(m.maps(pid).unwrap().len() < 8, "{:?}", m.maps(pid).unwrap());
    // Freeing a range makes room again.
    m.munmap(pid, BASE, 4 * P).unwrap();
    assert_eq!(m.mmap(pid, 0, 4 * P, RW, PA), Ok(BASE));
    m.exit(pid).unwrap();
    all_free(&m);
}

/// Overcommit heuristic (__vm_enough_memory, OVERCOMMIT_GUESS): a private
/// writable mapping larger than RAM + swap is ENOMEM; MAP_NORESERVE and
/// read-only mappings are not accounted.
#[test]
fn commit_limit() {
    let m = machine_with(|c| c.ram = ByteSize(4 << 20));
    let pid = m.spawn().unwrap();
    let big = 8 << 20;
    assert_eq!(m.mmap(pid, 0, big, RW, PA), Err(Errno::ENOMEM));
    let a = m.mmap(pid, 0, big, R_, PA).unwrap();
    // Gaining write charges it (mprotect_fixup → security_vm_enough_memory_mm).
    assert_eq!(m.mprotect(pid, a, big, RW), Err(Errno::ENOMEM));
    assert_eq!(m.maps(pid).unwrap()[0].perms_str(), "r--p");
    m.mmap(pid, 0, big, RW, PA | MAP_NORESERVE).unwrap();
    // MAP_DROPPABLE implies VM_NORESERVE (do_mmap): nothing is charged,
    // at mmap or when mprotect gives write back.
    let d = m.mmap(pid, 0, big, RW, MAP_DROPPABLE | MAP_ANONYMOUS).unwrap();
    m.mprotect(pid, d, big, R_).unwrap();
    m.mprotect(pid, d, big, RW).unwrap();
    m.check().unwrap();
    m.exit(pid).unwrap();
    all_free(&m);
}

/// What the fork-accounting scenarios do, on the host (raw libc calls in a
/// helper process) and on vmlab, so both run the same sequence. Sizes are
/// in pages; addresses are absolute.
trait CommitSide {
    /// Pages the overcommit heuristic allows in one request (RAM + swap).
    fn limit_pages(&self) -> u64;
    /// Free address space of `pages` pages, left mapped PROT_NONE
    /// MAP_NORESERVE (not accounted; keeps neighbours from merging).
    fn reserve(&mut self, pages: u64) -> u64;
    fn map(&mut self, addr: u64, pages: u64, prot: u32, flags: u32) -> Result<(), Errno>;
    fn unmap(&mut self, addr: u64, pages: u64);
    fn remap(&mut self, addr: u64, old: u64, new: u64) -> Result<u64, Errno>;
    fn advise(&mut self, addr: u64, pages: u64, advice: u32) -> Result<(), Errno>;
    fn store(&mut self, addr: u64, val: u64);
    fn load(&mut self, addr: u64) -> u64;
    /// Sizes in pages of the writable VMAs in `[lo, hi)`.
    fn rw_vmas(&mut self, lo: u64, hi: u64) -> Vec<u64>;
    /// fork(): Ok, or the errno. The child, if any, exits at once.
    fn fork(&mut self) -> Result<(), Errno>;
}

/// The fork-accounting scenarios (kernel/fork.c / mm/mmap.c dup_mmap: each
/// inherited VM_ACCOUNT VMA is charged whole, security_vm_enough_memory_mm;
/// mm/util.c __vm_enough_memory, OVERCOMMIT_GUESS: a request of more pages
/// than totalram + total_swap fails). mmap refuses one such request, so a
/// fork can only fail on a VMA that merged from smaller mappings or grew
/// by mremap (each step charged alone). Sizes are fractions of the limit L,
/// n = 3L/4. Returns one line per step, with sizes named by their fraction.
fn fork_commit_scenarios(s: &mut dyn CommitSide) -> Vec<String> {
    let l = s.limit_pages();
    let n = l * 3 / 4;
    let name = |pages: u64| match pages {
        p if p == n => "n".to_string(),
        p if p == 2 * n => "2n".to_string(),
        p if p == l => "L".to_string(),
        p if p == l + 1 => "L+1".to_string(),
        p => format!("other({p})"),
    };
    let mut out = Vec::new();
    let mut line = |what: &str, r: String| out.push(format!("{what}: {r}"));
    let res = |r: Result<(), Errno>| r.map_or_else(|e| e.name().to_string(), |()| "ok".into());
    // One mapping of 3L/4 pages: fork is fine.
    let base = s.reserve(n + 2);
    line("map n", res(s.map(base + P, n, RW, FX)));
    s.store(base + P, 1);
    line(
        "vmas",
        format!(
            "{:?}",
            s.rw_vmas(base, base + (n + 2) * P)
                .into_iter()
                .map(name)
                .collect::<Vec<_>>()
        ),
    );
    line("fork with n", res(s.fork()));
    s.unmap(base, n + 2);
    // Two adjacent ones merge into one VMA of 3L/2 pages: fork fails, and
    // the parent keeps its memory.
    let base = s.reserve(2 * n + 2);
    line("map n", res(s.map(base + P, n, RW, FX)));
    line("map n next to it", res(s.map(base + (n + 1) * P, n, RW, FX)));
    s.store(base + P, 7);
    s.store(base + 2 * n * P, 8);
    line(
        "vmas",
        format!(
            "{:?}",
            s.rw_vmas(base, base + (2 * n + 2) * P)
                .into_iter()
                .map(name)
                .collect::<Vec<_>>()
        ),
    );
    line("fork with merged 2n", res(s.fork()));
    line(
        "parent reads",
        format!("{} {}", s.load(base + P), s.load(base + 2 * n * P)),
    );
    // MADV_DONTFORK: dup_mmap skips the VMA before charging it.
    line("dontfork", res(s.advise(base + P, 2 * n, MADV_DONTFORK)));
    line("fork with 2n dontfork", res(s.fork()));
    line("dofork", res(s.advise(base + P, 2 * n, MADV_DOFORK)));
    line("fork with 2n again", res(s.fork()));
    // MADV_WIPEONFORK: still inherited, still charged.
    line("wipeonfork", res(s.advise(base + P, 2 * n, MADV_WIPEONFORK)));
    line("fork with 2n wipeonfork", res(s.fork()));
    s.unmap(base, 2 * n + 2);
    // mremap growing in place charges only the growth.
    let base = s.reserve(2 * n + 2);
    line("map n", res(s.map(base + P, n, RW, FX)));
    s.unmap(base + (n + 1) * P, n);
    line(
        "mremap n to 2n",
        s.remap(base + P, n, 2 * n).map_or_else(
            |e| e.name().to_string(),
            |a| (if a == base + P { "in place" } else { "moved" }).into(),
        ),
    );
    line("fork with grown 2n", res(s.fork()));
    s.unmap(base, 2 * n + 2);
    // Not accounted: MAP_NORESERVE, read-only.
    let base = s.reserve(2 * n + 2);
    line("map 2n noreserve", res(s.map(base + P, 2 * n, RW, FX | MAP_NORESERVE)));
    line("fork with 2n noreserve", res(s.fork()));
    line("map 2n read-only", res(s.map(base + P, 2 * n, R_, FX)));
    line("fork with 2n read-only", res(s.fork()));
    s.unmap(base, 2 * n + 2);
    // The boundary: a VMA of exactly L pages is allowed, L + 1 is not.
    let base = s.reserve(l + 3);
    line("map L/2", res(s.map(base + P, l / 2, RW, FX)));
    line("map L - L/2", res(s.map(base + (1 + l / 2) * P, l - l / 2, RW, FX)));
    line(
        "vmas",
        format!(
            "{:?}",
            s.rw_vmas(base, base + (l + 3) * P)
                .into_iter()
                .map(name)
                .collect::<Vec<_>>()
        ),
    );
    line("fork with L", res(s.fork()));
    line("map 1", res(s.map(base + (l + 1) * P, 1, RW, FX)));
    line(
        "vmas",
        format!(
            "{:?}",
            s.rw_vmas(base, base + (l + 3) * P)
                .into_iter()
                .map(name)
                .collect::<Vec<_>>()
        ),
    );
    line("fork with L+1", res(s.fork()));
    s.unmap(base, l + 3);
    line("fork with nothing big", res(s.fork()));
    out
}

/// vmlab's side of `fork_commit_scenarios`: a machine whose RAM is the
/// commit limit, forking by `policy`; after each fork the child exits,
/// a failed fork leaves no process, and every step keeps the invariants.
struct VmlabCommit<'m> {
    m: &'m Machine,
    pid: Pid,
    policy: ForkName,
}

impl CommitSide for VmlabCommit<'_> {
    fn limit_pages(&self) -> u64 {
        self.m.phys().total_frames() as u64
    }
    fn reserve(&mut self, pages: u64) -> u64 {
        self.m
            .mmap(self.pid, 0, pages * P, PROT_NONE, PA | MAP_NORESERVE)
            .unwrap()
    }
    fn map(&mut self, addr: u64, pages: u64, prot: u32, flags: u32) -> Result<(), Errno> {
        self.m.mmap(self.pid, addr, pages * P, prot, flags).map(|_| ())
    }
    fn unmap(&mut self, addr: u64, pages: u64) {
        self.m.munmap(self.pid, addr, pages * P).unwrap();
    }
    fn remap(&mut self, addr: u64, old: u64, new: u64) -> Result<u64, Errno> {
        self.m.mremap(self.pid, addr, old * P, new * P, 0, 0)
    }
    fn advise(&mut self, addr: u64, pages: u64, advice: u32) -> Result<(), Errno> {
        self.m.madvise(self.pid, addr, pages * P, advice)
    }
    fn store(&mut self, addr: u64, val: u64) {
        self.m.write(self.pid, addr, &val.to_le_bytes()).unwrap().unwrap();
    }
    fn load(&mut self, addr: u64) -> u64 {
        let mut b = [0u8; 8];
        self.m.read(self.pid, addr, &mut b).unwrap().unwrap();
        u64::from_le_bytes(b)
    }
    fn rw_vmas(&mut self, lo: u64, hi: u64) -> Vec<u64> {
        let maps = self.m.maps(self.pid).unwrap();
        maps.iter()
            .filter(|l| l.end > lo && l.start < hi && l.perms[1] == b'w')
            .map(|l| (l.end - l.start) / P)
            .collect()
    }
    fn fork(&mut self) -> Result<(), Errno> {
        let before = self.m.pids();
        let used = self.m.phys().frames_used();
        let r = self.m.fork_with(self.pid, self.policy.policy());
        self.m.check().unwrap();
        match r {
            Ok((child, _)) => {
                self.m.exit(child).unwrap();
                Ok(())
            }
            Err(e) => {
                // Nothing left behind: no child, not one frame more.
                assert_eq!(self.m.pids(), before, "a failed fork left a process");
                assert_eq!(self.m.phys().frames_used(), used, "a failed fork kept frames");
                Err(e)
            }
        }
    }
}

/// Runs `fork_commit_scenarios` on the host in a helper process (this test
/// binary, started again with `VMLAB_FORK_COMMIT_CHILD`): prints one line
/// `VMLAB_FORK_COMMIT <json>`. The host's limit is MemTotal + SwapTotal
/// from /proc/meminfo (totalram_pages + total_swap_pages).
#[test]
fn fork_commit_child() {
    if std::env::var_os("VMLAB_FORK_COMMIT_CHILD").is_none() {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        let lines = fork_commit_scenarios(&mut host_commit::Host::new());
        println!("VMLAB_FORK_COMMIT {}", serde_json::to_string(&lines).unwrap());
    }
}

#[cfg(target_os = "linux")]
mod host_commit {
    use super::*;

    pub struct Host {
        limit: u64,
    }

    fn errno() -> Errno {
        let code = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        Errno::from_code(code).unwrap_or_else(|| panic!("errno {code}"))
    }

    impl Host {
        pub fn new() -> Host {
            let info = std::fs::read_to_string("/proc/meminfo").expect("/proc/meminfo");
            let kb = |key: &str| -> u64 {
                info.lines()
                    .find_map(|l| l.strip_prefix(key))
                    .and_then(|r| r.split_whitespace().next())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("{key} in /proc/meminfo"))
            };
            Host {
                limit: (kb("MemTotal:") + kb("SwapTotal:")) / (P / 1024),
            }
        }
    }

    // SAFETY (all methods): the calls touch only ranges this helper
    // reserved with `reserve`, which nothing else in the process uses.
    impl CommitSide for Host {
        fn limit_pages(&self) -> u64 {
            self.limit
        }
        fn reserve(&mut self, pages: u64) -> u64 {
            let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
            // SAFETY: a fresh PROT_NONE mapping the kernel places.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    (pages * P) as usize,
                    libc::PROT_NONE,
                    flags,
                    -1,
                    0,
                )
            };
            assert_ne!(p, libc::MAP_FAILED, "reserve {pages} pages");
            p as u64
        }
        fn map(&mut self, addr: u64, pages: u64, prot: u32, flags: u32) -> Result<(), Errno> {
            // SAFETY: see above.
            let p = unsafe { libc::mmap(addr as *mut _, (pages * P) as usize, prot as i32, flags as i32, -1, 0) };
            if p == libc::MAP_FAILED {
                Err(errno())
            } else {
                Ok(())
            }
        }
        fn unmap(&mut self, addr: u64, pages: u64) {
            // SAFETY: see above.
            assert_eq!(unsafe { libc::munmap(addr as *mut _, (pages * P) as usize) }, 0);
        }
        fn remap(&mut self, addr: u64, old: u64, new: u64) -> Result<u64, Errno> {
            // SAFETY: see above.
            let p = unsafe { libc::mremap(addr as *mut _, (old * P) as usize, (new * P) as usize, 0) };
            if p == libc::MAP_FAILED {
                Err(errno())
            } else {
                Ok(p as u64)
            }
        }
        fn advise(&mut self, addr: u64, pages: u64, advice: u32) -> Result<(), Errno> {
            // SAFETY: see above.
            match unsafe { libc::madvise(addr as *mut _, (pages * P) as usize, advice as i32) } {
                0 => Ok(()),
                _ => Err(errno()),
            }
        }
        fn store(&mut self, addr: u64, val: u64) {
            // SAFETY: a writable page of a reserved range.
            unsafe { std::ptr::write_volatile(addr as *mut u64, val) }
        }
        fn load(&mut self, addr: u64) -> u64 {
            // SAFETY: a readable page of a reserved range.
            unsafe { std::ptr::read_volatile(addr as *const u64) }
        }
        fn rw_vmas(&mut self, lo: u64, hi: u64) -> Vec<u64> {
            let maps = std::fs::read_to_string("/proc/self/maps").expect("/proc/self/maps");
            maps.lines()
                .filter_map(|l| {
                    let mut f = l.split_whitespace();
                    let (a, b) = f.next()?.split_once('-')?;
                    let perms = f.next()?;
                    let (a, b) = (u64::from_str_radix(a, 16).ok()?, u64::from_str_radix(b, 16).ok()?);
                    (b > lo && a < hi && perms.as_bytes()[1] == b'w').then_some((b - a) / P)
                })
                .collect()
        }
        fn fork(&mut self) -> Result<(), Errno> {
            // SAFETY: the child only calls _exit (async-signal-safe).
            unsafe {
                let pid = libc::fork();
                if pid == 0 {
                    libc::_exit(0);
                }
                if pid < 0 {
                    return Err(errno());
                }
                let mut status = 0;
                libc::waitpid(pid, &mut status, 0);
                assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
            }
            Ok(())
        }
    }
}

/// fork charges inherited VM_ACCOUNT VMAs (dup_mmap): one larger than the
/// commit limit (RAM + swap) makes fork fail with ENOMEM and leaves nothing
/// behind, under every fork policy. The same scenarios run on the host at
/// the same ratio of mapping size to RAM + swap (the host's read from
/// /proc/meminfo, vmlab's RAM its commit limit) and must give the same
/// lines. Host facts relied on: x86-64 Linux, vm.overcommit_memory = 0
/// (the heuristic), 47-bit user address space with room for 3/2 of RAM +
/// swap in PROT_NONE reservations.
#[test]
fn fork_commit_accounting() {
    let mut runs: Vec<(String, Vec<String>)> = Vec::new();
    for policy in [ForkName::Cow, ForkName::SharedPt, ForkName::Eager] {
        let m = machine_with(|c| c.fork = policy);
        let pid = m.spawn().unwrap();
        let lines = fork_commit_scenarios(&mut VmlabCommit { m: &m, pid, policy });
        m.exit(pid).unwrap();
        all_free(&m);
        runs.push((format!("vmlab fork={}", policy.as_str()), lines));
    }
    // What Linux's code prescribes (and the host showed, 6.18).
    let want: Vec<String> = [
        "map n: ok",
        "vmas: [\"n\"]",
        "fork with n: ok",
        "map n: ok",
        "map n next to it: ok",
        "vmas: [\"2n\"]",
        "fork with merged 2n: ENOMEM",
        "parent reads: 7 8",
        "dontfork: ok",
        "fork with 2n dontfork: ok",
        "dofork: ok",
        "fork with 2n again: ENOMEM",
        "wipeonfork: ok",
        "fork with 2n wipeonfork: ENOMEM",
        "map n: ok",
        "mremap n to 2n: in place",
        "fork with grown 2n: ENOMEM",
        "map 2n noreserve: ok",
        "fork with 2n noreserve: ok",
        "map 2n read-only: ok",
        "fork with 2n read-only: ok",
        "map L/2: ok",
        "map L - L/2: ok",
        "vmas: [\"L\"]",
        "fork with L: ok",
        "map 1: ok",
        "vmas: [\"L+1\"]",
        "fork with L+1: ENOMEM",
        "fork with nothing big: ok",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if oracle::HOST_ORACLE {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "fork_commit_child",
                "--exact",
                "--test-threads=1",
                "--nocapture",
                "--quiet",
            ])
            .env("VMLAB_FORK_COMMIT_CHILD", "1")
            .output()
            .expect("spawn the fork-commit helper");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let json = stdout
            .lines()
            .find_map(|l| l.strip_prefix("VMLAB_FORK_COMMIT "))
            .unwrap_or_else(|| panic!("helper failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
        runs.push(("host".into(), serde_json::from_str(json).unwrap()));
    }
    for (who, lines) in &runs {
        assert_eq!(lines, &want, "{who}");
    }
}

/// Stack growth limits a host test cannot reach portably (mm/mmap.c
/// acct_stack_growth, expand_downwards): the overcommit charge of the
/// growth (more pages than RAM + swap in one growth fails even with
/// RLIMIT_STACK unlimited), mmap_min_addr, and setrlimit's checks
/// (do_prlimit: soft above hard is EINVAL, raising the hard limit EPERM for
/// an unprivileged process). A failed growth is SIGSEGV SEGV_MAPERR and
/// changes no VMA.
#[test]
fn stack_growth_commit_min_addr_and_rlimit_checks() {
    use vmlab_mm::mm::stack::DEFAULT_STACK_RLIMIT;
    use vmlab_mm::mm::Rlimit;
    let m = machine_with(|c| c.ram = ByteSize(4 << 20));
    let pid = m.spawn().unwrap();
    assert_eq!(m.stack_rlimit(pid), Ok(DEFAULT_STACK_RLIMIT));
    let inf = Rlimit {
        cur: RLIM_INFINITY,
        max: RLIM_INFINITY,
    };
    assert_eq!(
        m.set_stack_rlimit(pid, Rlimit { cur: 2 * P, max: P }),
        Err(Errno::EINVAL)
    );
    m.set_stack_rlimit(pid, inf).unwrap();
    m.set_stack_rlimit(
        pid,
        Rlimit {
            cur: 1 << 20,
            max: 1 << 30,
        },
    )
    .unwrap();
    assert_eq!(m.set_stack_rlimit(pid, inf), Err(Errno::EPERM));
    m.set_stack_rlimit(
        pid,
        Rlimit {
            cur: 1 << 30,
            max: 1 << 30,
        },
    )
    .unwrap();
    let frames = m.phys().total_frames() as u64;
    let top = BASE + 4 * frames * P;
    m.mmap(pid, top, P, RW, FX | MAP_GROWSDOWN).unwrap();
    {
        let mut cpu = m.cpu(0).unwrap();
        cpu.switch_to(pid).unwrap();
        // Growing by frames + 1 pages is refused; by exactly frames, allowed.
        let f = cpu.load_u64(top - (frames + 1) * P).unwrap_err();
        assert_eq!((f.reason, f.addr), (FaultReason::NotMapped, top - (frames + 1) * P));
        assert_eq!(m.maps(pid).unwrap()[0].start, top);
        cpu.store_u64(top - frames * P, 3).unwrap();
        assert_eq!(cpu.load_u64(top - frames * P), Ok(3));
    }
    assert_eq!(m.maps(pid).unwrap()[0].start, top - frames * P);
    // The grown stack (frames + 1 pages, VM_ACCOUNT) is now one VMA
    // larger than the commit limit: dup_mmap refuses to fork it.
    assert_eq!(m.fork(pid), Err(Errno::ENOMEM));
    m.munmap(pid, top - frames * P, 8 * P).unwrap();
    // A fork child inherits the limit.
    let child = m.fork(pid).unwrap();
    assert_eq!(m.stack_rlimit(child), m.stack_rlimit(pid));
    m.exit(child).unwrap();
    // Below mmap_min_addr (65536) a stack never grows.
    m.mmap(pid, 0x12000, P, RW, FX | MAP_GROWSDOWN).unwrap();
    {
        let mut cpu = m.cpu(0).unwrap();
        cpu.switch_to(pid).unwrap();
        assert_eq!(cpu.load_u64(0xf000).unwrap_err().reason, FaultReason::NotMapped);
        assert_eq!(cpu.load_u64(0x10000), Ok(0));
    }
    assert_eq!(m.maps(pid).unwrap()[0].start, 0x10000);
    m.check().unwrap();
    m.exit(pid).unwrap();
    all_free(&m);
}

/// Two CPUs fault below one stack at once: both grow it (one under the
/// write lock after the other, which finds it grown), and each store lands.
#[test]
fn stack_growth_from_two_cpus() {
    let m = machine_with(|c| c.cpus = 2);
    let pid = m.spawn().unwrap();
    let top = BASE + 1024 * P;
    m.mmap(pid, top, P, RW, FX | MAP_GROWSDOWN).unwrap();
    std::thread::scope(|s| {
        for c in 0..2u64 {
            let m = &m;
            s.spawn(move || {
                let mut cpu = m.cpu(c as usize).unwrap();
                cpu.switch_to(pid).unwrap();
                for i in 1..=256u64 {
                    let a = top - (2 * i - c) * P;
                    cpu.store_u64(a, a).unwrap();
                }
            });
        }
    });
    let maps = m.maps(pid).unwrap();
    assert_eq!((maps.len(), maps[0].start, maps[0].end), (1, top - 512 * P, top + P));
    let mut cpu = m.cpu(0).unwrap();
    cpu.switch_to(pid).unwrap();
    for i in 1..=512u64 {
        assert_eq!(cpu.load_u64(top - i * P), Ok(top - i * P));
    }
    drop(cpu);
    m.check().unwrap();
    m.exit(pid).unwrap();
    all_free(&m);
}

/// A fault that finds no free frame, with nothing reclaimable (no swap,
/// anonymous memory), runs the OOM killer (Linux: `VM_FAULT_OOM` →
/// `pagefault_out_of_memory` → `out_of_memory`): the only process is the
/// victim, its store ends with SIGKILL, and its memory is all freed. Reads
/// of untouched pages before that still work (the zero page needs no frame).
#[test]
fn fault_without_free_frame_kills_the_process() {
    let m = machine_with(|c| c.ram = ByteSize(1 << 20));
    let pid = m.spawn().unwrap();
    let pages = 512u64; // twice RAM
    let a = m.mmap(pid, 0, pages * P, RW, PA | MAP_NORESERVE).unwrap();
    let mut killed_at = None;
    {
        let mut cpu = m.cpu(0).unwrap();
        cpu.switch_to(pid).unwrap();
        assert_eq!(cpu.load_u64(a + (pages - 1) * P).unwrap(), 0);
        for i in 0..pages {
            match cpu.store_u64(a + i * P, i + 1) {
                Ok(()) => {}
                Err(f) => {
                    assert_eq!((f.signal, f.reason), (Signal::Kill, FaultReason::OomKilled), "{f}");
                    killed_at = Some(i);
                    break;
                }
            }
        }
        let n = killed_at.expect("1 MiB of RAM never ran out");
        assert!(n > 100, "only {n} pages fitted");
        // Dead: every access after the kill gives the same fault value.
        assert_eq!(cpu.load_u64(a).unwrap_err().reason, FaultReason::OomKilled);
    }
    let kills = m.oom_kills();
    assert_eq!(kills.len(), 1, "{kills:?}");
    assert_eq!((kills[0].pid, kills[0].trigger), (pid, pid));
    assert!(kills[0].footprint.rss > 100, "{kills:?}");
    assert_eq!(m.stats().oom_kill, 1);
    assert_eq!(m.process(pid).err(), Some(Errno::ESRCH));
    m.check().unwrap();
    all_free(&m);
}

/// brk (SYSCALL_DEFINE1(brk)): returns the new break on success and the old
/// one on any failure; below start_brk fails; shrinking unmaps; growing into
/// another mapping (within a page of it) fails.
#[test]
fn brk_grow_shrink_and_failures() {
    let m = machine_with(|_| {});
    let pid = m.spawn().unwrap();
    let start = m.brk(pid, 0).unwrap();
    assert_eq!(m.brk(pid, start - 1).unwrap(), start, "below start_brk");
    assert_eq!(m.maps(pid).unwrap().len(), 0);
    // Grow by 3 pages and a bit: the VMA is page-rounded, the break is exact.
    let top = start + 3 * P + 5;
    assert_eq!(m.brk(pid, top).unwrap(), top);
    let maps = m.maps(pid).unwrap();
    assert_eq!(maps.len(), 1);
    assert_eq!(
        (maps[0].start, maps[0].end, maps[0].perms_str()),
        (start, start + 4 * P, "rw-p")
    );
    m.write(pid, start + 4 * P - 8, &[1; 8]).unwrap().unwrap();
    m.write(pid, start, &[2; 8]).unwrap().unwrap();
    // Within the same page: only the break moves.
    assert_eq!(m.brk(pid, start + 3 * P + 100).unwrap(), start + 3 * P + 100);
    assert_eq!(m.maps(pid).unwrap()[0].end, start + 4 * P);
    // Growing merges with the heap VMA.
    assert_eq!(m.brk(pid, start + 8 * P).unwrap(), start + 8 * P);
    assert_eq!(m.maps(pid).unwrap().len(), 1);
    // Shrink: the pages above go, and come back zeroed.
    assert_eq!(m.brk(pid, start + P).unwrap(), start + P);
    assert_eq!(m.maps(pid).unwrap()[0].end, start + P);
    let mut b = [9u8; 8];
    let f = m.read(pid, start + 4 * P - 8, &mut b).unwrap().unwrap_err();
    assert_eq!(f.reason, FaultReason::NotMapped);
    assert_eq!(m.brk(pid, start + 4 * P).unwrap(), start + 4 * P);
    m.read(pid, start + 4 * P - 8, &mut b).unwrap().unwrap();
    assert_eq!(b, [0; 8]);
    m.read(pid, start, &mut b).unwrap().unwrap();
    assert_eq!(b, [2; 8]);
    // A mapping just above: growing to within a page of it fails.
    let other = start + 10 * P;
    m.mmap(pid, other, P, R_, FX).unwrap();
    assert_eq!(m.brk(pid, other).unwrap(), start + 4 * P);
    assert_eq!(m.brk(pid, other - P + 1).unwrap(), start + 4 * P);
    assert_eq!(m.brk(pid, other - P).unwrap(), other - P);
    // Above TASK_SIZE: fails.
    assert_eq!(m.brk(pid, TASK_SIZE + P).unwrap(), other - P);
    // Shrink to start: the heap VMA goes away entirely.
    assert_eq!(m.brk(pid, start).unwrap(), start);
    assert_eq!(m.maps(pid).unwrap().len(), 1);
    m.check().unwrap();
    m.exit(pid).unwrap();
    all_free(&m);
}

/// Shrinking when nothing is mapped in [newbrk, oldbrk) (the heap was
/// munmapped): Linux finds no brk VMA and fails, returning the old break.
#[test]
fn brk_shrink_with_heap_unmapped_fails() {
    let m = machine_with(|_| {});
    let pid = m.spawn().unwrap();
    let start = m.brk(pid, 0).unwrap();
    assert_eq!(m.brk(pid, start + 4 * P).unwrap(), start + 4 * P);
    m.munmap(pid, start, 4 * P).unwrap();
    assert_eq!(m.brk(pid, start + P).unwrap(), start + 4 * P);
    // Growing again works (it maps afresh from the page-rounded old break).
    assert_eq!(m.brk(pid, start + 6 * P).unwrap(), start + 6 * P);
    let maps = m.maps(pid).unwrap();
    assert_eq!((maps[0].start, maps[0].end), (start + 4 * P, start + 6 * P));
    m.check().unwrap();
    m.exit(pid).unwrap();
    all_free(&m);
}

/// After every process exits, every frame is free again.
#[test]
fn every_frame_free_after_all_exit() {
    let m = machine_with(|c| c.ram = ByteSize(16 << 20));
    let mut pids = Vec::new();
    for k in 0..4u64 {
        let pid = m.spawn().unwrap();
        let a = m.mmap(pid, 0, 64 * P, RW, PA).unwrap();
        for i in 0..64 {
            if (i + k) % 3 != 0 {
                m.write(pid, a + i * P + 8 * k, &[k as u8 + 1; 16]).unwrap().unwrap();
            }
        }
        m.mprotect(pid, a + 8 * P, 8 * P, R_).unwrap();
        m.munmap(pid, a + 20 * P, 4 * P).unwrap();
        let brk = m.brk(pid, 0).unwrap();
        m.brk(pid, brk + 10 * P).unwrap();
        m.write(pid, brk, &[1; 64]).unwrap().unwrap();
        pids.push(pid);
        m.check().unwrap();
    }
    assert!(m.phys().frames_used() > m.reserved_frames() + 4 * 40);
    for pid in pids {
        m.exit(pid).unwrap();
        m.check().unwrap();
    }
    all_free(&m);
}

/// x86 MAP_32BIT without MAP_FIXED: bottom-up in [1 GiB, 2 GiB) (Linux
/// `find_start_end`; vmlab does not randomise the start), ENOMEM when full.
#[test]
fn map_32bit_placement() {
    let m = machine_with(|_| {});
    let pid = m.spawn().unwrap();
    let a = m.mmap(pid, BASE, 4 * P, RW, PA | 0x40).unwrap();
    assert_eq!(a, 0x4000_0000);
    let b = m.mmap(pid, 0, P, R_, PA | 0x40).unwrap();
    assert_eq!(b, a + 4 * P);
    assert_eq!(m.mmap(pid, 0, 1 << 30, PROT_NONE, PA | 0x40), Err(Errno::ENOMEM));
    let rest = 0x8000_0000 - (b + P);
    assert_eq!(m.mmap(pid, 0, rest, PROT_NONE, PA | 0x40), Ok(b + P));
    assert_eq!(m.mmap(pid, 0, P, PROT_NONE, PA | 0x40), Err(Errno::ENOMEM));
    m.check().unwrap();
    m.exit(pid).unwrap();
    all_free(&m);
}

// ---------------------------------------------------------------------------
// mremap and madvise: vmlab-only checks (limits a test process cannot safely
// reach on the host, frame accounting, all fork policies, several CPUs).

const ALL_FORKS: [ForkPolicy; 3] = [ForkPolicy::Cow, ForkPolicy::SharedPt, ForkPolicy::Eager];

fn machine_for(policy: ForkPolicy) -> Machine {
    machine_with(|c| {
        c.fork = match policy {
            ForkPolicy::Cow => ForkName::Cow,
            ForkPolicy::SharedPt => ForkName::SharedPt,
            ForkPolicy::Eager => ForkName::Eager,
        };
        c.cpus = 2;
    })
}

fn u64_at(m: &Machine, pid: Pid, addr: u64) -> u64 {
    let mut b = [0u8; 8];
    m.read(pid, addr, &mut b).unwrap().unwrap();
    u64::from_le_bytes(b)
}

fn put_u64(m: &Machine, pid: Pid, addr: u64, v: u64) {
    m.write(pid, addr, &v.to_le_bytes()).unwrap().unwrap();
}

fn lines(m: &Machine, pid: Pid) -> Vec<(u64, u64, String)> {
    m.maps(pid)
        .unwrap()
        .iter()
        .map(|l| ((l.start - BASE) / P, (l.end - BASE) / P, l.perms_str().to_string()))
        .collect()
}

/// vm.max_map_count and mremap (6.18): a move to a new address is refused
/// up front when `map_count + 2 >= max - 3` (check_mremap_params' old
/// rule, kept in do_mremap), a move the kernel places when `map_count >=
/// max - 3` (prep_move_vma); shrinking needs headroom only for a split.
/// madvise's split refused at the limit is EAGAIN.
#[test]
fn mremap_and_madvise_map_count_limits() {
    const MAX: usize = 12;
    let m = machine_with(|c| c.max_map_count = MAX);
    let pid = m.spawn().unwrap();
    // One-page VMAs at pages 100, 102, ... until the count is n.
    let fillers = std::cell::Cell::new(0u64);
    let fill = |n: usize| {
        while m.maps(pid).unwrap().len() < n {
            m.mmap(pid, BASE + (100 + 2 * fillers.get()) * P, P, R_, FX).unwrap();
            fillers.set(fillers.get() + 1);
        }
        while m.maps(pid).unwrap().len() > n {
            fillers.set(fillers.get() - 1);
            m.munmap(pid, BASE + (100 + 2 * fillers.get()) * P, P).unwrap();
        }
    };
    m.mmap(pid, BASE, 4 * P, RW, FX).unwrap();
    m.mmap(pid, BASE + 4 * P, P, R_, FX).unwrap();
    m.write(pid, BASE, &[1]).unwrap().unwrap();
    // FIXED: refused at map_count >= MAX - 5.
    fill(MAX - 5);
    assert_eq!(
        m.mremap(pid, BASE, P, P, MREMAP_MAYMOVE | MREMAP_FIXED, BASE + 50 * P),
        Err(Errno::ENOMEM)
    );
    // ...even when the old range is not mapped (before EFAULT)...
    assert_eq!(
        m.mremap(pid, BASE + 60 * P, P, P, MREMAP_MAYMOVE | MREMAP_FIXED, BASE + 50 * P),
        Err(Errno::ENOMEM)
    );
    // ...but after the EINVAL checks.
    assert_eq!(
        m.mremap(pid, BASE, P, P, MREMAP_FIXED, BASE + 50 * P),
        Err(Errno::EINVAL)
    );
    fill(MAX - 6);
    assert_eq!(
        m.mremap(pid, BASE, P, P, MREMAP_MAYMOVE | MREMAP_FIXED, BASE + 50 * P),
        Ok(BASE + 50 * P)
    );
    assert_eq!(u64_at(&m, pid, BASE + 50 * P) & 0xff, 1);
    fill(MAX - 6);
    m.mremap(pid, BASE + 50 * P, P, P, MREMAP_MAYMOVE | MREMAP_FIXED, BASE)
        .unwrap();
    m.check().unwrap();
    // A grow the kernel places: refused at map_count >= MAX - 3.
    fill(MAX - 3);
    assert_eq!(m.mremap(pid, BASE, 4 * P, 6 * P, MREMAP_MAYMOVE, 0), Err(Errno::ENOMEM));
    fill(MAX - 4);
    let moved = m.mremap(pid, BASE, 4 * P, 6 * P, MREMAP_MAYMOVE, 0).unwrap();
    assert_ne!(moved, BASE);
    assert_eq!(u64_at(&m, pid, moved) & 0xff, 1);
    fill(MAX - 6);
    m.mremap(pid, moved, 6 * P, 4 * P, MREMAP_MAYMOVE | MREMAP_FIXED, BASE)
        .unwrap();
    // Shrinking from the end needs no split: fine at the limit; from the
    // middle of a VMA it splits (munmap's rule: refused at the limit).
    fill(MAX);
    assert_eq!(m.mremap(pid, BASE, 4 * P, 3 * P, 0, 0), Ok(BASE));
    m.mmap(pid, BASE + 20 * P, 3 * P, RW, FX).unwrap();
    fill(MAX);
    assert_eq!(m.mremap(pid, BASE + 20 * P, P, P, 0, 0), Ok(BASE + 20 * P));
    assert_eq!(m.madvise(pid, BASE + 21 * P, P, MADV_DONTFORK), Err(Errno::EAGAIN));
    assert_eq!(m.madvise(pid, BASE + 20 * P, P, MADV_DONTFORK), Err(Errno::EAGAIN));
    fill(MAX - 1);
    m.madvise(pid, BASE + 20 * P, P, MADV_DONTFORK).unwrap();
    assert_eq!(m.maps(pid).unwrap().len(), MAX);
    // At the limit, a piece that merges into its neighbour adds no VMA: allowed.
    assert_eq!(m.madvise(pid, BASE + 21 * P, P, MADV_DONTFORK), Ok(()));
    assert_eq!(m.maps(pid).unwrap().len(), MAX);
    m.check().unwrap();
    m.exit(pid).unwrap();
    all_free(&m);
}

/// Growing an accounted VMA charges the growth (vrm_calc_charge): more than
/// the commit limit is ENOMEM; DONTUNMAP charges the whole new range; an
/// unaccounted VMA (MAP_NORESERVE, read-only) grows freely.
#[test]
fn mremap_commit_limit() {
    let m = machine_with(|c| c.ram = ByteSize(4 << 20));
    let pid = m.spawn().unwrap();
    let big = 8 << 20;
    m.mmap(pid, BASE, P, RW, FX).unwrap();
    assert_eq!(m.mremap(pid, BASE, P, big, 0, 0), Err(Errno::ENOMEM));
    assert_eq!(m.mremap(pid, BASE, P, big, MREMAP_MAYMOVE, 0), Err(Errno::ENOMEM));
    m.mmap(pid, BASE + 0x100_0000, P, RW, FX | MAP_NORESERVE).unwrap();
    assert_eq!(m.mremap(pid, BASE + 0x100_0000, P, big, 0, 0), Ok(BASE + 0x100_0000));
    m.mmap(pid, BASE + 0x200_0000, P, R_, FX).unwrap();
    assert_eq!(m.mremap(pid, BASE + 0x200_0000, P, big, 0, 0), Ok(BASE + 0x200_0000));
    // DONTUNMAP of a range larger than the limit: the copy is charged whole.
    m.mprotect(pid, BASE + 0x200_0000, big, RW).unwrap_err();
    let half = 3 << 20;
    m.mmap(pid, BASE + 0x400_0000, half, RW, FX).unwrap();
    m.mremap(pid, BASE + 0x400_0000, half, half, DU, BASE + 0x800_0000)
        .unwrap();
    m.check().unwrap();
    m.exit(pid).unwrap();
    all_free(&m);
}

/// A move moves page-table entries: the same frames at the new address,
/// mapcounts and rss unchanged, no frame allocated or freed, and every CPU
/// that cached the old translation loses it.
#[test]
fn mremap_moves_frames_not_data() {
    let m = machine_with(|c| c.cpus = 2);
    let pid = m.spawn().unwrap();
    let n = 8u64;
    m.mmap(pid, BASE, n * P, RW, FX).unwrap();
    let mut c0 = m.cpu(0).unwrap();
    let mut c1 = m.cpu(1).unwrap();
    c0.switch_to(pid).unwrap();
    c1.switch_to(pid).unwrap();
    let mut pfns = Vec::new();
    for i in 0..n {
        c0.store_u64(BASE + i * P, 100 + i).unwrap();
        pfns.push(c0.translate(BASE + i * P, Access::Read).unwrap());
        // CPU 1 caches the translation too.
        assert_eq!(c1.load_u64(BASE + i * P).unwrap(), 100 + i);
    }
    let used = m.phys().frames_used();
    let rss = m.stats().rss_pages;
    let to = BASE + 0x40_0000 + 3 * P;
    assert_eq!(
        m.mremap(pid, BASE, n * P, n * P, MREMAP_MAYMOVE | MREMAP_FIXED, to),
        Ok(to)
    );
    assert_eq!(m.phys().frames_used(), used, "no frame allocated or freed");
    assert_eq!(m.stats().rss_pages, rss);
    for i in 0..n {
        assert_eq!(c0.translate(to + i * P, Access::Read).unwrap(), pfns[i as usize]);
        let d = m.phys().desc(pfns[i as usize]).unwrap();
        assert_eq!(d.mapcount(), 1);
        assert_eq!(c1.load_u64(BASE + i * P).unwrap_err().reason, FaultReason::NotMapped);
        assert_eq!(c1.load_u64(to + i * P).unwrap(), 100 + i);
    }
    // A store through CPU 1 at the new address is seen by CPU 0.
    c1.store_u64(to, 7).unwrap();
    assert_eq!(c0.load_u64(to).unwrap(), 7);
    // DONTUNMAP: the old range refaults zero, the new one has the frames.
    assert_eq!(m.mremap(pid, to, n * P, n * P, DU, BASE), Ok(BASE));
    assert_eq!(c1.load_u64(to).unwrap(), 0);
    assert_eq!(c1.load_u64(BASE).unwrap(), 7);
    assert_eq!(c0.translate(BASE + P, Access::Read).unwrap(), pfns[1]);
    drop((c0, c1));
    m.check().unwrap();
    m.exit(pid).unwrap();
    all_free(&m);
}

/// The COW state moves with the pages, whichever way fork copied: after
/// fork, the parent moves its pages (and grows by moving), both sides write,
/// each keeps its own bytes; then the child moves and DONTNEEDs. `check()`
/// after every step, every frame free at the end.
#[test]
fn mremap_and_madvise_after_fork_all_policies() {
    for policy in ALL_FORKS {
        let m = machine_for(policy);
        let parent = m.spawn().unwrap();
        // One page short of 2 MiB plus a few pages: several leaf tables.
        let n = 600u64;
        m.mmap(parent, BASE, n * P, RW, FX).unwrap();
        for i in (0..n).step_by(7) {
            put_u64(&m, parent, BASE + i * P, i + 1);
        }
        m.mmap(parent, BASE + 0x100_0000, 4 * P, RW, SH).unwrap();
        put_u64(&m, parent, BASE + 0x100_0000, 77);
        let (child, _) = m.fork_with(parent, policy).unwrap();
        m.check().unwrap();
        // The parent moves everything away, then grows it by moving.
        let to = BASE + 0x200_0000 + 5 * P;
        assert_eq!(m.mremap(parent, BASE, n * P, n * P, FXD, to), Ok(to));
        m.check().unwrap_or_else(|e| panic!("{policy:?}: {e}"));
        let grown = m.mremap(parent, to, n * P, (n + 700) * P, MV, 0).unwrap();
        m.check().unwrap_or_else(|e| panic!("{policy:?}: {e}"));
        for i in (0..n).step_by(7) {
            assert_eq!(u64_at(&m, parent, grown + i * P), i + 1, "{policy:?}");
            assert_eq!(u64_at(&m, child, BASE + i * P), i + 1, "{policy:?}");
        }
        put_u64(&m, parent, grown, 1000);
        put_u64(&m, child, BASE + 7 * P, 2000);
        assert_eq!(u64_at(&m, child, BASE), 1, "{policy:?}");
        assert_eq!(u64_at(&m, parent, grown + 7 * P), 8, "{policy:?}");
        m.check().unwrap_or_else(|e| panic!("{policy:?}: {e}"));
        // The child: DONTUNMAP, DONTNEED of a whole 2 MiB span and a part.
        assert_eq!(
            m.mremap(child, BASE, 7 * P, 7 * P, DU, BASE + 0x300_0000),
            Ok(BASE + 0x300_0000)
        );
        assert_eq!(u64_at(&m, child, BASE + 0x300_0000), 1);
        assert_eq!(u64_at(&m, child, BASE), 0);
        m.madvise(child, BASE, 512 * P, MADV_DONTNEED).unwrap();
        m.madvise(child, BASE + 512 * P, 3 * P, MADV_DONTNEED).unwrap();
        assert_eq!(u64_at(&m, child, BASE + 7 * P), 0, "{policy:?}");
        assert_eq!(u64_at(&m, child, BASE + 518 * P), 519, "{policy:?}");
        assert_eq!(u64_at(&m, parent, grown + 7 * P), 8, "{policy:?}");
        m.check().unwrap_or_else(|e| panic!("{policy:?}: {e}"));
        // Shared memory: one object, moved in one process, seen by both.
        m.mremap(child, BASE + 0x100_0000, 4 * P, 4 * P, FXD, BASE + 0x180_0000)
            .unwrap();
        put_u64(&m, child, BASE + 0x180_0000, 88);
        assert_eq!(u64_at(&m, parent, BASE + 0x100_0000), 88);
        m.check().unwrap_or_else(|e| panic!("{policy:?}: {e}"));
        m.exit(parent).unwrap();
        m.check().unwrap();
        assert_eq!(u64_at(&m, child, BASE + 0x300_0000), 1);
        m.exit(child).unwrap();
        all_free(&m);
    }
}

/// MADV_DONTFORK and MADV_WIPEONFORK under every fork policy, with the VMAs
/// inside one 2 MiB span that shared_pt would otherwise share whole.
#[test]
fn madvise_fork_flags_all_policies() {
    for policy in ALL_FORKS {
        let m = machine_for(policy);
        let parent = m.spawn().unwrap();
        m.mmap(parent, BASE, 6 * P, RW, FX).unwrap();
        for i in 0..6 {
            put_u64(&m, parent, BASE + i * P, 10 + i);
        }
        m.madvise(parent, BASE + P, P, MADV_DONTFORK).unwrap();
        m.madvise(parent, BASE + 3 * P, 2 * P, MADV_WIPEONFORK).unwrap();
        let (child, _) = m.fork_with(parent, policy).unwrap();
        m.check().unwrap_or_else(|e| panic!("{policy:?}: {e}"));
        assert_eq!(
            lines(&m, child),
            vec![
                (0, 1, "rw-p".to_string()),
                (2, 3, "rw-p".to_string()),
                (3, 5, "rw-p".to_string()),
                (5, 6, "rw-p".to_string())
            ],
            "{policy:?}"
        );
        assert_eq!(u64_at(&m, child, BASE), 10);
        let mut b = [0u8; 8];
        let f = m.read(child, BASE + P, &mut b).unwrap().unwrap_err();
        assert_eq!(f.reason, FaultReason::NotMapped);
        assert_eq!(u64_at(&m, child, BASE + 3 * P), 0, "{policy:?}");
        assert_eq!(u64_at(&m, child, BASE + 4 * P), 0, "{policy:?}");
        assert_eq!(u64_at(&m, child, BASE + 5 * P), 15);
        // The grandchild of a WIPEONFORK VMA written in the child: wiped again.
        put_u64(&m, child, BASE + 3 * P, 5);
        let (grandchild, _) = m.fork_with(child, policy).unwrap();
        assert_eq!(u64_at(&m, grandchild, BASE + 3 * P), 0, "{policy:?}");
        assert_eq!(u64_at(&m, child, BASE + 3 * P), 5);
        assert_eq!(u64_at(&m, parent, BASE + 3 * P), 13);
        assert_eq!(u64_at(&m, parent, BASE + P), 11);
        m.check().unwrap_or_else(|e| panic!("{policy:?}: {e}"));
        for p in [grandchild, child, parent] {
            m.exit(p).unwrap();
            m.check().unwrap();
        }
        all_free(&m);
    }
}

/// DONTNEED gives frames back (FREE once reclaim comes); POPULATE_WRITE
/// allocates them; shared memory keeps its page-cache pages.
#[test]
fn madvise_frames() {
    let m = machine_with(|_| {});
    let pid = m.spawn().unwrap();
    let n = 64u64;
    m.mmap(pid, BASE, n * P, RW, FX).unwrap();
    let before = m.phys().frames_used();
    m.madvise(pid, BASE, n * P, MADV_POPULATE_WRITE).unwrap();
    assert!(m.phys().frames_used() >= before + n as usize);
    assert_eq!(m.stats().rss_pages, n);
    m.madvise(pid, BASE, n * P, MADV_DONTNEED).unwrap();
    assert_eq!(m.stats().rss_pages, 0);
    assert!(m.phys().frames_used() <= before + 1, "page tables at most");
    m.madvise(pid, BASE, n * P, MADV_POPULATE_READ).unwrap();
    assert_eq!(m.stats().rss_pages, 0, "reads map the zero page");
    m.madvise(pid, BASE, n * P, MADV_POPULATE_WRITE).unwrap();
    // MADV_FREE keeps the pages until reclaim (Linux `madvise_free_pte_range`);
    // MADV_PAGEOUT is reclaim now, and drops them without swap.
    m.madvise(pid, BASE, n * P, MADV_FREE).unwrap();
    assert_eq!((m.stats().rss_pages, m.stats().pglazyfree), (n, n));
    m.madvise(pid, BASE, n * P, MADV_PAGEOUT).unwrap();
    assert_eq!((m.stats().rss_pages, m.stats().pglazyfreed), (0, n));
    m.mmap(pid, BASE + 0x10_0000, 4 * P, RW, SH).unwrap();
    put_u64(&m, pid, BASE + 0x10_0000, 3);
    m.madvise(pid, BASE + 0x10_0000, 4 * P, MADV_DONTNEED).unwrap();
    assert_eq!(m.page_cache_pages(), 1);
    assert_eq!(u64_at(&m, pid, BASE + 0x10_0000), 3);
    // MADV_REMOVE on shared writable memory punches a hole: the page goes
    // from the object and reads as zeros again.
    assert_eq!(m.madvise(pid, BASE + 0x10_0000, P, MADV_REMOVE), Ok(()));
    assert_eq!(m.page_cache_pages(), 0);
    assert_eq!(u64_at(&m, pid, BASE + 0x10_0000), 0);
    m.check().unwrap();
    assert_eq!(m.madvise(999, BASE, P, MADV_DONTNEED), Err(Errno::ESRCH));
    assert_eq!(m.mremap(999, BASE, P, P, 0, 0), Err(Errno::ESRCH));
    m.exit(pid).unwrap();
    all_free(&m);
}

/// Random mremap/madvise/mmap/fork mixes under every policy keep every
/// invariant (a deterministic generator, no host involved).
#[test]
fn mremap_madvise_random_mix_all_policies() {
    for policy in ALL_FORKS {
        let m = machine_for(policy);
        let mut pids = vec![m.spawn().unwrap()];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ policy as u64;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let advices = [
            MADV_DONTNEED,
            MADV_FREE,
            MADV_DONTFORK,
            MADV_DOFORK,
            MADV_WIPEONFORK,
            MADV_KEEPONFORK,
            MADV_HUGEPAGE,
            MADV_NOHUGEPAGE,
            MADV_POPULATE_WRITE,
            MADV_POPULATE_READ,
            MADV_SEQUENTIAL,
        ];
        for step in 0..400 {
            let pid = pids[rnd(pids.len() as u64) as usize];
            let page = |r: u64| BASE + r * P;
            let r = match rnd(9) {
                0 | 1 => {
                    let flags = if rnd(4) == 0 { SH } else { FX };
                    m.mmap(pid, page(rnd(1200)), (1 + rnd(40)) * P, RW, flags).map(|_| ())
                }
                2 => m.munmap(pid, page(rnd(1200)), (1 + rnd(20)) * P),
                3 | 4 => {
                    let flags = [0, MV, FXD, DU, FXD][rnd(5) as usize];
                    let old = rnd(30) * P;
                    let new = if flags == DU { old } else { (1 + rnd(40)) * P };
                    m.mremap(pid, page(rnd(1200)), old, new, flags, page(rnd(1200)))
                        .map(|_| ())
                }
                5 => {
                    let adv = advices[rnd(advices.len() as u64) as usize];
                    m.madvise(pid, page(rnd(1200)), (1 + rnd(30)) * P, adv)
                }
                6 | 7 => {
                    let a = page(rnd(1200)) + 8 * rnd(512);
                    let _ = m.write(pid, a, &(step as u64).to_le_bytes()).unwrap();
                    Ok(())
                }
                _ => {
                    if pids.len() < 4 {
                        pids.push(m.fork(pid).unwrap());
                    } else {
                        let victim = pids.remove(1 + rnd(3) as usize);
                        m.exit(victim).unwrap();
                    }
                    Ok(())
                }
            };
            if let Err(e) = r {
                assert!(
                    matches!(e, Errno::EINVAL | Errno::EFAULT | Errno::ENOMEM | Errno::EEXIST),
                    "{policy:?} step {step}: {e}"
                );
            }
            m.check().unwrap_or_else(|e| panic!("{policy:?} step {step}: {e}"));
        }
        for pid in pids {
            m.exit(pid).unwrap();
        }
        all_free(&m);
    }
}

/// A file held in memory, for file-backed mappings without the host's files.
struct MemFile {
    bytes: std::sync::Mutex<Vec<u8>>,
    writable: bool,
}

/// What the machine's file table holds for a `MemFile`.
struct FileRef(std::sync::Arc<MemFile>);

impl vmlab_mm::mm::BackingFile for FileRef {
    fn len(&self) -> u64 {
        self.0.bytes.lock().unwrap().len() as u64
    }
    fn read_at(&self, off: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        let b = self.0.bytes.lock().unwrap();
        let off = (off as usize).min(b.len());
        let n = buf.len().min(b.len() - off);
        buf[..n].copy_from_slice(&b[off..off + n]);
        Ok(n)
    }
    fn write_at(&self, off: u64, buf: &[u8]) -> Result<(), Errno> {
        let mut b = self.0.bytes.lock().unwrap();
        let end = off as usize + buf.len();
        if b.len() < end {
            b.resize(end, 0);
        }
        b[off as usize..end].copy_from_slice(buf);
        Ok(())
    }
    fn writable(&self) -> bool {
        self.0.writable
    }
}

/// mremap and madvise on file mappings: page-cache pages move with a shared
/// mapping and msync writes them back from the new address; a private
/// mapping's copies are dropped by DONTNEED (the file's bytes come back);
/// growing past the end of the file gives SIGBUS pages; the advice that
/// needs anonymous memory or a writable shared mapping is refused as Linux.
#[test]
fn mremap_and_madvise_file_mappings() {
    let m = machine_with(|_| {});
    let pid = m.spawn().unwrap();
    let file = std::sync::Arc::new(MemFile {
        bytes: std::sync::Mutex::new((0..4 * P).map(|i| (i / P) as u8 + 1).collect()),
        writable: true,
    });
    let fd = m.open_file(Box::new(FileRef(file.clone())));
    let shared = m.mmap_fd(pid, BASE, 4 * P, RW, MAP_SHARED | MAP_FIXED, fd, 0).unwrap();
    m.write(pid, shared, &[0xaa]).unwrap().unwrap();
    let to = BASE + 10 * P;
    assert_eq!(m.mremap(pid, shared, 4 * P, 4 * P, FXD, to), Ok(to));
    let mut b = [0u8; 1];
    m.read(pid, to, &mut b).unwrap().unwrap();
    assert_eq!(b, [0xaa]);
    m.msync(pid, to, 4 * P, MS_SYNC).unwrap();
    assert_eq!(file.bytes.lock().unwrap()[0], 0xaa);
    m.madvise(pid, to, 4 * P, MADV_DONTNEED).unwrap();
    m.read(pid, to, &mut b).unwrap().unwrap();
    assert_eq!(b, [0xaa]);
    // Grown past the end of the file: SIGBUS there.
    assert_eq!(m.mremap(pid, to, 4 * P, 6 * P, 0, 0), Ok(to));
    let f = m.read(pid, to + 4 * P, &mut b).unwrap().unwrap_err();
    assert_eq!(f.reason, FaultReason::BeyondEof);
    assert_eq!(m.madvise(pid, to, 6 * P, MADV_POPULATE_READ), Err(Errno::EFAULT));
    assert_eq!(m.madvise(pid, to, P, MADV_FREE), Err(Errno::EINVAL));
    assert_eq!(m.madvise(pid, to, P, MADV_WIPEONFORK), Err(Errno::EINVAL));
    // This test's file system cannot punch holes (`FileRef` has no `punch_hole`).
    assert_eq!(m.madvise(pid, to, P, MADV_REMOVE), Err(Errno::EOPNOTSUPP));
    // Private: a write makes a copy, DONTNEED drops it.
    let private = m
        .mmap_fd(pid, BASE + 30 * P, 4 * P, RW, MAP_PRIVATE | MAP_FIXED, fd, 0)
        .unwrap();
    m.write(pid, private + P, &[0x55]).unwrap().unwrap();
    m.read(pid, private + P, &mut b).unwrap().unwrap();
    assert_eq!(b, [0x55]);
    assert_eq!(m.madvise(pid, private, P, MADV_REMOVE), Err(Errno::EACCES));
    m.madvise(pid, private, 4 * P, MADV_DONTNEED).unwrap();
    m.read(pid, private + P, &mut b).unwrap().unwrap();
    assert_eq!(b, [2]);
    // KSM takes private file mappings (the flag splits the VMA), not shared ones.
    m.madvise(pid, private, P, MADV_MERGEABLE).unwrap();
    m.madvise(pid, to, P, MADV_MERGEABLE).unwrap();
    let l = lines(&m, pid);
    assert_eq!(l.iter().filter(|x| x.0 >= 30).count(), 2, "{l:?}");
    assert_eq!(l.iter().filter(|x| (10..20).contains(&x.0)).count(), 1, "{l:?}");
    // A file opened read-only, mapped shared: REMOVE is EACCES.
    let ro = std::sync::Arc::new(MemFile {
        bytes: std::sync::Mutex::new(vec![7; P as usize]),
        writable: false,
    });
    let rofd = m.open_file(Box::new(FileRef(ro)));
    let a = m
        .mmap_fd(pid, BASE + 50 * P, P, R_, MAP_SHARED | MAP_FIXED, rofd, 0)
        .unwrap();
    assert_eq!(m.madvise(pid, a, P, MADV_REMOVE), Err(Errno::EACCES));
    // Duplicating a shared file mapping (old_len 0).
    assert_eq!(m.mremap(pid, to, 0, P, FXD, BASE + 60 * P), Ok(BASE + 60 * P));
    m.read(pid, BASE + 60 * P, &mut b).unwrap().unwrap();
    assert_eq!(b, [0xaa]);
    m.check().unwrap();
    m.exit(pid).unwrap();
    m.close(fd).unwrap();
    m.close(rofd).unwrap();
    all_free(&m);
}

/// Address-space exhaustion: a grow that must move finds no room (ENOMEM,
/// from get_unmapped_area), while growing in place, shrinking and fixed
/// moves still work.
#[test]
fn mremap_address_space_exhaustion() {
    let m = machine_with(|_| {});
    let pid = m.spawn().unwrap();
    m.mmap(pid, BASE, 2 * P, RW, FX).unwrap();
    m.write(pid, BASE, &[9]).unwrap().unwrap();
    m.mmap(pid, BASE + 2 * P, P, R_, FX).unwrap();
    // Fill every gap with PROT_NONE (unaccounted) mappings.
    let mut chunk = 1u64 << 44;
    while chunk >= P {
        if m.mmap(pid, 0, chunk, PROT_NONE, PA).is_err() {
            chunk /= 2;
        }
    }
    assert_eq!(m.mremap(pid, BASE, 2 * P, 4 * P, MREMAP_MAYMOVE, 0), Err(Errno::ENOMEM));
    assert_eq!(
        m.mremap(pid, BASE, P, P, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, 0),
        Err(Errno::ENOMEM)
    );
    assert_eq!(
        m.mremap(pid, BASE, 2 * P, 1 << 46, MREMAP_MAYMOVE, 0),
        Err(Errno::ENOMEM)
    );
    assert_eq!(m.mremap(pid, BASE, 2 * P, P, 0, 0), Ok(BASE));
    // Room made by the shrink: the fixed move reuses it.
    assert_eq!(m.mremap(pid, BASE, P, P, FXD, BASE + P), Ok(BASE + P));
    let mut b = [0u8; 1];
    m.read(pid, BASE + P, &mut b).unwrap().unwrap();
    assert_eq!(b, [9]);
    m.check().unwrap();
    m.exit(pid).unwrap();
    all_free(&m);
}

/// The reclaim advice (MADV_COLD, MADV_PAGEOUT, MADV_FREE, MADV_WILLNEED)
/// and MAP_DROPPABLE, on the host and on a vmlab machine without swap: the
/// errno of each call and the mincore residency after it must be the same.
/// Linux 6.18 `madvise_cold_or_pageout_pte_range` (COLD keeps pages
/// resident; PAGEOUT drops a clean file page and, without swap, keeps a
/// swap-backed anonymous one, but drops a lazily freed or droppable one:
/// neither is swap-backed, `try_to_unmap_one` discards them),
/// `madvise_free_single_vma` (EINVAL but on private anonymous memory; the
/// contents stay until reclaim), `can_madv_lru_vma` (EINVAL on locked
/// memory), `do_mmap` (MAP_DROPPABLE is a map type: with MAP_SHARED,
/// EINVAL). Host facts relied on: Linux 6.11 or later on x86-64 (for
/// MAP_DROPPABLE). Skipped parts, each with the reason printed: the
/// anonymous PAGEOUT lines if the host has swap (the pages would go to
/// it), the file lines if the test's temporary directory is on tmpfs
/// (shmem pages are swap-backed, not dropped). The host may keep a page
/// for a moment in a per-CPU LRU batch that `lru_add_drain` on another CPU
/// does not reach: PAGEOUT is repeated (and WILLNEED's read waited for) a
/// bounded number of times, which a vmlab answer meets at once.
#[cfg(target_os = "linux")]
#[test]
fn madvise_reclaim_advice_matches_the_host_kernel() {
    let swaps = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
    let host_swap = swaps.lines().count() > 1;
    if host_swap {
        eprintln!("madvise_reclaim_advice: the host has swap: the anonymous MADV_PAGEOUT lines are skipped");
    }
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let on_tmpfs = reclaim_advice::on_tmpfs(&dir);
    if on_tmpfs {
        eprintln!(
            "madvise_reclaim_advice: {} is on tmpfs (its pages are swap-backed): the file lines are skipped",
            dir.display()
        );
    }
    let file: Vec<u8> = (0..4 * P).map(|i| (i / P) as u8 + 1).collect();
    // Host fact: a page just faulted in waits in its CPU's LRU batch, and
    // MADV_PAGEOUT drains only the calling CPU's batch, so a thread moved
    // to the other CPU between the stores and the advice finds the pages
    // not yet on the LRU and keeps them (seen once under load: the lazily
    // freed pages read back 1001..1003). Pinned to one CPU, the advice
    // sees every page of the script.
    pin_to_current_cpu();
    let host = reclaim_advice::script(&mut reclaim_advice::Host::new(&dir, &file), host_swap, on_tmpfs);
    let mut cfg = MachineConfig {
        ram: ByteSize(16 << 20),
        ..common::test_config()
    };
    cfg.apply_pairs("swap_size=0").unwrap();
    let m = Machine::new(&cfg).unwrap();
    let vm = reclaim_advice::script(&mut reclaim_advice::Vm::new(&m, &file), host_swap, on_tmpfs);
    assert_eq!(host.join("\n"), vm.join("\n"));
    m.check().unwrap();
}

#[cfg(target_os = "linux")]
mod reclaim_advice {
    use super::*;

    /// What the script needs of a side (the host process, or a vmlab one).
    pub trait Side {
        /// Map `pages` fresh pages (`flags` as mmap's; anonymous).
        fn map(&mut self, pages: u64, prot: u32, flags: u32) -> Result<u64, Errno>;
        /// Map the test file privately, read-only.
        fn map_file(&mut self, pages: u64) -> u64;
        fn advise(&mut self, addr: u64, pages: u64, advice: u32) -> Result<(), Errno>;
        fn mlock(&mut self, addr: u64, pages: u64) -> Result<(), Errno>;
        fn resident(&mut self, addr: u64, pages: u64) -> Vec<u8>;
        fn store(&mut self, addr: u64, val: u64);
        fn load(&mut self, addr: u64) -> u64;
    }

    fn res(r: Result<(), Errno>) -> String {
        match r {
            Ok(()) => "0".into(),
            Err(e) => e.name().to_string(),
        }
    }

    /// PAGEOUT, repeated while a page is still resident (see the test's doc).
    fn pageout(s: &mut dyn Side, a: u64, n: u64) -> String {
        let mut r = s.advise(a, n, MADV_PAGEOUT);
        for _ in 0..20 {
            if r.is_err() || s.resident(a, n).iter().all(|b| *b == 0) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
            r = s.advise(a, n, MADV_PAGEOUT);
        }
        res(r)
    }

    /// The calls and what each gave, one line each.
    pub fn script(s: &mut dyn Side, host_swap: bool, on_tmpfs: bool) -> Vec<String> {
        let mut out = Vec::new();
        let pa = MAP_PRIVATE | MAP_ANONYMOUS;
        // Private anonymous memory, written.
        let a = s.map(4, RW, pa).unwrap();
        for i in 0..4 {
            s.store(a + i * P, 0x1000 + i);
        }
        let r = res(s.advise(a, 4, MADV_COLD));
        out.push(format!("anon COLD {r} {:?}", s.resident(a, 4)));
        let r = res(s.advise(a, 4, MADV_WILLNEED));
        out.push(format!("anon WILLNEED {r} {:?}", s.resident(a, 4)));
        if !host_swap {
            let r = pageout(s, a, 4);
            out.push(format!("anon PAGEOUT (no swap) {r} {:?}", s.resident(a, 4)));
        }
        let r = res(s.advise(a, 4, MADV_FREE));
        let kept: Vec<bool> = (0..4).map(|i| s.load(a + i * P) == 0x1000 + i).collect();
        out.push(format!("anon FREE {r} {:?} contents kept {kept:?}", s.resident(a, 4)));
        // Stored to again after the advice: a page keeps the new value.
        s.store(a, 0x2000);
        out.push(format!("anon store after FREE reads {:#x}", s.load(a)));
        if !host_swap {
            // Lazily freed and clean (pages 1-3): not swap-backed, so
            // PAGEOUT drops them even without swap; page 0 was stored to.
            let r = pageout(s, a + P, 3);
            let words: Vec<u64> = (0..4).map(|i| s.load(a + i * P)).collect();
            out.push(format!("anon PAGEOUT after FREE {r} reads {words:x?}"));
        }
        // Errors: a hole, an unaligned start, locked memory.
        out.push(format!("COLD unaligned {}", res(s.advise(a + 1, 1, MADV_COLD))));
        let l = s.map(2, RW, pa).unwrap();
        s.store(l, 1);
        if s.mlock(l, 2).is_ok() {
            for (name, adv) in [("COLD", MADV_COLD), ("PAGEOUT", MADV_PAGEOUT), ("FREE", MADV_FREE)] {
                out.push(format!("locked {name} {}", res(s.advise(l, 2, adv))));
            }
        } else {
            eprintln!("madvise_reclaim_advice: mlock failed on this side: the locked lines are skipped");
        }
        // Shared anonymous memory (shmem): FREE is EINVAL; COLD and PAGEOUT
        // accepted, the pages swap-backed and kept without swap.
        let sh = s.map(2, RW, MAP_SHARED | MAP_ANONYMOUS).unwrap();
        s.store(sh, 5);
        s.store(sh + P, 6);
        out.push(format!("shared FREE {}", res(s.advise(sh, 2, MADV_FREE))));
        out.push(format!(
            "shared COLD {} {:?}",
            res(s.advise(sh, 2, MADV_COLD)),
            s.resident(sh, 2)
        ));
        if !host_swap {
            let r = res(s.advise(sh, 2, MADV_PAGEOUT));
            out.push(format!(
                "shared PAGEOUT {r} {:?} reads {}",
                s.resident(sh, 2),
                s.load(sh + P)
            ));
        }
        // MAP_DROPPABLE: a map type of its own (with MAP_SHARED, EINVAL);
        // its pages are not swap-backed, so PAGEOUT drops them, written or not.
        out.push(format!(
            "droppable|shared {:?}",
            s.map(1, RW, MAP_DROPPABLE | MAP_SHARED | MAP_ANONYMOUS).map(|_| ())
        ));
        let d = s.map(2, RW, MAP_DROPPABLE | MAP_ANONYMOUS).unwrap();
        s.store(d, 7);
        s.store(d + P, 8);
        let r = res(s.advise(d, 2, MADV_COLD));
        out.push(format!("droppable COLD {r} {:?}", s.resident(d, 2)));
        let r = pageout(s, d, 2);
        out.push(format!(
            "droppable PAGEOUT {r} {:?} reads {}",
            s.resident(d, 2),
            s.load(d + P)
        ));
        out.push(format!("droppable FREE {}", res(s.advise(d, 2, MADV_FREE))));
        // A clean file page mapped only here: PAGEOUT drops it, WILLNEED
        // reads it back, FREE is EINVAL.
        if !on_tmpfs {
            let f = s.map_file(4);
            let firsts: Vec<u64> = (0..4).map(|i| s.load(f + i * P) & 0xff).collect();
            out.push(format!("file read {firsts:?} {:?}", s.resident(f, 4)));
            let r = pageout(s, f, 4);
            out.push(format!("file PAGEOUT {r} {:?}", s.resident(f, 4)));
            let r = res(s.advise(f, 4, MADV_WILLNEED));
            let mut got = s.resident(f, 4);
            for _ in 0..200 {
                if got.iter().all(|b| *b == 1) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
                got = s.resident(f, 4);
            }
            out.push(format!("file WILLNEED {r} {got:?}"));
            out.push(format!("file FREE {}", res(s.advise(f, 4, MADV_FREE))));
            let firsts: Vec<u64> = (0..4).map(|i| s.load(f + i * P) & 0xff).collect();
            out.push(format!("file reread {firsts:?}"));
        }
        out
    }

    fn errno() -> Errno {
        let code = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        Errno::from_code(code).unwrap_or_else(|| panic!("errno {code}"))
    }

    /// Whether `dir` is on tmpfs (`statfs`'s `TMPFS_MAGIC`).
    pub fn on_tmpfs(dir: &std::path::Path) -> bool {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).expect("no NUL in the path");
        // SAFETY: `buf` is a plain C struct for statfs to fill; `path` is a
        // NUL-terminated string that outlives the call.
        let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::statfs(path.as_ptr(), &mut buf) };
        r == 0 && buf.f_type == 0x0102_1994
    }

    /// The host: this test process, every mapping fresh (placed by the
    /// kernel) and left mapped until the process ends.
    pub struct Host {
        file: std::fs::File,
    }

    impl Host {
        pub fn new(dir: &std::path::Path, data: &[u8]) -> Host {
            use std::io::Write;
            let path = dir.join(format!("madvise_reclaim_{}", std::process::id()));
            let mut f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .expect("test file");
            f.write_all(data).expect("write the test file");
            // Clean pages: written back (a dirty page would be kept by
            // PAGEOUT's reclaim, which does not write files back).
            f.sync_all().expect("fsync");
            let _ = std::fs::remove_file(&path);
            Host { file: f }
        }
    }

    impl Side for Host {
        fn map(&mut self, pages: u64, prot: u32, flags: u32) -> Result<u64, Errno> {
            // SAFETY: a fresh mapping the kernel places.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    (pages * P) as usize,
                    prot as i32,
                    flags as i32,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                Err(errno())
            } else {
                Ok(p as u64)
            }
        }
        fn map_file(&mut self, pages: u64) -> u64 {
            use std::os::unix::io::AsRawFd;
            // SAFETY: a fresh mapping the kernel places, of an open file.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    (pages * P) as usize,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE,
                    self.file.as_raw_fd(),
                    0,
                )
            };
            assert_ne!(p, libc::MAP_FAILED, "map the test file: {}", errno());
            p as u64
        }
        fn advise(&mut self, addr: u64, pages: u64, advice: u32) -> Result<(), Errno> {
            // SAFETY: advice on mappings this script made (or, unaligned,
            // refused before anything is done).
            match unsafe { libc::madvise(addr as *mut _, (pages * P) as usize, advice as i32) } {
                0 => Ok(()),
                _ => Err(errno()),
            }
        }
        fn mlock(&mut self, addr: u64, pages: u64) -> Result<(), Errno> {
            // SAFETY: a mapping this script made.
            match unsafe { libc::mlock(addr as *const _, (pages * P) as usize) } {
                0 => Ok(()),
                _ => Err(errno()),
            }
        }
        fn resident(&mut self, addr: u64, pages: u64) -> Vec<u8> {
            let mut v = vec![0u8; pages as usize];
            // SAFETY: `v` holds one byte per page of a mapping of this script.
            let r = unsafe { libc::mincore(addr as *mut _, (pages * P) as usize, v.as_mut_ptr()) };
            assert_eq!(r, 0, "mincore: {}", errno());
            v.iter().map(|b| b & 1).collect()
        }
        fn store(&mut self, addr: u64, val: u64) {
            // SAFETY: a writable page of a mapping of this script.
            unsafe { std::ptr::write_volatile(addr as *mut u64, val) }
        }
        fn load(&mut self, addr: u64) -> u64 {
            // SAFETY: a readable page of a mapping of this script.
            unsafe { std::ptr::read_volatile(addr as *const u64) }
        }
    }

    /// vmlab: one process of `m`, the test file a `MemFile` of the same bytes.
    pub struct Vm<'a> {
        m: &'a Machine,
        pid: Pid,
        fd: i32,
    }

    impl<'a> Vm<'a> {
        pub fn new(m: &'a Machine, data: &[u8]) -> Vm<'a> {
            let pid = m.spawn().unwrap();
            let fd = m.open_file(Box::new(vmlab_mm::mm::MemFile::new(data, true)));
            Vm { m, pid, fd }
        }
    }

    impl Side for Vm<'_> {
        fn map(&mut self, pages: u64, prot: u32, flags: u32) -> Result<u64, Errno> {
            self.m.mmap(self.pid, 0, pages * P, prot, flags)
        }
        fn map_file(&mut self, pages: u64) -> u64 {
            self.m
                .mmap_fd(self.pid, 0, pages * P, PROT_READ, MAP_PRIVATE, self.fd, 0)
                .unwrap()
        }
        fn advise(&mut self, addr: u64, pages: u64, advice: u32) -> Result<(), Errno> {
            self.m.madvise(self.pid, addr, pages * P, advice)
        }
        fn mlock(&mut self, addr: u64, pages: u64) -> Result<(), Errno> {
            self.m.mlock(self.pid, addr, pages * P)
        }
        fn resident(&mut self, addr: u64, pages: u64) -> Vec<u8> {
            let v = self.m.mincore(self.pid, addr, pages * P).unwrap();
            v.iter().map(|b| b & 1).collect()
        }
        fn store(&mut self, addr: u64, val: u64) {
            let mut cpu = self.m.cpu(0).unwrap();
            cpu.switch_to(self.pid).unwrap();
            cpu.store_u64(addr, val).unwrap();
        }
        fn load(&mut self, addr: u64) -> u64 {
            let mut cpu = self.m.cpu(0).unwrap();
            cpu.switch_to(self.pid).unwrap();
            cpu.load_u64(addr).unwrap()
        }
    }
}

/// Pin the calling thread to the CPU it runs on (best effort: a host that
/// refuses leaves it unpinned).
fn pin_to_current_cpu() {
    // SAFETY: sched_getcpu takes nothing; CPU_ZERO/CPU_SET write only the
    // local set; sched_setaffinity(0, ..) reads it for the calling thread.
    unsafe {
        let cpu = libc::sched_getcpu();
        if cpu < 0 {
            return;
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu as usize, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}
