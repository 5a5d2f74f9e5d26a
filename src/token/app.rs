//! An app's token state beside the cache: its key (app, credentials, realm), its fetch lock,
//! the history the gettoken bounds decide from and what the status page shows; and
//! [`TokenSource`], where its tokens are fetched from.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::bounds::{self, Hold, Purpose};
use super::cap::LocalCap;
use super::TokenError;
use crate::config::{App, AppName, TokenSettings};
use crate::upstream::resolve::Resolver;
use crate::upstream::UpstreamRt;

/// Cache key: the app and a hash of its credentials, so a changed secret or corp id is a new
/// key (its old token is never served) while an unchanged app keeps its token across reloads.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TokenKey {
    pub app: AppName,
    credentials: u64,
    /// `None`: tokens of `primary` (shared by every `tokens: shared` upstream); else the
    /// upstream with `tokens: own` that issued them.
    pub realm: Option<crate::config::UpstreamName>,
}

impl TokenKey {
    pub fn for_app(app: &App) -> Self {
        Self::in_realm(app, None)
    }

    pub fn in_realm(app: &App, realm: Option<crate::config::UpstreamName>) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        app.corp_id.hash(&mut h);
        app.secret.expose().hash(&mut h);
        TokenKey {
            app: app.name.clone(),
            credentials: h.finish(),
            realm,
        }
    }
}

/// Per-app state beside the cache: the fetch lock and what the status page shows.
pub struct AppTokens {
    pub app: App,
    pub key: TokenKey,
    pub(super) fetch_lock: tokio::sync::Mutex<()>,
    status: Mutex<FetchStatus>,
}

/// What is known about an app's fetches.
#[derive(Clone, Debug, Default)]
pub struct FetchStatus {
    /// At least one fetch finished (ok or not).
    pub tried: bool,
    pub last_refresh: Option<SystemTime>,
    pub refresh_failures: u64,
    pub consecutive_failures: u32,
    pub last_error: Option<TokenError>,
    /// What the gettoken bounds decide from.
    pub history: bounds::History,
    /// `max_fetches` counted locally.
    pub(super) cap: Option<LocalCap>,
}

impl AppTokens {
    pub fn new(app: App) -> Self {
        Self::in_realm(app, None)
    }

    /// Tokens of `app` issued by the upstream `realm` (`tokens: own`), or by primary (`None`).
    pub fn in_realm(app: App, realm: Option<crate::config::UpstreamName>) -> Self {
        AppTokens {
            key: TokenKey::in_realm(&app, realm),
            app,
            fetch_lock: tokio::sync::Mutex::new(()),
            status: Mutex::new(FetchStatus::default()),
        }
    }

    /// The same tokens (same key, so the cached token stays) and fetch history, under `app`'s
    /// new settings. `app` must have the same credentials.
    pub fn with_settings(&self, app: App) -> Self {
        AppTokens {
            key: self.key.clone(),
            app,
            fetch_lock: tokio::sync::Mutex::new(()),
            status: Mutex::new(self.status()),
        }
    }

    pub fn status(&self) -> FetchStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn with_status<R>(&self, f: impl FnOnce(&mut FetchStatus) -> R) -> R {
        f(&mut self.status.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// A fetch for this app is under way.
    pub fn fetching(&self) -> bool {
        self.fetch_lock.try_lock().is_err()
    }

    /// Same app, same credentials: its tokens stay valid.
    pub fn same_credentials(&self, app: &App) -> bool {
        self.key == TokenKey::in_realm(app, self.key.realm.clone())
    }

    /// Whether the bounds would hold a gettoken for `purpose` now: why, and for how long.
    pub fn held(&self, purpose: Purpose, b: &TokenSettings) -> Option<(Hold, Duration)> {
        let now = Instant::now();
        bounds::decide(&self.status().history, purpose, now, b)
            .err()
            .map(|(hold, until)| (hold, until.saturating_duration_since(now)))
    }
}

/// Where tokens come from: the upstream that issues them, and for the shared realm the other
/// endpoints of the same WeCom (`tokens: shared`), asked when it cannot be reached.
pub struct TokenSource<'a> {
    pub upstream: &'a UpstreamRt,
    pub standbys: &'a [Arc<UpstreamRt>],
    pub resolver: &'a Resolver,
    /// The gettoken bounds in force (`token.*`).
    pub bounds: &'a TokenSettings,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_credentials_are_a_new_key() {
        use crate::config::Secret;
        let app = App {
            name: AppName("hr".into()),
            corp_id: "ww1".into(),
            agent_id: Some(1),
            secret: Secret::new("s1"),
            secret_source: "env X".into(),
            default: true,
        };
        let mut other = app.clone();
        other.secret = Secret::new("s2");
        assert_ne!(TokenKey::for_app(&app), TokenKey::for_app(&other));
        assert!(AppTokens::new(app.clone()).same_credentials(&app));
        assert!(!AppTokens::new(app).same_credentials(&other));
    }
}
