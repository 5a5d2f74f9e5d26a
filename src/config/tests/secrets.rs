//! Secrets and the files only production has: read, trimmed, resolved from the config's
//! directory, never shown in a message (even pasted into the wrong key), and not read with
//! `--no-secrets`.

use super::*;

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
    // A callback's Token and key are not read either, and their stand-ins pass the checks of
    // WeCom's shapes.
    let cb = format!("{text}callbacks:\n  apps:\n    - {{ app: hr, path: /cb/hr, token_env: CB_TOKEN_NOT_SET, aes_key_file: /run/secrets/cb-key, deliver_to: \"http://127.0.0.1:3000/e\" }}\n");
    let c = parse_with(&cb, None, &nothing, validate::Secrets::Skip).unwrap();
    assert_eq!(c.callbacks.map(|cb| cb.apps.len()), Some(1));
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
