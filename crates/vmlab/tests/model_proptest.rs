//! Random mmap (MAP_FIXED, MAP_FIXED_NOREPLACE, hinted) / munmap / mprotect
//! / mremap (fixed moves, with and without MREMAP_DONTUNMAP, and in-place
//! shrinks: what a page model can decide without knowing VMA boundaries) /
//! madvise(MADV_DONTNEED) / store / load sequences in a 64-page window, run
//! on vmlab and checked three ways:
//! - against a page-granular reference model written here (per page: mapped,
//!   protection, contents): every syscall result, every load value and fault
//!   kind, and the per-page protection the maps lines describe;
//! - by `Machine::check()` after every op, and "every frame free" after exit
//!   (both inside `oracle::run_vmlab`);
//! - against the host kernel running the same sequence (`common/oracle.rs`),
//!   which is the oracle for what the page model leaves out: where VMA
//!   boundaries fall (Linux's merge rules: VM_ACCOUNT, VM_NORESERVE,
//!   anon_vma compatibility) and the exact maps lines.

mod common;

use common::oracle::{self, run_host, run_vmlab, show_maps, Op, A, P, R};
use proptest::prelude::*;
use std::collections::HashMap;
use vmlab_mm::mm::uapi::*;

/// The host child (see `common/oracle.rs`); a no-op in a normal test run.
#[test]
fn oracle_child() {
    oracle::child_main();
}

const PAGES: u8 = 64;
const PROTS: [u32; 8] = [
    PROT_NONE,
    PROT_READ,
    PROT_READ | PROT_WRITE,
    PROT_READ | PROT_WRITE,
    PROT_WRITE,
    PROT_EXEC,
    PROT_READ | PROT_EXEC,
    PROT_READ | PROT_WRITE | PROT_EXEC,
];

#[derive(Clone, Copy, Debug)]
enum How {
    Fixed,
    NoReplace,
    Hint,
}

#[derive(Clone, Debug)]
enum TOp {
    Map {
        pg: u8,
        n: u8,
        prot: u32,
        how: How,
        noreserve: bool,
    },
    Unmap {
        pg: u8,
        n: u8,
    },
    Protect {
        pg: u8,
        n: u8,
        prot: u32,
    },
    Store {
        pg: u8,
        word: u8,
        val: u64,
    },
    Load {
        pg: u8,
        word: u8,
    },
    Remap {
        pg: u8,
        n: u8,
        how: Remap,
    },
    DontNeed {
        pg: u8,
        n: u8,
    },
}

#[derive(Clone, Copy, Debug)]
enum Remap {
    /// MREMAP_MAYMOVE | MREMAP_FIXED to page `to`, same length.
    Move { to: u8 },
    /// The same with MREMAP_DONTUNMAP.
    MoveKeep { to: u8 },
    /// In place to `k` pages (fewer or as many).
    Shrink { k: u8 },
}

/// A page, mostly in the first 16 pages so that mappings meet and merge often.
fn page() -> impl Strategy<Value = u8> {
    prop_oneof![4 => 0u8..16, 1 => 0..PAGES]
}

fn range() -> impl Strategy<Value = (u8, u8)> {
    (page(), prop_oneof![3 => 1u8..=3, 1 => 1u8..=8]).prop_map(|(pg, n)| (pg, n.min(PAGES - pg)))
}

fn prot() -> impl Strategy<Value = u32> {
    prop::sample::select(&PROTS[..])
}

fn top() -> impl Strategy<Value = TOp> {
    let how = prop_oneof![4 => Just(How::Fixed), 1 => Just(How::NoReplace), 2 => Just(How::Hint)];
    prop_oneof![
        4 => (range(), prot(), how, prop::bool::weighted(0.15)).prop_map(|((pg, n), prot, how, noreserve)| TOp::Map {
            pg,
            n,
            prot,
            how,
            noreserve
        }),
        2 => range().prop_map(|(pg, n)| TOp::Unmap { pg, n }),
        4 => (range(), prot()).prop_map(|((pg, n), prot)| TOp::Protect { pg, n, prot }),
        3 => (page(), 0u8..4, any::<u64>()).prop_map(|(pg, word, val)| TOp::Store { pg, word, val }),
        3 => (page(), 0u8..4).prop_map(|(pg, word)| TOp::Load { pg, word }),
        2 => (range(), page(), 0u8..3).prop_map(|((pg, n), to, kind)| {
            let to = to.min(PAGES - n);
            let how = match kind {
                0 => Remap::Move { to },
                1 => Remap::MoveKeep { to },
                _ => Remap::Shrink { k: n / 2 + to % 2 },
            };
            TOp::Remap { pg, n, how }
        }),
        1 => range().prop_map(|(pg, n)| TOp::DontNeed { pg, n }),
    ]
}

fn addr(pg: u8, word: u8) -> A {
    A::Rel(pg as i64 * P as i64 + word as i64 * 8)
}

/// The syscall ops for `ops`, each followed by a maps snapshot.
fn to_ops(ops: &[TOp]) -> Vec<Op> {
    let mut out = Vec::with_capacity(2 * ops.len());
    for op in ops {
        out.push(match *op {
            TOp::Map {
                pg,
                n,
                prot,
                how,
                noreserve,
            } => {
                let mut flags = MAP_PRIVATE | MAP_ANONYMOUS;
                if noreserve {
                    flags |= MAP_NORESERVE;
                }
                let a = addr(pg, 0);
                let len = n as u64 * P;
                match how {
                    How::Fixed => Op::Mmap {
                        a,
                        len,
                        prot,
                        flags: flags | MAP_FIXED,
                    },
                    How::NoReplace => Op::Mmap {
                        a,
                        len,
                        prot,
                        flags: flags | MAP_FIXED_NOREPLACE,
                    },
                    How::Hint => Op::MmapHint { a, len, prot, flags },
                }
            }
            TOp::Unmap { pg, n } => Op::Munmap {
                a: addr(pg, 0),
                len: n as u64 * P,
            },
            TOp::Protect { pg, n, prot } => Op::Mprotect {
                a: addr(pg, 0),
                len: n as u64 * P,
                prot,
            },
            TOp::Store { pg, word, val } => Op::Store { a: addr(pg, word), val },
            TOp::Load { pg, word } => Op::Load { a: addr(pg, word) },
            TOp::Remap { pg, n, how } => {
                let (flags, new_n, to) = match how {
                    Remap::Move { to } => (MREMAP_MAYMOVE | MREMAP_FIXED, n, to),
                    Remap::MoveKeep { to } => (MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, n, to),
                    Remap::Shrink { k } => (0, k, 0),
                };
                Op::Mremap {
                    a: addr(pg, 0),
                    old_len: n as u64 * P,
                    new_len: new_n as u64 * P,
                    flags,
                    new_a: addr(to, 0),
                    back: None,
                }
            }
            TOp::DontNeed { pg, n } => Op::Madvise {
                a: addr(pg, 0),
                len: n as u64 * P,
                advice: MADV_DONTNEED,
            },
        });
        out.push(Op::Maps);
    }
    out
}

/// The reference model: per page, its protection if mapped; contents by
/// word; whether the host has protection keys (then PROT_EXEC-only pages,
/// as the generator makes them, are execute-only).
struct Model {
    pages: [Option<u32>; PAGES as usize],
    data: HashMap<(u8, u8), u64>,
    pkeys: bool,
}

impl Model {
    fn new(pkeys: bool) -> Model {
        Model {
            pages: [None; PAGES as usize],
            data: HashMap::new(),
            pkeys,
        }
    }

    fn clear(&mut self, pg: u8, n: u8) {
        for p in pg..pg + n {
            self.pages[p as usize] = None;
        }
        self.data.retain(|(p, _), _| !(pg..pg + n).contains(p));
    }

    fn map(&mut self, pg: u8, n: u8, prot: u32) {
        self.clear(pg, n);
        for p in pg..pg + n {
            self.pages[p as usize] = Some(prot);
        }
    }

    fn free(&self, pg: u8, n: u8) -> bool {
        (pg..pg + n).all(|p| self.pages[p as usize].is_none())
    }

    /// Apply `op` and return the result Linux gives.
    fn apply(&mut self, op: &TOp) -> R {
        let at = |pg: u8| R::At(pg as i64 * P as i64);
        match *op {
            TOp::Map { pg, n, prot, how, .. } => match how {
                How::Fixed => {
                    self.map(pg, n, prot);
                    at(pg)
                }
                How::NoReplace if !self.free(pg, n) => R::Err("EEXIST".into()),
                How::NoReplace => {
                    self.map(pg, n, prot);
                    at(pg)
                }
                // Honoured iff free (arch_get_unmapped_area_topdown);
                // otherwise placed far away and unmapped by the harness.
                How::Hint if self.free(pg, n) => {
                    self.map(pg, n, prot);
                    at(pg)
                }
                How::Hint => R::Elsewhere,
            },
            TOp::Unmap { pg, n } => {
                self.clear(pg, n);
                R::Ok
            }
            TOp::Protect { pg, n, prot } => {
                // Pages before the first hole change; the hole is ENOMEM.
                for p in pg..pg + n {
                    match &mut self.pages[p as usize] {
                        Some(old) => *old = prot,
                        None => return R::Err("ENOMEM".into()),
                    }
                }
                R::Ok
            }
            TOp::Store { pg, word, val } => match self.pages[pg as usize] {
                None => R::Segv("MAPERR".into()),
                Some(PROT_EXEC) if self.pkeys => R::Segv("PKUERR".into()),
                Some(p) if p & PROT_WRITE == 0 => R::Segv("ACCERR".into()),
                Some(_) => {
                    self.data.insert((pg, word), val);
                    R::Ok
                }
            },
            // x86: any of R/W/X allows a load.
            TOp::Load { pg, word } => match self.pages[pg as usize] {
                None => R::Segv("MAPERR".into()),
                Some(PROT_EXEC) if self.pkeys => R::Segv("PKUERR".into()),
                Some(PROT_NONE) => R::Segv("ACCERR".into()),
                Some(_) => R::Val(self.data.get(&(pg, word)).copied().unwrap_or(0)),
            },
            TOp::Remap { pg, n, how } => match how {
                Remap::Move { to } | Remap::MoveKeep { to } => {
                    // check_mremap_params: overlapping ranges are EINVAL.
                    if pg < to + n && to < pg + n {
                        return R::Err("EINVAL".into());
                    }
                    // remap_move: the range must start in a VMA; each mapped
                    // page moves to the same offset from `to` (the target's
                    // unmapped-source offsets keep what they had).
                    if self.pages[pg as usize].is_none() {
                        return R::Err("EFAULT".into());
                    }
                    let keep = matches!(how, Remap::MoveKeep { .. });
                    for i in 0..n {
                        let (s, t) = (pg + i, to + i);
                        let Some(prot) = self.pages[s as usize] else { continue };
                        self.pages[t as usize] = Some(prot);
                        for w in 0..4 {
                            match self.data.remove(&(s, w)) {
                                Some(v) => self.data.insert((t, w), v),
                                None => self.data.remove(&(t, w)),
                            };
                        }
                        if !keep {
                            self.pages[s as usize] = None;
                        }
                    }
                    R::At(to as i64 * P as i64)
                }
                // No resize or a shrink in place: the first page must be
                // mapped; the tail is unmapped across VMAs and holes.
                Remap::Shrink { k } => {
                    if k == 0 {
                        return R::Err("EINVAL".into());
                    }
                    if self.pages[pg as usize].is_none() {
                        return R::Err("EFAULT".into());
                    }
                    self.clear(pg + k, n - k);
                    R::At(pg as i64 * P as i64)
                }
            },
            // Mapped pages read zero again; a hole anywhere is ENOMEM.
            TOp::DontNeed { pg, n } => {
                self.data.retain(|(p, _), _| !(pg..pg + n).contains(p));
                if self.free_any(pg, n) {
                    R::Err("ENOMEM".into())
                } else {
                    R::Ok
                }
            }
        }
    }

    fn free_any(&self, pg: u8, n: u8) -> bool {
        (pg..pg + n).any(|p| self.pages[p as usize].is_none())
    }

    /// Per-page perms as maps would show them.
    fn perms(&self) -> Vec<Option<String>> {
        self.pages
            .iter()
            .map(|p| {
                p.map(|p| {
                    let b = |bit: u32, c: char| if p & bit != 0 { c } else { '-' };
                    format!("{}{}{}p", b(PROT_READ, 'r'), b(PROT_WRITE, 'w'), b(PROT_EXEC, 'x'))
                })
            })
            .collect()
    }
}

/// Per-page perms from maps lines; `Err` if a line leaves the window.
fn page_perms(lines: &[(i64, i64, String)]) -> Result<Vec<Option<String>>, String> {
    let mut out = vec![None; PAGES as usize];
    for (s, e, perms) in lines {
        if *s < 0 || *e > PAGES as i64 {
            return Err(format!("maps line {s}-{e}:{perms} outside the window"));
        }
        for p in *s..*e {
            out[p as usize] = Some(perms.clone());
        }
    }
    Ok(out)
}

fn run(ops: &[TOp]) -> Result<(), TestCaseError> {
    let sys = to_ops(ops);
    let ours = run_vmlab(&sys);
    // The host judges vmlab below, so both model its protection keys.
    let mut model = Model::new(vmlab::host::HostFacts::get().pkeys);
    for (i, op) in ops.iter().enumerate() {
        let want = model.apply(op);
        prop_assert_eq!(&ours[2 * i], &want, "op {} {:?}: vmlab vs model", i, op);
        let R::Maps(lines) = &ours[2 * i + 1] else {
            return Err(TestCaseError::fail(format!("op {i}: no maps snapshot")));
        };
        let got = page_perms(lines).map_err(TestCaseError::fail)?;
        prop_assert_eq!(
            got,
            model.perms(),
            "op {} {:?}: page protections differ from the model; maps {}",
            i,
            op,
            show_maps(lines)
        );
    }
    if let Some(host) = run_host(std::slice::from_ref(&sys)) {
        for (k, (h, v)) in host[0].iter().zip(&ours).enumerate() {
            prop_assert_eq!(h, v, "op {} {:?} (host vs vmlab)", k / 2, ops[k / 2]);
        }
    }
    Ok(())
}

/// 64 cases of up to 40 ops keep CI fast; `VMLAB_PROPTEST_CASES=N` runs more.
fn cases() -> u32 {
    std::env::var("VMLAB_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn vmlab_matches_model_and_host(ops in prop::collection::vec(top(), 1..40)) {
        run(&ops)?;
    }
}
