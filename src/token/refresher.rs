//! The background refresher: keeps every app's token fresh so calls never wait for `gettoken`.
//!
//! Once a second it looks at each app of the current runtime. An app with no token, or whose
//! token expires within `token.refresh_before_expiry`, gets a fetch (through the store, so it is
//! still one fetch at a time per app). After a failure it waits with exponential backoff
//! ([`RETRY_BASE`] doubling up to [`RETRY_MAX`], jittered) while the old token, if still valid,
//! keeps serving.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::watch;

use super::AppTokens;
use crate::state::Shared;

/// How often the refresher looks at the apps.
pub const TICK: Duration = Duration::from_secs(1);
/// First wait after a failed background fetch.
pub const RETRY_BASE: Duration = Duration::from_secs(1);
/// Longest wait between failed background fetches.
pub const RETRY_MAX: Duration = Duration::from_secs(60);

/// Backoff after `failures` consecutive failures: uniform in [d/2, d] where d doubles from
/// `RETRY_BASE` up to `RETRY_MAX`.
pub fn retry_delay(failures: u32, rng: &mut impl Rng) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    let d = RETRY_BASE.saturating_mul(1 << exp).min(RETRY_MAX);
    let half = d / 2;
    half + Duration::from_nanos(rng.random_range(0..=half.as_nanos() as u64))
}

fn due(shared: &Shared, app: &AppTokens, refresh_before: Duration, now: Instant) -> bool {
    if app.fetching() {
        return false;
    }
    let status = app.status();
    if status.retry_at.is_some_and(|at| now < at) {
        return false;
    }
    match shared.tokens.peek(app) {
        None => true,
        Some(t) => t.expires_in(now) <= refresh_before,
    }
}

/// Runs until `shutdown` turns true.
pub async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let runtime = shared.runtime.load_full();
        let refresh_before = runtime.config.token.refresh_before_expiry;
        let now = Instant::now();
        for app in runtime.all_tokens() {
            if !due(&shared, app, refresh_before, now) {
                continue;
            }
            let (shared, runtime, app) = (shared.clone(), runtime.clone(), app.clone());
            tokio::spawn(async move {
                let src = runtime.source_of(&shared, &app);
                if shared
                    .tokens
                    .refresh_ahead(&app, &src, refresh_before)
                    .await
                    .is_err()
                {
                    let failures = app.status().consecutive_failures;
                    let delay = retry_delay(failures, &mut rand::rng());
                    app.with_status(|s| s.retry_at = Some(Instant::now() + delay));
                }
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_doubles_and_caps_with_jitter() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..100 {
            let d1 = retry_delay(1, &mut rng);
            assert!(d1 >= Duration::from_millis(500) && d1 <= Duration::from_secs(1));
            let d3 = retry_delay(3, &mut rng);
            assert!(d3 >= Duration::from_secs(2) && d3 <= Duration::from_secs(4));
            let d20 = retry_delay(20, &mut rng);
            assert!(d20 >= RETRY_MAX / 2 && d20 <= RETRY_MAX);
        }
    }
}
