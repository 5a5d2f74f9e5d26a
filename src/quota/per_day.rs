//! Member sends per app per China calendar day (a route's `recipients_per_day`): WeCom lets
//! an app reach at most (the corp's account limit × 200) members a day, counted from 00:00
//! China time (UTC+8), and answers 45009 past it.
//!
//! A message counts each member of its `touser` once (`@all` counts nobody: WeCom's count of
//! it is not knowable here). A message that would pass the cap is refused whole and counts
//! nothing. Fleet mode counts in Redis (`fleet::per_day`); this is the local count.

use std::sync::Mutex;
use std::time::Duration;

use moka::sync::Cache;

use super::day;
use crate::config::AppName;

/// Most apps counted at once (apps are configured, so this is only a bound).
const MAX_APPS: u64 = 10_000;

/// One app's count: the China day it is for, and the members sent to on it.
#[derive(Debug, Default, Clone, Copy)]
struct Count {
    day: u64,
    sent: u64,
}

/// Local member-send counts, per app.
pub struct PerDay {
    counts: Cache<AppName, std::sync::Arc<Mutex<Count>>>,
}

impl Default for PerDay {
    fn default() -> Self {
        PerDay {
            counts: Cache::builder()
                .max_capacity(MAX_APPS)
                .time_to_idle(Duration::from_secs(2 * 86_400))
                .build(),
        }
    }
}

impl PerDay {
    /// Counts `members` sends of `app` on the China day of `now_unix` if they fit under
    /// `limit`; otherwise counts nothing and says how long until the day ends.
    pub fn take(
        &self,
        app: &AppName,
        members: u64,
        limit: u64,
        now_unix: u64,
    ) -> Result<(), Duration> {
        let today = day::china_day(now_unix);
        let count = self.counts.get_with(app.clone(), Default::default);
        let mut c = count.lock().unwrap_or_else(|p| p.into_inner());
        if c.day != today {
            *c = Count {
                day: today,
                sent: 0,
            };
        }
        if c.sent.saturating_add(members) > limit {
            return Err(day::until_china_midnight(now_unix));
        }
        c.sent += members;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-01T15:00:00Z: 23:00 in China, an hour before its midnight.
    const LATE: u64 = 1_796_137_200;

    #[test]
    fn the_send_that_passes_the_cap_is_refused_until_china_midnight() {
        let p = PerDay::default();
        let app = AppName("hr".into());
        assert!(p.take(&app, 3, 5, LATE).is_ok());
        assert!(p.take(&app, 2, 5, LATE).is_ok());
        assert_eq!(p.take(&app, 1, 5, LATE), Err(Duration::from_secs(3600)));
        // Another app has its own count.
        assert!(p.take(&AppName("ops".into()), 5, 5, LATE).is_ok());
        // The next China day starts from nothing.
        assert!(p.take(&app, 5, 5, LATE + 3600).is_ok());
        assert!(p.take(&app, 1, 5, LATE + 3600).is_err());
    }

    #[test]
    fn a_refused_send_counts_nothing() {
        let p = PerDay::default();
        let app = AppName("hr".into());
        assert!(p.take(&app, 4, 5, LATE).is_ok());
        assert!(p.take(&app, 2, 5, LATE).is_err());
        assert!(
            p.take(&app, 1, 5, LATE).is_ok(),
            "the refused 2 were not counted"
        );
    }
}
