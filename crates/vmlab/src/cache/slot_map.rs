//! The policies' page → arena-slot map: open addressing with linear
//! probing and backward-shift deletion (no tombstones). An entry is 8
//! bytes, the page's 32-bit tag and its slot; the slot's node holds the
//! page, which tells apart the rare pages whose tags are equal. So a lookup
//! is one cache line in the common case, and the table is half the size of
//! one holding pages. At most half full: a deletion shifts back the rest
//! of its run, and the runs of linear probing grow as 1/(1-load)², which
//! at 3/4 made deletion the policies' largest cost (its compares
//! mispredict).
//!
//! Why not `std::collections::HashMap`: a cache replay is a stream of
//! lookups whose keys are known a batch ahead, and a lookup's cost is the
//! cache miss on its bucket. This table's bucket for a page is a pure
//! function of the page and the table's size, so [`SlotMap::prefetch`]
//! can ask for it while earlier references are still being served, and a
//! miss no longer waits on memory. (hashbrown does not expose where a key
//! lives.)
//!
//! Invariants: the capacity is a power of two; at most half the entries
//! are used, so every probe meets an empty entry; an entry's slot is
//! [`NIL`] exactly when it is empty; no empty entry lies between a key's
//! home bucket and the entry holding it (what backward-shift deletion
//! keeps and `get` relies on).

use super::list::NIL;
use super::PREALLOC_MAX;

#[derive(Clone, Copy, Debug)]
struct Entry {
    /// The top half of the page's hash: its home bucket is this tag's top
    /// bits, so entries move and the table grows without the pages.
    tag: u32,
    /// [`NIL`] when the entry is empty.
    slot: u32,
}

const EMPTY: Entry = Entry { tag: 0, slot: NIL };

/// Fibonacci hashing: the high bits of `x × 2^64/φ` spread sequential
/// and strided page numbers evenly over the table.
const PHI: u64 = 0x9E37_79B9_7F4A_7C15;

/// A page's tag: Fibonacci hashing after folding the page's high bits
/// into its low ones. Without the fold, ids that are themselves multiples
/// of φ's constant (a common way to scatter ids, as the cache bench does)
/// pile onto a few home buckets (a mean 7.8 entries from home at 20,000
/// ids in 65,536 buckets, against 0.2). The shift is odd so that ids
/// whose bits lie only in the high half (`r << 32`, `r << 40`) are spread
/// too, which a fold by 32 leaves clustered.
#[inline]
fn tag(page: u64) -> u32 {
    ((page ^ (page >> 31)).wrapping_mul(PHI) >> 32) as u32
}

#[derive(Clone, Debug)]
pub(crate) struct SlotMap {
    entries: Vec<Entry>,
    /// 32 − log2(capacity): a tag's home bucket is its top bits.
    shift: u32,
    len: usize,
}

impl SlotMap {
    /// A map with room for `n` pages (at most [`PREALLOC_MAX`]) before it
    /// first grows.
    pub fn with_capacity(n: usize) -> SlotMap {
        let cap = (n.clamp(1, PREALLOC_MAX) * 2).next_power_of_two().max(8);
        SlotMap {
            entries: vec![EMPTY; cap],
            shift: 32 - cap.trailing_zeros(),
            len: 0,
        }
    }

    #[inline]
    fn mask(&self) -> usize {
        self.entries.len() - 1
    }

    #[inline]
    fn home(&self, tag: u32) -> usize {
        (tag >> self.shift) as usize
    }

    /// The index of `page`'s entry (`page_of` gives a slot's page, to tell
    /// apart pages whose tags are equal), or of the empty entry where it
    /// would go.
    #[inline]
    fn probe(&self, page: u64, page_of: impl Fn(u32) -> u64) -> (usize, bool) {
        self.scan(tag(page), |slot| page_of(slot) == page)
    }

    /// The first entry of `tag`'s run with that tag whose slot `is` accepts
    /// (true), or the empty entry that ends the run (false).
    #[inline]
    fn scan(&self, tag: u32, is: impl Fn(u32) -> bool) -> (usize, bool) {
        let mask = self.mask();
        let mut i = self.home(tag);
        loop {
            let e = self.entries[i];
            if e.slot == NIL {
                return (i, false);
            }
            if e.tag == tag && is(e.slot) {
                return (i, true);
            }
            i = (i + 1) & mask;
        }
    }

    /// Pages in the map.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn get(&self, page: u64, page_of: impl Fn(u32) -> u64) -> Option<u32> {
        match self.probe(page, page_of) {
            (i, true) => Some(self.entries[i].slot),
            _ => None,
        }
    }

    /// The first slot whose tag is `page`'s, unchecked: where `page`
    /// almost surely is, for a prefetch that must not wait on the slot.
    #[inline]
    pub fn likely(&self, page: u64) -> Option<u32> {
        match self.scan(tag(page), |_| true) {
            (i, true) => Some(self.entries[i].slot),
            _ => None,
        }
    }

    /// Map `page` to `slot` (not [`NIL`]); the slot it had, if any.
    pub fn insert(&mut self, page: u64, slot: u32, page_of: impl Fn(u32) -> u64) -> Option<u32> {
        debug_assert_ne!(slot, NIL);
        let (mut i, found) = self.probe(page, page_of);
        if found {
            return Some(core::mem::replace(&mut self.entries[i].slot, slot));
        }
        if (self.len + 1) * 2 > self.entries.len() {
            self.grow();
            i = self.vacancy(tag(page));
        }
        self.entries[i] = Entry { tag: tag(page), slot };
        self.len += 1;
        None
    }

    /// Unmap `page`; the slot it had, if any.
    pub fn remove(&mut self, page: u64, page_of: impl Fn(u32) -> u64) -> Option<u32> {
        let (mut hole, found) = self.probe(page, page_of);
        if !found {
            return None;
        }
        let slot = self.entries[hole].slot;
        let mask = self.mask();
        // Backward shift: pull each later entry of the run back into the
        // hole unless that would move it before its home bucket.
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let e = self.entries[j];
            if e.slot == NIL {
                break;
            }
            // The entry may fill the hole iff the hole is no further from
            // its home than j is (distances taken cyclically).
            let home = self.home(e.tag);
            if (hole.wrapping_sub(home) & mask) <= (j.wrapping_sub(home) & mask) {
                self.entries[hole] = e;
                hole = j;
            }
        }
        self.entries[hole] = EMPTY;
        self.len -= 1;
        Some(slot)
    }

    /// Ask the CPU to bring `page`'s home bucket into cache: a hint with no
    /// effect on the map's contents. Nothing while the map is small enough
    /// to stay in cache anyway ([`SlotMap::is_large`]).
    #[inline]
    pub fn prefetch(&self, page: u64) {
        if self.is_large() {
            prefetch(&self.entries[self.home(tag(page))]);
        }
    }

    /// Whether the map is past what a core's L2 cache keeps (256 KiB of
    /// entries, a quarter of this machine's L2): below that, the policies'
    /// prefetch hints cost more than they save.
    #[inline]
    pub fn is_large(&self) -> bool {
        self.entries.len() > (256 << 10) / core::mem::size_of::<Entry>()
    }

    /// The empty entry that ends `tag`'s run.
    fn vacancy(&self, tag: u32) -> usize {
        self.scan(tag, |_| false).0
    }

    fn grow(&mut self) {
        // Unreachable past 2^32 entries: no policy holds more than about
        // twice its frames, which `check_frames` keeps below 2^30.
        debug_assert!(self.shift > 0, "a SlotMap of more than 2^32 entries");
        let bigger = vec![EMPTY; self.entries.len() * 2];
        let old = core::mem::replace(&mut self.entries, bigger);
        self.shift -= 1;
        for e in old.into_iter().filter(|e| e.slot != NIL) {
            let i = self.vacancy(e.tag);
            self.entries[i] = e;
        }
    }
}

/// A prefetch hint for the cache line holding `*p` (x86-64's `prefetcht0`;
/// nothing elsewhere).
#[inline(always)]
pub(crate) fn prefetch<T>(p: &T) {
    // SAFETY: the pointer comes from a live reference, and a prefetch
    // only hints the cache: it reads nothing into the program and cannot
    // fault. SSE, which the instruction needs, is baseline on x86-64.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>((p as *const T).cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::SmallRng, Rng, SeedableRng};
    use std::collections::HashMap;

    /// The map under test with the "arena" its slots index: `pages[slot]`
    /// is the slot's page, as a policy's nodes hold theirs.
    struct Model {
        m: SlotMap,
        pages: Vec<u64>,
    }

    impl Model {
        fn new() -> Model {
            Model {
                m: SlotMap::with_capacity(4),
                pages: Vec::new(),
            }
        }
        /// A fresh slot for `page`, mapped.
        fn insert(&mut self, page: u64) -> (u32, Option<u32>) {
            self.pages.push(page);
            let slot = (self.pages.len() - 1) as u32;
            let pages = &self.pages;
            (slot, self.m.insert(page, slot, |s| pages[s as usize]))
        }
        fn get(&self, page: u64) -> Option<u32> {
            self.m.get(page, |s| self.pages[s as usize])
        }
        fn remove(&mut self, page: u64) -> Option<u32> {
            let pages = &self.pages;
            self.m.remove(page, |s| pages[s as usize])
        }
    }

    /// Random inserts, removes and lookups against `std`'s map as the
    /// shadow model: over few pages (long probe runs, many wrap-arounds at
    /// the table's end), over many (growth), and over large page numbers.
    #[test]
    fn agrees_with_a_shadow_hash_map() {
        for (seed, keys, ops, scale) in [
            (1u64, 40u64, 20_000, 1u64),
            (2, 5_000, 200_000, 1),
            (3, 1 << 40, 50_000, 4096),
        ] {
            let mut rng = SmallRng::seed_from_u64(seed);
            let mut m = Model::new();
            let mut shadow: HashMap<u64, u32> = HashMap::new();
            for n in 0..ops {
                let k = (rng.gen_range(0..keys) ^ 0xdead_0000_0000).wrapping_mul(scale);
                match rng.gen_range(0..3) {
                    0 => {
                        let (slot, old) = m.insert(k);
                        assert_eq!(old, shadow.insert(k, slot), "insert {k} at op {n}");
                    }
                    1 => assert_eq!(m.remove(k), shadow.remove(&k), "remove {k} at op {n}"),
                    _ => assert_eq!(m.get(k), shadow.get(&k).copied(), "get {k} at op {n}"),
                }
                assert_eq!(m.m.len(), shadow.len());
            }
            for (&k, &v) in &shadow {
                assert_eq!(m.get(k), Some(v));
            }
            assert!(m.m.len() * 2 <= m.m.entries.len());
        }
    }

    /// Page ids of the shapes traces have (sequential, strided, in the high
    /// half only, scattered by multiplying by Fibonacci's own constant) sit
    /// near their home buckets: the mean distance from home stays under
    /// half an entry (about 0.2 for each shape at this load, 0.3).
    #[test]
    fn page_ids_of_every_shape_sit_near_home() {
        type Shape = (&'static str, fn(u64) -> u64);
        let shapes: [Shape; 5] = [
            ("sequential", |r| r),
            ("strided", |r| r * 4096),
            ("high half", |r| r << 32),
            ("higher", |r| r << 40),
            ("times phi", |r| r.wrapping_mul(PHI)),
        ];
        for (name, id) in shapes {
            let mut m = Model::new();
            for r in 1..=20_000 {
                m.insert(id(r));
            }
            let mask = m.m.mask();
            let (mut sum, mut n) = (0usize, 0usize);
            for (i, e) in m.m.entries.iter().enumerate() {
                if e.slot != NIL {
                    sum += i.wrapping_sub(m.m.home(e.tag)) & mask;
                    n += 1;
                }
            }
            let mean = sum as f64 / n as f64;
            assert!(mean < 0.5, "{name}: {mean:.2} entries from home on average");
        }
    }

    /// Pages whose tags are equal are told apart by their slots' pages;
    /// removing one leaves the other.
    #[test]
    fn pages_with_equal_tags_are_told_apart() {
        // Sequential pages never share a tag (Fibonacci hashing spreads
        // them evenly), random ones do after about 2^16 (the birthday
        // bound on 32 bits).
        let mut rng = SmallRng::seed_from_u64(9);
        let mut first: HashMap<u32, u64> = HashMap::new();
        let (a, b) = (0..10_000_000)
            .find_map(|_| {
                let p: u64 = rng.gen();
                first.insert(tag(p), p).filter(|&q| q != p).map(|q| (q, p))
            })
            .expect("a tag collision among 10 M random pages");
        assert_eq!(tag(a), tag(b));
        let mut m = Model::new();
        let (sa, _) = m.insert(a);
        let (sb, _) = m.insert(b);
        assert_eq!((m.get(a), m.get(b)), (Some(sa), Some(sb)));
        assert_eq!(m.remove(a), Some(sa));
        assert_eq!((m.get(a), m.get(b)), (None, Some(sb)));
    }

    /// Pages that share a home bucket, removed from the middle of their run
    /// and across the table's wrap-around: the later ones stay reachable.
    #[test]
    fn removal_keeps_colliding_pages_reachable() {
        let mut m = Model::new();
        let cap = m.m.entries.len();
        let keys: Vec<u64> = (0u64..).filter(|&k| m.m.home(tag(k)) == cap - 1).take(4).collect();
        let slots: Vec<u32> = keys.iter().map(|&k| m.insert(k).0).collect();
        assert_eq!(m.m.entries.len(), cap, "no growth: the run must wrap");
        assert_eq!(m.remove(keys[1]), Some(slots[1]));
        assert_eq!(m.get(keys[1]), None);
        for i in [0usize, 2, 3] {
            assert_eq!(m.get(keys[i]), Some(slots[i]), "key {i} after removing key 1");
        }
        assert_eq!(m.remove(keys[0]), Some(slots[0]));
        assert_eq!((m.get(keys[2]), m.get(keys[3])), (Some(slots[2]), Some(slots[3])));

        // A page at its own home right after the hole must not move back
        // into it: it would then lie before its home and be lost.
        let mut m = Model::new();
        let at_home = (0u64..).find(|&k| m.m.home(tag(k)) == 0).unwrap();
        let (s0, _) = m.insert(keys[0]);
        let (sh, _) = m.insert(at_home);
        assert_eq!(m.remove(keys[0]), Some(s0));
        assert_eq!(m.get(at_home), Some(sh));
    }
}
