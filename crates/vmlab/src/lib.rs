//! vmlab on a host: loading the machine config and running workloads on the
//! simulated machine, with CPUs as host threads.

pub use vmlab_mm as mm;

pub mod cache;
pub mod config;
pub mod exp;
pub mod host;
pub mod oracle;
pub mod replay;
pub mod trace;
pub mod workload;
