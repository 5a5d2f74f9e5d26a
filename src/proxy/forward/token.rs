//! The token a call carries: fetched for the realm of the upstream an attempt goes to (again
//! when a retry moves the call to an upstream with tokens of its own), and replaced once when
//! WeCom rejects it.

use std::sync::Arc;

use tokio::time::Instant;

use crate::config::UpstreamName;
use crate::metrics::Metrics;
use crate::token::bounds::Hold;
use crate::token::{AppTokens, Token, TokenError, TokenSource, TokenStore};

/// The token in hand and whose it is (its realm: `None` for the shared one).
#[derive(Default)]
pub(super) struct InHand {
    token: Option<Arc<Token>>,
    realm: Option<Option<UpstreamName>>,
}

impl InHand {
    /// Holds a token of `tokens`' realm, fetching one if the token in hand is another realm's
    /// (or there is none yet).
    pub async fn ensure(
        &mut self,
        store: &TokenStore,
        tokens: &AppTokens,
        src: &TokenSource<'_>,
    ) -> Result<(), TokenError> {
        if self.realm.as_ref() != Some(&tokens.key.realm) {
            self.token = Some(store.get(tokens, src).await?);
            self.realm = Some(tokens.key.realm.clone());
        }
        Ok(())
    }

    pub fn get(&self) -> Option<&Arc<Token>> {
        self.token.as_ref()
    }

    /// Takes `token` in place of the one WeCom rejected (same realm).
    pub fn replace(&mut self, token: Arc<Token>) {
        self.token = Some(token);
    }
}

/// A replacement for `rejected`. Rejected right after a fetch, the replacement is allowed
/// `min_refetch` after it: this waits for that if the deadline leaves time (the waiters share
/// one fetch).
pub(super) async fn renew(
    store: &TokenStore,
    tokens: &AppTokens,
    src: &TokenSource<'_>,
    rejected: &Token,
    deadline_at: Instant,
) -> Result<Arc<Token>, TokenError> {
    let replaced = store.replace(tokens, src, rejected).await;
    if let Err(TokenError::Held {
        hold: Hold::Refetch,
        retry_in,
    }) = &replaced
    {
        if Instant::now() + *retry_in < deadline_at {
            tokio::time::sleep(*retry_in).await;
            return store.replace(tokens, src, rejected).await;
        }
    }
    replaced
}

/// A token error WeCom answered that the sidecar passes on as it is (the fresh token was
/// rejected too, or the gettoken bounds allow no new one yet): counted, and logged at debug
/// (the store logs the hold when it starts).
pub(super) fn error_passed(metrics: &Metrics, tokens: &AppTokens, upstream: &str, code: i64) {
    metrics
        .token_rejected
        .with_label_values(&[tokens.app.name.as_str(), upstream])
        .inc();
    tracing::debug!(
        app = %tokens.app.name,
        upstream = %upstream,
        errcode = code,
        "token error passed to the app"
    );
}
