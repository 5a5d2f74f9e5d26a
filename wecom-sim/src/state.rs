//! The simulator's memory: issued tokens, injected faults, counters, stored media, the
//! duplicate-check window of `message/send`, the delivered messages and an outage. Every lock
//! here is a std `Mutex` held for a few map operations and never across an `.await`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::SimConfig;

/// A fault to inject at the simulator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// Exact path (`/cgi-bin/user/get`) or `*` for every `/cgi-bin/` path.
    pub path: String,
    pub kind: FaultKind,
    /// How many calls it applies to; `None` (or absent in JSON): until cleared.
    #[serde(default)]
    pub times: Option<u32>,
}

/// What an injected fault does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultKind {
    /// That HTTP status with a short text body.
    Status(u16),
    /// Never answers (for an hour); holds the connection until the client drops it.
    Hang,
    /// Closes the connection (TCP RST) without answering.
    Reset,
    /// HTTP 200, `Content-Type: application/json`, a body that is not JSON.
    Garbage,
    /// Declares `Content-Length: 100`, sends 10 bytes, then closes.
    Truncated,
    /// HTTP 200 JSON `{"errcode": n, "errmsg": ...}`.
    Errcode(i64),
    /// Waits, then answers normally. JSON: `"250ms"`, `"2s"`, a number of milliseconds, or
    /// `{"secs": 2, "nanos": 0}`.
    Delay(
        #[serde(
            serialize_with = "serialize_duration",
            deserialize_with = "deserialize_duration"
        )]
        Duration,
    ),
    /// Handles the call normally (a message IS delivered), then closes without answering:
    /// the answer is lost on the way back.
    LoseAnswer,
    /// Handles the call normally, but writes these interim answers (`100 Continue`,
    /// `103 Early Hints`, any `1xx`) before its answer. JSON: `{"Informational": [100, 103]}`.
    Informational(Vec<u16>),
    /// Handles the call normally (a message IS delivered), then answers with this final status
    /// and no body (`101` with `Upgrade`, `204`, `304`, or any other), and closes.
    FinalStatus(u16),
    /// Handles the call normally and adds these `(name, value)` headers to its answer.
    AnswerHeaders(Vec<(String, String)>),
    /// HTTP 302 whose `Location` is the request URL made absolute (`http://<Host><path>?<query>`),
    /// query and its `access_token` included: a redirect to the same call elsewhere.
    RedirectAbsolute,
    /// HTTP 302 whose `Location` is the request's own path and query (a relative redirect).
    RedirectRelative,
    /// HTTP 200 JSON `{"errcode":0,"errmsg":"ok","url":..,"access_token":..}` that echoes the
    /// request URL and its `access_token` in the body and in headers (`Content-Location`,
    /// `X-Echo-Url`, `Link`, `X-Echo-Token`), as a debugging proxy might.
    Echo,
    /// HTTP 400 with `Content-Encoding: gzip` (never asked for) and the `Echo` body compressed:
    /// what the app would unpack holds the request URL and its `access_token`.
    GzipEcho,
    /// HTTP 200 JSON `{"errcode": n, "errmsg": "... request: <path>?<query>"}`: an errmsg that
    /// quotes the request URL (on `gettoken`: the `corpsecret`, as sent and decoded).
    ErrcodeEcho(i64),
    /// HTTP 200 JSON `{"errcode":0,"errmsg":"ok","access_token":..}` that echoes the request's
    /// `access_token` with every character written as a JSON `\uXXXX` escape: what a JSON
    /// parser reads is the token, what a byte search sees is not.
    EscapedEcho,
    /// HTTP 200 `{"errcode":45009,"errmsg":"reach max api daily quota limit"}`: a daily quota
    /// spent, in the words WeCom's family of APIs uses for it.
    DayLimit,
    /// HTTP 200 JSON errcode 60020 whose errmsg names this address as the caller WeCom saw
    /// (`..., from ip: 203.0.113.7, more info at ...`): an app whose trusted IPs leave it out.
    /// JSON: `{"UntrustedIp": "203.0.113.7"}`.
    UntrustedIp(String),
}

/// What the simulator has seen since the start or the last reset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Requests per path, faulted ones included (control calls under `/sim/` are not counted).
    pub calls: BTreeMap<String, u64>,
    /// `gettoken` calls per app, answered or faulted, by `corpsecret` (`unknown` when it
    /// matched no app).
    pub gettoken: BTreeMap<String, u64>,
    pub messages_delivered: u64,
    pub duplicates_suppressed: u64,
    /// Deliveries per `touser` entry (`@all` counts as a user named `@all`).
    pub delivered_per_user: BTreeMap<String, u64>,
    /// Bytes of media stored by `media/upload` (and robot `upload_media`).
    pub uploaded_bytes: u64,
    /// Ticket fetches answered with a ticket, by `jsapi:<corp id>` and `agent_config:<app>`.
    #[serde(default)]
    pub tickets: BTreeMap<String, u64>,
    /// Calls an outage (`POST /sim/down`) failed with a reset or a 503.
    #[serde(default)]
    pub failed_while_down: u64,
    /// What each message delivered by `message/send` and `linkedcorp/message/send` said, in
    /// delivery order: a text's `text.content`, else the message's JSON (the latest
    /// [`KEPT_MESSAGES`]).
    #[serde(default)]
    pub messages: Vec<String>,
    /// The same for `webhook/send` (robot messages; no duplicate check at WeCom).
    #[serde(default)]
    pub robot_messages: Vec<String>,
}

/// Delivered messages [`Counters::messages`] and [`Counters::robot_messages`] keep.
pub const KEPT_MESSAGES: usize = 10_000;

/// Appends `what` to `list`, keeping the latest [`KEPT_MESSAGES`].
pub(crate) fn keep_message(list: &mut Vec<String>, what: String) {
    if list.len() >= KEPT_MESSAGES {
        list.remove(0);
    }
    list.push(what);
}

/// Adds one to `map[key]` without allocating when the key is there already.
pub(crate) fn bump(map: &mut BTreeMap<String, u64>, key: &str, by: u64) {
    match map.get_mut(key) {
        Some(n) => *n += by,
        None => {
            map.insert(key.to_string(), by);
        }
    }
}

/// An ordered list of faults; `len` lets the common no-fault case skip the lock.
#[derive(Default)]
pub(crate) struct Faults {
    list: Mutex<Vec<Fault>>,
    len: AtomicUsize,
}

impl Faults {
    pub fn push(&self, f: Fault) {
        if f.times == Some(0) {
            return;
        }
        let mut list = lock(&self.list);
        list.push(f);
        self.len.store(list.len(), Ordering::Release);
    }

    pub fn clear(&self) {
        let mut list = lock(&self.list);
        list.clear();
        self.len.store(0, Ordering::Release);
    }

    pub fn list(&self) -> Vec<Fault> {
        lock(&self.list).clone()
    }

    /// The first fault matching `path` (in injection order), used up by one; spent faults go.
    pub fn take(&self, path: &str) -> Option<FaultKind> {
        if self.len.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut list = lock(&self.list);
        let i = list.iter().position(|f| f.path == path || f.path == "*")?;
        let kind = list[i].kind.clone();
        if let Some(t) = list[i].times.as_mut() {
            *t = t.saturating_sub(1);
            if *t == 0 {
                list.remove(i);
                self.len.store(list.len(), Ordering::Release);
            }
        }
        Some(kind)
    }
}

/// Calls per path, for one listener.
pub(crate) type PathCounts = Mutex<BTreeMap<String, u64>>;

/// What a listener keeps of its own (a simulator may listen on several addresses).
#[derive(Default)]
pub(crate) struct ListenerState {
    pub calls: PathCounts,
    /// Checked before the shared faults.
    pub faults: Faults,
}

pub(crate) struct TokenInfo {
    /// Index into `SimConfig::apps`.
    pub app: usize,
    pub expires_at: Instant,
    /// Set when the simulator was told to reject it: 42001 (expired) or 40014 (invalid).
    pub revoked: Option<i64>,
}

/// Why a call's `access_token` was refused.
pub(crate) enum TokenError {
    Missing,
    Invalid,
    Expired,
}

pub(crate) struct StoredMedia {
    pub data: Bytes,
    pub filename: String,
}

pub(crate) struct State {
    pub cfg: SimConfig,
    pub faults: Faults,
    tokens: Mutex<HashMap<String, TokenInfo>>,
    issued: Mutex<Vec<String>>,
    pub counters: Mutex<Counters>,
    pub media: Mutex<HashMap<String, StoredMedia>>,
    /// (app, canonical message without the duplicate-check keys) → when it was delivered.
    pub recent: Mutex<HashMap<(usize, String), Instant>>,
    /// Members, departments and tags.
    pub directory: Mutex<super::directory::Directory>,
    /// Group chats (`appchat/*`).
    pub chats: Mutex<super::appchat::AppChats>,
    /// The `--dev` app's receiver of callbacks (`/sim/receiver`).
    pub receiver: Mutex<super::callback::receiver::Receiver>,
    /// Calls in flight per API, and WeCom's concurrency limit (45033).
    pub concurrency: Arc<super::concurrency::Concurrency>,
    /// JS-SDK ticket fetches of the last hour.
    pub tickets: Mutex<super::ticket::Tickets>,
    /// Messages delivered, with their bodies, in order (`/sim/messages`).
    pub delivered: Mutex<super::delivered::DeliveredLog>,
    /// WeCom down (`/sim/down`).
    pub outage: super::outage::Outage,
}

/// The duplicate-check memory is pruned of entries older than WeCom's longest window once it
/// holds this many.
const RECENT_PRUNE_AT: usize = 100_000;
pub(crate) const MAX_DUPLICATE_WINDOW: Duration = Duration::from_secs(14_400);

impl State {
    pub fn new(cfg: SimConfig) -> Self {
        State {
            cfg,
            faults: Faults::default(),
            tokens: Mutex::default(),
            issued: Mutex::default(),
            counters: Mutex::default(),
            media: Mutex::default(),
            recent: Mutex::default(),
            directory: Mutex::default(),
            chats: Mutex::default(),
            receiver: Mutex::default(),
            concurrency: Arc::default(),
            tickets: Mutex::default(),
            delivered: Mutex::default(),
            outage: super::outage::Outage::default(),
        }
    }

    pub fn count_call(&self, path: &str) {
        bump(&mut lock(&self.counters).calls, path, 1);
    }

    pub fn count_gettoken(&self, app: &str) {
        bump(&mut lock(&self.counters).gettoken, app, 1);
    }

    pub fn counters(&self) -> Counters {
        lock(&self.counters).clone()
    }

    pub fn reset_counters(&self) {
        *lock(&self.counters) = Counters::default();
    }

    /// The app's (index) newest token that is still valid and not revoked, with the time it
    /// has left: what WeCom answers a gettoken with inside a token's validity.
    pub fn valid_token_of(&self, app: usize) -> Option<(String, Duration)> {
        let now = Instant::now();
        lock(&self.tokens)
            .iter()
            .filter(|(_, t)| t.app == app && t.revoked.is_none() && t.expires_at > now)
            .max_by_key(|(_, t)| t.expires_at)
            .map(|(v, t)| (v.clone(), t.expires_at - now))
    }

    /// A new token for app `app` (index), remembered as issued.
    pub fn issue_token(&self, app: usize, token: String) {
        lock(&self.tokens).insert(
            token.clone(),
            TokenInfo {
                app,
                expires_at: Instant::now() + self.cfg.token_ttl,
                revoked: None,
            },
        );
        lock(&self.issued).push(token);
    }

    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.issued).clone()
    }

    /// The app (index) a token belongs to, or why it is refused.
    /// With `one_use_tokens`, a token that passes is revoked (40014) for the next call.
    pub fn check_token(&self, token: Option<&str>) -> Result<usize, TokenError> {
        let token = token.filter(|t| !t.is_empty()).ok_or(TokenError::Missing)?;
        let mut tokens = lock(&self.tokens);
        let info = tokens.get_mut(token).ok_or(TokenError::Invalid)?;
        match info.revoked {
            Some(42001) => Err(TokenError::Expired),
            Some(_) => Err(TokenError::Invalid),
            None if info.expires_at <= Instant::now() => Err(TokenError::Expired),
            None => {
                if self.cfg.one_use_tokens {
                    info.revoked = Some(40014);
                }
                Ok(info.app)
            }
        }
    }

    /// Every token issued so far now answers `errcode` (42001 or 40014).
    pub fn revoke_all(&self, errcode: i64) {
        for t in lock(&self.tokens).values_mut() {
            t.revoked = Some(errcode);
        }
    }

    /// Whether a message `key` of `app` was delivered less than `window` ago; if not, it is
    /// remembered as delivered now.
    pub fn seen_recently(&self, app: usize, key: String, window: Duration) -> bool {
        let now = Instant::now();
        let mut recent = lock(&self.recent);
        let key = (app, key);
        if recent
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < window)
        {
            return true;
        }
        if recent.len() >= RECENT_PRUNE_AT {
            recent.retain(|_, at| now.duration_since(*at) < MAX_DUPLICATE_WINDOW);
        }
        recent.insert(key, now);
        false
    }
}

/// Locks, ignoring poisoning (a panicking test thread must not wedge the simulator).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn serialize_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    if d.subsec_nanos() % 1_000_000 == 0 {
        s.serialize_str(&format!("{}ms", d.as_millis()))
    } else {
        s.serialize_str(&format!("{}ns", d.as_nanos()))
    }
}

fn deserialize_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Millis(u64),
        Text(String),
        Parts { secs: u64, nanos: u32 },
    }
    match Raw::deserialize(d)? {
        Raw::Millis(ms) => Ok(Duration::from_millis(ms)),
        Raw::Parts { secs, nanos } => Ok(Duration::new(secs, nanos)),
        Raw::Text(t) => parse_duration(&t).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "bad duration {t:?}: use e.g. \"250ms\", \"2s\", \"1m\""
            ))
        }),
    }
}

/// `"250ms"`, `"2s"`, `"1m"`, `"1h"`, `"500us"`, `"10ns"`.
pub(crate) fn parse_duration(t: &str) -> Option<Duration> {
    let t = t.trim();
    let split = t.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().ok()?;
    Some(match unit.trim() {
        "ns" => Duration::from_nanos(n),
        "us" | "µs" => Duration::from_micros(n),
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" | "min" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(path: &str, kind: FaultKind, times: Option<u32>) -> Fault {
        Fault {
            path: path.into(),
            kind,
            times,
        }
    }

    #[test]
    fn faults_apply_in_order_and_run_out() {
        let f = Faults::default();
        assert_eq!(f.take("/a"), None);
        f.push(fault("/a", FaultKind::Status(502), Some(2)));
        f.push(fault("*", FaultKind::Hang, Some(1)));
        assert_eq!(f.take("/b"), Some(FaultKind::Hang));
        assert_eq!(f.take("/b"), None);
        assert_eq!(f.take("/a"), Some(FaultKind::Status(502)));
        assert_eq!(f.take("/a"), Some(FaultKind::Status(502)));
        assert_eq!(f.take("/a"), None);
        assert!(f.list().is_empty());
        f.push(fault("/a", FaultKind::Reset, None));
        for _ in 0..5 {
            assert_eq!(f.take("/a"), Some(FaultKind::Reset));
        }
        f.clear();
        assert_eq!(f.take("/a"), None);
    }

    #[test]
    fn fault_json_forms() {
        let parse = |s: &str| serde_json::from_str::<Fault>(s).unwrap();
        let delay = |ms| fault("*", FaultKind::Delay(Duration::from_millis(ms)), None);
        assert_eq!(
            parse(r#"{"path":"*","kind":{"Delay":"250ms"}}"#),
            delay(250)
        );
        assert_eq!(parse(r#"{"path":"*","kind":{"Delay":"2s"}}"#), delay(2000));
        assert_eq!(parse(r#"{"path":"*","kind":{"Delay":40}}"#), delay(40));
        assert_eq!(
            parse(r#"{"path":"*","kind":{"Delay":{"secs":1,"nanos":5000000}},"times":null}"#),
            delay(1005)
        );
        assert_eq!(
            parse(r#"{"path":"/x","kind":"Hang","times":3}"#),
            fault("/x", FaultKind::Hang, Some(3))
        );
        let f = fault("*", FaultKind::Delay(Duration::from_micros(1500)), Some(1));
        let back: Fault = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(back, f);
        assert!(serde_json::from_str::<Fault>(r#"{"path":"*","kind":{"Delay":"soon"}}"#).is_err());
    }
}
