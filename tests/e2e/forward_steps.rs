//! The retry decision seen from outside: every failed attempt goes through one policy, so a
//! host that does not resolve is held against its upstream like any other failure (ejected,
//! logged, its health gauge at 0) while the call itself is carried by another upstream.

use crate::harness::*;

/// The standard config with a second upstream, `unresolvable`, whose host name cannot
/// resolve (`.invalid` is reserved for that) and which the route gives all the weight.
fn with_unresolvable(listen: u16, admin: u16, primary: &str) -> String {
    let extra = "routes:\n  - path: /cgi-bin/*\n    split: { primary: 0, unresolvable: 100 }\n    retry: { attempts: 2, backoff_base: 10ms, backoff_max: 50ms }\noutlier: { consecutive_failures: 2, base_ejection: 60s, max_ejection: 120s }\n";
    config_yaml(listen, admin, primary, extra).replace(
        "upstreams:\n",
        "upstreams:\n  unresolvable:\n    url: \"http://wecom-sidecar-test.invalid:8080\"\n    connect_timeout: 1s\n    timeout: 3s\n",
    )
}

#[tokio::test]
async fn an_upstream_whose_host_does_not_resolve_is_ejected_logged_and_shown_down() {
    let sim = simulator().await;
    let sc = Sidecar::start_with(|l, a| with_unresolvable(l, a, &sim.url())).await;
    sc.wait_ready().await;
    let c = client();
    // Each call tries the unresolvable upstream first, then the primary (nothing was sent,
    // so a retry elsewhere is safe): the app sees no failure.
    for i in 0..3 {
        let (_, _, v) = get_json(&c, &sc.url(&format!("/cgi-bin/user/get?userid=u{i}"))).await;
        assert_eq!(v["errcode"], 0, "call {i}: {v}");
    }
    assert_eq!(calls(&sim, "/cgi-bin/user/get"), 3);

    // Two failures in a row ejected it: the same line and gauge as any other failure's. (A
    // scrape answers once the lines logged before it are written.)
    let metrics = sc.settled_metrics().await;
    let logs = sc.logs();
    let ejected = logs.lines().find(|l| {
        l.contains("upstream ejected after consecutive failures") && l.contains("unresolvable")
    });
    assert!(
        ejected.is_some_and(|l| l.contains("WARN")),
        "no ejection logged for the unresolvable upstream:\n{logs}"
    );
    let healthy = |u| metrics.value("wecom_upstream_healthy", &[("upstream", u)]);
    assert_eq!(
        healthy("unresolvable"),
        Some(0.0),
        "health gauge not 0:\n{}",
        metrics.text()
    );
    assert_eq!(healthy("primary"), Some(1.0), "{}", metrics.text());
    // Ejected, it is no longer tried: the third call went straight to the primary.
    let unresolved = metrics.sum(
        "wecom_upstream_attempts_total",
        &[("upstream", "unresolvable"), ("result", "connect_error")],
    );
    assert_eq!(unresolved, 2.0, "{}", metrics.text());
    let status = sc.status().await;
    assert!(status.contains("\"unresolvable\""), "{status}");
}
