//! valgrind lackey traces: `valgrind --tool=lackey --trace-mem=yes
//! [--trace-syscalls=yes] [--log-file=F] CMD` (lackey writes to stderr
//! without `--log-file`).
//!
//! Spec: valgrind's `lackey/lk_main.c` (the `I`/`L`/`S`/`M` lines) and
//! `coregrind/m_syswrap/syswrap-main.c` (the SYSCALL lines), as valgrind
//! 3.19 prints them (`tests/data/traces/mapper.lackey.gz` is a real log):
//!
//! - `I  addr,size` / ` L addr,size` / ` S addr,size` / ` M addr,size`:
//!   hex address, decimal size. One `Ref` per page the bytes touch (page
//!   = addr >> 12), so an access across a page boundary gives two.
//! - `==pid== ...` lines (valgrind's banner and summary) are skipped.
//! - `SYSCALL[pid,tid](nr) name ( args ) --> [pre-success] Success(0xN) `,
//!   or `...)[sync] --> Success(0xN)`, or `Failure(0xE)` (an errno, taken as
//!   the result -E). A blocking syscall is split: `... --> [async] ... `,
//!   then later (memory lines may come between) `SYSCALL[pid,tid](nr) ...
//!   [async] --> Success(0xN)`. One with no result on its line gets it on a
//!   following line starting ` --> `. Split syscalls are joined by thread.
//!   A syscall whose result never comes (the process ended inside it), or
//!   a result with no syscall waiting for it, is dropped. The pid is not
//!   looked at: a log of several processes (`--trace-children=yes`) reads
//!   as one address space.
//! - Events are made of `sys_mmap` (addr, len, prot, flags, fd, offset),
//!   `sys_munmap` (addr, len), `sys_mprotect` (addr, len, prot),
//!   `sys_mremap` (old addr, old len, new len, flags, and new addr if
//!   given: else 0), `sys_brk` (addr), each with its result, at the line
//!   the result is on. Other syscalls are skipped, but for `sys_open`,
//!   `sys_openat` (whose path argument valgrind prints as `0xADDR(path)`)
//!   and `sys_close`, which keep a table of open fds: a file mmap's backing
//!   is `File { path, size: 0, pgoff: offset >> 12 }` with the path that
//!   table has for its fd, `""` if none (an fd from dup, a socket, or
//!   opened before tracing). The file's size is not in the trace: 0.
//! - With valgrind's `-d`, its debug lines (`--PID:1: ...`) come too. Of
//!   those only the first segment listing "at client startup" is read
//!   (`--PID:1: aspacem <<< SHOW_SEGMENTS: Memory layout at client startup
//!   (N segments)`, then `--PID:1: aspacem (i,j,k) /path` name-table lines
//!   and segment lines `--PID:1: aspacem   2: file 000010a000-000010dfff
//!   16384 r-x-- d=0xfe00 i=247857  o=8192    (1,49)`, up to `aspacem >>>`).
//!   Lowercase `file`/`anon` segments are the client's: each is an
//!   `Initial` (end exclusive, prot from `rwx`, a file's path from the name
//!   table by the first number of the closing `(i,j)`, size 0: the reader
//!   does not look at the host; pgoff = `o` >> 12). Uppercase `FILE`/`ANON`
//!   are valgrind's own, `RSVN` reservations and blank ones free: skipped.
//!   Two client segments are told by their neighbours: the anon segment
//!   just below an `RSVN ... SmLower` reservation is valgrind's data (brk)
//!   segment: it is the `BrkBase` (start = end = its start, which is what
//!   the program's first `brk(0)` returns), not an `Initial`; the anon
//!   segment just above an `RSVN ... SmUpper` is the stack: its prot gets
//!   `PROT_GROWSDOWN` (a replay maps it `MAP_GROWSDOWN`). Without an
//!   SmLower segment the `BrkBase` is the first `brk(0)`'s result, just
//!   before its `Brk` event (only in a log with the startup listing).
//!   Other debug lines are skipped.
//! - Without `-d`, lackey gives no `Initial` mappings or `BrkBase`: a
//!   replay must set them up from the first events.
//! - `process_creation()` names the first clone/fork/vfork/clone3 seen
//!   (the recorder refuses such programs: lackey gives no thread or
//!   process ids a replay could use).
//!
//! A memory, syscall or ` --> ` line that does not parse is an error
//! naming its line and what was expected (for the recorder, which reads
//! the log as it is written, a bad line naming a process-creating call is
//! the fork instead: `mixed_lines_are_forks`). Lines of other shapes are the
//! traced program's own output when it shares lackey's stderr (no
//! `--log-file`) and are skipped, but a file with no lackey line at all
//! is an error naming its first line of other text.
//!
//! Owns: lackey decoding and its sniff. May call: `super`, `std`.

use super::{At, Event, MapBacking, Record, Ref, RefKind, TraceError, TraceReader, PAGE_SHIFT};
use std::collections::{HashMap, VecDeque};
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// Largest access size taken (lackey's are at most a few hundred bytes;
/// this bounds the references one bad line makes).
const MAX_SIZE: u64 = 1 << 16;

/// MAP_ANONYMOUS on Linux.
const MAP_ANONYMOUS: u32 = 0x20;

/// A syscall whose result is on a later line.
struct Pending {
    tid: u64,
    name: String,
    args: Vec<Arg>,
    line: u64,
}

/// A syscall argument as valgrind prints it: a number, and the string it
/// points to if valgrind shows it (`0x479004(/etc/hostname)`).
#[derive(Clone, Debug)]
struct Arg {
    value: u64,
    text: Option<String>,
}

pub struct LackeyReader {
    r: Box<dyn BufRead>,
    path: PathBuf,
    line_no: u64,
    line: Vec<u8>,
    /// References of a line that did not fit the last batch.
    queued: VecDeque<Record>,
    pending: Vec<Pending>,
    fds: HashMap<i64, String>,
    /// The first line of no lackey shape (line, its start), and whether any has one.
    foreign: Option<(u64, String)>,
    seen_lackey: bool,
    /// Where the startup segment listing is (`Listing`).
    listing: Listing,
    /// The listing's name table (index → path) and its client segments so far.
    names: HashMap<u64, String>,
    segs: Vec<Seg>,
    brk_base_sent: bool,
    forked: Option<String>,
    /// Whether a bad line naming a process-creating call is taken as the
    /// fork (`mixed_lines_are_forks`) rather than an error.
    mixed_forks: bool,
}

/// Reading valgrind's `-d` segment listing at client startup.
#[derive(Copy, Clone, PartialEq, Eq)]
enum Listing {
    Before,
    In,
    Done,
}

/// One segment line of the listing.
struct Seg {
    kind: String,
    start: u64,
    end: u64,
    prot: u32,
    /// `o=`, and the name-table index of `(i,j)`.
    offset: u64,
    name: Option<u64>,
    /// The word after the size for RSVN lines (`SmLower`, `SmUpper`, `SmFixed`).
    tail: String,
}

/// PROT_GROWSDOWN: marks the stack's `Initial`.
pub const PROT_GROWSDOWN: u32 = 0x0100_0000;

impl LackeyReader {
    pub fn new(r: Box<dyn BufRead>, path: &Path) -> LackeyReader {
        LackeyReader {
            r,
            path: path.to_path_buf(),
            line_no: 0,
            line: Vec::new(),
            queued: VecDeque::new(),
            pending: Vec::new(),
            fds: HashMap::new(),
            foreign: None,
            seen_lackey: false,
            listing: Listing::Before,
            names: HashMap::new(),
            segs: Vec::new(),
            brk_base_sent: false,
            forked: None,
            mixed_forks: false,
        }
    }

    /// For a log being written while it is read (the recorder): after a
    /// fork the parent's and the child's lines can mix mid-line, the
    /// clone's own among them, so a bad line that names a process-creating
    /// call is noted as the fork (`process_creation`) and skipped instead
    /// of failing the read. A stored log's bad line stays an error.
    pub fn mixed_lines_are_forks(mut self) -> LackeyReader {
        self.mixed_forks = true;
        self
    }

    /// The first process-creating syscall seen (`sys_clone`, `sys_fork`,
    /// `sys_vfork`, `sys_clone3`, or their amd64 numbers 56, 57, 58, 435),
    /// with its line: a trace of it mixes address spaces.
    pub fn process_creation(&self) -> Option<&str> {
        self.forked.as_deref()
    }

    /// A `--PID:N: ...` debug line of `-d`.
    fn debug_line(&mut self, l: &str) -> Result<(), TraceError> {
        if self.listing == Listing::Done {
            return Ok(());
        }
        let Some(body) = l.split_once(": aspacem ").map(|(_, b)| b) else {
            return Ok(());
        };
        match self.listing {
            Listing::Before => {
                if body.starts_with("<<< SHOW_SEGMENTS: Memory layout at client startup") {
                    self.listing = Listing::In;
                }
                Ok(())
            }
            Listing::In if body.starts_with(">>>") => {
                self.listing = Listing::Done;
                self.end_listing();
                Ok(())
            }
            _ => self.listing_line(body),
        }
    }

    fn listing_line(&mut self, body: &str) -> Result<(), TraceError> {
        let t = body.trim_start();
        if let Some(rest) = t.strip_prefix('(') {
            // `(i,j,k) /path`: the name table.
            if let Some((ids, path)) = rest.split_once(") ") {
                if let Some(i) = ids.split(',').next().and_then(|i| i.trim().parse().ok()) {
                    self.names.insert(i, path.to_string());
                }
            }
            return Ok(());
        }
        // `N: kind lo-hi size prot ...`; other lines ("3 segment names in
        // 3 slots", "freelist ...") have no `N:`.
        let Some((n, rest)) = t.split_once(':') else {
            return Ok(());
        };
        if n.trim().parse::<u64>().is_err() {
            return Ok(());
        }
        let shape = "a segment line `N: kind lo-hi size prot ...`";
        let mut w = rest.split_whitespace().peekable();
        // A free segment has no kind word: its first word is the range.
        let kind = match w.peek() {
            Some(k) if !k.contains('-') => w.next().unwrap_or("").to_string(),
            _ => String::new(),
        };
        let range = w.next().ok_or_else(|| self.err(shape))?;
        let (lo, hi) = range.split_once('-').ok_or_else(|| self.err(shape))?;
        let (Ok(start), Ok(last)) = (u64::from_str_radix(lo, 16), u64::from_str_radix(hi, 16)) else {
            return Err(self.err(format!("{shape}: `{range}` is not a hex range")));
        };
        let _size = w.next();
        let perms = w.next().unwrap_or("");
        let mut prot = 0;
        for (c, bit) in perms.chars().zip([1u32, 2, 4]) {
            if c != '-' {
                prot |= bit;
            }
        }
        let mut seg = Seg {
            kind,
            start,
            end: last.saturating_add(1),
            prot,
            offset: 0,
            name: None,
            tail: String::new(),
        };
        for word in w {
            if let Some(o) = word.strip_prefix("o=") {
                seg.offset = number(o).unwrap_or(0);
            } else if let Some(ids) = word.strip_prefix('(') {
                seg.name = ids.split(',').next().and_then(|i| i.trim().parse().ok());
            } else if seg.tail.is_empty() && !word.contains('=') {
                seg.tail = word.to_string();
            }
        }
        self.segs.push(seg);
        Ok(())
    }

    /// The listing is whole: its client segments become events.
    fn end_listing(&mut self) {
        let segs = std::mem::take(&mut self.segs);
        for (k, s) in segs.iter().enumerate() {
            let backing = match s.kind.as_str() {
                "anon" => MapBacking::Anon,
                "file" => MapBacking::File {
                    path: s.name.and_then(|n| self.names.get(&n).cloned()).unwrap_or_default(),
                    size: 0,
                    pgoff: s.offset >> PAGE_SHIFT,
                },
                _ => continue,
            };
            let next_is = |tail: &str| segs.get(k + 1).is_some_and(|n| n.kind == "RSVN" && n.tail == tail);
            let prev_is = |tail: &str| k > 0 && segs[k - 1].kind == "RSVN" && segs[k - 1].tail == tail;
            let anon = backing == MapBacking::Anon;
            if anon && next_is("SmLower") && !self.brk_base_sent {
                self.brk_base_sent = true;
                self.queued.push_back(Record::event(Event::BrkBase {
                    start: s.start,
                    end: s.start,
                }));
                continue;
            }
            let grows = if anon && prev_is("SmUpper") { PROT_GROWSDOWN } else { 0 };
            self.queued.push_back(Record::event(Event::Initial {
                start: s.start,
                end: s.end,
                prot: s.prot | grows,
                backing,
            }));
        }
    }

    fn err(&self, what: impl Into<String>) -> TraceError {
        TraceError::new(&self.path, At::Line(self.line_no), what)
    }

    fn access(&mut self, kind: RefKind, rest: &str) -> Result<(), TraceError> {
        let what = "`addr,size` (hex address, decimal size)";
        let (a, s) = rest
            .trim()
            .split_once(',')
            .ok_or_else(|| self.err(format!("{what} after the access kind")))?;
        let addr = u64::from_str_radix(a.trim(), 16)
            .map_err(|_| self.err(format!("{what}: `{}` is not a hex address", a.trim())))?;
        let size: u64 = s
            .trim()
            .parse()
            .map_err(|_| self.err(format!("{what}: `{}` is not a decimal size", s.trim())))?;
        if size > MAX_SIZE {
            return Err(self.err(format!("an access size of at most {MAX_SIZE} bytes, not {size}")));
        }
        let first = addr >> PAGE_SHIFT;
        let last = addr.saturating_add(size.max(1) - 1) >> PAGE_SHIFT;
        for page in first..=last {
            self.queued.push_back(Record::Ref(Ref { page, kind }));
        }
        Ok(())
    }

    fn syscall(&mut self, l: &str) -> Result<(), TraceError> {
        let shape = "`SYSCALL[pid,tid](nr) name ( args ) --> result`";
        let body = &l["SYSCALL[".len()..];
        let (ids, rest) = body.split_once("](").ok_or_else(|| self.err(shape))?;
        let tid: u64 = ids
            .split_once(',')
            .and_then(|(_, t)| t.trim().parse().ok())
            .ok_or_else(|| self.err(format!("{shape}: `{ids}` is not pid,tid")))?;
        let (nr, rest) = rest.split_once(')').ok_or_else(|| self.err(shape))?;
        let rest = rest.trim_start();
        if self.forked.is_none() {
            let name = rest.split(|c: char| c.is_whitespace() || c == '(').next().unwrap_or("");
            let creates = PROCESS_CREATION.contains(&name)
                || (!rest.starts_with("...") && matches!(nr.trim(), "56" | "57" | "58" | "435"));
            if creates {
                self.forked = Some(format!(
                    "line {}: {}",
                    self.line_no,
                    l.chars().take(100).collect::<String>()
                ));
            }
        }
        if let Some(after) = rest.strip_prefix("...") {
            // The second half of an `[async]` syscall.
            let result = after.split_once("-->").and_then(|(_, r)| result_of(r));
            let result = result.ok_or_else(|| self.err(format!("{shape}: a Success(..) or Failure(..) result")))?;
            if let Some(i) = self.pending.iter().position(|p| p.tid == tid) {
                let p = self.pending.remove(i);
                self.complete(&p.name, &p.args, result, p.line)?;
            }
            return Ok(());
        }
        let open = rest.find('(');
        let (name, args, tail) = match open {
            Some(o) => {
                let name = rest[..o].trim().to_string();
                let close =
                    matching(rest, o).ok_or_else(|| self.err(format!("{shape}: a `)` closing the arguments")))?;
                (name, parse_args(&rest[o + 1..close]), &rest[close + 1..])
            }
            None => (rest.split_whitespace().next().unwrap_or("").to_string(), Vec::new(), ""),
        };
        let result = tail.split_once("-->").and_then(|(_, r)| result_of(r));
        match result {
            Some(r) => self.complete(&name, &args, r, self.line_no),
            None => {
                self.pending.retain(|p| p.tid != tid);
                self.pending.push(Pending {
                    tid,
                    name,
                    args,
                    line: self.line_no,
                });
                Ok(())
            }
        }
    }

    /// A syscall with its result: an event if it is one vmlab replays.
    fn complete(&mut self, name: &str, args: &[Arg], result: i64, line: u64) -> Result<(), TraceError> {
        let need = |n: usize| -> Result<(), TraceError> {
            if args.len() < n {
                Err(TraceError::new(
                    &self.path,
                    At::Line(line),
                    format!("{name}: {n} arguments, found {}", args.len()),
                ))
            } else {
                Ok(())
            }
        };
        let v = |i: usize| args.get(i).map_or(0, |a| a.value);
        let ev = match name {
            "sys_mmap" | "sys_mmap2" => {
                need(6)?;
                // valgrind prints an int fd as its u32 bits: 4294967295 is -1.
                let fd = v(4) as u32 as i32 as i64;
                let flags = v(3) as u32;
                let backing = if flags & MAP_ANONYMOUS != 0 || fd < 0 {
                    MapBacking::Anon
                } else {
                    MapBacking::File {
                        path: self.fds.get(&fd).cloned().unwrap_or_default(),
                        size: 0,
                        pgoff: v(5) >> PAGE_SHIFT,
                    }
                };
                Event::Mmap {
                    addr: v(0),
                    len: v(1),
                    prot: v(2) as u32,
                    flags,
                    fd,
                    offset: v(5),
                    backing,
                    result,
                }
            }
            "sys_munmap" => {
                need(2)?;
                Event::Munmap {
                    addr: v(0),
                    len: v(1),
                    result,
                }
            }
            "sys_mprotect" => {
                need(3)?;
                Event::Mprotect {
                    addr: v(0),
                    len: v(1),
                    prot: v(2) as u32,
                    result,
                }
            }
            "sys_mremap" => {
                need(4)?;
                Event::Mremap {
                    old_addr: v(0),
                    old_len: v(1),
                    new_len: v(2),
                    flags: v(3) as u32,
                    new_addr: v(4),
                    result,
                }
            }
            "sys_brk" => {
                need(1)?;
                if v(0) == 0 && result >= 0 && self.listing == Listing::Done && !self.brk_base_sent {
                    // No SmLower segment in the listing: the first brk(0)
                    // tells the base.
                    self.brk_base_sent = true;
                    self.queued.push_back(Record::event(Event::BrkBase {
                        start: result as u64,
                        end: result as u64,
                    }));
                }
                Event::Brk { addr: v(0), result }
            }
            "sys_open" | "sys_openat" => {
                let path_arg = if name == "sys_open" { 0 } else { 1 };
                if let (true, Some(Arg { text: Some(p), .. })) = (result >= 0, args.get(path_arg)) {
                    self.fds.insert(result, p.clone());
                }
                return Ok(());
            }
            "sys_close" => {
                self.fds.remove(&(v(0) as u32 as i32 as i64));
                return Ok(());
            }
            _ => return Ok(()),
        };
        self.queued.push_back(Record::event(ev));
        Ok(())
    }

    fn line(&mut self) -> Result<bool, TraceError> {
        let mut buf = std::mem::take(&mut self.line);
        buf.clear();
        let n = self
            .r
            .read_until(b'\n', &mut buf)
            .map_err(|e| TraceError::io(&self.path, &e));
        let more = match n {
            Ok(0) => self.at_end().map(|()| false),
            Ok(_) => {
                self.line_no += 1;
                let text = String::from_utf8_lossy(&buf);
                let l = text.trim_end_matches(['\n', '\r']);
                match self.parse(l) {
                    // After a fork, parent and child write to the same log,
                    // and their lines can mix mid-line, the clone's own
                    // among them: a bad line naming a process-creating call
                    // is that fork, not a malformed log.
                    Err(_)
                        if self.mixed_forks
                            && self.forked.is_none()
                            && PROCESS_CREATION.iter().any(|n| l.contains(n)) =>
                    {
                        self.forked = Some(format!(
                            "line {} (mixed with another process's output): {}",
                            self.line_no,
                            l.chars().take(100).collect::<String>()
                        ));
                        Ok(true)
                    }
                    r => r.map(|()| true),
                }
            }
            Err(e) => Err(e),
        };
        self.line = buf;
        more
    }

    fn at_end(&self) -> Result<(), TraceError> {
        match &self.foreign {
            Some((line, text)) if !self.seen_lackey => Err(TraceError::new(
                &self.path,
                At::Line(*line),
                format!("lackey lines (`I  addr,size`, ` L|S|M addr,size`, `SYSCALL[..]`), but the file has none: its first line of other text is `{text}`"),
            )),
            _ => Ok(()),
        }
    }

    fn parse(&mut self, l: &str) -> Result<(), TraceError> {
        if l.starts_with("--") {
            return self.debug_line(l);
        }
        if l.trim().is_empty() || l.starts_with("==") {
            return Ok(());
        }
        if let Some(rest) = l.strip_prefix("I  ") {
            self.access(RefKind::Instr, rest)?;
        } else if let Some(rest) = l.strip_prefix(" L ") {
            self.access(RefKind::Load, rest)?;
        } else if let Some(rest) = l.strip_prefix(" S ") {
            self.access(RefKind::Store, rest)?;
        } else if let Some(rest) = l.strip_prefix(" M ") {
            self.access(RefKind::Modify, rest)?;
        } else if l.starts_with("SYSCALL[") {
            self.syscall(l)?;
        } else if let Some(r) = l.trim_start().strip_prefix("-->") {
            // The result of the last syscall that had none on its line.
            let result = result_of(r).ok_or_else(|| self.err("` --> ` and a Success(..) or Failure(..) result"))?;
            if let Some(p) = self.pending.pop() {
                self.complete(&p.name, &p.args, result, p.line)?;
            }
        } else {
            // The traced program's own output, when it shares lackey's
            // stderr (no --log-file): not lackey's, skipped.
            if self.foreign.is_none() {
                self.foreign = Some((self.line_no, l.chars().take(160).collect()));
            }
            return Ok(());
        }
        self.seen_lackey = true;
        Ok(())
    }
}

/// The syscalls that create a process or thread, as valgrind names them.
const PROCESS_CREATION: [&str; 4] = ["sys_clone", "sys_clone3", "sys_fork", "sys_vfork"];

/// The index of the `)` matching the `(` at `open`.
fn matching(s: &str, open: usize) -> Option<usize> {
    let mut depth = 0;
    for (i, c) in s[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + i);
                }
            }
            _ => {}
        }
    }
    None
}

fn number(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Split at top-level commas; an argument that is no number is 0.
fn parse_args(s: &str) -> Vec<Arg> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    let mut push = |a: &str| {
        let a = a.trim();
        let (num, text) = match a.find('(') {
            Some(o) if a.ends_with(')') => (&a[..o], Some(a[o + 1..a.len() - 1].to_string())),
            _ => (a, None),
        };
        out.push(Arg {
            value: number(num).unwrap_or(0),
            text,
        });
    };
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if !s[start..].trim().is_empty() {
        push(&s[start..]);
    }
    out
}

/// `Success(0xN)` → N, `Failure(0xE)` → -E, anywhere in `s`.
fn result_of(s: &str) -> Option<i64> {
    let inner = |key: &str| {
        let at = s.find(key)? + key.len();
        let end = s[at..].find(')')? + at;
        number(&s[at..end])
    };
    if let Some(v) = inner("Success(") {
        return Some(v as i64);
    }
    inner("Failure(").map(|e| -(e as i64))
}

impl TraceReader for LackeyReader {
    fn read_batch(&mut self, out: &mut Vec<Record>, max: usize) -> Result<(), TraceError> {
        out.clear();
        while out.len() < max {
            if let Some(r) = self.queued.pop_front() {
                out.push(r);
                continue;
            }
            if !self.line()? {
                break;
            }
        }
        Ok(())
    }
}

/// Whether `text` is lackey output: every whole line one of lackey's
/// shapes, at least one a memory access.
pub fn sniff(text: &str) -> bool {
    let access = |l: &str, p: &str| {
        l.strip_prefix(p)
            .and_then(|r| r.split_once(','))
            .is_some_and(|(a, s)| u64::from_str_radix(a.trim(), 16).is_ok() && s.trim().parse::<u64>().is_ok())
    };
    let mut refs = 0;
    for l in super::whole_lines(text) {
        if access(l, "I  ") || access(l, " L ") || access(l, " S ") || access(l, " M ") {
            refs += 1;
        } else if !(l.trim().is_empty()
            || l.starts_with("==")
            || l.starts_with("--")
            || l.starts_with("SYSCALL[")
            || l.trim_start().starts_with("-->"))
        {
            return false;
        }
    }
    refs > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn read(text: &str) -> Result<Vec<Record>, TraceError> {
        let mut r = LackeyReader::new(Box::new(Cursor::new(text.as_bytes().to_vec())), Path::new("t.lackey"));
        let mut all = Vec::new();
        let mut out = Vec::new();
        loop {
            r.read_batch(&mut out, 1)?;
            if out.is_empty() {
                return Ok(all);
            }
            all.append(&mut out);
        }
    }

    #[test]
    fn accesses_syscalls_and_split_results() {
        let t = "==1== Lackey\nI  00001ffe,4\n S 00003000,8\n\
SYSCALL[7,1](257) sys_openat ( 4294967196, 0x479004(/etc/hostname), 0 ) --> [async] ... \n\
I  00004000,1\n\
SYSCALL[7,1](257) ... [async] --> Success(0x4) \n\
SYSCALL[7,1](9) sys_mmap ( 0x0, 4096, 1, 2, 4, 8192 ) --> [pre-success] Success(0x4800000) \n\
SYSCALL[7,1](334) unimplemented (by the kernel) syscall: 334! (ni_syscall)\n --> [pre-fail] Failure(0x26) \n\
SYSCALL[7,1](11) sys_munmap ( 0x4800000, 4096 )[sync] --> Failure(0x16) \n";
        let r = read(t).unwrap();
        let page = |page, kind| Record::Ref(Ref { page, kind });
        assert_eq!(
            r,
            vec![
                page(1, RefKind::Instr),
                page(2, RefKind::Instr),
                page(3, RefKind::Store),
                page(4, RefKind::Instr),
                Record::event(Event::Mmap {
                    addr: 0,
                    len: 4096,
                    prot: 1,
                    flags: 2,
                    fd: 4,
                    offset: 8192,
                    backing: MapBacking::File {
                        path: "/etc/hostname".into(),
                        size: 0,
                        pgoff: 2
                    },
                    result: 0x480_0000
                }),
                Record::event(Event::Munmap {
                    addr: 0x480_0000,
                    len: 4096,
                    result: -22
                }),
            ]
        );
        assert!(sniff(t));
    }

    #[test]
    fn bad_lines_name_their_line() {
        let e = read("I  00001000,4\n L 0000zz00,4\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.lackey: line 2: `addr,size` (hex address, decimal size): `0000zz00` is not a hex address"
        );
        // The program's own output between lackey's lines is skipped...
        assert_eq!(read("hello\nI  00001000,4\n").unwrap().len(), 1);
        // ...but a file of nothing else is not lackey.
        let e = read("\nhello\nworld\n").unwrap_err();
        assert_eq!(e.at, At::Line(2));
        assert!(e.to_string().contains("first line of other text is `hello`"), "{e}");
        let e = read(" S 1000\n").unwrap_err();
        assert!(e.to_string().contains("line 1: `addr,size`"), "{e}");
        assert!(!sniff("I  00001000,4\nhello\n"));
    }

    #[test]
    fn startup_segments_become_initial_events_and_forks_are_noted() {
        // Cut from valgrind 3.19's `-d` output for /bin/true.
        let t = "--9:1:    main Finalise initial image\n\
--9:1: aspacem <<< SHOW_SEGMENTS: Memory layout at client startup (9 segments)\n\
--9:1: aspacem 3 segment names in 3 slots\n\
--9:1: aspacem (1,49,7) /usr/bin/true\n\
--9:1: aspacem   0: RSVN 0000000000-0000107fff 1081344 ----- SmFixed\n\
--9:1: aspacem   2: file 000010a000-000010dfff   16384 r-x-- d=0xfe00 i=247857  o=8192    (1,49)\n\
--9:1: aspacem  10: anon 0004035000-0004035fff    4096 rwx--\n\
--9:1: aspacem  11: RSVN 0004036000-0004834fff 8384512 ----- SmLower\n\
--9:1: aspacem  12:      0004835000-0057ffffff   1335m\n\
--9:1: aspacem  13: FILE 0058000000-0058000fff    4096 r---- d=0xfe00 i=328516  o=0       (0,4)\n\
--9:1: aspacem  24: RSVN 1ffe801000-1ffeffefff 8380416 ----- SmUpper\n\
--9:1: aspacem  25: anon 1ffefff000-1fff000fff    8192 rw---\n\
--9:1: aspacem >>>\n\
--9:1: aspacem <<< SHOW_SEGMENTS: Memory layout at client shutdown (1 segments)\n\
--9:1: aspacem   1: anon 0000108000-0000109fff    8192 r----\n\
--9:1: aspacem >>>\n\
I  0010a000,4\n\
SYSCALL[9,1](12) sys_brk ( 0x0 ) --> [pre-success] Success(0x4035000) \n\
SYSCALL[9,1](56) sys_clone ( 0x1200011, 0x0 ) --> [pre-success] Success(0x0) \n";
        let mut r = LackeyReader::new(Box::new(Cursor::new(t.as_bytes().to_vec())), Path::new("t"));
        let mut out = Vec::new();
        let mut all = Vec::new();
        loop {
            r.read_batch(&mut out, 2).unwrap();
            if out.is_empty() {
                break;
            }
            all.append(&mut out);
        }
        assert_eq!(
            all,
            vec![
                Record::event(Event::Initial {
                    start: 0x10a000,
                    end: 0x10e000,
                    prot: 5,
                    backing: MapBacking::File {
                        path: "/usr/bin/true".into(),
                        size: 0,
                        pgoff: 2
                    }
                }),
                Record::event(Event::BrkBase {
                    start: 0x403_5000,
                    end: 0x403_5000
                }),
                Record::event(Event::Initial {
                    start: 0x1f_feff_f000,
                    end: 0x1f_ff00_1000,
                    prot: 3 | PROT_GROWSDOWN,
                    backing: MapBacking::Anon
                }),
                Record::Ref(Ref {
                    page: 0x10a,
                    kind: RefKind::Instr
                }),
                Record::event(Event::Brk {
                    addr: 0,
                    result: 0x403_5000
                }),
            ]
        );
        assert!(r.process_creation().is_some_and(|l| l.contains("sys_clone")));
        assert!(sniff(t));
    }

    /// For the recorder: after a fork, the parent's and the child's lines
    /// can mix mid-line in the one log, the clone's own among them: such a
    /// line is the fork, noted, not a malformed log. A bad line naming no
    /// such call is still an error, and so is the mixed line for a reader
    /// of a stored log.
    #[test]
    fn a_clone_line_mixed_with_the_childs_output_is_the_fork() {
        let t = "I  0010a000,4\n\
I  0010SYSCALL[9,1](56) sys_clone ( 0x1200011, 0x0 ) --> [pre-success] Success(0x0) \n\
I  0010a000,4\n";
        let mut r =
            LackeyReader::new(Box::new(Cursor::new(t.as_bytes().to_vec())), Path::new("t")).mixed_lines_are_forks();
        let mut out = Vec::new();
        r.read_batch(&mut out, 100).unwrap();
        assert_eq!(out.len(), 2);
        assert!(
            r.process_creation().is_some_and(|l| l.contains("line 2 (mixed")),
            "{:?}",
            r.process_creation()
        );
        let bad = "I  0010a000,4\nI  0010SYSCALL[9,1](12) sys_brk ( 0x0 ) --> [pre-success] Success(0x0)\n";
        let mut r =
            LackeyReader::new(Box::new(Cursor::new(bad.as_bytes().to_vec())), Path::new("t")).mixed_lines_are_forks();
        assert!(r.read_batch(&mut out, 100).is_err());
        assert!(r.process_creation().is_none());
        // A stored log (not the recorder's) keeps the mixed clone line an
        // error.
        let mut r = LackeyReader::new(Box::new(Cursor::new(t.as_bytes().to_vec())), Path::new("t"));
        assert!(r.read_batch(&mut out, 100).is_err());
    }
}
