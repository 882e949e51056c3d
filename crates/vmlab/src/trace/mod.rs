//! Traces in: the records every reader gives (`Record`: a page reference,
//! or an address-space event of a recorded program), the formats
//! (`Format`, one file per reader), transparent decompression
//! (`open_bytes`: gzip and zstd by their magic numbers), sniffing a format
//! from a file's first bytes (`sniff`) and the errors a bad file gets
//! (`TraceError`: the file, the line or byte offset, what was expected).
//!
//! Readers stream: `TraceReader::read_batch` fills a caller's buffer, so a
//! trace of any length is read in constant memory and the per-record cost
//! is a loop over a slice, not a virtual call per reference.
//!
//! One file per format, each with its spec: `lackey.rs` (valgrind lackey,
//! with its SYSCALL lines as events), `trc.rs`, `csv.rs` (libCacheSim's
//! csv), `oracle_general.rs` and `lcs.rs` (libCacheSim's binaries, with
//! writers), `vmlab_fmt.rs` (vmlab's own, with events; reader and writer).
//! docs/TRACES.md has them all and the sniffing order.
//!
//! Owns: nothing but the formats' decoding and encoding. May call:
//! `std::io`, `flate2`, `zstd`, `tempfile` (the writers' spill files).
//! Used by `replay` (full and cache mode) and the CLI's `trace`.

pub mod csv;
pub mod lackey;
pub mod lcs;
pub mod oracle_general;
pub mod trc;
pub mod vmlab_fmt;

use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The page size page numbers count in (vmlab's, x86's base page).
pub const PAGE_SHIFT: u32 = 12;

/// How a reference used its page. Page-number traces say nothing of it:
/// `Access`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum RefKind {
    /// An instruction fetch (lackey `I`).
    Instr,
    /// A load (lackey `L`).
    Load,
    /// A store (lackey `S`).
    Store,
    /// A load and a store of the same bytes (lackey `M`, read-modify-write).
    Modify,
    /// A reference of unknown kind (a page-number trace).
    Access,
}

/// One reference to one page. A lackey access that spans two pages gives
/// two `Ref`s.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ref {
    /// The page number: a virtual address `>> PAGE_SHIFT` in a program's
    /// trace, the object id in a page-number trace (which may be any u64,
    /// libCacheSim's ids often being hashes).
    pub page: u64,
    pub kind: RefKind,
}

/// What backs a mapping of a recorded program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapBacking {
    Anon,
    /// A file: its path as recorded, its size then, and the page offset
    /// the mapping starts at.
    File {
        path: String,
        size: u64,
        pgoff: u64,
    },
}

/// An address-space event of a recorded program, in stream order with its
/// references. Arguments and the result are as the program's syscall saw
/// them (`result` is the return value, negative errno on failure).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A mapping that existed before the first traced syscall (the
    /// executable, the loader, the stack, valgrind's preloads), from the
    /// process's maps when tracing started. `prot` as mmap's PROT_*.
    Initial {
        start: u64,
        end: u64,
        prot: u32,
        backing: MapBacking,
    },
    /// The brk base (the start and current end of the heap) at the start.
    BrkBase {
        start: u64,
        end: u64,
    },
    Mmap {
        addr: u64,
        len: u64,
        prot: u32,
        flags: u32,
        fd: i64,
        offset: u64,
        backing: MapBacking,
        result: i64,
    },
    Munmap {
        addr: u64,
        len: u64,
        result: i64,
    },
    Mprotect {
        addr: u64,
        len: u64,
        prot: u32,
        result: i64,
    },
    Mremap {
        old_addr: u64,
        old_len: u64,
        new_len: u64,
        flags: u32,
        new_addr: u64,
        result: i64,
    },
    Brk {
        addr: u64,
        result: i64,
    },
}

/// One record of a trace. An event is boxed: references are nearly every
/// record, and a batch of 16-byte records is what the hot loops read (an
/// unboxed `Event` would make every record 88 bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Ref(Ref),
    Event(Box<Event>),
}

impl Record {
    /// An event record.
    pub fn event(e: Event) -> Record {
        Record::Event(Box::new(e))
    }
}

/// A trace format (`--format`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// valgrind lackey output, with its SYSCALL lines if traced.
    Lackey,
    /// Big-endian u32 page numbers (the LIRS/CLOCK-Pro papers' traces).
    Trc,
    /// libCacheSim's csv reader, with its `-t` parameters.
    Csv(CsvParams),
    /// libCacheSim's oracleGeneral binary records.
    OracleGeneral,
    /// libCacheSim's lcs binary format.
    Lcs,
    /// vmlab's own binary format: references and address-space events.
    Vmlab,
}

impl Format {
    /// The names `--format` takes (csv's parameters go in `--trace-params`).
    pub const NAMES: &'static [&'static str] = &["lackey", "trc", "csv", "oracle_general", "lcs", "vmlab"];

    /// The format named `name`; a csv with `params` (libCacheSim's `-t`
    /// string, e.g. `obj-id-col=2,delimiter=,,has-header=true`).
    pub fn parse(name: &str, params: Option<&str>) -> Result<Format, String> {
        Ok(match name {
            "lackey" => Format::Lackey,
            "trc" => Format::Trc,
            "csv" => Format::Csv(CsvParams::parse(params.unwrap_or(""))?),
            "oracle_general" | "oracleGeneral" => Format::OracleGeneral,
            "lcs" => Format::Lcs,
            "vmlab" => Format::Vmlab,
            other => {
                return Err(format!(
                    "unknown trace format `{other}` (one of: {})",
                    Format::NAMES.join(", ")
                ))
            }
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Format::Lackey => "lackey",
            Format::Trc => "trc",
            Format::Csv(_) => "csv",
            Format::OracleGeneral => "oracle_general",
            Format::Lcs => "lcs",
            Format::Vmlab => "vmlab",
        }
    }
}

/// libCacheSim's csv parameters (`-t "obj-id-col=2,delimiter=,,has-header=true"`):
/// columns count from 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvParams {
    pub obj_id_col: usize,
    pub delimiter: u8,
    pub has_header: bool,
    /// Whether the id column holds numbers (else its text is hashed, as
    /// libCacheSim's `obj-id-is-num=false`).
    pub obj_id_is_num: bool,
}

impl Default for CsvParams {
    fn default() -> CsvParams {
        CsvParams {
            obj_id_col: 1,
            delimiter: b',',
            has_header: false,
            obj_id_is_num: true,
        }
    }
}

impl CsvParams {
    /// Parse libCacheSim's `-t` string. Keys it has that vmlab does not use
    /// (`time-col`, `obj-size-col`, `op-col`, ...) are accepted and ignored.
    pub fn parse(s: &str) -> Result<CsvParams, String> {
        let mut p = CsvParams::default();
        // "delimiter=," is followed by the separator ',' itself: split by
        // hand so that `delimiter=,,has-header=true` reads as libCacheSim does.
        let mut rest = s.trim();
        while !rest.is_empty() {
            let Some(eq) = rest.find('=') else {
                return Err(format!("csv parameter `{rest}`: expected key=value"));
            };
            let key = rest[..eq].trim();
            let after = &rest[eq + 1..];
            let (value, next) = if key == "delimiter" {
                let mut chars = after.chars();
                let d = chars.next().ok_or("csv parameter delimiter: no character given")?;
                let tail = chars.as_str();
                (d.to_string(), tail.strip_prefix(',').unwrap_or(tail))
            } else {
                match after.find(',') {
                    Some(c) => (after[..c].to_string(), &after[c + 1..]),
                    None => (after.to_string(), ""),
                }
            };
            let value = value.as_str();
            let bool_of = |v: &str| match v.trim() {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                other => Err(format!("csv parameter {key}: `{other}` is not true or false")),
            };
            match key {
                "obj-id-col" => {
                    p.obj_id_col = value
                        .trim()
                        .parse()
                        .ok()
                        .filter(|&c: &usize| c >= 1)
                        .ok_or_else(|| format!("csv parameter obj-id-col: `{value}` is not a column (1, 2, ...)"))?
                }
                "delimiter" => {
                    let d = if value == "\\t" { "\t" } else { value };
                    if d.len() != 1 {
                        return Err(format!("csv parameter delimiter: `{value}` is not one byte"));
                    }
                    p.delimiter = d.as_bytes()[0];
                }
                "has-header" => p.has_header = bool_of(value)?,
                "obj-id-is-num" => p.obj_id_is_num = bool_of(value)?,
                "time-col" | "obj-size-col" | "op-col" | "ttl-col" | "next-access-col" | "cnt-col" | "tenant-col"
                | "feature-cols" | "block-size" => {}
                other => return Err(format!("unknown csv parameter `{other}`")),
            }
            rest = next.trim_start();
        }
        Ok(p)
    }
}

/// Where in a file a problem is.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum At {
    /// A line of a text format (from 1).
    Line(u64),
    /// A byte offset of a binary format (after decompression).
    Offset(u64),
    /// The file as a whole.
    File,
}

/// A trace that cannot be read: the file, where, and what was expected.
#[derive(Debug)]
pub struct TraceError {
    pub file: PathBuf,
    pub at: At,
    pub what: String,
}

impl TraceError {
    pub fn new(file: &Path, at: At, what: impl Into<String>) -> TraceError {
        TraceError {
            file: file.to_path_buf(),
            at,
            what: what.into(),
        }
    }

    pub fn io(file: &Path, e: &io::Error) -> TraceError {
        TraceError::new(file, At::File, format!("cannot read: {e}"))
    }
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            At::Line(n) => write!(f, "{}: line {n}: {}", self.file.display(), self.what),
            At::Offset(n) => write!(f, "{}: byte {n}: {}", self.file.display(), self.what),
            At::File => write!(f, "{}: {}", self.file.display(), self.what),
        }
    }
}

impl std::error::Error for TraceError {}

/// A streaming reader of one trace.
pub trait TraceReader {
    /// Clear `out` and fill it with the next records, at most `max`;
    /// an empty `out` is the end of the trace.
    fn read_batch(&mut self, out: &mut Vec<Record>, max: usize) -> Result<(), TraceError>;
}

/// Call `f` on each batch of `reader`'s records until the trace ends: the
/// one loop every pass over a trace runs (the hot loop is `f`'s, over a
/// slice).
pub fn for_each_batch<E: From<TraceError>>(
    reader: &mut dyn TraceReader,
    mut f: impl FnMut(&[Record]) -> Result<(), E>,
) -> Result<(), E> {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        reader.read_batch(&mut batch, BATCH)?;
        if batch.is_empty() {
            return Ok(());
        }
        f(&batch)?;
    }
}

/// The page numbers of a trace's references, in order (its events skipped
/// and counted in `dropped`): for writers that take references only.
pub struct Pages<'a> {
    r: &'a mut dyn TraceReader,
    batch: Vec<Record>,
    at: usize,
    /// Events skipped so far.
    pub dropped: u64,
    failed: bool,
}

impl<'a> Pages<'a> {
    pub fn new(r: &'a mut dyn TraceReader) -> Pages<'a> {
        Pages {
            r,
            batch: Vec::new(),
            at: 0,
            dropped: 0,
            failed: false,
        }
    }
}

impl Iterator for Pages<'_> {
    type Item = Result<u64, TraceError>;

    /// The next reference's page; an error ends the iteration after it.
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.failed {
                return None;
            }
            if self.at == self.batch.len() {
                if let Err(e) = self.r.read_batch(&mut self.batch, BATCH) {
                    self.failed = true;
                    return Some(Err(e));
                }
                self.at = 0;
                if self.batch.is_empty() {
                    return None;
                }
            }
            let rec = &self.batch[self.at];
            self.at += 1;
            match rec {
                Record::Ref(x) => return Some(Ok(x.page)),
                Record::Event(_) => self.dropped += 1,
            }
        }
    }
}

/// Records a batch holds by default (a few hundred KiB of `Record`s).
pub const BATCH: usize = 4096;

/// Compression, by magic number.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// How far into its file a reader is: the bytes read from the file (the
/// compressed bytes, for a compressed trace) of the file's length. Known
/// before the trace's length in references is, so a first pass can show
/// an ETA. Readers buffer ahead, so it runs ahead of the records by a
/// buffer (64 KiB) at most.
#[derive(Clone, Debug)]
pub struct Extent {
    read: Arc<AtomicU64>,
    /// The file's length; `None` for what has none (a pipe, a FIFO).
    len: Option<u64>,
}

impl Extent {
    /// The fraction of the file read, 0 to 1 (1 for an empty file); `None`
    /// when the file has no length to be a fraction of (a pipe).
    pub fn fraction(&self) -> Option<f64> {
        let len = self.len?;
        if len == 0 {
            return Some(1.0);
        }
        Some((self.read.load(Ordering::Relaxed) as f64 / len as f64).min(1.0))
    }
}

/// A reader that adds what it reads to an [`Extent`]'s count.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The file's bytes, decompressed if it is gzip or zstd.
pub fn open_bytes(path: &Path) -> Result<Box<dyn BufRead>, TraceError> {
    open_bytes_counted(path).map(|(r, _)| r)
}

/// [`open_bytes`], and how far into the file the reader is.
fn open_bytes_counted(path: &Path) -> Result<(Box<dyn BufRead>, Extent), TraceError> {
    let f = std::fs::File::open(path).map_err(|e| TraceError::io(path, &e))?;
    let meta = f.metadata().map_err(|e| TraceError::io(path, &e))?;
    let len = meta.is_file().then_some(meta.len());
    let extent = Extent {
        read: Arc::default(),
        len,
    };
    let f = Counting {
        inner: f,
        read: extent.read.clone(),
    };
    let r = decompressed(path, BufReader::with_capacity(1 << 16, f))?;
    Ok((r, extent))
}

/// `r`'s bytes, decompressed if they start as gzip or zstd.
fn decompressed<R: BufRead + 'static>(path: &Path, mut r: R) -> Result<Box<dyn BufRead>, TraceError> {
    let head = r.fill_buf().map_err(|e| TraceError::io(path, &e))?;
    if head.starts_with(&GZIP_MAGIC) {
        Ok(Box::new(BufReader::with_capacity(
            1 << 16,
            flate2::bufread::MultiGzDecoder::new(r),
        )))
    } else if head.starts_with(&ZSTD_MAGIC) {
        let d = zstd::stream::read::Decoder::with_buffer(r)
            .map_err(|e| TraceError::new(path, At::File, format!("not a zstd stream: {e}")))?;
        Ok(Box::new(BufReader::with_capacity(1 << 16, d)))
    } else {
        Ok(Box::new(r))
    }
}

/// Read up to `n` bytes from the start of `r` without consuming them
/// beyond its buffer: `r` must be a fresh `BufReader` of capacity ≥ `n`
/// or the bytes are read into a copy. Returns the bytes and a reader that
/// still yields them first.
pub fn peek(mut r: Box<dyn BufRead>, n: usize, path: &Path) -> Result<(Vec<u8>, Box<dyn BufRead>), TraceError> {
    let mut head = Vec::with_capacity(n);
    (&mut r)
        .take(n as u64)
        .read_to_end(&mut head)
        .map_err(|e| TraceError::io(path, &e))?;
    let again: Box<dyn BufRead> = Box::new(BufReader::new(io::Cursor::new(head.clone()).chain(r)));
    Ok((head, again))
}

/// Open `path` as `format`, or as the format its content shows if `None`.
pub fn open(path: &Path, format: Option<Format>) -> Result<(Format, Box<dyn TraceReader>), TraceError> {
    open_counted(path, format).map(|(f, r, _)| (f, r))
}

/// [`open`], and how far into the file the reader is (for progress).
pub fn open_counted(path: &Path, format: Option<Format>) -> Result<(Format, Box<dyn TraceReader>, Extent), TraceError> {
    let (bytes, extent) = open_bytes_counted(path)?;
    let (head, bytes) = peek(bytes, SNIFF_BYTES, path)?;
    let format = match format {
        Some(f) => f,
        None => sniff(&head).ok_or_else(|| {
            TraceError::new(
                path,
                At::File,
                format!(
                    "matches no trace format (one of: {}); name one with --format",
                    Format::NAMES.join(", ")
                ),
            )
        })?,
    };
    let reader: Box<dyn TraceReader> = match &format {
        Format::Trc => Box::new(trc::TrcReader::new(bytes, path)),
        Format::Lackey => Box::new(lackey::LackeyReader::new(bytes, path)),
        Format::Csv(p) => Box::new(csv::CsvReader::new(bytes, path, p.clone())),
        Format::OracleGeneral => Box::new(oracle_general::OracleGeneralReader::new(bytes, path)),
        Format::Lcs => Box::new(lcs::LcsReader::new(bytes, path)?),
        Format::Vmlab => Box::new(vmlab_fmt::VmlabReader::new(bytes, path)?),
    };
    Ok((format, reader, extent))
}

/// Bytes `sniff` looks at.
pub const SNIFF_BYTES: usize = 4096;

/// The format `head` (a file's first bytes, decompressed) is in, if any
/// format's test accepts it. Binary formats with a magic number first,
/// then text (lackey's line shapes, else a csv), then the binary formats
/// without one, by their record structure.
pub fn sniff(head: &[u8]) -> Option<Format> {
    if head.is_empty() {
        return None;
    }
    if vmlab_fmt::sniff(head) {
        return Some(Format::Vmlab);
    }
    if lcs::sniff(head) {
        return Some(Format::Lcs);
    }
    if let Some(text) = as_text(head) {
        if lackey::sniff(text) {
            return Some(Format::Lackey);
        }
        return csv::sniff(text).map(Format::Csv);
    }
    if oracle_general::sniff(head) {
        return Some(Format::OracleGeneral);
    }
    trc::sniff(head).then_some(Format::Trc)
}

/// `head` as text if it is text: UTF-8 (but for a character the sniff
/// window cut) with no NUL or other control bytes than tab, CR and LF.
fn as_text(head: &[u8]) -> Option<&str> {
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).ok()?,
        Err(_) => return None,
    };
    let binary = text.bytes().any(|b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'));
    (!binary).then_some(text)
}

/// The complete lines of a sniff window: the last is dropped when the
/// window cut it (a window shorter than `SNIFF_BYTES` is the whole file).
fn whole_lines(text: &str) -> impl Iterator<Item = &str> {
    let cut = text.len() >= SNIFF_BYTES && !text.ends_with('\n');
    let mut lines: Vec<&str> = text.lines().collect();
    if cut {
        lines.pop();
    }
    lines.into_iter()
}

/// Fill `buf` from `r`: `Ok(false)` at a clean end of the input (no byte
/// of a record), an error naming `offset` if the input ends inside one.
fn read_record(r: &mut dyn BufRead, buf: &mut [u8], path: &Path, offset: u64, what: &str) -> Result<bool, TraceError> {
    let mut have = 0;
    while have < buf.len() {
        match r.read(&mut buf[have..]) {
            Ok(0) if have == 0 => return Ok(false),
            Ok(0) => {
                return Err(TraceError::new(
                    path,
                    At::Offset(offset),
                    format!("{what} of {} bytes: the file ends after {have} of them", buf.len()),
                ))
            }
            Ok(n) => have += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(TraceError::io(path, &e)),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn og(n: usize) -> Vec<u8> {
        (0..n as u64)
            .flat_map(|i| oracle_general::OgRecord::of_page(i, i % 3, -1).encode())
            .collect()
    }

    #[test]
    fn sniff_takes_each_format_in_its_order() {
        assert_eq!(sniff(b""), None);
        assert_eq!(sniff(b"VMLABTR\x01\x04"), Some(Format::Vmlab));
        assert_eq!(sniff(&lcs::MAGIC.to_le_bytes()), Some(Format::Lcs));
        assert_eq!(
            sniff(b"==1== Lackey\nI  0040a000,3\n L 1ffefff000,8\n"),
            Some(Format::Lackey)
        );
        assert_eq!(sniff(b"12\n13\n12\n"), Some(Format::Csv(CsvParams::default())));
        // oracleGeneral records are whole 4-byte words too: tried before trc.
        assert_eq!(sniff(&og(3)), Some(Format::OracleGeneral));
        // A window cut inside a record is not the whole file.
        assert_eq!(sniff(&og(200)[..SNIFF_BYTES]), Some(Format::OracleGeneral));
        assert_eq!(sniff(&og(3)[..70]), None);
        let trc: Vec<u8> = [0u32, 1, 2, 0, 3, 1].iter().flat_map(|p| p.to_be_bytes()).collect();
        assert_eq!(sniff(&trc), Some(Format::Trc));
        assert_eq!(sniff(b"just some words\nand more words\n"), None);
        assert_eq!(sniff(&[0xff; 64]), None);
    }

    /// The extent counts the file's bytes as the reader takes them, the
    /// compressed ones for a gzip file: short of the whole while batches
    /// remain, all of it at the end.
    #[test]
    fn the_extent_follows_the_file_read() {
        use std::io::Write;
        let pages: Vec<u8> = (0..200_000u32).flat_map(|p| (p % 5000).to_be_bytes()).collect();
        let plain = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(plain.path(), &pages).unwrap();
        let gz = tempfile::NamedTempFile::new().unwrap();
        let mut e = flate2::write::GzEncoder::new(gz.reopen().unwrap(), flate2::Compression::fast());
        e.write_all(&pages).unwrap();
        e.finish().unwrap();
        for f in [&plain, &gz] {
            let (_, mut r, extent) = open_counted(f.path(), Some(Format::Trc)).unwrap();
            let mut seen = vec![extent.fraction().unwrap()];
            let mut refs = 0;
            for_each_batch(&mut *r, |b| {
                refs += b.len();
                seen.push(extent.fraction().unwrap());
                Ok::<(), TraceError>(())
            })
            .unwrap();
            assert_eq!(refs, 200_000);
            assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
            assert!(seen[1] < 0.5, "after one batch of 49: {seen:?}");
            assert_eq!(*seen.last().unwrap(), 1.0);
        }
    }
}
