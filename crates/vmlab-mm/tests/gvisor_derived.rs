//! Cases derived from gVisor's syscall tests for memory
//! (`test/syscalls/linux/{mmap,mremap,madvise,fork,mlock,munmap,msync,brk,proc}.cc`
//! in google/gvisor at 3c5eee17dc45): the edge cases a user-space Linux VM got
//! wrong, written again in vmlab's API (none of gVisor's code is copied). Each
//! test is named after its source case and says which one in its doc comment.
//!
//! Translation rules:
//! - gVisor's death tests (a child killed by SIGSEGV or SIGBUS) become the
//!   `Fault` an access returns (signal and `FaultReason`, i.e. the `si_code`).
//! - `IsMapped` and `/proc/self/maps` become `Machine::maps`.
//! - `/dev/zero` MAP_SHARED mappings are shared anonymous memory (Linux turns
//!   one into the other, `shmem_zero_setup`); files are an in-memory
//!   `BackingFile`; `InForkedProcess` is `Machine::fork_with` for every policy
//!   where the case involves fork.
//! - vmlab has no mlock(2): mlock cases use MAP_LOCKED, and "is the page
//!   locked" is gVisor's own probe, msync(MS_ASYNC | MS_INVALIDATE) == EBUSY.
//! - Where the Linux result was not obvious it was checked on the host
//!   (Linux 6.18, the oracle of `crates/vmlab/tests/linux_semantics.rs`); the
//!   test says so.
//!
//! Not applicable (no such thing in vmlab): pipes, character devices and
//! directories (MapPipe, MapCharDevice, MapDirectory), O_PATH and write-only
//! fds (MmapFileWithOpath, WriteOnlyFd), rlimits (ExceedLimitData/AS,
//! Rlimit*), truncation of a mapped file (documented gap: *Truncate*,
//! TruncateAfterCOWBreak), read/write syscalls on fds (ReadSharedConsistent*,
//! SelfRead/SelfWrite, InternalSigBus*), mincore, munlock/mlockall, clone
//! flags, signals and namespaces of fork.cc.
//!
//! Every test ends with the invariant checker and, after every process has
//! exited and every file is closed, with every frame free.

mod common;

use vmlab_mm::errno::{Errno, Fault, FaultReason, Signal};
use vmlab_mm::mm::uapi::*;
use vmlab_mm::mm::{Access, ForkPolicy, MemFile};
use vmlab_mm::system::config::ForkName;
use vmlab_mm::system::{ByteSize, Machine, MachineConfig, MapsLine, Pid};

const PAGE: u64 = 4096;
const HUGE: u64 = 2 << 20;
const R: u32 = PROT_READ;
const W: u32 = PROT_WRITE;
const RW: u32 = PROT_READ | PROT_WRITE;
const NONE: u32 = PROT_NONE;
const ANON: u32 = MAP_PRIVATE | MAP_ANONYMOUS;
const SHANON: u32 = MAP_SHARED | MAP_ANONYMOUS;
const POLICIES: [ForkPolicy; 3] = [ForkPolicy::Cow, ForkPolicy::SharedPt, ForkPolicy::Eager];
/// `mremap` flags for "move to exactly new_addr".
const MOVE_FIXED: u32 = MREMAP_MAYMOVE | MREMAP_FIXED;
/// gVisor's `kFileContents`.
const HELLO: &[u8] = b"Hello World!";

// ---------------------------------------------------------------- helpers

fn machine() -> Machine {
    machine_with(ForkName::Cow)
}

/// A machine whose configured fork policy is `fork` (it also decides
/// whether shared file mappings share their page tables).
fn machine_with(fork: ForkName) -> Machine {
    Machine::new(&MachineConfig {
        ram: ByteSize(64 << 20),
        cpus: 2,
        fork,
        ..common::test_config()
    })
    .unwrap()
}

/// Open a file holding `bytes`; the fd and the test's view of the file.
fn open(m: &Machine, bytes: &[u8], writable: bool) -> (i32, MemFile) {
    let f = MemFile::new(bytes, writable);
    (m.open_file(Box::new(f.clone())), f)
}

/// gVisor's `MMapFileTest` file: half a page of zero bytes, read-write.
fn half_page_file(m: &Machine) -> (i32, MemFile) {
    open(m, &[0u8; PAGE as usize / 2], true)
}

fn rd(m: &Machine, pid: Pid, addr: u64, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    m.read(pid, addr, &mut b)
        .unwrap()
        .unwrap_or_else(|f| panic!("read {addr:#x}: {f}"));
    b
}

fn wr(m: &Machine, pid: Pid, addr: u64, data: &[u8]) {
    m.write(pid, addr, data)
        .unwrap()
        .unwrap_or_else(|f| panic!("write {addr:#x}: {f}"));
}

/// Fill `len` bytes at `addr` with `b`.
fn fill(m: &Machine, pid: Pid, addr: u64, len: u64, b: u8) {
    wr(m, pid, addr, &vec![b; len as usize]);
}

/// Whether all `len` bytes at `addr` are `b`.
fn all(m: &Machine, pid: Pid, addr: u64, len: u64, b: u8) -> bool {
    rd(m, pid, addr, len as usize).iter().all(|&x| x == b)
}

fn read_fault(m: &Machine, pid: Pid, addr: u64) -> Fault {
    m.read(pid, addr, &mut [0u8; 1])
        .unwrap()
        .expect_err("the read should fault")
}

fn write_fault(m: &Machine, pid: Pid, addr: u64) -> Fault {
    m.write(pid, addr, &[1u8]).unwrap().expect_err("the write should fault")
}

/// Execute (fetch an instruction) at `addr` in `pid`.
fn exec(m: &Machine, pid: Pid, addr: u64) -> Result<(), Fault> {
    let mut cpu = m.any_cpu().unwrap();
    cpu.switch_to(pid).unwrap();
    cpu.access(addr, Access::Exec)
}

fn assert_fault(f: Fault, signal: Signal, reason: FaultReason, addr: u64) {
    assert_eq!((f.signal, f.reason), (signal, reason), "{f}");
    assert_eq!(f.addr, addr, "{f}");
}

fn segv_maperr(f: Fault, addr: u64) {
    assert_fault(f, Signal::Segv, FaultReason::NotMapped, addr);
}

fn segv_accerr(f: Fault, addr: u64) {
    assert_fault(f, Signal::Segv, FaultReason::Protection, addr);
}

fn sigbus(f: Fault, addr: u64) {
    assert_fault(f, Signal::Bus, FaultReason::BeyondEof, addr);
}

/// The maps line covering `addr`, if any.
fn line(m: &Machine, pid: Pid, addr: u64) -> Option<MapsLine> {
    m.maps(pid)
        .unwrap()
        .into_iter()
        .find(|l| l.start <= addr && addr < l.end)
}

/// gVisor's `IsMapped`: some VMA covers `addr`.
fn mapped(m: &Machine, pid: Pid, addr: u64) -> bool {
    line(m, pid, addr).is_some()
}

/// The maps lines inside `[lo, hi)` as (start, end, perms).
fn window(m: &Machine, pid: Pid, lo: u64, hi: u64) -> Vec<(u64, u64, String)> {
    m.maps(pid)
        .unwrap()
        .into_iter()
        .filter(|l| l.end > lo && l.start < hi)
        .map(|l| (l.start, l.end, l.perms_str().to_string()))
        .collect()
}

/// gVisor's `IsPageMlocked`: msync(MS_ASYNC | MS_INVALIDATE) fails with EBUSY.
fn locked(m: &Machine, pid: Pid, addr: u64) -> bool {
    match m.msync(pid, addr & !(PAGE - 1), PAGE, MS_ASYNC | MS_INVALIDATE) {
        Ok(()) => false,
        Err(Errno::EBUSY) => true,
        Err(e) => panic!("msync probe: {e}"),
    }
}

/// `pages` pages of address space that nothing maps.
fn hole(m: &Machine, pid: Pid, pages: u64) -> u64 {
    let a = m.mmap(pid, 0, pages * PAGE, NONE, ANON).unwrap();
    m.munmap(pid, a, pages * PAGE).unwrap();
    a
}

fn check(m: &Machine, what: &str) {
    m.check().unwrap_or_else(|e| panic!("{what}: {e}"));
}

/// Check, then exit every process and close every file: every frame is free.
fn finish(m: &Machine) {
    check(m, "at the end");
    for pid in m.pids() {
        m.exit(pid).unwrap();
    }
    for fd in m.fds() {
        m.close(fd).unwrap();
    }
    check(m, "after exit and close");
    assert_eq!(m.objects().len(), 0, "objects left");
    assert_eq!(m.phys().frames_used(), m.reserved_frames(), "frames leaked");
}

fn flags_name(fl: u32) -> &'static str {
    if fl & MAP_TYPE == MAP_SHARED {
        "MAP_SHARED"
    } else {
        "MAP_PRIVATE"
    }
}

// ---------------------------------------------------------------- mmap.cc: MMapTest

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.MapAnything — a
/// PROT_NONE anonymous page maps at a non-zero address (and, extended,
/// shows as `---p` and refuses loads with SEGV_ACCERR).
#[test]
fn gvisor_mmap_map_anything() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, PAGE, NONE, ANON).unwrap();
    assert!(a > 0);
    assert_eq!(line(&m, p, a).unwrap().perms_str(), "---p");
    segv_accerr(read_fault(&m, p, a), a);
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.SmallMap — a length
/// below a page is allowed and rounded up to one page (checked on the host).
#[test]
fn gvisor_mmap_small_map() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, 128, NONE, ANON).unwrap();
    let l = line(&m, p, a).unwrap();
    assert_eq!((l.start, l.end), (a, a + PAGE));
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.HintAddress — a hint
/// breaks nothing; Linux places the mapping at a free hint exactly (checked
/// on the host: 0x30000000 comes back).
#[test]
fn gvisor_mmap_hint_address() {
    let m = machine();
    let p = m.spawn().unwrap();
    assert_eq!(m.mmap(p, 0x3000_0000, PAGE, NONE, ANON), Ok(0x3000_0000));
    // An occupied hint is not an error either: the mapping goes elsewhere.
    let b = m.mmap(p, 0x3000_0000, PAGE, NONE, ANON).unwrap();
    assert_ne!(b, 0x3000_0000);
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.NonFixedAlignment — a
/// hint need not be page aligned; Linux rounds it down (checked on the host:
/// 0x30000001 gives 0x30000000).
#[test]
fn gvisor_mmap_non_fixed_alignment() {
    let m = machine();
    let p = m.spawn().unwrap();
    assert_eq!(m.mmap(p, 0x3000_0001, PAGE, NONE, ANON), Ok(0x3000_0000));
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.MapFixed — MAP_FIXED
/// gives exactly the requested address; extended: over an existing mapping
/// it replaces it (old bytes gone, fresh zero page), also for a CPU that
/// cached the old translation.
#[test]
fn gvisor_mmap_map_fixed_replaces_existing() {
    let m = machine();
    let p = m.spawn().unwrap();
    assert_eq!(m.mmap(p, 0x3000_0000, PAGE, NONE, ANON | MAP_FIXED), Ok(0x3000_0000));
    let a = m.mmap(p, 0, 2 * PAGE, RW, ANON).unwrap();
    fill(&m, p, a, 2 * PAGE, 0x5a);
    let mut cpu = m.cpu(0).unwrap();
    cpu.switch_to(p).unwrap();
    assert_eq!(cpu.load_u64(a + PAGE).unwrap(), 0x5a5a_5a5a_5a5a_5a5a);
    assert_eq!(m.mmap(p, a + PAGE, PAGE, RW, ANON | MAP_FIXED), Ok(a + PAGE));
    assert_eq!(cpu.load_u64(a + PAGE).unwrap(), 0, "the replaced page is gone");
    assert_eq!(cpu.load_u64(a).unwrap(), 0x5a5a_5a5a_5a5a_5a5a);
    drop(cpu);
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.MapFixed64 — a 64-bit
/// fixed address (0x300000000000) works.
#[test]
fn gvisor_mmap_map_fixed_64() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = 0x3000_0000_0000;
    assert_eq!(m.mmap(p, a, PAGE, RW, ANON | MAP_FIXED), Ok(a));
    wr(&m, p, a + PAGE - 8, &7u64.to_le_bytes());
    assert_eq!(rd(&m, p, a + PAGE - 8, 8), 7u64.to_le_bytes());
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.MapFixedNoReplaceEmpty —
/// MAP_FIXED_NOREPLACE over a free range gives exactly the address.
#[test]
fn gvisor_mmap_map_fixed_noreplace_empty() {
    let m = machine();
    let p = m.spawn().unwrap();
    assert_eq!(
        m.mmap(p, 0x3000_0000, PAGE, NONE, ANON | MAP_FIXED_NOREPLACE),
        Ok(0x3000_0000)
    );
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.MapFixedNoReplaceExisting —
/// EEXIST over an existing mapping, which is left untouched (its sentinel
/// stays), and no other address is chosen.
#[test]
fn gvisor_mmap_map_fixed_noreplace_existing() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0x3000_0000, PAGE, RW, ANON | MAP_FIXED).unwrap();
    wr(&m, p, a, &0xdead_beefu32.to_le_bytes());
    let before = m.maps(p).unwrap();
    assert_eq!(m.mmap(p, a, PAGE, NONE, ANON | MAP_FIXED_NOREPLACE), Err(Errno::EEXIST));
    assert_eq!(m.maps(p).unwrap(), before, "no mapping made elsewhere");
    assert_eq!(rd(&m, p, a, 4), 0xdead_beefu32.to_le_bytes());
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.MapFixedNoReplacePartialOverlap —
/// EEXIST also when the range only partly overlaps a mapping (Linux 4.19,
/// commit 7aa867dd8952).
#[test]
fn gvisor_mmap_map_fixed_noreplace_partial_overlap() {
    let m = machine();
    let p = m.spawn().unwrap();
    m.mmap(p, 0x3000_1000, PAGE, NONE, ANON | MAP_FIXED).unwrap();
    assert_eq!(
        m.mmap(p, 0x3000_0000, 2 * PAGE, NONE, ANON | MAP_FIXED_NOREPLACE),
        Err(Errno::EEXIST)
    );
    // Nor when the existing mapping starts before the range.
    assert_eq!(
        m.mmap(p, 0x3000_1000, 2 * PAGE, NONE, ANON | MAP_FIXED_NOREPLACE),
        Err(Errno::EEXIST)
    );
    assert!(!mapped(&m, p, 0x3000_0000));
    assert_eq!(m.maps(p).unwrap().len(), 1);
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.MapFixedNoReplaceWithMapFixed —
/// MAP_FIXED_NOREPLACE wins over MAP_FIXED: EEXIST (checked on the host).
#[test]
fn gvisor_mmap_map_fixed_noreplace_with_map_fixed() {
    let m = machine();
    let p = m.spawn().unwrap();
    m.mmap(p, 0x3000_0000, PAGE, NONE, ANON | MAP_FIXED).unwrap();
    assert_eq!(
        m.mmap(p, 0x3000_0000, PAGE, NONE, ANON | MAP_FIXED | MAP_FIXED_NOREPLACE),
        Err(Errno::EEXIST)
    );
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.MapFixedNoReplaceAlignment —
/// like MAP_FIXED, an unaligned address is EINVAL (checked on the host).
#[test]
fn gvisor_mmap_map_fixed_noreplace_alignment() {
    let m = machine();
    let p = m.spawn().unwrap();
    assert_eq!(
        m.mmap(p, 0x3000_0001, PAGE, NONE, ANON | MAP_FIXED_NOREPLACE),
        Err(Errno::EINVAL)
    );
    assert!(m.maps(p).unwrap().is_empty());
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.MapStack — MAP_STACK is allowed.
#[test]
fn gvisor_mmap_map_stack() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, PAGE, NONE, ANON | MAP_STACK).unwrap();
    assert_eq!(line(&m, p, a).unwrap().perms_str(), "---p");
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.MapLocked (and mlock.cc
/// MapLockedTest.Basic) — MAP_LOCKED is allowed and the page is locked
/// (gVisor's probe: msync MS_INVALIDATE is EBUSY); its unlocked neighbour is not.
#[test]
fn gvisor_mmap_map_locked() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, PAGE, NONE, ANON | MAP_LOCKED).unwrap();
    assert!(locked(&m, p, a));
    let b = m.mmap(p, 0, PAGE, RW, ANON | MAP_LOCKED).unwrap();
    assert!(locked(&m, p, b));
    wr(&m, p, b, b"locked");
    let c = m.mmap(p, 0, PAGE, RW, ANON).unwrap();
    assert!(!locked(&m, p, c));
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.NotPrivateOrShared —
/// neither MAP_PRIVATE nor MAP_SHARED: EINVAL.
#[test]
fn gvisor_mmap_not_private_or_shared() {
    let m = machine();
    let p = m.spawn().unwrap();
    assert_eq!(m.mmap(p, 0, PAGE, NONE, MAP_ANONYMOUS), Err(Errno::EINVAL));
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.PrivateAndShared —
/// MAP_PRIVATE | MAP_SHARED (= MAP_SHARED_VALIDATE) of anonymous memory:
/// EINVAL (checked on the host).
#[test]
fn gvisor_mmap_private_and_shared() {
    let m = machine();
    let p = m.spawn().unwrap();
    assert_eq!(
        m.mmap(p, 0, PAGE, NONE, MAP_PRIVATE | MAP_SHARED | MAP_ANONYMOUS),
        Err(Errno::EINVAL)
    );
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.FixedAlignment —
/// MAP_FIXED at an unaligned address: EINVAL.
#[test]
fn gvisor_mmap_fixed_alignment() {
    let m = machine();
    let p = m.spawn().unwrap();
    assert_eq!(m.mmap(p, 0x3000_0001, PAGE, NONE, ANON | MAP_FIXED), Err(Errno::EINVAL));
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.InvalidLength — length 0: EINVAL.
#[test]
fn gvisor_mmap_invalid_length() {
    let m = machine();
    let p = m.spawn().unwrap();
    assert_eq!(m.mmap(p, 0, 0, NONE, ANON), Err(Errno::EINVAL));
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.BadFd — a file mapping
/// of an fd that is not open: EBADF.
#[test]
fn gvisor_mmap_bad_fd() {
    let m = machine();
    let p = m.spawn().unwrap();
    assert_eq!(m.mmap_fd(p, 0, PAGE, NONE, MAP_PRIVATE, 999, 0), Err(Errno::EBADF));
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.HugeLength — a length
/// of 2^64 - 4095 or more, which rounds up to 0: ENOMEM, no crash.
#[test]
fn gvisor_mmap_huge_length() {
    let m = machine();
    let p = m.spawn().unwrap();
    assert_eq!(m.mmap(p, 0, PAGE.wrapping_neg() + 1, NONE, ANON), Err(Errno::ENOMEM));
    assert_eq!(m.mmap(p, 0, u64::MAX, NONE, ANON), Err(Errno::ENOMEM));
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.ProtWrite — a RW
/// mapping takes stores and keeps them.
#[test]
fn gvisor_mmap_prot_write() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, PAGE, RW, ANON).unwrap();
    fill(&m, p, a, PAGE, 42);
    assert_eq!(rd(&m, p, a, 4), [42; 4]);
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.ProtWriteOnly — a
/// PROT_WRITE-only mapping is writable and readable (x86 has no write-only pages).
#[test]
fn gvisor_mmap_prot_write_only() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, PAGE, W, ANON).unwrap();
    assert_eq!(line(&m, p, a).unwrap().perms_str(), "-w-p");
    fill(&m, p, a, PAGE, 42);
    assert_eq!(rd(&m, p, a, 4), [42; 4]);
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.ProtWriteOnlyReadable —
/// a write-only page is readable even when its first fault is a read.
#[test]
fn gvisor_mmap_prot_write_only_readable() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, PAGE, W, ANON).unwrap();
    assert_eq!(rd(&m, p, a, 8), [0; 8]);
    // ...and the read-faulted (zero) page still takes a store.
    wr(&m, p, a, &[1]);
    assert_eq!(rd(&m, p, a, 1), [1]);
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.ProtectProtWrite —
/// PROT_NONE made RW by mprotect takes stores.
#[test]
fn gvisor_mmap_protect_prot_write() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, PAGE, NONE, ANON).unwrap();
    m.mprotect(p, a, PAGE, RW).unwrap();
    fill(&m, p, a, PAGE, 42);
    assert_eq!(rd(&m, p, a, 4), [42; 4]);
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.ProtNoneDeath — a load
/// from PROT_NONE memory is SIGSEGV.
#[test]
fn gvisor_mmap_prot_none_death() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, PAGE, NONE, ANON).unwrap();
    segv_accerr(read_fault(&m, p, a), a);
    segv_accerr(write_fault(&m, p, a + 100), a + 100);
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.ReadOnlyDeath — a store
/// to PROT_READ memory is SIGSEGV, whether the page was read first or not.
#[test]
fn gvisor_mmap_read_only_death() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, 2 * PAGE, R, ANON).unwrap();
    segv_accerr(write_fault(&m, p, a), a);
    assert_eq!(rd(&m, p, a + PAGE, 1), [0]);
    segv_accerr(write_fault(&m, p, a + PAGE), a + PAGE);
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.MprotectReadOnlyDeath —
/// a written page made read-only refuses stores; here from a CPU whose TLB
/// cached the writable translation before the mprotect.
#[test]
fn gvisor_mmap_mprotect_read_only_death() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, PAGE, RW, ANON).unwrap();
    let mut cpu = m.cpu(0).unwrap();
    cpu.switch_to(p).unwrap();
    cpu.store_u64(a, 42).unwrap();
    cpu.store_u64(a, 43).unwrap();
    m.mprotect(p, a, PAGE, R).unwrap();
    segv_accerr(cpu.store_u64(a, 0).unwrap_err(), a);
    assert_eq!(cpu.load_u64(a).unwrap(), 43);
    drop(cpu);
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.MprotectNotPageAligned —
/// mprotect at an unaligned address: EINVAL.
#[test]
fn gvisor_mmap_mprotect_not_page_aligned() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, PAGE, RW, ANON).unwrap();
    assert_eq!(m.mprotect(p, a + 1, PAGE - 1, R), Err(Errno::EINVAL));
    assert_eq!(line(&m, p, a).unwrap().perms_str(), "rw-p");
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.MprotectProtNone — a
/// present page made PROT_NONE faults with SEGV_ACCERR (not SEGV_MAPERR).
#[test]
fn gvisor_mmap_mprotect_prot_none() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, PAGE, RW, ANON).unwrap();
    wr(&m, p, a, &[1]);
    m.mprotect(p, a, PAGE, NONE).unwrap();
    segv_accerr(read_fault(&m, p, a), a);
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.MprotectHugeLength —
/// mprotect with length 2^64 - 1: ENOMEM (checked on the host), nothing changed.
#[test]
fn gvisor_mmap_mprotect_huge_length() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, PAGE, RW, ANON).unwrap();
    assert_eq!(m.mprotect(p, a, u64::MAX, R), Err(Errno::ENOMEM));
    assert_eq!(line(&m, p, a).unwrap().perms_str(), "rw-p");
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.ProtExec — a page
/// mapped RWX can be written and then executed.
#[test]
fn gvisor_mmap_prot_exec() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, PAGE, PROT_EXEC | RW, ANON).unwrap();
    // mov $42, %eax; ret
    wr(&m, p, a, &[0xb8, 0x2a, 0, 0, 0, 0xc3]);
    exec(&m, p, a).unwrap();
    assert_eq!(line(&m, p, a).unwrap().perms_str(), "rwxp");
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.NoProtExecDeath — code
/// in a RW page without PROT_EXEC does not run: SIGSEGV with SEGV_ACCERR
/// (checked on the host: si_code 2), also once the page is present.
#[test]
fn gvisor_mmap_no_prot_exec_death() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, 2 * PAGE, RW, ANON).unwrap();
    segv_accerr(exec(&m, p, a + PAGE).unwrap_err(), a + PAGE);
    wr(&m, p, a, &[0xb8, 0x2a, 0, 0, 0, 0xc3]);
    segv_accerr(exec(&m, p, a).unwrap_err(), a);
    // mprotect to R|X lets it run.
    m.mprotect(p, a, PAGE, R | PROT_EXEC).unwrap();
    exec(&m, p, a).unwrap();
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.SettingProtNoneDoesntFreeMemory —
/// PROT_NONE and back keeps the bytes.
#[test]
fn gvisor_mmap_setting_prot_none_doesnt_free_memory() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, PAGE, RW, ANON).unwrap();
    fill(&m, p, a, PAGE, 42);
    m.mprotect(p, a, PAGE, NONE).unwrap();
    check(&m, "PROT_NONE");
    m.mprotect(p, a, PAGE, RW).unwrap();
    assert!(all(&m, p, a, PAGE, 42));
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.AccessCOWInvalidatesCachedSegments —
/// after fork makes a page copy-on-write, a cached read-only translation
/// must not survive the copy: a CPU that read the page, then wrote both
/// pages (copying them), reads its own new bytes, never the stale page.
#[test]
fn gvisor_mmap_access_cow_invalidates_cached_segments() {
    for policy in POLICIES {
        let m = machine();
        let p = m.spawn().unwrap();
        let a = m.mmap(p, 0, 2 * PAGE, RW, ANON).unwrap();
        fill(&m, p, a, 2 * PAGE, 1);
        let (c, _) = m.fork_with(p, policy).unwrap();
        let mut cpu = m.cpu(0).unwrap();
        cpu.switch_to(p).unwrap();
        // A read-only access: caches the shared (write-protected) frame.
        let mut buf = vec![0u8; PAGE as usize];
        cpu.read(a, &mut buf).unwrap();
        assert!(buf.iter().all(|&b| b == 1), "{policy:?}");
        // A writable access of both pages: copies them.
        cpu.write(a, &vec![0u8; 2 * PAGE as usize]).unwrap();
        // Read again: the zeros just stored, not the stale ones.
        cpu.read(a, &mut buf).unwrap();
        assert!(buf.iter().all(|&b| b == 0), "{policy:?}: stale translation");
        drop(cpu);
        assert!(all(&m, c, a, 2 * PAGE, 1), "{policy:?}: the child keeps its bytes");
        finish(&m);
    }
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.NoReserve — every page
/// of a 10 MiB MAP_NORESERVE mapping reads 0 and takes a store.
#[test]
fn gvisor_mmap_no_reserve() {
    let m = machine();
    let p = m.spawn().unwrap();
    let size = 10 << 20;
    let a = m.mmap(p, 0, size, RW, ANON | MAP_NORESERVE).unwrap();
    let mut cpu = m.cpu(0).unwrap();
    cpu.switch_to(p).unwrap();
    for j in (0..size).step_by(PAGE as usize) {
        assert_eq!(cpu.load_u64(a + j).unwrap(), 0);
        cpu.store_u64(a + j, j).unwrap();
    }
    assert_eq!(cpu.load_u64(a + size - PAGE).unwrap(), size - PAGE);
    drop(cpu);
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.MapDevZeroNoPersistence
/// and MapDevZeroSharedFdNoPersistence — two MAP_SHARED mappings of
/// /dev/zero (shared anonymous memory) are distinct memory.
#[test]
fn gvisor_mmap_map_dev_zero_no_persistence() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, PAGE, RW, SHANON).unwrap();
    let b = m.mmap(p, 0, PAGE, RW, SHANON).unwrap();
    assert_ne!(a, b);
    assert!(all(&m, p, a, PAGE, 0));
    fill(&m, p, a, PAGE, 0xff);
    assert!(all(&m, p, a, PAGE, 0xff));
    assert!(all(&m, p, b, PAGE, 0), "the second mapping is not the first");
    assert_eq!(m.objects().len(), 2);
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.MapDevZeroSharedMultiplePages —
/// two pages of /dev/zero (MAP_PRIVATE in the source) read zeros, then
/// hold what is stored.
#[test]
fn gvisor_mmap_map_dev_zero_shared_multiple_pages() {
    let m = machine();
    let p = m.spawn().unwrap();
    for fl in [ANON, SHANON] {
        let a = m.mmap(p, 0, 2 * PAGE, RW, fl).unwrap();
        assert!(all(&m, p, a, 2 * PAGE, 0));
        fill(&m, p, a, 2 * PAGE, 0xff);
        assert!(all(&m, p, a, 2 * PAGE, 0xff), "{}", flags_name(fl));
    }
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.MapDevZeroSegfaultAfterUnmap —
/// any access to an unmapped /dev/zero MAP_SHARED page is SIGSEGV, also
/// from a CPU that had cached its writable translation.
#[test]
fn gvisor_mmap_map_dev_zero_segfault_after_unmap() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, PAGE, RW, SHANON).unwrap();
    let mut cpu = m.cpu(0).unwrap();
    cpu.switch_to(p).unwrap();
    cpu.store_u64(a, 0xff).unwrap();
    cpu.store_u64(a, 0xff).unwrap();
    m.munmap(p, a, PAGE).unwrap();
    segv_maperr(cpu.store_u64(a, 0xff).unwrap_err(), a);
    drop(cpu);
    assert_eq!(m.objects().len(), 0, "the shared memory went with its last mapping");
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.MapDevZeroUnaligned —
/// 1.5 pages of /dev/zero, shared then private, read as zeros (the whole
/// second page is accessible).
#[test]
fn gvisor_mmap_map_dev_zero_unaligned() {
    let m = machine();
    let p = m.spawn().unwrap();
    let size = PAGE + PAGE / 2;
    for fl in [SHANON, ANON] {
        let a = m.mmap(p, 0, size, RW, fl).unwrap();
        assert!(all(&m, p, a, 2 * PAGE, 0), "{}", flags_name(fl));
        assert_eq!(line(&m, p, a).unwrap().end, a + 2 * PAGE);
        m.munmap(p, a, size).unwrap();
        assert!(!mapped(&m, p, a + PAGE), "munmap rounds the length up too");
    }
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapNoFixtureTest.Map32Bit —
/// MAP_32BIT places the mapping below 4 GiB (checked on the host: in the
/// low 2 GiB, from 0x40000000 up).
#[test]
fn gvisor_mmap_map_32bit() {
    let m = machine();
    let p = m.spawn().unwrap();
    for _ in 0..2 {
        let a = m.mmap(p, 0, PAGE, NONE, ANON | MAP_32BIT).unwrap();
        assert!(a + PAGE <= 1 << 32, "{a:#x}");
        assert!(a >= 0x4000_0000, "{a:#x}");
    }
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapTest.NoExceedLimitData
/// (the brk part; vmlab has no RLIMIT_DATA) — brk to one byte past the
/// break succeeds and returns that unaligned value, mapping a heap page
/// (checked on the host: the raw syscall returns old + 1).
#[test]
fn gvisor_mmap_no_exceed_limit_data() {
    let m = machine();
    let p = m.spawn().unwrap();
    let old = m.brk(p, 0).unwrap();
    assert_eq!(m.brk(p, old + 1), Ok(old + 1));
    assert_eq!(m.brk(p, 0), Ok(old + 1));
    assert_eq!(line(&m, p, old).unwrap().end, old + PAGE);
    wr(&m, p, old + PAGE - 1, &[1]);
    finish(&m);
}

// ---------------------------------------------------------------- mmap.cc: MMapFileTest

/// From gVisor test/syscalls/linux/mmap.cc: MMapFileTest.Read — a private
/// read-only mapping shows the file's bytes.
#[test]
fn gvisor_mmap_file_read() {
    let m = machine();
    let mut data = vec![0u8; PAGE as usize / 2];
    data[..HELLO.len()].copy_from_slice(HELLO);
    let (fd, _) = open(&m, &data, true);
    let p = m.spawn().unwrap();
    let a = m.mmap_fd(p, 0, PAGE, R, MAP_PRIVATE, fd, 0).unwrap();
    assert_eq!(rd(&m, p, a, HELLO.len()), HELLO);
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapFileTest.MapOffset — a
/// mapping at file offset one page shows the bytes there.
#[test]
fn gvisor_mmap_file_map_offset() {
    let m = machine();
    let mut data = vec![0u8; PAGE as usize];
    data.extend_from_slice(HELLO);
    let (fd, _) = open(&m, &data, true);
    let p = m.spawn().unwrap();
    let a = m.mmap_fd(p, 0, PAGE, R, MAP_PRIVATE, fd, PAGE).unwrap();
    assert_eq!(rd(&m, p, a, HELLO.len()), HELLO);
    assert!(all(&m, p, a + HELLO.len() as u64, PAGE - HELLO.len() as u64, 0));
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapFileTest.MapOffsetBeyondEnd —
/// a mapping at an offset past the end maps, and a store to it is SIGBUS.
#[test]
fn gvisor_mmap_file_map_offset_beyond_end() {
    let m = machine();
    let (fd, f) = half_page_file(&m);
    let p = m.spawn().unwrap();
    let a = m.mmap_fd(p, 0, PAGE, RW, MAP_PRIVATE, fd, 10 * PAGE).unwrap();
    sigbus(write_fault(&m, p, a), a);
    finish(&m);
    assert_eq!(f.contents(), vec![0u8; PAGE as usize / 2]);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapFileTest.MapSecondToLastPositivePage —
/// one page at offset `(i64::MAX - 4095) & !4095` ends below 2^63: allowed.
#[test]
fn gvisor_mmap_file_map_second_to_last_positive_page() {
    let m = machine();
    let (fd, _) = half_page_file(&m);
    let p = m.spawn().unwrap();
    let off = (i64::MAX as u64 - PAGE) & !(PAGE - 1);
    assert!(m.mmap_fd(p, 0, PAGE, R, MAP_SHARED, fd, off).is_ok());
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapFileTest.MapLastPositivePage —
/// one page at offset `i64::MAX & !4095` would end at 2^63: EOVERFLOW.
#[test]
fn gvisor_mmap_file_map_last_positive_page() {
    let m = machine();
    let (fd, _) = half_page_file(&m);
    let p = m.spawn().unwrap();
    let off = i64::MAX as u64 & !(PAGE - 1);
    assert_eq!(m.mmap_fd(p, 0, PAGE, R, MAP_SHARED, fd, off), Err(Errno::EOVERFLOW));
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapFileTest.MapFirstNegativePage —
/// offset `i64::MIN` (as the unsigned value the syscall sees): EOVERFLOW.
#[test]
fn gvisor_mmap_file_map_first_negative_page() {
    let m = machine();
    let (fd, _) = half_page_file(&m);
    let p = m.spawn().unwrap();
    let off = i64::MIN as u64;
    assert_eq!(m.mmap_fd(p, 0, PAGE, R, MAP_SHARED, fd, off), Err(Errno::EOVERFLOW));
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapFileTest.MapSecondToLastNegativePage —
/// offset -8192: EOVERFLOW.
#[test]
fn gvisor_mmap_file_map_second_to_last_negative_page() {
    let m = machine();
    let (fd, _) = half_page_file(&m);
    let p = m.spawn().unwrap();
    let off = (-2 * PAGE as i64) as u64;
    assert_eq!(m.mmap_fd(p, 0, PAGE, R, MAP_SHARED, fd, off), Err(Errno::EOVERFLOW));
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapFileTest.MapLastNegativePage —
/// offset -4096: EOVERFLOW (the page offset plus the length does not wrap
/// 64 bits; the check against the largest file size catches it).
#[test]
fn gvisor_mmap_file_map_last_negative_page() {
    let m = machine();
    let (fd, _) = half_page_file(&m);
    let p = m.spawn().unwrap();
    let off = (-(PAGE as i64)) as u64;
    assert_eq!(m.mmap_fd(p, 0, PAGE, R, MAP_SHARED, fd, off), Err(Errno::EOVERFLOW));
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapFileTest.WritePrivateOnReadOnlyFd —
/// MAP_PRIVATE with PROT_WRITE of a file opened read-only is allowed, and
/// really writable (the file is never written).
#[test]
fn gvisor_mmap_file_write_private_on_read_only_fd() {
    let m = machine();
    let (fd, f) = open(&m, &[0u8; PAGE as usize / 2], false);
    let p = m.spawn().unwrap();
    let a = m.mmap_fd(p, 0, PAGE, RW, MAP_PRIVATE, fd, 0).unwrap();
    wr(&m, p, a, HELLO);
    assert_eq!(rd(&m, p, a, HELLO.len()), HELLO);
    finish(&m);
    assert_eq!(f.writes(), 0);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapFileTest.WriteSharedOnReadOnlyFd —
/// MAP_SHARED with PROT_WRITE of a file opened read-only: EACCES.
#[test]
fn gvisor_mmap_file_write_shared_on_read_only_fd() {
    let m = machine();
    let (fd, _) = open(&m, &[0u8; PAGE as usize / 2], false);
    let p = m.spawn().unwrap();
    assert_eq!(m.mmap_fd(p, 0, PAGE, RW, MAP_SHARED, fd, 0), Err(Errno::EACCES));
    assert!(m.maps(p).unwrap().is_empty());
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapFileTest.WriteShared — bytes
/// stored through a MAP_SHARED mapping are in the file after munmap.
#[test]
fn gvisor_mmap_file_write_shared() {
    let m = machine();
    let (fd, f) = half_page_file(&m);
    let p = m.spawn().unwrap();
    let a = m.mmap_fd(p, 0, PAGE, RW, MAP_SHARED, fd, 0).unwrap();
    wr(&m, p, a, HELLO);
    m.munmap(p, a, PAGE).unwrap();
    let file = f.contents();
    assert_eq!(&file[..HELLO.len()], HELLO);
    assert_eq!(file.len(), PAGE as usize / 2, "the file keeps its length");
    finish(&m);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapFileTest.WriteSharedBeyondEnd —
/// in the page holding the end of a half-page file, stores past the end are
/// not written to the file (which keeps its length).
#[test]
fn gvisor_mmap_file_write_shared_beyond_end() {
    let m = machine();
    let (fd, f) = half_page_file(&m);
    let p = m.spawn().unwrap();
    let a = m.mmap_fd(p, 0, PAGE, RW, MAP_SHARED, fd, 0).unwrap();
    fill(&m, p, a, PAGE / 2, b'A');
    fill(&m, p, a + PAGE / 2, PAGE / 2, b'B');
    m.munmap(p, a, PAGE).unwrap();
    assert_eq!(f.contents(), vec![b'A'; PAGE as usize / 2]);
    finish(&m);
    assert_eq!(f.contents(), vec![b'A'; PAGE as usize / 2]);
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapFileTest.WritePrivate —
/// MAP_PRIVATE stores never reach the file.
#[test]
fn gvisor_mmap_file_write_private() {
    let m = machine();
    let (fd, f) = half_page_file(&m);
    let p = m.spawn().unwrap();
    let a = m.mmap_fd(p, 0, PAGE, RW, MAP_PRIVATE, fd, 0).unwrap();
    wr(&m, p, a, HELLO);
    m.munmap(p, a, PAGE).unwrap();
    finish(&m);
    assert_eq!(f.contents(), vec![0u8; PAGE as usize / 2]);
    assert_eq!(f.writes(), 0);
}

/// The parameters of gVisor's `MMapFileParamTest`: (prot, flags).
const FILE_PARAMS: [(u32, u32); 6] = [
    (R, MAP_SHARED),
    (W, MAP_SHARED),
    (RW, MAP_SHARED),
    (R, MAP_PRIVATE),
    (W, MAP_PRIVATE),
    (RW, MAP_PRIVATE),
];

/// From gVisor test/syscalls/linux/mmap.cc: MMapFileParamTest.SigBusDeath —
/// for every (prot, flags), in a two-page mapping of a half-page file, an
/// access to the second page (a store if writable, else a load) is SIGBUS.
#[test]
fn gvisor_mmap_file_sig_bus_death() {
    for (prot, flags) in FILE_PARAMS {
        let m = machine();
        let (fd, _) = half_page_file(&m);
        let p = m.spawn().unwrap();
        let a = m.mmap_fd(p, 0, 2 * PAGE, prot, flags, fd, 0).unwrap();
        let f = if prot & W != 0 {
            write_fault(&m, p, a + PAGE)
        } else {
            read_fault(&m, p, a + PAGE)
        };
        sigbus(f, a + PAGE);
        finish(&m);
    }
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapFileParamTest.NoSigBusOnPagesBeforeEOF —
/// the first page of a mapping that runs past the end is accessible.
#[test]
fn gvisor_mmap_file_no_sig_bus_on_pages_before_eof() {
    for (prot, flags) in FILE_PARAMS {
        let m = machine();
        let (fd, f) = half_page_file(&m);
        let p = m.spawn().unwrap();
        let a = m.mmap_fd(p, 0, 2 * PAGE, prot, flags, fd, 0).unwrap();
        if prot & W != 0 {
            wr(&m, p, a, HELLO);
        } else {
            assert_eq!(rd(&m, p, a, HELLO.len()), [0; 12]);
        }
        finish(&m);
        let want: &[u8] = if prot & W != 0 && flags == MAP_SHARED {
            HELLO
        } else {
            &[0; 12]
        };
        assert_eq!(&f.contents()[..12], want, "prot {prot} flags {flags}");
    }
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapFileParamTest.NoSigBusOnPageContainingEOF —
/// the page holding the end is accessible after the end too (at 2049).
#[test]
fn gvisor_mmap_file_no_sig_bus_on_page_containing_eof() {
    for (prot, flags) in FILE_PARAMS {
        let m = machine();
        let (fd, f) = half_page_file(&m);
        let p = m.spawn().unwrap();
        let a = m.mmap_fd(p, 0, 2 * PAGE, prot, flags, fd, 0).unwrap();
        let at = a + PAGE / 2 + 1;
        if prot & W != 0 {
            wr(&m, p, at, HELLO);
        } else {
            assert_eq!(rd(&m, p, at, HELLO.len()), [0; 12]);
        }
        finish(&m);
        assert_eq!(
            f.contents(),
            vec![0u8; PAGE as usize / 2],
            "nothing past the end is written"
        );
    }
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapFileParamTest.MapPopulate —
/// MAP_POPULATE is allowed on a file mapping, for every (prot, flags).
#[test]
fn gvisor_mmap_file_map_populate() {
    for (prot, flags) in FILE_PARAMS {
        let m = machine();
        let (fd, _) = half_page_file(&m);
        let p = m.spawn().unwrap();
        let a = m.mmap_fd(p, 0, PAGE, prot, flags | MAP_POPULATE, fd, 0).unwrap();
        assert_eq!(rd(&m, p, a, 8), [0; 8]);
        finish(&m);
    }
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapFileParamTest.MapPopulateShort —
/// MAP_POPULATE of two pages of a half-page file succeeds (the page past
/// the end is not populated, and still SIGBUS).
#[test]
fn gvisor_mmap_file_map_populate_short() {
    for (prot, flags) in FILE_PARAMS {
        let m = machine();
        let (fd, _) = half_page_file(&m);
        let p = m.spawn().unwrap();
        let a = m.mmap_fd(p, 0, 2 * PAGE, prot, flags | MAP_POPULATE, fd, 0).unwrap();
        sigbus(read_fault(&m, p, a + PAGE), a + PAGE);
        finish(&m);
    }
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapFileTest.ReadingWritableSharedFilePageSucceeds —
/// loads from a writable MAP_SHARED file page work.
#[test]
fn gvisor_mmap_file_reading_writable_shared_file_page_succeeds() {
    let m = machine();
    let mut data = vec![0u8; PAGE as usize / 2];
    data[..HELLO.len()].copy_from_slice(HELLO);
    let (fd, f) = open(&m, &data, true);
    let p = m.spawn().unwrap();
    let a = m.mmap_fd(p, 0, 2 * PAGE, RW, MAP_SHARED, fd, 0).unwrap();
    assert_eq!(rd(&m, p, a, HELLO.len()), HELLO);
    finish(&m);
    assert_eq!(f.writes(), 0, "a read dirties nothing");
}

/// From gVisor test/syscalls/linux/mmap.cc: MMapFileTest.Bug38498194 — a
/// 4 MiB MAP_SHARED mapping written in full is the file after munmap; here
/// also at a 2 MiB-aligned address on a `shared_pt` machine, where the
/// mapping uses the object's shared page tables.
#[test]
fn gvisor_mmap_file_bug38498194() {
    for (fork, aligned) in [(ForkName::Cow, false), (ForkName::SharedPt, true)] {
        let m = machine_with(fork);
        let size = 4u64 << 20;
        let (fd, f) = open(&m, &vec![0u8; size as usize], true);
        let p = m.spawn().unwrap();
        let addr = if aligned {
            (hole(&m, p, (size + HUGE) / PAGE) + HUGE - 1) & !(HUGE - 1)
        } else {
            0
        };
        let flags = if aligned { MAP_SHARED | MAP_FIXED } else { MAP_SHARED };
        let a = m.mmap_fd(p, addr, size, RW, flags, fd, 0).unwrap();
        fill(&m, p, a, size, b'a');
        m.munmap(p, a, size).unwrap();
        assert!(f.contents().iter().all(|&b| b == b'a'), "{fork:?}");
        finish(&m);
    }
}

// ---------------------------------------------------------------- munmap.cc

/// From gVisor test/syscalls/linux/munmap.cc: MunmapTest.HappyCase — munmap
/// of a mapped page succeeds and the page is gone.
#[test]
fn gvisor_munmap_happy_case() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, PAGE, RW, ANON).unwrap();
    wr(&m, p, a, &[1]);
    assert_eq!(m.munmap(p, a, PAGE), Ok(()));
    segv_maperr(read_fault(&m, p, a), a);
    finish(&m);
}

/// From gVisor test/syscalls/linux/munmap.cc: MunmapTest.ZeroLength — EINVAL.
#[test]
fn gvisor_munmap_zero_length() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, PAGE, RW, ANON).unwrap();
    assert_eq!(m.munmap(p, a, 0), Err(Errno::EINVAL));
    assert!(mapped(&m, p, a));
    finish(&m);
}

/// From gVisor test/syscalls/linux/munmap.cc: MunmapTest.LastPageRoundUp —
/// a length that rounds up past the top of the address space: EINVAL
/// (checked on the host).
#[test]
fn gvisor_munmap_last_page_round_up() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, PAGE, RW, ANON).unwrap();
    assert_eq!(m.munmap(p, a, PAGE.wrapping_neg() + 1), Err(Errno::EINVAL));
    assert!(mapped(&m, p, a));
    finish(&m);
}

// ---------------------------------------------------------------- msync.cc

/// gVisor's `SyncableMappings`: one page of anonymous memory and of an
/// empty file (opened read-only unless writable), for read-only and
/// writable protection, private and shared. Returns (address, description).
fn syncable_mappings(m: &Machine, p: Pid) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    for writable in [false, true] {
        for fl in [MAP_PRIVATE, MAP_SHARED] {
            let prot = if writable { RW } else { R };
            let a = m.mmap(p, 0, PAGE, prot, fl | MAP_ANONYMOUS).unwrap();
            out.push((a, format!("anon {} writable={writable}", flags_name(fl))));
            let (fd, _) = open(m, &[], writable);
            let a = m.mmap_fd(p, 0, PAGE, prot, fl, fd, 0).unwrap();
            out.push((a, format!("file {} writable={writable}", flags_name(fl))));
        }
    }
    out
}

const MSYNC_FLAGS: [u32; 3] = [MS_SYNC, MS_ASYNC, 0];

/// From gVisor test/syscalls/linux/msync.cc: MsyncNoMappingTest.UnmappedAddressWithZeroLengthSucceeds —
/// msync(NULL, 0, flags) succeeds for every valid flag set.
#[test]
fn gvisor_msync_unmapped_address_with_zero_length_succeeds() {
    let m = machine();
    let p = m.spawn().unwrap();
    for fl in MSYNC_FLAGS {
        assert_eq!(m.msync(p, 0, 0, fl), Ok(()), "flags {fl}");
    }
    finish(&m);
}

/// From gVisor test/syscalls/linux/msync.cc: MsyncNoMappingTest.UnmappedAddressWithNonzeroLengthFails —
/// msync(NULL, 4096, flags): ENOMEM.
#[test]
fn gvisor_msync_unmapped_address_with_nonzero_length_fails() {
    let m = machine();
    let p = m.spawn().unwrap();
    for fl in MSYNC_FLAGS {
        assert_eq!(m.msync(p, 0, PAGE, fl), Err(Errno::ENOMEM), "flags {fl}");
    }
    finish(&m);
}

/// From gVisor test/syscalls/linux/msync.cc: MsyncNoFlagsTest.BothSyncAndAsyncFails —
/// MS_SYNC | MS_ASYNC: EINVAL, for every kind of mapping.
#[test]
fn gvisor_msync_both_sync_and_async_fails() {
    let m = machine();
    let p = m.spawn().unwrap();
    for (a, what) in syncable_mappings(&m, p) {
        assert_eq!(m.msync(p, a, PAGE, MS_SYNC | MS_ASYNC), Err(Errno::EINVAL), "{what}");
    }
    finish(&m);
}

/// From gVisor test/syscalls/linux/msync.cc: MsyncFullParamTest.NormallySucceeds —
/// every flag set on every kind of mapping succeeds.
#[test]
fn gvisor_msync_normally_succeeds() {
    let m = machine();
    let p = m.spawn().unwrap();
    for (a, what) in syncable_mappings(&m, p) {
        for fl in MSYNC_FLAGS {
            assert_eq!(m.msync(p, a, PAGE, fl), Ok(()), "{what} flags {fl}");
        }
    }
    finish(&m);
}

/// From gVisor test/syscalls/linux/msync.cc: MsyncFullParamTest.UnalignedLengthSucceeds —
/// the length is rounded up.
#[test]
fn gvisor_msync_unaligned_length_succeeds() {
    let m = machine();
    let p = m.spawn().unwrap();
    for (a, what) in syncable_mappings(&m, p) {
        for fl in MSYNC_FLAGS {
            assert_eq!(m.msync(p, a, PAGE - 1, fl), Ok(()), "{what} flags {fl}");
        }
    }
    finish(&m);
}

/// From gVisor test/syscalls/linux/msync.cc: MsyncFullParamTest.UnalignedAddressFails —
/// an unaligned address: EINVAL.
#[test]
fn gvisor_msync_unaligned_address_fails() {
    let m = machine();
    let p = m.spawn().unwrap();
    for (a, what) in syncable_mappings(&m, p) {
        for fl in MSYNC_FLAGS {
            assert_eq!(m.msync(p, a + 1, PAGE - 1, fl), Err(Errno::EINVAL), "{what} flags {fl}");
        }
    }
    finish(&m);
}

/// From gVisor test/syscalls/linux/msync.cc: MsyncFullParamTest.InvalidateUnlockedSucceeds —
/// MS_INVALIDATE on memory that is not locked succeeds.
#[test]
fn gvisor_msync_invalidate_unlocked_succeeds() {
    let m = machine();
    let p = m.spawn().unwrap();
    for (a, what) in syncable_mappings(&m, p) {
        for fl in MSYNC_FLAGS {
            assert_eq!(m.msync(p, a, PAGE, fl | MS_INVALIDATE), Ok(()), "{what} flags {fl}");
        }
    }
    finish(&m);
}

// ---------------------------------------------------------------- brk.cc

/// From gVisor test/syscalls/linux/brk.cc: BrkTest.BrkSyscallReturnsOldBrkOnFailure —
/// brk((void*)-1) fails and returns the old break (checked on the host).
#[test]
fn gvisor_brk_syscall_returns_old_brk_on_failure() {
    let m = machine();
    let p = m.spawn().unwrap();
    let old = m.brk(p, 0).unwrap();
    assert_eq!(m.brk(p, u64::MAX), Ok(old));
    let grown = m.brk(p, old + 3 * PAGE).unwrap();
    assert_eq!(grown, old + 3 * PAGE);
    assert_eq!(m.brk(p, u64::MAX), Ok(grown));
    finish(&m);
}

// ---------------------------------------------------------------- proc.cc: /proc/self/maps

/// From gVisor test/syscalls/linux/proc.cc: ProcSelfMaps.Map1 — a private
/// anonymous PROT_READ page is listed once, as `r--p`, with its exact bounds.
#[test]
fn gvisor_proc_self_maps_map1() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, PAGE, R, ANON).unwrap();
    let lines: Vec<_> = m
        .maps(p)
        .unwrap()
        .into_iter()
        .filter(|l| (l.start, l.end) == (a, a + PAGE) && l.perms_str() == "r--p")
        .collect();
    assert_eq!(lines.len(), 1);
    finish(&m);
}

/// From gVisor test/syscalls/linux/proc.cc: ProcSelfMaps.Map2 — two mappings
/// with different permissions are two lines (`r-xp`, `-w-p`).
#[test]
fn gvisor_proc_self_maps_map2() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, PAGE, R | PROT_EXEC, ANON).unwrap();
    let b = m.mmap(p, 0, PAGE, W, ANON).unwrap();
    assert_eq!(window(&m, p, 0, u64::MAX), {
        let mut v = vec![(a, a + PAGE, "r-xp".to_string()), (b, b + PAGE, "-w-p".to_string())];
        v.sort();
        v
    });
    finish(&m);
}

/// From gVisor test/syscalls/linux/proc.cc: ProcSelfMaps.MapUnmap — after
/// munmap of the second mapping only the first is listed.
#[test]
fn gvisor_proc_self_maps_map_unmap() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, PAGE, R | PROT_EXEC, ANON).unwrap();
    let b = m.mmap(p, 0, PAGE, W, ANON).unwrap();
    assert_eq!(m.maps(p).unwrap().len(), 2);
    m.munmap(p, b, PAGE).unwrap();
    assert_eq!(window(&m, p, 0, u64::MAX), vec![(a, a + PAGE, "r-xp".to_string())]);
    finish(&m);
}

/// From gVisor test/syscalls/linux/proc.cc: ProcSelfMaps.Mprotect (skipped
/// on Linux by gVisor; passes on the host) — mprotect of the middle 3 of 5
/// PROT_NONE pages gives one VMA; of the middle page, three; back, one again.
#[test]
fn gvisor_proc_self_maps_mprotect() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, 5 * PAGE, NONE, ANON).unwrap();
    let s = |x: &str| x.to_string();
    m.mprotect(p, a + PAGE, 3 * PAGE, R).unwrap();
    assert_eq!(
        window(&m, p, a, a + 5 * PAGE),
        vec![
            (a, a + PAGE, s("---p")),
            (a + PAGE, a + 4 * PAGE, s("r--p")),
            (a + 4 * PAGE, a + 5 * PAGE, s("---p"))
        ]
    );
    m.mprotect(p, a + 2 * PAGE, PAGE, RW).unwrap();
    assert_eq!(window(&m, p, a, a + 5 * PAGE).len(), 5);
    assert_eq!(line(&m, p, a + 2 * PAGE).unwrap().perms_str(), "rw-p");
    m.mprotect(p, a + 2 * PAGE, PAGE, R).unwrap();
    assert_eq!(
        line(&m, p, a + 2 * PAGE).map(|l| (l.start, l.end)),
        Some((a + PAGE, a + 4 * PAGE)),
        "the three pieces merge back"
    );
    finish(&m);
}

/// From gVisor test/syscalls/linux/proc.cc: ProcSelfMaps.Mprotect, its
/// FIXME ("Linux's mprotect() sometimes fails to merge VMAs in this case"):
/// when the middle page was written while RW, it keeps VM_ACCOUNT (and an
/// anonymous identity) after going back to PROT_READ, so Linux does not
/// merge it with its untouched neighbours (checked on the host: 3 lines).
#[test]
fn gvisor_proc_self_maps_mprotect_written_middle_page_stays_apart() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, 5 * PAGE, NONE, ANON).unwrap();
    m.mprotect(p, a + PAGE, 3 * PAGE, R).unwrap();
    m.mprotect(p, a + 2 * PAGE, PAGE, RW).unwrap();
    wr(&m, p, a + 2 * PAGE, &[1]);
    m.mprotect(p, a + 2 * PAGE, PAGE, R).unwrap();
    let s = |x: &str| x.to_string();
    assert_eq!(
        window(&m, p, a, a + 5 * PAGE),
        vec![
            (a, a + PAGE, s("---p")),
            (a + PAGE, a + 2 * PAGE, s("r--p")),
            (a + 2 * PAGE, a + 3 * PAGE, s("r--p")),
            (a + 3 * PAGE, a + 4 * PAGE, s("r--p")),
            (a + 4 * PAGE, a + 5 * PAGE, s("---p"))
        ]
    );
    assert_eq!(rd(&m, p, a + 2 * PAGE, 1), [1]);
    finish(&m);
}

/// From gVisor test/syscalls/linux/proc.cc: ProcSelfMaps.SharedAnon — a
/// MAP_SHARED | MAP_ANONYMOUS mapping is listed as shared (`r--s`; the
/// "/dev/zero (deleted)" name column vmlab does not have).
#[test]
fn gvisor_proc_self_maps_shared_anon() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, PAGE, R, SHANON).unwrap();
    assert_eq!(line(&m, p, a).unwrap().perms_str(), "r--s");
    finish(&m);
}

/// From gVisor test/syscalls/linux/proc.cc: ProcPidMem.Unmapped — a forked
/// child that unmaps a page can no longer read it, while the parent still
/// reads its bytes.
#[test]
fn gvisor_proc_pid_mem_unmapped() {
    for policy in POLICIES {
        let m = machine();
        let p = m.spawn().unwrap();
        let a = m.mmap(p, 0, PAGE, RW, ANON).unwrap();
        fill(&m, p, a, PAGE, b'x');
        let (c, _) = m.fork_with(p, policy).unwrap();
        assert_eq!(rd(&m, c, a, 1), b"x");
        m.munmap(c, a, PAGE).unwrap();
        segv_maperr(read_fault(&m, c, a), a);
        assert_eq!(rd(&m, p, a, 1), b"x", "{policy:?}");
        finish(&m);
    }
}

// ---------------------------------------------------------------- fork.cc

/// From gVisor test/syscalls/linux/fork.cc: ForkTest.Simple — fork and the
/// child's exit leave the parent whole and free the child's memory.
#[test]
fn gvisor_fork_simple() {
    for policy in POLICIES {
        let m = machine();
        let p = m.spawn().unwrap();
        let a = m.mmap(p, 0, 4 * PAGE, RW, ANON).unwrap();
        fill(&m, p, a, 4 * PAGE, 3);
        let used = m.phys().frames_used();
        let (c, _) = m.fork_with(p, policy).unwrap();
        m.exit(c).unwrap();
        check(&m, "after the child's exit");
        assert_eq!(m.phys().frames_used(), used, "{policy:?}: the child's frames are free");
        assert!(all(&m, p, a, 4 * PAGE, 3));
        finish(&m);
    }
}

/// From gVisor test/syscalls/linux/fork.cc: ForkTest.Multi (and ExitCode) —
/// two children, exiting in either order.
#[test]
fn gvisor_fork_multi() {
    for policy in POLICIES {
        let m = machine();
        let p = m.spawn().unwrap();
        let a = m.mmap(p, 0, 2 * PAGE, RW, ANON).unwrap();
        fill(&m, p, a, 2 * PAGE, 1);
        let (c1, _) = m.fork_with(p, policy).unwrap();
        let (c2, _) = m.fork_with(p, policy).unwrap();
        wr(&m, c1, a, &[11]);
        wr(&m, c2, a, &[12]);
        assert_eq!(rd(&m, p, a, 1), [1]);
        m.exit(c1).unwrap();
        assert_eq!(rd(&m, c2, a, 2), [12, 1], "{policy:?}");
        m.exit(c2).unwrap();
        assert_eq!(m.pids(), vec![p]);
        check(&m, "after both children");
        finish(&m);
    }
}

/// From gVisor test/syscalls/linux/fork.cc: ForkTest.SharedMapping — a
/// store by the parent after fork to a MAP_SHARED page is seen by the child.
#[test]
fn gvisor_fork_shared_mapping() {
    for policy in POLICIES {
        let m = machine();
        let p = m.spawn().unwrap();
        let s = m.mmap(p, 0, PAGE, RW, SHANON).unwrap();
        let (c, _) = m.fork_with(p, policy).unwrap();
        assert_eq!(rd(&m, p, s, 1), [0]);
        wr(&m, p, s, &[1]);
        assert_eq!(rd(&m, c, s, 1), [1], "{policy:?}");
        finish(&m);
    }
}

/// From gVisor test/syscalls/linux/fork.cc: ForkTest.PrivateMapping — a
/// store by the parent after fork to a MAP_PRIVATE page is not seen by the child.
#[test]
fn gvisor_fork_private_mapping() {
    for policy in POLICIES {
        let m = machine();
        let p = m.spawn().unwrap();
        let a = m.mmap(p, 0, PAGE, RW, ANON).unwrap();
        let (c, _) = m.fork_with(p, policy).unwrap();
        assert_eq!(rd(&m, p, a, 1), [0]);
        wr(&m, p, a, &[1]);
        assert_eq!(rd(&m, c, a, 1), [0], "{policy:?}");
        finish(&m);
    }
}

/// From gVisor test/syscalls/linux/fork.cc: ForkTest.Mmap — a child can mmap
/// (and the mapping is its own).
#[test]
fn gvisor_fork_mmap() {
    for policy in POLICIES {
        let m = machine();
        let p = m.spawn().unwrap();
        let a = m.mmap(p, 0, PAGE, RW, ANON).unwrap();
        wr(&m, p, a, &[1]);
        let (c, _) = m.fork_with(p, policy).unwrap();
        let b = m.mmap(c, 0, PAGE, R, ANON).unwrap();
        assert!(mapped(&m, c, b));
        assert!(!mapped(&m, p, b), "{policy:?}");
        finish(&m);
    }
}

/// From gVisor test/syscalls/linux/fork.cc: ForkTest.PrivateMemory — a
/// counter incremented by a child and again by a grandchild: each process
/// sees its own value (0, 1, 2).
#[test]
fn gvisor_fork_private_memory() {
    for policy in POLICIES {
        let m = machine();
        let p = m.spawn().unwrap();
        let a = m.mmap(p, 0, PAGE, RW, ANON).unwrap();
        let get = |pid| u32::from_le_bytes(rd(&m, pid, a + 64, 4).try_into().unwrap());
        let inc = |pid| wr(&m, pid, a + 64, &(get(pid) + 1).to_le_bytes());
        wr(&m, p, a, &[9]); // the page exists before the first fork
        let (c1, _) = m.fork_with(p, policy).unwrap();
        inc(c1);
        let (c2, _) = m.fork_with(c1, policy).unwrap();
        inc(c2);
        assert_eq!(get(c2), 2, "{policy:?}");
        m.exit(c2).unwrap();
        assert_eq!(get(c1), 1, "{policy:?}");
        m.exit(c1).unwrap();
        assert_eq!(get(p), 0, "{policy:?}");
        finish(&m);
    }
}

/// From gVisor test/syscalls/linux/fork.cc: ForkTest.COWSegment — a buffer
/// the kernel fills must stay coherent across COW: the parent's CPU cached a
/// translation of its page, a fork write-protects it, a store to the other
/// half of the page copies it, then the "kernel" (another CPU) writes the
/// buffer; the parent's CPU must read those bytes, not the old frame's.
#[test]
fn gvisor_fork_cow_segment() {
    for policy in POLICIES {
        let m = machine();
        let p = m.spawn().unwrap();
        let a = m.mmap(p, 0, PAGE, RW, ANON).unwrap();
        let (read_buf, touch) = (a, a + PAGE / 2);
        let mut cpu = m.cpu(0).unwrap();
        cpu.switch_to(p).unwrap();
        cpu.store_u64(read_buf, 0).unwrap();
        cpu.store_u64(read_buf, 0).unwrap(); // cached writable
        let (c, _) = m.fork_with(p, policy).unwrap();
        cpu.store_u64(touch, 42).unwrap(); // COW
        m.write(p, read_buf, &[b'a'; 1024]).unwrap().unwrap(); // on CPU 1
        let mut got = vec![0u8; 1024];
        cpu.read(read_buf, &mut got).unwrap();
        assert!(got.iter().all(|&b| b == b'a'), "{policy:?}: stale frame");
        drop(cpu);
        assert!(all(&m, c, a, PAGE, 0), "{policy:?}: the child sees none of it");
        finish(&m);
    }
}

// ---------------------------------------------------------------- madvise.cc

/// From gVisor test/syscalls/linux/madvise.cc: MadviseDontneedTest.ZerosPrivateAnonPage —
/// MADV_DONTNEED zeroes a private anonymous page, also for a CPU that
/// cached its translation.
#[test]
fn gvisor_madvise_dontneed_zeros_private_anon_page() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, PAGE, RW, ANON).unwrap();
    assert!(all(&m, p, a, PAGE, 0));
    fill(&m, p, a, PAGE, 1);
    let mut cpu = m.cpu(0).unwrap();
    cpu.switch_to(p).unwrap();
    assert_eq!(cpu.load_u64(a).unwrap(), 0x0101_0101_0101_0101);
    cpu.store_u64(a + 8, 0x0101_0101_0101_0101).unwrap();
    m.madvise(p, a, PAGE, MADV_DONTNEED).unwrap();
    assert_eq!(cpu.load_u64(a).unwrap(), 0);
    assert_eq!(cpu.load_u64(a + 8).unwrap(), 0);
    drop(cpu);
    assert!(all(&m, p, a, PAGE, 0));
    finish(&m);
}

/// From gVisor test/syscalls/linux/madvise.cc: MadviseDontneedTest.ZerosCOWAnonPageInCallerOnly —
/// MADV_DONTNEED in a forked child zeroes the child's page only.
#[test]
fn gvisor_madvise_dontneed_zeros_cow_anon_page_in_caller_only() {
    for policy in POLICIES {
        let m = machine();
        let p = m.spawn().unwrap();
        let a = m.mmap(p, 0, PAGE, RW, ANON).unwrap();
        fill(&m, p, a, PAGE, 2);
        let (c, _) = m.fork_with(p, policy).unwrap();
        assert!(all(&m, c, a, PAGE, 2));
        m.madvise(c, a, PAGE, MADV_DONTNEED).unwrap();
        assert!(all(&m, c, a, PAGE, 0), "{policy:?}: child zeroed");
        assert!(all(&m, p, a, PAGE, 2), "{policy:?}: parent unaffected");
        fill(&m, c, a, PAGE, 5);
        assert!(all(&m, p, a, PAGE, 2), "{policy:?}");
        finish(&m);
    }
}

/// From gVisor test/syscalls/linux/madvise.cc: MadviseDontneedTest.DoesNotModifySharedAnonPage —
/// MADV_DONTNEED leaves a shared anonymous page's bytes.
#[test]
fn gvisor_madvise_dontneed_does_not_modify_shared_anon_page() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, PAGE, RW, SHANON).unwrap();
    fill(&m, p, a, PAGE, 3);
    m.madvise(p, a, PAGE, MADV_DONTNEED).unwrap();
    assert!(all(&m, p, a, PAGE, 3));
    finish(&m);
}

/// From gVisor test/syscalls/linux/madvise.cc: MadviseDontneedTest.CleansPrivateFilePage —
/// MADV_DONTNEED drops the private copy: the page is the file's again.
#[test]
fn gvisor_madvise_dontneed_cleans_private_file_page() {
    let m = machine();
    let (fd, f) = open(&m, &[4u8; PAGE as usize], true);
    let p = m.spawn().unwrap();
    let a = m.mmap_fd(p, 0, PAGE, RW, MAP_PRIVATE, fd, 0).unwrap();
    assert!(all(&m, p, a, PAGE, 4));
    fill(&m, p, a, PAGE, 5);
    assert!(all(&m, p, a, PAGE, 5));
    m.madvise(p, a, PAGE, MADV_DONTNEED).unwrap();
    assert!(all(&m, p, a, PAGE, 4), "checked on the host");
    finish(&m);
    assert_eq!(f.contents(), vec![4u8; PAGE as usize]);
}

/// From gVisor test/syscalls/linux/madvise.cc: MadviseDontneedTest.DoesNotModifySharedFilePage —
/// MADV_DONTNEED leaves a shared file page's bytes (checked on the host),
/// and the stores still reach the file.
#[test]
fn gvisor_madvise_dontneed_does_not_modify_shared_file_page() {
    let m = machine();
    let (fd, f) = open(&m, &[6u8; PAGE as usize], true);
    let p = m.spawn().unwrap();
    let a = m.mmap_fd(p, 0, PAGE, RW, MAP_SHARED, fd, 0).unwrap();
    assert!(all(&m, p, a, PAGE, 6));
    fill(&m, p, a, PAGE, 7);
    m.madvise(p, a, PAGE, MADV_DONTNEED).unwrap();
    assert!(all(&m, p, a, PAGE, 7));
    finish(&m);
    assert_eq!(f.contents(), vec![7u8; PAGE as usize], "the dirty page is written back");
}

/// From gVisor test/syscalls/linux/madvise.cc: MadviseDontneedTest.IgnoresPermissions —
/// MADV_DONTNEED of PROT_NONE memory succeeds.
#[test]
fn gvisor_madvise_dontneed_ignores_permissions() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, PAGE, NONE, ANON).unwrap();
    assert_eq!(m.madvise(p, a, PAGE, MADV_DONTNEED), Ok(()));
    finish(&m);
}

/// gVisor's `MadviseDontneedHugePageSubrangeTest`: `huge` 2 MiB-aligned
/// blocks (a leaf page table each in vmlab) filled with 9, MADV_DONTNEED of
/// `[start, end)`: zeros inside, 9 outside. Done in a fresh process, then
/// in a child forked by each policy (the parent keeps every byte).
fn dontneed_subrange(huge: u64, start: u64, end: u64) {
    let len = huge * HUGE;
    let check_range = |m: &Machine, pid: Pid, a: u64, inside: u8, what: &str| {
        let got = rd(m, pid, a, len as usize);
        for (i, &b) in got.iter().enumerate() {
            let i = i as u64;
            let want = if (start..end).contains(&i) { inside } else { 9 };
            assert_eq!(b, want, "{what}: at offset {i:#x} of [{start:#x}, {end:#x})");
        }
    };
    let setup = |m: &Machine| {
        let p = m.spawn().unwrap();
        let a = (hole(m, p, (len + HUGE) / PAGE) + HUGE - 1) & !(HUGE - 1);
        m.mmap(p, a, len, RW, ANON | MAP_FIXED).unwrap();
        fill(m, p, a, len, 9);
        (p, a)
    };
    let m = machine();
    let (p, a) = setup(&m);
    m.madvise(p, a + start, end - start, MADV_DONTNEED).unwrap();
    check(&m, "after MADV_DONTNEED");
    check_range(&m, p, a, 0, "no fork");
    finish(&m);
    for policy in POLICIES {
        let m = machine();
        let (p, a) = setup(&m);
        let (c, _) = m.fork_with(p, policy).unwrap();
        m.madvise(c, a + start, end - start, MADV_DONTNEED).unwrap();
        check(&m, "after MADV_DONTNEED in the child");
        check_range(&m, c, a, 0, &format!("{policy:?} child"));
        check_range(&m, p, a, 9, &format!("{policy:?} parent"));
        finish(&m);
    }
}

/// From gVisor test/syscalls/linux/madvise.cc: MadviseDontneedHugePageSubrangeTest.OneHugePageWhole.
#[test]
fn gvisor_madvise_dontneed_huge_page_subrange_one_huge_page_whole() {
    dontneed_subrange(1, 0, HUGE);
}

/// From gVisor test/syscalls/linux/madvise.cc: MadviseDontneedHugePageSubrangeTest.OneHugePagePartial.
#[test]
fn gvisor_madvise_dontneed_huge_page_subrange_one_huge_page_partial() {
    dontneed_subrange(1, HUGE / 4, HUGE * 3 / 4);
}

/// From gVisor test/syscalls/linux/madvise.cc: MadviseDontneedHugePageSubrangeTest.TwoHugePagesPartialStart.
#[test]
fn gvisor_madvise_dontneed_huge_page_subrange_two_huge_pages_partial_start() {
    dontneed_subrange(2, HUGE / 2, HUGE);
}

/// From gVisor test/syscalls/linux/madvise.cc: MadviseDontneedHugePageSubrangeTest.TwoHugePagesPartialEnd.
#[test]
fn gvisor_madvise_dontneed_huge_page_subrange_two_huge_pages_partial_end() {
    dontneed_subrange(2, HUGE, HUGE * 3 / 2);
}

/// From gVisor test/syscalls/linux/madvise.cc: MadviseDontneedHugePageSubrangeTest.TwoHugePagesPartialStartAndEnd.
#[test]
fn gvisor_madvise_dontneed_huge_page_subrange_two_huge_pages_partial_start_and_end() {
    dontneed_subrange(2, HUGE / 2, HUGE * 3 / 2);
}

/// From gVisor test/syscalls/linux/madvise.cc: MadviseDontneedHugePageSubrangeTest.ThreeHugePagesPartialStart.
#[test]
fn gvisor_madvise_dontneed_huge_page_subrange_three_huge_pages_partial_start() {
    dontneed_subrange(3, HUGE / 2, HUGE * 2);
}

/// From gVisor test/syscalls/linux/madvise.cc: MadviseDontneedHugePageSubrangeTest.ThreeHugePagesPartialEnd.
#[test]
fn gvisor_madvise_dontneed_huge_page_subrange_three_huge_pages_partial_end() {
    dontneed_subrange(3, HUGE, HUGE * 5 / 2);
}

/// From gVisor test/syscalls/linux/madvise.cc: MadviseDontneedHugePageSubrangeTest.ThreeHugePagesPartialStartAndEnd.
#[test]
fn gvisor_madvise_dontneed_huge_page_subrange_three_huge_pages_partial_start_and_end() {
    dontneed_subrange(3, HUGE / 2, HUGE * 5 / 2);
}

/// From gVisor test/syscalls/linux/madvise.cc: MadviseDontforkTest.AddressLength —
/// an unaligned address is EINVAL; length 0 succeeds; a length that wraps
/// when rounded up is EINVAL; an unaligned length is rounded up (all
/// checked on the host).
#[test]
fn gvisor_madvise_dontfork_address_length() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, PAGE, NONE, ANON).unwrap();
    assert_eq!(m.madvise(p, a + 1, PAGE, MADV_DONTFORK), Err(Errno::EINVAL));
    assert_eq!(m.madvise(p, a, 0, MADV_DONTFORK), Ok(()));
    assert_eq!(m.madvise(p, 0, u64::MAX - PAGE / 2, MADV_DONTFORK), Err(Errno::EINVAL));
    assert_eq!(m.madvise(p, a, 1, MADV_DONTFORK), Ok(()));
    assert_eq!(m.madvise(p, a, PAGE, MADV_DONTFORK), Ok(()));
    // The page is now not inherited.
    let c = m.fork(p).unwrap();
    assert!(!mapped(&m, c, a));
    finish(&m);
}

/// From gVisor test/syscalls/linux/madvise.cc: MadviseDontforkTest.DontforkShared —
/// of two shared file pages, the MADV_DONTFORK one is not in the child; the
/// other is, and the child's store to it is seen by the parent.
#[test]
fn gvisor_madvise_dontfork_shared() {
    for policy in POLICIES {
        let m = machine();
        let (fd, f) = open(&m, &[2u8; 2 * PAGE as usize], true);
        let p = m.spawn().unwrap();
        let a = m.mmap_fd(p, 0, 2 * PAGE, RW, MAP_SHARED, fd, 0).unwrap();
        let (ms1, ms2) = (a, a + PAGE);
        m.madvise(p, ms2, PAGE, MADV_DONTFORK).unwrap();
        let (c, _) = m.fork_with(p, policy).unwrap();
        assert!(mapped(&m, c, ms1));
        assert!(all(&m, c, ms1, PAGE, 2));
        fill(&m, c, ms1, PAGE, 1);
        assert!(all(&m, c, ms1, PAGE, 1));
        assert!(!mapped(&m, c, ms2), "{policy:?}");
        segv_maperr(read_fault(&m, c, ms2), ms2);
        m.exit(c).unwrap();
        assert!(all(&m, p, ms1, PAGE, 1), "{policy:?}: the child's store");
        assert!(all(&m, p, ms2, PAGE, 2));
        finish(&m);
        let file = f.contents();
        assert!(file[..PAGE as usize].iter().all(|&b| b == 1));
        assert!(file[PAGE as usize..].iter().all(|&b| b == 2));
    }
}

/// From gVisor test/syscalls/linux/madvise.cc: MadviseDontforkTest.DontforkAnonPrivate —
/// of three private pages, the MADV_DONTFORK middle one is not in the
/// child; the child's stores to the others stay its own.
#[test]
fn gvisor_madvise_dontfork_anon_private() {
    for policy in POLICIES {
        let m = machine();
        let p = m.spawn().unwrap();
        let a = m.mmap(p, 0, 3 * PAGE, RW, ANON).unwrap();
        let (mp1, mp2, mp3) = (a, a + PAGE, a + 2 * PAGE);
        m.madvise(p, mp2, PAGE, MADV_DONTFORK).unwrap();
        for (i, pg) in [mp1, mp2, mp3].into_iter().enumerate() {
            assert!(all(&m, p, pg, PAGE, 0));
            fill(&m, p, pg, PAGE, i as u8 + 1);
        }
        let (c, _) = m.fork_with(p, policy).unwrap();
        assert!(all(&m, c, mp1, PAGE, 1), "{policy:?}");
        fill(&m, c, mp1, PAGE, 11);
        assert!(!mapped(&m, c, mp2), "{policy:?}");
        segv_maperr(read_fault(&m, c, mp2), mp2);
        assert!(all(&m, c, mp3, PAGE, 3), "{policy:?}");
        fill(&m, c, mp3, PAGE, 13);
        assert!(all(&m, c, mp1, PAGE, 11));
        m.exit(c).unwrap();
        for (i, pg) in [mp1, mp2, mp3].into_iter().enumerate() {
            assert!(all(&m, p, pg, PAGE, i as u8 + 1), "{policy:?}: parent page {i}");
        }
        finish(&m);
    }
}

// ---------------------------------------------------------------- mlock.cc (with MAP_LOCKED)

/// From gVisor test/syscalls/linux/mlock.cc: MlockTest.MsyncInvalidate —
/// MS_INVALIDATE over locked memory is EBUSY, with MS_ASYNC or MS_SYNC.
#[test]
fn gvisor_mlock_msync_invalidate() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, PAGE, RW, ANON | MAP_LOCKED).unwrap();
    assert_eq!(m.msync(p, a, PAGE, MS_ASYNC | MS_INVALIDATE), Err(Errno::EBUSY));
    assert_eq!(m.msync(p, a, PAGE, MS_SYNC | MS_INVALIDATE), Err(Errno::EBUSY));
    finish(&m);
}

/// From gVisor test/syscalls/linux/mlock.cc: MlockTest.MadviseDontneed —
/// MADV_DONTNEED of locked memory is EINVAL (checked on the host), and the
/// bytes stay.
#[test]
fn gvisor_mlock_madvise_dontneed() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, PAGE, RW, ANON | MAP_LOCKED).unwrap();
    fill(&m, p, a, PAGE, 8);
    assert_eq!(m.madvise(p, a, PAGE, MADV_DONTNEED), Err(Errno::EINVAL));
    assert!(all(&m, p, a, PAGE, 8));
    finish(&m);
}

/// From gVisor test/syscalls/linux/mlock.cc: MlockTest.Fork — locks are not
/// inherited: the child's copy of a locked mapping is not locked (Linux
/// `dup_mmap` clears VM_LOCKED; checked on the host: the child's msync
/// MS_INVALIDATE succeeds), the parent's still is.
#[test]
fn gvisor_mlock_fork() {
    for policy in POLICIES {
        let m = machine();
        let p = m.spawn().unwrap();
        let a = m.mmap(p, 0, PAGE, RW, ANON | MAP_LOCKED).unwrap();
        wr(&m, p, a, &[1]);
        assert!(locked(&m, p, a));
        let (c, _) = m.fork_with(p, policy).unwrap();
        assert!(!locked(&m, c, a), "{policy:?}: the child's copy is locked");
        assert!(locked(&m, p, a));
        finish(&m);
    }
}

/// From gVisor test/syscalls/linux/mlock.cc: MremapLockedTest.Basic — a
/// locked mapping grown and moved by mremap is still locked, all of it
/// (checked on the host).
#[test]
fn gvisor_mlock_mremap_locked_basic() {
    let m = machine();
    let p = m.spawn().unwrap();
    let a = m.mmap(p, 0, PAGE, RW, ANON | MAP_LOCKED).unwrap();
    wr(&m, p, a, b"locked");
    // Something right after it, so that growing must move.
    m.mmap(p, a + PAGE, PAGE, NONE, ANON | MAP_FIXED).unwrap();
    let n = m.mremap(p, a, PAGE, 2 * PAGE, MREMAP_MAYMOVE, 0).unwrap();
    assert_ne!(n, a);
    assert!(locked(&m, p, n));
    assert!(locked(&m, p, n + PAGE));
    assert_eq!(m.msync(p, n, 2 * PAGE, MS_ASYNC | MS_INVALIDATE), Err(Errno::EBUSY));
    assert_eq!(rd(&m, p, n, 6), b"locked");
    finish(&m);
}

// ---------------------------------------------------------------- mremap.cc

/// The mappings gVisor's `MremapParamTest` runs over. The source maps
/// PROT_NONE; here the pages are RW with a tag in each, so the tests also
/// see that bytes move with the mapping.
const MREMAP_PARAMS: [u32; 2] = [MAP_PRIVATE, MAP_SHARED];

/// Map `pages` anonymous pages of type `fl` (RW) at `addr` (0: anywhere)
/// and tag page i with the byte `tag + i`.
fn tagged(m: &Machine, p: Pid, addr: u64, pages: u64, fl: u32, tag: u8) -> u64 {
    let flags = fl | MAP_ANONYMOUS | if addr != 0 { MAP_FIXED } else { 0 };
    let a = m.mmap(p, addr, pages * PAGE, RW, flags).unwrap();
    for i in 0..pages {
        wr(m, p, a + i * PAGE, &[tag + i as u8]);
    }
    a
}

fn byte(m: &Machine, p: Pid, addr: u64) -> u8 {
    rd(m, p, addr, 1)[0]
}

/// From gVisor test/syscalls/linux/mremap.cc: MremapParamTest.Noop — same
/// size, no flags: the same address, still mapped.
#[test]
fn gvisor_mremap_noop() {
    for fl in MREMAP_PARAMS {
        let m = machine();
        let p = m.spawn().unwrap();
        let a = m.mmap(p, 0, PAGE, NONE, fl | MAP_ANONYMOUS).unwrap();
        assert_eq!(m.mremap(p, a, PAGE, PAGE, 0, 0), Ok(a), "{}", flags_name(fl));
        assert!(mapped(&m, p, a));
        let b = tagged(&m, p, 0, 1, fl, 10);
        assert_eq!(m.mremap(p, b, PAGE, PAGE, 0, 0), Ok(b));
        assert_eq!(byte(&m, p, b), 10);
        finish(&m);
    }
}

/// From gVisor test/syscalls/linux/mremap.cc: MremapParamTest.InPlace_ShrinkingWholeVMA —
/// 2 pages shrunk to 1 in place: the second page is gone.
#[test]
fn gvisor_mremap_in_place_shrinking_whole_vma() {
    for fl in MREMAP_PARAMS {
        let m = machine();
        let p = m.spawn().unwrap();
        let a = tagged(&m, p, 0, 2, fl, 10);
        assert_eq!(m.mremap(p, a, 2 * PAGE, PAGE, 0, 0), Ok(a), "{}", flags_name(fl));
        assert!(mapped(&m, p, a));
        assert!(!mapped(&m, p, a + PAGE));
        assert_eq!(byte(&m, p, a), 10);
        segv_maperr(read_fault(&m, p, a + PAGE), a + PAGE);
        finish(&m);
    }
}

/// From gVisor test/syscalls/linux/mremap.cc: MremapParamTest.InPlace_ShrinkingPartialVMA —
/// the first 2 of 3 pages shrunk to 1: a hole in the middle, the third page stays.
#[test]
fn gvisor_mremap_in_place_shrinking_partial_vma() {
    for fl in MREMAP_PARAMS {
        let m = machine();
        let p = m.spawn().unwrap();
        let a = tagged(&m, p, 0, 3, fl, 10);
        assert_eq!(m.mremap(p, a, 2 * PAGE, PAGE, 0, 0), Ok(a), "{}", flags_name(fl));
        assert!(mapped(&m, p, a));
        assert!(!mapped(&m, p, a + PAGE));
        assert!(mapped(&m, p, a + 2 * PAGE));
        assert_eq!((byte(&m, p, a), byte(&m, p, a + 2 * PAGE)), (10, 12));
        finish(&m);
    }
}

/// From gVisor test/syscalls/linux/mremap.cc: MremapParamTest.InPlace_ShrinkingAcrossVMAs —
/// without flags, old and new sizes may span two VMAs (checked on the host).
#[test]
fn gvisor_mremap_in_place_shrinking_across_vmas() {
    for fl in MREMAP_PARAMS {
        let m = machine();
        let p = m.spawn().unwrap();
        let a = m.mmap(p, 0, 3 * PAGE, R, fl | MAP_ANONYMOUS).unwrap();
        m.mprotect(p, a, PAGE, NONE).unwrap();
        assert_eq!(m.mremap(p, a, 3 * PAGE, 2 * PAGE, 0, 0), Ok(a), "{}", flags_name(fl));
        assert!(mapped(&m, p, a));
        assert!(mapped(&m, p, a + PAGE));
        assert!(!mapped(&m, p, a + 2 * PAGE));
        let s = |x: &str| x.to_string();
        let t = if fl == MAP_SHARED {
            ["---s", "r--s"]
        } else {
            ["---p", "r--p"]
        };
        assert_eq!(
            window(&m, p, a, a + 3 * PAGE),
            vec![(a, a + PAGE, s(t[0])), (a + PAGE, a + 2 * PAGE, s(t[1]))]
        );
        finish(&m);
    }
}

/// From gVisor test/syscalls/linux/mremap.cc: MremapParamTest.InPlace_ExpansionSuccess —
/// the first page grows back into the hole left by unmapping the second;
/// extended: the regrown page of shared memory shows the bytes stored there
/// before the munmap, private memory a fresh zero page (checked on the host).
#[test]
fn gvisor_mremap_in_place_expansion_success() {
    for fl in MREMAP_PARAMS {
        let m = machine();
        let p = m.spawn().unwrap();
        let a = tagged(&m, p, 0, 2, fl, 10);
        m.munmap(p, a + PAGE, PAGE).unwrap();
        assert_eq!(m.mremap(p, a, PAGE, 2 * PAGE, 0, 0), Ok(a), "{}", flags_name(fl));
        assert!(mapped(&m, p, a));
        assert!(mapped(&m, p, a + PAGE));
        assert_eq!(line(&m, p, a).unwrap().end, a + 2 * PAGE, "one VMA");
        assert_eq!(byte(&m, p, a), 10);
        let want = if fl == MAP_SHARED { 11 } else { 0 };
        assert_eq!(byte(&m, p, a + PAGE), want, "{}", flags_name(fl));
        finish(&m);
    }
}

/// From gVisor test/syscalls/linux/mremap.cc: MremapParamTest.InPlace_ExpansionFailure —
/// growing in place into a mapped page is ENOMEM, and nothing changes.
#[test]
fn gvisor_mremap_in_place_expansion_failure() {
    for fl in MREMAP_PARAMS {
        let m = machine();
        let p = m.spawn().unwrap();
        let a = tagged(&m, p, 0, 3, fl, 10);
        m.munmap(p, a + PAGE, PAGE).unwrap();
        let before = m.maps(p).unwrap();
        assert_eq!(
            m.mremap(p, a, PAGE, 3 * PAGE, 0, 0),
            Err(Errno::ENOMEM),
            "{}",
            flags_name(fl)
        );
        assert_eq!(m.maps(p).unwrap(), before);
        assert!(mapped(&m, p, a));
        assert!(!mapped(&m, p, a + PAGE));
        assert!(mapped(&m, p, a + 2 * PAGE));
        assert_eq!((byte(&m, p, a), byte(&m, p, a + 2 * PAGE)), (10, 12));
        finish(&m);
    }
}

/// From gVisor test/syscalls/linux/mremap.cc: MremapParamTest.MayMove_Expansion —
/// growing into a mapped page with MREMAP_MAYMOVE moves the mapping; the
/// old first page and the hole are unmapped, the old third page stays.
/// Extended: the bytes move, a CPU that cached the old translation faults
/// there, and for shared memory the moved mapping's third page is object
/// page 2, the same page the old third page maps (checked on the host).
#[test]
fn gvisor_mremap_may_move_expansion() {
    for fl in MREMAP_PARAMS {
        let m = machine();
        let p = m.spawn().unwrap();
        let a = tagged(&m, p, 0, 3, fl, 10);
        m.munmap(p, a + PAGE, PAGE).unwrap();
        let mut cpu = m.cpu(0).unwrap();
        cpu.switch_to(p).unwrap();
        assert_eq!(cpu.load_u64(a).unwrap() & 0xff, 10);
        let n = m.mremap(p, a, PAGE, 3 * PAGE, MREMAP_MAYMOVE, 0).unwrap();
        assert_ne!(n, a, "{}", flags_name(fl));
        segv_maperr(cpu.load_u64(a).unwrap_err(), a);
        assert_eq!(cpu.load_u64(n).unwrap() & 0xff, 10);
        drop(cpu);
        assert!(!mapped(&m, p, a));
        assert!(!mapped(&m, p, a + PAGE));
        assert!(mapped(&m, p, a + 2 * PAGE));
        for i in 0..3 {
            assert!(mapped(&m, p, n + i * PAGE));
        }
        if fl == MAP_SHARED {
            assert_eq!(byte(&m, p, n + 2 * PAGE), 12);
            wr(&m, p, n + 2 * PAGE + 1, b"z");
            assert_eq!(rd(&m, p, a + 2 * PAGE + 1, 1), b"z");
        } else {
            assert_eq!(byte(&m, p, n + 2 * PAGE), 0);
        }
        finish(&m);
    }
}

/// From gVisor test/syscalls/linux/mremap.cc: MremapParamTest.Fixed_SourceAndDestinationCannotOverlap —
/// MREMAP_FIXED onto the source itself: EINVAL, still mapped.
#[test]
fn gvisor_mremap_fixed_source_and_destination_cannot_overlap() {
    for fl in MREMAP_PARAMS {
        let m = machine();
        let p = m.spawn().unwrap();
        let a = tagged(&m, p, 0, 1, fl, 10);
        assert_eq!(
            m.mremap(p, a, PAGE, PAGE, MOVE_FIXED, a),
            Err(Errno::EINVAL),
            "{}",
            flags_name(fl)
        );
        assert!(mapped(&m, p, a));
        assert_eq!(byte(&m, p, a), 10);
        finish(&m);
    }
}

/// From gVisor test/syscalls/linux/mremap.cc: MremapParamTest.Fixed_SameSize —
/// moved into a hole: the source is gone, the destination holds its bytes.
#[test]
fn gvisor_mremap_fixed_same_size() {
    for fl in MREMAP_PARAMS {
        let m = machine();
        let p = m.spawn().unwrap();
        let src = tagged(&m, p, 0, 1, fl, 10);
        let dst = tagged(&m, p, 0, 1, fl, 20);
        m.munmap(p, dst, PAGE).unwrap();
        assert_eq!(
            m.mremap(p, src, PAGE, PAGE, MOVE_FIXED, dst),
            Ok(dst),
            "{}",
            flags_name(fl)
        );
        assert!(!mapped(&m, p, src));
        assert!(mapped(&m, p, dst));
        assert_eq!(byte(&m, p, dst), 10);
        finish(&m);
    }
}

/// From gVisor test/syscalls/linux/mremap.cc: MremapParamTest.Fixed_SameSize_Unmapping —
/// as Fixed_SameSize, but mremap itself unmaps the mapped destination.
#[test]
fn gvisor_mremap_fixed_same_size_unmapping() {
    for fl in MREMAP_PARAMS {
        let m = machine();
        let p = m.spawn().unwrap();
        let src = tagged(&m, p, 0, 1, fl, 10);
        let dst = tagged(&m, p, 0, 1, fl, 20);
        assert_eq!(
            m.mremap(p, src, PAGE, PAGE, MOVE_FIXED, dst),
            Ok(dst),
            "{}",
            flags_name(fl)
        );
        assert!(!mapped(&m, p, src));
        assert!(mapped(&m, p, dst));
        assert_eq!(byte(&m, p, dst), 10, "the old destination is replaced");
        finish(&m);
    }
}

/// From gVisor test/syscalls/linux/mremap.cc: MremapParamTest.Fixed_ShrinkingWholeVMA —
/// 2 pages moved and shrunk to 1: nothing left at the source, one page at
/// the destination.
#[test]
fn gvisor_mremap_fixed_shrinking_whole_vma() {
    for fl in MREMAP_PARAMS {
        let m = machine();
        let p = m.spawn().unwrap();
        let src = tagged(&m, p, 0, 2, fl, 10);
        let dst = tagged(&m, p, 0, 2, fl, 20);
        m.munmap(p, dst, 2 * PAGE).unwrap();
        assert_eq!(
            m.mremap(p, src, 2 * PAGE, PAGE, MOVE_FIXED, dst),
            Ok(dst),
            "{}",
            flags_name(fl)
        );
        assert!(!mapped(&m, p, src));
        assert!(!mapped(&m, p, src + PAGE));
        assert!(mapped(&m, p, dst));
        assert!(!mapped(&m, p, dst + PAGE));
        assert_eq!(byte(&m, p, dst), 10);
        finish(&m);
    }
}

/// From gVisor test/syscalls/linux/mremap.cc: MremapParamTest.Fixed_ShrinkingPartialVMA —
/// the first 2 of 3 pages moved and shrunk to 1: the third source page stays.
#[test]
fn gvisor_mremap_fixed_shrinking_partial_vma() {
    for fl in MREMAP_PARAMS {
        let m = machine();
        let p = m.spawn().unwrap();
        let src = tagged(&m, p, 0, 3, fl, 10);
        let dst = tagged(&m, p, 0, 2, fl, 20);
        m.munmap(p, dst, 2 * PAGE).unwrap();
        assert_eq!(
            m.mremap(p, src, 2 * PAGE, PAGE, MOVE_FIXED, dst),
            Ok(dst),
            "{}",
            flags_name(fl)
        );
        assert!(!mapped(&m, p, src));
        assert!(!mapped(&m, p, src + PAGE));
        assert!(mapped(&m, p, src + 2 * PAGE));
        assert!(mapped(&m, p, dst));
        assert!(!mapped(&m, p, dst + PAGE));
        assert_eq!((byte(&m, p, dst), byte(&m, p, src + 2 * PAGE)), (10, 12));
        finish(&m);
    }
}

/// From gVisor test/syscalls/linux/mremap.cc: MremapParamTest.Fixed_ShrinkingAcrossVMAs —
/// with MREMAP_FIXED, [old_addr, old_addr + new_len) must lie in one VMA:
/// EFAULT. gVisor records that Linux had already unmapped the source's tail
/// and the destination when it failed; Linux 6.18 (the host) checks first
/// and leaves both untouched, which is what this test expects (checked on
/// the host).
#[test]
fn gvisor_mremap_fixed_shrinking_across_vmas() {
    for fl in MREMAP_PARAMS {
        let m = machine();
        let p = m.spawn().unwrap();
        // Placed apart so that no VMAs merge: src at 0..3, dst at 5..7.
        let base = hole(&m, p, 8);
        let src = m.mmap(p, base, 3 * PAGE, R, fl | MAP_ANONYMOUS | MAP_FIXED).unwrap();
        m.mprotect(p, src, PAGE, NONE).unwrap();
        let dst = m
            .mmap(p, base + 5 * PAGE, 2 * PAGE, NONE, fl | MAP_ANONYMOUS | MAP_FIXED)
            .unwrap();
        let before = m.maps(p).unwrap();
        assert_eq!(
            m.mremap(p, src, 3 * PAGE, 2 * PAGE, MOVE_FIXED, dst),
            Err(Errno::EFAULT),
            "{}",
            flags_name(fl)
        );
        assert_eq!(m.maps(p).unwrap(), before, "{}: nothing changed", flags_name(fl));
        finish(&m);
    }
}

/// From gVisor test/syscalls/linux/mremap.cc: MremapParamTest.Fixed_Expansion —
/// 1 page moved and grown to 2: both destination pages mapped. Extended:
/// the second page of private memory reads zero; of shared memory it lies
/// past the 1-page object, so it is SIGBUS (checked on the host).
#[test]
fn gvisor_mremap_fixed_expansion() {
    for fl in MREMAP_PARAMS {
        let m = machine();
        let p = m.spawn().unwrap();
        let src = tagged(&m, p, 0, 1, fl, 10);
        let dst = tagged(&m, p, 0, 2, fl, 20);
        m.munmap(p, dst, 2 * PAGE).unwrap();
        assert_eq!(
            m.mremap(p, src, PAGE, 2 * PAGE, MOVE_FIXED, dst),
            Ok(dst),
            "{}",
            flags_name(fl)
        );
        assert!(!mapped(&m, p, src));
        assert!(mapped(&m, p, dst));
        assert!(mapped(&m, p, dst + PAGE));
        assert_eq!(byte(&m, p, dst), 10);
        if fl == MAP_SHARED {
            sigbus(read_fault(&m, p, dst + PAGE), dst + PAGE);
        } else {
            assert_eq!(byte(&m, p, dst + PAGE), 0);
        }
        finish(&m);
    }
}

/// From gVisor test/syscalls/linux/mremap.cc: MremapTest.InPlace_Copy —
/// old_size 0 (duplicate a shared mapping) without MREMAP_MAYMOVE: ENOMEM.
/// Extended: of a private mapping, EINVAL (Linux 4.14, dba58d3b8c50;
/// both checked on the host).
#[test]
fn gvisor_mremap_in_place_copy() {
    let m = machine();
    let p = m.spawn().unwrap();
    let s = m.mmap(p, 0, PAGE, NONE, SHANON).unwrap();
    assert_eq!(m.mremap(p, s, 0, PAGE, 0, 0), Err(Errno::ENOMEM));
    let a = m.mmap(p, 0, PAGE, NONE, ANON).unwrap();
    assert_eq!(m.mremap(p, a, 0, PAGE, 0, 0), Err(Errno::EINVAL));
    assert_eq!(m.mremap(p, a, 0, PAGE, MREMAP_MAYMOVE, 0), Err(Errno::EINVAL));
    assert_eq!(m.maps(p).unwrap().len(), 2);
    finish(&m);
}

/// From gVisor test/syscalls/linux/mremap.cc: MremapTest.MayMove_Copy —
/// old_size 0 with MREMAP_MAYMOVE duplicates a shared mapping elsewhere;
/// the original stays, and both map the same memory (checked on the host).
#[test]
fn gvisor_mremap_may_move_copy() {
    let m = machine();
    let p = m.spawn().unwrap();
    let s = m.mmap(p, 0, PAGE, RW, SHANON).unwrap();
    wr(&m, p, s, b"x");
    let n = m.mremap(p, s, 0, PAGE, MREMAP_MAYMOVE, 0).unwrap();
    assert_ne!(n, s);
    assert!(mapped(&m, p, s));
    assert!(mapped(&m, p, n));
    assert_eq!(rd(&m, p, n, 1), b"x");
    wr(&m, p, n + 1, b"y");
    assert_eq!(rd(&m, p, s + 1, 1), b"y");
    assert_eq!(m.objects().len(), 1);
    finish(&m);
}

/// From gVisor test/syscalls/linux/mremap.cc: MremapTest.MustMove_Copy —
/// old_size 0 with MREMAP_FIXED duplicates a shared mapping over a private
/// one; both stay mapped, the destination now shows the shared memory.
#[test]
fn gvisor_mremap_must_move_copy() {
    let m = machine();
    let p = m.spawn().unwrap();
    let src = m.mmap(p, 0, PAGE, RW, SHANON).unwrap();
    wr(&m, p, src, b"x");
    let dst = m.mmap(p, 0, PAGE, RW, ANON).unwrap();
    wr(&m, p, dst, b"d");
    assert_eq!(m.mremap(p, src, 0, PAGE, MOVE_FIXED, dst), Ok(dst));
    assert!(mapped(&m, p, src));
    assert!(mapped(&m, p, dst));
    assert_eq!(line(&m, p, dst).unwrap().perms_str(), "rw-s");
    assert_eq!(rd(&m, p, dst, 1), b"x");
    wr(&m, p, dst + 1, b"y");
    assert_eq!(rd(&m, p, src + 1, 1), b"y");
    finish(&m);
}

/// From gVisor test/syscalls/linux/mremap.cc: MremapTest.ExpansionPreservesCOWPagesAndExposesNewFilePages —
/// a private file mapping of pages a, b whose second page was written (d),
/// moved and grown to 3 pages: a, d, then the file's third page c.
#[test]
fn gvisor_mremap_expansion_preserves_cow_pages_and_exposes_new_file_pages() {
    let m = machine();
    let mut data = vec![b'a'; PAGE as usize];
    data.extend(vec![b'b'; PAGE as usize]);
    data.extend(vec![b'c'; PAGE as usize]);
    let (fd, f) = open(&m, &data, true);
    let p = m.spawn().unwrap();
    let src = m.mmap_fd(p, 0, 2 * PAGE, RW, MAP_PRIVATE, fd, 0).unwrap();
    fill(&m, p, src + PAGE, PAGE, b'd');
    let dst = m.mmap(p, 0, 3 * PAGE, NONE, ANON).unwrap();
    assert_eq!(m.mremap(p, src, 2 * PAGE, 3 * PAGE, MOVE_FIXED, dst), Ok(dst));
    assert!(!mapped(&m, p, src));
    assert!(all(&m, p, dst, PAGE, b'a'));
    assert!(all(&m, p, dst + PAGE, PAGE, b'd'));
    assert!(all(&m, p, dst + 2 * PAGE, PAGE, b'c'));
    finish(&m);
    assert_eq!(f.contents(), data);
}

/// From gVisor test/syscalls/linux/mremap.cc: MremapDeathTest.SharedAnon —
/// 2 pages of shared anonymous memory shrunk to 1 in place, then moved one
/// page up and grown to 3: pages 1 and 2 are the original bytes (shrinking
/// kept the object's second page), page 3 lies past the object: SIGBUS
/// (checked on the host).
#[test]
fn gvisor_mremap_shared_anon() {
    let m = machine();
    let p = m.spawn().unwrap();
    let reserved = m.mmap(p, 0, 4 * PAGE, NONE, ANON).unwrap();
    let a = m.mmap(p, reserved, 2 * PAGE, RW, SHANON | MAP_FIXED).unwrap();
    fill(&m, p, a, PAGE, b'a');
    fill(&m, p, a + PAGE, PAGE, b'b');
    // The new address is ignored without MREMAP_FIXED.
    assert_eq!(m.mremap(p, a, 2 * PAGE, PAGE, 0, a), Ok(a));
    let n = a + PAGE;
    assert_eq!(m.mremap(p, a, PAGE, 3 * PAGE, MOVE_FIXED, n), Ok(n));
    assert!(all(&m, p, n, PAGE, b'a'));
    assert!(all(&m, p, n + PAGE, PAGE, b'b'));
    sigbus(read_fault(&m, p, n + 2 * PAGE), n + 2 * PAGE);
    finish(&m);
}
