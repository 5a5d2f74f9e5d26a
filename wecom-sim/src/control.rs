//! The control API under `/sim/` (documented in the module above).

use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::handlers::{json_answer, Answer};
use super::state::{lock, parse_duration, Fault, FaultKind, State};

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
        (&Method::POST, "down") => match down_for(body) {
            Ok(lasting) => {
                state.outage.start(lasting);
                ok()
            }
            Err(e) => refused(StatusCode::BAD_REQUEST, e),
        },
        (&Method::GET, "down") => json_answer(json!({"down": state.outage.is_down()})),
        (&Method::DELETE, "down") => {
            state.outage.end();
            ok()
        }
        (&Method::GET, "messages") => {
            let log = lock(&state.delivered);
            json_answer(json!({"total": log.total(), "messages": log.list()}))
        }
        (&Method::DELETE, "messages") => {
            lock(&state.delivered).clear();
            ok()
        }
        (_, p) => refused(
            StatusCode::NOT_FOUND,
            format!(
                "no control call {method} /sim/{p}; see POST|GET|DELETE /sim/faults, \
                 POST /sim/tokens/expire, POST /sim/tokens/invalidate, GET /sim/counters, \
                 POST /sim/counters/reset, POST|GET|DELETE /sim/down, GET|DELETE /sim/messages, \
                 POST /sim/callbacks/push, POST /sim/callbacks/verify, \
                 GET|POST|DELETE /sim/receiver, POST|DELETE /sim/receiver/reply"
            ),
        ),
    }
}

/// The body of `POST /sim/down`: `{"for": "60s"}`, or empty / `{}` for "until cleared".
fn down_for(body: &[u8]) -> Result<Option<std::time::Duration>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("bad outage: {e}"))?;
    match v.get("for") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(t)) => parse_duration(t)
            .map(Some)
            .ok_or_else(|| format!("bad duration {t:?}: use e.g. \"250ms\", \"60s\", \"2m\"")),
        Some(Value::Number(ms)) => ms
            .as_u64()
            .map(|ms| Some(std::time::Duration::from_millis(ms)))
            .ok_or_else(|| format!("bad duration {ms}: a number of milliseconds")),
        Some(other) => Err(format!("bad duration {other}: use e.g. \"60s\"")),
    }
}
