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
    // /admin/status has the same queue in its outbox section.
    let status: Value = serde_json::from_str(&sc.status().await).unwrap();
    let section = status["outbox"]
        .as_array()
        .expect("an outbox section")
        .clone();
    let hr = section.iter().find(|a| a["app"] == "hr-bot").unwrap();
    assert_eq!(hr["queued"].as_u64(), Some(10), "{status}");
    sim.clear_faults();
    let got = wait_delivered(&sim, 20, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 20, "{got:?}");
    for app in ["hr-bot", "ops-bot"] {
        let mine: Vec<&String> = got.iter().filter(|w| w.starts_with(app)).collect();
        let expected: Vec<&String> = want.iter().filter(|w| w.starts_with(app)).collect();
        assert_eq!(mine, expected, "{app} out of order");
    }
}

/// While an app's sends wait in the queue, a new send of that app is queued behind them
/// without being tried, even once WeCom answers again: sends reach WeCom in the order the app
/// made them. Once the queue is empty, sends go straight to WeCom again.
#[tokio::test]
async fn a_send_made_while_the_queue_is_not_empty_waits_behind_it() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), &outbox_config("", "")).await;
    sc.wait_ready().await;
    sim.inject(fault("/cgi-bin/message/send", FaultKind::Reset, None));
    let (_, reason, v) = send(&sc, "hr-bot", &text("lisi", "first")).await;
    assert_eq!(reason.as_deref(), Some("queued"), "{v}");
    assert!(
        !sc.logs().contains("behind this app's queued sends"),
        "the first send was tried: {}",
        sc.logs()
    );
    // The second is queued for the queue ahead of it, not for a failure of its own: it was
    // not tried (its log line says why it was queued).
    let (_, reason, v) = send(&sc, "hr-bot", &text("lisi", "second")).await;
    assert_eq!(reason.as_deref(), Some("queued"), "{v}");
    let behind = eventually(Duration::from_secs(5), async || {
        sc.logs().contains("behind this app's queued sends")
    })
    .await;
    assert!(behind, "not queued behind the first: {}", sc.logs());
    // Another app's sends are not held by this app's queue.
    sim.clear_faults();
    let (_, reason, v) = send(&sc, "ops-bot", &text("lisi", "other app")).await;
    assert_eq!((reason, v["errcode"].as_i64()), (None, Some(0)), "{v}");

    let got = wait_delivered(&sim, 3, Duration::from_secs(30)).await;
    let hr: Vec<&str> = got
        .iter()
        .map(String::as_str)
        .filter(|w| *w != "other app")
        .collect();
    assert_eq!(hr, ["first", "second"], "{got:?}");
    // The queue empties; then a send goes straight to WeCom (its own msgid, no queueing).
    let empty = eventually(Duration::from_secs(20), async || {
        sc.metrics()
            .await
            .value("wecom_outbox_depth", &[("app", "hr-bot")])
            == Some(0.0)
    })
    .await;
    assert!(empty, "the queue did not empty");
    let (status, reason, v) = send(&sc, "hr-bot", &text("lisi", "third")).await;
    assert_eq!((status, reason), (200, None), "{v}");
    assert!(v["msgid"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert_eq!(
        wait_delivered(&sim, 4, Duration::from_secs(10))
            .await
            .last()
            .map(String::as_str),
        Some("third")
    );
}
