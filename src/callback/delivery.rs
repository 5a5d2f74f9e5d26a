//! One app's delivery worker: the store's head of the app's queue, POSTed to `deliver_to`
//! until the app takes it (a 2xx) or it is older than `delivery.max_age` (a dead letter with
//! the last error), then the next. Strictly in order: the next push waits for the head.
//!
//! - A 2xx: the answer is offered to WeCom's request if it still waits (the passive reply),
//!   then the push is `done`. A kill -9 between the app's answer and `done` delivers the push
//!   again after the restart, with the same `X-WeCom-Callback-Id` (the documented case).
//! - Anything else (another status, no connection, no answer within `delivery.timeout`): the
//!   attempt is counted in the store (`X-WeCom-Attempt` grows across restarts) and the worker
//!   waits a jittered exponential backoff: attempt n waits between half and all of
//!   `backoff_base` × 2^(n-1), at most `backoff_max`, and never past the push's `max_age`.
//! - Nothing queued: it sleeps until the listener commits a push (`wake`). In fleet mode the
//!   queue may be another sidecar's (its lease); then it looks again every half lease.
//!
//! `wecom_callback_queue_depth{app}` is set from the store after each step; deliveries are
//! counted in `wecom_callback_deliveries_total{app,result}` and timed from commit in
//! `wecom_callback_delivery_seconds{app}`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pingora::server::ShutdownWatch;

use super::post::Client;
use super::{CallbackQueue, Meta};
use crate::config::Delivery;
use crate::metrics::Metrics;
use crate::store::worker::{self, Next, QueueWorker};
use crate::store::{now_ms, Item, Store};

/// The wait after the store itself failed (it is not the push's fault: no attempt counted).
const STORE_RETRY: Duration = Duration::from_secs(1);

/// The first pause before marking a delivered push done again, when the store failed to;
/// doubled up to [`STORE_RETRY`].
const DONE_RETRY: Duration = Duration::from_millis(50);

/// The part of a queue's hold kept free after an attempt, to record its outcome in the store.
const HOLD_MARGIN_SHARE: u32 = 4;
/// The shortest attempt worth starting: with less of the hold left, it is renewed first.
const SHORTEST_ATTEMPT: Duration = Duration::from_millis(100);

/// How long an attempt may take: `delivery.timeout`, and in fleet mode no longer than the
/// hold on the queue left at `now`, less a quarter of the timeout for recording the outcome.
/// `None`: too little is left to start one (renew the hold first).
fn attempt_bound(timeout: Duration, held_until: Option<Instant>, now: Instant) -> Option<Duration> {
    let Some(until) = held_until else {
        return Some(timeout);
    };
    let left = until
        .saturating_duration_since(now)
        .saturating_sub(timeout / HOLD_MARGIN_SHARE);
    (left >= SHORTEST_ATTEMPT.min(timeout)).then(|| timeout.min(left))
}

/// What one app's worker works with.
pub struct Worker {
    pub app: Arc<CallbackQueue>,
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub client: Arc<Client>,
    pub delivery: Delivery,
    /// In fleet mode, how often to look at a queue another sidecar may hold (half its lease).
    pub poll: Option<Duration>,
}

impl Worker {
    /// Delivers until `shutdown`.
    pub async fn run(self, shutdown: ShutdownWatch) {
        let name = self.app.cfg.app.clone();
        tracing::debug!(app = name.as_str(), "callback delivery worker started");
        worker::run(&self, shutdown).await;
        tracing::debug!(app = name.as_str(), "callback delivery worker stopped");
    }
}

#[async_trait::async_trait]
impl QueueWorker for Worker {
    async fn step(&self) -> Next {
        self.step().await
    }

    async fn show_depth(&self) {
        self.show_depth().await;
    }

    fn wake(&self) -> &tokio::sync::Notify {
        &self.app.wake
    }

    fn poll(&self) -> Option<Duration> {
        self.poll
    }
}

impl Worker {
    /// One look at the head.
    async fn step(&self) -> Next {
        let queue = &self.app.queue;
        let (item, held_until) = match self.store.head_held(queue).await {
            Ok(Some(held)) => held,
            Ok(None) => return Next::Idle,
            Err(e) => {
                tracing::warn!(app = self.app.cfg.app.as_str(), error = %e, "callback delivery: the store cannot be read; trying again");
                return Next::Wait(STORE_RETRY);
            }
        };
        let age = Duration::from_millis(now_ms().saturating_sub(item.added_ms));
        if age >= self.delivery.max_age {
            let why = item.last_error.as_deref().unwrap_or("not tried in time");
            return self.bury(&item, why).await;
        }
        // In fleet mode the attempt must end while this sidecar still holds the queue, with
        // time left to record a 2xx: past the hold another sidecar may take the push and
        // deliver it again.
        let Some(timeout) = attempt_bound(self.delivery.timeout, held_until, Instant::now()) else {
            // Too little of the hold left (the store was slow): renew it and look again.
            return Next::Again;
        };
        let meta = Meta::from_bytes(&item.meta);
        match self.attempt(&item, &meta, timeout).await {
            Ok(reply) => {
                let until = held_until.unwrap_or_else(|| Instant::now() + self.delivery.timeout);
                self.delivered(&item, &meta, age, reply, until).await
            }
            Err(why) => self.failed(&item, &meta, age, &why).await,
        }
    }

    /// POSTs the item; `Ok` with the answer's body for a 2xx.
    async fn attempt(
        &self,
        item: &Item,
        meta: &Meta,
        timeout: Duration,
    ) -> Result<bytes::Bytes, String> {
        let attempt = item.attempts.saturating_add(1).to_string();
        let mut headers = vec![
            ("X-WeCom-App", self.app.cfg.app.as_str()),
            ("X-WeCom-Callback-Id", meta.callback_id.as_str()),
            ("X-WeCom-Attempt", attempt.as_str()),
        ];
        if let Some(t) = &meta.msg_type {
            headers.push(("X-WeCom-MsgType", t));
        }
        if let Some(e) = &meta.event {
            headers.push(("X-WeCom-Event", e));
        }
        let answered = self
            .client
            .post(&self.app.cfg.deliver_to, &headers, &item.payload, timeout)
            .await?;
        if !(200..300).contains(&answered.status) {
            return Err(format!("the app answered {}", answered.status));
        }
        Ok(answered.body.unwrap_or_else(|| {
            tracing::warn!(
                app = self.app.cfg.app.as_str(),
                id = meta.callback_id.as_str(),
                cap = super::post::REPLY_CAP,
                "callback delivery: the app's answer is over the cap; delivered, no passive reply"
            );
            bytes::Bytes::new()
        }))
    }

    async fn delivered(
        &self,
        item: &Item,
        meta: &Meta,
        age: Duration,
        reply: bytes::Bytes,
        until: Instant,
    ) -> Next {
        let app = self.app.cfg.app.as_str();
        // An empty answer is offered too: WeCom's request then gets its empty 200 at once
        // instead of waiting out `reply_within`.
        let replied = self.app.offer_reply(item.id, reply);
        // Marking it done is tried again while it may still be (in fleet mode, while this
        // sidecar holds the queue; else for one delivery timeout): a store slow to answer
        // (a Redis command past `fleet.timeout`) costs a pause, not a second delivery.
        let mut pause = DONE_RETRY;
        while let Err(e) = self.store.done(&self.app.queue, item.id).await {
            if Instant::now() + pause >= until {
                // Delivered, but still the head: it goes again, same callback id.
                tracing::warn!(app, id = meta.callback_id.as_str(), error = %e, "callback delivered but not marked done in the store; the app will see it again");
                return Next::Wait(STORE_RETRY);
            }
            tracing::debug!(app, id = meta.callback_id.as_str(), error = %e, "callback delivered; marking it done again");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(STORE_RETRY);
        }
        self.app.counts.delivered.fetch_add(1, Ordering::Relaxed);
        self.count("delivered");
        self.metrics
            .callback_delivery_seconds
            .with_label_values(&[app])
            .observe(age.as_secs_f64());
        tracing::info!(
            app,
            id = meta.callback_id.as_str(),
            attempt = item.attempts + 1,
            replied,
            age_ms = age.as_millis() as u64,
            "callback delivered"
        );
        Next::Again
    }

    async fn failed(&self, item: &Item, meta: &Meta, age: Duration, why: &str) -> Next {
        let app = self.app.cfg.app.as_str();
        let attempts = match self.store.failed(&self.app.queue, item.id, why).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(app, error = %e, "callback delivery: the attempt could not be counted in the store");
                item.attempts.saturating_add(1)
            }
        };
        let left = self.delivery.max_age.saturating_sub(age);
        if left.is_zero() {
            return self.bury(item, why).await;
        }
        self.count("retried");
        let wait = backoff(&self.delivery, attempts, rand::random::<f64>()).min(left);
        tracing::warn!(
            app,
            id = meta.callback_id.as_str(),
            attempt = attempts,
            error = why,
            retry_in_ms = wait.as_millis() as u64,
            "callback delivery failed; retrying"
        );
        Next::Wait(wait)
    }

    async fn bury(&self, item: &Item, why: &str) -> Next {
        let app = self.app.cfg.app.as_str();
        let id = Meta::from_bytes(&item.meta).callback_id;
        if let Err(e) = self.store.bury(&self.app.queue, item.id, why).await {
            tracing::warn!(app, error = %e, "callback delivery: the dead letter could not be stored; trying again");
            return Next::Wait(STORE_RETRY);
        }
        self.app.counts.dead.fetch_add(1, Ordering::Relaxed);
        self.count("dead");
        tracing::warn!(
            app,
            id = id.as_str(),
            attempts = item.attempts,
            error = why,
            "callback undelivered for delivery.max_age: kept as a dead letter"
        );
        Next::Again
    }

    fn count(&self, result: &str) {
        self.metrics
            .callback_deliveries
            .with_label_values(&[self.app.cfg.app.as_str(), result])
            .inc();
    }

    async fn show_depth(&self) {
        if let Ok(d) = self.store.depth(&self.app.queue).await {
            self.metrics
                .callback_queue_depth
                .with_label_values(&[self.app.cfg.app.as_str()])
                .set(d.queued as i64);
        }
    }
}

/// The wait after `attempts` failed attempts (see [`crate::retry::queue_backoff`]).
fn backoff(d: &Delivery, attempts: u32, jitter: f64) -> Duration {
    crate::retry::queue_backoff(d.backoff_base, d.backoff_max, attempts, jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery() -> Delivery {
        Delivery {
            timeout: Duration::from_secs(5),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            max_age: Duration::from_secs(3600),
        }
    }

    #[test]
    fn an_attempt_ends_while_the_queue_is_held_with_a_quarter_timeout_to_spare() {
        let (t, now) = (Duration::from_secs(4), Instant::now());
        let s = Duration::from_secs;
        // Alone on its store: the whole timeout.
        assert_eq!(attempt_bound(t, None, now), Some(t));
        // A fresh hold of two timeouts: the whole timeout.
        assert_eq!(attempt_bound(t, Some(now + s(8)), now), Some(t));
        // Exactly the timeout and its margin left: still whole.
        assert_eq!(attempt_bound(t, Some(now + s(5)), now), Some(t));
        // Less: cut to what is left less the margin (1 s).
        assert_eq!(attempt_bound(t, Some(now + s(3)), now), Some(s(2)));
        assert_eq!(
            attempt_bound(t, Some(now + Duration::from_millis(1_100)), now),
            Some(Duration::from_millis(100))
        );
        // Too little to start, or the hold is over: none.
        assert_eq!(
            attempt_bound(t, Some(now + Duration::from_millis(1_099)), now),
            None
        );
        assert_eq!(attempt_bound(t, Some(now + s(1)), now), None);
        assert_eq!(attempt_bound(t, Some(now), now + s(1)), None);
        // A timeout under the shortest attempt still gets its own length.
        let tiny = Duration::from_millis(40);
        assert_eq!(attempt_bound(tiny, Some(now + s(1)), now), Some(tiny));
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter_in_the_upper_half() {
        let d = delivery();
        assert_eq!(backoff(&d, 1, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(&d, 1, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(&d, 2, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(&d, 4, 1.0), Duration::from_secs(8));
        assert_eq!(backoff(&d, 7, 1.0), Duration::from_secs(60));
        assert_eq!(backoff(&d, 7, 0.0), Duration::from_secs(30));
        assert_eq!(backoff(&d, u32::MAX, 1.0), Duration::from_secs(60));
        assert_eq!(backoff(&d, 0, 1.0), Duration::from_secs(1));
    }
}
