#![no_main]
//! The `body` fuzz target: libFuzzer feeds `oracle::check`, which holds the invariants and their
//! independent readings (`tests/fuzz/oracles/body.rs`, shared with the seed replay the test
//! suite runs, `tests/e2e/fuzz_seeds.rs`).

#[path = "../oracles/body.rs"]
mod oracle;

libfuzzer_sys::fuzz_target!(|data: &[u8]| oracle::check(data));
