//! The admin's side of inbound callbacks on the real binary: `GET /admin/callbacks` (counts,
//! queue, dead letters without their content), the `callbacks` section of `/admin/status`,
//! the queue gauges at `/metrics`, and `POST /admin/callbacks/dead/<id>/retry`: a push that
//! died while the app failed, retried through the admin once the app is back, is delivered
//! with its callback id; the retry keeps the guards of the other admin POSTs.
//!
//! Two callback apps share one receiver; `max_age` is two seconds, so a push dies quickly. The
//! store is SQLite, and Redis for the retry of an id two apps' queues both hold.

use std::time::Duration;

use serde_json::Value;

use crate::callbacks_flow::receiver::{Answer, Receiver};
use crate::callbacks_flow::{text_message, Wecom, CB_AES_KEY, CB_TOKEN};
use crate::harness::*;

const HR_PATH: &str = "/callback/hr-bot";
const OPS_PATH: &str = "/callback/ops-bot";

/// A sidecar whose callback apps hr-bot and ops-bot deliver to `app`.
struct Admin {
    sc: Sidecar,
    cb: String,
    _state: tempfile::TempDir,
}

impl Admin {
    async fn start(app: &Receiver) -> Admin {
        Self::start_on(app, "").await
    }

    /// As `start`, with `fleet` (a `fleet:` section, or nothing) in the config.
    async fn start_on(app: &Receiver, fleet: &str) -> Admin {
        let state = tempfile::tempdir().unwrap();
        let cb_port = free_port();
        let extra = format!(
            r#"{fleet}callbacks:
  listen: "127.0.0.1:{cb_port}"
  apps:
    - {{ app: hr-bot, path: {HR_PATH}, token_env: TEST_CB_TOKEN, aes_key_env: TEST_CB_AES_KEY, deliver_to: "{url}?key=hidden-from-status", reply_within: 0 }}
    - {{ app: ops-bot, path: {OPS_PATH}, token_env: TEST_CB_TOKEN, aes_key_env: TEST_CB_AES_KEY, deliver_to: "{url}", reply_within: 0 }}
  delivery: {{ timeout: 1s, backoff_base: 50ms, backoff_max: 200ms, max_age: 2s }}
store:
  path: "{store}"
"#,
            url = app.url(),
            store = state.path().join("sidecar.db").display(),
        );
        let sc = Sidecar::start_with_env(
            |l, a| config_yaml(l, a, "http://127.0.0.1:9", &extra),
            &[("TEST_CB_TOKEN", CB_TOKEN), ("TEST_CB_AES_KEY", CB_AES_KEY)],
        )
        .await;
        let up = eventually(Duration::from_secs(10), async || {
            tokio::net::TcpStream::connect(("127.0.0.1", cb_port))
                .await
                .is_ok()
        })
        .await;
        assert!(up, "no callback listener; log:\n{}", sc.logs());
        Admin {
            sc,
            cb: format!("http://127.0.0.1:{cb_port}"),
            _state: state,
        }
    }

    /// Pushes `xml` to `path` as WeCom does; the status.
    async fn push(&self, path: &str, xml: &str) -> u16 {
        let (query, body) = Wecom::new().push(xml);
        client()
            .post(format!("{}{path}?{query}", self.cb))
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = client()
            .get(format!("{}{path}", self.sc.admin))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn callbacks(&self) -> Value {
        let (status, doc) = self.get("/admin/callbacks").await;
        assert_eq!(status, 200, "{doc}");
        doc
    }

    /// `POST /admin/callbacks/dead/<rest>` with extra headers; status and body.
    async fn retry(&self, rest: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut req = client().post(format!("{}/admin/callbacks/dead/{rest}", self.sc.admin));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Waits until app `app`'s queue in `/admin/callbacks` holds `dead` dead letters, and its
    /// counts have seen at least as many die (they are this process's counters, moved just
    /// after the store's commit, which the queue figures are read from).
    async fn dead_letters(&self, app: &str, dead: u64) -> Value {
        let mut doc = Value::Null;
        let reached = eventually(Duration::from_secs(20), async || {
            doc = self.callbacks().await;
            let entry = of(&doc, app);
            entry["queue"]["dead"] == dead && entry["counts"]["dead"].as_u64() >= Some(dead)
        })
        .await;
        assert!(
            reached,
            "not {dead} dead letters: {doc}\n{}",
            self.sc.logs()
        );
        of(&doc, app).clone()
    }
}

/// App `name`'s entry of an `apps` list.
fn of<'a>(doc: &'a Value, name: &str) -> &'a Value {
    let apps = doc.get("apps").unwrap_or(doc);
    apps.as_array()
        .and_then(|a| a.iter().find(|e| e["app"] == name))
        .unwrap_or_else(|| panic!("no app {name} in {doc}"))
}

#[tokio::test]
async fn a_dead_letter_is_listed_without_its_content_and_delivered_once_retried() {
    let app = Receiver::start().await;
    app.answer(Answer::status(500));
    let s = Admin::start(&app).await;

    assert_eq!(s.push(HR_PATH, &text_message(1)).await, 200);
    // While the app fails, the push waits: the oldest-age gauge moves off 0 at a scrape.
    let aged = eventually(Duration::from_secs(10), async || {
        s.sc.metrics()
            .await
            .value("wecom_callback_oldest_seconds", &[("app", "hr-bot")])
            .is_some_and(|v| v > 0.0)
    })
    .await;
    assert!(aged, "{}", s.sc.metrics().await);

    let hr = s.dead_letters("hr-bot", 1).await;
    assert_eq!(hr["counts"]["received"], 1, "{hr}");
    assert_eq!(hr["counts"]["delivered"], 0, "{hr}");
    assert_eq!(hr["counts"]["dead"], 1, "{hr}");
    assert_eq!(hr["queue"]["queued"], 0, "{hr}");
    let letter = &hr["dead_letters"][0];
    let id = letter["id"].as_u64().expect("an id");
    let callback_id = letter["callback_id"].as_str().expect("a callback id");
    assert!(
        letter["attempts"].as_u64().is_some_and(|n| n >= 1),
        "{letter}"
    );
    assert!(
        letter["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{letter}"
    );
    assert_eq!(letter["msg_type"], "text", "{letter}");
    // What the app was sent, it was sent under that id; the content is not listed.
    let tried = app.got();
    assert!(!tried.is_empty());
    assert!(tried
        .iter()
        .all(|g| g.header("x-wecom-callback-id") == Some(callback_id)));
    let listing = s.callbacks().await.to_string();
    for never in ["hello 1", "zhangsan", CB_TOKEN, CB_AES_KEY] {
        assert!(!listing.contains(never), "{never} in {listing}");
    }

    // The gauges at /metrics and the status section say the same.
    let m = s.sc.metrics().await;
    assert_eq!(
        m.value("wecom_callback_dead_letters", &[("app", "hr-bot")]),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        m.value("wecom_callback_oldest_seconds", &[("app", "hr-bot")]),
        Some(0.0),
        "{m}"
    );
    let (_, status) = s.get("/admin/status").await;
    let section = of(&status["callbacks"], "hr-bot");
    assert_eq!(section["path"], HR_PATH, "{section}");
    assert_eq!(section["deliver_to"], app.url(), "{section}");
    assert_eq!(section["dead"], 1, "{section}");
    assert_eq!(section["queued"], 0, "{section}");
    let text = status.to_string();
    for secret in [CB_TOKEN, CB_AES_KEY, "hidden-from-status"] {
        assert!(!text.contains(secret), "{secret} in /admin/status");
    }

    // The retry keeps the admin POST guards, and refuses what is not a dead letter.
    let rest = format!("{id}/retry");
    let (code, _) = s.retry(&rest, &[("origin", "http://evil.example")]).await;
    assert_eq!(code, 403);
    let (code, _) = s.retry(&rest, &[("host", "evil.example")]).await;
    assert_eq!(code, 421);
    let r = client()
        .get(format!("{}/admin/callbacks/dead/{rest}", s.sc.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(s.retry("not-a-number/retry", &[]).await.0, 400);
    assert_eq!(s.retry(&format!("{}/retry", id + 1000), &[]).await.0, 404);
    assert_eq!(s.retry(&format!("{rest}?app=ops-bot"), &[]).await.0, 404);
    assert_eq!(s.retry(&format!("{rest}?app=nobody"), &[]).await.0, 404);
    // None of those refusals moved it.
    assert_eq!(of(&s.callbacks().await, "hr-bot")["queue"]["dead"], 1);

    // The app is back; the retry names no app: the id is found in hr-bot's dead letters.
    app.answer(Answer::ok());
    let before = app.got().len();
    let (code, answer) = s.retry(&rest, &[]).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["retried"], true);
    assert_eq!(answer["app"], "hr-bot");
    let delivered = eventually(Duration::from_secs(20), async || {
        s.callbacks().await["apps"][0]["counts"]["delivered"] == 1
    })
    .await;
    assert!(delivered, "{}\n{}", s.callbacks().await, s.sc.logs());
    let got = app.got();
    let again = &got[before..];
    assert_eq!(again.len(), 1, "delivered once: {again:?}");
    assert_eq!(again[0].header("x-wecom-callback-id"), Some(callback_id));
    assert_eq!(again[0].header("x-wecom-app"), Some("hr-bot"));
    assert!(again[0].body_text().contains("hello 1"));
    let hr = of(&s.callbacks().await, "hr-bot").clone();
    assert_eq!(hr["queue"]["dead"], 0, "{hr}");
    assert_eq!(hr["queue"]["queued"], 0, "{hr}");
    assert_eq!(
        s.sc.metrics()
            .await
            .value("wecom_callback_dead_letters", &[("app", "hr-bot")]),
        Some(0.0)
    );
    // It is gone from the dead letters: a second retry finds nothing.
    assert_eq!(s.retry(&rest, &[]).await.0, 404);
}

#[tokio::test]
async fn a_retry_naming_its_app_revives_that_apps_dead_letter() {
    let app = Receiver::start().await;
    app.answer(Answer::status(503));
    let s = Admin::start(&app).await;
    assert_eq!(s.push(HR_PATH, &text_message(10)).await, 200);
    assert_eq!(s.push(OPS_PATH, &text_message(20)).await, 200);
    s.dead_letters("hr-bot", 1).await;
    let ops = s.dead_letters("ops-bot", 1).await;
    let id = ops["dead_letters"][0]["id"].as_u64().unwrap();

    app.answer(Answer::ok());
    let before = app.got().len();
    // Named as the wrong app, it is not found; named right, it is revived, and hr-bot's stays.
    assert_eq!(s.retry(&format!("{id}/retry?app=hr-bot"), &[]).await.0, 404);
    let (code, answer) = s.retry(&format!("{id}/retry?app=ops-bot"), &[]).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["app"], "ops-bot");
    let ops_delivered = eventually(Duration::from_secs(20), async || {
        of(&s.callbacks().await, "ops-bot")["counts"]["delivered"] == 1
    })
    .await;
    assert!(ops_delivered, "{}", s.sc.logs());
    let got = app.got();
    let after = &got[before..];
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0].header("x-wecom-app"), Some("ops-bot"));
    assert!(after[0].body_text().contains("hello 20"));
    let doc = s.callbacks().await;
    assert_eq!(of(&doc, "hr-bot")["queue"]["dead"], 1, "{doc}");
    assert_eq!(of(&doc, "ops-bot")["queue"]["dead"], 0, "{doc}");
}

/// In fleet mode each app's queue numbers its own items, so two apps can each hold dead
/// letter 1: a retry naming no app is refused until it names one.
#[tokio::test]
async fn in_fleet_mode_an_id_two_apps_hold_needs_its_app_named() {
    let redis = Redis::start().await;
    let app = Receiver::start().await;
    app.answer(Answer::status(500));
    let fleet = format!(
        "fleet:\n  redis_url: \"{}\"\n  key_prefix: \"cbadmin:\"\n  timeout: 2s\n",
        redis.url()
    );
    let s = Admin::start_on(&app, &fleet).await;
    assert_eq!(s.push(HR_PATH, &text_message(30)).await, 200);
    assert_eq!(s.push(OPS_PATH, &text_message(40)).await, 200);
    let hr = s.dead_letters("hr-bot", 1).await;
    let ops = s.dead_letters("ops-bot", 1).await;
    let id = hr["dead_letters"][0]["id"].as_u64().unwrap();
    assert_eq!(ops["dead_letters"][0]["id"].as_u64(), Some(id), "{ops}");

    let (code, answer) = s.retry(&format!("{id}/retry"), &[]).await;
    assert_eq!(code, 409, "{answer}");
    let said = answer["error"].as_str().unwrap_or_default();
    assert!(
        said.contains("hr-bot") && said.contains("ops-bot"),
        "{answer}"
    );

    app.answer(Answer::ok());
    let before = app.got().len();
    let (code, answer) = s.retry(&format!("{id}/retry?app=hr-bot"), &[]).await;
    assert_eq!(code, 200, "{answer}");
    let delivered = eventually(Duration::from_secs(20), async || {
        of(&s.callbacks().await, "hr-bot")["counts"]["delivered"] == 1
    })
    .await;
    assert!(delivered, "{}", s.sc.logs());
    let got = app.got();
    assert_eq!(got.len(), before + 1, "{:?}", &got[before..]);
    assert!(got[before].body_text().contains("hello 30"));
    let doc = s.callbacks().await;
    assert_eq!(of(&doc, "hr-bot")["queue"]["dead"], 0, "{doc}");
    assert_eq!(of(&doc, "ops-bot")["queue"]["dead"], 1, "{doc}");
}

#[tokio::test]
async fn without_callbacks_the_endpoints_say_so() {
    let sc = Sidecar::start("http://127.0.0.1:9", "").await;
    let r = client()
        .get(format!("{}/admin/callbacks", sc.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert!(r.text().await.unwrap().contains("no `callbacks` section"));
    let r = client()
        .post(format!("{}/admin/callbacks/dead/1/retry", sc.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let status: Value = client()
        .get(format!("{}/admin/status", sc.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["callbacks"], Value::Null, "{status}");
}
