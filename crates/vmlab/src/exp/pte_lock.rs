//! `vmlab exp pte_lock`: the three `fault_lock` policies with 1 to N threads
//! of one process faulting at once, on disjoint and on shared pages.
//!
//! For each policy (`mm_lock`, `pt_lock`, `pte_bit`), each thread count T
//! (1, 2, 4, ... doubling, and N itself; N is `--threads`, by default the
//! config's `cpus`) and each pattern, one process maps fresh anonymous
//! memory and T real threads, each driving its own simulated CPU, store one
//! word to each page after a common start:
//!
//! - `disjoint`: thread i writes pages `[i*P, (i+1)*P)` of a region of T×P
//!   pages (P is `--pages`): no two threads fault on one page.
//! - `shared`: every thread writes every page of one region of P pages, in
//!   the same order, so threads race to fault the same entries.
//!
//! Per run: `faults` (minor faults handled), the wall time from the start to
//! the last thread's end, `pages_wasted` (frames allocated by a fault and
//! freed because another CPU filled the entry first) and `lock_waits`
//! (faults that found their policy's lock held). Seed 000 #5 also asks for
//! fault latency under concurrent faults: one extra run per row times every
//! thread's first store to each page (`first_store_p50_ns`, `_p99_ns`; the
//! fault, or the wait for another CPU's, or the walk that finds it done). Rows hold medians over
//! `--runs` runs; each run maps a fresh region and checks every page's word
//! afterwards (one of the writers' values, the thread's own when disjoint).
//!
//! Claims: seed 000 #5 (on the shared pattern with N threads, `pt_lock`
//! wastes at least a tenth of its faults' allocations, and `pte_bit`'s
//! first-store p99 is at most 1.1 × `pt_lock`'s) and seed 002 (fault
//! throughput scales with CPUs under `pt_lock` and `pte_bit`, not under
//! `mm_lock`: disjoint pattern, N threads over 1). `claims` is a pure
//! function of the rows, so its tests feed it rows either way.

use super::{
    check_all_freed, median, median_u64, ratio, row_of, Claim, Column, Comparison, ExpError, Format, Report, MIN_RUNS,
};
use crate::mm::addr::PAGE_SIZE;
use crate::mm::mm::uapi::{MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE};
use crate::mm::mm::FaultLock;
use crate::mm::system::config::FaultLockName;
use crate::mm::system::{ByteSize, Machine, MachineConfig, Pid};
use serde_json::{json, Map, Value};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Pages each thread faults in unless `--pages` says otherwise (128 MiB).
pub const DEFAULT_PAGES: usize = 32 * 1024;
/// The patterns, in row order.
pub const PATTERNS: [&str; 2] = ["disjoint", "shared"];
/// Seed 002's scaling claim: N threads fault at least this fraction of N
/// times as fast as one (0.9 × 2 = 1.8x on two CPUs).
pub const SCALING_FRACTION: f64 = 0.9;
/// Below this speedup of N threads over one, `mm_lock` counts as not scaling.
pub const NO_SCALING: f64 = 1.25;
/// Seed 000 #5's waste claim: under pt_lock, at least this fraction of the
/// shared pattern's faults allocate a page they then free.
pub const MIN_WASTE: f64 = 0.1;
/// Seed 000 #5's latency claim: pte_bit's shared first-store p99 is at most
/// this times pt_lock's.
pub const MAX_P99_RATIO: f64 = 1.1;

/// The experiment's parameters.
#[derive(Clone, Debug)]
pub struct PteLockParams {
    /// Most threads (and CPUs) measured.
    pub threads: usize,
    /// Pages per thread (disjoint) or in all (shared).
    pub pages: usize,
    pub runs: usize,
}

impl PteLockParams {
    /// Parameters, checked: at least 2 threads (the claims compare N with
    /// 1), at most 64 (CPUs of a machine), at least 64 pages, `MIN_RUNS` runs.
    pub fn new(threads: usize, pages: usize, runs: usize) -> Result<PteLockParams, ExpError> {
        if !(2..=64).contains(&threads) {
            return Err(ExpError::Usage(format!(
                "--threads {threads}: must be 2..=64 (the claims compare N threads with one)"
            )));
        }
        if pages < 64 {
            return Err(ExpError::Usage(format!("--pages {pages}: at least 64 pages")));
        }
        if runs < MIN_RUNS {
            return Err(ExpError::Usage(format!(
                "--runs {runs}: at least {MIN_RUNS} runs are needed"
            )));
        }
        Ok(PteLockParams { threads, pages, runs })
    }

    /// 1, 2, 4, ... below `threads`, then `threads`.
    pub fn thread_counts(&self) -> Vec<usize> {
        let mut v: Vec<usize> = std::iter::successors(Some(1usize), |t| Some(t * 2))
            .take_while(|&t| t < self.threads)
            .collect();
        v.push(self.threads);
        v
    }
}

/// One (policy, threads, pattern) measurement, medians over the runs.
#[derive(Clone, Debug)]
pub struct Measured {
    pub policy: FaultLock,
    pub threads: usize,
    pub pattern: &'static str,
    pub faults: u64,
    pub elapsed_ns: u64,
    pub faults_per_s: f64,
    pub pages_wasted: u64,
    pub lock_waits: u64,
    /// Median and 99th percentile of a thread's first store to a page (the
    /// fault, or the wait for another CPU's, or a walk), from a separate timed run.
    pub first_store_p50_ns: u64,
    pub first_store_p99_ns: u64,
}

impl Measured {
    fn row(&self) -> Map<String, Value> {
        let v = json!({
            "policy": self.policy.as_str(),
            "threads": self.threads,
            "pattern": self.pattern,
            "faults": self.faults,
            "elapsed_ns": self.elapsed_ns,
            "faults_per_s": self.faults_per_s.round() as u64,
            "pages_wasted": self.pages_wasted,
            "lock_waits": self.lock_waits,
            "first_store_p50_ns": self.first_store_p50_ns,
            "first_store_p99_ns": self.first_store_p99_ns,
        });
        row_of(v)
    }
}

fn columns() -> Vec<Column> {
    vec![
        Column::new("policy", "policy", Format::Text),
        Column::new("threads", "threads", Format::Int),
        Column::new("pattern", "pattern", Format::Text),
        Column::new("faults", "faults", Format::Int),
        Column::new("elapsed_ns", "elapsed", Format::Nanos),
        Column::new("faults_per_s", "faults/s", Format::Int),
        Column::new("pages_wasted", "wasted", Format::Int),
        Column::new("lock_waits", "lock waits", Format::Int),
        Column::new("first_store_p50_ns", "store p50", Format::Nanos),
        Column::new("first_store_p99_ns", "store p99", Format::Nanos),
    ]
}

/// RAM for the largest region (N × P pages), its page tables, and slack.
pub fn ram_needed(params: &PteLockParams) -> u64 {
    let bytes = (params.threads * params.pages) as u64 * PAGE_SIZE;
    let mib = 1 << 20;
    (bytes + bytes / 256 + 16 * mib).div_ceil(mib) * mib
}

/// Run the experiment. Each policy's machine is `base` with `fault_lock`
/// set, `cpus` raised to `--threads`, and `ram` raised to `ram_needed`.
pub fn run(
    base: &MachineConfig,
    params: &PteLockParams,
    build: &dyn Fn(&MachineConfig) -> Result<Machine, String>,
    progress: &mut dyn FnMut(&str),
) -> Result<Report, ExpError> {
    let ram = ram_needed(params).max(base.ram.0);
    if let Some(avail) = super::host_mem_available() {
        if ram + ram / 8 > avail {
            return Err(ExpError::Usage(format!(
                "--threads {} --pages {}: the experiment needs about {} of host memory, {} is available",
                params.threads,
                params.pages,
                super::fmt_bytes(ram + ram / 8),
                super::fmt_bytes(avail)
            )));
        }
    }
    let mut used = base.clone();
    used.ram = ByteSize(ram);
    used.cpus = params.threads.max(base.cpus);
    let mut rows: Vec<Measured> = Vec::new();
    for policy in FaultLock::ALL {
        let mut cfg = used.clone();
        cfg.fault_lock = FaultLockName::of(policy);
        let m = build(&cfg).map_err(|e| ExpError::Usage(format!("config error: {e}")))?;
        for threads in params.thread_counts() {
            for pattern in PATTERNS {
                let r = measure(&m, policy, threads, pattern, params)?;
                progress(&format!(
                    "exp pte_lock: {} {threads} threads {pattern}: {} faults/s, {} wasted, {} lock waits",
                    policy.as_str(),
                    r.faults_per_s.round(),
                    r.pages_wasted,
                    r.lock_waits
                ));
                rows.push(r);
            }
        }
        check_all_freed(&m, policy.as_str(), "every process exited")?;
    }
    let claims = claims(&rows, params.threads);
    let host_cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut notes = vec![format!(
        "Each row: medians of {} runs; one process, T threads each on its own simulated CPU (a real thread); \
         disjoint: {} pages per thread; shared: {} pages written by every thread in the same order. faults/s = \
         faults / wall time from the first thread's start to the last thread's end (each thread reads the clock itself).",
        params.runs, params.pages, params.pages
    )];
    if params.threads > host_cpus {
        notes.push(format!(
            "--threads {} exceeds this host's {host_cpus} CPUs: threads share cores, so no policy can scale to N.",
            params.threads
        ));
    }
    Ok(Report {
        experiment: "pte_lock".into(),
        config: serde_json::to_value(&used).unwrap_or(Value::Null),
        params: json!({
            "threads": params.thread_counts(),
            "pages": params.pages,
            "runs": params.runs,
            "policies": FaultLock::ALL.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
            "patterns": PATTERNS,
            "host_cpus": host_cpus,
        }),
        rows: rows.iter().map(Measured::row).collect(),
        claims,
        columns: columns(),
        notes,
    })
}

/// The value thread `t` stores in page `i`.
fn value(t: usize, i: usize) -> u64 {
    ((t as u64 + 1) << 48) | i as u64
}

/// One run: counters' deltas and the wall time.
struct Run {
    faults: u64,
    wasted: u64,
    waits: u64,
    elapsed: Duration,
    /// Nanoseconds of each timed store (empty unless the run was timed).
    latencies: Vec<u32>,
}

fn measure(
    m: &Machine,
    policy: FaultLock,
    threads: usize,
    pattern: &'static str,
    params: &PteLockParams,
) -> Result<Measured, ExpError> {
    let mut runs = Vec::with_capacity(params.runs);
    // One unmeasured warm-up: the host faults in the simulated RAM's pages.
    for i in 0..=params.runs {
        let r = one_run(m, threads, pattern, params.pages, false)?;
        if i > 0 {
            runs.push(r);
        }
    }
    // One more run with every first store timed, apart from the counted
    // runs so that the clock reads do not change their throughput.
    let mut lat = one_run(m, threads, pattern, params.pages, true)?.latencies;
    lat.sort_unstable();
    let pct = |q: f64| {
        lat.get(((lat.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0) as u64
    };
    let pick = |f: &dyn Fn(&Run) -> u64| median_u64(&runs.iter().map(f).collect::<Vec<_>>()).unwrap_or(0);
    let rates: Vec<f64> = runs
        .iter()
        .map(|r| ratio(r.faults as f64, r.elapsed.as_secs_f64()))
        .collect();
    Ok(Measured {
        policy,
        threads,
        pattern,
        faults: pick(&|r| r.faults),
        elapsed_ns: pick(&|r| r.elapsed.as_nanos() as u64),
        faults_per_s: median(&rates).unwrap_or(f64::NAN),
        pages_wasted: pick(&|r| r.wasted),
        lock_waits: pick(&|r| r.waits),
        first_store_p50_ns: pct(0.5),
        first_store_p99_ns: pct(0.99),
    })
}

fn one_run(m: &Machine, threads: usize, pattern: &str, pages: usize, timed: bool) -> Result<Run, ExpError> {
    let rt = |what: &str, e: &dyn std::fmt::Display| ExpError::Runtime(format!("{what}: {e}"));
    let shared = pattern == "shared";
    let total = if shared { pages } else { threads * pages };
    let pid: Pid = m.spawn().map_err(|e| rt("spawn", &e))?;
    let len = (total as u64) * PAGE_SIZE;
    let base = m
        .mmap(pid, 0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        .map_err(|e| rt("mmap", &e))?;
    let before = m.stats();
    let barrier = Barrier::new(threads + 1);
    let mut latencies = Vec::new();
    let result: Result<Duration, ExpError> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || -> Result<(Instant, Instant, Vec<u32>), String> {
                    let mut cpu = m.cpu(t).map_err(|e| format!("cpu {t}: {e}"))?;
                    cpu.switch_to(pid).map_err(|e| format!("switch_to: {e}"))?;
                    let mut lat = Vec::with_capacity(if timed { pages } else { 0 });
                    barrier.wait();
                    // Each thread times itself: the spawning thread may not
                    // run again until the workers are done.
                    let began = Instant::now();
                    let (first, count) = if shared { (0, pages) } else { (t * pages, pages) };
                    for i in first..first + count {
                        let t0 = timed.then(Instant::now);
                        cpu.store_u64(base + i as u64 * PAGE_SIZE, value(t, i))
                            .map_err(|f| format!("thread {t}: store to page {i} faulted: {f:?}"))?;
                        if let Some(t0) = t0 {
                            lat.push(t0.elapsed().as_nanos().min(u32::MAX as u128) as u32);
                        }
                    }
                    Ok((began, Instant::now(), lat))
                })
            })
            .collect();
        barrier.wait();
        let mut errs = Vec::new();
        let mut span: Option<(Instant, Instant)> = None;
        for h in handles {
            match h.join() {
                Ok(Ok((b, e, lat))) => {
                    latencies.extend(lat);
                    span = Some(span.map_or((b, e), |(sb, se)| (sb.min(b), se.max(e))));
                }
                Ok(Err(e)) => errs.push(e),
                Err(_) => errs.push("a thread panicked".into()),
            }
        }
        match errs.into_iter().next() {
            Some(e) => Err(ExpError::Runtime(e)),
            None => Ok(span.map_or(Duration::ZERO, |(b, e)| e - b)),
        }
    });
    let after = m.stats();
    // Every page holds a value one of its writers stored.
    let check = (|| -> Result<(), String> {
        let mut cpu = m.any_cpu().map_err(|e| format!("no CPU to check with: {e}"))?;
        cpu.switch_to(pid).map_err(|e| e.to_string())?;
        for i in 0..total {
            let got = cpu
                .load_u64(base + i as u64 * PAGE_SIZE)
                .map_err(|f| format!("page {i}: {f:?}"))?;
            let ok = if shared {
                (0..threads).any(|t| got == value(t, i))
            } else {
                got == value(i / pages, i)
            };
            if !ok {
                return Err(format!("page {i} holds {got:#x}, which no thread stored there"));
            }
        }
        Ok(())
    })();
    m.exit(pid).map_err(|e| rt("exit", &e))?;
    let elapsed = result?;
    check.map_err(|e| ExpError::Runtime(format!("{threads} threads {pattern}: {e}")))?;
    Ok(Run {
        faults: after.minor_faults - before.minor_faults,
        wasted: after.pages_wasted - before.pages_wasted,
        waits: after.lock_waits - before.lock_waits,
        elapsed,
        latencies,
    })
}

fn find<'a>(rows: &'a [Measured], policy: FaultLock, threads: usize, pattern: &str) -> Option<&'a Measured> {
    rows.iter()
        .find(|r| r.policy == policy && r.threads == threads && r.pattern == pattern)
}

/// Faults per second of N threads over one thread's, disjoint pattern.
fn speedup(rows: &[Measured], policy: FaultLock, n: usize) -> f64 {
    match (find(rows, policy, n, "disjoint"), find(rows, policy, 1, "disjoint")) {
        (Some(a), Some(b)) => ratio(a.faults_per_s, b.faults_per_s),
        _ => f64::NAN,
    }
}

fn claims(rows: &[Measured], n: usize) -> Vec<Claim> {
    let shared = |p| find(rows, p, n, "shared");
    let target = SCALING_FRACTION * n as f64;
    let scale = |p: FaultLock| {
        Claim::new(
            "002",
            format!(
                "An SMP-friendly fault handler: under {} the fault throughput of {n} threads on disjoint pages is \
                 at least {SCALING_FRACTION} x {n} times one thread's.",
                p.as_str()
            ),
            format!(
                "faults_per_s({}, {n} threads) / faults_per_s(1 thread), disjoint",
                p.as_str()
            ),
            speedup(rows, p, n),
            Comparison::AtLeast(target),
        )
    };
    // Seed 000 #5's case for the lock bit: allocating before locking (as
    // pt_lock does) wastes allocations when CPUs race for the same entries,
    // which claiming the entry first relieves. pte_bit's own waste is not a
    // claim: it allocates only after the claim, so it is zero by
    // construction; what can come out either way is whether the waste it
    // removes is large, and whether its waits cost latency.
    let waste = shared(FaultLock::PtLock).map_or(f64::NAN, |r| ratio(r.pages_wasted as f64, r.faults as f64));
    let p99 = |p| shared(p).map_or(f64::NAN, |r| r.first_store_p99_ns as f64);
    vec![
        Claim::new(
            "000 #5",
            format!(
                "Relief of memory page allocation: allocating a page before locking the entry (pt_lock) wastes at \
                 least {MIN_WASTE} of the faults' allocations when {n} threads race for the same pages, which the \
                 lock bit in the PTE avoids."
            ),
            format!("pages_wasted(pt_lock, {n} threads, shared) / faults(pt_lock, {n} threads, shared)"),
            waste,
            Comparison::AtLeast(MIN_WASTE),
        ),
        Claim::new(
            "000 #5",
            format!(
                "The lock bit costs no fault latency: with {n} threads racing for the same pages, the 99th \
                 percentile of a first store under pte_bit is at most {MAX_P99_RATIO} x pt_lock's."
            ),
            format!(
                "first_store_p99_ns(pte_bit, {n} threads, shared) / first_store_p99_ns(pt_lock, {n} threads, shared)"
            ),
            ratio(p99(FaultLock::PteBit), p99(FaultLock::PtLock)),
            Comparison::AtMost(MAX_P99_RATIO),
        ),
        scale(FaultLock::PteBit),
        scale(FaultLock::PtLock),
        Claim::exact(
            "002",
            format!(
                "The old design does not scale: under mm_lock (one lock per address space for the whole fault) {n} \
                 threads fault at most {NO_SCALING} times as fast as one."
            ),
            format!("faults_per_s(mm_lock, {n} threads) / faults_per_s(1 thread), disjoint"),
            speedup(rows, FaultLock::MmLock, n),
            Comparison::AtMost(NO_SCALING),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exp::Verdict;

    #[test]
    fn thread_counts_double_up_to_n() {
        let p = |n| PteLockParams::new(n, 64, 5).unwrap().thread_counts();
        assert_eq!(p(2), vec![1, 2]);
        assert_eq!(p(6), vec![1, 2, 4, 6]);
        assert_eq!(p(8), vec![1, 2, 4, 8]);
        assert!(PteLockParams::new(1, 64, 5).is_err());
        assert!(PteLockParams::new(2, 10, 5).is_err());
        assert!(PteLockParams::new(2, 64, 4).is_err());
    }

    #[test]
    fn small_run_counts_faults_and_checks_values() {
        let base = MachineConfig {
            ram: ByteSize(64 << 20),
            ..MachineConfig::default()
        };
        let params = PteLockParams::new(2, 256, 5).unwrap();
        let build = |c: &MachineConfig| Machine::new(c).map_err(|e| e.to_string());
        let r = run(&base, &params, &build, &mut |_| {}).unwrap();
        assert_eq!(r.rows.len(), 3 * 2 * 2);
        for row in &r.rows {
            let threads = row["threads"].as_u64().unwrap();
            let faults = row["faults"].as_u64().unwrap();
            let pattern = row["pattern"].as_str().unwrap();
            // Every page faults once; a shared page may fault once per thread
            // (a loser of the race faults too), never more.
            if pattern == "disjoint" {
                assert_eq!(faults, threads * 256, "{row:?}");
            } else {
                assert!((256..=threads * 256).contains(&faults), "{row:?}");
            }
            if row["policy"] != "pt_lock" {
                assert_eq!(row["pages_wasted"], 0, "{row:?}");
            }
            if threads == 1 {
                assert_eq!(row["lock_waits"], 0, "{row:?}");
                assert_eq!(row["pages_wasted"], 0, "{row:?}");
            }
        }
        assert_eq!(r.claims.len(), 5);
        // The waste claim's measure is pt_lock's shared row at N = 2.
        let pt = r
            .rows
            .iter()
            .find(|row| row["policy"] == "pt_lock" && row["threads"] == 2 && row["pattern"] == "shared")
            .unwrap();
        let want = pt["pages_wasted"].as_f64().unwrap() / pt["faults"].as_f64().unwrap();
        assert_eq!(r.claims[0].main().measured(), want);
    }

    /// A row of `policy` with the numbers the claims read.
    fn row(
        policy: FaultLock,
        threads: usize,
        pattern: &'static str,
        faults_per_s: f64,
        wasted: u64,
        p99: u64,
    ) -> Measured {
        Measured {
            policy,
            threads,
            pattern,
            faults: 1000,
            elapsed_ns: 1,
            faults_per_s,
            pages_wasted: wasted,
            lock_waits: 0,
            first_store_p50_ns: p99 / 2,
            first_store_p99_ns: p99,
        }
    }

    /// Rows for N = 2: `speedup` of pte_bit and pt_lock and of mm_lock, pt_lock's
    /// waste on the shared pattern (of 1000 faults) and each policy's shared p99.
    fn rows(speedup: f64, mm_speedup: f64, pt_wasted: u64, pte_p99: u64, pt_p99: u64) -> Vec<Measured> {
        let mut v = Vec::new();
        for (p, s, wasted, p99) in [
            (FaultLock::MmLock, mm_speedup, 0, 5000),
            (FaultLock::PtLock, speedup, pt_wasted, pt_p99),
            (FaultLock::PteBit, speedup, 0, pte_p99),
        ] {
            v.push(row(p, 1, "disjoint", 1e6, 0, 3000));
            v.push(row(p, 1, "shared", 1e6, 0, 3000));
            v.push(row(p, 2, "disjoint", 1e6 * s, 0, 3000));
            v.push(row(p, 2, "shared", 1e6, wasted, p99));
        }
        v
    }

    fn verdicts(rows: &[Measured]) -> Vec<Verdict> {
        claims(rows, 2).iter().map(|c| c.verdict()).collect()
    }

    #[test]
    fn every_claim_is_reproduced_by_rows_that_meet_it() {
        // pt_lock wastes 400 of 1000, pte_bit's p99 is 1.05x, both scale
        // 1.9x, mm_lock 0.8x.
        let r = rows(1.9, 0.8, 400, 3150, 3000);
        assert_eq!(verdicts(&r), vec![Verdict::Reproduced; 5]);
        let c = claims(&r, 2);
        assert_eq!(c[0].main().measured(), 0.4);
        assert_eq!(c[1].main().measured(), 1.05);
    }

    #[test]
    fn every_claim_is_refuted_by_rows_that_miss_it() {
        // pt_lock wastes 10 of 1000 (1%), pte_bit's p99 is 3x, neither
        // scales (0.8x, below even the partial band of 0.9x), mm_lock scales 1.9x.
        let r = rows(0.8, 1.9, 10, 9000, 3000);
        assert_eq!(verdicts(&r), vec![Verdict::Refuted; 5]);
        let c = claims(&r, 2);
        assert_eq!(c[0].main().measured(), 0.01);
        assert_eq!(c[1].main().measured(), 3.0);
    }

    #[test]
    fn the_seed_000_claims_are_partial_between_the_bands() {
        // 7% wasted (>= half of 10%), p99 1.5x (<= 1.1 / 0.5).
        let r = rows(1.9, 0.8, 70, 4500, 3000);
        assert_eq!(verdicts(&r)[..2], [Verdict::Partial, Verdict::Partial]);
        // A missing row is refuted, not a panic.
        let none: Vec<Measured> = r.into_iter().filter(|m| m.policy != FaultLock::PtLock).collect();
        assert_eq!(verdicts(&none)[..2], [Verdict::Refuted, Verdict::Refuted]);
    }
}
