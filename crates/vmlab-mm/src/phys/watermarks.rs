//! Zone watermarks as Linux computes them (mm/page_alloc.c,
//! `init_per_zone_wmark_min` → `setup_per_zone_wmarks` →
//! `__setup_per_zone_wmarks`): reclaim (issue 11) wakes kswapd when a zone's
//! free frames fall below `low`, lets it work until `high`, and reclaims in
//! the allocating path below `min`.
//!
//! - `min_free_kbytes` = √(16 × low memory in KiB), clamped to
//!   [128, 262144] KiB. (Linux raises it further when transparent huge
//!   pages are enabled, `set_recommended_min_free_kbytes`; vmlab has no
//!   huge pages, so it does not.)
//! - Each zone's `min` is its share of `min_free_kbytes` in pages,
//!   proportional to its managed pages; `low` = `min` + `gap` and `high` =
//!   `low` + `gap`, where `gap` = max(`min` / 4, managed ×
//!   `watermark_scale_factor` / 10000).
//!
//! `tests/watermarks.rs` compares these with this host's `/proc/zoneinfo`.

use alloc::vec::Vec;

/// Linux's default `vm.watermark_scale_factor` (in 1/10000 of a zone).
pub const WATERMARK_SCALE_FACTOR: u64 = 10;

/// A zone's watermarks, in frames.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Watermarks {
    pub min: u64,
    pub low: u64,
    pub high: u64,
}

/// `min_free_kbytes` for `lowmem_kbytes` of low memory (Linux
/// `calculate_min_free_kbytes`: `int_sqrt(lowmem_kbytes * 16)`, clamped).
pub fn min_free_kbytes(lowmem_kbytes: u64) -> u64 {
    isqrt(lowmem_kbytes.saturating_mul(16)).clamp(128, 262_144)
}

/// The watermarks of zones with `managed` pages each, from
/// `min_free_kbytes` and `scale_factor` (Linux `__setup_per_zone_wmarks`
/// for zones that are neither highmem nor movable: all of vmlab's).
pub fn zone_watermarks(min_free_kbytes: u64, scale_factor: u64, managed: &[u64]) -> Vec<Watermarks> {
    let pages_min = min_free_kbytes / 4; // >> (PAGE_SHIFT - 10)
    let lowmem: u64 = managed.iter().sum();
    managed
        .iter()
        .map(|&m| {
            let min = if lowmem == 0 {
                0
            } else {
                ((pages_min as u128 * m as u128) / lowmem as u128) as u64
            };
            let gap = (min >> 2).max(((m as u128 * scale_factor as u128) / 10_000) as u64);
            Watermarks {
                min,
                low: min + gap,
                high: min + 2 * gap,
            }
        })
        .collect()
}

/// ⌊√n⌋ (Linux `int_sqrt`).
fn isqrt(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    // Newton's method from an upper bound; converges in a few steps.
    let mut x = 1u64 << (64 - n.leading_zeros()).div_ceil(2);
    loop {
        let y = (x + n / x) / 2;
        if y >= x {
            return x;
        }
        x = y;
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn isqrt_is_the_floor_of_the_square_root() {
        for n in [0u64, 1, 2, 3, 4, 15, 16, 17, 99, 100, 101, u32::MAX as u64, u64::MAX] {
            let r = isqrt(n);
            assert!(r.checked_mul(r).is_some_and(|s| s <= n), "{n}: {r}");
            assert!((r + 1).checked_mul(r + 1).is_none_or(|s| s > n), "{n}: {r}");
        }
    }

    #[test]
    fn min_free_kbytes_follows_linux_and_its_clamps() {
        // 1 GiB of low memory: √(16 × 1048576) = 4096 KiB.
        assert_eq!(min_free_kbytes(1 << 20), 4096);
        assert_eq!(min_free_kbytes(64), 128, "the floor");
        assert_eq!(min_free_kbytes(1 << 40), 262_144, "the ceiling");
    }

    #[test]
    fn zone_shares_are_proportional_and_the_gap_is_the_larger_rule() {
        // Two zones, 1:3; min_free_kbytes 4096 = 1024 pages.
        let w = zone_watermarks(4096, 10, &[65_536, 196_608]);
        assert_eq!(w[0].min, 256);
        assert_eq!(w[1].min, 768);
        // The gap is the larger of min / 4 (64, 192) and 0.1 % of the zone
        // (65, 196): here the latter.
        assert_eq!((w[0].low, w[0].high), (256 + 65, 256 + 130));
        assert_eq!((w[1].low, w[1].high), (768 + 196, 768 + 392));
        // A large scale factor widens the gap.
        let w = zone_watermarks(4096, 1000, &[65_536]);
        assert_eq!(w[0].low - w[0].min, 6553);
    }
}
