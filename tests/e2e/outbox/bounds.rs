//! The outbox is bounded: past `store.outbox_max_per_app` or `store.max_bytes` a send is not
//! queued; the app gets the ordinary 502 answer (never a queued answer for a send not kept),
//! and it is counted and logged.

use super::*;
use crate::harness::sim::FaultKind;

async fn bounded(store_keys: &str) -> (Sidecar, sim::Simulator) {
    let sim = simulator().await;
    let extra = format!("  {store_keys}\n");
    let sc = Sidecar::start(&sim.url(), &outbox_config("", &extra)).await;
    sc.wait_ready().await;
    sim.inject(fault("/cgi-bin/message/send", FaultKind::Reset, None));
    (sc, sim)
}

async fn full_answer(sc: &Sidecar) {
    let (status, reason, v) = send(sc, "hr-bot", &text("zhouba", "no room")).await;
    assert_eq!(
        (status, reason.as_deref()),
        (502, Some("upstream-unavailable")),
        "{v}"
    );
    assert_eq!(v["errcode"], -1);
    assert!(v.get("outbox_id").is_none());
    let m = sc.metrics().await;
    assert_eq!(
        m.value(
            "wecom_outbox_total",
            &[
                ("api", "message/send"),
                ("app", "hr-bot"),
                ("result", "full")
            ]
        ),
        Some(1.0),
        "{m}"
    );
    assert!(sc.logs().contains("outbox full"), "not logged");
}

#[tokio::test]
async fn past_the_per_app_cap_a_send_gets_the_ordinary_502() {
    let (sc, _sim) = bounded("outbox_max_per_app: 2").await;
    for i in 0..2 {
        let (_, reason, v) = send(&sc, "hr-bot", &text("zhouba", &format!("kept {i}"))).await;
        assert_eq!(reason.as_deref(), Some("queued"), "{v}");
    }
    full_answer(&sc).await;
    // Another app has a cap of its own.
    let (_, reason, _) = send(&sc, "ops-bot", &text("zhouba", "other app")).await;
    assert_eq!(reason.as_deref(), Some("queued"));
}

#[tokio::test]
async fn past_store_max_bytes_a_send_gets_the_ordinary_502() {
    // One queued send (its body and meta) is some hundreds of bytes: the second does not fit.
    let (sc, _sim) = bounded("max_bytes: 700").await;
    let (_, reason, v) = send(&sc, "hr-bot", &text("zhouba", "kept")).await;
    assert_eq!(reason.as_deref(), Some("queued"), "{v}");
    full_answer(&sc).await;
}
