//! Replaying traces: through the whole machine (`full`) or through a
//! replacement policy alone (`cache`).

pub mod full;
pub mod program;
