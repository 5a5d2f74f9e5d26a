//! An outbox replay through the pipeline's own steps: the route the send's path falls under
//! now, its app's tokens, the quota step (`admission`: a queued send counts against quotas
//! like any call) and `forward` (upstream choice, retries, token renewal, metrics, the blocks
//! WeCom announces). Only the app's connection is missing: the request head is made from what
//! the outbox kept (path and query), and the answer is read, not written.
//!
//! How an ending reads for the sender ([`Replayed`]): errcode 0 is sent; errcode -1, a token
//! error no fresh token cured, a non-200 status, and every local answer but a quota's are
//! failures to try again; a quota or a block (local, or WeCom's 45009 and 45033) holds the
//! send; any other errcode is WeCom refusing it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pingora::http::RequestHeader;

use super::forward::{self, Ended, Forward};
use super::refusal::Refusal;
use super::{admission, dedupe, RequestCtx};
use crate::body::RequestBody;
use crate::metrics::Outcome;
use crate::outbox::record::WecomAnswer;
use crate::outbox::sender::{Replay, Replayed};
use crate::outbox::Meta;
use crate::state::Shared;
use crate::token::TokenError;
use crate::wecom::apis::Auth;
use crate::wecom::errcode::{self, CONCURRENCY_LIMIT, FREQ_LIMIT, OK, SYSTEM_BUSY};

/// The wait after WeCom announced a block: the quota step then holds the send as long as
/// the block lasts.
const AFTER_BLOCK: Duration = Duration::from_secs(1);

/// Replays outbox sends through the pipeline of this process.
pub struct Replayer {
    pub shared: Arc<Shared>,
}

fn failed(why: impl Into<String>) -> Replayed {
    Replayed::Failed { why: why.into() }
}

fn held(retry_after: u64, why: String) -> Replayed {
    Replayed::Held {
        wait: Duration::from_secs(retry_after.max(1)),
        why,
    }
}

/// The request head of a replay: a POST of the send's path and query, JSON.
fn request_head(meta: &Meta) -> Result<RequestHeader, Replayed> {
    let target = if meta.query.is_empty() {
        meta.path.clone()
    } else {
        format!("{}?{}", meta.path, meta.query)
    };
    let mut head = RequestHeader::build("POST", target.as_bytes(), Some(1))
        .map_err(|_| failed("the queued send's path does not make a request"))?;
    head.insert_header("Content-Type", "application/json")
        .map_err(|_| failed("the request head could not be made"))?;
    Ok(head)
}

/// A context for one replay: not an app's call, so not counted among the calls in flight.
fn replay_ctx(meta: &Meta) -> RequestCtx {
    RequestCtx::new(
        http::HeaderValue::from_str(&format!("outbox-{}", meta.outbox_id))
            .unwrap_or(http::HeaderValue::from_static("outbox")),
        None,
    )
}

/// Records in `ctx` the local answer `r` stands for (no app reads it: the log line does).
fn local(ctx: &mut RequestCtx, r: &Refusal) {
    let a = r.clone().answer();
    ctx.status = a.status;
    ctx.reason = Some(a.reason);
    ctx.errcode = Some(a.errcode);
}

/// What an answer WeCom gave means for the send.
fn read_answer(status: u16, body: &[u8]) -> Replayed {
    let Some(answer) = WecomAnswer::from_json(body).filter(|_| status == 200) else {
        return failed(format!("WeCom answered HTTP {status} without an errcode"));
    };
    match answer.errcode {
        OK => Replayed::Sent(answer),
        SYSTEM_BUSY => failed("WeCom answered errcode -1 (system busy)"),
        FREQ_LIMIT | CONCURRENCY_LIMIT => Replayed::Held {
            wait: AFTER_BLOCK,
            why: format!("WeCom answered errcode {}", answer.errcode),
        },
        code if errcode::is_token_error(code) => {
            failed(format!("WeCom rejected the token (errcode {code})"))
        }
        _ => Replayed::Refused(answer),
    }
}

/// What a local answer means for the send.
fn read_refusal(r: Refusal) -> Replayed {
    match r {
        Refusal::Quota {
            retry_after,
            message,
            ..
        }
        | Refusal::Concurrency {
            retry_after,
            message,
            ..
        } => held(retry_after, message),
        Refusal::NoToken {
            error: TokenError::Held { retry_in, .. },
            ..
        } => Replayed::Held {
            wait: retry_in.max(Duration::from_secs(1)),
            why: "no token: a gettoken bound holds the fetch".into(),
        },
        other => failed(other.answer().errmsg),
    }
}

#[async_trait::async_trait]
impl Replay for Replayer {
    async fn replay(&self, meta: &Meta, body: &[u8]) -> Replayed {
        let shared = &*self.shared;
        let rt = shared.runtime.load_full();
        let Some(call) = rt.routes.route(&meta.path) else {
            return failed("the send's path is not a WeCom API path");
        };
        let app = match call.api.auth {
            Auth::Token => match rt.app(&meta.app) {
                Some(a) => Some(a),
                None => return failed(format!("app {} is not configured", meta.app)),
            },
            _ => None,
        };
        // The body already holds the duplicate check it was queued with: it stays as it was.
        let (body, duplicate_checked) = dedupe::apply(
            call.api.name,
            &call.route.policy,
            Bytes::copy_from_slice(body),
        );
        let body = RequestBody::Buffered(body);
        let deadline = call.route.policy.deadline;
        let deadline_at = tokio::time::Instant::now() + deadline;
        let admitted = tokio::time::timeout(
            deadline,
            admission::admit(shared, &call, app.map(|a| &a.app.name), &meta.query, &body),
        )
        .await;
        let _in_flight = match admitted {
            Ok(Ok(slot)) => slot,
            Ok(Err(refusal)) => return read_refusal(refusal),
            Err(_) => return held(1, "the quota step passed the deadline".into()),
        };
        let head = match request_head(meta) {
            Ok(h) => h,
            Err(r) => return r,
        };
        let mut ctx = replay_ctx(meta);
        ctx.api = call.label.clone();
        ctx.route = Some(call.route.key.clone());
        ctx.app = app.map(|a| a.app.name.clone());
        let f = Forward {
            shared,
            rt: &rt,
            call: &call,
            app: app.map(|a| &**a),
            body: &body,
            idempotent: call.idempotent() || duplicate_checked,
            deadline_at,
        };
        let ended =
            tokio::time::timeout_at(deadline_at, forward::forward(f, &head, &mut ctx)).await;
        let replayed = match ended {
            Ok(Ended::Pass(header, answer)) => read_answer(header.status.as_u16(), &answer),
            Ok(Ended::Local(refusal)) => {
                local(&mut ctx, &refusal);
                read_refusal(refusal)
            }
            Ok(Ended::Stream(..)) => failed("WeCom answered with a file, not JSON"),
            Err(_) => {
                ctx.outcome = Outcome::NetworkError;
                let refusal = Refusal::Deadline { deadline };
                local(&mut ctx, &refusal);
                read_refusal(refusal)
            }
        };
        // One access log line and the call's metrics, as for an app's call.
        super::access_log::access_log(shared, &head.method, head.uri.path(), &ctx);
        replayed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_read_as_sent_held_failed_or_refused() {
        assert!(matches!(
            read_answer(200, br#"{"errcode":0,"errmsg":"ok","msgid":"M"}"#),
            Replayed::Sent(a) if a.msgid.as_deref() == Some("M")
        ));
        assert!(matches!(
            read_answer(200, br#"{"errcode":-1,"errmsg":"busy"}"#),
            Replayed::Failed { .. }
        ));
        assert!(matches!(
            read_answer(200, br#"{"errcode":45009,"errmsg":"x"}"#),
            Replayed::Held { .. }
        ));
        assert!(matches!(
            read_answer(200, br#"{"errcode":42001,"errmsg":"x"}"#),
            Replayed::Failed { .. }
        ));
        assert!(matches!(
            read_answer(302, br#"{"errcode":0,"errmsg":"ok"}"#),
            Replayed::Failed { .. }
        ));
        assert!(matches!(
            read_answer(200, br#"{"errcode":40003,"errmsg":"invalid userid"}"#),
            Replayed::Refused(a) if a.errcode == 40003
        ));
        assert!(matches!(
            read_refusal(Refusal::Quota { status: 200, retry_after: 7, message: "q".into() }),
            Replayed::Held { wait, .. } if wait == Duration::from_secs(7)
        ));
        assert!(matches!(
            read_refusal(Refusal::Deadline {
                deadline: Duration::from_secs(1)
            }),
            Replayed::Failed { .. }
        ));
    }

    #[test]
    fn the_request_head_carries_path_and_query() {
        let meta = Meta {
            path: "/cgi-bin/webhook/send".into(),
            query: "key=abc".into(),
            ..Meta::default()
        };
        let h = request_head(&meta).unwrap();
        assert_eq!(h.uri.path(), "/cgi-bin/webhook/send");
        assert_eq!(h.uri.query(), Some("key=abc"));
        assert_eq!(h.method, http::Method::POST);
    }
}
