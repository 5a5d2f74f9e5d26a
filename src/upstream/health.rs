//! Upstream health: passive outlier detection from real traffic, ejection with growing
//! back-off, and the state the split picker and `/admin/status` read.
//!
//! Consecutive failures (a host that does not resolve, connect errors, timeouts, resets,
//! broken answers, 5xx, errcode -1; `proxy::forward::next_step` holds each one here) past
//! `outlier.consecutive_failures` eject an upstream for `base_ejection` × its ejection count
//! (at most `max_ejection`). Its share goes to the healthy members of each split. It comes back
//! when the ejection ends, or earlier when an active health check gets an answer. If every
//! member of a split is ejected, the one ejected longest ago still gets the calls: never a
//! blackhole.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use crate::config::OutlierPolicy;

/// Health of one upstream, shared across config reloads while its name and URL stay the same.
#[derive(Default)]
pub struct UpstreamHealth {
    consecutive: AtomicU32,
    ejections: AtomicU32,
    total_ejections: AtomicU64,
    /// Whether `state.until` is set: an ejection is on, or ended without a good answer since.
    /// Lets a good answer skip the lock in the common case.
    ejected: AtomicBool,
    state: Mutex<Ejection>,
}

#[derive(Default, Clone, Copy)]
struct Ejection {
    until: Option<Instant>,
    at: Option<Instant>,
}

/// What the status page shows.
#[derive(Debug, Clone, Copy)]
pub struct HealthView {
    pub healthy: bool,
    pub consecutive_failures: u32,
    pub ejections: u64,
    pub ejected_for_ms: Option<u64>,
}

impl UpstreamHealth {
    fn lock(&self) -> std::sync::MutexGuard<'_, Ejection> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes traffic right now.
    pub fn available(&self, now: Instant) -> bool {
        self.lock().until.is_none_or(|u| u <= now)
    }

    /// When it was last ejected (for "least recently ejected" when all are out).
    pub fn ejected_at(&self) -> Option<Instant> {
        self.lock().at
    }

    /// A good answer: the failure streak ends; an upstream whose ejection had run out is back
    /// for good (its ejection count decays). Called on every good answer, so its common case
    /// (no streak, no ejection to clear) only reads two atomics.
    pub fn success(&self) {
        if self.consecutive.load(Ordering::Relaxed) != 0 {
            self.consecutive.store(0, Ordering::Relaxed);
        }
        if !self.ejected.load(Ordering::Acquire) {
            return;
        }
        let mut s = self.lock();
        if s.until.is_some_and(|u| u <= Instant::now()) {
            s.until = None;
            self.ejected.store(false, Ordering::Release);
            drop(s);
            let _ = self
                .ejections
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    Some(n.saturating_sub(1))
                });
        }
    }

    /// An active check answered: back into rotation now. The ejection counts as ended, so
    /// the next good answer from real traffic lowers the ejection count as it would have.
    pub fn restore(&self) {
        self.consecutive.store(0, Ordering::Relaxed);
        let mut s = self.lock();
        if s.until.is_some() {
            s.until = Some(Instant::now());
        }
    }

    /// A failure; returns the ejection time when this failure ejected the upstream.
    pub fn failure(&self, policy: &OutlierPolicy) -> Option<std::time::Duration> {
        let n = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
        if n < policy.consecutive_failures {
            return None;
        }
        let now = Instant::now();
        let mut s = self.lock();
        if s.until.is_some_and(|u| u > now) {
            return None;
        }
        let times = self.ejections.fetch_add(1, Ordering::Relaxed) + 1;
        self.total_ejections.fetch_add(1, Ordering::Relaxed);
        let for_ = policy
            .base_ejection
            .saturating_mul(times)
            .min(policy.max_ejection);
        s.until = Some(now + for_);
        self.ejected.store(true, Ordering::Release);
        s.at = Some(now);
        self.consecutive.store(0, Ordering::Relaxed);
        Some(for_)
    }

    pub fn view(&self) -> HealthView {
        let now = Instant::now();
        let s = *self.lock();
        HealthView {
            healthy: s.until.is_none_or(|u| u <= now),
            consecutive_failures: self.consecutive.load(Ordering::Relaxed),
            ejections: self.total_ejections.load(Ordering::Relaxed),
            ejected_for_ms: s
                .until
                .filter(|u| *u > now)
                .map(|u| (u - now).as_millis() as u64),
        }
    }
}

/// Health state by upstream name and URL, kept across reloads.
#[derive(Default)]
pub struct HealthRegistry {
    by_upstream: Mutex<HashMap<(String, String), Arc<UpstreamHealth>>>,
}

impl HealthRegistry {
    pub fn get(&self, name: &str, url: &str) -> Arc<UpstreamHealth> {
        let mut map = self.by_upstream.lock().unwrap_or_else(|p| p.into_inner());
        map.entry((name.to_string(), url.to_string()))
            .or_default()
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn policy() -> OutlierPolicy {
        OutlierPolicy {
            consecutive_failures: 3,
            base_ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(25),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ejection_grows_and_ends() {
        let h = UpstreamHealth::default();
        assert!(h.failure(&policy()).is_none());
        assert!(h.failure(&policy()).is_none());
        assert_eq!(h.failure(&policy()), Some(Duration::from_secs(10)));
        assert!(!h.available(Instant::now()));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(h.available(Instant::now()));
        // Failing again right away: ejected for twice as long, then capped.
        for _ in 0..2 {
            assert!(h.failure(&policy()).is_none());
        }
        assert_eq!(h.failure(&policy()), Some(Duration::from_secs(20)));
        tokio::time::advance(Duration::from_secs(20)).await;
        for _ in 0..2 {
            h.failure(&policy());
        }
        assert_eq!(h.failure(&policy()), Some(Duration::from_secs(25)));
        assert_eq!(h.view().ejections, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn success_resets_the_streak_and_restore_ends_an_ejection() {
        let h = UpstreamHealth::default();
        h.failure(&policy());
        h.failure(&policy());
        h.success();
        assert!(h.failure(&policy()).is_none(), "the streak restarted");
        h.failure(&policy());
        assert!(h.failure(&policy()).is_some());
        h.restore();
        assert!(h.available(Instant::now()));
        assert!(h.view().healthy);
    }

    #[tokio::test(start_paused = true)]
    async fn good_answers_after_an_ejection_lower_the_next_ejection() {
        let h = UpstreamHealth::default();
        let eject = |h: &UpstreamHealth| (0..3).find_map(|_| h.failure(&policy()));
        assert_eq!(eject(&h), Some(Duration::from_secs(10)));
        // Brought back by a health check, then proven by traffic: the count decays.
        h.restore();
        h.success();
        assert_eq!(eject(&h), Some(Duration::from_secs(10)));
        // Brought back and failing again at once: the ejection grows.
        h.restore();
        assert_eq!(eject(&h), Some(Duration::from_secs(20)));
        // An ejection that ran out, then a good answer: the count decays too.
        tokio::time::advance(Duration::from_secs(20)).await;
        h.success();
        assert_eq!(eject(&h), Some(Duration::from_secs(20)));
        assert_eq!(h.view().ejections, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_during_an_ejection_do_not_extend_it() {
        let h = UpstreamHealth::default();
        let eject = |h: &UpstreamHealth| (0..3).find_map(|_| h.failure(&policy()));
        assert_eq!(h.ejected_at(), None);
        let t0 = Instant::now();
        assert_eq!(eject(&h), Some(Duration::from_secs(10)));
        assert_eq!(h.ejected_at(), Some(t0));
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(eject(&h), None, "ejected again while ejected");
        assert_eq!(h.ejected_at(), Some(t0));
        assert_eq!(h.view().ejections, 1);
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(h.available(Instant::now()), "the ejection was extended");
    }

    #[tokio::test(start_paused = true)]
    async fn the_status_view_follows_an_ejection_to_its_end() {
        let h = UpstreamHealth::default();
        let v = h.view();
        assert!(v.healthy);
        assert_eq!(
            (v.consecutive_failures, v.ejections, v.ejected_for_ms),
            (0, 0, None)
        );
        h.failure(&policy());
        h.failure(&policy());
        assert_eq!(h.view().consecutive_failures, 2);
        h.failure(&policy());
        let v = h.view();
        assert!(!v.healthy);
        assert_eq!((v.consecutive_failures, v.ejections), (0, 1));
        assert_eq!(v.ejected_for_ms, Some(10_000));
        tokio::time::advance(Duration::from_millis(2_500)).await;
        assert_eq!(h.view().ejected_for_ms, Some(7_500));
        // At the ejection's end it is healthy again, with nothing left to wait.
        tokio::time::advance(Duration::from_millis(7_500)).await;
        let v = h.view();
        assert!(v.healthy);
        assert_eq!(v.ejected_for_ms, None);
        assert!(h.available(Instant::now()));
    }

    #[test]
    fn the_registry_keeps_one_state_per_name_and_url() {
        let r = HealthRegistry::default();
        let a = r.get("primary", "http://a");
        a.failure(&policy());
        assert!(Arc::ptr_eq(&a, &r.get("primary", "http://a")));
        assert_eq!(r.get("primary", "http://a").view().consecutive_failures, 1);
        // Another URL under the same name (a reload moved it) starts afresh.
        let moved = r.get("primary", "http://b");
        assert!(!Arc::ptr_eq(&a, &moved));
        assert_eq!(moved.view().consecutive_failures, 0);
        assert!(!Arc::ptr_eq(&a, &r.get("standby", "http://a")));
    }
}
