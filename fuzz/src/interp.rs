//! The op interpreter behind the `api` fuzz target and `crates/vmlab-mm/tests/fuzz_api.rs`:
//! both include this one file with `#[path]`, so a fuzz input and a test case mean the same thing.
//!
//! An input is decoded (with `arbitrary`) into a `Scenario`: a small machine's config (a few MiB
//! of RAM so that memory runs out (with or without 4 MiB of swap and a reclaim design, so that
//! reclaim, swap-out and swap-in run inside the sequence), 2 CPUs, a fork policy, a reverse-map design (`rmap`; under
//! `private_vma` every fork is eager), sometimes a tiny `max_map_count`) and up
//! to `MAX_OPS` operations over the whole public API: spawn/fork/exec/exit, files over an
//! in-memory `BackingFile` (whose writes and reads can be made to fail and whose length can
//! change under the mappings), mmap/munmap/mprotect/mremap/madvise/msync/brk with addresses biased
//! toward mapped windows, loads/stores/reads/writes through two `Cpu` handles, and the reverse
//! map of a mapped frame (`Machine::mappings_of`, `Machine::unmap_everywhere`).
//!
//! `run` panics if vmlab-mm panics, if an invariant (`Machine::check`) breaks (checked every
//! `CHECK_EVERY` ops, on a `Check` op and at the end), if a result breaks a property asserted
//! here, or if a frame or an object is left once every process has exited and every file is
//! closed. The properties: an errno from the syscall's Linux vocabulary; an aligned address in
//! the address space from mmap/mremap, with the new range mapped and what was given up unmapped;
//! no CPU still reaching what munmap/mprotect/mremap took away (TLB shootdown); the bytes a store
//! or write left read back; two CPUs on one process seeing one memory; a child reading its
//! parent's bytes right after fork, and not the parent's later stores. A hang is a libFuzzer
//! timeout (`-timeout=10`) or, for the named regressions, a time budget.

use arbitrary::{Arbitrary, Result as ArbResult, Unstructured};
use vmlab_mm::addr::{PAGE_SIZE, TASK_SIZE};
use vmlab_mm::errno::{Errno, Fault, FaultReason, Signal};
use vmlab_mm::mm::uapi::*;
use vmlab_mm::mm::{Access, Backing, BackingFile, ForkPolicy, MemFile, VmFlags, VmaMap};
use vmlab_mm::pgtable::{LeafEntry, LeafRef, Pte};
use vmlab_mm::phys::Owner;
use vmlab_mm::system::config::ForkName;
use vmlab_mm::system::{ByteSize, Cpu, Machine, MachineConfig, Pid, RmapName};

/// Operations decoded from one input at most.
pub const MAX_OPS: usize = 256;
/// `Machine::check` runs after every this many ops (and on `Op::Check`, and at the end).
pub const CHECK_EVERY: usize = 64;
/// Live processes at most: spawn and fork beyond it are skipped.
const MAX_PROCS: usize = 6;
/// Files opened at most (open beyond it is skipped).
const MAX_FILES: usize = 6;
/// Largest file length, in pages, an input can ask for.
const MAX_FILE_PAGES: u64 = 48;
/// Longest MAP_DROPPABLE mapping an input can make (mmap's length is cut to it). Populating a
/// droppable mapping larger than RAM drops its pages as it goes and so succeeds, as on Linux, in
/// time in proportion to its length: a 4 GiB one would take minutes, a hang to the fuzzer.
const MAX_DROPPABLE_BYTES: u64 = 16 << 20;
/// Longest range MAP_POPULATE or MADV_POPULATE_* populates (the length is cut to it).
/// Populating gigabytes for read maps the zero page everywhere and fills RAM with page
/// tables, which no reclaim can take; each round of reclaim that finds nothing then costs
/// a walk of every page table under `rmap = none`: seconds for one op. (mlock is bounded
/// by RLIMIT_MEMLOCK already.)
const MAX_POPULATE_BYTES: u64 = 64 << 20;
/// A pid no process ever has.
const NO_PID: Pid = 999_999;
/// x86 `MAP_32BIT`, `MAP_ABOVE4G`, `MAP_HUGE_2MB` (not all in `uapi`).
const MAP_32BIT: u32 = 0x40;
const MAP_ABOVE4G: u32 = 0x80;
const MAP_HUGE_2MB: u32 = 21 << 26;

// ---------------------------------------------------------------------------------------------
// The input
// ---------------------------------------------------------------------------------------------

/// One decoded input.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub setup: Setup,
    pub ops: Vec<Op>,
}

impl<'a> Arbitrary<'a> for Scenario {
    fn arbitrary(u: &mut Unstructured<'a>) -> ArbResult<Self> {
        let setup = Setup::arbitrary(u)?;
        let mut ops = Vec::new();
        while !u.is_empty() && ops.len() < MAX_OPS {
            ops.push(Op::arbitrary(u)?);
        }
        Ok(Scenario { setup, ops })
    }
}

impl Scenario {
    /// Decode `data` (every byte string is a valid input).
    pub fn from_bytes(data: &[u8]) -> Scenario {
        Scenario::arbitrary_take_rest(Unstructured::new(data)).expect("decoding never fails")
    }
}

/// The machine and what exists before the first op. Its `Debug` shows the settings the
/// machine runs with (`fork` is forced to `Eager` under `rmap = PrivateVma`, and says so).
#[derive(Arbitrary, Clone)]
pub struct Setup {
    /// RAM: 1 to 4 MiB, so that memory runs out.
    pub ram: u8,
    /// TLB slots: 2^(n % 7), 1 to 64, so that entries collide.
    pub tlb_log2: u8,
    pub fork: ForkSel,
    /// Below 64: `max_map_count` = 1 + n % 24; else Linux's default.
    pub max_map_count: u8,
    /// Files open before the first op: n % 3.
    pub files: u8,
    /// Mappings made before the first op, one per bit (see `premap`).
    pub premap: u8,
    /// The reverse-map design: `RMAPS[n % 5]` (0, what inputs from before this byte
    /// existed mean, is `Object`).
    pub rmap: u8,
    /// Swap and reclaim: bit 0 clear, no swap (what inputs from before this byte
    /// mean); set, 4 MiB of in-memory swap, so reclaim and swap-in run inside the
    /// sequence. Bits 1-3: the reclaim design, `ReclaimName::ALL[n % len]`.
    pub swap: u8,
}

/// The reverse-map designs, by `Setup::rmap`.
const RMAPS: [RmapName; 5] = [
    RmapName::Object,
    RmapName::PteChain,
    RmapName::PtePool,
    RmapName::PrivateVma,
    RmapName::None,
];

impl std::fmt::Debug for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fork = if self.fork_forced() {
            format!(
                "Eager (forced by rmap PrivateVma; the input's byte says {:?})",
                self.fork
            )
        } else {
            format!("{:?}", self.fork)
        };
        f.debug_struct("Setup")
            .field("ram", &self.ram)
            .field("tlb_log2", &self.tlb_log2)
            .field("fork", &format_args!("{fork}"))
            .field("max_map_count", &self.max_map_count)
            .field("files", &self.files)
            .field("premap", &self.premap)
            .field("rmap", &self.rmap_name())
            .field("swap", &self.swap_size())
            .field("reclaim", &self.reclaim_name())
            .finish()
    }
}

impl Setup {
    /// Swap bytes (see `swap`).
    pub fn swap_size(&self) -> u64 {
        if self.swap & 1 == 0 {
            0
        } else {
            4 << 20
        }
    }

    /// The reclaim design (see `swap`).
    pub fn reclaim_name(&self) -> vmlab_mm::system::config::ReclaimName {
        let all = vmlab_mm::system::config::ReclaimName::ALL;
        let name = all[(self.swap as usize >> 1) % all.len()];
        let mut c = MachineConfig::default();
        c.apply_pairs(&format!("reclaim={name}")).expect("a listed name");
        c.reclaim
    }

    /// The reverse-map design the machine runs.
    pub fn rmap_name(&self) -> RmapName {
        RMAPS[self.rmap as usize % RMAPS.len()]
    }

    /// `private_vma` needs `fork = eager` (`MachineConfig::validate`): the input's fork
    /// policy is overridden (for `fork_with` too, see `Op::Fork`).
    pub fn fork_forced(&self) -> bool {
        self.rmap_name() == RmapName::PrivateVma && !matches!(self.fork, ForkSel::Eager)
    }

    /// The fork policy the machine runs.
    pub fn fork_sel(&self) -> ForkSel {
        if self.rmap_name() == RmapName::PrivateVma {
            ForkSel::Eager
        } else {
            self.fork
        }
    }

    fn config(&self) -> MachineConfig {
        let mib = [1u64, 2, 2, 3, 4][self.ram as usize % 5];
        MachineConfig {
            ram: ByteSize(mib << 20),
            cpus: 2,
            tlb_entries: 1 << (self.tlb_log2 % 7),
            max_map_count: if self.max_map_count < 64 {
                1 + self.max_map_count as usize % 24
            } else {
                DEFAULT_MAX_MAP_COUNT
            },
            fork: self.fork_sel().name(),
            rmap: self.rmap_name(),
            swap_size: ByteSize(self.swap_size()),
            reclaim: self.reclaim_name(),
            ..MachineConfig::default()
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum ForkSel {
    Cow,
    SharedPt,
    Eager,
}

impl ForkSel {
    fn name(self) -> ForkName {
        match self {
            ForkSel::Cow => ForkName::Cow,
            ForkSel::SharedPt => ForkName::SharedPt,
            ForkSel::Eager => ForkName::Eager,
        }
    }
    fn policy(self) -> ForkPolicy {
        self.name().policy()
    }
}

/// A process: below 128, the one CPU `n & 1` runs if it is live; below 240, a live one (by
/// index, modulo); else any pid ever used (dead ones give ESRCH), or (255) one never used.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct ProcSel(pub u8);

/// One of the two CPUs.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct CpuSel(pub u8);

impl CpuSel {
    fn id(self) -> usize {
        (self.0 & 1) as usize
    }
}

/// An address. `sub` picks the byte within the page: for a syscall it is almost always 0,
/// for an access it is mostly an aligned word.
#[derive(Debug, Clone, Copy)]
pub enum AddrSel {
    /// In or next to a VMA of the process (by index, modulo): `pos` below 0xF000 is a page
    /// from one before the VMA to its end, else that many pages past its start.
    InVma { vma: u8, pos: u16, sub: u16 },
    /// Near an address an earlier mmap/mremap/brk returned (`page / 16` pages off).
    Recent { i: u8, page: i8, sub: u16 },
    /// A boundary worth hitting (see `HINTS`), plus `page / 4` pages.
    Hint { h: u8, page: i8, sub: u16 },
    /// Anything.
    Raw(u64),
}

/// Addresses worth hitting: 0, below and at `mmap_min_addr`, the MAP_32BIT window, the heap,
/// 2 MiB and 1 GiB boundaries (shared tables), the top of the address space and beyond.
const HINTS: [u64; 14] = [
    0,
    0x1000,
    0x10000,
    0x4000_0000,
    0x7fff_f000,
    0x5555_5600_0000,
    0x7f00_0000_0000,
    0x7f00_0020_0000,
    0x7f00_4000_0000,
    0x7fff_f7e0_0000,
    TASK_SIZE - (2 << 20),
    TASK_SIZE,
    1 << 47,
    !0xfff,
];

/// A length.
#[derive(Debug, Clone, Copy)]
pub enum LenSel {
    /// n % 24 pages (0 included).
    Pages(u8),
    /// The length of a VMA of the process, plus or minus a few pages.
    Vma { vma: u8, extra: i8 },
    /// Up to 4 GiB in pages: large ranges over few tables.
    Big(u16),
    /// Bytes, usually not page aligned.
    Bytes(u16),
    /// Anything.
    Raw(u64),
}

/// `prot`: the low three bits are R/W/X; with both top bits set, an odd bit is added.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct ProtSel(pub u8);

impl ProtSel {
    fn prot(self) -> u32 {
        let v = self.0;
        let mut p = (v & 7) as u32;
        if v & 0xc0 == 0xc0 {
            p |= [PROT_SEM, PROT_GROWSDOWN, PROT_GROWSUP, 0x10, 0x8000_0000, 0][((v >> 3) & 7) as usize % 6];
        }
        p
    }
}

/// The file descriptor side of mmap.
#[derive(Debug, Clone, Copy)]
pub enum FdSel {
    /// MAP_ANONYMOUS, fd -1.
    Anon,
    /// A file the interpreter opened (by index, modulo; it may be closed by now).
    File(u8),
    /// MAP_ANONYMOUS with a file's fd (ignored, as Linux does).
    AnonWithFd(u8),
    /// No MAP_ANONYMOUS and an fd that may not be open.
    Fd(i8),
}

/// mmap's flags, built from parts.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct FlagsSel {
    /// 0..=127 private, ..=207 shared, ..=223 MAP_SHARED_VALIDATE, ..=231 no type, else a raw type nibble.
    pub kind: u8,
    /// Bits 4-5 both set: MAP_FIXED; bits 6-7 both set: MAP_FIXED_NOREPLACE.
    pub placement: u8,
    /// Each below 32 adds one more flag (`EXTRA_FLAGS`).
    pub extra: [u8; 2],
}

const EXTRA_FLAGS: [u32; 16] = [
    MAP_GROWSDOWN,
    MAP_DENYWRITE,
    MAP_EXECUTABLE,
    MAP_LOCKED,
    MAP_NORESERVE,
    MAP_POPULATE,
    MAP_NONBLOCK,
    MAP_STACK,
    MAP_HUGETLB,
    MAP_SYNC,
    MAP_32BIT,
    MAP_UNINITIALIZED,
    MAP_ABOVE4G,
    MAP_HUGE_2MB,
    0x200_0000,
    0x8000_0000,
];

impl FlagsSel {
    fn flags(self) -> u32 {
        let mut f = match self.kind {
            0..=127 => MAP_PRIVATE,
            128..=207 => MAP_SHARED,
            208..=223 => MAP_SHARED_VALIDATE,
            224..=231 => 0,
            k => (k & 0xf) as u32,
        };
        if self.placement & 0x30 == 0x30 {
            f |= MAP_FIXED;
        }
        if self.placement & 0xc0 == 0xc0 {
            f |= MAP_FIXED_NOREPLACE;
        }
        for e in self.extra {
            if e < 32 {
                f |= EXTRA_FLAGS[e as usize % 16];
            }
        }
        f
    }
}

/// A file offset for mmap.
#[derive(Debug, Clone, Copy)]
pub enum OffSel {
    Zero,
    Pages(u8),
    Raw(u64),
}

/// A new break for brk.
#[derive(Debug, Clone, Copy)]
pub enum BrkSel {
    /// brk(0): ask.
    Query,
    /// The current break plus or minus pages, and bytes.
    Rel {
        pages: i16,
        bytes: u16,
    },
    /// The start of the heap plus pages.
    FromStart(u16),
    Raw(u64),
}

/// The variant of a selector: the first byte falls in one of `bounds` (upper bounds,
/// inclusive, ascending; the last variant takes the rest), so that sane values come often
/// and raw ones rarely.
fn variant(u: &mut Unstructured<'_>, bounds: &[u8]) -> ArbResult<usize> {
    let k = u8::arbitrary(u)?;
    Ok(bounds.iter().position(|&b| k <= b).unwrap_or(bounds.len()))
}

impl<'a> Arbitrary<'a> for AddrSel {
    fn arbitrary(u: &mut Unstructured<'a>) -> ArbResult<Self> {
        Ok(match variant(u, &[109, 179, 239])? {
            0 => AddrSel::InVma {
                vma: u.arbitrary()?,
                pos: u.arbitrary()?,
                sub: u.arbitrary()?,
            },
            1 => AddrSel::Recent {
                i: u.arbitrary()?,
                page: u.arbitrary()?,
                sub: u.arbitrary()?,
            },
            2 => AddrSel::Hint {
                h: u.arbitrary()?,
                page: u.arbitrary()?,
                sub: u.arbitrary()?,
            },
            _ => AddrSel::Raw(u.arbitrary()?),
        })
    }
}

impl<'a> Arbitrary<'a> for LenSel {
    fn arbitrary(u: &mut Unstructured<'a>) -> ArbResult<Self> {
        Ok(match variant(u, &[99, 169, 209, 239])? {
            0 => LenSel::Pages(u.arbitrary()?),
            1 => LenSel::Vma {
                vma: u.arbitrary()?,
                extra: u.arbitrary()?,
            },
            2 => LenSel::Big(u.arbitrary()?),
            3 => LenSel::Bytes(u.arbitrary()?),
            _ => LenSel::Raw(u.arbitrary()?),
        })
    }
}

impl<'a> Arbitrary<'a> for FdSel {
    fn arbitrary(u: &mut Unstructured<'a>) -> ArbResult<Self> {
        Ok(match variant(u, &[149, 219, 234])? {
            0 => FdSel::Anon,
            1 => FdSel::File(u.arbitrary()?),
            2 => FdSel::AnonWithFd(u.arbitrary()?),
            _ => FdSel::Fd(u.arbitrary()?),
        })
    }
}

impl<'a> Arbitrary<'a> for OffSel {
    fn arbitrary(u: &mut Unstructured<'a>) -> ArbResult<Self> {
        Ok(match variant(u, &[149, 244])? {
            0 => OffSel::Zero,
            1 => OffSel::Pages(u.arbitrary()?),
            _ => OffSel::Raw(u.arbitrary()?),
        })
    }
}

impl<'a> Arbitrary<'a> for BrkSel {
    fn arbitrary(u: &mut Unstructured<'a>) -> ArbResult<Self> {
        Ok(match variant(u, &[29, 199, 239])? {
            0 => BrkSel::Query,
            1 => BrkSel::Rel {
                pages: u.arbitrary()?,
                bytes: u.arbitrary()?,
            },
            2 => BrkSel::FromStart(u.arbitrary()?),
            _ => BrkSel::Raw(u.arbitrary()?),
        })
    }
}

/// What to do with a file's host side, or a file syscall on its fd.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum FileCtl {
    FailWrites(bool),
    FailReads(bool),
    /// Truncate or extend it under its mappings (another process did).
    Resize(u16),
    /// `read(fd, len)` at the file offset.
    Read(u16),
    /// `write(fd, len bytes of fill)` at the file offset.
    Write(u16, u8),
    /// `pread(fd, len, off)`; `off` is taken as signed (negative: EINVAL).
    Pread(u16, i32),
    /// `pwrite(fd, len bytes of fill, off)`.
    Pwrite(u16, u8, i32),
    /// `lseek(fd, off, whence)` (whence modulo 6: one unknown value).
    Lseek(i32, u8),
    /// `ftruncate(fd, len)` (signed: negative is EINVAL).
    Ftruncate(i32),
    /// `fstat(fd)`.
    Fstat,
}

/// Largest offset a fuzzed write or truncation reaches, so that files stay
/// within the length the checks allow.
const MAX_FILE_BYTES: i64 = (MAX_FILE_PAGES * PAGE_SIZE) as i64;

/// A file offset from a fuzzed value: mostly inside the allowed length, a
/// negative one kept as is.
fn file_off(v: i32) -> i64 {
    if v < 0 {
        v as i64
    } else {
        v as i64 % MAX_FILE_BYTES
    }
}

/// One operation.
#[derive(Debug, Clone)]
pub enum Op {
    Spawn,
    Fork {
        p: ProcSel,
        policy: Option<ForkSel>,
        compare: bool,
    },
    Exec {
        p: ProcSel,
    },
    Exit {
        p: ProcSel,
    },
    Open {
        pages: u8,
        tail: u16,
        writable: bool,
    },
    Close {
        f: u8,
    },
    File {
        f: u8,
        ctl: FileCtl,
    },
    Mmap {
        p: ProcSel,
        addr: AddrSel,
        len: LenSel,
        prot: ProtSel,
        flags: FlagsSel,
        fd: FdSel,
        off: OffSel,
    },
    Munmap {
        p: ProcSel,
        addr: AddrSel,
        len: LenSel,
    },
    Mprotect {
        p: ProcSel,
        addr: AddrSel,
        len: LenSel,
        prot: ProtSel,
    },
    Mremap {
        p: ProcSel,
        old: AddrSel,
        old_len: LenSel,
        new_len: LenSel,
        flags: u8,
        new_addr: AddrSel,
    },
    Madvise {
        p: ProcSel,
        addr: AddrSel,
        len: LenSel,
        advice: u8,
    },
    Msync {
        p: ProcSel,
        addr: AddrSel,
        len: LenSel,
        flags: u8,
    },
    Brk {
        p: ProcSel,
        to: BrkSel,
    },
    Switch {
        cpu: CpuSel,
        p: ProcSel,
    },
    /// Drop the CPU's handle; the next op on it takes a new one (not bound to a process).
    Release {
        cpu: CpuSel,
    },
    Load {
        cpu: CpuSel,
        addr: AddrSel,
    },
    Store {
        cpu: CpuSel,
        addr: AddrSel,
        val: u64,
    },
    Read {
        cpu: CpuSel,
        addr: AddrSel,
        len: u16,
    },
    Write {
        cpu: CpuSel,
        addr: AddrSel,
        len: u16,
        byte: u8,
    },
    Touch {
        cpu: CpuSel,
        addr: AddrSel,
        kind: u8,
    },
    /// Store a word to each of `pages` pages from `addr` on, up to the first fault.
    Fill {
        cpu: CpuSel,
        addr: AddrSel,
        pages: u8,
        val: u64,
    },
    /// Both CPUs on one process: a store on one, loads on both see it.
    Coherence {
        cpu: CpuSel,
        addr: AddrSel,
        val: u64,
        store: bool,
    },
    /// `Machine::read`/`write`, which need a free CPU handle.
    MachineRw {
        p: ProcSel,
        addr: AddrSel,
        len: u16,
        write: bool,
    },
    Maps {
        p: ProcSel,
    },
    Check,
    /// The reverse map of the frame mapped at `addr` in the process CPU `cpu` runs:
    /// `Machine::mappings_of`, and with `unmap` `Machine::unmap_everywhere` (see `rmap_op`).
    Rmap {
        cpu: CpuSel,
        addr: AddrSel,
        unmap: bool,
    },
}

/// Op kinds by the first byte of an op: (last byte value, kind), so that common ops come often.
const WEIGHTS: [(u8, u8); 27] = [
    (29, 0),   // mmap
    (43, 1),   // munmap
    (57, 2),   // mprotect
    (73, 3),   // mremap
    (87, 4),   // madvise
    (95, 5),   // msync
    (103, 6),  // brk
    (106, 7),  // spawn
    (114, 8),  // fork
    (116, 9),  // exec
    (119, 10), // exit
    (123, 11), // open
    (125, 12), // close
    (129, 13), // file ctl
    (139, 14), // switch
    (141, 15), // release
    (163, 16), // load
    (191, 17), // store
    (199, 18), // read
    (213, 19), // write
    (219, 20), // touch
    (229, 21), // fill
    (239, 22), // coherence
    (242, 23), // machine rw
    (245, 24), // maps
    (249, 25), // check
    (255, 26), // rmap
];

impl<'a> Arbitrary<'a> for Op {
    fn arbitrary(u: &mut Unstructured<'a>) -> ArbResult<Self> {
        let k = u8::arbitrary(u)?;
        let kind = WEIGHTS
            .iter()
            .find(|(last, _)| k <= *last)
            .map_or(26, |&(_, kind)| kind);
        Ok(match kind {
            0 => Op::Mmap {
                p: u.arbitrary()?,
                addr: u.arbitrary()?,
                len: u.arbitrary()?,
                prot: u.arbitrary()?,
                flags: u.arbitrary()?,
                fd: u.arbitrary()?,
                off: u.arbitrary()?,
            },
            1 => Op::Munmap {
                p: u.arbitrary()?,
                addr: u.arbitrary()?,
                len: u.arbitrary()?,
            },
            2 => Op::Mprotect {
                p: u.arbitrary()?,
                addr: u.arbitrary()?,
                len: u.arbitrary()?,
                prot: u.arbitrary()?,
            },
            3 => Op::Mremap {
                p: u.arbitrary()?,
                old: u.arbitrary()?,
                old_len: u.arbitrary()?,
                new_len: u.arbitrary()?,
                flags: u.arbitrary()?,
                new_addr: u.arbitrary()?,
            },
            4 => Op::Madvise {
                p: u.arbitrary()?,
                addr: u.arbitrary()?,
                len: u.arbitrary()?,
                advice: u.arbitrary()?,
            },
            5 => Op::Msync {
                p: u.arbitrary()?,
                addr: u.arbitrary()?,
                len: u.arbitrary()?,
                flags: u.arbitrary()?,
            },
            6 => Op::Brk {
                p: u.arbitrary()?,
                to: u.arbitrary()?,
            },
            7 => Op::Spawn,
            8 => Op::Fork {
                p: u.arbitrary()?,
                policy: u.arbitrary()?,
                compare: u.arbitrary()?,
            },
            9 => Op::Exec { p: u.arbitrary()? },
            10 => Op::Exit { p: u.arbitrary()? },
            11 => Op::Open {
                pages: u.arbitrary()?,
                tail: u.arbitrary()?,
                writable: u.arbitrary()?,
            },
            12 => Op::Close { f: u.arbitrary()? },
            13 => Op::File {
                f: u.arbitrary()?,
                ctl: u.arbitrary()?,
            },
            14 => Op::Switch {
                cpu: u.arbitrary()?,
                p: u.arbitrary()?,
            },
            15 => Op::Release { cpu: u.arbitrary()? },
            16 => Op::Load {
                cpu: u.arbitrary()?,
                addr: u.arbitrary()?,
            },
            17 => Op::Store {
                cpu: u.arbitrary()?,
                addr: u.arbitrary()?,
                val: u.arbitrary()?,
            },
            18 => Op::Read {
                cpu: u.arbitrary()?,
                addr: u.arbitrary()?,
                len: u.arbitrary()?,
            },
            19 => Op::Write {
                cpu: u.arbitrary()?,
                addr: u.arbitrary()?,
                len: u.arbitrary()?,
                byte: u.arbitrary()?,
            },
            20 => Op::Touch {
                cpu: u.arbitrary()?,
                addr: u.arbitrary()?,
                kind: u.arbitrary()?,
            },
            21 => Op::Fill {
                cpu: u.arbitrary()?,
                addr: u.arbitrary()?,
                pages: u.arbitrary()?,
                val: u.arbitrary()?,
            },
            22 => Op::Coherence {
                cpu: u.arbitrary()?,
                addr: u.arbitrary()?,
                val: u.arbitrary()?,
                store: u.arbitrary()?,
            },
            23 => Op::MachineRw {
                p: u.arbitrary()?,
                addr: u.arbitrary()?,
                len: u.arbitrary()?,
                write: u.arbitrary()?,
            },
            24 => Op::Maps { p: u.arbitrary()? },
            25 => Op::Check,
            _ => Op::Rmap {
                cpu: u.arbitrary()?,
                addr: u.arbitrary()?,
                unmap: u.arbitrary()?,
            },
        })
    }
}

// ---------------------------------------------------------------------------------------------
// An in-memory file
// ---------------------------------------------------------------------------------------------

// `vmlab_mm::mm::MemFile`: reads and writes can be made to fail; the interpreter
// checks after every step that no write went to a read-only file or past any
// length the file had.

// ---------------------------------------------------------------------------------------------
// The interpreter
// ---------------------------------------------------------------------------------------------

/// Whether a syscall's errno is one Linux could give for it here (anything else is a bug:
/// e.g. ENOSYS, or an errno from another syscall's vocabulary).
fn assert_errno(what: &str, e: Errno, allowed: &[Errno]) {
    assert!(allowed.contains(&e), "{what}: unexpected errno {e}");
}

struct State<'m> {
    m: &'m Machine,
    cpus: [Option<Cpu<'m>>; 2],
    /// Every pid ever created, in order.
    known: Vec<Pid>,
    /// Processes whose fork copies are not byte-for-byte (madvise DONTFORK/WIPEONFORK).
    fork_differs: Vec<Pid>,
    /// Processes that called MADV_FREE (or were forked from one): any of their
    /// pages may read zero after a reclaim.
    lazy_freed: Vec<Pid>,
    /// Files opened: fd and the host side.
    files: Vec<(i32, MemFile)>,
    /// Addresses mmap/mremap/brk returned, newest last (at most 16).
    recent: Vec<u64>,
    /// Print each op, its arguments and its result.
    trace: bool,
    /// The machine's reverse-map design.
    rmap: RmapName,
}

impl<'m> State<'m> {
    /// Under `VMLAB_FUZZ_TRACE`, print what a syscall was called with and what it returned.
    fn note(&self, call: std::fmt::Arguments<'_>, r: &dyn std::fmt::Debug) {
        if self.trace {
            eprintln!("    {call} = {r:?}");
        }
    }

    fn live(&self) -> Vec<Pid> {
        self.m.pids()
    }

    fn pid(&self, p: ProcSel) -> Pid {
        let live = self.live();
        if p.0 < 128 {
            // The process a CPU runs, so that syscalls and accesses meet.
            let on_cpu = self.cpus[(p.0 & 1) as usize].as_ref().and_then(|c| c.pid());
            if let Some(pid) = on_cpu.filter(|p| live.contains(p)) {
                return pid;
            }
        }
        if p.0 < 240 {
            return live.get(p.0 as usize % live.len().max(1)).copied().unwrap_or(NO_PID);
        }
        if p.0 == 255 || self.known.is_empty() {
            return NO_PID;
        }
        self.known[p.0 as usize % self.known.len()]
    }

    fn cpu(&mut self, c: CpuSel) -> &mut Cpu<'m> {
        let id = c.id();
        if self.cpus[id].is_none() {
            self.cpus[id] = Some(self.m.cpu(id).expect("a released CPU can be taken again"));
        }
        self.cpus[id].as_mut().unwrap()
    }

    fn remember(&mut self, a: u64) {
        if self.recent.len() == 16 {
            self.recent.remove(0);
        }
        self.recent.push(a);
    }

    /// The VMA ranges of `pid` (none if it does not exist).
    fn vmas(&self, pid: Pid) -> Vec<(u64, u64)> {
        self.m
            .maps(pid)
            .map(|l| l.iter().map(|l| (l.start, l.end)).collect())
            .unwrap_or_default()
    }

    fn addr(&self, pid: Pid, a: AddrSel, access: bool) -> u64 {
        let sub = |s: u16| -> u64 {
            if access {
                if s < 0xe000 {
                    (s as u64 % 512) * 8
                } else {
                    s as u64 & 0xfff
                }
            } else if s >= 0xf000 {
                s as u64 & 0xfff
            } else {
                0
            }
        };
        match a {
            AddrSel::InVma { vma, pos, sub: s } => {
                let vmas = self.vmas(pid);
                let Some(&(start, end)) = vmas.get(vma as usize % vmas.len().max(1)) else {
                    return HINTS[6].wrapping_add(pos as u64 * PAGE_SIZE) + sub(s);
                };
                let pages = (end - start) / PAGE_SIZE;
                let page = if pos < 0xf000 {
                    (pos as u64 % (pages + 2)) as i64 - 1
                } else {
                    (pos - 0xf000) as i64
                };
                start.wrapping_add_signed(page * PAGE_SIZE as i64).wrapping_add(sub(s))
            }
            AddrSel::Recent { i, page, sub: s } => {
                let base = self
                    .recent
                    .get(i as usize % self.recent.len().max(1))
                    .copied()
                    .unwrap_or(HINTS[6]);
                base.wrapping_add_signed((page / 16) as i64 * PAGE_SIZE as i64)
                    .wrapping_add(sub(s))
            }
            AddrSel::Hint { h, page, sub: s } => HINTS[h as usize % HINTS.len()]
                .wrapping_add_signed((page / 4) as i64 * PAGE_SIZE as i64)
                .wrapping_add(sub(s)),
            AddrSel::Raw(v) => v,
        }
    }

    fn len(&self, pid: Pid, l: LenSel) -> u64 {
        match l {
            LenSel::Pages(n) => (n as u64 % 24) * PAGE_SIZE,
            LenSel::Vma { vma, extra } => {
                let vmas = self.vmas(pid);
                let base = vmas
                    .get(vma as usize % vmas.len().max(1))
                    .map_or(PAGE_SIZE, |&(s, e)| e - s);
                base.wrapping_add_signed((extra % 4) as i64 * PAGE_SIZE as i64)
            }
            LenSel::Big(n) => (n as u64) << 16,
            LenSel::Bytes(n) => n as u64,
            LenSel::Raw(v) => v,
        }
    }

    fn file_fd(&self, i: u8) -> i32 {
        self.files.get(i as usize % self.files.len().max(1)).map_or(-1, |f| f.0)
    }

    fn open(&mut self, pages: u8, tail: u16, writable: bool) {
        if self.files.len() >= MAX_FILES {
            return;
        }
        let len = (pages as u64 % MAX_FILE_PAGES) * PAGE_SIZE + (tail as u64 % PAGE_SIZE);
        let seed = self.files.len() as u8;
        let bytes: Vec<u8> = (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect();
        // A writable file is write-only (O_WRONLY) if bit 15 of `tail` is set.
        let f = MemFile::with_mode(&bytes, !(writable && tail & 0x8000 != 0), writable);
        let before = self.m.fds();
        let fd = self.m.open_file(Box::new(f.clone()));
        assert!(!before.contains(&fd), "open_file handed out fd {fd}, which is open");
        // A closed file's host side is kept until its fd is reused.
        self.files.retain(|&(d, _)| d != fd);
        self.files.push((fd, f));
    }

    fn step(&mut self, op: &Op) {
        let m = self.m;
        match *op {
            Op::Spawn => {
                if self.live().len() < MAX_PROCS {
                    match m.spawn() {
                        Ok(pid) => {
                            assert!(!self.known.contains(&pid), "spawn reused pid {pid}");
                            self.known.push(pid);
                        }
                        Err(e) => assert_errno("spawn", e, &[Errno::ENOMEM]),
                    }
                }
            }
            Op::Fork { p, policy, compare } => {
                if self.live().len() >= MAX_PROCS {
                    return;
                }
                let pid = self.pid(p);
                // Words of the parent to compare with the child's.
                let (probes, guards) = if compare && !self.fork_differs.contains(&pid) {
                    (self.probe(pid), self.probe_guards(pid))
                } else {
                    (Vec::new(), Vec::new())
                };
                // Under private_vma every fork is eager (`Setup::fork_sel`), fork_with too.
                let policy = policy.map(|pol| {
                    if self.rmap == RmapName::PrivateVma {
                        ForkSel::Eager
                    } else {
                        pol
                    }
                });
                let r = match policy {
                    None => m.fork(pid),
                    Some(pol) => m.fork_with(pid, pol.policy()).map(|(c, _)| c),
                };
                match r {
                    Ok(child) => {
                        assert!(!self.known.contains(&child), "fork reused pid {child}");
                        self.known.push(child);
                        if self.lazy_freed.contains(&pid) {
                            self.lazy_freed.push(child);
                        }
                        if self.fork_differs.contains(&pid) {
                            self.fork_differs.push(child);
                        }
                        if !self.fork_differs.contains(&pid) {
                            assert_eq!(
                                self.vmas(child),
                                self.vmas(pid),
                                "fork: child's VMAs differ from the parent's"
                            );
                        }
                        if !probes.is_empty() {
                            let cpu = self.cpu(CpuSel(1));
                            cpu.switch_to(child).expect("child exists");
                            for &(a, v) in &probes {
                                if let Ok(c) = cpu.load_u64(a) {
                                    assert_eq!(c, v, "fork: child reads {c:#x} at {a:#x}, parent had {v:#x}");
                                }
                            }
                            self.fork_isolation(pid, child, &probes);
                        }
                        // Guard markers are copied: the child's guard pages fault alike.
                        if !guards.is_empty() {
                            let cpu = self.cpu(CpuSel(1));
                            cpu.switch_to(child).expect("child exists");
                            for &a in &guards {
                                let r = cpu.load_u64(a).map_err(|f| f.reason);
                                assert_eq!(
                                    r,
                                    Err(FaultReason::Guard),
                                    "fork: guard page {a:#x} not a guard in the child"
                                );
                            }
                        }
                    }
                    Err(e) => assert_errno("fork", e, &[Errno::ESRCH, Errno::ENOMEM]),
                }
            }
            Op::Exec { p } => {
                let pid = self.pid(p);
                match m.exec(pid) {
                    Ok(()) => {
                        assert!(self.vmas(pid).is_empty(), "exec left VMAs");
                        self.fork_differs.retain(|&q| q != pid);
                    }
                    Err(e) => assert_errno("exec", e, &[Errno::ESRCH]),
                }
            }
            Op::Exit { p } => {
                let pid = self.pid(p);
                if self.live() == [pid] {
                    // Keep one process to work on; the end exits every one.
                    return;
                }
                match m.exit(pid) {
                    Ok(()) => assert!(m.process(pid).is_err(), "exit: process {pid} still there"),
                    Err(e) => assert_errno("exit", e, &[Errno::ESRCH]),
                }
            }
            Op::Open { pages, tail, writable } => self.open(pages, tail, writable),
            Op::Close { f } => {
                let fd = self.file_fd(f);
                if let Err(e) = m.close(fd) {
                    // A write-back error of the file's last reference is reported here.
                    assert_errno("close", e, &[Errno::EBADF, Errno::ENOSPC]);
                }
                assert!(!m.fds().contains(&fd), "close: fd {fd} still open");
            }
            Op::File { f, ctl } => {
                let Some((_, file)) = self.files.get(f as usize % self.files.len().max(1)) else {
                    return;
                };
                let fd = self.file_fd(f);
                const RW_ERRNO: [Errno; 7] = [
                    Errno::EBADF,
                    Errno::EINVAL,
                    Errno::EIO,
                    Errno::ENOMEM,
                    Errno::ENOSPC,
                    Errno::EFBIG,
                    Errno::ENXIO,
                ];
                match ctl {
                    FileCtl::FailWrites(b) => file.set_fail_writes(b),
                    FileCtl::FailReads(b) => file.set_fail_reads(b),
                    FileCtl::Resize(n) => {
                        let len = (n as u64 * 3 % (MAX_FILE_PAGES * PAGE_SIZE)) as usize;
                        file.resize(len, 0xa5);
                    }
                    FileCtl::Read(n) | FileCtl::Pread(n, _) => {
                        let mut buf = vec![0u8; n as usize % (3 * PAGE_SIZE as usize)];
                        let r = match ctl {
                            FileCtl::Pread(_, off) => m.pread(fd, &mut buf, file_off(off)),
                            _ => m.read_fd(fd, &mut buf),
                        };
                        match r {
                            Ok(got) => assert!(got <= buf.len(), "read: {got} bytes into {}", buf.len()),
                            Err(e) => assert_errno("read", e, &RW_ERRNO[..4]),
                        }
                    }
                    FileCtl::Write(n, fill) | FileCtl::Pwrite(n, fill, _) => {
                        let buf = vec![fill; n as usize % (PAGE_SIZE as usize + 1)];
                        let (r, at) = match ctl {
                            FileCtl::Pwrite(_, _, off) => (m.pwrite(fd, &buf, file_off(off)), file_off(off)),
                            _ => {
                                // Keep the file offset inside the allowed length.
                                let cur = m.lseek(fd, 0, SEEK_CUR).unwrap_or(0);
                                let at = if cur >= MAX_FILE_BYTES { 0 } else { cur };
                                if at != cur {
                                    let _ = m.lseek(fd, 0, SEEK_SET);
                                }
                                (m.write_fd(fd, &buf), at)
                            }
                        };
                        match r {
                            Ok(got) => {
                                assert!(got <= buf.len(), "write: {got} of {} bytes", buf.len());
                                // What was written reads back through the cache (unless
                                // reads are refused or fail, or memory ran out).
                                let mut back = vec![0u8; got];
                                if let Ok(k) = m.pread(fd, &mut back, at) {
                                    assert_eq!(k, got, "pread after write: {k} of {got} bytes");
                                    assert!(back.iter().all(|&b| b == fill), "pread after write: other bytes");
                                }
                            }
                            Err(e) => assert_errno("write", e, &RW_ERRNO[..6]),
                        }
                    }
                    FileCtl::Lseek(off, whence) => {
                        let whence = whence as u32 % 6;
                        match m.lseek(fd, file_off(off), whence) {
                            Ok(pos) => assert!(pos >= 0, "lseek: negative offset {pos}"),
                            Err(e) => assert_errno("lseek", e, &[Errno::EBADF, Errno::EINVAL, Errno::ENXIO]),
                        }
                    }
                    FileCtl::Ftruncate(len) => {
                        let len = file_off(len);
                        match m.ftruncate(fd, len) {
                            Ok(()) => assert_eq!(m.fstat(fd).map(|s| s.size as i64), Ok(len), "size after ftruncate"),
                            Err(e) => assert_errno("ftruncate", e, &RW_ERRNO[..6]),
                        }
                    }
                    FileCtl::Fstat => {
                        if let Err(e) = m.fstat(fd) {
                            assert_errno("fstat", e, &[Errno::EBADF]);
                        }
                    }
                }
            }
            Op::Mmap {
                p,
                addr,
                len,
                prot,
                flags,
                fd,
                off,
            } => {
                let pid = self.pid(p);
                let a = self.addr(pid, addr, false);
                let l = self.len(pid, len);
                let mut fl = flags.flags();
                let fd = match fd {
                    FdSel::Anon => {
                        fl |= MAP_ANONYMOUS;
                        -1
                    }
                    FdSel::File(i) => {
                        fl &= !MAP_ANONYMOUS;
                        self.file_fd(i)
                    }
                    FdSel::AnonWithFd(i) => {
                        fl |= MAP_ANONYMOUS;
                        self.file_fd(i)
                    }
                    FdSel::Fd(i) => {
                        fl &= !MAP_ANONYMOUS;
                        i as i32
                    }
                };
                let off = match off {
                    OffSel::Zero => 0,
                    OffSel::Pages(n) => (n as u64 % 64) * PAGE_SIZE,
                    OffSel::Raw(v) => v,
                };
                let l = if fl & MAP_TYPE == MAP_DROPPABLE {
                    l.min(MAX_DROPPABLE_BYTES)
                } else if fl & MAP_POPULATE != 0 {
                    l.min(MAX_POPULATE_BYTES)
                } else {
                    l
                };
                let before = self.vmas(pid);
                let r = m.mmap_fd(pid, a, l, prot.prot(), fl, fd, off);
                self.note(
                    format_args!(
                        "mmap({pid}, {a:#x}, {l:#x}, {:#x}, {fl:#x}, {fd}, {off:#x})",
                        prot.prot()
                    ),
                    &r,
                );
                match r {
                    Ok(got) => {
                        assert!(got % PAGE_SIZE == 0, "mmap returned unaligned {got:#x}");
                        let end = l
                            .checked_next_multiple_of(PAGE_SIZE)
                            .and_then(|l| got.checked_add(l))
                            .expect("mmap: end overflows");
                        assert!(end <= TASK_SIZE, "mmap returned [{got:#x}, {end:#x}) past TASK_SIZE");
                        if fl & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0 {
                            assert_eq!(got, a, "mmap with MAP_FIXED(_NOREPLACE) moved");
                        }
                        if fl & MAP_FIXED_NOREPLACE != 0 || fl & MAP_FIXED == 0 {
                            assert!(
                                before.iter().all(|&(s, e)| e <= got || s >= end),
                                "mmap without MAP_FIXED replaced a mapping in [{got:#x}, {end:#x})"
                            );
                        }
                        assert_covered(&self.vmas(pid), got, end, "mmap");
                        self.remember(got);
                        if fl & MAP_TYPE == MAP_DROPPABLE {
                            // Droppable memory is wiped on fork (VM_WIPEONFORK).
                            self.fork_differs.push(pid);
                        }
                    }
                    Err(e) => assert_errno(
                        "mmap",
                        e,
                        &[
                            Errno::ESRCH,
                            Errno::EINVAL,
                            Errno::EBADF,
                            Errno::ENOMEM,
                            Errno::EEXIST,
                            Errno::EACCES,
                            Errno::EPERM,
                            Errno::EOVERFLOW,
                            Errno::EOPNOTSUPP,
                            Errno::ENODEV,
                            // Locked memory past RLIMIT_MEMLOCK (`mlock_future_ok`).
                            Errno::EAGAIN,
                        ],
                    ),
                }
            }
            Op::Munmap { p, addr, len } => {
                let pid = self.pid(p);
                let (a, l) = (self.addr(pid, addr, false), self.len(pid, len));
                let r = m.munmap(pid, a, l);
                self.note(format_args!("munmap({pid}, {a:#x}, {l:#x})"), &r);
                match r {
                    Ok(()) => {
                        let end = a.saturating_add(l.checked_next_multiple_of(PAGE_SIZE).unwrap_or(u64::MAX));
                        assert!(
                            self.vmas(pid).iter().all(|&(s, e)| e <= a || s >= end),
                            "munmap left a VMA in [{a:#x}, {end:#x})"
                        );
                        if l > 0 {
                            self.assert_no_access(pid, a, Access::Read, "munmap");
                        }
                    }
                    Err(e) => assert_errno("munmap", e, &[Errno::ESRCH, Errno::EINVAL, Errno::ENOMEM]),
                }
            }
            Op::Mprotect { p, addr, len, prot } => {
                let pid = self.pid(p);
                let (a, l) = (self.addr(pid, addr, false), self.len(pid, len));
                let r = m.mprotect(pid, a, l, prot.prot());
                self.note(format_args!("mprotect({pid}, {a:#x}, {l:#x}, {:#x})", prot.prot()), &r);
                if r.is_ok() && l > 0 {
                    // x86: any permission lets a read through; only write lets a store.
                    if prot.prot() & 7 == 0 {
                        self.assert_no_access(pid, a, Access::Read, "mprotect");
                    }
                    if prot.prot() & PROT_WRITE == 0 {
                        self.assert_no_access(pid, a, Access::Write, "mprotect");
                    }
                }
                if let Err(e) = r {
                    assert_errno(
                        "mprotect",
                        e,
                        &[Errno::ESRCH, Errno::EINVAL, Errno::ENOMEM, Errno::EACCES],
                    );
                }
            }
            Op::Mremap {
                p,
                old,
                old_len,
                new_len,
                flags,
                new_addr,
            } => {
                let pid = self.pid(p);
                let a = self.addr(pid, old, false);
                let (ol, nl) = (self.len(pid, old_len), self.len(pid, new_len));
                let na = self.addr(pid, new_addr, false);
                // Mostly MAYMOVE, FIXED and DONTUNMAP; the top bit adds an unknown flag.
                let mut fl = (flags & 7) as u32;
                if flags & 0x80 != 0 && flags & 0x40 != 0 {
                    fl |= 8;
                }
                let r = m.mremap(pid, a, ol, nl, fl, na);
                self.note(
                    format_args!("mremap({pid}, {a:#x}, {ol:#x}, {nl:#x}, {fl:#x}, {na:#x})"),
                    &r,
                );
                match r {
                    Ok(got) => {
                        assert!(got % PAGE_SIZE == 0, "mremap returned unaligned {got:#x}");
                        if fl & MREMAP_FIXED != 0 {
                            assert_eq!(got, na, "mremap with MREMAP_FIXED moved elsewhere");
                        }
                        if fl & MREMAP_MAYMOVE == 0 {
                            assert_eq!(got, a, "mremap without MREMAP_MAYMOVE moved");
                        }
                        // A shrink in place (Linux: "always allow a shrinking remap"; an equal
                        // length does nothing at all) needs only its first page mapped, and a fixed
                        // move keeping the length (Linux 6.17+) moves every VMA of the range, keeping
                        // the gaps between them; any other success maps the whole new range.
                        let in_place_shrink =
                            fl & (MREMAP_FIXED | MREMAP_DONTUNMAP) == 0 && page_align(nl) <= page_align(ol);
                        let move_only = fl & MREMAP_FIXED != 0 && page_align(nl) == page_align(ol);
                        let end = if in_place_shrink {
                            got + PAGE_SIZE
                        } else {
                            let end = got.checked_add(page_align(nl)).expect("mremap: end overflows");
                            assert!(end <= TASK_SIZE, "mremap returned [{got:#x}, {end:#x}) past TASK_SIZE");
                            if move_only {
                                got + PAGE_SIZE
                            } else {
                                end
                            }
                        };
                        assert_covered(&self.vmas(pid), got, end, "mremap");
                        self.remember(got);
                        // What the old range lost is unmapped: a move (without DONTUNMAP)
                        // leaves nothing at the old address, a shrink nothing past the end.
                        // (Linux's PAGE_ALIGN wraps; an old length of 0 keeps the old mapping.)
                        let (ol, nl) = (page_align(ol), page_align(nl));
                        let gone = if ol == 0 {
                            None
                        } else if got != a && fl & MREMAP_DONTUNMAP == 0 {
                            Some(a)
                        } else if got == a && nl < ol {
                            Some(a + nl)
                        } else {
                            None
                        };
                        if let Some(g) = gone {
                            assert!(
                                self.vmas(pid).iter().all(|&(s, e)| g < s || g >= e),
                                "mremap left {g:#x} mapped"
                            );
                            self.assert_no_access(pid, g, Access::Read, "mremap");
                        }
                    }
                    Err(e) => assert_errno(
                        "mremap",
                        e,
                        &[
                            Errno::ESRCH,
                            Errno::EINVAL,
                            Errno::ENOMEM,
                            Errno::EFAULT,
                            Errno::EAGAIN,
                            Errno::EPERM,
                        ],
                    ),
                }
            }
            Op::Madvise { p, addr, len, advice } => {
                let pid = self.pid(p);
                let (a, l) = (self.addr(pid, addr, false), self.len(pid, len));
                if advice >= 240 {
                    // The last 16 advice values (unknown advice otherwise) are the
                    // memory-locking calls, on the same arguments.
                    let pick = (advice as usize >> 3) & 1;
                    let r = match advice & 7 {
                        0 => m.mlock(pid, a, l),
                        1 => m.mlock2(pid, a, l, MLOCK_ONFAULT),
                        2 => m.mlock2(pid, a, l, [2, MLOCK_ONFAULT | 4][pick]),
                        3 | 4 => m.munlock(pid, a, l),
                        5 => m.mlockall(pid, [MCL_CURRENT | MCL_FUTURE, MCL_CURRENT | MCL_ONFAULT][pick]),
                        6 => m.munlockall(pid),
                        _ => m.set_memlock_rlimit(
                            pid,
                            vmlab_mm::mm::Rlimit {
                                cur: [0, 16 * PAGE_SIZE][pick],
                                max: MLOCK_LIMIT,
                            },
                        ),
                    };
                    self.note(format_args!("lock call {}({pid}, {a:#x}, {l:#x})", advice & 7), &r);
                    match r {
                        // mlock succeeded: the range is populated, unless the
                        // length rounded up to pages wrapped to 0 (Linux
                        // `do_mlock`'s PAGE_ALIGN of len + offset: then
                        // `apply_vma_lock_flags` sees start == end and locks
                        // nothing).
                        Ok(())
                            if advice & 7 == 0
                                && l.checked_add((a & (PAGE_SIZE - 1)) + PAGE_SIZE - 1)
                                    .is_some_and(|n| n >= PAGE_SIZE) =>
                        {
                            let first = a & !(PAGE_SIZE - 1);
                            assert!(
                                self.pte(pid, first).is_some_and(|e| e.present()),
                                "mlock({pid}, {a:#x}, {l:#x}) left page {first:#x} not present"
                            );
                        }
                        Ok(()) => {}
                        Err(e) => assert_errno(
                            "mlock",
                            e,
                            &[Errno::ESRCH, Errno::EINVAL, Errno::ENOMEM, Errno::EPERM, Errno::EAGAIN],
                        ),
                    }
                    return;
                }
                let adv = match advice {
                    0..=199 => [
                        MADV_NORMAL,
                        MADV_RANDOM,
                        MADV_SEQUENTIAL,
                        MADV_WILLNEED,
                        MADV_DONTNEED,
                        MADV_FREE,
                        MADV_REMOVE,
                        MADV_DONTFORK,
                        MADV_DOFORK,
                        MADV_MERGEABLE,
                        MADV_UNMERGEABLE,
                        MADV_HUGEPAGE,
                        MADV_NOHUGEPAGE,
                        MADV_DONTDUMP,
                        MADV_DODUMP,
                        MADV_WIPEONFORK,
                        MADV_KEEPONFORK,
                        MADV_COLD,
                        MADV_PAGEOUT,
                        MADV_POPULATE_READ,
                        MADV_POPULATE_WRITE,
                        MADV_DONTNEED_LOCKED,
                        MADV_COLLAPSE,
                        MADV_DONTNEED,
                        MADV_FREE,
                        MADV_GUARD_INSTALL,
                        MADV_GUARD_REMOVE,
                        MADV_GUARD_INSTALL,
                        MADV_GUARD_REMOVE,
                    ][advice as usize % 29],
                    200..=219 => MADV_HWPOISON + (advice as u32 & 1),
                    _ => advice as u32,
                };
                let l = if matches!(adv, MADV_POPULATE_READ | MADV_POPULATE_WRITE) {
                    l.min(MAX_POPULATE_BYTES)
                } else {
                    l
                };
                // The first and last page of the range that are guard pages before a GUARD_REMOVE.
                let edges = if l != 0 && a % PAGE_SIZE == 0 {
                    let last = a.wrapping_add(page_align(l)).wrapping_sub(PAGE_SIZE);
                    if last >= a && last < TASK_SIZE {
                        vec![a, last]
                    } else {
                        vec![a]
                    }
                } else {
                    Vec::new()
                };
                let guards_before: Vec<u64> = if adv == MADV_GUARD_REMOVE {
                    edges
                        .iter()
                        .copied()
                        .filter(|&g| self.pte(pid, g).is_some_and(|e| matches!(e.decode(), LeafEntry::Guard)))
                        .collect()
                } else {
                    Vec::new()
                };
                let r = m.madvise(pid, a, l, adv);
                self.note(format_args!("madvise({pid}, {a:#x}, {l:#x}, {adv})"), &r);
                // A failure (ENOMEM for a hole, EAGAIN for a refused split) may come after the advice
                // was applied to the first VMAs, as in Linux: any call may have set it.
                if adv == MADV_DONTFORK || adv == MADV_WIPEONFORK {
                    self.fork_differs.push(pid);
                }
                if adv == MADV_FREE {
                    // Lazily freed pages not written since may read zero from any
                    // reclaim on: in the child of a fork too (Linux discards a clean
                    // lazyfree page from every mapping), so copies stop being exact.
                    self.fork_differs.push(pid);
                    self.lazy_freed.push(pid);
                }
                match r {
                    // Every page of the range is a guard page now: no CPU
                    // of the process may still reach one of its frames.
                    Ok(()) if adv == MADV_GUARD_INSTALL && l != 0 => {
                        let last = a + page_align(l) - PAGE_SIZE;
                        self.assert_no_access(pid, a, Access::Read, "madvise(MADV_GUARD_INSTALL)");
                        self.assert_no_access(pid, last, Access::Read, "madvise(MADV_GUARD_INSTALL)");
                        // A load there is SIGSEGV (SEGV_MAPERR, `Guard`) where the VMA allows it.
                        for &g in &edges {
                            self.assert_guard_fault(pid, g + 8);
                        }
                    }
                    // The markers are gone: no load faults as a guard page, and a former guard
                    // page of private anonymous memory reads zero (install zapped its data).
                    Ok(()) if adv == MADV_GUARD_REMOVE => {
                        for &g in &guards_before {
                            let zero = self.private_anon(pid, g);
                            for c in 0..2 {
                                let Some(cpu) = self.cpus[c].as_mut().filter(|c| c.pid() == Some(pid)) else {
                                    continue;
                                };
                                let r = cpu.load_u64(g + 16);
                                assert!(
                                    !r.is_err_and(|f| f.reason == FaultReason::Guard),
                                    "madvise(MADV_GUARD_REMOVE): CPU {c} still faults as a guard page at {g:#x}"
                                );
                                if zero {
                                    if let Ok(v) = r {
                                        assert_eq!(
                                            v, 0,
                                            "madvise(MADV_GUARD_REMOVE): former guard page {g:#x} reads {v:#x}"
                                        );
                                    }
                                }
                            }
                        }
                    }
                    Ok(()) => {}
                    Err(e) => assert_errno(
                        "madvise",
                        e,
                        &[
                            Errno::ESRCH,
                            Errno::EINVAL,
                            Errno::ENOMEM,
                            Errno::EAGAIN,
                            Errno::EACCES,
                            Errno::EPERM,
                            Errno::EBUSY,
                            Errno::EFAULT,
                            Errno::EIO,
                            Errno::EOPNOTSUPP,
                        ],
                    ),
                }
            }
            Op::Msync { p, addr, len, flags } => {
                let pid = self.pid(p);
                let (a, l) = (self.addr(pid, addr, false), self.len(pid, len));
                let fl = match flags {
                    0..=79 => MS_SYNC,
                    80..=159 => MS_ASYNC,
                    160..=199 => MS_SYNC | MS_INVALIDATE,
                    _ => flags as u32 & 0xf,
                };
                let r = m.msync(pid, a, l, fl);
                self.note(format_args!("msync({pid}, {a:#x}, {l:#x}, {fl:#x})"), &r);
                if let Err(e) = r {
                    assert_errno(
                        "msync",
                        e,
                        &[
                            Errno::ESRCH,
                            Errno::EINVAL,
                            Errno::ENOMEM,
                            Errno::EBUSY,
                            Errno::ENOSPC,
                            Errno::EIO,
                        ],
                    );
                }
            }
            Op::Brk { p, to } => {
                let pid = self.pid(p);
                let Ok(cur) = m.brk(pid, 0) else { return };
                let start = 0x5555_5600_0000u64;
                let want = match to {
                    BrkSel::Query => 0,
                    BrkSel::Rel { pages, bytes } => cur
                        .wrapping_add_signed(pages as i64 * PAGE_SIZE as i64)
                        .wrapping_add(if bytes >= 0xf000 { bytes as u64 & 0xfff } else { 0 }),
                    BrkSel::FromStart(n) => start + n as u64 * PAGE_SIZE,
                    BrkSel::Raw(v) => v,
                };
                let got = m.brk(pid, want).expect("process exists");
                self.note(format_args!("brk({pid}, {want:#x}) from {cur:#x}"), &got);
                assert!(
                    got == want || got == cur,
                    "brk({want:#x}) from {cur:#x} returned {got:#x}"
                );
                if got == want && want != 0 {
                    self.remember(got & !(PAGE_SIZE - 1));
                }
            }
            Op::Switch { cpu, p } => {
                let pid = self.pid(p);
                if let Err(e) = self.cpu(cpu).switch_to(pid) {
                    assert_errno("switch_to", e, &[Errno::ESRCH]);
                }
            }
            Op::Release { cpu } => {
                self.cpus[cpu.id()] = None;
            }
            Op::Load { cpu, addr } => {
                let pid = self.cpu_pid(cpu);
                let a = self.addr(pid, addr, true);
                let r = self.cpu(cpu).load_u64(a);
                self.note(format_args!("cpu{} load({a:#x})", cpu.id()), &r);
                check_fault(r.map(|_| ()), a);
            }
            Op::Store { cpu, addr, val } => {
                let pid = self.cpu_pid(cpu);
                let a = self.addr(pid, addr, true);
                let r = self.cpu(cpu).store_u64(a, val);
                self.note(format_args!("cpu{} store({a:#x})", cpu.id()), &r);
                check_fault(r, a);
                let c = self.cpu(cpu);
                if r.is_ok() {
                    let back = c.load_u64(a);
                    assert_eq!(back, Ok(val), "load after store at {a:#x}");
                }
            }
            Op::Read { cpu, addr, len } => {
                let pid = self.cpu_pid(cpu);
                let a = self.addr(pid, addr, true);
                let mut buf = vec![0u8; len as usize % (3 * PAGE_SIZE as usize)];
                check_fault(self.cpu(cpu).read(a, &mut buf), a);
            }
            Op::Write { cpu, addr, len, byte } => {
                let pid = self.cpu_pid(cpu);
                let a = self.addr(pid, addr, true);
                let data: Vec<u8> = (0..len as usize % (3 * PAGE_SIZE as usize))
                    .map(|i| byte.wrapping_add(i as u8))
                    .collect();
                let r = self.cpu(cpu).write(a, &data);
                self.note(format_args!("cpu{} write({a:#x}, {})", cpu.id(), data.len()), &r);
                check_fault(r, a);
                let c = self.cpu(cpu);
                if r.is_ok() {
                    let mut back = vec![0u8; data.len()];
                    assert_eq!(c.read(a, &mut back), Ok(()), "read after write at {a:#x}");
                    // A MAP_DROPPABLE page may have been dropped (read back as zeros) by the
                    // reclaim a later page's fault ran within the same write.
                    let dropped_ok = self.droppable_in(pid, a, a.saturating_add(data.len() as u64));
                    let same = |b: &[u8], d: &[u8]| b == d || (dropped_ok && b.iter().all(|&x| x == 0));
                    let page_off = (a % PAGE_SIZE) as usize;
                    let mut at = 0;
                    while at < data.len() {
                        let n = (PAGE_SIZE as usize - (page_off + at) % PAGE_SIZE as usize).min(data.len() - at);
                        assert!(
                            same(&back[at..at + n], &data[at..at + n]),
                            "read after write at {a:#x}: other bytes at {:#x}",
                            a + at as u64
                        );
                        at += n;
                    }
                }
            }
            Op::Touch { cpu, addr, kind } => {
                let pid = self.cpu_pid(cpu);
                let a = self.addr(pid, addr, true);
                let kind = [Access::Read, Access::Write, Access::Exec][kind as usize % 3];
                check_fault(self.cpu(cpu).access(a, kind), a);
            }
            Op::Fill { cpu, addr, pages, val } => {
                let pid = self.cpu_pid(cpu);
                let a = self.addr(pid, addr, true);
                let c = self.cpu(cpu);
                for i in 0..pages as u64 {
                    let r = c.store_u64(a.wrapping_add(i * PAGE_SIZE), val ^ i);
                    check_fault(r, a);
                    if r.is_err() {
                        break;
                    }
                }
            }
            Op::Coherence { cpu, addr, val, store } => {
                let (x, y) = (CpuSel(cpu.0), CpuSel(cpu.0 ^ 1));
                let Some(pid) = self.cpu(x).pid() else { return };
                if self.cpu(y).switch_to(pid).is_err() {
                    return;
                }
                let a = self.addr(pid, addr, true) & !7;
                let first = if store {
                    let r = self.cpu(x).store_u64(a, val);
                    check_fault(r, a);
                    r.map(|_| val)
                } else {
                    // x may hit its TLB: y, just flushed, walks the page table.
                    self.cpu(x).load_u64(a)
                };
                if let Ok(v) = first {
                    // y's TLB miss may run kswapd's work inline, which may drop a
                    // MAP_DROPPABLE or a lazily freed page (then both read zero from
                    // then on).
                    let droppable = self.droppable_in(pid, a, a + 8) || self.lazy_freed.contains(&pid);
                    let seen = self.cpu(y).load_u64(a);
                    let again = self.cpu(x).load_u64(a);
                    let dropped = droppable && seen == Ok(0) && again == Ok(0);
                    if !dropped {
                        assert_eq!(
                            seen,
                            Ok(v),
                            "CPU {} sees other memory than CPU {} at {a:#x}",
                            y.id(),
                            x.id()
                        );
                        assert_eq!(again, Ok(v), "CPU {} reloads at {a:#x}", x.id());
                    }
                }
            }
            Op::MachineRw { p, addr, len, write } => {
                let pid = self.pid(p);
                let a = self.addr(pid, addr, true);
                let mut buf = vec![0x5au8; len as usize % (2 * PAGE_SIZE as usize)];
                let r = if write {
                    m.write(pid, a, &buf)
                } else {
                    m.read(pid, a, &mut buf)
                };
                match r {
                    Ok(r) => check_fault(r, a),
                    Err(e) => assert_errno("Machine::read/write", e, &[Errno::EBUSY, Errno::ESRCH]),
                }
            }
            Op::Maps { p } => {
                let pid = self.pid(p);
                if let Ok(lines) = m.maps(pid) {
                    let mut prev = 0;
                    for l in &lines {
                        assert!(l.start < l.end && l.start >= prev, "maps: unsorted or empty line");
                        assert!(l.start % PAGE_SIZE == 0 && l.end % PAGE_SIZE == 0 && l.end <= TASK_SIZE);
                        prev = l.end;
                    }
                }
            }
            Op::Check => self.check("Check op"),
            Op::Rmap { cpu, addr, unmap } => self.rmap_op(cpu, addr, unmap),
        }
    }

    /// The process CPU `c` runs, to pick addresses from. A CPU left on a dead process (or
    /// on none) is first switched to a live one, unless `c` asks to stay (0xf0 and up).
    fn cpu_pid(&mut self, c: CpuSel) -> Pid {
        let live = self.live();
        let cur = self.cpu(c).pid();
        if let Some(pid) = cur.filter(|p| live.contains(p) || c.0 >= 0xf0) {
            return pid;
        }
        let Some(&pid) = live.get((c.0 >> 1) as usize % live.len().max(1)) else {
            return cur.unwrap_or(NO_PID);
        };
        self.cpu(c).switch_to(pid).expect("live process");
        pid
    }

    /// The address space of every live process, by id.
    fn mms(&self) -> Vec<(u64, Pid, vmlab_mm::sync::Arc<vmlab_mm::system::Process>)> {
        self.live()
            .into_iter()
            .filter_map(|pid| self.m.process(pid).ok().map(|p| (p.mm.id, pid, p)))
            .collect()
    }

    /// The entry at `va` in `pid`'s page table, if its tables exist.
    fn pte(&self, pid: Pid, va: u64) -> Option<Pte> {
        let p = self.m.process(pid).ok()?;
        let e = p.mm.page_table().leaf(self.m.phys(), va)?.load();
        Some(e)
    }

    /// Whether `va` of `pid` lies in a private anonymous VMA (demand-zero memory).
    fn private_anon(&self, pid: Pid, va: u64) -> bool {
        self.m.process(pid).is_ok_and(|p| {
            let st = p.mm.map.read();
            st.vmas
                .find(va)
                .is_some_and(|v| v.start <= va && matches!(v.backing, Backing::Anon))
        })
    }

    /// `Op::Rmap`: the frame mapped at `addr` (present, not special) in the process CPU `c`
    /// runs. Every (mm, va) `mappings_of` gives maps that frame (and the entry it was found
    /// from is among them). With `unmap`, `unmap_everywhere` clears them: then no address
    /// space maps the frame, the count is at least the distinct entries (an object table's
    /// entry, seen from each of its sharers, is one) and at most the mappings (a fork-shared
    /// table is first copied for each sharer), and the next access faults the page back:
    /// a page-cache page (file or shared memory) with its bytes, a private anonymous page of
    /// a private anonymous VMA as zeros (its data is gone: no swap). This is checked through
    /// every CPU running an address space that mapped it, so a TLB entry left by the
    /// shootdown shows up as the old bytes. (A private anonymous copy in a private file
    /// mapping faults the file's bytes back: not checked.)
    fn rmap_op(&mut self, c: CpuSel, addr: AddrSel, unmap: bool) {
        let m = self.m;
        let pid = self.cpu_pid(c);
        let va = self.addr(pid, addr, true) & !7;
        let page = va & !(PAGE_SIZE - 1);
        let Some(pte) = self.pte(pid, va) else { return };
        if !pte.present() || pte.special() {
            return;
        }
        let frame = pte.pfn();
        let mms = self.mms();
        let Some(&(mm_id, _, _)) = mms.iter().find(|x| x.1 == pid) else {
            return;
        };
        let before = m.mappings_of(frame);
        self.note(format_args!("mappings_of({frame:?}) from {pid} at {va:#x}"), &before);
        assert!(
            before.windows(2).all(|w| w[0] < w[1]),
            "mappings_of({frame:?}): not sorted or repeated: {before:?}"
        );
        assert!(
            before.contains(&(mm_id, page)),
            "mappings_of({frame:?}) misses ({mm_id}, {page:#x}), whose PTE {pte:?} maps it: {before:?} (rmap {:?})",
            self.rmap
        );
        // Every mapping found maps the frame, and the distinct entries among them.
        let mut entries: Vec<LeafRef<'_>> = Vec::new();
        for &(id, v) in &before {
            assert_eq!(v % PAGE_SIZE, 0, "mappings_of({frame:?}): unaligned {v:#x}");
            let Some((_, _, p)) = mms.iter().find(|x| x.0 == id) else {
                panic!("mappings_of({frame:?}): ({id}, {v:#x}) in no live process's address space");
            };
            let e = p.mm.page_table().leaf(m.phys(), v);
            let cur = e.map(|e| e.load());
            assert!(
                cur.is_some_and(|e| e.maps_frame() && e.pfn() == frame),
                "mappings_of({frame:?}): ({id}, {v:#x}) has {cur:?}, not that frame"
            );
            let e = e.unwrap();
            if !entries.iter().any(|x| x.same(e)) {
                entries.push(e);
            }
        }
        if !unmap {
            return;
        }
        let owner = m.phys().desc(frame).map(|d| d.owner());
        let off = (va % PAGE_SIZE) as usize / 8;
        let word = |m: &Machine| {
            m.phys()
                .ram()
                .word(frame.first_word() + off)
                .map(|w| w.load(std::sync::atomic::Ordering::Acquire))
        };
        let old = word(m);
        let n = m.unmap_everywhere(frame);
        let after = m.mappings_of(frame);
        self.note(format_args!("unmap_everywhere({frame:?})"), &(n, &after));
        // Each address space's page table, not the rmap: nothing maps the frame, except
        // where a fork-shared table could not be copied (no frame): those stay listed.
        for &(id, v) in &before {
            let Some((_, _, p)) = mms.iter().find(|x| x.0 == id) else {
                continue;
            };
            let cur = p.mm.page_table().leaf(m.phys(), v).map(|e| e.load());
            let still = cur.is_some_and(|e| e.maps_frame() && e.pfn() == frame);
            assert_eq!(
                still,
                after.contains(&(id, v)),
                "unmap_everywhere({frame:?}): ({id}, {v:#x}) has {cur:?}, mappings_of after: {after:?}"
            );
        }
        assert!(
            after.iter().all(|x| before.contains(x)),
            "unmap_everywhere({frame:?}): new mappings {after:?} (before: {before:?})"
        );
        if after.is_empty() {
            assert!(
                n >= entries.len().max(1) && n <= before.len(),
                "unmap_everywhere({frame:?}) cleared {n} PTEs: {} distinct entries, {} mappings",
                entries.len(),
                before.len()
            );
        } else {
            assert!(
                n < before.len(),
                "unmap_everywhere({frame:?}) cleared {n} of {} and left {after:?}",
                before.len()
            );
        }
        self.check(&format!("after unmap_everywhere({frame:?})"));
        if !after.is_empty() {
            return;
        }
        let Some(old) = old else { return };
        // The page faulted back through every CPU on an address space that mapped it.
        for ci in 0..2u8 {
            let Some(cpid) = self.cpus[ci as usize].as_ref().and_then(|c| c.pid()) else {
                continue;
            };
            let Some(&(cid, _, _)) = mms.iter().find(|x| x.1 == cpid) else {
                continue;
            };
            let vas: Vec<u64> = before
                .iter()
                .filter(|x| x.0 == cid)
                .map(|x| x.1 + off as u64 * 8)
                .take(2)
                .collect();
            for a in vas {
                let want = match owner {
                    Some(Owner::Object { .. }) => old,
                    Some(Owner::Anon { .. }) if self.private_anon(cpid, a) => 0,
                    _ => continue,
                };
                let r = self.cpus[ci as usize].as_mut().unwrap().load_u64(a);
                check_fault(r.map(|_| ()), a);
                if let Ok(v) = r {
                    assert_eq!(
                        v, want,
                        "after unmap_everywhere({frame:?}) ({owner:?}): CPU {ci} reads {v:#x} at {a:#x} of {cpid}, \
                         want {want:#x} (before: {old:#x})"
                    );
                }
            }
        }
    }

    /// After fork: a store by the parent (CPU 0, whose TLB may still hold a writable entry
    /// from before the fork) to a private writable page must not reach the child (CPU 1).
    fn fork_isolation(&mut self, parent: Pid, child: Pid, probes: &[(u64, u64)]) {
        let lines = self.m.maps(parent).unwrap_or_default();
        let private_rw = |a: u64| {
            lines
                .iter()
                .any(|l| l.start <= a && a < l.end && l.perms[1] == b'w' && l.perms[3] == b'p')
        };
        for &(a, v) in probes.iter().filter(|&&(a, _)| private_rw(a)).take(2) {
            if self.cpu(CpuSel(0)).pid() != Some(parent) || self.cpu(CpuSel(1)).pid() != Some(child) {
                return;
            }
            if self.cpu(CpuSel(0)).store_u64(a, !v).is_err() {
                continue;
            }
            if let Ok(c) = self.cpu(CpuSel(1)).load_u64(a) {
                assert_eq!(c, v, "fork: the parent's store at {a:#x} after fork reached the child");
            }
            assert_eq!(
                self.cpu(CpuSel(0)).load_u64(a),
                Ok(!v),
                "fork: parent reloads at {a:#x}"
            );
        }
    }

    /// Whether part of `[start, end)` in `pid` is MAP_DROPPABLE memory.
    fn droppable_in(&self, pid: Pid, start: u64, end: u64) -> bool {
        self.m.process(pid).is_ok_and(|p| {
            let st = p.mm.map.read();
            let mut at = start;
            while let Some(v) = st.vmas.find(at).filter(|v| v.start < end) {
                if v.flags.has(VmFlags::DROPPABLE) {
                    return true;
                }
                at = v.end;
            }
            false
        })
    }

    /// No CPU running `pid` can still `kind` at `addr` (after a syscall took that right away:
    /// its TLB entries must have been shot down). A store is only tried where one must fail.
    fn assert_no_access(&mut self, pid: Pid, addr: u64, kind: Access, what: &str) {
        // Below a MAP_GROWSDOWN VMA an access may rightly grow the stack
        // into the range just unmapped (Linux `expand_downwards`), and the
        // probe would change the map: nothing to check there.
        let below_stack = self.m.process(pid).is_ok_and(|p| {
            let st = p.mm.map.read();
            st.vmas
                .find(addr)
                .is_some_and(|v| v.start > addr && v.flags.has(VmFlags::GROWSDOWN))
        });
        if below_stack {
            return;
        }
        for c in 0..2u8 {
            let Some(cpu) = self.cpus[c as usize].as_mut() else {
                continue;
            };
            if cpu.pid() != Some(pid) {
                continue;
            }
            let r = match kind {
                Access::Write => cpu.store_u64(addr, 0xdead_beef),
                _ => cpu.load_u64(addr).map(|_| ()),
            };
            assert!(r.is_err(), "{what}: CPU {c} can still {kind:?} at {addr:#x}");
        }
    }

    /// A load at `addr`, a guard page of `pid`, through each CPU running `pid`: SIGSEGV, as a
    /// guard page (`FaultReason::Guard`, SEGV_MAPERR) if the VMA allows a read, else as a
    /// protection fault (the VMA's check comes first).
    fn assert_guard_fault(&mut self, pid: Pid, addr: u64) {
        let readable = self.m.maps(pid).is_ok_and(|lines| {
            lines
                .iter()
                .any(|l| l.start <= addr && addr < l.end && l.perms[..3] != *b"---")
        });
        for c in 0..2 {
            let Some(cpu) = self.cpus[c].as_mut().filter(|c| c.pid() == Some(pid)) else {
                continue;
            };
            let r = cpu.load_u64(addr);
            let want = if readable {
                FaultReason::Guard
            } else {
                FaultReason::Protection
            };
            assert!(
                r.is_err_and(|f| f.signal == Signal::Segv && f.reason == want),
                "guard page {addr:#x}: CPU {c} load gives {r:?}, want SIGSEGV {want:?}"
            );
        }
    }

    /// The words `probe` looks at that are guard pages of `pid`.
    fn probe_guards(&mut self, pid: Pid) -> Vec<u64> {
        let vmas = self.vmas(pid);
        let cpu = self.cpu(CpuSel(0));
        if vmas.is_empty() || cpu.switch_to(pid).is_err() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for &(s, e) in vmas.iter().take(2) {
            let mid = s + ((e - s) / PAGE_SIZE / 2) * PAGE_SIZE;
            for a in [s, mid + 8, e - 8] {
                if cpu.load_u64(a).is_err_and(|f| f.reason == FaultReason::Guard) {
                    out.push(a);
                }
            }
        }
        out
    }

    /// Up to 6 words of `pid` (first, middle and last page of up to two VMAs), read through CPU 0.
    fn probe(&mut self, pid: Pid) -> Vec<(u64, u64)> {
        let vmas = self.vmas(pid);
        if vmas.is_empty() {
            return Vec::new();
        }
        let cpu = self.cpu(CpuSel(0));
        if cpu.switch_to(pid).is_err() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for &(s, e) in vmas.iter().take(2) {
            let mid = s + ((e - s) / PAGE_SIZE / 2) * PAGE_SIZE;
            for a in [s, mid + 8, e - 8] {
                if let Ok(v) = cpu.load_u64(a) {
                    out.push((a, v));
                }
            }
        }
        out
    }

    /// A few mappings in `pid` so that short inputs find memory to touch: private and shared
    /// anonymous memory, a 4 MiB range over two whole 2 MiB blocks (shared tables), file
    /// mappings, a heap. Failures (a tiny `max_map_count`, no memory) are fine.
    fn premap(&mut self, pid: Pid, bits: u8) {
        let m = self.m;
        let rw = PROT_READ | PROT_WRITE;
        let anon = MAP_PRIVATE | MAP_ANONYMOUS;
        let mut maps: Vec<(u64, u64, u32, u32, i32)> = Vec::new();
        if bits & 1 != 0 {
            maps.push((0, 16 * PAGE_SIZE, rw, anon, -1));
        }
        if bits & 2 != 0 {
            maps.push((0, 8 * PAGE_SIZE, rw, MAP_SHARED | MAP_ANONYMOUS, -1));
        }
        if bits & 4 != 0 {
            maps.push((
                0x7f00_0020_0000,
                4 << 20,
                rw,
                anon | MAP_FIXED_NOREPLACE | MAP_NORESERVE,
                -1,
            ));
        }
        if bits & 8 != 0 {
            maps.push((
                0x7f00_0080_0000,
                4 << 20,
                rw,
                MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED,
                -1,
            ));
        }
        for (i, &(fd, _)) in self.files.iter().enumerate() {
            if bits & (0x10 << i) != 0 {
                let shared = if i % 2 == 0 { MAP_SHARED } else { MAP_PRIVATE };
                maps.push((0, 12 * PAGE_SIZE, rw, shared, fd));
            }
        }
        for (a, l, prot, flags, fd) in maps {
            if let Ok(got) = m.mmap_fd(pid, a, l, prot, flags, fd, 0) {
                self.remember(got);
            }
        }
        if bits & 0x80 != 0 {
            let cur = m.brk(pid, 0).expect("live");
            let _ = m.brk(pid, cur + 8 * PAGE_SIZE);
            self.remember(cur);
        }
    }

    fn check(&self, when: &str) {
        if let Err(e) = self.m.check() {
            panic!("invariant broken ({when}, rmap {:?}): {e}", self.rmap);
        }
        if self.rmap == RmapName::None {
            assert_eq!(self.m.rmap_bytes(), 0, "rmap = none keeps records ({when})");
        }
        let p = self.m.phys();
        assert!(p.frames_used() <= p.total_frames(), "more frames used than exist");
        for (fd, f) in &self.files {
            assert_eq!(
                f.refused_writes(),
                0,
                "write-back to fd {fd}, opened read-only ({when})"
            );
            assert!(
                f.len() <= (MAX_FILE_PAGES + 1) * PAGE_SIZE,
                "write-back past any length fd {fd} had ({when})"
            );
        }
    }
}

/// `x` rounded up to a page, wrapping as Linux's `PAGE_ALIGN`.
fn page_align(x: u64) -> u64 {
    x.wrapping_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1)
}

/// `[start, end)` is mapped.
fn assert_covered(vmas: &[(u64, u64)], start: u64, end: u64, what: &str) {
    let mut at = start;
    for &(s, e) in vmas {
        if s <= at && at < e {
            at = e;
        }
    }
    assert!(
        at >= end,
        "{what}: [{start:#x}, {end:#x}) not mapped after success (hole at {at:#x})"
    );
}

/// A fault is a value, never a panic; its address is the access's page or later.
fn check_fault(r: Result<(), Fault>, addr: u64) {
    if let Err(f) = r {
        assert!(
            f.addr >= addr & !(PAGE_SIZE - 1) || f.reason == FaultReason::BadAddress,
            "fault at {:#x} below the access at {addr:#x}",
            f.addr
        );
    }
}

/// Run a scenario: panics on any broken property (see the module doc). With
/// `VMLAB_FUZZ_TRACE` set, prints every op and its result to stderr.
pub fn run(s: &Scenario) {
    run_inner(s, std::env::var_os("VMLAB_FUZZ_TRACE").is_some());
}

/// `run`, printing every op and its result to stderr.
pub fn run_traced(s: &Scenario) {
    run_inner(s, true);
}

fn run_inner(s: &Scenario, trace: bool) {
    let config = s.setup.config();
    let m = Machine::new(&config).expect("config is valid");
    {
        let mut st = State {
            m: &m,
            cpus: [None, None],
            known: Vec::new(),
            fork_differs: Vec::new(),
            lazy_freed: Vec::new(),
            files: Vec::new(),
            recent: Vec::new(),
            trace,
            rmap: s.setup.rmap_name(),
        };
        let first = m.spawn().expect("a new machine has room for a process");
        st.known.push(first);
        for c in 0..2 {
            st.cpu(CpuSel(c)).switch_to(first).expect("spawned");
        }
        for i in 0..s.setup.files % 3 {
            st.open(8 + i * 5, 100 * i as u16, i != 1);
        }
        st.premap(first, s.setup.premap);
        for (i, op) in s.ops.iter().enumerate() {
            if st.trace {
                eprintln!("op {i}: {op:?}");
            }
            let t = std::time::Instant::now();
            st.step(op);
            if st.trace {
                eprintln!("    ({:?})", t.elapsed());
            }
            if (i + 1) % CHECK_EVERY == 0 {
                st.check(&format!("after op {i} {op:?}"));
            }
        }
        st.check("at the end");

        // Every process exits and every file closes: then nothing may be left, even with the
        // CPUs still bound to dead processes.
        for pid in m.pids() {
            m.exit(pid).expect("exit of a live process");
        }
        for fd in m.fds() {
            if let Err(e) = m.close(fd) {
                assert_errno("final close", e, &[Errno::ENOSPC]);
            }
        }
        st.check("after exit and close");
        assert_eq!(m.objects().len(), 0, "objects left after exit and close");
        assert_eq!(
            m.phys().frames_used(),
            m.reserved_frames(),
            "frames leaked after exit and close"
        );
        assert_eq!(m.phys().page_table_pages(), 0, "page-table pages left");
        // Records (identities, object lists) go with the last address space; the PTE-pointer
        // stores of pte_chain / pte_pool may keep their own pages.
        if matches!(st.rmap, RmapName::Object | RmapName::PrivateVma | RmapName::None) {
            assert_eq!(
                m.rmap_bytes(),
                0,
                "reverse-map records left after exit and close ({:?})",
                st.rmap
            );
        }
        // The CPUs still work (and fault: no process is left).
        for c in 0..2 {
            let cpu = st.cpu(CpuSel(c));
            assert!(cpu.load_u64(0x7f00_0000_0000).is_err());
        }
    }
    assert_eq!(
        m.phys().frames_used(),
        m.reserved_frames(),
        "frames leaked after dropping the CPUs"
    );
}
