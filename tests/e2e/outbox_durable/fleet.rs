//! Fleet mode: three sidecars on one real redis-server share each app's outbox (a Redis
//! Stream). WeCom is down while 300 sends are spread over them; the sidecar replaying the
//! queue is killed with SIGKILL; WeCom comes back and the two left deliver each send once.
//!
//! Each sidecar reaches WeCom at an address of its own (one simulated WeCom listening three
//! times, the outage on all of them), so the simulator's per-address counts say which sidecar
//! is the one replaying: the one still calling `message/send` after the sends stopped.

use super::*;

const SENDS: usize = 300;
const CONCURRENT: usize = 12;

fn fleet_yaml(redis: &Redis) -> String {
    format!(
        r#"fleet:
  redis_url: "{}"
  key_prefix: "outbox-fleet:"
  size: 3
  timeout: 2s
"#,
        redis.url()
    )
}

/// The index of the address whose `message/send` calls grow while no app sends: the sidecar
/// replaying the head of the queue (retrying it while WeCom is down).
async fn replaying(listeners: &[Simulator]) -> Option<usize> {
    let mut found = None;
    eventually(Duration::from_secs(30), async || {
        let before: Vec<u64> = listeners.iter().map(|l| l.calls_here(SEND)).collect();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let grew: Vec<usize> = listeners
            .iter()
            .enumerate()
            .filter(|(i, l)| l.calls_here(SEND) > before[*i])
            .map(|(i, _)| i)
            .collect();
        found = grew.first().copied();
        grew.len() == 1
    })
    .await;
    found
}

#[tokio::test]
async fn three_sidecars_on_redis_lose_one_and_deliver_each_send_once() {
    let redis = Redis::start().await;
    let sim = simulator().await;
    let mut listeners = vec![sim.clone()];
    for _ in 1..3 {
        listeners.push(
            sim.also_listen("127.0.0.1:0".parse().unwrap())
                .await
                .unwrap(),
        );
    }
    let state = tempfile::tempdir().unwrap();
    let fleet_extra = fleet_yaml(&redis);
    let mut fleet = Vec::new();
    for (i, l) in listeners.iter().enumerate() {
        let store = state.path().join(format!("sidecar-{i}.db"));
        fleet.push(Some(outbox_sidecar(&l.url(), &store, &fleet_extra).await));
    }
    let bases: Vec<String> = fleet.iter().flatten().map(|sc| sc.base.clone()).collect();
    let c = client();
    for (i, base) in bases.iter().enumerate() {
        let warm = send(&c, base, "hr-bot", &format!("hr-bot warm-up {i}")).await;
        assert!(warm.delivered(), "{warm:?}");
    }

    sim.go_down(None);
    let mut answers = Vec::new();
    let all: Vec<usize> = (0..SENDS).collect();
    for batch in all.chunks(CONCURRENT) {
        let sends = batch.iter().map(|&n| {
            let (c, base) = (c.clone(), bases[n % bases.len()].clone());
            async move { send(&c, &base, "hr-bot", &format!("hr-bot {n}")).await }
        });
        answers.extend(futures_util::future::join_all(sends).await);
    }
    let not_queued: Vec<&Sent> = answers.iter().filter(|s| !s.queued()).collect();
    assert!(
        not_queued.is_empty(),
        "{} of {SENDS} not queued, e.g. {:?}",
        not_queued.len(),
        not_queued.first()
    );

    let owner = replaying(&listeners).await;
    let owner = owner.unwrap_or_else(|| {
        let logs: Vec<String> = fleet.iter().flatten().map(Sidecar::logs).collect();
        panic!(
            "no one sidecar replays the queue; logs:\n{}",
            logs.join("\n-----\n")
        )
    });
    let mut killed = fleet[owner].take().expect("running");
    killed.signal("KILL");
    assert!(killed.wait_exit(Duration::from_secs(10)).is_none());
    let calls_at_kill = listeners[owner].calls_here(SEND);
    let left: Vec<&Sidecar> = fleet.iter().flatten().collect();
    assert_eq!(left.len(), 2);

    sim.come_back();
    let want = SENDS + bases.len();
    let all = delivered_at_least(&sim, want, Duration::from_secs(120)).await;
    let logs = || {
        left.iter()
            .map(|sc| sc.logs())
            .collect::<Vec<_>>()
            .join("\n-----\n")
    };
    assert!(
        all,
        "{} of {want} delivered after losing sidecar {owner}; logs:\n{}",
        sim.delivered_messages().len(),
        logs()
    );
    for sc in &left {
        let empty = eventually(Duration::from_secs(30), async || {
            depth(sc, "hr-bot").await == 0.0
        })
        .await;
        assert!(
            empty,
            "the shared outbox still holds sends; logs:\n{}",
            logs()
        );
    }
    let mut sent: Vec<String> = answers.iter().map(|s| s.content.clone()).collect();
    sent.extend((0..bases.len()).map(|i| format!("hr-bot warm-up {i}")));
    assert_each_once("hr-bot", &delivered(&sim, "hr-bot"), &sent);
    // Replayed by the two left: the killed one sent none (WeCom was down while it lived).
    let mut replayed = 0.0;
    for sc in &left {
        replayed += outbox_total(sc, "hr-bot", "sent").await;
    }
    assert_eq!(
        replayed, SENDS as f64,
        "replayed by the two left, once each"
    );
    assert_eq!(
        listeners[owner].calls_here(SEND),
        calls_at_kill,
        "nothing came from the killed sidecar's address after the kill"
    );
}
