//! Fleet mode: two sidecars on one Redis share each app's outbox queue (Redis Streams); sends
//! queued on either during an outage are replayed by the one sidecar holding the queue's lease,
//! each delivered once, in order. (The kill -9 and 3-sidecar runs are the durability tests'.)

use std::time::Duration;

use super::*;
use crate::harness::sim::FaultKind;

#[tokio::test]
async fn sends_queued_on_two_sidecars_are_replayed_once_each_from_the_shared_queue() {
    let redis = Redis::start().await;
    let sim = simulator().await;
    let fleet = format!(
        "fleet:\n  redis_url: \"{}\"\n  key_prefix: \"obfleet:\"\n  size: 2\n  timeout: 2s\n",
        redis.url()
    );
    let a = Sidecar::start(&sim.url(), &outbox_config("", &fleet)).await;
    let b = Sidecar::start(&sim.url(), &outbox_config("", &fleet)).await;
    a.wait_ready().await;
    b.wait_ready().await;
    sim.inject(fault("/cgi-bin/message/send", FaultKind::Status(503), None));
    let mut want = Vec::new();
    for i in 0..10 {
        let sc = if i % 2 == 0 { &a } else { &b };
        let words = format!("fleet #{i}");
        let (_, reason, v) = send(sc, "hr-bot", &text("lisi", &words)).await;
        assert_eq!(reason.as_deref(), Some("queued"), "{v}");
        want.push(words);
    }
    // One shared queue: both sidecars see all ten waiting.
    for sc in [&a, &b] {
        let (_, doc) = admin_get(sc, "/admin/outbox").await;
        let hr = doc["apps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["app"] == "hr-bot")
            .unwrap()
            .clone();
        assert_eq!(hr["queue"]["queued"].as_u64(), Some(10), "{doc}");
    }
    sim.clear_faults();
    let got = wait_delivered(&sim, 10, Duration::from_secs(60)).await;
    assert_eq!(got, want, "each once, in the order queued");
    // Nothing more comes: both queues' views are empty, and no extra delivery.
    for sc in [&a, &b] {
        let drained = eventually(Duration::from_secs(20), async || {
            let (_, doc) = admin_get(sc, "/admin/outbox").await;
            doc["apps"]
                .as_array()
                .unwrap()
                .iter()
                .all(|x| x["queue"]["queued"] == 0)
        })
        .await;
        assert!(drained, "{}", sc.logs());
    }
    assert_eq!(delivered(&sim).len(), 10);
    assert!(
        !a.dir.path().join("sidecar.db").exists(),
        "no SQLite file in fleet mode"
    );
}
