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

use common::oracle::{self, maps_of, run_host, run_vmlab, show_maps, Op, A, P, R};
use vmlab_mm::addr::TASK_SIZE;
use vmlab_mm::errno::{Errno, FaultReason};
use vmlab_mm::mm::uapi::*;
use vmlab_mm::system::{ByteSize, Machine, MachineConfig};

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
/// mm/mprotect.c, arch/x86/kernel/sys_x86_64.c), named in the comments.
fn cases() -> Vec<Case> {
    vec![
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
            .is(R::Val(0xdef))
            .op(st(0, 1))
            .is(segv("ACCERR"))
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
    ]
}

/// Every case's prescribed results hold on vmlab, and vmlab's whole result
/// list equals the host kernel's.
#[test]
fn host_oracle_table() {
    let cases = cases();
    let ops: Vec<Vec<Op>> = cases.iter().map(|c| c.ops.clone()).collect();
    let host = run_host(&ops);
    if host.is_none() {
        eprintln!("host oracle unavailable on this platform: checking vmlab against the table only");
    }
    let mut failures = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let ours = run_vmlab(&c.ops);
        for (k, want) in &c.expect {
            if &ours[*k] != want {
                failures.push(format!(
                    "{}: op {k} {:?}: vmlab {} but Linux prescribes {}",
                    c.name,
                    c.ops[*k],
                    show(&ours[*k]),
                    show(want)
                ));
            }
            if let Some(h) = &host {
                if &h[i][*k] != want {
                    failures.push(format!(
                        "{}: op {k} {:?}: the host gave {}, the table says {} (fix the table)",
                        c.name,
                        c.ops[*k],
                        show(&h[i][*k]),
                        show(want)
                    ));
                }
            }
        }
        if let Some(h) = &host {
            for (k, (a, b)) in h[i].iter().zip(&ours).enumerate() {
                if a != b {
                    failures.push(format!(
                        "{}: op {k} {:?}: host {} vmlab {}",
                        c.name,
                        c.ops[k],
                        show(a),
                        show(b)
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn show(r: &R) -> String {
    match r {
        R::Maps(v) => format!("maps[{}]", show_maps(v)),
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
        ..Default::default()
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
    m.check().unwrap();
    m.exit(pid).unwrap();
    all_free(&m);
}

/// A fault that finds no free frame fails with an out-of-memory fault value
/// (Linux: VM_FAULT_OOM); the machine stays consistent, data already written
/// survives, and exit frees everything.
#[test]
fn fault_without_free_frame_is_oom() {
    let m = machine_with(|c| c.ram = ByteSize(1 << 20));
    let pid = m.spawn().unwrap();
    let pages = 512u64; // twice RAM
    let a = m.mmap(pid, 0, pages * P, RW, PA | MAP_NORESERVE).unwrap();
    let mut oom_at = None;
    {
        let mut cpu = m.cpu(0).unwrap();
        cpu.switch_to(pid).unwrap();
        for i in 0..pages {
            match cpu.store_u64(a + i * P, i + 1) {
                Ok(()) => {}
                Err(f) => {
                    assert_eq!(f.reason, FaultReason::OutOfMemory, "{f}");
                    oom_at = Some(i);
                    break;
                }
            }
        }
        let n = oom_at.expect("1 MiB of RAM never ran out");
        assert!(n > 100, "only {n} pages fitted");
        // Reads of untouched pages still work (the zero page needs no frame).
        assert_eq!(cpu.load_u64(a + (n + 1) * P).unwrap(), 0);
        // Retrying still fails; earlier data is intact.
        assert_eq!(
            cpu.store_u64(a + n * P, 1).unwrap_err().reason,
            FaultReason::OutOfMemory
        );
        for i in 0..n {
            assert_eq!(cpu.load_u64(a + i * P).unwrap(), i + 1);
        }
    }
    m.check().unwrap();
    // Freeing some memory lets the fault succeed.
    m.munmap(pid, a, 8 * P).unwrap();
    m.write(pid, a + oom_at.unwrap() * P, &[7]).unwrap().unwrap();
    m.check().unwrap();
    m.exit(pid).unwrap();
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
