//! Where the machine's big per-frame arrays get their host memory: the RAM
//! words and the frame descriptors. A host seam (docs/ARCHITECTURE.md): the
//! default takes zeroed memory from the global allocator; a host can do
//! better, e.g. `vmlab::host::OsHost` reserves it with an anonymous
//! `MAP_NORESERVE` mapping, so a 100 GiB machine on a 24 GiB host costs only
//! the pages it touches (one huge allocation from the global allocator is
//! refused by Linux's overcommit heuristic, and `vec!` then aborts).
//!
//! Both arrays are zero-filled lazily: the host hands out pages of zeros
//! only when they are first touched, which is why a frame descriptor's
//! all-zero bit pattern is its initial state (`FrameDesc::new`).

use crate::sync::AtomicU64;
use core::marker::PhantomData;
use core::ptr::NonNull;

/// A provider of zeroed, lazily committed host memory, counted in 8-byte words.
pub trait RamBacking: Send + Sync {
    /// `words` zeroed words, or `None` if the host will not give them (the
    /// caller reports the size; nothing may abort). `words` is at least 1.
    fn zeroed_words(&self, words: usize) -> Option<ZeroedWords>;
}

/// Zeroed words owned by the value; given back to their provider on drop.
pub struct ZeroedWords {
    ptr: NonNull<u64>,
    words: usize,
    release: unsafe fn(NonNull<u64>, usize),
}

// SAFETY: the words are only reached through `AtomicU64` views (`ZeroedArray`
// of `Zeroable` types, all of them atomics), so sharing them between threads
// is as safe as sharing a `[AtomicU64]`; `release` is a plain function.
unsafe impl Send for ZeroedWords {}
// SAFETY: as for `Send`.
unsafe impl Sync for ZeroedWords {}

impl ZeroedWords {
    /// Take ownership of `words` words at `ptr`.
    ///
    /// # Safety
    /// `ptr` is 8-byte aligned and points at `words` words that are all zero,
    /// readable and writable, used by nothing else, and stay at that address
    /// until `release(ptr, words)` is called, which `Drop` does exactly once.
    pub unsafe fn from_raw(ptr: NonNull<u64>, words: usize, release: unsafe fn(NonNull<u64>, usize)) -> ZeroedWords {
        ZeroedWords { ptr, words, release }
    }

    /// Size in words.
    pub fn len(&self) -> usize {
        self.words
    }

    /// Whether it holds no word.
    pub fn is_empty(&self) -> bool {
        self.words == 0
    }
}

impl Drop for ZeroedWords {
    fn drop(&mut self) {
        // SAFETY: `from_raw`'s contract: `release` frees exactly this memory,
        // and this is the one call (nothing borrows it past the drop: views
        // borrow the `ZeroedWords` or are owned with it by `ZeroedArray`).
        unsafe { (self.release)(self.ptr, self.words) }
    }
}

/// The default provider: the global allocator's zeroed path (`calloc`,
/// fresh anonymous pages for a large block on a Linux host). Refused when
/// the allocator returns null (no abort).
pub struct GlobalBacking;

impl RamBacking for GlobalBacking {
    fn zeroed_words(&self, words: usize) -> Option<ZeroedWords> {
        let layout = core::alloc::Layout::array::<u64>(words.max(1)).ok()?;
        // SAFETY: the layout has a non-zero size (at least one word).
        let p = unsafe { alloc::alloc::alloc_zeroed(layout) } as *mut u64;
        let ptr = NonNull::new(p)?;
        unsafe fn release(ptr: NonNull<u64>, words: usize) {
            if let Ok(layout) = core::alloc::Layout::array::<u64>(words.max(1)) {
                // SAFETY: `ptr` came from `alloc_zeroed` with this layout (the
                // same `words`, see `zeroed_words`), and is freed once.
                unsafe { alloc::alloc::dealloc(ptr.as_ptr() as *mut u8, layout) }
            }
        }
        // SAFETY: `alloc_zeroed` returned `words` zeroed words (u64-aligned,
        // owned by us) that stay put until `dealloc`, which `release` calls.
        Some(unsafe { ZeroedWords::from_raw(ptr, words, release) })
    }
}

/// Types for which the all-zero bit pattern is a valid value, of size a
/// multiple of 8 and alignment at most 8, so an array of them can live in
/// `ZeroedWords`.
///
/// # Safety
/// Implement only for such types (atomics of integers and structs of them).
pub unsafe trait Zeroable: Sized {
    /// The all-zero value (under loom, where atomics are not plain words,
    /// arrays are built from it).
    fn zero() -> Self;
}

// SAFETY: `AtomicU64` has the size, alignment and bit validity of `u64`.
#[cfg(not(loom))]
unsafe impl Zeroable for AtomicU64 {
    fn zero() -> Self {
        AtomicU64::new(0)
    }
}

/// `len` values of `T`, all zero at first, in memory from a `RamBacking`.
#[cfg(not(loom))]
pub struct ZeroedArray<T: Zeroable> {
    mem: ZeroedWords,
    len: usize,
    _t: PhantomData<T>,
}

#[cfg(not(loom))]
impl<T: Zeroable> ZeroedArray<T> {
    const WORDS_EACH: usize = {
        assert!(core::mem::size_of::<T>().is_multiple_of(8) && core::mem::align_of::<T>() <= 8);
        core::mem::size_of::<T>() / 8
    };

    /// `len` zero values from `backing`; `None` if it refuses (or the size overflows).
    pub fn new(backing: &dyn RamBacking, len: usize) -> Option<ZeroedArray<T>> {
        let words = len.checked_mul(Self::WORDS_EACH)?;
        let mem = backing.zeroed_words(words.max(1))?;
        if mem.len() < words {
            return None;
        }
        Some(ZeroedArray {
            mem,
            len,
            _t: PhantomData,
        })
    }

    /// The values.
    #[inline]
    pub fn as_slice(&self) -> &[T] {
        // SAFETY: `mem` holds at least `len * size_of::<T>()` bytes, 8-byte
        // aligned (`T`'s alignment is at most 8), which started all zero, a
        // valid `T` (`Zeroable`), and since then were changed only through
        // `&T` (atomics), so they hold valid `T`s; they live as long as `self`.
        unsafe { core::slice::from_raw_parts(self.mem.ptr.as_ptr() as *const T, self.len) }
    }
}

/// Under loom, a boxed slice of loom atomics, built value by value.
#[cfg(loom)]
pub struct ZeroedArray<T: Zeroable> {
    values: alloc::boxed::Box<[T]>,
    _t: PhantomData<T>,
}

#[cfg(loom)]
impl<T: Zeroable> ZeroedArray<T> {
    pub fn new(_backing: &dyn RamBacking, len: usize) -> Option<ZeroedArray<T>> {
        Some(ZeroedArray {
            values: (0..len).map(|_| T::zero()).collect(),
            _t: PhantomData,
        })
    }

    #[inline]
    pub fn as_slice(&self) -> &[T] {
        &self.values
    }
}

#[cfg(loom)]
// SAFETY: under loom arrays are built with `zero()`; no bit pattern is assumed.
unsafe impl Zeroable for AtomicU64 {
    fn zero() -> Self {
        AtomicU64::new(0)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::Ordering;

    #[test]
    fn global_backing_gives_zeroed_words_that_can_be_written() {
        let a: ZeroedArray<AtomicU64> = ZeroedArray::new(&GlobalBacking, 1000).unwrap();
        assert_eq!(a.as_slice().len(), 1000);
        assert!(a.as_slice().iter().all(|w| w.load(Ordering::Relaxed) == 0));
        a.as_slice()[999].store(7, Ordering::Relaxed);
        assert_eq!(a.as_slice()[999].load(Ordering::Relaxed), 7);
    }

    #[test]
    fn a_refusing_backing_gives_none() {
        struct Refuse;
        impl RamBacking for Refuse {
            fn zeroed_words(&self, _: usize) -> Option<ZeroedWords> {
                None
            }
        }
        assert!(ZeroedArray::<AtomicU64>::new(&Refuse, 10).is_none());
        // An overflowing size is refused before any allocation.
        assert!(ZeroedArray::<AtomicU64>::new(&GlobalBacking, usize::MAX).is_none());
    }
}
