//! The app side of `--dev`: a tiny receiver the sidecar delivers callbacks to
//! (`POST /sim/receiver`). It records each delivery's query, headers and body and answers as told by
//! `POST /sim/receiver/reply` (default: 200, empty body, at once); a body given there is the
//! app's passive reply.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::body::SimBody;
use crate::handlers::{json_answer, Answer};
use crate::state::{lock, parse_duration, State};

/// The receiver keeps this many deliveries, dropping the oldest.
const KEEP: usize = 10_000;

/// What the receiver has seen, and how it answers.
#[derive(Debug, Default)]
pub(crate) struct Receiver {
    deliveries: VecDeque<Value>,
    /// Deliveries since the start or the last clear (dropped ones included).
    total: u64,
    answer: Told,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Told {
    #[serde(default = "ok_status")]
    status: u16,
    #[serde(default)]
    body: String,
    #[serde(default)]
    delay: Option<String>,
}

fn ok_status() -> u16 {
    200
}

impl Default for Told {
    fn default() -> Self {
        Told {
            status: 200,
            body: String::new(),
            delay: None,
        }
    }
}

fn refused(error: String) -> Answer {
    let mut r = json_answer(json!({"ok": false, "error": error}));
    *r.status_mut() = StatusCode::BAD_REQUEST;
    r
}

/// Records a delivery; how the receiver was told to answer it: (status, body, delay).
pub(super) fn record(
    state: &State,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> (StatusCode, String, Option<Duration>) {
    let heads: BTreeMap<String, String> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into(),
            )
        })
        .collect();
    let mut r = lock(&state.receiver);
    r.total += 1;
    let entry = json!({
        "n": r.total,
        "query": query,
        "headers": heads,
        "body": String::from_utf8_lossy(body),
    });
    if r.deliveries.len() >= KEEP {
        r.deliveries.pop_front();
    }
    r.deliveries.push_back(entry);
    let told = &r.answer;
    (
        StatusCode::from_u16(told.status).unwrap_or(StatusCode::OK),
        told.body.clone(),
        told.delay.as_deref().and_then(parse_duration),
    )
}

/// `POST /sim/receiver`: record, then answer as told.
pub(super) async fn receive(
    state: &State,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Answer {
    let (status, told, delay) = record(state, query, headers, body);
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let empty = told.is_empty();
    let mut r = Response::new(SimBody::full(told));
    *r.status_mut() = status;
    if !empty {
        r.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/xml"));
    }
    r
}

/// `GET /sim/receiver`: the deliveries kept, oldest first.
pub(super) fn list(state: &State) -> Answer {
    let r = lock(&state.receiver);
    json_answer(json!({
        "total": r.total,
        "deliveries": r.deliveries.iter().cloned().collect::<Vec<_>>(),
    }))
}

/// `DELETE /sim/receiver`: forget the deliveries (the answer stays as told).
pub(super) fn clear(state: &State) -> Answer {
    let mut r = lock(&state.receiver);
    r.deliveries.clear();
    r.total = 0;
    json_answer(json!({"ok": true}))
}

/// `POST /sim/receiver/reply`: how the receiver answers from now on; `DELETE`: the default.
pub(super) fn set_answer(state: &State, body: Option<&[u8]>) -> Answer {
    let answer = match body {
        None => Told::default(),
        Some(b) => match serde_json::from_slice::<Told>(b) {
            Ok(a) => a,
            Err(e) => return refused(format!("bad receiver answer: {e}")),
        },
    };
    if StatusCode::from_u16(answer.status).is_err() || answer.status < 200 {
        return refused(format!(
            "status {} is not a final HTTP status",
            answer.status
        ));
    }
    if let Some(d) = answer.delay.as_deref() {
        match parse_duration(d) {
            Some(d) if d <= Duration::from_secs(60) => {}
            _ => {
                return refused(format!(
                    "bad delay {d:?}: a duration up to 60s, e.g. \"250ms\", \"4s\""
                ))
            }
        }
    }
    lock(&state.receiver).answer = answer;
    json_answer(json!({"ok": true}))
}
