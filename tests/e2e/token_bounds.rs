//! gettoken stays bounded whatever the upstream does (SPEC "Bounds", bullets 1 and 2): the
//! same token answered again, `expires_in: 0`, tokens good for one call, a standby that rejects
//! primary's tokens, ten callers at once against tokens rejected after one use, the hard cap
//! `token.max_fetches`, that cap shared by a fleet through Redis, and each sidecar's share of it
//! while Redis is down.
//!
//! Each test counts the gettoken calls the simulator received over a few seconds and bounds
//! them by what `min_fetch_interval` allows; before the bounds the same runs made one gettoken
//! per second (refresher loops) or one per call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::sim::{SimConfig, Simulator};
use crate::harness::*;

/// The bounds these tests run with: small, so a few seconds show several intervals.
const INTERVAL_S: u64 = 3;
const BOUNDS: &str = "  min_fetch_interval: 3s\n  min_refetch: 1s\n";

/// How long each test keeps calling.
const RUN: Duration = Duration::from_secs(6);

async fn sim_with(tune: impl FnOnce(&mut SimConfig)) -> Simulator {
    let mut cfg = sim_config();
    tune(&mut cfg);
    Simulator::start("127.0.0.1:0".parse().unwrap(), cfg)
        .await
        .unwrap()
}

fn gettokens(sim: &Simulator) -> u64 {
    sim.counters().gettoken.get("hr-bot").copied().unwrap_or(0)
}

/// The most gettoken calls `min_fetch_interval` allows over `run` after the first fetch: one per
/// interval, one more for a rejection right after a fetch (`min_refetch`), and one of slack for
/// an interval cut by the window's edges.
fn allowed(run: Duration) -> u64 {
    run.as_secs().div_ceil(INTERVAL_S) + 2
}

/// `user/get` calls until `run` is over; (answers with errcode 0, token errors passed through,
/// local no-token answers). Panics on any other answer: every call must be answered, by WeCom's
/// own words or the sidecar's `no-token`.
async fn call_for(c: &reqwest::Client, sc: &Sidecar, run: Duration) -> (u64, u64, u64) {
    let until = Instant::now() + run;
    let (mut ok, mut rejected, mut no_token) = (0, 0, 0);
    let mut i = 0u64;
    while Instant::now() < until {
        i += 1;
        let (status, headers, v) =
            get_json(c, &sc.url(&format!("/cgi-bin/user/get?userid=u{i}"))).await;
        let reason = headers
            .get("x-sidecar-reason")
            .and_then(|h| h.to_str().ok())
            .map(str::to_string);
        match (v["errcode"].as_i64(), reason.as_deref()) {
            (Some(0), None) => ok += 1,
            (Some(40014 | 42001), None) => {
                assert_eq!(status, 200, "{v}");
                rejected += 1;
            }
            (_, Some("no-token")) => no_token += 1,
            other => panic!("unexpected answer {status} {other:?}: {v}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (ok, rejected, no_token)
}

/// With no calls for `run`, the refresher alone makes at most what the bounds allow; then a
/// call is answered with a token.
async fn idle_gettoken_is_bounded_and_calls_work(sim: &Simulator, sc: &Sidecar, run: Duration) {
    let before = gettokens(sim);
    tokio::time::sleep(run).await;
    let n = gettokens(sim) - before;
    let bound = allowed(run);
    assert!(
        n <= bound,
        "{n} gettoken in {run:?}, at most {bound} allowed"
    );
    let (_, _, v) = get_json(&client(), &sc.url("/cgi-bin/user/get?userid=a")).await;
    assert_eq!(v["errcode"], 0, "{v}");
}

/// WeCom answers a gettoken inside a token's validity with that token and its remaining
/// `expires_in`. Once that is inside `refresh_before_expiry`, the refresher asked again every
/// second until the token expired.
#[tokio::test]
async fn the_same_token_answered_again_is_kept_not_refetched() {
    // Tokens live 62 s and are refreshed 61 s before expiry (a lifetime under a minute is
    // taken as a minute): due a second after the fetch, and every answer is that same token.
    let sim = sim_with(|c| {
        c.reuse_valid_token = true;
        c.token_ttl = Duration::from_secs(62);
    })
    .await;
    let sc = Sidecar::start(
        &sim.url(),
        &format!("token:\n  refresh_before_expiry: 61s\n{BOUNDS}"),
    )
    .await;
    sc.wait_ready().await;
    idle_gettoken_is_bounded_and_calls_work(&sim, &sc, Duration::from_secs(12)).await;
    assert_eq!(
        sim.issued_tokens().len(),
        2,
        "the simulator handed out one token per app, answered again at each refresh"
    );
}

/// `expires_in: 0` (taken as a minute, and so always inside the default 5 min
/// `refresh_before_expiry`) made the refresher ask every second.
#[tokio::test]
async fn expires_in_zero_does_not_loop() {
    let sim = sim_with(|c| c.expires_in_override = Some(0)).await;
    let sc = Sidecar::start(&sim.url(), &format!("token:\n{BOUNDS}")).await;
    sc.wait_ready().await;
    idle_gettoken_is_bounded_and_calls_work(&sim, &sc, Duration::from_secs(10)).await;
}

/// Every token answers 40014 after one use: a fresh token cures one call, then fails too.
/// One gettoken per call before; now at most one per `min_fetch_interval`, and the calls whose
/// token was rejected get WeCom's 40014 as it said it.
#[tokio::test]
async fn one_use_tokens_cost_one_gettoken_per_interval_not_per_call() {
    let sim = sim_with(|c| c.one_use_tokens = true).await;
    let sc = Sidecar::start(&sim.url(), &format!("token:\n{BOUNDS}")).await;
    sc.wait_ready().await;
    let before = gettokens(&sim);
    let (ok, rejected, _) = call_for(&client(), &sc, RUN).await;
    let n = gettokens(&sim) - before;
    let bound = allowed(RUN);
    assert!(
        n <= bound,
        "{n} gettoken for {} calls in {RUN:?}, at most {bound} allowed",
        ok + rejected
    );
    assert!(ok >= 1 && rejected >= 10, "ok {ok}, rejected {rejected}");
    let m = sc.settled_metrics().await;
    assert!(
        m.value(
            "wecom_token_rejected_total",
            &[("app", "hr-bot"), ("upstream", "primary")]
        )
        .unwrap_or(0.0)
            >= 10.0,
        "{m}"
    );
    assert!(
        m.value(
            "wecom_token_held_total",
            &[("app", "hr-bot"), ("reason", "uncured")]
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{m}"
    );
    // Why: a WARN when the hold starts, and each passed-on call's access-log line.
    let logs = sc.logs();
    assert!(
        logs.lines().any(|l| l.contains("WARN")
            && l.contains("gettoken held")
            && l.contains("uncured")
            && l.contains("hr-bot")),
        "no log line says why gettoken was held:\n{logs}"
    );
    assert!(
        logs.contains("token error passed on"),
        "the access log does not say why the token error reached the app"
    );
}

/// Ten callers at once, a fresh token per fetch, every token rejected after one use: fetches
/// stay within what `min_fetch_interval` allows and every caller gets an answer.
#[tokio::test]
async fn ten_concurrent_callers_against_one_use_tokens_are_all_answered_and_bounded() {
    let sim = sim_with(|c| c.one_use_tokens = true).await;
    let sc = Arc::new(Sidecar::start(&sim.url(), &format!("token:\n{BOUNDS}")).await);
    sc.wait_ready().await;
    let before = gettokens(&sim);
    let c = client();
    let callers: Vec<_> = (0..10)
        .map(|_| {
            let (c, sc) = (c.clone(), sc.clone());
            tokio::spawn(async move { call_for(&c, &sc, RUN).await })
        })
        .collect();
    let mut answered = 0;
    for caller in callers {
        let (ok, rejected, no_token) = caller.await.expect("a caller failed");
        assert!(ok + rejected + no_token > 0);
        answered += ok + rejected + no_token;
    }
    let n = gettokens(&sim) - before;
    let bound = allowed(RUN);
    assert!(
        n <= bound,
        "{n} gettoken for {answered} calls in {RUN:?}, at most {bound} allowed"
    );
}

/// A standby left at `tokens: shared` that rejects primary's tokens (another WeCom): the fresh
/// token fails there too. Passed to the app as WeCom said it, counted, and not refetched per call.
#[tokio::test]
async fn a_standby_that_rejects_primarys_tokens_does_not_cost_a_gettoken_per_call() {
    let primary = simulator().await;
    let standby = simulator().await;
    let extra = format!(
        "token:\n{BOUNDS}routes:\n  - path: /cgi-bin/*\n    split: {{ primary: 0, standby: 100 }}\n"
    );
    let (p, s) = (primary.url(), standby.url());
    let sc = Sidecar::start_with(|l, a| {
        config_yaml(l, a, &p, &extra).replace(
            "upstreams:\n",
            &format!("upstreams:\n  standby:\n    url: \"{s}\"\n    tokens: shared\n"),
        )
    })
    .await;
    sc.wait_ready().await;
    let before = gettokens(&primary);
    let (ok, rejected, _) = call_for(&client(), &sc, RUN).await;
    let n = gettokens(&primary) - before;
    let bound = allowed(RUN);
    assert!(
        n <= bound,
        "{n} gettoken for {rejected} rejected calls in {RUN:?}, at most {bound} allowed"
    );
    assert_eq!(ok, 0);
    assert!(rejected >= 10, "{rejected}");
    assert_eq!(gettokens(&standby), 0, "tokens come from primary");
    let m = sc.settled_metrics().await;
    assert!(
        m.value(
            "wecom_token_rejected_total",
            &[("app", "hr-bot"), ("upstream", "standby")]
        )
        .unwrap_or(0.0)
            >= 10.0,
        "{m}"
    );
}

/// `token.max_fetches` is a hard cap: past it, calls that need a new token get the local
/// no-token answer, the log says why and `wecom_token_fetch_capped_total` counts it.
#[tokio::test]
async fn max_fetches_caps_gettoken_and_says_so() {
    let sim = sim_with(|c| c.one_use_tokens = true).await;
    let sc = Sidecar::start(
        &sim.url(),
        "token:\n  min_fetch_interval: 1s\n  min_refetch: 1s\n  max_fetches: 3/min\n",
    )
    .await;
    sc.wait_ready().await;
    let (ok, _, no_token) = call_for(&client(), &sc, RUN).await;
    let n = gettokens(&sim);
    assert!(n <= 3, "{n} gettoken, the cap is 3/min");
    assert!(ok >= 1, "the tokens the cap allowed were used");
    assert!(no_token >= 1, "calls past the cap get no-token");
    let m = sc.settled_metrics().await;
    assert!(
        m.value("wecom_token_fetch_capped_total", &[("app", "hr-bot")])
            .unwrap_or(0.0)
            >= 1.0,
        "{m}"
    );
    let logs = sc.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("max_fetches") && l.contains("hr-bot")),
        "no log line says the cap was reached:\n{logs}"
    );
    let status = sc.status().await;
    assert!(
        status.contains("\"held\": \"capped\"") && status.contains("\"capped\": true"),
        "/admin/status does not show the cap: {status}"
    );
}

/// In fleet mode the cap is the fleet's: two sidecars sharing a Redis together call gettoken at
/// most `max_fetches` times.
#[tokio::test]
async fn max_fetches_is_fleet_wide() {
    let redis = Redis::start().await;
    let sim = sim_with(|c| c.one_use_tokens = true).await;
    let extra = format!(
        "token:\n  min_fetch_interval: 1s\n  min_refetch: 1s\n  max_fetches: 3/min\nfleet:\n  redis_url: \"{}\"\n  key_prefix: \"cap:\"\n  size: 2\n  timeout: 2s\n",
        redis.url()
    );
    let a = Sidecar::start(&sim.url(), &extra).await;
    let b = Sidecar::start(&sim.url(), &extra).await;
    a.wait_ready().await;
    b.wait_ready().await;
    let c = client();
    let (ra, rb) = tokio::join!(call_for(&c, &a, RUN), call_for(&c, &b, RUN));
    let n = gettokens(&sim);
    assert!(n <= 3, "{n} gettoken across the fleet, the cap is 3/min");
    assert!(ra.2 + rb.2 >= 1, "calls past the cap get no-token");
}

/// The README's figures: gettoken per minute under each hostile upstream with the default
/// bounds (min_fetch_interval 30 s, min_refetch 2 s, max_fetches 60/h), two minutes each, all at
/// once. Run: `cargo test --test e2e token_bounds::gettoken_per_minute -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a two-minute measurement for the README, not a check"]
async fn gettoken_per_minute_under_hostile_upstreams() {
    const MEASURE: Duration = Duration::from_secs(120);
    async fn run(name: &'static str, sim: Simulator, sc: Sidecar, callers: usize) -> (String, u64) {
        sc.wait_ready().await;
        let before = gettokens(&sim);
        let sc = Arc::new(sc);
        let c = client();
        let tasks: Vec<_> = (0..callers)
            .map(|_| {
                let (c, sc) = (c.clone(), sc.clone());
                tokio::spawn(async move { call_for(&c, &sc, MEASURE).await })
            })
            .collect();
        let mut calls = 0;
        for t in tasks {
            let (a, b, d) = t.await.unwrap();
            calls += a + b + d;
        }
        if callers == 0 {
            tokio::time::sleep(MEASURE).await;
        }
        let n = gettokens(&sim) - before;
        let line = format!(
            "{name}: {n} gettoken in {}s ({:.1}/min) for {calls} calls",
            MEASURE.as_secs(),
            n as f64 * 60.0 / MEASURE.as_secs_f64()
        );
        (line, n)
    }
    let same = sim_with(|c| {
        c.reuse_valid_token = true;
        // Inside the default 5 min refresh_before_expiry 10 s after the first fetch.
        c.token_ttl = Duration::from_secs(310);
    })
    .await;
    let zero = sim_with(|c| c.expires_in_override = Some(0)).await;
    let one_use = sim_with(|c| c.one_use_tokens = true).await;
    let one_use10 = sim_with(|c| c.one_use_tokens = true).await;
    let (primary, standby) = (simulator().await, simulator().await);
    let (p, s) = (primary.url(), standby.url());
    // Quotas out of the way: ten callers for two minutes pass WeCom's 10,000/min.
    let quota = "defaults:\n  quota: [\"1000000/min\"]\n";
    let split = format!(
        "{quota}routes:\n  - path: /cgi-bin/*\n    split: {{ primary: 0, standby: 100 }}\n"
    );
    let standby_sc = Sidecar::start_with(|l, a| {
        config_yaml(l, a, &p, &split).replace(
            "upstreams:\n",
            &format!("upstreams:\n  standby:\n    url: \"{s}\"\n    tokens: shared\n"),
        )
    })
    .await;
    let lines = tokio::join!(
        run(
            "same token answered again",
            same.clone(),
            Sidecar::start(&same.url(), quota).await,
            1
        ),
        run(
            "expires_in 0",
            zero.clone(),
            Sidecar::start(&zero.url(), quota).await,
            1
        ),
        run(
            "one-use tokens, 1 caller",
            one_use.clone(),
            Sidecar::start(&one_use.url(), quota).await,
            1
        ),
        run(
            "one-use tokens, 10 callers",
            one_use10.clone(),
            Sidecar::start(&one_use10.url(), quota).await,
            10
        ),
        run(
            "standby rejecting primary's tokens",
            primary.clone(),
            standby_sc,
            1
        ),
    );
    // One per 30 s interval, one refetch after it, one for the window's edges.
    let bound = MEASURE.as_secs() / 30 + 2;
    for (line, n) in [lines.0, lines.1, lines.2, lines.3, lines.4] {
        println!("{line}");
        assert!(n <= bound, "{line}: over {bound}");
    }
}

/// With the fleet's Redis down, each sidecar caps itself at its share of `max_fetches`
/// (`max_fetches / fleet.size`), so the fleet still stays within the cap.
#[tokio::test]
async fn max_fetches_with_redis_down_is_each_sidecars_share() {
    let sim = sim_with(|c| c.one_use_tokens = true).await;
    // Nothing listens there: every Redis operation fails at once.
    let extra = format!(
        "token:\n  min_fetch_interval: 1s\n  min_refetch: 1s\n  max_fetches: 4/min\nfleet:\n  redis_url: \"redis://127.0.0.1:{}/0\"\n  key_prefix: \"down:\"\n  size: 2\n",
        free_port()
    );
    let a = Sidecar::start(&sim.url(), &extra).await;
    let b = Sidecar::start(&sim.url(), &extra).await;
    a.wait_ready().await;
    b.wait_ready().await;
    let c = client();
    let (ra, rb) = tokio::join!(call_for(&c, &a, RUN), call_for(&c, &b, RUN));
    let n = gettokens(&sim);
    assert!(n <= 4, "{n} gettoken across the fleet, the cap is 4/min");
    assert!(ra.2 >= 1 && rb.2 >= 1, "each sidecar capped itself");
}
