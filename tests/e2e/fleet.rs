//! Fleet mode against a real `redis-server` on a random port: quotas and tokens shared by four
//! sidecar processes, and Redis failures that fail no call.

use std::time::Duration;

use crate::harness::sim::FaultKind;
use crate::harness::*;

/// `fleet.timeout` in these tests. The default (250 ms) suits production; on a loaded 2-core
/// test machine running 8 sidecars and 2 redis-servers, one slow answer would make a sidecar
/// decide alone for a moment and blur exact counts. Redis being down is still seen at once:
/// its closed socket fails the next operation without waiting.
const REDIS_TIMEOUT: &str = "2s";

async fn fleet(sim_url: &str, redis: &Redis, prefix: &str, extra: &str) -> Vec<Sidecar> {
    let mut out = Vec::new();
    for _ in 0..4 {
        let fleet = format!(
            "fleet:\n  redis_url: \"{}\"\n  key_prefix: \"{prefix}\"\n  size: 4\n  timeout: {REDIS_TIMEOUT}\n{extra}",
            redis.url()
        );
        out.push(Sidecar::start(sim_url, &fleet).await);
    }
    for sc in &out {
        sc.wait_ready().await;
    }
    out
}

#[tokio::test]
async fn four_sidecars_share_one_quota() {
    let redis = Redis::start().await;
    let sim = simulator().await;
    let sidecars = fleet(
        &sim.url(),
        &redis,
        "q1:",
        "routes:\n  - path: /cgi-bin/user/get\n    quota: [\"100/s\"]\n",
    )
    .await;
    let started = std::time::Instant::now();
    let mut calls = Vec::new();
    // A combined burst: 4 × 150 calls inside well under a second.
    for sc in &sidecars {
        for i in 0..150 {
            let c = client();
            let url = sc.url(&format!("/cgi-bin/user/get?userid=q{i}"));
            calls.push(tokio::spawn(async move {
                get_json(&c, &url).await.2["errcode"].as_i64()
            }));
        }
    }
    let mut ok = 0;
    for c in calls {
        match c.await.unwrap() {
            Some(0) => ok += 1,
            Some(45009) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let elapsed = started.elapsed();
    let seen = sim.counters().calls["/cgi-bin/user/get"];
    assert_eq!(seen, ok);
    // The allowance of a 100/s limit over the burst's span (at most 100 in any second).
    let allowance = 100 * (elapsed.as_secs() + 1);
    eprintln!(
        "fleet quota: {seen} of 600 calls passed in {elapsed:?} under 100/s shared by 4 sidecars"
    );
    assert!(
        seen <= allowance,
        "the fleet let {seen} through, allowance {allowance}"
    );
    assert!(
        seen >= 98,
        "the fleet let only {seen} through of 100 (accuracy goal: within 2 %)"
    );
    let m = sidecars[0].metrics().await;
    assert_eq!(m.value("wecom_redis_up", &[]), Some(1.0), "{m}");
}

#[tokio::test]
async fn four_sidecars_cold_start_fetch_one_token() {
    let redis = Redis::start().await;
    let sim = simulator().await;
    sim.inject(fault(
        "/cgi-bin/gettoken",
        FaultKind::Delay(Duration::from_millis(300)),
        None,
    ));
    let sidecars = fleet(&sim.url(), &redis, "t1:", "").await;
    let mut calls = Vec::new();
    for sc in &sidecars {
        for i in 0..100 {
            let c = client();
            let url = sc.url(&format!("/cgi-bin/user/get?userid=t{i}"));
            calls.push(tokio::spawn(async move {
                get_json(&c, &url).await.2["errcode"].as_i64()
            }));
        }
    }
    for c in calls {
        assert_eq!(c.await.unwrap(), Some(0));
    }
    assert_eq!(
        sim.counters().gettoken["hr-bot"],
        1,
        "one gettoken for the whole fleet"
    );

    // Tokens expired at WeCom: exactly one more for the whole fleet.
    sim.expire_all_tokens();
    let mut calls = Vec::new();
    for sc in &sidecars {
        for i in 0..25 {
            let c = client();
            let url = sc.url(&format!("/cgi-bin/user/get?userid=e{i}"));
            calls.push(tokio::spawn(async move {
                get_json(&c, &url).await.2["errcode"].as_i64()
            }));
        }
    }
    for c in calls {
        assert_eq!(c.await.unwrap(), Some(0));
    }
    assert_eq!(sim.counters().gettoken["hr-bot"], 2);
}

#[tokio::test]
async fn redis_down_fails_no_call_and_sharing_resumes() {
    let mut redis = Redis::start().await;
    let sim = simulator().await;
    let sidecars = fleet(
        &sim.url(),
        &redis,
        "d1:",
        "routes:\n  - path: /cgi-bin/department/list\n    quota: [\"40/s\"]\n",
    )
    .await;
    let c = client();
    for sc in &sidecars {
        assert_eq!(
            get_json(&c, &sc.url("/cgi-bin/user/get?userid=a")).await.2["errcode"],
            0
        );
    }
    redis.kill();
    // Calls go on; each sidecar keeps a local share of the limit (40 / 4 = 10 a second).
    for sc in &sidecars {
        for i in 0..5 {
            let (_, _, v) = get_json(&c, &sc.url(&format!("/cgi-bin/user/get?userid=k{i}"))).await;
            assert_eq!(v["errcode"], 0, "a call failed because Redis is down: {v}");
        }
    }
    let sc = &sidecars[0];
    // 30 calls at once: the local share lets 10 through in any second (a slow machine that
    // spreads them over more than a second earns 10 more per extra second, never 40).
    let started = std::time::Instant::now();
    let burst: Vec<_> = (0..30)
        .map(|_| {
            let c = c.clone();
            let url = sc.url("/cgi-bin/department/list");
            tokio::spawn(async move { get_json(&c, &url).await.2["errcode"].as_i64() })
        })
        .collect();
    let mut ok = 0;
    for b in burst {
        match b.await.unwrap() {
            Some(0) => ok += 1,
            Some(45009) => {}
            other => panic!("unexpected answer while Redis is down: {other:?}"),
        }
    }
    let allowance = 10 * (started.elapsed().as_secs() + 1);
    assert!(
        ok >= 10 && ok <= allowance,
        "local share of 40/s over 4 sidecars should let 10 a second through, got {ok} in {:?}",
        started.elapsed()
    );
    let m = sc.metrics().await;
    assert_eq!(m.value("wecom_redis_up", &[]), Some(0.0), "{m}");
    assert!(m
        .value("wecom_fleet_fallbacks_total", &[("what", "quota")])
        .is_some());
    let status = sc.status().await;
    assert!(status.contains("\"redis_up\": false"), "{status}");

    redis.restart().await;
    let back = eventually(Duration::from_secs(15), async || {
        let _ = get_json(&c, &sc.url("/cgi-bin/user/get?userid=z")).await;
        sc.metrics().await.value("wecom_redis_up", &[]) == Some(1.0)
    })
    .await;
    assert!(back, "sharing did not resume after Redis came back");
}

/// Every string value in the Redis, by key.
async fn redis_values(redis: &Redis) -> Vec<(String, String)> {
    let client = redis::Client::open(redis.url()).expect("redis url");
    let mut c = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect to the test redis");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut c)
        .await
        .unwrap();
    let mut out = Vec::new();
    for k in keys {
        if let Ok(v) = redis::cmd("GET")
            .arg(&k)
            .query_async::<String>(&mut c)
            .await
        {
            out.push((k, v));
        }
    }
    out
}

/// Redis holds tokens sealed with a key derived from the app's secret: a reader of Redis gets no
/// usable token, and a stored value that was edited is not used (a new token replaces it).
#[tokio::test]
async fn tokens_in_redis_are_sealed_and_an_edited_one_is_replaced() {
    let redis = Redis::start().await;
    let sim = simulator().await;
    let fleet_cfg = |prefix: &str| {
        format!(
            "fleet:\n  redis_url: \"{}\"\n  key_prefix: \"{prefix}\"\n  size: 2\n  timeout: {REDIS_TIMEOUT}\n",
            redis.url()
        )
    };
    let first = Sidecar::start(&sim.url(), &fleet_cfg("s1:")).await;
    first.wait_ready().await;
    let c = client();
    assert_eq!(
        get_json(&c, &first.url("/cgi-bin/user/get?userid=a"))
            .await
            .2["errcode"],
        0
    );
    let issued = sim.issued_tokens();
    assert!(!issued.is_empty());
    let values = redis_values(&redis).await;
    let token_keys: Vec<_> = values
        .iter()
        .filter(|(k, _)| k.starts_with("s1:t:") && !k.ends_with(":lease"))
        .collect();
    assert!(!token_keys.is_empty(), "no token stored: {values:?}");
    for (k, v) in &values {
        for t in &issued {
            assert!(
                !v.contains(t.as_str()),
                "{k} holds an issued token in clear"
            );
        }
        for secret in [HR_SECRET, OPS_SECRET] {
            assert!(
                !v.contains(secret) && !k.contains(secret),
                "{k} holds a secret"
            );
        }
    }

    // Edit every stored token (one hex digit of the sealed value): a sidecar that starts now
    // must not use it, and fetches a new one.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut rc = client.get_multiplexed_async_connection().await.unwrap();
    for (k, v) in &token_keys {
        let mut stored: serde_json::Value = serde_json::from_str(v).unwrap();
        let sealed = stored["sealed"]
            .as_str()
            .expect("a sealed value")
            .to_string();
        let flipped = if sealed.ends_with('0') { "1" } else { "0" };
        stored["sealed"] = format!("{}{flipped}", &sealed[..sealed.len() - 1]).into();
        let _: () = redis::cmd("SET")
            .arg(k)
            .arg(stored.to_string())
            .arg("KEEPTTL")
            .query_async(&mut rc)
            .await
            .unwrap();
    }
    let before = sim.counters().gettoken["hr-bot"];
    let second = Sidecar::start(&sim.url(), &fleet_cfg("s1:")).await;
    second.wait_ready().await;
    let (status, _, v) = get_json(&c, &second.url("/cgi-bin/user/get?userid=b")).await;
    assert_eq!((status, v["errcode"].as_i64()), (200, Some(0)), "{v}");
    assert_eq!(
        sim.counters().gettoken["hr-bot"],
        before + 1,
        "the edited token was used instead of fetching a new one"
    );
    // What the second one stored opens for a third: no more fetches.
    let third = Sidecar::start(&sim.url(), &fleet_cfg("s1:")).await;
    third.wait_ready().await;
    let (_, _, v) = get_json(&c, &third.url("/cgi-bin/user/get?userid=c")).await;
    assert_eq!(v["errcode"], 0, "{v}");
    assert_eq!(sim.counters().gettoken["hr-bot"], before + 1);
}
