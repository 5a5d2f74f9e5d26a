//! The control API under `/sim/` (documented in the module above).

use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::handlers::{json_answer, Answer};
use super::state::{Fault, FaultKind, State};

fn ok() -> Answer {
    json_answer(json!({"ok": true}))
}

fn refused(code: StatusCode, error: String) -> Answer {
    let mut r = json_answer(json!({"ok": false, "error": error}));
    *r.status_mut() = code;
    r
}

/// Answers `method` on `/sim/{path}`.
pub fn control(state: &State, method: &Method, path: &str, body: &[u8]) -> Answer {
    match (method, path.trim_end_matches('/')) {
        (&Method::POST, "faults") => match serde_json::from_slice::<Fault>(body) {
            Ok(Fault {
                kind: FaultKind::Status(code),
                ..
            }) if StatusCode::from_u16(code).is_err() => refused(
                StatusCode::BAD_REQUEST,
                format!("status {code} is not an HTTP status"),
            ),
            Ok(f) => {
                state.faults.push(f);
                ok()
            }
            Err(e) => refused(StatusCode::BAD_REQUEST, format!("bad fault: {e}")),
        },
        (&Method::GET, "faults") => {
            json_answer(serde_json::to_value(state.faults.list()).unwrap_or(Value::Null))
        }
        (&Method::DELETE, "faults") => {
            state.faults.clear();
            ok()
        }
        (&Method::POST, "tokens/expire") => {
            state.revoke_all(42001);
            ok()
        }
        (&Method::POST, "tokens/invalidate") => {
            state.revoke_all(40014);
            ok()
        }
        (&Method::GET, "counters") => {
            json_answer(serde_json::to_value(state.counters()).unwrap_or(Value::Null))
        }
        (&Method::POST, "counters/reset") => {
            state.reset_counters();
            ok()
        }
        (_, p) => refused(
            StatusCode::NOT_FOUND,
            format!(
                "no control call {method} /sim/{p}; see POST|GET|DELETE /sim/faults, \
                 POST /sim/tokens/expire, POST /sim/tokens/invalidate, GET /sim/counters, \
                 POST /sim/counters/reset, POST /sim/callbacks/push, POST /sim/callbacks/verify, \
                 GET|POST|DELETE /sim/receiver, POST|DELETE /sim/receiver/reply"
            ),
        ),
    }
}
