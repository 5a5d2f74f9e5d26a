//! Inbound callbacks (WeCom → sidecar → app): WeCom pushes a signed, encrypted message to the
//! app's callback path; the sidecar verifies it, commits it to the store, answers WeCom in time,
//! and delivers it to the app's `deliver_to`, in arrival order, once.
//!
//! The rooms: [`crypto`] (WeCom's signature and AES for one app), [`envelope`] (the XML around
//! it), [`listener`] (the `callbacks.listen` connections) and [`push`] (what one request
//! means: verified, committed, answered), [`delivery`] (each app's worker) and `post` (one
//! delivery attempt over pingora's connector), and the run-time state of each app's callback here ([`CallbackQueue`]): its config,
//! crypto, queue name, the wake-up of its delivery worker, and the passive replies WeCom's open
//! requests wait for. The listener commits and waits; the delivery worker delivers and offers
//! the app's answer as the reply; neither knows the other beyond this type.

pub mod crypto;
pub mod delivery;
pub mod envelope;
pub mod listener;
pub mod post;
pub mod push;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, Notify};

use crate::config::CallbackApp;
use crate::store::Store;
use crypto::CallbackCrypto;

/// What the store keeps beside a push's XML (its `meta`): what the app is told in headers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// `X-WeCom-Callback-Id`: stable for one push (from its content), so the app can dedupe.
    pub callback_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<String>,
}

impl Meta {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("plain strings serialize")
    }

    /// The meta an item was stored with; a damaged one reads as empty rather than failing.
    pub fn from_bytes(b: &[u8]) -> Meta {
        serde_json::from_slice(b).unwrap_or_default()
    }
}

/// The store queue of `app`'s callbacks.
pub fn queue_name(app: &str) -> String {
    format!("callback:{app}")
}

/// One app's callback at run time.
pub struct CallbackQueue {
    pub cfg: CallbackApp,
    pub crypto: CallbackCrypto,
    /// Its queue in the store.
    pub queue: String,
    /// Wakes the app's delivery worker when a push was committed (or a dead letter revived).
    pub wake: Notify,
    /// Passive replies awaited by WeCom's open requests, by the push's store id.
    replies: Mutex<HashMap<u64, oneshot::Sender<Bytes>>>,
    /// Since start, for `/admin/callbacks` (the metrics count the same with their labels).
    pub counts: Counts,
}

/// One app's callback counts since start.
#[derive(Debug, Default)]
pub struct Counts {
    /// Verified pushes committed (new ones; WeCom's repeats are `duplicates`).
    pub received: AtomicU64,
    pub duplicates: AtomicU64,
    /// Pushes refused (bad signature, undecryptable, wrong receiver, malformed, too large).
    pub rejected: AtomicU64,
    pub delivered: AtomicU64,
    /// Pushes that became dead letters.
    pub dead: AtomicU64,
}

impl CallbackQueue {
    pub fn new(cfg: CallbackApp) -> CallbackQueue {
        let crypto = CallbackCrypto::new(cfg.token.expose(), cfg.aes_key.expose(), &cfg.receive_id)
            .expect("config validation checked the key's shape");
        CallbackQueue {
            queue: queue_name(cfg.app.as_str()),
            crypto,
            cfg,
            wake: Notify::new(),
            replies: Mutex::new(HashMap::new()),
            counts: Counts::default(),
        }
    }

    /// Registers WeCom's open request for push `id`: the receiver gets the app's answer body
    /// if the push is delivered while someone still waits.
    pub fn await_reply(&self, id: u64) -> oneshot::Receiver<Bytes> {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(id, tx);
        rx
    }

    /// The app answered push `id` with `body`: hands it to WeCom's request if one waits.
    /// Returns whether one did (a later answer is delivered but its reply dropped).
    pub fn offer_reply(&self, id: u64, body: Bytes) -> bool {
        match self.lock().remove(&id) {
            Some(tx) => tx.send(body).is_ok(),
            None => false,
        }
    }

    /// WeCom's request for push `id` stopped waiting.
    pub fn forget_reply(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Bytes>>> {
        // A panic elsewhere cannot leave the map half-updated: take it as it is.
        self.replies.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Every app's callback and the store their queues live in.
pub struct Callbacks {
    pub apps: Vec<Arc<CallbackQueue>>,
    pub store: Arc<dyn Store>,
}

impl Callbacks {
    /// Every app of `cfg`, their queues in `store`.
    pub fn new(cfg: &crate::config::Callbacks, store: Arc<dyn Store>) -> Callbacks {
        Callbacks {
            apps: cfg
                .apps
                .iter()
                .map(|a| Arc::new(CallbackQueue::new(a.clone())))
                .collect(),
            store,
        }
    }

    /// The app whose callback path is `path`.
    pub fn by_path(&self, path: &str) -> Option<&Arc<CallbackQueue>> {
        self.apps.iter().find(|a| a.cfg.path == path)
    }

    /// The app named `app`.
    pub fn by_app(&self, app: &str) -> Option<&Arc<CallbackQueue>> {
        self.apps.iter().find(|a| a.cfg.app.as_str() == app)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AppName, Secret};
    use std::time::Duration;

    fn app() -> CallbackApp {
        CallbackApp {
            app: AppName(Arc::from("hr-bot")),
            receive_id: "ww0123".into(),
            path: "/callback/hr-bot".into(),
            token: Secret::new("QDG6eK"),
            aes_key: Secret::new("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"),
            deliver_to: "http://127.0.0.1:3000/events".parse().unwrap(),
            reply_within: Duration::from_secs(3),
        }
    }

    #[tokio::test]
    async fn a_reply_reaches_only_a_request_still_waiting() {
        let q = CallbackQueue::new(app());
        let rx = q.await_reply(7);
        assert!(q.offer_reply(7, Bytes::from_static(b"<xml/>")));
        assert_eq!(rx.await.unwrap(), Bytes::from_static(b"<xml/>"));
        // Nobody waits for 8; and a request that gave up is not answered.
        assert!(!q.offer_reply(8, Bytes::new()));
        let rx = q.await_reply(9);
        q.forget_reply(9);
        assert!(!q.offer_reply(9, Bytes::new()));
        assert!(rx.await.is_err());
    }

    #[test]
    fn meta_round_trips_and_survives_damage() {
        let m = Meta {
            callback_id: "ab12".into(),
            msg_type: Some("event".into()),
            event: Some("click".into()),
            msg_id: None,
        };
        assert_eq!(Meta::from_bytes(&m.to_bytes()), m);
        assert_eq!(Meta::from_bytes(b"not json"), Meta::default());
    }
}
