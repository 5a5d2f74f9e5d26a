//! The other sections: `fleet`, `apps`, `clients`, `token`, `admin_hosts` and `client`.

use super::*;
use std::time::Duration;

#[test]
fn fleet_defaults() {
    let c = parse(&with(
        "fleet: { redis_url: \"redis://127.0.0.1:6379/0\" }\n",
    ))
    .unwrap();
    let f = c.fleet.unwrap();
    assert_eq!(f.redis_url.expose(), "redis://127.0.0.1:6379/0");
    assert_eq!((f.key_prefix.as_str(), f.size), ("wecom-sidecar:", 1));
    assert_eq!(f.share, [ShareKind::Tokens, ShareKind::Quotas]);
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
fn a_lone_app_is_only_default_when_it_says_so() {
    let c = parse(&MINIMAL.replace("secret_env: HR", "secret_env: HR, default: true")).unwrap();
    assert!(c.apps[0].default);
    assert_eq!(c.default_app().unwrap().name.as_str(), "hr");
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
