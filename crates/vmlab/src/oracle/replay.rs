//! Replay: run recorded sequences on vmlab and compare with what the host
//! kernel answered.
//!
//! Each sequence runs in a fresh vmlab process of one machine, its window at
//! [`VMLAB_BASE`] (1 GiB aligned, far below vmlab's `mmap_base` near the top
//! of the address space and far above its heap, so at least 4096 free pages
//! lie on either side). As the recorder did, a mmap/mremap result outside
//! the slack area [-128, W+128) counts as `"outside"` and is unmapped at
//! once; where it went is not compared. Compared: every op's result (and
//! `outside_munmap`), the maps lines of [0, W) and of [-128, W+128) as lines,
//! and the window pages (`[pg, first_byte, hash]` or the fault of a page
//! maps calls readable).
//!
//! MADV_FREE is compared strictly: vmlab, as Linux, keeps a lazily freed
//! page's contents until reclaim wants the memory, and a replay machine
//! with enough RAM never reclaims.
//!
//! vmlab's own checks count as divergences too: `Machine::check()` at the
//! end of each sequence (and, with `check_each_op`, after every op) and
//! after its process exits, every frame free again, and no panic.

use super::format::{
    addr_of, page_entry, page_offset_in_slack, parse_line, perms_at, window_views, Call, Line, MapLine, PageEntry, Res,
    Sequence, PAGE_SIZE,
};
use crate::host::HostFacts;
use crate::mm::errno::{Errno, Fault, Signal};
use crate::mm::system::{Cpu, Machine, Pid};
use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, Write};

/// Where the window starts in the vmlab process.
pub const VMLAB_BASE: u64 = 0x2000_0000_0000;

/// How to replay.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReplayOptions {
    /// Run `Machine::check()` after every op, not only at the end of each
    /// sequence and after its process exits. The checker walks every frame,
    /// so this costs time in proportion to the machine's RAM.
    pub check_each_op: bool,
}

/// One difference between the host's answer and vmlab's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    pub seed: u64,
    pub seq: u64,
    /// What differs: `op 3 {"op":"mremap",...}`, `maps`, `maps_ext`, `pages`, `check()`.
    pub what: String,
    pub host: String,
    pub vmlab: String,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {} seq {}: {}\n    host:  {}\n    vmlab: {}",
            self.seed, self.seq, self.what, self.host, self.vmlab
        )
    }
}

/// Totals of a replay: the line `N sequences, D divergences, S skipped`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Sequences replayed (error lines not included).
    pub sequences: u64,
    pub divergences: u64,
    /// Error lines skipped.
    pub skipped: u64,
}

/// What replaying one sequence found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub divergences: Vec<Divergence>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} sequences, {} divergences, {} skipped",
            self.sequences, self.divergences, self.skipped
        )
    }
}

/// Why a replay stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum ReplayError {
    /// A line that does not follow the format (1-based line number).
    BadInput { line: usize, msg: String },
    /// Reading input or writing output failed.
    Io(String),
    /// No machine could be built.
    Machine(String),
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayError::BadInput { line, msg } => write!(f, "line {line}: {msg}"),
            ReplayError::Io(m) | ReplayError::Machine(m) => f.write_str(m),
        }
    }
}

fn errno_res(e: Errno) -> Res {
    Res::errno(e.name())
}

fn fault_name(f: Fault) -> &'static str {
    match f.signal {
        Signal::Segv => "SEGV",
        Signal::Bus => "BUS",
        Signal::Kill => "KILL",
    }
}

/// Maps lines of `pid` in pages relative to `base`.
fn vmlab_maps(m: &Machine, pid: Pid, base: u64) -> Result<Vec<MapLine>, Errno> {
    let rel = |x: u64| ((x as i128 - base as i128) / PAGE_SIZE as i128) as i64;
    Ok(m.maps(pid)?
        .into_iter()
        .map(|l| (rel(l.start), rel(l.end), l.perms_str().to_string()))
        .collect())
}

/// What vmlab answers to one call: the result and, for `"outside"`, the
/// result of the munmap that follows.
fn run_call(m: &Machine, cpu: &mut Cpu<'_>, pid: Pid, base: u64, w: i64, call: &Call) -> (Res, Option<Res>) {
    let placed = |r: Result<u64, Errno>, len: u64| match r {
        Err(e) => (errno_res(e), None),
        Ok(a) => match page_offset_in_slack(a, base, w) {
            Some(pg) => (Res::Int(pg), None),
            None => {
                let om = match m.munmap(pid, a, len) {
                    Ok(()) => Res::Int(0),
                    Err(e) => errno_res(e),
                };
                (Res::outside(), Some(om))
            }
        },
    };
    let unit = |r: Result<(), Errno>| match r {
        Ok(()) => (Res::Int(0), None),
        Err(e) => (errno_res(e), None),
    };
    match *call {
        Call::Mmap {
            addr_pg,
            addr_b,
            len_b,
            prot,
            flags,
        } => placed(
            m.mmap(pid, addr_of(base, addr_pg, addr_b), len_b, prot.0, flags.0),
            len_b,
        ),
        Call::Munmap { addr_pg, addr_b, len_b } => unit(m.munmap(pid, addr_of(base, addr_pg, addr_b), len_b)),
        Call::Mprotect {
            addr_pg,
            addr_b,
            len_b,
            prot,
        } => unit(m.mprotect(pid, addr_of(base, addr_pg, addr_b), len_b, prot.0)),
        Call::Madvise {
            addr_pg,
            addr_b,
            len_b,
            advice,
        } => unit(m.madvise(pid, addr_of(base, addr_pg, addr_b), len_b, advice.0)),
        Call::Mremap {
            addr_pg,
            addr_b,
            old_len_b,
            new_len_b,
            flags,
            new_addr_pg,
            ..
        } => {
            let new_addr = new_addr_pg.map_or(0, |pg| addr_of(base, pg, 0));
            let r = m.mremap(
                pid,
                addr_of(base, addr_pg, addr_b),
                old_len_b,
                new_len_b,
                flags.0,
                new_addr,
            );
            placed(r, new_len_b)
        }
        Call::Store { pg, byte, val } => match cpu.write(addr_of(base, pg, byte), &[val]) {
            Ok(()) => (Res::text("ok"), None),
            Err(f) => (Res::text(fault_name(f)), None),
        },
        Call::Load { pg, byte } => {
            let mut b = [0u8; 1];
            match cpu.read(addr_of(base, pg, byte), &mut b) {
                Ok(()) => (Res::Int(b[0] as i64), None),
                Err(f) => (Res::text(fault_name(f)), None),
            }
        }
    }
}

fn show_maps(v: &[MapLine]) -> String {
    let parts: Vec<String> = v.iter().map(|(s, e, p)| format!("[{s},{e},{p:?}]")).collect();
    format!("[{}]", parts.join(","))
}

/// The window pages as vmlab reads them.
fn vmlab_pages(cpu: &mut Cpu<'_>, base: u64, w: i64, win: &[MapLine]) -> Vec<PageEntry> {
    let mut page = vec![0u8; PAGE_SIZE as usize];
    let mut out = Vec::new();
    for pg in 0..w {
        match cpu.read(addr_of(base, pg, 0), &mut page) {
            Ok(()) => out.push(page_entry(pg, &page)),
            Err(f) => {
                if perms_at(win, pg).is_some_and(|p| p.starts_with('r')) {
                    out.push(PageEntry::Fault(pg, fault_name(f).to_string()));
                }
            }
        }
    }
    out
}

/// Replay one sequence on `m` (whose CPU 0 must be free) in a fresh
/// process; the divergences found.
pub fn replay_sequence(m: &Machine, s: &Sequence, opts: ReplayOptions) -> Outcome {
    let mut out = Vec::new();
    let mut div = |what: String, host: String, vmlab: String| {
        out.push(Divergence {
            seed: s.seed,
            seq: s.seq,
            what,
            host,
            vmlab,
        })
    };
    let base = VMLAB_BASE;
    let w = s.w;
    // Frames in use before the process exists: as many must be after it exits.
    let frames_before = m.phys().frames_used();
    let pid = match m.spawn() {
        Ok(p) => p,
        Err(e) => {
            div("spawn".into(), "-".into(), format!("spawn failed: {e}"));
            return Outcome { divergences: out };
        }
    };
    {
        let mut cpu = match m.cpu(0) {
            Ok(c) => c,
            Err(e) => {
                div("cpu(0)".into(), "-".into(), format!("cannot take CPU 0: {e}"));
                let _ = m.exit(pid);
                return Outcome { divergences: out };
            }
        };
        if let Err(e) = cpu.switch_to(pid) {
            div("switch_to".into(), "-".into(), format!("{e}"));
            drop(cpu);
            let _ = m.exit(pid);
            return Outcome { divergences: out };
        }
        let mut checking = opts.check_each_op;
        for op in &s.ops {
            let (res, om) = run_call(m, &mut cpu, pid, base, w, &op.call);
            let what = || format!("op {} {}", op.i, op.call);
            if res != op.res {
                div(what(), op.res.to_string(), res.to_string());
            } else if let (Some(h), Some(v)) = (&op.outside_munmap, &om) {
                if h != v {
                    div(format!("{} (outside_munmap)", what()), h.to_string(), v.to_string());
                }
            }
            if checking {
                if let Err(e) = m.check() {
                    div(format!("check() after {}", what()), "-".into(), e.to_string());
                    checking = false;
                }
            }
        }
        if !opts.check_each_op {
            if let Err(e) = m.check() {
                div("check() at the end".into(), "-".into(), e.to_string());
            }
        }
        match vmlab_maps(m, pid, base) {
            Err(e) => div("maps".into(), show_maps(&s.maps), format!("maps failed: {e}")),
            Ok(lines) => {
                let (win, ext) = window_views(&lines, w);
                if win != s.maps {
                    div("maps".into(), show_maps(&s.maps), show_maps(&win));
                }
                if ext != s.maps_ext {
                    div("maps_ext".into(), show_maps(&s.maps_ext), show_maps(&ext));
                }
                let pages = vmlab_pages(&mut cpu, base, w, &win);
                compare_pages(&s.pages, &pages, &mut div);
            }
        }
    }
    if let Err(e) = m.exit(pid) {
        div("exit".into(), "-".into(), format!("exit failed: {e}"));
    }
    if let Err(e) = m.check() {
        div("check() after exit".into(), "-".into(), e.to_string());
    }
    let used = m.phys().frames_used();
    if used != frames_before {
        div(
            "frames after exit".into(),
            "-".into(),
            format!("{used} frames used, {frames_before} before the process existed (a leak)"),
        );
    }
    Outcome { divergences: out }
}

/// One divergence for all the pages that differ, each with both answers.
fn compare_pages(host: &[PageEntry], vm: &[PageEntry], div: &mut impl FnMut(String, String, String)) {
    let h: BTreeMap<i64, &PageEntry> = host.iter().map(|p| (p.pg(), p)).collect();
    let v: BTreeMap<i64, &PageEntry> = vm.iter().map(|p| (p.pg(), p)).collect();
    let mut pgs: Vec<i64> = h.keys().chain(v.keys()).copied().collect();
    pgs.sort_unstable();
    pgs.dedup();
    let differ: Vec<i64> = pgs.into_iter().filter(|pg| h.get(pg) != v.get(pg)).collect();
    if differ.is_empty() {
        return;
    }
    const SHOWN: usize = 8;
    let show = |m: &BTreeMap<i64, &PageEntry>| {
        let mut s: Vec<String> = differ
            .iter()
            .take(SHOWN)
            .map(|pg| m.get(pg).map_or_else(|| format!("[{pg},absent]"), |p| p.to_string()))
            .collect();
        if differ.len() > SHOWN {
            s.push(format!("... {} more", differ.len() - SHOWN));
        }
        s.join(" ")
    };
    div(format!("pages ({} differ)", differ.len()), show(&h), show(&v));
}

/// Check that every line of `input` parses; the number of lines. Stops at
/// the first bad line.
pub fn validate(input: impl BufRead) -> Result<u64, ReplayError> {
    let mut n = 0;
    for (k, line) in input.lines().enumerate() {
        let line = line.map_err(|e| ReplayError::Io(format!("reading line {}: {e}", k + 1)))?;
        if line.trim().is_empty() {
            continue;
        }
        parse_line(&line).map_err(|msg| ReplayError::BadInput { line: k + 1, msg })?;
        n += 1;
    }
    Ok(n)
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// Replay every line of `input` on machines made by `build` from the line's
/// recording-host facts (a fresh one after a panic, or when a line's facts
/// differ from the last one's), writing each divergence to `out` as it is
/// found, and the summary line at the end. A bad line stops the replay
/// with `BadInput`.
pub fn replay(
    input: impl BufRead,
    build: &dyn Fn(&HostFacts) -> Result<Machine, String>,
    opts: ReplayOptions,
    out: &mut dyn Write,
) -> Result<Summary, ReplayError> {
    let io = |e: std::io::Error| ReplayError::Io(format!("writing output: {e}"));
    let mut sum = Summary::default();
    let mut machine = None;
    for (k, line) in input.lines().enumerate() {
        let line = line.map_err(|e| ReplayError::Io(format!("reading line {}: {e}", k + 1)))?;
        if line.trim().is_empty() {
            continue;
        }
        let s = match parse_line(&line).map_err(|msg| ReplayError::BadInput { line: k + 1, msg })? {
            Line::Error(_) => {
                sum.skipped += 1;
                continue;
            }
            Line::Seq(s) => s,
        };
        let facts = s.host_facts();
        if machine
            .as_ref()
            .is_some_and(|(_, f): &(Machine, HostFacts)| f.pkeys != facts.pkeys)
        {
            machine = None;
        }
        if machine.is_none() {
            machine = Some((build(&facts).map_err(ReplayError::Machine)?, facts));
        }
        let (m, _) = machine.as_ref().expect("built above");
        let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| replay_sequence(m, &s, opts)));
        let divs = match got {
            Ok(o) => o.divergences,
            Err(p) => {
                // The machine may be half-way through a change: start afresh.
                machine = None;
                vec![Divergence {
                    seed: s.seed,
                    seq: s.seq,
                    what: "replay".into(),
                    host: "-".into(),
                    vmlab: format!("vmlab panicked: {}", panic_text(&*p)),
                }]
            }
        };
        sum.sequences += 1;
        sum.divergences += divs.len() as u64;
        for d in &divs {
            writeln!(out, "{d}").map_err(io)?;
        }
        if !divs.is_empty() {
            out.flush().map_err(io)?;
        }
    }
    writeln!(out, "{sum}").map_err(io)?;
    out.flush().map_err(io)?;
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::system::{ByteSize, MachineConfig};

    fn machine(facts: &HostFacts) -> Result<Machine, String> {
        let mut cfg = MachineConfig {
            ram: ByteSize(16 << 20),
            ..Default::default()
        };
        facts.apply(&mut cfg);
        Machine::new(&cfg).map_err(|e| e.to_string())
    }

    /// A sequence whose answers are what Linux gives (checked by hand).
    const LINE: &str = concat!(
        r#"{"seed":1,"seq":0,"W":8,"page_size":4096,"ops":["#,
        r#"{"i":0,"op":"mmap","addr_pg":2,"addr_b":0,"len_b":12288,"prot":"PROT_READ|PROT_WRITE","flags":"MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED","res":2},"#,
        r#"{"i":1,"op":"store","pg":3,"byte":0,"val":7,"res":"ok"},"#,
        r#"{"i":2,"op":"load","pg":3,"byte":0,"res":7},"#,
        r#"{"i":3,"op":"mprotect","addr_pg":4,"addr_b":0,"len_b":4096,"prot":"PROT_NONE","res":0},"#,
        r#"{"i":4,"op":"munmap","addr_pg":0,"addr_b":1,"len_b":4096,"res":"-EINVAL","prov":"unaligned_addr"},"#,
        r#"{"i":5,"op":"mmap","addr_pg":2,"addr_b":0,"len_b":4096,"prot":"PROT_READ","flags":"MAP_PRIVATE|MAP_ANONYMOUS","res":"outside","outside_munmap":0},"#,
        r#"{"i":6,"op":"load","pg":4,"byte":9,"res":"SEGV"}"#,
        r#"],"maps":[[2,4,"rw-p"],[4,5,"---p"]],"maps_ext":[[2,4,"rw-p"],[4,5,"---p"]],"#,
        r#""pages":[[2,0,"b93a0c83ce3b6325"],[3,7,"HASH3"]]}"#
    );

    fn line() -> String {
        let mut page = vec![0u8; 4096];
        page[0] = 7;
        LINE.replace(
            "HASH3",
            &super::super::format::fnv_hex(super::super::format::fnv1a64(&page)),
        )
    }

    fn run(text: &str) -> (Summary, String) {
        let mut out = Vec::new();
        let opts = ReplayOptions { check_each_op: true };
        let s = replay(text.as_bytes(), &machine, opts, &mut out).unwrap();
        (s, String::from_utf8(out).unwrap())
    }

    #[test]
    fn a_matching_sequence_has_no_divergence() {
        let (s, out) = run(&line());
        assert_eq!(s.divergences, 0, "{out}");
        assert_eq!(out.trim_end(), "1 sequences, 0 divergences, 0 skipped");
    }

    #[test]
    fn corrupted_answers_diverge() {
        let good = line();
        for (from, to, what) in [
            (r#""res":7}"#, r#""res":8}"#, "op 2"),
            (r#""res":"-EINVAL""#, r#""res":0"#, "op 4"),
            (
                r#"[[2,4,"rw-p"],[4,5,"---p"]],"maps_ext""#,
                r#"[[2,5,"rw-p"]],"maps_ext""#,
                "maps",
            ),
            (r#"[2,0,"b93a0c83ce3b6325"]"#, r#"[2,1,"b93a0c83ce3b6325"]"#, "pages"),
            (r#"[2,0,"b93a0c83ce3b6325"],"#, "", "pages"),
        ] {
            assert!(good.contains(from), "{from}");
            let (s, out) = run(&good.replacen(from, to, 1));
            assert!(s.divergences >= 1, "{to}: {out}");
            assert!(out.contains(what), "{to}: {out}");
        }
    }

    /// MADV_FREE then a load: Linux without memory pressure still has the
    /// byte, and so has vmlab, also after the page moved; compared strictly.
    /// A vmlab that freed the pages at once would differ in the load and
    /// in the page's hash.
    #[test]
    fn madv_free_keeps_contents_as_linux_does() {
        let ops = concat!(
            r#"{"i":0,"op":"mmap","addr_pg":0,"addr_b":0,"len_b":8192,"prot":"PROT_READ|PROT_WRITE","flags":"MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED","res":0},"#,
            r#"{"i":1,"op":"store","pg":1,"byte":5,"val":7,"res":"ok"},"#,
            r#"{"i":2,"op":"madvise","addr_pg":0,"addr_b":0,"len_b":8192,"advice":"MADV_FREE","res":0},"#,
            r#"{"i":3,"op":"mremap","kind":"move_fixed","addr_pg":0,"addr_b":0,"old_len_b":8192,"new_len_b":8192,"flags":"MREMAP_MAYMOVE|MREMAP_FIXED","new_addr_pg":4,"res":4},"#,
            r#"{"i":4,"op":"load","pg":5,"byte":5,"res":LOADED}"#
        );
        let mut page = vec![0u8; 4096];
        page[5] = 7;
        let hash = super::super::format::fnv_hex(super::super::format::fnv1a64(&page));
        let zero = super::super::format::fnv_hex(super::super::format::fnv1a64(&[0u8; 4096]));
        let line = |loaded: u8, hash: &str| {
            format!(
                r#"{{"seed":1,"seq":0,"W":8,"page_size":4096,"ops":[{}],"maps":[[4,6,"rw-p"]],"maps_ext":[[4,6,"rw-p"]],"pages":[[4,0,"b93a0c83ce3b6325"],[5,0,"{hash}"]]}}"#,
                ops.replace("LOADED", &loaded.to_string())
            )
        };
        let mut out = Vec::new();
        let s = replay(line(7, &hash).as_bytes(), &machine, ReplayOptions::default(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(s.divergences, 0, "{text}");
        // Had the pages been freed at once (what the host did not do), both differ.
        let s = replay(
            line(0, &zero).as_bytes(),
            &machine,
            ReplayOptions::default(),
            &mut Vec::new(),
        )
        .unwrap();
        assert_eq!(s.divergences, 2);
    }

    /// A line's `host` configures the machine: a load from PROT_EXEC memory
    /// is SEGV on a host with protection keys and reads zero on one
    /// without; the same answers under the other facts diverge. Lines with
    /// different facts in one file each get their machine.
    #[test]
    fn host_facts_configure_the_machine() {
        let line = |res: &str, host: &str| {
            // The whole-page read: a hash where loads work; where they fault,
            // nothing (the format records faults only of pages whose perms start with r).
            let pages = if res == "0" { r#"[0,0,"b93a0c83ce3b6325"]"# } else { "" };
            format!(
                r#"{{"seed":1,"seq":0,"W":4,"page_size":4096,"ops":[{{"i":0,"op":"mmap","addr_pg":0,"addr_b":0,"len_b":4096,"prot":"PROT_EXEC","flags":"MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED","res":0}},{{"i":1,"op":"load","pg":0,"byte":3,"res":{res}}}],"maps":[[0,1,"--xp"]],"maps_ext":[[0,1,"--xp"]],"pages":[{pages}]{host}}}"#
            )
        };
        let pk = r#","host":{"pkeys":true,"kernel":"6.18.0"}"#;
        let no_pk = r#","host":{"pkeys":false,"kernel":"6.18.0"}"#;
        for (text, divergences) in [
            (line(r#""SEGV""#, pk), 0),
            (line("0", no_pk), 0),
            (line("0", ""), 0),
            (line("0", pk), 2),
            (line(r#""SEGV""#, no_pk), 2),
            (line(r#""SEGV""#, ""), 2),
            (
                format!(
                    "{}\n{}\n{}",
                    line(r#""SEGV""#, pk),
                    line("0", no_pk),
                    line(r#""SEGV""#, pk)
                ),
                0,
            ),
        ] {
            let (s, out) = run(&text);
            assert_eq!(s.divergences, divergences, "{text}\n{out}");
        }
        let rec: Sequence = serde_json::from_str(&line("0", pk)).unwrap();
        assert!(rec.host_facts().pkeys);
        assert!(line("0", pk).contains(r#""host""#));
    }

    #[test]
    fn error_lines_are_skipped_and_bad_lines_named() {
        let text = format!("{}\n{{\"seed\":1,\"seq\":1,\"error\":\"child died\"}}\n\n", line());
        let (s, out) = run(&text);
        assert_eq!((s.sequences, s.divergences, s.skipped), (1, 0, 1), "{out}");
        let bad = format!("{}\n{}\n", line(), line().replace("\"W\":8", "\"W\":\"8\""));
        let e = replay(bad.as_bytes(), &machine, ReplayOptions::default(), &mut Vec::new()).unwrap_err();
        assert!(matches!(e, ReplayError::BadInput { line: 2, .. }), "{e}");
        assert!(matches!(
            validate(bad.as_bytes()),
            Err(ReplayError::BadInput { line: 2, .. })
        ));
        assert_eq!(validate(text.as_bytes()), Ok(2));
    }
}
