//! Retries that are safe: what may be repeated, how long to wait, and a budget that keeps an
//! outage from being multiplied by retries.
//!
//! - Connect failures (nothing was sent): always.
//! - Timeouts, resets, broken answers, HTTP 5xx, errcode -1 (system busy) and 45033
//!   (concurrency limit): only calls that are safe to send twice (the API table, a route's
//!   `idempotent`, or a message body that asks WeCom to drop duplicates).
//! - Token errors: refresh and repeat once, outside this policy (`proxy::forward::token`).
//! - Never: 45009, 48002, 60020, 301002 and every other errcode.
//!
//! Backoff is Envoy's full jitter: retry N waits uniform in [0, min(max, base·2^N)).
//! The budget is linkerd2-proxy's: retries may add at most 20 % to the calls of the last 10 s,
//! plus 10 a second, across all routes.
//!
//! These are the rules; `proxy::forward::next_step` is the one place that applies them to a
//! failed attempt.

use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use crate::config::RetryPolicy;
use crate::upstream::exchange::AttemptError;
use crate::wecom::errcode;

/// Why an attempt might be repeated; also the `reason` label of `wecom_retries_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryReason {
    Connect,
    Timeout,
    Reset,
    BadResponse,
    Http5xx,
    SystemBusy,
    Concurrency,
}

impl RetryReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RetryReason::Connect => "connect_error",
            RetryReason::Timeout => "timeout",
            RetryReason::Reset => "reset",
            RetryReason::BadResponse => "bad_response",
            RetryReason::Http5xx => "http_5xx",
            RetryReason::SystemBusy => "errcode_-1",
            RetryReason::Concurrency => "errcode_45033",
        }
    }

    /// Safe whatever the call is: nothing reached the upstream.
    pub fn nothing_sent(self) -> bool {
        self == RetryReason::Connect
    }
}

impl From<&AttemptError> for RetryReason {
    fn from(e: &AttemptError) -> Self {
        match e {
            AttemptError::Connect(_) => RetryReason::Connect,
            AttemptError::Timeout => RetryReason::Timeout,
            AttemptError::Reset(_) => RetryReason::Reset,
            AttemptError::BadResponse(_) | AttemptError::TooLarge => RetryReason::BadResponse,
        }
    }
}

/// The retry reason of an answered errcode, if it has one.
pub fn errcode_reason(code: i64) -> Option<RetryReason> {
    match code {
        errcode::SYSTEM_BUSY => Some(RetryReason::SystemBusy),
        errcode::CONCURRENCY_LIMIT => Some(RetryReason::Concurrency),
        _ => None,
    }
}

/// WeCom's rule for errcode -1 (system busy): retried at most this many times, whatever the
/// route's `retry.attempts` allows.
pub const MAX_SYSTEM_BUSY_RETRIES: u32 = 3;

/// Whether a failed attempt may be repeated for a call that is (or is not) safe to send twice.
pub fn may_retry(reason: RetryReason, idempotent: bool) -> bool {
    reason.nothing_sent() || idempotent
}

/// Full-jitter backoff before retry number `retry` (1 for the first retry).
pub fn backoff(policy: &RetryPolicy, retry: u32, rng: &mut impl Rng) -> Duration {
    let exp = retry.min(20);
    let cap = policy
        .backoff_base
        .saturating_mul(1u32 << exp)
        .min(policy.backoff_max);
    if cap.is_zero() {
        return Duration::ZERO;
    }
    Duration::from_nanos(rng.random_range(0..cap.as_nanos() as u64))
}

/// The wait of a durable queue's worker (callback delivery, outbox replay) after `attempts`
/// failed attempts at its head: `base` doubling per attempt, at most `max`, of which the
/// upper half is jittered by `jitter` (0..1), so a queue never waits less than half a step.
pub fn queue_backoff(base: Duration, max: Duration, attempts: u32, jitter: f64) -> Duration {
    let doublings = attempts.saturating_sub(1).min(31);
    let full = base.checked_mul(1u32 << doublings).unwrap_or(max).min(max);
    let half = full / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

/// Share of recent calls that retries may add.
pub const BUDGET_RATIO: f64 = 0.2;
/// Retries always allowed per second, however few calls there were.
pub const BUDGET_MIN_PER_SEC: u32 = 10;
/// The window calls and retries are counted over.
pub const BUDGET_WINDOW: Duration = Duration::from_secs(10);
const SLOTS: usize = 10;

/// A retry budget over a sliding window of one-second slots.
pub struct RetryBudget {
    inner: Mutex<BudgetWindow>,
}

struct BudgetWindow {
    origin: Instant,
    head: u64,
    calls: [u32; SLOTS],
    retries: [u32; SLOTS],
}

impl BudgetWindow {
    fn advance(&mut self, now: Instant) {
        let slot = (now.saturating_duration_since(self.origin).as_millis()
            / (BUDGET_WINDOW.as_millis() / SLOTS as u128)) as u64;
        if slot <= self.head {
            return;
        }
        for i in 1..=(slot - self.head).min(SLOTS as u64) {
            let idx = ((self.head + i) % SLOTS as u64) as usize;
            self.calls[idx] = 0;
            self.retries[idx] = 0;
        }
        self.head = slot;
    }

    fn idx(&self) -> usize {
        (self.head % SLOTS as u64) as usize
    }
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget {
            inner: Mutex::new(BudgetWindow {
                origin: Instant::now(),
                head: 0,
                calls: [0; SLOTS],
                retries: [0; SLOTS],
            }),
        }
    }
}

impl RetryBudget {
    /// Counts a call (a deposit).
    pub fn record_call(&self) {
        let mut w = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        w.advance(Instant::now());
        let i = w.idx();
        w.calls[i] = w.calls[i].saturating_add(1);
    }

    /// Takes one retry from the budget, or says there is none left.
    pub fn try_withdraw(&self) -> bool {
        let mut w = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        w.advance(Instant::now());
        let calls: u64 = w.calls.iter().map(|&c| u64::from(c)).sum();
        let retries: u64 = w.retries.iter().map(|&c| u64::from(c)).sum();
        let allowed = (calls as f64 * BUDGET_RATIO) as u64
            + u64::from(BUDGET_MIN_PER_SEC) * BUDGET_WINDOW.as_secs();
        if retries >= allowed {
            return false;
        }
        let i = w.idx();
        w.retries[i] = w.retries[i].saturating_add(1);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            attempts: 4,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
        }
    }

    #[test]
    fn backoff_is_fully_jittered_and_capped() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for retry in 1..=8u32 {
            let cap = (Duration::from_millis(100) * 2u32.pow(retry)).min(Duration::from_secs(2));
            let mut max_seen = Duration::ZERO;
            for _ in 0..2000 {
                let d = backoff(&policy(), retry, &mut rng);
                assert!(d < cap, "retry {retry}: {d:?} ≥ {cap:?}");
                max_seen = max_seen.max(d);
            }
            // Uniform over [0, cap): 2000 draws come close to the cap.
            assert!(max_seen > cap * 9 / 10, "retry {retry}: never near the cap");
        }
        let zero = RetryPolicy {
            backoff_base: Duration::ZERO,
            ..policy()
        };
        assert_eq!(backoff(&zero, 3, &mut rng), Duration::ZERO);
    }

    #[test]
    fn what_is_retried() {
        use RetryReason::*;
        for r in [
            Timeout,
            Reset,
            BadResponse,
            Http5xx,
            SystemBusy,
            Concurrency,
        ] {
            assert!(may_retry(r, true));
            assert!(!may_retry(r, false), "{r:?} must not repeat a write");
        }
        assert!(may_retry(Connect, false), "nothing was sent");
        assert_eq!(errcode_reason(-1), Some(SystemBusy));
        assert_eq!(errcode_reason(45033), Some(Concurrency));
        for never in [45009, 48002, 60020, 301002, 40003, 0] {
            assert_eq!(errcode_reason(never), None);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn budget_is_twenty_percent_plus_ten_a_second() {
        let b = RetryBudget::default();
        for _ in 0..1000 {
            b.record_call();
        }
        // 1000 calls in the window: 200 + 10/s × 10 s = 300 retries.
        let granted = (0..1000).filter(|_| b.try_withdraw()).count();
        assert_eq!(granted, 300);
        // The window slides: after 10 s the old calls and retries are gone.
        tokio::time::advance(Duration::from_secs(11)).await;
        let granted = (0..1000).filter(|_| b.try_withdraw()).count();
        assert_eq!(granted, 100, "only the floor of 10/s over the window");
    }
}
