//! The simulator's memory: issued tokens, injected faults, counters, stored media, and the
//! duplicate-check window of `message/send`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::SimConfig;

/// A fault to inject at the simulator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// Exact path (`/cgi-bin/user/get`) or `*` for every path.
    pub path: String,
    pub kind: FaultKind,
    /// How many calls it applies to; `None`: until cleared.
    pub times: Option<u32>,
}

/// What an injected fault does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultKind {
    /// That HTTP status with a short text body.
    Status(u16),
    /// Never answers (holds the connection).
    Hang,
    /// Closes the connection without answering.
    Reset,
    /// HTTP 200 with a body that is not JSON.
    Garbage,
    /// Declares a longer body than it sends, then closes.
    Truncated,
    /// HTTP 200 JSON `{"errcode": n, "errmsg": ...}`.
    Errcode(i64),
    /// Waits, then answers normally.
    Delay(Duration),
    /// Handles the call normally (a message IS delivered), then closes without answering:
    /// the answer is lost on the way back.
    LoseAnswer,
}

/// What the simulator has seen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Requests per path, faulted ones included.
    pub calls: BTreeMap<String, u64>,
    /// gettoken calls per app name (`unknown` when the secret matched no app).
    pub gettoken: BTreeMap<String, u64>,
    pub messages_delivered: u64,
    pub duplicates_suppressed: u64,
    pub delivered_per_user: BTreeMap<String, u64>,
    pub uploaded_bytes: u64,
}

pub(crate) struct TokenInfo {
    pub app: String,
    pub expires_at: Instant,
    /// Set when the simulator was told to reject it: 42001 (expired) or 40014 (invalid).
    pub revoked: Option<i64>,
}

pub(crate) struct State {
    pub cfg: SimConfig,
    pub tokens: Mutex<HashMap<String, TokenInfo>>,
    pub issued: Mutex<Vec<String>>,
    pub faults: Mutex<Vec<Fault>>,
    pub counters: Mutex<Counters>,
    pub media: Mutex<HashMap<String, Bytes>>,
    /// (app, message without the duplicate-check keys) → when it was last delivered.
    pub recent: Mutex<HashMap<(String, String), Instant>>,
}

impl State {
    pub fn new(cfg: SimConfig) -> Self {
        State {
            cfg,
            tokens: Mutex::default(),
            issued: Mutex::default(),
            faults: Mutex::default(),
            counters: Mutex::default(),
            media: Mutex::default(),
            recent: Mutex::default(),
        }
    }

    /// The first matching fault with calls left, used up by one.
    pub fn take_fault(&self, path: &str) -> Option<FaultKind> {
        take_fault(&mut lock(&self.faults), path)
    }

    pub fn count_call(&self, path: &str) {
        *lock(&self.counters)
            .calls
            .entry(path.to_string())
            .or_default() += 1;
    }

    pub fn revoke_all(&self, errcode: i64) {
        for t in lock(&self.tokens).values_mut() {
            t.revoked = Some(errcode);
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The first fault of `faults` matching `path` with calls left, used up by one.
pub(crate) fn take_fault(faults: &mut [Fault], path: &str) -> Option<FaultKind> {
    let i = faults
        .iter()
        .position(|f| (f.path == path || f.path == "*") && f.times != Some(0))?;
    let kind = faults[i].kind.clone();
    if let Some(t) = faults[i].times.as_mut() {
        *t -= 1;
    }
    Some(kind)
}
