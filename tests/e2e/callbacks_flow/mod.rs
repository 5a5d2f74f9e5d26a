//! Issue 14's core flow end to end: WeCom's pushes (made here with the library's own
//! `callback::crypto`, whose vectors are pinned against WeCom's example and wechatpy) reach
//! the real sidecar's callback listener, are verified, committed and answered, and are
//! delivered to a small app ([`receiver`]) in order, once.
//!
//! Delivery settings are small (backoffs of tens of milliseconds, `max_age` of seconds) so
//! each test takes seconds; every wait is an `eventually`.

mod bounds;
mod durability;
mod fleet_store;
mod receiver;
mod rejections;
mod replies;
mod retries;
mod store_faults;
mod verified;

use std::path::Path;
use std::time::Duration;

use wecom_sidecar::callback::crypto::CallbackCrypto;

use crate::harness::*;
use receiver::Receiver;

/// WeCom's console values for the app (test only).
pub const CB_TOKEN: &str = "cbTokenQDG6eK7pX";
pub const CB_AES_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
pub const PATH: &str = "/callback/hr-bot";

/// How deliveries behave in a test.
#[derive(Clone, Copy)]
pub struct Timing {
    pub reply_within: &'static str,
    pub timeout: &'static str,
    pub max_age: &'static str,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            reply_within: "0",
            timeout: "1s",
            max_age: "1h",
        }
    }
}

/// The `callbacks` and `store` sections for one app delivering to `deliver_to`.
pub fn callbacks_yaml(cb_port: u16, deliver_to: &str, store: &Path, t: Timing) -> String {
    format!(
        r#"callbacks:
  listen: "127.0.0.1:{cb_port}"
  apps:
    - app: hr-bot
      path: {PATH}
      token_env: TEST_CB_TOKEN
      aes_key_env: TEST_CB_AES_KEY
      deliver_to: "{deliver_to}"
      reply_within: {reply_within}
  delivery: {{ timeout: {timeout}, backoff_base: 50ms, backoff_max: 200ms, max_age: {max_age} }}
store:
  path: "{store}"
"#,
        reply_within = t.reply_within,
        timeout = t.timeout,
        max_age = t.max_age,
        store = store.display(),
    )
}

/// A sidecar with its callback listener, its store, and the app behind it.
pub struct Flow {
    pub sc: Sidecar,
    pub app: Receiver,
    pub cb: String,
    pub cb_port: u16,
    pub wecom: Wecom,
    /// Holds the store's file across restarts of the sidecar.
    pub state: tempfile::TempDir,
    pub timing: Timing,
    /// More config (`fleet:`, `client:`), as given to [`Flow::start_with`].
    extra: String,
}

impl Flow {
    pub async fn start(t: Timing) -> Flow {
        Flow::start_with(t, "").await
    }

    /// As [`Flow::start`], with `extra` YAML appended to the config.
    pub async fn start_with(t: Timing, extra: &str) -> Flow {
        let app = Receiver::start().await;
        let state = tempfile::tempdir().unwrap();
        let cb_port = free_port();
        let store = state.path().join("sidecar.db");
        let sc = start_sidecar(cb_port, &app.url(), &store, t, extra).await;
        Flow {
            extra: extra.to_string(),
            sc,
            cb: format!("http://127.0.0.1:{cb_port}{PATH}"),
            cb_port,
            app,
            wecom: Wecom::new(),
            state,
            timing: t,
        }
    }

    /// Starts the sidecar again on the same store and ports (after a kill).
    pub async fn restart(&mut self) {
        let store = self.state.path().join("sidecar.db");
        self.sc = start_sidecar(
            self.cb_port,
            &self.app.url(),
            &store,
            self.timing,
            &self.extra,
        )
        .await;
    }

    /// POSTs `xml` as WeCom pushes it; status and body.
    pub async fn push(&self, xml: &str) -> (u16, String) {
        let (query, body) = self.wecom.push(xml);
        self.post(&query, body).await
    }

    pub async fn post(&self, query: &str, body: String) -> (u16, String) {
        let r = client()
            .post(format!("{}?{query}", self.cb))
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Waits until the app got `n` requests; them.
    pub async fn delivered(&self, n: usize) -> Vec<receiver::Got> {
        let got = eventually(Duration::from_secs(20), async || self.app.got().len() >= n).await;
        assert!(
            got,
            "the app got {} of {n}; log:\n{}",
            self.app.got().len(),
            self.sc.logs()
        );
        self.app.got()
    }

    /// Waits until `wecom_callback_deliveries_total{app="hr-bot",result}` is `n`.
    pub async fn deliveries(&self, result: &str, n: f64) {
        let mut last = 0.0;
        let reached = eventually(Duration::from_secs(20), async || {
            last = self.sc.metrics().await.sum(
                "wecom_callback_deliveries_total",
                &[("app", "hr-bot"), ("result", result)],
            );
            last >= n
        })
        .await;
        assert!(
            reached,
            "deliveries {result}: {last}, not {n}; log:\n{}",
            self.sc.logs()
        );
    }

    pub async fn callbacks(&self, app: &str, result: &str) -> f64 {
        self.sc
            .metrics()
            .await
            .sum("wecom_callbacks_total", &[("app", app), ("result", result)])
    }
}

async fn start_sidecar(
    cb_port: u16,
    deliver_to: &str,
    store: &Path,
    t: Timing,
    extra: &str,
) -> Sidecar {
    let cb = format!("{}{extra}", callbacks_yaml(cb_port, deliver_to, store, t));
    let sc = Sidecar::start_with_env(
        |l, a| config_yaml(l, a, "http://127.0.0.1:9", &cb),
        &[("TEST_CB_TOKEN", CB_TOKEN), ("TEST_CB_AES_KEY", CB_AES_KEY)],
    )
    .await;
    let up = eventually(Duration::from_secs(10), async || {
        tokio::net::TcpStream::connect(("127.0.0.1", cb_port))
            .await
            .is_ok()
    })
    .await;
    assert!(
        up,
        "the callback listener never opened; log:\n{}",
        sc.logs()
    );
    sc
}

/// WeCom's side: signs and encrypts as WeCom does.
pub struct Wecom {
    pub crypto: CallbackCrypto,
}

impl Wecom {
    pub fn new() -> Wecom {
        Wecom {
            crypto: CallbackCrypto::new(CB_TOKEN, CB_AES_KEY, CORP_ID).unwrap(),
        }
    }

    /// The query and body of a push of `xml`.
    pub fn push(&self, xml: &str) -> (String, String) {
        let encrypted = self.crypto.encrypt(xml.as_bytes(), rand::random());
        let (ts, nonce) = ("1700000000", rand::random::<u32>().to_string());
        let sig = self.crypto.signature(ts, &nonce, &encrypted);
        (
            format!("msg_signature={sig}&timestamp={ts}&nonce={nonce}"),
            envelope(&encrypted),
        )
    }
}

pub fn envelope(encrypted: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><AgentID><![CDATA[1000002]]></AgentID><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    )
}

/// A text message as WeCom pushes it, `n` making it unique.
pub fn text_message(n: u64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><FromUserName><![CDATA[zhangsan]]></FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hello {n}]]></Content><MsgId>{}</MsgId><AgentID>1000002</AgentID></xml>",
        7_000_000_000_000_000_000u64 + n
    )
}

/// An event push.
pub fn click_event() -> String {
    format!(
        "<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><FromUserName><![CDATA[lisi]]></FromUserName><CreateTime>1700000001</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[click]]></Event><EventKey><![CDATA[menu-1]]></EventKey><AgentID>1000002</AgentID></xml>"
    )
}
