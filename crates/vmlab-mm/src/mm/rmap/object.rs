//! `rmap = object`: the object-based reverse map (Linux 2.6.7 on:
//! `anon_vma` for anonymous pages, `i_mmap` for file pages; gVisor's
//! `MappingSet`). A page's owner names its identity and page offset; the
//! identity lists the (address space, VMA identity) pairs that may map it
//! (its own VMAs', and its fork descendants', through `Rmap::fork_anon`);
//! an object lists the address spaces with a VMA of it. The address is
//! found from the VMA's `pgoff`, which mremap keeps, so splitting, merging
//! and moving VMAs change nothing here.

use super::identities::Registry;
use super::{Find, RmapCx};
use crate::addr::Pfn;
use crate::phys::Owner;
use alloc::vec::Vec;

pub(super) fn candidates(r: &Registry, cx: &RmapCx<'_>, frame: Pfn) -> Vec<(u64, Find)> {
    let Some(d) = cx.phys.desc(frame) else {
        return Vec::new();
    };
    match d.owner() {
        Owner::Anon { anon, index } => r.anon.get(&anon).map_or(Vec::new(), |a| {
            a.members
                .iter()
                .map(|&(mm, vid)| (mm, Find::Anon { vid, index }))
                .collect()
        }),
        Owner::Object { object, index } => objects(r, object, index),
        _ => Vec::new(),
    }
}

/// The address spaces of object `object`'s list, at page `index`.
pub(super) fn objects(r: &Registry, object: u64, index: u64) -> Vec<(u64, Find)> {
    r.objects.get(&object).map_or(Vec::new(), |l| {
        l.iter().map(|&mm| (mm, Find::Object { object, index })).collect()
    })
}
