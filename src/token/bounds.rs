//! When an app may call gettoken (SPEC "Bounds", bullets 1 and 2): the decision, from the app's
//! fetch history, that keeps gettoken bounded whatever WeCom or an upstream answers.
//!
//! - After a successful fetch the next waits `token.min_fetch_interval`, whatever it is for:
//!   a refresh that got the same token back (WeCom answers the still-valid token with its
//!   remaining `expires_in`), or one already inside `refresh_before_expiry` (`expires_in: 0`),
//!   is kept and not repeated sooner.
//! - Except: a call's token was rejected, the rejected token is the one cached now, and no fetch
//!   happened in the last `token.min_refetch`: then it is replaced at once.
//! - Not when the rejected token is itself the replacement of a rejected one: a fresh token did
//!   not cure the error (a standby that rejects primary's tokens, tokens good for one call), so
//!   the error is passed to the app and nothing is fetched before `min_fetch_interval`.
//! - Failed fetches back off from 1 s, doubling, up to `min_fetch_interval`.
//! - `token.max_fetches` caps what all this allows (`cap`); past it the app is held until the
//!   cap's window has room.
//!
//! The decision is a pure function of the history and the clock ([`decide`]); the store
//! (`TokenStore::fetch`) calls it under the app's fetch lock and records each outcome.

use std::fmt;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::config::TokenSettings;

/// First wait after a failed fetch; it doubles per failure up to `min_fetch_interval`.
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);

/// Why no gettoken is made now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// A fetch succeeded less than `min_fetch_interval` ago.
    Interval,
    /// The cached token was rejected, but a fetch happened less than `min_refetch` ago.
    Refetch,
    /// The rejected token replaced a rejected one: a fresh token does not cure the error.
    Uncured,
    /// Fetches failed; backing off.
    Backoff,
    /// `max_fetches` reached.
    Capped,
}

impl Hold {
    /// The `reason` label of `wecom_token_held_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Hold::Interval => "interval",
            Hold::Refetch => "refetch",
            Hold::Uncured => "uncured",
            Hold::Backoff => "backoff",
            Hold::Capped => "capped",
        }
    }

    /// For log lines, answers and the status page.
    pub fn describe(self) -> &'static str {
        match self {
            Hold::Interval => "the last gettoken succeeded less than token.min_fetch_interval ago",
            Hold::Refetch => "the token was rejected less than token.min_refetch after the last gettoken",
            Hold::Uncured => "a fresh token was rejected too (a token error a new token does not cure); no gettoken before token.min_fetch_interval",
            Hold::Backoff => "gettoken failed; backing off",
            Hold::Capped => "the app reached token.max_fetches",
        }
    }
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// What a fetch is for, as far as the bounds care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// No usable token is cached (none, or expired).
    Missing,
    /// The background refresh ahead of expiry.
    Refresh,
    /// A call's token was rejected and it is the one cached now; `replacement`: that token was
    /// itself fetched to replace a rejected one.
    Rejected { replacement: bool },
}

/// An app's fetch history: what the decision reads.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// The last successful fetch.
    pub last_ok_at: Option<Instant>,
    /// The last gettoken made (whatever its result).
    pub last_attempt_at: Option<Instant>,
    /// The serial of the cached token when it was fetched to replace a rejected one.
    pub replacement: Option<u64>,
    /// After failures: no fetch before this.
    pub retry_at: Option<Instant>,
    /// `max_fetches` reached: no fetch before this.
    pub capped_until: Option<Instant>,
    /// The hold last logged, so a hold is logged when it starts, not per call.
    pub logged: Option<Hold>,
}

/// `Ok` if a gettoken for `purpose` may be made at `now`; else why not and until when.
pub fn decide(
    h: &History,
    purpose: Purpose,
    now: Instant,
    b: &TokenSettings,
) -> Result<(), (Hold, Instant)> {
    if let Some(until) = h.capped_until.filter(|&u| now < u) {
        return Err((Hold::Capped, until));
    }
    if let Some(until) = h.retry_at.filter(|&u| now < u) {
        return Err((Hold::Backoff, until));
    }
    let Some(ok) = h.last_ok_at else {
        return Ok(());
    };
    let interval_ends = ok + b.min_fetch_interval;
    if now >= interval_ends {
        return Ok(());
    }
    match purpose {
        Purpose::Rejected { replacement: true } => Err((Hold::Uncured, interval_ends)),
        Purpose::Rejected { replacement: false } => {
            let last = h.last_attempt_at.unwrap_or(ok);
            match last + b.min_refetch {
                refetch_ends if now < refetch_ends => Err((Hold::Refetch, refetch_ends)),
                _ => Ok(()),
            }
        }
        Purpose::Missing | Purpose::Refresh => Err((Hold::Interval, interval_ends)),
    }
}

/// Backoff after `failures` consecutive failed fetches: uniform in [d/2, d] where d doubles
/// from [`BACKOFF_BASE`] up to `max` (`min_fetch_interval`).
pub fn backoff(failures: u32, max: Duration, rng: &mut impl Rng) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    let d = BACKOFF_BASE.saturating_mul(1 << exp).min(max);
    let half = d / 2;
    half + Duration::from_nanos(rng.random_range(0..=half.as_nanos() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn bounds() -> TokenSettings {
        TokenSettings {
            refresh_before_expiry: Duration::from_secs(300),
            min_fetch_interval: Duration::from_secs(30),
            min_refetch: Duration::from_secs(2),
            max_fetches: crate::config::Rate {
                count: 60,
                per: Duration::from_secs(3600),
            },
        }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn the_first_fetch_is_always_allowed() {
        let now = Instant::now();
        for p in [
            Purpose::Missing,
            Purpose::Refresh,
            Purpose::Rejected { replacement: false },
        ] {
            assert_eq!(decide(&History::default(), p, now, &bounds()), Ok(()));
        }
    }

    #[test]
    fn a_success_holds_every_fetch_for_the_interval_but_a_first_rejection() {
        let t0 = Instant::now();
        let h = History {
            last_ok_at: Some(t0),
            last_attempt_at: Some(t0),
            ..History::default()
        };
        let b = bounds();
        let at = |s| t0 + secs(s);
        assert_eq!(
            decide(&h, Purpose::Refresh, at(10), &b),
            Err((Hold::Interval, at(30)))
        );
        assert_eq!(
            decide(&h, Purpose::Missing, at(29), &b),
            Err((Hold::Interval, at(30)))
        );
        assert_eq!(decide(&h, Purpose::Refresh, at(30), &b), Ok(()));
        let rejected = Purpose::Rejected { replacement: false };
        assert_eq!(decide(&h, rejected, at(1), &b), Err((Hold::Refetch, at(2))));
        assert_eq!(decide(&h, rejected, at(2), &b), Ok(()));
        // The replacement rejected too: nothing until the interval is over.
        let uncured = Purpose::Rejected { replacement: true };
        assert_eq!(decide(&h, uncured, at(5), &b), Err((Hold::Uncured, at(30))));
        assert_eq!(decide(&h, uncured, at(30), &b), Ok(()));
    }

    #[test]
    fn a_cap_and_a_backoff_hold_everything() {
        let t0 = Instant::now();
        let b = bounds();
        let capped = History {
            capped_until: Some(t0 + secs(100)),
            ..History::default()
        };
        let rejected = Purpose::Rejected { replacement: false };
        assert_eq!(
            decide(&capped, rejected, t0, &b),
            Err((Hold::Capped, t0 + secs(100)))
        );
        assert_eq!(decide(&capped, rejected, t0 + secs(100), &b), Ok(()));
        let failing = History {
            retry_at: Some(t0 + secs(4)),
            ..History::default()
        };
        assert_eq!(
            decide(&failing, Purpose::Missing, t0, &b),
            Err((Hold::Backoff, t0 + secs(4)))
        );
    }

    #[test]
    fn backoff_doubles_from_a_second_up_to_the_interval() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let max = secs(30);
        for _ in 0..100 {
            let d1 = backoff(1, max, &mut rng);
            assert!(d1 >= Duration::from_millis(500) && d1 <= secs(1));
            let d3 = backoff(3, max, &mut rng);
            assert!(d3 >= secs(2) && d3 <= secs(4));
            let d20 = backoff(20, max, &mut rng);
            assert!(d20 >= max / 2 && d20 <= max);
        }
    }

    /// A hostile upstream, simulated: every token rejected after one use, a caller every 10 ms
    /// for an hour. The bounds allow two fetches per interval at most (the refetch after an
    /// interval's fetch, then the uncured hold), far under one per call.
    #[test]
    fn an_hour_of_rejections_costs_at_most_two_fetches_per_interval() {
        let b = bounds();
        let t0 = Instant::now();
        let mut h = History::default();
        let mut fetches = 0u32;
        // The cached token's serial, and whether it replaced a rejected one.
        let mut serial = 0u64;
        for step in 0..360_000u64 {
            let now = t0 + Duration::from_millis(10 * step);
            let purpose = Purpose::Rejected {
                replacement: h.replacement == Some(serial),
            };
            if decide(&h, purpose, now, &b).is_ok() {
                fetches += 1;
                serial += 1;
                h.last_ok_at = Some(now);
                h.last_attempt_at = Some(now);
                h.replacement = Some(serial);
            }
        }
        assert!(fetches <= 2 * 3600 / 30, "{fetches} fetches in an hour");
        assert!(
            fetches >= 3600 / 30,
            "{fetches}: the interval still lets one through"
        );
    }

    #[test]
    fn a_backoff_ends_at_its_retry_time() {
        let t0 = Instant::now();
        let failing = History {
            retry_at: Some(t0 + secs(4)),
            ..History::default()
        };
        let b = bounds();
        assert_eq!(
            decide(&failing, Purpose::Refresh, t0 + secs(3), &b),
            Err((Hold::Backoff, t0 + secs(4)))
        );
        assert_eq!(decide(&failing, Purpose::Refresh, t0 + secs(4), &b), Ok(()));
    }

    #[test]
    fn each_hold_has_its_own_metric_reason_and_names_its_setting() {
        let all = [
            Hold::Interval,
            Hold::Refetch,
            Hold::Uncured,
            Hold::Backoff,
            Hold::Capped,
        ];
        // The `reason` label values of wecom_token_held_total (README "Metrics").
        let reasons: Vec<&str> = all.iter().map(|h| h.as_str()).collect();
        assert_eq!(
            reasons,
            ["interval", "refetch", "uncured", "backoff", "capped"]
        );
        // What an operator reads says which setting holds the fetch.
        for (hold, names) in [
            (Hold::Interval, "token.min_fetch_interval"),
            (Hold::Refetch, "token.min_refetch"),
            (Hold::Uncured, "token.min_fetch_interval"),
            (Hold::Backoff, "gettoken failed"),
            (Hold::Capped, "token.max_fetches"),
        ] {
            let shown = hold.to_string();
            assert_eq!(shown, hold.describe());
            assert!(shown.contains(names), "{hold:?}: {shown}");
        }
    }
}
