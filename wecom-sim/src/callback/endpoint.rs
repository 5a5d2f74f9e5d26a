//! A reference callback URL, `/sim/callbacks/endpoint/{app}`, answering WeCom as a correct
//! implementation does, with the simulator's crypto: a GET with `echostr` gets the decrypted
//! `echostr`; a POST is verified and decrypted (403 saying why when it is not), its plaintext
//! recorded among the receiver's deliveries (header `x-sim-endpoint: {app}`), and answered with
//! the receiver's told body as an encrypted passive reply (an empty 200 when there is none).
//! What a WeCom SDK's pushes are checked against before a sidecar is in the way.

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use rand::Rng;

use super::crypto::WeComCrypto;
use super::receiver;
use super::xml::{child, document, Field};
use crate::body::SimBody;
use crate::handlers::{query_value, Answer};
use crate::state::State;

fn text(code: StatusCode, body: String) -> Answer {
    let mut r = Response::new(SimBody::full(body));
    *r.status_mut() = code;
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// `GET` or `POST /sim/callbacks/endpoint/{app}?msg_signature=&timestamp=&nonce=[&echostr=]`.
pub(super) async fn endpoint(
    state: &State,
    method: &Method,
    app: &str,
    query: &str,
    body: &[u8],
) -> Answer {
    let Some(sim_app) = state.cfg.apps.iter().find(|a| a.name == app) else {
        return text(StatusCode::NOT_FOUND, format!("no simulated app {app:?}"));
    };
    let crypto = match WeComCrypto::new(
        &sim_app.callback_token,
        &sim_app.callback_aes_key,
        &sim_app.corp_id,
    ) {
        Ok(c) => c,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let q = |name| query_value(query, name).unwrap_or_default();
    let (signature, timestamp, nonce) = (q("msg_signature"), q("timestamp"), q("nonce"));
    let encrypted = match *method {
        Method::GET => q("echostr"),
        Method::POST => match child(body, "Encrypt") {
            Ok(Some(e)) => e,
            Ok(None) => return text(StatusCode::BAD_REQUEST, "no Encrypt".into()),
            Err(e) => return text(StatusCode::BAD_REQUEST, e),
        },
        _ => return text(StatusCode::METHOD_NOT_ALLOWED, "GET or POST".into()),
    };
    let plain = match crypto.open(&signature, &timestamp, &nonce, &encrypted) {
        Ok(p) => p,
        Err(e) => return text(StatusCode::FORBIDDEN, e.to_string()),
    };
    if *method == Method::GET {
        return text(StatusCode::OK, String::from_utf8_lossy(&plain).into_owned());
    }
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(app) {
        headers.insert("x-sim-endpoint", v);
    }
    let (_, reply, _) = receiver::record(state, "", &headers, &plain);
    if reply.is_empty() {
        return text(StatusCode::OK, String::new());
    }
    let encrypted = crypto.encrypt(reply.as_bytes());
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        .to_string();
    let nonce = rand::rng()
        .random_range(100_000_000u64..10_000_000_000)
        .to_string();
    let signature = crypto.signature(&timestamp, &nonce, &encrypted);
    let xml = document(&[
        ("Encrypt", Field::Text(&encrypted)),
        ("MsgSignature", Field::Text(&signature)),
        ("TimeStamp", Field::Text(&timestamp)),
        ("Nonce", Field::Text(&nonce)),
    ]);
    let mut r = Response::new(SimBody::full(xml));
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/xml"));
    r
}
