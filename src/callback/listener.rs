//! The `callbacks.listen` listener's connections: read one request head at a time under the
//! bounds of `client:` (as the admin listener does: the wait for a head, between calls
//! included, within `header_timeout`; each body read and answer write within `body_timeout`),
//! find the app by its path, read the body (at most [`MAX_CALLBACK_BODY`]), and let [`push`]
//! decide the answer.
//!
//! | request | answer |
//! | --- | --- |
//! | a path no app has | 404 (`unknown-path`, app `-`), connection closed |
//! | a method other than GET or POST | 405 with `Allow: GET, POST`, connection closed |
//! | GET with `echostr` | 200, the bare decrypted echostr |
//! | POST over 1 MiB (by `Content-Length` or while reading) | 413, connection closed once the rest of the body is read and dropped ([`crate::linger`]) |
//! | POST, refused | 403 (signature, decryption, receive id) or 400 (not WeCom's XML) |
//! | POST, committed | 200: the encrypted passive reply, or empty |
//! | POST, the store failed | 503 (WeCom retries), and a WARN line saying why |
//!
//! Each request ends in one INFO line (`app`, `result`, `id`, `latency_ms`; never the message)
//! and one count in `wecom_callbacks_total{app,result}`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::BytesMut;
use http::Method;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream};
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;

use super::push::{self, Answer, Outcome, Query};
use super::{CallbackQueue, Callbacks};
use crate::config::defaults::MAX_CALLBACK_BODY;
use crate::config::ClientConnections;
use crate::metrics::Metrics;

/// Seconds a kept-alive connection is advertised (the real bound is `header_timeout`).
const KEEPALIVE_S: u64 = 60;

/// What the listener needs of the process around it: the `client:` bounds in force, and a
/// mark that a request is being handled (the drain waits for it before the process exits).
pub trait Process: Send + Sync + 'static {
    type InFlight: Send;
    fn client(&self) -> ClientConnections;
    fn enter(&self) -> Self::InFlight;
}

/// The callback listener's HTTP/1 loop.
pub struct CallbackServer<P> {
    pub callbacks: Arc<Callbacks>,
    pub metrics: Arc<Metrics>,
    pub process: P,
}

/// An answer, and whether the connection must close after it (a body left unread: pingora
/// would otherwise read all of it, however large, to reuse the connection).
struct Reply {
    answer: Answer,
    close: bool,
    allow: bool,
    /// The body may still be read after the answer (not after it broke off).
    linger: bool,
}

#[async_trait]
impl<P: Process> HttpServerApp for CallbackServer<P> {
    async fn process_new_http(
        self: &Arc<Self>,
        mut http: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        let limits = self.process.client();
        http.set_read_timeout(Some(limits.body_timeout));
        http.set_write_timeout(Some(limits.body_timeout));
        let head = crate::request_head::read(&mut http, shutdown);
        if !matches!(
            tokio::time::timeout(limits.header_timeout, head).await,
            Ok(true)
        ) {
            return None;
        }
        let in_flight = self.process.enter();
        let reply = self.handle(&mut http).await;
        let close = reply.close || *shutdown.borrow();
        http.set_keepalive((!close).then_some(KEEPALIVE_S));
        let written = write(&mut http, &reply).await.is_ok();
        drop(in_flight);
        match then(written, &reply) {
            Then::Keep => {}
            Then::Close => {
                http.shutdown().await;
                return None;
            }
            // Answered before the body was read (a 413 by its length, a wrong path): what the
            // sender still sends is read and dropped first, so it reads the answer, not a reset.
            Then::Linger => {
                crate::linger::linger(&mut http).await;
                http.shutdown().await;
                return None;
            }
        }
        let settings = HttpPersistentSettings::for_session(&http);
        match http.finish().await {
            Ok(reusable) => reusable.map(|s| ReusedHttpStream::from_reusable_stream(s, settings)),
            Err(_) => None,
        }
    }
}

/// What becomes of a connection once its answer was (or failed to be) written.
#[derive(Debug, PartialEq, Eq)]
enum Then {
    /// Kept for the next request.
    Keep,
    Close,
    /// Read and drop the rest of the request body ([`crate::linger`]), then close.
    Linger,
}

fn then(written: bool, reply: &Reply) -> Then {
    match (written, reply.close, reply.linger) {
        (false, _, _) => Then::Close,
        (true, false, _) => Then::Keep,
        (true, true, true) => Then::Linger,
        (true, true, false) => Then::Close,
    }
}

impl<P: Process> CallbackServer<P> {
    /// Routes one request, logs and counts its end.
    async fn handle(&self, http: &mut ServerSession) -> Reply {
        let started = Instant::now();
        let req = http.req_header();
        let Some(app) = self.callbacks.by_path(req.uri.path()).cloned() else {
            self.count("-", "unknown-path");
            tracing::info!(app = "-", result = "unknown-path", "callback");
            return Reply {
                answer: Answer::text(404, "no callback at this path\n"),
                close: true,
                allow: false,
                linger: true,
            };
        };
        let method = req.method.clone();
        let query = Query::parse(req.uri.query());
        let (outcome, close, linger) = match method {
            Method::GET => (push::verify_url(&app, &query), false, true),
            Method::POST => match read_body(http).await {
                Body::Read(body) => {
                    let store = self.callbacks.store.as_ref();
                    (push::accept(&app, store, &query, &body).await, false, true)
                }
                Body::TooLarge => (
                    Outcome::new("too-large", Answer::text(413, "a push is at most 1 MiB\n")),
                    true,
                    true,
                ),
                // The body broke off (closed early, or too slow): answered if anyone listens.
                Body::Broken => (
                    Outcome::new("malformed", Answer::text(400, "the body broke off\n")),
                    true,
                    false,
                ),
            },
            _ => {
                return Reply {
                    answer: Answer::text(405, "GET or POST\n"),
                    close: true,
                    allow: true,
                    linger: true,
                }
            }
        };
        self.finish(&app, &outcome, started);
        Reply {
            answer: outcome.answer,
            close,
            allow: false,
            linger,
        }
    }

    /// The push's log line and counts.
    fn finish(&self, app: &CallbackQueue, outcome: &Outcome, started: Instant) {
        let name = app.cfg.app.as_str();
        self.count(name, outcome.result);
        let counts = &app.counts;
        match outcome.result {
            "accepted" => counts.received.fetch_add(1, Ordering::Relaxed),
            "duplicate" => counts.duplicates.fetch_add(1, Ordering::Relaxed),
            _ if outcome.is_rejection() => counts.rejected.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        let latency_ms = started.elapsed().as_millis() as u64;
        if let Some(why) = &outcome.store_error {
            tracing::warn!(app = name, error = %why, "callback: the store failed; the push was not acknowledged (WeCom retries it): check that the store's file is writable and its disk not full");
        }
        tracing::info!(
            app = name,
            result = outcome.result,
            id = outcome.id.as_deref().unwrap_or("-"),
            status = outcome.answer.status,
            latency_ms,
            "callback"
        );
    }

    fn count(&self, app: &str, result: &str) {
        self.metrics
            .callbacks_total
            .with_label_values(&[app, result])
            .inc();
    }
}

enum Body {
    Read(Vec<u8>),
    TooLarge,
    Broken,
}

/// Reads the request body, refusing unread one that says it is over the cap and stopping at
/// the cap for one that does not say.
async fn read_body(http: &mut ServerSession) -> Body {
    let declared = http
        .get_header(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_CALLBACK_BODY as u64) {
        return Body::TooLarge;
    }
    let mut buf = BytesMut::new();
    loop {
        match http.read_request_body().await {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > MAX_CALLBACK_BODY {
                    return Body::TooLarge;
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => return Body::Read(buf.to_vec()),
            Err(_) => return Body::Broken,
        }
    }
}

async fn write(http: &mut ServerSession, reply: &Reply) -> pingora::Result<()> {
    let a = &reply.answer;
    let mut head = ResponseHeader::build(a.status, Some(4))?;
    if let Some(ct) = a.content_type {
        head.insert_header(http::header::CONTENT_TYPE, ct)?;
    }
    head.insert_header(http::header::CONTENT_LENGTH, a.body.len())?;
    if reply.allow {
        head.insert_header(http::header::ALLOW, "GET, POST")?;
    }
    if reply.close {
        head.insert_header(http::header::CONNECTION, "close")?;
    }
    http.write_response_header(Box::new(head)).await?;
    if !a.body.is_empty() {
        http.write_response_body(a.body.clone().into(), true)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(close: bool, linger: bool) -> Reply {
        Reply {
            answer: Answer::text(413, "x\n"),
            close,
            allow: false,
            linger,
        }
    }

    #[test]
    fn a_closing_answer_lingers_when_the_body_may_follow_and_a_failed_write_just_closes() {
        assert_eq!(then(true, &reply(false, true)), Then::Keep);
        assert_eq!(then(true, &reply(false, false)), Then::Keep);
        assert_eq!(then(true, &reply(true, true)), Then::Linger);
        assert_eq!(then(true, &reply(true, false)), Then::Close);
        assert_eq!(then(false, &reply(false, true)), Then::Close);
        assert_eq!(then(false, &reply(true, true)), Then::Close);
    }
}
