//! The random sequence generator of `vmlab oracle record`.
//!
//! A sequence is a function of `(seed, seq)` alone: its own SplitMix64
//! stream (no library RNG, so a recording stays reproducible across crate
//! versions), whatever the number of sequences around it. The generator does
//! not see results; it keeps a page-by-page guess of the window (a shadow
//! that assumes well-formed calls succeed) and aims most calls at mappings,
//! their edges, their insides and free gaps, where splits, merges, moves and
//! faults happen, rather than at random holes.
//!
//! Invalid or odd arguments are made on purpose in about one call in eight,
//! labelled with a `prov` (`unaligned_addr`, `zero_len`, `zero_old_len`,
//! `zero_new_len`, `unaligned_len`, `out_of_window`, `bad_prot`,
//! `bad_flags`, `bad_advice`).

use super::format::{Advice, Call, MapFlags, MremapFlags, Prot, PAGE_SIZE, SLACK};
use crate::mm::mm::uapi::*;
use serde::{Deserialize, Serialize};

/// The calls of one sequence, without results: what the recorder child runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub seed: u64,
    pub seq: u64,
    #[serde(rename = "W")]
    pub w: i64,
    pub ops: Vec<Planned>,
}

/// One call of a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Planned {
    pub i: u64,
    #[serde(flatten)]
    pub call: Call,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prov: Option<String>,
}

/// Op kinds, in the order of [`OpMix`]'s weights.
pub const OP_NAMES: [&str; 7] = ["mmap", "munmap", "mprotect", "mremap", "madvise", "store", "load"];

/// Relative weights of the op kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpMix(pub [u32; 7]);

impl Default for OpMix {
    fn default() -> OpMix {
        OpMix([18, 8, 12, 14, 12, 22, 14])
    }
}

impl OpMix {
    /// The default mix without the named kinds (`mremap`, `madvise`, ...).
    pub fn without(names: &[&str]) -> Result<OpMix, String> {
        let mut m = OpMix::default();
        for n in names {
            let k = OP_NAMES
                .iter()
                .position(|x| x == n)
                .ok_or_else(|| format!("unknown op {n:?} (ops: {})", OP_NAMES.join(", ")))?;
            m.0[k] = 0;
        }
        if m.0[0] == 0 || m.0.iter().sum::<u32>() == 0 {
            return Err("mmap cannot be left out: every sequence starts by mapping".into());
        }
        Ok(m)
    }
}

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, seq: u64) -> Rng {
        let mut r = Rng(seed);
        let a = r.next();
        let mut r = Rng(a ^ seq.wrapping_mul(0xd1b5_4a32_d192_ed03));
        r.next();
        r
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, n), n > 0.
    fn below(&mut self, n: u64) -> u64 {
        ((self.next() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in [lo, hi), lo < hi.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo) as u64) as i64
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }

    /// An index drawn by weight.
    fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&w| w as u64).sum();
        let mut x = self.below(total);
        for (k, &w) in weights.iter().enumerate() {
            if x < w as u64 {
                return k;
            }
            x -= w as u64;
        }
        weights.len() - 1
    }
}

const P: u64 = PAGE_SIZE;
const RW: u32 = PROT_READ | PROT_WRITE;

/// What the generator believes a page holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Page {
    prot: u32,
    shared: bool,
    /// Which mapping it came from (mremap carries it along).
    id: u32,
}

/// The generator's guess of the slack area [-SLACK, W+SLACK), page by page.
/// It never sees results: it assumes that well-formed calls succeed and
/// leaves the state alone for odd ones. Wrong guesses only change which
/// calls get made.
struct Shadow {
    pages: Vec<Option<Page>>,
    w: i64,
    next_id: u32,
}

impl Shadow {
    fn idx(&self, pg: i64) -> Option<usize> {
        let k = pg + SLACK;
        (0..self.pages.len() as i64).contains(&k).then_some(k as usize)
    }

    fn get(&self, pg: i64) -> Option<Page> {
        self.idx(pg).and_then(|k| self.pages[k])
    }

    fn set(&mut self, pg: i64, n: i64, v: Option<Page>) {
        for p in pg..pg + n {
            if let Some(k) = self.idx(p) {
                self.pages[k] = v;
            }
        }
    }

    fn is_free(&self, pg: i64, n: i64) -> bool {
        (pg..pg + n).all(|p| self.idx(p).is_some() && self.get(p).is_none())
    }

    /// The maximal run of pages around `pg` that hold the same as `pg`.
    fn run(&self, pg: i64) -> (i64, i64) {
        let v = self.get(pg);
        let (mut s, mut e) = (pg, pg + 1);
        while self.idx(s - 1).is_some() && self.get(s - 1) == v {
            s -= 1;
        }
        while self.idx(e).is_some() && self.get(e) == v {
            e += 1;
        }
        (s, e - s)
    }

    /// Window pages that are mapped (or free).
    fn window_pages(&self, mapped: bool) -> Vec<i64> {
        (0..self.w).filter(|&p| self.get(p).is_some() == mapped).collect()
    }

    fn fresh(&mut self, prot: u32, shared: bool) -> Page {
        self.next_id += 1;
        Page {
            prot,
            shared,
            id: self.next_id,
        }
    }

    /// What a well-formed `call` is expected to do.
    fn apply(&mut self, call: &Call) {
        let pages = |len: u64| len.div_ceil(P) as i64;
        match *call {
            Call::Mmap {
                addr_pg,
                len_b,
                prot,
                flags,
                ..
            } => {
                let n = pages(len_b);
                let fixed = flags.0 & MAP_FIXED != 0 && flags.0 & MAP_FIXED_NOREPLACE == 0;
                if fixed || self.is_free(addr_pg, n) {
                    let v = self.fresh(prot.0, flags.0 & MAP_TYPE == MAP_SHARED);
                    self.set(addr_pg, n, Some(v));
                }
            }
            Call::Munmap { addr_pg, len_b, .. } => self.set(addr_pg, pages(len_b), None),
            Call::Mprotect {
                addr_pg, len_b, prot, ..
            } => {
                let n = pages(len_b);
                if (addr_pg..addr_pg + n).all(|p| self.get(p).is_some()) {
                    for p in addr_pg..addr_pg + n {
                        if let (Some(k), Some(mut v)) = (self.idx(p), self.get(p)) {
                            v.prot = prot.0;
                            self.pages[k] = Some(v);
                        }
                    }
                }
            }
            Call::Mremap {
                addr_pg,
                old_len_b,
                new_len_b,
                flags,
                new_addr_pg,
                ..
            } => {
                let (o, n) = (pages(old_len_b), pages(new_len_b));
                let Some(v) = self.get(addr_pg) else { return };
                let (s, l) = self.run(addr_pg);
                if o == 0 || n == 0 || addr_pg + o > s + l {
                    return;
                }
                let f = flags.0;
                let keep_old = f & MREMAP_DONTUNMAP != 0;
                if let Some(t) = new_addr_pg {
                    if t < addr_pg + o && addr_pg < t + n {
                        return;
                    }
                    if !keep_old {
                        self.set(addr_pg, o, None);
                    }
                    self.set(t, n, Some(v));
                } else if n <= o && !keep_old {
                    self.set(addr_pg + n, o - n, None);
                } else if !keep_old && self.is_free(addr_pg + o, n - o) {
                    self.set(addr_pg + o, n - o, Some(v));
                } else if f & MREMAP_MAYMOVE != 0 && !keep_old {
                    // Moved, most likely outside the slack area.
                    self.set(addr_pg, o, None);
                }
            }
            Call::Madvise { .. } | Call::Store { .. } | Call::Load { .. } => {}
        }
    }
}

struct Gen {
    r: Rng,
    w: i64,
    sh: Shadow,
}

impl Gen {
    /// A page in [0, W): at or near the edge of a mapping more often than not.
    fn page(&mut self) -> i64 {
        let mapped = self.sh.window_pages(true);
        let pg = if !mapped.is_empty() && self.r.chance(55) {
            let (s, n) = self.sh.run(self.r.pick(&mapped));
            let edge = if self.r.chance(50) { s } else { s + n };
            let d = if self.r.chance(60) {
                self.r.pick(&[0, 0, 0, -1, 1, -2, 2])
            } else {
                self.r.range(-8, 9)
            };
            edge + d
        } else {
            self.r.range(0, self.w)
        };
        pg.clamp(0, self.w - 1)
    }

    /// A page of the slack area outside the window.
    fn slack_page(&mut self) -> i64 {
        if self.r.chance(50) {
            self.r.range(-SLACK, 0)
        } else {
            self.r.range(self.w, self.w + SLACK / 2)
        }
    }

    /// A length in pages, mostly short.
    fn pages(&mut self) -> i64 {
        let x = self.r.below(100);
        let n = if x < 45 {
            self.r.range(1, 5)
        } else if x < 80 {
            self.r.range(5, 17)
        } else if x < 95 {
            self.r.range(17, 65)
        } else {
            self.r.range(65, self.w / 2 + 1)
        };
        n.clamp(1, SLACK)
    }

    /// Any range: a page and a length.
    fn any_range(&mut self) -> (i64, i64) {
        (self.page(), self.pages())
    }

    /// A range inside one mapping (as the generator believes): whole, a
    /// prefix, a suffix or the inside.
    fn in_mapping(&mut self) -> (i64, i64) {
        let mapped = self.sh.window_pages(true);
        if mapped.is_empty() {
            return self.any_range();
        }
        let (s, n) = self.sh.run(self.r.pick(&mapped));
        match self.r.below(10) {
            0..=2 => (s, n),
            3 | 4 => (s, self.r.range(1, n + 1)),
            5 | 6 => {
                let k = self.r.range(0, n);
                (s + k, n - k)
            }
            _ => {
                let k = self.r.range(0, n);
                (s + k, self.r.range(1, n - k + 1))
            }
        }
    }

    /// A range that starts in a mapping and may run past it.
    fn across(&mut self) -> (i64, i64) {
        let mapped = self.sh.window_pages(true);
        if mapped.is_empty() {
            return self.any_range();
        }
        let (s, n) = self.sh.run(self.r.pick(&mapped));
        let start = if self.r.chance(50) { s } else { s + self.r.range(0, n) };
        (start, n + self.r.range(1, 17))
    }

    /// A free range of `n` pages if the generator knows one, else any page.
    fn free_range(&mut self, n: i64) -> i64 {
        let free = self.sh.window_pages(false);
        if free.is_empty() {
            return self.page();
        }
        let f = self.r.pick(&free);
        let (s, l) = self.sh.run(f);
        if l >= n {
            if self.r.chance(50) {
                s
            } else {
                s + self.r.range(0, l - n + 1)
            }
        } else {
            f
        }
    }

    /// A page to load from or store to: mostly a mapped one.
    fn access_page(&mut self) -> i64 {
        let mapped = self.sh.window_pages(true);
        if !mapped.is_empty() && self.r.chance(80) {
            return self.r.pick(&mapped);
        }
        if self.r.chance(10) {
            self.slack_page()
        } else {
            self.page()
        }
    }

    fn prot(&mut self) -> u32 {
        let choices = [
            (RW, 40),
            (PROT_READ, 16),
            (PROT_NONE, 10),
            (PROT_READ | PROT_EXEC, 8),
            (RW | PROT_EXEC, 6),
            (PROT_WRITE, 6),
            (PROT_EXEC, 6),
            (PROT_WRITE | PROT_EXEC, 4),
        ];
        let weights: Vec<u32> = choices.iter().map(|c| c.1).collect();
        choices[self.r.weighted(&weights)].0
    }

    fn bad_prot(&mut self, prot: u32) -> u32 {
        prot | self.r.pick(&[0x10, PROT_SEM, PROT_GROWSDOWN, PROT_GROWSUP, 0x80])
    }

    /// `(addr_pg, addr_b, len_b)` for the range `(pg, n)`, made odd in about
    /// one call in eight with one of `provs`; and that prov.
    fn oddify(&mut self, (pg, n): (i64, i64), provs: &[&'static str]) -> (i64, u64, u64, Option<&'static str>) {
        let (mut pg, mut addr_b, mut len_b) = (pg, 0u64, n as u64 * P);
        let mut prov = None;
        if self.r.chance(12) {
            let p = self.r.pick(provs);
            match p {
                "unaligned_addr" => addr_b = self.r.range(1, P as i64) as u64,
                "zero_len" => len_b = 0,
                "unaligned_len" => len_b -= self.r.range(1, P as i64) as u64,
                "out_of_window" => pg = self.slack_page(),
                _ => {}
            }
            prov = Some(p);
        }
        (pg, addr_b, len_b, prov)
    }

    fn mmap(&mut self) -> (Call, Option<&'static str>) {
        let x = self.r.below(100);
        let place = if x < 55 {
            MAP_FIXED
        } else if x < 70 {
            MAP_FIXED_NOREPLACE
        } else {
            0
        };
        let range = if place == MAP_FIXED && self.r.chance(30) {
            // Over an existing mapping: MAP_FIXED replaces it.
            self.in_mapping()
        } else if self.r.chance(50) {
            let n = self.pages();
            (self.free_range(n), n)
        } else {
            self.any_range()
        };
        let (addr_pg, mut addr_b, len_b, mut prov) = self.oddify(
            range,
            &[
                "unaligned_addr",
                "zero_len",
                "unaligned_len",
                "out_of_window",
                "bad_prot",
                "bad_flags",
            ],
        );
        let mut prot = self.prot();
        let ty = if self.r.chance(70) { MAP_PRIVATE } else { MAP_SHARED };
        let mut flags = ty | MAP_ANONYMOUS | place;
        if place == 0 && prov.is_none() && self.r.chance(10) {
            // A hint need not be aligned; it is rounded down.
            addr_b = self.r.range(1, P as i64) as u64;
            prov = Some("unaligned_addr");
        }
        match prov {
            Some("bad_prot") => prot = self.bad_prot(prot),
            Some("bad_flags") => {
                flags = match self.r.below(5) {
                    // Neither MAP_SHARED nor MAP_PRIVATE.
                    0 => flags & !MAP_TYPE,
                    // An undefined map type.
                    1 => (flags & !MAP_TYPE) | 0x4,
                    // An unknown flag: ignored, unless MAP_SHARED_VALIDATE.
                    2 => flags | 0x40_0000,
                    3 => (flags & !MAP_TYPE) | MAP_SHARED_VALIDATE | 0x40_0000,
                    _ => (flags & !MAP_TYPE) | MAP_SHARED_VALIDATE,
                }
            }
            _ => {}
        }
        let call = Call::Mmap {
            addr_pg,
            addr_b,
            len_b,
            prot: Prot(prot),
            flags: MapFlags(flags),
        };
        (call, prov)
    }

    fn mremap(&mut self) -> (Call, Option<&'static str>) {
        let (addr_pg, old) = if self.r.chance(80) {
            self.in_mapping()
        } else {
            self.any_range()
        };
        let kinds = ["shrink", "grow", "grow_maymove", "move_fixed"];
        let kind = kinds[self.r.weighted(&[20, 20, 30, 30])];
        let mut flags = 0;
        let mut new = old;
        let mut new_addr_pg = None;
        match kind {
            "shrink" => {
                new = if old > 1 { self.r.range(1, old) } else { 1 };
                if self.r.chance(20) {
                    flags = MREMAP_MAYMOVE;
                }
            }
            "grow" => new = old + self.r.range(1, 33),
            "grow_maymove" => {
                flags = MREMAP_MAYMOVE;
                if self.r.chance(20) {
                    flags |= MREMAP_DONTUNMAP;
                } else {
                    new = old + self.r.range(1, 65);
                }
            }
            _ => {
                flags = MREMAP_MAYMOVE | MREMAP_FIXED;
                if self.r.chance(25) {
                    flags |= MREMAP_DONTUNMAP;
                } else {
                    new = match self.r.below(4) {
                        0 => self.r.range(1, old + 1),
                        1 => old + self.r.range(1, 17),
                        _ => old,
                    };
                }
                new_addr_pg = Some(if self.r.chance(60) {
                    self.free_range(new)
                } else {
                    self.page()
                });
            }
        }
        let (mut addr_pg, mut addr_b) = (addr_pg, 0u64);
        let (mut old_len_b, mut new_len_b) = (old as u64 * P, new as u64 * P);
        let mut prov = None;
        if self.r.chance(12) {
            let p = self.r.pick(&[
                "unaligned_addr",
                "zero_old_len",
                "zero_new_len",
                "unaligned_len",
                "bad_flags",
                "out_of_window",
            ]);
            match p {
                "unaligned_addr" => addr_b = self.r.range(1, P as i64) as u64,
                "zero_old_len" => old_len_b = 0,
                "zero_new_len" => new_len_b = 0,
                "unaligned_len" => {
                    if self.r.chance(50) {
                        old_len_b -= self.r.range(1, P as i64) as u64;
                    } else {
                        new_len_b -= self.r.range(1, P as i64) as u64;
                    }
                }
                "out_of_window" => addr_pg = self.slack_page(),
                _ => {
                    flags = match self.r.below(4) {
                        0 => flags | 0x100,
                        // MREMAP_FIXED or MREMAP_DONTUNMAP without MREMAP_MAYMOVE.
                        1 => {
                            new_addr_pg = Some(self.r.range(0, self.w));
                            MREMAP_FIXED
                        }
                        2 => MREMAP_DONTUNMAP,
                        // MREMAP_DONTUNMAP with lengths that differ.
                        _ => {
                            new_len_b = old_len_b + P;
                            flags | MREMAP_MAYMOVE | MREMAP_DONTUNMAP
                        }
                    }
                }
            }
            prov = Some(p);
        }
        // The format names a target only with MREMAP_FIXED (otherwise the
        // kernel is passed 0: no hint).
        if flags & MREMAP_FIXED == 0 {
            new_addr_pg = None;
        }
        let call = Call::Mremap {
            kind: kind.to_string(),
            addr_pg,
            addr_b,
            old_len_b,
            new_len_b,
            flags: MremapFlags(flags),
            new_addr_pg,
        };
        (call, prov)
    }

    /// A range for munmap, mprotect or madvise.
    fn target(&mut self) -> (i64, i64) {
        match self.r.below(20) {
            0..=14 => self.in_mapping(),
            15..=17 => self.across(),
            _ => self.any_range(),
        }
    }

    fn op(&mut self, kind: usize) -> (Call, Option<&'static str>) {
        match OP_NAMES[kind] {
            "mmap" => self.mmap(),
            "munmap" => {
                let t = self.target();
                let (addr_pg, addr_b, len_b, prov) =
                    self.oddify(t, &["unaligned_addr", "zero_len", "unaligned_len", "out_of_window"]);
                (Call::Munmap { addr_pg, addr_b, len_b }, prov)
            }
            "mprotect" => {
                let t = self.target();
                let (addr_pg, addr_b, len_b, prov) = self.oddify(
                    t,
                    &[
                        "unaligned_addr",
                        "zero_len",
                        "unaligned_len",
                        "out_of_window",
                        "bad_prot",
                    ],
                );
                let mut prot = self.prot();
                if prov == Some("bad_prot") {
                    prot = self.bad_prot(prot);
                }
                let prot = Prot(prot);
                let call = Call::Mprotect {
                    addr_pg,
                    addr_b,
                    len_b,
                    prot,
                };
                (call, prov)
            }
            "madvise" => {
                let t = self.target();
                let (addr_pg, addr_b, len_b, prov) = self.oddify(
                    t,
                    &[
                        "unaligned_addr",
                        "zero_len",
                        "unaligned_len",
                        "out_of_window",
                        "bad_advice",
                    ],
                );
                let choices = [
                    (MADV_DONTNEED, 30),
                    (MADV_FREE, 10),
                    (MADV_WILLNEED, 8),
                    (MADV_COLD, 6),
                    (MADV_PAGEOUT, 6),
                    (MADV_NORMAL, 8),
                    (MADV_RANDOM, 6),
                    (MADV_SEQUENTIAL, 6),
                    (MADV_DONTFORK, 10),
                    (MADV_DOFORK, 10),
                ];
                let weights: Vec<u32> = choices.iter().map(|c| c.1).collect();
                let mut advice = choices[self.r.weighted(&weights)].0;
                if prov == Some("bad_advice") {
                    advice = self.r.pick(&[5, 6, 7, 999, 0x7fff_ffff]);
                }
                let advice = Advice(advice);
                let call = Call::Madvise {
                    addr_pg,
                    addr_b,
                    len_b,
                    advice,
                };
                (call, prov)
            }
            "mremap" => self.mremap(),
            name => {
                let pg = self.access_page();
                let byte = match self.r.below(10) {
                    0 => 0,
                    1 => P - 1,
                    _ => self.r.below(P),
                };
                if name == "store" {
                    let val = self.r.range(1, 256) as u8;
                    (Call::Store { pg, byte, val }, None)
                } else {
                    (Call::Load { pg, byte }, None)
                }
            }
        }
    }
}

/// Sequence `seq` of seed `seed`: `n_ops` calls in a window of `w` pages,
/// kinds drawn by `mix`. The first call always maps (MAP_FIXED).
pub fn plan(seed: u64, seq: u64, w: i64, n_ops: usize, mix: &OpMix) -> Plan {
    let w = w.max(1);
    let mut g = Gen {
        r: Rng::new(seed, seq),
        w,
        sh: Shadow {
            pages: vec![None; (w + 2 * SLACK) as usize],
            w,
            next_id: 0,
        },
    };
    let mut ops = Vec::with_capacity(n_ops);
    for i in 0..n_ops {
        let (call, prov) = if i == 0 {
            let pg = g.r.range(0, g.w);
            let n = g.pages();
            let ty = if g.r.chance(70) { MAP_PRIVATE } else { MAP_SHARED };
            let call = Call::Mmap {
                addr_pg: pg,
                addr_b: 0,
                len_b: n as u64 * P,
                prot: Prot(if g.r.chance(80) { RW } else { g.prot() }),
                flags: MapFlags(ty | MAP_ANONYMOUS | MAP_FIXED),
            };
            (call, None)
        } else {
            let k = g.r.weighted(&mix.0);
            g.op(k)
        };
        // Odd calls other than unaligned lengths (which are rounded) are
        // expected to fail and change nothing.
        if prov.is_none() || prov == Some("unaligned_len") {
            g.sh.apply(&call);
        }
        ops.push(Planned {
            i: i as u64,
            call,
            prov: prov.map(str::to_string),
        });
    }
    Plan { seed, seq, w, ops }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_independent_of_neighbours() {
        let mix = OpMix::default();
        let a = plan(42, 7, 256, 30, &mix);
        let b = plan(42, 7, 256, 30, &mix);
        assert_eq!(a, b);
        assert_ne!(a, plan(42, 8, 256, 30, &mix));
        assert_ne!(a, plan(43, 7, 256, 30, &mix));
        // A longer sequence starts with the shorter one's calls.
        let c = plan(42, 7, 256, 40, &mix);
        assert_eq!(a.ops[..], c.ops[..30]);
    }

    #[test]
    fn covers_every_kind_and_prov() {
        let mix = OpMix::default();
        let mut seen = std::collections::BTreeSet::new();
        for seq in 0..300 {
            for p in plan(1, seq, 256, 20, &mix).ops {
                p.call.validate().unwrap();
                seen.insert(p.call.name().to_string());
                if let Call::Mremap { kind, flags, .. } = &p.call {
                    seen.insert(kind.clone());
                    if flags.0 & MREMAP_DONTUNMAP != 0 {
                        seen.insert("dontunmap".into());
                    }
                }
                if let Call::Mmap { flags, .. } = &p.call {
                    if flags.0 & MAP_FIXED_NOREPLACE != 0 {
                        seen.insert("noreplace".into());
                    }
                    if flags.0 & (MAP_FIXED | MAP_FIXED_NOREPLACE) == 0 {
                        seen.insert("hint".into());
                    }
                    if flags.0 & MAP_SHARED != 0 {
                        seen.insert("shared".into());
                    }
                }
                if let Some(pr) = p.prov {
                    seen.insert(pr);
                }
            }
        }
        for want in [
            "mmap",
            "munmap",
            "mprotect",
            "mremap",
            "madvise",
            "store",
            "load",
            "shrink",
            "grow",
            "grow_maymove",
            "move_fixed",
            "dontunmap",
            "noreplace",
            "hint",
            "shared",
            "unaligned_addr",
            "zero_len",
            "zero_old_len",
            "zero_new_len",
            "unaligned_len",
            "out_of_window",
            "bad_prot",
            "bad_flags",
            "bad_advice",
        ] {
            assert!(seen.contains(want), "never generated: {want}");
        }
    }

    #[test]
    fn mix_without() {
        let m = OpMix::without(&["mremap", "madvise"]).unwrap();
        for seq in 0..50 {
            for p in plan(3, seq, 256, 20, &m).ops {
                assert!(!matches!(p.call, Call::Mremap { .. } | Call::Madvise { .. }));
            }
        }
        assert!(OpMix::without(&["mmap"]).is_err());
        assert!(OpMix::without(&["fork"]).is_err());
    }

    #[test]
    fn addresses_stay_near_the_window() {
        for seq in 0..200 {
            for p in plan(9, seq, 256, 25, &OpMix::default()).ops {
                let (pg, len) = match p.call {
                    Call::Mmap { addr_pg, len_b, .. }
                    | Call::Munmap { addr_pg, len_b, .. }
                    | Call::Mprotect { addr_pg, len_b, .. }
                    | Call::Madvise { addr_pg, len_b, .. } => (addr_pg, len_b),
                    Call::Mremap {
                        addr_pg,
                        old_len_b,
                        new_len_b,
                        ..
                    } => (addr_pg, old_len_b.max(new_len_b)),
                    Call::Store { pg, .. } | Call::Load { pg, .. } => (pg, 1),
                };
                assert!((-SLACK..256 + SLACK).contains(&pg), "{p:?}");
                assert!(len <= 256 * P, "{p:?}");
            }
        }
    }
}
