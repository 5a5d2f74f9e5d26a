//! The request pipeline: a pingora HTTP server application that wires the other modules
//! together in order.
//!
//! The sidecar answers every call itself and runs the upstream exchange on its own (pingora's
//! HTTP/1 client over the sidecar's keep-alive pool, `upstream::pool`) rather than through
//! pingora-proxy, because it must read `errcode` in a 200 answer and repeat the call after a
//! token error, which a proxy flow cannot do once the header has gone out.
//!
//! Order (`SidecarProxy::handle`, one step a line): request id → route → method/path →
//! signature (`authenticate`, body read first) → `gettoken` answered locally → app → JS-SDK
//! tickets answered locally (`tickets`, also `/sidecar/jsapi/signature`, before routing) → body read
//! (`read_body`: JSON buffered, uploads spooled) → dedupe → quota (`admission`) → forward
//! (token, upstream, errcode) → answer (`respond`) → access log (`access_log`). A step that
//! refuses the call returns a [`refusal::Refusal`]; its one table makes the answer.

mod access_log;
pub mod admission;
mod authenticate;
mod connection;
pub mod dedupe;
pub mod forward;
mod hop;
mod outbox;
mod read_body;
pub mod refusal;
pub mod replay;
pub mod request;
pub mod respond;
mod tickets;
mod within;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::prelude::*;
use pingora::protocols::http::ServerSession as Session;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;

use crate::body::RequestBody;
use crate::config::{AppName, UpstreamName};
use crate::metrics::Outcome;
use crate::state::{InFlight, Shared};
use crate::wecom::answer::{LocalAnswer, Reason};
use crate::wecom::apis::Auth;
pub use read_body::{MAX_JSON_REQUEST, MAX_UPLOAD};
use refusal::Refusal;

/// The `api` label of calls not (yet) routed; shared so a new call allocates nothing for it.
static OTHER: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| Arc::from("other"));

/// Per-call state, from arrival to the access log line.
pub struct RequestCtx {
    pub started: Instant,
    /// Visible ASCII (`request::request_id`); `request_id_str` reads it.
    pub request_id: http::HeaderValue,
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
    /// Recipients a message send's errcode-0 answer did not reach (counts, never ids).
    pub undelivered: Option<crate::wecom::facts::Undelivered>,
    /// An attempt failed after its request may have reached WeCom (not a connect failure).
    pub maybe_sent: bool,
    _in_flight: Option<InFlight>,
}

impl RequestCtx {
    /// A call's state at arrival: `in_flight` holds its place among the calls in flight
    /// (none for the outbox's replays, which are not an app's call).
    fn new(request_id: http::HeaderValue, in_flight: Option<InFlight>) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            request_id,
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
            undelivered: None,
            maybe_sent: false,
            _in_flight: in_flight,
        }
    }

    /// The request id as text (always visible ASCII).
    pub fn request_id_str(&self) -> &str {
        self.request_id.to_str().unwrap_or("-")
    }
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

/// How a call the handler did not refuse ended.
enum Handled {
    /// The answer is out: a media file streamed.
    Written,
    /// A buffered upstream answer to pass on (`forward`).
    Pass(respond::Answer),
    /// A local answer to write that refuses nothing: the `gettoken` placeholder, a ticket.
    Local(LocalAnswer),
}

impl SidecarProxy {
    /// Answers the call whose head `session` has read, logs it, and hands the connection
    /// back for the next call when it can be reused.
    async fn serve(&self, mut session: Box<Session>) -> Option<respond::Reused> {
        let mut ctx = self.new_ctx();
        let mut reads_on = true;
        let answer = match self.handle(&mut session, &mut ctx).await {
            Ok(Handled::Written) => None,
            Ok(Handled::Pass(answer)) => Some(answer),
            Ok(Handled::Local(answer)) => Some(respond::local(&mut ctx, answer)),
            Err(refusal) => {
                reads_on = refusal.body_may_follow();
                Some(respond::local(&mut ctx, refusal.answer()))
            }
        };
        if ctx.status == 0 {
            // The app went away before a streamed answer was complete.
            ctx.status = session.response_written().map_or(0, |h| h.status.as_u16());
        }
        // What the access line needs of the request, kept past the session (which writing
        // the answer ends): clones share the URI's bytes.
        let (method, uri) = {
            let req = session.req_header();
            (req.method.clone(), req.uri.clone())
        };
        let after = respond::finish(session, answer, reads_on, &mut ctx).await;
        access_log::access_log(&self.shared, &method, uri.path(), &ctx);
        // The call stops counting as in flight only once its answer is flushed.
        drop(ctx);
        match after {
            respond::After::Reuse(reused) => Some(reused),
            respond::After::Closed => None,
            // The answer is out and logged; what the app still sends of its body is read
            // and dropped before the close, so the app reads the answer, not a reset.
            respond::After::Linger(mut session) => {
                crate::linger::linger(&mut session).await;
                None
            }
        }
    }

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(
            http::HeaderValue::from_static(""),
            Some(self.shared.enter()),
        )
    }

    /// Runs the pipeline, one step after the other; a step that refuses the call ends it.
    async fn handle(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Handled, Refusal> {
        let shared = &self.shared;
        let rt = shared.runtime.load_full();
        let req = session.req_header();
        let noted = request::Noted::of(&req.headers);
        ctx.request_id = request::request_id(
            noted.request_id.as_ref(),
            noted.traceparent.as_ref().map(|v| v.as_bytes()),
        );
        // The request's URI, held apart from the session (which the body is read and answers
        // are written through): a clone shares its bytes, where copying path and query
        // allocated twice per call.
        let uri = req.uri.clone();
        let (path, query) = (uri.path(), uri.query().unwrap_or(""));

        if path == tickets::SIGNATURE_PATH {
            let (p, q) = (path, query);
            return tickets::answer_signature(shared, &rt, session, &noted, ctx, p, q)
                .await
                .map(Handled::Local);
        }

        let call = rt.routes.route(path).ok_or(Refusal::OutsideCgiBin)?;
        ctx.api = call.label.clone();
        ctx.route = Some(call.route.key.clone());
        request::api_method(&req.method)?;
        request::api_path(path)?;

        // With `clients:` set, the signature covers the body too: it is read (and hashed)
        // first, and nothing else is done for a call whose signature fails.
        let (client, early_body) = if rt.config.clients.is_empty() {
            (None, None)
        } else {
            let (body, hash) = read_body::read_body(session, &noted, call.api.body, true).await?;
            let clients = &rt.config.clients;
            let c = authenticate::authenticate(shared, clients, session, path, query, &hash)?;
            ctx.client = Some(c.name.clone());
            (Some(c), Some(body))
        };

        if path == "/cgi-bin/gettoken" {
            return request::answer_gettoken(&rt, query, client).map(Handled::Local);
        }

        let app = if call.api.auth == Auth::Token {
            let app = request::choose_app(&rt, noted.app(), query)?;
            ctx.app = Some(app.app.name.clone());
            if let Some(c) = client {
                authenticate::may_use(shared, c, &app.app.name)?;
            }
            Some(app)
        } else {
            None
        };

        // The query is searched for `type` only on the one path that needs it, not per call.
        let ticket_type = match path {
            "/cgi-bin/ticket/get" => request::query_value(query, "type"),
            _ => None,
        };
        if let (Some(kind), Some(app)) = (
            crate::ticket::TicketKind::of_call(path, ticket_type.as_deref()),
            app,
        ) {
            let deadline = call.route.policy.deadline;
            return tickets::answer_ticket(shared, &rt, app, kind, deadline)
                .await
                .map(Handled::Local);
        }

        let body = match early_body {
            Some(b) => b,
            None => {
                read_body::read_body(session, &noted, call.api.body, false)
                    .await?
                    .0
            }
        };
        let (body, duplicate_checked) = match body {
            RequestBody::Buffered(b) => {
                let (b, safe) = dedupe::apply(call.api.name, &call.route.policy, b);
                (RequestBody::Buffered(b), safe)
            }
            other => (other, false),
        };

        // On a route with `outbox: true`, a send WeCom cannot be reached for is queued
        // (`outbox`) instead of refused.
        let app_name = match (app, call.api.auth) {
            (Some(a), _) => a.app.name.as_str(),
            (None, _) => crate::outbox::ROBOT,
        };
        let buffered = match &body {
            RequestBody::Buffered(b) => Some(b),
            _ => None,
        };
        let mut oc = outbox::OutboxCall::of(
            shared.outbox.as_deref(),
            &call.route.policy,
            buffered,
            call.api.name,
            app_name,
        );
        let limits = crate::store::Limits {
            max_bytes: rt.config.store.max_bytes,
            max_queued: rt.config.store.outbox_max_per_app,
        };

        // Sends of this app wait in the queue: this one waits behind them. When it cannot be
        // queued (the store is full or failed: counted and logged once), it is tried as a call
        // without the outbox, and gets the answer it would have got.
        if let Some(o) = oc.as_ref().filter(|o| o.behind_queued()) {
            let why = "behind this app's queued sends (kept in order)";
            match o
                .queue(path, query, limits, ctx.started.elapsed(), false, why)
                .await
            {
                Ok(queued) => return Ok(Handled::Local(queued)),
                Err(detail) => {
                    ctx.detail = Some(detail);
                    oc = None;
                }
            }
        }

        let deadline = call.route.policy.deadline;
        let deadline_at = tokio::time::Instant::now() + deadline;
        // A place among the calls in flight (`max_in_flight`), held until the call ends.
        // Pinned where it is made and bounded without a timer when it needs no wait (as almost
        // every call's does): `within`.
        let admitted = {
            let admit = std::pin::pin!(admission::admit(
                shared,
                &call,
                app.map(|a| &a.app.name),
                query,
                &body
            ));
            within::within(deadline_at, admit).await
        }
        .map_err(|_| Refusal::Deadline { deadline })?;
        let _in_flight = match (admitted, &oc) {
            (Ok(slot), _) => slot,
            (Err(refusal), Some(oc)) => {
                let Some(why) = oc.queues_refusal(&refusal) else {
                    return Err(refusal);
                };
                return match oc
                    .queue(path, query, limits, ctx.started.elapsed(), false, &why)
                    .await
                {
                    Ok(queued) => Ok(Handled::Local(queued)),
                    Err(detail) => {
                        ctx.detail = Some(detail);
                        Err(refusal)
                    }
                };
            }
            (Err(refusal), None) => return Err(refusal),
        };

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
        let down = session.req_header();
        let ended = {
            // Pinned where it is made: the timeout holds a pointer, not a copy of the future.
            let forwarding = std::pin::pin!(forward::forward(f, down, ctx));
            tokio::time::timeout_at(deadline_at, forwarding).await
        };
        let ended = match ended {
            Ok(e) => e,
            Err(_) => {
                ctx.outcome = Outcome::NetworkError;
                // An attempt was under way: it may have reached WeCom.
                ctx.maybe_sent |= ctx.attempts > 0;
                forward::Ended::Local(Refusal::Deadline { deadline })
            }
        };
        // What the outbox takes instead of the ordinary answer.
        let queue_for = match (&oc, &ended) {
            (Some(oc), forward::Ended::Pass(..)) => oc.queues_errcode(ctx.errcode),
            (Some(oc), forward::Ended::Local(r)) => oc.queues_refusal(r),
            _ => None,
        };
        if let (Some(oc), Some(why)) = (&oc, queue_for) {
            match oc
                .queue(
                    path,
                    query,
                    limits,
                    ctx.started.elapsed(),
                    ctx.maybe_sent,
                    &why,
                )
                .await
            {
                Ok(queued) => return Ok(Handled::Local(queued)),
                Err(detail) => ctx.detail = Some(detail),
            }
        }
        match ended {
            forward::Ended::Pass(header, body) => {
                Ok(Handled::Pass(respond::Answer { header, body }))
            }
            forward::Ended::Stream(open, up, secrets) => {
                // Boxed: media is rare, and streaming's state would otherwise enlarge every
                // call's future.
                Box::pin(forward::stream(*open, up, &secrets, session, ctx)).await;
                Ok(Handled::Written)
            }
            forward::Ended::Local(refusal) => Err(refusal),
        }
    }
}
