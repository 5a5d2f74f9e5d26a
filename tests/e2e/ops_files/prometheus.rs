//! The Prometheus rules and the Grafana dashboard name only what the sidecar exports, and
//! the error-rate alert's reading holds on a running sidecar.

use super::*;

// ---------------------------------------------------------------------------------------------
// Prometheus rules and Grafana dashboard

#[test]
fn alerts_and_dashboard_use_only_metrics_and_labels_the_sidecar_exports() {
    let (families, histograms) = exported();

    // Every wecom_ name anywhere in either file (comments, descriptions included) is real.
    let mut unknown = Vec::new();
    for (file, text) in [("rules.yaml", RULES), ("dashboard.json", DASHBOARD)] {
        for (name, _) in metric_refs(text) {
            if family_of(name, &families, &histograms).is_none() {
                unknown.push(format!("{file}: {name}"));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "not exported by src/metrics.rs: {unknown:#?}"
    );

    let rules = rule_exprs();
    let dashboard: serde_json::Value =
        serde_json::from_str(DASHBOARD).expect("dashboard.json is JSON");
    let mut panels = Vec::new();
    dashboard_exprs(&dashboard, "dashboard", &mut panels);
    assert!(rules.len() >= 6, "{rules:?}");
    assert!(panels.len() >= 15, "{panels:?}");

    let mut problems = Vec::new();
    for (where_, expr) in rules.iter().chain(&panels) {
        problems.extend(check_expr(where_, expr));
    }
    assert!(problems.is_empty(), "{problems:#?}");

    // What each file must cover (the list), by the metrics it reads.
    let used = |exprs: &[(String, String)]| -> BTreeSet<String> {
        exprs
            .iter()
            .flat_map(|(_, e)| metric_refs(e))
            .map(|(n, _)| n.to_string())
            .collect()
    };
    let (in_rules, in_dashboard) = (used(&rules), used(&panels));
    for name in [
        "wecom_api_request_duration_seconds_count",
        "wecom_api_request_duration_seconds_bucket",
        "wecom_token_refresh_total",
        "wecom_token_expires_in_seconds",
        "wecom_quota_rejected_total",
        "wecom_upstream_healthy",
        "wecom_config_reloads_total",
    ] {
        assert!(in_rules.contains(name), "no alert reads {name}");
    }
    for name in [
        "wecom_api_request_duration_seconds_count",
        "wecom_api_request_duration_seconds_bucket",
        "wecom_api_errcode_total",
        "wecom_token_expires_in_seconds",
        "wecom_quota_rejected_total",
        "wecom_upstream_healthy",
        "wecom_upstream_attempts_total",
        "wecom_retries_total",
        "wecom_config_reloads_total",
    ] {
        assert!(
            in_dashboard.contains(name),
            "no dashboard panel reads {name}"
        );
    }
}

#[test]
fn dashboard_is_a_grafana_dashboard_on_a_datasource_variable() {
    let d: serde_json::Value = serde_json::from_str(DASHBOARD).expect("dashboard.json is JSON");
    assert!(
        d["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
        "{}",
        d["schemaVersion"]
    );
    assert!(d["uid"].is_string() && d["title"].is_string());
    let vars = d["templating"]["list"].as_array().expect("templating.list");
    let ds = vars
        .iter()
        .find(|v| v["type"] == "datasource")
        .expect("a datasource variable");
    assert_eq!(ds["query"], "prometheus");
    let ds_ref = format!("${{{}}}", ds["name"].as_str().expect("variable name"));
    let panels = d["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    for p in panels {
        let id = p["id"].as_u64().expect("panel id");
        assert!(ids.insert(id), "duplicate panel id {id}");
        let pos = &p["gridPos"];
        let x_w = pos["x"].as_u64().unwrap_or(99) + pos["w"].as_u64().unwrap_or(99);
        assert!(x_w <= 24, "panel {id} is wider than the grid: {pos}");
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], ds_ref.as_str(), "panel {id}");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {id} has no query");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], ds_ref.as_str(), "panel {id}");
            assert!(
                t["expr"].as_str().is_some_and(|e| e.contains("wecom_")),
                "panel {id}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The error-rate alert's assumptions, on a running sidecar

/// WeComApiErrorRateHigh counts a call as failed when its outcome is http_error or
/// network_error, or when it is "local" with an upstream set; "local" with upstream "-" (local
/// gettoken, quota answers) is not a failure. That reading must match what the sidecar writes.
#[tokio::test]
async fn error_rate_alert_reads_outcome_and_upstream_as_the_sidecar_writes_them() {
    let sim = simulator().await;
    let sc = Sidecar::start(
        &sim.url(),
        "defaults:\n  retry: { attempts: 2, backoff_base: 10ms, backoff_max: 20ms }\n",
    )
    .await;
    sc.wait_ready().await;
    let c = client();
    let gettoken = format!("/cgi-bin/gettoken?corpid={CORP_ID}&corpsecret=hr-bot");
    let r = c.get(sc.url(&gettoken)).send().await.expect("gettoken");
    assert_eq!(r.status().as_u16(), 200);
    let r = c
        .get(sc.url("/cgi-bin/user/get?userid=zhangsan"))
        .send()
        .await
        .expect("user/get");
    assert_eq!(r.status().as_u16(), 200);
    sim.inject(fault(
        "/cgi-bin/department/list",
        FaultKind::Status(503),
        None,
    ));
    let r = c
        .get(sc.url("/cgi-bin/department/list"))
        .send()
        .await
        .expect("department/list");
    assert_eq!(r.status().as_u16(), 502);
    sim.clear_faults();

    // A call is recorded after its answer is written: wait until all three are.
    let text = sc.settled_metrics().await;
    let calls = text.samples("wecom_api_request_duration_seconds_count");
    let failed = |l: &BTreeMap<&str, &str>| {
        let outcome = l["outcome"];
        matches!(outcome, "http_error" | "network_error")
            || (outcome == "local" && l["upstream"] != "-")
    };
    let of_api = |api: &str| -> Vec<&BTreeMap<&str, &str>> {
        calls
            .iter()
            .filter(|(l, v)| l["api"] == api && *v > 0.0)
            .map(|(l, _)| l)
            .collect()
    };
    let (gt, ok, bad) = (
        of_api("gettoken"),
        of_api("user/get"),
        of_api("department/list"),
    );
    assert!(
        !gt.is_empty() && !ok.is_empty() && !bad.is_empty(),
        "calls not recorded:\n{text}"
    );
    assert!(
        gt.iter().all(|l| !failed(l)),
        "local gettoken counted as failed: {gt:?}"
    );
    assert!(
        ok.iter().all(|l| !failed(l)),
        "a good call counted as failed: {ok:?}"
    );
    assert!(
        bad.iter().all(|l| failed(l)),
        "a 502 not counted as failed: {bad:?}"
    );
    // The sidecar answered 502 itself, but the outcome names what WeCom did: HTTP 503.
    assert!(
        bad.iter()
            .all(|l| l["outcome"] == "http_error" && l["upstream"] == "primary"),
        "a 503 from WeCom not recorded as http_error: {bad:?}"
    );

    // Every family the sidecar exports is one src/metrics.rs defines (the list the checks above
    // read from source).
    let (families, _) = exported();
    for line in text.text().lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split_whitespace().nth(2).expect("# TYPE name type");
        assert!(
            families.contains_key(name),
            "{name} is exported but not read from src/metrics.rs"
        );
    }
}
