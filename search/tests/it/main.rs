//! The integration tests of this crate in one test binary (`--test it`), one module per
//! file: a single link instead of one per file. `cargo test --test it MODULE::` runs one
//! file's tests.

mod evaluation;
mod metrics_and_records;
mod scripted_search;
