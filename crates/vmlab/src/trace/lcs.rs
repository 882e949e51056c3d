//! libCacheSim's lcs binary traces: reader of versions 1 to 8, writer of v1.
//!
//! Format (libCacheSim `libCacheSim/traceReader/generalReader/lcs.h` and
//! `lcs.c`, github.com/1a1a11a/libCacheSim, as libcachesim 0.3.5 writes it;
//! an older layout with a 1024-byte self-describing header is not read),
//! all little-endian and packed:
//!
//! Header, 8192 bytes:
//!
//! | offset | type | field |
//! |---|---|---|
//! | 0    | u64 | start magic `0x123456789abcdef0` |
//! | 8    | u64 | version (1..=8: the record layout) |
//! | 16   | 8000 bytes | trace stat: i64 stat version, n_req, n_obj, n_req_byte, n_obj_byte, start_timestamp, end_timestamp, n_read, n_write, n_delete, then size/popularity/tenant/ttl summaries and padding |
//! | 8016 | 21 × u64 | unused |
//! | 8184 | u64 | end magic `0x123456789abcdef0` |
//!
//! Records (every version starts u32 clock_time, u64 obj_id at offset 4):
//!
//! | version | bytes | fields after obj_id |
//! |---|---|---|
//! | 1 | 24 | u32 obj_size, i64 next_access_vtime (= oracleGeneral) |
//! | 2 | 28 | u32 obj_size, u32 op:8 + tenant:24, i64 next_access_vtime |
//! | 3 | 36 | i64 obj_size, u32 op:8 + tenant:24, u32 ttl, i64 next_access_vtime |
//! | 4..=8 | 40, 44, 52, 68, 100 | v3, then 1, 2, 4, 8, 16 u32 features |
//!
//! next_access_vtime counts requests from 1; libCacheSim's lcs writer
//! puts `i64::MAX` for "never again" (its oracleGeneral writer -1). The
//! reader gives obj_id as the page and checks that the file holds the
//! header's n_req records.
//!
//! Owns: the format's decoding and encoding. May call: `super`,
//! `oracle_general` (next access), `std`.

use super::oracle_general::{self, Never, OgRecord, Totals, PAGE_BYTES};
use super::{read_record, At, Record, Ref, RefKind, TraceError, TraceReader};
use std::io::{self, BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

pub const MAGIC: u64 = 0x1234_5678_9abc_def0;
pub const HEADER: usize = 8192;

/// Record bytes of each version, index = version.
const RECORD_BYTES: [usize; 9] = [0, 24, 28, 36, 40, 44, 52, 68, 100];

pub struct LcsReader {
    r: Box<dyn BufRead>,
    path: PathBuf,
    pub version: u64,
    /// The header's request and object counts.
    pub n_req: i64,
    pub n_obj: i64,
    record: usize,
    offset: u64,
    read: u64,
}

fn le_u64(b: &[u8], o: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(w)
}

impl LcsReader {
    pub fn new(mut r: Box<dyn BufRead>, path: &Path) -> Result<LcsReader, TraceError> {
        let mut h = vec![0u8; HEADER];
        let whole = read_record(&mut *r, &mut h, path, 0, "an lcs header")?;
        if !whole {
            return Err(TraceError::new(
                path,
                At::Offset(0),
                "an lcs header of 8192 bytes: the file is empty",
            ));
        }
        if le_u64(&h, 0) != MAGIC {
            return Err(TraceError::new(
                path,
                At::Offset(0),
                "the lcs start magic 0x123456789abcdef0",
            ));
        }
        if le_u64(&h, HEADER - 8) != MAGIC {
            return Err(TraceError::new(
                path,
                At::Offset(HEADER as u64 - 8),
                "the lcs end magic 0x123456789abcdef0",
            ));
        }
        let version = le_u64(&h, 8);
        let record = match RECORD_BYTES.get(version as usize) {
            Some(&b) if b != 0 => b,
            _ => {
                return Err(TraceError::new(
                    path,
                    At::Offset(8),
                    format!("an lcs version from 1 to 8, not {version}"),
                ))
            }
        };
        let n_req = le_u64(&h, 24) as i64;
        let n_obj = le_u64(&h, 32) as i64;
        if n_req < 0 || n_obj < 0 {
            return Err(TraceError::new(
                path,
                At::Offset(24),
                format!("non-negative request and object counts, not {n_req} and {n_obj}"),
            ));
        }
        Ok(LcsReader {
            r,
            path: path.to_path_buf(),
            version,
            n_req,
            n_obj,
            record,
            offset: HEADER as u64,
            read: 0,
        })
    }
}

impl TraceReader for LcsReader {
    fn read_batch(&mut self, out: &mut Vec<Record>, max: usize) -> Result<(), TraceError> {
        out.clear();
        let mut b = [0u8; 100];
        while out.len() < max {
            let rec = &mut b[..self.record];
            let what = format!("an lcs v{} record", self.version);
            if !read_record(&mut *self.r, rec, &self.path, self.offset, &what)? {
                if self.read != self.n_req as u64 {
                    return Err(TraceError::new(
                        &self.path,
                        At::Offset(self.offset),
                        format!("{} records as the header says, found {}", self.n_req, self.read),
                    ));
                }
                break;
            }
            self.offset += self.record as u64;
            self.read += 1;
            out.push(Record::Ref(Ref {
                page: le_u64(rec, 4),
                kind: RefKind::Access,
            }));
        }
        Ok(())
    }
}

pub fn sniff(head: &[u8]) -> bool {
    head.len() >= 8 && le_u64(head, 0) == MAGIC
}

/// Write `pages` to `out` as lcs v1 (records as oracleGeneral's, with
/// `i64::MAX` for never, as libCacheSim's lcs writer has it). The stat
/// gets n_req, n_obj, their bytes (a page each), the timestamps (the
/// vtimes) and the object size range; the rest is zero, which libCacheSim
/// reads as "not computed".
pub fn write_v1(
    pages: &mut dyn Iterator<Item = Result<u64, TraceError>>,
    out: &mut dyn Write,
    spill_err: &dyn Fn(io::Error) -> TraceError,
) -> Result<Totals, TraceError> {
    let w = std::cell::RefCell::new(BufWriter::with_capacity(1 << 16, out));
    let t = oracle_general::for_each_with_next(
        pages,
        Never::Max,
        &mut |t| w.borrow_mut().write_all(&header_v1(t)),
        &mut |i, page, next| w.borrow_mut().write_all(&OgRecord::of_page(i, page, next).encode()),
        spill_err,
    )?;
    w.into_inner().flush().map_err(spill_err)?;
    Ok(t)
}

fn header_v1(t: Totals) -> Vec<u8> {
    let mut h = vec![0u8; HEADER];
    let mut put = |o: usize, v: u64| h[o..o + 8].copy_from_slice(&v.to_le_bytes());
    let page = PAGE_BYTES as u64;
    put(0, MAGIC);
    put(8, 1);
    put(16, 1); // the stat's version
    put(24, t.references);
    put(32, t.distinct);
    put(40, t.references * page);
    put(48, t.distinct * page);
    put(56, u64::from(t.references > 0)); // start_timestamp: the first vtime
    put(64, t.references); // end_timestamp
    put(96, page); // smallest_obj_size
    put(104, page); // largest_obj_size
    put(HEADER - 8, MAGIC);
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn spill(e: io::Error) -> TraceError {
        TraceError::io(Path::new("spill"), &e)
    }

    #[test]
    fn v1_written_reads_back_and_a_short_file_is_an_error() {
        let pages = [3u64, 9, 3, 1 << 40];
        let mut bytes = Vec::new();
        write_v1(&mut pages.iter().map(|&p| Ok(p)), &mut bytes, &spill).unwrap();
        assert_eq!(bytes.len(), HEADER + 4 * 24);
        assert!(sniff(&bytes));
        let mut r = LcsReader::new(Box::new(Cursor::new(bytes.clone())), Path::new("t.lcs")).unwrap();
        assert_eq!((r.version, r.n_req, r.n_obj), (1, 4, 3));
        let mut out = Vec::new();
        r.read_batch(&mut out, 10).unwrap();
        let got: Vec<u64> = out
            .iter()
            .filter_map(|r| match r {
                Record::Ref(r) => Some(r.page),
                Record::Event(_) => None,
            })
            .collect();
        assert_eq!(got, pages);
        bytes.truncate(HEADER + 3 * 24);
        let mut r = LcsReader::new(Box::new(Cursor::new(bytes)), Path::new("t.lcs")).unwrap();
        let e = r.read_batch(&mut out, 10).unwrap_err();
        assert!(
            e.to_string()
                .contains("t.lcs: byte 8264: 4 records as the header says, found 3"),
            "{e}"
        );
    }
}
