//! The page-reference traces of the LIRS and CLOCK-Pro papers
//! (`../shared/traces/*.trc.bin.gz`, as cache2k-benchmark redistributes
//! them): a sequence of big-endian u32 page numbers, one per reference,
//! nothing else. Page numbers are object ids: `RefKind::Access`.

use super::{At, Record, Ref, RefKind, TraceError, TraceReader};
use std::io::{BufRead, ErrorKind};
use std::path::{Path, PathBuf};

pub struct TrcReader {
    r: Box<dyn BufRead>,
    path: PathBuf,
    /// Bytes consumed so far (for the offset of a truncated record).
    offset: u64,
}

impl TrcReader {
    pub fn new(r: Box<dyn BufRead>, path: &Path) -> TrcReader {
        TrcReader {
            r,
            path: path.to_path_buf(),
            offset: 0,
        }
    }
}

impl TraceReader for TrcReader {
    fn read_batch(&mut self, out: &mut Vec<Record>, max: usize) -> Result<(), TraceError> {
        out.clear();
        let mut rec = [0u8; 4];
        let mut have = 0;
        while out.len() < max {
            let buf = match self.r.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(TraceError::io(&self.path, &e)),
            };
            if buf.is_empty() {
                if have != 0 {
                    return Err(TraceError::new(
                        &self.path,
                        At::Offset(self.offset - have as u64),
                        format!("a trc trace is whole 4-byte page numbers: {have} bytes left over at the end"),
                    ));
                }
                break;
            }
            let mut used = 0;
            // A record split across two buffers is put together in `rec`.
            while have != 0 && used < buf.len() {
                rec[have] = buf[used];
                have += 1;
                used += 1;
                if have == 4 {
                    out.push(page(rec));
                    have = 0;
                }
            }
            let room = max - out.len();
            let whole = ((buf.len() - used) / 4).min(room);
            for c in buf[used..used + whole * 4].chunks_exact(4) {
                out.push(page([c[0], c[1], c[2], c[3]]));
            }
            used += whole * 4;
            if out.len() < max {
                let tail = buf.len() - used;
                if tail < 4 {
                    rec[..tail].copy_from_slice(&buf[used..]);
                    have = tail;
                    used = buf.len();
                }
            }
            self.r.consume(used);
            self.offset += used as u64;
        }
        Ok(())
    }
}

fn page(b: [u8; 4]) -> Record {
    Record::Ref(Ref {
        page: u32::from_be_bytes(b) as u64,
        kind: RefKind::Access,
    })
}

/// Whether `head` can be a trc trace's start: whole 4-byte records (a head
/// shorter than the sniff window is the whole file) of binary, not text.
pub fn sniff(head: &[u8]) -> bool {
    head.len().is_multiple_of(4) && head.contains(&0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Cursor};

    fn read_all(bytes: Vec<u8>, cap: usize, max: usize) -> Result<Vec<u64>, TraceError> {
        let r: Box<dyn BufRead> = Box::new(BufReader::with_capacity(cap, Cursor::new(bytes)));
        let mut t = TrcReader::new(r, Path::new("t.trc"));
        let mut out = Vec::new();
        let mut pages = Vec::new();
        loop {
            t.read_batch(&mut out, max)?;
            if out.is_empty() {
                return Ok(pages);
            }
            pages.extend(out.iter().map(|r| match r {
                Record::Ref(r) => r.page,
                Record::Event(_) => unreachable!("trc has no events"),
            }));
        }
    }

    #[test]
    fn records_split_across_buffers_and_batches_read_whole() {
        let want: Vec<u64> = (0..1000u64).map(|i| i * 7919 % 65_537).collect();
        let bytes: Vec<u8> = want.iter().flat_map(|&p| (p as u32).to_be_bytes()).collect();
        // Buffer sizes that split records (3, 5, 7) and batch sizes that end mid-buffer.
        for cap in [3, 5, 7, 64, 4096] {
            for max in [1, 3, 100, 4096] {
                assert_eq!(read_all(bytes.clone(), cap, max).unwrap(), want, "cap {cap} max {max}");
            }
        }
    }

    #[test]
    fn a_truncated_record_is_an_error_naming_its_offset() {
        let mut bytes: Vec<u8> = [1u32, 2, 3].iter().flat_map(|p| p.to_be_bytes()).collect();
        bytes.extend([0, 0]);
        let e = read_all(bytes, 5, 10).unwrap_err();
        assert_eq!(e.at, At::Offset(12));
        assert!(e.to_string().contains("t.trc: byte 12:"), "{e}");
    }
}
