//! `mm::oom`'s badness and score against this host's kernel: the formula,
//! fed this process's own footprint (/proc/self/status VmRSS, VmSwap,
//! VmPTE) and the host's MemTotal + SwapTotal, gives /proc/self/oom_score
//! for each oom_score_adj this process sets itself.
//!
//! Host facts: Linux 5.x-6.x `proc_oom_score` (the 2/3 scaling); writes
//! /proc/self/oom_score_adj (raising it is allowed to anyone; the negative
//! values need CAP_SYS_RESOURCE, and are tried only where the write
//! succeeds). Its own test binary, so no other test reads this process's
//! score meanwhile; the adjustment is set back to what it was.

use vmlab_mm::mm::oom::{oom_badness, oom_score, OomFootprint};

fn kb(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} line"))
}

fn footprint() -> OomFootprint {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    OomFootprint {
        rss: kb(&s, "VmRSS:") / 4,
        swap_entries: kb(&s, "VmSwap:") / 4,
        page_table_pages: kb(&s, "VmPTE:") / 4,
    }
}

fn total_pages() -> u64 {
    let m = std::fs::read_to_string("/proc/meminfo").unwrap();
    (kb(&m, "MemTotal:") + kb(&m, "SwapTotal:")) / 4
}

fn set_adj(adj: i32) -> bool {
    std::fs::write("/proc/self/oom_score_adj", adj.to_string()).is_ok()
}

#[test]
fn oom_score_follows_the_host_kernel() {
    let total = total_pages();
    let before = std::fs::read_to_string("/proc/self/oom_score_adj").unwrap();
    let mut judged = 0;
    for adj in [0, 1, 300, 999, 1000, -300, -999, -1000] {
        if !set_adj(adj) {
            assert!(adj < 0, "raising oom_score_adj to {adj} was refused");
            continue;
        }
        // The footprint moves while it is read: the host's score must lie
        // between the formula's before and after it.
        let a = oom_score(oom_badness(footprint(), adj, total), total);
        let host: u64 = std::fs::read_to_string("/proc/self/oom_score")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let b = oom_score(oom_badness(footprint(), adj, total), total);
        assert!(
            a.min(b) <= host && host <= a.max(b),
            "adj {adj}: host oom_score {host}, formula {a}..{b} (total {total} pages)"
        );
        judged += 1;
    }
    assert!(std::fs::write("/proc/self/oom_score_adj", before.trim()).is_ok());
    assert!(judged >= 5, "only {judged} adjustments could be judged");
}
