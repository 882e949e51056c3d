//! Helpers shared by the integration tests that compare vmlab with Linux.
#![allow(dead_code)]

pub mod oracle;
