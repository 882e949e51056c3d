//! The trace readers on files the real tools wrote (tests/data/traces,
//! README there): valgrind lackey with syscalls, libCacheSim's csv,
//! oracleGeneral and lcs (checked against libCacheSim's own read-out),
//! the paper traces' counts, sniffing, and vmlab's format on a real trace.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use vmlab::trace::{self, Event, Format, MapBacking, Record, Ref, RefKind};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/traces")
        .join(name)
}

fn read_all(path: &Path, format: Option<Format>) -> (Format, Vec<Record>) {
    let (f, mut r) = trace::open(path, format).unwrap_or_else(|e| panic!("{e}"));
    let mut all = Vec::new();
    let mut out = Vec::new();
    loop {
        r.read_batch(&mut out, trace::BATCH).unwrap_or_else(|e| panic!("{e}"));
        if out.is_empty() {
            return (f, all);
        }
        all.append(&mut out);
    }
}

fn pages(recs: &[Record]) -> Vec<u64> {
    recs.iter()
        .filter_map(|r| match r {
            Record::Ref(r) => Some(r.page),
            Record::Event(_) => None,
        })
        .collect()
}

fn head(path: &Path) -> Vec<u8> {
    let b = trace::open_bytes(path).unwrap();
    trace::peek(b, trace::SNIFF_BYTES, path).unwrap().0
}

/// The per-format tests `sniff` runs, in its order, that accept `head`.
fn accepted_by(head: &[u8]) -> Vec<&'static str> {
    let text = std::str::from_utf8(head).ok().filter(|t| !t.contains('\0'));
    let mut v = Vec::new();
    if trace::vmlab_fmt::sniff(head) {
        v.push("vmlab");
    }
    if trace::lcs::sniff(head) {
        v.push("lcs");
    }
    if text.is_some_and(trace::lackey::sniff) {
        v.push("lackey");
    }
    if text.and_then(trace::csv::sniff).is_some() {
        v.push("csv");
    }
    if trace::oracle_general::sniff(head) {
        v.push("oracle_general");
    }
    if trace::trc::sniff(head) {
        v.push("trc");
    }
    v
}

/// libCacheSim's read-out of the cpp3000 files: (obj_id, next_access_vtime).
fn expected() -> Vec<(u64, i64)> {
    let mut s = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(data("cpp3000.expect.txt.gz")).unwrap())
        .read_to_string(&mut s)
        .unwrap();
    s.lines()
        .map(|l| {
            let (a, b) = l.split_once(' ').unwrap();
            (a.parse().unwrap(), b.parse().unwrap())
        })
        .collect()
}

#[test]
fn lackey_log_of_a_real_valgrind_run_gives_its_syscalls_and_page_crossing_store() {
    let path = data("mapper.lackey.gz");
    let (f, recs) = read_all(&path, None);
    assert_eq!(f, Format::Lackey);
    let events: Vec<&Event> = recs
        .iter()
        .filter_map(|r| match r {
            Record::Event(e) => Some(&**e),
            Record::Ref(_) => None,
        })
        .collect();
    let brk = |addr, result| Event::Brk { addr, result };
    let want = vec![
        brk(0, 0x400_0000),
        brk(0x400_0d00, 0x400_0d00),
        brk(0, 0x400_0d00),
        brk(0x402_1d00, 0x402_1d00),
        brk(0x402_2000, 0x402_2000),
        Event::Mprotect {
            addr: 0x4a_0000,
            len: 16384,
            prot: 1,
            result: 0,
        },
        Event::Mmap {
            addr: 0,
            len: 12288,
            prot: 3,
            flags: 34,
            fd: -1,
            offset: 0,
            backing: MapBacking::Anon,
            result: 0x480_0000,
        },
        Event::Mremap {
            old_addr: 0x480_0000,
            old_len: 12288,
            new_len: 20480,
            flags: 1,
            new_addr: 0,
            result: 0x480_0000,
        },
        Event::Mprotect {
            addr: 0x480_1000,
            len: 4096,
            prot: 1,
            result: 0,
        },
        Event::Munmap {
            addr: 0x480_0000,
            len: 20480,
            result: 0,
        },
        Event::Mmap {
            addr: 0,
            len: 4096,
            prot: 1,
            flags: 2,
            fd: 4,
            offset: 0,
            backing: MapBacking::File {
                path: "/etc/hostname".into(),
                size: 0,
                pgoff: 0,
            },
            result: 0x480_0000,
        },
        Event::Munmap {
            addr: 0x480_0000,
            len: 4096,
            result: 0,
        },
        brk(0x402_4000, 0x402_4000),
        brk(0x402_2000, 0x402_2000),
    ];
    assert_eq!(events, want.iter().collect::<Vec<_>>());
    // mapper.c's 4-byte store at a + 4094 touches two pages: two Refs.
    let store = |page| {
        Record::Ref(Ref {
            page,
            kind: RefKind::Store,
        })
    };
    assert!(
        recs.windows(2).any(|w| w == [store(0x4800), store(0x4801)]),
        "no store crossing pages 0x4800/0x4801"
    );
    // Every memory line gives at least one Ref, and only crossing ones more.
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let mut naive = 0u64;
    for l in text.lines() {
        if let Some(rest) = ["I  ", " L ", " S ", " M "].iter().find_map(|p| l.strip_prefix(p)) {
            let (a, s) = rest.split_once(',').unwrap();
            let a = u64::from_str_radix(a, 16).unwrap();
            let s: u64 = s.parse().unwrap();
            naive += ((a + s - 1) >> 12) - (a >> 12) + 1;
        }
    }
    assert_eq!(pages(&recs).len() as u64, naive);
}

#[test]
fn libcachesim_files_read_as_libcachesim_reads_them() {
    let want = expected();
    assert_eq!(want.len(), 3000);
    let ids: Vec<u64> = want.iter().map(|w| w.0).collect();
    let csv = Format::parse("csv", Some("obj-id-col=2,delimiter=,,has-header=true")).unwrap();
    assert_eq!(pages(&read_all(&data("cpp3000.csv.gz"), Some(csv.clone())).1), ids);
    // Sniffed, the csv's header names its page column.
    let (f, recs) = read_all(&data("cpp3000.csv.gz"), None);
    assert_eq!(f, csv);
    assert_eq!(pages(&recs), ids);
    for (name, format) in [
        ("cpp3000.oracleGeneral.gz", Format::OracleGeneral),
        ("cpp3000.v1.lcs.gz", Format::Lcs),
        ("cpp3000.v2.lcs.gz", Format::Lcs),
        ("cpp3000.v3.lcs.gz", Format::Lcs),
    ] {
        let (f, recs) = read_all(&data(name), None);
        assert_eq!(f, format, "{name}");
        assert_eq!(pages(&recs), ids, "{name}");
    }
    // The next-access field as libCacheSim reads it (-1 shown as i64::MAX).
    let path = data("cpp3000.oracleGeneral.gz");
    let mut r = trace::oracle_general::OracleGeneralReader::new(trace::open_bytes(&path).unwrap(), &path);
    for (i, &(id, next)) in want.iter().enumerate() {
        let rec = r.next_record().unwrap().unwrap();
        let got = if rec.next_access_vtime == -1 {
            i64::MAX
        } else {
            rec.next_access_vtime
        };
        assert_eq!((rec.obj_id, got), (id, next), "record {i}");
    }
    // And they are cpp's first 3000 references.
    let cpp = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/traces/trace-cpp.trc.bin.gz");
    if cpp.exists() {
        assert_eq!(pages(&read_all(&cpp, None).1)[..3000], ids[..]);
    } else {
        println!("skipped the comparison with {}: absent", cpp.display());
    }
}

#[test]
fn oracle_general_written_by_vmlab_matches_libcachesims_next_access() {
    let want = expected();
    let mut bytes = Vec::new();
    let spill = |e: std::io::Error| trace::TraceError::io(Path::new("spill"), &e);
    trace::oracle_general::write(&mut want.iter().map(|w| Ok(w.0)), &mut bytes, &spill).unwrap();
    let theirs = {
        let mut b = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(data("cpp3000.oracleGeneral.gz")).unwrap())
            .read_to_end(&mut b)
            .unwrap();
        b
    };
    assert_eq!(bytes.len(), theirs.len());
    for (i, (a, b)) in bytes.chunks(24).zip(theirs.chunks(24)).enumerate() {
        // Clock times differ in nothing either: both are the vtime here.
        assert_eq!(a, b, "record {i}");
    }
}

#[test]
fn each_real_file_sniffs_as_itself_and_no_earlier_format_takes_it() {
    let mut files: Vec<(PathBuf, &str)> = vec![
        (data("mapper.lackey.gz"), "lackey"),
        (data("cpp3000.csv.gz"), "csv"),
        (data("cpp3000.oracleGeneral.gz"), "oracle_general"),
        (data("cpp3000.v1.lcs.gz"), "lcs"),
        (data("cpp3000.v3.lcs.gz"), "lcs"),
    ];
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/traces");
    for t in ["cpp", "glimpse", "multi2", "sprite"] {
        let p = shared.join(format!("trace-{t}.trc.bin.gz"));
        if p.exists() {
            files.push((p, "trc"));
        }
    }
    // A vmlab file, written from the lackey log.
    let vm = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("sniff-{}.vmlab", std::process::id()));
    let (_, recs) = read_all(&data("mapper.lackey.gz"), None);
    let mut w = trace::vmlab_fmt::VmlabWriter::new(std::fs::File::create(&vm).unwrap()).unwrap();
    for r in &recs {
        w.write(r).unwrap();
    }
    w.finish().unwrap();
    files.push((vm.clone(), "vmlab"));
    for (p, name) in &files {
        let h = head(p);
        assert_eq!(trace::sniff(&h).map(|f| f.name()), Some(*name), "{}", p.display());
        let acc = accepted_by(&h);
        assert_eq!(acc.first(), Some(name), "{}: accepted by {acc:?}", p.display());
        // Text is taken by its own test alone (trc, the last resort, takes
        // any binary of whole 4-byte words: it comes after all the others).
        if matches!(*name, "lackey" | "csv") {
            assert_eq!(acc, [*name], "{}", p.display());
        }
    }
    // The vmlab file holds the lackey log's records exactly.
    assert_eq!(read_all(&vm, None).1, recs);
    let _ = std::fs::remove_file(vm);
    // Unknown content matches nothing.
    assert_eq!(
        trace::sniff(b"Lorem ipsum dolor sit amet,\nconsectetur: adipiscing elit\n"),
        None
    );
    assert_eq!(trace::sniff(&[0xffu8; 1000]), None);
}

#[test]
fn paper_traces_have_the_counts_their_readme_gives() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/traces");
    if !dir.exists() {
        println!("skipped: {} absent", dir.display());
        return;
    }
    for (t, refs, distinct) in [
        ("cpp", 9_047, 1_223),
        ("glimpse", 6_015, 2_529),
        ("multi2", 26_311, 5_684),
        ("sprite", 133_996, 7_075),
    ] {
        let (f, recs) = read_all(&dir.join(format!("trace-{t}.trc.bin.gz")), None);
        assert_eq!(f, Format::Trc, "{t}");
        let p = pages(&recs);
        assert_eq!(p.len(), refs, "{t}");
        assert_eq!(p.iter().collect::<HashSet<_>>().len(), distinct, "{t}");
    }
}
