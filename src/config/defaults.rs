//! Defaults for every optional key, one documented constant each.

/// Where apps send their WeCom calls.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Where `/metrics`, `/healthz`, `/readyz` and `/admin/*` answer.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9901";
/// TCP (and TLS) connect timeout of an upstream.
pub const DEFAULT_CONNECT_TIMEOUT: &str = "2s";
/// Per-attempt timeout of an upstream.
pub const DEFAULT_TIMEOUT: &str = "10s";
/// How long before expiry a token is refreshed in the background.
pub const DEFAULT_REFRESH_BEFORE_EXPIRY: &str = "5m";
/// Whole-call deadline, retries included.
pub const DEFAULT_DEADLINE: &str = "15s";
/// Attempts per call, the first included.
pub const DEFAULT_RETRY_ATTEMPTS: u32 = 3;
/// First backoff step.
pub const DEFAULT_BACKOFF_BASE: &str = "100ms";
/// Longest backoff step.
pub const DEFAULT_BACKOFF_MAX: &str = "2s";
/// WeCom's own per-corp, per-API limits.
pub const DEFAULT_QUOTA: &[&str] = &["10000/min", "150000/h"];
/// Redis key prefix of a fleet.
pub const DEFAULT_KEY_PREFIX: &str = "wecom-sidecar:";
/// Most attempts a retry policy may ask for.
pub const MAX_RETRY_ATTEMPTS: u32 = 10;
/// Longest a call waits for a quota slot with `on_limit: wait`.
pub const DEFAULT_MAX_WAIT: &str = "1s";
/// `duplicate_check_interval` sent with `dedupe: true` (WeCom's own default).
pub const DEFAULT_DUPLICATE_CHECK_INTERVAL: &str = "30m";
/// WeCom's ceiling for `duplicate_check_interval`.
pub const MAX_DUPLICATE_CHECK_INTERVAL_SECS: u64 = 14_400;
