//! The hard cap on gettoken per app, `token.max_fetches` (SPEC "Bounds", bullet 1).
//!
//! Each gettoken takes one slot of a sliding window (the quota limiter's algorithm,
//! `quota::window`). In fleet mode the window lives in Redis (the fleet quota script, keyed by
//! app and token realm) so the cap is the fleet's; while Redis cannot decide, each sidecar counts
//! locally against its share (`max_fetches / fleet.size`, at least 1), as the quotas do.

use std::sync::Arc;
use std::time::Duration;

use super::AppTokens;
use crate::config::{AppName, Rate};
use crate::fleet::{FleetClient, FleetDown};
use crate::quota::window::{self, Cells};
use crate::quota::Ask;

/// An app's local window (the rate it was made for, so a reload that changes it starts anew).
#[derive(Debug, Clone)]
pub struct LocalCap {
    rate: Rate,
    cells: Cells,
}

/// Takes one gettoken from `app`'s cap; `Err(wait)` until one fits.
pub(super) async fn take(
    fleet: Option<&FleetClient>,
    app: &AppTokens,
    rate: Rate,
) -> Result<(), Duration> {
    let api: Arc<str> = match &app.key.realm {
        Some(realm) => format!("gettoken@{realm}").into(),
        None => Arc::from("gettoken"),
    };
    take_named(fleet, "token", &app.app.name, &api, rate, |local| {
        app.with_status(|s| take_local(&mut s.cap, local))
    })
    .await
}

/// Takes one fetch from the cap of `owner` and `api` (fleet-wide when `fleet` is set; while
/// Redis cannot decide, `local` decides with the sidecar's share of `rate`, counted as a
/// fallback of `what`). Shared by gettoken and the ticket fetches (`crate::ticket`).
pub(crate) async fn take_named(
    fleet: Option<&FleetClient>,
    what: &'static str,
    owner: &AppName,
    api: &Arc<str>,
    rate: Rate,
    local: impl FnOnce(Rate) -> Result<(), Duration>,
) -> Result<(), Duration> {
    let mut share = 1;
    if let Some(f) = fleet {
        let ask = Ask {
            app: owner,
            api,
            limits: std::slice::from_ref(&rate),
            recipients: &[],
            robot: None,
            share: 1,
        };
        match crate::fleet::quota::take(f, &ask).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(refusal)) => return Err(refusal.wait()),
            Err(FleetDown) => {
                f.fell_back(what);
                share = f.size.max(1);
            }
        }
    }
    local(Rate {
        count: (rate.count / share).max(1),
        per: rate.per,
    })
}

/// Takes one fetch from the local window in `slot` made for `local` (a window made for
/// another rate, by a reload, starts anew).
pub(crate) fn take_local(slot: &mut Option<LocalCap>, local: Rate) -> Result<(), Duration> {
    let now = tokio::time::Instant::now();
    let cap = match slot {
        Some(c) if c.rate == local => c,
        slot => slot.insert(LocalCap {
            rate: local,
            cells: Cells::new(1, now),
        }),
    };
    window::take_all(&mut [(&mut cap.cells, std::slice::from_ref(&local))], now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{App, AppName, Secret};

    fn app() -> AppTokens {
        AppTokens::new(App {
            name: AppName("hr".into()),
            corp_id: "ww1".into(),
            agent_id: Some(1),
            secret: Secret::new("s1"),
            secret_source: "env X".into(),
            default: true,
        })
    }

    fn rate(count: u32, secs: u64) -> Rate {
        Rate {
            count,
            per: Duration::from_secs(secs),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_local_cap_refuses_past_its_rate_until_the_window_has_room() {
        let app = app();
        let cap = rate(3, 60);
        for _ in 0..3 {
            assert_eq!(take(None, &app, cap).await, Ok(()));
        }
        let wait = take(None, &app, cap)
            .await
            .expect_err("a fourth in a minute");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(61),
            "{wait:?}"
        );
        // The three were taken together and leave the window together.
        tokio::time::advance(wait).await;
        for _ in 0..3 {
            assert_eq!(take(None, &app, cap).await, Ok(()));
        }
        assert!(take(None, &app, cap).await.is_err());
        // A reload that changes the cap starts counting anew under it.
        assert_eq!(take(None, &app, rate(10, 60)).await, Ok(()));
    }
}
