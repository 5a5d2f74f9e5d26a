//! The operations files stay true to the binary they operate:
//!
//! - `conf/k8s/`: the sidecar config inside the ConfigMap passes `--check` (with its Secret's
//!   files stood in for), and the manifests agree with it and with `src/server.rs`: the secret
//!   files are keys of the mounted Secret, probes and scrape annotations hit `admin_listen`, the
//!   app listener is loopback only, the grace period outlasts the drain, the root filesystem is
//!   read-only with a writable /tmp, and the Secret holds placeholders only.
//! - `conf/prometheus/rules.yaml` and `conf/grafana/dashboard.json`: every `wecom_…` metric they
//!   name is one `src/metrics.rs` defines (histograms with their `_bucket`, `_sum`, `_count`),
//!   every label they match or group by is one that metric has (or a scrape label), and every
//!   `outcome` value is one the sidecar writes. The dashboard is valid JSON.
//! - The error-rate alert's reading of `outcome` and `upstream` holds on a running sidecar.
//! - The callback alerts (queue oldest, dead letters, refused pushes, store failures) and
//!   panels read the callback metrics, and match only `result` values src/callback/ writes.
//!
//! `promtool check rules` and `promtool test rules` (in .ci/run) check the rules' PromQL itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::sim::FaultKind;
use crate::harness::*;
use serde::Deserialize;
use serde_yaml::Value;

mod callbacks;
mod k8s;
mod outbox;
mod prometheus;

const METRICS_RS: &str = include_str!("../../../src/metrics.rs");
const SERVER_RS: &str = include_str!("../../../src/server.rs");
const RULES: &str = include_str!("../../../conf/prometheus/rules.yaml");
const DASHBOARD: &str = include_str!("../../../conf/grafana/dashboard.json");

/// Labels Prometheus adds to every scraped series.
const SCRAPE_LABELS: &[&str] = &["job", "instance"];

fn conf_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conf")
}

// ---------------------------------------------------------------------------------------------
// What src/ says

/// The code of src/metrics.rs: no unit tests, no comment lines (whose quotes would mislead the
/// literal scanning below).
fn metrics_source() -> String {
    METRICS_RS
        .split("#[cfg(test)]")
        .next()
        .expect("split yields at least one part")
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// String literals in `text`, in order.
fn literals(text: &str) -> Vec<&str> {
    text.split('"').skip(1).step_by(2).collect()
}

/// Every metric family src/metrics.rs defines, with its label names, and which are histograms.
fn exported() -> (BTreeMap<String, BTreeSet<String>>, BTreeSet<String>) {
    let src = metrics_source();
    let src = src.as_str();
    let mut families: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    // Each definition is its name literal, then (for vectors) its `&["label", ...]` array.
    let mut current: Option<String> = None;
    let mut rest = src;
    while let Some(i) = rest.find(['"', '&']) {
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix('"') {
            let end = after.find('"').expect("closed literal");
            let lit = &after[..end];
            if lit.starts_with("wecom_") {
                families.entry(lit.to_string()).or_default();
                current = Some(lit.to_string());
            }
            rest = &after[end + 1..];
        } else if let Some(after) = tail.strip_prefix("&[") {
            let end = after.find(']').expect("closed array");
            if let Some(name) = current.take() {
                let labels = literals(&after[..end]).into_iter().map(String::from);
                families.get_mut(&name).expect("known").extend(labels);
            }
            rest = &after[end + 1..];
        } else {
            rest = &tail[1..];
        }
    }
    let histograms: BTreeSet<String> = src
        .split("HistogramOpts::new(")
        .skip(1)
        .filter_map(|s| literals(s).first().map(|l| l.to_string()))
        .collect();
    assert!(
        families.len() >= 9 && histograms.contains("wecom_api_request_duration_seconds"),
        "could not read the metric definitions out of src/metrics.rs: {families:?} {histograms:?}"
    );
    (families, histograms)
}

/// The `outcome` label values: the strings `Outcome::as_str` returns.
fn outcomes() -> BTreeSet<String> {
    let src = metrics_source();
    let block = src
        .split("fn as_str")
        .nth(1)
        .expect("Outcome::as_str in src/metrics.rs");
    let block = &block[..block.find("\n    }\n").expect("end of as_str")];
    let values: BTreeSet<String> = block
        .split("=> \"")
        .skip(1)
        .map(|s| s[..s.find('"').expect("closed")].to_string())
        .collect();
    assert!(
        values.contains("ok") && values.contains("local"),
        "{values:?}"
    );
    values
}

/// The metric a referenced series name belongs to, and its labels (histogram suffixes and
/// `le` accounted for); None when the sidecar exports no such series.
fn family_of(
    name: &str,
    families: &BTreeMap<String, BTreeSet<String>>,
    histograms: &BTreeSet<String>,
) -> Option<BTreeSet<String>> {
    if let Some(labels) = families.get(name) {
        return Some(labels.clone());
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if histograms.contains(base) {
                let mut labels = families[base].clone();
                if suffix == "_bucket" {
                    labels.insert("le".into());
                }
                return Some(labels);
            }
        }
    }
    None
}

/// A whole number of seconds written as `<prefix>...N...` on the first line containing `prefix`.
fn secs_after(text: &str, prefix: &str) -> u64 {
    let line = text
        .lines()
        .find(|l| l.contains(prefix))
        .unwrap_or_else(|| panic!("{prefix} not found in src/server.rs"));
    let after = &line[line.find(prefix).expect("found") + prefix.len()..];
    let digits: String = after
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number after {prefix}: {line}"))
}

// ---------------------------------------------------------------------------------------------
// PromQL, read just enough

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Every `wecom_…` series name in `text`, with what follows it.
fn metric_refs(text: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("wecom_").map(|i| i + from) {
        let before_ok = text[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !is_name_char(c));
        let len = text[i..]
            .find(|c: char| !is_name_char(c))
            .unwrap_or(text.len() - i);
        if before_ok {
            out.push((&text[i..i + len], &text[i + len..]));
        }
        from = i + len;
    }
    out
}

/// Splits on commas outside double quotes.
fn split_top(s: &str) -> Vec<&str> {
    let (mut parts, mut start, mut quoted) = (Vec::new(), 0, false);
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

/// The matchers of a selector body `{a="x", b=~"y"}`: (label, operator, value).
fn matchers(body: &str) -> Vec<(String, String, String)> {
    split_top(body)
        .into_iter()
        .map(|m| {
            let op_at = m.find(['=', '!', '~']).unwrap_or(m.len());
            let label = m[..op_at].trim().to_string();
            let rest = &m[op_at..];
            let op: String = rest.chars().take_while(|c| "=!~".contains(*c)).collect();
            let value = rest[op.len()..].trim().trim_matches('"').to_string();
            (label, op, value)
        })
        .collect()
}

/// Label lists of `by (...)`, `without (...)`, `on (...)`, `ignoring (...)`, `group_left (...)`
/// and `group_right (...)` clauses.
fn grouping_labels(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    for kw in [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ] {
        let mut from = 0;
        while let Some(i) = expr[from..].find(kw).map(|i| i + from) {
            from = i + kw.len();
            let before_ok = expr[..i]
                .chars()
                .next_back()
                .is_none_or(|c| !is_name_char(c));
            let rest = expr[from..].trim_start();
            if !before_ok || !rest.starts_with('(') {
                continue;
            }
            let end = rest.find(')').expect("closed clause");
            out.extend(split_top(&rest[1..end]).into_iter().map(String::from));
        }
    }
    out
}

/// Problems with one PromQL expression: unknown series, labels the series does not have,
/// grouping labels no series has, `outcome` values the sidecar never writes.
fn check_expr(where_: &str, expr: &str) -> Vec<String> {
    let (families, histograms) = exported();
    let outcomes = outcomes();
    let all_labels: BTreeSet<String> = families
        .values()
        .flatten()
        .cloned()
        .chain(SCRAPE_LABELS.iter().map(|s| s.to_string()))
        .chain(["le".to_string()])
        .collect();
    let mut problems = Vec::new();
    for (name, after) in metric_refs(expr) {
        let Some(mut labels) = family_of(name, &families, &histograms) else {
            problems.push(format!(
                "{where_}: {name} is not a metric the sidecar exports"
            ));
            continue;
        };
        labels.extend(SCRAPE_LABELS.iter().map(|s| s.to_string()));
        let Some(body) = after.strip_prefix('{') else {
            continue;
        };
        let body = &body[..body.find('}').expect("closed selector")];
        for (label, op, value) in matchers(body) {
            if !labels.contains(&label) {
                problems.push(format!(
                    "{where_}: {name} has no label {label:?} (it has {labels:?})"
                ));
            }
            if label == "outcome" && !value.starts_with('$') {
                for v in value.split('|').filter(|v| !v.is_empty()) {
                    if !outcomes.contains(v) {
                        problems.push(format!(
                            "{where_}: outcome {op}{v:?}: the sidecar writes only {outcomes:?}"
                        ));
                    }
                }
            }
        }
    }
    for label in grouping_labels(expr) {
        if !all_labels.contains(&label) {
            problems.push(format!("{where_}: no metric has the label {label:?}"));
        }
    }
    // Grafana's `label_values(selector, label)`: the label must be one the series has.
    if let Some(args) = expr.trim().strip_prefix("label_values(") {
        let args = args.trim_end().strip_suffix(')').unwrap_or(args);
        if let Some((selector, label)) = args.rsplit_once(',') {
            let label = label.trim();
            for (name, _) in metric_refs(selector) {
                let known = family_of(name, &families, &histograms)
                    .is_some_and(|l| l.contains(label) || SCRAPE_LABELS.contains(&label));
                if !known {
                    problems.push(format!("{where_}: {name} has no label {label:?}"));
                }
            }
        }
    }
    problems
}

/// Every expression of the alerting rules, named by alert.
fn rule_exprs() -> Vec<(String, String)> {
    #[derive(Deserialize)]
    struct File {
        groups: Vec<Group>,
    }
    #[derive(Deserialize)]
    struct Group {
        rules: Vec<Rule>,
    }
    #[derive(Deserialize)]
    struct Rule {
        alert: Option<String>,
        record: Option<String>,
        expr: String,
    }
    let file: File = serde_yaml::from_str(RULES).expect("rules.yaml is YAML");
    file.groups
        .into_iter()
        .flat_map(|g| g.rules)
        .map(|r| {
            let name = r.alert.or(r.record).unwrap_or_default();
            (format!("rules.yaml {name}"), r.expr)
        })
        .collect()
}

/// Every string under an `expr` key (panel targets, annotations) and every `label_values(...)`
/// variable query of the dashboard.
fn dashboard_exprs(v: &serde_json::Value, path: &str, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(map) => {
            let here = match (map.get("title"), map.get("name")) {
                (Some(serde_json::Value::String(t)), _) => format!("{path} / {t}"),
                (_, Some(serde_json::Value::String(n))) => format!("{path} / {n}"),
                _ => path.to_string(),
            };
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(e)) => out.push((here.clone(), e.clone())),
                    ("query" | "definition", serde_json::Value::String(q))
                        if q.starts_with("label_values(") =>
                    {
                        out.push((here.clone(), q.clone()))
                    }
                    _ => dashboard_exprs(v, &here, out),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                dashboard_exprs(item, path, out);
            }
        }
        _ => {}
    }
}
