//! Forwarding a call: pick the upstream, inject the token, send, read `errcode`, and absorb
//! token errors by replacing the token and repeating the call once. JSON answers are buffered
//! (so `errcode` can be read before the app sees anything); media downloads are streamed.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use pingora::http::RequestHeader;
use pingora::protocols::http::ServerSession as Session;

use tokio::time::Instant;

use super::{admission, hop, request, respond, RequestCtx};
use crate::body::RequestBody;
use crate::metrics::Outcome;
use crate::redact::CallRedaction;
use crate::retry::{self, RetryReason};
use crate::routing::Call;
use crate::state::{Runtime, Shared};
use crate::token::bounds::Hold;
use crate::token::{AppTokens, Token, TokenError};
use crate::upstream::exchange::{self, AttemptError, Open};
use crate::upstream::split::SmoothWrr;
use crate::upstream::UpstreamRt;
use crate::wecom::answer::{LocalAnswer, Reason};
use crate::wecom::apis::{Auth, BodyKind};
use crate::wecom::errcode::{self, BodyErrcode};

/// Largest JSON answer buffered from WeCom (big `user/list` pages are a few MB).
pub const MAX_JSON_RESPONSE: usize = 16 * 1024 * 1024;

/// Request headers not passed upstream besides the hop-by-hop ones (`hop`): those the
/// sidecar sets itself, and its own.
const DROP_REQUEST_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "expect",
    "accept-encoding",
    request::APP_HEADER,
];

/// Everything a forward needs about the call.
pub struct Forward<'a> {
    pub shared: &'a Arc<Shared>,
    pub rt: &'a Runtime,
    pub call: &'a Call<'a>,
    pub app: Option<&'a AppTokens>,
    pub body: &'a RequestBody,
    /// Safe to send twice (API table, route, or WeCom's duplicate check on the body).
    pub idempotent: bool,
    /// The call's deadline; no retry starts that would end past it.
    pub deadline_at: Instant,
}

/// How forwarding ended: with an upstream answer for the caller to pass on, or a local one.
///
/// The answer is written by the caller, outside the call's deadline: the deadline bounds the
/// wait for an answer, and an answer begun is never cut by it (a local 504 written into a body
/// already on its way would corrupt it).
pub enum Ended<'a> {
    /// A buffered upstream answer (app-facing header and body); the call's context holds its
    /// status, outcome and errcode.
    Pass(Box<pingora::http::ResponseHeader>, Bytes),
    /// A binary answer to stream (media), from this upstream's connection, and what to take
    /// out of its headers (its body is passed as it is).
    Stream(Box<Open>, &'a UpstreamRt, CallRedaction),
    /// The sidecar must answer locally.
    Local(LocalAnswer),
}

/// What takes the call's secrets out of its answer: every known one, the token injected into
/// it (standing for the app's name) and, for a robot call, its `key`.
fn call_redaction(
    call: &Call<'_>,
    app: Option<&AppTokens>,
    token: Option<&Token>,
    query: &str,
) -> CallRedaction {
    let robot_key = match call.api.auth {
        Auth::RobotKey => request::query_value(query, "key"),
        _ => None,
    };
    let app_and_token = app
        .zip(token)
        .map(|(a, t)| (a.app.name.as_str(), t.expose()));
    CallRedaction::new(app_and_token, robot_key.as_deref())
}

fn no_token_answer(app: &AppTokens, e: &TokenError) -> LocalAnswer {
    match e {
        TokenError::Rejected { errcode, errmsg } => LocalAnswer::new(
            200,
            Reason::NoToken,
            *errcode,
            format!(
                "wecom-sidecar: no access_token for app {}: gettoken answered errcode {errcode} ({})",
                app.app.name,
                crate::redact::upstream_text(errmsg, &[])
            ),
        ),
        TokenError::Unavailable(why) => LocalAnswer::new(
            502,
            Reason::NoToken,
            errcode::SYSTEM_BUSY,
            format!("wecom-sidecar: no access_token for app {}: {why}", app.app.name),
        ),
        TokenError::Held { .. } => {
            let mut answer = LocalAnswer::new(
                502,
                Reason::NoToken,
                errcode::SYSTEM_BUSY,
                format!("wecom-sidecar: no access_token for app {}: {e}", app.app.name),
            );
            answer.retry_after = e.retry_after();
            answer
        }
    }
}

/// Why a call got `no-token`, for its access-log line: the class of failure or the bound that
/// held the fetch, never WeCom's errmsg (it can quote the request).
fn no_token_detail(e: &TokenError) -> String {
    match e {
        TokenError::Rejected { errcode, .. } => {
            format!("no-token: gettoken answered errcode {errcode}")
        }
        TokenError::Unavailable(why) => format!("no-token: {why}"),
        TokenError::Held { hold, .. } => format!("no-token: gettoken held ({})", hold.as_str()),
    }
}

/// A token error WeCom answered that the sidecar passes on as it is (the fresh token was
/// rejected too, or the gettoken bounds allow no new one yet): counted, and logged at debug
/// (the store logs the hold when it starts).
fn token_error_passed(shared: &Shared, app: &AppTokens, up: &UpstreamRt, code: i64) {
    shared
        .metrics
        .token_rejected
        .with_label_values(&[app.app.name.as_str(), up.cfg.name.as_str()])
        .inc();
    tracing::debug!(
        app = %app.app.name,
        upstream = %up.cfg.name,
        errcode = code,
        "token error passed to the app"
    );
}

fn upstream_request(
    session: &Session,
    up: &UpstreamRt,
    path: &str,
    query: &str,
    body_len: u64,
) -> Result<Box<RequestHeader>, LocalAnswer> {
    let down = session.req_header();
    let base = up.cfg.base_path.as_str();
    let mut target = String::with_capacity(base.len() + path.len() + 1 + query.len());
    target.push_str(base);
    target.push_str(path);
    if !query.is_empty() {
        target.push('?');
        target.push_str(query);
    }
    let uri = http::Uri::from_maybe_shared(Bytes::from(target)).map_err(|_| {
        LocalAnswer::bad_request(
            errcode::DATA_FORMAT_ERROR,
            "wecom-sidecar: invalid request URI",
        )
    })?;
    // Built as plain `http` parts, not through pingora's header API: that re-parses every
    // name and keeps a second, case-preserving map, which profiled at 5 % of a call. Without
    // that map pingora writes standard names in title case and others in lower case.
    let mut headers = hop::end_to_end(&down.headers, 2, |name| {
        let n = name.as_str();
        DROP_REQUEST_HEADERS.contains(&n) || n.starts_with("x-sidecar-")
    });
    if let Some(host) = &up.host_header {
        headers.insert(http::header::HOST, host.clone());
    }
    if body_len > 0 || down.method == http::Method::POST {
        headers.insert(http::header::CONTENT_LENGTH, body_len.into());
    }
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = down.method.clone();
    parts.uri = uri;
    parts.headers = headers;
    Ok(Box::new(RequestHeader::from(parts)))
}

/// Sends one attempt and reads its answer header, by `until` (the end of the upstream's
/// per-attempt timeout, or the call's deadline if that comes first).
async fn attempt(
    up: &UpstreamRt,
    addr: SocketAddr,
    req: Box<RequestHeader>,
    body: &RequestBody,
    until: Instant,
) -> Result<Open, AttemptError> {
    match tokio::time::timeout_at(until, exchange::open(up, addr, req, body)).await {
        Ok(r) => r,
        Err(_) => Err(AttemptError::Timeout),
    }
}

fn is_json_answer(open: &Open) -> bool {
    open.header()
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json") || ct.starts_with("text/plain"))
}

/// How a failed attempt ends if it is not repeated.
enum Failure {
    /// The sidecar answers locally.
    Local(LocalAnswer),
    /// WeCom's own answer (errcode -1, 45033) goes to the app.
    Pass(Box<pingora::http::ResponseHeader>, Bytes, i64),
}

/// Runs the call's attempts (token, upstream choice, retries) until there is an answer to give:
/// the upstream's, for the caller to write, or a local one.
pub async fn forward<'a>(f: Forward<'a>, session: &mut Session, ctx: &mut RequestCtx) -> Ended<'a> {
    let Forward {
        shared,
        rt,
        call,
        app,
        body,
        idempotent,
        deadline_at,
    } = f;
    // The request's URI, held apart from the session (which answers are written through):
    // a clone shares its bytes, where copying path and query allocated twice per call.
    let uri = session.req_header().uri.clone();
    let (path, query) = (uri.path(), uri.query().unwrap_or(""));
    let policy = &call.route.policy;
    shared.retry_budget.record_call();

    let Some(mut member) = choose(shared, call, rt, None) else {
        return Ended::Local(LocalAnswer::new(
            502,
            Reason::UpstreamUnavailable,
            errcode::SYSTEM_BUSY,
            "wecom-sidecar: this route's split gives no upstream any weight",
        ));
    };

    let needs_token = call.api.auth == Auth::Token;
    if needs_token && app.is_none() {
        return Ended::Local(LocalAnswer::bad_request(
            errcode::TOKEN_MISSING,
            "wecom-sidecar: no app",
        ));
    }
    // The token in hand and whose it is (its realm): re-fetched when a retry moves the call to
    // an upstream with tokens of its own.
    let mut token: Option<Arc<Token>> = None;
    let mut token_realm: Option<Option<crate::config::UpstreamName>> = None;

    let mut token_retried = false;
    let mut retries = 0u32;
    let mut busy_retries = 0u32;
    loop {
        ctx.attempts += 1;
        // Each attempt writes its own outcome; a failure an earlier one left is not this one's.
        ctx.outcome = Outcome::Local;
        let up = &rt.upstreams[member];
        ctx.upstream = Some(up.cfg.name.clone());
        let tokens = app.map(|a| rt.tokens_on(shared, a, member));
        if let (true, Some((state, src))) = (needs_token, &tokens) {
            if token_realm.as_ref() != Some(&state.key.realm) {
                match shared.tokens.get(state, src).await {
                    Ok(t) => {
                        token = Some(t);
                        token_realm = Some(state.key.realm.clone());
                    }
                    Err(e) => {
                        ctx.detail = Some(no_token_detail(&e));
                        return Ended::Local(no_token_answer(state, &e));
                    }
                }
            }
        }
        let addr = match shared.resolver.resolve(&up.cfg.host, up.cfg.port).await {
            Ok(a) => a,
            Err(why) => {
                ctx.detail = Some(why);
                ctx.outcome = Outcome::NetworkError;
                let e = AttemptError::Connect("dns");
                record_attempt(shared, call, up, e.label());
                if let Some(next) =
                    retry_elsewhere(shared, rt, call, member, &e, &mut retries, deadline_at)
                {
                    member = next;
                    continue;
                }
                return Ended::Local(unavailable(up, "its address could not be resolved"));
            }
        };
        let q = request::upstream_query(
            query,
            token.as_deref().map(Token::expose),
            policy.allow_debug,
        );
        // For troubleshooting only (debug level): the query names people (`userid`), so the
        // access log never carries it; here its secrets are masked.
        tracing::debug!(
            target: "upstream",
            request_id = %ctx.request_id,
            upstream = %up.cfg.name,
            attempt = ctx.attempts,
            path = %path,
            query = %crate::redact::redact_query(&q),
            "attempt"
        );
        let req = match upstream_request(session, up, path, &q, body.len()) {
            Ok(r) => r,
            Err(answer) => return Ended::Local(answer),
        };
        // One bound for the whole attempt, header and body: the upstream's timeout, cut short
        // by the call's deadline. An attempt the deadline ends is still a timed-out attempt
        // (counted, and held against the upstream's health).
        let attempt_until = (Instant::now() + up.cfg.timeout).min(deadline_at);
        let (reason, failure) = match attempt(up, addr, req, body, attempt_until).await {
            Err(e) => attempt_failed(shared, call, up, ctx, &e),
            Ok(open) if exchange::is_odd_final(open.status()) => {
                odd_final(shared, call, up, ctx, open).await
            }
            Ok(mut open) => {
                let status = open.status();
                let secrets = call_redaction(call, app, token.as_deref(), query);
                if call.api.body == BodyKind::Download && status == 200 && !is_json_answer(&open) {
                    record_attempt(shared, call, up, "ok");
                    up.health.success();
                    return Ended::Stream(Box::new(open), up, secrets);
                }
                let read =
                    tokio::time::timeout_at(attempt_until, open.read_to_end(MAX_JSON_RESPONSE))
                        .await;
                let answer = match read {
                    // Nothing the upstream quotes of the call's secrets reaches the app.
                    Ok(Ok(b)) => secrets
                        .body(b, &open.header().headers)
                        .map_err(|_| AttemptError::BadResponse("an unrequested Content-Encoding")),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(AttemptError::Timeout),
                };
                match answer {
                    Err(e) => attempt_failed(shared, call, up, ctx, &e),
                    Ok(answer) => {
                        // The app-facing header, built once from the upstream's (no copy of it
                        // is kept: the connection goes back to the pool now).
                        let up_header = Box::new(respond::header_from_upstream(
                            open.header(),
                            ctx,
                            Some(answer.len()),
                            &secrets,
                        ));
                        open.release(up).await;
                        if status >= 500 {
                            record_attempt(shared, call, up, "http_5xx");
                            ctx.outcome = Outcome::HttpError;
                            ctx.detail = Some(format!("upstream answered HTTP {status}"));
                            (
                                RetryReason::Http5xx,
                                Failure::Local(unavailable(up, &format!("answered HTTP {status}"))),
                            )
                        } else if status != 200 {
                            record_attempt(shared, call, up, "http_error");
                            // The upstream answered (a 4xx is about the call, not its health).
                            up.health.success();
                            return pass(ctx, up_header, answer, Outcome::HttpError, None);
                        } else {
                            match errcode::read_errcode(&answer) {
                                BodyErrcode::Invalid => {
                                    record_attempt(shared, call, up, "bad_response");
                                    ctx.outcome = Outcome::NetworkError;
                                    ctx.detail = Some(
                                        "upstream answered a body that is not valid JSON".into(),
                                    );
                                    (
                                        RetryReason::BadResponse,
                                        Failure::Local(unavailable(
                                            up,
                                            "answered a body that is not valid JSON",
                                        )),
                                    )
                                }
                                BodyErrcode::Absent => {
                                    record_attempt(shared, call, up, "ok");
                                    up.health.success();
                                    return pass(ctx, up_header, answer, Outcome::Ok, None);
                                }
                                BodyErrcode::Code(code)
                                    if errcode::is_token_error(code)
                                        && needs_token
                                        && !token_retried =>
                                {
                                    record_attempt(shared, call, up, "token_error");
                                    up.health.success();
                                    token_retried = true;
                                    let (Some((app, src)), Some(rejected)) =
                                        (tokens.as_ref(), token.as_ref())
                                    else {
                                        return pass(
                                            ctx,
                                            up_header,
                                            answer,
                                            Outcome::Errcode,
                                            Some(code),
                                        );
                                    };
                                    let mut replaced =
                                        shared.tokens.replace(app, src, rejected).await;
                                    // Rejected right after a fetch: the replacement is allowed
                                    // `min_refetch` after it; wait for that if the deadline
                                    // leaves time (the waiters share one fetch).
                                    if let Err(TokenError::Held {
                                        hold: Hold::Refetch,
                                        retry_in,
                                    }) = &replaced
                                    {
                                        if Instant::now() + *retry_in < deadline_at {
                                            tokio::time::sleep(*retry_in).await;
                                            replaced =
                                                shared.tokens.replace(app, src, rejected).await;
                                        }
                                    }
                                    match replaced {
                                        Ok(t) => {
                                            shared
                                                .metrics
                                                .retries
                                                .with_label_values(&[&*call.label, "token"])
                                                .inc();
                                            token = Some(t);
                                            continue;
                                        }
                                        // No new token allowed yet (a fresh one did not cure
                                        // it, or one was fetched a moment ago): WeCom's own
                                        // answer goes to the app, no gettoken per call.
                                        Err(TokenError::Held { hold, .. })
                                            if hold != Hold::Capped =>
                                        {
                                            token_error_passed(shared, app, up, code);
                                            ctx.detail = Some(format!(
                                                "token error passed on: {}",
                                                hold.as_str()
                                            ));
                                            return pass(
                                                ctx,
                                                up_header,
                                                answer,
                                                Outcome::Errcode,
                                                Some(code),
                                            );
                                        }
                                        Err(e) => {
                                            ctx.detail = Some(no_token_detail(&e));
                                            return Ended::Local(no_token_answer(app, &e));
                                        }
                                    }
                                }
                                BodyErrcode::Code(code) => {
                                    if errcode::is_token_error(code) && needs_token {
                                        // The replacement was rejected too.
                                        if let Some((app, _)) = tokens.as_ref() {
                                            token_error_passed(shared, app, up, code);
                                            ctx.detail =
                                                Some("token error passed on: uncured".into());
                                        }
                                    }
                                    record_attempt(
                                        shared,
                                        call,
                                        up,
                                        if code == 0 { "ok" } else { "errcode" },
                                    );
                                    admission::note_block(
                                        shared,
                                        call,
                                        app.map(|a| &a.app.name),
                                        query,
                                        code,
                                        &answer,
                                    );
                                    match retry::errcode_reason(code) {
                                        Some(reason) => {
                                            ctx.outcome = Outcome::Errcode;
                                            (reason, Failure::Pass(up_header, answer, code))
                                        }
                                        None => {
                                            up.health.success();
                                            let outcome = if code == 0 {
                                                Outcome::Ok
                                            } else {
                                                Outcome::Errcode
                                            };
                                            return pass(
                                                ctx,
                                                up_header,
                                                answer,
                                                outcome,
                                                Some(code),
                                            );
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        };

        if reason != RetryReason::Concurrency {
            if let Some(for_) = up.health.failure(&rt.config.outlier) {
                shared
                    .metrics
                    .upstream_healthy
                    .with_label_values(&[up.cfg.name.as_str()])
                    .set(0);
                tracing::warn!(upstream = %up.cfg.name, ejected_s = for_.as_secs(), "upstream ejected after consecutive failures");
            }
        }
        if reason == RetryReason::Timeout && Instant::now() >= deadline_at {
            return Ended::Local(super::deadline_answer(policy.deadline));
        }
        let busy_spent =
            reason == RetryReason::SystemBusy && busy_retries >= retry::MAX_SYSTEM_BUSY_RETRIES;
        if retries + 1 < policy.retry.attempts
            && retry::may_retry(reason, idempotent)
            && !busy_spent
        {
            let wait = retry::backoff(&policy.retry, retries + 1, &mut rand::rng());
            if Instant::now() + wait >= deadline_at {
                ctx.detail = Some(format!(
                    "{}; no time left to retry",
                    ctx.detail.as_deref().unwrap_or(reason.as_str())
                ));
            } else if !shared.retry_budget.try_withdraw() {
                shared
                    .metrics
                    .retry_budget_exhausted
                    .with_label_values(&[&*call.label])
                    .inc();
                ctx.detail = Some(format!(
                    "{}; retry budget spent",
                    ctx.detail.as_deref().unwrap_or(reason.as_str())
                ));
            } else {
                retries += 1;
                if reason == RetryReason::SystemBusy {
                    busy_retries += 1;
                }
                shared
                    .metrics
                    .retries
                    .with_label_values(&[&*call.label, reason.as_str()])
                    .inc();
                tokio::time::sleep(wait).await;
                // A retry prefers an upstream other than the one that just failed.
                if let Some(next) = choose(shared, call, rt, Some(member)) {
                    member = next;
                }
                continue;
            }
        }
        return match failure {
            Failure::Local(answer) => Ended::Local(answer),
            Failure::Pass(header, answer, code) => {
                pass(ctx, header, answer, Outcome::Errcode, Some(code))
            }
        };
    }
}

/// The upstream (index into the runtime's upstreams) to send to: smooth weighted among the
/// available members of the route's split, or of the split a running plan imposes (not
/// `avoid`, when another is available); else a zero-weight standby; else the member ejected
/// longest ago (never a blackhole).
fn choose(shared: &Shared, call: &Call<'_>, rt: &Runtime, avoid: Option<usize>) -> Option<usize> {
    let planned = shared.plans.override_for(&call.route.key);
    // A plan's split whose every upstream is still configured; one naming an upstream a reload
    // removed is set aside (its weights would no longer line up with its members).
    let resolved = planned.as_ref().and_then(|o| {
        let members: Option<Vec<usize>> = o
            .members
            .iter()
            .map(|n| rt.upstreams.iter().position(|u| u.cfg.name == *n))
            .collect();
        members.map(|m| (m, &o.wrr))
    });
    let (members, split): (&[usize], &SmoothWrr) = match &resolved {
        Some((m, wrr)) => (m, wrr),
        None => (&call.route.split_members, &call.route.split),
    };
    if members.is_empty() {
        return None;
    }
    let now = Instant::now();
    let available = |i: usize| rt.upstreams[members[i]].health.available(now);
    let avoided = |i: usize| Some(members[i]) == avoid;
    let member = split
        .pick_among(|i| available(i) && !avoided(i))
        .or_else(|| (0..members.len()).find(|&i| available(i) && !avoided(i)))
        .or_else(|| (0..members.len()).find(|&i| available(i)))
        .or_else(|| {
            (0..members.len()).min_by_key(|&i| rt.upstreams[members[i]].health.ejected_at())
        })?;
    Some(members[member])
}

/// After a failed DNS lookup (nothing sent): counts it against the upstream and picks another
/// member when the policy still allows a retry.
fn retry_elsewhere(
    shared: &Shared,
    rt: &Runtime,
    call: &Call<'_>,
    member: usize,
    _e: &AttemptError,
    retries: &mut u32,
    deadline_at: Instant,
) -> Option<usize> {
    let up = &rt.upstreams[member];
    up.health.failure(&rt.config.outlier);
    if *retries + 1 >= call.route.policy.retry.attempts || Instant::now() >= deadline_at {
        return None;
    }
    let next = choose(shared, call, rt, Some(member)).filter(|&n| n != member)?;
    if !shared.retry_budget.try_withdraw() {
        return None;
    }
    *retries += 1;
    shared
        .metrics
        .retries
        .with_label_values(&[&*call.label, RetryReason::Connect.as_str()])
        .inc();
    Some(next)
}

/// Records an attempt that got no usable answer; its retry reason and final answer.
fn attempt_failed(
    shared: &Shared,
    call: &Call<'_>,
    up: &UpstreamRt,
    ctx: &mut RequestCtx,
    e: &AttemptError,
) -> (RetryReason, Failure) {
    record_attempt(shared, call, up, e.label());
    ctx.detail = Some(e.describe());
    ctx.outcome = Outcome::NetworkError;
    (
        RetryReason::from(e),
        Failure::Local(unavailable(up, &e.describe())),
    )
}

/// An answer whose final status cannot be one to a WeCom call (`101`, `204`, `304`...): it
/// is not passed on (an SDK waiting for JSON would fail on it, or hang on a 101), its
/// connection is closed, and the call ends like a broken answer: `upstream-unavailable`,
/// retried only when it is safe to send twice.
async fn odd_final(
    shared: &Shared,
    call: &Call<'_>,
    up: &UpstreamRt,
    ctx: &mut RequestCtx,
    open: Open,
) -> (RetryReason, Failure) {
    let status = open.status();
    open.discard().await;
    record_attempt(shared, call, up, "bad_response");
    ctx.outcome = Outcome::HttpError;
    let what = format!("answered HTTP {status}, which is no answer to a WeCom call");
    ctx.detail = Some(format!("upstream {what}"));
    (
        RetryReason::BadResponse,
        Failure::Local(unavailable(up, &what)),
    )
}

fn record_attempt(shared: &Shared, call: &Call<'_>, up: &UpstreamRt, result: &str) {
    shared
        .metrics
        .upstream_attempts
        .with_label_values(&[&call.label, up.cfg.name.as_str(), result])
        .inc();
}

fn unavailable(up: &UpstreamRt, what: &str) -> LocalAnswer {
    LocalAnswer::new(
        502,
        Reason::UpstreamUnavailable,
        errcode::SYSTEM_BUSY,
        format!("wecom-sidecar: upstream {} {what}", up.cfg.name),
    )
}

/// A buffered upstream answer (its app-facing header from `header_from_upstream`) to pass on,
/// recorded in the call's context.
fn pass(
    ctx: &mut RequestCtx,
    header: Box<pingora::http::ResponseHeader>,
    body: Bytes,
    outcome: Outcome,
    code: Option<i64>,
) -> Ended<'static> {
    ctx.status = header.status.as_u16();
    ctx.outcome = outcome;
    ctx.errcode = code;
    Ended::Pass(header, body)
}

/// Writes a buffered upstream answer to the app.
pub async fn write_pass(
    session: &mut Session,
    ctx: &mut RequestCtx,
    header: Box<pingora::http::ResponseHeader>,
    body: Bytes,
) {
    if let Err(e) = respond::write(session, header, Some(body)).await {
        ctx.detail = Some(format!("app went away: {}", e.etype().as_str()));
    }
}

/// Streams a binary answer to the app chunk by chunk. Each upstream read is bounded by the
/// upstream's `timeout`; a stall or break mid-body cuts the app's connection. Its headers are
/// redacted; its body (a file) is passed byte for byte: rewriting it would corrupt the file.
pub async fn stream(
    mut open: Open,
    up: &UpstreamRt,
    secrets: &CallRedaction,
    session: &mut Session,
    ctx: &mut RequestCtx,
) {
    let header = respond::header_from_upstream(open.header(), ctx, None, secrets);
    ctx.status = open.status();
    ctx.outcome = Outcome::Ok;
    if let Err(e) = session.write_response_header(Box::new(header)).await {
        ctx.detail = Some(format!("app went away: {}", e.etype().as_str()));
        return;
    }
    loop {
        match open.chunk().await {
            Ok(Some(chunk)) => {
                if let Err(e) = session.write_response_body(chunk, false).await {
                    ctx.detail = Some(format!("app went away: {}", e.etype().as_str()));
                    return;
                }
            }
            Ok(None) => break,
            Err(e) => {
                // The header is out: the only honest signal left is to cut the connection.
                ctx.outcome = Outcome::NetworkError;
                ctx.detail = Some(format!("upstream broke mid-body: {}", e.describe()));
                session.shutdown().await;
                return;
            }
        }
    }
    let _ = session.finish_body().await;
    open.release(up).await;
}
