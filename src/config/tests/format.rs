//! The file format: unknown keys, wrong types, repeated names and deep nesting refused with
//! their key and line; how problems print; reading the file.

use super::*;

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
fn a_section_of_the_wrong_type_is_named_as_the_reader_knows_it() {
    let cases = [
        (
            "token: 5m\n",
            "token",
            "expected a mapping (refresh_before_expiry, ",
            6,
        ),
        (
            "routes: [5]\n",
            "routes[0]",
            "expected a policy (path, api, ",
            6,
        ),
        (
            "defaults: []\n",
            "defaults",
            "expected a policy (path, api, ",
            6,
        ),
        (
            "client: on\n",
            "client",
            "expected a mapping (header_timeout, ",
            6,
        ),
        (
            "shift_plans:\n  drill: [1]\n",
            "shift_plans.drill[0]",
            "expected a plan step (routes, split, hold",
            7,
        ),
    ];
    for (extra, key, says, line) in cases {
        let p = problems(&with(extra));
        assert_eq!(p.len(), 1, "{extra}: {p:?}");
        assert_eq!(p[0].key, key, "{extra}: {p:?}");
        assert!(p[0].message.contains(says), "{extra}: {p:?}");
        assert!(!p[0].message.contains("struct File"), "{extra}: {p:?}");
        assert_eq!(p[0].line, Some(line), "{extra}: {p:?}");
    }
}
