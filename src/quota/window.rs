//! Sliding windows of buckets, checked over several limits at once, all or nothing.
//!
//! A limit `count/per` keeps `BUCKETS + 1` counters, each covering `per / BUCKETS` of time. A
//! call is counted in the bucket of its arrival; the calls "in the window" are the sum of the
//! current bucket and the `BUCKETS` before it, a span of at least `per`. So in ANY window of
//! length `per`, at most `count` calls pass: the error is on the safe side only (a call may be
//! refused up to one bucket, 1/60 of the window, before a perfectly exact limiter would allow it).
//! GCRA (governor's algorithm) was not used: with a burst of `count` it lets up to twice
//! `count` through in the worst window, which is what gets a corp blocked by WeCom, and
//! limiters checked one after another consume from the limits that allowed a call refused by
//! a later one. Here a refused call consumes nothing anywhere.
//!
//! Time comes from `tokio::time::Instant`, so tests run on paused time. Memory: only buckets that
//! hold calls are stored (at most 61 per limit), so a key that saw one call, such as a message
//! recipient, costs a few dozen bytes, and a busy key no more than a full ring.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::Rate;

/// Buckets per window.
pub const BUCKETS: u32 = 60;
const SLOTS: usize = BUCKETS as usize + 1;

/// One limit's counters: the buckets within the window that hold calls, oldest first, as
/// (bucket number, calls), and their sum.
#[derive(Debug, Clone, Default)]
struct Ring {
    buckets: VecDeque<(u64, u32)>,
    used: u64,
    /// Bucket number of the newest bucket the window reached.
    head: u64,
}

/// The state of one key under a list of limits.
#[derive(Debug, Clone)]
pub struct Cells {
    origin: Instant,
    rings: Vec<Ring>,
}

fn width(rate: &Rate) -> Duration {
    (rate.per / BUCKETS).max(Duration::from_micros(1))
}

fn bucket(origin: Instant, rate: &Rate, now: Instant) -> u64 {
    (now.saturating_duration_since(origin).as_nanos() / width(rate).as_nanos()) as u64
}

impl Ring {
    /// Moves the window to `epoch`, dropping buckets that left it (bucket `b` is in the window
    /// of head `h` while `b + SLOTS > h`).
    fn advance(&mut self, epoch: u64) {
        if epoch <= self.head {
            return;
        }
        self.head = epoch;
        while let Some(&(b, n)) = self.buckets.front() {
            if b + SLOTS as u64 > epoch {
                break;
            }
            self.used -= u64::from(n);
            self.buckets.pop_front();
        }
    }

    /// Time from now until one more call fits under `count`.
    fn wait(&self, rate: &Rate, origin: Instant, now: Instant) -> Duration {
        let mut used = self.used;
        if used < u64::from(rate.count) {
            return Duration::ZERO;
        }
        // Oldest buckets leave first: bucket b leaves when the head reaches b + SLOTS.
        for &(b, n) in &self.buckets {
            used -= u64::from(n);
            if used < u64::from(rate.count) {
                let leaves_at = origin + width(rate) * (b + SLOTS as u64) as u32;
                return leaves_at
                    .saturating_duration_since(now)
                    .max(Duration::from_millis(1));
            }
        }
        rate.per
    }

    fn count_one(&mut self) {
        self.used += 1;
        match self.buckets.back_mut() {
            Some((b, n)) if *b == self.head => *n = n.saturating_add(1),
            _ => {
                // Most keys (recipients) see one or two calls a window: start with room for
                // one bucket, not the default four.
                if self.buckets.capacity() == 0 {
                    self.buckets.reserve_exact(1);
                }
                self.buckets.push_back((self.head, 1))
            }
        }
    }
}

impl Cells {
    pub fn new(limits: usize, now: Instant) -> Self {
        Cells {
            origin: now,
            rings: vec![Ring::default(); limits],
        }
    }

    fn advance(&mut self, limits: &[Rate], now: Instant) {
        let origin = self.origin;
        for (ring, rate) in self.rings.iter_mut().zip(limits) {
            ring.advance(bucket(origin, rate, now));
        }
    }

    /// How long until one more call fits under every limit (zero: now).
    pub fn wait_time(&mut self, limits: &[Rate], now: Instant) -> Duration {
        self.advance(limits, now);
        self.rings
            .iter()
            .zip(limits)
            .map(|(ring, rate)| ring.wait(rate, self.origin, now))
            .max()
            .unwrap_or_default()
    }

    /// Calls that would pass right now, per limit.
    pub fn remaining(&mut self, limits: &[Rate], now: Instant) -> Vec<u32> {
        self.advance(limits, now);
        self.rings
            .iter()
            .zip(limits)
            .map(|(ring, rate)| u64::from(rate.count).saturating_sub(ring.used) as u32)
            .collect()
    }

    fn count_one(&mut self) {
        for ring in &mut self.rings {
            ring.count_one();
        }
    }
}

/// Counts one call in every entry of `all` (a key's cells with its limits) if every one has
/// room; otherwise counts nothing and says how long until all would.
pub fn take_all(all: &mut [(&mut Cells, &[Rate])], now: Instant) -> Result<(), Duration> {
    let wait = all
        .iter_mut()
        .map(|(cells, limits)| cells.wait_time(limits, now))
        .max()
        .unwrap_or_default();
    if !wait.is_zero() {
        return Err(wait);
    }
    for (cells, _) in all.iter_mut() {
        cells.count_one();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(count: u32, secs: u64) -> Rate {
        Rate {
            count,
            per: Duration::from_secs(secs),
        }
    }

    fn take(c: &mut Cells, limits: &[Rate]) -> Result<(), Duration> {
        take_all(&mut [(c, limits)], Instant::now())
    }

    #[tokio::test(start_paused = true)]
    async fn burst_up_to_count_then_wait_for_the_window() {
        let limits = [rate(5, 1)];
        let mut c = Cells::new(1, Instant::now());
        for _ in 0..5 {
            assert!(take(&mut c, &limits).is_ok());
        }
        let wait = take(&mut c, &limits).unwrap_err();
        // The burst's bucket leaves the window one bucket (1/60 s) after a full second.
        assert!(
            wait > Duration::from_millis(980) && wait <= Duration::from_millis(1017),
            "{wait:?}"
        );
        tokio::time::advance(wait - Duration::from_millis(1)).await;
        assert!(take(&mut c, &limits).is_err());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(take(&mut c, &limits).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn no_window_of_length_per_ever_holds_more_than_count() {
        // One attempt per 3 ms for 20 s against 50/s; then slide a 1 s window over the passes.
        let limits = [rate(50, 1)];
        let mut c = Cells::new(1, Instant::now());
        let start = Instant::now();
        let mut passed = Vec::new();
        for _ in 0..(20_000 / 3) {
            if take(&mut c, &limits).is_ok() {
                passed.push(Instant::now() - start);
            }
            tokio::time::advance(Duration::from_millis(3)).await;
        }
        for (i, t) in passed.iter().enumerate() {
            let in_window = passed[i..]
                .iter()
                .take_while(|u| **u < *t + Duration::from_secs(1))
                .count();
            assert!(
                in_window <= 50,
                "{in_window} passes in the second after {t:?}"
            );
        }
        // And the limiter is not much stricter than the limit: 20 windows, ≥ 98 % used.
        assert!(passed.len() >= 980, "{} passed", passed.len());
    }

    #[tokio::test(start_paused = true)]
    async fn refused_calls_consume_nothing_anywhere() {
        let per_s = [rate(10, 1)];
        let per_min = [rate(2, 60)];
        let now = Instant::now();
        let mut a = Cells::new(1, now);
        let mut b = Cells::new(1, now);
        for _ in 0..2 {
            assert!(take_all(&mut [(&mut a, &per_s[..]), (&mut b, &per_min[..])], now).is_ok());
        }
        for _ in 0..20 {
            assert!(take_all(&mut [(&mut a, &per_s[..]), (&mut b, &per_min[..])], now).is_err());
        }
        assert_eq!(a.remaining(&per_s, now), vec![8]);
        let wait = b.wait_time(&per_min, now);
        assert_eq!(
            wait,
            Duration::from_secs(61),
            "both calls sit in bucket 0, which leaves after 61 s"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn several_limits_on_one_key() {
        let limits = [rate(3, 1), rate(4, 60)];
        let mut c = Cells::new(2, Instant::now());
        for _ in 0..3 {
            assert!(take(&mut c, &limits).is_ok());
        }
        assert!(take(&mut c, &limits).is_err());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(take(&mut c, &limits).is_ok());
        let wait = take(&mut c, &limits).unwrap_err();
        assert!(
            wait > Duration::from_secs(50),
            "the minute limit holds: {wait:?}"
        );
    }

    #[test]
    fn calls_in_later_buckets_leave_the_window_later() {
        // One bucket is a second: a call at 0 s and one at 30 s leave at 61 s and 91 s.
        let limits = [rate(2, 60)];
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut c = Cells::new(1, t0);
        assert!(take_all(&mut [(&mut c, &limits[..])], at(0)).is_ok());
        assert!(take_all(&mut [(&mut c, &limits[..])], at(30)).is_ok());
        assert_eq!(c.wait_time(&limits, at(40)), Duration::from_secs(21));
        assert_eq!(
            c.remaining(&limits, at(61)),
            vec![1],
            "the 30 s call is still in"
        );
        assert_eq!(c.wait_time(&limits, at(61)), Duration::ZERO);
        assert!(take_all(&mut [(&mut c, &limits[..])], at(61)).is_ok());
        assert_eq!(c.wait_time(&limits, at(62)), Duration::from_secs(29));
        assert_eq!(c.remaining(&limits, at(91)), vec![1]);
        assert_eq!(c.remaining(&limits, at(200)), vec![2]);
    }

    #[test]
    fn a_lowered_limit_waits_until_enough_calls_left() {
        // Three calls under 3/min, then the limit is 2/min (a reload): room for one more
        // only once two of the three buckets left the window.
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut c = Cells::new(1, t0);
        for s in [0, 10, 20] {
            assert!(take_all(&mut [(&mut c, &[rate(3, 60)][..])], at(s)).is_ok());
        }
        let lowered = [rate(2, 60)];
        assert_eq!(c.remaining(&lowered, at(30)), vec![0]);
        assert_eq!(c.wait_time(&lowered, at(30)), Duration::from_secs(41));
        assert_eq!(c.wait_time(&lowered, at(61)), Duration::from_secs(10));
        assert_eq!(c.wait_time(&lowered, at(71)), Duration::ZERO);
    }

    #[test]
    fn the_wait_is_at_least_a_millisecond_and_at_most_the_window() {
        // Sub-millisecond buckets (1000/ms): the bucket leaves within the millisecond, the
        // answer still says one.
        let limits = [Rate {
            count: 1,
            per: Duration::from_micros(600),
        }];
        let t0 = Instant::now();
        let mut c = Cells::new(1, t0);
        assert!(take_all(&mut [(&mut c, &limits[..])], t0).is_ok());
        assert_eq!(
            take_all(
                &mut [(&mut c, &limits[..])],
                t0 + Duration::from_micros(605)
            ),
            Err(Duration::from_millis(1))
        );
        // No limits: nothing to wait for.
        let mut none = Cells::new(0, t0);
        assert_eq!(none.wait_time(&[], t0), Duration::ZERO);
        assert!(take_all(&mut [(&mut none, &[][..])], t0).is_ok());
        assert!(take_all(&mut [], t0).is_ok());
    }

    #[test]
    fn a_key_costs_one_bucket_per_bucket_of_calls_not_per_call() {
        let limits = [rate(1000, 60)];
        let t0 = Instant::now();
        let mut c = Cells::new(1, t0);
        assert!(take_all(&mut [(&mut c, &limits[..])], t0).is_ok());
        // A key that saw one call (a message recipient) holds room for one bucket only.
        assert!(
            c.rings[0].buckets.capacity() < 4,
            "{}",
            c.rings[0].buckets.capacity()
        );
        for _ in 0..499 {
            assert!(take_all(&mut [(&mut c, &limits[..])], t0).is_ok());
        }
        assert_eq!(
            c.rings[0].buckets.len(),
            1,
            "500 calls of one bucket are one entry"
        );
        for s in 1..=200 {
            let _ = take_all(&mut [(&mut c, &limits[..])], t0 + Duration::from_secs(s));
        }
        assert!(
            c.rings[0].buckets.len() <= SLOTS,
            "{}",
            c.rings[0].buckets.len()
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Call times as gaps in milliseconds (many zero: bursts), and a limit.
        fn scenario() -> impl Strategy<Value = (u32, u64, Vec<u64>)> {
            (
                1u32..8,
                1u64..5,
                prop::collection::vec(prop_oneof![Just(0u64), 0u64..300, 0u64..5000], 1..200),
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn no_window_admits_more_than_the_limit_and_refusals_cost_nothing(
                (count, secs, gaps) in scenario()
            ) {
                let limits = [rate(count, secs)];
                let per = Duration::from_secs(secs);
                // A second key under a limit that refuses often: a call it refuses must not
                // be counted under the first key either.
                let other = [rate(count + 1, secs * 2)];
                let t0 = Instant::now();
                let mut c = Cells::new(1, t0);
                let mut d = Cells::new(1, t0);
                let mut now = t0;
                let mut passed: Vec<Instant> = Vec::new();
                for gap in gaps {
                    now += Duration::from_millis(gap);
                    let before = (c.remaining(&limits, now), d.remaining(&other, now));
                    match take_all(&mut [(&mut c, &limits[..]), (&mut d, &other[..])], now) {
                        Ok(()) => passed.push(now),
                        Err(wait) => {
                            prop_assert!(!wait.is_zero() && wait <= per * 2 + per / 30);
                            let after = (c.remaining(&limits, now), d.remaining(&other, now));
                            prop_assert_eq!(before, after, "a refused call consumed");
                        }
                    }
                }
                for (i, t) in passed.iter().enumerate() {
                    let in_window = passed[i..].iter().take_while(|u| **u < *t + per).count();
                    prop_assert!(in_window as u32 <= count, "{} passes in {:?}", in_window, per);
                }
            }

            #[test]
            fn the_wait_is_exact(
                (count, secs, gaps) in scenario()
            ) {
                let limits = [rate(count, secs)];
                let t0 = Instant::now();
                let mut c = Cells::new(1, t0);
                let mut now = t0;
                for gap in gaps {
                    now += Duration::from_millis(gap);
                    if let Err(wait) = take_all(&mut [(&mut c, &limits[..])], now) {
                        // A copy, so the probes count nothing in the real one.
                        let mut early = c.clone();
                        let mut late = c.clone();
                        prop_assert!(
                            take_all(&mut [(&mut early, &limits[..])], now + wait - Duration::from_millis(1)).is_err(),
                            "a call fits a millisecond before the wait {:?} ends", wait
                        );
                        prop_assert!(
                            take_all(&mut [(&mut late, &limits[..])], now + wait).is_ok(),
                            "no room when the wait {:?} ends", wait
                        );
                    }
                }
            }
        }
    }
}
