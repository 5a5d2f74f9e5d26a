//! The access log: one structured line per call (target `access`, written by
//! `logging::AccessLine`), and the call's latency and
//! errcode metrics and plan observation, written once the answer is out. Its fields are read by
//! operators' log pipelines and by the tests: they change only together with those.

use super::RequestCtx;
use crate::metrics::Outcome;
use crate::state::Shared;
use crate::wecom::errcode;

/// One structured line per call (an app's, or an outbox replay's: its request id
/// `outbox-<outbox_id>`), and its latency and errcode metrics.
pub(super) fn access_log(shared: &Shared, method: &http::Method, path: &str, ctx: &RequestCtx) {
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
    // A partial success: how many recipients of each kind were not reached (never who).
    let u = ctx.undelivered.unwrap_or_default();
    let some = |n: u32| (n > 0).then_some(n);
    crate::logging::AccessLine {
        request_id: ctx.request_id_str(),
        method,
        path,
        api: &ctx.api,
        app: ctx.app.as_ref().map_or("-", |a| a.as_str()),
        client: ctx.client.as_deref(),
        upstream,
        attempts: ctx.attempts,
        outcome: ctx.outcome.as_str(),
        status: ctx.status,
        errcode: ctx.errcode,
        reason: ctx.reason.map(|r| r.as_str()),
        detail: ctx.detail.as_deref(),
        undelivered_users: some(u.users),
        undelivered_parties: some(u.parties),
        undelivered_tags: some(u.tags),
        unlicensed_users: some(u.unlicensed),
        // Whole microseconds, so `latency_ms` prints with at most 3 decimals (1.234), not
        // the float noise of seconds × 1000 (1.2340000000000002).
        latency_us: u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
    }
    .log();
}
