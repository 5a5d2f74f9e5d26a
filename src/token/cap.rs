//! The hard cap on gettoken per app, `token.max_fetches` (SPEC "Bounds", bullet 1).
//!
//! Each gettoken takes one slot of a sliding window (the quota limiter's algorithm,
//! `quota::window`). In fleet mode the window lives in Redis (the fleet quota script, keyed by
//! app and token realm) so the cap is the fleet's; while Redis cannot decide, each sidecar counts
//! locally against its share (`max_fetches / fleet.size`, at least 1), as the quotas do.

use std::sync::Arc;
use std::time::Duration;

use super::AppTokens;
use crate::config::Rate;
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
    let mut share = 1;
    if let Some(f) = fleet {
        let api: Arc<str> = match &app.key.realm {
            Some(realm) => format!("gettoken@{realm}").into(),
            None => Arc::from("gettoken"),
        };
        let ask = Ask {
            app: &app.app.name,
            api: &api,
            limits: std::slice::from_ref(&rate),
            recipients: &[],
            robot: None,
            share: 1,
        };
        match crate::fleet::quota::take(f, &ask).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(refusal)) => return Err(refusal.wait()),
            Err(FleetDown) => {
                f.fell_back("token");
                share = f.size.max(1);
            }
        }
    }
    let local = Rate {
        count: (rate.count / share).max(1),
        per: rate.per,
    };
    let now = tokio::time::Instant::now();
    app.with_status(|s| {
        let cap = match &mut s.cap {
            Some(c) if c.rate == local => c,
            slot => slot.insert(LocalCap {
                rate: local,
                cells: Cells::new(1, now),
            }),
        };
        window::take_all(&mut [(&mut cap.cells, std::slice::from_ref(&local))], now)
    })
}
