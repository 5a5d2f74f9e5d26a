//! The admin's view of the outbox: `GET /admin/outbox` (each app's counts, queue and recent
//! sends), `GET /admin/outbox/<outbox_id>` (one send: its state and WeCom's answer), `GET
//! /admin/outbox/dead`, `POST /admin/outbox/dead/<id>/retry`, `DELETE
//! /admin/outbox/dead/<id>`, and the `outbox` section of `/admin/status`.
//!
//! As for callbacks, `counts` are this process's since it started and `queue` is what the
//! store holds now (the same for every sidecar of a fleet); each read of a queue sets the
//! outbox gauges. A dead letter is named by its store `id` or by its `outbox_id` (what the app
//! was answered), with `?app=` to say whose when ids repeat across apps.
//!
//! Nothing here shows a send's body or query (message text is app data; a robot's query holds
//! its key): ids, API, ages, attempts, errors and WeCom's answer (`errcode`, `errmsg`,
//! `msgid`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::StatusCode;
use serde_json::{json, Value};

use crate::metrics::Metrics;
use crate::outbox::record::Record;
use crate::outbox::sender::show_depth;
use crate::outbox::{AppOutbox, Counts, Meta, Outbox};
use crate::store::{now_ms, Depth, Item, StoreError};

/// Recent sends listed per app by `GET /admin/outbox`, newest first.
const RECENT_LISTED: usize = 20;
/// Dead letters listed per app, oldest first (`queue.dead` says how many there are).
const DEAD_LISTED: usize = 100;
/// Dead letters read per app when an id is looked for.
const DEAD_SEARCHED: usize = 1_000;

/// A store error as shown: known secrets taken out (a Redis error may quote what it was sent).
fn store_error(e: &StoreError) -> String {
    crate::redact::upstream_text(&e.to_string(), &[]).into_owned()
}

async fn depth(outbox: &Outbox, app: &AppOutbox, metrics: &Metrics) -> Result<Depth, String> {
    show_depth(&*outbox.store, metrics, app).await.map_err(|e| {
        let error = store_error(&e);
        tracing::warn!(app = app.app.as_str(), %error, "outbox queue could not be read");
        error
    })
}

fn queue_json(d: &Result<Depth, String>) -> Value {
    match d {
        Ok(d) => json!({
            "queued": d.queued,
            "oldest_age_s": d.oldest_ms.map_or(0, |t| now_ms().saturating_sub(t)) / 1000,
            "dead": d.dead,
        }),
        Err(error) => json!({ "error": error }),
    }
}

fn counts_json(c: &Counts) -> Value {
    json!({
        "queued": c.queued.load(Ordering::Relaxed),
        "full": c.full.load(Ordering::Relaxed),
        "sent": c.sent.load(Ordering::Relaxed),
        "refused": c.refused.load(Ordering::Relaxed),
        "dead": c.dead.load(Ordering::Relaxed),
    })
}

fn record_json(app: &str, r: &Record) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    if let Value::Object(o) = &mut v {
        o.insert("app".into(), app.into());
        o.insert(
            "age_s".into(),
            (now_ms().saturating_sub(r.at_ms) / 1000).into(),
        );
        if let Some(Value::String(e)) = o.get_mut("last_error") {
            *e = crate::redact::upstream_text(e, &[]).into_owned();
        }
    }
    v
}

/// A dead letter as listed: never its body or query.
fn dead_json(app: &str, item: &Item, now: u64) -> Value {
    let meta = Meta::from_bytes(&item.meta);
    json!({
        "id": item.id,
        "outbox_id": meta.outbox_id,
        "app": app,
        "api": meta.api,
        "age_s": now.saturating_sub(item.added_ms) / 1000,
        "attempts": item.attempts,
        "queued_for": crate::redact::upstream_text(&meta.queued_for, &[]),
        "last_error": item
            .last_error
            .as_deref()
            .map(|e| crate::redact::upstream_text(e, &[]).into_owned()),
    })
}

/// The `GET /admin/outbox` document.
pub(super) async fn list(outbox: &Outbox, metrics: &Metrics) -> Value {
    let mut apps = Vec::new();
    for app in outbox.apps() {
        let queue = depth(outbox, &app, metrics).await;
        let recent: Vec<Value> = app
            .records
            .latest(RECENT_LISTED)
            .iter()
            .map(|r| record_json(&app.app, r))
            .collect();
        apps.push(json!({
            "app": app.app,
            "counts": counts_json(&app.counts),
            "queue": queue_json(&queue),
            "recent": recent,
        }));
    }
    let used = match outbox.store.used_bytes().await {
        Ok(b) => json!(b),
        Err(e) => json!({ "error": store_error(&e) }),
    };
    json!({ "apps": apps, "store": { "used_bytes": used } })
}

/// The `outbox` section of `/admin/status`: each app's queue.
pub(super) async fn status(outbox: &Outbox, metrics: &Metrics) -> Value {
    let mut apps = Vec::new();
    for app in outbox.apps() {
        let queue = depth(outbox, &app, metrics).await;
        let mut entry = json!({ "app": app.app });
        if let (Value::Object(e), Value::Object(q)) = (&mut entry, queue_json(&queue)) {
            e.extend(q);
        }
        apps.push(entry);
    }
    Value::Array(apps)
}

/// Sets every app's outbox gauges (at scrape).
pub(super) async fn refresh_gauges(outbox: &Outbox, metrics: &Metrics) {
    for app in outbox.apps() {
        // A failure is logged there; the gauges keep their last values.
        let _ = depth(outbox, &app, metrics).await;
    }
}

/// `GET /admin/outbox/dead`: every app's dead letters, oldest first.
pub(super) async fn dead(outbox: &Outbox) -> Value {
    let now = now_ms();
    let mut apps = Vec::new();
    for app in outbox.apps() {
        let letters = match outbox.store.dead(&app.queue, DEAD_LISTED).await {
            Ok(items) => Value::Array(items.iter().map(|i| dead_json(&app.app, i, now)).collect()),
            Err(e) => json!({ "error": store_error(&e) }),
        };
        apps.push(json!({ "app": app.app, "dead_letters": letters }));
    }
    json!({ "apps": apps })
}

/// `GET /admin/outbox/<outbox_id>`: the send's record, else its dead letter.
pub(super) async fn one(outbox: &Outbox, outbox_id: &str) -> (StatusCode, Value) {
    for app in outbox.apps() {
        if let Some(r) = app.records.get(outbox_id) {
            return (StatusCode::OK, record_json(&app.app, &r));
        }
    }
    match find_dead(outbox, outbox_id, None).await {
        Ok((app, item)) => {
            let mut v = dead_json(&app.app, &item, now_ms());
            v["state"] = "dead".into();
            (StatusCode::OK, v)
        }
        Err((StatusCode::NOT_FOUND, _)) => (
            StatusCode::NOT_FOUND,
            json!({ "error": format!("no send {} known to this sidecar: not among the latest {} of any app nor a dead letter (a send delivered before a restart, or by another sidecar, is no longer shown)", shown(outbox_id), crate::outbox::record::KEPT) }),
        ),
        Err((status, error)) => (status, json!({ "error": error })),
    }
}

/// The dead letter named `id` (store id, or outbox id) of `app` (else of whichever app holds
/// it, if only one does).
async fn find_dead(
    outbox: &Outbox,
    id: &str,
    app: Option<&str>,
) -> Result<(Arc<AppOutbox>, Item), (StatusCode, String)> {
    let apps: Vec<Arc<AppOutbox>> = match app {
        Some(name) => match outbox.apps().into_iter().find(|a| a.app == name) {
            Some(a) => vec![a],
            None => {
                return Err((
                    StatusCode::NOT_FOUND,
                    "no outbox of that app on this sidecar".into(),
                ))
            }
        },
        None => outbox.apps(),
    };
    let store_id = id.parse::<u64>().ok();
    let mut found = Vec::new();
    for a in apps {
        let items = outbox
            .store
            .dead(&a.queue, DEAD_SEARCHED)
            .await
            .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, store_error(&e)))?;
        if let Some(item) = items
            .into_iter()
            .find(|i| Some(i.id) == store_id || Meta::from_bytes(&i.meta).outbox_id == id)
        {
            found.push((a, item));
        }
    }
    match found.len() {
        0 => Err((
            StatusCode::NOT_FOUND,
            format!("no dead letter {} among the oldest {DEAD_SEARCHED} of each app. Name its app with ?app= if it is further back", shown(id)),
        )),
        1 => Ok(found.remove(0)),
        _ => Err((
            StatusCode::CONFLICT,
            format!(
                "dead letter {} exists for several apps ({}). Name one with ?app=",
                shown(id),
                found.iter().map(|(a, _)| a.app.as_str()).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

/// An id as it may be quoted back: a store id or an outbox id (hex), else not at all (what an
/// admin pasted into a path could be anything).
fn shown(id: &str) -> &str {
    if !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        id
    } else {
        "(that id)"
    }
}

fn app_param(query: Option<&str>) -> Option<String> {
    query.and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "app")
            .map(|(_, v)| v.into_owned())
    })
}

/// `POST /admin/outbox/dead/<id>/retry[?app=]`: the dead letter back at the tail of its queue
/// (a new store id, the same outbox id, its age counted from now), its sender woken.
pub(super) async fn retry(outbox: &Outbox, id: &str, query: Option<&str>) -> (StatusCode, Value) {
    let named = app_param(query);
    let (app, item) = match find_dead(outbox, id, named.as_deref()).await {
        Ok(found) => found,
        Err((status, error)) => return (status, json!({ "retried": false, "error": error })),
    };
    match outbox.store.revive(&app.queue, item.id).await {
        Ok(Some(new_id)) => {
            app.wake.notify_one();
            let meta = Meta::from_bytes(&item.meta);
            let mut r = Record::new(&meta, new_id, crate::outbox::record::State::Queued);
            r.last_error = Some("retried from the admin".into());
            app.records.put(r);
            tracing::info!(
                app = app.app.as_str(),
                id = item.id,
                new_id,
                outbox_id = meta.outbox_id.as_str(),
                "outbox dead letter queued again by the admin"
            );
            (
                StatusCode::OK,
                json!({ "retried": true, "app": app.app, "id": item.id, "new_id": new_id, "outbox_id": meta.outbox_id }),
            )
        }
        Ok(None) => (
            StatusCode::NOT_FOUND,
            json!({ "retried": false, "error": format!("no dead letter {} for app {}", shown(id), app.app) }),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "retried": false, "error": store_error(&e) }),
        ),
    }
}

/// `DELETE /admin/outbox/dead/<id>[?app=]`: the dead letter deleted for good.
pub(super) async fn forget(outbox: &Outbox, id: &str, query: Option<&str>) -> (StatusCode, Value) {
    let named = app_param(query);
    let (app, item) = match find_dead(outbox, id, named.as_deref()).await {
        Ok(found) => found,
        Err((status, error)) => return (status, json!({ "deleted": false, "error": error })),
    };
    match outbox.store.forget(&app.queue, item.id).await {
        Ok(true) => {
            let meta = Meta::from_bytes(&item.meta);
            tracing::info!(
                app = app.app.as_str(),
                id = item.id,
                outbox_id = meta.outbox_id.as_str(),
                "outbox dead letter deleted by the admin"
            );
            (
                StatusCode::OK,
                json!({ "deleted": true, "app": app.app, "id": item.id, "outbox_id": meta.outbox_id }),
            )
        }
        Ok(false) => (
            StatusCode::NOT_FOUND,
            json!({ "deleted": false, "error": format!("no dead letter {} for app {}", shown(id), app.app) }),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "deleted": false, "error": store_error(&e) }),
        ),
    }
}
