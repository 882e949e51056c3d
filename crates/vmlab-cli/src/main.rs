//! `vmlab`: run workloads on the simulated machine and print the effective
//! config. Exit codes: 0 success, 1 a run failed (wrong value, unexpected
//! fault, broken invariant), 2 a bad command line or config.

mod fork_anchor;
mod record;
mod replay_cmd;
mod trace_cmd;

use clap::builder::PossibleValuesParser;
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use vmlab::config::{self, ConfigError};
use vmlab::mm::system::MachineConfig;
use vmlab::workload::{self, RunReport, WorkloadKind, WorkloadSpec};

/// A user-space virtual-memory subsystem on a simulated machine.
#[derive(Parser, Debug)]
#[command(name = "vmlab", version, about, propagate_version = true)]
struct Cli {
    /// Machine config file (TOML; keys in docs/CONFIG.md). Applied over the built-in defaults.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Override one config key, after --config; repeatable (e.g. --set ram=1GiB --set cpus=4).
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    set: Vec<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a synthetic workload, verify every load, print policies and stats, check invariants.
    Run(RunArgs),
    /// Print the effective config (defaults, --config and --set applied) as TOML.
    Config,
    /// Run an experiment: designs side by side, the seeds' claims checked (docs/EXPERIMENTS.md).
    #[command(subcommand)]
    Exp(ExpCommand),
    /// The Linux oracle: record the host kernel's answers to random mmap/munmap/mprotect/mremap/madvise
    /// sequences, and replay a recording on vmlab (docs/SEMANTICS.md).
    #[command(subcommand)]
    Oracle(OracleCommand),
    /// Traces: summarise one (info) or convert it to another format (docs/TRACES.md).
    #[command(subcommand)]
    Trace(trace_cmd::TraceCommand),
    /// Replay a trace: --mode cache through a cache policy, --mode full through the machine (--set reclaim=NAME).
    Replay(replay_cmd::ReplayArgs),
}

/// `vmlab oracle record|replay`.
#[derive(Subcommand, Debug)]
enum OracleCommand {
    /// Generate sequences, run them on the host kernel (in a child process), write JSON Lines to stdout.
    Record(OracleRecordArgs),
    /// Run a recording on vmlab and print every divergence; exit 1 if there is one, 2 for a bad file.
    Replay(OracleReplayArgs),
}

#[derive(Args, Debug)]
struct OracleRecordArgs {
    /// Seed of the generator; a sequence depends only on the seed, its number and --ops.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Number of sequences to record.
    #[arg(long, default_value_t = 1000)]
    sequences: u64,

    /// Calls per sequence.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=100000))]
    ops: u64,

    /// Number of the first sequence (to record again one sequence of a long run).
    #[arg(long, default_value_t = 0)]
    first: u64,

    /// Op kinds to leave out, comma separated: munmap, mprotect, mremap, madvise, store, load.
    #[arg(long, value_delimiter = ',', value_name = "OPS")]
    without: Vec<String>,
}

#[derive(Args, Debug)]
struct OracleReplayArgs {
    /// The recording (JSON Lines); `-` reads stdin.
    file: PathBuf,

    /// Check vmlab's invariants after every op, not only at the end of each sequence
    /// (the checker walks every frame: with --set ram=16MiB it is much faster).
    #[arg(long)]
    check_each_op: bool,
}

/// `vmlab exp <name>`: one subcommand per experiment.
#[derive(Subcommand, Debug)]
enum ExpCommand {
    /// Fork latency, page-table pages and first-write cost of cow, shared_pt and eager fork, and the host's fork().
    Fork(ExpForkArgs),
    /// Fault throughput, wasted pages and lock waits of the fault_lock policies, 1 to N threads of one process.
    #[command(name = "pte_lock")]
    PteLock(ExpPteLockArgs),
    /// Reverse-map designs: unmap cost of a page shared by 1..1000 processes, rmap memory, fork latency.
    Rmap(ExpRmapArgs),
    /// Reclaim designs on five workloads touching 4x RAM: faults, scans per page reclaimed, reclaim speed.
    Reclaim(ExpReclaimArgs),
}

#[derive(Args, Debug)]
struct ExpReclaimArgs {
    /// Pages each workload touches (RAM is a quarter of them); at least 1024, a multiple of 32
    /// (default 8192; --quick: 1024).
    #[arg(long)]
    pages: Option<u64>,

    /// Page references after each workload's setup (default 300000; --quick: 20000).
    #[arg(long)]
    accesses: Option<u64>,

    /// Seed of the reference streams.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Workloads to run, comma separated (default all: zipf,loop,shared_mix,fork_mix,file_scan).
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    workloads: Vec<String>,

    /// Leave out the Linux row (file_scan replayed in a memory cgroup of the host).
    #[arg(long)]
    no_linux: bool,

    /// Small defaults for tests and debug builds: 1024 pages, 20000 references.
    #[arg(long)]
    quick: bool,

    /// Print one JSON object {"experiment", "config", "params", "rows", "claims"} instead of tables.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct ExpRmapArgs {
    /// Processes sharing the unmapped page, comma separated (default 1,10,100,1000; --quick: 1,10).
    #[arg(long, value_delimiter = ',', value_name = "N,...", value_parser = clap::value_parser!(u32).range(1..=10000))]
    sharers: Vec<u32>,

    /// Pages every process of the unmap scenario maps (its footprint, which `none` walks).
    #[arg(long, default_value_t = vmlab::exp::rmap::FOOTPRINT_PAGES as u32, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    footprint_pages: u32,

    /// Children of the rmap-memory workload (default 64; --quick: 4).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    processes: Option<u32>,

    /// Anonymous bytes and file bytes of the rmap-memory workload (default 64MiB; --quick: 4MiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    workload_size: Option<u64>,

    /// Resident size of the fork-latency scenario (default 1GiB; --quick: 16MiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    fork_size: Option<u64>,

    /// Small defaults for tests and debug builds (the flags above still apply).
    #[arg(long)]
    quick: bool,

    /// Measured runs per row (latencies are medians).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(5..=10000))]
    runs: u32,

    /// Print one JSON object {"experiment", "config", "params", "rows", "claims"} instead of tables.
    #[arg(long)]
    json: bool,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let b = vmlab::mm::system::ByteSize::parse(s)?;
    if b.0 == 0 || b.0 % 4096 != 0 {
        return Err(format!("{s}: must be a positive multiple of the 4 KiB page size"));
    }
    Ok(b.0)
}

#[derive(Args, Debug)]
struct ExpPteLockArgs {
    /// Most threads (each on its own CPU); counts double from 1 up to it. Default: the config's `cpus`.
    #[arg(long, value_parser = clap::value_parser!(u32).range(2..=64))]
    threads: Option<u32>,

    /// Pages each thread faults in (disjoint), or all threads together (shared).
    #[arg(long, default_value_t = vmlab::exp::pte_lock::DEFAULT_PAGES as u32, value_parser = clap::value_parser!(u32).range(64..=4_194_304))]
    pages: u32,

    /// Measured runs per row (values are medians).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(5..=10000))]
    runs: u32,

    /// Print one JSON object {"experiment", "config", "params", "rows", "claims"} instead of tables.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct ExpForkArgs {
    /// Largest resident size; sizes double from 16MiB up to it (e.g. 4GiB adds 2GiB and 4GiB).
    #[arg(long, default_value = "1GiB", value_name = "SIZE", value_parser = parse_max_size)]
    max_size: u64,

    /// Measured runs per policy and size (latencies are medians).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(5..=10000))]
    runs: u32,

    /// Processes that map the shared segment (of --max-size bytes) in the shared_segment scenario.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(2..=4096))]
    processes: u32,

    /// Print one JSON object {"experiment", "config", "params", "rows", "claims"} instead of tables.
    #[arg(long)]
    json: bool,
}

fn parse_max_size(s: &str) -> Result<u64, String> {
    let b = vmlab::mm::system::ByteSize::parse(s)?;
    vmlab::exp::fork::sizes_up_to(b.0).map_err(|e| e.to_string())?;
    Ok(b.0)
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Address pattern.
    #[arg(long, default_value = "zipf", value_parser = PossibleValuesParser::new(WorkloadKind::NAMES))]
    workload: String,

    /// Print one JSON object {"config", "workload", "stats", "check", "errors"} instead of tables.
    #[arg(long)]
    json: bool,

    /// Seed of every random choice; a run is reproducible given seed and config.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Loads and stores in total, over all processes.
    #[arg(long, default_value_t = WorkloadSpec::DEFAULT_ACCESSES)]
    accesses: u64,

    /// Processes (default: 4, or one per CPU if there are more CPUs).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    processes: Option<u32>,

    /// Threads in each process, sharing its address space, each on its own CPU when there are enough.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    threads: u32,
}

/// How a command failed.
enum Failure {
    /// Bad config: exit 2.
    Usage(String),
    /// The run went wrong: exit 1.
    Runtime(String),
}

impl From<vmlab::exp::ExpError> for Failure {
    fn from(e: vmlab::exp::ExpError) -> Failure {
        match e {
            vmlab::exp::ExpError::Usage(m) => Failure::Usage(m),
            vmlab::exp::ExpError::Runtime(m) => Failure::Runtime(m),
        }
    }
}

/// A bad or unknown trace file is the user's to fix: exit 2.
impl From<vmlab::trace::TraceError> for Failure {
    fn from(e: vmlab::trace::TraceError) -> Failure {
        Failure::Usage(e.to_string())
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Failure {
        Failure::Usage(format!("config error: {e}"))
    }
}

fn main() -> ExitCode {
    // The host anchor of `vmlab exp fork`: a hidden mode, so that the process
    // the experiment forks is a fresh small one, not the experiment's own.
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(vmlab::exp::fork::ANCHOR_ARG) {
        return fork_anchor::run(&args[2..]);
    }
    // The recorder child of `vmlab oracle record`: runs sequences on the host kernel.
    if args.get(1).map(String::as_str) == Some(vmlab::oracle::host::CHILD_ARG) {
        return ExitCode::from(vmlab::oracle::host::child_main().clamp(0, 255) as u8);
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        // Help and version go to stdout with 0; usage errors to stderr with 2.
        Err(e) => e.exit(),
    };
    match dispatch(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(m)) => {
            eprintln!("vmlab: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(m)) => {
            eprintln!("vmlab: {m}");
            ExitCode::from(1)
        }
    }
}

/// Write to stdout; a closed pipe (`vmlab config | head`) is not an error worth a panic.
fn out(text: &str) -> Result<(), Failure> {
    let mut so = std::io::stdout().lock();
    match so.write_all(text.as_bytes()).and_then(|()| so.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure::Runtime(format!("writing to stdout failed: {e}"))),
    }
}

fn dispatch(cli: &Cli) -> Result<(), Failure> {
    // Replay takes its own keys out of --set before loading the config.
    if let Command::Replay(a) = &cli.command {
        return replay_cmd::run(cli.config.as_deref(), &cli.set, a);
    }
    let cfg = config::load(cli.config.as_deref(), &cli.set)?;
    match &cli.command {
        Command::Config => {
            let text =
                config::to_toml(&cfg).map_err(|e| Failure::Runtime(format!("cannot write config as TOML: {e}")))?;
            out(&text)
        }
        Command::Run(args) => run(&cfg, args),
        Command::Exp(cmd) => exp(&cfg, cmd),
        Command::Oracle(cmd) => oracle(&cfg, cmd),
        Command::Trace(cmd) => trace_cmd::run(cmd),
        // Run above, before the config is loaded.
        Command::Replay(_) => Ok(()),
    }
}

/// `vmlab oracle record` / `replay`.
fn oracle(cfg: &MachineConfig, cmd: &OracleCommand) -> Result<(), Failure> {
    use std::io::BufRead;
    use vmlab::oracle::{gen::OpMix, host, replay};
    match cmd {
        OracleCommand::Record(a) => {
            if !host::HOST_ORACLE {
                return Err(Failure::Usage("oracle record needs Linux on x86-64".into()));
            }
            let without: Vec<&str> = a.without.iter().map(|s| s.trim()).collect();
            let mix = OpMix::without(&without).map_err(|e| Failure::Usage(format!("--without: {e}")))?;
            let exe = std::env::current_exe()
                .map_err(|e| Failure::Runtime(format!("cannot locate the running executable: {e}")))?;
            let mut so = std::io::BufWriter::new(std::io::stdout().lock());
            match host::record(&exe, a.seed, a.first, a.sequences, a.ops as usize, &mix, &mut so) {
                Ok(sum) if sum.errors > 0 => {
                    eprintln!(
                        "vmlab oracle record: {} of {} sequences failed",
                        sum.errors, sum.sequences
                    );
                    Ok(())
                }
                Ok(_) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                Err(e) => Err(Failure::Runtime(format!("oracle record: {e}"))),
            }
        }
        OracleCommand::Replay(a) => {
            let name = a.file.display().to_string();
            let open = || -> Result<Box<dyn BufRead>, Failure> {
                if a.file.as_os_str() == "-" {
                    return Ok(Box::new(std::io::stdin().lock()));
                }
                let f = std::fs::File::open(&a.file).map_err(|e| Failure::Usage(format!("{name}: {e}")))?;
                Ok(Box::new(std::io::BufReader::new(f)))
            };
            let bad = |e: replay::ReplayError| match e {
                replay::ReplayError::BadInput { .. } => Failure::Usage(format!("{name}: {e}")),
                _ => Failure::Runtime(format!("{name}: {e}")),
            };
            // A file is checked whole before anything runs; stdin as it comes.
            if a.file.as_os_str() != "-" {
                replay::validate(open()?).map_err(bad)?;
            }
            let opts = replay::ReplayOptions {
                check_each_op: a.check_each_op,
            };
            // Each line's recording host decides what changes Linux's answers.
            let build = |facts: &vmlab::host::HostFacts| {
                let mut cfg = cfg.clone();
                facts.apply(&mut cfg);
                vmlab::mm::system::Machine::new(&cfg).map_err(|e| e.to_string())
            };
            let mut so = std::io::stdout().lock();
            let sum = replay::replay(open()?, &build, opts, &mut so).map_err(bad)?;
            if sum.divergences > 0 {
                return Err(Failure::Runtime(format!("{} divergences from Linux", sum.divergences)));
            }
            Ok(())
        }
    }
}

/// Run an experiment; progress goes to stderr, the report (tables or one JSON object) to stdout.
fn exp(cfg: &MachineConfig, cmd: &ExpCommand) -> Result<(), Failure> {
    let build = |c: &MachineConfig| vmlab::host::build_machine(c).map_err(|e| e.to_string());
    let mut progress = |line: &str| eprintln!("{line}");
    let (report, json) = match cmd {
        ExpCommand::Fork(a) => {
            let params =
                vmlab::exp::fork::ForkParams::new(a.max_size, a.runs as usize)?.with_processes(a.processes as usize)?;
            (vmlab::exp::fork::run(cfg, &params, &build, &mut progress)?, a.json)
        }
        ExpCommand::PteLock(a) => {
            let threads = a.threads.map_or(cfg.cpus.max(2), |t| t as usize);
            let params = vmlab::exp::pte_lock::PteLockParams::new(threads, a.pages as usize, a.runs as usize)?;
            (vmlab::exp::pte_lock::run(cfg, &params, &build, &mut progress)?, a.json)
        }
        ExpCommand::Rmap(a) => {
            use vmlab::exp::rmap::RmapParams;
            let runs = a.runs as usize;
            let mut p = if a.quick {
                RmapParams::quick(runs)?
            } else {
                RmapParams::new(runs)?
            };
            if !a.sharers.is_empty() {
                p.sharers = a.sharers.iter().map(|&s| s as usize).collect();
            }
            p.footprint_pages = a.footprint_pages as u64;
            if let Some(n) = a.processes {
                p.processes = n as usize;
            }
            if let Some(b) = a.workload_size {
                p.workload = b;
            }
            if let Some(b) = a.fork_size {
                p.fork_size = b;
            }
            let p = p.checked()?;
            (vmlab::exp::rmap::run(cfg, &p, &build, &mut progress)?, a.json)
        }
        ExpCommand::Reclaim(a) => {
            use vmlab::exp::reclaim::{ReclaimParams, DEFAULT_ACCESSES, DEFAULT_PAGES, QUICK_ACCESSES, QUICK_PAGES};
            let (pages, accesses) = if a.quick {
                (QUICK_PAGES, QUICK_ACCESSES)
            } else {
                (DEFAULT_PAGES, DEFAULT_ACCESSES)
            };
            let (pages, accesses) = (a.pages.unwrap_or(pages), a.accesses.unwrap_or(accesses));
            let p = ReclaimParams::new(pages, accesses, a.seed, &a.workloads, !a.no_linux)?;
            (vmlab::exp::reclaim::run(cfg, &p, &build, &mut progress)?, a.json)
        }
    };
    if json {
        let text = report
            .to_json()
            .map_err(|e| Failure::Runtime(format!("cannot write JSON: {e}")))?;
        out(&text)
    } else {
        out(&report.render())
    }
}

fn run(cfg: &MachineConfig, args: &RunArgs) -> Result<(), Failure> {
    let kind: WorkloadKind = args.workload.parse().map_err(Failure::Usage)?;
    let mut spec = WorkloadSpec::new(kind, args.seed, args.accesses, cfg);
    if let Some(p) = args.processes {
        spec = spec.with_processes(p as usize, cfg);
    }
    spec = spec.with_threads(args.threads as usize, cfg);
    // The machine, with the config's `files` open as fds 3, 4, ...
    let machine = vmlab::host::build_machine(cfg).map_err(|e| Failure::Usage(e.to_string()))?;
    let report = workload::run(&machine, &spec).map_err(|e| Failure::Runtime(format!("run failed: {e}")))?;
    // Invariants with the processes alive, then again once they have all exited.
    let live = machine.check().map_err(|e| e.to_string());
    let after_exit = workload::teardown(&machine).and_then(|()| machine.check().map_err(|e| e.to_string()));
    let ok = report.errors.is_empty() && live.is_ok() && after_exit.is_ok();

    if args.json {
        let verdict = |r: &Result<(), String>| match r {
            Ok(()) => json!("ok"),
            Err(e) => json!(e),
        };
        let doc = json!({
            "config": cfg,
            "workload": spec,
            "stats": report.stats,
            "check": {"ok": ok, "live": verdict(&live), "after_exit": verdict(&after_exit)},
            "errors": report.errors,
        });
        let text =
            serde_json::to_string_pretty(&doc).map_err(|e| Failure::Runtime(format!("cannot write JSON: {e}")))?;
        out(&(text + "\n"))?;
    } else {
        out(&render(cfg, &spec, &report, &live, &after_exit))?;
    }
    if ok {
        return Ok(());
    }
    let mut why = Vec::new();
    if !report.errors.is_empty() {
        why.push(format!(
            "{} error(s) in the workload: {}",
            report.errors.len(),
            report.errors.join("; ")
        ));
    }
    if let Err(e) = &live {
        why.push(format!("invariant check failed: {e}"));
    }
    if let Err(e) = &after_exit {
        why.push(format!("check after exit failed: {e}"));
    }
    Err(Failure::Runtime(format!("run failed: {}", why.join("; "))))
}

fn ratio(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

fn rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.2} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// The human-readable report: the policies in force, then the stats table.
fn render(
    cfg: &MachineConfig,
    spec: &WorkloadSpec,
    r: &RunReport,
    live: &Result<(), String>,
    after_exit: &Result<(), String>,
) -> String {
    let s = &r.stats;
    let m = &s.machine;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "vmlab run: workload {}, seed {}, {} accesses, {} processes x {} threads, {} regions x {} pages each, {} CPUs",
        spec.kind,
        spec.seed,
        spec.accesses,
        spec.processes,
        spec.threads_per_process,
        spec.regions,
        spec.region_pages,
        cfg.cpus
    );
    let _ = writeln!(o, "\npolicies");
    let ram = cfg.ram.to_string();
    let cpus = cfg.cpus.to_string();
    let tlb = cfg.tlb_entries.to_string();
    let pcp = cfg.pcp_batch.to_string();
    let mut rows: Vec<(&str, &str)> = vec![
        ("ram", &ram),
        ("cpus", &cpus),
        ("tlb_entries", &tlb),
        ("pcp_batch", &pcp),
        ("pkeys", if cfg.pkeys { "true" } else { "false" }),
    ];
    rows.extend(cfg.policies());
    for (k, v) in rows {
        let _ = writeln!(o, "  {k:<18} {v}");
    }
    let rows: Vec<(&str, String)> = vec![
        ("accesses", s.accesses.to_string()),
        ("  loads (verified)", s.loads_verified.to_string()),
        ("  stores", s.stores.to_string()),
        ("elapsed", format!("{:.3} s", s.elapsed_secs)),
        ("accesses/s", rate(s.accesses_per_sec)),
        ("TLB hits", m.tlb_hits.to_string()),
        ("TLB misses", m.tlb_misses.to_string()),
        ("TLB hit ratio", ratio(s.tlb_hit_ratio)),
        ("minor faults", m.minor_faults.to_string()),
        ("major faults", m.major_faults.to_string()),
        ("failed faults", m.failed_faults.to_string()),
        ("zero-page maps", m.zero_page_maps.to_string()),
        ("pages wasted", m.pages_wasted.to_string()),
        ("lock waits", m.lock_waits.to_string()),
        (
            "shootdowns",
            format!("{} ({} CPU flushes)", m.shootdowns, m.shootdown_cpus),
        ),
        ("mprotect calls", s.mprotects.to_string()),
        ("munmap/mmap calls", format!("{}/{}", s.munmaps, s.mmaps)),
        ("expected faults", s.expected_faults.to_string()),
        (
            "frames used/free/total",
            format!("{}/{}/{}", m.frames_used, m.frames_free, m.frames_total),
        ),
        ("per-CPU list frames", m.pcp_frames.to_string()),
        ("page-table pages", m.page_table_pages.to_string()),
        ("rmap bytes", m.rmap_bytes.to_string()),
        ("swap used/total", format!("{}/{}", m.swap_used, m.swap_total)),
        ("pswpin/pswpout", format!("{}/{}", m.pswpin, m.pswpout)),
        (
            "pgscan kswapd/direct",
            format!("{}/{}", m.pgscan_kswapd, m.pgscan_direct),
        ),
        (
            "pgsteal kswapd/direct",
            format!("{}/{}", m.pgsteal_kswapd, m.pgsteal_direct),
        ),
        (
            "workingset refault/act.",
            format!("{}/{}", m.workingset_refault, m.workingset_activate),
        ),
        (
            "pgactivate/pgdeactivate",
            format!("{}/{}", m.pgactivate, m.pgdeactivate),
        ),
        ("kswapd thread rounds", m.pageoutrun.to_string()),
        ("reclaim time", format!("{:.3} s", m.reclaim_ns as f64 / 1e9)),
        ("oom kills", m.oom_kill.to_string()),
        ("RSS pages", m.rss_pages.to_string()),
        ("VMAs", m.vmas.to_string()),
        ("processes", m.processes.to_string()),
    ];
    let _ = writeln!(o, "\nstats");
    for (k, v) in rows {
        let _ = writeln!(o, "  {k:<24} {v}");
    }
    let verdict = |r: &Result<(), String>| match r {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("FAILED: {e}"),
    };
    let _ = writeln!(o, "\ncheck");
    let _ = writeln!(
        o,
        "  {:<24} {}",
        "values",
        if r.errors.is_empty() { "ok" } else { "FAILED" }
    );
    let _ = writeln!(o, "  {:<24} {}", "invariants (live)", verdict(live));
    let _ = writeln!(o, "  {:<24} {}", "after exit (no leak)", verdict(after_exit));
    o
}
