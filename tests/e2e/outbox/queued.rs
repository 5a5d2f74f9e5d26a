//! A send WeCom cannot be reached for gets the queued answer once it is committed, and is
//! delivered once when WeCom is back: after resets, 503s, a hang past the deadline, and an
//! answer lost after the message was delivered (the duplicate check makes the replay land
//! once). Sends are replayed in the order they were queued, per app.

use std::time::Duration;

use super::*;
use crate::harness::sim::FaultKind;

/// Queues one send under `kind` on every message/send until cleared; then clears it and
/// checks it is delivered once, with its queued answer and admin record.
async fn queued_then_delivered_once(kind: FaultKind, route_extra: &str) {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), &outbox_config(route_extra, "")).await;
    sc.wait_ready().await;
    sim.inject(fault("/cgi-bin/message/send", kind.clone(), None));
    let (status, reason, v) = send(&sc, "hr-bot", &text("zhangsan", "during the outage")).await;
    assert_eq!(
        (status, reason.as_deref()),
        (200, Some("queued")),
        "{kind:?}: {v}"
    );
    assert_eq!(v["errcode"], 0);
    assert_eq!(v["errmsg"], "queued by wecom-sidecar");
    let id = v["outbox_id"].as_str().expect("an outbox id").to_string();
    let (code, rec) = admin_get(&sc, &format!("/admin/outbox/{id}")).await;
    assert_eq!(code, 200, "{rec}");
    assert_eq!(rec["app"], "hr-bot");

    sim.clear_faults();
    let got = wait_delivered(&sim, 1, Duration::from_secs(20)).await;
    assert_eq!(got, vec!["during the outage".to_string()], "{kind:?}");
    // Sent: WeCom's answer is recorded by the id the app was given.
    let sent = eventually(Duration::from_secs(10), async || {
        admin_get(&sc, &format!("/admin/outbox/{id}")).await.1["state"] == "sent"
    })
    .await;
    let (_, rec) = admin_get(&sc, &format!("/admin/outbox/{id}")).await;
    assert!(sent, "{rec}");
    assert_eq!(rec["answer"]["errcode"], 0);
    assert!(
        rec["answer"]["msgid"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{rec}"
    );
    // And nothing else comes: a second look after the queue is empty still shows one.
    let m = sc.metrics().await;
    assert_eq!(
        m.value(
            "wecom_outbox_total",
            &[
                ("api", "message/send"),
                ("app", "hr-bot"),
                ("result", "queued")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.value(
            "wecom_outbox_total",
            &[
                ("api", "message/send"),
                ("app", "hr-bot"),
                ("result", "sent")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.value("wecom_outbox_depth", &[("app", "hr-bot")]),
        Some(0.0)
    );
    assert_eq!(delivered(&sim).len(), 1);
    assert!(
        !sc.logs().contains("during the outage"),
        "a message body in the log"
    );
}

#[tokio::test]
async fn a_send_during_resets_is_queued_then_delivered_once() {
    queued_then_delivered_once(FaultKind::Reset, "").await;
}

#[tokio::test]
async fn a_send_answered_503_is_queued_then_delivered_once() {
    queued_then_delivered_once(FaultKind::Status(503), "").await;
}

#[tokio::test]
async fn a_send_that_hangs_past_the_deadline_is_queued_then_delivered_once() {
    queued_then_delivered_once(FaultKind::Hang, "    deadline: 1s\n").await;
}

#[tokio::test]
async fn a_send_whose_answers_were_lost_after_delivery_lands_once() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), &outbox_config("", "")).await;
    sc.wait_ready().await;
    // WeCom delivers, then the answer is lost, on every attempt of the call.
    sim.inject(fault(
        "/cgi-bin/message/send",
        FaultKind::LoseAnswer,
        Some(2),
    ));
    let (status, reason, v) = send(&sc, "hr-bot", &text("lisi", "answer lost")).await;
    assert_eq!((status, reason.as_deref()), (200, Some("queued")), "{v}");
    // Delivered by the first attempt; the retry and the replay are WeCom's duplicates.
    let m = eventually(Duration::from_secs(20), async || {
        sc.metrics().await.value(
            "wecom_outbox_total",
            &[
                ("api", "message/send"),
                ("app", "hr-bot"),
                ("result", "sent"),
            ],
        ) == Some(1.0)
    })
    .await;
    assert!(m, "{}", sc.metrics().await);
    assert_eq!(delivered(&sim), vec!["answer lost".to_string()]);
    assert!(
        sim.counters().duplicates_suppressed >= 2,
        "{:?}",
        sim.counters()
    );
}

#[tokio::test]
async fn queued_sends_are_replayed_in_order_per_app() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), &outbox_config("", "")).await;
    sc.wait_ready().await;
    sim.inject(fault("/cgi-bin/message/send", FaultKind::Status(502), None));
    let mut want = Vec::new();
    for i in 0..10 {
        for app in ["hr-bot", "ops-bot"] {
            let words = format!("{app} #{i}");
            let (_, reason, v) = send(&sc, app, &text("wangwu", &words)).await;
            assert_eq!(reason.as_deref(), Some("queued"), "{v}");
            want.push(words);
        }
    }
    let (_, doc) = admin_get(&sc, "/admin/outbox").await;
    let hr = doc["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["app"] == "hr-bot")
        .unwrap()
        .clone();
    assert_eq!(hr["queue"]["queued"].as_u64(), Some(10), "{doc}");
    sim.clear_faults();
    let got = wait_delivered(&sim, 20, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 20, "{got:?}");
    for app in ["hr-bot", "ops-bot"] {
        let mine: Vec<&String> = got.iter().filter(|w| w.starts_with(app)).collect();
        let expected: Vec<&String> = want.iter().filter(|w| w.starts_with(app)).collect();
        assert_eq!(mine, expected, "{app} out of order");
    }
}
