//! Runtime configuration: the validated, typed form the request path reads.
//!
//! Nothing here is a serde type. `config::file` parses YAML into file types, `config::validate`
//! checks them and builds these. Request code only ever sees these types, so the YAML format can
//! change without touching the pipeline.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Name of a WeCom app as configured (`apps[].name`). Not secret; used in logs and labels.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppName(pub Arc<str>);

impl AppName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AppName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Name of an upstream endpoint (`upstreams.<name>`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UpstreamName(pub Arc<str>);

impl UpstreamName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UpstreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A secret value (app secret). Its `Debug` never prints the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Secret(value.into())
    }
    /// The secret itself. Call sites are few and reviewed: the gettoken request and comparisons.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The whole validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// Extra `Host` names the admin listener answers for, lower case, no port.
    pub admin_hosts: Vec<String>,
    /// In declaration order; `primary` always present.
    pub upstreams: Vec<Upstream>,
    /// In declaration order. At most one has `default: true`.
    pub apps: Vec<App>,
    pub token: TokenSettings,
    pub defaults: RoutePolicy,
    /// First match wins.
    pub routes: Vec<Route>,
    pub fleet: Option<Fleet>,
    /// When an upstream is taken out of rotation, and for how long.
    pub outlier: OutlierPolicy,
    /// How ejected upstreams are probed to bring them back early.
    pub health_check: HealthCheck,
    /// Named staged switch plans (`POST /admin/plans/<name>/start`).
    pub shift_plans: Vec<ShiftPlan>,
    /// Calling apps and their signing keys; empty: calls are not signed.
    pub clients: Vec<Client>,
    /// Bounds on app-facing connections (`client:`).
    pub client: ClientConnections,
    /// The callback listener and its apps (`callbacks:`); `None`: no listener.
    pub callbacks: Option<Callbacks>,
    /// Where the durable queues live (`store:`).
    pub store: StoreSettings,
    /// Where this config was read from (for reload and messages).
    pub source: Option<PathBuf>,
}

impl Config {
    pub fn upstream(&self, name: &str) -> Option<&Upstream> {
        self.upstreams.iter().find(|u| u.name.as_str() == name)
    }
    pub fn app(&self, name: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.name.as_str() == name)
    }
    pub fn default_app(&self) -> Option<&App> {
        self.apps.iter().find(|a| a.default)
    }
    /// Whether a route has `outbox: true`.
    pub fn has_outbox(&self) -> bool {
        self.routes.iter().any(|r| r.policy.outbox.is_some())
    }
}

/// `http` or `https`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

#[derive(Clone, Debug)]
pub struct Upstream {
    pub name: UpstreamName,
    pub scheme: Scheme,
    /// Host name or IP literal, without brackets; also the TLS SNI.
    pub host: String,
    pub port: u16,
    /// Optional path prefix from the URL (without trailing slash), usually empty.
    pub base_path: String,
    pub connect_timeout: Duration,
    /// Per attempt: from the request being written until the response is fully read.
    pub timeout: Duration,
    /// Extra trust root (PEM file).
    pub ca_file: Option<PathBuf>,
    /// Whose tokens this upstream accepts.
    pub tokens: TokenRealm,
}

/// Whose tokens an upstream accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenRealm {
    /// The same WeCom behind another address: tokens from `primary` work here (the default).
    Shared,
    /// A deployment of its own (e.g. private WeCom): it issues and accepts its own tokens.
    Own,
}

impl Upstream {
    /// `Host` header value for requests to this upstream.
    pub fn authority(&self) -> String {
        let default_port = match self.scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// A disaster-recovery runbook: steps that move traffic in stages, with checks between.
#[derive(Clone, Debug, PartialEq)]
pub struct ShiftPlan {
    pub name: String,
    pub steps: Vec<PlanStep>,
}

/// One stage: these routes take this split, hold it, then the gates are checked on the calls
/// of those routes during the hold.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanStep {
    /// Route paths as written in `routes[].path`, or `defaults`.
    pub routes: Vec<String>,
    pub split: Split,
    pub hold: Duration,
    /// Largest share of failed calls (0.0–1.0) that lets the plan go on.
    pub max_error_rate: Option<f64>,
    /// Largest 99th-percentile latency that lets the plan go on.
    pub max_p99: Option<Duration>,
}

/// Passive outlier detection: consecutive failures (connect errors, timeouts, resets, 5xx,
/// errcode -1) eject an upstream for `base_ejection` × the number of times it was ejected,
/// at most `max_ejection`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutlierPolicy {
    pub consecutive_failures: u32,
    pub base_ejection: Duration,
    pub max_ejection: Duration,
}

/// Bounds on the app listener's connections (`client:`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientConnections {
    /// The whole request head.
    pub header_timeout: Duration,
    /// A body read or an answer write without progress.
    pub body_timeout: Duration,
    /// Between calls on a kept-alive connection.
    pub idle_timeout: Duration,
    /// Open app connections at most; `None`: derived from the descriptor limit at start.
    pub max_connections: Option<u64>,
}

/// Active checks of ejected upstreams: a cheap request every `interval`; an answer brings the
/// upstream back before its ejection ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    pub interval: Duration,
    pub timeout: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct App {
    pub name: AppName,
    pub corp_id: String,
    pub agent_id: Option<i64>,
    pub secret: Secret,
    /// Where the secret came from, for messages (`env WECOM_HR_SECRET`, `file /run/...`).
    pub secret_source: String,
    pub default: bool,
}

/// A calling app that signs its requests (`clients[i]`).
#[derive(Clone, Debug)]
pub struct Client {
    pub name: Arc<str>,
    /// The HMAC-SHA256 key, as its UTF-8 bytes.
    pub key: Secret,
    /// Where the key came from, for messages.
    pub key_source: String,
    /// The WeCom apps it may use; `None`: all of them.
    pub apps: Option<Vec<AppName>>,
}

impl Client {
    pub fn may_use(&self, app: &AppName) -> bool {
        self.apps.as_ref().is_none_or(|a| a.contains(app))
    }
}

#[derive(Clone, Debug)]
pub struct TokenSettings {
    pub refresh_before_expiry: Duration,
    /// Least time from a successful gettoken to the next one for the same app.
    pub min_fetch_interval: Duration,
    /// Least time between two gettoken of an app when its cached token was rejected.
    pub min_refetch: Duration,
    /// Hard cap on gettoken per app (fleet-wide in fleet mode).
    pub max_fetches: Rate,
}

/// A rate limit such as `10000/min`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "min",
            3600 => "h",
            86400 => "day",
            _ => return write!(f, "{}/{}s", self.count, self.per.as_secs()),
        };
        write!(f, "{}/{}", self.count, unit)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts including the first (1 = no retry).
    pub attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

/// Share of traffic per upstream; weights 0–100 summing to 100.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split(pub Vec<(UpstreamName, u32)>);

/// The policy a call runs under: `defaults`, with a route's overrides applied.
#[derive(Clone, Debug)]
pub struct RoutePolicy {
    pub deadline: Duration,
    pub retry: RetryPolicy,
    pub split: Split,
    pub quota: Vec<Rate>,
    /// `None`: decided by the built-in API table.
    pub idempotent: Option<bool>,
    /// Let `debug=1` through to WeCom (it caps the API at 5 calls a minute).
    pub allow_debug: bool,
    /// What a call over `quota` gets.
    pub on_limit: OnLimit,
    /// HTTP status of the local quota answer (200 like WeCom, or 429).
    pub quota_status: u16,
    /// Refuse messages to members already at WeCom's per-member cap (30/min, 1,000/h).
    pub recipient_cap: bool,
    /// Ask WeCom to drop duplicate messages (`enable_duplicate_check`), which makes
    /// `message/send` safe to retry; identical messages inside the window are delivered once.
    pub dedupe: bool,
    /// The `duplicate_check_interval` sent with `dedupe` (at most 4 h).
    pub duplicate_check_interval: Duration,
    /// Calls in flight per app and API on this route (per sidecar); `None`: no cap.
    pub max_in_flight: Option<u32>,
    /// How long a call over `max_in_flight` waits for a place: the route's `max_wait`.
    pub in_flight_wait: Duration,
    /// Members the route's message APIs may reach per app per China day; `None`: no cap.
    pub recipients_per_day: Option<u64>,
    /// `outbox: true` (message APIs only): sends WeCom cannot be reached for are queued.
    pub outbox: Option<OutboxPolicy>,
}

/// A route's outbox (`outbox: true`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutboxPolicy {
    /// A queued send not delivered by this age (from its first queueing) is a dead letter.
    pub max_age: Duration,
}

/// What a call over its quota gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnLimit {
    /// The local 45009 answer at once.
    Reject,
    /// Wait for a slot up to `max_wait` (bounded queue), then the local 45009 answer.
    Wait { max_wait: Duration },
    /// Outbox routes only: the send is queued and replayed when the quota or block allows.
    Queue,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathMatch {
    /// The whole path, e.g. `/cgi-bin/message/send`.
    Exact(String),
    /// A prefix, written with a trailing `*`, e.g. `/cgi-bin/user/`.
    Prefix(String),
}

impl PathMatch {
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(p) => p == path,
            PathMatch::Prefix(p) => path.starts_with(p.as_str()),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Route {
    pub path: PathMatch,
    /// Metric label; `None` means derived from the path.
    pub api: Option<String>,
    pub policy: RoutePolicy,
}

/// What a fleet shares through Redis (`fleet.share`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ShareKind {
    Tokens,
    Quotas,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fleet {
    /// Contains a password only when it came from `redis_url_env`; never printed.
    pub redis_url: Secret,
    pub key_prefix: String,
    pub size: u32,
    pub share: Vec<ShareKind>,
    /// Longest one Redis operation may take before the sidecar decides alone (calls wait
    /// this long at most when Redis hangs).
    pub timeout: Duration,
}

/// Used where a map keyed by upstream is handy.
pub type UpstreamMap<T> = BTreeMap<UpstreamName, T>;

/// `callbacks`: where WeCom pushes, and to whom the sidecar delivers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Callbacks {
    pub listen: SocketAddr,
    /// In file order; app names and paths unique.
    pub apps: Vec<CallbackApp>,
    pub delivery: Delivery,
}

/// One app's callback (`callbacks.apps[i]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallbackApp {
    pub app: AppName,
    /// The receive id pushes must carry: the app's `corp_id`.
    pub receive_id: String,
    /// The URL path set in WeCom's console, e.g. `/callback/hr-bot`.
    pub path: String,
    /// WeCom's callback `Token`.
    pub token: Secret,
    /// WeCom's 43-character `EncodingAESKey`.
    pub aes_key: Secret,
    /// Where pushes are POSTed (`http` or `https`).
    pub deliver_to: http::Uri,
    /// How long WeCom's answer waits for the app's; zero: never (always an empty 200).
    pub reply_within: Duration,
}

/// `callbacks.delivery`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// One delivery attempt, from connect to the app's whole answer.
    pub timeout: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// A push not delivered by this age is a dead letter; its content is remembered this long.
    pub max_age: Duration,
}

/// `store`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreSettings {
    /// The SQLite file (callbacks, outbox).
    pub path: PathBuf,
    /// The most the queued items (payload and meta, dead letters included) may hold; past it
    /// a send is not queued.
    pub max_bytes: u64,
    /// Sends one app may have waiting in the outbox; past it a send is not queued.
    pub outbox_max_per_app: u64,
}
