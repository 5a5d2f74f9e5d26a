//! Prometheus metrics: every metric name is defined here, once, with its labels.
//!
//! The sidecar keeps its own registry (not the process-global one) so tests and several
//! sidecars in one process never collide. Label values are bounded: `api` comes from the route
//! table or the built-in API table (`other` otherwise), `errcode` from WeCom's integer codes,
//! `app` and `upstream` from the config (a callback on a path no app has is `app="-"`),
//! `result` from a fixed list per family. No label ever holds a secret, token or raw path.

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Latency buckets in seconds: WeCom calls take tens to hundreds of milliseconds, token
/// refreshes and retries push the tail into seconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Commit-to-delivery buckets in seconds: a push to an app that is up takes milliseconds; one
/// that waited out an app's restart or a backoff takes seconds to hours (up to `max_age`).
pub const DELIVERY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
    3600.0, 21600.0, 86400.0,
];

/// How a call ended, as the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// WeCom answered with errcode 0 (or a binary body).
    Ok,
    /// WeCom answered with a non-zero errcode.
    Errcode,
    /// WeCom answered with an HTTP error status.
    HttpError,
    /// No usable answer: connect failure, reset, timeout, broken body.
    NetworkError,
    /// The sidecar answered itself (gettoken, quota, no token, bad request...).
    Local,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Errcode => "errcode",
            Outcome::HttpError => "http_error",
            Outcome::NetworkError => "network_error",
            Outcome::Local => "local",
        }
    }
}

/// All metric families of one sidecar.
pub struct Metrics {
    registry: Registry,
    pub request_duration: HistogramVec,
    pub errcode_total: IntCounterVec,
    pub upstream_attempts: IntCounterVec,
    pub retries: IntCounterVec,
    pub retry_budget_exhausted: IntCounterVec,
    pub quota_blocks: IntCounterVec,
    pub quota_rejected: IntCounterVec,
    pub token_refresh: IntCounterVec,
    pub token_expires_in: GaugeVec,
    pub token_fetch_capped: IntCounterVec,
    pub token_rejected: IntCounterVec,
    pub token_held: IntCounterVec,
    pub ticket_refresh: IntCounterVec,
    pub ticket_expires_in: GaugeVec,
    pub upstream_healthy: IntGaugeVec,
    pub config_reloads: IntCounterVec,
    pub in_flight: IntGaugeVec,
    pub redis_up: prometheus::IntGauge,
    pub fleet_fallbacks: IntCounterVec,
    pub client_rejected: IntCounterVec,
    pub app_connections: prometheus::IntGauge,
    pub app_connections_closed: IntCounterVec,
    pub callbacks_total: IntCounterVec,
    pub callback_deliveries: IntCounterVec,
    pub callback_queue_depth: IntGaugeVec,
    pub callback_delivery_seconds: HistogramVec,
    pub callback_oldest: GaugeVec,
    /// Log lines dropped (see `logging`), brought up to date at scrape.
    pub log_lines_dropped: prometheus::IntCounter,
    pub callback_dead_letters: IntGaugeVec,
    pub outbox_total: IntCounterVec,
    pub outbox_depth: IntGaugeVec,
    pub outbox_oldest: GaugeVec,
    pub outbox_dead_letters: IntGaugeVec,
    pub outbox_unsafe_replays: IntCounterVec,
    pub message_undelivered: IntCounterVec,
    pub egress_ip_info: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        // The names and label sets below are constants: registration cannot fail except by a
        // programming error (duplicate name), which the unit test below catches.
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "wecom_api_request_duration_seconds",
                "Time from a call's arrival to the end of its answer, by API, upstream and outcome.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["api", "upstream", "outcome"],
        )
        .expect("metric definition");
        let errcode_total = IntCounterVec::new(
            Opts::new(
                "wecom_api_errcode_total",
                "Answers by WeCom errcode, per API.",
            ),
            &["api", "errcode"],
        )
        .expect("metric definition");
        let upstream_attempts = IntCounterVec::new(
            Opts::new(
                "wecom_upstream_attempts_total",
                "Attempts sent to an upstream, by API, upstream and result.",
            ),
            &["api", "upstream", "result"],
        )
        .expect("metric definition");
        let retries = IntCounterVec::new(
            Opts::new(
                "wecom_retries_total",
                "Calls repeated by the sidecar, by API and reason.",
            ),
            &["api", "reason"],
        )
        .expect("metric definition");
        let retry_budget_exhausted = IntCounterVec::new(
            Opts::new(
                "wecom_retry_budget_exhausted_total",
                "Retries not made because the retry budget (20 % of calls + 10/s) was spent.",
            ),
            &["api"],
        )
        .expect("metric definition");
        let quota_blocks = IntCounterVec::new(
            Opts::new(
                "wecom_quota_blocks_total",
                "Frequency blocks announced by WeCom (45009/45033) and then held locally.",
            ),
            &["api", "app", "errcode"],
        )
        .expect("metric definition");
        let quota_rejected = IntCounterVec::new(
            Opts::new(
                "wecom_quota_rejected_total",
                "Calls refused locally by a quota.",
            ),
            &["api", "app"],
        )
        .expect("metric definition");
        let token_refresh = IntCounterVec::new(
            Opts::new(
                "wecom_token_refresh_total",
                "gettoken calls made by the sidecar, by result.",
            ),
            &["app", "result"],
        )
        .expect("metric definition");
        let token_expires_in = GaugeVec::new(
            Opts::new(
                "wecom_token_expires_in_seconds",
                "Seconds until the cached access_token of an app expires (0: none cached).",
            ),
            &["app"],
        )
        .expect("metric definition");
        let ticket_refresh = IntCounterVec::new(
            Opts::new(
                "wecom_ticket_refresh_total",
                "JS-SDK ticket fetches made by the sidecar (kind jsapi: the corp's, agent_config: the app's), by result.",
            ),
            &["app", "kind", "result"],
        )
        .expect("metric definition");
        let ticket_expires_in = GaugeVec::new(
            Opts::new(
                "wecom_ticket_expires_in_seconds",
                "Seconds until the cached JS-SDK ticket expires (0: none cached).",
            ),
            &["app", "kind"],
        )
        .expect("metric definition");
        let token_fetch_capped = IntCounterVec::new(
            Opts::new(
                "wecom_token_fetch_capped_total",
                "gettoken refused locally because the app reached token.max_fetches (fleet-wide in fleet mode), and the calls answered no-token for it.",
            ),
            &["app"],
        )
        .expect("metric definition");
        let token_rejected = IntCounterVec::new(
            Opts::new(
                "wecom_token_rejected_total",
                "Token errors (40014/42001/40001) passed to the app as WeCom said them: a fresh token did not cure them, or the gettoken bounds allowed none yet.",
            ),
            &["app", "upstream"],
        )
        .expect("metric definition");
        let token_held = IntCounterVec::new(
            Opts::new(
                "wecom_token_held_total",
                "Calls that wanted a gettoken the bounds did not allow, by reason (interval, refetch, uncured, backoff, capped).",
            ),
            &["app", "reason"],
        )
        .expect("metric definition");
        let upstream_healthy = IntGaugeVec::new(
            Opts::new(
                "wecom_upstream_healthy",
                "1 while an upstream takes traffic, 0 while ejected.",
            ),
            &["upstream"],
        )
        .expect("metric definition");
        let config_reloads = IntCounterVec::new(
            Opts::new("wecom_config_reloads_total", "Config reloads by result."),
            &["result"],
        )
        .expect("metric definition");
        let in_flight = IntGaugeVec::new(
            Opts::new(
                "wecom_sidecar_in_flight_requests",
                "Calls being handled right now.",
            ),
            &["listener"],
        )
        .expect("metric definition");
        let redis_up = prometheus::IntGauge::new(
            "wecom_redis_up",
            "1 while the fleet's Redis answers, 0 while decisions are local (fleet mode only).",
        )
        .expect("metric definition");
        let fleet_fallbacks = IntCounterVec::new(
            Opts::new(
                "wecom_fleet_fallbacks_total",
                "Decisions taken locally because Redis could not (quota: local share; token: local fetch).",
            ),
            &["what"],
        )
        .expect("metric definition");
        let client_rejected = IntCounterVec::new(
            Opts::new(
                "wecom_client_rejected_total",
                "Calls refused because their signature or their app was not allowed (clients: set), by client and reason.",
            ),
            &["client", "reason"],
        )
        .expect("metric definition");
        let app_connections = prometheus::IntGauge::new(
            "wecom_app_connections",
            "App connections open on the app listener.",
        )
        .expect("metric definition");
        let app_connections_closed = IntCounterVec::new(
            Opts::new(
                "wecom_app_connections_closed_total",
                "App connections the sidecar closed to keep its bounds, by reason (refused, evicted, header_timeout, idle_timeout).",
            ),
            &["reason"],
        )
        .expect("metric definition");
        let callbacks_total = IntCounterVec::new(
            Opts::new(
                "wecom_callbacks_total",
                "Requests on the callback listener by app and result (accepted, duplicate, verified, bad-signature, undecryptable, wrong-receiver, malformed, too-large, store-error; unknown-path with app \"-\").",
            ),
            &["app", "result"],
        )
        .expect("metric definition");
        let callback_deliveries = IntCounterVec::new(
            Opts::new(
                "wecom_callback_deliveries_total",
                "Delivery attempts of pushes to the app's deliver_to, by app and result (delivered, retried, dead).",
            ),
            &["app", "result"],
        )
        .expect("metric definition");
        let callback_queue_depth = IntGaugeVec::new(
            Opts::new(
                "wecom_callback_queue_depth",
                "Pushes committed and not yet delivered, per app (as its delivery worker last saw).",
            ),
            &["app"],
        )
        .expect("metric definition");
        let callback_delivery_seconds = HistogramVec::new(
            HistogramOpts::new(
                "wecom_callback_delivery_seconds",
                "Time from a push's commit to its delivery to the app, retries included.",
            )
            .buckets(DELIVERY_BUCKETS.to_vec()),
            &["app"],
        )
        .expect("metric definition");
        let callback_oldest = GaugeVec::new(
            Opts::new(
                "wecom_callback_oldest_seconds",
                "Age of the oldest push waiting for delivery to the app (0: none waiting), read from the store at scrape.",
            ),
            &["app"],
        )
        .expect("metric definition");
        let callback_dead_letters = IntGaugeVec::new(
            Opts::new(
                "wecom_callback_dead_letters",
                "Pushes given up on and kept as dead letters (retry them with POST /admin/callbacks/dead/<id>/retry), read from the store at scrape.",
            ),
            &["app"],
        )
        .expect("metric definition");
        let outbox_total = IntCounterVec::new(
            Opts::new(
                "wecom_outbox_total",
                "Outbox sends by API, app and result: queued (committed, the app answered queued), full (not queued: store.max_bytes or store.outbox_max_per_app; the app got the ordinary answer), sent (a replay WeCom took), refused (a replay WeCom refused: kept as a dead letter), dead (undelivered for outbox_max_age: a dead letter).",
            ),
            &["api", "app", "result"],
        )
        .expect("metric definition");
        let outbox_depth = IntGaugeVec::new(
            Opts::new(
                "wecom_outbox_depth",
                "Sends waiting in the outbox per app (robot: webhook/send), read from the store by its sender and at scrape.",
            ),
            &["app"],
        )
        .expect("metric definition");
        let outbox_oldest = GaugeVec::new(
            Opts::new(
                "wecom_outbox_oldest_seconds",
                "Age of the oldest send waiting in the outbox per app (0: none waiting).",
            ),
            &["app"],
        )
        .expect("metric definition");
        let outbox_dead_letters = IntGaugeVec::new(
            Opts::new(
                "wecom_outbox_dead_letters",
                "Outbox sends given up on and kept as dead letters per app (see GET /admin/outbox/dead).",
            ),
            &["app"],
        )
        .expect("metric definition");
        let outbox_unsafe_replays = IntCounterVec::new(
            Opts::new(
                "wecom_outbox_replays_unsafe_total",
                "Replays of webhook/send (no duplicate check at WeCom) whose first attempt may have reached WeCom: the robot message may be delivered twice.",
            ),
            &["app"],
        )
        .expect("metric definition");
        let message_undelivered = IntCounterVec::new(
            Opts::new(
                "wecom_message_undelivered_total",
                "Recipients a message send answered with errcode 0 did not reach (WeCom's invaliduser, invalidparty, invalidtag, unlicenseduser), by API, app and kind.",
            ),
            &["api", "app", "kind"],
        )
        .expect("metric definition");
        let egress_ip_info = IntGaugeVec::new(
            Opts::new(
                "wecom_egress_ip_info",
                "1 for the address WeCom last refused as untrusted (60020, \"from ip\"): add it to the app's trusted IPs. One series, the latest address only.",
            ),
            &["ip"],
        )
        .expect("metric definition");
        let log_lines_dropped = prometheus::IntCounter::new(
            "wecom_log_lines_dropped_total",
            "Log lines dropped because the log buffer was full (stderr slower than the calls) or stderr failed; calls never wait for the log.",
        )
        .expect("metric definition");
        for c in [
            Box::new(request_duration.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(errcode_total.clone()),
            Box::new(upstream_attempts.clone()),
            Box::new(retries.clone()),
            Box::new(retry_budget_exhausted.clone()),
            Box::new(quota_blocks.clone()),
            Box::new(quota_rejected.clone()),
            Box::new(token_refresh.clone()),
            Box::new(token_expires_in.clone()),
            Box::new(token_fetch_capped.clone()),
            Box::new(token_rejected.clone()),
            Box::new(token_held.clone()),
            Box::new(ticket_refresh.clone()),
            Box::new(ticket_expires_in.clone()),
            Box::new(upstream_healthy.clone()),
            Box::new(config_reloads.clone()),
            Box::new(in_flight.clone()),
            Box::new(redis_up.clone()),
            Box::new(fleet_fallbacks.clone()),
            Box::new(client_rejected.clone()),
            Box::new(app_connections.clone()),
            Box::new(app_connections_closed.clone()),
            Box::new(callbacks_total.clone()),
            Box::new(callback_deliveries.clone()),
            Box::new(callback_queue_depth.clone()),
            Box::new(callback_delivery_seconds.clone()),
            Box::new(callback_oldest.clone()),
            Box::new(callback_dead_letters.clone()),
            Box::new(outbox_total.clone()),
            Box::new(outbox_depth.clone()),
            Box::new(outbox_oldest.clone()),
            Box::new(outbox_dead_letters.clone()),
            Box::new(outbox_unsafe_replays.clone()),
            Box::new(message_undelivered.clone()),
            Box::new(egress_ip_info.clone()),
            Box::new(log_lines_dropped.clone()),
        ] {
            registry.register(c).expect("unique metric names");
        }
        Metrics {
            registry,
            request_duration,
            errcode_total,
            upstream_attempts,
            retries,
            retry_budget_exhausted,
            quota_blocks,
            quota_rejected,
            token_refresh,
            token_expires_in,
            token_fetch_capped,
            token_rejected,
            token_held,
            ticket_refresh,
            ticket_expires_in,
            upstream_healthy,
            config_reloads,
            in_flight,
            redis_up,
            fleet_fallbacks,
            client_rejected,
            app_connections,
            app_connections_closed,
            callbacks_total,
            callback_deliveries,
            callback_queue_depth,
            callback_delivery_seconds,
            callback_oldest,
            callback_dead_letters,
            outbox_total,
            outbox_depth,
            outbox_oldest,
            outbox_dead_letters,
            outbox_unsafe_replays,
            message_undelivered,
            egress_ip_info,
            log_lines_dropped,
        }
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        // Encoding into a Vec only fails on invalid metric data, which the types above rule out.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Errcode label: WeCom's codes are small integers; anything else collapses to `other` so a
/// misbehaving upstream cannot blow up label cardinality.
pub fn errcode_label(code: i64) -> std::borrow::Cow<'static, str> {
    // The codes nearly every call ends with, without building a string.
    match code {
        0 => return std::borrow::Cow::Borrowed("0"),
        -1 => return std::borrow::Cow::Borrowed("-1"),
        _ => {}
    }
    if (-1_000..10_000_000).contains(&code) {
        std::borrow::Cow::Owned(code.to_string())
    } else {
        std::borrow::Cow::Borrowed("other")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_spec_names() {
        let m = Metrics::new();
        m.request_duration
            .with_label_values(&["user/get", "primary", "ok"])
            .observe(0.01);
        m.errcode_total.with_label_values(&["user/get", "0"]).inc();
        m.upstream_attempts
            .with_label_values(&["user/get", "primary", "ok"])
            .inc();
        m.retries.with_label_values(&["user/get", "http_5xx"]).inc();
        m.quota_rejected
            .with_label_values(&["user/get", "hr"])
            .inc();
        m.token_refresh.with_label_values(&["hr", "ok"]).inc();
        m.token_expires_in.with_label_values(&["hr"]).set(7200.0);
        m.token_fetch_capped.with_label_values(&["hr"]).inc();
        m.token_rejected.with_label_values(&["hr", "standby"]).inc();
        m.token_held.with_label_values(&["hr", "uncured"]).inc();
        m.ticket_refresh
            .with_label_values(&["hr", "jsapi", "ok"])
            .inc();
        m.ticket_expires_in
            .with_label_values(&["hr", "agent_config"])
            .set(7200.0);
        m.upstream_healthy.with_label_values(&["primary"]).set(1);
        m.config_reloads.with_label_values(&["ok"]).inc();
        m.callbacks_total
            .with_label_values(&["hr", "accepted"])
            .inc();
        m.callback_deliveries
            .with_label_values(&["hr", "delivered"])
            .inc();
        m.callback_queue_depth.with_label_values(&["hr"]).set(0);
        m.callback_delivery_seconds
            .with_label_values(&["hr"])
            .observe(0.01);
        m.callback_oldest.with_label_values(&["hr"]).set(12.0);
        m.callback_dead_letters.with_label_values(&["hr"]).set(1);
        m.outbox_total
            .with_label_values(&["message/send", "hr", "queued"])
            .inc();
        m.outbox_depth.with_label_values(&["hr"]).set(1);
        m.outbox_oldest.with_label_values(&["hr"]).set(3.0);
        m.outbox_dead_letters.with_label_values(&["hr"]).set(0);
        m.outbox_unsafe_replays.with_label_values(&["robot"]).inc();
        m.message_undelivered
            .with_label_values(&["message/send", "hr", "user"])
            .inc();
        m.egress_ip_info.with_label_values(&["203.0.113.7"]).set(1);
        let text = String::from_utf8(m.render()).unwrap();
        for name in [
            "wecom_api_request_duration_seconds_bucket",
            "wecom_api_errcode_total",
            "wecom_upstream_attempts_total",
            "wecom_retries_total",
            "wecom_quota_rejected_total",
            "wecom_token_refresh_total",
            "wecom_token_expires_in_seconds",
            "wecom_token_fetch_capped_total",
            "wecom_token_rejected_total",
            "wecom_token_held_total",
            "wecom_ticket_refresh_total",
            "wecom_ticket_expires_in_seconds",
            "wecom_upstream_healthy",
            "wecom_config_reloads_total",
            "wecom_callbacks_total",
            "wecom_callback_deliveries_total",
            "wecom_callback_queue_depth",
            "wecom_callback_delivery_seconds_bucket",
            "wecom_callback_oldest_seconds",
            "wecom_callback_dead_letters",
            "wecom_outbox_total",
            "wecom_outbox_depth",
            "wecom_outbox_oldest_seconds",
            "wecom_outbox_dead_letters",
            "wecom_outbox_replays_unsafe_total",
            "wecom_message_undelivered_total",
            "wecom_egress_ip_info",
            "wecom_log_lines_dropped_total",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }

    #[test]
    fn errcode_labels_are_bounded() {
        assert_eq!(errcode_label(42001), "42001");
        assert_eq!(errcode_label(0), "0");
        assert_eq!(errcode_label(-1), "-1");
        assert_eq!(errcode_label(i64::MAX), "other");
    }
}
