//! The one place the mm core gets its atomics and locks from.
//!
//! Normally they are `core`'s atomics and `spin`'s locks (no_std, no host
//! scheduler needed). Under `cfg(loom)` they are loom's, so model tests of the
//! lock protocols need no rewrite. Nothing else in the crate names
//! `core::sync::atomic` or a lock crate directly.

#[cfg(not(loom))]
pub use core::sync::atomic::{fence, AtomicBool, AtomicI32, AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};
#[cfg(loom)]
pub use loom::sync::atomic::{fence, AtomicBool, AtomicI32, AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// A compiler-only barrier (no instruction): the CPU access marks of
/// `system/cpu.rs` rely on the host's `remote_barrier` for the hardware part.
pub use core::sync::atomic::compiler_fence;

#[cfg(not(loom))]
pub use alloc::sync::Arc;
#[cfg(loom)]
pub use loom::sync::Arc;

#[cfg(not(loom))]
mod imp {
    /// A mutual-exclusion lock; `lock()` returns the guard directly.
    pub type Mutex<T> = spin::Mutex<T>;
    pub type MutexGuard<'a, T> = spin::MutexGuard<'a, T>;
    pub type RwLockReadGuard<'a, T> = spin::RwLockReadGuard<'a, T>;
    pub type RwLockWriteGuard<'a, T> = spin::RwLockWriteGuard<'a, T>;

    /// A reader-writer lock that prefers writers: once a writer waits, new
    /// readers wait behind it. `spin`'s own lock lets a stream of readers
    /// (CPUs faulting in a loop) starve a writer (a munmap) for ever; Linux's
    /// rwsem queues readers behind a waiting writer in the same way.
    pub struct RwLock<T> {
        inner: spin::RwLock<T>,
        writers_waiting: core::sync::atomic::AtomicUsize,
    }

    impl<T> RwLock<T> {
        pub const fn new(t: T) -> Self {
            RwLock {
                inner: spin::RwLock::new(t),
                writers_waiting: core::sync::atomic::AtomicUsize::new(0),
            }
        }

        #[inline]
        pub fn read(&self) -> RwLockReadGuard<'_, T> {
            loop {
                if self.writers_waiting.load(core::sync::atomic::Ordering::Relaxed) == 0 {
                    if let Some(g) = self.inner.try_read() {
                        return g;
                    }
                }
                core::hint::spin_loop();
            }
        }

        pub fn write(&self) -> RwLockWriteGuard<'_, T> {
            use core::sync::atomic::Ordering;
            self.writers_waiting.fetch_add(1, Ordering::Relaxed);
            let g = self.inner.write();
            self.writers_waiting.fetch_sub(1, Ordering::Relaxed);
            g
        }

        pub fn get_mut(&mut self) -> &mut T {
            self.inner.get_mut()
        }
    }
}

#[cfg(loom)]
mod imp {
    /// loom's mutex with the same call shape as the spin one.
    pub struct Mutex<T>(loom::sync::Mutex<T>);
    pub type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;
    impl<T> Mutex<T> {
        pub fn new(t: T) -> Self {
            Mutex(loom::sync::Mutex::new(t))
        }
        pub fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap()
        }
        pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
            self.0.try_lock().ok()
        }
        pub fn get_mut(&mut self) -> &mut T {
            self.0.get_mut().unwrap()
        }
    }
    pub struct RwLock<T>(loom::sync::RwLock<T>);
    pub type RwLockReadGuard<'a, T> = loom::sync::RwLockReadGuard<'a, T>;
    pub type RwLockWriteGuard<'a, T> = loom::sync::RwLockWriteGuard<'a, T>;
    impl<T> RwLock<T> {
        pub fn new(t: T) -> Self {
            RwLock(loom::sync::RwLock::new(t))
        }
        pub fn read(&self) -> RwLockReadGuard<'_, T> {
            self.0.read().unwrap()
        }
        pub fn write(&self) -> RwLockWriteGuard<'_, T> {
            self.0.write().unwrap()
        }
        pub fn get_mut(&mut self) -> &mut T {
            self.0.get_mut().unwrap()
        }
    }
}

pub use imp::*;

/// `T` alone on its cache line (128 bytes: two 64-byte lines, as adjacent-line
/// prefetch pairs them), so that per-CPU data written by one CPU never
/// shares a line with another CPU's.
#[repr(align(128))]
#[derive(Default)]
pub struct CachePadded<T>(pub T);

impl<T> core::ops::Deref for CachePadded<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}

/// One `T` per CPU plus one for callers on no CPU (syscalls), each on its
/// own cache line. `get(cpu)` with `cpu` past the last CPU gives that extra
/// slot. Linux: `DEFINE_PER_CPU`.
pub struct PerCpu<T> {
    slots: alloc::boxed::Box<[CachePadded<T>]>,
}

impl<T: Default> PerCpu<T> {
    /// Slots for `cpus` CPUs and the no-CPU caller.
    pub fn new(cpus: usize) -> PerCpu<T> {
        PerCpu {
            slots: (0..=cpus).map(|_| CachePadded::default()).collect(),
        }
    }
}

impl<T> PerCpu<T> {
    /// The slot of `cpu` (the no-CPU slot for any index past the last CPU).
    #[inline]
    pub fn get(&self, cpu: usize) -> &T {
        let last = self.slots.len() - 1;
        &self.slots[cpu.min(last)].0
    }

    /// Every slot, the no-CPU one last.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().map(|s| &s.0)
    }
}

/// A counter many CPUs change at once without sharing a cache line: each
/// adds to its own slot, readers sum the slots. The sum is exact once the
/// writers have stopped; while they run it is some recent value. Linux:
/// `percpu_counter` (and the split RSS counters of `mm_struct`).
pub struct PerCpuCounter {
    slots: PerCpu<AtomicI64>,
}

impl PerCpuCounter {
    pub fn new(cpus: usize) -> PerCpuCounter {
        PerCpuCounter {
            slots: PerCpu::new(cpus),
        }
    }

    #[inline]
    pub fn add(&self, cpu: usize, n: usize) {
        self.slots.get(cpu).fetch_add(n as i64, Ordering::Relaxed);
    }

    #[inline]
    pub fn sub(&self, cpu: usize, n: usize) {
        self.slots.get(cpu).fetch_sub(n as i64, Ordering::Relaxed);
    }

    /// The sum over every slot (a slot may be negative: a frame counted on
    /// one CPU can be uncounted on another).
    pub fn get(&self) -> usize {
        let s: i64 = self.slots.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        s.max(0) as usize
    }
}
