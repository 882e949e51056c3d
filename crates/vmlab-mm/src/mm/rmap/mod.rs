//! Reverse maps: from a frame to every PTE that maps it (config `rmap`).

/// The reverse-map design (config `rmap`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RmapPolicy {
    /// Object-based: anonymous pages through their anon_vma chain, object
    /// pages through the object's list of address spaces mapping it.
    Object,
    /// Seed 002: a chain of PTE pointers per frame, its links in the second
    /// page of each order-1 page table.
    PteChain,
    /// Mark Hemment's alternative: per-frame pools of PTE pointers.
    PtePool,
    /// Seed 000 #4: a private page points at its one VMA (`fork = eager` only).
    PrivateVma,
    /// No reverse map: walk every address space's page tables.
    None,
}

impl RmapPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            RmapPolicy::Object => "object",
            RmapPolicy::PteChain => "pte_chain",
            RmapPolicy::PtePool => "pte_pool",
            RmapPolicy::PrivateVma => "private_vma",
            RmapPolicy::None => "none",
        }
    }
}
