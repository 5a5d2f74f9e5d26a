//! The callback alerts and dashboard panels: they read the callback metrics the issue asks
//! for, and every `result` they match is one the callback code writes.

use super::*;

/// The callback code's source text (every file of src/callback/), for the label values it
/// writes.
fn callback_source() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/callback");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("readable source"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn callback_alerts_and_panels_read_the_callback_metrics() {
    let rules = rule_exprs();
    let dashboard: serde_json::Value =
        serde_json::from_str(DASHBOARD).expect("dashboard.json is JSON");
    let mut panels = Vec::new();
    dashboard_exprs(&dashboard, "dashboard", &mut panels);
    let used = |exprs: &[(String, String)]| -> BTreeSet<String> {
        exprs
            .iter()
            .flat_map(|(_, e)| metric_refs(e))
            .map(|(n, _)| n.to_string())
            .collect()
    };
    let (in_rules, in_dashboard) = (used(&rules), used(&panels));
    // Queue oldest > 5 min, dead letters > 0, rejected pushes rising (and store failures).
    for name in [
        "wecom_callback_oldest_seconds",
        "wecom_callback_dead_letters",
        "wecom_callbacks_total",
    ] {
        assert!(in_rules.contains(name), "no alert reads {name}");
    }
    for alert in [
        "WeComCallbackQueueStale",
        "WeComCallbackDeadLetters",
        "WeComCallbackRejectionsRising",
        "WeComCallbackStoreFailing",
    ] {
        assert!(
            rules
                .iter()
                .any(|(w, _)| w == &format!("rules.yaml {alert}")),
            "no alert {alert}"
        );
    }
    // Received, rejected and delivered rates, queue depth, delivery latency.
    for name in [
        "wecom_callbacks_total",
        "wecom_callback_deliveries_total",
        "wecom_callback_queue_depth",
        "wecom_callback_oldest_seconds",
        "wecom_callback_dead_letters",
        "wecom_callback_delivery_seconds_bucket",
    ] {
        assert!(
            in_dashboard.contains(name),
            "no dashboard panel reads {name}"
        );
    }
}

#[test]
fn callback_results_matched_are_ones_the_callback_code_writes() {
    let source = callback_source();
    let rules = rule_exprs();
    let dashboard: serde_json::Value =
        serde_json::from_str(DASHBOARD).expect("dashboard.json is JSON");
    let mut exprs = Vec::new();
    dashboard_exprs(&dashboard, "dashboard", &mut exprs);
    exprs.extend(rules);
    let mut checked = BTreeSet::new();
    let mut problems = Vec::new();
    for (where_, expr) in &exprs {
        for (name, after) in metric_refs(expr) {
            if !name.starts_with("wecom_callback") {
                continue;
            }
            let Some(body) = after.strip_prefix('{') else {
                continue;
            };
            let body = &body[..body.find('}').expect("closed selector")];
            for (label, _, value) in matchers(body) {
                if label != "result" {
                    continue;
                }
                for v in value.split('|').filter(|v| !v.is_empty()) {
                    checked.insert(v.to_string());
                    if !source.contains(&format!("\"{v}\"")) {
                        problems.push(format!(
                            "{where_}: {name} result {v:?} is written nowhere in src/callback/"
                        ));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    // The results the alerts and panels tell apart were among those looked at.
    for v in [
        "accepted",
        "duplicate",
        "verified",
        "bad-signature",
        "unknown-path",
        "store-error",
    ] {
        assert!(checked.contains(v), "{v} not matched anywhere: {checked:?}");
    }
}
