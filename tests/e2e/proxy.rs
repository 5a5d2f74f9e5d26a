//! The walking skeleton end to end: real sidecar process, real simulator, real HTTP.

use std::time::Duration;

use crate::harness::sim::FaultKind;
use crate::harness::*;
use serde_json::json;
use sha2::{Digest, Sha256};

#[tokio::test]
async fn unmodified_sdk_flow_works_with_placeholder_credentials() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), "").await;
    let c = client();

    // The SDK asks for a token with the app's name as secret and gets the name back.
    let (status, _, v) = get_json(
        &c,
        &sc.url(&format!(
            "/cgi-bin/gettoken?corpid={CORP_ID}&corpsecret=ops-bot"
        )),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["errcode"], 0);
    assert_eq!(v["access_token"], "ops-bot");
    assert_eq!(v["expires_in"], 7200);

    let tok = v["access_token"].as_str().unwrap();
    let (_, h, v) = get_json(
        &c,
        &sc.url(&format!(
            "/cgi-bin/user/get?access_token={tok}&userid=zhangsan"
        )),
    )
    .await;
    assert_eq!(v["errcode"], 0, "{v}");
    assert_eq!(v["userid"], "zhangsan");
    assert!(h.get("x-request-id").is_some());
    let (_, _, v) = get_json(
        &c,
        &sc.url(&format!("/cgi-bin/department/list?access_token={tok}")),
    )
    .await;
    assert_eq!(v["errcode"], 0, "{v}");
    let msg = json!({"touser": "zhangsan", "msgtype": "text", "agentid": 1000003, "text": {"content": "hi"}});
    let (_, _, v) = post_json(
        &c,
        &sc.url(&format!("/cgi-bin/message/send?access_token={tok}")),
        &msg,
    )
    .await;
    assert_eq!(v["errcode"], 0, "{v}");

    let counters = sim.counters();
    assert_eq!(counters.messages_delivered, 1);
    assert_eq!(
        counters.gettoken.get("ops-bot").copied().unwrap_or(0),
        1,
        "the sidecar fetched ops-bot's token once"
    );
    // The app's gettoken never reached WeCom with a placeholder.
    assert!(!sc.logs().contains("corpsecret=ops-bot"));

    // A wrong placeholder is refused like WeCom would.
    let (_, _, v) = get_json(
        &c,
        &sc.url(&format!(
            "/cgi-bin/gettoken?corpid={CORP_ID}&corpsecret=nope"
        )),
    )
    .await;
    assert_eq!(v["errcode"], 40001);
    let (_, _, v) = get_json(
        &c,
        &sc.url("/cgi-bin/gettoken?corpid=wwother&corpsecret=ops-bot"),
    )
    .await;
    assert_eq!(v["errcode"], 40013);
}

#[tokio::test]
async fn app_chosen_by_header_token_or_default() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), "").await;
    sc.wait_ready().await;
    sim.reset_counters();
    let c = client();
    // Default app without any name.
    let (_, _, v) = get_json(&c, &sc.url("/cgi-bin/user/get?userid=a")).await;
    assert_eq!(v["errcode"], 0);
    // By header.
    let r = c
        .get(sc.url("/cgi-bin/user/get?userid=a"))
        .header("X-WeCom-App", "ops-bot")
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["errcode"], 0);
    // Unknown app by header: a clear local error naming no secret.
    let r = c
        .get(sc.url("/cgi-bin/user/get?userid=a"))
        .header("X-WeCom-App", "ghost")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-sidecar-reason"], "unknown-app");
    let v: serde_json::Value = r.json().await.unwrap();
    let msg = v["errmsg"].as_str().unwrap();
    assert!(msg.contains("hr-bot") && msg.contains("ops-bot"), "{msg}");
    assert!(!msg.contains(HR_SECRET));
    // debug=1 still answers (its stripping is asserted in proxy::request's unit tests).
    let (_, _, v) = get_json(&c, &sc.url("/cgi-bin/user/get?userid=a&debug=1")).await;
    assert_eq!(v["errcode"], 0);
}

#[tokio::test]
async fn two_hundred_concurrent_first_calls_fetch_one_token() {
    let sim = simulator().await;
    // Slow gettoken so every call arrives while the first fetch is still under way.
    sim.inject(fault(
        "/cgi-bin/gettoken",
        FaultKind::Delay(Duration::from_millis(500)),
        None,
    ));
    let sc = Sidecar::start(&sim.url(), "").await;
    let c = client();
    let calls = (0..200).map(|i| {
        let c = c.clone();
        let url = sc.url(&format!(
            "/cgi-bin/user/get?access_token=ops-bot&userid=u{i}"
        ));
        tokio::spawn(async move { get_json(&c, &url).await.2 })
    });
    for call in calls {
        let v = call.await.unwrap();
        assert_eq!(v["errcode"], 0, "{v}");
    }
    assert_eq!(
        sim.counters().gettoken.get("ops-bot").copied().unwrap_or(0),
        1
    );
}

#[tokio::test]
async fn tokens_expired_under_traffic_are_invisible_to_the_app() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), "").await;
    sc.wait_ready().await;
    let c = client();
    let before = sim.counters().gettoken.get("hr-bot").copied().unwrap_or(0);
    let mut token_errors = 0;
    for round in 0..40 {
        if round == 20 {
            sim.expire_all_tokens();
        }
        let batch = (0..10).map(|i| {
            let c = c.clone();
            let url = sc.url(&format!("/cgi-bin/user/get?userid=r{round}i{i}"));
            tokio::spawn(async move { get_json(&c, &url).await.2 })
        });
        for b in batch {
            let v = b.await.unwrap();
            let code = v["errcode"].as_i64().unwrap();
            if [40014, 42001, 40001].contains(&code) {
                token_errors += 1;
            }
            assert_eq!(code, 0, "{v}");
        }
    }
    assert_eq!(token_errors, 0);
    let after = sim.counters().gettoken.get("hr-bot").copied().unwrap_or(0);
    assert_eq!(
        after - before,
        1,
        "exactly one extra gettoken after the expiry"
    );
}

#[tokio::test]
async fn gettoken_failure_is_a_clear_local_answer_and_service_resumes() {
    let sim = simulator().await;
    sim.inject(fault("/cgi-bin/gettoken", FaultKind::Errcode(60020), None));
    let sc = Sidecar::start(&sim.url(), "").await;
    sc.wait_ready().await; // ready means "tried", even when it failed
    let c = client();
    let r = c
        .get(sc.url("/cgi-bin/user/get?userid=a"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-sidecar-reason"], "no-token");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["errcode"], 60020, "{v}");
    assert!(v["errmsg"].as_str().unwrap().contains("hr-bot"));

    sim.clear_faults();
    let resumed = eventually(Duration::from_secs(15), async || {
        get_json(&c, &sc.url("/cgi-bin/user/get?userid=a")).await.2["errcode"] == 0
    })
    .await;
    assert!(resumed, "service did not resume after gettoken recovered");
    let status = sc.status().await;
    assert!(status.contains("refresh_failures"));
}

#[tokio::test]
async fn ten_megabyte_upload_and_download_stream_intact() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), "").await;
    sc.wait_ready().await;
    let c = client();
    // Warm up the paths once so the baseline includes their fixed costs.
    let small = reqwest::multipart::Form::new().part(
        "media",
        reqwest::multipart::Part::bytes(vec![1u8; 1024]).file_name("a.bin"),
    );
    let r: serde_json::Value = c
        .post(sc.url("/cgi-bin/media/upload?type=file"))
        .multipart(small)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["errcode"], 0, "{r}");
    let _ = c
        .get(sc.url("/cgi-bin/media/get?media_id=gen-1024"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let baseline = peak_rss_kib(sc.pid());

    let data: Vec<u8> = (0..10 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let sent_sum = Sha256::digest(&data);
    let form = reqwest::multipart::Form::new().part(
        "media",
        reqwest::multipart::Part::bytes(data).file_name("big.bin"),
    );
    let r: serde_json::Value = c
        .post(sc.url("/cgi-bin/media/upload?type=file"))
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["errcode"], 0, "{r}");
    let media_id = r["media_id"].as_str().unwrap().to_string();

    let got = c
        .get(sc.url(&format!("/cgi-bin/media/get?media_id={media_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    let got = got.bytes().await.unwrap();
    assert_eq!(got.len(), 10 * 1024 * 1024);
    assert_eq!(
        Sha256::digest(&got),
        sent_sum,
        "download differs from upload"
    );

    let big = c
        .get(sc.url("/cgi-bin/media/get?media_id=gen-10485760"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(big.len(), 10 * 1024 * 1024);

    let grown = peak_rss_kib(sc.pid()).saturating_sub(baseline);
    assert!(
        grown < 6 * 1024,
        "peak RSS grew by {grown} KiB moving 10 MB bodies: they were held in memory"
    );
}

/// The deadline bounds the wait for an answer, not its delivery: an app that reads a large
/// download slowly, past the deadline, still gets every byte, and nothing else.
#[tokio::test]
async fn a_download_read_slower_than_the_deadline_arrives_whole() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), "defaults:\n  deadline: 1s\n").await;
    sc.wait_ready().await;
    // More than the loopback socket buffers between simulator, sidecar and app hold, so the
    // sidecar is still writing when the deadline passes.
    const SIZE: u64 = 48 * 1024 * 1024;
    let mut r = client()
        .get(sc.url(&format!("/cgi-bin/media/get?media_id=gen-{SIZE}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut got = Vec::with_capacity(SIZE as usize);
    while let Some(chunk) = r.chunk().await.expect("the download was cut") {
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got.len() as u64, SIZE, "a download cut or padded");
    assert!(
        got == crate::harness::sim::body::generated_bytes(SIZE),
        "the download's bytes differ from what the simulator sent"
    );
}

#[tokio::test]
async fn broken_upstream_answers_become_clear_local_answers() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), "").await;
    sc.wait_ready().await;
    let c = client();
    for kind in [
        FaultKind::Garbage,
        FaultKind::Truncated,
        FaultKind::Reset,
        FaultKind::Status(503),
    ] {
        sim.inject(fault("/cgi-bin/message/send", kind.clone(), Some(1)));
        let msg = json!({"touser": "a", "msgtype": "text", "agentid": 1, "text": {"content": "x"}});
        let (status, h, v) = post_json(&c, &sc.url("/cgi-bin/message/send"), &msg).await;
        assert_eq!(status, 502, "{kind:?}: {v}");
        assert_eq!(h["x-sidecar-reason"], "upstream-unavailable");
        assert_eq!(v["errcode"], -1);
    }
    // Non-cgi paths and bad methods are refused locally.
    let r = c.get(sc.url("/etc/passwd")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = c.delete(sc.url("/cgi-bin/user/get")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    // Oversized JSON body: 413 before anything is sent.
    let big = vec![b'a'; 3 * 1024 * 1024];
    let before = sim
        .counters()
        .calls
        .get("/cgi-bin/message/send")
        .copied()
        .unwrap_or(0);
    let r = c
        .post(sc.url("/cgi-bin/message/send"))
        .body(big)
        .send()
        .await;
    if let Ok(r) = r {
        assert_eq!(r.status(), 413);
    }
    assert_eq!(
        sim.counters()
            .calls
            .get("/cgi-bin/message/send")
            .copied()
            .unwrap_or(0),
        before
    );
}

#[tokio::test]
async fn metrics_status_and_logs_hold_no_secret_or_token() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), "").await;
    sc.wait_ready().await;
    let c = client();
    // Drive the main paths, including failures.
    let _ = get_json(
        &c,
        &sc.url(&format!(
            "/cgi-bin/gettoken?corpid={CORP_ID}&corpsecret={HR_SECRET}"
        )),
    )
    .await;
    let _ = get_json(&c, &sc.url("/cgi-bin/user/get?userid=a")).await;
    sim.expire_all_tokens();
    let _ = get_json(&c, &sc.url("/cgi-bin/user/get?userid=b")).await;
    sim.inject(fault("/cgi-bin/user/get", FaultKind::Garbage, Some(1)));
    let _ = get_json(&c, &sc.url("/cgi-bin/user/get?userid=c")).await;
    let _ = c
        .post(sc.url("/cgi-bin/webhook/send?key=robot-key-secret-123"))
        .json(&json!({"msgtype":"text"}))
        .send()
        .await;

    let metrics = sc.settled_metrics().await;
    assert!(
        metrics.has(
            "wecom_api_request_duration_seconds_bucket",
            &[("api", "user/get")]
        ),
        "{metrics}"
    );
    assert!(metrics.has("wecom_token_refresh_total", &[]));
    assert!(metrics
        .value("wecom_token_expires_in_seconds", &[("app", "hr-bot")])
        .is_some());
    assert!(metrics.has("wecom_upstream_attempts_total", &[]));
    assert!(metrics.has("wecom_api_errcode_total", &[]));
    let status = sc.status().await;
    assert!(status.contains("fingerprint"));
    let logs = sc.logs();
    assert!(
        logs.contains("api=user/get") || logs.contains("api=\"user/get\""),
        "no access log line:\n{logs}"
    );

    let mut secrets: Vec<String> = vec![
        HR_SECRET.into(),
        OPS_SECRET.into(),
        "robot-key-secret-123".into(),
    ];
    secrets.extend(sim.issued_tokens());
    assert!(sim.issued_tokens().len() >= 2);
    for s in &secrets {
        assert!(!metrics.text().contains(s.as_str()), "secret in /metrics");
        assert!(!status.contains(s.as_str()), "secret in /admin/status");
        assert!(!logs.contains(s.as_str()), "secret in logs");
    }
}

#[tokio::test]
async fn sigterm_drains_in_flight_calls_and_exits_zero() {
    let sim = simulator().await;
    let mut sc = Sidecar::start(&sim.url(), "").await;
    sc.wait_ready().await;
    sim.inject(fault(
        "/cgi-bin/user/get",
        FaultKind::Delay(Duration::from_millis(800)),
        None,
    ));
    let c = client();
    // 20 calls in flight (each held 800 ms upstream) when SIGTERM arrives: all must complete.
    let in_flight: Vec<_> = (0..20)
        .map(|i| {
            let c = c.clone();
            let url = sc.url(&format!("/cgi-bin/user/get?userid=d{i}"));
            tokio::spawn(async move { get_json(&c, &url).await.2 })
        })
        .collect();
    // All 20 are in flight once the simulator holds them (it counts a call on arrival).
    let held = eventually(Duration::from_secs(10), async || {
        calls(&sim, "/cgi-bin/user/get") == 20
    })
    .await;
    assert!(held, "the 20 calls never reached the simulator");
    sc.signal("TERM");
    for call in in_flight {
        assert_eq!(call.await.unwrap()["errcode"], 0);
    }
    let code = tokio::task::spawn_blocking(move || sc.wait_exit(Duration::from_secs(20)))
        .await
        .unwrap();
    assert_eq!(code, Some(0));
}

/// A port another process holds stops the start at once with an error naming the key and
/// the address: no 30 s of bind retries, no half-started process whose admin port answers.
#[test]
fn a_taken_port_stops_the_start_with_a_clear_error() {
    for taken_key in ["listen", "admin_listen"] {
        let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = holder.local_addr().unwrap().port();
        let free = free_port();
        let (listen, admin) = if taken_key == "listen" {
            (taken, free)
        } else {
            (free, taken)
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sidecar.yaml");
        std::fs::write(&path, config_yaml(listen, admin, "http://127.0.0.1:9", "")).unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wecom-sidecar"))
            .arg("--config")
            .arg(&path)
            .env("TEST_HR_SECRET", HR_SECRET)
            .env("TEST_OPS_SECRET", OPS_SECRET)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Bounded only so a regression fails instead of hanging the suite.
        let Some(status) = exited_within(&mut child, Duration::from_secs(20)) else {
            let _ = child.kill();
            panic!("{taken_key} on a taken port: the sidecar did not exit");
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert_eq!(status.code(), Some(1), "{taken_key}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "{taken_key} 127.0.0.1:{taken}: the address is already in use"
            )),
            "{taken_key}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        drop(holder);
    }
}

#[tokio::test]
async fn expect_continue_is_answered_before_the_body_is_sent() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), "").await;
    sc.wait_ready().await;
    let mut conn = Raw::connect(addr_of(&sc.base))
        .await
        .within(Duration::from_secs(5));
    let body = br#"{"touser":"a","msgtype":"text","agentid":1,"text":{"content":"x"}}"#;
    let head = format!(
        "POST /cgi-bin/message/send HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    conn.send(head.as_bytes()).await.unwrap();
    let first = conn.interim().await.expect("no 100 Continue");
    assert_eq!(first, 100, "the first answer");
    conn.send(body).await.unwrap();
    let answer = conn.answered().await;
    assert_eq!(
        answer.end,
        End::Answered,
        "connection closed: {}",
        answer.show()
    );
    assert!(
        String::from_utf8_lossy(&answer.body).contains("\"errcode\":0"),
        "{}",
        answer.show()
    );
    assert_eq!(sim.counters().messages_delivered, 1);
}

#[tokio::test]
async fn a_failing_refresh_keeps_serving_the_valid_token_and_backs_off() {
    // Tokens live 70 s; the sidecar refreshes 65 s ahead, so a refresh is due 5 s in.
    let mut cfg = sim_config();
    cfg.token_ttl = Duration::from_secs(70);
    let sim = crate::harness::sim::Simulator::start("127.0.0.1:0".parse().unwrap(), cfg)
        .await
        .unwrap();
    // min_fetch_interval 2 s: the refresh 5 s in is not held by the first fetch's interval.
    let sc = Sidecar::start(
        &sim.url(),
        "token:\n  refresh_before_expiry: 65s\n  min_fetch_interval: 2s\n",
    )
    .await;
    sc.wait_ready().await;
    // hr-bot's gettoken calls, answered or faulted (ops-bot refreshes on its own schedule).
    let hr_tries = || sim.counters().gettoken.get("hr-bot").copied().unwrap_or(0);
    let first = hr_tries();
    sim.inject(fault("/cgi-bin/gettoken", FaultKind::Errcode(60020), None));
    let c = client();
    // 10 s of steady calls while every refresh fails.
    let until = std::time::Instant::now() + Duration::from_secs(10);
    let mut calls = 0;
    while std::time::Instant::now() < until {
        let (_, _, v) = get_json(&c, &sc.url("/cgi-bin/user/get?userid=steady")).await;
        assert_eq!(
            v["errcode"], 0,
            "the still-valid token must keep serving: {v}"
        );
        calls += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The refresh falls due about 5 s in and is looked at once a second. Backing off (0.5-1 s,
    // then 1-2 s, 2-4 s, 4-8 s) fits at most 4 tries in any 10 s, 5 with a late start; a
    // refresher that does not back off makes one a second, 6 or more.
    let tries = hr_tries() - first;
    assert!(tries >= 2, "the refresh was not retried ({tries} tries)");
    assert!(
        tries <= 5,
        "{tries} gettoken tries for {calls} calls: not backing off"
    );
    let status = sc.status().await;
    assert!(
        status.contains("60020"),
        "the refresh failure is not shown: {status}"
    );
    // WeCom recovers: the next refresh succeeds.
    sim.clear_faults();
    let refreshed = eventually(Duration::from_secs(40), async || {
        sc.metrics().await.value(
            "wecom_token_refresh_total",
            &[("app", "hr-bot"), ("result", "ok")],
        ) == Some(2.0)
    })
    .await;
    assert!(refreshed, "no successful refresh after recovery");
}
