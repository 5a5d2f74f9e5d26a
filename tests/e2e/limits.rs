//! Concurrency and day limits end to end (issue 16): `max_in_flight` against WeCom's 45033,
//! a 45009 that speaks of a day held until 00:00 China time, and `recipients_per_day`, locally
//! and across a fleet on one Redis.

use std::time::{Duration, SystemTime};

use crate::harness::sim::FaultKind;
use crate::harness::*;
use serde_json::json;

/// Seconds until the next 00:00 China time (UTC+8), from this machine's clock.
fn secs_to_china_midnight() -> u64 {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    86_400 - (now + 8 * 3600) % 86_400
}

fn msg(touser: &str) -> serde_json::Value {
    json!({"touser": touser, "msgtype": "text", "agentid": 1, "text": {"content": "hi"}})
}

/// `n` calls of `path` at once; their (status, errcode, X-Sidecar-Reason).
async fn at_once(c: &reqwest::Client, url: &str, n: usize) -> Vec<(u16, i64, String)> {
    let calls = (0..n).map(|_| async {
        let (status, h, v) = get_json(c, url).await;
        let reason = h
            .get("x-sidecar-reason")
            .map(|r| r.to_str().unwrap().to_string())
            .unwrap_or_default();
        (status, v["errcode"].as_i64().unwrap(), reason)
    });
    futures_util::future::join_all(calls).await
}

#[tokio::test]
async fn the_simulator_answers_45033_past_its_concurrency_limit() {
    let sim = simulator().await;
    sim.limit_concurrency(2);
    sim.inject(fault(
        "/cgi-bin/user/get",
        FaultKind::Delay(Duration::from_secs(2)),
        None,
    ));
    let c = client();
    let url = format!("{}/cgi-bin/user/get?access_token=x&userid=a", sim.url());
    let answers = at_once(&c, &url, 4).await;
    let busy = answers.iter().filter(|(_, code, _)| *code == 45033).count();
    assert_eq!(busy, 2, "two calls over the limit of 2: {answers:?}");
    assert_eq!(sim.peak_in_flight("/cgi-bin/user/get"), 2);
}

#[tokio::test]
async fn max_in_flight_holds_wecom_at_n_and_answers_the_rest_with_45033() {
    let sim = simulator().await;
    // WeCom would refuse a fourth call at once with 45033.
    sim.limit_concurrency(3);
    let sc = Sidecar::start(
        &sim.url(),
        "routes:\n  - path: /cgi-bin/user/get\n    max_in_flight: 3\n    max_wait: 300ms\n",
    )
    .await;
    sc.wait_ready().await;
    sim.inject(fault(
        "/cgi-bin/user/get",
        // Under the harness's upstream timeout (3 s), well over max_wait.
        FaultKind::Delay(Duration::from_secs(2)),
        None,
    ));
    let c = client();
    let answers = at_once(&c, &sc.url("/cgi-bin/user/get?userid=a"), 8).await;
    let passed = answers.iter().filter(|a| a.1 == 0).count();
    let local: Vec<_> = answers
        .iter()
        .filter(|a| *a == &(200, 45033, "quota".to_string()))
        .collect();
    assert_eq!(passed, 3, "{answers:?}");
    assert_eq!(local.len(), 5, "the rest got the local 45033: {answers:?}");
    assert_eq!(sim.peak_in_flight("/cgi-bin/user/get"), 3);
    assert_eq!(
        calls(&sim, "/cgi-bin/user/get"),
        3,
        "the refused calls never reached WeCom"
    );
    let m = sc.metrics().await;
    assert_eq!(
        m.value(
            "wecom_quota_rejected_total",
            &[("api", "user/get"), ("app", "hr-bot")]
        ),
        Some(5.0),
        "{m}"
    );
    // The places free when the calls end: the next call passes.
    sim.clear_faults();
    let (_, _, v) = get_json(&c, &sc.url("/cgi-bin/user/get?userid=a")).await;
    assert_eq!(v["errcode"], 0, "{v}");
}

#[tokio::test]
async fn a_day_45009_is_held_until_china_midnight() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), "").await;
    sc.wait_ready().await;
    let c = client();
    sim.inject(fault(
        "/cgi-bin/department/list",
        FaultKind::DayLimit,
        Some(1),
    ));
    let (_, h, v) = get_json(&c, &sc.url("/cgi-bin/department/list")).await;
    assert_eq!(v["errcode"], 45009, "WeCom's own answer: {v}");
    assert!(h.get("x-sidecar-reason").is_none(), "{h:?}");

    let (_, h, v) = get_json(&c, &sc.url("/cgi-bin/department/list")).await;
    assert_eq!(v["errcode"], 45009, "{v}");
    assert_eq!(h["x-sidecar-reason"], "quota");
    let retry_after: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    let expected = secs_to_china_midnight();
    assert!(
        retry_after.abs_diff(expected) <= 10,
        "Retry-After {retry_after} s, China midnight in {expected} s"
    );
    assert_eq!(calls(&sim, "/cgi-bin/department/list"), 1);
    let m = sc.metrics().await;
    assert!(
        m.has(
            "wecom_quota_blocks_total",
            &[("api", "department/list"), ("errcode", "45009")]
        ),
        "{m}"
    );
}

#[tokio::test]
async fn recipients_per_day_refuses_the_send_that_passes_it() {
    let sim = simulator().await;
    let sc = Sidecar::start(
        &sim.url(),
        "routes:\n  - path: /cgi-bin/message/send\n    recipients_per_day: 5\n",
    )
    .await;
    sc.wait_ready().await;
    let c = client();
    let url = sc.url("/cgi-bin/message/send");
    for to in ["a|b|c", "d|e"] {
        let (_, _, v) = post_json(&c, &url, &msg(to)).await;
        assert_eq!(v["errcode"], 0, "{to}: {v}");
    }
    let (status, h, v) = post_json(&c, &url, &msg("f")).await;
    assert_eq!((status, v["errcode"].as_i64()), (200, Some(45009)), "{v}");
    assert_eq!(h["x-sidecar-reason"], "quota");
    let errmsg = v["errmsg"].as_str().unwrap();
    assert!(
        errmsg.contains("recipients_per_day (5 members a day"),
        "{errmsg}"
    );
    let retry_after: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(
        retry_after.abs_diff(secs_to_china_midnight()) <= 10,
        "{retry_after}"
    );
    assert_eq!(sim.counters().messages_delivered, 2);
    // Other APIs of the app are not capped by it.
    let (_, _, v) = get_json(&c, &sc.url("/cgi-bin/user/get?userid=a")).await;
    assert_eq!(v["errcode"], 0, "{v}");
}

/// Fleet mode: `recipients_per_day` is counted fleet-wide in Redis; `max_in_flight` is per
/// sidecar, so two sidecars capped at 1 each put 2 calls in flight at WeCom.
#[tokio::test]
async fn in_a_fleet_the_day_count_is_shared_and_in_flight_is_per_sidecar() {
    let redis = Redis::start().await;
    let sim = simulator().await;
    let cfg = format!(
        "fleet:\n  redis_url: \"{}\"\n  key_prefix: \"lim:\"\n  size: 2\n  timeout: 2s\nroutes:\n  - path: /cgi-bin/message/send\n    recipients_per_day: 4\n  - path: /cgi-bin/user/get\n    max_in_flight: 1\n",
        redis.url()
    );
    let (a, b) = (
        Sidecar::start(&sim.url(), &cfg).await,
        Sidecar::start(&sim.url(), &cfg).await,
    );
    a.wait_ready().await;
    b.wait_ready().await;
    let c = client();
    let (_, _, v) = post_json(&c, &a.url("/cgi-bin/message/send"), &msg("a|b|c")).await;
    assert_eq!(v["errcode"], 0, "{v}");
    let (_, h, v) = post_json(&c, &b.url("/cgi-bin/message/send"), &msg("d|e")).await;
    assert_eq!(v["errcode"], 45009, "the fleet's count is 3 of 4: {v}");
    assert_eq!(h["x-sidecar-reason"], "quota");
    let (_, _, v) = post_json(&c, &b.url("/cgi-bin/message/send"), &msg("d")).await;
    assert_eq!(v["errcode"], 0, "{v}");
    assert_eq!(sim.counters().messages_delivered, 2);

    sim.inject(fault(
        "/cgi-bin/user/get",
        FaultKind::Delay(Duration::from_secs(2)),
        None,
    ));
    let (url_a, url_b) = (
        a.url("/cgi-bin/user/get?userid=a"),
        b.url("/cgi-bin/user/get?userid=a"),
    );
    let (x, y) = tokio::join!(get_json(&c, &url_a), get_json(&c, &url_b));
    assert_eq!(
        (x.2["errcode"].as_i64(), y.2["errcode"].as_i64()),
        (Some(0), Some(0))
    );
    assert_eq!(sim.peak_in_flight("/cgi-bin/user/get"), 2);
}
