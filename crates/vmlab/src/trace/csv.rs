//! Page-number traces as text: libCacheSim's csv reader semantics, with
//! its `-t` parameters (`CsvParams`: obj-id-col from 1, delimiter,
//! has-header, obj-id-is-num). A one-column csv is libCacheSim's plain
//! text trace too.
//!
//! Spec: libCacheSim `libCacheSim/traceReader/generalReader/csv.c`
//! (github.com/1a1a11a/libCacheSim). A line is split at the delimiter; a
//! field in double quotes has them removed (`""` inside is one `"`); the
//! id column's text, trimmed of blanks, is the object id. Empty lines are
//! skipped, a header line (`has-header=true`) too.
//!
//! - `obj-id-is-num=true`: the field must be a decimal u64, else an error
//!   naming the line and the column.
//! - `obj-id-is-num=false`: the id is the 64-bit FNV-1a hash of the
//!   field's bytes. libCacheSim hashes with its own function, so its ids
//!   differ from these; only equality of ids (the reference pattern) is
//!   the same.
//!
//! Owns: the csv decoding and the csv sniff. May call: `super`, `std`.

use super::{At, CsvParams, Record, Ref, RefKind, TraceError, TraceReader};
use std::io::BufRead;
use std::path::{Path, PathBuf};

pub struct CsvReader {
    r: Box<dyn BufRead>,
    path: PathBuf,
    p: CsvParams,
    line_no: u64,
    line: Vec<u8>,
}

impl CsvReader {
    pub fn new(r: Box<dyn BufRead>, path: &Path, p: CsvParams) -> CsvReader {
        CsvReader {
            r,
            path: path.to_path_buf(),
            p,
            line_no: 0,
            line: Vec::new(),
        }
    }
}

/// FNV-1a, 64 bits.
pub fn fnv1a(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &c in b {
        h ^= c as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The `col`th field (from 0) of `line`, quotes removed.
fn field(line: &[u8], delim: u8, col: usize) -> Option<Vec<u8>> {
    let mut i = 0;
    let mut n = 0;
    loop {
        let mut f = Vec::new();
        if line.get(i) == Some(&b'"') {
            i += 1;
            while i < line.len() {
                if line[i] == b'"' {
                    if line.get(i + 1) == Some(&b'"') {
                        f.push(b'"');
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                f.push(line[i]);
                i += 1;
            }
            while i < line.len() && line[i] != delim {
                i += 1;
            }
        } else {
            while i < line.len() && line[i] != delim {
                f.push(line[i]);
                i += 1;
            }
        }
        if n == col {
            return Some(f);
        }
        if i >= line.len() {
            return None;
        }
        i += 1;
        n += 1;
    }
}

impl TraceReader for CsvReader {
    fn read_batch(&mut self, out: &mut Vec<Record>, max: usize) -> Result<(), TraceError> {
        out.clear();
        while out.len() < max {
            self.line.clear();
            let n = self
                .r
                .read_until(b'\n', &mut self.line)
                .map_err(|e| TraceError::io(&self.path, &e))?;
            if n == 0 {
                break;
            }
            self.line_no += 1;
            while matches!(self.line.last(), Some(b'\n' | b'\r')) {
                self.line.pop();
            }
            if (self.line_no == 1 && self.p.has_header) || self.line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let col = self.p.obj_id_col;
            if col == 0 {
                return Err(TraceError::new(
                    &self.path,
                    At::File,
                    "obj-id-col counts columns from 1, not 0",
                ));
            }
            let f = field(&self.line, self.p.delimiter, col - 1).ok_or_else(|| {
                TraceError::new(
                    &self.path,
                    At::Line(self.line_no),
                    format!(
                        "an object id in column {col}: the line has fewer columns (delimiter {:?})",
                        self.p.delimiter as char
                    ),
                )
            })?;
            let text = String::from_utf8_lossy(&f);
            let text = text.trim();
            let page = if self.p.obj_id_is_num {
                text.parse::<u64>().map_err(|_| {
                    TraceError::new(
                        &self.path,
                        At::Line(self.line_no),
                        format!("column {col}: a decimal object id (u64), not `{text}`"),
                    )
                })?
            } else {
                fnv1a(text.as_bytes())
            };
            out.push(Record::Ref(Ref {
                page,
                kind: RefKind::Access,
            }));
        }
        Ok(())
    }
}

/// Column names taken for the object id when a header names them.
const ID_NAMES: &[&str] = &[
    "obj_id", "obj-id", "objid", "id", "key", "page", "block", "lba", "addr", "address",
];

/// The csv parameters `text` fits, if it is a csv of numbers: the
/// delimiter (`,`, tab, `;` or space) that splits every whole line into
/// the same number of fields, a header if the first line has a
/// non-numeric field where the rest are numbers, and for the id the
/// column a header names (`ID_NAMES`) or else the first numeric column.
/// A file of one number a line is a one-column csv.
pub fn sniff(text: &str) -> Option<CsvParams> {
    let lines: Vec<&str> = super::whole_lines(text).filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return None;
    }
    let is_num = |s: &str| {
        let s = s.trim().trim_matches('"');
        !s.is_empty() && s.parse::<u64>().is_ok()
    };
    for delim in [b',', b'\t', b';', b' '] {
        let split = |l: &str| -> Vec<String> {
            let b = l.as_bytes();
            let mut v = Vec::new();
            while let Some(f) = field(b, delim, v.len()) {
                v.push(String::from_utf8_lossy(&f).into_owned());
            }
            v
        };
        let rows: Vec<Vec<String>> = lines.iter().map(|l| split(l)).collect();
        let width = rows[0].len();
        if rows.iter().any(|r| r.len() != width) {
            continue;
        }
        let numeric_col = |c: usize, from: usize| rows[from..].iter().all(|r| is_num(&r[c]));
        let header =
            rows.len() > 1 && (0..width).any(|c| !is_num(&rows[0][c])) && (0..width).any(|c| numeric_col(c, 1));
        let from = usize::from(header);
        if from >= rows.len() {
            continue;
        }
        let named = header
            .then(|| {
                (0..width)
                    .find(|&c| ID_NAMES.contains(&rows[0][c].trim().to_ascii_lowercase().as_str()) && numeric_col(c, 1))
            })
            .flatten();
        let Some(col) = named.or_else(|| (0..width).find(|&c| numeric_col(c, from))) else {
            continue;
        };
        return Some(CsvParams {
            obj_id_col: col + 1,
            delimiter: delim,
            has_header: header,
            obj_id_is_num: true,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn read(text: &str, p: CsvParams) -> Result<Vec<u64>, TraceError> {
        let mut r = CsvReader::new(Box::new(Cursor::new(text.as_bytes().to_vec())), Path::new("t.csv"), p);
        let mut out = Vec::new();
        r.read_batch(&mut out, 100)?;
        Ok(out
            .iter()
            .filter_map(|r| match r {
                Record::Ref(r) => Some(r.page),
                Record::Event(_) => None,
            })
            .collect())
    }

    #[test]
    fn columns_quotes_headers_and_hashes() {
        let p = CsvParams::parse("obj-id-col=2,delimiter=,,has-header=true").unwrap();
        assert_eq!(read("t,id\n1,\"7\"\n\n2, 9 \n", p.clone()).unwrap(), [7, 9]);
        let e = read("t,id\n1,7\n2,x9\n", p.clone()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.csv: line 3: column 2: a decimal object id (u64), not `x9`"
        );
        let e = read("t,id\n1\n", p).unwrap_err();
        assert_eq!(e.at, At::Line(2));
        let h = CsvParams::parse("obj-id-col=1,obj-id-is-num=false").unwrap();
        assert_eq!(read("a\nb\na\n", h).unwrap(), [fnv1a(b"a"), fnv1a(b"b"), fnv1a(b"a")]);
    }

    #[test]
    fn sniff_finds_delimiter_header_and_id_column() {
        let p = sniff("time,page,size\n1,5,4096\n2,6,4096\n").unwrap();
        assert_eq!((p.obj_id_col, p.delimiter, p.has_header), (2, b',', true));
        let p = sniff("5\n6\n7\n").unwrap();
        assert_eq!((p.obj_id_col, p.has_header), (1, false));
        assert_eq!(sniff("hello world\nthis is text\n"), None);
    }
}
