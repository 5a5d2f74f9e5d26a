//! Durations (`250ms`, `2s`, `5m`, `1h`, `1d`) and rates (`30/s`, `10000/min`, `150000/h`,
//! `1000/day`) as written in the config file.

use std::time::Duration;

use super::model::Rate;

/// Parses a duration such as `250ms`, `2s`, `5m`, `1h` or `1d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let hint = "write a whole number and a unit, e.g. 250ms, 2s, 5m, 1h, 1d";
    if num.is_empty() {
        return Err(format!("\"{text}\" is not a duration; {hint}"));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| format!("\"{text}\" is too large; {hint}"))?;
    let per_unit = match unit {
        "ms" => Duration::from_millis(1),
        "s" => Duration::from_secs(1),
        "m" | "min" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        "d" | "day" => Duration::from_secs(86400),
        "" => return Err(format!("\"{text}\" has no unit; {hint}")),
        _ => return Err(format!("\"{text}\" has an unknown unit \"{unit}\"; {hint}")),
    };
    let n32 = u32::try_from(n).map_err(|_| format!("\"{text}\" is too large; {hint}"))?;
    per_unit
        .checked_mul(n32)
        .ok_or_else(|| format!("\"{text}\" is too large; {hint}"))
}

/// Parses a rate such as `30/s`, `10000/min`, `150000/h` or `1000/day`.
pub fn parse_rate(text: &str) -> Result<Rate, String> {
    let hint =
        "write count/unit with unit s, min, h or day, e.g. 20/s, 10000/min, 150000/h, 1000/day";
    let Some((count, unit)) = text.trim().split_once('/') else {
        return Err(format!("\"{text}\" is not a rate; {hint}"));
    };
    let count: u32 = count
        .trim()
        .parse()
        .map_err(|_| format!("\"{text}\" has no valid count; {hint}"))?;
    if count == 0 {
        return Err(format!(
            "\"{text}\" allows nothing; use a count of at least 1"
        ));
    }
    let per = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "min" | "m" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        "day" | "d" => Duration::from_secs(86400),
        _ => return Err(format!("\"{text}\" has an unknown unit; {hint}")),
    };
    Ok(Rate { count, per })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse_duration(" 3s ").unwrap(), Duration::from_secs(3));
        for bad in [
            "",
            "s",
            "5",
            "-1s",
            "1.5s",
            "5 parsecs",
            "99999999999999999999s",
            "5000000000d",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains("250ms"), "{bad}: {e}");
        }
    }

    #[test]
    fn rates() {
        assert_eq!(
            parse_rate("30/s").unwrap(),
            Rate {
                count: 30,
                per: Duration::from_secs(1)
            }
        );
        assert_eq!(
            parse_rate("10000/min").unwrap().per,
            Duration::from_secs(60)
        );
        assert_eq!(
            parse_rate("150000/h").unwrap().per,
            Duration::from_secs(3600)
        );
        assert_eq!(
            parse_rate("1000/day").unwrap().per,
            Duration::from_secs(86400)
        );
        for bad in [
            "",
            "30",
            "/s",
            "x/s",
            "0/s",
            "30/week",
            "-1/s",
            "99999999999/s",
        ] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }
}
