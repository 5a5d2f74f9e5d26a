//! No secret or token anywhere: one sidecar is driven down every path it has (successes, token
//! errors, gettoken failures, upstream faults, quota refusals, bad requests, unsigned calls,
//! reloads good and bad, every admin endpoint), with debug logging in text and in JSON, and
//! everything it printed or answered is searched for each app secret, each client key and each
//! real token the simulator issued. `--check` output for broken configs is searched too.

use std::process::Command;
use std::time::Duration;

use crate::harness::sim::{FaultKind, Simulator};
use crate::harness::*;
use serde_json::json;
use wecom_sidecar::signing::{body_sha256, now_secs, sign, Signed};

const CLIENT_KEY: &str = "client-key-never-shown-0f1e2d3c4b5a69788796a5b4";
const ROBOT_KEY: &str = "robot-key-never-shown-6b5a4c3d2e1f0a9b8c7d";

/// Everything an app could be shown for one call: status, headers and body.
async fn everything(r: reqwest::Response) -> String {
    let mut out = format!("{}\n", r.status());
    for (k, v) in r.headers() {
        out.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())));
    }
    out.push_str(&String::from_utf8_lossy(
        &r.bytes().await.unwrap_or_default(),
    ));
    out
}

async fn drive_every_path(sim: &Simulator, sc: &Sidecar, key_file: &std::path::Path) -> String {
    // Redirects are shown, not followed: what a redirect's Location carries is searched too.
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut seen = String::new();
    let get = |path: String| c.get(sc.url(&path));
    let signed = |method: &str, path: &str, query: &str, body: &[u8]| {
        let ts = now_secs();
        let hash = body_sha256(body);
        let sig = sign(
            CLIENT_KEY.as_bytes(),
            ts,
            &Signed {
                method,
                path,
                query,
                body_sha256: &hash,
            },
        );
        vec![
            ("X-Sidecar-Client", "app".to_string()),
            ("X-Sidecar-Timestamp", ts.to_string()),
            ("X-Sidecar-Signature", sig),
        ]
    };
    macro_rules! call {
        ($method:literal, $path:expr, $query:expr, $body:expr) => {{
            let (path, query, body): (&str, &str, Vec<u8>) = ($path, $query, $body);
            let url = if query.is_empty() {
                sc.url(path)
            } else {
                sc.url(&format!("{path}?{query}"))
            };
            let mut rb = c.request($method.parse().unwrap(), url).body(body.clone());
            for (k, v) in signed($method, path, query, &body) {
                rb = rb.header(k, v);
            }
            seen.push_str(&everything(rb.send().await.unwrap()).await);
        }};
    }

    // gettoken with the app's name, and with its REAL secret (never echoed back).
    call!(
        "GET",
        "/cgi-bin/gettoken",
        &format!("corpid={CORP_ID}&corpsecret=hr-bot"),
        vec![]
    );
    call!(
        "GET",
        "/cgi-bin/gettoken",
        &format!("corpid={CORP_ID}&corpsecret={HR_SECRET}"),
        vec![]
    );
    call!(
        "GET",
        "/cgi-bin/gettoken",
        &format!("corpid={CORP_ID}&corpsecret=wrong"),
        vec![]
    );
    // Plain success, with an access_token the app made up and debug=1.
    call!(
        "GET",
        "/cgi-bin/user/get",
        "access_token=hr-bot&userid=a&debug=1",
        vec![]
    );
    let msg = serde_json::to_vec(
        &json!({"touser": "a", "msgtype": "text", "agentid": 1000002, "text": {"content": "x"}}),
    )
    .unwrap();
    call!("POST", "/cgi-bin/message/send", "", msg.clone());
    // Token errors absorbed; then ones that are not (every attempt rejected).
    sim.invalidate_all_tokens();
    call!("GET", "/cgi-bin/user/get", "userid=b", vec![]);
    sim.inject(fault(
        "/cgi-bin/user/get",
        FaultKind::Errcode(40014),
        Some(3),
    ));
    call!("GET", "/cgi-bin/user/get", "userid=c", vec![]);
    sim.inject(fault(
        "/cgi-bin/user/get",
        FaultKind::Errcode(42001),
        Some(3),
    ));
    call!("GET", "/cgi-bin/user/get", "userid=c", vec![]);
    // gettoken failing at WeCom, then the token expiring so it must be fetched.
    sim.inject(fault(
        "/cgi-bin/gettoken",
        FaultKind::Errcode(40001),
        Some(4),
    ));
    sim.expire_all_tokens();
    call!("GET", "/cgi-bin/user/get", "userid=d", vec![]);
    sim.inject(fault("/cgi-bin/gettoken", FaultKind::Status(500), Some(4)));
    sim.invalidate_all_tokens();
    call!("GET", "/cgi-bin/user/get", "userid=e", vec![]);
    sim.clear_faults();
    // gettoken failing with an errmsg that quotes its own query (the corpsecret), and one
    // that redirects to itself.
    // For ops-bot (hr-bot's last fetch failed: it would get that failure, held, instead).
    for (i, kind) in [FaultKind::ErrcodeEcho(40001), FaultKind::RedirectAbsolute]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            // Past the first failure's backoff (at most 1 s, `token::bounds::backoff`), so
            // that this fault is met by a fetch of its own.
            tokio::time::sleep(Duration::from_millis(2100)).await;
        }
        sim.inject(fault("/cgi-bin/gettoken", kind, Some(4)));
        sim.invalidate_all_tokens();
        call!(
            "GET",
            "/cgi-bin/user/get",
            "access_token=ops-bot&userid=e",
            vec![]
        );
        sim.clear_faults();
    }
    // Upstream faults of every kind.
    for kind in [
        FaultKind::Status(502),
        FaultKind::Garbage,
        FaultKind::Truncated,
        FaultKind::Reset,
        FaultKind::Errcode(-1),
        FaultKind::Errcode(45009),
        FaultKind::Errcode(60020),
    ] {
        sim.inject(fault("/cgi-bin/department/list", kind, Some(5)));
        call!("GET", "/cgi-bin/department/list", "", vec![]);
        sim.clear_faults();
    }
    // Answers that quote the call's URL, token included (department/list is blocked now).
    for kind in [
        FaultKind::RedirectAbsolute,
        FaultKind::RedirectRelative,
        FaultKind::Echo,
        FaultKind::ErrcodeEcho(60020),
    ] {
        sim.inject(fault("/cgi-bin/user/get", kind, Some(1)));
        call!("GET", "/cgi-bin/user/get", "userid=q", vec![]);
        sim.clear_faults();
    }
    sim.inject(fault(
        "/cgi-bin/message/send",
        FaultKind::LoseAnswer,
        Some(1),
    ));
    call!("POST", "/cgi-bin/message/send", "", msg.clone());
    // A robot call whose answer quotes its key.
    sim.inject(fault("/cgi-bin/webhook/send", FaultKind::Echo, Some(1)));
    call!(
        "POST",
        "/cgi-bin/webhook/send",
        &format!("key={ROBOT_KEY}"),
        br#"{"msgtype":"text","text":{"content":"x"}}"#.to_vec()
    );
    // The hour block WeCom announced, held locally; the quota of /cgi-bin/tag/list.
    for _ in 0..4 {
        call!("GET", "/cgi-bin/tag/list", "", vec![]);
    }
    // Bad requests: unknown app, bad path, unknown API, oversized body.
    let r = c
        .get(sc.url("/cgi-bin/user/get?userid=f"))
        .header("X-WeCom-App", "nobody")
        .send()
        .await
        .unwrap();
    seen.push_str(&everything(r).await);
    call!("GET", "/cgi-bin/../admin/status", "", vec![]);
    call!("GET", "/cgi-bin/no/such/api", "", vec![]);
    call!(
        "POST",
        "/cgi-bin/message/send",
        "",
        vec![b'x'; 3 * 1024 * 1024]
    );
    // Unsigned, and signed with a wrong key.
    seen.push_str(
        &everything(
            get("/cgi-bin/user/get?userid=g".into())
                .send()
                .await
                .unwrap(),
        )
        .await,
    );
    let r = get("/cgi-bin/user/get?userid=h".into())
        .header("X-Sidecar-Client", "app")
        .header("X-Sidecar-Timestamp", now_secs().to_string())
        .header("X-Sidecar-Signature", "0".repeat(64))
        .send()
        .await
        .unwrap();
    seen.push_str(&everything(r).await);

    // Admin: every endpoint, reloads good and bad (a key file that went missing).
    let admin = |path: &str| format!("{}{path}", sc.admin);
    for path in ["/healthz", "/readyz", "/admin/status", "/metrics"] {
        seen.push_str(&everything(c.get(admin(path)).send().await.unwrap()).await);
    }
    seen.push_str(&everything(c.post(admin("/admin/reload")).send().await.unwrap()).await);
    let moved = key_file.with_extension("gone");
    std::fs::rename(key_file, &moved).unwrap();
    seen.push_str(&everything(c.post(admin("/admin/reload")).send().await.unwrap()).await);
    std::fs::rename(&moved, key_file).unwrap();
    sc.signal("HUP");
    for path in [
        "/admin/plans/nope/start",
        "/admin/plans/nope",
        "/admin/nothing",
    ] {
        seen.push_str(&everything(c.post(admin(path)).send().await.unwrap()).await);
        seen.push_str(&everything(c.get(admin(path)).send().await.unwrap()).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    seen.push_str(&everything(c.get(admin("/admin/status")).send().await.unwrap()).await);
    seen.push_str(&everything(c.get(admin("/metrics")).send().await.unwrap()).await);
    seen
}

fn assert_clean(what: &str, text: &str, secrets: &[String]) {
    for s in secrets {
        assert!(
            !text.contains(s.as_str()),
            "{what} holds a secret or token ({} characters, starting {:?})",
            s.len(),
            &s[..4]
        );
    }
}

#[tokio::test]
async fn no_secret_or_token_in_any_answer_log_metric_or_status() {
    for format in ["text", "json"] {
        let sim = simulator().await;
        let keys = tempfile::tempdir().unwrap();
        let key_file = keys.path().join("app.key");
        std::fs::write(&key_file, CLIENT_KEY).unwrap();
        let extra = format!(
            "routes:\n  - path: /cgi-bin/tag/list\n    quota: [\"2/min\"]\nclients:\n  - {{ name: app, key_file: \"{}\", apps: [\"*\"] }}\n",
            key_file.display()
        );
        let sc = Sidecar::start_with_env(
            |l, a| config_yaml(l, a, &sim.url(), &extra),
            &[
                ("WECOM_SIDECAR_LOG_FORMAT", format),
                (
                    "WECOM_SIDECAR_LOG",
                    "trace,pingora_core=debug,pingora_proxy=debug",
                ),
            ],
        )
        .await;
        sc.wait_ready().await;
        let answers = drive_every_path(&sim, &sc, &key_file).await;

        let hr_encoded: String = form_urlencoded::byte_serialize(HR_SECRET.as_bytes()).collect();
        let mut secrets: Vec<String> = vec![
            HR_SECRET.into(),
            OPS_SECRET.into(),
            CLIENT_KEY.into(),
            ROBOT_KEY.into(),
            hr_encoded,
        ];
        let tokens = sim.issued_tokens();
        assert!(
            tokens.len() >= 3,
            "the run should have fetched several tokens"
        );
        secrets.extend(tokens);
        assert!(answers.contains("48002"), "the unsigned calls were refused");
        assert_clean(&format!("answers ({format} logs run)"), &answers, &secrets);
        assert!(
            answers.contains("access_token=hr-bot"),
            "the redirects and echoes came back, with the app's name for its token"
        );
        assert!(
            answers.contains("corpsecret=***") && answers.contains("answered HTTP 302"),
            "gettoken's echo of its query and its redirect came back"
        );
        let logs = sc.logs();
        assert!(
            logs.len() > 10_000,
            "trace logging produced little: {}",
            logs.len()
        );
        // The upstream attempt lines (debug) carry the query sent, with the token masked.
        assert!(
            logs.contains("access_token=***"),
            "no upstream attempt line with a masked token in the {format} logs"
        );
        assert_clean(&format!("{format} logs"), &logs, &secrets);
    }
}

#[test]
fn check_output_never_shows_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let pasted = "Pasted0SecretValue1234567890abcdefghijklmn";
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, format!("{HR_SECRET} {HR_SECRET}\n")).unwrap();
    let config = format!(
        r#"upstreams:
  primary: {{ url: "https://user:{OPS_SECRET}@qyapi.weixin.qq.com" }}
apps:
  - {{ name: a, corp_id: ww1, secret_env: {pasted} }}
  - {{ name: b, corp_id: ww1, secret_file: "{}" }}
  - {{ name: c, corp_id: ww1, secret_env: SPACED_SECRET }}
clients:
  - {{ name: k, key_env: SHORT_KEY, apps: [a] }}
fleet: {{ size: 2, redis_url: "redis://:{OPS_SECRET}@redis:6379/" }}
"#,
        secret_file.display()
    );
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wecom-sidecar"))
        .arg("--config")
        .arg(&path)
        .arg("--check")
        .env("SPACED_SECRET", format!("{OPS_SECRET} x"))
        .env("SHORT_KEY", "short-client-key-value")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("apps[0].secret_env"), "{text}");
    for s in [pasted, HR_SECRET, OPS_SECRET, "short-client-key-value"] {
        assert!(!text.contains(s), "--check printed a secret:\n{text}");
    }
}

#[tokio::test]
async fn listeners_beyond_loopback_are_warned_about() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), "").await;
    assert!(!sc.logs().contains("listening beyond loopback"));
    let wide = Sidecar::start_with(|l, a| {
        config_yaml(l, a, &sim.url(), "").replace(
            &format!("listen: \"127.0.0.1:{l}\""),
            &format!("listen: \"0.0.0.0:{l}\""),
        )
    })
    .await;
    let warned = eventually(Duration::from_secs(5), async || {
        wide.logs().contains("listening beyond loopback")
    })
    .await;
    assert!(warned, "{}", wide.logs());
}
