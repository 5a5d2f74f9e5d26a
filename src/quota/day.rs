//! Calendar days as WeCom counts them: in China time (UTC+8, which keeps no daylight saving),
//! from 00:00 to 00:00. A 45009 whose errmsg speaks of a day and `recipients_per_day` both end
//! at the next China midnight, whatever the sidecar's own time zone.
//!
//! Every function takes the wall-clock time as seconds since the Unix epoch (`now_unix`), so
//! the arithmetic is tested on chosen instants, never on a wait.

use std::time::{Duration, SystemTime};

/// China time's offset from UTC, in seconds (UTC+8 all year).
pub const CHINA_OFFSET_SECS: u64 = 8 * 3600;
const DAY_SECS: u64 = 86_400;

/// Seconds since the Unix epoch now (0 if the clock stands before it).
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The China calendar day `now_unix` falls in, counted from 1970-01-01 (China time).
pub fn china_day(now_unix: u64) -> u64 {
    now_unix.saturating_add(CHINA_OFFSET_SECS) / DAY_SECS
}

/// Time from `now_unix` until the next 00:00 China time (a full day at midnight itself).
pub fn until_china_midnight(now_unix: u64) -> Duration {
    let into_day = now_unix.saturating_add(CHINA_OFFSET_SECS) % DAY_SECS;
    Duration::from_secs(DAY_SECS - into_day)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unix seconds of a UTC date and time (proleptic Gregorian; days from civil).
    fn utc(y: i64, m: i64, d: i64, hh: u64, mm: u64, ss: u64) -> u64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        days as u64 * DAY_SECS + hh * 3600 + mm * 60 + ss
    }

    #[test]
    fn the_helper_knows_the_epoch_and_a_known_date() {
        assert_eq!(utc(1970, 1, 1, 0, 0, 0), 0);
        // 2024-02-29T00:00:00Z
        assert_eq!(utc(2024, 2, 29, 0, 0, 0), 1_709_164_800);
    }

    #[test]
    fn midnight_china_time_is_16_00_utc_the_day_before() {
        // 15:59:59 UTC is 23:59:59 in China: one second left.
        assert_eq!(
            until_china_midnight(utc(2026, 12, 1, 15, 59, 59)),
            Duration::from_secs(1)
        );
        // 16:00:00 UTC is China midnight itself: the next one is a day away.
        assert_eq!(
            until_china_midnight(utc(2026, 12, 1, 16, 0, 0)),
            Duration::from_secs(DAY_SECS)
        );
        // 00:00 UTC is 08:00 in China: 16 hours left.
        assert_eq!(
            until_china_midnight(utc(2026, 12, 1, 0, 0, 0)),
            Duration::from_secs(16 * 3600)
        );
        // 12:25:00 UTC is 20:25 in China.
        assert_eq!(
            until_china_midnight(utc(2026, 12, 1, 12, 25, 0)),
            Duration::from_secs(3 * 3600 + 35 * 60)
        );
    }

    #[test]
    fn the_china_day_turns_at_16_00_utc() {
        let before = china_day(utc(2026, 12, 1, 15, 59, 59));
        let after = china_day(utc(2026, 12, 1, 16, 0, 0));
        assert_eq!(after, before + 1);
        // 2026-12-02 China time began at 2026-12-01T16:00Z.
        assert_eq!(after, utc(2026, 12, 2, 0, 0, 0) / DAY_SECS);
    }

    #[test]
    fn leap_days_and_year_ends_are_ordinary_days() {
        // 2024-02-28T16:00Z opens 29 February in China; it lasts exactly a day.
        let opens = utc(2024, 2, 28, 16, 0, 0);
        assert_eq!(china_day(opens), utc(2024, 2, 29, 0, 0, 0) / DAY_SECS);
        assert_eq!(
            until_china_midnight(opens + 1),
            Duration::from_secs(DAY_SECS - 1)
        );
        assert_eq!(
            china_day(opens + DAY_SECS),
            utc(2024, 3, 1, 0, 0, 0) / DAY_SECS
        );
        // 2100 is no leap year: 28 February is followed by 1 March.
        let feb28 = utc(2100, 2, 28, 16, 0, 0);
        assert_eq!(china_day(feb28), utc(2100, 3, 1, 0, 0, 0) / DAY_SECS);
        // New Year's Eve 2026 at 23:30 China time: half an hour to 2027.
        assert_eq!(
            until_china_midnight(utc(2026, 12, 31, 15, 30, 0)),
            Duration::from_secs(1800)
        );
        assert_eq!(
            china_day(utc(2026, 12, 31, 16, 0, 0)),
            utc(2027, 1, 1, 0, 0, 0) / DAY_SECS
        );
    }

    #[test]
    fn no_daylight_saving_every_china_day_is_86400_seconds() {
        // Across March and November, when other zones shift, China's days stay whole.
        for start in [utc(2026, 3, 7, 16, 0, 0), utc(2026, 10, 31, 16, 0, 0)] {
            for day in 0..3 {
                let midnight = start + day * DAY_SECS;
                assert_eq!(
                    until_china_midnight(midnight),
                    Duration::from_secs(DAY_SECS)
                );
                assert_eq!(china_day(midnight), china_day(midnight - 1) + 1);
            }
        }
    }

    #[test]
    fn extremes_do_not_panic() {
        assert_eq!(until_china_midnight(0), Duration::from_secs(16 * 3600));
        let _ = until_china_midnight(u64::MAX);
        let _ = china_day(u64::MAX);
    }
}
