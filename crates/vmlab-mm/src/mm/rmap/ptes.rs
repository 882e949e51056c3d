//! `rmap = pte_chain` and `rmap = pte_pool`: a frame's PTE pointers are
//! kept by `phys/pte_links.rs` (a chain through the second page of each
//! order-1 leaf table, or a pool of pointer nodes). A pointer is turned
//! into (address space, address) through the leaf table it lies in: a
//! private table's owner and the address its entry 0 maps
//! (`FrameDesc::table_base`; Linux 2.5 `ptep_to_mm`, `ptep_to_address`),
//! a fork-shared table's sharers (`PhysMem::table_sharers`, all at the same
//! address), an object table's sharers (each at its own span).

use super::{Find, RmapCx};
use crate::addr::{Pfn, PAGE_SIZE, WORDS_PER_PAGE};
use crate::phys::Owner;
use alloc::vec::Vec;

pub(super) fn candidates(cx: &RmapCx<'_>, frame: Pfn) -> Vec<(u64, Find)> {
    let mut out = Vec::new();
    for w in cx.phys.linked_ptes(frame) {
        let table = Pfn(w as usize / WORDS_PER_PAGE);
        let off = (w % WORDS_PER_PAGE as u64) * PAGE_SIZE;
        let Some(td) = cx.phys.desc(table) else { continue };
        let sharers = cx.phys.table_sharers(table);
        if !sharers.is_empty() {
            out.extend(sharers.into_iter().map(|mm| (mm, Find::Va(td.table_base() + off))));
            continue;
        }
        match td.owner() {
            Owner::PageTable { mm } if mm != 0 => out.push((mm, Find::Va(td.table_base() + off))),
            Owner::ObjectTable { object } => {
                if let Some(obj) = cx.objects.get(crate::mm::ObjectId(object)) {
                    for (mm, span) in obj.table_sharers(table) {
                        out.push((mm, Find::Va(span + off)));
                    }
                }
            }
            _ => {}
        }
    }
    out
}
