//! Durable means committed before acknowledged: 500 sends queued while WeCom is down, the
//! sidecar killed with SIGKILL and started again on the same store file (while WeCom is still
//! down, so it has no token and queues what it is sent behind them), then WeCom back: all
//! delivered, none twice, in order per app. And a kill in the middle of the replay (some sends
//! delivered, their "done" perhaps not yet written) still delivers none twice: the replay
//! after the restart meets WeCom's duplicate check.

use super::*;
use crate::harness::sim::FaultKind;

const QUEUED: usize = 500;
/// Sends in flight at once.
const CONCURRENT: usize = 16;

/// Sends `<app> <n>` for `n` in `range`, [`CONCURRENT`] at a time, alternating the two apps;
/// every answer.
async fn send_all(base: &str, range: std::ops::Range<usize>) -> Vec<Sent> {
    let c = client();
    let mut answers = Vec::new();
    let all: Vec<usize> = range.collect();
    for batch in all.chunks(CONCURRENT) {
        let sends = batch.iter().map(|&n| {
            let app = if n % 2 == 0 { "hr-bot" } else { "ops-bot" };
            let (c, content) = (c.clone(), format!("{app} {n}"));
            async move { send(&c, base, app, &content).await }
        });
        answers.extend(futures_util::future::join_all(sends).await);
    }
    answers
}

/// The contents of `answers` sent as `app`.
fn of_app(answers: &[Sent], app: &str) -> Vec<String> {
    answers
        .iter()
        .filter(|s| s.content.starts_with(&format!("{app} ")))
        .map(|s| s.content.clone())
        .collect()
}

/// Kills the sidecar with SIGKILL and waits for it to be gone.
fn kill_9(sc: &mut Sidecar) {
    sc.signal("KILL");
    assert!(
        sc.wait_exit(Duration::from_secs(10)).is_none(),
        "a SIGKILL leaves no exit code"
    );
}

/// Sends `<app> <n>` for `n` in `range` as `app`, one after the other (each waits for the
/// answer of the one before, so the queue's order is the test's); every answer.
async fn send_in_turn(base: &str, app: &str, range: std::ops::Range<usize>) -> Vec<Sent> {
    let c = client();
    let mut answers = Vec::new();
    for n in range {
        answers.push(send(&c, base, app, &format!("{app} {n}")).await);
    }
    answers
}

/// Both apps at once, each in turn: `<app> <n>` for `n` in `range`.
async fn both_apps_in_turn(base: &str, range: std::ops::Range<usize>) -> Vec<Sent> {
    let (hr, ops) = tokio::join!(
        send_in_turn(base, "hr-bot", range.clone()),
        send_in_turn(base, "ops-bot", range)
    );
    hr.into_iter().chain(ops).collect()
}

#[tokio::test]
async fn kill_9_with_500_sends_queued_then_restart_delivers_all_once_in_order() {
    let sim = simulator().await;
    let state = tempfile::tempdir().unwrap();
    let store = state.path().join("sidecar.db");
    let mut sc = outbox_sidecar(&sim.url(), &store, "").await;
    // Both apps hold a token before WeCom goes away, as a running sidecar does.
    for app in ["hr-bot", "ops-bot"] {
        assert!(send(&client(), &sc.base, app, &format!("{app} warm-up"))
            .await
            .delivered());
    }

    sim.go_down(None);
    let mut answers = both_apps_in_turn(&sc.base, 0..QUEUED / 2).await;
    let not_queued: Vec<&Sent> = answers.iter().filter(|s| !s.queued()).collect();
    assert!(
        not_queued.is_empty(),
        "{} of {QUEUED} not queued, e.g. {:?}; log:\n{}",
        not_queued.len(),
        not_queued.first(),
        sc.logs()
    );
    let ids: BTreeSet<&str> = answers
        .iter()
        .filter_map(|s| s.body["outbox_id"].as_str())
        .collect();
    assert_eq!(ids.len(), QUEUED, "each send its own outbox id");
    kill_9(&mut sc);

    // Started again while WeCom is still down, with no token: what it is sent now is queued
    // behind what the killed one queued.
    let sc = outbox_sidecar(&sim.url(), &store, "").await;
    let later = both_apps_in_turn(&sc.base, QUEUED / 2..QUEUED / 2 + 10).await;
    assert!(
        later.iter().all(Sent::queued),
        "a cold sidecar queues too: {:?}",
        later.iter().find(|s| !s.queued())
    );
    answers.extend(later);
    assert_eq!(
        sim.delivered_messages().len(),
        2,
        "nothing but the warm-ups delivered while WeCom was down"
    );

    sim.come_back();
    let all = delivered_at_least(&sim, answers.len() + 2, Duration::from_secs(120)).await;
    assert!(
        all,
        "{} delivered of {} after the restart; log:\n{}",
        sim.delivered_messages().len(),
        answers.len() + 2,
        sc.logs()
    );
    let empty = eventually(Duration::from_secs(30), async || {
        depth(&sc, "hr-bot").await == 0.0 && depth(&sc, "ops-bot").await == 0.0
    })
    .await;
    assert!(
        empty,
        "the outbox still holds sends:\n{}",
        sc.metrics().await
    );
    for app in ["hr-bot", "ops-bot"] {
        let mut sent = vec![format!("{app} warm-up")];
        sent.extend(of_app(&answers, app));
        let got = delivered(&sim, app);
        assert_each_once(app, &got, &sent);
        assert_in_order(app, &got, &sent);
    }
    let replayed =
        outbox_total(&sc, "hr-bot", "sent").await + outbox_total(&sc, "ops-bot", "sent").await;
    assert_eq!(
        replayed,
        answers.len() as f64,
        "the restarted sidecar replayed them all"
    );
}

#[tokio::test]
async fn kill_9_in_the_middle_of_the_replay_delivers_none_twice() {
    let sim = simulator().await;
    let state = tempfile::tempdir().unwrap();
    let store = state.path().join("sidecar.db");
    let mut sc = outbox_sidecar(&sim.url(), &store, "").await;
    for app in ["hr-bot", "ops-bot"] {
        assert!(send(&client(), &sc.base, app, &format!("{app} warm-up"))
            .await
            .delivered());
    }
    sim.go_down(None);
    let answers = send_all(&sc.base, 0..QUEUED).await;
    assert!(answers.iter().all(Sent::queued), "log:\n{}", sc.logs());

    // WeCom back, slow (each send 20 ms, so the replay takes seconds): the replay starts; the
    // sidecar is killed once some, not all, are delivered.
    sim.inject(fault(
        SEND,
        FaultKind::Delay(Duration::from_millis(20)),
        None,
    ));
    sim.come_back();
    let some = delivered_at_least(&sim, 2 + 20, Duration::from_secs(60)).await;
    assert!(some, "no replay began; log:\n{}", sc.logs());
    kill_9(&mut sc);
    sim.clear_faults();
    let before = sim.delivered_messages().len();
    assert!(
        before < QUEUED + 2,
        "the kill came after the replay had ended"
    );

    let sc = outbox_sidecar(&sim.url(), &store, "").await;
    let all = delivered_at_least(&sim, QUEUED + 2, Duration::from_secs(120)).await;
    assert!(
        all,
        "{} delivered of {QUEUED} ({before} before the kill); log:\n{}",
        sim.delivered_messages().len(),
        sc.logs()
    );
    let empty = eventually(Duration::from_secs(30), async || {
        depth(&sc, "hr-bot").await == 0.0 && depth(&sc, "ops-bot").await == 0.0
    })
    .await;
    assert!(
        empty,
        "the outbox still holds sends:\n{}",
        sc.metrics().await
    );
    for app in ["hr-bot", "ops-bot"] {
        let mut sent = of_app(&answers, app);
        sent.push(format!("{app} warm-up"));
        assert_each_once(app, &delivered(&sim, app), &sent);
    }
}
