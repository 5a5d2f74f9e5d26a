//! Quotas and retries end to end: faults injected at the simulator, counts read back from it.

use std::time::{Duration, Instant};

use crate::harness::sim::FaultKind;
use crate::harness::*;
use serde_json::json;

const FAST_RETRY: &str = r#"
defaults:
  retry: { attempts: 3, backoff_base: 10ms, backoff_max: 50ms }
"#;

#[tokio::test]
async fn reads_are_retried_through_5xx_and_system_busy() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), FAST_RETRY).await;
    sc.wait_ready().await;
    let c = client();

    sim.inject(fault("/cgi-bin/user/get", FaultKind::Status(502), Some(2)));
    let (status, _, v) = get_json(&c, &sc.url("/cgi-bin/user/get?userid=a")).await;
    assert_eq!((status, v["errcode"].as_i64()), (200, Some(0)), "{v}");
    assert_eq!(calls(&sim, "/cgi-bin/user/get"), 3, "two 502s then the OK");

    sim.reset_counters();
    sim.inject(fault("/cgi-bin/user/get", FaultKind::Errcode(-1), Some(1)));
    let (_, _, v) = get_json(&c, &sc.url("/cgi-bin/user/get?userid=a")).await;
    assert_eq!(v["errcode"], 0, "{v}");
    assert_eq!(calls(&sim, "/cgi-bin/user/get"), 2);

    // Errcode -1 that never clears: at most `attempts` tries, then WeCom's own answer.
    sim.reset_counters();
    sim.inject(fault("/cgi-bin/user/get", FaultKind::Errcode(-1), None));
    let (_, _, v) = get_json(&c, &sc.url("/cgi-bin/user/get?userid=a")).await;
    assert_eq!(v["errcode"], -1);
    assert_eq!(calls(&sim, "/cgi-bin/user/get"), 3);
    sim.clear_faults();

    // Never retried: 48002, 60020.
    for code in [48002, 60020] {
        sim.reset_counters();
        sim.inject(fault(
            "/cgi-bin/user/get",
            FaultKind::Errcode(code),
            Some(1),
        ));
        let (_, _, v) = get_json(&c, &sc.url("/cgi-bin/user/get?userid=a")).await;
        assert_eq!(v["errcode"], code);
        assert_eq!(
            calls(&sim, "/cgi-bin/user/get"),
            1,
            "errcode {code} must not be retried"
        );
    }
    let m = sc.metrics().await;
    assert!(
        m.value(
            "wecom_retries_total",
            &[("api", "user/get"), ("reason", "http_5xx")]
        ) == Some(2.0),
        "{m}"
    );
}

/// WeCom's rule for errcode -1: retried at most 3 times, even where a route allows more
/// attempts for other failures.
#[tokio::test]
async fn system_busy_is_retried_at_most_three_times() {
    let sim = simulator().await;
    let sc = Sidecar::start(
        &sim.url(),
        "routes:\n  - path: /cgi-bin/user/get\n    retry: { attempts: 10, backoff_base: 10ms, backoff_max: 20ms }\n",
    )
    .await;
    sc.wait_ready().await;
    let c = client();
    sim.inject(fault("/cgi-bin/user/get", FaultKind::Errcode(-1), None));
    let (_, _, v) = get_json(&c, &sc.url("/cgi-bin/user/get?userid=a")).await;
    assert_eq!(v["errcode"], -1, "{v}");
    assert_eq!(
        calls(&sim, "/cgi-bin/user/get"),
        4,
        "the call and 3 retries"
    );
    // Other failures still get the route's attempts.
    sim.clear_faults();
    sim.reset_counters();
    sim.inject(fault("/cgi-bin/user/get", FaultKind::Status(503), Some(6)));
    let (_, _, v) = get_json(&c, &sc.url("/cgi-bin/user/get?userid=b")).await;
    assert_eq!(v["errcode"], 0, "{v}");
    assert_eq!(calls(&sim, "/cgi-bin/user/get"), 7);
}

#[tokio::test]
async fn message_send_is_never_repeated_unless_dedupe_makes_it_safe() {
    let sim = simulator().await;
    let extra = format!(
        "{FAST_RETRY}routes:\n  - path: /cgi-bin/message/send\n    api: message/send\n  - path: /cgi-bin/appchat/send\n    dedupe: true\n"
    );
    let sc = Sidecar::start(&sim.url(), &extra).await;
    sc.wait_ready().await;
    let c = client();
    let msg =
        json!({"touser": "alice", "msgtype": "text", "agentid": 1, "text": {"content": "once"}});

    sim.inject(fault(
        "/cgi-bin/message/send",
        FaultKind::Status(502),
        Some(1),
    ));
    let (status, _, v) = post_json(&c, &sc.url("/cgi-bin/message/send"), &msg).await;
    assert_eq!(status, 502, "{v}");
    assert_eq!(
        calls(&sim, "/cgi-bin/message/send"),
        1,
        "a write is not repeated"
    );
    assert_eq!(sim.counters().messages_delivered, 0);

    // A body that asks WeCom to drop duplicates is safe to repeat as it is.
    let mut checked = msg.clone();
    checked["enable_duplicate_check"] = json!(1);
    sim.inject(fault(
        "/cgi-bin/message/send",
        FaultKind::Status(502),
        Some(1),
    ));
    let (status, _, v) = post_json(&c, &sc.url("/cgi-bin/message/send"), &checked).await;
    assert_eq!((status, v["errcode"].as_i64()), (200, Some(0)), "{v}");
    assert_eq!(
        sim.counters().messages_delivered,
        1,
        "delivered exactly once"
    );
}

#[tokio::test]
async fn dedupe_route_retries_message_send_and_delivers_once() {
    let sim = simulator().await;
    let extra = format!("{FAST_RETRY}routes:\n  - path: /cgi-bin/message/send\n    dedupe: true\n    duplicate_check_interval: 10m\n");
    let sc = Sidecar::start(&sim.url(), &extra).await;
    sc.wait_ready().await;
    let c = client();
    let msg =
        json!({"touser": "bob", "msgtype": "text", "agentid": 1, "text": {"content": "dedupe"}});
    sim.inject(fault(
        "/cgi-bin/message/send",
        FaultKind::Status(502),
        Some(2),
    ));
    let (status, _, v) = post_json(&c, &sc.url("/cgi-bin/message/send"), &msg).await;
    assert_eq!((status, v["errcode"].as_i64()), (200, Some(0)), "{v}");
    assert_eq!(calls(&sim, "/cgi-bin/message/send"), 3);
    assert_eq!(sim.counters().messages_delivered, 1);
    // The same message again inside the window: WeCom drops it.
    let (_, _, v) = post_json(&c, &sc.url("/cgi-bin/message/send"), &msg).await;
    assert_eq!(v["errcode"], 0);
    assert_eq!(sim.counters().messages_delivered, 1);
    assert_eq!(sim.counters().duplicates_suppressed, 1);
}

#[tokio::test]
async fn a_hang_gets_the_deadline_answer_in_time() {
    let sim = simulator().await;
    let sc = Sidecar::start_with(|listen, admin| {
        config_yaml(listen, admin, &sim.url(), "defaults:\n  deadline: 3s\n  retry: { attempts: 3, backoff_base: 10ms, backoff_max: 50ms }\n")
            .replace("timeout: 3s", "timeout: 10s")
    })
    .await;
    sc.wait_ready().await;
    sim.inject(fault("/cgi-bin/user/get", FaultKind::Hang, None));
    let c = client();
    let started = Instant::now();
    let r = c
        .get(sc.url("/cgi-bin/user/get?userid=a"))
        .send()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(r.status(), 504);
    assert_eq!(r.headers()["x-sidecar-reason"], "deadline");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["errcode"], -1);
    assert!(
        elapsed >= Duration::from_secs(3),
        "answered before the deadline: {elapsed:?}"
    );
    // Ended by the deadline, not by the 10 s per-attempt timeout (a behavioural bound, far
    // from any scheduling noise).
    assert!(
        elapsed < Duration::from_secs(9),
        "the deadline did not end the call: {elapsed:?}"
    );
}

#[tokio::test]
async fn a_block_announced_by_wecom_is_held_locally() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), "").await;
    sc.wait_ready().await;
    let c = client();
    sim.inject(fault(
        "/cgi-bin/department/list",
        FaultKind::Errcode(45009),
        Some(1),
    ));
    let (_, _, v) = get_json(&c, &sc.url("/cgi-bin/department/list")).await;
    assert_eq!(v["errcode"], 45009);
    for _ in 0..5 {
        let (_, h, v) = get_json(&c, &sc.url("/cgi-bin/department/list")).await;
        assert_eq!(v["errcode"], 45009);
        assert_eq!(h["x-sidecar-reason"], "quota");
        assert!(h.get("retry-after").is_some());
    }
    assert_eq!(
        calls(&sim, "/cgi-bin/department/list"),
        1,
        "calls inside the block never reached WeCom"
    );
    // Other APIs are not blocked.
    let (_, _, v) = get_json(&c, &sc.url("/cgi-bin/user/get?userid=a")).await;
    assert_eq!(v["errcode"], 0);
    assert!(sc.metrics().await.has("wecom_quota_blocks_total", &[]));
}

#[tokio::test]
async fn a_five_per_second_quota_holds_under_a_burst() {
    let sim = simulator().await;
    let sc = Sidecar::start(
        &sim.url(),
        "routes:\n  - path: /cgi-bin/user/get\n    quota: [\"5/s\"]\n",
    )
    .await;
    sc.wait_ready().await;
    let c = client();
    let started = Instant::now();
    let burst: Vec<_> = (0..100)
        .map(|i| {
            let c = c.clone();
            let url = sc.url(&format!("/cgi-bin/user/get?userid=u{i}"));
            tokio::spawn(async move { get_json(&c, &url).await })
        })
        .collect();
    let mut ok = 0;
    let mut limited = 0;
    for b in burst {
        let (status, h, v) = b.await.unwrap();
        match v["errcode"].as_i64() {
            Some(0) => ok += 1,
            Some(45009) => {
                assert_eq!(status, 200);
                assert_eq!(h["x-sidecar-reason"], "quota");
                assert!(h["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
                limited += 1;
            }
            other => panic!("unexpected {other:?}: {v}"),
        }
    }
    let seconds = started.elapsed().as_secs() + 1;
    let allowance = 5 * seconds;
    let seen = calls(&sim, "/cgi-bin/user/get");
    assert!(
        seen <= allowance,
        "simulator saw {seen} calls, allowance {allowance}"
    );
    assert_eq!(ok as u64, seen);
    assert_eq!(ok + limited, 100);
    assert!(sc
        .metrics()
        .await
        .value(
            "wecom_quota_rejected_total",
            &[("api", "user/get"), ("app", "hr-bot")]
        )
        .is_some());
}

#[tokio::test]
async fn on_limit_wait_spreads_a_burst() {
    let sim = simulator().await;
    let sc = Sidecar::start(
        &sim.url(),
        "routes:\n  - path: /cgi-bin/user/get\n    quota: [\"5/s\"]\n    on_limit: wait\n    max_wait: 5s\n",
    )
    .await;
    sc.wait_ready().await;
    let c = client();
    let started = Instant::now();
    let burst: Vec<_> = (0..12)
        .map(|i| {
            let c = c.clone();
            let url = sc.url(&format!("/cgi-bin/user/get?userid=w{i}"));
            tokio::spawn(async move { get_json(&c, &url).await.2 })
        })
        .collect();
    for b in burst {
        assert_eq!(b.await.unwrap()["errcode"], 0);
    }
    // 12 calls at 5 per second need at least two full windows.
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(calls(&sim, "/cgi-bin/user/get"), 12);
}

#[tokio::test]
async fn the_thirty_first_message_to_a_member_is_refused_locally() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), "").await;
    sc.wait_ready().await;
    let c = client();
    for i in 0..30 {
        let msg = json!({"touser": "carol", "msgtype": "text", "agentid": 1, "text": {"content": format!("n{i}")}});
        let (_, _, v) = post_json(&c, &sc.url("/cgi-bin/message/send"), &msg).await;
        assert_eq!(v["errcode"], 0, "message {i}: {v}");
    }
    let msg = json!({"touser": "dave|carol", "msgtype": "text", "agentid": 1, "text": {"content": "31st"}});
    let (_, h, v) = post_json(&c, &sc.url("/cgi-bin/message/send"), &msg).await;
    assert_eq!(v["errcode"], 45009);
    assert_eq!(h["x-sidecar-reason"], "quota");
    let errmsg = v["errmsg"].as_str().unwrap();
    assert!(
        errmsg.contains("carol") && !errmsg.contains("dave"),
        "{errmsg}"
    );
    assert_eq!(
        sim.counters().messages_delivered,
        30,
        "the 31st was never sent"
    );
    // @all is not counted per member.
    let all =
        json!({"touser": "@all", "msgtype": "text", "agentid": 1, "text": {"content": "all"}});
    assert_eq!(
        post_json(&c, &sc.url("/cgi-bin/message/send"), &all)
            .await
            .2["errcode"],
        0
    );
}

#[tokio::test]
async fn a_lost_answer_is_repeated_only_when_wecom_drops_duplicates() {
    let sim = simulator().await;
    let extra = format!("{FAST_RETRY}routes:\n  - path: /cgi-bin/message/send\n    dedupe: true\n  - path: /cgi-bin/linkedcorp/message/send\n");
    let sc = Sidecar::start(&sim.url(), &extra).await;
    sc.wait_ready().await;
    let c = client();
    // The simulated WeCom delivers, then the answer is lost on the way back.
    sim.inject(fault(
        "/cgi-bin/message/send",
        FaultKind::LoseAnswer,
        Some(1),
    ));
    let msg =
        json!({"touser": "erin", "msgtype": "text", "agentid": 1, "text": {"content": "lost"}});
    let (status, _, v) = post_json(&c, &sc.url("/cgi-bin/message/send"), &msg).await;
    assert_eq!((status, v["errcode"].as_i64()), (200, Some(0)), "{v}");
    assert_eq!(calls(&sim, "/cgi-bin/message/send"), 2, "repeated once");
    let n = sim.counters();
    assert_eq!(
        (n.messages_delivered, n.duplicates_suppressed),
        (1, 1),
        "delivered exactly once"
    );

    // Without dedupe the same loss is answered, not repeated: never delivered twice.
    sim.inject(fault(
        "/cgi-bin/linkedcorp/message/send",
        FaultKind::LoseAnswer,
        Some(1),
    ));
    let (status, h, _) = post_json(&c, &sc.url("/cgi-bin/linkedcorp/message/send"), &msg).await;
    assert_eq!(status, 502);
    assert_eq!(h["x-sidecar-reason"], "upstream-unavailable");
    assert_eq!(calls(&sim, "/cgi-bin/linkedcorp/message/send"), 1);
    assert_eq!(sim.counters().messages_delivered, 2);
}
