#![no_main]
//! The `config` fuzz target: libFuzzer feeds `oracle::check`, which holds the invariants and their
//! independent readings (`tests/fuzz/oracles/config.rs`, shared with the seed replay the test
//! suite runs, `tests/e2e/fuzz_seeds.rs`).

#[path = "../oracles/config.rs"]
mod oracle;

libfuzzer_sys::fuzz_target!(|data: &[u8]| oracle::check(data));
