//! Traffic shifting and failover between two endpoints of the same (simulated) WeCom.

use std::time::Duration;

use crate::harness::sim::{FaultKind, Simulator};
use crate::harness::*;
use serde_json::json;

fn two_upstreams(listen: u16, admin: u16, primary: &str, standby: &str, extra: &str) -> String {
    config_yaml(listen, admin, primary, extra).replace(
        "upstreams:\n",
        &format!("upstreams:\n  standby:\n    url: \"{standby}\"\n    connect_timeout: 1s\n    timeout: 3s\n"),
    )
}

/// A ready sidecar on `primary` and `standby` (with `extra` config).
async fn start_two(primary: &str, standby: &str, extra: &str) -> Sidecar {
    let sc = Sidecar::start_with(|l, a| two_upstreams(l, a, primary, standby, extra)).await;
    sc.wait_ready().await;
    sc
}

#[tokio::test]
async fn a_ninety_ten_split_lands_within_two_percent() {
    let (primary, standby) = primary_and_standby().await;
    let sc = start_two(
        &primary.url(),
        &standby.url(),
        "routes:\n  - path: /cgi-bin/user/get\n    split: { primary: 90, standby: 10 }\n",
    )
    .await;
    let c = client();
    for i in 0..1000 {
        let (_, _, v) = get_json(&c, &sc.url(&format!("/cgi-bin/user/get?userid=s{i}"))).await;
        assert_eq!(v["errcode"], 0);
    }
    let p = primary.calls_here("/cgi-bin/user/get");
    let s = standby.calls_here("/cgi-bin/user/get");
    assert_eq!(p + s, 1000);
    assert!(
        (80..=120).contains(&s),
        "standby took {s} of 1000, want 100 ± 20"
    );
    let status = sc.status().await;
    assert!(status.contains("\"standby\""), "{status}");
}

#[tokio::test]
async fn standby_carries_the_calls_while_the_primary_is_dead() {
    let (primary, standby) = primary_and_standby().await;
    let primary_addr = primary.addr();
    let extra = "routes:\n  - path: /cgi-bin/*\n    split: { primary: 100, standby: 0 }\n    retry: { attempts: 3, backoff_base: 10ms, backoff_max: 50ms }\noutlier: { consecutive_failures: 3, base_ejection: 2s, max_ejection: 10s }\nhealth_check: { interval: 200ms, timeout: 500ms }\n";
    let sc = start_two(&primary.url(), &standby.url(), extra).await;
    let c = client();
    for i in 0..20 {
        assert_eq!(
            get_json(&c, &sc.url(&format!("/cgi-bin/user/get?userid=a{i}")))
                .await
                .2["errcode"],
            0
        );
    }
    assert_eq!(
        standby.calls_here("/cgi-bin/user/get"),
        0,
        "a pure standby takes nothing while the primary is up"
    );

    // The primary dies. Reads and writes alike go to the standby: a refused connection sent
    // nothing, so even a write is safe to send elsewhere.
    primary.shutdown();
    let mut failed = 0;
    for i in 0..50 {
        let (_, _, v) = get_json(&c, &sc.url(&format!("/cgi-bin/user/get?userid=b{i}"))).await;
        if v["errcode"] != 0 {
            failed += 1;
        }
        let msg = json!({"touser": format!("u{i}"), "msgtype": "text", "agentid": 1, "text": {"content": "x"}});
        let (_, _, v) = post_json(&c, &sc.url("/cgi-bin/message/send"), &msg).await;
        if v["errcode"] != 0 {
            failed += 1;
        }
    }
    assert_eq!(failed, 0, "calls failed while the standby was there");
    assert!(standby.calls_here("/cgi-bin/user/get") >= 50);
    assert_eq!(
        standby.counters().messages_delivered,
        50,
        "each message delivered once"
    );
    let status: serde_json::Value = serde_json::from_str(&sc.status().await).unwrap();
    let p = status["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "primary")
        .unwrap()
        .clone();
    assert!(
        p["ejections"].as_u64().unwrap() >= 1,
        "primary never ejected: {p}"
    );

    // The primary comes back on the same address; the health check returns it to rotation.
    let revived = standby.also_listen(primary_addr).await.unwrap();
    let back = eventually(Duration::from_secs(10), async || {
        let _ = get_json(&c, &sc.url("/cgi-bin/user/get?userid=c")).await;
        revived.calls_here("/cgi-bin/user/get") > 0
    })
    .await;
    assert!(back, "the primary never returned to rotation");
    assert_eq!(
        sc.metrics()
            .await
            .value("wecom_upstream_healthy", &[("upstream", "primary")]),
        Some(1.0)
    );
    let _: Simulator = revived;
}

/// Ejection counts failures in a row: failures that good answers separate, however many,
/// never take an upstream out of rotation.
#[tokio::test]
async fn failures_between_good_answers_never_eject() {
    let (primary, standby) = primary_and_standby().await;
    let extra = "routes:\n  - path: /cgi-bin/*\n    split: { primary: 100, standby: 0 }\noutlier: { consecutive_failures: 2, base_ejection: 30s, max_ejection: 60s }\n";
    let sc = start_two(&primary.url(), &standby.url(), extra).await;
    let c = client();
    // Ten 5xx answers from the primary, each one followed by good answers (the read's retry,
    // which goes to the standby, and the next call, which the primary answers).
    for i in 0..10 {
        primary.inject(fault("/cgi-bin/user/get", FaultKind::Status(503), Some(1)));
        for what in ["failing", "good"] {
            let (_, _, v) =
                get_json(&c, &sc.url(&format!("/cgi-bin/user/get?userid={what}{i}"))).await;
            assert_eq!(v["errcode"], 0, "{what} call {i}: {v}");
        }
    }
    assert_eq!(
        primary.calls_here("/cgi-bin/user/get"),
        20,
        "10 failed, 10 answered"
    );
    assert_eq!(
        standby.calls_here("/cgi-bin/user/get"),
        10,
        "the 10 retries"
    );
    let status: serde_json::Value = serde_json::from_str(&sc.status().await).unwrap();
    let p = status["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "primary")
        .unwrap()
        .clone();
    assert_eq!(p["ejections"], 0, "{p}");
    assert_eq!(p["healthy"], true, "{p}");
}

/// A sidecar that starts while the primary cannot be reached gets its tokens from the standby
/// (the same WeCom behind another address) and serves through it.
#[tokio::test]
async fn tokens_come_from_the_standby_while_the_primary_is_unreachable() {
    let standby = simulator().await;
    // Nothing listens on the primary's address.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let extra = "routes:\n  - path: /cgi-bin/*\n    split: { primary: 100, standby: 0 }\n    retry: { attempts: 3, backoff_base: 10ms, backoff_max: 50ms }\n";
    let sc = start_two(&dead, &standby.url(), extra).await;
    let c = client();
    for i in 0..5 {
        let (_, _, v) = get_json(&c, &sc.url(&format!("/cgi-bin/user/get?userid=t{i}"))).await;
        assert_eq!(v["errcode"], 0, "call {i}: {v}");
    }
    assert_eq!(standby.calls_here("/cgi-bin/user/get"), 5);
    assert_eq!(
        standby.counters().gettoken["hr-bot"],
        1,
        "one token, from the standby"
    );
}

#[tokio::test]
async fn when_every_upstream_is_down_calls_still_try_one() {
    let primary = simulator().await;
    let sc = Sidecar::start_with(|l, a| {
        config_yaml(
            l,
            a,
            &primary.url(),
            "outlier: { consecutive_failures: 1, base_ejection: 30s, max_ejection: 60s }\n",
        )
    })
    .await;
    sc.wait_ready().await;
    let addr = primary.addr();
    primary.shutdown();
    let c = client();
    let (status, h, _) = get_json(&c, &sc.url("/cgi-bin/user/get?userid=x")).await;
    assert_eq!(status, 502);
    assert_eq!(h["x-sidecar-reason"], "upstream-unavailable");
    // Ejected, and still tried (no blackhole): once it is back, the next calls succeed.
    let revived = primary.also_listen(addr).await.unwrap();
    let (_, _, v) = get_json(&c, &sc.url("/cgi-bin/user/get?userid=y")).await;
    assert_eq!(v["errcode"], 0, "{v}");
    drop(revived);
}

#[tokio::test]
async fn an_upstream_with_tokens_of_its_own_gets_its_own_tokens() {
    let primary = simulator().await;
    // A private deployment: another WeCom that knows the same apps but issues its own tokens.
    let private = simulator().await;
    let sc = Sidecar::start_with(|l, a| {
        config_yaml(
            l,
            a,
            &primary.url(),
            "routes:\n  - path: /cgi-bin/department/*\n    split: { primary: 0, private: 100 }\n",
        )
        .replace(
            "upstreams:\n",
            &format!(
                "upstreams:\n  private:\n    url: \"{}\"\n    tokens: own\n",
                private.url()
            ),
        )
    })
    .await;
    sc.wait_ready().await;
    let c = client();
    for _ in 0..5 {
        assert_eq!(
            get_json(&c, &sc.url("/cgi-bin/department/list")).await.2["errcode"],
            0
        );
        assert_eq!(
            get_json(&c, &sc.url("/cgi-bin/user/get?userid=a")).await.2["errcode"],
            0
        );
    }
    assert_eq!(private.counters().calls["/cgi-bin/department/list"], 5);
    assert_eq!(
        private.counters().gettoken["hr-bot"],
        1,
        "the private deployment issued its own token once"
    );
    assert_eq!(
        primary.counters().calls.get("/cgi-bin/department/list"),
        None
    );
    // Its tokens are refreshed like any other: expiring them costs one gettoken there.
    private.expire_all_tokens();
    assert_eq!(
        get_json(&c, &sc.url("/cgi-bin/department/list")).await.2["errcode"],
        0
    );
    assert_eq!(private.counters().gettoken["hr-bot"], 2);
    assert_eq!(primary.counters().gettoken["hr-bot"], 1);
}
