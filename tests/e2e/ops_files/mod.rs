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
//!
//! `promtool check rules` and `promtool test rules` (in .ci/run) check the rules' PromQL itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::sim::FaultKind;
use crate::harness::*;
use serde::Deserialize;
use serde_yaml::Value;

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
// Kubernetes example

/// Every document of every YAML file under conf/k8s/.
fn k8s_docs() -> Vec<Value> {
    let dir = conf_dir().join("k8s");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("readable");
        for de in serde_yaml::Deserializer::from_str(&text) {
            let v = Value::deserialize(de)
                .unwrap_or_else(|e| panic!("{} is not YAML: {e}", f.display()));
            if !v.is_null() {
                docs.push(v);
            }
        }
    }
    docs
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn named<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    of_kind(docs, kind)
        .into_iter()
        .find(|d| d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} named {name} in conf/k8s/"))
}

fn str_of(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v:?}"))
}

fn seq(v: &Value) -> &[Value] {
    v.as_sequence().map_or(&[], |s| s.as_slice())
}

/// The example's pieces: the pod spec, the sidecar container, the config text, the path the
/// sidecar reads it from, and the Secret mounts (mount path, Secret document).
struct Example<'a> {
    pod: &'a Value,
    sidecar: &'a Value,
    config: String,
    config_path: PathBuf,
    secret_mounts: Vec<(String, &'a Value)>,
}

fn example(docs: &[Value]) -> Example<'_> {
    let deployments = of_kind(docs, "Deployment");
    assert_eq!(deployments.len(), 1, "one Deployment in conf/k8s/");
    let pod = &deployments[0]["spec"]["template"]["spec"];
    let sidecars: Vec<&Value> = seq(&pod["initContainers"])
        .iter()
        .chain(seq(&pod["containers"]))
        .filter(|c| str_of(&c["image"]).starts_with("wecom-sidecar"))
        .collect();
    assert_eq!(sidecars.len(), 1, "one wecom-sidecar container");
    let sidecar = sidecars[0];

    let args: Vec<&str> = seq(&sidecar["args"]).iter().map(str_of).collect();
    let at = args
        .iter()
        .position(|a| *a == "--config")
        .expect("the sidecar is given --config");
    let config_path = PathBuf::from(args[at + 1]);
    let dir = config_path.parent().expect("absolute path");
    let file = config_path
        .file_name()
        .expect("file name")
        .to_string_lossy();

    let volume = |mount_path: &Path| -> &Value {
        let mount = seq(&sidecar["volumeMounts"])
            .iter()
            .find(|m| Path::new(str_of(&m["mountPath"])) == mount_path)
            .unwrap_or_else(|| panic!("nothing mounted at {}", mount_path.display()));
        seq(&pod["volumes"])
            .iter()
            .find(|v| v["name"] == mount["name"])
            .expect("mounted volume is declared")
    };
    let config_volume = volume(dir);
    let cm_name = str_of(&config_volume["configMap"]["name"]);
    // With `items`, the file is the item whose path is the file name; else the key of that name.
    let key = seq(&config_volume["configMap"]["items"])
        .iter()
        .find(|i| i["path"].as_str() == Some(&*file))
        .map_or(file.to_string(), |i| str_of(&i["key"]).to_string());
    let config = str_of(&named(docs, "ConfigMap", cm_name)["data"][key.as_str()]).to_string();

    let secret_mounts = seq(&sidecar["volumeMounts"])
        .iter()
        .filter_map(|m| {
            let v = seq(&pod["volumes"])
                .iter()
                .find(|v| v["name"] == m["name"])?;
            let name = v["secret"]["secretName"].as_str()?;
            Some((
                str_of(&m["mountPath"]).trim_end_matches('/').to_string(),
                named(docs, "Secret", name),
            ))
        })
        .collect();
    Example {
        pod,
        sidecar,
        config,
        config_path,
        secret_mounts,
    }
}

/// The file names a Secret puts in its mount: its keys.
fn secret_keys(secret: &Value) -> BTreeSet<String> {
    ["stringData", "data"]
        .iter()
        .filter_map(|k| secret[*k].as_mapping())
        .flat_map(|m| m.keys().map(|k| str_of(k).to_string()))
        .collect()
}

#[test]
fn k8s_sidecar_config_passes_check_with_the_mounted_secrets() {
    let docs = k8s_docs();
    let ex = example(&docs);
    let config: Value = serde_yaml::from_str(&ex.config).expect("the ConfigMap's config is YAML");

    let tmp = tempfile::tempdir().expect("temp dir");
    let mut text = ex.config.clone();
    for (i, (mount, secret)) in ex.secret_mounts.iter().enumerate() {
        // Stand-ins for the Secret's files, where the kubelet would mount them.
        let dir = tmp.path().join(format!("secret-{i}"));
        std::fs::create_dir(&dir).expect("mkdir");
        for key in secret_keys(secret) {
            std::fs::write(dir.join(&key), format!("stand-in-{key}\n")).expect("write");
        }
        text = text.replace(&format!("{mount}/"), &format!("{}/", dir.display()));
    }
    // Every secret file the config names is a key of a Secret mounted at its directory.
    let mut envs = Vec::new();
    for (i, entry) in seq(&config["apps"])
        .iter()
        .chain(seq(&config["clients"]))
        .enumerate()
    {
        for key in ["secret_file", "key_file"] {
            if let Some(path) = entry[key].as_str() {
                let ok = ex.secret_mounts.iter().any(|(mount, secret)| {
                    path.strip_prefix(&format!("{mount}/"))
                        .is_some_and(|k| secret_keys(secret).contains(k))
                });
                assert!(
                    ok,
                    "entry {i}: {key} {path} is not a key of a mounted Secret"
                );
            }
        }
        for key in ["secret_env", "key_env"] {
            if let Some(var) = entry[key].as_str() {
                let declared = seq(&ex.sidecar["env"]).iter().any(|e| e["name"] == var);
                assert!(
                    declared,
                    "entry {i}: {key} {var} is not set on the sidecar container"
                );
                envs.push(var.to_string());
            }
        }
    }

    let path = tmp
        .path()
        .join(ex.config_path.file_name().expect("file name"));
    std::fs::write(&path, &text).expect("write config");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wecom-sidecar"));
    cmd.arg("--config").arg(&path).arg("--check");
    for var in &envs {
        cmd.env(var, "stand-in-secret");
    }
    let out = cmd.output().expect("run wecom-sidecar --check");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "the ConfigMap's config failed --check:\n{said}\n--- config:\n{text}"
    );
    assert!(said.contains("ok"), "{said}");

    // Placeholders only: a real secret must never be committed.
    for secret in of_kind(&docs, "Secret") {
        assert!(
            secret["data"].is_null(),
            "Secrets here use stringData with placeholders"
        );
        for (k, v) in secret["stringData"].as_mapping().expect("stringData") {
            assert!(
                str_of(v).starts_with("REPLACE-ME"),
                "Secret key {k:?} does not hold a REPLACE-ME placeholder"
            );
        }
    }
}

/// A probe's or annotation's port as a number (named ports resolved on the container).
fn port_number(container: &Value, port: &Value) -> u64 {
    if let Some(n) = port.as_u64() {
        return n;
    }
    let name = str_of(port);
    if let Ok(n) = name.parse() {
        return n;
    }
    seq(&container["ports"])
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("no port named {name}"))
}

#[test]
fn k8s_manifests_agree_with_the_config_and_the_drain() {
    let docs = k8s_docs();
    let ex = example(&docs);
    let config: Value = serde_yaml::from_str(&ex.config).expect("YAML");
    let addr = |key: &str, default: &str| -> std::net::SocketAddr {
        config[key]
            .as_str()
            .unwrap_or(default)
            .parse()
            .unwrap_or_else(|e| panic!("{key}: {e}"))
    };
    let listen = addr("listen", "127.0.0.1:8080");
    let admin = addr("admin_listen", "127.0.0.1:9901");
    assert!(
        listen.ip().is_loopback(),
        "listen must stay on the pod's loopback, not {listen}"
    );

    // Probes hit the admin listener: /healthz for liveness, /readyz for readiness.
    let probes = [
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
        ("startupProbe", "/readyz"),
    ];
    for (probe, path) in probes {
        let p = &ex.sidecar[probe]["httpGet"];
        if probe == "startupProbe" && p.is_null() {
            continue;
        }
        assert_eq!(str_of(&p["path"]), path, "{probe}");
        assert_eq!(
            port_number(ex.sidecar, &p["port"]),
            u64::from(admin.port()),
            "{probe} port"
        );
    }
    let deployment = of_kind(&docs, "Deployment")[0];
    let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    if let Some(port) = annotations["prometheus.io/port"].as_str() {
        assert_eq!(port, admin.port().to_string(), "prometheus.io/port");
    }

    // The grace period outlasts the sidecar's longest drain: DRAIN_TIMEOUT, then the runtimes'
    // graceful_shutdown_timeout_seconds (src/server.rs).
    let drain = secs_after(SERVER_RS, "DRAIN_TIMEOUT: Duration = Duration::from_secs(")
        + secs_after(SERVER_RS, "graceful_shutdown_timeout_seconds: Some(");
    let grace = ex.pod["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("terminationGracePeriodSeconds is set");
    assert!(
        grace > drain,
        "terminationGracePeriodSeconds {grace} must exceed the sidecar's drain of at most {drain} s"
    );

    // Hardening: non-root, read-only root filesystem with a writable /tmp (uploads are spooled
    // there), no privilege escalation, resource requests and limits.
    let sc = &ex.sidecar["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert!(
        sc["runAsNonRoot"] == true || ex.pod["securityContext"]["runAsNonRoot"] == true,
        "runAsNonRoot"
    );
    let tmp_mount = seq(&ex.sidecar["volumeMounts"])
        .iter()
        .find(|m| m["mountPath"] == "/tmp")
        .expect("a writable /tmp for spooled uploads");
    let tmp_volume = seq(&ex.pod["volumes"])
        .iter()
        .find(|v| v["name"] == tmp_mount["name"])
        .expect("declared");
    assert!(!tmp_volume["emptyDir"].is_null(), "/tmp is an emptyDir");
    for kind in ["requests", "limits"] {
        for res in ["cpu", "memory"] {
            assert!(
                !ex.sidecar["resources"][kind][res].is_null(),
                "resources.{kind}.{res}"
            );
        }
    }

    // Only the sidecar sees the secrets.
    let secret_volumes: BTreeSet<&str> = seq(&ex.pod["volumes"])
        .iter()
        .filter(|v| !v["secret"].is_null())
        .map(|v| str_of(&v["name"]))
        .collect();
    for c in seq(&ex.pod["containers"])
        .iter()
        .chain(seq(&ex.pod["initContainers"]))
    {
        if std::ptr::eq(c, ex.sidecar) {
            continue;
        }
        for m in seq(&c["volumeMounts"]) {
            assert!(
                !secret_volumes.contains(str_of(&m["name"])),
                "container {:?} mounts the WeCom secrets",
                c["name"]
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
