//! What the OOM killer will weigh (`mm/oom.rs`): each process's footprint
//! and `oom_score_adj`, with Linux's errno. (The formula itself is judged
//! against the host in the vmlab crate's tests/oom_score.rs.)

mod common;
use vmlab_mm::errno::Errno;
use vmlab_mm::mm::uapi::*;
use vmlab_mm::system::Machine;

const PAGE: u64 = 4096;

fn touch(m: &Machine, pid: u32, pages: u64) {
    let a = m
        .mmap(
            pid,
            0,
            pages * PAGE,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS,
        )
        .unwrap();
    for i in 0..pages {
        m.write(pid, a + i * PAGE, &[1]).unwrap().unwrap();
    }
}

#[test]
fn the_footprint_is_rss_and_page_tables_and_the_score_ranks_by_it() {
    let m = Machine::new(&common::test_config()).unwrap();
    let (a, b) = (m.spawn().unwrap(), m.spawn().unwrap());
    touch(&m, a, 64);
    touch(&m, b, 4096);
    let (fa, fb) = (m.oom_footprint(a).unwrap(), m.oom_footprint(b).unwrap());
    assert_eq!((fa.rss, fb.rss), (64, 4096));
    assert_eq!(fa.swap_entries, 0);
    // Root, PDPT, PD and one leaf table at least; B's 16 MiB needs 8 leaves.
    assert!(
        fa.page_table_pages >= 4 && fb.page_table_pages >= fa.page_table_pages + 7,
        "{fa:?} {fb:?}"
    );
    assert!(m.oom_score(b).unwrap() > m.oom_score(a).unwrap());
    // An adjustment outweighs the footprint: a thousandth of memory per point.
    m.set_oom_score_adj(a, 500).unwrap();
    assert!(m.oom_score(a).unwrap() > m.oom_score(b).unwrap());
}

#[test]
fn oom_score_adj_takes_linux_errno_and_fork_inherits_it() {
    let m = Machine::new(&common::test_config()).unwrap();
    let p = m.spawn().unwrap();
    assert_eq!(m.set_oom_score_adj(p, 1001), Err(Errno::EINVAL));
    assert_eq!(m.set_oom_score_adj(p, -1001), Err(Errno::EINVAL));
    // Unprivileged: lowering below 0 needs CAP_SYS_RESOURCE.
    assert_eq!(m.set_oom_score_adj(p, -1), Err(Errno::EACCES));
    assert_eq!(m.set_oom_score_adj(9999, 0), Err(Errno::ESRCH));
    assert_eq!(m.oom_score_adj(p), Ok(0));
    m.set_oom_score_adj(p, 700).unwrap();
    let c = m.fork(p).unwrap();
    assert_eq!(m.oom_score_adj(c), Ok(700));
    m.set_oom_score_adj(p, 0).unwrap();
    assert_eq!(m.oom_score_adj(c), Ok(700), "the child's is its own");
}
