//! Upstream health: `outlier` (when failures eject an upstream, for how long) and
//! `health_check` (how ejected upstreams are probed).

use super::check::Check;
use crate::config::defaults::*;
use crate::config::file::{FileHealthCheck, FileOutlier};
use crate::config::model::{HealthCheck, OutlierPolicy};

/// `outlier`, every key defaulted; the first ejection no longer than the longest.
pub(super) fn outlier(c: &mut Check, o: Option<&FileOutlier>) -> OutlierPolicy {
    let outlier = OutlierPolicy {
        consecutive_failures: match o.and_then(|o| o.consecutive_failures) {
            Some(0) => {
                c.problem(
                    "outlier.consecutive_failures",
                    "must be at least 1 (the default is 5)",
                );
                DEFAULT_CONSECUTIVE_FAILURES
            }
            Some(n) => n,
            None => DEFAULT_CONSECUTIVE_FAILURES,
        },
        base_ejection: c.duration(
            "outlier.base_ejection",
            o.and_then(|o| o.base_ejection.as_deref()),
            DEFAULT_BASE_EJECTION,
        ),
        max_ejection: c.duration(
            "outlier.max_ejection",
            o.and_then(|o| o.max_ejection.as_deref()),
            DEFAULT_MAX_EJECTION,
        ),
    };
    if outlier.base_ejection > outlier.max_ejection {
        c.problem(
            "outlier.base_ejection",
            "is longer than max_ejection; raise max_ejection or lower base_ejection",
        );
    }
    outlier
}

/// `health_check`, every key defaulted.
pub(super) fn health_check(c: &mut Check, h: Option<&FileHealthCheck>) -> HealthCheck {
    HealthCheck {
        interval: c.duration(
            "health_check.interval",
            h.and_then(|h| h.interval.as_deref()),
            DEFAULT_HEALTH_CHECK_INTERVAL,
        ),
        timeout: c.duration(
            "health_check.timeout",
            h.and_then(|h| h.timeout.as_deref()),
            DEFAULT_HEALTH_CHECK_TIMEOUT,
        ),
    }
}
