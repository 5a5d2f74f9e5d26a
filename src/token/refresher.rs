//! The background refresher: keeps every app's token fresh so calls never wait for `gettoken`.
//!
//! Once a second it looks at each app of the current runtime. An app with no token, or whose
//! token expires within `token.refresh_before_expiry`, gets a fetch (through the store, so it is
//! still one fetch at a time per app) when the gettoken bounds allow one (`bounds`): not within
//! `min_fetch_interval` of the last success (a refresh that got the same token back, or one
//! already inside `refresh_before_expiry`, is kept until then), and after failures not before the
//! backoff ends (1 s doubling up to `min_fetch_interval`, set by the store). The old token, if
//! still valid, keeps serving meanwhile.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::bounds::{self, Purpose};
use super::AppTokens;
use crate::config::TokenSettings;
use crate::state::Shared;

/// How often the refresher looks at the apps.
pub const TICK: Duration = Duration::from_secs(1);

fn due(shared: &Shared, app: &AppTokens, b: &TokenSettings, now: Instant) -> bool {
    if app.fetching() {
        return false;
    }
    let purpose = match shared.tokens.peek(app) {
        None => Purpose::Missing,
        Some(t) if t.expires_in(now) <= b.refresh_before_expiry => Purpose::Refresh,
        Some(_) => return false,
    };
    bounds::decide(&app.status().history, purpose, now, b).is_ok()
}

/// Runs until `shutdown` turns true.
pub async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let runtime = shared.runtime.load_full();
        let refresh_before = runtime.config.token.refresh_before_expiry;
        let now = Instant::now();
        for app in runtime.all_tokens() {
            if !due(&shared, app, &runtime.config.token, now) {
                continue;
            }
            let (shared, runtime, app) = (shared.clone(), runtime.clone(), app.clone());
            tokio::spawn(async move {
                let src = runtime.source_of(&shared, &app);
                // A failure is recorded by the store (backoff included) and logged there.
                let _ = shared
                    .tokens
                    .refresh_ahead(&app, &src, refresh_before)
                    .await;
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
