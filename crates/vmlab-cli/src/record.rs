//! `vmlab trace record [-o FILE] -- CMD...`: run CMD under valgrind lackey
//! (`--trace-mem=yes --trace-syscalls=yes -d`) and write its references and
//! address-space events in vmlab's format, streaming: valgrind's stderr
//! (its log and `-d` debug lines, which valgrind always writes to stderr,
//! and the program's own stderr) goes through a pipe into
//! `trace::lackey`'s reader and out through `VmlabWriter`, so memory stays
//! constant however long the run. The program's stderr is therefore not
//! shown (and a line of it shaped like lackey's would be read as one).
//!
//! What is added to the reader's records: file sizes. The reader does not
//! look at the host; here a file mapping's `size` is the path's length by
//! `stat` when its event is read (the first time the path is seen, cached
//! after), so a file the program grows or truncates later keeps its first
//! size, and a path that no longer exists gets 0 (a replay then sizes it to
//! the extent mapped).
//!
//! Refused (exit 2, the output removed): a program that calls clone, fork,
//! vfork or clone3 (lackey's trace has no thread or process ids), valgrind
//! is killed at once. valgrind missing from PATH is exit 1: the command
//! line is fine, the machine lacks a tool.
//!
//! Owns: the command. May call: `vmlab::trace` (lackey reader, vmlab
//! writer), `indicatif`, `std::process`.

use crate::trace_cmd::RecordArgs;
use crate::Failure;
use std::collections::HashMap;
use std::io::{BufReader, BufWriter};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;
use vmlab::trace::{self, lackey::LackeyReader, Event, MapBacking, Record, TraceReader};

/// Fill a file backing's unknown size from the host.
fn sized(b: &mut MapBacking, cache: &mut HashMap<String, u64>) {
    if let MapBacking::File { path, size, .. } = b {
        if *size == 0 && !path.is_empty() {
            *size = *cache
                .entry(path.clone())
                .or_insert_with(|| std::fs::metadata(path.as_str()).map_or(0, |m| m.len()));
        }
    }
}

pub fn record(a: &RecordArgs) -> Result<(), Failure> {
    match Command::new("valgrind").arg("--version").output() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Failure::Runtime(
                "valgrind not found on PATH: `vmlab trace record` runs the program under valgrind's lackey \
                 (install valgrind, e.g. `apt-get install valgrind`)"
                    .into(),
            ))
        }
        Err(e) => return Err(Failure::Runtime(format!("cannot run valgrind: {e}"))),
        Ok(_) => {}
    }
    // `-d` debug lines go to valgrind's stderr whatever --log-file says (the
    // debug log starts before the options are read): so everything is read
    // from valgrind's stderr through a pipe, the program's own stderr
    // included (the lackey reader skips lines that are not lackey's).
    let (log, log_w) = std::io::pipe().map_err(|e| Failure::Runtime(format!("cannot make a pipe: {e}")))?;
    let out_name = a.output.display().to_string();
    let file =
        std::fs::File::create(&a.output).map_err(|e| Failure::Runtime(format!("{out_name}: cannot create: {e}")))?;
    let mut child = Command::new("valgrind")
        .args(["--tool=lackey", "--trace-mem=yes", "--trace-syscalls=yes", "-d"])
        .args(&a.cmd)
        .stdin(Stdio::inherit())
        .stderr(log_w)
        .spawn()
        .map_err(|e| Failure::Runtime(format!("cannot run valgrind: {e}")))?;
    let result = stream(a, log, file);
    if result.is_err() {
        // Refused or failed: stop valgrind (the child this command started).
        let _ = child.kill();
    }
    let status = child.wait().ok();
    let fail = |f: Failure| {
        let _ = std::fs::remove_file(&a.output);
        Err(f)
    };
    match result {
        Err(f) => fail(f),
        Ok(0) => fail(Failure::Runtime(format!(
            "valgrind ended ({}) and recorded no reference: did the program run?",
            status.map_or("status unknown".into(), |s| s.to_string())
        ))),
        Ok(refs) => {
            if let Some(s) = status.filter(|s| !s.success()) {
                eprintln!("vmlab: the program under valgrind ended with {s}; the recording is kept");
            }
            if !a.quiet {
                eprintln!("vmlab: {out_name}: {refs} references");
            }
            Ok(())
        }
    }
}

/// Read the FIFO to its end into `file`: the references written.
fn stream(a: &RecordArgs, log: std::io::PipeReader, file: std::fs::File) -> Result<u64, Failure> {
    let out_name = a.output.display().to_string();
    let werr = |e: std::io::Error| Failure::Runtime(format!("{out_name}: cannot write: {e}"));
    let mut reader = LackeyReader::new(
        Box::new(BufReader::with_capacity(1 << 16, log)),
        Path::new("valgrind's stderr"),
    )
    .mixed_lines_are_forks();
    let mut w = trace::vmlab_fmt::VmlabWriter::new(BufWriter::with_capacity(1 << 16, file)).map_err(werr)?;
    let bar = (!a.quiet).then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(4));
        b
    });
    let t0 = Instant::now();
    let (mut refs, mut events) = (0u64, 0u64);
    let mut sizes = HashMap::new();
    let mut batch = Vec::with_capacity(trace::BATCH);
    loop {
        let read = reader.read_batch(&mut batch, trace::BATCH);
        // A fork seen first explains a bad line after it (the child's
        // output mixed into the log): the refusal is the answer.
        if let (Err(e), None) = (&read, reader.process_creation()) {
            return Err(Failure::Runtime(format!("reading valgrind's log: {e}")));
        }
        if let Some(at) = reader.process_creation() {
            if let Some(b) = &bar {
                b.finish_and_clear();
            }
            return Err(Failure::Usage(format!(
                "the program creates a process or thread (valgrind's log, {at}): `vmlab trace record` takes \
                 single-threaded programs that do not fork (lackey's trace has no thread ids); recording discarded"
            )));
        }
        if batch.is_empty() {
            break;
        }
        for rec in &mut batch {
            match rec {
                Record::Ref(_) => refs += 1,
                Record::Event(e) => {
                    events += 1;
                    match &mut **e {
                        Event::Initial { backing, .. } | Event::Mmap { backing, .. } => sized(backing, &mut sizes),
                        _ => {}
                    }
                }
            }
            w.write(rec).map_err(werr)?;
        }
        if let Some(b) = &bar {
            let s = t0.elapsed().as_secs_f64().max(1e-3);
            b.set_message(format!(
                "recording: {refs} references, {events} events, {:.1} M references/s",
                refs as f64 / s / 1e6
            ));
            b.tick();
        }
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let mut inner = w.finish().map_err(werr)?;
    std::io::Write::flush(&mut inner).map_err(werr)?;
    Ok(refs)
}
