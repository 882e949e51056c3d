//! libCacheSim's oracleGeneral binary traces: reader, writer, and the
//! next-access computation the writer (and `lcs`'s) needs.
//!
//! Format (libCacheSim `traceReader/customizedReader/oracle/oracleGeneralBin.h`,
//! github.com/1a1a11a/libCacheSim): no header, a sequence of packed
//! little-endian 24-byte records
//!
//! | offset | type | field |
//! |---|---|---|
//! | 0  | u32 | clock_time |
//! | 4  | u64 | obj_id |
//! | 12 | u32 | obj_size |
//! | 16 | i64 | next_access_vtime |
//!
//! `next_access_vtime` is the virtual time of the object's next request,
//! requests counting from 1 (the record at index `i` from 0 has vtime
//! `i + 1`: checked against what libcachesim 0.3.5's converter writes);
//! `-1` (what libCacheSim's converter writes) or `i64::MAX` is "never again".
//! The reader gives `obj_id` as the page (`RefKind::Access`).
//!
//! Owns: the format's decoding and encoding. May call: `super`, `std`,
//! `tempfile` (the writer's spill files).

use super::{read_record, Record, Ref, RefKind, TraceError, TraceReader};
use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bytes of one record.
pub const RECORD: usize = 24;

/// One record as the file has it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct OgRecord {
    pub clock_time: u32,
    pub obj_id: u64,
    pub obj_size: u32,
    pub next_access_vtime: i64,
}

impl OgRecord {
    pub fn decode(b: &[u8; RECORD]) -> OgRecord {
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(w)
        };
        OgRecord {
            clock_time: u32_at(0),
            obj_id: u64_at(4),
            obj_size: u32_at(12),
            next_access_vtime: u64_at(16) as i64,
        }
    }

    /// The record a converter writes for the reference at `index` (from
    /// 0): clock_time its vtime (saturating at u32::MAX), a page's size.
    pub fn of_page(index: u64, page: u64, next_access_vtime: i64) -> OgRecord {
        OgRecord {
            clock_time: u32::try_from(index + 1).unwrap_or(u32::MAX),
            obj_id: page,
            obj_size: PAGE_BYTES,
            next_access_vtime,
        }
    }

    pub fn encode(&self) -> [u8; RECORD] {
        let mut b = [0u8; RECORD];
        b[0..4].copy_from_slice(&self.clock_time.to_le_bytes());
        b[4..12].copy_from_slice(&self.obj_id.to_le_bytes());
        b[12..16].copy_from_slice(&self.obj_size.to_le_bytes());
        b[16..24].copy_from_slice(&self.next_access_vtime.to_le_bytes());
        b
    }
}

pub struct OracleGeneralReader {
    r: Box<dyn BufRead>,
    path: PathBuf,
    offset: u64,
}

impl OracleGeneralReader {
    pub fn new(r: Box<dyn BufRead>, path: &Path) -> OracleGeneralReader {
        OracleGeneralReader {
            r,
            path: path.to_path_buf(),
            offset: 0,
        }
    }

    /// The next record whole, `None` at the end.
    pub fn next_record(&mut self) -> Result<Option<OgRecord>, TraceError> {
        let mut b = [0u8; RECORD];
        if !read_record(&mut *self.r, &mut b, &self.path, self.offset, "an oracleGeneral record")? {
            return Ok(None);
        }
        self.offset += RECORD as u64;
        Ok(Some(OgRecord::decode(&b)))
    }
}

impl TraceReader for OracleGeneralReader {
    fn read_batch(&mut self, out: &mut Vec<Record>, max: usize) -> Result<(), TraceError> {
        out.clear();
        while out.len() < max {
            // Whole records straight from the reader's buffer; one cut by
            // its end (or the file's) goes through `next_record`.
            let buf = loop {
                match self.r.fill_buf() {
                    Ok(b) => break b,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(TraceError::io(&self.path, &e)),
                }
            };
            let whole = (buf.len() / RECORD).min(max - out.len());
            for c in buf[..whole * RECORD].chunks_exact(RECORD) {
                let mut id = [0u8; 8];
                id.copy_from_slice(&c[4..12]);
                out.push(Record::Ref(Ref {
                    page: u64::from_le_bytes(id),
                    kind: RefKind::Access,
                }));
            }
            self.r.consume(whole * RECORD);
            self.offset += (whole * RECORD) as u64;
            if out.len() >= max {
                break;
            }
            match self.next_record()? {
                Some(r) => out.push(Record::Ref(Ref {
                    page: r.obj_id,
                    kind: RefKind::Access,
                })),
                None => break,
            }
        }
        Ok(())
    }
}

/// Whether `head` looks like oracleGeneral records: at least one whole
/// record, the whole file whole records if the window holds all of it,
/// clock times that never go back, sizes from 1 byte to 1 GiB, and each
/// next access "never" or a vtime after the record's own. Random bytes and
/// big-endian page numbers (trc) fail the next-access test at once.
pub fn sniff(head: &[u8]) -> bool {
    let n = head.len() / RECORD;
    if n == 0 || (head.len() < super::SNIFF_BYTES && !head.len().is_multiple_of(RECORD)) {
        return false;
    }
    let mut clock = 0u32;
    for (i, c) in head.chunks_exact(RECORD).enumerate() {
        let mut b = [0u8; RECORD];
        b.copy_from_slice(c);
        let r = OgRecord::decode(&b);
        let vtime = i as i64 + 1;
        let next_ok = r.next_access_vtime == -1
            || r.next_access_vtime == i64::MAX
            || (r.next_access_vtime > vtime && r.next_access_vtime < 1 << 48);
        if r.clock_time < clock || r.obj_size == 0 || r.obj_size > 1 << 30 || !next_ok {
            return false;
        }
        clock = r.clock_time;
    }
    true
}

/// What a converter writes for "never referenced again".
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Never {
    MinusOne,
    Max,
}

/// The summary of a trace that `for_each_with_next` has gone through.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub references: u64,
    pub distinct: u64,
}

/// Ids per block of the backward pass (512 KiB of ids at a time).
const BLOCK: usize = 1 << 16;

/// Call `f(index, page, next_access_vtime)` for every page of `pages` in
/// order, with the vtime (from 1) of the page's next reference, or
/// `never`'s value. The future is needed, so the ids are spilled to a
/// temporary file, which is then read backwards a block at a time with a
/// map of each page's next index: memory ∝ distinct pages, not references.
/// The next-access values go to a second spill file, read forward with
/// the ids in the last pass. `totals` comes before the calls so a header
/// can be written first.
pub fn for_each_with_next(
    pages: &mut dyn Iterator<Item = Result<u64, TraceError>>,
    never: Never,
    on_totals: &mut dyn FnMut(Totals) -> io::Result<()>,
    f: &mut dyn FnMut(u64, u64, i64) -> io::Result<()>,
    spill_err: &dyn Fn(io::Error) -> TraceError,
) -> Result<Totals, TraceError> {
    let ids = tempfile::tempfile().map_err(spill_err)?;
    let mut n: u64 = 0;
    {
        let mut w = BufWriter::with_capacity(1 << 16, &ids);
        for p in pages {
            w.write_all(&p?.to_le_bytes()).map_err(spill_err)?;
            n += 1;
        }
        w.flush().map_err(spill_err)?;
    }
    let nexts = tempfile::tempfile().map_err(spill_err)?;
    let never_v = match never {
        Never::MinusOne => -1,
        Never::Max => i64::MAX,
    };
    let mut next_of: HashMap<u64, u64> = HashMap::new();
    let mut buf = vec![0u8; BLOCK * 8];
    let mut out = vec![0u8; BLOCK * 8];
    let mut end = n;
    while end > 0 {
        let start = end.saturating_sub(BLOCK as u64);
        let len = ((end - start) * 8) as usize;
        ids.read_exact_at(&mut buf[..len], start * 8).map_err(spill_err)?;
        for k in (0..(end - start) as usize).rev() {
            let page = le_u64(&buf[k * 8..k * 8 + 8]);
            let i = start + k as u64;
            let next = next_of.insert(page, i).map_or(never_v, |j| j as i64 + 1);
            out[k * 8..k * 8 + 8].copy_from_slice(&next.to_le_bytes());
        }
        nexts.write_all_at(&out[..len], start * 8).map_err(spill_err)?;
        end = start;
    }
    let totals = Totals {
        references: n,
        distinct: next_of.len() as u64,
    };
    drop(next_of);
    on_totals(totals).map_err(spill_err)?;
    let mut ids_r = BufReader::with_capacity(1 << 16, ids);
    let mut nexts_r = BufReader::with_capacity(1 << 16, nexts);
    ids_r.seek(SeekFrom::Start(0)).map_err(spill_err)?;
    nexts_r.seek(SeekFrom::Start(0)).map_err(spill_err)?;
    let mut a = [0u8; 8];
    let mut b = [0u8; 8];
    for i in 0..n {
        ids_r.read_exact(&mut a).map_err(spill_err)?;
        nexts_r.read_exact(&mut b).map_err(spill_err)?;
        f(i, u64::from_le_bytes(a), i64::from_le_bytes(b)).map_err(spill_err)?;
    }
    Ok(totals)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(b);
    u64::from_le_bytes(w)
}

/// The bytes a page is taken to be.
pub const PAGE_BYTES: u32 = 4096;

/// Write `pages` to `out` as oracleGeneral: clock_time the vtime (from 1,
/// saturating at u32::MAX), size a page (`PAGE_BYTES`), next access as
/// libCacheSim's converter writes it (-1 for never).
pub fn write(
    pages: &mut dyn Iterator<Item = Result<u64, TraceError>>,
    out: &mut dyn Write,
    spill_err: &dyn Fn(io::Error) -> TraceError,
) -> Result<Totals, TraceError> {
    write_sized(pages, out, PAGE_BYTES, spill_err)
}

/// `write` with every object `obj_size` bytes (1: libCacheSim's cache size
/// is then in objects, as vmlab's frames are).
pub fn write_sized(
    pages: &mut dyn Iterator<Item = Result<u64, TraceError>>,
    out: &mut dyn Write,
    obj_size: u32,
    spill_err: &dyn Fn(io::Error) -> TraceError,
) -> Result<Totals, TraceError> {
    let mut w = BufWriter::with_capacity(1 << 16, out);
    let t = for_each_with_next(
        pages,
        Never::MinusOne,
        &mut |_| Ok(()),
        &mut |i, page, next| {
            let mut r = OgRecord::of_page(i, page, next);
            r.obj_size = obj_size;
            w.write_all(&r.encode())
        },
        spill_err,
    )?;
    w.flush().map_err(spill_err)?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::super::At;
    use super::*;
    use std::io::Cursor;

    fn spill(e: io::Error) -> TraceError {
        TraceError::io(Path::new("spill"), &e)
    }

    #[test]
    fn next_access_is_the_vtime_of_the_next_reference_across_blocks() {
        // More than one block, so the map carries over block boundaries.
        let pages: Vec<u64> = (0..(BLOCK as u64 * 2 + 77)).map(|i| (i * 31) % 1000).collect();
        let mut bytes = Vec::new();
        let t = write(&mut pages.iter().map(|&p| Ok(p)), &mut bytes, &spill).unwrap();
        assert_eq!(t.references, pages.len() as u64);
        assert_eq!(t.distinct, 1000);
        let mut r = OracleGeneralReader::new(Box::new(Cursor::new(bytes)), Path::new("t"));
        for (i, &p) in pages.iter().enumerate() {
            let rec = r.next_record().unwrap().unwrap();
            let want = pages[i + 1..]
                .iter()
                .position(|&q| q == p)
                .map_or(-1, |d| (i + 1 + d) as i64 + 1);
            assert_eq!((rec.obj_id, rec.next_access_vtime), (p, want), "record {i}");
        }
        assert_eq!(r.next_record().unwrap(), None);
    }

    #[test]
    fn a_truncated_record_names_its_offset() {
        let mut bytes = OgRecord {
            clock_time: 1,
            obj_id: 5,
            obj_size: 4096,
            next_access_vtime: -1,
        }
        .encode()
        .to_vec();
        bytes.extend([1, 2, 3]);
        let mut r = OracleGeneralReader::new(Box::new(Cursor::new(bytes)), Path::new("t.og"));
        assert!(r.next_record().unwrap().is_some());
        let e = r.next_record().unwrap_err();
        assert_eq!(e.at, At::Offset(24));
        assert!(e.to_string().contains("t.og: byte 24:"), "{e}");
    }
}
