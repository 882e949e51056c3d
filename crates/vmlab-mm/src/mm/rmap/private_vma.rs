//! `rmap = private_vma` (seed 000 #4, "PrivateVMA"): no anon_vma chain. A
//! private page's owner is the identity of the one VMA that maps it, and
//! the identity names that VMA's address space; fork (`eager` only,
//! enforced by `MachineConfig::validate`) copies every private page and
//! gives the copies the child VMA's own identity, so no private page is
//! mapped twice. Object pages use the object's list, as `object`.
//!
//! Where this differs from the seed: its pages point at the VMA itself,
//! so splitting or merging a VMA rewrites the pages it covers. Here the
//! page names the identity and its page offset (`Vma::pgoff`), which
//! splitting, merging and mremap keep, so no page is rewritten; the
//! design's saving — no chain and no member list per fork — is kept.

use super::identities::Registry;
use super::{object, Find, RmapCx};
use crate::addr::Pfn;
use crate::phys::Owner;
use alloc::vec::Vec;

pub(super) fn candidates(r: &Registry, cx: &RmapCx<'_>, frame: Pfn) -> Vec<(u64, Find)> {
    let Some(d) = cx.phys.desc(frame) else {
        return Vec::new();
    };
    match d.owner() {
        Owner::Anon { anon, index } => r
            .anon
            .get(&anon)
            .and_then(|a| a.members.first())
            .map_or(Vec::new(), |&(mm, vid)| alloc::vec![(mm, Find::Anon { vid, index })]),
        Owner::Object { object, index } => object::objects(r, object, index),
        _ => Vec::new(),
    }
}

/// What the design keeps: per identity its address space (16 bytes), and
/// the objects' lists.
pub(super) fn bytes(r: &Registry) -> u64 {
    let objects: usize = r.objects.values().map(|v| 8 + v.len() * 8).sum();
    (r.anon.len() * 16 + objects) as u64
}
