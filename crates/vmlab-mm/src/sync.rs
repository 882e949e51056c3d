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
    /// starve a writer for ever; Linux's rwsem queues readers behind a
    /// waiting writer in the same way. (The map lock, read on every fault,
    /// is a `BrLock`, writer-preferring by its own protocol.)
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
        pub fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
            self.0.try_read().ok()
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

/// The exclusion protocol of `BrLock`, without the data (so that loom can
/// model it): Linux 2.4's "big reader lock" (`brlock`). A reader counts
/// itself in its CPU's slot and then checks that no writer is in; a writer
/// announces itself and then waits for every slot to drain. Both sides put
/// a SeqCst fence between announcing and checking, so at least one of them
/// sees the other (Dekker). Writers are preferred: a reader that meets an announced
/// writer steps back and waits. Readers on no CPU (syscalls) share one slot.
pub struct BrGate {
    /// Serialises writers among themselves.
    writers: Mutex<()>,
    /// A writer holds or waits for the lock.
    writer: AtomicBool,
    readers: PerCpu<AtomicUsize>,
}

impl BrGate {
    /// A gate with read slots for `cpus` CPUs and the no-CPU slot.
    pub fn new(cpus: usize) -> BrGate {
        BrGate {
            writers: Mutex::new(()),
            writer: AtomicBool::new(false),
            readers: PerCpu::new(cpus),
        }
    }

    /// Enter as a reader on CPU `cpu`; returns the slot to `read_exit` with.
    #[inline]
    pub fn read_enter(&self, cpu: usize) -> &AtomicUsize {
        let slot = self.readers.get(cpu);
        loop {
            slot.fetch_add(1, Ordering::Acquire);
            // Count, fence, then look: pairs with the writer's fence.
            fence(Ordering::SeqCst);
            if !self.writer.load(Ordering::Acquire) {
                return slot;
            }
            slot.fetch_sub(1, Ordering::Release);
            while self.writer.load(Ordering::Relaxed) {
                core::hint::spin_loop();
                #[cfg(loom)]
                loom::thread::yield_now();
            }
        }
    }

    /// As `read_enter`, but `None` instead of waiting when a writer holds
    /// or waits for the lock.
    #[inline]
    pub fn try_read_enter(&self, cpu: usize) -> Option<&AtomicUsize> {
        let slot = self.readers.get(cpu);
        slot.fetch_add(1, Ordering::Acquire);
        fence(Ordering::SeqCst);
        if !self.writer.load(Ordering::Acquire) {
            return Some(slot);
        }
        slot.fetch_sub(1, Ordering::Release);
        None
    }

    /// Leave a read section entered with `read_enter`.
    #[inline]
    pub fn read_exit(slot: &AtomicUsize) {
        slot.fetch_sub(1, Ordering::Release);
    }

    /// Enter as the writer; the guard keeps other writers out until
    /// `write_exit`.
    pub fn write_enter(&self) -> MutexGuard<'_, ()> {
        let w = self.writers.lock();
        self.writer.store(true, Ordering::Relaxed);
        // Announce, fence, then look: pairs with the readers' fence.
        fence(Ordering::SeqCst);
        for slot in self.readers.iter() {
            while slot.load(Ordering::Acquire) != 0 {
                core::hint::spin_loop();
                #[cfg(loom)]
                loom::thread::yield_now();
            }
        }
        w
    }

    /// Leave the write section (then drop the guard `write_enter` gave).
    pub fn write_exit(&self) {
        self.writer.store(false, Ordering::Release);
    }
}

/// A reader-writer lock whose readers touch only their own CPU's cache line
/// (`BrGate`), for data read on every fault and written rarely (the VMA map).
#[cfg(not(loom))]
pub struct BrLock<T> {
    gate: BrGate,
    data: core::cell::UnsafeCell<T>,
}

// SAFETY: the lock hands out `&T` to several threads only while no `&mut T`
// exists (readers and the writer exclude each other through the gate), and
// `&mut T` to one thread at a time, so sharing it is as safe as sharing an
// `RwLock<T>`: it needs `T: Send + Sync`.
#[cfg(not(loom))]
unsafe impl<T: Send + Sync> Sync for BrLock<T> {}
// SAFETY: moving the lock moves the `T` it owns.
#[cfg(not(loom))]
unsafe impl<T: Send> Send for BrLock<T> {}

#[cfg(not(loom))]
impl<T> BrLock<T> {
    /// A lock with read slots for `cpus` CPUs and the no-CPU slot.
    pub fn new(cpus: usize, t: T) -> BrLock<T> {
        BrLock {
            gate: BrGate::new(cpus),
            data: core::cell::UnsafeCell::new(t),
        }
    }

    /// Read on CPU `cpu` (its own slot; the no-CPU slot past the last CPU).
    #[inline]
    pub fn read_on(&self, cpu: usize) -> BrReadGuard<'_, T> {
        let slot = self.gate.read_enter(cpu);
        BrReadGuard { lock: self, slot }
    }

    /// Read from no particular CPU (a syscall, a statistics reader).
    #[inline]
    pub fn read(&self) -> BrReadGuard<'_, T> {
        self.read_on(usize::MAX)
    }

    /// Read from no particular CPU if no writer holds or waits for the
    /// lock (reclaim, which must never wait for another address space's
    /// map lock: the lock is not reentrant and writers are preferred).
    #[inline]
    pub fn try_read(&self) -> Option<BrReadGuard<'_, T>> {
        let slot = self.gate.try_read_enter(usize::MAX)?;
        Some(BrReadGuard { lock: self, slot })
    }

    /// Write: exclusive of every reader and writer.
    pub fn write(&self) -> BrWriteGuard<'_, T> {
        let w = self.gate.write_enter();
        BrWriteGuard { lock: self, _w: w }
    }

    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

/// A read hold of a `BrLock`.
#[cfg(not(loom))]
pub struct BrReadGuard<'a, T> {
    lock: &'a BrLock<T>,
    slot: &'a AtomicUsize,
}

#[cfg(not(loom))]
impl<T> core::ops::Deref for BrReadGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: this guard is counted in a read slot and saw no writer
        // after counting itself (`BrGate::read_enter`), so no writer holds
        // the lock until the guard drops (a writer waits for every slot to drain).
        unsafe { &*self.lock.data.get() }
    }
}

#[cfg(not(loom))]
impl<T> Drop for BrReadGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        BrGate::read_exit(self.slot);
    }
}

/// The write hold of a `BrLock`.
#[cfg(not(loom))]
pub struct BrWriteGuard<'a, T> {
    lock: &'a BrLock<T>,
    _w: MutexGuard<'a, ()>,
}

#[cfg(not(loom))]
impl<T> core::ops::Deref for BrWriteGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the writer is alone: other writers wait on `writers`, and
        // readers saw `writer` set (or were drained) before this guard existed.
        unsafe { &*self.lock.data.get() }
    }
}

#[cfg(not(loom))]
impl<T> core::ops::DerefMut for BrWriteGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`; `&mut self` makes this the only borrow.
        unsafe { &mut *self.lock.data.get() }
    }
}

#[cfg(not(loom))]
impl<T> Drop for BrWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.gate.write_exit();
    }
}

/// Under loom, a `BrLock` is loom's `RwLock` (the per-CPU slots matter for
/// speed, not for the protocols the models check).
#[cfg(loom)]
pub struct BrLock<T>(RwLock<T>);
#[cfg(loom)]
pub type BrReadGuard<'a, T> = RwLockReadGuard<'a, T>;
#[cfg(loom)]
pub type BrWriteGuard<'a, T> = RwLockWriteGuard<'a, T>;

#[cfg(loom)]
impl<T> BrLock<T> {
    pub fn new(_cpus: usize, t: T) -> BrLock<T> {
        BrLock(RwLock::new(t))
    }
    pub fn read_on(&self, _cpu: usize) -> BrReadGuard<'_, T> {
        self.0.read()
    }
    pub fn read(&self) -> BrReadGuard<'_, T> {
        self.0.read()
    }
    pub fn try_read(&self) -> Option<BrReadGuard<'_, T>> {
        self.0.try_read()
    }
    pub fn write(&self) -> BrWriteGuard<'_, T> {
        self.0.write()
    }
    pub fn get_mut(&mut self) -> &mut T {
        self.0.get_mut()
    }
}

/// What a spin-wait calls now and then: the thread it waits for may be a
/// preempted host thread. The machine's `Host` provides it (a yield); the
/// mm core only sees this trait.
pub trait Relax {
    fn relax(&self);
}

/// A lock that may be held across host I/O (Linux's sleeping `i_rwsem`):
/// a waiter never spins; between tries it gives its host thread up
/// (`Relax::relax`, a `sched_yield` under `vmlab::host::OsHost`), so a
/// holder blocked in a file read or write costs the waiters no CPU. No spin
/// lock is held across host I/O: the rule of docs/ARCHITECTURE.md.
pub struct SleepLock<T>(Mutex<T>);

impl<T> SleepLock<T> {
    pub fn new(t: T) -> SleepLock<T> {
        SleepLock(Mutex::new(t))
    }

    /// Take the lock, yielding to the host while another holds it.
    pub fn lock<'a>(&'a self, relax: &dyn Relax) -> MutexGuard<'a, T> {
        loop {
            if let Some(g) = self.0.try_lock() {
                return g;
            }
            relax.relax();
        }
    }
}
