//! JS-SDK tickets in custody (issue 16, SPEC "Tickets"): `get_jsapi_ticket` and
//! `ticket/get?type=agent_config` answered from the sidecar's cache, one fetch per ticket
//! whatever the callers (wechatpy, `sdk`) or the fleet (`fleet`) do, WeCom's 45009 and the
//! signature endpoint's `clients:` honoured and no ticket in a log, metric or admin answer
//! (`custody`), a rejected token replaced and a due ticket refreshed ahead (`refresh`).

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::harness::sim::Simulator;
use crate::harness::*;

mod custody;
mod fleet;
mod refresh;
mod sdk;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The simulator's counter of the corp's jsapi_ticket fetches.
const JSAPI: &str = "jsapi:wwtest0000000001";
/// Its counter of hr-bot's agent_config ticket fetches.
const AGENT_HR: &str = "agent_config:hr-bot";

/// Ticket fetches the simulator answered with a ticket, by counter key.
fn fetched(sim: &Simulator, key: &str) -> u64 {
    sim.counters().tickets.get(key).copied().unwrap_or(0)
}

/// `GET path` on the sidecar as `app`: (X-Sidecar-Reason, body).
async fn ticket_call(sc: &Sidecar, app: &str, path: &str) -> (Option<String>, Value) {
    let r = client()
        .get(sc.url(path))
        .header("X-WeCom-App", app)
        .send()
        .await
        .unwrap();
    let reason = r
        .headers()
        .get("x-sidecar-reason")
        .map(|v| v.to_str().unwrap().to_string());
    (reason, r.json().await.unwrap())
}

/// Runs a helper script (`program` `args`), off the test's runtime; its output.
async fn run(program: &'static str, args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        Command::new(program)
            .args(&args)
            .current_dir(REPO)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{program} cannot be run ({e}): README Prerequisites"))
    })
    .await
    .unwrap()
}

fn script(path: &str) -> String {
    Path::new(REPO).join(path).display().to_string()
}
