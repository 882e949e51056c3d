//! Linux's user-visible constants for the memory syscalls (x86-64 values,
//! `include/uapi/asm-generic/mman-common.h`, `arch/x86/include/uapi/asm/mman.h`,
//! `include/uapi/linux/mman.h`, `siginfo.h`), and the defaults of the
//! tunables vmlab models. Every Linux constant vmlab understands is reachable
//! from here; the other modules import it from here, none defines its own.

pub use crate::addr::{MMAP_MIN_ADDR, PAGE_SIZE, TASK_SIZE};

pub const PROT_NONE: u32 = 0x0;
pub const PROT_READ: u32 = 0x1;
pub const PROT_WRITE: u32 = 0x2;
pub const PROT_EXEC: u32 = 0x4;
pub const PROT_SEM: u32 = 0x8;
pub const PROT_GROWSDOWN: u32 = 0x0100_0000;
pub const PROT_GROWSUP: u32 = 0x0200_0000;

pub const MAP_SHARED: u32 = 0x01;
pub const MAP_PRIVATE: u32 = 0x02;
pub const MAP_SHARED_VALIDATE: u32 = 0x03;
pub const MAP_TYPE: u32 = 0x0f;
/// Pages are dropped, never swapped, under memory pressure (Linux 6.11;
/// private anonymous memory only).
pub const MAP_DROPPABLE: u32 = 0x08;
pub const MAP_FIXED: u32 = 0x10;
pub const MAP_ANONYMOUS: u32 = 0x20;
/// x86: place the mapping in the low 2 GiB (ignored with MAP_FIXED).
pub const MAP_32BIT: u32 = 0x40;
/// x86: place the mapping above 4 GiB.
pub const MAP_ABOVE4G: u32 = 0x80;
pub const MAP_GROWSDOWN: u32 = 0x0100;
pub const MAP_DENYWRITE: u32 = 0x0800;
pub const MAP_EXECUTABLE: u32 = 0x1000;
pub const MAP_LOCKED: u32 = 0x2000;
pub const MAP_NORESERVE: u32 = 0x4000;
pub const MAP_POPULATE: u32 = 0x8000;
pub const MAP_NONBLOCK: u32 = 0x1_0000;
pub const MAP_STACK: u32 = 0x2_0000;
pub const MAP_HUGETLB: u32 = 0x4_0000;
pub const MAP_SYNC: u32 = 0x8_0000;
pub const MAP_FIXED_NOREPLACE: u32 = 0x10_0000;
pub const MAP_UNINITIALIZED: u32 = 0x400_0000;
/// MAP_HUGETLB page-size encodings: log2 of the size in bits 26-31.
pub const MAP_HUGE_SHIFT: u32 = 26;
pub const MAP_HUGE_2MB: u32 = 21 << MAP_HUGE_SHIFT;
pub const MAP_HUGE_1GB: u32 = 30 << MAP_HUGE_SHIFT;

/// Linux's default `stack_guard_gap` (256 pages): no mapping may come this
/// close below a MAP_GROWSDOWN VMA, and a stack does not grow to within it
/// of the mapping below.
pub const STACK_GUARD_GAP: u64 = 256 * PAGE_SIZE;

/// Default `vm.max_map_count`.
pub const DEFAULT_MAX_MAP_COUNT: usize = 65530;

pub const MS_ASYNC: u32 = 0x1;
pub const MS_INVALIDATE: u32 = 0x2;
pub const MS_SYNC: u32 = 0x4;

// open(2) access modes and lseek(2) whence values (include/uapi/asm-generic/fcntl.h, linux/fs.h).
pub const O_RDONLY: u32 = 0;
pub const O_WRONLY: u32 = 1;
pub const O_RDWR: u32 = 2;
pub const O_ACCMODE: u32 = 3;
pub const SEEK_SET: u32 = 0;
pub const SEEK_CUR: u32 = 1;
pub const SEEK_END: u32 = 2;
pub const SEEK_DATA: u32 = 3;
pub const SEEK_HOLE: u32 = 4;

pub const MREMAP_MAYMOVE: u32 = 1;
pub const MREMAP_FIXED: u32 = 2;
pub const MREMAP_DONTUNMAP: u32 = 4;

pub const MADV_NORMAL: u32 = 0;
pub const MADV_RANDOM: u32 = 1;
pub const MADV_SEQUENTIAL: u32 = 2;
pub const MADV_WILLNEED: u32 = 3;
pub const MADV_DONTNEED: u32 = 4;
pub const MADV_FREE: u32 = 8;
pub const MADV_REMOVE: u32 = 9;
pub const MADV_DONTFORK: u32 = 10;
pub const MADV_DOFORK: u32 = 11;
pub const MADV_MERGEABLE: u32 = 12;
pub const MADV_UNMERGEABLE: u32 = 13;
pub const MADV_HUGEPAGE: u32 = 14;
pub const MADV_NOHUGEPAGE: u32 = 15;
pub const MADV_DONTDUMP: u32 = 16;
pub const MADV_DODUMP: u32 = 17;
pub const MADV_WIPEONFORK: u32 = 18;
pub const MADV_KEEPONFORK: u32 = 19;
pub const MADV_COLD: u32 = 20;
pub const MADV_PAGEOUT: u32 = 21;
pub const MADV_POPULATE_READ: u32 = 22;
pub const MADV_POPULATE_WRITE: u32 = 23;
pub const MADV_DONTNEED_LOCKED: u32 = 24;
pub const MADV_COLLAPSE: u32 = 25;
pub const MADV_HWPOISON: u32 = 100;
pub const MADV_SOFT_OFFLINE: u32 = 101;
/// Guard-page advice (Linux 6.13).
pub const MADV_GUARD_INSTALL: u32 = 102;
pub const MADV_GUARD_REMOVE: u32 = 103;

/// `mlock2` flag: lock pages as they are faulted in, do not populate now.
pub const MLOCK_ONFAULT: u32 = 0x01;
/// `mlockall` flags: lock what is mapped now; lock what is mapped later
/// (`mm->def_flags`); with either, lock pages only as they are faulted in.
pub const MCL_CURRENT: u32 = 1;
pub const MCL_FUTURE: u32 = 2;
pub const MCL_ONFAULT: u32 = 4;

/// Resource numbers (`include/uapi/asm-generic/resource.h`).
pub const RLIMIT_STACK: u32 = 3;
pub const RLIMIT_MEMLOCK: u32 = 8;

/// `RLIM_INFINITY` (x86-64: all ones).
pub const RLIM_INFINITY: u64 = u64::MAX;
/// Linux's default `RLIMIT_STACK` soft limit (`_STK_LIM`, 8 MiB).
pub const STK_LIM: u64 = 8 << 20;
/// Linux's default `RLIMIT_MEMLOCK`, soft and hard (`MLOCK_LIMIT`, 8 MiB
/// since 5.16; `ulimit -l` on the test machines says 8192 KiB).
pub const MLOCK_LIMIT: u64 = 8 << 20;

/// `si_code` of a SIGSEGV (`include/uapi/asm-generic/siginfo.h`): no mapping.
pub const SEGV_MAPERR: i32 = 1;
/// `si_code`: a mapping forbids the access.
pub const SEGV_ACCERR: i32 = 2;
/// `si_code`: a protection key forbids the access.
pub const SEGV_PKUERR: i32 = 4;
/// `si_code` of a SIGBUS: the page is outside its object (`BUS_ADRERR`).
pub const BUS_ADRERR: i32 = 2;
