//! The Linux oracle record format (JSON Lines, /work/shared/ORACLE-FORMAT.md):
//! one sequence of memory-mapping calls per line, with the kernel's answer to
//! each and the end state of the window. These types read any file that
//! follows the format page, whoever recorded it, and write it back.
//!
//! Flag fields (`prot`, `flags`, `advice`) are read into their numeric values
//! (names joined by `|`, raw hex or decimal), so two spellings of one value
//! compare equal; they are written with the names the format page uses and
//! raw hex for any other bit.

use crate::host::HostFacts;
use crate::mm::mm::uapi::*;
use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Page size of every recording this code reads or writes.
pub const PAGE_SIZE: u64 = 4096;
/// Pages of slack on either side of the window: results and map bounds
/// inside [-SLACK, W+SLACK) are page offsets, anything else is `"outside"`.
pub const SLACK: i64 = 128;
/// The window size recorded by `vmlab oracle record`.
pub const DEFAULT_W: i64 = 256;

/// FNV-1a 64-bit offset basis.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64-bit prime.
pub const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64-bit hash of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(FNV_OFFSET, |h, &b| (h ^ b as u64).wrapping_mul(FNV_PRIME))
}

/// FNV-1a 64 of an all-zero page (`"b93a0c83ce3b6325"`).
pub const fn zero_page_fnv() -> u64 {
    let mut h = FNV_OFFSET;
    let mut k = 0;
    while k < PAGE_SIZE {
        h = h.wrapping_mul(FNV_PRIME);
        k += 1;
    }
    h
}

/// [`zero_page_fnv`], computed at compile time.
pub const ZERO_PAGE_FNV: u64 = zero_page_fnv();

/// The hash of a page as the format writes it: 16 lower-case hex digits.
pub fn fnv_hex(h: u64) -> String {
    format!("{h:016x}")
}

/// FNV-1a 64 of a page (the same as [`fnv1a64`], faster for zero pages,
/// which most pages of a recording are). Allocates nothing.
pub fn page_hash(page: &[u8]) -> u64 {
    if page.len() == PAGE_SIZE as usize && page.iter().all(|&b| b == 0) {
        ZERO_PAGE_FNV
    } else {
        fnv1a64(page)
    }
}

/// The `[pg, first_byte, hash]` entry of a page whose whole-page read succeeded.
pub fn page_entry(pg: i64, page: &[u8]) -> PageEntry {
    PageEntry::Sum(pg, page.first().copied().unwrap_or(0), fnv_hex(page_hash(page)))
}

/// A result: a number (page offset, `0`, a loaded byte) or a string
/// (`"outside"`, `"-EINVAL"`, `"ok"`, `"SEGV"`, `"BUS"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Res {
    Int(i64),
    Text(String),
}

impl Res {
    pub const OUTSIDE: &'static str = "outside";

    /// `"-ENAME"` for an errno name such as `EINVAL`.
    pub fn errno(name: &str) -> Res {
        Res::Text(format!("-{name}"))
    }

    pub fn text(s: &str) -> Res {
        Res::Text(s.to_string())
    }

    pub fn outside() -> Res {
        Res::text(Res::OUTSIDE)
    }

    fn is_errno(&self) -> bool {
        matches!(self, Res::Text(s) if s.len() > 2 && s.starts_with("-E")
            && s[1..].bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()))
    }

    fn is_text(&self, t: &str) -> bool {
        matches!(self, Res::Text(s) if s == t)
    }
}

impl fmt::Display for Res {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Res::Int(n) => write!(f, "{n}"),
            Res::Text(s) => write!(f, "{s:?}"),
        }
    }
}

/// A `[start, end, perms]` line of `/proc/self/maps`, in pages relative to
/// the window base, end exclusive.
pub type MapLine = (i64, i64, String);

/// One entry of `pages`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PageEntry {
    /// `[pg, first_byte, "fnv1a64-hex"]`: the whole-page read succeeded.
    Sum(i64, u8, String),
    /// `[pg, "SEGV"|"BUS"]`: maps says readable, but the read faulted.
    Fault(i64, String),
}

impl PageEntry {
    pub fn pg(&self) -> i64 {
        match self {
            PageEntry::Sum(p, ..) | PageEntry::Fault(p, _) => *p,
        }
    }
}

impl fmt::Display for PageEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PageEntry::Sum(p, b, h) => write!(f, "[{p},{b},{h:?}]"),
            PageEntry::Fault(p, s) => write!(f, "[{p},{s:?}]"),
        }
    }
}

/// Names a flag field is written with (the format page's), and extra names
/// accepted when reading.
struct FlagNames {
    write: &'static [(&'static str, u32)],
    read_also: &'static [(&'static str, u32)],
    /// How zero is written (`PROT_NONE`, `0`).
    zero: &'static str,
}

const PROT_NAMES: FlagNames = FlagNames {
    write: &[
        ("PROT_READ", PROT_READ),
        ("PROT_WRITE", PROT_WRITE),
        ("PROT_EXEC", PROT_EXEC),
    ],
    read_also: &[
        ("PROT_NONE", PROT_NONE),
        ("PROT_SEM", PROT_SEM),
        ("PROT_GROWSDOWN", PROT_GROWSDOWN),
        ("PROT_GROWSUP", PROT_GROWSUP),
    ],
    zero: "PROT_NONE",
};

const MAP_NAMES: FlagNames = FlagNames {
    write: &[
        ("MAP_SHARED", MAP_SHARED),
        ("MAP_PRIVATE", MAP_PRIVATE),
        ("MAP_ANONYMOUS", MAP_ANONYMOUS),
        ("MAP_FIXED", MAP_FIXED),
        ("MAP_FIXED_NOREPLACE", MAP_FIXED_NOREPLACE),
    ],
    read_also: &[
        ("MAP_SHARED_VALIDATE", MAP_SHARED_VALIDATE),
        ("MAP_ANON", MAP_ANONYMOUS),
        ("MAP_32BIT", MAP_32BIT),
        ("MAP_DROPPABLE", MAP_DROPPABLE),
        ("MAP_GROWSDOWN", MAP_GROWSDOWN),
        ("MAP_DENYWRITE", MAP_DENYWRITE),
        ("MAP_EXECUTABLE", MAP_EXECUTABLE),
        ("MAP_LOCKED", MAP_LOCKED),
        ("MAP_NORESERVE", MAP_NORESERVE),
        ("MAP_POPULATE", MAP_POPULATE),
        ("MAP_NONBLOCK", MAP_NONBLOCK),
        ("MAP_STACK", MAP_STACK),
        ("MAP_HUGETLB", MAP_HUGETLB),
        ("MAP_SYNC", MAP_SYNC),
        ("MAP_UNINITIALIZED", MAP_UNINITIALIZED),
    ],
    zero: "0",
};

const MREMAP_NAMES: FlagNames = FlagNames {
    write: &[
        ("MREMAP_MAYMOVE", MREMAP_MAYMOVE),
        ("MREMAP_FIXED", MREMAP_FIXED),
        ("MREMAP_DONTUNMAP", MREMAP_DONTUNMAP),
    ],
    read_also: &[],
    zero: "0",
};

/// Advice names, written and read.
pub const ADVICE_NAMES: &[(&str, u32)] = &[
    ("MADV_NORMAL", MADV_NORMAL),
    ("MADV_RANDOM", MADV_RANDOM),
    ("MADV_SEQUENTIAL", MADV_SEQUENTIAL),
    ("MADV_WILLNEED", MADV_WILLNEED),
    ("MADV_DONTNEED", MADV_DONTNEED),
    ("MADV_FREE", MADV_FREE),
    ("MADV_REMOVE", MADV_REMOVE),
    ("MADV_DONTFORK", MADV_DONTFORK),
    ("MADV_DOFORK", MADV_DOFORK),
    ("MADV_MERGEABLE", MADV_MERGEABLE),
    ("MADV_UNMERGEABLE", MADV_UNMERGEABLE),
    ("MADV_HUGEPAGE", MADV_HUGEPAGE),
    ("MADV_NOHUGEPAGE", MADV_NOHUGEPAGE),
    ("MADV_DONTDUMP", MADV_DONTDUMP),
    ("MADV_DODUMP", MADV_DODUMP),
    ("MADV_WIPEONFORK", MADV_WIPEONFORK),
    ("MADV_KEEPONFORK", MADV_KEEPONFORK),
    ("MADV_COLD", MADV_COLD),
    ("MADV_PAGEOUT", MADV_PAGEOUT),
    ("MADV_POPULATE_READ", MADV_POPULATE_READ),
    ("MADV_POPULATE_WRITE", MADV_POPULATE_WRITE),
    ("MADV_DONTNEED_LOCKED", MADV_DONTNEED_LOCKED),
    ("MADV_COLLAPSE", MADV_COLLAPSE),
    ("MADV_HWPOISON", MADV_HWPOISON),
    ("MADV_SOFT_OFFLINE", MADV_SOFT_OFFLINE),
    ("MADV_GUARD_INSTALL", MADV_GUARD_INSTALL),
    ("MADV_GUARD_REMOVE", MADV_GUARD_REMOVE),
];

fn write_flags(v: u32, names: &FlagNames) -> String {
    if v == 0 {
        return names.zero.to_string();
    }
    let mut parts = Vec::new();
    let mut rest = v;
    for &(n, bit) in names.write {
        if bit != 0 && rest & bit == bit {
            parts.push(n.to_string());
            rest &= !bit;
        }
    }
    if rest != 0 {
        parts.push(format!("{rest:#x}"));
    }
    parts.join("|")
}

fn parse_number(t: &str) -> Option<u32> {
    if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u32::from_str_radix(h, 16).ok()
    } else if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        t.parse().ok()
    } else {
        None
    }
}

fn parse_flags(s: &str, names: &FlagNames, what: &str) -> Result<u32, String> {
    let mut v = 0u32;
    for t in s.split('|').map(str::trim) {
        let bit = names
            .write
            .iter()
            .chain(names.read_also)
            .find(|(n, _)| *n == t)
            .map(|&(_, b)| b)
            .or_else(|| parse_number(t))
            .ok_or_else(|| format!("unknown {what} {t:?} in {s:?}"))?;
        v |= bit;
    }
    Ok(v)
}

macro_rules! flag_type {
    ($(#[$m:meta])* $name:ident, $names:expr, $what:expr) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $name(pub u32);

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&write_flags(self.0, &$names))
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                let s = String::deserialize(d)?;
                parse_flags(&s, &$names, $what).map($name).map_err(de::Error::custom)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&write_flags(self.0, &$names))
            }
        }
    };
}

flag_type!(
    /// `prot`: `PROT_READ|PROT_WRITE`, `PROT_NONE`, `PROT_READ|0x10`.
    Prot,
    PROT_NAMES,
    "prot"
);
flag_type!(
    /// mmap `flags`: `MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED` and the like.
    MapFlags,
    MAP_NAMES,
    "mmap flag"
);
flag_type!(
    /// mremap `flags`: `0` or `MREMAP_MAYMOVE|MREMAP_FIXED` and the like.
    MremapFlags,
    MREMAP_NAMES,
    "mremap flag"
);

/// madvise `advice`: a name, or decimal digits for a value without one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Advice(pub u32);

impl Advice {
    pub fn name(self) -> String {
        ADVICE_NAMES
            .iter()
            .find(|&&(_, v)| v == self.0)
            .map_or_else(|| self.0.to_string(), |&(n, _)| n.to_string())
    }
}

impl Serialize for Advice {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> Deserialize<'de> for Advice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Advice, D::Error> {
        let s = String::deserialize(d)?;
        ADVICE_NAMES
            .iter()
            .find(|(n, _)| *n == s)
            .map(|&(_, v)| v)
            .or_else(|| parse_number(&s))
            .map(Advice)
            .ok_or_else(|| de::Error::custom(format!("unknown advice {s:?}")))
    }
}

impl fmt::Display for Advice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// The call an op makes, with its arguments (`op` names the variant).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Call {
    Mmap {
        addr_pg: i64,
        addr_b: u64,
        len_b: u64,
        prot: Prot,
        flags: MapFlags,
    },
    Munmap {
        addr_pg: i64,
        addr_b: u64,
        len_b: u64,
    },
    Mprotect {
        addr_pg: i64,
        addr_b: u64,
        len_b: u64,
        prot: Prot,
    },
    Madvise {
        addr_pg: i64,
        addr_b: u64,
        len_b: u64,
        advice: Advice,
    },
    Mremap {
        kind: String,
        addr_pg: i64,
        addr_b: u64,
        old_len_b: u64,
        new_len_b: u64,
        flags: MremapFlags,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        new_addr_pg: Option<i64>,
    },
    Store {
        pg: i64,
        byte: u64,
        val: u8,
    },
    Load {
        pg: i64,
        byte: u64,
    },
}

impl Call {
    /// The `op` name.
    pub fn name(&self) -> &'static str {
        match self {
            Call::Mmap { .. } => "mmap",
            Call::Munmap { .. } => "munmap",
            Call::Mprotect { .. } => "mprotect",
            Call::Madvise { .. } => "madvise",
            Call::Mremap { .. } => "mremap",
            Call::Store { .. } => "store",
            Call::Load { .. } => "load",
        }
    }

    /// The argument checks every reader needs before running the call:
    /// sub-page offsets below the page size, MREMAP_FIXED with its target.
    pub fn validate(&self) -> Result<(), String> {
        let sub = |name: &str, b: u64| {
            if b < PAGE_SIZE {
                Ok(())
            } else {
                Err(format!("{name} {b} is not below the page size"))
            }
        };
        match self {
            Call::Mmap { addr_b, .. } | Call::Munmap { addr_b, .. } | Call::Mprotect { addr_b, .. } => {
                sub("addr_b", *addr_b)
            }
            Call::Madvise { addr_b, .. } => sub("addr_b", *addr_b),
            Call::Mremap {
                addr_b,
                flags,
                new_addr_pg,
                ..
            } => {
                sub("addr_b", *addr_b)?;
                if flags.0 & MREMAP_FIXED != 0 && new_addr_pg.is_none() {
                    return Err("mremap with MREMAP_FIXED needs new_addr_pg".into());
                }
                Ok(())
            }
            Call::Store { byte, .. } | Call::Load { byte, .. } => sub("byte", *byte),
        }
    }

    /// Whether `res` has a shape the format allows for this op.
    pub fn res_ok(&self, res: &Res) -> bool {
        match self {
            Call::Mmap { .. } | Call::Mremap { .. } => {
                matches!(res, Res::Int(_)) || res.is_text(Res::OUTSIDE) || res.is_errno()
            }
            Call::Munmap { .. } | Call::Mprotect { .. } | Call::Madvise { .. } => *res == Res::Int(0) || res.is_errno(),
            Call::Store { .. } => res.is_text("ok") || res.is_text("SEGV") || res.is_text("BUS"),
            Call::Load { .. } => matches!(res, Res::Int(0..=255)) || res.is_text("SEGV") || res.is_text("BUS"),
        }
    }
}

impl fmt::Display for Call {
    /// The call as one compact JSON object (`{"op":"mmap","addr_pg":3,...}`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match serde_json::to_string(self) {
            Ok(s) => f.write_str(&s),
            Err(_) => write!(f, "{self:?}"),
        }
    }
}

/// One recorded operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// Index in the sequence.
    pub i: u64,
    #[serde(flatten)]
    pub call: Call,
    pub res: Res,
    /// Why the arguments are invalid or odd, if they are on purpose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prov: Option<String>,
    /// With `res: "outside"`: the result of unmapping that region at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outside_munmap: Option<Res>,
}

/// One recorded sequence: its ops and the end state of the window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sequence {
    pub seed: u64,
    pub seq: u64,
    /// Window size in pages.
    #[serde(rename = "W")]
    pub w: i64,
    pub page_size: u64,
    pub ops: Vec<Op>,
    /// Maps lines intersecting [0, W), clipped.
    pub maps: Vec<MapLine>,
    /// Maps lines intersecting [-128, W+128), clipped.
    pub maps_ext: Vec<MapLine>,
    pub pages: Vec<PageEntry>,
    /// Facts of the recording host that change Linux's answers; absent in
    /// older files, which means a host without protection keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostFacts>,
}

impl Sequence {
    /// The recording host's facts (`None`: no protection keys, kernel unknown).
    pub fn host_facts(&self) -> HostFacts {
        self.host.clone().unwrap_or(HostFacts {
            pkeys: false,
            kernel: String::new(),
        })
    }
}

/// A line whose recording failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorLine {
    pub seed: u64,
    pub seq: u64,
    pub error: String,
}

/// One line of a recording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    Seq(Sequence),
    Error(ErrorLine),
}

impl Line {
    /// The line as JSON (no newline).
    pub fn to_json(&self) -> String {
        let r = match self {
            Line::Seq(s) => serde_json::to_string(s),
            Line::Error(e) => serde_json::to_string(e),
        };
        // Plain data with string keys: serialization cannot fail.
        r.unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string()))
    }
}

/// The largest window a reader accepts (pages).
pub const MAX_W: i64 = 1 << 20;

impl Sequence {
    /// Checks beyond the JSON shape: page size, window size, each op's
    /// arguments and result shape, page entries inside the window with
    /// well-formed hashes (normalised to lower case).
    pub fn validate(&mut self) -> Result<(), String> {
        if self.page_size != PAGE_SIZE {
            return Err(format!("page_size {} (only 4096 is supported)", self.page_size));
        }
        if !(1..=MAX_W).contains(&self.w) {
            return Err(format!("W {} out of range 1..={MAX_W}", self.w));
        }
        for (k, op) in self.ops.iter().enumerate() {
            op.call.validate().map_err(|e| format!("op {k}: {e}"))?;
            if !op.call.res_ok(&op.res) {
                return Err(format!("op {k}: res {} is not a result of {}", op.res, op.call.name()));
            }
        }
        for p in &mut self.pages {
            if !(0..self.w).contains(&p.pg()) {
                return Err(format!("page {} outside the window [0, {})", p.pg(), self.w));
            }
            match p {
                PageEntry::Sum(pg, _, h) => {
                    if h.len() != 16 || u64::from_str_radix(h, 16).is_err() {
                        return Err(format!("page {pg}: {h:?} is not a 64-bit hex hash"));
                    }
                    h.make_ascii_lowercase();
                }
                PageEntry::Fault(pg, s) => {
                    if s != "SEGV" && s != "BUS" {
                        return Err(format!("page {pg}: {s:?} is neither a hash nor SEGV/BUS"));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Parse and validate one line of a recording.
pub fn parse_line(text: &str) -> Result<Line, String> {
    if let Ok(e) = serde_json::from_str::<ErrorLine>(text) {
        return Ok(Line::Error(e));
    }
    let mut s: Sequence = serde_json::from_str(text).map_err(|e| e.to_string())?;
    s.validate()?;
    Ok(Line::Seq(s))
}

/// Maps lines `(start, end, perms)` in pages relative to the base, clipped to
/// [lo, hi), in address order.
pub fn clip_maps<'a>(lines: impl IntoIterator<Item = &'a MapLine>, lo: i64, hi: i64) -> Vec<MapLine> {
    lines
        .into_iter()
        .filter(|(s, e, _)| *e > lo && *s < hi)
        .map(|(s, e, p)| ((*s).max(lo), (*e).min(hi), p.clone()))
        .collect()
}

/// The `maps` and `maps_ext` views of maps lines given in pages relative to the base.
pub fn window_views(lines: &[MapLine], w: i64) -> (Vec<MapLine>, Vec<MapLine>) {
    (clip_maps(lines, 0, w), clip_maps(lines, -SLACK, w + SLACK))
}

/// The perms of the maps line covering page `pg`, if any.
pub fn perms_at(lines: &[MapLine], pg: i64) -> Option<&str> {
    lines
        .iter()
        .find(|(s, e, _)| (*s..*e).contains(&pg))
        .map(|(_, _, p)| p.as_str())
}

/// A mmap/mremap result address as the format records it: its page offset
/// from `base` if it lies in the slack area [-SLACK, W+SLACK), else `None`
/// ("outside").
pub fn page_offset_in_slack(addr: u64, base: u64, w: i64) -> Option<i64> {
    let d = addr as i128 - base as i128;
    if d % PAGE_SIZE as i128 != 0 {
        return None;
    }
    let pg = d / PAGE_SIZE as i128;
    (-(SLACK as i128)..(w + SLACK) as i128)
        .contains(&pg)
        .then_some(pg as i64)
}

/// The address an `(addr_pg, addr_b)` pair names.
pub fn addr_of(base: u64, pg: i64, b: u64) -> u64 {
    base.wrapping_add((pg as u64).wrapping_mul(PAGE_SIZE)).wrapping_add(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_page_hash() {
        assert_eq!(fnv_hex(zero_page_fnv()), "b93a0c83ce3b6325");
        assert_eq!(fnv_hex(fnv1a64(&[0u8; 4096])), "b93a0c83ce3b6325");
        assert_eq!(fnv1a64(b""), FNV_OFFSET);
        // The reference value of "a" (Fowler/Noll/Vo test suite).
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        let mut page = vec![0u8; 4096];
        page[7] = 1;
        assert_eq!(page_entry(3, &page), PageEntry::Sum(3, 0, fnv_hex(fnv1a64(&page))));
    }

    /// A line written by hand from the format page, every op kind in it.
    const HAND: &str = r#"{"seed": 7, "seq": 3, "W": 256, "page_size": 4096,
 "ops": [
  {"i": 0, "op": "mmap", "addr_pg": 10, "addr_b": 0, "len_b": 16384, "prot": "PROT_READ|PROT_WRITE", "flags": "MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED", "res": 10},
  {"i": 1, "op": "mmap", "addr_pg": 200, "addr_b": 5, "len_b": 4096, "prot": "PROT_NONE", "flags": "MAP_SHARED|MAP_ANONYMOUS", "res": "outside", "outside_munmap": 0, "prov": "unaligned_addr"},
  {"i": 2, "op": "mprotect", "addr_pg": 11, "addr_b": 0, "len_b": 4096, "prot": "PROT_READ|0x10", "res": "-EINVAL", "prov": "bad_prot"},
  {"i": 3, "op": "madvise", "addr_pg": 10, "addr_b": 0, "len_b": 8192, "advice": "MADV_DONTNEED", "res": 0},
  {"i": 4, "op": "madvise", "addr_pg": 10, "addr_b": 0, "len_b": 8192, "advice": "999", "res": "-EINVAL", "prov": "bad_advice"},
  {"i": 5, "op": "mremap", "kind": "move_fixed", "addr_pg": 10, "addr_b": 0, "old_len_b": 8192, "new_len_b": 8192, "flags": "MREMAP_MAYMOVE|MREMAP_FIXED|MREMAP_DONTUNMAP", "new_addr_pg": 40, "res": 40},
  {"i": 6, "op": "mremap", "kind": "shrink", "addr_pg": 40, "addr_b": 0, "old_len_b": 8192, "new_len_b": 4096, "flags": "0", "res": 40},
  {"i": 7, "op": "store", "pg": 40, "byte": 17, "val": 255, "res": "ok"},
  {"i": 8, "op": "load", "pg": 40, "byte": 17, "res": 255},
  {"i": 9, "op": "load", "pg": 41, "byte": 0, "res": "SEGV"},
  {"i": 10, "op": "munmap", "addr_pg": -128, "addr_b": 0, "len_b": 0, "res": "-EINVAL", "prov": "zero_len"}
 ],
 "maps": [[10, 14, "rw-p"], [40, 41, "rw-p"]], "maps_ext": [[10, 14, "rw-p"], [40, 41, "rw-p"]],
 "pages": [[10, 0, "b93a0c83ce3b6325"], [11, 0, "B93A0C83CE3B6325"], [40, 0, "0123456789abcdef"], [41, "BUS"]]}"#;

    #[test]
    fn parses_a_hand_written_line() {
        let one_line = HAND.replace('\n', "");
        let Line::Seq(s) = parse_line(&one_line).expect("parse") else {
            panic!("not a sequence")
        };
        assert_eq!((s.seed, s.seq, s.w, s.page_size), (7, 3, 256, 4096));
        assert_eq!(s.ops.len(), 11);
        assert_eq!(
            s.ops[0].call,
            Call::Mmap {
                addr_pg: 10,
                addr_b: 0,
                len_b: 16384,
                prot: Prot(PROT_READ | PROT_WRITE),
                flags: MapFlags(MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED),
            }
        );
        assert_eq!(s.ops[0].res, Res::Int(10));
        assert_eq!(s.ops[1].res, Res::outside());
        assert_eq!(s.ops[1].outside_munmap, Some(Res::Int(0)));
        assert_eq!(s.ops[1].prov.as_deref(), Some("unaligned_addr"));
        assert!(matches!(s.ops[2].call, Call::Mprotect { prot: Prot(0x11), .. }));
        assert_eq!(s.ops[2].res, Res::errno("EINVAL"));
        assert!(matches!(
            s.ops[4].call,
            Call::Madvise {
                advice: Advice(999),
                ..
            }
        ));
        assert!(matches!(
            s.ops[5].call,
            Call::Mremap {
                flags: MremapFlags(7),
                new_addr_pg: Some(40),
                ..
            }
        ));
        assert!(matches!(
            s.ops[6].call,
            Call::Mremap {
                flags: MremapFlags(0),
                new_addr_pg: None,
                ..
            }
        ));
        assert_eq!(s.ops[8].res, Res::Int(255));
        assert_eq!(
            s.ops[10].call,
            Call::Munmap {
                addr_pg: -128,
                addr_b: 0,
                len_b: 0
            }
        );
        assert_eq!(s.maps, vec![(10, 14, "rw-p".to_string()), (40, 41, "rw-p".to_string())]);
        // Hashes are normalised to lower case.
        assert_eq!(s.pages[1], PageEntry::Sum(11, 0, "b93a0c83ce3b6325".into()));
        assert_eq!(s.pages[3], PageEntry::Fault(41, "BUS".into()));
    }

    #[test]
    fn round_trip() {
        let one_line = HAND.replace('\n', "");
        let Line::Seq(s) = parse_line(&one_line).unwrap() else {
            panic!("not a sequence")
        };
        let text = Line::Seq(s.clone()).to_json();
        assert!(!text.contains('\n'));
        assert_eq!(parse_line(&text).unwrap(), Line::Seq(s.clone()));
        // Written with the format page's names.
        assert!(
            text.contains(r#""flags":"MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED""#),
            "{text}"
        );
        assert!(text.contains(r#""prot":"PROT_READ|0x10""#), "{text}");
        assert!(text.contains(r#""prot":"PROT_NONE""#), "{text}");
        assert!(text.contains(r#""advice":"999""#), "{text}");
        assert!(text.contains(r#""flags":"0""#), "{text}");
        assert!(text.contains(r#""W":256"#), "{text}");
        let e = Line::Error(ErrorLine {
            seed: 1,
            seq: 2,
            error: "child died".into(),
        });
        assert_eq!(parse_line(&e.to_json()).unwrap(), e);
    }

    #[test]
    fn flag_spellings() {
        let p = |s: &str| parse_flags(s, &MAP_NAMES, "flag");
        assert_eq!(p("MAP_SHARED_VALIDATE|MAP_ANON"), Ok(0x23));
        assert_eq!(p("MAP_PRIVATE|0x400000"), Ok(0x400002));
        assert!(p("MAP_BOGUS").is_err());
        assert_eq!(
            write_flags(0x400003 | MAP_ANONYMOUS, &MAP_NAMES),
            "MAP_SHARED|MAP_PRIVATE|MAP_ANONYMOUS|0x400000"
        );
        assert_eq!(write_flags(0, &PROT_NAMES), "PROT_NONE");
        assert_eq!(
            write_flags(PROT_GROWSDOWN | PROT_READ, &PROT_NAMES),
            "PROT_READ|0x1000000"
        );
        assert_eq!(Advice(5).name(), "5");
        assert_eq!(Advice(MADV_FREE).name(), "MADV_FREE");
    }

    #[test]
    fn bad_lines_are_rejected() {
        let one_line = HAND.replace('\n', "");
        for (from, to) in [
            (r#""page_size": 4096"#, r#""page_size": 8192"#),
            (r#""res": 255"#, r#""res": 256"#),
            (r#""res": 255"#, r#""res": "ok""#),
            (r#""val": 255"#, r#""val": 300"#),
            (r#""advice": "999""#, r#""advice": "MADV_BOGUS""#),
            (r#""byte": 17, "val""#, r#""byte": 4096, "val""#),
            (r#", "new_addr_pg": 40"#, ""),
            (r#""op": "load""#, r#""op": "peek""#),
            (r#"[41, "BUS"]"#, r#"[41, "BOOM"]"#),
            (r#"[41, "BUS"]"#, r#"[256, "BUS"]"#),
        ] {
            assert!(one_line.contains(from), "{from}");
            let bad = one_line.replacen(from, to, 1);
            assert!(parse_line(&bad).is_err(), "accepted with {to}");
        }
        assert!(parse_line("{").is_err());
        assert!(parse_line("").is_err());
    }

    #[test]
    fn slack_offsets() {
        let base = 0x1000_0000;
        assert_eq!(page_offset_in_slack(base, base, 256), Some(0));
        assert_eq!(page_offset_in_slack(base - 128 * 4096, base, 256), Some(-128));
        assert_eq!(page_offset_in_slack(base - 129 * 4096, base, 256), None);
        assert_eq!(page_offset_in_slack(base + 383 * 4096, base, 256), Some(383));
        assert_eq!(page_offset_in_slack(base + 384 * 4096, base, 256), None);
        assert_eq!(page_offset_in_slack(!4095, base, 256), None);
        assert_eq!(addr_of(base, -1, 5), base - 4096 + 5);
    }
}
