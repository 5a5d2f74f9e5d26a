//! The pipeline's outbox step: on a route with `outbox: true`, which endings of a send are
//! queued instead of answered, and the queueing itself (commit first, then the queued answer).
//!
//! Queued: every attempt failed without WeCom refusing the send (`upstream-unavailable`:
//! connect failure, reset, timeout, 5xx, a broken answer; the deadline; no token because
//! gettoken could not be reached; WeCom's own errcode -1 after the retries). With
//! `on_limit: queue` also a local quota answer (a quota, a member's or robot's cap, a block
//! WeCom announced) and WeCom's 45009 and 45033. Not queued: anything WeCom refused (40003,
//! 48002, 45009 without `on_limit: queue`, ...): the app gets WeCom's answer as it was.
//!
//! While sends of the app wait in its queue, a new send is queued behind them untried (it
//! would otherwise overtake them): sends reach WeCom in the order the app made them.
//!
//! When the store is full (`store.max_bytes`, `store.outbox_max_per_app`) or fails, nothing
//! is queued and the app gets the answer it would have got without the outbox: never a
//! queued answer for a send that is not durable.

use bytes::Bytes;

use super::refusal::Refusal;
use crate::config::{OnLimit, OutboxPolicy, RoutePolicy};
use crate::outbox::{queued_answer, Enqueued, Outbox, Outgoing};
use crate::store::Limits;
use crate::token::TokenError;
use crate::wecom::answer::LocalAnswer;
use crate::wecom::errcode::{CONCURRENCY_LIMIT, FREQ_LIMIT, SYSTEM_BUSY};

/// A send on an outbox route: what queueing it takes.
pub(super) struct OutboxCall<'a> {
    pub outbox: &'a Outbox,
    pub policy: OutboxPolicy,
    pub on_limit_queue: bool,
    /// The body as it is sent (duplicate check in it).
    pub body: Bytes,
    pub api: &'a str,
    pub app: &'a str,
}

impl<'a> OutboxCall<'a> {
    /// The outbox of a call on `route`, when it has one and the body is a buffered one.
    pub fn of(
        outbox: Option<&'a Outbox>,
        route: &RoutePolicy,
        body: Option<&Bytes>,
        api: &'a str,
        app: &'a str,
    ) -> Option<OutboxCall<'a>> {
        Some(OutboxCall {
            outbox: outbox?,
            policy: route.outbox?,
            on_limit_queue: route.on_limit == OnLimit::Queue,
            body: body?.clone(),
            api,
            app,
        })
    }

    /// Whether sends of this app wait in its queue: then this one is queued behind them
    /// without being tried, so sends reach WeCom in the order the app made them.
    pub fn behind_queued(&self) -> bool {
        self.outbox.app(self.app).backlogged()
    }

    /// Whether a call refused with `r` is queued instead; the words saying why.
    pub fn queues_refusal(&self, r: &Refusal) -> Option<String> {
        match r {
            Refusal::UpstreamUnavailable { upstream, what } => {
                Some(format!("upstream {upstream} {what}"))
            }
            Refusal::Deadline { deadline } => Some(format!("no answer within {deadline:?}")),
            Refusal::NoToken {
                error: TokenError::Unavailable(why),
                ..
            } => Some(format!("no token: gettoken failed ({why})")),
            Refusal::Quota { .. } if self.on_limit_queue => {
                Some("a quota or block (on_limit: queue)".into())
            }
            _ => None,
        }
    }

    /// Whether WeCom's answer with `errcode` is queued instead; the words saying why.
    pub fn queues_errcode(&self, errcode: Option<i64>) -> Option<String> {
        match errcode? {
            SYSTEM_BUSY => Some("WeCom answered errcode -1 (system busy)".into()),
            code @ (FREQ_LIMIT | CONCURRENCY_LIMIT) if self.on_limit_queue => {
                Some(format!("WeCom answered errcode {code} (on_limit: queue)"))
            }
            _ => None,
        }
    }

    /// Commits the send; the queued answer once it is durable, or `None` (full, or the store
    /// failed: logged and counted) for the caller to give the ordinary answer.
    pub async fn queue(
        &self,
        path: &str,
        query: &str,
        limits: Limits,
        since_call: std::time::Duration,
        maybe_sent: bool,
        why: &str,
    ) -> Result<LocalAnswer, String> {
        let send = Outgoing {
            api: self.api,
            path,
            query,
            app: self.app,
            body: &self.body,
            max_age: self.policy.max_age,
            since_call,
            maybe_sent,
            queued_for: why,
        };
        match self.outbox.enqueue(send, limits).await {
            Ok(Enqueued::Queued { outbox_id }) => Ok(queued_answer(&outbox_id)),
            Ok(Enqueued::Full(full)) => Err(format!("{why}; not queued: {full}")),
            Err(e) => {
                tracing::warn!(app = self.app, api = self.api, error = %e, "outbox: the send could not be committed; the app gets the ordinary answer");
                self.outbox
                    .metrics
                    .outbox_total
                    .with_label_values(&[self.api, self.app, "store_error"])
                    .inc();
                Err(format!("{why}; not queued: {e}"))
            }
        }
    }
}
