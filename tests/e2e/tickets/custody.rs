//! What the sidecar does with the tickets it holds: answers them WeCom-shaped, passes other
//! `ticket/get` types on, holds fetches when WeCom answers 45009, honours `clients:` on the
//! signature endpoint, and lets no ticket into a log line (at trace), a metric or the admin
//! port, which shows a fingerprint only.

use sha2::{Digest, Sha256};
use wecom_sidecar::signing::{body_sha256, now_secs, sign, Signed};

use super::*;
use crate::harness::sim::FaultKind;

#[tokio::test]
async fn tickets_are_answered_and_kept_out_of_logs_metrics_and_admin() {
    let sim = simulator().await;
    let sc = Sidecar::start_with_env(
        |l, a| config_yaml(l, a, &sim.url(), ""),
        &[("WECOM_SIDECAR_LOG", "trace")],
    )
    .await;
    sc.wait_ready().await;
    let (reason, jsapi) = ticket_call(&sc, "hr-bot", "/cgi-bin/get_jsapi_ticket").await;
    assert_eq!(reason.as_deref(), Some("ticket"));
    assert_eq!(
        (&jsapi["errcode"], &jsapi["errmsg"]),
        (&0.into(), &"ok".into()),
        "{jsapi}"
    );
    let (_, agent) = ticket_call(&sc, "hr-bot", "/cgi-bin/ticket/get?type=agent_config").await;
    let (_, ops_jsapi) = ticket_call(&sc, "ops-bot", "/cgi-bin/get_jsapi_ticket").await;
    let (_, ops_agent) = ticket_call(&sc, "ops-bot", "/cgi-bin/ticket/get?type=agent_config").await;
    let ticket = |v: &Value| v["ticket"].as_str().unwrap().to_string();
    // The corp's jsapi_ticket is one for both apps; agent_config tickets are per app.
    assert_eq!(ticket(&jsapi), ticket(&ops_jsapi));
    assert_ne!(ticket(&agent), ticket(&ops_agent));
    assert_eq!(fetched(&sim, JSAPI), 1);
    assert_eq!(fetched(&sim, "agent_config:ops-bot"), 1);
    let signed = client()
        .get(sc.url("/sidecar/jsapi/signature?kind=agent&url=https%3A%2F%2Fa.example%2Fp"))
        .send()
        .await
        .unwrap();
    let signed: Value = signed.json().await.unwrap();
    assert_eq!(signed["errcode"], 0, "{signed}");
    assert_eq!(signed["agentid"], 1000002, "{signed}");

    // Any other type is WeCom's to answer (the simulator: 40058).
    let (reason, other) = ticket_call(&sc, "hr-bot", "/cgi-bin/ticket/get?type=wx_card").await;
    assert_eq!(
        (reason, other["errcode"].as_i64()),
        (None, Some(40058)),
        "{other}"
    );

    let status: Value = serde_json::from_str(&sc.status().await).unwrap();
    let hr = &status["apps"].as_array().unwrap()[0];
    assert_eq!(hr["name"], "hr-bot");
    let fp = |t: &str| hex::encode(&Sha256::digest(t.as_bytes())[..4]);
    assert_eq!(
        hr["tickets"]["jsapi"]["fingerprint"],
        fp(&ticket(&jsapi)).as_str(),
        "{hr}"
    );
    assert_eq!(
        hr["tickets"]["agent_config"]["fingerprint"],
        fp(&ticket(&agent)).as_str()
    );
    assert!(hr["tickets"]["jsapi"]["expires_in_s"]
        .as_u64()
        .is_some_and(|s| s > 7000));

    let metrics = sc.metrics().await.into_text();
    let status = sc.status().await;
    let logs = sc.logs();
    assert!(
        logs.contains("ticket fetched"),
        "the fetch is logged (by fingerprint)"
    );
    for t in [&jsapi, &agent, &ops_agent].map(ticket) {
        assert!(!logs.contains(&t), "a ticket in the log:\n{logs}");
        assert!(!metrics.contains(&t), "a ticket in /metrics");
        assert!(!status.contains(&t), "a ticket in /admin/status: {status}");
    }
}

/// WeCom answers 45009 to every jsapi_ticket fetch: the app gets WeCom's 45009, and the
/// sidecar makes one fetch however many calls come (held for `min_fetch_interval`).
#[tokio::test]
async fn a_wecom_45009_holds_ticket_fetches() {
    let sim = simulator().await;
    sim.inject(fault(
        "/cgi-bin/get_jsapi_ticket",
        FaultKind::Errcode(45009),
        None,
    ));
    let sc = Sidecar::start(&sim.url(), "token:\n  min_fetch_interval: 30s\n").await;
    sc.wait_ready().await;
    for _ in 0..30 {
        let (reason, v) = ticket_call(&sc, "hr-bot", "/cgi-bin/get_jsapi_ticket").await;
        assert_eq!(reason.as_deref(), Some("no-ticket"));
        assert_eq!(v["errcode"], 45009, "{v}");
    }
    assert_eq!(
        calls(&sim, "/cgi-bin/get_jsapi_ticket"),
        1,
        "the sidecar hammered WeCom"
    );
    let m = sc.metrics().await;
    let labels = [("app", "hr-bot"), ("kind", "jsapi"), ("result", "error")];
    assert_eq!(
        m.value("wecom_ticket_refresh_total", &labels),
        Some(1.0),
        "{m}"
    );
    // The other ticket is not held by this one's refusal.
    let (_, agent) = ticket_call(&sc, "hr-bot", "/cgi-bin/ticket/get?type=agent_config").await;
    assert_eq!(agent["errcode"], 0, "{agent}");
}

/// The simulator keeps WeCom's per-hour limit: past it (here 2 for the app), 45009.
#[tokio::test]
async fn the_simulator_answers_45009_past_its_hourly_ticket_limit() {
    let mut cfg = sim_config();
    cfg.ticket_limit_per_app = 2;
    let sim = Simulator::start("127.0.0.1:0".parse().unwrap(), cfg)
        .await
        .unwrap();
    let c = client();
    let token_url = format!(
        "{}/cgi-bin/gettoken?corpid={CORP_ID}&corpsecret={HR_SECRET}",
        sim.url()
    );
    let token = get_json(&c, &token_url).await.2["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let ticket_url = format!(
        "{}/cgi-bin/ticket/get?access_token={token}&type=agent_config",
        sim.url()
    );
    let mut codes = Vec::new();
    for _ in 0..3 {
        codes.push(
            get_json(&c, &ticket_url).await.2["errcode"]
                .as_i64()
                .unwrap(),
        );
    }
    assert_eq!(codes, [0, 0, 45009]);
    let bad = format!("{}/cgi-bin/get_jsapi_ticket?access_token=nope", sim.url());
    assert_eq!(get_json(&c, &bad).await.2["errcode"], 40014);
    assert_eq!(fetched(&sim, AGENT_HR), 2);
}

const KEY: &str = "ticket-client-key-0123456789abcdef";

/// With `clients:` set, the signature endpoint takes signed calls only, for the apps the
/// client may use; unsigned or foreign ones never cost a ticket fetch.
#[tokio::test]
async fn the_signature_endpoint_honours_clients() {
    let sim = simulator().await;
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("web.key");
    std::fs::write(&key_file, KEY).unwrap();
    let extra = format!(
        "clients:\n  - {{ name: web, key_file: \"{}\", apps: [hr-bot] }}\n",
        key_file.display()
    );
    let sc = Sidecar::start(&sim.url(), &extra).await;
    sc.wait_ready().await;
    let path = "/sidecar/jsapi/signature";
    let send = |query: &'static str, app: &'static str, signed: bool| {
        let url = sc.url(&format!("{path}?{query}"));
        async move {
            let mut req = client().get(url).header("X-WeCom-App", app);
            if signed {
                let ts = now_secs();
                let hash = body_sha256(b"");
                let s = Signed {
                    method: "GET",
                    path,
                    query,
                    body_sha256: &hash,
                };
                req = req
                    .header("X-Sidecar-Client", "web")
                    .header("X-Sidecar-Timestamp", ts.to_string())
                    .header("X-Sidecar-Signature", sign(KEY.as_bytes(), ts, &s));
            }
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let q = "kind=corp&url=https%3A%2F%2Fa.example%2Fp";
    let (status, v) = send(q, "hr-bot", false).await;
    assert_eq!(status, 401, "{v}");
    let (status, v) = send(q, "ops-bot", true).await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(fetched(&sim, JSAPI), 0, "a refused call cost a fetch");
    let (status, v) = send(q, "hr-bot", true).await;
    assert_eq!(
        (status, &v["errcode"], &v["corpid"]),
        (200, &0.into(), &CORP_ID.into()),
        "{v}"
    );
    assert_eq!(v["signature"].as_str().map(str::len), Some(40), "{v}");
    let (status, v) = send("kind=both&url=x", "hr-bot", true).await;
    assert_eq!((status, &v["errcode"]), (400, &47001.into()), "{v}");
}
