//! What the machine needs from the host OS so that its CPUs, which are host
//! threads, behave like hardware CPUs towards a TLB shootdown.
//!
//! A hardware access is atomic with respect to an IPI: a CPU that looked up a
//! translation finishes the load or store before it handles the flush. A
//! simulated access is a TLB-slot load followed by a RAM-word access, and
//! the thread may be preempted between the two. So each CPU marks the span of
//! an access in a per-CPU word (`Machine::cpu_active`, plain stores, no
//! fence on the hot path), and a shootdown, after clearing the TLB slots,
//! calls `remote_barrier` (which makes those plain stores visible, as an
//! IPI would) and waits until every CPU it flushed has left the access it
//! was in. Linux has no analogue: it is the hardware's IPI and its ack.

/// Host services for the CPU handshake. `Send + Sync`: shootdowns run on any
/// thread. `Relax::relax` is called while spinning for another thread that
/// may have been preempted (a `yield` lets it run on an oversubscribed host).
use crate::phys::{GlobalBacking, RamBacking};
use crate::swap::{MemSwap, SwapDevice};
use crate::sync::Relax;
use alloc::boxed::Box;
use alloc::string::String;

pub trait Host: Relax + Send + Sync {
    /// A full memory barrier on every thread of this process: after it
    /// returns, every store another thread made before it is visible here
    /// (Linux `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`). Returns
    /// whether it did; `false` means it was only a local fence (the OS
    /// refused the call), and from then on `remote_barrier_is_real` is false.
    fn remote_barrier(&self) -> bool;

    /// Whether `remote_barrier` really orders the other threads' stores (a
    /// membarrier), rather than being a local fence only. It follows the
    /// real state: once a barrier has failed, it stays false.
    fn remote_barrier_is_real(&self) -> bool;

    /// Where the machine's simulated RAM and frame descriptors get their
    /// zeroed, lazily committed memory. The default is the global
    /// allocator; `vmlab::host::OsHost` reserves it with `mmap(MAP_NORESERVE)`,
    /// which a RAM larger than the host's memory needs.
    fn ram_backing(&self) -> &dyn RamBacking {
        &GlobalBacking
    }

    /// A monotonic clock in nanoseconds, if the host has one (reclaim's
    /// `reclaim_ns`); `None` by default (no_std has no clock).
    fn now_ns(&self) -> Option<u64> {
        None
    }

    /// Block the calling thread (the kswapd thread, `Machine::kswapd_thread`)
    /// until `unpark_kswapd` is called, or return at once if it was called
    /// since the last park (a token, as `std::thread::park` keeps one), or
    /// after a while in any case. The default spins once and returns: a
    /// host without blocking runs kswapd's work inline instead.
    fn park_kswapd(&self) {
        core::hint::spin_loop();
    }

    /// Wake the thread parked in `park_kswapd` (or leave it the token).
    fn unpark_kswapd(&self) {}

    /// A swap device of `bytes` bytes (config `swap_size`), created in
    /// `dir` (config `swap_dir`; empty: the host's choice). The default keeps
    /// the slots in memory (`swap::MemSwap`); `vmlab::host::OsHost` creates
    /// a real file, unlinked at once. The error says what the host refused.
    fn swap_device(&self, bytes: u64, _dir: &str) -> Result<Box<dyn SwapDevice>, String> {
        Ok(Box::new(MemSwap::new(bytes / crate::addr::PAGE_SIZE)))
    }
}

/// The host of a `Machine::new`: no OS services. Its barrier is a local
/// SeqCst fence, which does not order the other CPUs' plain stores: a
/// shootdown may miss an access that started a few nanoseconds before it.
/// Hosts with threads use `vmlab::host::OsHost` (membarrier and yield).
pub struct SpinHost;

impl Host for SpinHost {
    fn remote_barrier(&self) -> bool {
        crate::sync::fence(crate::sync::Ordering::SeqCst);
        false
    }
    fn remote_barrier_is_real(&self) -> bool {
        false
    }
}

impl Relax for SpinHost {
    fn relax(&self) {
        core::hint::spin_loop();
    }
}
