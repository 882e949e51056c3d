//! The Linux oracle in two halves (`vmlab oracle record` / `replay`): random
//! sequences of memory-mapping calls run on the HOST kernel, their answers
//! and end state recorded as JSON Lines in the format of
//! /work/shared/ORACLE-FORMAT.md, then the same calls replayed on vmlab and
//! every answer compared (docs/SEMANTICS.md).
//!
//! - `format`: the types of a recording's lines, read from any file that
//!   follows the format page and written back in it; FNV-1a 64 page hashes.
//! - `gen`: the random sequence generator (a function of seed and sequence number).
//! - `host`: the recorder, a spawned child process that makes the calls on
//!   the host kernel.
//! - `replay`: running a recording on vmlab and listing the divergences.

pub mod format;
pub mod gen;
pub mod host;
pub mod replay;
