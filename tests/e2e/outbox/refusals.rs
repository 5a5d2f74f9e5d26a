//! What the outbox never hides: a send WeCom refused goes to the app as WeCom said it, with
//! nothing queued. With `on_limit: queue`, a send over the route's quota is queued instead of
//! refused and replayed as the quota allows. A `webhook/send` replay whose first attempt may
//! have reached WeCom is counted: robots have no duplicate check.

use std::time::Duration;

use super::*;
use crate::harness::sim::FaultKind;

#[tokio::test]
async fn a_wecom_refusal_passes_through_unqueued() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), &outbox_config("", "")).await;
    sc.wait_ready().await;
    for code in [40003, 48002, 45009] {
        sim.inject(fault(
            "/cgi-bin/message/send",
            FaultKind::Errcode(code),
            Some(1),
        ));
        let (status, reason, v) = send(&sc, "hr-bot", &text("zhangsan", "refused")).await;
        assert_eq!((status, reason), (200, None), "{code}: {v}");
        assert_eq!(v["errcode"], code);
        assert!(v.get("outbox_id").is_none(), "{v}");
    }
    let m = sc.metrics().await;
    assert!(!m.has("wecom_outbox_total", &[("result", "queued")]), "{m}");
    assert!(delivered(&sim).is_empty());
}

#[tokio::test]
async fn over_the_quota_with_on_limit_queue_the_send_is_queued_and_replayed() {
    let sim = simulator().await;
    let route = "    quota: [\"1/s\"]\n    on_limit: queue\n";
    let sc = Sidecar::start(&sim.url(), &outbox_config(route, "")).await;
    sc.wait_ready().await;
    let mut reasons = Vec::new();
    for i in 0..3 {
        let (status, reason, v) = send(&sc, "hr-bot", &text("zhaoliu", &format!("q{i}"))).await;
        assert_eq!((status, v["errcode"].as_i64()), (200, Some(0)), "{v}");
        reasons.push(reason);
    }
    // The first went through; the others were over 1/s and queued, not refused.
    assert_eq!(reasons[0], None);
    assert!(
        reasons[1..].iter().all(|r| r.as_deref() == Some("queued")),
        "{reasons:?}"
    );
    let got = wait_delivered(&sim, 3, Duration::from_secs(20)).await;
    assert_eq!(got, vec!["q0", "q1", "q2"]);
    let m = sc.metrics().await;
    // The replays asked the quota too: none was refused past it by WeCom.
    assert_eq!(
        m.value(
            "wecom_outbox_total",
            &[
                ("api", "message/send"),
                ("app", "hr-bot"),
                ("result", "sent")
            ]
        ),
        Some(2.0),
        "{m}"
    );
}

#[tokio::test]
async fn a_robot_replay_that_may_repeat_a_delivered_message_is_counted() {
    let sim = simulator().await;
    let extra = "  - path: /cgi-bin/webhook/send\n    outbox: true\n";
    let sc = Sidecar::start(&sim.url(), &outbox_config(extra, "")).await;
    sc.wait_ready().await;
    // WeCom takes the robot message, then the answer is lost: the app's call fails.
    sim.inject(fault(
        "/cgi-bin/webhook/send",
        FaultKind::LoseAnswer,
        Some(1),
    ));
    let r = client()
        .post(sc.url("/cgi-bin/webhook/send?key=robot-key-1"))
        .json(&json!({"msgtype": "text", "text": {"content": "robot says"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-sidecar-reason"], "queued");
    let twice = eventually(Duration::from_secs(20), async || {
        sim.counters().robot_messages.len() == 2
    })
    .await;
    // The documented caveat: no duplicate check for robots, so the replay delivered it again.
    assert!(twice, "{:?}", sim.counters().robot_messages);
    let m = sc.metrics().await;
    assert_eq!(
        m.value("wecom_outbox_replays_unsafe_total", &[("app", "robot")]),
        Some(1.0),
        "{m}"
    );
    let (_, doc) = admin_get(&sc, "/admin/outbox").await;
    assert!(
        !doc.to_string().contains("robot-key-1"),
        "the robot key shown: {doc}"
    );
    assert!(!sc.logs().contains("robot-key-1"), "the robot key logged");
}

#[tokio::test]
async fn a_robot_send_that_never_connected_is_replayed_without_being_counted_unsafe() {
    // Nothing listens upstream: every attempt fails to connect, so nothing reached WeCom.
    let extra = "  - path: /cgi-bin/webhook/send\n    outbox: true\n";
    let sc = Sidecar::start("http://127.0.0.1:9", &outbox_config(extra, "")).await;
    let r = client()
        .post(sc.url("/cgi-bin/webhook/send?key=robot-key-2"))
        .json(&json!({"msgtype": "text", "text": {"content": "never sent"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-sidecar-reason"], "queued");
    // The sender has replayed it (and failed to connect again) at least once.
    let replayed = eventually(Duration::from_secs(20), async || {
        sc.metrics().await.sum(
            "wecom_upstream_attempts_total",
            &[("api", "webhook/send"), ("result", "connect_error")],
        ) >= 3.0
    })
    .await;
    let m = sc.metrics().await;
    assert!(replayed, "{m}");
    assert_eq!(
        m.sum("wecom_outbox_replays_unsafe_total", &[("app", "robot")]),
        0.0,
        "{m}"
    );
}
