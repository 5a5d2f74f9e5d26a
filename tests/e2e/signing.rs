//! Signed calls (`clients:`): a shared sidecar takes only calls signed with a configured
//! client's key, within the replay window, for the apps that client may use. Refused calls never
//! reach WeCom, are counted, and no key appears anywhere. A rotated key file applies on reload.

use std::time::Duration;

use crate::harness::*;
use reqwest::Method;
use serde_json::{json, Value};
use wecom_sidecar::signing::{body_sha256, now_secs, sign, Signed};

const BILLING_KEY: &str = "billing-key-5d1f0c9e8b7a6f5e4d3c2b1a09f8e7d6";
const ROTATED_KEY: &str = "billing-key-rotated-00112233445566778899aabbcc";
const OPS_TOOL_KEY: &str = "ops-tool-key-a1b2c3d4e5f60718293a4b5c6d7e8f90";

/// Who signs a call: client name, key, timestamp, and the body the signature covers.
type Auth<'a> = Option<(&'a str, &'a str, u64, &'a [u8])>;

struct Call<'a> {
    method: Method,
    path: &'a str,
    query: &'a str,
    body: &'a [u8],
    app: Option<&'a str>,
}

impl Call<'_> {
    fn get<'a>(path: &'a str, query: &'a str) -> Call<'a> {
        Call {
            method: Method::GET,
            path,
            query,
            body: b"",
            app: None,
        }
    }
}

/// Sends `call`, signed as `client` with `key` at `ts` over `signed_body` (the body actually
/// sent is `call.body`, so a test can tamper with it).
async fn send(sc: &Sidecar, call: &Call<'_>, auth: Auth<'_>) -> (u16, Option<String>, Value) {
    let url = if call.query.is_empty() {
        sc.url(call.path)
    } else {
        sc.url(&format!("{}?{}", call.path, call.query))
    };
    let mut req = client()
        .request(call.method.clone(), url)
        .body(call.body.to_vec());
    if !call.body.is_empty() {
        req = req.header("content-type", "application/json");
    }
    if let Some(app) = call.app {
        req = req.header("X-WeCom-App", app);
    }
    if let Some((name, key, ts, signed_body)) = auth {
        let hash = body_sha256(signed_body);
        let sig = sign(
            key.as_bytes(),
            ts,
            &Signed {
                method: call.method.as_str(),
                path: call.path,
                query: call.query,
                body_sha256: &hash,
            },
        );
        req = req
            .header("X-Sidecar-Client", name)
            .header("X-Sidecar-Timestamp", ts.to_string())
            .header("X-Sidecar-Signature", sig);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let reason = r
        .headers()
        .get("x-sidecar-reason")
        .map(|v| v.to_str().unwrap().to_string());
    let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    (status, reason, v)
}

async fn start(sim: &crate::harness::sim::Simulator) -> (Sidecar, tempfile::TempDir) {
    let keys = tempfile::tempdir().unwrap();
    let billing = keys.path().join("billing.key");
    std::fs::write(&billing, format!("{BILLING_KEY}\n")).unwrap();
    let ops = keys.path().join("ops.key");
    std::fs::write(&ops, OPS_TOOL_KEY).unwrap();
    let extra = format!(
        r#"
clients:
  - {{ name: billing, key_file: "{}", apps: [hr-bot] }}
  - {{ name: ops-tool, key_file: "{}", apps: ["*"] }}
"#,
        billing.display(),
        ops.display()
    );
    (Sidecar::start(&sim.url(), &extra).await, keys)
}

#[tokio::test]
async fn signed_calls_pass_and_everything_else_is_refused_before_wecom() {
    let sim = simulator().await;
    let (sc, _keys) = start(&sim).await;
    let now = now_secs();
    let billing = |ts| Some(("billing", BILLING_KEY, ts, &b""[..]));

    // Signed reads and a signed write with a body pass.
    let read = Call::get("/cgi-bin/user/get", "userid=zhangsan");
    let (status, _, v) = send(&sc, &read, billing(now)).await;
    assert_eq!((status, v["errcode"].as_i64()), (200, Some(0)), "{v}");
    let body = serde_json::to_vec(&json!({"touser": "zhangsan", "msgtype": "text", "agentid": 1000002, "text": {"content": "hi"}})).unwrap();
    let send_msg = Call {
        method: Method::POST,
        path: "/cgi-bin/message/send",
        query: "",
        body: &body,
        app: None,
    };
    let (status, _, v) = send(&sc, &send_msg, Some(("billing", BILLING_KEY, now, &body))).await;
    assert_eq!((status, v["errcode"].as_i64()), (200, Some(0)), "{v}");
    // A client allowed every app may use ops-bot; gettoken is signed too and answered locally.
    let ops_read = Call {
        app: Some("ops-bot"),
        ..Call::get("/cgi-bin/user/get", "userid=lisi")
    };
    let (status, _, v) = send(&sc, &ops_read, Some(("ops-tool", OPS_TOOL_KEY, now, b""))).await;
    assert_eq!((status, v["errcode"].as_i64()), (200, Some(0)), "{v}");
    let gettoken = Call::get(
        "/cgi-bin/gettoken",
        "corpid=wwtest0000000001&corpsecret=hr-bot",
    );
    let (_, _, v) = send(&sc, &gettoken, billing(now)).await;
    assert_eq!(v["access_token"], "hr-bot", "{v}");
    let reads_before = sim
        .counters()
        .calls
        .get("/cgi-bin/user/get")
        .copied()
        .unwrap_or(0);
    let sends_before = sim
        .counters()
        .calls
        .get("/cgi-bin/message/send")
        .copied()
        .unwrap_or(0);

    // Refused, each with 401 or 403, reason `unauthorized`, errcode 48002.
    let tampered_body = b"{\"touser\":\"@all\",\"msgtype\":\"text\",\"agentid\":1000002,\"text\":{\"content\":\"hi\"}}";
    let tampered = Call {
        body: tampered_body,
        ..Call {
            method: Method::POST,
            path: "/cgi-bin/message/send",
            query: "",
            body: b"",
            app: None,
        }
    };
    let other_query = Call::get("/cgi-bin/user/get", "userid=boss");
    let ops_gettoken = Call::get(
        "/cgi-bin/gettoken",
        "corpid=wwtest0000000001&corpsecret=ops-bot",
    );
    let cases: Vec<(&str, &Call<'_>, Auth<'_>, u16)> = vec![
        ("unsigned", &read, None, 401),
        (
            "unknown client",
            &read,
            Some(("stranger", BILLING_KEY, now, b"")),
            401,
        ),
        (
            "wrong key",
            &read,
            Some(("billing", OPS_TOOL_KEY, now, b"")),
            401,
        ),
        // A minute beyond the window each way: `now` was read before the first call, and
        // the sidecar's clock may have crossed a second since (a `now + 301` failed CI that
        // way). The exact 300/301 boundary is a unit test in src/signing.rs with a fixed clock.
        ("stale", &read, billing(now - 360), 401),
        ("from the future", &read, billing(now + 360), 401),
        (
            "body changed after signing",
            &tampered,
            Some(("billing", BILLING_KEY, now, &body)),
            401,
        ),
        ("query changed after signing", &other_query, None, 401),
        ("app not allowed", &ops_read, billing(now), 403),
        (
            "gettoken for an app not allowed",
            &ops_gettoken,
            billing(now),
            403,
        ),
    ];
    for (what, call, auth, want) in cases {
        let auth = if what == "query changed after signing" {
            // Sign `userid=zhangsan`, send `userid=boss`: a hand-made signature header.
            let hash = body_sha256(b"");
            let sig = sign(
                BILLING_KEY.as_bytes(),
                now,
                &Signed {
                    method: "GET",
                    path: call.path,
                    query: "userid=zhangsan",
                    body_sha256: &hash,
                },
            );
            let r = client()
                .get(sc.url("/cgi-bin/user/get?userid=boss"))
                .header("X-Sidecar-Client", "billing")
                .header("X-Sidecar-Timestamp", now.to_string())
                .header("X-Sidecar-Signature", sig)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 401, "{what}");
            continue;
        } else {
            auth
        };
        let (status, reason, v) = send(&sc, call, auth).await;
        assert_eq!(status, want, "{what}: {v}");
        assert_eq!(reason.as_deref(), Some("unauthorized"), "{what}");
        assert_eq!(v["errcode"], 48002, "{what}: {v}");
        let msg = v["errmsg"].as_str().unwrap();
        assert!(
            !msg.contains(BILLING_KEY) && !msg.contains(OPS_TOOL_KEY),
            "{msg}"
        );
    }
    // None of them reached WeCom.
    assert_eq!(
        sim.counters()
            .calls
            .get("/cgi-bin/user/get")
            .copied()
            .unwrap_or(0),
        reads_before
    );
    assert_eq!(
        sim.counters()
            .calls
            .get("/cgi-bin/message/send")
            .copied()
            .unwrap_or(0),
        sends_before
    );

    let metrics = sc.metrics().await;
    for (client, reason) in [
        ("unknown", "missing"),
        ("unknown", "unknown_client"),
        ("billing", "bad_signature"),
        ("billing", "stale"),
        ("billing", "app_not_allowed"),
    ] {
        let labels = [("client", client), ("reason", reason)];
        assert!(
            metrics
                .value("wecom_client_rejected_total", &labels)
                .is_some(),
            "no wecom_client_rejected_total{labels:?} in\n{metrics}"
        );
    }
    let logs = sc.logs();
    assert!(
        logs.contains("client=\"billing\"") || logs.contains("client=billing"),
        "access log names the client"
    );
    for out in [metrics.into_text(), logs, sc.status().await] {
        for key in [
            BILLING_KEY,
            ROTATED_KEY,
            OPS_TOOL_KEY,
            HR_SECRET,
            OPS_SECRET,
        ] {
            assert!(!out.contains(key), "a key or secret leaked");
        }
    }
}

#[tokio::test]
async fn a_rotated_key_file_applies_on_reload() {
    let sim = simulator().await;
    let (sc, keys) = start(&sim).await;
    let read = Call::get("/cgi-bin/user/get", "userid=zhangsan");
    let (status, _, _) = send(&sc, &read, Some(("billing", BILLING_KEY, now_secs(), b""))).await;
    assert_eq!(status, 200);

    std::fs::write(keys.path().join("billing.key"), ROTATED_KEY).unwrap();
    let r = client()
        .post(format!("{}/admin/reload", sc.admin))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "reload: {}",
        r.text().await.unwrap()
    );

    let rotated = eventually(Duration::from_secs(5), async || {
        send(&sc, &read, Some(("billing", ROTATED_KEY, now_secs(), b"")))
            .await
            .0
            == 200
    })
    .await;
    assert!(rotated, "the new key was not taken");
    let (status, _, _) = send(&sc, &read, Some(("billing", BILLING_KEY, now_secs(), b""))).await;
    assert_eq!(status, 401, "the old key still works after rotation");
}
