//! Bad input from the app: malformed HTTP, oversized headers and bodies, invalid JSON, CRLF and
//! percent-encoding tricks, odd paths, unknown apps and APIs, metric label cardinality.
//!
//! Every case runs against the real sidecar binary and the WeCom simulator on loopback and
//! asserts both sides: what the app got (a clear error, or WeCom's own answer) and what WeCom
//! received (nothing for a refused call; the call unchanged, once, for one passed on). Requests
//! `reqwest` cannot send are written on a raw connection (the harness's [`Raw`]). Where the
//! exact bytes the sidecar sent upstream matter, a recording [`Relay`] sits between the sidecar
//! and the simulator.
//!
//! After each test the sidecar's log must hold no panic and no app secret.

use crate::harness::sim::Simulator;
use crate::harness::*;
use serde_json::json;
use wecom_sidecar::proxy::{MAX_JSON_REQUEST, MAX_UPLOAD};

mod bodies;
mod heads;
mod paths;

/// The header that names why the sidecar answered locally.
const REASON: &str = "x-sidecar-reason";

// ---------------------------------------------------------------------------------------------
// The sidecar behind a recording relay
// ---------------------------------------------------------------------------------------------

/// The simulator, a recording relay in front of it, and a ready sidecar whose upstream is the
/// relay: what most tests here start from.
async fn relayed() -> (Simulator, Relay, Sidecar) {
    let sim = simulator().await;
    let relay = Relay::start(sim.addr()).await;
    let sc = Sidecar::start(&relay.url, "").await;
    sc.wait_ready().await;
    (sim, relay, sc)
}

// ---------------------------------------------------------------------------------------------
// Shared checks
// ---------------------------------------------------------------------------------------------

/// Calls the simulator received, `gettoken` (which the sidecar may send on its own) excepted.
fn business_calls(sim: &Simulator) -> u64 {
    sim.counters()
        .calls
        .iter()
        .filter(|(p, _)| p.as_str() != "/cgi-bin/gettoken")
        .map(|(_, n)| n)
        .sum()
}

/// The same process still serves a normal call, and it reaches WeCom once.
async fn still_serves(sc: &mut Sidecar, sim: &Simulator, after: &str) {
    assert!(
        sc.child.try_wait().unwrap().is_none(),
        "the sidecar exited after {after}; log:\n{}",
        sc.logs()
    );
    let before = calls(sim, "/cgi-bin/user/get");
    let (status, _, v) = get_json(&client(), &sc.url("/cgi-bin/user/get?userid=next")).await;
    assert_eq!(status, 200, "after {after}: {v}");
    assert_eq!(v["errcode"], 0, "after {after}: {v}");
    assert_eq!(v["userid"], "next");
    assert_eq!(calls(sim, "/cgi-bin/user/get"), before + 1, "after {after}");
}

/// No panic and no app secret in the sidecar's log.
fn assert_clean_logs(sc: &Sidecar) {
    let logs = sc.logs();
    assert!(!logs.is_empty(), "no log captured");
    if let Some(line) = logs.lines().find(|l| l.contains("panicked")) {
        panic!("the sidecar panicked: {line}");
    }
    for secret in [HR_SECRET, OPS_SECRET] {
        assert!(!logs.contains(secret), "an app secret is in the log");
    }
}

/// How a refused request must be answered.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// Pingora's own answer, while it parses the request: this status, an empty body and
    /// `Connection: close` (the sidecar never sees the request).
    Pingora(u16),
    /// The sidecar's local answer: this status, `X-Sidecar-Reason: bad-request`, this errcode.
    Local(u16, i64),
}

fn assert_refused(what: &str, raw: &Answer, want: Want) {
    let shown = raw.show();
    match want {
        Want::Pingora(status) => {
            assert_eq!(raw.status, Some(status), "{what}: {shown}");
            assert_eq!(raw.header(REASON), None, "{what}: {shown}");
            assert_eq!(raw.header("connection"), Some("close"), "{what}: {shown}");
            assert!(raw.body.is_empty(), "{what}: {shown}");
        }
        Want::Local(status, errcode) => {
            assert_eq!(raw.status, Some(status), "{what}: {shown}");
            assert_eq!(raw.header(REASON), Some("bad-request"), "{what}: {shown}");
            assert_eq!(raw.json()["errcode"], errcode, "{what}: {shown}");
        }
    }
}

/// True when `bytes` hold a NUL or a CR that does not start a CRLF: what would let a value
/// split or end an HTTP line.
fn has_bare_cr_or_nul(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .enumerate()
        .any(|(i, &b)| b == 0 || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n')))
}
