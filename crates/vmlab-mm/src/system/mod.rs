//! The machine: RAM, CPUs with their TLBs, processes and their address
//! spaces, the syscall entry points, statistics and the invariant checker.
//!
//! Owns: the process table, per-CPU TLBs, machine-wide counters.
//! May call: every layer below (`mm`, `tlb`, `pgtable`, `phys`, `frame`).
//! Host services (threads, clocks, files) stay outside: a host drives CPUs by
//! taking `Cpu` handles and moving them to its own threads.

mod check;
pub mod config;
mod cpu;
mod files;
pub mod host;
mod machine;
mod stats;

pub use check::InvariantError;
pub use config::{ByteSize, MachineConfig, RmapName};
pub use cpu::Cpu;
pub use files::{FileStat, OpenFile};
pub use host::{Host, SpinHost};
pub use machine::{HostNeed, Machine, MachineError, MapsLine, Pid, Process};
pub use stats::{Residency, Stats};
