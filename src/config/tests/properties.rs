//! Property tests of the parser: every generated valid config reads back as the model it was
//! written from, and every config with one thing broken is refused naming that key and line.

use std::time::Duration;

use proptest::prelude::*;

use super::*;

/// A duration as the file writes it, and what it means.
#[derive(Debug, Clone)]
struct Written {
    text: String,
    value: Duration,
}

fn duration(ms: std::ops::RangeInclusive<u64>) -> impl Strategy<Value = Written> {
    (ms, 0usize..4).prop_map(|(ms, unit)| {
        // Whole units of the largest kind that divides it, or milliseconds.
        let (text, value) = match unit {
            1 if ms >= 1000 => (format!("{}s", ms / 1000), ms / 1000 * 1000),
            2 if ms >= 60_000 => (format!("{}m", ms / 60_000), ms / 60_000 * 60_000),
            3 if ms >= 3_600_000 => (format!("{}h", ms / 3_600_000), ms / 3_600_000 * 3_600_000),
            _ => (format!("{ms}ms"), ms),
        };
        Written {
            text,
            value: Duration::from_millis(value),
        }
    })
}

/// A word: one of `first`, then up to `more` of `rest`.
fn word(
    prefix: &'static str,
    first: &'static str,
    rest: &'static str,
    more: usize,
) -> impl Strategy<Value = String> {
    let chars = |s: &'static str| s.chars().collect::<Vec<char>>();
    (
        prop::sample::select(chars(first)),
        prop::collection::vec(prop::sample::select(chars(rest)), 0..=more),
    )
        .prop_map(move |(f, r)| {
            std::iter::once(f)
                .chain(r)
                .fold(prefix.to_string(), |mut s, c| {
                    s.push(c);
                    s
                })
        })
}

const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";

/// Quota limits, at most one per period (validation refuses two over the same period).
fn quota() -> impl Strategy<Value = Vec<(String, Rate)>> {
    let one = |unit: &'static str, secs: u64| {
        prop::option::of(1u32..100_000).prop_map(move |count| {
            count.map(|count| {
                (
                    format!("{count}/{unit}"),
                    Rate {
                        count,
                        per: Duration::from_secs(secs),
                    },
                )
            })
        })
    };
    (one("s", 1), one("min", 60), one("h", 3600))
        .prop_map(|(s, m, h)| [s, m, h].into_iter().flatten().collect())
}

/// The parts of a config the generator varies; the rest is left to the defaults.
#[derive(Debug, Clone)]
struct Model {
    listen_port: u16,
    host: String,
    upstream_port: u16,
    connect_timeout: Written,
    apps: Vec<(String, String, Option<i64>)>,
    default_app: Option<usize>,
    attempts: u32,
    backoff_base: Written,
    backoff_extra: Written,
    deadline: Written,
    quota: Vec<(String, Rate)>,
    quota_status: u16,
}

fn model() -> impl Strategy<Value = Model> {
    (
        (
            1024u16..60000,
            word("", LOWER, LOWER, 9),
            1u16..=65535,
            duration(1..=30_000),
        ),
        prop::collection::btree_map(
            word("", LOWER, "abcdefghijklmnopqrstuvwxyz0123456789_-", 12),
            (
                word("ww", "0123456789abcdef", "0123456789abcdef", 15),
                prop::option::of(1i64..10_000_000),
            ),
            1..4,
        ),
        any::<prop::sample::Index>(),
        any::<bool>(),
        (
            1u32..=10,
            duration(1..=5_000),
            duration(0..=60_000),
            duration(1_000..=600_000),
        ),
        quota(),
        prop::sample::select(vec![200u16, 429]),
    )
        .prop_map(
            |(
                (listen_port, host, upstream_port, connect_timeout),
                apps,
                pick,
                has_default,
                (attempts, backoff_base, backoff_extra, deadline),
                quota,
                quota_status,
            )| {
                let apps: Vec<_> = apps.into_iter().map(|(n, (c, a))| (n, c, a)).collect();
                Model {
                    listen_port,
                    host,
                    upstream_port,
                    connect_timeout,
                    default_app: has_default.then(|| pick.index(apps.len())),
                    apps,
                    attempts,
                    backoff_base,
                    backoff_extra,
                    deadline,
                    quota,
                    quota_status,
                }
            },
        )
}

impl Model {
    /// The backoff_max written: base plus extra, in milliseconds.
    fn backoff_max(&self) -> Duration {
        self.backoff_base.value + self.backoff_extra.value
    }

    /// The config text, one key per line (so that a line names one key).
    fn text(&self) -> String {
        let mut t = format!(
            "listen: \"127.0.0.1:{}\"\nupstreams:\n  primary:\n    url: \"https://{}.example:{}\"\n    connect_timeout: {}\napps:\n",
            self.listen_port, self.host, self.upstream_port, self.connect_timeout.text
        );
        for (i, (name, corp, agent)) in self.apps.iter().enumerate() {
            t += &format!("  - name: {name}\n    corp_id: {corp}\n    secret_env: HR\n");
            if let Some(a) = agent {
                t += &format!("    agent_id: {a}\n");
            }
            if self.default_app == Some(i) {
                t += "    default: true\n";
            }
        }
        t += &format!(
            "defaults:\n  deadline: {}\n  quota_status: {}\n  retry:\n    attempts: {}\n    backoff_base: {}\n    backoff_max: {}ms\n  quota: [{}]\n",
            self.deadline.text,
            self.quota_status,
            self.attempts,
            self.backoff_base.text,
            self.backoff_max().as_millis(),
            self.quota.iter().map(|(q, _)| format!("\"{q}\"")).collect::<Vec<_>>().join(", ")
        );
        t
    }
}

/// One thing broken in a valid config's text: the line replaced, the key the problem must
/// name.
fn broken(m: &Model, which: usize) -> (String, String, usize) {
    let text = m.text();
    let lines: Vec<&str> = text.lines().collect();
    let at = |prefix: &str| {
        lines
            .iter()
            .position(|l| l.trim_start().starts_with(prefix))
            .unwrap()
    };
    let (line, replacement, key): (usize, String, String) = match which {
        0 => (
            at("connect_timeout:"),
            "    connect_timeout: 3 parsecs".into(),
            "upstreams.primary.connect_timeout".into(),
        ),
        1 => (
            at("attempts:"),
            format!("    attempts: {}", 11 + m.attempts),
            "defaults.retry.attempts".into(),
        ),
        2 => (
            at("backoff_base:"),
            "    backoff_bse: 1s".into(),
            "defaults.retry.backoff_bse".into(),
        ),
        3 => (
            at("quota_status:"),
            "  quota_status: 302".into(),
            "defaults.quota_status".into(),
        ),
        4 => (
            at("deadline:"),
            "  deadline: -1s".into(),
            "defaults.deadline".into(),
        ),
        5 => (
            at("corp_id:"),
            "    corp_id: [ww1]".into(),
            "apps[0].corp_id".into(),
        ),
        _ => (
            at("listen:"),
            "listen: \"127.0.0.1:99999\"".into(),
            "listen".into(),
        ),
    };
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    out[line] = replacement;
    (out.join("\n") + "\n", key, line + 1)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_generated_config_reads_back_as_written(m in model()) {
        let text = m.text();
        let c = parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(c.listen.port(), m.listen_port);
        let p = &c.upstreams[0];
        let host = format!("{}.example", m.host);
        prop_assert_eq!((p.host.as_str(), p.port), (host.as_str(), m.upstream_port));
        prop_assert_eq!(p.connect_timeout, m.connect_timeout.value);
        prop_assert_eq!(c.apps.len(), m.apps.len());
        for (i, (a, (name, corp, agent))) in c.apps.iter().zip(&m.apps).enumerate() {
            prop_assert_eq!(a.name.as_str(), name.as_str());
            prop_assert_eq!(&a.corp_id, corp);
            prop_assert_eq!(a.agent_id, *agent);
            prop_assert_eq!(a.default, m.default_app == Some(i));
        }
        let d = &c.defaults;
        prop_assert_eq!(d.deadline, m.deadline.value);
        prop_assert_eq!(d.quota_status, m.quota_status);
        prop_assert_eq!(d.retry.attempts, m.attempts);
        prop_assert_eq!(d.retry.backoff_base, m.backoff_base.value);
        prop_assert_eq!(d.retry.backoff_max, m.backoff_max());
        prop_assert_eq!(&d.quota, &m.quota.iter().map(|(_, r)| *r).collect::<Vec<_>>());
    }

    #[test]
    fn every_broken_config_names_its_key_and_line(m in model(), which in 0usize..7) {
        let (text, key, line) = broken(&m, which);
        let e = match parse(&text) {
            Ok(_) => return Err(TestCaseError::fail(format!("accepted:\n{text}"))),
            Err(e) => e,
        };
        prop_assert!(
            e.problems.iter().any(|p| p.key == key && p.line == Some(line)),
            "no problem at {} (line {}) in: {}\n{}", key, line, e, text
        );
    }
}
