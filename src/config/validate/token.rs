//! `token`: when tokens are refreshed, and the bounds on gettoken per app.

use std::time::Duration;

use super::check::Check;
use crate::config::defaults::*;
use crate::config::file::FileToken;
use crate::config::model::TokenSettings;
use crate::config::units::parse_rate;

/// `token`, every key defaulted; `refresh_before_expiry` shorter than a token's life.
pub(super) fn token(c: &mut Check, file: Option<&FileToken>) -> TokenSettings {
    let refresh_before_expiry = c.duration(
        "token.refresh_before_expiry",
        file.and_then(|t| t.refresh_before_expiry.as_deref()),
        DEFAULT_REFRESH_BEFORE_EXPIRY,
    );
    if refresh_before_expiry >= Duration::from_secs(TOKEN_LIFETIME_SECS) {
        c.problem(
            "token.refresh_before_expiry",
            format!(
                "must be shorter than a token's life ({TOKEN_LIFETIME_SECS} s), or every token would be refreshed as soon as it arrives. Set it below 2h, e.g. {DEFAULT_REFRESH_BEFORE_EXPIRY} (the default)"
            ),
        );
    }
    token_bounds(c, file, refresh_before_expiry)
}

/// `token`'s gettoken bounds: `min_fetch_interval`, `min_refetch`, `max_fetches`.
fn token_bounds(
    c: &mut Check,
    file: Option<&FileToken>,
    refresh_before_expiry: Duration,
) -> TokenSettings {
    let min_fetch_interval = c.duration(
        "token.min_fetch_interval",
        file.and_then(|t| t.min_fetch_interval.as_deref()),
        DEFAULT_MIN_FETCH_INTERVAL,
    );
    let min_refetch = c.duration(
        "token.min_refetch",
        file.and_then(|t| t.min_refetch.as_deref()),
        DEFAULT_MIN_REFETCH,
    );
    if min_fetch_interval >= refresh_before_expiry {
        c.problem(
            "token.min_fetch_interval",
            format!(
                "must be shorter than refresh_before_expiry ({}s), or a token refreshed ahead could expire before the next fetch is allowed. Lower it, e.g. {DEFAULT_MIN_FETCH_INTERVAL} (the default)",
                refresh_before_expiry.as_secs()
            ),
        );
    }
    if min_refetch > min_fetch_interval {
        c.problem(
            "token.min_refetch",
            format!(
                "is longer than min_fetch_interval ({}s); it only shortens that wait for a rejected token. Lower it, e.g. {DEFAULT_MIN_REFETCH} (the default)",
                min_fetch_interval.as_secs()
            ),
        );
    }
    let fallback = parse_rate(DEFAULT_MAX_FETCHES).expect("the default is a valid rate");
    let max_fetches = match file.and_then(|t| t.max_fetches.as_deref()).map(parse_rate) {
        None => fallback,
        Some(Ok(rate)) => {
            let per_lifetime =
                u64::from(rate.count) * TOKEN_LIFETIME_SECS / rate.per.as_secs().max(1);
            if per_lifetime < MIN_FETCHES_PER_LIFETIME {
                c.problem(
                    "token.max_fetches",
                    format!(
                        "\"{rate}\" allows fewer than {MIN_FETCHES_PER_LIFETIME} gettoken per token lifetime ({TOKEN_LIFETIME_SECS} s), so tokens could not be renewed. Raise it, e.g. {DEFAULT_MAX_FETCHES} (the default)"
                    ),
                );
            }
            rate
        }
        Some(Err(e)) => {
            c.problem("token.max_fetches", e);
            fallback
        }
    };
    TokenSettings {
        refresh_before_expiry,
        min_fetch_interval,
        min_refetch,
        max_fetches,
    }
}
