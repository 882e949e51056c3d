//! `vmlab trace info|convert` end to end: counts and JSON, exit code 2
//! with the file and line or offset for bad and unknown traces, and
//! conversions that round-trip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn vmlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmlab"))
        .args(args)
        .output()
        .expect("the vmlab binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("trace-cli-{}-{name}", std::process::id()))
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let p = scratch(name);
    std::fs::write(&p, bytes).expect("scratch file written");
    p
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Exit 2, and stderr has every needle and no panic.
fn bad_trace(args: &[&str], needles: &[&str]) {
    let o = vmlab(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: stderr lacks {n:?}: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

fn info_json(path: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["trace", "info", "--json", s(path)];
    args.extend_from_slice(extra);
    let o = vmlab(&args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("--json prints one JSON object")
}

/// A trc file (big-endian u32 pages) of `pages`.
fn trc(name: &str, pages: &[u32]) -> PathBuf {
    let b: Vec<u8> = pages.iter().flat_map(|p| p.to_be_bytes()).collect();
    write(name, &b)
}

fn sample_pages() -> Vec<u32> {
    let mut x: u64 = 7;
    (0..5000)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((x >> 33) % 900) as u32
        })
        .collect()
}

#[test]
fn info_counts_references_pages_and_reuse() {
    // a b a c b: cold 3; a at depth 2, b at depth 3.
    let p = trc("small.trc", &[1, 2, 1, 3, 2]);
    let j = info_json(&p, &["--format", "trc"]);
    assert_eq!(j["references"], 5);
    assert_eq!(j["distinct_pages"], 3);
    assert_eq!(j["footprint_bytes"], 3 * 4096);
    assert_eq!(j["reuse_distance"]["cold"], 3);
    let b = &j["reuse_distance"]["buckets"];
    assert_eq!(b[1], serde_json::json!({"min": 2, "max": 3, "count": 2}), "{j}");
    assert_eq!(j["events"]["mmap"], 0);
    let text = String::from_utf8(vmlab(&["trace", "info", s(&p)]).stdout).unwrap();
    assert!(text.contains("references: 5\ndistinct pages: 3\n"), "{text}");
}

#[test]
fn info_of_the_lackey_log_counts_its_syscall_events() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vmlab/tests/data/traces/mapper.lackey.gz");
    let j = info_json(&p, &[]);
    assert_eq!(j["format"], "lackey");
    let e = &j["events"];
    assert_eq!((e["mmap"].as_u64(), e["munmap"].as_u64()), (Some(2), Some(2)), "{j}");
    assert_eq!(
        (e["mprotect"].as_u64(), e["mremap"].as_u64(), e["brk"].as_u64()),
        (Some(2), Some(1), Some(7))
    );
}

#[test]
fn bad_and_unknown_traces_exit_2_naming_file_and_place() {
    let lk = write("bad.lackey", b"==1== Lackey\nI  00001000,4\n L 0000zz00,8\n");
    bad_trace(
        &["trace", "info", s(&lk), "--format", "lackey"],
        &[s(&lk), "line 3", "`0000zz00` is not a hex address"],
    );
    // Sniffed as lackey from its first lines, the bad line is further on.
    let mut text = String::from("==1== Lackey\n");
    for i in 0..500 {
        text += &format!("I  {:08x},4\n", 0x1000 + i * 4);
    }
    text += " S 12345,nope\n";
    let lk2 = write("bad2.lackey", text.as_bytes());
    bad_trace(
        &["trace", "info", s(&lk2)],
        &[s(&lk2), "line 502", "`nope` is not a decimal size"],
    );
    // A truncated oracleGeneral record: two whole records and 10 bytes.
    let mut og = Vec::new();
    for (i, id) in [5u64, 6].iter().enumerate() {
        og.extend((i as u32 + 1).to_le_bytes());
        og.extend(id.to_le_bytes());
        og.extend(4096u32.to_le_bytes());
        og.extend((-1i64).to_le_bytes());
    }
    og.extend([1u8; 10]);
    let ogp = write("trunc.oracleGeneral", &og);
    bad_trace(
        &["trace", "info", s(&ogp), "--format", "oracle_general"],
        &[s(&ogp), "byte 48", "oracleGeneral record of 24 bytes"],
    );
    let txt = write(
        "random.txt",
        b"It was a bright cold day in April,\nand the clocks were striking thirteen.\n",
    );
    bad_trace(&["trace", "info", s(&txt)], &[s(&txt), "matches no trace format"]);
    let csv = write("bad.csv", b"t,id\n1,5\n2,five\n");
    bad_trace(
        &[
            "trace",
            "info",
            s(&csv),
            "--trace-params",
            "obj-id-col=2,has-header=true",
        ],
        &[s(&csv), "line 3", "column 2"],
    );
    bad_trace(&["trace", "info", "/nonexistent/trace"], &["/nonexistent/trace"]);
    bad_trace(
        &[
            "trace",
            "info",
            s(&csv),
            "--format",
            "trc",
            "--trace-params",
            "obj-id-col=2",
        ],
        &["--trace-params are csv parameters"],
    );
    // A conversion of a bad input leaves no output behind.
    let out = scratch("bad.og");
    bad_trace(
        &["trace", "convert", s(&lk2), "-o", s(&out), "--to", "oracle_general"],
        &[s(&lk2), "line 502"],
    );
    assert!(!out.exists(), "{} left behind", out.display());
    bad_trace(
        &["trace", "convert", s(&csv), "-o", s(&scratch("x")), "--to", "nope"],
        &["--to nope"],
    );
}

#[test]
fn trc_to_vmlab_and_csv_keep_the_counts() {
    let pages = sample_pages();
    let p = trc("rt.trc", &pages);
    let a = info_json(&p, &["--format", "trc"]);
    assert_eq!(a["references"], 5000);
    for to in ["vmlab", "csv"] {
        let out = scratch(&format!("rt.{to}"));
        let o = vmlab(&["trace", "convert", s(&p), "-o", s(&out), "--to", to, "--format", "trc"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let b = info_json(&out, &[]);
        assert_eq!(b["format"], to);
        for k in ["references", "distinct_pages", "reuse_distance"] {
            assert_eq!(a[k], b[k], "{to}: {k}");
        }
    }
    let csv = std::fs::read_to_string(scratch("rt.csv")).unwrap();
    let want: Vec<String> = pages.iter().map(|p| p.to_string()).collect();
    assert_eq!(csv.lines().collect::<Vec<_>>(), want);
}

#[test]
fn trc_to_oracle_general_and_lcs_keep_pages_with_correct_next_access() {
    let pages = sample_pages();
    let p = trc("og.trc", &pages);
    // The naive next access: the vtime (from 1) of the next reference, -1 if none.
    let naive: Vec<i64> = (0..pages.len())
        .map(|i| {
            pages[i + 1..]
                .iter()
                .position(|&q| q == pages[i])
                .map_or(-1, |d| (i + 1 + d) as i64 + 1)
        })
        .collect();
    for (to, header, never) in [("oracle_general", 0, -1i64), ("lcs", 8192, i64::MAX)] {
        let out = scratch(&format!("og.{to}"));
        let o = vmlab(&["trace", "convert", s(&p), "-o", s(&out), "--to", to]);
        assert!(o.status.success(), "{to}: {}", stderr(&o));
        let b = std::fs::read(&out).unwrap();
        assert_eq!(b.len(), header + 24 * pages.len(), "{to}");
        for (i, r) in b[header..].chunks_exact(24).enumerate() {
            let id = u64::from_le_bytes(r[4..12].try_into().unwrap());
            let next = i64::from_le_bytes(r[16..24].try_into().unwrap());
            let want = if naive[i] == -1 { never } else { naive[i] };
            assert_eq!((id, next), (pages[i] as u64, want), "{to} record {i}");
        }
        let j = info_json(&out, &[]);
        assert_eq!(j["references"], 5000, "{to}");
    }
}

#[test]
fn lackey_to_oracle_general_keeps_page_numbers_and_says_events_are_dropped() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vmlab/tests/data/traces/mapper.lackey.gz");
    let out = scratch("lk.og");
    let o = vmlab(&["trace", "convert", s(&p), "-o", s(&out), "--to", "oracle_general"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("14 address-space events dropped"), "{}", stderr(&o));
    let a = info_json(&p, &[]);
    let b = info_json(&out, &["--format", "oracle_general"]);
    for k in ["references", "distinct_pages", "reuse_distance"] {
        assert_eq!(a[k], b[k], "{k}");
    }
    let bytes = std::fs::read(&out).unwrap();
    // mapper's stack and heap pages are high page numbers, kept as they are.
    assert!(bytes
        .chunks_exact(24)
        .any(|r| u64::from_le_bytes(r[4..12].try_into().unwrap()) == 0x4800));
}

/// `--obj-size 1` writes size 1 into every oracleGeneral record (libCacheSim's
/// cache size then counts objects); the default is a page; other targets refuse it.
#[test]
fn convert_obj_size() {
    let dir = scratch("obj-size");
    std::fs::create_dir_all(&dir).unwrap();
    let trc = dir.join("t.trc");
    std::fs::write(
        &trc,
        [0u32, 1, 0, 2]
            .iter()
            .flat_map(|p| p.to_be_bytes())
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    for (size, want) in [(None, 4096u32), (Some("1"), 1)] {
        let og = dir.join("t.og");
        let mut args = vec![
            "trace",
            "convert",
            trc.to_str().unwrap(),
            "-o",
            og.to_str().unwrap(),
            "--to",
            "oracle_general",
        ];
        if let Some(s) = size {
            args.extend(["--obj-size", s]);
        }
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_vmlab"))
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
        let b = std::fs::read(&og).unwrap();
        assert_eq!(b.len(), 4 * 24);
        for r in b.chunks_exact(24) {
            assert_eq!(u32::from_le_bytes([r[12], r[13], r[14], r[15]]), want);
        }
    }
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_vmlab"))
        .args([
            "trace",
            "convert",
            trc.to_str().unwrap(),
            "-o",
            "/tmp/x.vmlab",
            "--to",
            "vmlab",
            "--obj-size",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--obj-size"));
}
