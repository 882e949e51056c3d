//! The one place the mm core gets its atomics and locks from.
//!
//! Normally they are `core`'s atomics and `spin`'s locks (no_std, no host
//! scheduler needed). Under `cfg(loom)` they are loom's, so model tests of the
//! lock protocols need no rewrite. Nothing else in the crate names
//! `core::sync::atomic` or a lock crate directly.

#[cfg(not(loom))]
pub use core::sync::atomic::{fence, AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering};
#[cfg(loom)]
pub use loom::sync::atomic::{fence, AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering};

#[cfg(not(loom))]
pub use alloc::sync::Arc;
#[cfg(loom)]
pub use loom::sync::Arc;

#[cfg(not(loom))]
mod imp {
    /// A mutual-exclusion lock; `lock()` returns the guard directly.
    pub type Mutex<T> = spin::Mutex<T>;
    pub type MutexGuard<'a, T> = spin::MutexGuard<'a, T>;
    /// A reader-writer lock; `read()`/`write()` return guards directly.
    pub type RwLock<T> = spin::RwLock<T>;
    pub type RwLockReadGuard<'a, T> = spin::RwLockReadGuard<'a, T>;
    pub type RwLockWriteGuard<'a, T> = spin::RwLockWriteGuard<'a, T>;
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
