//! Unit tests of parsing and validation: defaults, every problem class, secrets kept out.

use super::*;
use std::time::Duration;

const SECRET: &str = "s3cr3t-value-never-printed";

fn env(name: &str) -> Option<String> {
    match name {
        "HR" | "OPS" => Some(SECRET.to_string()),
        "EMPTY" => Some(String::new()),
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
  - { name: hr, corp_id: ww1, secret_env: HR, default: true }
"#;

fn problems(text: &str) -> Vec<Problem> {
    let e = parse(text).expect_err("config should be refused");
    let shown = e.to_string();
    assert!(!shown.contains(SECRET), "secret in message: {shown}");
    e.problems
}

fn has(problems: &[Problem], key: &str, words: &str) -> bool {
    problems
        .iter()
        .any(|p| p.key == key && p.message.contains(words))
}

#[test]
fn minimal_config_gets_every_default() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.admin_listen.to_string(), "127.0.0.1:9901");
    let p = &c.upstreams[0];
    assert_eq!(
        (p.scheme, p.host.as_str(), p.port),
        (Scheme::Https, "qyapi.weixin.qq.com", 443)
    );
    assert_eq!(p.connect_timeout, Duration::from_secs(2));
    assert_eq!(p.timeout, Duration::from_secs(10));
    assert_eq!(c.token.refresh_before_expiry, Duration::from_secs(300));
    assert_eq!(c.defaults.deadline, Duration::from_secs(15));
    assert_eq!(c.defaults.retry.attempts, 3);
    assert_eq!(c.defaults.split.0.len(), 1);
    assert_eq!(c.defaults.quota.len(), 2);
    assert_eq!(c.apps[0].secret.expose(), SECRET);
    assert_eq!(c.apps[0].secret_source, "env HR");
    assert!(c.routes.is_empty() && c.fleet.is_none());
    assert!(
        !format!("{c:?}").contains(SECRET),
        "Debug prints the secret"
    );
}

#[test]
fn full_config_with_routes_and_fleet() {
    let c = parse(
        r#"
listen: "127.0.0.1:18080"
admin_listen: "127.0.0.1:19901"
upstreams:
  primary: { url: "https://qyapi.weixin.qq.com", connect_timeout: 500ms, timeout: 3s }
  standby: { url: "http://10.0.0.5:8443/prefix/" }
apps:
  - { name: hr, corp_id: ww1, agent_id: 1000002, secret_env: HR, default: true }
  - { name: ops, corp_id: ww1, secret_env: OPS }
token: { refresh_before_expiry: 10m }
defaults:
  deadline: 5s
  retry: { attempts: 2, backoff_base: 50ms, backoff_max: 1s }
  quota: ["100/s"]
routes:
  - path: /cgi-bin/message/send
    api: message/send
    idempotent: false
    quota: ["20/s", "10000/min"]
    split: { primary: 90, standby: 10 }
  - path: /cgi-bin/user/*
    allow_debug: true
fleet:
  redis_url: "redis://127.0.0.1:6379/0"
  size: 4
"#,
    )
    .unwrap();
    assert_eq!(c.upstreams[1].base_path, "/prefix");
    assert_eq!(c.upstreams[1].port, 8443);
    assert_eq!(c.routes.len(), 2);
    let send = &c.routes[0].policy;
    assert_eq!(send.split.0[1].1, 10);
    assert_eq!(send.quota.len(), 2);
    assert_eq!(send.deadline, Duration::from_secs(5), "inherits defaults");
    assert_eq!(send.idempotent, Some(false));
    assert_eq!(c.routes[1].path, PathMatch::Prefix("/cgi-bin/user/".into()));
    assert!(c.routes[1].policy.allow_debug);
    let f = c.fleet.unwrap();
    assert_eq!(
        (f.size, f.key_prefix.as_str(), f.share.len()),
        (4, "wecom-sidecar:", 2)
    );
}

#[test]
fn unknown_keys_are_refused_with_their_line() {
    let p =
        problems("upstreams:\n  primary: { url: \"https://x\" }\napps: []\nlisten_port: 8080\n");
    assert_eq!(p.len(), 1);
    assert!(p[0].message.contains("listen_port"), "{p:?}");
    assert_eq!(p[0].line, Some(4));
    let p = problems(&format!("{MINIMAL}token: {{ refresh: 5m }}\n"));
    assert!(p[0].message.contains("refresh"), "{p:?}");
}

#[test]
fn every_problem_is_reported_together() {
    let p = problems(
        r#"
listen: "localhost"
admin_listen: "127.0.0.1:9901"
upstreams:
  primary: { url: "ftp://x", timeout: 0s }
  standby: { url: "https://y?x=1", connect_timeout: 5 parsecs }
apps:
  - { name: "bad name", corp_id: "", secret_env: MISSING }
  - { name: two, corp_id: ww, secret_env: HR, secret_file: /x }
  - { name: three, corp_id: ww, secret_file: /nonexistent/secret }
  - { name: four, corp_id: ww, secret_env: EMPTY }
  - { name: a, corp_id: ww, secret_env: HR, default: true }
  - { name: a, corp_id: ww, secret_env: OPS, default: true }
token: { refresh_before_expiry: 3h }
defaults:
  retry: { attempts: 0, backoff_base: 5s, backoff_max: 1s }
  split: { primary: 50, nowhere: 50 }
  quota: ["10/week"]
routes:
  - path: /user/get
  - path: /cgi-bin/*/get
  - path: /cgi-bin/a
    api: "bad label!"
  - path: /cgi-bin/a
fleet: { size: 0, share: [sessions] }
"#,
    );
    let expect = [
        ("listen", "IP:port"),
        ("upstreams.primary.url", "https://"),
        ("upstreams.primary.timeout", "zero"),
        ("upstreams.standby.url", "query"),
        ("upstreams.standby.connect_timeout", "250ms"),
        ("apps[0].name", "not a valid app name"),
        ("apps[0].corp_id", "empty"),
        ("apps[0].secret_env", "MISSING is not set"),
        ("apps[1].secret_env", "both set"),
        ("apps[2].secret_file", "cannot be read"),
        ("apps[3].secret_env", "EMPTY is not set or empty"),
        ("apps[5].name", "unique"),
        ("apps", "default: true"),
        ("token.refresh_before_expiry", "shorter"),
        ("defaults.retry.attempts", "out of range"),
        ("defaults.retry.backoff_base", "larger than backoff_max"),
        ("defaults.split.nowhere", "names no upstream"),
        ("defaults.split", "add up to 50"),
        ("defaults.quota[0]", "unknown unit"),
        ("routes[0].path", "/cgi-bin/"),
        ("routes[1].path", "only end the path"),
        ("routes[2].api", "metric label"),
        ("routes[3].path", "never apply"),
        ("fleet.redis_url", "missing"),
        ("fleet.size", "at least 1"),
        ("fleet.share[0]", "sessions"),
    ];
    for (key, words) in expect {
        assert!(
            has(&p, key, words),
            "no problem for {key} ({words}) in:\n{p:#?}"
        );
    }
}

#[test]
fn missing_sections_name_the_fix() {
    let p = problems("listen: \"127.0.0.1:1\"\n");
    assert!(has(&p, "upstreams", "primary"));
    assert!(has(&p, "apps", "one entry per WeCom app"));
    let p = problems("upstreams:\n  standby: { url: \"https://x\" }\napps:\n  - { name: a, corp_id: w, secret_env: HR }\n");
    assert!(has(&p, "upstreams.primary", "missing"));
    let p = problems("upstreams:\n  primary: { url: \"https://x\" }\napps:\n  - { name: a, corp_id: w, secret_env: HR }\nlisten: \"127.0.0.1:9901\"\n");
    assert!(has(&p, "admin_listen", "same address"));
}

#[test]
fn secret_files_are_read_and_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hr.secret"), format!("{SECRET}\n")).unwrap();
    let text = "upstreams:\n  primary: { url: \"https://x\" }\napps:\n  - { name: a, corp_id: w, secret_file: hr.secret }\n";
    let c = parse_with_env(text, Some(&dir.path().join("sidecar.yaml")), &env).unwrap();
    assert_eq!(c.apps[0].secret.expose(), SECRET);
    std::fs::write(dir.path().join("hr.secret"), "\n").unwrap();
    let e = parse_with_env(text, Some(&dir.path().join("sidecar.yaml")), &env).unwrap_err();
    assert!(e.problems[0].message.contains("empty"));
}

#[test]
fn missing_file_is_a_clear_problem() {
    let e = load(std::path::Path::new("/nonexistent/sidecar.yaml")).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/sidecar.yaml"));
}
