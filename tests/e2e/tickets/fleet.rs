//! Tickets shared by a fleet: three sidecars on one Redis, called together, fetch each ticket
//! once and answer the same ticket.

use std::collections::BTreeSet;

use super::*;

#[tokio::test]
async fn three_sidecars_on_one_redis_fetch_each_ticket_once() {
    let redis = Redis::start().await;
    let sim = simulator().await;
    let fleet = format!(
        "fleet:\n  redis_url: \"{}\"\n  key_prefix: \"tk1:\"\n  size: 3\n  timeout: 2s\n",
        redis.url()
    );
    let mut sidecars = Vec::new();
    for _ in 0..3 {
        sidecars.push(Sidecar::start(&sim.url(), &fleet).await);
    }
    for sc in &sidecars {
        sc.wait_ready().await;
    }
    let mut calls = Vec::new();
    for sc in &sidecars {
        for i in 0..40 {
            let path = if i % 2 == 0 {
                "/cgi-bin/get_jsapi_ticket"
            } else {
                "/cgi-bin/ticket/get?type=agent_config"
            };
            let (url, kind) = (sc.url(path), i % 2);
            calls.push(tokio::spawn(async move {
                let r = client()
                    .get(url)
                    .header("X-WeCom-App", "hr-bot")
                    .send()
                    .await
                    .unwrap();
                let v: Value = r.json().await.unwrap();
                (kind, v)
            }));
        }
    }
    let mut tickets: [BTreeSet<String>; 2] = Default::default();
    for c in calls {
        let (kind, v) = c.await.unwrap();
        assert_eq!(v["errcode"], 0, "{v}");
        assert!(v["expires_in"].as_u64().is_some_and(|s| s > 7000), "{v}");
        tickets[kind].insert(v["ticket"].as_str().unwrap().to_string());
    }
    assert_eq!(tickets[0].len(), 1, "jsapi tickets: {:?}", tickets[0]);
    assert_eq!(
        tickets[1].len(),
        1,
        "agent_config tickets: {:?}",
        tickets[1]
    );
    assert_eq!(fetched(&sim, JSAPI), 1, "{:?}", sim.counters().tickets);
    assert_eq!(fetched(&sim, AGENT_HR), 1, "{:?}", sim.counters().tickets);
    // Redis holds them sealed: no ticket in any value stored under the prefix.
    let dump = redis_values(&redis, "tk1:k:*").await;
    assert!(!dump.is_empty(), "no ticket stored in Redis");
    for t in tickets.iter().flatten() {
        assert!(!dump.contains(t.as_str()), "a ticket in clear in Redis");
    }
}

/// Every value stored under `pattern`, concatenated.
async fn redis_values(redis: &Redis, pattern: &str) -> String {
    let c = redis::Client::open(redis.url()).unwrap();
    let mut con = c.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut con)
        .await
        .unwrap();
    let mut out = String::new();
    for k in keys.iter().filter(|k| !k.ends_with(":lease")) {
        let v: String = redis::cmd("GET")
            .arg(k)
            .query_async(&mut con)
            .await
            .unwrap();
        out.push_str(&v);
    }
    out
}
