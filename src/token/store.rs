//! The token cache ([`TokenStore`]): one fetch at a time per app, every gettoken past the
//! app's bounds and `max_fetches`, tokens shared through the fleet when it is on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache;
use moka::Expiry;

use super::bounds::{self, Hold, Purpose};
use super::{cap, fetch, fleet, AppTokens, Token, TokenError, TokenKey, TokenSource};
use crate::config::TokenSettings;
use crate::metrics::Metrics;

/// Why a fetch is wanted; decides what a fetch that finds a cached token does.
#[derive(Debug, Clone)]
pub(crate) enum Want {
    /// Any valid token will do.
    Any,
    /// A token other than the rejected one.
    Replace { rejected: u64, value: Arc<str> },
    /// A token not due for refresh.
    Fresh { refresh_before: Duration },
}

/// A cached token lives until it expires at WeCom. Both hooks are needed: moka keeps the old
/// entry's expiry when a key is written again unless `expire_after_update` says otherwise, and
/// a refresh writes the new token over the old one while that one is still valid.
struct TokenExpiry;

impl<K> Expiry<K, Arc<Token>> for TokenExpiry {
    fn expire_after_create(
        &self,
        _key: &K,
        value: &Arc<Token>,
        created_at: Instant,
    ) -> Option<Duration> {
        Some(value.expires_at.saturating_duration_since(created_at))
    }

    fn expire_after_update(
        &self,
        _key: &K,
        value: &Arc<Token>,
        updated_at: Instant,
        _until_old_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.expires_at.saturating_duration_since(updated_at))
    }
}

/// The token cache shared by every request and the background refresher.
pub struct TokenStore {
    /// Hashed with aHash (keyed at random), as the quota state is: a token is looked up on
    /// every call, and moka's default SipHash cost about twice as much per lookup.
    cache: Cache<TokenKey, Arc<Token>, ahash::RandomState>,
    /// Fleet mode: tokens shared through Redis.
    fleet: Option<Arc<crate::fleet::FleetClient>>,
    serial: AtomicU64,
    metrics: Arc<Metrics>,
}

impl TokenStore {
    pub fn new(metrics: Arc<Metrics>, fleet: Option<Arc<crate::fleet::FleetClient>>) -> Self {
        TokenStore {
            fleet,
            cache: Cache::builder()
                .max_capacity(10_000)
                .expire_after(TokenExpiry)
                .build_with_hasher(ahash::RandomState::new()),
            serial: AtomicU64::new(1),
            metrics,
        }
    }

    /// The cached token, if a valid one is there. Never fetches.
    pub fn peek(&self, app: &AppTokens) -> Option<Arc<Token>> {
        self.cache
            .get(&app.key)
            .filter(|t| t.expires_at > Instant::now())
    }

    /// A valid token for `app`, fetching one if none is cached.
    pub async fn get(
        &self,
        app: &AppTokens,
        src: &TokenSource<'_>,
    ) -> Result<Arc<Token>, TokenError> {
        if let Some(t) = self.peek(app) {
            return Ok(t);
        }
        // Boxed: a fetch is rare, and inline its ~8 KB of state would be part of every call's
        // future (and copied whenever that moves).
        Box::pin(self.fetch(app, src, Want::Any)).await
    }

    /// A token other than `rejected`, which WeCom refused (40014/42001/40001).
    pub async fn replace(
        &self,
        app: &AppTokens,
        src: &TokenSource<'_>,
        rejected: &Token,
    ) -> Result<Arc<Token>, TokenError> {
        Box::pin(self.fetch(
            app,
            src,
            Want::Replace {
                rejected: rejected.serial,
                value: rejected.value.clone(),
            },
        ))
        .await
    }

    /// Fetches ahead of expiry if the cached token expires within `refresh_before`.
    pub async fn refresh_ahead(
        &self,
        app: &AppTokens,
        src: &TokenSource<'_>,
        refresh_before: Duration,
    ) -> Result<Arc<Token>, TokenError> {
        self.fetch(app, src, Want::Fresh { refresh_before }).await
    }

    async fn fetch(
        &self,
        app: &AppTokens,
        src: &TokenSource<'_>,
        want: Want,
    ) -> Result<Arc<Token>, TokenError> {
        let _one_at_a_time = app.fetch_lock.lock().await;
        let now = Instant::now();
        let cached = self.peek(app);
        if let Some(t) = &cached {
            let good = match &want {
                Want::Any => true,
                // Not the rejected token, by serial or by value (WeCom hands out the same
                // value again while it is valid, so a newer serial can carry it).
                Want::Replace { rejected, value } => {
                    t.serial != *rejected && t.expose() != &**value
                }
                Want::Fresh { refresh_before } => t.expires_in(now) > *refresh_before,
            };
            if good {
                return Ok(t.clone());
            }
        }
        let history = app.status().history;
        // A cached token that is not good is the rejected one (Replace) or one due (Fresh).
        let purpose = match (&want, &cached) {
            (_, None) | (Want::Any, _) => Purpose::Missing,
            (Want::Fresh { .. }, Some(_)) => Purpose::Refresh,
            (Want::Replace { .. }, Some(t)) => Purpose::Rejected {
                replacement: history.replacement == Some(t.serial),
            },
        };
        if let Err((hold, until)) = bounds::decide(&history, purpose, now, src.bounds) {
            let retry_in = until.saturating_duration_since(now);
            return Err(self.held(app, &want, hold, retry_in, src.bounds));
        }
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        // The caller (a call at its deadline, an app that hung up) may drop this future while
        // gettoken is under way: that gettoken still reached WeCom, so it counts as a failed
        // fetch and is backed off from, or every next caller would start another one at once.
        let abandoned = Abandoned {
            store: self,
            app,
            bounds: src.bounds,
            armed: true,
        };
        let result = match self.fleet.as_ref().filter(|f| f.share_tokens) {
            Some(f) => match fleet::fetch(f, app, src, &want, serial).await {
                Ok(r) => r,
                Err(crate::fleet::FleetDown) => {
                    f.fell_back("token");
                    gettoken_capped(Some(f), app, src, serial)
                        .await
                        .map(|t| (t, true))
                }
            },
            None => gettoken_capped(self.fleet.as_deref(), app, src, serial)
                .await
                .map(|t| (t, true)),
        };
        abandoned.disarm();
        let app_label = app.app.name.as_str();
        match result {
            Ok((token, fetched)) => {
                let token = Arc::new(token);
                crate::redact::learn_token(app_label, token.expose(), token.expires_at);
                self.cache.insert(app.key.clone(), token.clone());
                if fetched {
                    self.metrics
                        .token_refresh
                        .with_label_values(&[app_label, "ok"])
                        .inc();
                }
                let done = Instant::now();
                app.with_status(|s| {
                    s.tried = true;
                    s.last_refresh = Some(token.fetched_at);
                    s.consecutive_failures = 0;
                    s.last_error = None;
                    let h = &mut s.history;
                    h.last_ok_at = Some(done);
                    if fetched {
                        h.last_attempt_at = Some(done);
                    }
                    // A token fetched because one was rejected: if it is rejected as well,
                    // a fresh token does not cure the error.
                    h.replacement = matches!(want, Want::Replace { .. }).then_some(token.serial);
                    h.retry_at = None;
                    h.logged = None;
                });
                tracing::info!(
                    app = app_label,
                    token = %token.fingerprint(),
                    expires_in_s = token.expires_in(Instant::now()).as_secs(),
                    replacement = matches!(want, Want::Replace { .. }),
                    "token fetched"
                );
                Ok(token)
            }
            Err(TokenError::Held {
                hold: Hold::Capped,
                retry_in,
            }) => {
                app.with_status(|s| {
                    s.history.capped_until = Instant::now().checked_add(retry_in);
                });
                if matches!(want, Want::Fresh { .. }) {
                    // The refusal itself, though no call waits on it (`held` counts calls).
                    self.metrics
                        .token_fetch_capped
                        .with_label_values(&[app_label])
                        .inc();
                }
                Err(self.held(app, &want, Hold::Capped, retry_in, src.bounds))
            }
            Err(e) => {
                self.failed(app, &e, src.bounds);
                // A still-valid cached token stays in the cache and keeps serving `get`.
                Err(e)
            }
        }
    }

    /// Records a failed fetch: counted, logged, and backed off from.
    fn failed(&self, app: &AppTokens, e: &TokenError, b: &TokenSettings) {
        let app_label = app.app.name.as_str();
        self.metrics
            .token_refresh
            .with_label_values(&[app_label, "error"])
            .inc();
        let delay = app.with_status(|s| {
            s.tried = true;
            s.refresh_failures += 1;
            s.consecutive_failures = s.consecutive_failures.saturating_add(1);
            s.last_error = Some(e.clone());
            let delay = bounds::backoff(
                s.consecutive_failures,
                b.min_fetch_interval,
                &mut rand::rng(),
            );
            let done = Instant::now();
            s.history.last_attempt_at = Some(done);
            s.history.retry_at = Some(done + delay);
            delay
        });
        tracing::warn!(
            app = app_label,
            error = %e,
            retry_in_ms = delay.as_millis() as u64,
            "token fetch failed"
        );
    }

    /// A fetch the bounds hold: counted and logged (when the hold starts), and what the caller
    /// gets: during a backoff the last failure, else [`TokenError::Held`].
    fn held(
        &self,
        app: &AppTokens,
        want: &Want,
        hold: Hold,
        retry_in: Duration,
        b: &TokenSettings,
    ) -> TokenError {
        let app_label = app.app.name.as_str();
        let background = matches!(want, Want::Fresh { .. });
        let (last_error, first) = app.with_status(|s| {
            let first = s.history.logged != Some(hold);
            s.history.logged = Some(hold);
            (s.last_error.clone(), first)
        });
        if !background {
            self.metrics
                .token_held
                .with_label_values(&[app_label, hold.as_str()])
                .inc();
            if hold == Hold::Capped {
                self.metrics
                    .token_fetch_capped
                    .with_label_values(&[app_label])
                    .inc();
            }
        }
        let retry_in_s = retry_in.as_secs_f64().ceil() as u64;
        if hold == Hold::Capped && first {
            tracing::warn!(
                app = app_label,
                max_fetches = %b.max_fetches,
                retry_in_s,
                "gettoken capped: the app reached token.max_fetches; calls that need a new token get no-token until the window has room"
            );
        } else if first && !background {
            tracing::warn!(
                app = app_label,
                hold = hold.as_str(),
                retry_in_s,
                "gettoken held: {hold}"
            );
        } else {
            tracing::debug!(
                app = app_label,
                hold = hold.as_str(),
                retry_in_s,
                "gettoken held"
            );
        }
        match (hold, last_error) {
            (Hold::Backoff, Some(e)) => e,
            _ => TokenError::Held { hold, retry_in },
        }
    }
}

/// A fetch under way; dropped before [`Abandoned::disarm`] (its caller went away), it records
/// the fetch as failed.
struct Abandoned<'a> {
    store: &'a TokenStore,
    app: &'a AppTokens,
    bounds: &'a TokenSettings,
    armed: bool,
}

impl Abandoned<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        if self.armed {
            let e = TokenError::Unavailable(
                "gettoken abandoned: the calls waiting for it ended first (deadline or app gone)"
                    .into(),
            );
            self.store.failed(self.app, &e, self.bounds);
        }
    }
}

/// One gettoken, if `max_fetches` has room for it (fleet-wide when `fleet` is set).
pub(super) async fn gettoken_capped(
    fleet: Option<&crate::fleet::FleetClient>,
    app: &AppTokens,
    src: &TokenSource<'_>,
    serial: u64,
) -> Result<Token, TokenError> {
    if let Err(retry_in) = cap::take(fleet, app, src.bounds.max_fetches).await {
        return Err(TokenError::Held {
            hold: Hold::Capped,
            retry_in,
        });
    }
    fetch::gettoken_from(src, &app.app, serial).await
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
