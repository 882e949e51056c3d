//! Buddy frame allocator: Linux's binary buddy system over one zone.
//!
//! Owns: the free/allocated state of the frames `[base, base + frames)` —
//! a state byte per frame, the intrusive per-order free lists (links held in
//! this allocator's own arrays, indexed by `pfn - base`) and the per-order
//! free counts (`/proc/buddyinfo`). Nothing outside this file sees them.
//! May call: `crate::addr` (for `Pfn`) and `crate::frame` (the trait and
//! `FreeError`); nothing else.
//!
//! Mirrors Linux `mm/page_alloc.c`:
//! * `alloc` = `__rmqueue_smallest` (first non-empty order ≥ the one asked
//!   for, block taken from the list head) + `expand` (split it, giving the
//!   upper halves back to the free lists).
//! * `free` = `__free_one_page` (merge with the buddy `pfn ^ (1 << order)`
//!   while it is a free block of the same order, then list the result).
//!
//! Invariants (verified by `check`):
//! * The frames are tiled by blocks: a block of order `k` starts at a pfn
//!   that is a multiple of `2^k` (alignment is on the *absolute* pfn, so a
//!   block's buddy is computable by xor) and lies wholly inside the range.
//! * Only a block's first frame (its head) has a non-`TAIL` state byte; the
//!   byte says free or allocated and the block's order. Hence the block
//!   holding any frame is found by trying its `MAX_ORDER + 1` aligned-down
//!   candidate heads (`block_of`).
//! * Every free block head is on exactly the list of its order, and no two
//!   free buddies of the same order coexist (they would have been merged).
//! * `free == Σ nr_free[k] << k`, and bit `k` of `avail` is set iff
//!   `nr_free[k] != 0` (lets `alloc` find the first usable order in one
//!   instruction instead of probing the lists).

use crate::addr::Pfn;
use crate::frame::{FrameAllocator, FreeError};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Highest block order: blocks of up to `2^MAX_ORDER` frames (4 MiB), as
/// Linux's `MAX_ORDER - 1` (Linux ≥ 6.4 calls it `MAX_PAGE_ORDER`).
pub const MAX_ORDER: usize = 10;

/// Frames in the largest block.
const MAX_BLOCK: usize = 1 << MAX_ORDER;

/// Links are `u32` to halve their memory; the last `MAX_ORDER + 1` slots are
/// list sentinels, so at most this many frames are managed (16 TiB of 4 KiB
/// frames; less on 32-bit hosts, where the link array must fit `isize::MAX`
/// bytes or `Vec` would panic).
const MAX_FRAMES: usize = {
    let by_links = u32::MAX as usize - (MAX_ORDER + 1);
    let by_bytes = isize::MAX as usize / core::mem::size_of::<Link>() - (MAX_ORDER + 1);
    if by_links < by_bytes {
        by_links
    } else {
        by_bytes
    }
};

// State byte of a frame. Low nibble: the block's order (heads only). High
// nibble: 0 = not a head (inside a block), 0xF = free head, 1..=11 = allocated
// head, holding 1 + the order of the `count` that was asked for (`req`).
// `req` may be below the block order when `align > count`; keeping it lets
// `free(pfn, count)` accept the caller's original `count` (see `free`).
const TAIL: u8 = 0;
const FREE: u8 = 0xF0;
const ORDER_MASK: u8 = 0x0F;

/// Doubly-linked list node of one frame (or of a sentinel).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Link {
    next: u32,
    prev: u32,
}

/// Smallest `k` with `2^k >= n`, for `n >= 1`; 64 for `n == 0` (so a zero
/// count fails every `<= MAX_ORDER` test without a separate branch).
#[inline(always)]
fn ceil_log2(n: usize) -> usize {
    (usize::BITS - n.wrapping_sub(1).leading_zeros()) as usize
}

/// The state byte of a free block head of order `k`.
#[inline(always)]
fn free_state(k: usize) -> u8 {
    FREE | k as u8
}

/// A buddy allocator of the frames `[base, base + frames)`.
#[derive(Clone, PartialEq, Eq)]
pub struct Buddy {
    /// First frame managed.
    base: usize,
    /// Frames managed (`n`); frame `base + i` is index `i`.
    frames: usize,
    /// `links[i]`, `i < n`: list node of free block head `i` (stale otherwise).
    /// `links[n + k]`: sentinel of the order-`k` list.
    links: Vec<Link>,
    /// One state byte per frame; see `TAIL`/`FREE`.
    state: Vec<u8>,
    /// Free blocks per order (Linux `free_area[k].nr_free`).
    nr_free: [usize; MAX_ORDER + 1],
    /// Bit `k` set iff `nr_free[k] != 0`.
    avail: u32,
    /// Free frames.
    free: usize,
}

impl Buddy {
    /// Host bytes this allocator keeps per frame it manages: a list link
    /// and a state byte (plus `MAX_ORDER + 1` sentinel links per zone). Part
    /// of `PhysMem::host_bytes_per_frame`.
    pub const HOST_BYTES_PER_FRAME: usize = core::mem::size_of::<Link>() + core::mem::size_of::<u8>();

    /// An allocator of `frames` frames from `base`, all free.
    ///
    /// The range is carved into maximal naturally aligned blocks (aligned on
    /// the absolute pfn), lowest first on each list so that the first
    /// allocations come from low addresses. `frames` is clamped so that the
    /// range neither overflows `usize` nor exceeds `u32::MAX - 11` frames.
    /// If the host cannot hold its arrays this aborts, as `Vec` does; a
    /// machine is built with `try_new`.
    pub fn new(base: Pfn, frames: usize) -> Buddy {
        match Buddy::try_new(base, frames) {
            Some(b) => b,
            None => alloc::alloc::handle_alloc_error(
                core::alloc::Layout::array::<Link>(frames.min(MAX_FRAMES) + MAX_ORDER + 1)
                    .unwrap_or(core::alloc::Layout::new::<Link>()),
            ),
        }
    }

    /// As `new`, or `None` if the host cannot hold the allocator's arrays
    /// (`HOST_BYTES_PER_FRAME` per frame).
    pub fn try_new(base: Pfn, frames: usize) -> Option<Buddy> {
        let base = base.0;
        let n = frames.min(usize::MAX - base).min(MAX_FRAMES);
        let mut links: Vec<Link> = Vec::new();
        links.try_reserve_exact(n + MAX_ORDER + 1).ok()?;
        // Links of frames that are not free block heads are stale and never
        // read, so any value does; sentinels start as empty lists (pointing
        // at themselves).
        links.resize(n, Link { next: 0, prev: 0 });
        links.extend((n..n + MAX_ORDER + 1).map(|i| {
            let s = i as u32;
            Link { next: s, prev: s }
        }));
        let mut state: Vec<u8> = Vec::new();
        state.try_reserve_exact(n).ok()?;
        state.resize(n, TAIL);
        let mut b = Buddy {
            base,
            frames: n,
            links,
            state,
            nr_free: [0; MAX_ORDER + 1],
            avail: 0,
            free: n,
        };
        let mut i = 0;
        while i < n {
            let abs = base + i;
            // Largest order the pfn is aligned to, then shrink until the block fits.
            let mut k = (abs.trailing_zeros() as usize).min(MAX_ORDER);
            while (1usize << k) > n - i {
                k -= 1;
            }
            b.state[i] = free_state(k);
            b.push_tail(i, k);
            i += 1 << k;
        }
        Some(b)
    }

    /// First frame managed.
    pub fn base(&self) -> Pfn {
        Pfn(self.base)
    }

    /// Free blocks of each order, as a line of `/proc/buddyinfo`.
    pub fn free_blocks_by_order(&self) -> [usize; MAX_ORDER + 1] {
        self.nr_free
    }

    /// Sentinel index of the order-`k` list.
    #[inline(always)]
    fn sentinel(&self, k: usize) -> usize {
        self.frames + k
    }

    /// Put free block head `i` at the head of the order-`k` list (LIFO:
    /// the most recently freed block is reused first, as Linux does, since it
    /// is the most likely to be cache hot).
    #[inline(always)]
    fn push(&mut self, i: usize, k: usize) {
        let s = self.sentinel(k);
        let first = self.links[s].next;
        self.links[i] = Link {
            next: first,
            prev: s as u32,
        };
        self.links[first as usize].prev = i as u32;
        self.links[s].next = i as u32;
        self.nr_free[k] += 1;
        self.avail |= 1 << k;
    }

    /// Put free block head `i` at the tail of the order-`k` list (only `new`).
    fn push_tail(&mut self, i: usize, k: usize) {
        let s = self.sentinel(k);
        let last = self.links[s].prev;
        self.links[i] = Link {
            next: s as u32,
            prev: last,
        };
        self.links[last as usize].next = i as u32;
        self.links[s].prev = i as u32;
        self.nr_free[k] += 1;
        self.avail |= 1 << k;
    }

    /// Unlink free block head `i` from the order-`k` list: O(1), which is
    /// what makes each merge step of `free` O(1).
    #[inline(always)]
    fn unlink(&mut self, i: usize, k: usize) {
        let Link { next, prev } = self.links[i];
        self.links[prev as usize].next = next;
        self.links[next as usize].prev = prev;
        self.nr_free[k] -= 1;
        self.avail &= !(((self.nr_free[k] == 0) as u32) << k);
    }

    /// The block holding frame index `i < n`: `(head index, order, free)`.
    /// The block's head is `align_down(pfn, k)` for its order `k`, and a
    /// head at `align_down(pfn, j)` with an order other than `j` either does
    /// not cover `pfn` (order < j) or would have been met at its own order
    /// first (order > j), so the first candidate whose order matches wins.
    fn block_of(&self, i: usize) -> Option<(usize, usize, bool)> {
        let abs = self.base + i;
        for k in 0..=MAX_ORDER {
            let h = (abs & !((1usize << k) - 1)).checked_sub(self.base)?;
            let s = self.state[h];
            if s != TAIL && (s & ORDER_MASK) as usize == k {
                return Some((h, k, s & FREE == FREE));
            }
        }
        None
    }

    /// `__free_one_page`: free the allocated block at index `i` of order
    /// `order`, merging with free buddies up to `MAX_ORDER`.
    #[inline(always)]
    fn free_block(&mut self, i: usize, order: usize) {
        self.free += 1 << order;
        self.state[i] = TAIL;
        let mut head = i;
        let mut k = order;
        while k < MAX_ORDER {
            // The buddy's head; wraps to a huge index when below `base`.
            let b = ((self.base + head) ^ (1 << k)).wrapping_sub(self.base);
            // A free head of order k lies wholly in range (tiling invariant),
            // so this one test covers "free", "same order" and "in range".
            if self.state.get(b) != Some(&free_state(k)) {
                break;
            }
            self.unlink(b, k);
            self.state[b] = TAIL;
            head = head.min(b);
            k += 1;
        }
        self.state[head] = free_state(k);
        self.push(head, k);
    }

    /// Why `free(idx, count)` was refused, given that `idx < n`,
    /// `count <= n - idx`, and `idx` does not head an allocated block that
    /// `count` matches. Off the hot path.
    #[cold]
    fn bad_free(&self, i: usize, count: usize) -> FreeError {
        let ord = ceil_log2(count);
        if ord > MAX_ORDER || (self.base + i) & ((1 << ord) - 1) != 0 {
            return FreeError::Misaligned;
        }
        // Walk the run block by block: any free block met means a frame of
        // the run is already free.
        let end = i + count;
        let mut j = i;
        while j < end {
            match self.block_of(j) {
                Some((_, _, true)) => return FreeError::DoubleFree,
                Some((h, k, false)) => j = h + (1 << k),
                None => break, // broken tiling; `check` reports it
            }
        }
        FreeError::Misaligned
    }
}

impl FrameAllocator for Buddy {
    /// `__rmqueue_smallest` + `expand`. The block is `2^k` frames with `k`
    /// the smallest order holding `max(count, align)`; blocks are naturally
    /// aligned, so the alignment follows.
    #[inline]
    fn alloc(&mut self, count: usize, align: usize) -> Option<Pfn> {
        if count == 0 || !align.is_power_of_two() || count > MAX_BLOCK || align > MAX_BLOCK {
            return None;
        }
        let req = ceil_log2(count);
        let order = ceil_log2(count.max(align));
        // First non-empty order >= `order` (order <= 10, so the shift is fine).
        let avail = self.avail >> order;
        if avail == 0 {
            return None;
        }
        let mut k = order + avail.trailing_zeros() as usize;
        let head = self.links[self.sentinel(k)].next as usize;
        self.unlink(head, k);
        // expand(): halve until the order fits, listing each upper half.
        while k > order {
            k -= 1;
            let upper = head + (1 << k);
            self.state[upper] = free_state(k);
            self.push(upper, k);
        }
        self.state[head] = ((req as u8 + 1) << 4) | order as u8;
        self.free -= 1 << order;
        Some(Pfn(self.base + head))
    }

    /// Free the block at `pfn` got from `alloc(count, align)`.
    ///
    /// Accepted iff `pfn` heads an allocated block and `count` rounds to an
    /// order between that of the `count` originally asked for and that of the
    /// block granted (they differ when `align > count`: `alloc(1, 8)` takes 8
    /// frames, and `free(pfn, 1)` then frees all 8). Otherwise, with state
    /// unchanged: `OutOfRange` if the run leaves the range; `Misaligned` for
    /// a bad count or a pfn not aligned to it; `DoubleFree` if any frame of
    /// the run is free; else `Misaligned` (not the start of such a block).
    #[inline]
    fn free(&mut self, pfn: Pfn, count: usize) -> Result<(), FreeError> {
        let i = pfn.0.wrapping_sub(self.base);
        if i >= self.frames || count > self.frames - i {
            return Err(FreeError::OutOfRange);
        }
        let s = self.state[i];
        let k = (s & ORDER_MASK) as usize;
        // Not an allocated head (TAIL gives 255, FREE gives 14): fails below.
        let req = (s >> 4).wrapping_sub(1) as usize;
        let ord = ceil_log2(count); // 64 for count 0
        if req <= ord && ord <= k {
            self.free_block(i, k);
            Ok(())
        } else {
            Err(self.bad_free(i, count))
        }
    }

    #[inline]
    fn free_frames(&self) -> usize {
        self.free
    }

    #[inline]
    fn total_frames(&self) -> usize {
        self.frames
    }

    /// The next power of two (0 for 0). Does not know `align`: `alloc(count,
    /// align)` takes `frames_for(max(count, align))`. Counts above
    /// `2^MAX_ORDER` are reported as their power of two even though `alloc`
    /// refuses them (`usize::MAX` if that overflows).
    fn frames_for(&self, count: usize) -> usize {
        match count {
            0 => 0,
            _ => count.checked_next_power_of_two().unwrap_or(usize::MAX),
        }
    }

    /// O(MAX_ORDER): any frame of a free block, not only its head.
    fn is_free(&self, pfn: Pfn) -> bool {
        let i = pfn.0.wrapping_sub(self.base);
        i < self.frames && matches!(self.block_of(i), Some((_, _, true)))
    }

    /// Blocks never span two maximal aligned blocks, so this is the size of
    /// the highest non-empty order.
    fn largest_free_run(&self) -> usize {
        match self.avail {
            0 => 0,
            a => 1 << (31 - a.leading_zeros()),
        }
    }

    /// O(frames): walks the tiling frame by frame, then every list.
    fn check(&self) -> Result<(), String> {
        let n = self.frames;
        if self.state.len() != n || self.links.len() != n + MAX_ORDER + 1 {
            return Err(format!(
                "array sizes: state {} links {} for {} frames",
                self.state.len(),
                self.links.len(),
                n
            ));
        }
        if self.base.checked_add(n).is_none() {
            return Err(format!("range overflows: base {:#x} frames {}", self.base, n));
        }
        // 1. Tiling and per-frame state.
        let mut heads = [0usize; MAX_ORDER + 1];
        let mut free_sum = 0usize;
        let mut i = 0;
        while i < n {
            let abs = self.base + i;
            let s = self.state[i];
            let k = (s & ORDER_MASK) as usize;
            let kind = s >> 4;
            let is_free = kind == 0xF;
            if s == TAIL {
                return Err(format!("pfn {abs:#x}: inside no block"));
            }
            if k > MAX_ORDER || !(is_free || (1..=k as u8 + 1).contains(&kind)) {
                return Err(format!("pfn {abs:#x}: bad state byte {s:#04x}"));
            }
            if abs & ((1 << k) - 1) != 0 {
                return Err(format!("pfn {abs:#x}: order-{k} block misaligned"));
            }
            if (1 << k) > n - i {
                return Err(format!("pfn {abs:#x}: order-{k} block leaves the range"));
            }
            if let Some(t) = self.state[i + 1..i + (1 << k)].iter().position(|&t| t != TAIL) {
                return Err(format!("pfn {abs:#x}: order-{k} block holds head at +{}", t + 1));
            }
            if is_free {
                heads[k] += 1;
                free_sum += 1 << k;
                if k < MAX_ORDER {
                    let b = (abs ^ (1 << k)).wrapping_sub(self.base);
                    if self.state.get(b) == Some(&free_state(k)) {
                        return Err(format!(
                            "pfn {abs:#x}: order-{k} free buddies {abs:#x} and {:#x} not merged",
                            self.base + b
                        ));
                    }
                }
            }
            i += 1 << k;
        }
        if free_sum != self.free {
            return Err(format!(
                "free blocks hold {free_sum} frames, counter says {}",
                self.free
            ));
        }
        // 2. Lists.
        let mut list_sum = 0usize;
        for (k, &nheads) in heads.iter().enumerate() {
            let s = n + k;
            let mut prev = s;
            let mut cur = self.links[s].next as usize;
            let mut len = 0usize;
            while cur != s {
                if cur >= n {
                    return Err(format!("order {k} list: link to {cur}, not a frame"));
                }
                let abs = self.base + cur;
                if self.links[cur].prev as usize != prev {
                    return Err(format!("order {k} list: pfn {abs:#x} prev link broken"));
                }
                if self.state[cur] != free_state(k) {
                    return Err(format!("order {k} list: pfn {abs:#x} is not a free order-{k} head"));
                }
                len += 1;
                if len > nheads {
                    return Err(format!(
                        "order {k} list: longer than its {} free heads (cycle?)",
                        nheads
                    ));
                }
                prev = cur;
                cur = self.links[cur].next as usize;
            }
            if self.links[s].prev as usize != prev {
                return Err(format!("order {k} list: sentinel prev link broken"));
            }
            if len != nheads || len != self.nr_free[k] {
                return Err(format!(
                    "order {k}: list has {len}, free heads {}, nr_free {}",
                    nheads, self.nr_free[k]
                ));
            }
            if ((self.avail >> k) & 1 == 1) != (len != 0) {
                return Err(format!("order {k}: avail bit disagrees with list"));
            }
            list_sum += len << k;
        }
        if self.avail >> (MAX_ORDER + 1) != 0 {
            return Err(format!("avail {:#x} has bits above MAX_ORDER", self.avail));
        }
        if list_sum != self.free {
            return Err(format!("lists hold {list_sum} frames, counter says {}", self.free));
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        "buddy"
    }
}

impl fmt::Debug for Buddy {
    /// Summary only: the per-frame arrays are too big to print.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buddy")
            .field("base", &self.base)
            .field("frames", &self.frames)
            .field("free", &self.free)
            .field("nr_free", &self.nr_free)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use alloc::vec;
    use proptest::prelude::*;

    fn ok(b: &Buddy) {
        if let Err(e) = b.check() {
            panic!("check failed: {e}");
        }
    }

    /// Biggest naturally aligned block (≤ 2^MAX_ORDER) inside [base, base+n).
    fn biggest_block(base: usize, n: usize) -> usize {
        (0..=MAX_ORDER)
            .rev()
            .map(|k| 1usize << k)
            .find(|&sz| {
                let p = base.div_ceil(sz) * sz;
                p + sz <= base + n
            })
            .unwrap_or(0)
    }

    #[test]
    fn split_and_coalesce() {
        let mut b = Buddy::new(Pfn(0), 1024);
        assert_eq!(b.free_blocks_by_order(), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        let p = b.alloc(1, 1).unwrap();
        assert_eq!(p, Pfn(0));
        // expand(): one upper half listed at every order below 10.
        assert_eq!(b.free_blocks_by_order(), [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]);
        assert_eq!(b.free_frames(), 1023);
        assert_eq!(b.largest_free_run(), 512);
        assert!(!b.is_free(Pfn(0)));
        assert!(b.is_free(Pfn(1)) && b.is_free(Pfn(700)) && b.is_free(Pfn(1023)));
        ok(&b);
        b.free(p, 1).unwrap();
        assert_eq!(b.free_blocks_by_order(), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(b.free_frames(), 1024);
        assert_eq!(b.largest_free_run(), 1024);
        ok(&b);
        assert_eq!(b.name(), "buddy");
    }

    #[test]
    fn coalesce_out_of_order() {
        let mut b = Buddy::new(Pfn(64), 64);
        let ps: Vec<Pfn> = (0..64).map(|_| b.alloc(1, 1).unwrap()).collect();
        assert_eq!(b.free_frames(), 0);
        assert_eq!(b.alloc(1, 1), None);
        // Free odd frames first: nothing can merge until the evens return.
        for p in ps.iter().filter(|p| p.0 % 2 == 1) {
            b.free(*p, 1).unwrap();
            ok(&b);
        }
        assert_eq!(b.free_blocks_by_order()[0], 32);
        for p in ps.iter().filter(|p| p.0 % 2 == 0).rev() {
            b.free(*p, 1).unwrap();
            ok(&b);
        }
        assert_eq!(b.free_blocks_by_order(), [0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn lifo_reuse() {
        let mut b = Buddy::new(Pfn(0), 16);
        let a = b.alloc(1, 1).unwrap();
        let _x = b.alloc(1, 1).unwrap();
        let c = b.alloc(1, 1).unwrap();
        let _y = b.alloc(1, 1).unwrap();
        b.free(a, 1).unwrap();
        b.free(c, 1).unwrap();
        assert_eq!(b.alloc(1, 1), Some(c));
        assert_eq!(b.alloc(1, 1), Some(a));
        ok(&b);
    }

    #[test]
    fn alignment_honoured() {
        let mut b = Buddy::new(Pfn(3), 5000);
        for count in 1..=40usize {
            for align_log in 0..=7 {
                let align = 1usize << align_log;
                let p = b.alloc(count, align).unwrap();
                let taken = b.frames_for(count.max(align));
                assert_eq!(p.0 % align, 0, "count {count} align {align}");
                assert_eq!(p.0 % taken, 0, "natural alignment");
                assert!(p.0 >= 3 && p.0 + taken <= 5003);
                assert!((0..taken).all(|j| !b.is_free(Pfn(p.0 + j))));
                ok(&b);
                b.free(p, count).unwrap();
                ok(&b);
            }
        }
        assert_eq!(b.free_frames(), 5000);
    }

    #[test]
    fn align_above_count() {
        let mut b = Buddy::new(Pfn(0), 64);
        let p = b.alloc(1, 8).unwrap();
        assert_eq!(b.free_frames(), 56);
        b.free(p, 1).unwrap(); // the caller's count frees the whole 8
        assert_eq!(b.free_frames(), 64);
        let p = b.alloc(3, 16).unwrap();
        let before = b.clone();
        assert_eq!(b.free(p, 2), Err(FreeError::Misaligned)); // less than asked
                                                              // More than granted: the run then covers free frames p+16...
        assert_eq!(b.free(p, 17), Err(FreeError::DoubleFree));
        assert_eq!(b, before);
        b.free(p, 16).unwrap(); // the granted size is accepted too
        assert_eq!(b.free_frames(), 64);
        ok(&b);
    }

    #[test]
    fn unaligned_base_carving() {
        // [5, 105): 5/0 6/1 8/3 16/4 32/5 64/5 96/3 104/0.
        let b = Buddy::new(Pfn(5), 100);
        assert_eq!(b.free_blocks_by_order(), [2, 1, 0, 2, 1, 2, 0, 0, 0, 0, 0]);
        assert_eq!(b.total_frames(), 100);
        assert_eq!(b.free_frames(), 100);
        assert_eq!(b.largest_free_run(), 32);
        assert_eq!(b.base(), Pfn(5));
        ok(&b);
        assert!(b.is_free(Pfn(5)) && b.is_free(Pfn(104)) && b.is_free(Pfn(50)));
        assert!(!b.is_free(Pfn(4)) && !b.is_free(Pfn(105)));
        // Non-power-of-two, aligned base: 3000 = 1024+1024+512+256+128+32+16+8.
        let b = Buddy::new(Pfn(0), 3000);
        assert_eq!(b.free_blocks_by_order(), [0, 0, 0, 1, 1, 1, 0, 1, 1, 1, 2]);
        ok(&b);
    }

    #[test]
    fn unaligned_blocks_do_not_merge_across_range() {
        // Frames 7 and 8 are both order 0 blocks... 7's buddy is 6 (outside).
        let mut b = Buddy::new(Pfn(7), 2);
        assert_eq!(b.free_blocks_by_order()[0], 2);
        let x = b.alloc(1, 1).unwrap();
        let y = b.alloc(1, 1).unwrap();
        assert_eq!(b.alloc(1, 1), None);
        b.free(x, 1).unwrap();
        b.free(y, 1).unwrap();
        assert_eq!(b.free_blocks_by_order()[0], 2);
        assert_eq!(b.largest_free_run(), 1);
        assert_eq!(b.alloc(2, 1), None);
        ok(&b);
    }

    #[test]
    fn exhaustion_then_reuse() {
        let mut b = Buddy::new(Pfn(7), 50);
        let mut got = Vec::new();
        while let Some(p) = b.alloc(1, 1) {
            got.push(p);
        }
        assert_eq!(got.len(), 50);
        assert_eq!(b.free_frames(), 0);
        assert_eq!(b.largest_free_run(), 0);
        ok(&b);
        b.free(got[17], 1).unwrap();
        assert_eq!(b.alloc(2, 1), None);
        assert_eq!(b.alloc(1, 1), Some(got[17]));
        ok(&b);
    }

    #[test]
    fn invalid_alloc_requests() {
        let mut b = Buddy::new(Pfn(0), 4096);
        let before = b.clone();
        for (count, align) in [
            (0, 1),
            (1, 0),
            (1, 3),
            (5, 6),
            (1025, 1),
            (1, 2048),
            (usize::MAX, 1),
            (1, 1 << (usize::BITS - 1)),
            (usize::MAX, usize::MAX),
        ] {
            assert_eq!(b.alloc(count, align), None, "alloc({count}, {align})");
        }
        assert_eq!(b, before);
        assert!(b.alloc(1024, 1).is_some());
        assert!(b.alloc(1, 1024).is_some());
        ok(&b);
    }

    #[test]
    fn free_errors_leave_state_unchanged() {
        let mut b = Buddy::new(Pfn(100), 2000); // [100, 2100)
        let p4 = b.alloc(4, 1).unwrap();
        let p1 = b.alloc(1, 1).unwrap();
        assert_eq!((p4, p1), (Pfn(100), Pfn(2096))); // order-2 list: 100 then 2096
        let before = b.clone();
        let cases = [
            (Pfn(99), 1, FreeError::OutOfRange),
            (Pfn(0), 1, FreeError::OutOfRange),
            (Pfn(2100), 1, FreeError::OutOfRange),
            (Pfn(2099), 2, FreeError::OutOfRange),
            (p1, 5, FreeError::OutOfRange),
            (Pfn(usize::MAX), 2, FreeError::OutOfRange),
            (p4, usize::MAX, FreeError::OutOfRange),
            (Pfn(p4.0 + 1), 1, FreeError::Misaligned), // inside a block
            (Pfn(p4.0 + 2), 2, FreeError::Misaligned),
            (p4, 0, FreeError::Misaligned),
            (p4, 8, FreeError::Misaligned),        // larger than granted
            (p4, 1, FreeError::Misaligned),        // smaller than asked
            (p4, 1024 + 1, FreeError::Misaligned), // no such order
            (Pfn(299), 1, FreeError::DoubleFree),  // never allocated
            (Pfn(256), 32, FreeError::DoubleFree),
            (Pfn(p1.0), 2, FreeError::DoubleFree), // p1 + 1 is free
        ];
        for (pfn, count, want) in cases {
            assert_eq!(b.free(pfn, count), Err(want), "free({pfn:?}, {count})");
            assert_eq!(b, before, "free({pfn:?}, {count}) changed state");
            ok(&b);
        }
        // Genuine double free.
        b.free(p1, 1).unwrap();
        let after = b.clone();
        assert_eq!(b.free(p1, 1), Err(FreeError::DoubleFree));
        assert_eq!(b, after);
        b.free(p4, 4).unwrap();
        assert_eq!(b.free(p4, 4), Err(FreeError::DoubleFree));
        assert_eq!(b.free_frames(), 2000);
        ok(&b);
    }

    #[test]
    fn empty_and_clamped_ranges() {
        let mut b = Buddy::new(Pfn(10), 0);
        assert_eq!(b.alloc(1, 1), None);
        assert_eq!(b.free(Pfn(10), 1), Err(FreeError::OutOfRange));
        assert_eq!(b.largest_free_run(), 0);
        assert!(!b.is_free(Pfn(10)));
        ok(&b);
        // Range clamped at the top of the address space: [MAX-10, MAX).
        let top = usize::MAX - 10;
        let mut b = Buddy::new(Pfn(top), 100);
        assert_eq!(b.total_frames(), 10);
        ok(&b);
        assert!(!b.is_free(Pfn(usize::MAX)));
        assert_eq!(b.free(Pfn(usize::MAX - 1), 2), Err(FreeError::OutOfRange));
        let mut got = Vec::new();
        while let Some(p) = b.alloc(1, 1) {
            assert!(p.0 >= top && p.0 < usize::MAX);
            got.push(p);
        }
        assert_eq!(got.len(), 10);
        for p in got {
            b.free(p, 1).unwrap();
        }
        assert_eq!(b.free_frames(), 10);
        ok(&b);
        assert_eq!(b.frames_for(0), 0);
        assert_eq!(b.frames_for(5), 8);
        assert_eq!(b.frames_for(usize::MAX), usize::MAX);
    }

    /// One step of the interpreted operation bytecode.
    #[derive(Clone, Debug)]
    enum Op {
        Alloc { count: usize, align: usize },
        Free { pick: usize },
        BadFree { kind: u8, pick: usize, off: usize },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1usize..=64, 0u32..=7).prop_map(|(count, a)| Op::Alloc { count, align: 1 << a }),
            1 => (0usize..=64, 0usize..=9).prop_map(|(count, align)| Op::Alloc { count, align }),
            4 => any::<usize>().prop_map(|pick| Op::Free { pick }),
            2 => (0u8..5, any::<usize>(), any::<usize>())
                .prop_map(|(kind, pick, off)| Op::BadFree { kind, pick, off }),
        ]
    }

    /// The allocator against a shadow model, after the style of rlsf's tests.
    struct Model {
        b: Buddy,
        base: usize,
        n: usize,
        /// Live allocations: pfn -> (count, frames taken).
        live: BTreeMap<usize, (usize, usize)>,
        /// Frames in use, by index.
        used: Vec<bool>,
        /// Recently freed pfns with their counts (stale handles).
        stale: Vec<(usize, usize)>,
    }

    impl Model {
        fn run(&mut self, op: &Op) {
            match *op {
                Op::Alloc { count, align } => {
                    let valid = count > 0 && align.is_power_of_two();
                    match self.b.alloc(count, align) {
                        None => {
                            if valid {
                                // Refused only if no aligned block of the order is wholly free.
                                let sz = self.b.frames_for(count.max(align));
                                assert!(sz > self.b.largest_free_run());
                            }
                        }
                        Some(p) => {
                            assert!(valid, "alloc({count}, {align}) granted");
                            let sz = self.b.frames_for(count.max(align));
                            assert_eq!(p.0 % align, 0);
                            assert_eq!(p.0 % sz, 0);
                            assert!(p.0 >= self.base && p.0 - self.base + sz <= self.n);
                            let i = p.0 - self.base;
                            for u in &mut self.used[i..i + sz] {
                                assert!(!*u, "overlap at {p:?}");
                                *u = true;
                            }
                            self.live.insert(p.0, (count, sz));
                        }
                    }
                }
                Op::Free { pick } => {
                    if self.live.is_empty() {
                        return;
                    }
                    let (&p, &(count, sz)) = self.live.iter().nth(pick % self.live.len()).unwrap();
                    self.b.free(Pfn(p), count).unwrap();
                    self.live.remove(&p);
                    let i = p - self.base;
                    self.used[i..i + sz].iter_mut().for_each(|u| *u = false);
                    self.stale.push((p, count));
                    if self.stale.len() > 16 {
                        self.stale.remove(0);
                    }
                }
                Op::BadFree { kind, pick, off } => {
                    let before = self.b.clone();
                    let r = match kind {
                        // Outside the range.
                        0 => {
                            let p = if off % 2 == 0 {
                                self.base.wrapping_sub(1 + off % 8)
                            } else {
                                self.base + self.n + off % 8
                            };
                            let r = self.b.free(Pfn(p), 1);
                            assert_eq!(r, Err(FreeError::OutOfRange));
                            r
                        }
                        // Stale handle whose run is (partly) free again.
                        1 => {
                            let Some(&(p, count)) = self.stale.get(pick % self.stale.len().max(1)) else {
                                return;
                            };
                            let i = p - self.base;
                            if self.used[i..i + count].iter().all(|u| *u) {
                                return; // reallocated: possibly a valid free in buddy terms
                            }
                            let r = self.b.free(Pfn(p), count);
                            assert_eq!(r, Err(FreeError::DoubleFree));
                            r
                        }
                        // Interior frame of a live multi-frame allocation.
                        2 => {
                            let Some((&p, &(_, sz))) = self.live.iter().find(|(_, &(_, sz))| sz > 1) else {
                                return;
                            };
                            let q = p + 1 + off % (sz - 1);
                            let r = self.b.free(Pfn(q), 1);
                            assert_eq!(r, Err(FreeError::Misaligned));
                            r
                        }
                        // Wrong count for a live allocation.
                        3 => {
                            if self.live.is_empty() {
                                return;
                            }
                            let (&p, &(_, sz)) = self.live.iter().nth(pick % self.live.len()).unwrap();
                            let bad = if off % 2 == 0 { 0 } else { sz + 1 };
                            self.b.free(Pfn(p), bad)
                        }
                        // Random frame with a random count: must agree with the model.
                        _ => {
                            let i = pick % self.n.max(1);
                            let count = 1 + off % 16;
                            if self.live.contains_key(&(self.base + i)) {
                                return; // could be valid
                            }
                            let r = self.b.free(Pfn(self.base + i), count);
                            let aligned = (self.base + i) & (count.next_power_of_two() - 1) == 0;
                            if i + count > self.n {
                                assert_eq!(r, Err(FreeError::OutOfRange));
                            } else if !aligned {
                                assert_eq!(r, Err(FreeError::Misaligned));
                            } else if self.used[i..i + count].iter().any(|u| !u) {
                                assert_eq!(r, Err(FreeError::DoubleFree));
                            } else {
                                assert_eq!(r, Err(FreeError::Misaligned));
                            }
                            r
                        }
                    };
                    assert!(r.is_err(), "bad free accepted: {op:?}");
                    assert!(self.b == before, "failed free changed state: {op:?}");
                }
            }
            // After every op: invariants, counters, and is_free against the model.
            if let Err(e) = self.b.check() {
                panic!("check after {op:?}: {e}");
            }
            let used = self.used.iter().filter(|u| **u).count();
            assert_eq!(self.b.free_frames(), self.n - used);
            for (i, u) in self.used.iter().enumerate().step_by(7) {
                assert_eq!(self.b.is_free(Pfn(self.base + i)), !u, "is_free({})", self.base + i);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn buddy_bytecode_vs_model(
            base in 0usize..5000,
            n in 1usize..3000,
            ops in proptest::collection::vec(op(), 1..300),
        ) {
            let mut m = Model {
                b: Buddy::new(Pfn(base), n),
                base,
                n,
                live: BTreeMap::new(),
                used: vec![false; n],
                stale: Vec::new(),
            };
            let fresh = m.b.free_blocks_by_order();
            for op in &ops {
                m.run(op);
            }
            let live: Vec<_> = m.live.iter().map(|(&p, &(c, _))| (p, c)).collect();
            for (p, c) in live {
                m.b.free(Pfn(p), c).unwrap();
                m.b.check().unwrap();
            }
            prop_assert_eq!(m.b.free_frames(), m.b.total_frames());
            prop_assert_eq!(m.b.largest_free_run(), biggest_block(base, n));
            // Fully coalesced: the same maximal blocks as a fresh allocator.
            prop_assert_eq!(m.b.free_blocks_by_order(), fresh);
        }
    }
}
