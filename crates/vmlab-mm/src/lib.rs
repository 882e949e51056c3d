//! vmlab-mm: a virtual-memory subsystem as a library, `no_std` + `alloc`.
//!
//! Layers, lowest first (nothing below imports from above):
//! `addr`/`errno`/`sync` (vocabulary), `phys` (RAM and frame descriptors),
//! `frame` (frame allocators), `pgtable` (page tables), `tlb` (software TLB),
//! `mm` (VMAs, faults, syscalls), `system` (machine, CPUs, processes,
//! config, invariant checker). See docs/ARCHITECTURE.md.
#![no_std]
#![forbid(unsafe_op_in_unsafe_fn)]

extern crate alloc;

pub mod addr;
pub mod errno;
pub mod frame;
pub mod mm;
pub mod pgtable;
pub mod phys;
pub mod swap;
pub mod sync;
pub mod system;
pub mod tlb;
