//! The outbox's durability (issue 15), end to end: message sends that outlive a WeCom outage
//! (the simulator down: every call reset or answered 503), a kill -9 of the sidecar, an answer
//! lost after WeCom delivered, and the loss of one sidecar of a fleet on Redis, each delivered
//! exactly once. "Delivered" is what the simulated WeCom delivered, read with its bodies from
//! its log of messages ([`crate::harness::sim::Simulator::delivered_messages`]), so a send that
//! reached WeCom twice shows up twice.
//!
//! Every send has a content of its own (`<app> <n>`), so the duplicate check only folds
//! together the attempts and replays of one send, never two sends. Retries and backoffs are
//! tens of milliseconds; every wait is an `eventually`.

mod fleet;
mod kill_9;
mod lost_answer;
mod outage;
mod simulator;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::sim::Simulator;
use crate::harness::*;

/// The API every test here sends on.
pub const SEND: &str = "/cgi-bin/message/send";

/// The route that queues `message/send` and the store it is kept in. Attempts are few and
/// short so a failed send is queued quickly; the recipient cap is off because every test
/// message goes to one member (WeCom's 30 a minute would refuse most of them).
pub fn outbox_yaml(store: &Path, extra: &str) -> String {
    format!(
        r#"routes:
  - path: {SEND}
    outbox: true
    outbox_max_age: 30m
    recipient_cap: false
    deadline: 3s
    retry: {{ attempts: 2, backoff_base: 20ms, backoff_max: 40ms }}
store:
  path: "{store}"
{extra}"#,
        store = store.display(),
    )
}

/// A sidecar queueing `message/send` into the store file `store`, against `upstream`.
pub async fn outbox_sidecar(upstream: &str, store: &Path, extra: &str) -> Sidecar {
    let routes = outbox_yaml(store, extra);
    Sidecar::start_with(|l, a| config_yaml(l, a, upstream, &routes)).await
}

/// The text message `content` of app `app` (its agent id from the standard test config).
pub fn message(app: &str, content: &str) -> Value {
    let agentid = if app == "ops-bot" { 1000003 } else { 1000002 };
    json!({
        "touser": "zhangsan",
        "msgtype": "text",
        "agentid": agentid,
        "text": {"content": content},
    })
}

/// How the sidecar answered one send.
#[derive(Debug, Clone)]
pub struct Sent {
    pub content: String,
    pub status: u16,
    /// `X-Sidecar-Reason`, when there is one.
    pub reason: Option<String>,
    pub body: Value,
}

impl Sent {
    /// Answered as the outbox says: committed, to be replayed.
    pub fn queued(&self) -> bool {
        self.status == 200
            && self.reason.as_deref() == Some("queued")
            && self.body["errcode"] == 0
            && self.body["errmsg"] == "queued by wecom-sidecar"
            && self.body["outbox_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty())
    }

    /// Answered by WeCom itself: delivered (a `msgid`).
    pub fn delivered(&self) -> bool {
        self.status == 200
            && self.reason.is_none()
            && self.body["errcode"] == 0
            && self.body["msgid"].is_string()
    }

    /// One of the two answers an app may get for a send while WeCom is down or back.
    pub fn accepted(&self) -> bool {
        self.queued() || self.delivered()
    }
}

/// Sends `content` as `app` through the sidecar at `base`; a send the sidecar did not answer
/// (its connection refused or cut) is a test failure.
pub async fn send(c: &reqwest::Client, base: &str, app: &str, content: &str) -> Sent {
    let r = c
        .post(format!("{base}{SEND}"))
        .header("X-WeCom-App", app)
        .json(&message(app, content))
        .send()
        .await
        .unwrap_or_else(|e| panic!("send {content:?} got no answer: {e}"));
    let status = r.status().as_u16();
    let reason = r
        .headers()
        .get("x-sidecar-reason")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let text = r.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Sent {
        content: content.to_string(),
        status,
        reason,
        body,
    }
}

/// The contents WeCom delivered on `message/send` for `app`, in the order it delivered them.
pub fn delivered(sim: &Simulator, app: &str) -> Vec<String> {
    sim.delivered_messages()
        .into_iter()
        .filter(|m| m.app == app && m.path == SEND)
        .filter_map(|m| m.body["text"]["content"].as_str().map(String::from))
        .collect()
}

/// Waits (at most `within`) until WeCom delivered at least `n` messages on `message/send`.
pub async fn delivered_at_least(sim: &Simulator, n: usize, within: Duration) -> bool {
    eventually(within, async || {
        sim.delivered_messages()
            .iter()
            .filter(|m| m.path == SEND)
            .count()
            >= n
    })
    .await
}

/// `wecom_outbox_depth{app}` of one sidecar (0 when it exports none).
pub async fn depth(sc: &Sidecar, app: &str) -> f64 {
    sc.metrics()
        .await
        .sum("wecom_outbox_depth", &[("app", app)])
}

/// `wecom_outbox_total{app, result}` of one sidecar, over its APIs.
pub async fn outbox_total(sc: &Sidecar, app: &str, result: &str) -> f64 {
    sc.metrics()
        .await
        .sum("wecom_outbox_total", &[("app", app), ("result", result)])
}

/// Asserts that `got` (delivered, in delivery order) holds each of `sent` exactly once.
pub fn assert_each_once(app: &str, got: &[String], sent: &[String]) {
    let unique: BTreeSet<&String> = got.iter().collect();
    let twice: Vec<&String> = got
        .iter()
        .filter(|c| got.iter().filter(|g| g == c).count() > 1)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(twice.is_empty(), "{app}: delivered twice: {twice:?}");
    let want: BTreeSet<&String> = sent.iter().collect();
    let missing: Vec<&&String> = want.difference(&unique).collect();
    let extra: Vec<&&String> = unique.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{app}: {} sent, {} delivered; never delivered: {missing:?}; delivered, never sent: {extra:?}",
        sent.len(),
        got.len()
    );
}

/// Asserts that the sends of `in_order` appear in `got` in that relative order.
pub fn assert_in_order(app: &str, got: &[String], in_order: &[String]) {
    let wanted: BTreeSet<&String> = in_order.iter().collect();
    let seen: Vec<&String> = got.iter().filter(|c| wanted.contains(c)).collect();
    let want: Vec<&String> = in_order.iter().collect();
    if seen != want {
        let at = seen.iter().zip(&want).position(|(a, b)| a != b);
        panic!(
            "{app}: not delivered in the order sent; first difference at {at:?}: delivered {:?}, sent {:?}",
            at.map(|i| &seen[i..(i + 5).min(seen.len())]),
            at.map(|i| &want[i..(i + 5).min(want.len())]),
        );
    }
}
