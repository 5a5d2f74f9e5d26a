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

    #[tokio::test(start_paused = true)]
    async fn calls_and_retries_leave_the_window_by_the_second() {
        let b = RetryBudget::default();
        let after = |ms: u64| tokio::time::advance(Duration::from_millis(ms));
        for _ in 0..500 {
            b.record_call();
        }
        after(5_000).await;
        for _ in 0..500 {
            b.record_call();
        }
        after(200).await;
        // 1000 calls in seconds 0 and 5: 200 + 100; take 250 of them in second 5.
        assert_eq!((0..250).filter(|_| b.try_withdraw()).count(), 250);
        after(4_700).await; // 9.9 s: second 0 is still in
        assert_eq!((0..1000).filter(|_| b.try_withdraw()).count(), 50);
        after(200).await; // 10.1 s: second 0 left, with its 500 calls; second 5 holds
                          // 500 calls and 300 retries: 100 + 100 - 300, nothing.
        assert!(!b.try_withdraw());
        after(5_000).await; // 15.1 s: second 5 left too, the 50 retries of second 9 stay
        assert_eq!((0..1000).filter(|_| b.try_withdraw()).count(), 50);
        after(30_000).await; // long idle: every slot is cleared, once
        assert_eq!((0..1000).filter(|_| b.try_withdraw()).count(), 100);
    }

    #[tokio::test(start_paused = true)]
    async fn each_second_counts_in_its_own_slot() {
        // One call a second for 9 s, all in the window; the ring must not fold seconds
        // onto one another.
        let b = RetryBudget::default();
        for _ in 0..9 {
            for _ in 0..50 {
                b.record_call();
            }
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        // 450 calls: 90 + 100 retries.
        assert_eq!((0..1000).filter(|_| b.try_withdraw()).count(), 190);
        tokio::time::advance(Duration::from_secs(1)).await;
        // Second 0 (50 calls, no retries) left; the 190 retries of second 9 stay.
        assert!(!b.try_withdraw());
        tokio::time::advance(Duration::from_secs(9)).await;
        // Second 9 (its retries) left at 19 s; no call is left in the window either.
        assert_eq!((0..1000).filter(|_| b.try_withdraw()).count(), 100);
    }

    #[test]
    fn reasons_have_their_labels_and_attempt_errors_their_reasons() {
        use crate::upstream::exchange::AttemptError;
        let labels: Vec<&str> = [
            RetryReason::Connect,
            RetryReason::Timeout,
            RetryReason::Reset,
            RetryReason::BadResponse,
            RetryReason::Http5xx,
            RetryReason::SystemBusy,
            RetryReason::Concurrency,
        ]
        .iter()
        .map(|r| r.as_str())
        .collect();
        let mut distinct = labels.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), labels.len(), "{labels:?}");
        assert_eq!(RetryReason::SystemBusy.as_str(), "errcode_-1");
        assert_eq!(
            RetryReason::from(&AttemptError::Timeout),
            RetryReason::Timeout
        );
        assert_eq!(
            RetryReason::from(&AttemptError::TooLarge),
            RetryReason::BadResponse
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// What happens, and how many milliseconds after the event before it.
        #[derive(Debug, Clone)]
        enum Event {
            Call(u64),
            Retry(u64),
        }

        fn events() -> impl Strategy<Value = Vec<Event>> {
            let gap =
                prop_oneof![4 => Just(0u64), 2 => 0u64..50, 1 => 0u64..3_000, 1 => 0u64..15_000];
            prop::collection::vec(
                prop_oneof![
                    gap.clone().prop_map(Event::Call),
                    gap.prop_map(Event::Retry)
                ],
                1..300,
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// A retry is granted exactly when the retries of the last ten one-second slots
            /// (this one included) are fewer than 20 % of the calls of those slots plus
            /// 10 a second; so granted retries never exceed that.
            #[test]
            fn retries_stay_within_a_fifth_of_the_calls_plus_ten_a_second(events in events()) {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .start_paused(true)
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let b = RetryBudget::default();
                    let start = Instant::now();
                    // (second, is a retry), as an independent record of what was counted.
                    let mut log: Vec<(u64, bool)> = Vec::new();
                    for e in events {
                        let (gap, retry) = match e {
                            Event::Call(g) => (g, false),
                            Event::Retry(g) => (g, true),
                        };
                        tokio::time::advance(Duration::from_millis(gap)).await;
                        let second = (Instant::now() - start).as_secs();
                        if !retry {
                            b.record_call();
                            log.push((second, false));
                            continue;
                        }
                        let recent = |log: &[(u64, bool)], r: bool| {
                            log.iter()
                                .filter(|&&(s, is_retry)| is_retry == r && s + 10 > second)
                                .count() as u64
                        };
                        let allowed = recent(&log, false) / 5 + 100;
                        let granted = b.try_withdraw();
                        prop_assert_eq!(granted, recent(&log, true) < allowed, "at {}s", second);
                        if granted {
                            log.push((second, true));
                            prop_assert!(recent(&log, true) <= allowed);
                        }
                    }
                    Ok::<(), TestCaseError>(())
                })?;
            }
        }
    }
}
