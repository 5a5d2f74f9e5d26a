//! The outbox: message sends (`message/send`, `appchat/send`, `linkedcorp/message/send`,
//! `webhook/send` on a route with `outbox: true`) that WeCom could not be reached for are
//! committed to the store and replayed later, in order per app, delivered once.
//!
//! How a send flows: the pipeline (`proxy`) forwards it as any call; when every attempt failed
//! for a reason that is not WeCom's refusal (or, with `on_limit: queue`, a quota or a block
//! held it), it calls [`Outbox::enqueue`], which commits the send as it would have been sent
//! (the body with `enable_duplicate_check` already in it) to the app's queue `outbox:<app>`
//! (`outbox:robot` for `webhook/send`) under a fresh random key, so two identical sends of the
//! app are two messages. Only once it is durable does the app get the queued answer
//! ([`queued_answer`]). Past `store.max_bytes` or `store.outbox_max_per_app` nothing is queued
//! and the app gets the answer it would have got without the outbox ([`Enqueued::Full`]).
//!
//! Each app's [`sender`] replays the head of its queue through a [`sender::Replay`] (the
//! pipeline's own forwarding, so quotas, blocks, tokens, upstream choice and metrics apply),
//! and records WeCom's answer by the send's outbox id ([`record`]).
//!
//! Nothing here reads a body's content beyond carrying it: the admin sees ids, API, ages,
//! attempts, errors and WeCom's answer (`errcode`, `errmsg`, `msgid`), never a body or a
//! query (a `webhook/send` query holds the robot's key).

pub mod record;
pub mod sender;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::metrics::Metrics;
use crate::store::{now_ms, Added, Full, Limits, Store, StoreError};
use crate::wecom::answer::{LocalAnswer, Reason};
use record::{Record, Records, State};

/// The app name of `webhook/send` sends (group robots belong to no app).
pub const ROBOT: &str = "robot";

/// The store queue of `app`'s outbox.
pub fn queue_name(app: &str) -> String {
    format!("outbox:{app}")
}

/// An item committed this long after its send was first queued is a retried dead letter.
const RETRIED_AFTER_MS: u64 = 1_000;

/// What the store keeps beside a queued send's body (its `meta`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The id the app was given (`outbox_id`): stable across a dead letter's retry.
    pub outbox_id: String,
    /// The API label (`message/send`).
    pub api: String,
    /// The request path (`/cgi-bin/message/send`).
    pub path: String,
    /// The app's query as it came (a robot's `key` for `webhook/send`; never shown).
    pub query: String,
    /// The app the send is for ([`ROBOT`] for `webhook/send`).
    pub app: String,
    /// The route's `outbox_max_age` when queued, in milliseconds.
    pub max_age_ms: u64,
    /// When the app's call arrived (Unix milliseconds): its first attempt opened WeCom's
    /// duplicate-check window then, so the send's age counts from here.
    #[serde(default)]
    pub first_ms: u64,
    /// When it was committed (Unix milliseconds), to tell a retried dead letter (committed
    /// again later) from the send as first queued.
    #[serde(default)]
    pub queued_ms: u64,
    /// An attempt before queueing may have reached WeCom (it failed after the request was
    /// written): a replay relies on WeCom's duplicate check, which `webhook/send` lacks.
    pub maybe_sent: bool,
    /// Why the send was queued (never a secret: the pipeline's words).
    pub queued_for: String,
}

impl Meta {
    /// When the send's age starts (Unix milliseconds), for an item committed at `added_ms`: the
    /// app's call, or for a dead letter retried later (committed again: the item's time is
    /// past the first commit) the retry.
    pub fn age_from(&self, added_ms: u64) -> u64 {
        let retried = added_ms > self.queued_ms.saturating_add(RETRIED_AFTER_MS);
        if retried || self.first_ms == 0 {
            added_ms
        } else {
            self.first_ms.min(added_ms)
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("plain strings serialize")
    }

    /// The meta an item was stored with; a damaged one reads as empty rather than failing.
    pub fn from_bytes(b: &[u8]) -> Meta {
        serde_json::from_slice(b).unwrap_or_default()
    }
}

/// A send to queue, as the pipeline hands it over.
pub struct Outgoing<'a> {
    pub api: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub app: &'a str,
    /// The body as it would have been sent.
    pub body: &'a [u8],
    pub max_age: Duration,
    /// How long ago the app's call arrived.
    pub since_call: Duration,
    pub maybe_sent: bool,
    /// Why it is queued, for the log and the admin.
    pub queued_for: &'a str,
}

/// What [`Outbox::enqueue`] did.
#[derive(Debug)]
pub enum Enqueued {
    /// Committed: the app is told `outbox_id`.
    Queued { outbox_id: String },
    /// A bound holds: nothing queued; the app gets the answer it would have got.
    Full(Full),
}

/// The answer an app gets for a queued send: WeCom-shaped, errcode 0, the id to ask the admin
/// about it, and `X-Sidecar-Reason: queued`.
pub fn queued_answer(outbox_id: &str) -> LocalAnswer {
    let mut a = LocalAnswer::new(200, Reason::Queued, 0, "queued by wecom-sidecar");
    let mut extra = serde_json::Map::new();
    extra.insert("outbox_id".into(), outbox_id.into());
    a.extra = Some(extra);
    a
}

/// One app's outbox at run time.
pub struct AppOutbox {
    pub app: String,
    pub queue: String,
    /// Wakes the app's sender when a send was committed (or a dead letter revived).
    pub wake: Notify,
    /// What became of recent sends, by outbox id.
    pub records: Records,
    /// Since start, for `/admin/outbox` (the metrics count the same with their labels).
    pub counts: Counts,
    /// Sends of this app wait in the queue (as last read from the store, or just committed):
    /// a new send then queues behind them instead of overtaking them.
    pub backlog: AtomicBool,
}

impl AppOutbox {
    /// Whether sends of this app wait in the queue, so a new one must wait behind them.
    pub fn backlogged(&self) -> bool {
        self.backlog.load(Ordering::Acquire)
    }
}

/// One app's outbox counts since start.
#[derive(Debug, Default)]
pub struct Counts {
    pub queued: AtomicU64,
    pub full: AtomicU64,
    pub sent: AtomicU64,
    pub refused: AtomicU64,
    pub dead: AtomicU64,
}

/// Starts an app's sender (set by the process wiring once the senders can run).
type Starter = Box<dyn Fn(Arc<AppOutbox>) + Send + Sync>;

/// Every app's outbox and the store their queues live in.
pub struct Outbox {
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    apps: Mutex<HashMap<String, Arc<AppOutbox>>>,
    starter: OnceLock<Starter>,
}

impl Outbox {
    pub fn new(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Outbox {
        Outbox {
            store,
            metrics,
            apps: Mutex::new(HashMap::new()),
            starter: OnceLock::new(),
        }
    }

    /// From now on, every app's outbox gets its sender from `start` (the apps known so far at
    /// once, an app first seen later when it is).
    pub fn start_senders(&self, names: &[&str], start: Starter) {
        for name in names {
            self.app(name);
        }
        let known: Vec<Arc<AppOutbox>> = self.lock().values().cloned().collect();
        if self.starter.set(start).is_ok() {
            if let Some(start) = self.starter.get() {
                for app in known {
                    start(app);
                }
            }
        }
    }

    /// The outbox of `app`, made (and its sender started) on first use.
    pub fn app(&self, app: &str) -> Arc<AppOutbox> {
        let (entry, new) = {
            let mut apps = self.lock();
            match apps.get(app) {
                Some(a) => (a.clone(), false),
                None => {
                    let a = Arc::new(AppOutbox {
                        app: app.to_owned(),
                        queue: queue_name(app),
                        wake: Notify::new(),
                        records: Records::default(),
                        counts: Counts::default(),
                        backlog: AtomicBool::new(false),
                    });
                    apps.insert(app.to_owned(), a.clone());
                    (a, true)
                }
            }
        };
        if new {
            if let Some(start) = self.starter.get() {
                start(entry.clone());
            }
        }
        entry
    }

    /// Every app's outbox known so far, by name.
    pub fn apps(&self) -> Vec<Arc<AppOutbox>> {
        let mut v: Vec<_> = self.lock().values().cloned().collect();
        v.sort_by(|a, b| a.app.cmp(&b.app));
        v
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<AppOutbox>>> {
        // A panic elsewhere cannot leave the map half-updated: take it as it is.
        self.apps.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Commits `send` to its app's queue within `limits`; returns once it is durable (or
    /// that it was not queued, and why).
    pub async fn enqueue(
        &self,
        send: Outgoing<'_>,
        limits: Limits,
    ) -> Result<Enqueued, StoreError> {
        let app = self.app(send.app);
        let key: [u8; 32] = rand::random();
        let outbox_id = hex::encode(&key[..8]);
        let meta = Meta {
            outbox_id: outbox_id.clone(),
            api: send.api.to_owned(),
            path: send.path.to_owned(),
            query: send.query.to_owned(),
            app: send.app.to_owned(),
            max_age_ms: send.max_age.as_millis() as u64,
            first_ms: now_ms().saturating_sub(send.since_call.as_millis() as u64),
            queued_ms: now_ms(),
            maybe_sent: send.maybe_sent,
            queued_for: send.queued_for.to_owned(),
        };
        let added = self
            .store
            .add_within(&app.queue, key, &meta.to_bytes(), send.body, limits)
            .await?;
        let count = |result: &str| {
            self.metrics
                .outbox_total
                .with_label_values(&[send.api, send.app, result])
                .inc();
        };
        match added {
            Ok(Added::New(id)) | Ok(Added::Duplicate(id)) => {
                app.counts.queued.fetch_add(1, Ordering::Relaxed);
                app.backlog.store(true, Ordering::Release);
                count("queued");
                app.records.put(Record::new(&meta, id, State::Queued));
                app.wake.notify_one();
                tracing::info!(
                    app = send.app,
                    api = send.api,
                    outbox_id = outbox_id.as_str(),
                    id,
                    queued_for = send.queued_for,
                    maybe_sent = send.maybe_sent,
                    "send queued in the outbox"
                );
                Ok(Enqueued::Queued { outbox_id })
            }
            Err(full) => {
                app.counts.full.fetch_add(1, Ordering::Relaxed);
                count("full");
                tracing::warn!(
                    app = send.app,
                    api = send.api,
                    why = %full,
                    queued_for = send.queued_for,
                    "outbox full: send not queued; the app gets the answer it would have got"
                );
                Ok(Enqueued::Full(full))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    fn outbox(dir: &tempfile::TempDir) -> Outbox {
        let store = SqliteStore::open(&dir.path().join("s.db"), Duration::from_secs(60)).unwrap();
        Outbox::new(Arc::new(store), Arc::new(Metrics::new()))
    }

    fn send<'a>(body: &'a [u8]) -> Outgoing<'a> {
        Outgoing {
            api: "message/send",
            path: "/cgi-bin/message/send",
            query: "",
            app: "hr-bot",
            body,
            max_age: Duration::from_secs(60),
            since_call: Duration::from_millis(1500),
            maybe_sent: true,
            queued_for: "upstream primary reset",
        }
    }

    #[tokio::test]
    async fn identical_sends_are_two_items_each_with_its_own_id() {
        let dir = tempfile::tempdir().unwrap();
        let o = outbox(&dir);
        let body = br#"{"touser":"a","msgtype":"text"}"#;
        let Enqueued::Queued { outbox_id: a } = o.enqueue(send(body), Limits::NONE).await.unwrap()
        else {
            panic!("not queued")
        };
        let Enqueued::Queued { outbox_id: b } = o.enqueue(send(body), Limits::NONE).await.unwrap()
        else {
            panic!("not queued")
        };
        assert_ne!(a, b);
        let q = queue_name("hr-bot");
        assert_eq!(o.store.depth(&q).await.unwrap().queued, 2);
        let head = o.store.head(&q).await.unwrap().unwrap();
        assert_eq!(head.payload, body);
        let meta = Meta::from_bytes(&head.meta);
        assert_eq!(
            (meta.outbox_id.as_str(), meta.maybe_sent),
            (a.as_str(), true)
        );
        let rec = o.app("hr-bot").records.get(&a).unwrap();
        assert_eq!(rec.state, State::Queued);
    }

    #[tokio::test]
    async fn past_a_bound_nothing_is_queued_and_it_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let o = outbox(&dir);
        let limits = Limits {
            max_bytes: u64::MAX,
            max_queued: 1,
        };
        assert!(matches!(
            o.enqueue(send(b"{}"), limits).await.unwrap(),
            Enqueued::Queued { .. }
        ));
        assert!(matches!(
            o.enqueue(send(b"{}"), limits).await.unwrap(),
            Enqueued::Full(Full::Queued { queued: 1, max: 1 })
        ));
        assert_eq!(o.app("hr-bot").counts.full.load(Ordering::Relaxed), 1);
        let text = String::from_utf8(o.metrics.render()).unwrap();
        assert!(
            text.contains(r#"wecom_outbox_total{api="message/send",app="hr-bot",result="full"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn age_counts_from_the_call_unless_retried() {
        let meta = Meta {
            first_ms: 10_000,
            queued_ms: 12_000,
            ..Meta::default()
        };
        assert_eq!(
            meta.age_from(12_001),
            10_000,
            "as first queued: from the call"
        );
        assert_eq!(
            meta.age_from(60_000),
            60_000,
            "retried later: from the retry"
        );
        let old = Meta::default();
        assert_eq!(
            old.age_from(5_000),
            5_000,
            "written before first_ms: from the commit"
        );
    }

    #[test]
    fn the_queued_answer_is_wecom_shaped() {
        let a = queued_answer("00ff");
        let v: serde_json::Value = serde_json::from_slice(&a.body()).unwrap();
        assert_eq!(v["errcode"], 0);
        assert_eq!(v["errmsg"], "queued by wecom-sidecar");
        assert_eq!(v["outbox_id"], "00ff");
        assert_eq!(
            a.header(1).headers.get("x-sidecar-reason").unwrap(),
            "queued"
        );
    }
}
