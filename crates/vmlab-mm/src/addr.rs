//! Addresses and page arithmetic shared by every layer.
//!
//! Owns nothing; every other module may call it.

/// Bytes in a base page (x86-64 4 KiB pages).
pub const PAGE_SIZE: u64 = 4096;
/// log2(PAGE_SIZE).
pub const PAGE_SHIFT: u32 = 12;
/// `u64` words in one page; simulated RAM is held as words.
pub const WORDS_PER_PAGE: usize = (PAGE_SIZE / 8) as usize;
/// Highest user address + 1 with 4-level paging, as Linux's `TASK_SIZE` on x86-64
/// (the last page below 2^47 is left unmapped, as Linux does).
pub const TASK_SIZE: u64 = (1 << 47) - PAGE_SIZE;
/// Lowest address a mapping may use, as Linux's default `vm.mmap_min_addr`.
pub const MMAP_MIN_ADDR: u64 = 65536;

/// A physical frame number: index of a 4 KiB frame in simulated RAM.
/// Linux: `pfn` / `struct page *`; FreeBSD: `vm_page_t` index.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pfn(pub usize);

impl Pfn {
    /// Index of this frame's first word in RAM.
    #[inline]
    pub const fn first_word(self) -> usize {
        self.0 * WORDS_PER_PAGE
    }
}

/// Round `x` down to a page boundary.
#[inline]
pub const fn page_floor(x: u64) -> u64 {
    x & !(PAGE_SIZE - 1)
}

/// Round `x` up to a page boundary; `None` on overflow.
#[inline]
pub const fn page_ceil(x: u64) -> Option<u64> {
    match x.checked_add(PAGE_SIZE - 1) {
        Some(v) => Some(v & !(PAGE_SIZE - 1)),
        None => None,
    }
}

/// Whether `x` is page aligned.
#[inline]
pub const fn is_page_aligned(x: u64) -> bool {
    x & (PAGE_SIZE - 1) == 0
}

/// Virtual page number of `addr`.
#[inline]
pub const fn vpn(addr: u64) -> u64 {
    addr >> PAGE_SHIFT
}
