//! Fleet mode: quotas and tokens shared by every sidecar with the same `key_prefix`, through
//! Redis. WeCom's limits are per corp, not per pod, and `gettoken` is throttled per app: 50 pods
//! must act as one.
//!
//! Redis down or slow never fails a call: quota decisions fall back to a local share of each
//! limit (`limit / fleet.size`), tokens to the local single-flight fetch; every Redis operation
//! has a short timeout; the connection manager reconnects by itself and sharing resumes as soon
//! as Redis answers. `wecom_redis_up` and `wecom_fleet_fallbacks_total{what}` show it.

pub mod per_day;
pub mod quota;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::{Fleet, ShareKind};
use crate::metrics::Metrics;

/// Least time between two attempts to open the first connection.
const CONNECT_EVERY: Duration = Duration::from_secs(1);
/// While Redis is down, how often one call tries it again (the others decide locally at once).
const DOWN_RETRY: Duration = Duration::from_millis(500);

/// The fleet's shared engine.
pub struct FleetClient {
    client: redis::Client,
    conn: ArcSwapOption<ConnectionManager>,
    connecting: tokio::sync::Mutex<Option<tokio::time::Instant>>,
    pub prefix: String,
    pub size: u32,
    pub share_quotas: bool,
    pub share_tokens: bool,
    /// Longest one operation may take before the caller decides alone (`fleet.timeout`).
    op_timeout: Duration,
    up: AtomicBool,
    /// When Redis last failed, as milliseconds since `epoch`; while it is down, calls do not
    /// wait on it: one probe per `DOWN_RETRY`, the rest decide locally at once.
    failed_at_ms: AtomicU64,
    epoch: tokio::time::Instant,
    fallbacks_quota: AtomicU64,
    fallbacks_token: AtomicU64,
    metrics: Arc<Metrics>,
}

/// Redis could not decide (down, slow, or answered nonsense): decide locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetDown;

impl FleetClient {
    /// A client for `fleet`; connects lazily, never fails at startup for Redis being down.
    pub fn new(fleet: &Fleet, metrics: Arc<Metrics>) -> Result<Self, String> {
        let client = redis::Client::open(fleet.redis_url.expose())
            .map_err(|e| format!("fleet.redis_url is not usable: {:?}", e.kind()))?;
        metrics.redis_up.set(0);
        Ok(FleetClient {
            client,
            conn: ArcSwapOption::empty(),
            connecting: tokio::sync::Mutex::new(None),
            prefix: fleet.key_prefix.clone(),
            size: fleet.size.max(1),
            share_quotas: fleet.share.contains(&ShareKind::Quotas),
            share_tokens: fleet.share.contains(&ShareKind::Tokens),
            op_timeout: fleet.timeout,
            up: AtomicBool::new(true),
            failed_at_ms: AtomicU64::new(0),
            epoch: tokio::time::Instant::now(),
            fallbacks_quota: AtomicU64::new(0),
            fallbacks_token: AtomicU64::new(0),
            metrics,
        })
    }

    /// A connection, or `None` while Redis cannot be reached.
    pub async fn conn(&self) -> Option<ConnectionManager> {
        if let Some(c) = self.conn.load_full() {
            return Some((*c).clone());
        }
        // One connect at a time; callers arriving meanwhile wait for its outcome.
        let mut last = self.connecting.lock().await;
        if let Some(c) = self.conn.load_full() {
            return Some((*c).clone());
        }
        if last.is_some_and(|at| at.elapsed() < CONNECT_EVERY) {
            return None;
        }
        *last = Some(tokio::time::Instant::now());
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(self.op_timeout)
            .set_response_timeout(self.op_timeout)
            .set_number_of_retries(1);
        match tokio::time::timeout(
            self.op_timeout * 2,
            self.client.get_connection_manager_with_config(cfg),
        )
        .await
        {
            Ok(Ok(c)) => {
                self.conn.store(Some(Arc::new(c.clone())));
                tracing::info!("fleet: connected to Redis");
                Some(c)
            }
            _ => {
                // The next attempt counts from this failure, not from this attempt's start:
                // an attempt can take longer than CONNECT_EVERY (the client's own retries),
                // and callers queued on the lock meanwhile must not each try again in turn.
                *last = Some(tokio::time::Instant::now());
                self.mark(false);
                None
            }
        }
    }

    /// Records whether Redis just answered.
    pub fn mark(&self, up: bool) {
        if !up {
            self.failed_at_ms
                .store(self.epoch.elapsed().as_millis() as u64, Ordering::Release);
        }
        let was = self.up.swap(up, Ordering::AcqRel);
        self.metrics.redis_up.set(i64::from(up));
        if was != up {
            if up {
                tracing::info!("fleet: Redis answers again; quotas and tokens shared");
            } else {
                tracing::warn!("fleet: Redis unreachable or slow; local quota shares and local token fetches until it answers");
            }
        }
    }

    pub fn up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Counts a decision taken locally because Redis could not.
    pub fn fell_back(&self, what: &'static str) {
        match what {
            "quota" => self.fallbacks_quota.fetch_add(1, Ordering::Relaxed),
            _ => self.fallbacks_token.fetch_add(1, Ordering::Relaxed),
        };
        self.metrics
            .fleet_fallbacks
            .with_label_values(&[what])
            .inc();
    }

    /// What `/admin/status` shows.
    pub fn status(&self) -> serde_json::Value {
        serde_json::json!({
            "mode": "fleet",
            // Up once Redis has answered and while it does (`wecom_redis_up`): `up()` is also
            // true before the first try, so that the first call tries it.
            "redis_up": self.metrics.redis_up.get() == 1,
            "key_prefix": self.prefix,
            "size": self.size,
            "shares_quotas": self.share_quotas,
            "shares_tokens": self.share_tokens,
            "fallbacks": {
                "quota": self.fallbacks_quota.load(Ordering::Relaxed),
                "token": self.fallbacks_token.load(Ordering::Relaxed),
            },
        })
    }

    /// Runs `op` on a connection within the timeout; `FleetDown` on any failure.
    pub async fn run<T, F, Fut>(&self, op: F) -> Result<T, FleetDown>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        if !self.up() {
            // Down: one caller per DOWN_RETRY probes; the others decide locally at once.
            let now = self.epoch.elapsed().as_millis() as u64;
            let failed = self.failed_at_ms.load(Ordering::Acquire);
            if now.saturating_sub(failed) < DOWN_RETRY.as_millis() as u64
                || self
                    .failed_at_ms
                    .compare_exchange(failed, now, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
            {
                return Err(FleetDown);
            }
        }
        let Some(conn) = self.conn().await else {
            return Err(FleetDown);
        };
        match tokio::time::timeout(self.op_timeout, op(conn)).await {
            Ok(Ok(v)) => {
                self.mark(true);
                Ok(v)
            }
            _ => {
                self.mark(false);
                Err(FleetDown)
            }
        }
    }
}

#[cfg(test)]
mod test_redis;
#[cfg(test)]
mod tests;
