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

use arc_swap::ArcSwap;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::watch;

use super::bounds::{self, Purpose};
use super::{AppTokens, TokenSource, TokenStore};
use crate::config::TokenSettings;
use crate::upstream::resolve::Resolver;

/// How often the refresher looks at the apps.
pub const TICK: Duration = Duration::from_secs(1);

/// What the refresher reads of the runtime in force (the composition root's runtime, swapped
/// on reload, implements it): every app's token state and where its tokens come from.
pub trait Realms: Send + Sync {
    /// The gettoken bounds in force (`token.*`).
    fn bounds(&self) -> &TokenSettings;
    /// Every app's token state, in every realm.
    fn token_states(&self) -> impl Iterator<Item = &Arc<AppTokens>>;
    /// Where the tokens of `tokens` come from.
    fn source_of<'a>(&'a self, resolver: &'a Resolver, tokens: &AppTokens) -> TokenSource<'a>;
}

fn due(store: &TokenStore, app: &AppTokens, b: &TokenSettings, now: Instant) -> bool {
    if app.fetching() {
        return false;
    }
    let purpose = match store.peek(app) {
        None => Purpose::Missing,
        Some(t) if t.expires_in(now) <= b.refresh_before_expiry => Purpose::Refresh,
        Some(_) => return false,
    };
    bounds::decide(&app.status().history, purpose, now, b).is_ok()
}

/// Runs until `shutdown` turns true; refreshes already under way are let finish.
///
/// Each refresh runs beside the ticks (a slow `gettoken` of one app never delays another's),
/// as a future of this task: it borrows the store and the resolver instead of owning them.
pub async fn run<R: Realms>(
    store: &TokenStore,
    resolver: &Resolver,
    runtime: &ArcSwap<R>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut refreshing = FuturesUnordered::new();
    loop {
        let current = runtime.load_full();
        let now = Instant::now();
        for app in current.token_states() {
            if !due(store, app, current.bounds(), now) {
                continue;
            }
            let (current, app) = (current.clone(), app.clone());
            refreshing.push(async move {
                let src = current.source_of(resolver, &app);
                let refresh_before = current.bounds().refresh_before_expiry;
                // A failure is recorded by the store (backoff included) and logged there.
                let _ = store.refresh_ahead(&app, &src, refresh_before).await;
            });
        }
        let tick = tokio::time::sleep(TICK);
        tokio::pin!(tick);
        loop {
            tokio::select! {
                _ = &mut tick => break,
                _ = shutdown.changed() => break,
                Some(()) = refreshing.next(), if !refreshing.is_empty() => {}
            }
        }
        if *shutdown.borrow() {
            while refreshing.next().await.is_some() {}
            return;
        }
    }
}
