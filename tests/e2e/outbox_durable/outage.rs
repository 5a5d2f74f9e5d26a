//! WeCom down for a minute under a steady loop of sends from two apps: every send is answered
//! (delivered, or queued), none with a 5xx; once WeCom is back every one is delivered exactly
//! once, and the queued ones in the order they were queued, per app.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::*;

/// How long WeCom is down.
const OUTAGE: Duration = Duration::from_secs(60);
/// Before and after the outage, sends go straight to WeCom.
const UP: Duration = Duration::from_secs(4);
/// One app's pace: a send, then this long, then the next.
const PACE: Duration = Duration::from_millis(50);

/// Sends `<app> <n>` for n = 0, 1, ... one after the other (each waits for the answer of the
/// one before), every [`PACE`], until `stop`; every answer.
async fn loop_of_sends(base: String, app: &'static str, stop: Arc<AtomicBool>) -> Vec<Sent> {
    let c = client();
    let mut answers = Vec::new();
    let mut tick = tokio::time::interval(PACE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let content = format!("{app} {}", answers.len());
        answers.push(send(&c, &base, app, &content).await);
    }
    answers
}

#[tokio::test]
async fn a_minute_of_wecom_down_under_a_loop_of_sends_delivers_each_once() {
    let sim = simulator().await;
    let state = tempfile::tempdir().unwrap();
    let sc = outbox_sidecar(&sim.url(), &state.path().join("sidecar.db"), "").await;

    let stop = Arc::new(AtomicBool::new(false));
    let loops: Vec<_> = ["hr-bot", "ops-bot"]
        .into_iter()
        .map(|app| tokio::spawn(loop_of_sends(sc.base.clone(), app, stop.clone())))
        .collect();
    tokio::time::sleep(UP).await;
    sim.go_down(None);
    tokio::time::sleep(OUTAGE).await;
    let failed_while_down = sim.counters().failed_while_down;
    let queued_by_then =
        outbox_total(&sc, "hr-bot", "queued").await + outbox_total(&sc, "ops-bot", "queued").await;
    sim.come_back();
    tokio::time::sleep(UP).await;
    stop.store(true, Ordering::Relaxed);
    let mut answers = Vec::new();
    for l in loops {
        answers.push(l.await.unwrap());
    }

    // Every send was answered as WeCom would have (errcode 0), queued or delivered.
    for (app, sent) in ["hr-bot", "ops-bot"].iter().zip(&answers) {
        let wrong: Vec<&Sent> = sent.iter().filter(|s| !s.accepted()).collect();
        assert!(
            wrong.is_empty(),
            "{app}: {} of {} sends neither delivered nor queued, e.g. {:?}; log:\n{}",
            wrong.len(),
            sent.len(),
            wrong.first(),
            sc.logs()
        );
    }
    // The outage was real: WeCom failed calls, and sends were queued during it.
    assert!(failed_while_down > 0, "the simulator failed no call");
    let queued: Vec<Vec<String>> = answers
        .iter()
        .map(|sent| {
            sent.iter()
                .filter(|s| s.queued())
                .map(|s| s.content.clone())
                .collect()
        })
        .collect();
    for (app, q) in ["hr-bot", "ops-bot"].iter().zip(&queued) {
        // A minute at one send per 50 ms and a few ms per failed send: hundreds.
        assert!(q.len() >= 100, "{app}: only {} sends queued", q.len());
    }
    assert!(
        queued_by_then >= 200.0,
        "wecom_outbox_total{{result=queued}} {queued_by_then}"
    );

    // Once WeCom is back, the queues drain: each send delivered once, the queued in order.
    let total: usize = answers.iter().map(Vec::len).sum();
    let drained = delivered_at_least(&sim, total, Duration::from_secs(120)).await;
    assert!(
        drained,
        "{} of {total} delivered two minutes after WeCom came back; log:\n{}",
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
    for ((app, sent), q) in ["hr-bot", "ops-bot"].iter().zip(&answers).zip(&queued) {
        let got = delivered(&sim, app);
        let contents: Vec<String> = sent.iter().map(|s| s.content.clone()).collect();
        assert_each_once(app, &got, &contents);
        assert_in_order(app, &got, q);
        let direct: Vec<String> = sent
            .iter()
            .filter(|s| s.delivered())
            .map(|s| s.content.clone())
            .collect();
        assert_in_order(app, &got, &direct);
        assert_eq!(
            outbox_total(&sc, app, "sent").await,
            q.len() as f64,
            "{app}: every queued send replayed and counted once"
        );
    }
    assert_eq!(
        sim.delivered_messages().len(),
        total,
        "nothing delivered that no app sent"
    );
}
