//! A send whose attempts reached WeCom but whose answers were lost on the way back (the
//! simulator delivers, then resets the connection): the sidecar cannot know it was delivered,
//! so it queues it; the replay carries `enable_duplicate_check: 1` as the first attempt did,
//! and WeCom's duplicate check makes it land once.

use super::*;
use crate::harness::sim::FaultKind;

#[tokio::test]
async fn a_send_delivered_with_its_answer_lost_is_replayed_and_lands_once() {
    let sim = simulator().await;
    let state = tempfile::tempdir().unwrap();
    let sc = outbox_sidecar(&sim.url(), &state.path().join("sidecar.db"), "").await;
    let c = client();
    assert!(send(&c, &sc.base, "hr-bot", "hr-bot warm-up")
        .await
        .delivered());

    // Both attempts of the route (attempts: 2) are carried out by WeCom, their answers lost.
    sim.inject(fault(SEND, FaultKind::LoseAnswer, Some(2)));
    let sent = send(&c, &sc.base, "hr-bot", "hr-bot lost").await;
    assert!(sent.queued(), "{sent:?}; log:\n{}", sc.logs());

    let replayed = eventually(Duration::from_secs(30), async || {
        outbox_total(&sc, "hr-bot", "sent").await == 1.0 && depth(&sc, "hr-bot").await == 0.0
    })
    .await;
    assert!(replayed, "not replayed; log:\n{}", sc.logs());
    assert_eq!(
        delivered(&sim, "hr-bot"),
        ["hr-bot warm-up", "hr-bot lost"],
        "delivered once, by the first attempt"
    );
    let n = sim.counters();
    // The second attempt and the replay were both WeCom's duplicates of the first.
    assert_eq!(n.duplicates_suppressed, 2, "{n:?}");
    assert_eq!(
        n.calls[SEND],
        1 + 2 + 1,
        "warm-up, two attempts, one replay"
    );
    let first = sim
        .delivered_messages()
        .into_iter()
        .find(|m| m.body["text"]["content"] == "hr-bot lost")
        .expect("delivered");
    assert_eq!(
        first.body["enable_duplicate_check"], 1,
        "the outbox asks for WeCom's duplicate check on the first attempt: {}",
        first.body
    );
}
