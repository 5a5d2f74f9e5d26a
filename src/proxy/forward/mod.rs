//! Forwarding a call: pick the upstream, inject the token, send, read `errcode`, and absorb
//! token errors by replacing the token and repeating the call once. JSON answers are buffered
//! (so `errcode` can be read before the app sees anything); media downloads are streamed.
//!
//! The loop in `forward` reads top to bottom: an attempt (`try_once`) ends in a verdict
//! (`classify`: pure, on the answer's status and body); a good answer ends the call, a token
//! error gets the token replaced (`token`), and every failure, a host that did not resolve
//! included, goes to the one retry decision (`next_step`). The rooms beside it: `choose`
//! (which upstream), `upstream_request` (the header sent) and `relay` (writing an upstream
//! answer to the app). The answers forwarding gives itself are [`Refusal`]s, answered by its
//! one table (`proxy::refusal`).

mod choose;
mod classify;
mod next_step;
mod relay;
mod token;
mod told;
mod upstream_request;

use std::net::SocketAddr;
use std::ops::ControlFlow;

use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use tokio::time::Instant;

use self::choose::choose;
use self::classify::{Failure, Head, TokenUse, Verdict};
use self::next_step::{next_step, Failed, Policy, Step, Stop, Tally};
pub(super) use self::relay::stream;
use super::refusal::Refusal;
use super::{admission, request, respond, RequestCtx};
use crate::body::RequestBody;
use crate::metrics::{Metrics, Outcome};
use crate::redact::CallRedaction;
use crate::routing::Call;
use crate::state::{Runtime, Shared};
use crate::token::bounds::Hold;
use crate::token::{AppTokens, Token, TokenError, TokenSource};
use crate::upstream::exchange::{self, AttemptError, Open};
use crate::upstream::UpstreamRt;
use crate::wecom::apis::{Auth, BodyKind};

/// Largest JSON answer buffered from WeCom (big `user/list` pages are a few MB).
const MAX_JSON_RESPONSE: usize = 16 * 1024 * 1024;

/// Everything a forward needs about the call.
pub(super) struct Forward<'a> {
    pub shared: &'a Shared,
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
pub(super) enum Ended<'a> {
    /// A buffered upstream answer (app-facing header and body); the call's context holds its
    /// status, outcome and errcode.
    Pass(Box<ResponseHeader>, Bytes),
    /// A binary answer to stream (media), from this upstream's connection, and what to take
    /// out of its headers (its body is passed as it is).
    Stream(Box<Open>, &'a UpstreamRt, CallRedaction),
    /// The sidecar must answer locally.
    Local(Refusal),
}

/// Runs the call's attempts (token, upstream choice, retries) until there is an answer to give:
/// the upstream's, for the caller to write, or a local one.
pub(super) async fn forward<'a>(
    f: Forward<'a>,
    down: &RequestHeader,
    ctx: &mut RequestCtx,
) -> Ended<'a> {
    let Forward {
        shared, rt, call, ..
    } = f;
    let (path, query) = (down.uri.path(), down.uri.query().unwrap_or(""));
    shared.retry_budget.record_call();

    let Some(mut member) = choose(&shared.plans, call, rt, None) else {
        return Ended::Local(Refusal::NoUpstream);
    };
    let needs_token = call.api.auth == Auth::Token;
    if needs_token && f.app.is_none() {
        return Ended::Local(Refusal::NoApp);
    }
    let policy = Policy {
        retry: &call.route.policy.retry,
        outlier: &rt.config.outlier,
        budget: &shared.retry_budget,
        metrics: &shared.metrics,
        label: &call.label,
        idempotent: f.idempotent,
        deadline_at: f.deadline_at,
    };
    let mut token = token::InHand::default();
    let mut token_use = if needs_token {
        TokenUse::Replaceable
    } else {
        TokenUse::Absent
    };
    let mut tally = Tally::default();
    loop {
        ctx.attempts += 1;
        // Each attempt writes its own outcome; a failure an earlier one left is not this one's.
        ctx.outcome = Outcome::Local;
        let up: &'a UpstreamRt = &rt.upstreams[member];
        ctx.upstream = Some(up.cfg.name.clone());
        let tokens = f.app.map(|a| rt.tokens_on(&shared.resolver, a, member));
        if let (true, Some((state, src))) = (needs_token, &tokens) {
            if let Err(e) = token.ensure(&shared.tokens, state, src).await {
                told::untrusted_gettoken(shared, state.app.name.as_str(), &e);
                ctx.detail = Some(token::no_token_detail(&e));
                return Ended::Local(token::no_token(state, e));
            }
        }
        let tried = match shared.resolver.resolve(&up.cfg.host, up.cfg.port).await {
            Err(why) => Tried::Failed(Failure::Unresolved(why), None),
            Ok(addr) => {
                let at = Attempt {
                    up,
                    addr,
                    tokens: tokens.as_ref().map(|(t, _)| *t),
                    token: token.get().map(|t| &**t),
                    token_use,
                };
                try_once(&f, at, path, query, down, ctx).await
            }
        };
        let (failure, kept) = match tried {
            Tried::Ended(ended) => return ended,
            Tried::Failed(failure, kept) => (failure, kept),
            Tried::RenewToken(rejected) => {
                token_use = TokenUse::Replaced;
                match renew_token(&f, up, tokens.as_ref(), &mut token, rejected, ctx).await {
                    ControlFlow::Continue(()) => continue,
                    ControlFlow::Break(ended) => return ended,
                }
            }
        };

        record_attempt(&shared.metrics, call, up, failure.result());
        if !failure.nothing_sent() {
            ctx.maybe_sent = true;
        }
        ctx.outcome = failure.outcome();
        if let Some(detail) = failure.detail() {
            ctx.detail = Some(detail);
        }
        let failed = Failed {
            failure: &failure,
            member,
            upstream: up.cfg.name.as_str(),
            health: &up.health,
        };
        let avoid = |m| choose(&shared.plans, call, rt, Some(m));
        // Bound before the match: the thread's rng must not live across the backoff's await.
        let step = next_step(&policy, &mut tally, failed, avoid, &mut rand::rng());
        match step {
            Step::Again { wait, member: next } => {
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                member = next;
            }
            Step::Stop(stop) => {
                return ended_on(ctx, up, &failure, kept, stop, call.route.policy.deadline);
            }
        }
    }
}

/// The call ends on `failure`, not repeated for `stop`'s reason: with the deadline's answer
/// when it was what cut the attempt, else with WeCom's own answer when it gave one (-1,
/// 45033), else with the local `upstream-unavailable`.
fn ended_on<'a>(
    ctx: &mut RequestCtx,
    up: &UpstreamRt,
    failure: &Failure,
    kept: Option<Kept>,
    stop: Stop,
    deadline: std::time::Duration,
) -> Ended<'a> {
    if stop == Stop::Deadline {
        return Ended::Local(Refusal::Deadline { deadline });
    }
    if let Some(note) = stop.note() {
        let before = ctx.detail.as_deref().unwrap_or(failure.reason().as_str());
        ctx.detail = Some(format!("{before}; {note}"));
    }
    match kept {
        Some((header, answer, code)) => pass(ctx, header, answer, Outcome::Errcode, Some(code)),
        None => Ended::Local(Refusal::UpstreamUnavailable {
            upstream: up.cfg.name.clone(),
            what: failure.what(),
        }),
    }
}

/// One attempt's upstream, address and token.
struct Attempt<'a, 't> {
    up: &'a UpstreamRt,
    addr: SocketAddr,
    /// The app's token state on this upstream (its realm).
    tokens: Option<&'t AppTokens>,
    token: Option<&'t Token>,
    token_use: TokenUse,
}

/// WeCom's own answer to a failed attempt (errcode -1, 45033), given to the app if the call
/// is not repeated: its header, body and errcode.
type Kept = (Box<ResponseHeader>, Bytes, i64);

/// WeCom's answer rejecting the call's token (its errcode), passed on if no fresh token can
/// be had.
struct Rejected {
    code: i64,
    header: Box<ResponseHeader>,
    answer: Bytes,
}

/// How one attempt ended.
enum Tried<'a> {
    /// The call has its answer.
    Ended(Ended<'a>),
    /// WeCom rejected the token and a fresh one may cure it.
    RenewToken(Rejected),
    /// For `next_step` to decide on.
    Failed(Failure, Option<Kept>),
}

/// Sends one attempt and classifies its answer. What a good answer says is recorded here
/// (attempt metric, health, WeCom's block notes); a failure is recorded by the loop.
async fn try_once<'a>(
    f: &Forward<'a>,
    at: Attempt<'a, '_>,
    path: &str,
    query: &str,
    down: &RequestHeader,
    ctx: &mut RequestCtx,
) -> Tried<'a> {
    let (shared, call, up) = (f.shared, f.call, at.up);
    let q = request::upstream_query(
        query,
        at.token.map(Token::expose),
        call.route.policy.allow_debug,
    );
    // For troubleshooting only (debug level): the query names people (`userid`), so the
    // access log never carries it; here its secrets are masked.
    tracing::debug!(
        target: "upstream",
        request_id = ctx.request_id_str(),
        upstream = %up.cfg.name,
        attempt = ctx.attempts,
        path = %path,
        query = %crate::redact::redact_query(&q),
        "attempt"
    );
    let req = match upstream_request::build(down, up, path, &q, f.body) {
        Ok(r) => r,
        Err(refusal) => return Tried::Ended(Ended::Local(refusal)),
    };
    // One bound for the whole attempt, header and body: the upstream's timeout, cut short
    // by the call's deadline. An attempt the deadline ends is still a timed-out attempt
    // (counted, and held against the upstream's health).
    let attempt_until = (Instant::now() + up.cfg.timeout).min(f.deadline_at);
    let sent = tokio::time::timeout_at(attempt_until, exchange::send(up, at.addr, req, f.body));
    let mut open = match sent.await {
        Ok(Ok(open)) => open,
        Ok(Err(e)) => return Tried::Failed(Failure::Attempt(e), None),
        Err(_) => return Tried::Failed(Failure::Attempt(AttemptError::Timeout), None),
    };
    let status = open.status();
    let file = call.api.body == BodyKind::Download && !is_json_answer(&open);
    let head = classify::head(status, file);
    if head == Head::Odd {
        // Not passed on (an SDK waiting for JSON would fail on it, or hang on a 101); the
        // connection's framing cannot be trusted, so it is closed.
        open.discard().await;
        return Tried::Failed(Failure::OddStatus(status), None);
    }
    let secrets = call_redaction(call, f.app, at.token, query);
    if head == Head::Stream {
        record_attempt(&shared.metrics, call, up, "ok");
        up.health.success();
        return Tried::Ended(Ended::Stream(Box::new(open), up, secrets));
    }
    let read = tokio::time::timeout_at(attempt_until, open.read_to_end(MAX_JSON_RESPONSE)).await;
    let answer = match read {
        // Nothing the upstream quotes of the call's secrets reaches the app.
        Ok(Ok(b)) => secrets
            .body(b, &open.header().headers)
            .map_err(|_| AttemptError::BadResponse("an unrequested Content-Encoding")),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(AttemptError::Timeout),
    };
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => return Tried::Failed(Failure::Attempt(e), None),
    };
    // The app-facing header, built once from the upstream's (no copy of it is kept: the
    // connection goes back to the pool now).
    let header = Box::new(respond::header_from_upstream(
        open.header_mut(),
        ctx,
        Some(answer.len()),
        &secrets,
    ));
    open.release(up).await;
    let note_block = |code| {
        admission::note_block(
            &shared.quotas,
            &shared.metrics,
            call,
            f.app.map(|a| &a.app.name),
            query,
            code,
            &answer,
        )
    };
    match classify::classify(status, &answer, at.token_use) {
        Verdict::Pass(p) => {
            if let (true, Some(tokens), Some(code)) = (p.token_error, at.tokens, p.errcode) {
                // The replacement was rejected too.
                token::error_passed(&shared.metrics, tokens, up.cfg.name.as_str(), code);
                ctx.detail = Some("token error passed on: uncured".into());
            }
            record_attempt(&shared.metrics, call, up, p.result);
            if let Some(code) = p.errcode {
                note_block(code);
            }
            let app = f.app.map_or("-", |a| a.app.name.as_str());
            let api = (call.api.name, &*call.label);
            told::undelivered(&shared.metrics, ctx, api, app, p.undelivered);
            if let Some(ip) = p.from_ip {
                told::untrusted(shared, app, ip, "call");
            }
            up.health.success();
            Tried::Ended(pass(ctx, header, answer, p.outcome, p.errcode))
        }
        Verdict::RenewToken(code) => {
            record_attempt(&shared.metrics, call, up, "token_error");
            up.health.success();
            Tried::RenewToken(Rejected {
                code,
                header,
                answer,
            })
        }
        Verdict::Failed(failure) => {
            let kept = match failure {
                Failure::Refused { errcode, .. } => {
                    note_block(errcode);
                    Some((header, answer, errcode))
                }
                _ => None,
            };
            Tried::Failed(failure, kept)
        }
    }
}

/// After a token error: the call goes again with a fresh token (`Continue`), or ends with
/// WeCom's answer or a local one (`Break`).
async fn renew_token<'a>(
    f: &Forward<'a>,
    up: &UpstreamRt,
    tokens: Option<&(&AppTokens, TokenSource<'_>)>,
    token: &mut token::InHand,
    rejected: Rejected,
    ctx: &mut RequestCtx,
) -> ControlFlow<Ended<'a>> {
    let Rejected {
        code,
        header,
        answer,
    } = rejected;
    let (Some((tokens, src)), Some(in_hand)) = (tokens, token.get()) else {
        return ControlFlow::Break(pass(ctx, header, answer, Outcome::Errcode, Some(code)));
    };
    let metrics = &f.shared.metrics;
    match token::renew(&f.shared.tokens, tokens, src, in_hand, f.deadline_at).await {
        Ok(fresh) => {
            next_step::count_retry(metrics, &f.call.label, "token");
            token.replace(fresh);
            ControlFlow::Continue(())
        }
        // No new token allowed yet (a fresh one did not cure it, or one was fetched a moment
        // ago): WeCom's own answer goes to the app, no gettoken per call.
        Err(TokenError::Held { hold, .. }) if hold != Hold::Capped => {
            token::error_passed(metrics, tokens, up.cfg.name.as_str(), code);
            ctx.detail = Some(format!("token error passed on: {}", hold.as_str()));
            ControlFlow::Break(pass(ctx, header, answer, Outcome::Errcode, Some(code)))
        }
        Err(e) => {
            told::untrusted_gettoken(f.shared, tokens.app.name.as_str(), &e);
            ctx.detail = Some(token::no_token_detail(&e));
            ControlFlow::Break(Ended::Local(token::no_token(tokens, e)))
        }
    }
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

fn is_json_answer(open: &Open) -> bool {
    open.header()
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json") || ct.starts_with("text/plain"))
}

fn record_attempt(metrics: &Metrics, call: &Call<'_>, up: &UpstreamRt, result: &str) {
    metrics
        .upstream_attempts
        .with_label_values(&[&call.label, up.cfg.name.as_str(), result])
        .inc();
}

/// A buffered upstream answer (its app-facing header from `header_from_upstream`) to pass on,
/// recorded in the call's context.
fn pass(
    ctx: &mut RequestCtx,
    header: Box<ResponseHeader>,
    body: Bytes,
    outcome: Outcome,
    code: Option<i64>,
) -> Ended<'static> {
    ctx.status = header.status.as_u16();
    ctx.outcome = outcome;
    ctx.errcode = code;
    Ended::Pass(header, body)
}
