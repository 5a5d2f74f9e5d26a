//! Durations (`250ms`, `2s`, `5m`, `1h`, `1d`) and rates (`30/s`, `10000/min`, `150000/h`,
//! `1000/day`) as written in the config file.
//!
//! A duration is a whole number followed directly by a unit: `ms`, `s`, `m` (or `min`), `h`,
//! `d` (or `day`). A rate is a whole count, `/`, and a unit: `s` (or `sec`), `min` (or `m`),
//! `h` (or `hour`), `day` (or `d`). Whitespace around the whole value is ignored; inside it is
//! refused, as are signs, fractions and compound forms (`1h30m`: write `90m`). Errors quote at most the
//! first 4 characters of the text (`quote`) and show valid examples.

use std::time::Duration;

use super::model::Rate;
use super::quote::quote;

const DURATION_HINT: &str =
    "write a whole number and a unit (ms, s, m, h, d), e.g. 250ms, 2s, 5m, 1h, 1d";
const RATE_HINT: &str =
    "write count/unit with unit s, min, h or day, e.g. 20/s, 10000/min, 150000/h, 1000/day";

/// Parses a duration such as `250ms`, `2s`, `5m`, `1h` or `1d`. Zero (`0s`) is accepted here;
/// use [`parse_positive_duration`] where it makes no sense.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let q = quote(t);
    if t.is_empty() {
        return Err(format!("is empty; {DURATION_HINT}"));
    }
    if t.starts_with('-') {
        return Err(format!("{q} is negative; {DURATION_HINT}"));
    }
    if t.chars().any(char::is_whitespace) {
        return Err(format!(
            "{q} has a space inside; write the number and unit together, e.g. 2s"
        ));
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!("{q} is not a duration; {DURATION_HINT}"));
    }
    if unit.starts_with('.') || unit.starts_with(',') {
        return Err(format!(
            "{q} is not a whole number; use a smaller unit instead, e.g. 1500ms for 1.5s"
        ));
    }
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" | "day" => 86_400_000,
        "" => return Err(format!("{q} has no unit; {DURATION_HINT}")),
        _ if unit.chars().any(|c| c.is_ascii_digit()) => {
            return Err(format!(
                "{q} combines units; write a single one, e.g. 90m for 1h30m"
            ))
        }
        _ => {
            return Err(format!(
                "{q} has an unknown unit {}; {DURATION_HINT}",
                quote(unit)
            ))
        }
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_ms))
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{q} is too large; {DURATION_HINT}"))
}

/// Like [`parse_duration`], refusing zero.
pub fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        d if d.is_zero() => Err(format!(
            "{} is zero; give a positive duration, e.g. 250ms or 2s",
            quote(text.trim())
        )),
        d => Ok(d),
    }
}

/// Parses a rate such as `30/s`, `10000/min`, `150000/h` or `1000/day`. The count is 1 or more.
pub fn parse_rate(text: &str) -> Result<Rate, String> {
    let t = text.trim();
    let q = quote(t);
    if t.is_empty() {
        return Err(format!("is empty; {RATE_HINT}"));
    }
    if t.chars().any(char::is_whitespace) {
        return Err(format!(
            "{q} has a space inside; write it without spaces, e.g. 20/s"
        ));
    }
    let Some((count, unit)) = t.split_once('/') else {
        return Err(format!("{q} is not a rate; {RATE_HINT}"));
    };
    if count.starts_with('-') {
        return Err(format!("{q} is negative; {RATE_HINT}"));
    }
    if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{q} does not start with a whole count; {RATE_HINT}"
        ));
    }
    let count: u32 = count.parse().map_err(|_| {
        format!(
            "{q} is too large (at most {} per unit); {RATE_HINT}",
            u32::MAX
        )
    })?;
    if count == 0 {
        return Err(format!(
            "{q} allows nothing; use a count of at least 1, or remove the quota"
        ));
    }
    let per = match unit {
        "s" | "sec" => Duration::from_secs(1),
        "min" | "m" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        "day" | "d" => Duration::from_secs(86400),
        _ => {
            return Err(format!(
                "{q} has an unknown unit {}; {RATE_HINT}",
                quote(unit)
            ))
        }
    };
    Ok(Rate { count, per })
}

const SIZE_HINT: &str = "write a whole number of bytes or one with a unit: KiB, MiB, GiB (1024s) or KB, MB, GB (1000s), e.g. 256MiB";

/// Parses a size such as `256MiB`, `1GB` or `1048576` (bytes). Zero is refused.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let q = quote(t);
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(format!(
            "{q} does not start with a whole number; {SIZE_HINT}"
        ));
    }
    let (num, unit) = t.split_at(digits);
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(format!(
                "{q} has an unknown unit {}; {SIZE_HINT}",
                quote(other)
            ))
        }
    };
    match num.parse::<u64>().ok().and_then(|n| n.checked_mul(scale)) {
        Some(0) => Err(format!("{q} is zero; {SIZE_HINT}")),
        Some(n) => Ok(n),
        None => Err(format!("{q} is too large; {SIZE_HINT}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2s").unwrap(), secs(2));
        assert_eq!(parse_duration("5m").unwrap(), secs(300));
        assert_eq!(parse_duration("5min").unwrap(), secs(300));
        assert_eq!(parse_duration("1h").unwrap(), secs(3600));
        assert_eq!(parse_duration("1d").unwrap(), secs(86400));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("007s").unwrap(), secs(7));
        assert_eq!(
            parse_duration("1500ms").unwrap(),
            Duration::from_millis(1500)
        );
    }

    #[test]
    fn durations_tolerate_surrounding_space_only() {
        assert_eq!(parse_duration(" 3s ").unwrap(), secs(3));
        assert_eq!(parse_duration("\t3s\n").unwrap(), secs(3));
        let e = parse_duration("3 s").unwrap_err();
        assert!(e.contains("space inside"), "{e}");
    }

    #[test]
    fn bad_durations_say_why_and_show_examples() {
        let cases = [
            ("", "empty"),
            ("   ", "empty"),
            ("s", "not a duration"),
            ("5", "no unit"),
            ("-1s", "negative"),
            ("+1s", "not a duration"),
            ("1.5s", "whole number"),
            ("5 parsecs", "space inside"),
            ("5parsecs", "unknown unit"),
            ("2S", "unknown unit"),
            ("1h30m", "combines units"),
            ("fast", "not a duration"),
        ];
        for (bad, why) in cases {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
            if !matches!(why, "whole number" | "space inside" | "combines units") {
                assert!(e.contains("250ms"), "{bad:?} shows no examples: {e}");
            }
        }
    }

    #[test]
    fn duration_overflow_is_an_error_not_a_panic() {
        for bad in [
            "99999999999999999999s",
            "18446744073709551615ms0",
            "18446744073709551616ms",
            "18446744073709551615d",
            "213503982334601d",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(
                e.contains("too large") || e.contains("combines"),
                "{bad}: {e}"
            );
        }
        // The largest value that fits in milliseconds still parses.
        assert_eq!(
            parse_duration("18446744073709551615ms").unwrap(),
            Duration::from_millis(u64::MAX)
        );
    }

    #[test]
    fn positive_durations_refuse_zero() {
        assert_eq!(
            parse_positive_duration("1ms").unwrap(),
            Duration::from_millis(1)
        );
        for zero in ["0s", "0ms", "000h", " 0d "] {
            let e = parse_positive_duration(zero).unwrap_err();
            assert!(e.contains("zero"), "{zero}: {e}");
        }
        assert!(parse_positive_duration("x").unwrap_err().contains("250ms"));
    }

    #[test]
    fn rates() {
        let r = |count, per| Rate { count, per };
        assert_eq!(parse_rate("30/s").unwrap(), r(30, secs(1)));
        assert_eq!(parse_rate("10000/min").unwrap(), r(10000, secs(60)));
        assert_eq!(parse_rate("150000/h").unwrap(), r(150000, secs(3600)));
        assert_eq!(parse_rate("1000/day").unwrap(), r(1000, secs(86400)));
        assert_eq!(parse_rate(" 20/min ").unwrap(), r(20, secs(60)));
        assert_eq!(parse_rate("4294967295/s").unwrap().count, u32::MAX);
        for text in ["30/s", "10000/min", "150000/h", "1000/day"] {
            assert_eq!(parse_rate(text).unwrap().to_string(), text, "round trip");
        }
    }

    #[test]
    fn bad_rates_say_why_and_show_examples() {
        let cases = [
            ("", "empty"),
            ("30", "not a rate"),
            ("/s", "whole count"),
            ("x/s", "whole count"),
            ("+5/s", "whole count"),
            ("1.5/s", "whole count"),
            ("-1/s", "negative"),
            ("0/s", "allows nothing"),
            ("30/week", "unknown unit"),
            ("30/", "unknown unit"),
            ("30/s/s", "unknown unit"),
            ("30 / s", "space inside"),
            ("4294967296/s", "too large"),
            ("99999999999999999999999/s", "too large"),
        ];
        for (bad, why) in cases {
            let e = parse_rate(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        assert!(parse_rate("30/week").unwrap_err().contains("10000/min"));
    }

    #[test]
    fn sizes_with_and_without_units() {
        assert_eq!(parse_bytes("256MiB"), Ok(256 * 1024 * 1024));
        assert_eq!(parse_bytes("1 GB"), Ok(1_000_000_000));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        for bad in [
            "",
            "MiB",
            "0",
            "12 parsecs",
            "99999999999999999999GiB",
            "-1",
        ] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }
}
