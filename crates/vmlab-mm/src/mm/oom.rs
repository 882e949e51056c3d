//! How bad it would be to kill a process when memory runs out: Linux's
//! `oom_badness` (mm/oom_kill.c) and the `/proc/PID/oom_score` it exports
//! (fs/proc/base.c `proc_oom_score`). The OOM killer (issue 11) picks the
//! process with the highest badness; `oom_score_adj` (-1000 to 1000) biases
//! it by thousandths of all memory, and -1000 exempts the process.
//!
//! `tests/oom_score.rs` in the vmlab crate checks the formula against this
//! host's `/proc/self/oom_score`.

/// `oom_score_adj` bounds (Linux `OOM_SCORE_ADJ_MIN`, `OOM_SCORE_ADJ_MAX`).
pub const OOM_SCORE_ADJ_MIN: i32 = -1000;
pub const OOM_SCORE_ADJ_MAX: i32 = 1000;

/// What `oom_badness` weighs, in pages (Linux: `get_mm_rss`,
/// `MM_SWAPENTS`, `mm_pgtables_bytes / PAGE_SIZE`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct OomFootprint {
    pub rss: u64,
    pub swap_entries: u64,
    pub page_table_pages: u64,
}

/// Linux `oom_badness`: the footprint plus `adj` thousandths of
/// `total_pages` (RAM + swap). `None` for an exempt process
/// (`adj == OOM_SCORE_ADJ_MIN`, Linux `LONG_MIN`).
pub fn oom_badness(f: OomFootprint, adj: i32, total_pages: u64) -> Option<i64> {
    if adj == OOM_SCORE_ADJ_MIN {
        return None;
    }
    let points = (f.rss + f.swap_entries + f.page_table_pages) as i64;
    Some(points + adj as i64 * (total_pages / 1000) as i64)
}

/// `/proc/PID/oom_score`: the badness scaled to [0, 2000] and then by 2/3
/// (Linux keeps the old range userspace reads); 0 for an exempt process.
pub fn oom_score(badness: Option<i64>, total_pages: u64) -> u64 {
    match badness {
        None => 0,
        Some(b) => {
            let t = total_pages.max(1) as i64;
            ((1000 + b * 1000 / t) * 2 / 3).max(0) as u64
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn badness_weighs_the_footprint_and_the_adjustment() {
        let f = OomFootprint {
            rss: 1000,
            swap_entries: 200,
            page_table_pages: 5,
        };
        assert_eq!(oom_badness(f, 0, 1_000_000), Some(1205));
        assert_eq!(oom_badness(f, 500, 1_000_000), Some(1205 + 500 * 1000));
        assert_eq!(oom_badness(f, -1000, 1_000_000), None);
        // A process using all of memory scores 1333; an empty one 666 (as `cat` does here).
        let all = OomFootprint {
            rss: 1_000_000,
            ..OomFootprint::default()
        };
        assert_eq!(oom_score(oom_badness(all, 0, 1_000_000), 1_000_000), 1333);
        assert_eq!(
            oom_score(oom_badness(OomFootprint::default(), 0, 1_000_000), 1_000_000),
            666
        );
        assert_eq!(oom_score(oom_badness(f, 1000, 1_000_000), 1_000_000), 1334);
        assert_eq!(oom_score(None, 1_000_000), 0);
        // The lowest adjustment short of exemption leaves a little: never below 0.
        assert_eq!(oom_score(oom_badness(f, -999, 1_000_000), 1_000_000), 2);
    }
}
