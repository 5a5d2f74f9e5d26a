//! The one retry decision. After any failed attempt — a host that did not resolve, a refused
//! connection, a timeout, a 5xx, a broken body, errcode -1 or 45033 — `next_step` decides
//! whether the call goes again, to which upstream and after what wait, or stops there.
//!
//! It owns, for every kind of failure alike: the failure held against the upstream's health
//! (and the log line and gauge when that ejects it), the route's `retry.attempts`, which
//! failures may be repeated (`retry::may_retry`: after bytes may have reached WeCom, only
//! calls safe to send twice), WeCom's cap on errcode -1 retries, the call's deadline, the
//! process-wide retry budget and the retry metrics. `classify` says what an answer was;
//! this says what follows (the shape of linkerd2-proxy's retry policy: classify first, one
//! policy decides).
//!
//! The token's one replacement after a token error is not a retry of this policy (a fresh
//! token is the cure, not another try); it is counted with `count_retry` all the same.

use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use super::classify::Failure;
use crate::config::{OutlierPolicy, RetryPolicy};
use crate::metrics::Metrics;
use crate::retry::{self, RetryBudget, RetryReason};
use crate::upstream::health::UpstreamHealth;

/// What the decision reads, the same for every attempt of a call.
pub(super) struct Policy<'a> {
    pub retry: &'a RetryPolicy,
    pub outlier: &'a OutlierPolicy,
    pub budget: &'a RetryBudget,
    pub metrics: &'a Metrics,
    /// The call's `api` label.
    pub label: &'a str,
    /// Safe to send twice (API table, route, or WeCom's duplicate check on the body).
    pub idempotent: bool,
    /// No retry starts that would end past it.
    pub deadline_at: Instant,
}

/// The retries a call has made so far.
#[derive(Debug, Default)]
pub(super) struct Tally {
    retries: u32,
    /// Of them, after errcode -1 (capped by `retry::MAX_SYSTEM_BUSY_RETRIES`).
    busy: u32,
}

/// The attempt that failed: why, and at which upstream.
pub(super) struct Failed<'a> {
    pub failure: &'a Failure,
    /// The upstream's index in the runtime.
    pub member: usize,
    pub upstream: &'a str,
    pub health: &'a UpstreamHealth,
}

/// What follows a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Wait `wait`, then send the call to `member`.
    Again { wait: Duration, member: usize },
    /// The call ends on this failure.
    Stop(Stop),
}

/// Why the call is not repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// The attempt timed out at the call's deadline: the call gets the deadline's answer.
    Deadline,
    /// Attempts spent, not safe to send twice, the errcode -1 cap reached, or no other
    /// upstream for a failure only another can cure: the failure's own answer.
    Final,
    /// The backoff would end past the deadline.
    NoTimeLeft,
    /// The retry budget is spent.
    BudgetSpent,
}

impl Stop {
    /// What the access log's `detail` adds after the failure's own words.
    pub fn note(self) -> Option<&'static str> {
        match self {
            Stop::Deadline | Stop::Final => None,
            Stop::NoTimeLeft => Some("no time left to retry"),
            Stop::BudgetSpent => Some("retry budget spent"),
        }
    }
}

/// Decides what follows `failed`. `choose(avoid)` picks the upstream for a retry (preferring
/// one other than `avoid`); it is asked only when a retry is allowed so far, and before the
/// budget is drawn on, so no budget is spent on a retry with nowhere to go.
pub(super) fn next_step(
    p: &Policy<'_>,
    tally: &mut Tally,
    failed: Failed<'_>,
    choose: impl FnOnce(usize) -> Option<usize>,
    rng: &mut impl Rng,
) -> Step {
    let reason = failed.failure.reason();
    hold_against(p, &failed, reason);
    let now = Instant::now();
    if reason == RetryReason::Timeout && now >= p.deadline_at {
        return Step::Stop(Stop::Deadline);
    }
    let busy_spent =
        reason == RetryReason::SystemBusy && tally.busy >= retry::MAX_SYSTEM_BUSY_RETRIES;
    if tally.retries + 1 >= p.retry.attempts
        || !retry::may_retry(reason, p.idempotent)
        || busy_spent
    {
        return Step::Stop(Stop::Final);
    }
    let only_elsewhere = failed.failure.only_elsewhere();
    // Nothing reached any server when a name did not resolve: the next upstream is tried at
    // once. Otherwise the backoff keeps retries from piling onto a struggling WeCom.
    let wait = if only_elsewhere {
        Duration::ZERO
    } else {
        retry::backoff(p.retry, tally.retries + 1, rng)
    };
    if now + wait >= p.deadline_at {
        return Step::Stop(Stop::NoTimeLeft);
    }
    let member = choose(failed.member).unwrap_or(failed.member);
    if only_elsewhere && member == failed.member {
        return Step::Stop(Stop::Final);
    }
    if !p.budget.try_withdraw() {
        p.metrics
            .retry_budget_exhausted
            .with_label_values(&[p.label])
            .inc();
        return Step::Stop(Stop::BudgetSpent);
    }
    tally.retries += 1;
    if reason == RetryReason::SystemBusy {
        tally.busy += 1;
    }
    count_retry(p.metrics, p.label, reason.as_str());
    Step::Again { wait, member }
}

/// Counts a repeated call in `wecom_retries_total` (`reason`: a `RetryReason`'s label, or
/// `token` for the token's replacement).
pub(super) fn count_retry(metrics: &Metrics, label: &str, reason: &str) {
    metrics.retries.with_label_values(&[label, reason]).inc();
}

/// Holds the failure against the upstream's health (45033 is WeCom's limit on the app, not
/// the upstream's fault); an upstream this ejects is logged and its gauge turns 0 at once.
fn hold_against(p: &Policy<'_>, failed: &Failed<'_>, reason: RetryReason) {
    if reason == RetryReason::Concurrency {
        return;
    }
    if let Some(for_) = failed.health.failure(p.outlier) {
        p.metrics
            .upstream_healthy
            .with_label_values(&[failed.upstream])
            .set(0);
        tracing::warn!(
            upstream = %failed.upstream,
            ejected_s = for_.as_secs(),
            "upstream ejected after consecutive failures"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::exchange::AttemptError;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    struct Fixture {
        retry: RetryPolicy,
        outlier: OutlierPolicy,
        budget: RetryBudget,
        metrics: Metrics,
        health: UpstreamHealth,
        rng: StdRng,
    }

    impl Fixture {
        fn new(attempts: u32) -> Fixture {
            Fixture {
                retry: RetryPolicy {
                    attempts,
                    backoff_base: Duration::ZERO,
                    backoff_max: Duration::ZERO,
                },
                outlier: OutlierPolicy {
                    consecutive_failures: 100,
                    base_ejection: Duration::from_secs(10),
                    max_ejection: Duration::from_secs(60),
                },
                budget: RetryBudget::default(),
                metrics: Metrics::new(),
                health: UpstreamHealth::default(),
                rng: StdRng::seed_from_u64(7),
            }
        }

        fn policy(&self, idempotent: bool, deadline_at: Instant) -> Policy<'_> {
            Policy {
                retry: &self.retry,
                outlier: &self.outlier,
                budget: &self.budget,
                metrics: &self.metrics,
                label: "user/get",
                idempotent,
                deadline_at,
            }
        }

        /// One decision after `failure` at upstream 0, whose alternative is upstream 1.
        fn step(&mut self, tally: &mut Tally, failure: &Failure, idempotent: bool) -> Step {
            let deadline = Instant::now() + Duration::from_secs(10);
            self.step_by(tally, failure, idempotent, deadline, Some(1))
        }

        fn step_by(
            &mut self,
            tally: &mut Tally,
            failure: &Failure,
            idempotent: bool,
            deadline_at: Instant,
            elsewhere: Option<usize>,
        ) -> Step {
            let mut rng = self.rng.clone();
            let step = next_step(
                &self.policy(idempotent, deadline_at),
                tally,
                Failed {
                    failure,
                    member: 0,
                    upstream: "primary",
                    health: &self.health,
                },
                |avoid| {
                    assert_eq!(avoid, 0, "a retry avoids the upstream that failed");
                    elsewhere
                },
                &mut rng,
            );
            self.rng = rng;
            step
        }

        fn retries(&self, reason: RetryReason) -> u64 {
            self.metrics
                .retries
                .with_label_values(&["user/get", reason.as_str()])
                .get()
        }
    }

    const AGAIN: Step = Step::Again {
        wait: Duration::ZERO,
        member: 1,
    };

    fn busy() -> Failure {
        Failure::Refused {
            errcode: -1,
            reason: RetryReason::SystemBusy,
        }
    }

    /// One of each failure, and whether bytes may have reached WeCom.
    fn every_failure() -> Vec<(Failure, bool)> {
        vec![
            (
                Failure::Unresolved("cannot resolve x.invalid".into()),
                false,
            ),
            (
                Failure::Attempt(AttemptError::Connect("ConnectRefused")),
                false,
            ),
            (Failure::Attempt(AttemptError::Timeout), true),
            (
                Failure::Attempt(AttemptError::Reset("ConnectionClosed")),
                true,
            ),
            (Failure::Attempt(AttemptError::BadResponse("H1Error")), true),
            (Failure::Attempt(AttemptError::TooLarge), true),
            (Failure::Status(503), true),
            (Failure::OddStatus(204), true),
            (Failure::NotJson, true),
            (busy(), true),
            (
                Failure::Refused {
                    errcode: 45033,
                    reason: RetryReason::Concurrency,
                },
                true,
            ),
        ]
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_bound_the_retries() {
        let mut f = Fixture::new(3);
        let mut tally = Tally::default();
        let timeout = Failure::Attempt(AttemptError::Timeout);
        assert_eq!(f.step(&mut tally, &timeout, true), AGAIN);
        assert_eq!(f.step(&mut tally, &timeout, true), AGAIN);
        assert_eq!(
            f.step(&mut tally, &timeout, true),
            Step::Stop(Stop::Final),
            "three attempts in all"
        );
        assert_eq!(f.retries(RetryReason::Timeout), 2);
        let mut once = Fixture::new(1);
        assert_eq!(
            once.step(&mut Tally::default(), &Failure::Status(502), true),
            Step::Stop(Stop::Final),
            "attempts: 1 is no retry"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn writes_are_never_sent_again_once_bytes_may_have_reached_wecom() {
        for (failure, maybe_sent) in every_failure() {
            let mut f = Fixture::new(5);
            let step = f.step(&mut Tally::default(), &failure, false);
            if maybe_sent {
                assert_eq!(
                    step,
                    Step::Stop(Stop::Final),
                    "{failure:?} repeated a write"
                );
                assert_eq!(f.retries(failure.reason()), 0);
            } else {
                assert_eq!(step, AGAIN, "{failure:?}: nothing was sent");
            }
            let mut f = Fixture::new(5);
            assert_eq!(
                f.step(&mut Tally::default(), &failure, true),
                AGAIN,
                "{failure:?} on a call safe to send twice"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn system_busy_is_retried_three_times_at_most() {
        let mut f = Fixture::new(10);
        let mut tally = Tally::default();
        for _ in 0..retry::MAX_SYSTEM_BUSY_RETRIES {
            assert_eq!(f.step(&mut tally, &busy(), true), AGAIN);
        }
        assert_eq!(f.step(&mut tally, &busy(), true), Step::Stop(Stop::Final));
        assert_eq!(f.retries(RetryReason::SystemBusy), 3);
        // The cap is on -1 alone: the route's attempts still allow other retries.
        assert_eq!(f.step(&mut tally, &Failure::Status(503), true), AGAIN);
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_budget_stops_every_kind_of_retry() {
        for (failure, _) in every_failure() {
            let mut f = Fixture::new(5);
            while f.budget.try_withdraw() {}
            assert_eq!(
                f.step(&mut Tally::default(), &failure, true),
                Step::Stop(Stop::BudgetSpent),
                "{failure:?}"
            );
            let exhausted = f
                .metrics
                .retry_budget_exhausted
                .with_label_values(&["user/get"])
                .get();
            assert_eq!(exhausted, 1, "{failure:?}");
            assert_eq!(f.retries(failure.reason()), 0);
        }
        assert_eq!(Stop::BudgetSpent.note(), Some("retry budget spent"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_ends_retries() {
        let mut f = Fixture::new(5);
        let passed = Instant::now();
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(
            f.step_by(
                &mut Tally::default(),
                &Failure::Attempt(AttemptError::Timeout),
                true,
                passed,
                Some(1)
            ),
            Step::Stop(Stop::Deadline),
            "an attempt the deadline cut gives the deadline's answer"
        );
        for failure in [
            Failure::Unresolved("cannot resolve x.invalid".into()),
            Failure::Status(503),
        ] {
            assert_eq!(
                f.step_by(&mut Tally::default(), &failure, true, passed, Some(1)),
                Step::Stop(Stop::NoTimeLeft),
                "{failure:?}"
            );
        }
        // A backoff that would end past the deadline is not started.
        f.retry.backoff_base = Duration::from_secs(30);
        f.retry.backoff_max = Duration::from_secs(30);
        let soon = Instant::now() + Duration::from_nanos(1);
        let steps: Vec<Step> = (0..20)
            .map(|_| {
                f.step_by(
                    &mut Tally::default(),
                    &Failure::Status(503),
                    true,
                    soon,
                    Some(1),
                )
            })
            .collect();
        assert!(
            steps.iter().all(|s| *s == Step::Stop(Stop::NoTimeLeft)),
            "{steps:?}"
        );
        assert_eq!(f.retries(RetryReason::Http5xx), 0);
        assert_eq!(Stop::NoTimeLeft.note(), Some("no time left to retry"));
    }

    #[tokio::test(start_paused = true)]
    async fn an_unresolved_host_is_retried_only_elsewhere_and_at_once() {
        let mut f = Fixture::new(5);
        f.retry.backoff_base = Duration::from_secs(1);
        f.retry.backoff_max = Duration::from_secs(1);
        let unresolved = Failure::Unresolved("cannot resolve x.invalid".into());
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut tally = Tally::default();
        assert_eq!(
            f.step_by(&mut tally, &unresolved, false, deadline, Some(1)),
            AGAIN,
            "no backoff: nothing reached any server"
        );
        // Nowhere else to go ends the call before the budget is asked (spent or not).
        while f.budget.try_withdraw() {}
        for nowhere in [None, Some(0)] {
            assert_eq!(
                f.step_by(&mut tally, &unresolved, false, deadline, nowhere),
                Step::Stop(Stop::Final),
                "the same upstream would not resolve either"
            );
        }
        let exhausted = f
            .metrics
            .retry_budget_exhausted
            .with_label_values(&["user/get"]);
        assert_eq!(exhausted.get(), 0);
        assert_eq!(f.retries(RetryReason::Connect), 1);
        f.budget = RetryBudget::default();
        // Other failures may go to the same upstream when it is the only one.
        match f.step_by(&mut tally, &Failure::Status(503), true, deadline, None) {
            Step::Again { member: 0, wait } => assert!(wait < Duration::from_secs(1)),
            other => panic!("{other:?}"),
        }
        assert_eq!(f.retries(RetryReason::Connect), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_count_against_health_and_an_ejection_turns_the_gauge_to_zero() {
        for (failure, _) in every_failure() {
            let mut f = Fixture::new(1);
            f.outlier.consecutive_failures = 2;
            let gauge = f.metrics.upstream_healthy.with_label_values(&["primary"]);
            gauge.set(1);
            let mut tally = Tally::default();
            f.step(&mut tally, &failure, false);
            let concurrency = failure.reason() == RetryReason::Concurrency;
            assert_eq!(
                f.health.view().consecutive_failures,
                u32::from(!concurrency),
                "{failure:?}"
            );
            f.step(&mut tally, &failure, false);
            if concurrency {
                assert!(
                    f.health.available(Instant::now()),
                    "45033 is not the upstream's fault"
                );
                assert_eq!(gauge.get(), 1);
            } else {
                assert!(
                    !f.health.available(Instant::now()),
                    "{failure:?} never ejected"
                );
                assert_eq!(gauge.get(), 0, "{failure:?}: ejected, gauge still 1");
            }
        }
    }
}
