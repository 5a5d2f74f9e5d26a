//! Active health checks: every `health_check.interval`, each ejected upstream gets one cheap
//! request, `GET /cgi-bin/getcallbackip` without a token. WeCom answers it with a JSON error
//! (41001) without spending any quota or a `gettoken`; any HTTP 200 answer proves the upstream
//! serves again and brings it back before its ejection ends.

use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora::http::RequestHeader;
use tokio::sync::watch;
use tokio::time::Instant;

use super::exchange;
use super::resolve::Resolver;
use super::UpstreamRt;
use crate::body::RequestBody;
use crate::config::HealthCheck;
use crate::metrics::Metrics;

/// The path probed (no token: the answer is an error, but an answer).
pub const PROBE_PATH: &str = "/cgi-bin/getcallbackip";

/// What the prober reads of the runtime in force (the composition root's runtime, swapped on
/// reload, implements it).
pub trait Probed: Send + Sync {
    /// The upstreams, in config order.
    fn upstreams(&self) -> &[Arc<UpstreamRt>];
    /// `health_check.*`.
    fn health_check(&self) -> HealthCheck;
}

async fn probe(resolver: &Resolver, up: &UpstreamRt, timeout: std::time::Duration) -> bool {
    let check = async {
        let addr = resolver.resolve(&up.cfg.host, up.cfg.port).await.ok()?;
        let path = format!("{}{PROBE_PATH}", up.cfg.base_path);
        let mut req = RequestHeader::build("GET", path.as_bytes(), Some(2)).ok()?;
        req.insert_header("Host", up.authority.as_str()).ok()?;
        let mut open = exchange::open(up, addr, Box::new(req), &RequestBody::Empty)
            .await
            .ok()?;
        let status = open.status();
        open.read_to_end(64 * 1024).await.ok()?;
        open.release(up).await;
        Some(status == 200)
    };
    matches!(tokio::time::timeout(timeout, check).await, Ok(Some(true)))
}

/// Probes ejected upstreams until `shutdown` turns true.
pub async fn run<R: Probed>(
    resolver: &Resolver,
    metrics: &Metrics,
    runtime: &ArcSwap<R>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let rt = runtime.load_full();
        let hc = rt.health_check();
        let now = Instant::now();
        for up in rt.upstreams() {
            let healthy = up.health.available(now);
            metrics
                .upstream_healthy
                .with_label_values(&[up.cfg.name.as_str()])
                .set(i64::from(healthy));
            if !healthy && probe(resolver, up, hc.timeout).await {
                up.health.restore();
                metrics
                    .upstream_healthy
                    .with_label_values(&[up.cfg.name.as_str()])
                    .set(1);
                tracing::info!(upstream = %up.cfg.name, "upstream answered its health check: back in rotation");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(hc.interval) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return;
        }
    }
}
