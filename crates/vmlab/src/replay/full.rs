//! Full-machine replay of a page-number trace: every reference is a store
//! through a CPU's TLB, the page tables, the fault handler, reclaim and
//! swap of a machine whose usable frames are exactly `frames`.
//!
//! The trace's pages (any u64 ids) are renumbered densely in order of
//! first use, and page `i` is the `i`th page of one anonymous mapping
//! (`MAP_NORESERVE`: the trace's footprint may exceed RAM and swap
//! reservations). References replay as stores: a load of untouched
//! anonymous memory maps the zero page and would create no pressure.
//!
//! Sizing, so that exactly `frames` data pages fit: the machine has one
//! CPU, synchronous reclaim (no kswapd thread, `watermarks = none`: every
//! frame is used before reclaim runs, on the allocation that fails) and
//! swap for the whole footprint. Before the first reference the mapping is
//! read once from end to end, which maps the zero page everywhere and so
//! builds every page table the run needs (a leaf table per 512 pages, the
//! upper levels) without a data frame; then a second process, the balloon,
//! locks (`mlock`) enough pages that exactly `frames` frames stay free.
//! Page tables therefore cost no data frame during the run, and the free
//! frames the replayed process can use are exactly `frames`. The count is
//! checked, not assumed (`FullError::Sizing` if the balloon misses it).
//!
//! Policies: the machine's own `reclaim` designs, which see references
//! only as accessed bits, or a bound the replayer computes from every
//! reference and names the victims of (`Bound`, through
//! `Machine::set_victim_oracle`; one page evicted per failed allocation):
//! `lru`, exact least-recently-used, which on a page-number trace misses
//! exactly as cache-mode `lru` at the same frames; `opt`, Belady's: evict
//! the resident page whose next reference is farthest (never referenced
//! again counts as farthest; ties go to the lower page index). `opt` needs
//! the future: the next use of every reference, computed by cache mode's
//! backward pass into a temporary file (`replay::cache::spill_next_uses`,
//! memory in proportion to the distinct pages) and read along with the
//! references.
//!
//! `misses` = faults that brought a page into memory: first touches (the
//! replayer knows them: a page seen for the first time) plus major faults
//! (`pgmajfault`, swap-ins). A page found in the swap cache is a minor
//! fault, not a miss: it was in memory.
//!
//! May call: `vmlab_mm::system` (Machine, Cpu), `trace`, `cache::list` (the
//! `lru` bound's order), `replay::cache` (`opt`'s next uses).

use crate::mm::addr::PAGE_SIZE;
use crate::mm::mm::uapi::{MAP_ANONYMOUS, MAP_NORESERVE, MAP_PRIVATE, PROT_READ, PROT_WRITE};
use crate::mm::system::{ByteSize, Machine, MachineConfig, Stats};
use crate::trace::{Record, TraceError, TraceReader, BATCH};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where the replayed mapping starts (any free, aligned address works).
const BASE: u64 = 0x1000_0000_0000;

/// Why a full replay failed.
#[derive(Debug, thiserror::Error)]
pub enum FullError {
    #[error("{0}")]
    Trace(#[from] TraceError),
    #[error("bad parameters: {0}")]
    Usage(String),
    #[error("cannot build the machine: {0}")]
    Machine(String),
    #[error("machine sizing: {0}")]
    Sizing(String),
    #[error("replay: {0}")]
    Run(String),
}

/// A policy the replayer computes from every reference and names the
/// victims of, instead of the machine's design.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Bound {
    /// Exact LRU: evict the resident page referenced longest ago.
    Lru,
    /// Belady's OPT: evict the resident page referenced again farthest ahead.
    Opt,
}

impl Bound {
    pub const NAMES: &'static [&'static str] = &["lru", "opt"];

    pub fn name(self) -> &'static str {
        match self {
            Bound::Lru => "lru",
            Bound::Opt => "opt",
        }
    }

    pub fn parse(name: &str) -> Option<Bound> {
        match name {
            "lru" => Some(Bound::Lru),
            "opt" => Some(Bound::Opt),
            _ => None,
        }
    }
}

/// The resident pages keyed by their next use (`opt`): the victim is the
/// greatest key.
struct OptOrder {
    /// (next use, page) of each resident page.
    by_next: std::collections::BTreeSet<(u64, std::cmp::Reverse<u32>)>,
    /// Each page's key in `by_next`, if resident.
    key: Vec<Option<u64>>,
    /// The page being referenced: listed before its fault, which is what
    /// asks for a victim, and never that victim (it is not resident yet).
    current: u32,
    mm: u64,
}

impl OptOrder {
    /// Page `i` is referenced and will next be at `next`.
    fn touch(&mut self, i: u32, next: u64) {
        if let Some(k) = self.key[i as usize].take() {
            self.by_next.remove(&(k, std::cmp::Reverse(i)));
        }
        self.by_next.insert((next, std::cmp::Reverse(i)));
        self.key[i as usize] = Some(next);
        self.current = i;
    }
}

struct OptOracle(Arc<Mutex<OptOrder>>);

impl crate::mm::mm::reclaim::VictimOracle for OptOracle {
    fn victim(&mut self) -> Option<(u64, u64)> {
        let mut o = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let cur = o.current;
        let &(k, std::cmp::Reverse(i)) = o.by_next.iter().rev().find(|(_, p)| p.0 != cur)?;
        o.by_next.remove(&(k, std::cmp::Reverse(i)));
        o.key[i as usize] = None;
        Some((o.mm, BASE + i as u64 * PAGE_SIZE))
    }
}

/// The resident pages (dense indices) in order of last reference, most
/// recent first, on cache mode's intrusive list (`cache::list`): one node
/// per page, its slot its dense index, O(1) per reference.
struct LruOrder {
    nodes: crate::cache::list::Arena,
    order: crate::cache::list::List,
    /// The replayed address space (`AddressSpace::id`).
    mm: u64,
}

/// `Node::flags` bit: the page is on `order` (resident, or being faulted in).
const LISTED: u8 = 1;

impl LruOrder {
    fn new(pages: usize, mm: u64) -> LruOrder {
        let mut nodes = crate::cache::list::Arena::with_capacity(pages);
        for i in 0..pages {
            nodes.alloc(i as u64, 0);
        }
        LruOrder {
            nodes,
            order: crate::cache::list::List::new(),
            mm,
        }
    }

    /// Page `i` is referenced: it is (or is about to be) resident, and the
    /// most recent.
    fn touch(&mut self, i: u32) {
        if self.nodes.node(i).flags & LISTED != 0 {
            self.nodes.move_head(&mut self.order, i);
        } else {
            self.nodes.push_head(&mut self.order, i);
            self.nodes.node_mut(i).flags |= LISTED;
        }
    }

    /// Take the page referenced longest ago off the list.
    fn pop_oldest(&mut self) -> Option<u32> {
        let t = self.nodes.pop_tail(&mut self.order)?;
        self.nodes.node_mut(t).flags &= !LISTED;
        Some(t)
    }
}

struct LruOracle(Arc<Mutex<LruOrder>>);

impl crate::mm::mm::reclaim::VictimOracle for LruOracle {
    fn victim(&mut self) -> Option<(u64, u64)> {
        let mut o = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let t = o.pop_oldest()?;
        Some((o.mm, BASE + t as u64 * PAGE_SIZE))
    }
}

/// What a full replay measured.
#[derive(Clone, Debug)]
pub struct FullResult {
    pub references: u64,
    pub distinct: u64,
    /// First touches plus major faults.
    pub misses: u64,
    pub first_touches: u64,
    pub major_faults: u64,
    /// The references' replay alone (not the setup).
    pub elapsed: Duration,
    /// The machine's counters at the end (setup included).
    pub stats: Stats,
}

/// The distinct pages of a trace (a first pass: memory in proportion to
/// them, not to the references).
pub fn distinct_pages(reader: &mut dyn TraceReader) -> Result<(u64, u64), TraceError> {
    let mut seen: std::collections::HashSet<u64, std::hash::BuildHasherDefault<crate::cache::PageHasher>> =
        Default::default();
    let mut refs = 0u64;
    crate::trace::for_each_batch(reader, |batch| {
        for r in batch {
            if let Record::Ref(r) = r {
                refs += 1;
                seen.insert(r.page);
            }
        }
        Ok::<(), TraceError>(())
    })?;
    Ok((refs, seen.len() as u64))
}

/// The machine config a replay of `distinct` pages in `frames` frames
/// runs with: `base` (its `reclaim` and the rest) with one CPU, no
/// watermarks, swap for the whole footprint, and RAM for `frames`, the
/// page tables and the machine's own frames with room to spare (the
/// balloon takes the spare).
pub fn machine_config(base: &MachineConfig, frames: u64, distinct: u64) -> Result<MachineConfig, FullError> {
    if frames == 0 {
        return Err(FullError::Usage("--frames must be at least 1".into()));
    }
    let mut c = base.clone();
    c.cpus = 1;
    c.apply_pairs("watermarks=none")
        .map_err(|e| FullError::Usage(format!("config: {e}")))?;
    // Leaf tables, upper levels, and the balloon's own tables and rmap
    // links: generous, since the balloon takes whatever is left.
    let tables = distinct / 512 + 64;
    let ram_pages = frames + tables + 1024;
    c.ram = ByteSize(ram_pages * PAGE_SIZE);
    c.swap_size = ByteSize((distinct + 64) * PAGE_SIZE);
    Ok(c)
}

/// Replay `reader` (a page-number trace of `distinct` pages) on `m`, built
/// from `machine_config`. `progress` gets the references done so far every
/// batch.
pub fn replay(
    m: &Machine,
    frames: u64,
    distinct: u64,
    bound: Option<(Bound, Option<std::fs::File>)>,
    reader: &mut dyn TraceReader,
    progress: &mut dyn FnMut(u64),
) -> Result<FullResult, FullError> {
    if distinct > u32::MAX as u64 - 1 {
        return Err(FullError::Usage(format!(
            "{distinct} distinct pages: at most 2^32 - 2 replay"
        )));
    }
    let run = |what: &str, e: &dyn std::fmt::Debug| FullError::Run(format!("{what}: {e:?}"));
    let len = distinct.max(1) * PAGE_SIZE;
    let pid = m.spawn().map_err(|e| run("spawn", &e))?;
    m.mmap(
        pid,
        BASE,
        len,
        PROT_READ | PROT_WRITE,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | crate::mm::mm::uapi::MAP_FIXED,
    )
    .map_err(|e| run("mmap", &e))?;
    let mut cpu = m.cpu(0).map_err(|e| run("take CPU 0", &e))?;
    cpu.switch_to(pid).map_err(|e| run("switch", &e))?;
    // Every page table, no data frame: reads map the zero page.
    for i in 0..distinct {
        cpu.load_u64(BASE + i * PAGE_SIZE)
            .map_err(|f| run("pre-map the page tables", &f))?;
    }
    drop(cpu);
    balloon(m, frames)?;
    let mm = m.process(pid).map_err(|e| run("look up the process", &e))?.mm.id;
    let n = distinct as usize;
    let mut lru = None;
    let mut opt = None;
    match bound {
        Some((Bound::Lru, _)) => {
            let o = Arc::new(Mutex::new(LruOrder::new(n, mm)));
            m.set_victim_oracle(Some(Box::new(LruOracle(o.clone()))));
            lru = Some(o);
        }
        Some((Bound::Opt, next)) => {
            let next = next.ok_or_else(|| {
                FullError::Usage("opt needs the trace's next uses (`replay::cache::spill_next_uses`)".into())
            })?;
            let o = Arc::new(Mutex::new(OptOrder {
                by_next: Default::default(),
                key: vec![None; n],
                current: crate::cache::list::NIL,
                mm,
            }));
            m.set_victim_oracle(Some(Box::new(OptOracle(o.clone()))));
            opt = Some((o, std::io::BufReader::new(next)));
        }
        None => {}
    }
    let before = m.stats();
    let mut cpu = m.cpu(0).map_err(|e| run("take CPU 0", &e))?;
    cpu.switch_to(pid).map_err(|e| run("switch", &e))?;
    let mut dense: HashMap<u64, u64> = HashMap::with_capacity(distinct as usize);
    let mut batch = Vec::with_capacity(BATCH);
    let (mut refs, mut first) = (0u64, 0u64);
    // The value each page's last store wrote, by dense index.
    let mut last: Vec<u64> = Vec::with_capacity(distinct as usize);
    let t0 = Instant::now();
    loop {
        reader.read_batch(&mut batch, BATCH)?;
        if batch.is_empty() {
            break;
        }
        for r in &batch {
            let Record::Ref(r) = r else {
                return Err(FullError::Usage(
                    "the trace holds address-space events (a recorded program): replay it with \
                     `replay::program` (`run_any_file` picks it), or convert it to a page-number format"
                        .into(),
                ));
            };
            let next = dense.len() as u64;
            let i = *dense.entry(r.page).or_insert(next);
            if i == next {
                first += 1;
                if i >= distinct {
                    return Err(FullError::Run(format!(
                        "the trace has more than the {distinct} distinct pages its first pass counted"
                    )));
                }
            }
            refs += 1;
            if let Some(o) = &lru {
                o.lock().unwrap_or_else(|e| e.into_inner()).touch(i as u32);
            }
            if let Some((o, next)) = &mut opt {
                let mut b = [0u8; 8];
                std::io::Read::read_exact(next, &mut b)
                    .map_err(|e| FullError::Run(format!("reference {refs}: its next use: {e}")))?;
                o.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .touch(i as u32, u64::from_le_bytes(b));
            }
            // Each reference checks what the last one left (swap must
            // keep every byte), then stores its own number.
            let addr = BASE + i * PAGE_SIZE;
            let at = |refs: u64, f: &dyn std::fmt::Debug| run(&format!("reference {refs} (page {})", r.page), f);
            let got = cpu.load_u64(addr).map_err(|f| at(refs, &f))?;
            let want = last.get(i as usize).copied().unwrap_or(0);
            if got != want {
                return Err(FullError::Run(format!(
                    "reference {refs} (page {}) read {got}, the last store there wrote {want}",
                    r.page
                )));
            }
            cpu.store_u64(addr, refs).map_err(|f| at(refs, &f))?;
            if i as usize == last.len() {
                last.push(refs);
            } else {
                last[i as usize] = refs;
            }
        }
        progress(refs);
    }
    let elapsed = t0.elapsed();
    drop(cpu);
    m.set_victim_oracle(None);
    let stats = m.stats();
    if stats.oom_kill != before.oom_kill {
        // A balloon killed leaves more frames than `frames`: no result.
        return Err(FullError::Run(format!(
            "the OOM killer ran during the replay ({:?}): the policy named no page to evict",
            m.oom_kills()
        )));
    }
    let major = stats.major_faults - before.major_faults;
    Ok(FullResult {
        references: refs,
        distinct,
        misses: first + major,
        first_touches: first,
        major_faults: major,
        elapsed,
        stats,
    })
}

/// Spawn processes that lock pages until exactly `frames` frames are free
/// (several if need be: each may lock only RLIMIT_MEMLOCK's worth). Each
/// balloon's range is read first, which builds its page tables with the
/// zero page; then locking one page costs exactly one frame, so a balloon
/// grows in big steps first and single pages last, measuring the free
/// count after each step.
pub(crate) fn balloon(m: &Machine, frames: u64) -> Result<(), FullError> {
    let sizing = |what: &str, e: &dyn std::fmt::Debug| FullError::Sizing(format!("{what}: {e:?}"));
    let free = |m: &Machine| m.phys().free_frames_count() as u64;
    let have = free(m);
    if have < frames {
        return Err(FullError::Sizing(format!(
            "{have} frames free after setup, fewer than --frames {frames}"
        )));
    }
    while free(m) > frames {
        let pid = m.spawn().map_err(|e| sizing("spawn a balloon", &e))?;
        let limit = m.memlock_rlimit(pid).map_err(|e| sizing("RLIMIT_MEMLOCK", &e))?.cur / PAGE_SIZE;
        if limit == 0 {
            return Err(FullError::Sizing("RLIMIT_MEMLOCK is 0: no balloon can lock".into()));
        }
        let span = limit * PAGE_SIZE;
        let at = m
            .mmap(
                pid,
                0,
                span,
                PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
            )
            .map_err(|e| sizing("map a balloon", &e))?;
        {
            let mut cpu = m.cpu(0).map_err(|e| sizing("take CPU 0", &e))?;
            cpu.switch_to(pid).map_err(|e| sizing("switch", &e))?;
            for i in 0..limit {
                cpu.load_u64(at + i * PAGE_SIZE)
                    .map_err(|f| sizing("pre-map a balloon's tables", &f))?;
            }
        }
        let mut locked = 0u64;
        while locked < limit {
            let left = free(m).saturating_sub(frames);
            if left == 0 {
                break;
            }
            let step = left.min(limit - locked);
            m.mlock(pid, at + locked * PAGE_SIZE, step * PAGE_SIZE)
                .map_err(|e| sizing("lock a balloon", &e))?;
            locked += step;
        }
    }
    let now = free(m);
    if now != frames {
        return Err(FullError::Sizing(format!(
            "{now} frames free after the balloon, not {frames}"
        )));
    }
    Ok(())
}

/// Whether the trace holds an address-space event (a pass that stops at
/// the first one: at once for a recording, a whole pass for a page trace).
fn has_events(reader: &mut dyn TraceReader) -> Result<bool, TraceError> {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        reader.read_batch(&mut batch, BATCH)?;
        if batch.is_empty() {
            return Ok(false);
        }
        if batch.iter().any(|r| matches!(r, Record::Event(_))) {
            return Ok(true);
        }
    }
}

/// What `--set reclaim=NAME` means in full mode: one of the machine's
/// designs, or a bound.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FullPolicy {
    /// A `reclaim` design of the machine (it sees accessed bits only).
    Design(crate::mm::system::config::ReclaimName),
    Bound(Bound),
}

/// Policies that only cache mode has.
pub const CACHE_ONLY: &[&str] = &["fifo", "arc", "lirs"];

impl FullPolicy {
    /// Every name full mode takes.
    pub fn names() -> Vec<&'static str> {
        let mut v: Vec<&str> = crate::mm::system::config::ReclaimName::ALL.to_vec();
        v.extend_from_slice(Bound::NAMES);
        v
    }

    /// The policy `name`; a usage error naming the valid ones otherwise
    /// (and saying so when `name` is a cache-only policy).
    pub fn parse(name: &str) -> Result<FullPolicy, FullError> {
        if let Some(b) = Bound::parse(name) {
            return Ok(FullPolicy::Bound(b));
        }
        let mut c = MachineConfig::default();
        if c.apply_pairs(&format!("reclaim={name}")).is_ok() {
            return Ok(FullPolicy::Design(c.reclaim));
        }
        let why = if CACHE_ONLY.contains(&name) {
            format!("`{name}` is a cache-mode policy (--mode cache)")
        } else {
            format!("unknown policy `{name}`")
        };
        Err(FullError::Usage(format!(
            "{why}; full mode takes: {}",
            FullPolicy::names().join(", ")
        )))
    }
}

/// Replay the page-number trace at `path` (in `format`, or sniffed) in
/// full mode: a first pass counts its pages (and, for `opt`, its next
/// uses), then a machine built by `build` from `base` as `machine_config`
/// sizes it replays it under `policy`.
pub fn run_file(
    path: &std::path::Path,
    format: Option<crate::trace::Format>,
    base: &MachineConfig,
    frames: u64,
    policy: FullPolicy,
    build: &dyn Fn(&MachineConfig) -> Result<Machine, String>,
    progress: &mut dyn FnMut(super::Tick),
) -> Result<FullResult, FullError> {
    let open = || crate::trace::open(path, format.clone()).map(|(_, r)| r);
    let (_, distinct) = distinct_pages(&mut *open()?)?;
    let mut cfg_base = base.clone();
    let bound = match policy {
        FullPolicy::Design(d) => {
            cfg_base.reclaim = d;
            None
        }
        FullPolicy::Bound(b) => {
            let next = match b {
                Bound::Opt => Some(
                    super::cache::spill_next_uses(path, format.clone()).map_err(|e| match e {
                        super::ReplayError::Trace(t) => FullError::Trace(t),
                        super::ReplayError::Usage(m) => FullError::Usage(m),
                    })?,
                ),
                Bound::Lru => None,
            };
            Some((b, next))
        }
    };
    let cfg = machine_config(&cfg_base, frames, distinct)?;
    let m = build(&cfg).map_err(FullError::Machine)?;
    let (_, mut r, extent) = crate::trace::open_counted(path, format)?;
    replay(&m, frames, distinct, bound, &mut *r, &mut |refs| {
        progress(super::Tick::at(refs, &extent))
    })
}

/// What `run_any_file` replays: a trace file, its format if not sniffed,
/// and where a recorded program's files get their bytes.
pub struct Input<'a> {
    pub path: &'a std::path::Path,
    pub format: Option<crate::trace::Format>,
    pub files: &'a super::program::Files,
}

/// What `run_any_file` replayed.
#[derive(Clone, Debug)]
pub enum Replayed {
    /// A page-number trace (`run_file`).
    Pages(FullResult),
    /// A recorded program (`replay::program::run_program_file`).
    Program(super::program::ProgramResult),
}

/// Replay `path` in full mode: a recorded program (a trace with
/// address-space events; `vmlab trace record` writes its `Initial` events
/// first) through `replay::program`, a page-number trace through
/// `run_file`. Program replay takes the
/// machine's designs only: `lru`/`opt` bounds are for page-number traces.
pub fn run_any_file(
    input: &Input,
    base: &MachineConfig,
    frames: u64,
    policy: FullPolicy,
    build: &dyn Fn(&MachineConfig) -> Result<Machine, String>,
    progress: &mut dyn FnMut(super::Tick),
) -> Result<Replayed, FullError> {
    let Input { path, format, files } = input;
    let (path, format) = (*path, format.clone());
    let (_, mut r) = crate::trace::open(path, format.clone())?;
    if !has_events(&mut *r)? {
        if files.any() {
            return Err(FullError::Usage(
                "--file and --host-files give a recorded program's files; this is a page-number trace".into(),
            ));
        }
        return run_file(path, format, base, frames, policy, build, progress).map(Replayed::Pages);
    }
    let mut cfg = base.clone();
    match policy {
        FullPolicy::Design(d) => cfg.reclaim = d,
        FullPolicy::Bound(_) => {
            return Err(FullError::Usage(
                "lru and opt bounds replay page-number traces; a recorded program takes the machine's reclaim designs"
                    .into(),
            ))
        }
    }
    super::program::run_program_file(path, format, &cfg, frames, build, files, progress).map(Replayed::Program)
}
