//! Full-machine replay of a recorded program (a trace with address-space
//! events: `vmlab trace record`, or a lackey log with its SYSCALL lines):
//! its mappings at their recorded addresses, its syscalls at their place
//! in the stream, every reference through CPU 0's TLB, the page tables,
//! faults, reclaim and swap of a machine of `frames` usable frames.
//!
//! - `Initial` → `mmap(MAP_FIXED)` with the recorded prot: anonymous
//!   `MAP_PRIVATE|MAP_ANONYMOUS`, a file `MAP_PRIVATE` of an in-memory file
//!   (`MemFile`) of zeros as long as the recorded size (or, if that is 0,
//!   unknown, the furthest extent any mapping of the path reaches; at most
//!   `MemFile::MAX_LEN`), unless `Files` gives its contents: a host file
//!   named for the recorded path, or the recorded path itself read on this
//!   host; either is cut or zero-filled to that length, and each is listed
//!   in the result with its host length. An `Initial` whose prot has `PROT_GROWSDOWN` is
//!   the stack: mapped `MAP_GROWSDOWN`, so a reference below it grows it
//!   as Linux does (within RLIMIT_STACK and the guard gap), and is not
//!   reported.
//! - `BrkBase` → `Machine::set_brk_base` (vmlab's processes start with
//!   a fixed `START_BRK`; the recorded base replaces it), then `brk(end)`
//!   if the heap was not empty.
//! - `Mmap` that succeeded → `MAP_FIXED` at the recorded result (the
//!   recorded flags otherwise); `Mremap` → `MREMAP_MAYMOVE|MREMAP_FIXED` to
//!   the recorded result (a plain resize if it stayed in place);
//!   `Munmap`, `Mprotect`, `Brk` as recorded. Every replayed mapping also
//!   gets `MAP_NORESERVE`: the machine is sized for the references, not
//!   for the program's commit charge. A syscall that failed in the
//!   recording is replayed as recorded and must fail (a mapping it makes
//!   anyway is unmapped again); success where the recording failed, or
//!   the reverse, or another address, break or errno, is a divergence
//!   (counted, the first few described).
//! - References: `I` an instruction fetch (needs PROT_EXEC), `L` a load,
//!   `S` (and a page-number trace's `Access`) a store, `M` a load then a
//!   store. A reference that faults because no mapping covers it, or its
//!   mapping forbids it (PROT_NONE, a store to read-only memory, a fetch
//!   from memory without PROT_EXEC), is reported (counted by why, the
//!   first few listed), never mapped.
//!
//! Sizing reuses full mode's (`full::machine_config`, `full::balloon`),
//! but a program's mappings change during the run, so its page tables
//! cannot be built before it as full mode does. A first pass bounds them:
//! `tables` = the distinct leaf, PMD and PUD tables of the referenced
//! pages; the balloon leaves `frames + tables` frames free. Until every
//! table is built the program has up to `tables` frames more than
//! `frames`; a table freed by munmap and built again costs the same frame.
//!
//! `misses` = first touches (the first successful reference to a page)
//! plus major faults on pages touched before (a first touch of a file
//! page reads it from the file, a major fault that is not counted twice).
//!
//! May call: `vmlab_mm::system` (Machine, Cpu), `trace`, `replay::full`.

use super::full::{balloon, machine_config, FullError};
use crate::mm::addr::PAGE_SIZE;
use crate::mm::errno::{Errno, FaultReason};
use crate::mm::mm::fault::Access;
use crate::mm::mm::uapi::{
    MAP_ANONYMOUS, MAP_FIXED, MAP_GROWSDOWN, MAP_NORESERVE, MAP_PRIVATE, MREMAP_DONTUNMAP, MREMAP_FIXED, MREMAP_MAYMOVE,
};
use crate::mm::mm::MemFile;
use crate::mm::system::{Machine, MachineConfig, Pid, Stats};
use crate::trace::lackey::PROT_GROWSDOWN;
use crate::trace::{Event, MapBacking, Record, RefKind, TraceError, TraceReader, BATCH, PAGE_SHIFT};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// How many reported references and divergences are described.
const LISTED: usize = 10;

/// Entries of [`PageSet`]'s filter.
const RECENT: usize = 64;

/// A set of page numbers with a direct-mapped filter of recent members in
/// front (by their low bits): most references of a program are to one of
/// the last few pages (LRU stack depth 1 to 3 on a lackey trace), and the
/// filter answers them without hashing.
struct PageSet {
    set: HashSet<u64, std::hash::BuildHasherDefault<crate::cache::PageHasher>>,
    /// Members, or `NONE`.
    recent: [u64; RECENT],
}

impl PageSet {
    /// The filter's empty entry. It is also a page number (past every
    /// address space), which therefore always goes to the set.
    const NONE: u64 = u64::MAX;

    fn with_capacity(n: usize) -> PageSet {
        PageSet {
            set: HashSet::with_capacity_and_hasher(n, Default::default()),
            recent: [Self::NONE; RECENT],
        }
    }

    fn contains(&mut self, page: u64) -> bool {
        let hot = &mut self.recent[page as usize % RECENT];
        if *hot == page && page != Self::NONE {
            return true;
        }
        let is = self.set.contains(&page);
        if is {
            *hot = page;
        }
        is
    }

    /// Add `page`: true if it was not a member.
    fn insert(&mut self, page: u64) -> bool {
        let hot = &mut self.recent[page as usize % RECENT];
        if *hot == page && page != Self::NONE {
            return false;
        }
        *hot = page;
        self.set.insert(page)
    }

    fn len(&self) -> usize {
        self.set.len()
    }
}

/// What a first pass learns of a recorded program's trace.
#[derive(Clone, Debug, Default)]
pub struct Survey {
    pub references: u64,
    pub distinct: u64,
    pub events: u64,
    /// Page-table pages the referenced pages need at most.
    pub tables: u64,
    /// Each mapped file's length in the replay: its recorded size, or the
    /// furthest extent mapped if that is unknown (0).
    pub files: HashMap<String, u64>,
}

/// Read `reader` once: pages, events, tables, files.
pub fn survey(reader: &mut dyn TraceReader) -> Result<Survey, TraceError> {
    let mut s = Survey::default();
    let mut pages = PageSet::with_capacity(0);
    let (mut pmds, mut puds, mut p4ds) = (HashSet::new(), HashSet::new(), HashSet::new());
    let mut sizes: HashMap<String, (u64, u64)> = HashMap::new();
    let mut file = |b: &MapBacking, len: u64| {
        if let MapBacking::File { path, size, pgoff } = b {
            if !path.is_empty() {
                let e = sizes.entry(path.clone()).or_default();
                e.0 = e.0.max(*size);
                e.1 = e.1.max(pgoff.saturating_mul(PAGE_SIZE).saturating_add(len));
            }
        }
    };
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        reader.read_batch(&mut batch, BATCH)?;
        if batch.is_empty() {
            break;
        }
        for r in &batch {
            match r {
                Record::Ref(r) => {
                    s.references += 1;
                    if pages.insert(r.page) {
                        pmds.insert(r.page >> 9);
                        puds.insert(r.page >> 18);
                        p4ds.insert(r.page >> 27);
                    }
                }
                Record::Event(e) => {
                    s.events += 1;
                    match &**e {
                        Event::Initial {
                            start, end, backing, ..
                        } => file(backing, end.saturating_sub(*start)),
                        Event::Mmap { len, backing, .. } => file(backing, *len),
                        _ => {}
                    }
                }
            }
        }
    }
    s.distinct = pages.len() as u64;
    s.tables = (pmds.len() + puds.len() + p4ds.len()) as u64;
    s.files = sizes
        .into_iter()
        .map(|(p, (size, extent))| {
            let len = if size > 0 { size } else { extent };
            (p, len.min(MemFile::MAX_LEN))
        })
        .collect();
    Ok(s)
}

/// Where the replay's files get their bytes (default: every file zeros).
#[derive(Clone, Debug, Default)]
pub struct Files {
    /// Recorded path → the host file holding its contents.
    pub given: HashMap<String, std::path::PathBuf>,
    /// Every other recorded path that names a regular file on this host is
    /// read from it (the executable, the libraries, the program's input).
    pub from_host: bool,
}

impl Files {
    /// Whether any file's bytes are to come from the host.
    pub fn any(&self) -> bool {
        !self.given.is_empty() || self.from_host
    }

    /// A given recorded path the trace never maps: most likely a typo.
    fn check(&self, s: &Survey) -> Result<(), FullError> {
        let mut unknown: Vec<&String> = self.given.keys().filter(|p| !s.files.contains_key(*p)).collect();
        if unknown.is_empty() {
            return Ok(());
        }
        unknown.sort();
        let mut mapped: Vec<&String> = s.files.keys().collect();
        mapped.sort();
        let list = |v: &[&String]| v.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ");
        Err(FullError::Usage(format!(
            "--file {}: the trace maps no such file (it maps: {})",
            list(&unknown),
            if mapped.is_empty() {
                "none".to_string()
            } else {
                list(&mapped)
            }
        )))
    }

    /// The bytes of recorded `path` in a replay where it is `len` long, and
    /// where they came from (`None`: zeros).
    fn bytes(&self, path: &str, len: u64) -> Result<(Vec<u8>, Option<FileSource>), FullError> {
        let host = match self.given.get(path) {
            Some(h) => Some(h.clone()),
            None if self.from_host && std::path::Path::new(path).is_file() => Some(path.into()),
            None => None,
        };
        let Some(host) = host else {
            return Ok((vec![0; len as usize], None));
        };
        let fail = |e: std::io::Error| FullError::Usage(format!("{path}: cannot read {}: {e}", host.display()));
        let f = std::fs::File::open(&host).map_err(fail)?;
        let host_len = f.metadata().map_err(fail)?.len();
        let mut bytes = Vec::with_capacity(len as usize);
        std::io::Read::read_to_end(&mut std::io::Read::take(f, len), &mut bytes).map_err(fail)?;
        bytes.resize(len as usize, 0);
        Ok((
            bytes,
            Some(FileSource {
                path: path.to_string(),
                host: host.display().to_string(),
                host_len,
                len,
            }),
        ))
    }
}

/// A replayed file whose bytes came from the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSource {
    /// The recorded path.
    pub path: String,
    pub host: String,
    pub host_len: u64,
    /// Its length in the replay (the recorded size): the host file is cut
    /// or zero-filled to it.
    pub len: u64,
}

/// A reference that faulted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reported {
    /// The reference's number, from 1.
    pub reference: u64,
    pub page: u64,
    pub kind: RefKind,
    pub why: String,
}

/// What a program replay measured.
#[derive(Clone, Debug, Default)]
pub struct ProgramResult {
    /// The replayed process, alive after the replay (its memory can be read).
    pub pid: Pid,
    pub references: u64,
    pub distinct: u64,
    pub events: u64,
    /// First touches plus major faults on pages touched before.
    pub misses: u64,
    pub first_touches: u64,
    /// Every major fault of the run (file reads and swap-ins).
    pub major_faults: u64,
    pub minor_faults: u64,
    /// References outside every mapping.
    pub outside: u64,
    /// References a mapping's protection forbids.
    pub protection: u64,
    /// References that faulted for another reason (out of memory, SIGBUS).
    pub other_faults: u64,
    /// The first faulting references.
    pub reported: Vec<Reported>,
    pub divergences: u64,
    /// The first divergences, described.
    pub divergence_list: Vec<String>,
    /// The page-table bound the balloon left room for.
    pub tables: u64,
    /// The files whose bytes came from the host (the others are zeros).
    pub files_from_host: Vec<FileSource>,
    pub elapsed: Duration,
    pub stats: Stats,
}

impl ProgramResult {
    fn diverge(&mut self, what: String) {
        self.divergences += 1;
        if self.divergence_list.len() < LISTED {
            self.divergence_list.push(what);
        }
    }
}

/// Replays events on the program's process.
struct Player<'m> {
    m: &'m Machine,
    pid: Pid,
    fds: HashMap<String, i32>,
}

impl Player<'_> {
    /// `mmap` of `backing`: an in-memory file if its path is known, else
    /// anonymous (an fd the recording could not name).
    fn map(&self, addr: u64, len: u64, prot: u32, flags: u32, backing: &MapBacking) -> Result<u64, Errno> {
        match backing {
            MapBacking::File { path, pgoff, .. } if self.fds.contains_key(path) => self.m.mmap_fd(
                self.pid,
                addr,
                len,
                prot,
                flags & !MAP_ANONYMOUS,
                self.fds[path],
                pgoff.saturating_mul(PAGE_SIZE),
            ),
            _ => self.m.mmap(self.pid, addr, len, prot, flags | MAP_ANONYMOUS),
        }
    }

    fn event(&self, e: &Event, out: &mut ProgramResult) {
        let at = out.references;
        let ok_of = |r: i64| r >= 0;
        match e {
            Event::Initial {
                start,
                end,
                prot,
                backing,
            } => {
                let grows = if prot & PROT_GROWSDOWN != 0 { MAP_GROWSDOWN } else { 0 };
                let flags = MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE | grows;
                let len = end.saturating_sub(*start);
                match self.map(*start, len, prot & !PROT_GROWSDOWN, flags, backing) {
                    Ok(a) if a == *start => {}
                    r => out.diverge(format!("initial mapping {start:#x}-{end:#x}: {r:?}")),
                }
            }
            Event::BrkBase { start, end } => {
                if let Err(e) = self.m.set_brk_base(self.pid, *start) {
                    out.diverge(format!("brk base {start:#x}: {e:?}"));
                } else if end > start {
                    match self.m.brk(self.pid, *end) {
                        Ok(b) if b == *end => {}
                        r => out.diverge(format!("brk base {start:#x}: initial heap to {end:#x}: {r:?}")),
                    }
                }
            }
            Event::Mmap {
                addr,
                len,
                prot,
                flags,
                backing,
                result,
                ..
            } => {
                if ok_of(*result) {
                    let want = *result as u64;
                    match self.map(want, *len, *prot, flags | MAP_FIXED | MAP_NORESERVE, backing) {
                        Ok(a) if a == want => {}
                        r => out.diverge(format!("after reference {at}: mmap at {want:#x} (len {len}): {r:?}")),
                    }
                } else {
                    match self.map(*addr, *len, *prot, flags | MAP_NORESERVE, backing) {
                        Ok(a) => {
                            out.diverge(format!(
                                "after reference {at}: mmap({addr:#x}, {len}) failed in the recording ({}), gave {a:#x}",
                                errno_name(*result)
                            ));
                            let _ = self.m.munmap(self.pid, a, *len);
                        }
                        Err(e) if !same_outcome(*result, Err(e)) => out.diverge(format!(
                            "after reference {at}: mmap({addr:#x}, {len}): recorded {}, replayed {}",
                            errno_name(*result),
                            e.name()
                        )),
                        Err(_) => {}
                    }
                }
            }
            Event::Munmap { addr, len, result } => {
                let r = self.m.munmap(self.pid, *addr, *len);
                if !same_outcome(*result, r.map(|_| 0)) {
                    out.diverge(format!(
                        "after reference {at}: munmap({addr:#x}, {len}): recorded {}, replayed {r:?}",
                        errno_name(*result)
                    ));
                }
            }
            Event::Mprotect {
                addr,
                len,
                prot,
                result,
            } => {
                let r = self.m.mprotect(self.pid, *addr, *len, *prot);
                if !same_outcome(*result, r.map(|_| 0)) {
                    out.diverge(format!(
                        "after reference {at}: mprotect({addr:#x}, {len}, {prot}): recorded {}, replayed {r:?}",
                        errno_name(*result)
                    ));
                }
            }
            Event::Mremap {
                old_addr,
                old_len,
                new_len,
                flags,
                new_addr,
                result,
            } => {
                let r = if !ok_of(*result) {
                    self.m
                        .mremap(self.pid, *old_addr, *old_len, *new_len, *flags, *new_addr)
                } else if *result as u64 == *old_addr {
                    self.m.mremap(self.pid, *old_addr, *old_len, *new_len, 0, 0)
                } else {
                    let f = MREMAP_MAYMOVE | MREMAP_FIXED | (flags & MREMAP_DONTUNMAP);
                    self.m
                        .mremap(self.pid, *old_addr, *old_len, *new_len, f, *result as u64)
                };
                let same = same_outcome(*result, r);
                if !same {
                    out.diverge(format!(
                        "after reference {at}: mremap({old_addr:#x}, {old_len}, {new_len}): recorded {}, replayed {r:?}",
                        if ok_of(*result) { format!("{result:#x}") } else { errno_name(*result) }
                    ));
                    if let (Ok(a), false) = (r, ok_of(*result)) {
                        let _ = self.m.munmap(self.pid, a, *new_len);
                    }
                }
            }
            Event::Brk { addr, result } => {
                let r = self.m.brk(self.pid, *addr);
                if r != Ok(*result as u64) {
                    out.diverge(format!(
                        "after reference {at}: brk({addr:#x}): recorded {result:#x}, replayed {r:?}"
                    ));
                }
            }
        }
    }
}

/// Whether a replayed call's outcome `r` is the recorded `result`: the
/// same value, or the same errno (a recorded failure is minus its errno).
fn same_outcome(result: i64, r: Result<u64, Errno>) -> bool {
    match r {
        Ok(v) => result >= 0 && v == result as u64,
        Err(e) => -result == i64::from(e.code()),
    }
}

/// A recorded result: its errno's name if it is a failure.
fn errno_name(result: i64) -> String {
    match Errno::from_code(i32::try_from(-result).unwrap_or(0)) {
        Some(e) if result < 0 => e.name().to_string(),
        _ => format!("{result}"),
    }
}

/// Replay `reader` (the trace `s` surveyed) on `m`, built from
/// `program_config`. `progress` gets the references done every batch.
pub fn replay(
    m: &Machine,
    frames: u64,
    s: &Survey,
    reader: &mut dyn TraceReader,
    files: &Files,
    progress: &mut dyn FnMut(u64),
) -> Result<ProgramResult, FullError> {
    let run = |what: &str, e: &dyn std::fmt::Debug| FullError::Run(format!("{what}: {e:?}"));
    files.check(s)?;
    let pid = m.spawn().map_err(|e| run("spawn", &e))?;
    let mut fds = HashMap::new();
    let mut from_host = Vec::new();
    let mut paths: Vec<(&String, &u64)> = s.files.iter().collect();
    paths.sort();
    for (path, &len) in paths {
        let (bytes, source) = files.bytes(path, len)?;
        from_host.extend(source);
        fds.insert(path.clone(), m.open_file(Box::new(MemFile::new(&bytes, true))));
    }
    balloon(m, frames + s.tables)?;
    let player = Player { m, pid, fds };
    let mut out = ProgramResult {
        distinct: s.distinct,
        tables: s.tables,
        files_from_host: from_host,
        pid,
        ..ProgramResult::default()
    };
    let before = m.stats();
    let mut seen = PageSet::with_capacity(s.distinct as usize);
    let mut first_majors = 0u64;
    let mut batch = Vec::with_capacity(BATCH);
    let t0 = Instant::now();
    let mut cpu = None;
    loop {
        reader.read_batch(&mut batch, BATCH)?;
        if batch.is_empty() {
            break;
        }
        for r in &batch {
            let r = match r {
                Record::Event(e) => {
                    // Syscalls shoot down CPU 0's TLB: not from inside its use.
                    cpu = None;
                    out.events += 1;
                    player.event(e, &mut out);
                    continue;
                }
                Record::Ref(r) => r,
            };
            if cpu.is_none() {
                let mut c = m.cpu(0).map_err(|e| run("take CPU 0", &e))?;
                c.switch_to(pid).map_err(|e| run("switch", &e))?;
                cpu = Some(c);
            }
            let Some(c) = cpu.as_mut() else { continue };
            out.references += 1;
            let addr = r.page.checked_shl(PAGE_SHIFT).filter(|a| a >> PAGE_SHIFT == r.page);
            let first = !seen.contains(r.page);
            let majors = if first { m.stats().major_faults } else { 0 };
            let res = match addr {
                None => Err(None),
                Some(a) => match r.kind {
                    RefKind::Instr => c.access(a, Access::Exec),
                    RefKind::Load => c.access(a, Access::Read),
                    RefKind::Store | RefKind::Access => c.access(a, Access::Write),
                    RefKind::Modify => c.access(a, Access::Read).and_then(|()| c.access(a, Access::Write)),
                }
                .map_err(Some),
            };
            match res {
                Ok(()) => {
                    if first {
                        seen.insert(r.page);
                        out.first_touches += 1;
                        first_majors += m.stats().major_faults - majors;
                    }
                }
                Err(f) => {
                    let why = match f {
                        None => {
                            out.outside += 1;
                            "page number past the address space".to_string()
                        }
                        Some(f) => {
                            match f.reason {
                                FaultReason::NotMapped => out.outside += 1,
                                FaultReason::Protection | FaultReason::ProtectionKey => out.protection += 1,
                                _ => out.other_faults += 1,
                            }
                            format!("{:?} {:?} at {:#x}", f.signal, f.reason, f.addr)
                        }
                    };
                    if out.reported.len() < LISTED {
                        out.reported.push(Reported {
                            reference: out.references,
                            page: r.page,
                            kind: r.kind,
                            why,
                        });
                    }
                }
            }
        }
        progress(out.references);
    }
    out.elapsed = t0.elapsed();
    drop(cpu);
    let stats = m.stats();
    if stats.oom_kill != before.oom_kill {
        return Err(FullError::Run(format!(
            "the OOM killer ran during the replay ({:?}): too few frames for what the program locks or pins",
            m.oom_kills()
        )));
    }
    out.major_faults = stats.major_faults - before.major_faults;
    out.minor_faults = stats.minor_faults - before.minor_faults;
    out.misses = out.first_touches + out.major_faults.saturating_sub(first_majors);
    out.stats = stats;
    Ok(out)
}

/// The machine config a replay of `s` in `frames` frames runs with: full
/// mode's, with room for the page tables the balloon leaves free.
pub fn program_config(base: &MachineConfig, frames: u64, s: &Survey) -> Result<MachineConfig, FullError> {
    if frames == 0 {
        return Err(FullError::Usage("--frames must be at least 1".into()));
    }
    machine_config(base, frames + s.tables, s.distinct)
}

/// Replay the recorded program at `path` in full mode: a survey pass, then
/// a machine built by `build` from `base` (its `reclaim` design) as
/// `program_config` sizes it.
pub fn run_program_file(
    path: &std::path::Path,
    format: Option<crate::trace::Format>,
    base: &MachineConfig,
    frames: u64,
    build: &dyn Fn(&MachineConfig) -> Result<Machine, String>,
    files: &Files,
    progress: &mut dyn FnMut(super::Tick),
) -> Result<ProgramResult, FullError> {
    let (_, mut r) = crate::trace::open(path, format.clone())?;
    let s = survey(&mut *r)?;
    let cfg = program_config(base, frames, &s)?;
    let m = build(&cfg).map_err(FullError::Machine)?;
    let (_, mut r, extent) = crate::trace::open_counted(path, format)?;
    replay(&m, frames, &s, &mut *r, files, &mut |refs| {
        progress(super::Tick::at(refs, &extent))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::mm::uapi::{PROT_EXEC, PROT_READ, PROT_WRITE};
    use crate::trace::Ref;

    struct Vec1(std::vec::IntoIter<Record>);

    impl TraceReader for Vec1 {
        fn read_batch(&mut self, out: &mut Vec<Record>, max: usize) -> Result<(), TraceError> {
            out.clear();
            out.extend(self.0.by_ref().take(max));
            Ok(())
        }
    }

    fn play(recs: Vec<Record>, frames: u64) -> ProgramResult {
        let s = survey(&mut Vec1(recs.clone().into_iter())).unwrap();
        let cfg = program_config(&MachineConfig::default(), frames, &s).unwrap();
        let m = Machine::new(&cfg).unwrap();
        replay(
            &m,
            frames,
            &s,
            &mut Vec1(recs.into_iter()),
            &Files::default(),
            &mut |_| {},
        )
        .unwrap()
    }

    /// The filtered set answers as a plain set: pages that share the
    /// filter's entry (equal low bits), repeats, and `PageSet::NONE` itself.
    #[test]
    fn page_set_agrees_with_a_plain_set() {
        use rand::{rngs::SmallRng, Rng, SeedableRng};
        let mut rng = SmallRng::seed_from_u64(5);
        let mut set = PageSet::with_capacity(0);
        let mut shadow = std::collections::HashSet::new();
        for n in 0..20_000 {
            let page = match rng.gen_range(0..10) {
                0 => PageSet::NONE,
                1..=5 => rng.gen_range(0..4u64) * RECENT as u64 + 7,
                _ => rng.gen_range(0..1_000u64),
            };
            if rng.gen() {
                assert_eq!(set.insert(page), shadow.insert(page), "insert {page} at {n}");
            } else {
                assert_eq!(set.contains(page), shadow.contains(&page), "contains {page} at {n}");
            }
        }
        assert_eq!(set.len(), shadow.len());
    }

    fn r(page: u64, kind: RefKind) -> Record {
        Record::Ref(Ref { page, kind })
    }

    const A: u64 = 0x40_0000;

    #[test]
    fn references_outside_mappings_and_failing_syscalls_that_succeed_are_reported() {
        let recs = vec![
            Record::event(Event::Initial {
                start: A,
                end: A + 4 * PAGE_SIZE,
                prot: PROT_READ | PROT_WRITE,
                backing: MapBacking::Anon,
            }),
            r(A >> 12, RefKind::Store),
            r((A >> 12) + 1, RefKind::Load),
            // Nothing maps this page.
            r((A >> 12) + 100, RefKind::Load),
            // munmap of a mapped range "failed" in the recording: replay succeeds.
            Record::event(Event::Munmap {
                addr: A + 3 * PAGE_SIZE,
                len: PAGE_SIZE,
                result: -22,
            }),
            r(A >> 12, RefKind::Modify),
        ];
        let out = play(recs, 64);
        assert_eq!(out.references, 4);
        assert_eq!(out.first_touches, 2);
        assert_eq!(out.outside, 1);
        assert_eq!(out.reported.len(), 1);
        assert_eq!(out.reported[0].reference, 3);
        assert_eq!(out.reported[0].page, (A >> 12) + 100);
        assert_eq!(out.divergences, 1, "{:?}", out.divergence_list);
        assert!(out.divergence_list[0].contains("munmap"), "{:?}", out.divergence_list);
        assert_eq!(out.misses, 2);
    }

    /// An instruction fetch needs PROT_EXEC: from a read-only mapping it is
    /// reported, from a read-exec one it is not.
    #[test]
    fn an_instruction_fetch_needs_prot_exec() {
        let recs = vec![
            Record::event(Event::Initial {
                start: A,
                end: A + PAGE_SIZE,
                prot: PROT_READ | PROT_EXEC,
                backing: MapBacking::Anon,
            }),
            Record::event(Event::Initial {
                start: A + PAGE_SIZE,
                end: A + 2 * PAGE_SIZE,
                prot: PROT_READ,
                backing: MapBacking::Anon,
            }),
            r(A >> 12, RefKind::Instr),
            r((A >> 12) + 1, RefKind::Load),
            r((A >> 12) + 1, RefKind::Instr),
        ];
        let out = play(recs, 16);
        assert_eq!(out.protection, 1, "{:?}", out.reported);
        assert_eq!(out.reported[0].reference, 3, "{:?}", out.reported);
        assert_eq!(out.first_touches, 2);
    }

    /// A call that failed in the recording must fail on replay with the
    /// recorded errno: Linux gives EINVAL for an mmap of length 0 and a
    /// munmap of an unaligned address, so a recording that says ENOMEM
    /// there diverges.
    #[test]
    fn a_recorded_failure_replays_with_its_errno() {
        let calls = |errno: i64| {
            vec![
                Record::event(Event::Mmap {
                    addr: 0,
                    len: 0,
                    prot: PROT_READ,
                    flags: MAP_PRIVATE | MAP_ANONYMOUS,
                    fd: -1,
                    offset: 0,
                    backing: MapBacking::Anon,
                    result: -errno,
                }),
                Record::event(Event::Munmap {
                    addr: A + 1,
                    len: PAGE_SIZE,
                    result: -errno,
                }),
            ]
        };
        let same = play(calls(22), 16);
        assert_eq!(same.divergences, 0, "{:?}", same.divergence_list);
        let other = play(calls(12), 16);
        assert_eq!(other.divergences, 2, "{:?}", other.divergence_list);
        assert!(
            other.divergence_list[0].contains("recorded ENOMEM, replayed EINVAL"),
            "{:?}",
            other.divergence_list
        );
        assert!(
            other.divergence_list[1].contains("munmap"),
            "{:?}",
            other.divergence_list
        );
    }

    #[test]
    fn prot_none_is_reported_the_stack_grows_and_few_frames_swap() {
        let stack = 0x7000_0000u64;
        let mut recs = vec![
            Record::event(Event::Initial {
                start: A,
                end: A + PAGE_SIZE,
                prot: 0,
                backing: MapBacking::Anon,
            }),
            Record::event(Event::Initial {
                start: stack,
                end: stack + 2 * PAGE_SIZE,
                prot: PROT_READ | PROT_WRITE | PROT_GROWSDOWN,
                backing: MapBacking::Anon,
            }),
            Record::event(Event::BrkBase {
                start: 0x100_0000,
                end: 0x100_0000,
            }),
            Record::event(Event::Brk {
                addr: 0x100_0000 + 64 * PAGE_SIZE,
                result: (0x100_0000 + 64 * PAGE_SIZE) as i64,
            }),
            r(A >> 12, RefKind::Load),
            // Two pages below the stack: it grows.
            r((stack >> 12) - 2, RefKind::Store),
        ];
        for round in 0..3 {
            for p in 0..64 {
                let _ = round;
                recs.push(r((0x100_0000 >> 12) + p, RefKind::Store));
            }
        }
        let out = play(recs.clone(), 16);
        assert_eq!(out.protection, 1, "{:?}", out.reported);
        assert_eq!(out.outside, 0, "{:?}", out.reported);
        assert_eq!(out.other_faults, 0, "{:?}", out.reported);
        assert_eq!(out.divergences, 0, "{:?}", out.divergence_list);
        assert_eq!(out.first_touches, 65);
        assert!(out.major_faults > 0);
        assert!(out.misses > 65);
        let big = play(recs, 512);
        assert_eq!(big.major_faults, 0);
        assert_eq!(big.misses, 65);
    }
}
