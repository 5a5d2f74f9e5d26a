//! The fuzz targets' oracles (`tests/fuzz/oracles/`) run by the test suite: every committed
//! seed, the shipped configs, and a fixed number of inputs made from them by the mutations
//! libFuzzer starts with (cuts, byte flips, dictionary words put in, two seeds spliced), from a
//! fixed random seed so a failure replays.
//!
//! This keeps the oracles building against the library and their invariants checked on every
//! run at a small cost; the coverage-guided search is `bash tests/fuzz/run.sh` (README "Fuzzing"),
//! which shares the same oracles. A failing input is written to
//! `target/fuzz-seeds-failures/<target>-<n>` for `cargo fuzz run … <target> <file>`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[path = "../fuzz/oracles/body.rs"]
mod body;
#[path = "../fuzz/oracles/config.rs"]
mod config;
#[path = "../fuzz/oracles/query.rs"]
mod query;
#[path = "../fuzz/oracles/redact.rs"]
mod redact;

/// Inputs made from the seeds, per target, on top of the seeds themselves.
const MUTANTS: usize = 3000;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The committed seeds of `target`, sorted by name (so the mutations are the same every run).
fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = root().join("tests/fuzz/seeds").join(target);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a seed entry").path())
        .collect();
    paths.sort();
    let seeds: Vec<Vec<u8>> = paths.iter().map(|p| read(p)).collect();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The words of a libFuzzer dictionary (`"…"` lines, with `\"`, `\\` and `\xNN` escapes).
fn dictionary(target: &str) -> Vec<Vec<u8>> {
    let path = root()
        .join("tests/fuzz/dicts")
        .join(format!("{target}.dict"));
    let text = String::from_utf8(read(&path)).expect("a dictionary is text");
    let mut words = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let (Some(start), Some(end)) = (line.find('"'), line.rfind('"')) else {
            continue;
        };
        if line.starts_with('#') || end <= start {
            continue;
        }
        let inner = &line.as_bytes()[start + 1..end];
        let mut word = Vec::with_capacity(inner.len());
        let mut i = 0;
        while i < inner.len() {
            match (inner[i], inner.get(i + 1)) {
                (b'\\', Some(b'x')) if i + 4 <= inner.len() => {
                    let hex = std::str::from_utf8(&inner[i + 2..i + 4]);
                    match hex.ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        Some(b) => {
                            word.push(b);
                            i += 4;
                        }
                        None => {
                            word.push(b'\\');
                            i += 1;
                        }
                    }
                }
                (b'\\', Some(&c)) => {
                    word.push(c);
                    i += 2;
                }
                (c, _) => {
                    word.push(c);
                    i += 1;
                }
            }
        }
        words.push(word);
    }
    assert!(!words.is_empty(), "no words in {}", path.display());
    words
}

/// One input made from the seeds: a cut, flipped bytes, a dictionary word put in, or a splice.
fn mutate(rng: &mut StdRng, seeds: &[Vec<u8>], words: &[Vec<u8>]) -> Vec<u8> {
    let mut input = seeds[rng.random_range(0..seeds.len())].clone();
    for _ in 0..rng.random_range(1..=3) {
        let len = input.len();
        match rng.random_range(0..5) {
            0 if len > 0 => input.truncate(rng.random_range(0..len)),
            1 if len > 0 => {
                let at = rng.random_range(0..len);
                input[at] ^= 1 << rng.random_range(0..8);
            }
            2 => {
                let word = &words[rng.random_range(0..words.len())];
                let at = rng.random_range(0..=len);
                input.splice(at..at, word.iter().copied());
            }
            3 => {
                let other = &seeds[rng.random_range(0..seeds.len())];
                let cut = rng.random_range(0..=len);
                let from = rng.random_range(0..=other.len());
                input.truncate(cut);
                input.extend_from_slice(&other[from..]);
            }
            _ if len > 0 => {
                let at = rng.random_range(0..len);
                input[at] = rng.random();
            }
            _ => input.push(rng.random()),
        }
    }
    input
}

/// Runs `check` on every seed and on [`MUTANTS`] inputs made from them; on a failure, saves the
/// input and fails with its path.
fn replay(target: &str, extra: Vec<Vec<u8>>, check: fn(&[u8])) {
    let mut seeds = seeds(target);
    seeds.extend(extra);
    let words = dictionary(target);
    let mut rng = StdRng::seed_from_u64(0x5eed_f022);
    let mutants: Vec<Vec<u8>> = (0..MUTANTS)
        .map(|_| mutate(&mut rng, &seeds, &words))
        .collect();
    for (n, input) in seeds.iter().chain(mutants.iter()).enumerate() {
        if catch_unwind(AssertUnwindSafe(|| check(input))).is_err() {
            let dir = root().join("target/fuzz-seeds-failures");
            std::fs::create_dir_all(&dir).expect("a folder for the failing input");
            let path = dir.join(format!("{target}-{n}"));
            std::fs::write(&path, input).expect("the failing input saved");
            panic!(
                "the {target} oracle failed on input {n} (saved to {}; replay with \
                 `cargo fuzz run --fuzz-dir tests/fuzz --sanitizer none {target} {}`)",
                path.display(),
                path.display()
            );
        }
    }
}

#[test]
fn body_oracle_holds_on_seeds_and_their_mutations() {
    replay("body", Vec::new(), body::check);
}

#[test]
fn config_oracle_holds_on_seeds_shipped_configs_and_their_mutations() {
    let mut shipped: Vec<PathBuf> = std::fs::read_dir(root().join("conf"))
        .expect("conf/")
        .map(|e| e.expect("a conf entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    shipped.sort();
    assert!(!shipped.is_empty(), "no configs in conf/");
    replay(
        "config",
        shipped.iter().map(|p| read(p)).collect(),
        config::check,
    );
}

#[test]
fn query_oracle_holds_on_seeds_and_their_mutations() {
    replay("query", Vec::new(), query::check);
}

#[test]
fn redact_oracle_holds_on_seeds_and_their_mutations() {
    replay("redact", Vec::new(), redact::check);
}

/// The replay is only worth its run if a broken invariant fails it: an oracle that panics on
/// some input is reported, with the input saved.
#[test]
fn a_failing_oracle_is_reported_with_its_input() {
    fn fails_on_errcode(input: &[u8]) {
        assert!(
            !input.windows(7).any(|w| w == b"errcode"),
            "planted failure"
        );
    }
    let caught = catch_unwind(|| replay("body", Vec::new(), fails_on_errcode));
    let message = caught.expect_err("the planted failure is found");
    let text = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(text.contains("the body oracle failed"), "{text}");
    let saved = text
        .split("saved to ")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .expect("the saved path is named");
    assert!(read(Path::new(saved)).windows(7).any(|w| w == b"errcode"));
}
