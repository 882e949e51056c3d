//! Helpers shared by the integration tests: the machine config from
//! `VMLAB_TEST_SET` (every test that builds a machine) and the oracle that
//! compares vmlab with Linux.
#![allow(dead_code)]

pub mod oracle;

// `test_config()` and the rest: the machine config from `VMLAB_TEST_SET`,
// one file for both crates' tests.
#[path = "../../../vmlab-mm/tests/common/mod.rs"]
mod test_set;
pub use test_set::*;
