//! The fleet's unit tests' clients of a real `redis-server` (`crate::test_redis`).

use std::sync::Arc;
use std::time::Duration;

use crate::config::{Fleet, Secret, ShareKind};
use crate::metrics::Metrics;

pub(crate) use crate::test_redis::Redis;

use super::FleetClient;

/// A fleet client of `redis`, sharing quotas and tokens under `prefix`.
pub(crate) trait FleetOf {
    fn fleet(&self, prefix: &str) -> (FleetClient, Arc<Metrics>);
}

impl FleetOf for Redis {
    fn fleet(&self, prefix: &str) -> (FleetClient, Arc<Metrics>) {
        client(&self.url(), prefix)
    }
}

/// A fleet client of `url` (2 s `fleet.timeout`, a fleet of 4) and the metrics it writes.
pub(crate) fn client(url: &str, prefix: &str) -> (FleetClient, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let fleet = Fleet {
        redis_url: Secret::new(url),
        key_prefix: prefix.to_string(),
        size: 4,
        share: vec![ShareKind::Tokens, ShareKind::Quotas],
        timeout: Duration::from_secs(2),
    };
    (
        FleetClient::new(&fleet, metrics.clone()).expect("a usable URL"),
        metrics,
    )
}
