//! How long a block WeCom announced lasts, read from its answer.

use std::time::Duration;

use super::{day, CONCURRENCY_BLOCK, HOUR_BLOCK, MINUTE_BLOCK};

/// How long WeCom's block lasts, from its answer: 45009 blocks a minute, an hour when its
/// errmsg says so, and until 00:00 China time (see [`day`](super::day)) when it speaks of a day (WeCom's
/// wording for a daily quota: "reach max api daily quota limit"); 45033 a few seconds.
/// `now_unix` is the wall clock in seconds since the Unix epoch.
pub fn block_for(errcode: i64, body: &[u8], now_unix: u64) -> Option<Duration> {
    match errcode {
        crate::wecom::errcode::FREQ_LIMIT => {
            let text = errmsg(body).to_ascii_lowercase();
            Some(if text.contains("day") || text.contains("daily") {
                day::until_china_midnight(now_unix)
            } else if text.contains("hour") {
                HOUR_BLOCK
            } else {
                MINUTE_BLOCK
            })
        }
        crate::wecom::errcode::CONCURRENCY_LIMIT => Some(CONCURRENCY_BLOCK),
        _ => None,
    }
}

/// The `errmsg` of a WeCom answer (empty when there is none): only WeCom's words decide a
/// block's length, not whatever else the body holds.
fn errmsg(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errmsg {
        errmsg: Option<String>,
    }
    // A derived struct also reads an array (`["hour"]`) as one: only an object counts.
    if !crate::wecom::errcode::is_json_object(body) {
        return String::new();
    }
    serde_json::from_slice::<Errmsg>(body)
        .ok()
        .and_then(|e| e.errmsg)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_lengths() {
        // 2026-12-01T12:25:00Z is 20:25 in China: 3 h 35 min to its midnight.
        let now = 1_796_127_900;
        assert_eq!(
            block_for(45009, b"{\"errmsg\":\"api freq out of limit\"}", now),
            Some(MINUTE_BLOCK)
        );
        assert_eq!(
            block_for(45009, b"{\"errmsg\":\"hour freq out of limit\"}", now),
            Some(HOUR_BLOCK)
        );
        // Found by the fuzzer: an array is no answer with an errmsg.
        assert_eq!(block_for(45009, b"[\"[hour\"]", now), Some(MINUTE_BLOCK));
        assert_eq!(
            block_for(
                45009,
                b"{\"errcode\":45009,\"errmsg\":\"reach max api daily quota limit\"}",
                now
            ),
            Some(Duration::from_secs(3 * 3600 + 35 * 60))
        );
        // Words outside errmsg (a hint, an echoed value) do not make a day block.
        assert_eq!(
            block_for(
                45009,
                b"{\"errmsg\":\"api freq out of limit\",\"day\":1}",
                now
            ),
            Some(MINUTE_BLOCK)
        );
        assert_eq!(block_for(45033, b"{}", now), Some(CONCURRENCY_BLOCK));
        assert_eq!(block_for(0, b"{}", now), None);
    }
}
