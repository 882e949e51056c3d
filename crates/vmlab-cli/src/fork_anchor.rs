//! `vmlab __fork-anchor --bytes N --runs R` (hidden): the host kernel's
//! `fork()` as an outside anchor for `vmlab exp fork`.
//!
//! `vmlab exp fork` spawns the vmlab executable afresh in this mode, so the
//! process forked is a small one of its own, not the experiment's process
//! that holds the simulated RAM:
//! it maps N bytes of private anonymous memory (4 KiB pages: transparent huge
//! pages are turned off for the range), writes every page, and then
//! - R times: `fork()`, timed in the parent from the call to its return; the
//!   child `_exit(0)`s at once and the parent reaps it;
//! - R times: `fork()`, and the child times its first write to every page and
//!   sends the elapsed nanoseconds to the parent through a pipe.
//!
//! Each series starts with one unmeasured warm-up. Prints one JSON object:
//! `{"bytes", "runs", "page_size", "thp_disabled", "fork_ns": [...], "first_writes_ns": [...]}`.
//! Exit code 2 for bad arguments, 1 if a system call fails.

use std::process::ExitCode;
use std::time::Instant;

const PAGE: usize = 4096;

fn usage(msg: &str) -> ExitCode {
    eprintln!("vmlab __fork-anchor: {msg}\nusage: vmlab __fork-anchor --bytes N --runs R");
    ExitCode::from(2)
}

fn fail(what: &str) -> ExitCode {
    eprintln!("vmlab __fork-anchor: {what}: {}", std::io::Error::last_os_error());
    ExitCode::from(1)
}

/// Run the anchor with the arguments that follow `__fork-anchor`.
pub fn run(args: &[String]) -> ExitCode {
    let (mut bytes, mut runs) = (None::<usize>, None::<usize>);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let val = it.next();
        let parsed = val.and_then(|v| v.parse::<usize>().ok());
        match a.as_str() {
            "--bytes" => bytes = parsed,
            "--runs" => runs = parsed,
            _ => return usage(&format!("unknown argument {a:?}")),
        }
        if parsed.is_none() {
            return usage(&format!("{a} needs a non-negative integer"));
        }
    }
    let (Some(bytes), Some(runs)) = (bytes, runs) else {
        return usage("--bytes and --runs are required");
    };
    if bytes == 0 || bytes % PAGE != 0 || runs == 0 {
        return usage("--bytes must be a positive multiple of 4096 and --runs at least 1");
    }
    let pages = bytes / PAGE;

    // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return fail("mmap");
    }
    let base = base as *mut u8;
    // SAFETY: the range was just mapped. Failure only leaves THP as configured.
    let thp_disabled = unsafe { libc::madvise(base.cast(), bytes, libc::MADV_NOHUGEPAGE) } == 0;
    let touch = |val: u8| {
        for i in 0..pages {
            // SAFETY: page i lies inside the mapping.
            unsafe { std::ptr::write_volatile(base.add(i * PAGE), val) };
        }
    };
    touch(1);

    let mut fork_ns = Vec::with_capacity(runs);
    for run in 0..=runs {
        let t = Instant::now();
        // SAFETY: this process is single-threaded; the child only calls _exit.
        let pid = unsafe { libc::fork() };
        let dt = t.elapsed().as_nanos() as u64;
        if pid < 0 {
            return fail("fork");
        }
        if pid == 0 {
            // SAFETY: async-signal-safe exit of the child.
            unsafe { libc::_exit(0) };
        }
        if !reap(pid) {
            return fail("waitpid");
        }
        if run > 0 {
            fork_ns.push(dt);
        }
    }

    let mut first_ns = Vec::with_capacity(runs);
    for run in 0..=runs {
        let mut fds = [0i32; 2];
        // SAFETY: fds has room for the two descriptors.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return fail("pipe");
        }
        // SAFETY: single-threaded; the child touches memory, reads the clock, writes the pipe and _exits.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return fail("fork");
        }
        if pid == 0 {
            let t = Instant::now();
            touch(2);
            let dt = t.elapsed().as_nanos() as u64;
            let buf = dt.to_ne_bytes();
            // SAFETY: writes 8 bytes from a live buffer to the pipe, then exits without unwinding.
            unsafe {
                let ok = libc::write(fds[1], buf.as_ptr().cast(), buf.len()) == buf.len() as isize;
                libc::_exit(if ok { 0 } else { 1 });
            }
        }
        // SAFETY: closing the parent's copy of the write end.
        unsafe { libc::close(fds[1]) };
        let mut buf = [0u8; 8];
        let mut got = 0usize;
        while got < buf.len() {
            // SAFETY: reads into the unfilled tail of buf.
            let n = unsafe { libc::read(fds[0], buf[got..].as_mut_ptr().cast(), buf.len() - got) };
            if n <= 0 {
                break;
            }
            got += n as usize;
        }
        // SAFETY: closing our read end.
        unsafe { libc::close(fds[0]) };
        if !reap(pid) || got != buf.len() {
            eprintln!("vmlab __fork-anchor: the first-writes child did not report its time");
            return ExitCode::from(1);
        }
        if run > 0 {
            first_ns.push(u64::from_ne_bytes(buf));
        }
    }

    let list = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
    println!(
        "{{\"bytes\": {bytes}, \"runs\": {runs}, \"page_size\": {PAGE}, \"thp_disabled\": {thp_disabled}, \
         \"fork_ns\": [{}], \"first_writes_ns\": [{}]}}",
        list(&fork_ns),
        list(&first_ns)
    );
    ExitCode::SUCCESS
}

/// Wait for `pid`; whether it exited with status 0.
fn reap(pid: libc::pid_t) -> bool {
    let mut status = 0;
    loop {
        // SAFETY: status is a valid out pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
        }
        if r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return false;
        }
    }
}
