//! WeCom's pushing side: `POST /sim/callbacks/push` builds a message as WeCom does, encrypts
//! and signs it with the app's callback credentials, POSTs it to the sidecar's callback URL
//! (again, as WeCom's retries do, when asked), and reports what each attempt got, a passive
//! reply decrypted; `POST /sim/callbacks/verify` does WeCom's URL verification (a GET with
//! `echostr`) and checks the answer is the decrypted `echostr`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Value};

use super::crypto::WeComCrypto;
use super::xml::{child, document, Field};
use crate::handlers::{json_answer, Answer};
use crate::state::State;
use crate::SimApp;

/// How long WeCom waits for an answer before it gives up on an attempt.
const WECOM_WAIT: Duration = Duration::from_secs(5);
/// WeCom sends a push at most 4 times (the first and 3 retries); the simulator allows a few
/// more for tests of the dedupe.
const MAX_REPEAT: u32 = 10;
/// The most of an answer the simulator reads.
const MAX_ANSWER: usize = 1024 * 1024;

/// A `MsgId` no earlier push of this process had.
static MSG_IDS: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Default, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Kind {
    #[default]
    Text,
    Event,
}

fn one() -> u32 {
    1
}

/// The body of `POST /sim/callbacks/push`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PushRequest {
    /// The sidecar's callback URL.
    to: String,
    /// The simulated app whose credentials sign and encrypt.
    app: String,
    #[serde(default)]
    kind: Kind,
    /// A text message's `Content` (default "hello").
    content: Option<String>,
    /// An event's `Event` (default "click") and `EventKey`.
    event: Option<String>,
    event_key: Option<String>,
    /// `FromUserName` (default "zhangsan").
    from: Option<String>,
    /// How many times in all the push is sent (WeCom's retries: the same request again).
    #[serde(default = "one")]
    repeat: u32,
    /// Encrypt each repeat anew (new random bytes, timestamp and nonce; same message).
    #[serde(default)]
    fresh: bool,
}

/// The body of `POST /sim/callbacks/verify`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyRequest {
    to: String,
    app: String,
}

fn refused(code: StatusCode, error: String) -> Answer {
    let mut r = json_answer(json!({"ok": false, "error": error}));
    *r.status_mut() = code;
    r
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The app named `name` and its crypto, or why not.
fn app_crypto(state: &State, name: &str) -> Result<(SimApp, WeComCrypto), String> {
    let apps = &state.cfg.apps;
    let app = apps.iter().find(|a| a.name == name).ok_or_else(|| {
        let names: Vec<&str> = apps.iter().map(|a| a.name.as_str()).collect();
        format!(
            "no simulated app {name:?}; the apps are {}",
            names.join(", ")
        )
    })?;
    let crypto = WeComCrypto::new(&app.callback_token, &app.callback_aes_key, &app.corp_id)
        .map_err(|e| format!("app {name}: {e}"))?;
    Ok((app.clone(), crypto))
}

fn target(to: &str) -> Result<Uri, String> {
    match to.parse::<Uri>() {
        Ok(u) if u.scheme_str() == Some("http") && u.authority().is_some() => Ok(u),
        _ => Err(format!(
            "\"to\" must be an http:// URL, e.g. http://127.0.0.1:8090/callback/hr-bot; got {to:?}"
        )),
    }
}

/// A control call's answer: a refusal (400) says why.
fn answered(result: Result<Value, String>) -> Answer {
    match result {
        Ok(v) => json_answer(v),
        Err(error) => refused(StatusCode::BAD_REQUEST, error),
    }
}

/// `to` with WeCom's query parameters added.
fn with_query(to: &Uri, params: &[(&str, &str)]) -> Result<Uri, String> {
    let mut q = form_urlencoded::Serializer::new(to.query().unwrap_or("").to_string());
    for (k, v) in params {
        q.append_pair(k, v);
    }
    let authority = to.authority().map(|a| a.as_str()).unwrap_or("");
    format!("http://{authority}{}?{}", to.path(), q.finish())
        .parse()
        .map_err(|e| format!("{e}"))
}

/// A fresh `timestamp` and `nonce` and the `msg_signature` of `encrypted` with them.
fn signed(crypto: &WeComCrypto, encrypted: &str) -> (String, String, String) {
    let timestamp = now_secs().to_string();
    let nonce = rand::rng()
        .random_range(100_000_000u64..10_000_000_000)
        .to_string();
    let signature = crypto.signature(&timestamp, &nonce, encrypted);
    (timestamp, nonce, signature)
}

/// One HTTP/1.1 request on a connection of its own, as WeCom makes them; the status and body.
async fn send(method: Method, url: &Uri, body: Bytes) -> Result<(u16, Bytes), String> {
    let authority = url.authority().ok_or("no host")?.clone();
    let host_port = format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(80)
    );
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(&host_port)
            .await
            .map_err(|e| format!("cannot connect to {host_port}: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method.clone())
            .uri(url.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
            .header(http::header::HOST, authority.as_str())
            .header(http::header::USER_AGENT, "wecom-sim (WeCom callback)");
        if method == Method::POST {
            req = req.header(http::header::CONTENT_TYPE, "text/xml");
        }
        let req = req.body(Full::new(body)).map_err(|e| format!("{e}"))?;
        let res = sender
            .send_request(req)
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        let status = res.status().as_u16();
        let body = Limited::new(res.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| format!("answer body: {e}"))?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(WECOM_WAIT, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {WECOM_WAIT:?} (WeCom gives up)")))
}

/// The message XML WeCom pushes for `req`.
fn message(req: &PushRequest, app: &SimApp) -> (String, Option<String>) {
    let created = now_secs();
    let from = req.from.as_deref().unwrap_or("zhangsan");
    match req.kind {
        Kind::Text => {
            let msg_id = format!(
                "{}{:06}",
                created,
                MSG_IDS.fetch_add(1, Ordering::Relaxed) % 1_000_000
            );
            let xml = document(&[
                ("ToUserName", Field::Text(&app.corp_id)),
                ("FromUserName", Field::Text(from)),
                ("CreateTime", Field::Number(created)),
                ("MsgType", Field::Text("text")),
                (
                    "Content",
                    Field::Text(req.content.as_deref().unwrap_or("hello")),
                ),
                ("MsgId", Field::Text(&msg_id)),
                ("AgentID", Field::Number(app.agent_id.into())),
            ]);
            (xml, Some(msg_id))
        }
        Kind::Event => {
            let xml = document(&[
                ("ToUserName", Field::Text(&app.corp_id)),
                ("FromUserName", Field::Text(from)),
                ("CreateTime", Field::Number(created)),
                ("MsgType", Field::Text("event")),
                (
                    "Event",
                    Field::Text(req.event.as_deref().unwrap_or("click")),
                ),
                (
                    "EventKey",
                    Field::Text(req.event_key.as_deref().unwrap_or("")),
                ),
                ("AgentID", Field::Number(app.agent_id.into())),
            ]);
            (xml, None)
        }
    }
}

/// The envelope WeCom POSTs, and the URL with its query.
fn sealed(
    crypto: &WeComCrypto,
    app: &SimApp,
    to: &Uri,
    xml: &str,
) -> Result<(Uri, String), String> {
    let encrypted = crypto.encrypt(xml.as_bytes());
    let (timestamp, nonce, signature) = signed(crypto, &encrypted);
    let url = with_query(
        to,
        &[
            ("msg_signature", &signature),
            ("timestamp", &timestamp),
            ("nonce", &nonce),
        ],
    )?;
    let agent = app.agent_id.to_string();
    let body = document(&[
        ("ToUserName", Field::Text(&app.corp_id)),
        ("AgentID", Field::Text(&agent)),
        ("Encrypt", Field::Text(&encrypted)),
    ]);
    Ok((url, body))
}

/// What the sidecar's answer body is as a passive reply: `null` when empty, else the
/// decrypted XML or why it is not one.
fn passive_reply(crypto: &WeComCrypto, body: &[u8]) -> (Value, Value) {
    if body.iter().all(u8::is_ascii_whitespace) {
        return (Value::Null, Value::Null);
    }
    let field = |name| child(body, name).ok().flatten().unwrap_or_default();
    if let Err(e) = child(body, "Encrypt") {
        return (Value::Null, json!(format!("the reply is {e}")));
    }
    let opened = crypto.open(
        &field("MsgSignature"),
        &field("TimeStamp"),
        &field("Nonce"),
        &field("Encrypt"),
    );
    match opened {
        Ok(xml) => (json!(String::from_utf8_lossy(&xml)), Value::Null),
        Err(e) => (Value::Null, json!(format!("the reply does not open: {e}"))),
    }
}

/// `POST /sim/callbacks/push`.
pub(super) async fn push(state: &State, body: &[u8]) -> Answer {
    answered(push_inner(state, body).await)
}

async fn push_inner(state: &State, body: &[u8]) -> Result<Value, String> {
    let req: PushRequest = serde_json::from_slice(body).map_err(|e| format!("bad push: {e}"))?;
    if !(1..=MAX_REPEAT).contains(&req.repeat) {
        return Err(format!(
            "\"repeat\" is how many times the push is sent: 1 to {MAX_REPEAT}"
        ));
    }
    let to = target(&req.to)?;
    let (app, crypto) = app_crypto(state, &req.app)?;
    let (xml, msg_id) = message(&req, &app);
    let mut request = sealed(&crypto, &app, &to, &xml).map_err(|e| format!("bad URL: {e}"))?;
    let mut attempts = Vec::new();
    let mut ok = true;
    for n in 0..req.repeat {
        if req.fresh && n > 0 {
            request = sealed(&crypto, &app, &to, &xml).map_err(|e| format!("bad URL: {e}"))?;
        }
        let (url, envelope) = request.clone();
        let started = Instant::now();
        let attempt = match send(Method::POST, &url, Bytes::from(envelope)).await {
            Ok((status, answer)) => {
                let (reply, reply_error) = passive_reply(&crypto, &answer);
                ok &= status == 200 && reply_error.is_null();
                json!({
                    "status": status,
                    "body": String::from_utf8_lossy(&answer),
                    "reply": reply,
                    "reply_error": reply_error,
                    "ms": started.elapsed().as_millis() as u64,
                })
            }
            Err(error) => {
                ok = false;
                json!({"error": error, "ms": started.elapsed().as_millis() as u64})
            }
        };
        attempts.push(attempt);
    }
    Ok(json!({
        "ok": ok,
        "app": app.name,
        "message": xml,
        "msg_id": msg_id,
        "attempts": attempts,
    }))
}

/// `POST /sim/callbacks/verify`.
pub(super) async fn verify(state: &State, body: &[u8]) -> Answer {
    answered(verify_inner(state, body).await)
}

async fn verify_inner(state: &State, body: &[u8]) -> Result<Value, String> {
    let req: VerifyRequest =
        serde_json::from_slice(body).map_err(|e| format!("bad verify: {e}"))?;
    let to = target(&req.to)?;
    let (_, crypto) = app_crypto(state, &req.app)?;
    let echo = rand::rng()
        .random_range(1_000_000_000_000_000_000u64..10_000_000_000_000_000_000)
        .to_string();
    let encrypted = crypto.encrypt(echo.as_bytes());
    let (timestamp, nonce, signature) = signed(&crypto, &encrypted);
    let url = with_query(
        &to,
        &[
            ("msg_signature", &signature),
            ("timestamp", &timestamp),
            ("nonce", &nonce),
            ("echostr", &encrypted),
        ],
    )
    .map_err(|e| format!("bad URL: {e}"))?;
    Ok(match send(Method::GET, &url, Bytes::new()).await {
        Ok((status, answer)) => json!({
            "ok": status == 200 && answer == echo.as_bytes(),
            "status": status,
            "body": String::from_utf8_lossy(&answer),
            "expected": echo,
        }),
        Err(error) => json!({"ok": false, "error": error, "expected": echo}),
    })
}
