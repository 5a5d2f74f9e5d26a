//! The outbox alerts and dashboard panels: they read the outbox metrics (depth growing, dead
//! letters, sends not queued), and every `result` they match is one the outbox code writes.

use super::*;

/// The outbox code's source text (src/outbox/ and the pipeline's outbox step), for the label
/// values it writes.
fn outbox_source() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("src/outbox");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.push(root.join("src/proxy/outbox.rs"));
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("readable source"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Expressions, each named by where it is (`rules.yaml <alert>`, a dashboard panel).
type Exprs = Vec<(String, String)>;

/// The alert rules' expressions, and the dashboard's.
fn all_exprs() -> (Exprs, Exprs) {
    let dashboard: serde_json::Value =
        serde_json::from_str(DASHBOARD).expect("dashboard.json is JSON");
    let mut panels = Vec::new();
    dashboard_exprs(&dashboard, "dashboard", &mut panels);
    (rule_exprs(), panels)
}

#[test]
fn outbox_alerts_and_panels_read_the_outbox_metrics() {
    let (rules, panels) = all_exprs();
    let used = |exprs: &[(String, String)]| -> BTreeSet<String> {
        exprs
            .iter()
            .flat_map(|(_, e)| metric_refs(e))
            .map(|(n, _)| n.to_string())
            .collect()
    };
    let (in_rules, in_dashboard) = (used(&rules), used(&panels));
    for name in [
        "wecom_outbox_depth",
        "wecom_outbox_dead_letters",
        "wecom_outbox_total",
    ] {
        assert!(in_rules.contains(name), "no alert reads {name}");
    }
    for alert in [
        "WeComOutboxGrowing",
        "WeComOutboxDeadLetters",
        "WeComOutboxNotQueuing",
    ] {
        assert!(
            rules
                .iter()
                .any(|(w, _)| w == &format!("rules.yaml {alert}")),
            "no alert {alert}"
        );
    }
    for name in [
        "wecom_outbox_total",
        "wecom_outbox_depth",
        "wecom_outbox_dead_letters",
        "wecom_outbox_oldest_seconds",
        "wecom_outbox_replays_unsafe_total",
    ] {
        assert!(
            in_dashboard.contains(name),
            "no dashboard panel reads {name}"
        );
    }
}

#[test]
fn outbox_results_matched_are_ones_the_outbox_code_writes() {
    let source = outbox_source();
    let (rules, mut exprs) = all_exprs();
    exprs.extend(rules);
    let mut checked = BTreeSet::new();
    let mut problems = Vec::new();
    for (where_, expr) in &exprs {
        for (name, after) in metric_refs(expr) {
            if !name.starts_with("wecom_outbox") {
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
                            "{where_}: {name} result {v:?} is written nowhere in the outbox code"
                        ));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    for v in ["full", "store_error"] {
        assert!(checked.contains(v), "{v} not matched anywhere: {checked:?}");
    }
}
