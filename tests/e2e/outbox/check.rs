//! `--check` of the outbox keys: each misuse refused with its key and the fix.

use std::process::Command;

fn check(routes_and_more: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sidecar.yaml");
    std::fs::write(
        &path,
        format!(
            "upstreams:\n  primary: {{ url: \"http://127.0.0.1:9\" }}\napps:\n  - {{ name: hr-bot, corp_id: ww1, secret_env: OUTBOX_CHECK_SECRET, default: true }}\n{routes_and_more}"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wecom-sidecar"))
        .arg("--config")
        .arg(&path)
        .arg("--check")
        .env("OUTBOX_CHECK_SECRET", "s3cret-for-check")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn a_good_outbox_config_passes() {
    let (code, text) = check(
        "routes:\n  - { path: /cgi-bin/message/send, outbox: true, on_limit: queue }\n  - { path: /cgi-bin/appchat/send, outbox: true, outbox_max_age: 20m, duplicate_check_interval: 30m }\n  - { path: /cgi-bin/webhook/send, outbox: true, outbox_max_age: 12h }\nstore: { max_bytes: 64MiB, outbox_max_per_app: 500 }\n",
    );
    assert_eq!(code, 0, "{text}");
}

#[test]
fn each_misuse_names_its_key_and_the_fix() {
    for (yaml, key, words) in [
        (
            "routes:\n  - { path: /cgi-bin/user/get, outbox: true }\n",
            "routes[0].outbox",
            "message sends only",
        ),
        (
            "routes:\n  - { path: /cgi-bin/message/*, outbox: true }\n",
            "routes[0].outbox",
            "exact path",
        ),
        (
            "routes:\n  - { path: /cgi-bin/message/send, outbox: true, outbox_max_age: 2h, duplicate_check_interval: 1h }\n",
            "routes[0].outbox_max_age",
            "duplicate_check_interval",
        ),
        (
            "routes:\n  - { path: /cgi-bin/message/send, outbox: true, outbox_max_age: 5h }\n",
            "routes[0].outbox_max_age",
            "4h",
        ),
        (
            "routes:\n  - { path: /cgi-bin/message/send, on_limit: queue }\n",
            "routes[0].on_limit",
            "outbox: true",
        ),
        (
            "routes:\n  - { path: /cgi-bin/message/send, outbox_max_age: 10m }\n",
            "routes[0].outbox_max_age",
            "outbox: true",
        ),
        (
            "routes:\n  - { path: /cgi-bin/message/send, outbox: true, dedupe: false }\n",
            "routes[0].dedupe",
            "duplicate check",
        ),
        ("defaults: { outbox: true }\n", "defaults.outbox", "route"),
        ("defaults: { on_limit: queue }\n", "defaults.on_limit", "outbox: true"),
        ("store: { max_bytes: 12parsecs }\n", "store.max_bytes", "256MiB"),
        ("store: { max_bytes: 0 }\n", "store.max_bytes", "256MiB"),
        ("store: { outbox_max_per_app: 0 }\n", "store.outbox_max_per_app", "1 or more"),
    ] {
        let (code, text) = check(yaml);
        assert_eq!(code, 1, "{yaml}: {text}");
        assert!(text.contains(key) && text.contains(words), "{yaml}: {text}");
        assert!(!text.contains("s3cret-for-check"), "{text}");
    }
}
