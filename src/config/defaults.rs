//! Defaults for every optional key, one documented constant each, and the limits validation
//! enforces. Durations and rates are written as they would be in the file, so the same text
//! appears in `conf/sidecar.yaml`, in error messages and here.

/// `listen`: where apps send their WeCom calls (plain HTTP). Loopback only by default: anything
/// that can reach this address can act as the configured apps.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// `admin_listen`: where `/metrics`, `/healthz`, `/readyz` and `/admin/*` answer.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9901";

/// The upstream every config must declare: it takes all traffic by default and issues tokens.
pub const PRIMARY_UPSTREAM: &str = "primary";
/// `upstreams.<name>.connect_timeout`: TCP (and TLS) connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: &str = "2s";
/// `upstreams.<name>.timeout`: per attempt, from the request being written until the response
/// is fully read.
pub const DEFAULT_TIMEOUT: &str = "10s";

/// `apps[].default`: an app is the default only when it says so, even if it is the only app.
pub const DEFAULT_APP_DEFAULT: bool = false;

/// `token.refresh_before_expiry`: how long before expiry a token is refreshed in the background.
pub const DEFAULT_REFRESH_BEFORE_EXPIRY: &str = "5m";
/// `token.min_fetch_interval`: after a successful gettoken, the next one for that app waits at
/// least this long (unless its token was rejected; see `min_refetch`).
pub const DEFAULT_MIN_FETCH_INTERVAL: &str = "30s";
/// `token.min_refetch`: a rejected token is replaced at once, but never sooner than this after
/// the app's last gettoken.
pub const DEFAULT_MIN_REFETCH: &str = "2s";
/// `token.max_fetches`: hard cap on gettoken per app (fleet-wide in fleet mode).
pub const DEFAULT_MAX_FETCHES: &str = "60/h";
/// `token.max_fetches` must allow at least this many fetches per token lifetime
/// (`TOKEN_LIFETIME_SECS`), or tokens could not be renewed.
pub const MIN_FETCHES_PER_LIFETIME: u64 = 2;
/// A WeCom `access_token` normally lives this long (`expires_in`), in seconds;
/// `refresh_before_expiry` must be shorter.
pub const TOKEN_LIFETIME_SECS: u64 = 7200;

/// `defaults.deadline`: the whole call, retries included.
pub const DEFAULT_DEADLINE: &str = "15s";
/// `defaults.retry.attempts`: attempts per call, the first included (1 = never retry).
pub const DEFAULT_RETRY_ATTEMPTS: u32 = 3;
/// `defaults.retry.backoff_base`: the first backoff step; each retry doubles it.
pub const DEFAULT_BACKOFF_BASE: &str = "100ms";
/// `defaults.retry.backoff_max`: the longest backoff step.
pub const DEFAULT_BACKOFF_MAX: &str = "2s";
/// Fewest attempts a retry policy may ask for.
pub const MIN_RETRY_ATTEMPTS: u32 = 1;
/// Most attempts a retry policy may ask for.
pub const MAX_RETRY_ATTEMPTS: u32 = 10;
/// `defaults.split`: everything to `primary`.
pub const DEFAULT_SPLIT: &[(&str, u32)] = &[(PRIMARY_UPSTREAM, 100)];
/// What the weights of a split add up to.
pub const SPLIT_TOTAL: u32 = 100;
/// `defaults.quota`: per app and API, WeCom's own per-corp limits.
pub const DEFAULT_QUOTA: &[&str] = &["10000/min", "150000/h"];
/// `defaults.idempotent`: unset, so the built-in table of WeCom read APIs decides.
pub const DEFAULT_IDEMPOTENT: Option<bool> = None;
/// `defaults.allow_debug`: `debug=1` is stripped (WeCom caps a debugged API at 5 calls a minute).
pub const DEFAULT_ALLOW_DEBUG: bool = false;
/// `defaults.on_limit`: a call over its quota gets the local 45009 answer at once.
pub const DEFAULT_ON_LIMIT: &str = "reject";
/// `defaults.max_wait`: with `on_limit: wait`, the longest a call waits for a quota slot.
pub const DEFAULT_MAX_WAIT: &str = "1s";
/// `defaults.quota_status`: HTTP status of the local quota answer (200, like WeCom).
pub const DEFAULT_QUOTA_STATUS: u16 = 200;
/// The HTTP statuses `quota_status` may take.
pub const QUOTA_STATUSES: &[u16] = &[200, 429];
/// `defaults.recipient_cap`: refuse messages to members already at WeCom's per-member cap.
pub const DEFAULT_RECIPIENT_CAP: bool = true;
/// `defaults.dedupe`: do not add `enable_duplicate_check` to messages.
pub const DEFAULT_DEDUPE: bool = false;
/// `defaults.duplicate_check_interval`: sent with `dedupe: true` (WeCom's own default, 1800 s).
pub const DEFAULT_DUPLICATE_CHECK_INTERVAL: &str = "30m";
/// `defaults.max_in_flight`: unset, no cap on calls in flight (WeCom answers 45033 past its own).
pub const DEFAULT_MAX_IN_FLIGHT: Option<u32> = None;
/// `defaults.recipients_per_day`: unset, no local cap (WeCom's: the corp's account limit × 200).
pub const DEFAULT_RECIPIENTS_PER_DAY: Option<u64> = None;
/// `routes[i].outbox_max_age`: a queued send undelivered this long (from when it was first
/// queued) is a dead letter. On an API with WeCom's duplicate check it is at most the route's
/// `duplicate_check_interval`, which an outbox route without one of its own takes from here.
pub const DEFAULT_OUTBOX_MAX_AGE: &str = "1h";
/// The APIs a route may set `outbox: true` on: WeCom's message sends.
pub const OUTBOX_APIS: &[&str] = &[
    "/cgi-bin/message/send",
    "/cgi-bin/appchat/send",
    "/cgi-bin/linkedcorp/message/send",
    "/cgi-bin/webhook/send",
];
/// `store.max_bytes`: what the queued items (callbacks, outbox sends, dead letters) may hold.
pub const DEFAULT_STORE_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// `store.outbox_max_per_app`: sends one app may have waiting in the outbox (about an hour
/// of a busy app's notifications at WeCom's 10,000/min corp limit would be more than any
/// replay drains in `outbox_max_age`; 10,000 holds a long outage of a normal one).
pub const DEFAULT_OUTBOX_MAX_PER_APP: u64 = 10_000;
/// WeCom's ceiling for `duplicate_check_interval`, in seconds (4 h).
pub const MAX_DUPLICATE_CHECK_INTERVAL_SECS: u64 = 14_400;

/// Every route path starts with this.
pub const ROUTE_PATH_PREFIX: &str = "/cgi-bin/";

/// `fleet.key_prefix`: sidecars with the same prefix share limits and tokens.
pub const DEFAULT_KEY_PREFIX: &str = "wecom-sidecar:";
/// `fleet.size`: sidecars sharing the limits; each keeps `limit / size` while Redis is down.
pub const DEFAULT_FLEET_SIZE: u32 = 1;
/// `fleet.timeout`: long enough for a Redis in the same region, short enough that a hung one
/// costs a call little before it is decided locally.
pub const DEFAULT_FLEET_TIMEOUT: &str = "250ms";
/// The longest `fleet.timeout` accepted: every call may wait this long while Redis hangs.
pub const MAX_FLEET_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// `fleet.share`: what the fleet shares through Redis.
pub const DEFAULT_FLEET_SHARE: &[&str] = &["tokens", "quotas"];
/// Consecutive failures that eject an upstream.
pub const DEFAULT_CONSECUTIVE_FAILURES: u32 = 5;
/// First ejection time; each further ejection adds as much again.
pub const DEFAULT_BASE_EJECTION: &str = "30s";
/// Longest ejection.
pub const DEFAULT_MAX_EJECTION: &str = "5m";
/// How often an ejected upstream is probed.
pub const DEFAULT_HEALTH_CHECK_INTERVAL: &str = "5s";
/// Timeout of one probe.
pub const DEFAULT_HEALTH_CHECK_TIMEOUT: &str = "2s";

/// `client.header_timeout`: the longest an app may take to send a whole request head, from the
/// connection's start (first request) or from its first byte (later ones). Slow heads
/// (slowloris) hold a descriptor each; this bounds how long.
pub const DEFAULT_HEADER_TIMEOUT: &str = "10s";
/// `client.body_timeout`: the longest a request body read, or an answer write, may make no
/// progress.
pub const DEFAULT_BODY_TIMEOUT: &str = "30s";
/// `client.idle_timeout`: how long a kept-alive app connection may sit between calls (nginx's
/// `keepalive_timeout` default).
pub const DEFAULT_IDLE_TIMEOUT: &str = "75s";
/// Descriptors kept back from app connections when `client.max_connections` is derived from
/// the descriptor limit: listeners, Redis, the store, spool files and config reads (128), and
/// upstream connections idle in the pool (256).
pub const FD_RESERVE: u64 = 384;
/// Fewest app connections the derived `client.max_connections` allows, however low the
/// descriptor limit.
pub const MIN_MAX_CONNECTIONS: u64 = 16;

/// `callbacks.listen`: where WeCom's pushes arrive (behind the ingress WeCom reaches).
pub const DEFAULT_CALLBACK_LISTEN: &str = "127.0.0.1:8090";
/// `callbacks.apps[].reply_within`: an app answer inside this becomes the passive reply. WeCom
/// waits 5 s for its answer, so this stays under it.
pub const DEFAULT_REPLY_WITHIN: &str = "3s";
/// Longest `reply_within`: WeCom gives up on the whole answer after 5 s.
pub const MAX_REPLY_WITHIN_MS: u64 = 4_500;
/// `callbacks.delivery.timeout`: one delivery attempt to the app.
pub const DEFAULT_DELIVERY_TIMEOUT: &str = "5s";
/// `callbacks.delivery.backoff_base`: the first wait after a failed delivery, doubling.
pub const DEFAULT_DELIVERY_BACKOFF_BASE: &str = "1s";
/// `callbacks.delivery.backoff_max`: the longest wait between deliveries of one push.
pub const DEFAULT_DELIVERY_BACKOFF_MAX: &str = "5m";
/// `callbacks.delivery.max_age`: undelivered this long, a push is a dead letter.
pub const DEFAULT_DELIVERY_MAX_AGE: &str = "24h";
/// The length of a callback `EncodingAESKey` (base64 of 32 bytes, without its `=`).
pub const AES_KEY_CHARS: usize = 43;
/// Bodies WeCom may push: larger ones are refused unread.
pub const MAX_CALLBACK_BODY: usize = 1024 * 1024;
