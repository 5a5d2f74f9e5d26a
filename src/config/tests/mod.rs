//! Unit tests of parsing and validation: defaults, every problem class, lines, secrets kept out.
//! Shared helpers here; one file per part of the config.

mod format;
mod policy;
mod properties;
mod secrets;
mod sections;
mod whole;

use super::*;

const SECRET: &str = "s3cr3t-value-never-printed";

const OTHER_SECRET: &str = "An0ther_Secret_Value_9";

fn env(name: &str) -> Option<String> {
    match name {
        "HR" => Some(SECRET.to_string()),
        "OPS" => Some(format!("{OTHER_SECRET}\n")),
        "EMPTY" => Some(String::new()),
        "BLANK" => Some(" \n".to_string()),
        "SPACED" => Some(format!("{SECRET} {SECRET}")),
        "KEY_A" => Some("k".repeat(40)),
        "KEY_B" => Some("b".repeat(40)),
        "SHORT_KEY" => Some("too-short".to_string()),
        "REDIS" => Some("rediss://:hunter2-redis-pw@redis.internal:6380/0".to_string()),
        "NOT_REDIS" => Some("http://:hunter2-redis-pw@redis.internal/".to_string()),
        // The conf/ examples' variables.
        "WECOM_HR_SECRET" | "WECOM_OPS_SECRET" | "WECOM_DEV_HR_SECRET" | "WECOM_DEV_OPS_SECRET" => {
            Some(SECRET.to_string())
        }
        // Callback credentials of WeCom's shapes (a Token; a 43-character EncodingAESKey).
        "WECOM_DEV_HR_CB_TOKEN" | "WECOM_HR_CB_TOKEN" | "WECOM_OPS_CB_TOKEN" => {
            Some("StandInToken".to_string())
        }
        "WECOM_DEV_HR_CB_AES_KEY" | "WECOM_HR_CB_AES_KEY" | "WECOM_OPS_CB_AES_KEY" => {
            Some("A".repeat(43))
        }
        _ => None,
    }
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    parse_with_env(text, None, &env)
}

const MINIMAL: &str = r#"
upstreams:
  primary: { url: "https://qyapi.weixin.qq.com" }
apps:
  - { name: hr, corp_id: ww1, secret_env: HR }
"#;

/// The problems of a config that must be refused, checking no secret leaked into them.
fn problems(text: &str) -> Vec<Problem> {
    let e = parse(text).expect_err("config should be refused");
    let shown = format!("{e}\n{e:?}");
    for secret in [SECRET, OTHER_SECRET, "hunter2"] {
        assert!(!shown.contains(secret), "secret in message: {shown}");
    }
    e.problems
}

fn find<'a>(problems: &'a [Problem], key: &str, words: &str) -> Option<&'a Problem> {
    problems
        .iter()
        .find(|p| p.key == key && p.message.contains(words))
}

#[track_caller]
fn assert_problem(problems: &[Problem], key: &str, words: &str) {
    assert!(
        find(problems, key, words).is_some(),
        "no problem at {key} saying {words:?} in:\n{}",
        ConfigError {
            problems: problems.to_vec()
        }
    );
}

/// `MINIMAL` plus `extra` top-level YAML.
fn with(extra: &str) -> String {
    format!("{MINIMAL}{extra}")
}

const FULL: &str = r#"
listen: "127.0.0.1:18080"
admin_listen: "[::1]:19901"
upstreams:
  primary: { url: "https://qyapi.weixin.qq.com", connect_timeout: 500ms, timeout: 3s }
  standby: { url: "http://10.0.0.5:8443/prefix/" }
  v6: { url: "https://[fd00::1]:9443" }
apps:
  - { name: hr, corp_id: ww1, agent_id: 1000002, secret_env: HR, default: true }
  - { name: ops, corp_id: " ww1 ", secret_env: OPS }
token: { refresh_before_expiry: 10m }
defaults:
  deadline: 5s
  retry: { attempts: 2, backoff_base: 50ms, backoff_max: 1s }
  split: { primary: 100 }
  quota: ["100/s"]
  idempotent: true
  allow_debug: false
  on_limit: wait
  max_wait: 2s
  quota_status: 429
  recipient_cap: false
  dedupe: true
  duplicate_check_interval: 1h
routes:
  - path: /cgi-bin/message/send
    api: message/send
    idempotent: false
    quota: ["20/s", "10000/min"]
    split: { standby: 10, primary: 90 }
    deadline: 20s
    retry: { attempts: 1 }
    on_limit: reject
  - path: /cgi-bin/user/*
    allow_debug: true
    max_wait: 300ms
  - path: /cgi-bin/*
    split: { primary: 0, standby: 0, v6: 100 }
fleet:
  redis_url_env: REDIS
  key_prefix: "team-a:"
  size: 4
  share: [quotas, tokens, quotas]
  timeout: 1s
"#;

/// A self-signed CA certificate (its key was thrown away).
pub(crate) const TEST_CA_PEM: &str = include_str!("../../../tests/data/test-ca.pem");
