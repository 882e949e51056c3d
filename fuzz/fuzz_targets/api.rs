//! Fuzz the whole syscall + load/store API of vmlab-mm: the input is a sequence of operations
//! on a small machine (see `fuzz/src/interp.rs`, shared with `crates/vmlab-mm/tests/fuzz_api.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)] // `Scenario::from_bytes` is for the tests
#[path = "../src/interp.rs"]
mod interp;

fuzz_target!(|s: interp::Scenario| {
    interp::run(&s);
});
