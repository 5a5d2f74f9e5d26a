//! The config parser: `config::parse_with_env` on arbitrary text (the input is the YAML file
//! itself, so the seeds are real config files).
//!
//! Invariants:
//! - never panics: any text gives a `Config` or a `ConfigError` with at least one problem;
//! - no secret in the output: the stand-in environment and the secret files hold `SECRET`, and
//!   neither the `Debug` of a `Config` nor the text of a `ConfigError` ever shows it (unless the
//!   config text itself contains it);
//! - problem lines are 1-based and inside the file;
//! - an accepted config keeps the promises of `config::model` (primary upstream, at most one
//!   default app, splits of configured upstreams adding up to 100, retry attempts 1 to 10, ...);
//! - `units::parse_duration` / `parse_rate` round-trip what they accept.
//!
//! The environment is chosen by the variable name, so the text picks it: names ending in
//! `UNSET` are unset, `EMPTY` empty, `SPACE` hold spaces, `CTRL` a control character, names
//! containing `URL` a Redis URL with the secret as password; `STATE_DIRECTORY` (not a secret:
//! the default store's folder) a path; any other holds `SECRET` followed by its name.
//! Relative `secret_file`/`key_file`/`ca_file` paths start at a scratch directory holding
//! `secret`, `key`, `empty`, `big`, `binary`, `ca.pem` and a directory `dir`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use wecom_sidecar::config::{self, defaults, units, Config};

/// What every secret holds. Long, mixed case and digits, so no message template contains it.
const SECRET: &str = "fzSeCrEt7Q9x2V4b6N8m1K3j5H0gWqPzLr";

fn env(name: &str) -> Option<String> {
    let n = name.to_ascii_uppercase();
    if name == "STATE_DIRECTORY" {
        // Not a secret: the folder systemd gives the service, read for the default store path.
        Some("/var/lib/wecom-sidecar".to_string())
    } else if n.ends_with("UNSET") {
        None
    } else if n.ends_with("EMPTY") {
        Some(String::new())
    } else if n.ends_with("SPACE") {
        Some(format!("{SECRET} {SECRET}\n"))
    } else if n.ends_with("CTRL") {
        Some(format!("{SECRET}\u{1b}[0m"))
    } else if n.contains("URL") {
        Some(format!("rediss://:{SECRET}@127.0.0.1:6380/0"))
    } else {
        // Distinct per variable (two clients may not share a key).
        Some(format!("{SECRET}{name}"))
    }
}

/// The directory the config "lives" in; made once per process.
fn source() -> &'static Path {
    static SOURCE: OnceLock<PathBuf> = OnceLock::new();
    SOURCE.get_or_init(|| {
        let dir = std::env::temp_dir().join("wecom-sidecar-fuzz-config");
        std::fs::create_dir_all(dir.join("dir")).expect("scratch dir");
        let files: [(&str, Vec<u8>); 6] = [
            ("secret", format!("{SECRET}\n").into_bytes()),
            ("key", SECRET.as_bytes().to_vec()),
            ("empty", Vec::new()),
            // Over the 64 KiB a secret file may hold.
            ("big", SECRET.repeat(2000).into_bytes()),
            (
                "binary",
                [b"\xff\xfe".as_slice(), SECRET.as_bytes()].concat(),
            ),
            ("ca.pem", include_bytes!("../../data/test-ca.pem").to_vec()),
        ];
        for (name, content) in files {
            std::fs::write(dir.join(name), content).expect("scratch file");
        }
        dir.join("sidecar.yaml")
    })
}

/// Checks one input against the invariants above; panics when one does not hold.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    units_round_trip(text);

    let result = config::parse_with_env(text, Some(source()), &env);
    if show() {
        match &result {
            Ok(cfg) => eprintln!("accepted: {cfg:?}"),
            Err(e) => eprintln!("refused:\n{e}"),
        }
    }
    let quoted = text.contains(SECRET);
    match result {
        Ok(cfg) => {
            if !quoted {
                let shown = format!("{cfg:?}");
                assert!(
                    !shown.contains(SECRET),
                    "secret in Debug of Config: {shown}"
                );
            }
            check_config(&cfg);
        }
        Err(e) => {
            assert!(!e.problems.is_empty(), "ConfigError without problems");
            let shown = e.to_string();
            if !quoted {
                assert!(!shown.contains(SECRET), "secret in ConfigError: {shown}");
            }
            // YAML line breaks: \n, \r\n, \r, and (libyaml) NEL, LS, PS.
            let breaks = text
                .chars()
                .filter(|c| matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}'))
                .count();
            for p in &e.problems {
                if let Some(line) = p.line {
                    assert!(
                        line >= 1 && line <= breaks + 2,
                        "problem line {line} outside a text of {breaks} line breaks: {p}"
                    );
                }
            }
        }
    }
}

/// `FUZZ_SHOW=1`: print what each input gives (to look at seeds, e.g. with `-runs=0`).
fn show() -> bool {
    static SHOW: OnceLock<bool> = OnceLock::new();
    *SHOW.get_or_init(|| std::env::var_os("FUZZ_SHOW").is_some())
}

fn check_config(cfg: &Config) {
    assert_ne!(
        cfg.listen, cfg.admin_listen,
        "listen and admin_listen are the same"
    );
    assert!(
        cfg.upstream(defaults::PRIMARY_UPSTREAM).is_some(),
        "no primary upstream"
    );
    assert!(!cfg.apps.is_empty(), "no app");
    assert!(
        cfg.apps.iter().filter(|a| a.default).count() <= 1,
        "more than one default app"
    );
    assert!(
        cfg.token.refresh_before_expiry < Duration::from_secs(defaults::TOKEN_LIFETIME_SECS),
        "refresh_before_expiry not shorter than a token's life"
    );
    assert!(
        cfg.outlier.base_ejection <= cfg.outlier.max_ejection,
        "base_ejection > max_ejection"
    );
    let policies = std::iter::once(&cfg.defaults).chain(cfg.routes.iter().map(|r| &r.policy));
    for p in policies {
        let sum: u32 = p.split.0.iter().map(|(_, w)| *w).sum();
        assert_eq!(sum, defaults::SPLIT_TOTAL, "split {:?}", p.split);
        for (name, w) in &p.split.0 {
            assert!(*w <= defaults::SPLIT_TOTAL, "weight {w}");
            assert!(
                cfg.upstream(name.as_str()).is_some(),
                "split names unknown upstream {name}"
            );
        }
        assert!(
            (defaults::MIN_RETRY_ATTEMPTS..=defaults::MAX_RETRY_ATTEMPTS)
                .contains(&p.retry.attempts),
            "attempts {}",
            p.retry.attempts
        );
        assert!(
            p.retry.backoff_base <= p.retry.backoff_max,
            "backoff_base > backoff_max: {:?}",
            p.retry
        );
        assert!(
            p.duplicate_check_interval >= Duration::from_secs(1)
                && p.duplicate_check_interval.as_secs()
                    <= defaults::MAX_DUPLICATE_CHECK_INTERVAL_SECS,
            "duplicate_check_interval {:?}",
            p.duplicate_check_interval
        );
    }
}

/// Units, on short texts: what they accept parses back to the same value.
fn units_round_trip(text: &str) {
    if text.len() > 64 {
        return;
    }
    if let Ok(d) = units::parse_duration(text) {
        let ms = u64::try_from(d.as_millis()).expect("durations are whole milliseconds in u64");
        assert_eq!(units::parse_duration(&format!("{ms}ms")), Ok(d), "{text:?}");
        if units::parse_positive_duration(text).is_err() {
            assert!(d.is_zero(), "{text:?} refused as positive but is {d:?}");
        }
    }
    if let Ok(rate) = units::parse_rate(text) {
        assert!(rate.count >= 1, "{text:?} gives a zero count");
        assert_eq!(
            units::parse_rate(&rate.to_string()),
            Ok(rate),
            "{text:?} does not round-trip"
        );
    }
}
