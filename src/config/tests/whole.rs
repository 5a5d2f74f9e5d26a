//! Whole configs: every default, a full config, every problem of a bad one reported at once,
//! the shipped examples, and many routes and problems in one pass.

use super::*;
use std::time::Duration;

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
    assert_eq!(f.share, [ShareKind::Tokens, ShareKind::Quotas]);
    assert_eq!(f.timeout, Duration::from_secs(1));
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains(OTHER_SECRET),
        "{shown}"
    );
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

/// The shipped examples are valid, and the sample's commented-out fleet section is too.
#[test]
fn shipped_configs_are_valid() {
    let sample = include_str!("../../../conf/sidecar.yaml");
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

    let dev = include_str!("../../../conf/dev.yaml");
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
