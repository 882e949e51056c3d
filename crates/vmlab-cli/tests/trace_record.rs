//! `vmlab trace record`: records a real program (tests/data/traces/mapper.c
//! compiled with gcc) under valgrind lackey, checks the recording's events,
//! replays it in full mode with many and with few frames, and checks that a
//! forking program is refused with exit 2. Skips (printing why) without
//! valgrind or gcc.
//!
//! Host facts: runs valgrind and gcc, writes into the host's temp directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use vmlab::trace::{self, Event, MapBacking, Record};

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vmlab-trace-record-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn gcc(src: &Path, exe: &Path) {
    let st = Command::new("gcc")
        .args(["-O1", "-o"])
        .arg(exe)
        .arg(src)
        .status()
        .unwrap();
    assert!(st.success(), "gcc {}", src.display());
}

fn vmlab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vmlab"))
}

fn events(path: &Path) -> Vec<Event> {
    let (_, mut r) = trace::open(path, None).unwrap();
    let mut out = Vec::new();
    let mut batch = Vec::new();
    loop {
        r.read_batch(&mut batch, trace::BATCH).unwrap();
        if batch.is_empty() {
            return out;
        }
        out.extend(batch.drain(..).filter_map(|r| match r {
            Record::Event(e) => Some(*e),
            Record::Ref(_) => None,
        }));
    }
}

#[test]
fn a_recorded_program_replays_in_full_mode() {
    if !have("valgrind") || !have("gcc") {
        eprintln!("skipped: valgrind or gcc not found");
        return;
    }
    let d = tmpdir("mapper");
    let exe = d.join("mapper");
    gcc(
        Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../vmlab/tests/data/traces/mapper.c"
        )),
        &exe,
    );
    let out = d.join("mapper.trace");
    let st = vmlab()
        .args(["trace", "record", "--quiet", "-o"])
        .arg(&out)
        .arg("--")
        .arg(&exe)
        .status()
        .unwrap();
    assert!(st.success(), "{st}");
    let ev = events(&out);
    let exe_s = exe.display().to_string();
    // The executable's segments, with its size from the host.
    let exe_len = std::fs::metadata(&exe).unwrap().len();
    assert!(
        ev.iter().any(
            |e| matches!(e, Event::Initial { backing: MapBacking::File { path, size, .. }, prot, .. }
            if *path == exe_s && *size == exe_len && prot & 4 != 0)
        ),
        "{ev:?}"
    );
    // The stack: anonymous, marked PROT_GROWSDOWN.
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::Initial { backing: MapBacking::Anon, prot, .. }
        if prot & trace::lackey::PROT_GROWSDOWN != 0)));
    assert!(ev.iter().any(|e| matches!(e, Event::BrkBase { .. })));
    // mapper's own: an anonymous 3-page mmap, the mremap to 5 pages, its munmap,
    // and the mapping of /etc/hostname.
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::Mmap { len: 12288, backing: MapBacking::Anon, result, .. } if *result > 0)));
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::Mremap { new_len: 20480, result, .. } if *result > 0)));
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::Munmap {
            len: 20480,
            result: 0,
            ..
        }
    )));
    let build = |c: &vmlab::mm::system::MachineConfig| vmlab::host::build_machine(c).map_err(|e| format!("{e:?}"));
    let base = vmlab::mm::system::MachineConfig::default();
    let replay = |frames| {
        vmlab::replay::program::run_program_file(&out, None, &base, frames, &build, &Default::default(), &mut |_| {})
            .unwrap()
    };
    let big = replay(4096);
    assert_eq!(big.outside, 0, "{:?}", big.reported);
    assert_eq!(big.protection, 0, "{:?}", big.reported);
    assert_eq!(big.other_faults, 0, "{:?}", big.reported);
    assert_eq!(big.divergences, 0, "{:?}", big.divergence_list);
    assert!(big.first_touches > 50 && big.first_touches <= big.distinct);
    assert!(big.misses >= big.first_touches);
    assert!(big.references > 100_000);
    let small = replay(16);
    assert!(small.major_faults > 0, "{small:?}");
    assert!(small.misses > big.misses);
    assert_eq!(
        small.outside + small.protection + small.other_faults,
        0,
        "{:?}",
        small.reported
    );
    assert_eq!(small.divergences, 0, "{:?}", small.divergence_list);
    file_contents(&out, &exe, &d);
    let _ = std::fs::remove_dir_all(&d);
}

/// The recording of `exe` (at `out`) replayed with its file contents from
/// the host: the executable's first mapped page holds its ELF header only
/// when `--file`/`--host-files` give it, and a shorter host file is
/// zero-filled to the recorded size.
fn file_contents(out: &Path, exe: &Path, d: &Path) {
    use vmlab::replay::program::{self, Files};
    let ev = events(out);
    let exe_s = exe.display().to_string();
    let exe_len = std::fs::metadata(exe).unwrap().len();
    let start = ev
        .iter()
        .find_map(|e| match e {
            Event::Initial {
                start,
                backing: MapBacking::File { path, pgoff: 0, .. },
                ..
            } if *path == exe_s => Some(*start),
            _ => None,
        })
        .expect("the executable's first segment");
    let head = |files: &Files| {
        let (_, mut r) = trace::open(out, None).unwrap();
        let s = program::survey(&mut *r).unwrap();
        let cfg = program::program_config(&vmlab::mm::system::MachineConfig::default(), 4096, &s).unwrap();
        let m = vmlab::host::build_machine(&cfg).unwrap();
        let (_, mut r) = trace::open(out, None).unwrap();
        let res = program::replay(&m, 4096, &s, &mut *r, files, &mut |_| {}).unwrap();
        let mut buf = [0u8; 8];
        m.read(res.pid, start, &mut buf).unwrap().unwrap();
        (buf, res.files_from_host)
    };
    let (zeros, none) = head(&Files::default());
    assert_eq!(zeros, [0; 8]);
    assert!(none.is_empty());
    let given = Files {
        given: [(exe_s.clone(), exe.to_path_buf())].into(),
        from_host: false,
    };
    let (elf, listed) = head(&given);
    assert_eq!(&elf[..4], b"\x7fELF");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!((listed[0].host_len, listed[0].len), (exe_len, exe_len));
    let (elf2, listed) = head(&Files {
        from_host: true,
        ..Files::default()
    });
    assert_eq!(elf2, elf);
    assert!(listed.iter().any(|f| f.path == exe_s), "{listed:?}");
    let short = d.join("short");
    std::fs::write(&short, b"AB").unwrap();
    let (ab, listed) = head(&Files {
        given: [(exe_s.clone(), short.clone())].into(),
        from_host: false,
    });
    assert_eq!(ab, *b"AB\0\0\0\0\0\0");
    assert_eq!((listed[0].host_len, listed[0].len), (2, exe_len));
    // The CLI: the note on stdout; a recorded path the trace does not map,
    // a malformed value, an unreadable host file and cache mode exit 2.
    let cli = |mode: &str, args: &[&str]| {
        let o = vmlab()
            .args(["replay", "--mode", mode, "--frames", "4096", "--quiet"])
            .arg(out)
            .args(args)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let arg = format!("{exe_s}={}", short.display());
    let (code, stdout, stderr) = cli("full", &["--file", &arg]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains(&format!(
            "file {exe_s}: bytes from {} ({exe_len} bytes, zero-filled from 2 bytes)",
            short.display()
        )),
        "{stdout}"
    );
    for (mode, args, why) in [
        (
            "full",
            vec!["/no/such/recorded=/etc/hostname".to_string()],
            "the trace maps no such file",
        ),
        ("full", vec!["nohost".to_string()], "expected RECORDED=HOST"),
        (
            "full",
            vec![format!("{exe_s}={}", d.join("absent").display())],
            "cannot read",
        ),
        ("cache", vec![arg.clone()], "are for --mode full"),
    ] {
        let args: Vec<&str> = args.iter().flat_map(|s| ["--file", s.as_str()]).collect();
        let (code, _, stderr) = cli(mode, &args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(why), "{args:?}: {stderr}");
    }
}

#[test]
fn a_forking_program_is_refused_with_exit_2() {
    if !have("valgrind") || !have("gcc") {
        eprintln!("skipped: valgrind or gcc not found");
        return;
    }
    let d = tmpdir("fork");
    let src = d.join("fork.c");
    std::fs::write(
        &src,
        "#include <unistd.h>\n#include <sys/wait.h>\nint main(void){pid_t p=fork(); if(p==0) _exit(0); wait(0); return 0;}\n",
    )
    .unwrap();
    let exe = d.join("fork");
    gcc(&src, &exe);
    let out = d.join("fork.trace");
    let o = vmlab()
        .args(["trace", "record", "--quiet", "-o"])
        .arg(&out)
        .arg("--")
        .arg(&exe)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("sys_clone"));
    assert!(!out.exists(), "the recording is discarded");
    let _ = std::fs::remove_dir_all(&d);
}
