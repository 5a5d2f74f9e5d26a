//! One app's sender: the head of the app's outbox queue, replayed through [`Replay`] (the
//! pipeline's forwarding) until WeCom takes it or it is older than its `outbox_max_age`, then
//! the next. Strictly in order: the next send waits for the head.
//!
//! What a replay's end means:
//! - **Sent** (errcode 0, partial success included): the send is done; WeCom's answer
//!   (`msgid`) is recorded by its outbox id.
//! - **Refused** (any other errcode WeCom gave: 40003 a bad user, 48002, ...): repeating it
//!   cannot help, so it becomes a dead letter at once with WeCom's errcode as its last error,
//!   and the answer is recorded. A dead letter can be retried from the admin after the cause
//!   is fixed, or deleted.
//! - **Held** (a local quota, a block WeCom announced, the calls in flight): no attempt is
//!   counted; the sender waits as long as the hold says.
//! - **Failed** (WeCom could not be reached, 5xx, errcode -1, the deadline, no token): the
//!   attempt is counted in the store and the sender waits a jittered exponential backoff from
//!   [`BACKOFF_BASE`] to [`BACKOFF_MAX`] ([`crate::retry::queue_backoff`]), never past the
//!   send's `outbox_max_age`, when it becomes a dead letter with the last error.
//!
//! A replay of `webhook/send` whose first attempt may have reached WeCom (it failed after the
//! request was written) can deliver the robot message twice: WeCom has no duplicate check
//! for robots. Such replays are counted once per send in `wecom_outbox_replays_unsafe_total`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use pingora::server::ShutdownWatch;

use super::record::{Record, State, WecomAnswer};
use super::{AppOutbox, Meta};
use crate::metrics::Metrics;
use crate::store::worker::{self, Next, QueueWorker};
use crate::store::{now_ms, Item, Store};

/// The first wait after a failed replay; it doubles per failed attempt.
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// The longest wait between replays of one send.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// The wait after the store itself failed (not the send's fault: no attempt counted).
const STORE_RETRY: Duration = Duration::from_secs(1);

/// How a replay ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replayed {
    /// WeCom took it (errcode 0).
    Sent(WecomAnswer),
    /// WeCom refused it with this answer: repeating cannot help.
    Refused(WecomAnswer),
    /// Not sent: a quota or block holds it for `wait`.
    Held { wait: Duration, why: String },
    /// Not delivered, for a reason that may pass (words safe to log).
    Failed { why: String },
}

/// Sends a queued send once, as an app's call would be sent.
#[async_trait::async_trait]
pub trait Replay: Send + Sync {
    async fn replay(&self, meta: &Meta, body: &[u8]) -> Replayed;
}

/// What one app's sender works with.
pub struct Sender {
    pub app: Arc<AppOutbox>,
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub replay: Arc<dyn Replay>,
    /// In fleet mode, how often to look at a queue another sidecar may hold.
    pub poll: Option<Duration>,
}

impl Sender {
    /// Replays until `shutdown`.
    pub async fn run(self, shutdown: ShutdownWatch) {
        tracing::debug!(app = self.app.app.as_str(), "outbox sender started");
        // Sends left from before a restart are waiting: new ones queue behind them from the
        // start, not only once the first replay has been tried.
        let _ = show_depth(&*self.store, &self.metrics, &self.app).await;
        worker::run(&self, shutdown).await;
        tracing::debug!(app = self.app.app.as_str(), "outbox sender stopped");
    }

    async fn look(&self) -> Next {
        let item = match self.store.head(&self.app.queue).await {
            Ok(Some(item)) => item,
            Ok(None) => return Next::Idle,
            Err(e) => {
                tracing::warn!(app = self.app.app.as_str(), error = %e, "outbox: the store cannot be read; trying again");
                return Next::Wait(STORE_RETRY);
            }
        };
        let meta = Meta::from_bytes(&item.meta);
        let max_age = Duration::from_millis(meta.max_age_ms);
        let age = Duration::from_millis(now_ms().saturating_sub(meta.age_from(item.added_ms)));
        if age >= max_age {
            let why = item.last_error.as_deref().unwrap_or("not tried in time");
            return self.bury(&item, &meta, State::Dead, why, None).await;
        }
        if item.attempts == 0
            && meta.maybe_sent
            && !crate::wecom::apis::accepts_duplicate_check(&meta.api)
        {
            self.metrics
                .outbox_unsafe_replays
                .with_label_values(&[self.app.app.as_str()])
                .inc();
            tracing::warn!(
                app = self.app.app.as_str(),
                api = meta.api.as_str(),
                outbox_id = meta.outbox_id.as_str(),
                "outbox: replaying a send whose first attempt may have reached WeCom, which has no duplicate check for it: it may be delivered twice"
            );
        }
        match self.replay.replay(&meta, &item.payload).await {
            Replayed::Sent(answer) => self.sent(&item, &meta, age, answer).await,
            Replayed::Refused(answer) => {
                let why = format!(
                    "WeCom refused the replay: errcode {} ({})",
                    answer.errcode, answer.errmsg
                );
                self.bury(&item, &meta, State::Refused, &why, Some(answer))
                    .await
            }
            Replayed::Held { wait, why } => {
                let left = max_age.saturating_sub(age);
                tracing::debug!(
                    app = self.app.app.as_str(),
                    outbox_id = meta.outbox_id.as_str(),
                    why,
                    wait_ms = wait.as_millis() as u64,
                    "outbox: replay held"
                );
                Next::Wait(wait.min(left).max(Duration::from_millis(10)))
            }
            Replayed::Failed { why } => self.failed(&item, &meta, age, max_age, &why).await,
        }
    }

    async fn sent(&self, item: &Item, meta: &Meta, age: Duration, answer: WecomAnswer) -> Next {
        let app = self.app.app.as_str();
        if let Err(e) = self.store.done(&self.app.queue, item.id).await {
            // Sent, but still the head: it goes again, and WeCom's duplicate check drops it.
            tracing::warn!(app, outbox_id = meta.outbox_id.as_str(), error = %e, "outbox: sent but not marked done in the store; it will be replayed");
            return Next::Wait(STORE_RETRY);
        }
        self.app.counts.sent.fetch_add(1, Ordering::Relaxed);
        self.count(meta, "sent");
        tracing::info!(
            app,
            api = meta.api.as_str(),
            outbox_id = meta.outbox_id.as_str(),
            attempt = item.attempts + 1,
            age_ms = age.as_millis() as u64,
            msgid = answer.msgid.as_deref().unwrap_or(""),
            "outbox send delivered"
        );
        let mut r = Record::new(meta, item.id, State::Sent);
        r.attempts = item.attempts + 1;
        r.answer = Some(answer);
        self.app.records.put(r);
        Next::Again
    }

    async fn failed(
        &self,
        item: &Item,
        meta: &Meta,
        age: Duration,
        max_age: Duration,
        why: &str,
    ) -> Next {
        let app = self.app.app.as_str();
        let attempts = match self.store.failed(&self.app.queue, item.id, why).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(app, error = %e, "outbox: the attempt could not be counted in the store");
                item.attempts.saturating_add(1)
            }
        };
        let left = max_age.saturating_sub(age);
        let wait = crate::retry::queue_backoff(BACKOFF_BASE, BACKOFF_MAX, attempts, rand::random())
            .min(left);
        let mut r = Record::new(meta, item.id, State::Queued);
        r.attempts = attempts;
        r.last_error = Some(why.to_owned());
        self.app.records.put(r);
        tracing::warn!(
            app,
            outbox_id = meta.outbox_id.as_str(),
            attempt = attempts,
            error = why,
            retry_in_ms = wait.as_millis() as u64,
            "outbox replay failed; retrying"
        );
        Next::Wait(wait)
    }

    async fn bury(
        &self,
        item: &Item,
        meta: &Meta,
        state: State,
        why: &str,
        answer: Option<WecomAnswer>,
    ) -> Next {
        let app = self.app.app.as_str();
        if let Err(e) = self.store.bury(&self.app.queue, item.id, why).await {
            tracing::warn!(app, error = %e, "outbox: the dead letter could not be stored; trying again");
            return Next::Wait(STORE_RETRY);
        }
        let result = match state {
            State::Refused => {
                self.app.counts.refused.fetch_add(1, Ordering::Relaxed);
                "refused"
            }
            _ => {
                self.app.counts.dead.fetch_add(1, Ordering::Relaxed);
                "dead"
            }
        };
        self.count(meta, result);
        tracing::warn!(
            app,
            api = meta.api.as_str(),
            outbox_id = meta.outbox_id.as_str(),
            attempts = item.attempts,
            error = why,
            "outbox send kept as a dead letter (GET /admin/outbox/dead)"
        );
        let mut r = Record::new(meta, item.id, state);
        r.attempts = item.attempts;
        r.last_error = Some(why.to_owned());
        r.answer = answer;
        self.app.records.put(r);
        Next::Again
    }

    fn count(&self, meta: &Meta, result: &str) {
        self.metrics
            .outbox_total
            .with_label_values(&[meta.api.as_str(), self.app.app.as_str(), result])
            .inc();
    }
}

#[async_trait::async_trait]
impl QueueWorker for Sender {
    async fn step(&self) -> Next {
        self.look().await
    }

    async fn show_depth(&self) {
        // A failure leaves the gauges at their last values; the next step reads again.
        let _ = show_depth(&*self.store, &self.metrics, &self.app).await;
    }

    fn wake(&self) -> &tokio::sync::Notify {
        &self.app.wake
    }

    fn poll(&self) -> Option<Duration> {
        self.poll
    }
}

/// Sets `app`'s outbox gauges from the store; the depth read, or the store's error.
pub async fn show_depth(
    store: &dyn Store,
    metrics: &Metrics,
    app: &AppOutbox,
) -> Result<crate::store::Depth, crate::store::StoreError> {
    let d = store.depth(&app.queue).await?;
    app.backlog
        .store(d.queued > 0, std::sync::atomic::Ordering::Release);
    let name = app.app.as_str();
    metrics
        .outbox_depth
        .with_label_values(&[name])
        .set(i64::try_from(d.queued).unwrap_or(i64::MAX));
    let oldest = d.oldest_ms.map_or(0, |t| now_ms().saturating_sub(t));
    metrics
        .outbox_oldest
        .with_label_values(&[name])
        .set(oldest as f64 / 1000.0);
    metrics
        .outbox_dead_letters
        .with_label_values(&[name])
        .set(i64::try_from(d.dead).unwrap_or(i64::MAX));
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::{Enqueued, Outbox, Outgoing};
    use crate::store::sqlite::SqliteStore;
    use crate::store::Limits;
    use std::sync::Mutex;

    /// Answers replays from a script, recording the bodies it was given.
    struct Scripted {
        answers: Mutex<Vec<Replayed>>,
        seen: Mutex<Vec<Vec<u8>>>,
    }

    #[async_trait::async_trait]
    impl Replay for Scripted {
        async fn replay(&self, _meta: &Meta, body: &[u8]) -> Replayed {
            self.seen.lock().unwrap().push(body.to_vec());
            let mut a = self.answers.lock().unwrap();
            if a.is_empty() {
                Replayed::Failed {
                    why: "script ended".into(),
                }
            } else {
                a.remove(0)
            }
        }
    }

    fn ok(msgid: &str) -> WecomAnswer {
        WecomAnswer {
            errcode: 0,
            errmsg: "ok".into(),
            msgid: Some(msgid.into()),
        }
    }

    async fn setup(
        dir: &tempfile::TempDir,
        answers: Vec<Replayed>,
        max_age: Duration,
    ) -> (Outbox, Sender, Arc<Scripted>, Vec<String>) {
        let store = SqliteStore::open(&dir.path().join("s.db"), Duration::from_secs(60)).unwrap();
        let o = Outbox::new(Arc::new(store), Arc::new(Metrics::new()));
        let mut ids = Vec::new();
        for body in [&b"one"[..], b"two"] {
            let s = Outgoing {
                api: "message/send",
                path: "/cgi-bin/message/send",
                query: "",
                app: "hr-bot",
                body,
                max_age,
                since_call: Duration::ZERO,
                maybe_sent: false,
                queued_for: "test",
            };
            match o.enqueue(s, Limits::NONE).await.unwrap() {
                Enqueued::Queued { outbox_id } => ids.push(outbox_id),
                Enqueued::Full(f) => panic!("{f}"),
            }
        }
        let script = Arc::new(Scripted {
            answers: Mutex::new(answers),
            seen: Mutex::new(Vec::new()),
        });
        let sender = Sender {
            app: o.app("hr-bot"),
            store: o.store.clone(),
            metrics: o.metrics.clone(),
            replay: script.clone(),
            poll: None,
        };
        (o, sender, script, ids)
    }

    #[tokio::test]
    async fn replays_in_order_retries_failures_and_buries_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let refused = WecomAnswer {
            errcode: 40003,
            errmsg: "invalid userid".into(),
            msgid: None,
        };
        let answers = vec![
            Replayed::Failed {
                why: "upstream primary reset".into(),
            },
            Replayed::Sent(ok("M1")),
            Replayed::Refused(refused.clone()),
        ];
        let (o, sender, script, ids) = setup(&dir, answers, Duration::from_secs(60)).await;
        assert!(matches!(sender.look().await, Next::Wait(w) if w >= BACKOFF_BASE / 2));
        assert!(matches!(sender.look().await, Next::Again));
        assert!(matches!(sender.look().await, Next::Again));
        assert!(matches!(sender.look().await, Next::Idle));
        assert_eq!(
            *script.seen.lock().unwrap(),
            vec![b"one".to_vec(), b"one".to_vec(), b"two".to_vec()]
        );
        let app = o.app("hr-bot");
        let first = app.records.get(&ids[0]).unwrap();
        assert_eq!((first.state, first.attempts), (State::Sent, 2));
        assert_eq!(first.answer, Some(ok("M1")));
        let second = app.records.get(&ids[1]).unwrap();
        assert_eq!(
            (second.state, second.answer),
            (State::Refused, Some(refused))
        );
        let dead = o.store.dead(&app.queue, 10).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert!(dead[0].last_error.as_deref().unwrap().contains("40003"));
    }

    #[tokio::test]
    async fn a_send_older_than_its_max_age_is_a_dead_letter_untried() {
        let dir = tempfile::tempdir().unwrap();
        let (o, sender, script, ids) = setup(&dir, vec![], Duration::from_millis(1)).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(matches!(sender.look().await, Next::Again));
        assert!(script.seen.lock().unwrap().is_empty());
        let app = o.app("hr-bot");
        assert_eq!(app.records.get(&ids[0]).unwrap().state, State::Dead);
        let d = show_depth(&*o.store, &o.metrics, &app).await.unwrap();
        assert_eq!((d.queued, d.dead), (1, 1));
    }

    #[tokio::test]
    async fn a_hold_waits_without_counting_an_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let hold = Replayed::Held {
            wait: Duration::from_secs(3),
            why: "quota".into(),
        };
        let (o, sender, _script, _ids) = setup(&dir, vec![hold], Duration::from_secs(60)).await;
        assert!(matches!(sender.look().await, Next::Wait(w) if w == Duration::from_secs(3)));
        let head = o.store.head(&o.app("hr-bot").queue).await.unwrap().unwrap();
        assert_eq!(head.attempts, 0);
    }
}
