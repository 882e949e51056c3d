//! vmlab's own trace format: compact, binary, holding both references and
//! address-space events (every field of `Event`). Reader and writer; the
//! spec is here and in docs/TRACES.md.
//!
//! ```text
//! file    = magic records*
//! magic   = "VMLABTR" 0x01             8 bytes; the last is the version
//! record  = ref | event
//! ref     = varint((zigzag(page - prev_page) << 3) | kind)      kind 0..=4
//! event   = varint((type << 3) | 7) field*                      type 0..=6
//! ```
//!
//! - `varint` is unsigned LEB128 (7 bits a byte, low first, high bit =
//!   more), at most 10 bytes, of a value below 2^67 (a zigzag u64 shifted
//!   by 3).
//! - `prev_page` is the page of the previous ref of the same stream (0
//!   before its first): instruction fetches (kind 0) are one stream, all
//!   other kinds the other, because a program's code and data pages are far
//!   apart and each moves in small steps (half the bytes of one stream on
//!   a lackey trace of `ls`). The delta is taken mod 2^64 and
//!   zigzag-encoded (`(d << 1) ^ (d >> 63)`) so that small steps either way
//!   are one or two bytes.
//! - kind: 0 Instr, 1 Load, 2 Store, 3 Modify, 4 Access; 5 and 6 are
//!   reserved (an error), 7 marks an event.
//! - Event types and fields, in order (`u` = varint, `i` = varint of the
//!   zigzag i64, `b` = backing: `u` 0 = anon, or 1 then `u` path length,
//!   that many UTF-8 bytes, `u` size, `u` pgoff; prot and flags must fit a u32):
//!   0 Initial (u start, u end, u prot, b); 1 BrkBase (u start, u end);
//!   2 Mmap (u addr, u len, u prot, u flags, i fd, u offset, b, i result);
//!   3 Munmap (u addr, u len, i result); 4 Mprotect (u addr, u len, u prot,
//!   i result); 5 Mremap (u old_addr, u old_len, u new_len, u flags,
//!   u new_addr, i result); 6 Brk (u addr, i result).
//! - The file ends after a whole record; there is no trailer.
//!
//! Owns: the format's encoding and decoding. May call: `super`, `std`.

use super::{At, Event, MapBacking, Record, Ref, RefKind, TraceError, TraceReader};
use std::io::{self, BufRead, ErrorKind, Write};
use std::path::{Path, PathBuf};

pub const MAGIC: &[u8; 8] = b"VMLABTR\x01";

/// Longest path a backing may have (a bound on what a bad file makes us allocate).
const MAX_PATH: u64 = 1 << 16;

/// The kinds by code (`kind_code`'s inverse): a table, since the decoder
/// meets them in no predictable order and a jump table would mispredict.
const KINDS: [RefKind; 5] = [
    RefKind::Instr,
    RefKind::Load,
    RefKind::Store,
    RefKind::Modify,
    RefKind::Access,
];

fn kind_code(k: RefKind) -> u8 {
    match k {
        RefKind::Instr => 0,
        RefKind::Load => 1,
        RefKind::Store => 2,
        RefKind::Modify => 3,
        RefKind::Access => 4,
    }
}

/// The delta stream of a kind: instruction fetches, or data.
fn stream(k: RefKind) -> usize {
    usize::from(k != RefKind::Instr)
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Encodes records; `finish` flushes.
pub struct VmlabWriter<W: Write> {
    w: W,
    /// The last page of each stream (`stream`).
    prev: [u64; 2],
    buf: Vec<u8>,
}

impl<W: Write> VmlabWriter<W> {
    pub fn new(mut w: W) -> io::Result<VmlabWriter<W>> {
        w.write_all(MAGIC)?;
        Ok(VmlabWriter {
            w,
            prev: [0; 2],
            buf: Vec::with_capacity(64),
        })
    }

    fn varint(&mut self, mut v: u128) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.buf.push(b);
                return;
            }
            self.buf.push(b | 0x80);
        }
    }

    fn u(&mut self, v: u64) {
        self.varint(v as u128);
    }

    fn i(&mut self, v: i64) {
        self.varint(zigzag(v) as u128);
    }

    fn backing(&mut self, b: &MapBacking) {
        match b {
            MapBacking::Anon => self.u(0),
            MapBacking::File { path, size, pgoff } => {
                self.u(1);
                self.u(path.len() as u64);
                self.buf.extend_from_slice(path.as_bytes());
                self.u(*size);
                self.u(*pgoff);
            }
        }
    }

    fn event_tag(&mut self, t: u64) {
        self.u((t << 3) | 7);
    }

    pub fn write(&mut self, r: &Record) -> io::Result<()> {
        self.buf.clear();
        match r {
            Record::Ref(Ref { page, kind }) => {
                let prev = &mut self.prev[stream(*kind)];
                let d = zigzag(page.wrapping_sub(*prev) as i64);
                *prev = *page;
                self.varint(((d as u128) << 3) | kind_code(*kind) as u128);
            }
            Record::Event(e) => match &**e {
                Event::Initial {
                    start,
                    end,
                    prot,
                    backing,
                } => {
                    self.event_tag(0);
                    self.u(*start);
                    self.u(*end);
                    self.u(*prot as u64);
                    self.backing(backing);
                }
                Event::BrkBase { start, end } => {
                    self.event_tag(1);
                    self.u(*start);
                    self.u(*end);
                }
                Event::Mmap {
                    addr,
                    len,
                    prot,
                    flags,
                    fd,
                    offset,
                    backing,
                    result,
                } => {
                    self.event_tag(2);
                    self.u(*addr);
                    self.u(*len);
                    self.u(*prot as u64);
                    self.u(*flags as u64);
                    self.i(*fd);
                    self.u(*offset);
                    self.backing(backing);
                    self.i(*result);
                }
                Event::Munmap { addr, len, result } => {
                    self.event_tag(3);
                    self.u(*addr);
                    self.u(*len);
                    self.i(*result);
                }
                Event::Mprotect {
                    addr,
                    len,
                    prot,
                    result,
                } => {
                    self.event_tag(4);
                    self.u(*addr);
                    self.u(*len);
                    self.u(*prot as u64);
                    self.i(*result);
                }
                Event::Mremap {
                    old_addr,
                    old_len,
                    new_len,
                    flags,
                    new_addr,
                    result,
                } => {
                    self.event_tag(5);
                    self.u(*old_addr);
                    self.u(*old_len);
                    self.u(*new_len);
                    self.u(*flags as u64);
                    self.u(*new_addr);
                    self.i(*result);
                }
                Event::Brk { addr, result } => {
                    self.event_tag(6);
                    self.u(*addr);
                    self.i(*result);
                }
            },
        }
        self.w.write_all(&self.buf)
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.w.flush()?;
        Ok(self.w)
    }
}

pub struct VmlabReader {
    r: Box<dyn BufRead>,
    path: PathBuf,
    prev: [u64; 2],
    /// Bytes consumed, and where the record being decoded began.
    offset: u64,
    start: u64,
}

impl VmlabReader {
    pub fn new(mut r: Box<dyn BufRead>, path: &Path) -> Result<VmlabReader, TraceError> {
        let mut m = [0u8; 8];
        let whole = super::read_record(&mut *r, &mut m, path, 0, "the vmlab magic")?;
        if !whole || m[..7] != MAGIC[..7] {
            return Err(TraceError::new(path, At::Offset(0), "the vmlab magic \"VMLABTR\""));
        }
        if m[7] != MAGIC[7] {
            return Err(TraceError::new(
                path,
                At::Offset(7),
                format!("vmlab trace version 1, not {}", m[7]),
            ));
        }
        Ok(VmlabReader {
            r,
            path: path.to_path_buf(),
            prev: [0; 2],
            offset: 8,
            start: 8,
        })
    }

    fn err(&self, what: impl Into<String>) -> TraceError {
        TraceError::new(&self.path, At::Offset(self.start), what)
    }

    /// One byte; `None` at the end of the input.
    fn byte(&mut self) -> Result<Option<u8>, TraceError> {
        loop {
            let buf = match self.r.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(TraceError::io(&self.path, &e)),
            };
            let Some(&b) = buf.first() else { return Ok(None) };
            self.r.consume(1);
            self.offset += 1;
            return Ok(Some(b));
        }
    }

    fn need(&mut self, what: &str) -> Result<u8, TraceError> {
        self.byte()?
            .ok_or_else(|| self.err(format!("{what}: the file ends inside the record")))
    }

    /// A varint whose first byte is `first`.
    fn varint_from(&mut self, first: u8, what: &str) -> Result<u128, TraceError> {
        let mut v = (first & 0x7f) as u128;
        let mut b = first;
        let mut shift = 7;
        while b & 0x80 != 0 {
            if shift >= 70 {
                return Err(self.err(format!("{what}: a varint of at most 10 bytes")));
            }
            b = self.need(what)?;
            v |= ((b & 0x7f) as u128) << shift;
            shift += 7;
        }
        if v >> 67 != 0 {
            return Err(self.err(format!("{what}: a varint below 2^67")));
        }
        Ok(v)
    }

    fn u(&mut self, what: &str) -> Result<u64, TraceError> {
        let first = self.need(what)?;
        let v = self.varint_from(first, what)?;
        u64::try_from(v).map_err(|_| self.err(format!("{what}: a value below 2^64")))
    }

    fn u32(&mut self, what: &str) -> Result<u32, TraceError> {
        let v = self.u(what)?;
        u32::try_from(v).map_err(|_| self.err(format!("{what}: a value below 2^32, not {v}")))
    }

    fn i(&mut self, what: &str) -> Result<i64, TraceError> {
        Ok(unzigzag(self.u(what)?))
    }

    fn backing(&mut self) -> Result<MapBacking, TraceError> {
        match self.u("backing")? {
            0 => Ok(MapBacking::Anon),
            1 => {
                let n = self.u("backing path length")?;
                if n > MAX_PATH {
                    return Err(self.err(format!("a backing path of at most {MAX_PATH} bytes, not {n}")));
                }
                let mut b = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    b.push(self.need("backing path")?);
                }
                let path = String::from_utf8(b).map_err(|_| self.err("a backing path in UTF-8"))?;
                Ok(MapBacking::File {
                    path,
                    size: self.u("backing size")?,
                    pgoff: self.u("backing pgoff")?,
                })
            }
            other => Err(self.err(format!("backing 0 (anon) or 1 (file), not {other}"))),
        }
    }

    /// The fast path of `read_batch`: decode references straight from the
    /// reader's buffer while a whole varint (at most 10 bytes) is in it,
    /// stopping before anything else (an event, a bad record), which
    /// `record` then reads. Decodes exactly as `record` does.
    fn refs_from_buffer(&mut self, out: &mut Vec<Record>, max: usize) -> Result<(), TraceError> {
        let buf = loop {
            match self.r.fill_buf() {
                Ok(b) => break b,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(TraceError::io(&self.path, &e)),
            }
        };
        let [mut code_page, mut data_page] = self.prev;
        let mut i = 0;
        let room = max.saturating_sub(out.len());
        out.reserve(room);
        let end = out.len() + room;
        while out.len() < end && buf.len() - i >= 10 {
            // One or two bytes (a step of less than 2^10 pages) is almost
            // every reference; longer varints up to 9 bytes fit a u64, and
            // a 10-byte one (a delta of 2^59 or more either way) is left to
            // `record`.
            let b0 = buf[i];
            let (v, n) = if b0 < 0x80 {
                (b0 as u64, 1)
            } else if buf[i + 1] < 0x80 {
                ((b0 & 0x7f) as u64 | (buf[i + 1] as u64) << 7, 2)
            } else {
                let (mut v, mut n) = (0u64, 0);
                while n < 9 && buf[i + n] & 0x80 != 0 {
                    v |= ((buf[i + n] & 0x7f) as u64) << (7 * n);
                    n += 1;
                }
                if n == 9 {
                    break;
                }
                (v | (buf[i + n] as u64) << (7 * n), n + 1)
            };
            let Some(&kind) = KINDS.get((v & 7) as usize) else {
                break;
            };
            // The two streams' pages in locals, chosen by select: kept in
            // registers, where an indexed array went through the stack.
            let data = stream(kind) == 1;
            let page = if data { data_page } else { code_page }.wrapping_add(unzigzag(v >> 3) as u64);
            if data {
                data_page = page;
            } else {
                code_page = page;
            }
            out.push(Record::Ref(Ref { page, kind }));
            i += n;
        }
        self.prev = [code_page, data_page];
        self.r.consume(i);
        self.offset += i as u64;
        Ok(())
    }

    fn record(&mut self) -> Result<Option<Record>, TraceError> {
        self.start = self.offset;
        let Some(first) = self.byte()? else { return Ok(None) };
        let v = self.varint_from(first, "a record")?;
        let low = (v & 7) as u8;
        let kind = match KINDS.get(low as usize) {
            Some(&k) => k,
            None if low == 7 => return self.event((v >> 3) as u64).map(|e| Some(Record::event(e))),
            None => return Err(self.err(format!("a reference kind 0 to 4 or an event (7), not {low}"))),
        };
        let d = u64::try_from(v >> 3).map_err(|_| self.err("a page delta below 2^64"))?;
        let prev = &mut self.prev[stream(kind)];
        let page = prev.wrapping_add(unzigzag(d) as u64);
        *prev = page;
        Ok(Some(Record::Ref(Ref { page, kind })))
    }

    fn event(&mut self, t: u64) -> Result<Event, TraceError> {
        Ok(match t {
            0 => Event::Initial {
                start: self.u("Initial start")?,
                end: self.u("Initial end")?,
                prot: self.u32("Initial prot")?,
                backing: self.backing()?,
            },
            1 => Event::BrkBase {
                start: self.u("BrkBase start")?,
                end: self.u("BrkBase end")?,
            },
            2 => Event::Mmap {
                addr: self.u("Mmap addr")?,
                len: self.u("Mmap len")?,
                prot: self.u32("Mmap prot")?,
                flags: self.u32("Mmap flags")?,
                fd: self.i("Mmap fd")?,
                offset: self.u("Mmap offset")?,
                backing: self.backing()?,
                result: self.i("Mmap result")?,
            },
            3 => Event::Munmap {
                addr: self.u("Munmap addr")?,
                len: self.u("Munmap len")?,
                result: self.i("Munmap result")?,
            },
            4 => Event::Mprotect {
                addr: self.u("Mprotect addr")?,
                len: self.u("Mprotect len")?,
                prot: self.u32("Mprotect prot")?,
                result: self.i("Mprotect result")?,
            },
            5 => Event::Mremap {
                old_addr: self.u("Mremap old_addr")?,
                old_len: self.u("Mremap old_len")?,
                new_len: self.u("Mremap new_len")?,
                flags: self.u32("Mremap flags")?,
                new_addr: self.u("Mremap new_addr")?,
                result: self.i("Mremap result")?,
            },
            6 => Event::Brk {
                addr: self.u("Brk addr")?,
                result: self.i("Brk result")?,
            },
            other => return Err(self.err(format!("an event type 0 to 6, not {other}"))),
        })
    }
}

impl TraceReader for VmlabReader {
    fn read_batch(&mut self, out: &mut Vec<Record>, max: usize) -> Result<(), TraceError> {
        out.clear();
        while out.len() < max {
            self.refs_from_buffer(out, max)?;
            if out.len() >= max {
                break;
            }
            // An event, a record cut by the buffer's end, or a bad one:
            // byte by byte (`record` says what is wrong, and where).
            match self.record()? {
                Some(r) => out.push(r),
                None => break,
            }
        }
        Ok(())
    }
}

pub fn sniff(head: &[u8]) -> bool {
    head.starts_with(&MAGIC[..7])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Cursor;

    fn read_all(bytes: Vec<u8>) -> Result<Vec<Record>, TraceError> {
        let mut r = VmlabReader::new(Box::new(Cursor::new(bytes)), Path::new("t.vmlab"))?;
        let mut all = Vec::new();
        let mut out = Vec::new();
        loop {
            r.read_batch(&mut out, 7)?;
            if out.is_empty() {
                return Ok(all);
            }
            all.append(&mut out);
        }
    }

    fn backing() -> impl Strategy<Value = MapBacking> {
        prop_oneof![
            Just(MapBacking::Anon),
            ("[a-z/é.]{0,20}", any::<u64>(), any::<u64>()).prop_map(|(path, size, pgoff)| MapBacking::File {
                path,
                size,
                pgoff
            }),
        ]
    }

    fn record() -> impl Strategy<Value = Record> {
        let kind = prop_oneof![
            Just(RefKind::Instr),
            Just(RefKind::Load),
            Just(RefKind::Store),
            Just(RefKind::Modify),
            Just(RefKind::Access)
        ];
        let page = prop_oneof![0u64..64, any::<u64>()];
        let r = (page, kind).prop_map(|(page, kind)| Record::Ref(Ref { page, kind }));
        let e = prop_oneof![
            (any::<u64>(), any::<u64>(), any::<u32>(), backing()).prop_map(|(start, end, prot, backing)| {
                Event::Initial {
                    start,
                    end,
                    prot,
                    backing,
                }
            }),
            (any::<u64>(), any::<u64>()).prop_map(|(start, end)| Event::BrkBase { start, end }),
            (
                (any::<u64>(), any::<u64>(), any::<u32>(), any::<u32>()),
                (any::<i64>(), any::<u64>(), backing(), any::<i64>())
            )
                .prop_map(
                    |((addr, len, prot, flags), (fd, offset, backing, result))| Event::Mmap {
                        addr,
                        len,
                        prot,
                        flags,
                        fd,
                        offset,
                        backing,
                        result
                    }
                ),
            (any::<u64>(), any::<u64>(), any::<i64>()).prop_map(|(addr, len, result)| Event::Munmap {
                addr,
                len,
                result
            }),
            (any::<u64>(), any::<u64>(), any::<u32>(), any::<i64>()).prop_map(|(addr, len, prot, result)| {
                Event::Mprotect {
                    addr,
                    len,
                    prot,
                    result,
                }
            }),
            (
                any::<u64>(),
                any::<u64>(),
                any::<u64>(),
                any::<u32>(),
                any::<u64>(),
                any::<i64>()
            )
                .prop_map(|(old_addr, old_len, new_len, flags, new_addr, result)| Event::Mremap {
                    old_addr,
                    old_len,
                    new_len,
                    flags,
                    new_addr,
                    result
                }),
            (any::<u64>(), any::<i64>()).prop_map(|(addr, result)| Event::Brk { addr, result }),
        ]
        .prop_map(Record::event);
        prop_oneof![3 => r, 1 => e]
    }

    proptest! {
        #[test]
        fn records_round_trip(recs in proptest::collection::vec(record(), 0..200)) {
            let mut w = VmlabWriter::new(Vec::new()).unwrap();
            for r in &recs {
                w.write(r).unwrap();
            }
            let bytes = w.finish().unwrap();
            prop_assert!(sniff(&bytes));
            prop_assert_eq!(read_all(bytes.clone()).unwrap(), recs.clone());
            // Every cut inside the last record is an error at its start, not a short read.
            if let Some(last) = recs.last() {
                let mut w = VmlabWriter::new(Vec::new()).unwrap();
                for r in &recs[..recs.len() - 1] {
                    w.write(r).unwrap();
                }
                let before = w.finish().unwrap().len();
                let _ = last;
                for cut in before + 1..bytes.len() {
                    let e = read_all(bytes[..cut].to_vec()).unwrap_err();
                    prop_assert_eq!(e.at, At::Offset(before as u64));
                }
            }
        }
    }

    #[test]
    fn code_and_data_pages_are_deltas_of_their_own_streams() {
        let mut w = VmlabWriter::new(Vec::new()).unwrap();
        for (page, kind) in [
            (0x400, RefKind::Instr),
            (0x1ff_efff, RefKind::Load),
            (0x401, RefKind::Instr),
            (0x1ff_effe, RefKind::Store),
        ] {
            w.write(&Record::Ref(Ref { page, kind })).unwrap();
        }
        let b = w.finish().unwrap();
        // The first of each stream is far from 0; the second one byte.
        assert_eq!(b[b.len() - 1], (zigzag(-1) << 3) as u8 | 2);
        assert_eq!(read_all(b).unwrap().len(), 4);
    }

    #[test]
    fn near_pages_take_one_byte() {
        let mut w = VmlabWriter::new(Vec::new()).unwrap();
        for p in [0u64, 1, 2, 1, 0] {
            w.write(&Record::Ref(Ref {
                page: p,
                kind: RefKind::Load,
            }))
            .unwrap();
        }
        assert_eq!(w.finish().unwrap().len(), 8 + 5);
    }

    #[test]
    fn a_reserved_kind_is_an_error_naming_its_offset() {
        let mut bytes = MAGIC.to_vec();
        bytes.extend([0x0c, 0x05]);
        let e = read_all(bytes).unwrap_err();
        assert_eq!(e.at, At::Offset(9));
        assert!(e.to_string().contains("not 5"), "{e}");
    }
}
