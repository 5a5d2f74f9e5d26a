//! What one request on the callback listener means, once its app is known and its body read:
//! WeCom's URL verification (a GET with `echostr`) or a push (a POST of the envelope).
//!
//! A push is verified in the contract's order (signature, decryption, receive id; then the
//! decrypted XML read for `MsgType`, `Event` and `MsgId`), committed to the store under the
//! SHA-256 of its plaintext, and only then answered: a repeat of a push seen before at once
//! with an empty 200 (WeCom's retry), a new one after waiting up to `reply_within` for the
//! app's answer, which becomes the encrypted passive reply. A store that fails gets a 503, so
//! WeCom tries again later; nothing was acknowledged.
//!
//! Nothing here puts the token, the key or the message in an answer or a log line: the
//! caller logs the [`Outcome`]'s result and id only.

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::crypto::Reject;
use super::envelope::{self, Envelope, Message};
use super::{CallbackQueue, Meta};
use crate::store::{Added, Store};

/// What WeCom is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// `None` with an empty body.
    pub content_type: Option<&'static str>,
    pub body: Vec<u8>,
}

impl Answer {
    /// A status with an empty body.
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            content_type: None,
            body: Vec::new(),
        }
    }

    /// A status with a short plain-text reason (never anything of the request).
    pub fn text(status: u16, body: &str) -> Answer {
        Answer {
            status,
            content_type: Some("text/plain; charset=utf-8"),
            body: body.as_bytes().to_vec(),
        }
    }
}

/// One request's end: its `result` (the metric label and log word), the push's id when it
/// has one, and the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub result: &'static str,
    /// `X-WeCom-Callback-Id` of a verified push.
    pub id: Option<String>,
    pub answer: Answer,
    /// Why the store failed (a `store-error`), for the log line.
    pub store_error: Option<String>,
}

impl Outcome {
    fn new(result: &'static str, answer: Answer) -> Outcome {
        Outcome {
            result,
            id: None,
            answer,
            store_error: None,
        }
    }

    fn rejected(r: Reject) -> Outcome {
        match r {
            Reject::Envelope => Outcome::new(r.as_str(), Answer::text(400, "malformed\n")),
            _ => Outcome::new(r.as_str(), Answer::text(403, "forbidden\n")),
        }
    }

    /// Whether the request was refused as not WeCom's (counted in `rejected`).
    pub fn is_rejection(&self) -> bool {
        matches!(
            self.result,
            "bad-signature" | "undecryptable" | "wrong-receiver" | "malformed" | "too-large"
        )
    }
}

/// The query values WeCom signs with, percent-decoded. `+` stays `+`: an `echostr` is base64,
/// and a `+` written bare in it is a plus, never a space.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Query {
    pub msg_signature: String,
    pub timestamp: String,
    pub nonce: String,
    pub echostr: Option<String>,
}

impl Query {
    pub fn parse(query: Option<&str>) -> Query {
        let mut q = Query::default();
        for pair in query.unwrap_or("").split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = || {
                percent_encoding::percent_decode_str(value)
                    .decode_utf8()
                    .map(Cow::into_owned)
                    .unwrap_or_default()
            };
            match name {
                "msg_signature" => q.msg_signature = value(),
                "timestamp" => q.timestamp = value(),
                "nonce" => q.nonce = value(),
                "echostr" => q.echostr = Some(value()),
                _ => {}
            }
        }
        q
    }
}

/// WeCom's URL verification: the bare decrypted `echostr`.
pub fn verify_url(app: &CallbackQueue, q: &Query) -> Outcome {
    let Some(echostr) = q.echostr.as_deref().filter(|e| !e.is_empty()) else {
        return Outcome::new("malformed", Answer::text(400, "echostr missing\n"));
    };
    match app
        .crypto
        .open(&q.msg_signature, &q.timestamp, &q.nonce, echostr)
    {
        Ok(plain) => Outcome::new(
            "verified",
            Answer {
                status: 200,
                content_type: Some("text/plain; charset=utf-8"),
                body: plain,
            },
        ),
        Err(r) => Outcome::rejected(r),
    }
}

/// A push whose body was read whole: verified, committed, answered.
pub async fn accept(app: &CallbackQueue, store: &dyn Store, q: &Query, body: &[u8]) -> Outcome {
    let (plain, message) = match open(app, q, body) {
        Ok(opened) => opened,
        Err(r) => return Outcome::rejected(r),
    };
    let key: [u8; 32] = Sha256::digest(&plain).into();
    let meta = Meta {
        callback_id: hex::encode(&key[..16]),
        msg_type: message.msg_type,
        event: message.event,
        msg_id: message.msg_id,
    };
    let added = store.add(&app.queue, key, &meta.to_bytes(), &plain).await;
    let mut out = match added {
        Err(e) => Outcome {
            store_error: Some(e.to_string()),
            ..Outcome::new(
                "store-error",
                Answer::text(503, "the push could not be stored; try again later\n"),
            )
        },
        Ok(Added::Duplicate(_)) => Outcome::new("duplicate", Answer::status(200)),
        Ok(Added::New(id)) => Outcome::new("accepted", reply(app, id).await),
    };
    if out.store_error.is_none() {
        out.id = Some(meta.callback_id);
    }
    out
}

/// Verifies and decrypts the envelope in `body`, and reads the message's fields.
fn open(app: &CallbackQueue, q: &Query, body: &[u8]) -> Result<(Vec<u8>, Message), Reject> {
    let env = Envelope::parse(body).map_err(|_| Reject::Envelope)?;
    let plain = app
        .crypto
        .open(&q.msg_signature, &q.timestamp, &q.nonce, &env.encrypt)?;
    let message = Message::parse(&plain).map_err(|_| Reject::Envelope)?;
    Ok((plain, message))
}

/// Push `id` was committed: wakes its worker and waits up to `reply_within` for the app's
/// answer. A non-empty one is the passive reply; none, an empty 200.
async fn reply(app: &CallbackQueue, id: u64) -> Answer {
    let within = app.cfg.reply_within;
    let answer = if within.is_zero() {
        app.wake.notify_one();
        None
    } else {
        let rx = app.await_reply(id);
        app.wake.notify_one();
        let got = tokio::time::timeout(within, rx).await;
        app.forget_reply(id);
        got.ok().and_then(Result::ok)
    };
    match answer.filter(|b| !b.is_empty()) {
        Some(body) => passive_reply(app, &body),
        None => Answer::status(200),
    }
}

/// The app's answer encrypted for WeCom.
fn passive_reply(app: &CallbackQueue, body: &Bytes) -> Answer {
    let random: [u8; 16] = rand::random();
    let encrypted = app.crypto.encrypt(body, random);
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
        .to_string();
    let nonce = rand::random::<u32>().to_string();
    let signature = app.crypto.signature(&timestamp, &nonce, &encrypted);
    Answer {
        status: 200,
        content_type: Some("application/xml"),
        body: envelope::reply(&encrypted, &signature, &timestamp, &nonce),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_decoded_and_plus_stays_plus() {
        let q = Query::parse(Some(
            "msg_signature=ab12&timestamp=1409659589&nonce=263014780&echostr=P9n%2BAz+C/y%3D%3D&x=1",
        ));
        assert_eq!(q.msg_signature, "ab12");
        assert_eq!(q.timestamp, "1409659589");
        assert_eq!(q.nonce, "263014780");
        assert_eq!(q.echostr.as_deref(), Some("P9n+Az+C/y=="));
        assert_eq!(Query::parse(None), Query::default());
        // Not UTF-8 once decoded: empty, which no signature matches.
        assert_eq!(Query::parse(Some("nonce=%ff")).nonce, "");
    }
}
