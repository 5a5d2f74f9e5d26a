//! The WeCom facts the sidecar reads out of answers: a message send's partial success
//! (errcode 0 with `invaliduser`, `invalidparty`, `invalidtag`) counted and logged without the
//! ids, and the untrusted address of a 60020 (`from ip: a.b.c.d`), on a call and on gettoken:
//! exported as `wecom_egress_ip_info{ip}` (the latest only), logged once per address with the
//! fix, shown in `/admin/status`.

use std::time::Duration;

use crate::harness::sim::FaultKind;
use crate::harness::*;
use serde_json::json;

const SEND: &str = "/cgi-bin/message/send";

/// The access lines (target `access`) of calls to `path`.
fn access_lines(logs: &str, path: &str) -> Vec<String> {
    logs.lines()
        .filter(|l| l.contains(" access: call ") && l.contains(&format!(" path={path} ")))
        .map(str::to_string)
        .collect()
}

/// The WARN lines that give the trusted-IP fix for `ip`.
fn fix_lines(logs: &str, ip: &str) -> usize {
    let fix = format!("add {ip} to the trusted IPs of app hr-bot in WeCom's admin console");
    logs.lines()
        .filter(|l| l.contains("WARN") && l.contains(&fix))
        .count()
}

#[tokio::test]
async fn a_partial_success_is_counted_and_logged_without_ids() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), "").await;
    sc.wait_ready().await;
    let c = client();
    // A member the corp had, deleted: WeCom no longer reaches them.
    let (_, _, gone) = get_json(&c, &sc.url("/cgi-bin/user/delete?userid=zhouba")).await;
    assert_eq!(gone["errcode"], 0, "{gone}");
    let msg = json!({
        "touser": "zhangsan|zhouba",
        "toparty": "2|4242",
        "totag": "7777",
        "msgtype": "text",
        "agentid": 1000002,
        "text": {"content": "hi"}
    });
    let (status, _, answer) = post_json(&c, &sc.url(SEND), &msg).await;
    assert_eq!(status, 200);
    assert_eq!(
        answer["errcode"], 0,
        "a partial success is a success: {answer}"
    );
    assert_eq!(
        answer["invaliduser"], "zhouba",
        "the app gets WeCom's answer whole"
    );
    assert_eq!(answer["invalidparty"], "4242");
    assert_eq!(answer["invalidtag"], "7777");
    let delivered = sim.counters().delivered_per_user;
    assert_eq!(delivered.get("zhangsan"), Some(&1));
    assert_eq!(delivered.get("zhouba"), None, "{delivered:?}");

    // A send that reached everyone counts nothing.
    let all =
        json!({"touser": "lisi", "msgtype": "text", "agentid": 1000002, "text": {"content": "x"}});
    let (_, _, ok) = post_json(&c, &sc.url(SEND), &all).await;
    assert_eq!(ok["invaliduser"], "");

    let m = sc.metrics().await;
    let undelivered = |kind| {
        m.value(
            "wecom_message_undelivered_total",
            &[("api", "message/send"), ("app", "hr-bot"), ("kind", kind)],
        )
    };
    assert_eq!(undelivered("user"), Some(1.0), "{}", m.text());
    assert_eq!(undelivered("party"), Some(1.0));
    assert_eq!(undelivered("tag"), Some(1.0));
    assert_eq!(
        undelivered("unlicensed_user"),
        None,
        "no unlicensed member was named"
    );

    let logs = sc.logs();
    let lines = access_lines(&logs, SEND);
    assert_eq!(lines.len(), 2, "one line per call:\n{logs}");
    let partial = &lines[0];
    for field in [
        "undelivered_users=1",
        "undelivered_parties=1",
        "undelivered_tags=1",
    ] {
        assert!(partial.contains(field), "{field} missing from: {partial}");
    }
    assert!(!partial.contains("unlicensed_users"), "{partial}");
    assert!(!lines[1].contains("undelivered"), "{}", lines[1]);
    for id in ["zhouba", "4242", "7777"] {
        assert!(!partial.contains(id), "id {id} logged: {partial}");
    }
    assert!(!logs.contains("zhouba|"), "no id list anywhere:\n{logs}");
}

#[tokio::test]
async fn a_60020_on_a_call_is_exported_logged_once_and_shown() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), "").await;
    sc.wait_ready().await;
    let c = client();
    let first = "203.0.113.7";
    sim.inject(fault(
        "/cgi-bin/user/get",
        FaultKind::UntrustedIp(first.into()),
        Some(3),
    ));
    for _ in 0..3 {
        let (status, _, answer) = get_json(&c, &sc.url("/cgi-bin/user/get?userid=zhangsan")).await;
        assert_eq!(status, 200);
        assert_eq!(
            answer["errcode"], 60020,
            "WeCom's answer is passed on: {answer}"
        );
    }
    let m = sc.metrics().await;
    assert_eq!(
        m.value("wecom_egress_ip_info", &[("ip", first)]),
        Some(1.0),
        "{}",
        m.text()
    );
    let logs = sc.logs();
    assert_eq!(fix_lines(&logs, first), 1, "once per address:\n{logs}");
    let status: serde_json::Value = serde_json::from_str(&sc.status().await).unwrap();
    assert_eq!(status["egress_ip"]["ip"], first, "{status}");
    assert_eq!(status["egress_ip"]["app"], "hr-bot");
    assert_eq!(
        status["egress_ip"]["fix"],
        format!("add {first} to the trusted IPs of app hr-bot in WeCom's admin console")
    );

    // The sidecar moved (a new NAT address): the metric follows, one series only.
    let second = "203.0.113.99";
    sim.inject(fault(
        "/cgi-bin/user/get",
        FaultKind::UntrustedIp(second.into()),
        Some(1),
    ));
    let (_, _, answer) = get_json(&c, &sc.url("/cgi-bin/user/get?userid=zhangsan")).await;
    assert_eq!(answer["errcode"], 60020);
    let m = sc.metrics().await;
    assert_eq!(
        m.value("wecom_egress_ip_info", &[("ip", second)]),
        Some(1.0)
    );
    assert_eq!(
        m.samples("wecom_egress_ip_info").len(),
        1,
        "the latest address only:\n{}",
        m.text()
    );
    assert_eq!(fix_lines(&sc.logs(), second), 1);
    let status: serde_json::Value = serde_json::from_str(&sc.status().await).unwrap();
    assert_eq!(status["egress_ip"]["ip"], second);
}

#[tokio::test]
async fn a_60020_on_gettoken_is_exported_logged_once_and_shown() {
    let sim = simulator().await;
    let ip = "198.51.100.23";
    sim.inject(fault(
        "/cgi-bin/gettoken",
        FaultKind::UntrustedIp(ip.into()),
        None,
    ));
    let sc = Sidecar::start(&sim.url(), "").await;
    sc.wait_ready().await;
    let c = client();
    for _ in 0..3 {
        let (status, headers, answer) =
            get_json(&c, &sc.url("/cgi-bin/user/get?userid=zhangsan")).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["errcode"], 60020, "{answer}");
        assert_eq!(
            headers
                .get("x-sidecar-reason")
                .and_then(|v| v.to_str().ok()),
            Some("no-token")
        );
        let errmsg = answer["errmsg"].as_str().unwrap();
        assert!(errmsg.contains(&format!("from ip: {ip}")), "{errmsg}");
    }
    let shown = eventually(Duration::from_secs(5), async || {
        sc.metrics()
            .await
            .value("wecom_egress_ip_info", &[("ip", ip)])
            == Some(1.0)
    })
    .await;
    assert!(shown, "{}", sc.metrics().await.text());
    assert_eq!(fix_lines(&sc.logs(), ip), 1, "{}", sc.logs());
    let status: serde_json::Value = serde_json::from_str(&sc.status().await).unwrap();
    assert_eq!(status["egress_ip"]["ip"], ip, "{status}");
    sim.clear_faults();
}

/// The shipped rules and dashboard watch what this module's facts export (ops_files checks
/// that every name they use is exported and every label real).
#[test]
fn rules_and_dashboard_watch_the_facts() {
    let rules = include_str!("../../conf/prometheus/rules.yaml");
    let dashboard = include_str!("../../conf/grafana/dashboard.json");
    for (alert, metric) in [
        (
            "WeComMessagesUndelivered",
            "wecom_message_undelivered_total",
        ),
        ("WeComEgressIpNotTrusted", "wecom_egress_ip_info"),
        (
            "WeComApiLatencyAnomaly",
            "job_api:wecom_api_request_duration_seconds:p99_5m_stddev_1h",
        ),
    ] {
        assert!(rules.contains(&format!("- alert: {alert}\n")), "{alert}");
        let expr = rules
            .split(&format!("- alert: {alert}\n"))
            .nth(1)
            .and_then(|r| r.split("\n      - ").next())
            .unwrap_or_default();
        assert!(expr.contains(metric), "{alert} does not read {metric}");
        assert!(dashboard.contains(metric), "no panel reads {metric}");
    }
}

/// `tag/addtagusers` answers `invalidparty` as an array of ids, not message/send's "a|b": the
/// answer is still read as WeCom's (errcode 0, passed on whole) and counts nothing, as
/// it is no message API.
#[tokio::test]
async fn the_same_field_names_on_other_apis_are_not_misread() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), "").await;
    sc.wait_ready().await;
    let c = client();
    let (_, _, tag) = post_json(
        &c,
        &sc.url("/cgi-bin/tag/create"),
        &json!({"tagname": "facts", "tagid": 31}),
    )
    .await;
    assert_eq!(tag["errcode"], 0, "{tag}");
    let (status, _, answer) = post_json(
        &c,
        &sc.url("/cgi-bin/tag/addtagusers"),
        &json!({"tagid": 31, "userlist": ["zhangsan"], "partylist": [2, 4242]}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["errcode"], 0, "{answer}");
    assert_eq!(answer["invalidparty"], json!([4242]));
    let m = sc.metrics().await;
    assert_eq!(
        m.sum("wecom_message_undelivered_total", &[]),
        0.0,
        "{}",
        m.text()
    );
    assert_eq!(
        m.value(
            "wecom_upstream_attempts_total",
            &[
                ("api", "tag/addtagusers"),
                ("upstream", "primary"),
                ("result", "ok")
            ]
        ),
        Some(1.0),
        "one attempt, read as a good answer"
    );
}
