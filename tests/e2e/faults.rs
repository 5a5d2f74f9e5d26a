//! The fault matrix's remaining rows, each asserting what the app saw and what the simulator
//! received. (The others live beside the feature they test; README "Reliability" maps every
//! row F1–F12 to its test.)

use std::time::Duration;

use crate::harness::sim::FaultKind;
use crate::harness::*;
use serde_json::json;

/// F3: every token invalidated at WeCom while calls are in flight: the app sees no token error
/// and the sidecar fetches exactly one new token.
#[tokio::test]
async fn f3_tokens_invalidated_under_load_cost_one_gettoken_and_no_error() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), "").await;
    sc.wait_ready().await;
    let c = client();
    let before = sim.counters().gettoken.get("hr-bot").copied().unwrap_or(0);
    let mut seen = Vec::new();
    for round in 0..30 {
        if round == 10 {
            sim.invalidate_all_tokens();
        }
        let batch: Vec<_> = (0..16)
            .map(|i| {
                let c = c.clone();
                let url = sc.url(&format!("/cgi-bin/user/get?userid=r{round}i{i}"));
                tokio::spawn(async move { get_json(&c, &url).await.2 })
            })
            .collect();
        for b in batch {
            seen.push(b.await.unwrap()["errcode"].as_i64().unwrap());
        }
    }
    assert_eq!(seen.len(), 480);
    assert!(seen.iter().all(|&e| e == 0), "errcodes seen: {seen:?}");
    let after = sim.counters().gettoken.get("hr-bot").copied().unwrap_or(0);
    assert_eq!(after - before, 1, "one gettoken for the invalidation");
    // The rejected attempts were repeated with the new token: WeCom saw more calls than the
    // app made, and every extra one was a token error absorbed by the sidecar.
    assert!(calls(&sim, "/cgi-bin/user/get") > 480);
}

/// F7: calls to an upstream that hangs end at the deadline, and leave nothing behind: no call
/// in flight, no connection held open (the sidecar's open descriptors return to where they
/// were), and the next calls are served as usual.
#[tokio::test]
async fn f7_hangs_end_at_the_deadline_and_leave_no_connection_or_call_behind() {
    let sim = simulator().await;
    let sc = Sidecar::start(
        &sim.url(),
        "defaults:\n  deadline: 1s\n  retry: { attempts: 2, backoff_base: 10ms, backoff_max: 20ms }\n",
    )
    .await;
    sc.wait_ready().await;
    // Warm up: a pooled upstream connection, a token; then the baseline.
    {
        let c = client();
        assert_eq!(
            get_json(&c, &sc.url("/cgi-bin/user/get?userid=w")).await.2["errcode"],
            0
        );
    }
    let pid = sc.pid();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let baseline = open_fds(sc.pid());

    sim.inject(fault("/cgi-bin/user/get", FaultKind::Hang, None));
    {
        let c = client();
        let hung: Vec<_> = (0..20)
            .map(|i| {
                let c = c.clone();
                let url = sc.url(&format!("/cgi-bin/user/get?userid=h{i}"));
                tokio::spawn(async move {
                    let r = c.get(url).send().await.unwrap();
                    (
                        r.status().as_u16(),
                        r.headers()["x-sidecar-reason"]
                            .to_str()
                            .unwrap()
                            .to_string(),
                    )
                })
            })
            .collect();
        for h in hung {
            assert_eq!(h.await.unwrap(), (504, "deadline".to_string()));
        }
        // The simulator saw at most one attempt per call: the first one lasts until the
        // deadline, so no retry starts. (Not "exactly one each": on a loaded machine a call's
        // deadline can pass before its attempt is out; the 20 are counted by the metrics.)
        let hung_calls = calls(&sim, "/cgi-bin/user/get") - 1;
        assert!((1..=20).contains(&hung_calls), "{hung_calls}");
    } // the app's connections close here

    // No call is left in flight. (A call's answer reaches the app a moment before the call
    // stops counting, so this waits for the count to settle, and fails if it never does.)
    let m = sc.settled_metrics().await;
    // Answered 504 by the sidecar, recorded as what happened upstream (one in-flight guard
    // per call ends after its line is recorded, so all 20 are in by now).
    assert_eq!(
        m.value(
            "wecom_api_request_duration_seconds_count",
            &[
                ("api", "user/get"),
                ("outcome", "network_error"),
                ("upstream", "primary")
            ]
        ),
        Some(20.0),
        "hung calls not recorded as network_error:\n{m}"
    );
    // The deadline (1 s) comes before the upstream's timeout (3 s): each call's one attempt
    // ends at the deadline and still counts as a timed-out attempt, held against the
    // upstream's health (20 in a row eject it).
    assert_eq!(
        m.value(
            "wecom_upstream_attempts_total",
            &[
                ("api", "user/get"),
                ("result", "timeout"),
                ("upstream", "primary")
            ]
        ),
        Some(20.0),
        "hung attempts not counted:\n{m}"
    );
    let status: serde_json::Value = serde_json::from_str(&sc.status().await).unwrap();
    assert!(
        status["upstreams"][0]["ejections"].as_u64().unwrap() >= 1,
        "a primary that hangs is ejected: {status}"
    );
    let settled = eventually(Duration::from_secs(10), async || open_fds(pid) <= baseline).await;
    assert!(
        settled,
        "open descriptors {} > {baseline} before the hangs: a hung upstream connection was kept",
        open_fds(pid)
    );

    sim.clear_faults();
    let c = client();
    assert_eq!(
        get_json(&c, &sc.url("/cgi-bin/user/get?userid=after"))
            .await
            .2["errcode"],
        0
    );
}

/// F9: a message whose connection is reset, or whose answer is a 5xx or lost, is never sent
/// again (it may have been received), so it is delivered at most once.
#[tokio::test]
async fn f9_a_write_is_never_sent_twice_after_a_reset_5xx_or_lost_answer() {
    let sim = simulator().await;
    let sc = Sidecar::start(
        &sim.url(),
        "defaults:\n  retry: { attempts: 3, backoff_base: 10ms, backoff_max: 20ms }\n",
    )
    .await;
    sc.wait_ready().await;
    let c = client();
    for (i, kind) in [
        FaultKind::Reset,
        FaultKind::Status(503),
        FaultKind::LoseAnswer,
        FaultKind::Truncated,
    ]
    .into_iter()
    .enumerate()
    {
        let what = format!("{kind:?}");
        sim.reset_counters();
        sim.inject(fault("/cgi-bin/message/send", kind, Some(1)));
        let msg = json!({"touser": format!("u{i}"), "msgtype": "text", "agentid": 1000002, "text": {"content": "once"}});
        let r = c
            .post(sc.url("/cgi-bin/message/send"))
            .json(&msg)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 502, "{what}");
        assert_eq!(
            r.headers()["x-sidecar-reason"],
            "upstream-unavailable",
            "{what}"
        );
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["errcode"], -1, "{what}");
        assert_eq!(
            calls(&sim, "/cgi-bin/message/send"),
            1,
            "{what}: sent again"
        );
        assert!(sim.counters().messages_delivered <= 1, "{what}");
    }
    // A read after the same faults is repeated and answered.
    sim.inject(fault("/cgi-bin/user/get", FaultKind::Reset, Some(1)));
    let (_, _, v) = get_json(&c, &sc.url("/cgi-bin/user/get?userid=a")).await;
    assert_eq!(v["errcode"], 0);
}
