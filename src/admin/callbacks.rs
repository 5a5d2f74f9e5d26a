//! The admin's view of inbound callbacks: `GET /admin/callbacks`, `POST
//! /admin/callbacks/dead/<id>/retry` and the `callbacks` section of `/admin/status`.
//!
//! Two sources, kept apart in every answer: `counts` are what this process saw since it
//! started (the listener's and delivery worker's [`Counts`]); `queue` is what the store holds
//! now (waiting pushes, the oldest one's age, dead letters), the same for every sidecar of a
//! fleet. Each read of a queue also sets `wecom_callback_oldest_seconds` and
//! `wecom_callback_dead_letters`, which is how `/metrics` keeps them current (read at scrape).
//!
//! Nothing here shows a push's content or a credential: dead letters are listed by id,
//! callback id, age, attempts and last error; `deliver_to` without its query.

use std::sync::atomic::Ordering;

use http::StatusCode;
use serde_json::{json, Value};

use crate::callback::{CallbackQueue, Callbacks, Counts, Meta};
use crate::metrics::Metrics;
use crate::store::{now_ms, Depth, Item, StoreError};

/// Dead letters listed per app by `GET /admin/callbacks`, oldest first (`queue.dead` says how
/// many there are).
const DEAD_LISTED: usize = 100;
/// Dead letters read per app when a retry names no app and its id is looked for, oldest
/// first: the listing reads their content too, so it is bounded (an id further back needs
/// `?app=`).
const DEAD_SEARCHED: usize = 1_000;

/// One app's queue as the store holds it now; sets the app's queue gauges.
async fn depth(cb: &Callbacks, app: &CallbackQueue, metrics: &Metrics) -> Result<Depth, String> {
    match cb.store.depth(&app.queue).await {
        Ok(d) => {
            let name = app.cfg.app.as_str();
            metrics
                .callback_oldest
                .with_label_values(&[name])
                .set(oldest_ms(&d) as f64 / 1000.0);
            metrics
                .callback_dead_letters
                .with_label_values(&[name])
                .set(i64::try_from(d.dead).unwrap_or(i64::MAX));
            Ok(d)
        }
        Err(e) => {
            let error = store_error(&e);
            tracing::warn!(app = app.cfg.app.as_str(), %error, "callback queue could not be read");
            Err(error)
        }
    }
}

/// A store error as shown: known secrets taken out (a Redis error may quote what it was sent).
fn store_error(e: &StoreError) -> String {
    crate::redact::upstream_text(&e.to_string(), &[]).into_owned()
}

/// How long the oldest waiting push has waited, in milliseconds (0: none waits).
fn oldest_ms(d: &Depth) -> u64 {
    d.oldest_ms.map_or(0, |t| now_ms().saturating_sub(t))
}

fn queue_json(d: &Result<Depth, String>) -> Value {
    match d {
        Ok(d) => json!({
            "queued": d.queued,
            "oldest_age_s": oldest_ms(d) / 1000,
            "dead": d.dead,
        }),
        Err(error) => json!({ "error": error }),
    }
}

fn counts_json(c: &Counts) -> Value {
    json!({
        "received": c.received.load(Ordering::Relaxed),
        "duplicates": c.duplicates.load(Ordering::Relaxed),
        "rejected": c.rejected.load(Ordering::Relaxed),
        "delivered": c.delivered.load(Ordering::Relaxed),
        "dead": c.dead.load(Ordering::Relaxed),
    })
}

/// A dead letter as listed: never its content.
fn dead_json(item: &Item, now: u64) -> Value {
    let meta = Meta::from_bytes(&item.meta);
    json!({
        "id": item.id,
        "callback_id": meta.callback_id,
        "msg_type": meta.msg_type,
        "event": meta.event,
        "age_s": now.saturating_sub(item.added_ms) / 1000,
        "attempts": item.attempts,
        "last_error": item
            .last_error
            .as_deref()
            .map(|e| crate::redact::upstream_text(e, &[]).into_owned()),
    })
}

/// Where an app's pushes go, as shown: scheme, host, port and path; a query (which could carry
/// a key) left out.
fn deliver_to(uri: &http::Uri) -> String {
    let host = uri.host().unwrap_or_default();
    let port = uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
    format!(
        "{}://{host}{port}{}",
        uri.scheme_str().unwrap_or("http"),
        uri.path()
    )
}

/// The `GET /admin/callbacks` document.
pub(super) async fn list(cb: &Callbacks, metrics: &Metrics) -> Value {
    let now = now_ms();
    let mut apps = Vec::with_capacity(cb.apps.len());
    for app in &cb.apps {
        let queue = depth(cb, app, metrics).await;
        let dead_letters = match &queue {
            Ok(d) if d.dead > 0 => match cb.store.dead(&app.queue, DEAD_LISTED).await {
                Ok(items) => Value::Array(items.iter().map(|i| dead_json(i, now)).collect()),
                Err(e) => json!({ "error": store_error(&e) }),
            },
            _ => json!([]),
        };
        apps.push(json!({
            "app": app.cfg.app.as_str(),
            "path": app.cfg.path,
            "counts": counts_json(&app.counts),
            "queue": queue_json(&queue),
            "dead_letters": dead_letters,
        }));
    }
    json!({ "apps": apps })
}

/// The `callbacks` section of `/admin/status`: each app's path, receiver and queue.
pub(super) async fn status(cb: &Callbacks, metrics: &Metrics) -> Value {
    let mut apps = Vec::with_capacity(cb.apps.len());
    for app in &cb.apps {
        let queue = depth(cb, app, metrics).await;
        let mut entry = json!({
            "app": app.cfg.app.as_str(),
            "path": app.cfg.path,
            "deliver_to": deliver_to(&app.cfg.deliver_to),
            "reply_within_ms": app.cfg.reply_within.as_millis() as u64,
        });
        if let (Value::Object(e), Value::Object(q)) = (&mut entry, queue_json(&queue)) {
            e.extend(q);
        }
        apps.push(entry);
    }
    Value::Array(apps)
}

/// Sets the queue gauges of every app (at scrape).
pub(super) async fn refresh_gauges(cb: &Callbacks, metrics: &Metrics) {
    for app in &cb.apps {
        // A failure is logged there; the gauges keep their last values.
        let _ = depth(cb, app, metrics).await;
    }
}

/// Where a dead letter's id was found when the retry named no app.
enum Found<'a> {
    Nowhere,
    In(&'a std::sync::Arc<CallbackQueue>),
    /// The same id in several queues (the fleet's store numbers each queue on its own).
    Several(Vec<&'a str>),
}

/// The app holding dead letter `id`, looked for across every app's dead letters.
async fn find(cb: &Callbacks, id: u64) -> Result<Found<'_>, StoreError> {
    if let [only] = cb.apps.as_slice() {
        return Ok(Found::In(only));
    }
    let mut holders = Vec::new();
    for app in &cb.apps {
        if cb
            .store
            .dead(&app.queue, DEAD_SEARCHED)
            .await?
            .iter()
            .any(|i| i.id == id)
        {
            holders.push(app);
        }
    }
    Ok(match holders.as_slice() {
        [] => Found::Nowhere,
        [one] => Found::In(one),
        many => Found::Several(many.iter().map(|a| a.cfg.app.as_str()).collect()),
    })
}

fn refused(status: StatusCode, error: String) -> (StatusCode, Value) {
    (status, json!({ "retried": false, "error": error }))
}

/// `POST /admin/callbacks/dead/<id>/retry[?app=<name>]`: the dead letter back at the tail of
/// its queue (a new store id, the same `X-WeCom-Callback-Id`), its worker woken.
pub(super) async fn retry(cb: &Callbacks, id: &str, query: Option<&str>) -> (StatusCode, Value) {
    let Ok(id) = id.parse::<u64>() else {
        return refused(
            StatusCode::BAD_REQUEST,
            "the id is not a number. Use a dead letter's `id` from GET /admin/callbacks".into(),
        );
    };
    let named = query.and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "app")
            .map(|(_, v)| v.into_owned())
    });
    let names = || {
        cb.apps
            .iter()
            .map(|a| a.cfg.app.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let app = match named {
        Some(name) => match cb.by_app(&name) {
            Some(app) => app,
            None => {
                return refused(
                    StatusCode::NOT_FOUND,
                    format!("no callback app of that name; the apps are {}", names()),
                )
            }
        },
        None => match find(cb, id).await {
            Ok(Found::In(app)) => app,
            Ok(Found::Nowhere) => {
                return refused(
                    StatusCode::NOT_FOUND,
                    format!("no dead letter {id} among the oldest {DEAD_SEARCHED} of each app. If it is further back, name its app with ?app="),
                )
            }
            Ok(Found::Several(apps)) => {
                return refused(
                    StatusCode::CONFLICT,
                    format!(
                        "dead letter {id} exists for several apps ({}). Name one with ?app=",
                        apps.join(", ")
                    ),
                )
            }
            Err(e) => return refused(StatusCode::SERVICE_UNAVAILABLE, store_error(&e)),
        },
    };
    let name = app.cfg.app.as_str();
    match cb.store.revive(&app.queue, id).await {
        Ok(Some(new_id)) => {
            app.wake.notify_one();
            tracing::info!(
                app = name,
                id,
                new_id,
                "dead letter queued again by the admin"
            );
            (
                StatusCode::OK,
                json!({ "retried": true, "app": name, "id": id, "new_id": new_id }),
            )
        }
        Ok(None) => refused(
            StatusCode::NOT_FOUND,
            format!("no dead letter {id} for app {name}"),
        ),
        Err(e) => refused(StatusCode::SERVICE_UNAVAILABLE, store_error(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::callback::CallbackQueue;
    use crate::config::{AppName, CallbackApp, Secret};
    use crate::store::sqlite::SqliteStore;
    use std::sync::Arc;
    use std::time::Duration;

    fn app(name: &str) -> CallbackApp {
        CallbackApp {
            app: AppName(Arc::from(name)),
            receive_id: "ww0123".into(),
            path: format!("/callback/{name}"),
            token: Secret::new("QDG6eK"),
            aes_key: Secret::new("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"),
            deliver_to: "https://127.0.0.1:3000/events?key=k3y".parse().unwrap(),
            reply_within: Duration::from_secs(3),
        }
    }

    async fn callbacks(dir: &tempfile::TempDir, names: &[&str]) -> Callbacks {
        let store = SqliteStore::open(&dir.path().join("s.db"), Duration::from_secs(60)).unwrap();
        Callbacks {
            apps: names
                .iter()
                .map(|n| Arc::new(CallbackQueue::new(app(n))))
                .collect(),
            store: Arc::new(store),
        }
    }

    /// Adds a push to `app`'s queue and buries it; its id.
    async fn dead_letter(cb: &Callbacks, app: usize, n: u8) -> u64 {
        let q = &cb.apps[app].queue;
        let meta = Meta {
            callback_id: format!("cb{n}"),
            msg_type: Some("text".into()),
            ..Meta::default()
        };
        let id = cb
            .store
            .add(q, [n; 32], &meta.to_bytes(), b"<xml>secret words</xml>")
            .await
            .unwrap()
            .id();
        cb.store.failed(q, id, "HTTP 500").await.unwrap();
        cb.store.bury(q, id, "HTTP 500").await.unwrap();
        id
    }

    #[tokio::test]
    async fn the_list_shows_counts_queue_and_dead_letters_but_no_content() {
        let dir = tempfile::tempdir().unwrap();
        let cb = callbacks(&dir, &["hr-bot"]).await;
        let metrics = Metrics::new();
        cb.apps[0].counts.received.store(3, Ordering::Relaxed);
        let id = dead_letter(&cb, 0, 1).await;
        cb.store
            .add(
                &cb.apps[0].queue,
                [2; 32],
                &Meta::default().to_bytes(),
                b"<xml/>",
            )
            .await
            .unwrap();
        let doc = list(&cb, &metrics).await;
        let a = &doc["apps"][0];
        assert_eq!(a["app"], "hr-bot");
        assert_eq!(a["counts"]["received"], 3);
        assert_eq!(a["queue"]["queued"], 1);
        assert_eq!(a["queue"]["dead"], 1);
        let d = &a["dead_letters"][0];
        assert_eq!(d["id"], id);
        assert_eq!(d["callback_id"], "cb1");
        assert_eq!(d["attempts"], 1);
        assert_eq!(d["last_error"], "HTTP 500");
        let text = doc.to_string();
        assert!(!text.contains("secret words"), "{text}");
        // The read set the gauges.
        let m = String::from_utf8(metrics.render()).unwrap();
        assert!(
            m.contains("wecom_callback_dead_letters{app=\"hr-bot\"} 1"),
            "{m}"
        );
    }

    #[tokio::test]
    async fn the_status_section_shows_the_receiver_without_its_query() {
        let dir = tempfile::tempdir().unwrap();
        let cb = callbacks(&dir, &["hr-bot"]).await;
        let doc = status(&cb, &Metrics::new()).await;
        assert_eq!(doc[0]["deliver_to"], "https://127.0.0.1:3000/events");
        assert_eq!(doc[0]["path"], "/callback/hr-bot");
        assert_eq!(doc[0]["queued"], 0);
        assert!(!doc.to_string().contains("k3y"), "{doc}");
    }

    #[tokio::test]
    async fn a_retry_revives_the_dead_letter_of_the_app_that_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let cb = callbacks(&dir, &["hr-bot", "ops-bot"]).await;
        dead_letter(&cb, 0, 1).await;
        let id = dead_letter(&cb, 1, 2).await;
        let (status, doc) = retry(&cb, &id.to_string(), None).await;
        assert_eq!(status, StatusCode::OK, "{doc}");
        assert_eq!(doc["app"], "ops-bot");
        let head = cb.store.head(&cb.apps[1].queue).await.unwrap().unwrap();
        assert_eq!(head.id, doc["new_id"].as_u64().unwrap());
        assert_eq!(Meta::from_bytes(&head.meta).callback_id, "cb2");
        // Gone from the dead letters: a second retry finds nothing.
        let (status, _) = retry(&cb, &id.to_string(), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // Named app without that dead letter, unknown app, not a number.
        let (status, _) = retry(&cb, &id.to_string(), Some("app=hr-bot")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, doc) = retry(&cb, "1", Some("app=nobody")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(!doc.to_string().contains("nobody"), "{doc}");
        let (status, _) = retry(&cb, "x1", None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}
