//! Unit tests of parsing and validation: defaults, every problem class, lines, secrets kept out.

use super::*;
use std::time::Duration;

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

#[test]
fn minimal_config_gets_every_default() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.admin_listen.to_string(), "127.0.0.1:9901");
    assert_eq!(c.upstreams.len(), 1);
    let p = &c.upstreams[0];
    assert_eq!(p.name.as_str(), "primary");
    assert_eq!(
        (p.scheme, p.host.as_str(), p.port, p.base_path.as_str()),
        (Scheme::Https, "qyapi.weixin.qq.com", 443, "")
    );
    assert_eq!(p.connect_timeout, Duration::from_secs(2));
    assert_eq!(p.timeout, Duration::from_secs(10));
    assert_eq!(p.ca_file, None);
    assert_eq!(p.authority(), "qyapi.weixin.qq.com");
    assert_eq!(c.token.refresh_before_expiry, Duration::from_secs(300));

    let d = &c.defaults;
    assert_eq!(d.deadline, Duration::from_secs(15));
    assert_eq!(
        d.retry,
        RetryPolicy {
            attempts: 3,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2)
        }
    );
    assert_eq!(d.split, Split(vec![(UpstreamName("primary".into()), 100)]));
    let quota: Vec<String> = d.quota.iter().map(Rate::to_string).collect();
    assert_eq!(quota, ["10000/min", "150000/h"]);
    assert_eq!(d.idempotent, None);
    assert!(!d.allow_debug);
    assert_eq!(d.on_limit, OnLimit::Reject);
    assert_eq!(d.quota_status, 200);
    assert!(d.recipient_cap);
    assert!(!d.dedupe);
    assert_eq!(d.duplicate_check_interval, Duration::from_secs(1800));

    let app = &c.apps[0];
    assert_eq!(app.secret.expose(), SECRET);
    assert_eq!(app.secret_source, "env HR");
    assert_eq!((app.corp_id.as_str(), app.agent_id), ("ww1", None));
    assert!(!app.default, "a lone app is not implicitly the default");
    assert!(c.default_app().is_none());
    assert!(c.routes.is_empty() && c.fleet.is_none() && c.source.is_none());
    assert!(
        !format!("{c:?}").contains(SECRET),
        "Debug prints the secret"
    );
}

#[test]
fn empty_file_asks_for_the_required_sections() {
    for text in ["", "# nothing yet\n", "---\n"] {
        let p = problems(text);
        assert_problem(&p, "upstreams", "is missing");
        assert_problem(&p, "apps", "is missing");
        assert_eq!(p.len(), 2, "{p:#?}");
    }
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

#[test]
fn full_config_with_routes_and_fleet() {
    let c = parse(FULL).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:18080");
    assert_eq!(c.admin_listen.to_string(), "[::1]:19901");
    let names: Vec<&str> = c.upstreams.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(
        names,
        ["primary", "standby", "v6"],
        "declaration order kept"
    );
    let primary = c.upstream("primary").unwrap();
    assert_eq!(primary.connect_timeout, Duration::from_millis(500));
    assert_eq!(primary.timeout, Duration::from_secs(3));
    let standby = c.upstream("standby").unwrap();
    assert_eq!(
        (standby.scheme, standby.host.as_str(), standby.port),
        (Scheme::Http, "10.0.0.5", 8443)
    );
    assert_eq!(standby.base_path, "/prefix", "no trailing slash");
    assert_eq!(standby.timeout, Duration::from_secs(10));
    let v6 = c.upstream("v6").unwrap();
    assert_eq!((v6.host.as_str(), v6.port), ("fd00::1", 9443));
    assert_eq!(v6.authority(), "[fd00::1]:9443");

    assert_eq!(c.default_app().unwrap().name.as_str(), "hr");
    assert_eq!(c.apps[0].agent_id, Some(1000002));
    let ops = c.app("ops").unwrap();
    assert_eq!(ops.corp_id, "ww1", "corp id trimmed");
    assert_eq!(
        ops.secret.expose(),
        OTHER_SECRET,
        "trailing newline trimmed"
    );
    assert!(!ops.default);
    assert_eq!(c.token.refresh_before_expiry, Duration::from_secs(600));

    let d = &c.defaults;
    assert_eq!(d.deadline, Duration::from_secs(5));
    assert_eq!(d.retry.attempts, 2);
    assert_eq!(
        d.quota,
        vec![Rate {
            count: 100,
            per: Duration::from_secs(1)
        }]
    );
    assert_eq!(d.idempotent, Some(true));
    assert_eq!(
        d.on_limit,
        OnLimit::Wait {
            max_wait: Duration::from_secs(2)
        }
    );
    assert_eq!(d.quota_status, 429);
    assert!(!d.recipient_cap && d.dedupe);
    assert_eq!(d.duplicate_check_interval, Duration::from_secs(3600));

    assert_eq!(c.routes.len(), 3);
    let send = &c.routes[0];
    assert_eq!(send.path, PathMatch::Exact("/cgi-bin/message/send".into()));
    assert_eq!(send.api.as_deref(), Some("message/send"));
    let sp = &send.policy;
    assert_eq!(
        sp.split,
        Split(vec![
            (UpstreamName("standby".into()), 10),
            (UpstreamName("primary".into()), 90)
        ]),
        "split keeps the file's order"
    );
    assert_eq!(sp.quota.len(), 2);
    assert_eq!(sp.deadline, Duration::from_secs(20));
    assert_eq!(sp.retry.attempts, 1);
    assert_eq!(
        sp.retry.backoff_base,
        Duration::from_millis(50),
        "rest of retry inherited"
    );
    assert_eq!(sp.idempotent, Some(false));
    assert_eq!(sp.on_limit, OnLimit::Reject);
    assert_eq!(sp.quota_status, 429, "inherits defaults");

    let user = &c.routes[1];
    assert_eq!(user.path, PathMatch::Prefix("/cgi-bin/user/".into()));
    assert_eq!(user.api, None);
    assert!(user.policy.allow_debug);
    assert_eq!(
        user.policy.on_limit,
        OnLimit::Wait {
            max_wait: Duration::from_millis(300)
        }
    );
    assert_eq!(user.policy.quota, d.quota, "inherits defaults");
    assert_eq!(
        c.routes[2].policy.split.0[2],
        (UpstreamName("v6".into()), 100)
    );

    let f = c.fleet.as_ref().unwrap();
    assert_eq!(f.redis_url.expose(), env("REDIS").unwrap());
    assert_eq!((f.size, f.key_prefix.as_str()), (4, "team-a:"));
    assert_eq!(f.share, [Shared::Tokens, Shared::Quotas]);
    assert_eq!(f.timeout, Duration::from_secs(1));
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains(OTHER_SECRET),
        "{shown}"
    );
}

#[test]
fn fleet_defaults() {
    let c = parse(&with(
        "fleet: { redis_url: \"redis://127.0.0.1:6379/0\" }\n",
    ))
    .unwrap();
    let f = c.fleet.unwrap();
    assert_eq!(f.redis_url.expose(), "redis://127.0.0.1:6379/0");
    assert_eq!((f.key_prefix.as_str(), f.size), ("wecom-sidecar:", 1));
    assert_eq!(f.share, [Shared::Tokens, Shared::Quotas]);
    assert_eq!(f.timeout, Duration::from_millis(250));
}

#[test]
fn fleet_timeout_is_positive_and_bounded() {
    for (value, words) in [
        ("0s", "is zero"),
        ("10s", "over 5s"),
        ("soon", "not a duration"),
    ] {
        let p = problems(&with(&format!(
            "fleet: {{ redis_url: \"redis://127.0.0.1:6379/0\", timeout: {value} }}\n"
        )));
        assert_problem(&p, "fleet.timeout", words);
    }
}

#[test]
fn unknown_keys_are_refused_with_their_line() {
    let p = problems(&with("listen_port: 8080\n"));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "listen_port");
    assert_eq!(p[0].line, Some(6));
    assert!(
        p[0].message.contains("unknown field `listen_port`"),
        "{p:?}"
    );
    assert!(
        p[0].message.contains("`admin_listen`"),
        "lists the valid keys: {p:?}"
    );
    assert!(
        !p[0].message.contains("line 6 column"),
        "location not repeated: {p:?}"
    );

    let cases = [
        (with("token:\n  refresh: 5m\n"), "token.refresh", 7),
        (
            "upstreams:\n  primary:\n    url: https://x\n    timout: 1s\napps: []\n".to_string(),
            "upstreams.primary.timout",
            4,
        ),
        (
            with("routes:\n  - path: /cgi-bin/a\n    quotas: [1/s]\n"),
            "routes[0].quotas",
            8,
        ),
        (
            with("defaults:\n  retry: { tries: 2 }\n"),
            "defaults.retry.tries",
            7,
        ),
        (with("fleet:\n  redis: x\n"), "fleet.redis", 7),
    ];
    for (text, key, line) in cases {
        let p = problems(&text);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!((p[0].key.as_str(), p[0].line), (key, Some(line)), "{p:?}");
        assert!(p[0].message.starts_with("unknown field"), "{p:?}");
    }
}

#[test]
fn type_and_syntax_errors_name_their_key_and_line() {
    let p = problems(&MINIMAL.replace("corp_id: ww1", "corp_id: ww1, agent_id: abc"));
    assert_eq!(p[0].key, "apps[0].agent_id");
    assert_eq!(p[0].line, Some(5));

    let p = problems(
        "upstreams:\n  primary: { url: \"https://x\" }\napps:\n  - { name: a, secret_env: HR }\n",
    );
    assert_eq!((p[0].key.as_str(), p[0].line), ("apps[0].corp_id", Some(4)));
    assert!(p[0].message.contains("missing field `corp_id`"), "{p:?}");

    let p = problems("listen: [\n");
    assert_eq!(p.len(), 1);
    assert!(p[0].line.is_some(), "{p:?}");

    let p = problems("- just\n- a list\n");
    assert_eq!(p[0].key, "(file)");
    assert!(p[0].message.contains("mapping of config keys"), "{p:?}");

    let p = problems(&with("defaults: { split: { primary: 1.5 } }\n"));
    assert_eq!(p[0].key, "defaults.split.primary", "{p:?}");
    assert!(p[0].message.contains("expected a whole number"), "{p:?}");
    let p = problems(&with("fleet: { size: -1 }\n"));
    assert_eq!(p[0].key, "fleet.size", "{p:?}");
    assert!(
        p[0].message.contains("expected a whole number, 0 or more"),
        "{p:?}"
    );
}

#[test]
fn repeated_names_are_refused() {
    let p = problems(
        "upstreams:\n  primary: { url: \"https://x\" }\n  primary: { url: \"https://y\" }\napps: []\n",
    );
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].message.contains("given twice"), "{p:?}");
    assert_eq!(p[0].key, "upstreams.primary");
    assert_eq!(p[0].line, Some(3));

    let p = problems(&with(
        "token: { refresh_before_expiry: 1m, refresh_before_expiry: 2m }\n",
    ));
    assert_eq!(p[0].key, "token.refresh_before_expiry", "{p:?}");
}

#[test]
fn every_problem_is_reported_together() {
    let p = problems(
        r#"
listen: "localhost"
admin_listen: "127.0.0.1:0"
upstreams:
  primary: { url: "ftp://x", timeout: 0s }
  standby: { url: "https://y?x=1", connect_timeout: 5 parsecs }
  "bad name": { url: "https://z", ca_file: /nonexistent/ca.pem }
  nohost: { url: "https:///path" }
  auth: { url: "https://user:pa55@h/" }
  frag: { url: "https://h/#x" }
  port0: { url: "http://h:0" }
  relative: { url: "qyapi.weixin.qq.com" }
apps:
  - { name: "bad name", corp_id: "", secret_env: MISSING }
  - { name: two, corp_id: ww, secret_env: HR, secret_file: /x }
  - { name: three, corp_id: ww, secret_file: /nonexistent/secret }
  - { name: four, corp_id: ww, secret_env: EMPTY }
  - { name: a, corp_id: ww, secret_env: HR, default: true }
  - { name: a, corp_id: "w w", secret_env: OPS, default: true }
  - { name: seven, corp_id: ww, agent_id: 0 }
  - { name: "", corp_id: ww, secret_env: BLANK }
  - { name: nine, corp_id: ww, secret_env: SPACED }
token: { refresh_before_expiry: 3h }
defaults:
  deadline: 0ms
  retry: { attempts: 0, backoff_base: 5s, backoff_max: 1s }
  split: { primary: 50, nowhere: 50 }
  quota: ["10/week", "1/s", "2/s"]
  on_limit: later
  quota_status: 503
  duplicate_check_interval: 5h
routes:
  - path: /user/get
  - path: /cgi-bin/*/get
  - path: /cgi-bin/a
    api: "bad label!"
    max_wait: 1s
  - path: /cgi-bin/a
  - path: /cgi-bin/b/*
  - path: /cgi-bin/b/c
    split: { primary: 101 }
  - path: /cgi-bin/d
    split: {}
    retry: { attempts: 11 }
  - path: /cgi-bin/e
    retry: { backoff_max: soon }
  - path: /cgi-bin/f
    retry: { backoff_base: 100ms, backoff_max: 50ms }
fleet: { size: 0, share: [sessions], key_prefix: "" }
"#,
    );
    let expect = [
        ("listen", "not IP:port"),
        ("admin_listen", "port 0"),
        ("upstreams.primary.url", "scheme \"ftp\""),
        ("upstreams.primary.timeout", "zero"),
        ("upstreams.standby.url", "query"),
        ("upstreams.standby.connect_timeout", "space inside"),
        ("upstreams.bad name", "not a valid upstream name"),
        ("upstreams.bad name.ca_file", "cannot be read"),
        ("upstreams.nohost.url", "not a URL"),
        ("upstreams.auth.url", "user:password@"),
        ("upstreams.frag.url", "fragment"),
        ("upstreams.port0.url", "port 0"),
        ("upstreams.relative.url", "no scheme"),
        ("apps[0].name", "not a valid app name"),
        ("apps[0].corp_id", "empty"),
        ("apps[0].secret_env", "MISSING is not set"),
        ("apps[1].secret_env", "both set"),
        ("apps[2].secret_file", "cannot be read"),
        ("apps[3].secret_env", "EMPTY is empty"),
        ("apps[5].name", "already the name of apps[4]"),
        ("apps[5].corp_id", "spaces"),
        ("apps[5].default", "\"a\" (apps[4]) already is"),
        ("apps[6].agent_id", "not an AgentId"),
        ("apps[6].secret_env", "is missing"),
        ("apps[7].name", "is empty"),
        ("apps[7].secret_env", "BLANK is empty"),
        ("apps[8].secret_env", "spaces or control characters"),
        ("token.refresh_before_expiry", "shorter than a token's life"),
        ("defaults.deadline", "zero"),
        ("defaults.retry.attempts", "out of range"),
        ("defaults.retry.backoff_base", "longer than backoff_max"),
        ("defaults.split.nowhere", "names no upstream"),
        ("defaults.quota[0]", "unknown unit"),
        ("defaults.quota[2]", "same period as quota[1]"),
        (
            "defaults.on_limit",
            "\"late…\" (5 characters) is not a choice",
        ),
        ("defaults.quota_status", "503"),
        (
            "defaults.duplicate_check_interval",
            "longer than WeCom accepts",
        ),
        ("routes[0].path", "/cgi-bin/"),
        ("routes[1].path", "may only end the path"),
        ("routes[2].api", "metric label"),
        ("routes[2].max_wait", "on_limit: wait"),
        ("routes[3].path", "same path as routes[2]"),
        ("routes[5].path", "covered by routes[4]"),
        ("routes[5].split.primary", "out of range"),
        ("routes[6].split", "is empty"),
        ("routes[6].retry.attempts", "out of range"),
        ("routes[7].retry.backoff_max", "not a duration"),
        (
            "routes[8].retry.backoff_base",
            "longer than backoff_max (50ms)",
        ),
        ("fleet.redis_url", "missing"),
        ("fleet.size", "at least 1"),
        (
            "fleet.share[0]",
            "\"sess…\" (8 characters) cannot be shared",
        ),
        ("fleet.key_prefix", "empty"),
    ];
    for (key, words) in expect {
        assert_problem(&p, key, words);
    }
    // The sum of a split whose names are wrong is still the sum of what was written.
    assert!(find(&p, "defaults.split", "add up to").is_none(), "{p:#?}");
    // Every problem with a key in the file has its line.
    for pr in &p {
        assert!(pr.line.is_some(), "no line for {pr}");
    }
    assert_eq!(find(&p, "apps[5].default", "").unwrap().line, Some(19));
    assert_eq!(find(&p, "routes[2].api", "").unwrap().line, Some(36));
    // A bad pair in `defaults` is reported there, not again at each route that sets retry.
    assert!(
        find(&p, "routes[6].retry.backoff_base", "").is_none(),
        "{p:#?}"
    );
}

#[test]
fn problems_print_one_per_line_with_key_and_line() {
    let e = parse(&with("listen: nowhere\nadmin_listen: \"127.0.0.1:0\"\n")).unwrap_err();
    let shown = e.to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 2, "{shown}");
    assert!(
        lines[0].starts_with("listen: \"nowh…\" (7 characters) is not IP:port"),
        "{shown}"
    );
    assert!(lines[0].ends_with(" (line 6)"), "{shown}");
    assert!(lines[1].starts_with("admin_listen: "), "{shown}");
    let no_line = Problem::new("(file)", "cannot read x");
    assert_eq!(no_line.to_string(), "(file): cannot read x");
}

#[test]
fn missing_sections_name_the_fix() {
    let p = problems("listen: \"127.0.0.1:1\"\n");
    assert_problem(&p, "upstreams", "primary");
    assert_problem(&p, "apps", "one entry per WeCom app");
    let p = problems("upstreams:\n  standby: { url: \"https://x\" }\napps:\n  - { name: a, corp_id: w, secret_env: HR }\n");
    assert_problem(&p, "upstreams.primary", "is missing");
    assert_eq!(p[0].line, Some(1), "missing key points at its parent");
    let p = problems("upstreams:\n  primary: { url: \"https://x\" }\napps: []\n");
    assert_problem(&p, "apps", "is empty");
    let p = problems(&with("listen: \"127.0.0.1:9901\"\n"));
    assert_problem(&p, "admin_listen", "same address");
    let p = problems(&with("admin_listen: \"127.0.0.1:8080\"\n"));
    assert_problem(
        &p,
        "admin_listen",
        "same address as listen (127.0.0.1:8080)",
    );
}

#[test]
fn split_weights_must_add_up_to_100() {
    let text = MINIMAL.replace(
        "apps:",
        "  standby: { url: \"https://s\" }\napps:",
    ) + "routes:\n  - path: /cgi-bin/x\n    split: { primary: 50, standby: 40 }\n  - path: /cgi-bin/y\n    split: { primary: -1, standby: 101 }\n";
    let p = problems(&text);
    assert_problem(&p, "routes[0].split", "add up to 90");
    assert_problem(&p, "routes[1].split.primary", "out of range");
    assert!(find(&p, "routes[1].split", "add up to").is_none(), "{p:#?}");
}

#[test]
fn max_wait_in_defaults_serves_routes_that_wait() {
    let c = parse(&with(
        "defaults: { max_wait: 3s }\nroutes:\n  - { path: /cgi-bin/a, on_limit: wait }\n  - { path: /cgi-bin/b }\n",
    ))
    .unwrap();
    assert_eq!(c.defaults.on_limit, OnLimit::Reject);
    assert_eq!(
        c.routes[0].policy.on_limit,
        OnLimit::Wait {
            max_wait: Duration::from_secs(3)
        }
    );
    assert_eq!(c.routes[1].policy.on_limit, OnLimit::Reject);
    let c = parse(&with("routes:\n  - { path: /cgi-bin/a, on_limit: wait }\n")).unwrap();
    assert_eq!(
        c.routes[0].policy.on_limit,
        OnLimit::Wait {
            max_wait: Duration::from_secs(1)
        }
    );
}

#[test]
fn a_lone_app_is_only_default_when_it_says_so() {
    let c = parse(&MINIMAL.replace("secret_env: HR", "secret_env: HR, default: true")).unwrap();
    assert!(c.apps[0].default);
    assert_eq!(c.default_app().unwrap().name.as_str(), "hr");
}

#[test]
fn secret_files_are_read_trimmed_and_relative_to_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("sidecar.yaml");
    let secret_path = dir.path().join("hr.secret");
    let text = "upstreams:\n  primary: { url: \"https://x\" }\napps:\n  - { name: a, corp_id: w, secret_file: hr.secret }\n";

    std::fs::write(&secret_path, format!("{SECRET}\r\n")).unwrap();
    let c = parse_with_env(text, Some(&source), &env).unwrap();
    assert_eq!(c.apps[0].secret.expose(), SECRET);
    assert_eq!(
        c.apps[0].secret_source,
        format!("file {}", secret_path.display())
    );
    assert_eq!(c.source.as_deref(), Some(source.as_path()));

    let refused = |contents: &[u8]| {
        std::fs::write(&secret_path, contents).unwrap();
        let e = parse_with_env(text, Some(&source), &env).unwrap_err();
        let shown = e.to_string();
        assert!(!shown.contains(SECRET), "secret in message: {shown}");
        assert_eq!(e.problems[0].key, "apps[0].secret_file");
        e.problems[0].message.clone()
    };
    assert!(refused(b"\n").contains("is empty"));
    assert!(refused(format!("{SECRET}\n{SECRET}\n").as_bytes()).contains("spaces or control"));
    assert!(refused(&[0xff, 0xfe, 0x00]).contains("not UTF-8"));
    assert!(refused(SECRET.repeat(3000).as_bytes()).contains("larger than 64 KiB"));

    // Without a source, a relative path starts at the working directory (where it is absent).
    let e = parse_with_env(text, None, &env).unwrap_err();
    assert!(e.problems[0].message.contains("cannot be read"), "{e}");
    // A directory is not a secret file.
    let text = text.replace("hr.secret", ".");
    let e = parse_with_env(&text, Some(&source), &env).unwrap_err();
    assert!(e.problems[0].message.contains("a directory"), "{e}");
}

/// A self-signed CA certificate (its key was thrown away).
pub(crate) const TEST_CA_PEM: &str = include_str!("../../tests/data/test-ca.pem");

#[test]
fn ca_files_are_checked_and_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("sidecar.yaml");
    std::fs::write(dir.path().join("ca.pem"), TEST_CA_PEM).unwrap();
    let text = MINIMAL.replace(
        "url: \"https://qyapi.weixin.qq.com\"",
        "url: \"https://qyapi.weixin.qq.com\", ca_file: ca.pem",
    );
    let c = parse_with_env(&text, Some(&source), &env).unwrap();
    assert_eq!(
        c.upstreams[0].ca_file.as_deref(),
        Some(dir.path().join("ca.pem").as_path())
    );
    // A bundle of two certificates, with comments around them, is fine too.
    std::fs::write(
        dir.path().join("ca.pem"),
        format!("# bundle\n{TEST_CA_PEM}\nsubject=x\n{TEST_CA_PEM}"),
    )
    .unwrap();
    parse_with_env(&text, Some(&source), &env).unwrap();

    let e = parse_with_env(&text.replace("ca.pem", "."), Some(&source), &env).unwrap_err();
    assert_eq!(e.problems[0].key, "upstreams.primary.ca_file");
    assert!(e.problems[0].message.contains("a directory"), "{e}");

    // What used to pass here and then fail every TLS handshake.
    let key_pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n-----END PRIVATE KEY-----\n";
    let body: String = TEST_CA_PEM
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let cases: &[(&str, String, &str)] = &[
        (
            "a text file",
            "just some notes\n".into(),
            "holds no PEM certificate",
        ),
        ("empty", String::new(), "is empty"),
        ("a private key", key_pem.into(), "holds a private key"),
        (
            "a key beside a certificate",
            format!("{TEST_CA_PEM}{key_pem}"),
            "holds a private key",
        ),
        (
            "garbage inside the markers",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into(),
            "not a valid X.509",
        ),
        (
            "an unterminated certificate",
            "-----BEGIN CERTIFICATE-----\n".into(),
            "not valid PEM",
        ),
        ("base64 without markers", body, "holds no PEM certificate"),
    ];
    for (what, contents, says) in cases {
        std::fs::write(dir.path().join("ca.pem"), contents).unwrap();
        let e = parse_with_env(&text, Some(&source), &env).unwrap_err();
        assert_eq!(e.problems[0].key, "upstreams.primary.ca_file", "{what}");
        assert!(e.problems[0].message.contains(says), "{what}: {e}");
        assert!(
            !e.to_string().contains("MC4CAQ"),
            "{what}: contents shown: {e}"
        );
    }
}

#[test]
fn secrets_never_appear_in_messages() {
    // A secret pasted where a variable name belongs is not echoed.
    let pasted = "aB3dEfGhIjKlMnOpQrStUvWxYz0123456789_abcdE";
    let e =
        parse(&MINIMAL.replace("secret_env: HR", &format!("secret_env: {pasted}"))).unwrap_err();
    assert_eq!(e.problems[0].key, "apps[0].secret_env");
    assert!(!e.to_string().contains(pasted), "{e}");
    let pasted = "0a1b-2c3d";
    let e = parse(&MINIMAL.replace("secret_env: HR", &format!("secret_env: \"{pasted}\"")))
        .unwrap_err();
    assert!(!e.to_string().contains(pasted), "{e}");

    // A password in a Redis URL, from the file or the environment, is not echoed.
    let p = problems(&with(
        "fleet: { redis_url: \"redis://:hunter2@r:6379/0\" }\n",
    ));
    assert_problem(&p, "fleet.redis_url", "carries a password");
    let p = problems(&with("fleet: { redis_url_env: NOT_REDIS }\n"));
    assert_problem(&p, "fleet.redis_url_env", "does not start with redis://");
    let p = problems(&with(
        "fleet: { redis_url: \"http://h\", redis_url_env: REDIS }\n",
    ));
    assert_problem(&p, "fleet.redis_url", "both set");
    let p = problems(&with("fleet: { redis_url_env: UNSET }\n"));
    assert_problem(&p, "fleet.redis_url_env", "UNSET is not set");
    let p = problems(&with("fleet: { redis_url: \"redis://\" }\n"));
    assert_problem(&p, "fleet.redis_url", "no host");

    // Other problems in a config whose secrets are all valid still print none of them.
    let text = FULL.replace("deadline: 5s", "deadline: never");
    let p = problems(&text);
    assert_problem(&p, "defaults.deadline", "not a duration");
    // And the user:password of an upstream URL is hidden.
    let p = problems(&with("").replace("https://qyapi", "https://me:hunter2@qyapi"));
    assert_problem(&p, "upstreams.primary.url", "carries user:password@");
}

#[test]
fn missing_file_is_a_clear_problem() {
    let e = load(std::path::Path::new("/nonexistent/sidecar.yaml")).unwrap_err();
    assert_eq!(e.problems.len(), 1);
    assert_eq!(e.problems[0].key, "(file)");
    let shown = e.to_string();
    assert!(
        shown.contains("/nonexistent/sidecar.yaml") && shown.contains("no such file"),
        "{shown}"
    );
}

#[test]
fn load_reads_a_file_and_remembers_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sidecar.yaml");
    std::fs::write(&path, MINIMAL.replace("secret_env: HR", "secret_file: s")).unwrap();
    std::fs::write(dir.path().join("s"), "x\n").unwrap();
    let c = load(&path).unwrap();
    assert_eq!(c.source.as_deref(), Some(path.as_path()));
    assert_eq!(c.apps[0].secret.expose(), "x");
}

/// The shipped examples are valid, and the sample's commented-out fleet section is too.
#[test]
fn shipped_configs_are_valid() {
    let sample = include_str!("../../conf/sidecar.yaml");
    let c = parse(sample).unwrap_or_else(|e| panic!("conf/sidecar.yaml:\n{e}"));
    assert_eq!(c.upstreams[0].name.as_str(), "primary");
    assert_eq!(c.upstreams[0].host, "qyapi.weixin.qq.com");
    assert_eq!(c.apps.len(), 2);
    assert_eq!(c.default_app().unwrap().name.as_str(), "hr-bot");
    let send = &c.routes[0];
    assert_eq!(send.path, PathMatch::Exact("/cgi-bin/message/send".into()));
    assert_eq!(
        send.policy
            .quota
            .iter()
            .map(Rate::to_string)
            .collect::<Vec<_>>(),
        ["20/s", "10000/min"]
    );
    assert_eq!(
        send.policy
            .split
            .0
            .iter()
            .map(|(_, w)| *w)
            .collect::<Vec<_>>(),
        [90, 10]
    );
    assert!(c
        .routes
        .iter()
        .any(|r| r.path == PathMatch::Prefix("/cgi-bin/user/".into())));
    assert!(c.fleet.is_none());

    // Uncomment a commented section (`# fleet:` and the lines after it, to the next blank line).
    let uncomment = |marker: &str| -> String {
        let start = sample
            .find(marker)
            .unwrap_or_else(|| panic!("sample has a commented {marker} section"));
        let section: String = sample[start..]
            .lines()
            .take_while(|l| !l.trim().is_empty())
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .filter(|l| !l.trim_start().starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        format!("{sample}\n{section}")
    };
    let with_fleet = uncomment("# fleet:");
    let c = parse(&with_fleet).unwrap_or_else(|e| panic!("sample with fleet:\n{e}"));
    assert!(c.fleet.is_some());
    // The clients example, with its key from a variable instead of the file it names.
    let with_clients = uncomment("# clients:").replace(
        "key_file: /run/secrets/sidecar-billing-key",
        "key_env: KEY_A",
    );
    let c = parse(&with_clients).unwrap_or_else(|e| panic!("sample with clients:\n{e}"));
    assert_eq!(c.clients.len(), 1);

    let dev = include_str!("../../conf/dev.yaml");
    let c = parse(dev).unwrap_or_else(|e| panic!("conf/dev.yaml:\n{e}"));
    assert_eq!(
        (
            c.listen.to_string().as_str(),
            c.admin_listen.to_string().as_str()
        ),
        ("127.0.0.1:8080", "127.0.0.1:9901")
    );
    assert_eq!(c.upstreams.len(), 1);
    assert_eq!(c.upstreams[0].scheme, Scheme::Http);
    assert_eq!(
        (c.upstreams[0].host.as_str(), c.upstreams[0].port),
        ("127.0.0.1", 18480)
    );
    let names: Vec<&str> = c.apps.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["hr-bot", "ops-bot"]);
    assert_eq!(c.default_app().unwrap().name.as_str(), "hr-bot");
    assert_eq!(c.apps[1].agent_id, Some(1000003));
    assert_eq!(c.routes[0].policy.quota.len(), 2);
}

#[test]
fn clients_are_optional_and_name_their_apps() {
    let c = parse(MINIMAL).unwrap();
    assert!(c.clients.is_empty());
    let c = parse(&with(
        r#"
clients:
  - { name: billing, key_env: KEY_A, apps: [hr] }
  - { name: ops-tool, key_env: KEY_B, apps: ["*"] }
"#,
    ))
    .unwrap();
    assert_eq!(c.clients.len(), 2);
    let hr = c.apps[0].name.clone();
    assert_eq!(&*c.clients[0].name, "billing");
    assert!(c.clients[0].may_use(&hr));
    assert!(!c.clients[0].may_use(&AppName(std::sync::Arc::from("other"))));
    assert!(c.clients[1].may_use(&AppName(std::sync::Arc::from("other"))));
    assert_eq!(c.clients[0].key.expose().len(), 40);
    assert!(!format!("{:?}", c.clients).contains(&"k".repeat(40)));
}

#[test]
fn bad_clients_are_refused_with_their_keys() {
    let p = problems(&with(
        r#"
clients:
  - { name: "bad name", key_env: KEY_A, apps: [hr, nobody] }
  - { name: short, key_env: SHORT_KEY, apps: [hr] }
  - { name: twin, key_env: KEY_A, apps: [] }
  - { name: twin, key_env: KEY_B, key_file: /x, apps: [hr] }
  - { name: none, apps: [hr] }
  - { name: unset, key_env: NOT_SET_ANYWHERE, apps: [hr] }
"#,
    ));
    let expect = [
        ("clients[0].name", "not a valid client name"),
        (
            "clients[0].apps[1]",
            "\"nobo…\" (6 characters) is not one of the apps",
        ),
        ("clients[1].key_env", "shorter than 32"),
        ("clients[2].apps", "is empty"),
        ("clients[2].key_env", "same key as client \"bad name\""),
        ("clients[3].name", "already the name of clients[2]"),
        ("clients[3].key_env", "both set"),
        ("clients[4].key_env", "is missing"),
        ("clients[5].key_env", "NOT_SET_ANYWHERE is not set"),
    ];
    for (key, words) in expect {
        assert_problem(&p, key, words);
    }
    let shown = format!("{p:?}");
    assert!(
        !shown.contains(&"k".repeat(40)) && !shown.contains("too-short"),
        "{shown}"
    );
    assert_problem(&problems(&with("clients: []\n")), "clients", "is empty");
}

#[test]
fn gettoken_bounds_have_defaults_and_are_checked() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.token.min_fetch_interval, Duration::from_secs(30));
    assert_eq!(c.token.min_refetch, Duration::from_secs(2));
    assert_eq!(c.token.max_fetches.to_string(), "60/h");

    let c = parse(&with(
        "token: { min_fetch_interval: 5s, min_refetch: 1s, max_fetches: 10/min }\n",
    ))
    .unwrap();
    assert_eq!(c.token.min_fetch_interval, Duration::from_secs(5));
    assert_eq!(c.token.min_refetch, Duration::from_secs(1));
    assert_eq!(c.token.max_fetches.count, 10);

    let refused = [
        (
            "token: { refresh_before_expiry: 1m, min_fetch_interval: 2m }\n",
            "token.min_fetch_interval",
            "shorter than refresh_before_expiry",
        ),
        (
            "token: { min_fetch_interval: 5s, min_refetch: 10s }\n",
            "token.min_refetch",
            "longer than min_fetch_interval",
        ),
        (
            "token: { max_fetches: 1/day }\n",
            "token.max_fetches",
            "could not be renewed",
        ),
        (
            "token: { max_fetches: often }\n",
            "token.max_fetches",
            "rate",
        ),
        ("token: { min_refetch: 0s }\n", "token.min_refetch", "zero"),
    ];
    for (yaml, key, says) in refused {
        let p = problems(&with(yaml));
        assert!(
            p.iter().any(|p| p.key == key && p.message.contains(says)),
            "{yaml}: {p:?}"
        );
        assert!(p.iter().all(|p| p.line.is_some()), "{p:?}");
    }
}

/// What an operator pastes by mistake: a WeCom secret is 43 characters.
const PASTED: &str = "Xy7pQ2vN8sLkJ3hG5fDdS1aZ0cVbMnBvCxZaQwErTy0";

#[test]
fn a_secret_pasted_into_the_wrong_key_is_quoted_by_four_characters_at_most() {
    let cases = [
        (with(&format!("listen: \"{PASTED}\"\n")), "listen"),
        (
            MINIMAL.replace(
                "secret_env: HR",
                &format!("secret_env: HR, agent_id: {PASTED}"),
            ),
            "apps[0].agent_id",
        ),
        (
            MINIMAL.replace(
                "secret_env: HR",
                &format!("secret_env: HR, agent_id: \"{PASTED}\""),
            ),
            "apps[0].agent_id",
        ),
        (
            with(&format!("defaults: {{ deadline: \"{PASTED}\" }}\n")),
            "defaults.deadline",
        ),
        (
            with(&format!("token: {{ refresh_before_expiry: {PASTED} }}\n")),
            "token.refresh_before_expiry",
        ),
        (
            with(&format!("defaults: {{ quota: [\"{PASTED}\"] }}\n")),
            "defaults.quota[0]",
        ),
        (
            with(&format!("admin_hosts: [\"{PASTED}/x\"]\n")),
            "admin_hosts[0]",
        ),
        (
            MINIMAL.replace("secret_env: HR", &format!("secret_env: HR, {PASTED}: 1")),
            "apps[0]",
        ),
        (
            MINIMAL.replace("secret_env: HR", &format!("secret_file: {PASTED}")),
            "apps[0].secret_file",
        ),
        (
            with(&format!(
                "routes:\n  - {{ path: \"/cgi-bin/x?{PASTED}\" }}\n"
            )),
            "routes[0].path",
        ),
        (
            MINIMAL.replace(
                "https://qyapi.weixin.qq.com",
                &format!("https://qyapi.weixin.qq.com/?corpsecret={PASTED}"),
            ),
            "upstreams.primary.url",
        ),
    ];
    for (text, key) in cases {
        let e = parse(&text).expect_err(key);
        let shown = format!("{e}");
        assert!(
            e.problems.iter().any(|p| p.key.starts_with(key)),
            "{key}: {shown}"
        );
        // No run of 5 characters of the secret appears anywhere.
        for window in PASTED.as_bytes().windows(5) {
            let w = std::str::from_utf8(window).unwrap();
            assert!(
                !shown.contains(w),
                "{key}: {w:?} of the secret in:\n{shown}"
            );
        }
    }
    // Short wrong values are still shown whole, so the message says which.
    let e = parse(&with("defaults: { deadline: fast }\n")).unwrap_err();
    assert!(e.to_string().contains("\"fast\" is not a duration"), "{e}");
    let e = parse(&with("token: { refresh: 5m }\n")).unwrap_err();
    assert!(e.to_string().contains("unknown field `refresh`"), "{e}");
}

#[test]
fn admin_hosts_are_names_without_ports() {
    let c = parse(&with(
        "admin_hosts: [Sidecar.Monitoring.svc, \"10.0.0.7\", \"[fd00::7]\", pod.local.]\n",
    ))
    .unwrap();
    assert_eq!(
        c.admin_hosts,
        ["sidecar.monitoring.svc", "10.0.0.7", "fd00::7", "pod.local"]
    );
    assert!(parse(MINIMAL).unwrap().admin_hosts.is_empty());
    for bad in ["\"h:9901\"", "\"http://h\"", "\"\"", "\"a b\"", "\"*.svc\""] {
        let p = problems(&with(&format!("admin_hosts: [ok.svc, {bad}]\n")));
        assert_problem(&p, "admin_hosts[1]", "not a host name");
        assert_eq!(p[0].line, Some(6), "{bad}");
    }
}

#[test]
fn client_connection_bounds_default_and_are_checked() {
    let c = parse(MINIMAL).unwrap().client;
    assert_eq!(c.header_timeout, Duration::from_secs(10));
    assert_eq!(c.body_timeout, Duration::from_secs(30));
    assert_eq!(c.idle_timeout, Duration::from_secs(75));
    assert_eq!(c.max_connections, None, "derived from the descriptor limit");
    let c = parse(&with(
        "client: { header_timeout: 2s, body_timeout: 3s, idle_timeout: 4s, max_connections: 500 }\n",
    ))
    .unwrap()
    .client;
    assert_eq!(
        (
            c.header_timeout,
            c.body_timeout,
            c.idle_timeout,
            c.max_connections
        ),
        (
            Duration::from_secs(2),
            Duration::from_secs(3),
            Duration::from_secs(4),
            Some(500)
        )
    );
    let p = problems(&with(
        "client:\n  header_timeout: 0s\n  idle_timeout: soon\n  max_connections: 0\n",
    ));
    assert_problem(&p, "client.header_timeout", "is zero");
    assert_problem(&p, "client.idle_timeout", "not a duration");
    let max = find(&p, "client.max_connections", "at least 1").expect("max_connections");
    assert!(max.line.is_some(), "{max:?}");
    assert_problem(
        &problems(&with("client: { read_timeout: 1s }\n")),
        "client.read_timeout",
        "unknown field",
    );
}

#[test]
fn no_secrets_checks_everything_but_reads_no_secret_or_production_file() {
    let text = r#"
upstreams:
  primary: { url: "https://qyapi.weixin.qq.com", ca_file: /etc/wecom/private-ca.pem }
apps:
  - { name: hr, corp_id: ww1, secret_env: NOT_SET_ANYWHERE }
  - { name: ops, corp_id: ww1, secret_file: /run/secrets/wecom/ops }
clients:
  - { name: billing, key_env: ALSO_NOT_SET, apps: [hr] }
fleet: { redis_url_env: NOR_THIS }
"#;
    let nothing = |_: &str| None;
    let e = parse_with(text, None, &nothing, validate::Secrets::Read).unwrap_err();
    // ca_file, both secrets, the client key, the Redis URL.
    assert_eq!(e.problems.len(), 5, "{e}");
    let c = parse_with(text, None, &nothing, validate::Secrets::Skip).unwrap();
    assert_eq!(c.apps.len(), 2);
    assert_ne!(c.apps[0].secret.expose(), "");
    assert_eq!(c.apps[1].secret_source, "file /run/secrets/wecom/ops");
    // Everything else is still checked, the keys naming secrets included.
    let bad = text.replace("NOT_SET_ANYWHERE", "not-a-var").replace(
        "https://qyapi.weixin.qq.com\"",
        "https://qyapi.weixin.qq.com\", timeout: 0s",
    );
    let e = parse_with(&bad, None, &nothing, validate::Secrets::Skip).unwrap_err();
    let keys: Vec<&str> = e.problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        ["upstreams.primary.timeout", "apps[0].secret_env"],
        "{e}"
    );
    let both = text.replace(
        "secret_env: NOT_SET_ANYWHERE",
        "secret_env: A, secret_file: b",
    );
    assert!(parse_with(&both, None, &nothing, validate::Secrets::Skip).is_err());
}

#[test]
fn nesting_past_64_levels_is_refused_before_parsing() {
    let deep = format!("routes: {}\n", "[".repeat(100_000));
    let e = parse(&deep).unwrap_err();
    assert_eq!(e.problems.len(), 1);
    assert_eq!(e.problems[0].key, "(file)");
    assert!(e.problems[0].message.contains("64 levels"), "{e}");
    // 60 levels is still read (and refused for what it says, not for its depth).
    let ok = with(&format!("routes: {}{}\n", "[".repeat(60), "]".repeat(60)));
    let e = parse(&ok).unwrap_err();
    assert!(!e.to_string().contains("levels"), "{e}");
}

#[test]
fn many_problems_and_many_routes_are_checked_in_one_pass() {
    // 20,000 routes, each shadowed by the one before: a problem each, each with its line.
    let routes: String = (0..20_000)
        .map(|i| {
            format!("  - {{ path: \"/cgi-bin/r/{i}\" }}\n  - {{ path: \"/cgi-bin/r/{i}\" }}\n")
        })
        .collect();
    let text = with(&format!(
        "routes:\n  - {{ path: \"/cgi-bin/q/*\" }}\n{routes}"
    ));
    let e = parse(&text).unwrap_err();
    assert_eq!(e.problems.len(), 20_000);
    let first = &e.problems[0];
    assert_eq!(first.key, "routes[2].path");
    assert!(first.message.contains("same path as routes[1]"), "{first}");
    assert_eq!(first.line, Some(9));
    let last = e.problems.last().unwrap();
    assert_eq!(last.key, "routes[40000].path");
    assert_eq!(last.line, Some(40_007));
    // Prefixes: a later prefix route shadowed by an earlier, shorter one, and one that is not.
    let text = with(
        "routes:\n  - { path: \"/cgi-bin/user/*\" }\n  - { path: \"/cgi-bin/*\" }\n  - { path: \"/cgi-bin/user/get\" }\n  - { path: \"/cgi-bin/tag/*\" }\n  - { path: \"/cgi-bin/u*\" }\n",
    );
    let p = problems(&text);
    assert_eq!(p.len(), 3, "{p:#?}");
    assert_problem(&p, "routes[2].path", "covered by routes[");
    assert_problem(&p, "routes[3].path", "covered by routes[1]");
    assert_problem(&p, "routes[4].path", "covered by routes[1]");
}
