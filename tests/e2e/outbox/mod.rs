//! The outbox (README "Outbox"): message sends WeCom cannot be reached for are committed and
//! answered `queued`, then replayed in order per app and delivered once; WeCom's refusals pass
//! through unqueued; `on_limit: queue`; dead letters and the admin; the store's bounds; and
//! `--check` of the outbox keys. (The long durability runs, kill -9 and the fleet, are O2's.)

mod bounds;
mod check;
mod dead;
mod fleet;
mod queued;
mod refusals;

use std::time::Duration;

use crate::harness::*;
use serde_json::{json, Value};

/// An outbox route on `message/send` (plus `extra` keys on it) and a store in the test's own
/// folder; attempts short, so a call that fails does so in well under a second.
pub fn outbox_config(extra_route: &str, extra: &str) -> String {
    format!(
        "defaults:\n  deadline: 2s\n  retry: {{ attempts: 2, backoff_base: 10ms, backoff_max: 20ms }}\nroutes:\n  - path: /cgi-bin/message/send\n    outbox: true\n{extra_route}store:\n  path: sidecar.db\n{extra}"
    )
}

/// A text message to `user` saying `words`.
pub fn text(user: &str, words: &str) -> Value {
    json!({"touser": user, "msgtype": "text", "agentid": 1000002, "text": {"content": words}})
}

/// Sends `body` to `message/send` (as `app`): status, `X-Sidecar-Reason`, answer.
pub async fn send(sc: &Sidecar, app: &str, body: &Value) -> (u16, Option<String>, Value) {
    let r = client()
        .post(sc.url("/cgi-bin/message/send"))
        .header("X-WeCom-App", app)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let reason = r
        .headers()
        .get("x-sidecar-reason")
        .map(|v| v.to_str().unwrap().to_string());
    let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    (status, reason, v)
}

/// The admin's JSON at `path` (GET).
pub async fn admin_get(sc: &Sidecar, path: &str) -> (u16, Value) {
    let r = client()
        .get(format!("{}{path}", sc.admin))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// The messages the simulator delivered so far, in order.
pub fn delivered(sim: &sim::Simulator) -> Vec<String> {
    sim.counters().messages
}

/// Waits until the simulator delivered `n` messages; the list.
pub async fn wait_delivered(sim: &sim::Simulator, n: usize, within: Duration) -> Vec<String> {
    eventually(within, async || delivered(sim).len() >= n).await;
    delivered(sim)
}
