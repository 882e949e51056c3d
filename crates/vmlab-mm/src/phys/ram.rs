//! Simulated RAM: one host allocation of 64-bit words indexed by frame number.
//!
//! Words are `AtomicU64` accessed with `Relaxed` ordering (plain moves on
//! x86-64) because several simulated CPUs may touch the same bytes at once, as
//! real CPUs do; a racy simulated program must not be undefined behaviour in
//! Rust. Page-table pages live here too, so a page-table entry is a RAM word.

use super::backing::{GlobalBacking, RamBacking, ZeroedArray};
use crate::addr::{Pfn, WORDS_PER_PAGE};
use crate::sync::{AtomicU64, Ordering};

/// The machine's physical memory contents. In a kernel this would be the direct map.
pub struct Ram {
    words: ZeroedArray<AtomicU64>,
    frames: usize,
}

impl Ram {
    /// `frames` zeroed frames from the global allocator; `None` if the size
    /// overflows or the allocator refuses.
    pub fn zeroed(frames: usize) -> Option<Ram> {
        Ram::zeroed_in(&GlobalBacking, frames)
    }

    /// `frames` zeroed frames from `backing` (zero-filled lazily by the host,
    /// so frames the simulation never touches cost it nothing); `None` if
    /// the size overflows or `backing` refuses.
    pub fn zeroed_in(backing: &dyn RamBacking, frames: usize) -> Option<Ram> {
        let n = frames.checked_mul(WORDS_PER_PAGE)?;
        Some(Ram {
            words: ZeroedArray::new(backing, n)?,
            frames,
        })
    }

    /// Number of frames.
    #[inline]
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Every word of RAM, indexed `pfn * 512 + word-in-page` (for a CPU to keep at hand).
    #[inline]
    pub fn words(&self) -> &[AtomicU64] {
        self.words.as_slice()
    }

    /// Word `idx` of RAM (`idx = pfn * 512 + word-in-page`).
    #[inline]
    pub fn word(&self, idx: usize) -> Option<&AtomicU64> {
        self.words.as_slice().get(idx)
    }

    /// The 512 words of frame `pfn`; `None` outside RAM.
    #[inline]
    pub fn frame(&self, pfn: Pfn) -> Option<&[AtomicU64]> {
        let start = pfn.first_word();
        self.words.as_slice().get(start..start + WORDS_PER_PAGE)
    }

    /// Fill frame `pfn` with zeros.
    pub fn zero_frame(&self, pfn: Pfn) {
        if let Some(f) = self.frame(pfn) {
            for w in f {
                w.store(0, Ordering::Relaxed);
            }
        }
    }

    /// Fill frame `pfn` with zeros using the host's block fill (`rep stosb`,
    /// as the kernel's `clear_page_erms`), several times faster than
    /// `zero_frame`'s 512 word stores.
    ///
    /// # Safety
    /// No other thread may access the frame's words until this returns and
    /// the caller publishes the frame with release ordering (a PTE store, a
    /// lock release): a frame the allocator has just handed to the caller
    /// qualifies, since frames are freed only after every TLB that could
    /// reach them was shot down and every CPU has left its access.
    #[cfg(not(loom))]
    pub unsafe fn zero_frame_exclusive(&self, pfn: Pfn) {
        if let Some(f) = self.frame(pfn) {
            // A pointer derived from the slice covers all 512 words, and
            // `AtomicU64` is an `UnsafeCell<u64>`, so writing through it is
            // allowed; the caller rules out concurrent access.
            let p = f.as_ptr() as *mut u8;
            // SAFETY: `p` points at `WORDS_PER_PAGE` words inside RAM's one
            // allocation; no other thread accesses them (the caller's contract).
            unsafe { core::ptr::write_bytes(p, 0, WORDS_PER_PAGE * 8) };
        }
    }

    /// Under loom, word by word (loom tracks every atomic access).
    ///
    /// # Safety
    /// As the non-loom version (none is needed for this one).
    #[cfg(loom)]
    pub unsafe fn zero_frame_exclusive(&self, pfn: Pfn) {
        self.zero_frame(pfn)
    }

    /// Copy frame `src` into frame `dst`.
    pub fn copy_frame(&self, dst: Pfn, src: Pfn) {
        if let (Some(d), Some(s)) = (self.frame(dst), self.frame(src)) {
            for (d, s) in d.iter().zip(s) {
                d.store(s.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        }
    }

    /// Copy bytes `[off, off + buf.len())` of frame `pfn` into `buf`.
    /// The range must lie inside the frame; returns false otherwise.
    pub fn read_bytes(&self, pfn: Pfn, off: usize, buf: &mut [u8]) -> bool {
        let Some(f) = self.frame(pfn) else {
            return false;
        };
        if off + buf.len() > WORDS_PER_PAGE * 8 {
            return false;
        }
        let mut pos = 0;
        while pos < buf.len() {
            let at = off + pos;
            let w = f[at / 8].load(Ordering::Relaxed).to_le_bytes();
            let from = at % 8;
            let n = (8 - from).min(buf.len() - pos);
            buf[pos..pos + n].copy_from_slice(&w[from..from + n]);
            pos += n;
        }
        true
    }

    /// Copy `buf` into bytes `[off, off + buf.len())` of frame `pfn`.
    /// Whole words are stored directly; partial words by compare-and-swap so
    /// that a concurrent store to the other bytes of the word is not lost.
    pub fn write_bytes(&self, pfn: Pfn, off: usize, buf: &[u8]) -> bool {
        let Some(f) = self.frame(pfn) else {
            return false;
        };
        if off + buf.len() > WORDS_PER_PAGE * 8 {
            return false;
        }
        let mut pos = 0;
        while pos < buf.len() {
            let at = off + pos;
            let from = at % 8;
            let n = (8 - from).min(buf.len() - pos);
            let word = &f[at / 8];
            if n == 8 {
                let mut b = [0u8; 8];
                b.copy_from_slice(&buf[pos..pos + 8]);
                word.store(u64::from_le_bytes(b), Ordering::Relaxed);
            } else {
                let _ = word.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                    let mut b = old.to_le_bytes();
                    b[from..from + n].copy_from_slice(&buf[pos..pos + n]);
                    Some(u64::from_le_bytes(b))
                });
            }
            pos += n;
        }
        true
    }
}
