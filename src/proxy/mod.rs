//! The request pipeline: a pingora HTTP server application that wires the other modules
//! together in order.
//!
//! The sidecar answers every call itself and runs the upstream exchange on its own (pingora's
//! `Connector`, pooled) rather than through pingora-proxy, because it must read `errcode` in a
//! 200 answer and repeat the call after a token error, which a proxy flow cannot do once the
//! header has gone out.
//!
//! Order: request id → route → method/limits → `gettoken` answered locally → app → body read
//! (JSON buffered, uploads spooled) → forward (token, upstream, errcode) → answer → access log.

pub mod admission;
mod connection;
pub mod dedupe;
pub mod forward;
mod hop;
pub mod request;
pub mod respond;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::apps::ServerApp;
use pingora::prelude::*;
use pingora::protocols::http::server::ReusableHttpStream;
use pingora::protocols::http::ServerSession as Session;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;

use crate::body::{RequestBody, Spool};
use crate::config::{AppName, Client, UpstreamName};
use crate::metrics::Outcome;
use crate::signing;
use crate::state::{InFlight, Shared};
use crate::wecom::answer::{LocalAnswer, Reason};
use crate::wecom::apis::BodyKind;
use crate::wecom::errcode;

/// Largest JSON request body accepted from an app.
pub const MAX_JSON_REQUEST: u64 = 2 * 1024 * 1024;
/// Largest upload accepted: WeCom's 20 MB media limit plus room for the multipart framing.
pub const MAX_UPLOAD: u64 = 20 * 1024 * 1024 + 64 * 1024;

/// The `api` label of calls not (yet) routed; shared so a new call allocates nothing for it.
static OTHER: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| Arc::from("other"));

/// Per-call state, from arrival to the access log line.
pub struct RequestCtx {
    pub started: Instant,
    pub request_id: String,
    pub api: Arc<str>,
    /// The route the call fell under (for plan gates).
    pub route: Option<Arc<str>>,
    pub app: Option<AppName>,
    /// The signing client (`clients:` set).
    pub client: Option<Arc<str>>,
    pub upstream: Option<UpstreamName>,
    pub attempts: u32,
    pub outcome: Outcome,
    pub status: u16,
    pub errcode: Option<i64>,
    pub reason: Option<Reason>,
    /// What went wrong, in words safe to log.
    pub detail: Option<String>,
    _in_flight: Option<InFlight>,
}

/// The sidecar's HTTP application on the app listener.
///
/// It is a pingora `ServerApp` running HTTP/1.1 sessions itself (`connection`), not a
/// `ProxyHttp`: every call is answered by the sidecar itself, so pingora-proxy's phases
/// (cache, modules, upstream peer selection, its own retry loop) would only cost time:
/// callgrind showed its large per-request futures copied into boxes on every call
/// (`bash benches/profile.sh` measures instructions per call). Nor is it an `HttpServerApp`:
/// pingora's connection loop for those bounds neither a slow request head nor the wait
/// between calls.
pub struct SidecarProxy {
    pub shared: Arc<Shared>,
}

#[async_trait]
impl ServerApp for SidecarProxy {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        connection::run(self, stream, shutdown).await;
        None
    }
}

impl SidecarProxy {
    /// Answers the call whose head `session` has read, logs it, and hands the connection
    /// back for the next call when it can be reused.
    async fn serve(&self, mut session: Session) -> Option<ReusableHttpStream> {
        let mut ctx = self.new_ctx();
        if let Some(answer) = self.handle(&mut session, &mut ctx).await {
            // A failed write means the app went away; the access log line says so.
            if let Err(e) = respond::local(&mut session, &mut ctx, answer).await {
                ctx.detail = Some(format!("app went away: {}", e.etype().as_str()));
            }
        }
        if ctx.status == 0 {
            // The app went away before the answer was complete.
            ctx.status = session.response_written().map_or(0, |h| h.status.as_u16());
        }
        access_log(&self.shared, &session, &ctx);
        let reused = session.finish().await.ok().flatten();
        // The call stops counting as in flight only once its answer is flushed.
        drop(ctx);
        reused
    }

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            request_id: String::new(),
            api: OTHER.clone(),
            route: None,
            app: None,
            client: None,
            upstream: None,
            attempts: 0,
            outcome: Outcome::Local,
            status: 0,
            errcode: None,
            reason: None,
            detail: None,
            _in_flight: Some(self.shared.enter()),
        }
    }

    /// Runs the pipeline; returns a local answer to write, or `None` when the answer is out.
    async fn handle(&self, session: &mut Session, ctx: &mut RequestCtx) -> Option<LocalAnswer> {
        let shared = &self.shared;
        let rt = shared.runtime.load_full();
        let req = session.req_header();
        ctx.request_id = request::request_id(
            req.headers.get("x-request-id").map(|v| v.as_bytes()),
            req.headers.get("traceparent").map(|v| v.as_bytes()),
        );
        let path = req.uri.path().to_string();
        let query = req.uri.query().unwrap_or("").to_string();

        let Some(call) = rt.routes.route(&path) else {
            return Some(LocalAnswer::new(
                404,
                Reason::BadRequest,
                404,
                "wecom-sidecar: only WeCom server API paths (/cgi-bin/...) are proxied",
            ));
        };
        ctx.api = call.label.clone();
        ctx.route = Some(call.route.key.clone());
        if req.method != http::Method::GET && req.method != http::Method::POST {
            return Some(LocalAnswer::new(
                405,
                Reason::BadRequest,
                405,
                "wecom-sidecar: WeCom APIs take GET or POST",
            ));
        }
        if !request::is_api_path(&path) {
            return Some(LocalAnswer::bad_request(
                404,
                "wecom-sidecar: path is not a WeCom API path",
            ));
        }
        // With `clients:` set, the signature covers the body too: it is read (and hashed)
        // first, and nothing else is done for a call whose signature fails.
        let mut client: Option<&Client> = None;
        let mut early_body = None;
        if !rt.config.clients.is_empty() {
            let (body, hash) = match read_body(session, call.api.body, true).await {
                Ok(b) => b,
                Err(answer) => return Some(answer),
            };
            match authenticate(shared, &rt.config.clients, session, &path, &query, &hash) {
                Ok(c) => {
                    ctx.client = Some(c.name.clone());
                    client = Some(c);
                }
                Err(answer) => return Some(answer),
            }
            early_body = Some(body);
        }

        if path == "/cgi-bin/gettoken" {
            return Some(request::answer_gettoken(&rt, &query, client));
        }

        let app = if call.api.auth == crate::wecom::apis::Auth::Token {
            let header = session.req_header().headers.get(request::APP_HEADER);
            match request::choose_app(&rt, header.map(|v| v.as_bytes()), &query) {
                Ok(app) => {
                    ctx.app = Some(app.app.name.clone());
                    if let Some(c) = client.filter(|c| !c.may_use(&app.app.name)) {
                        return Some(forbidden_app(shared, c, &app.app.name));
                    }
                    Some(app)
                }
                Err(answer) => return Some(answer),
            }
        } else {
            None
        };

        let body = match early_body {
            Some(b) => b,
            None => match read_body(session, call.api.body, false).await {
                Ok((b, _)) => b,
                Err(answer) => return Some(answer),
            },
        };
        let (body, duplicate_checked) = match body {
            RequestBody::Buffered(b) => {
                let (b, safe) = dedupe::apply(call.api.name, &call.route.policy, b);
                (RequestBody::Buffered(b), safe)
            }
            other => (other, false),
        };

        let deadline = call.route.policy.deadline;
        let deadline_at = tokio::time::Instant::now() + deadline;
        let admitted = tokio::time::timeout(
            deadline,
            admission::admit(shared, &call, app.map(|a| &a.app.name), &query, &body),
        )
        .await;
        match admitted {
            Ok(Ok(())) => {}
            Ok(Err(answer)) => return Some(answer),
            Err(_) => return Some(deadline_answer(deadline)),
        }

        let f = forward::Forward {
            shared,
            rt: &rt,
            call: &call,
            app,
            body: &body,
            idempotent: call.idempotent() || duplicate_checked,
            deadline_at,
        };
        // The deadline bounds the wait for an answer. One that arrived is passed on whole,
        // after it: a deadline passing while a body is on its way would otherwise put the
        // local 504 into that body. Attempts end themselves at the deadline (and are counted
        // as timed out); this bounds the rest, such as a token fetch.
        match tokio::time::timeout_at(deadline_at, forward::forward(f, session, ctx)).await {
            Ok(forward::Ended::Pass(header, body)) => {
                forward::write_pass(session, ctx, header, body).await;
                None
            }
            Ok(forward::Ended::Stream(open, up, secrets)) => {
                // Boxed: media is rare, and streaming's state would otherwise enlarge every
                // call's future.
                Box::pin(forward::stream(*open, up, &secrets, session, ctx)).await;
                None
            }
            Ok(forward::Ended::Local(answer)) => Some(answer),
            Err(_) => {
                ctx.outcome = Outcome::NetworkError;
                Some(deadline_answer(deadline))
            }
        }
    }
}

/// Checks the call's signature (`clients:` set); the client it is from, or the answer refusing
/// it. Refusals are counted by client (`unknown` for names not configured) and reason.
fn authenticate<'c>(
    shared: &Shared,
    clients: &'c [Client],
    session: &Session,
    path: &str,
    query: &str,
    body_sha256: &[u8; 32],
) -> Result<&'c Client, LocalAnswer> {
    let req = session.req_header();
    let header = |name| req.headers.get(name).map(|v| v.as_bytes());
    let presented = signing::Presented {
        client: header(signing::CLIENT_HEADER),
        timestamp: header(signing::TIMESTAMP_HEADER),
        signature: header(signing::SIGNATURE_HEADER),
    };
    let signed = signing::Signed {
        method: req.method.as_str(),
        path,
        query,
        body_sha256,
    };
    signing::verify(clients, presented, &signed, signing::now_secs()).map_err(|why| {
        let label = presented
            .client
            .and_then(|n| clients.iter().find(|c| c.name.as_bytes() == n))
            .map_or("unknown", |c| &*c.name);
        shared
            .metrics
            .client_rejected
            .with_label_values(&[label, why.as_str()])
            .inc();
        LocalAnswer::new(
            401,
            Reason::Unauthorized,
            errcode::API_FORBIDDEN,
            format!("wecom-sidecar: {}", why.describe()),
        )
    })
}

/// The answer to a signed call for an app its client may not use.
fn forbidden_app(shared: &Shared, client: &Client, app: &AppName) -> LocalAnswer {
    shared
        .metrics
        .client_rejected
        .with_label_values(&[&*client.name, "app_not_allowed"])
        .inc();
    LocalAnswer::new(
        403,
        Reason::Unauthorized,
        errcode::API_FORBIDDEN,
        format!(
            "wecom-sidecar: client {} may not use app {app} (see clients[].apps)",
            client.name
        ),
    )
}

pub(super) fn deadline_answer(deadline: std::time::Duration) -> LocalAnswer {
    LocalAnswer::new(
        504,
        Reason::Deadline,
        errcode::SYSTEM_BUSY,
        format!("wecom-sidecar: no answer within the deadline of {deadline:?}"),
    )
}

fn too_large(limit: u64) -> LocalAnswer {
    LocalAnswer::new(
        413,
        Reason::BadRequest,
        errcode::DATA_FORMAT_ERROR,
        format!("wecom-sidecar: request body over the limit of {limit} bytes"),
    )
}

/// The next chunk of the app's request body. A body that cannot be read (a broken chunk size,
/// a connection cut mid-body) leaves no way to tell where the next request would start, so
/// the answer to it closes the connection (RFC 9112 §6.3) instead of reading on from bytes
/// that can no longer be framed.
async fn next_chunk(session: &mut Session) -> Result<Option<Bytes>, LocalAnswer> {
    match session.read_request_body().await {
        Ok(chunk) => Ok(chunk),
        Err(e) => {
            session.set_keepalive(None);
            Err(LocalAnswer::bad_request(
                errcode::DATA_FORMAT_ERROR,
                format!(
                    "wecom-sidecar: could not read the request body ({})",
                    e.etype().as_str()
                ),
            ))
        }
    }
}

/// Reads the app's request body: JSON into memory, uploads into a spool file. Refuses bodies
/// over the limit before reading past it. With `hash`, also returns the body's SHA-256 (what a
/// signed call signs).
async fn read_body(
    session: &mut Session,
    kind: BodyKind,
    hash: bool,
) -> Result<(RequestBody, [u8; 32]), LocalAnswer> {
    use sha2::Digest;
    let mut hasher = hash.then(sha2::Sha256::new);
    let limit = if kind == BodyKind::Upload {
        MAX_UPLOAD
    } else {
        MAX_JSON_REQUEST
    };
    let declared = session
        .req_header()
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    // Clients that asked to be invited (curl does for large uploads) get the invitation now,
    // once the declared size is known to be acceptable, instead of waiting a second for it.
    let expects_continue = session
        .req_header()
        .headers
        .get("expect")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        let _ = session.write_continue_response().await;
    }
    if kind == BodyKind::Upload {
        let mut spool = Spool::new().map_err(|_| spool_failed())?;
        while let Some(chunk) = next_chunk(session).await? {
            if spool.len() + chunk.len() as u64 > limit {
                return Err(too_large(limit));
            }
            if let Some(h) = hasher.as_mut() {
                h.update(&chunk);
            }
            spool.write(&chunk).await.map_err(|_| spool_failed())?;
        }
        spool.finish().await.map_err(|_| spool_failed())?;
        let body = if spool.is_empty() {
            RequestBody::Empty
        } else {
            RequestBody::Spooled(spool)
        };
        return Ok((
            body,
            hasher.map(|h| h.finalize().into()).unwrap_or_default(),
        ));
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = next_chunk(session).await? {
        if (buf.len() + chunk.len()) as u64 > limit {
            return Err(too_large(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    if let Some(h) = hasher.as_mut() {
        h.update(&buf);
    }
    let body = if buf.is_empty() {
        RequestBody::Empty
    } else {
        RequestBody::Buffered(buf.freeze())
    };
    Ok((
        body,
        hasher.map(|h| h.finalize().into()).unwrap_or_default(),
    ))
}

fn spool_failed() -> LocalAnswer {
    LocalAnswer::new(
        500,
        Reason::BadRequest,
        errcode::SYSTEM_BUSY,
        "wecom-sidecar: could not spool the upload to a temporary file (check TMPDIR)",
    )
}

/// One structured line per call, and its latency and errcode metrics.
fn access_log(shared: &Shared, session: &Session, ctx: &RequestCtx) {
    let latency = ctx.started.elapsed();
    let upstream = ctx.upstream.as_ref().map_or("-", |u| u.as_str());
    let m = &shared.metrics;
    m.request_duration
        .with_label_values(&[&*ctx.api, upstream, ctx.outcome.as_str()])
        .observe(latency.as_secs_f64());
    // Errcodes WeCom answered; a local answer (its `reason` is set) carries the sidecar's own.
    if ctx.reason.is_none() {
        if let Some(code) = ctx.errcode {
            m.errcode_total
                .with_label_values(&[&*ctx.api, &*crate::metrics::errcode_label(code)])
                .inc();
        }
    }
    if let Some(route) = &ctx.route {
        let failed = matches!(ctx.outcome, Outcome::NetworkError | Outcome::HttpError)
            || ctx.errcode == Some(errcode::SYSTEM_BUSY);
        shared.plans.observe(route, failed, latency);
    }
    let req = session.req_header();
    tracing::info!(
        target: "access",
        request_id = %ctx.request_id,
        method = %req.method,
        path = %req.uri.path(),
        api = %ctx.api,
        app = ctx.app.as_ref().map_or("-", |a| a.as_str()),
        client = ctx.client.as_deref(),
        upstream,
        attempts = ctx.attempts,
        outcome = ctx.outcome.as_str(),
        status = ctx.status,
        errcode = ctx.errcode,
        reason = ctx.reason.map(|r| r.as_str()),
        detail = ctx.detail.as_deref(),
        // Whole microseconds, so the number prints with at most 3 decimals (1.234), not
        // the float noise of seconds × 1000 (1.2340000000000002).
        latency_ms = latency.as_micros() as f64 / 1000.0,
        "call"
    );
}
