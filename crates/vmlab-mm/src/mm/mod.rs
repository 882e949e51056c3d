//! Address spaces: the VMA map plus the page table, the demand fault handler,
//! and the memory syscalls with Linux semantics, one file per operation.
//!
//! Owns: VMAs, the mapping of pages into page tables, anonymous identities,
//! memory objects and their page caches (`object.rs`).
//! May call: `addr`, `errno`, `phys`, `pgtable`, `tlb`, `sync`.

pub mod address_space;
mod brk;
pub mod fault;
pub mod fault_lock;
mod filemap;
pub mod fork;
mod madvise;
mod memfile;
mod mincore;
pub mod mlock;
mod mmap;
mod mprotect;
mod mremap;
mod msync;
mod munmap;
pub mod object;
pub mod oom;
mod populate;
pub mod pte_ops;
pub mod reclaim;
pub mod registry;
pub mod rmap;
mod shared_pt;
pub mod stack;
pub mod stats;
pub(crate) mod swap_cache;
mod swapin;
pub mod uapi;
pub mod vma;
pub mod vma_map;

pub use address_space::{AddressSpace, AddressSpaceParams, MapState};
pub use fault::Access;
pub use fault_lock::FaultLock;
pub use fork::{ForkPolicy, ForkReport};
pub use madvise::{AdviceWork, Removal, READAHEAD_PAGES};
pub use memfile::MemFile;
pub use mmap::MmapRequest;
pub use msync::SyncWork;
pub use object::{AccessMode, BackingFile, MemObject, ObjectTable, MAX_LFS_FILESIZE};
pub use reclaim::{ClockProState, ReclaimPolicy};
pub use registry::MmRegistry;
pub use rmap::{Rmap, RmapCx, RmapPolicy};
pub use stack::Rlimit;
pub use stats::MmCounters;
pub use vma::{Backing, ObjectId, Prot, VmFlags, Vma};
pub use vma_map::{VmaMap, VmaMapPolicy, VmaTree};
