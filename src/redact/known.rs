//! The process-wide registry of what is secret: the app secrets and client keys of the config
//! in force and of the one before it ([`learn_config`]), and the tokens the sidecar holds until
//! they expire ([`learn_token`]), built into one [`Redactor`] whenever it changes, never per
//! call ([`known`]).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use arc_swap::ArcSwap;

use super::{Pattern, Redactor, MASK};

/// How many unexpired tokens are remembered (newest kept); normally one per app and realm.
pub const MAX_TOKENS: usize = 256;

/// A token the sidecar holds, the app it stands for, and when it stops being one.
#[derive(Clone)]
struct KnownToken {
    value: Arc<str>,
    app: Arc<str>,
    expires_at: Instant,
}

/// What the process knows is secret.
struct Known {
    /// App secrets and client keys of the config in force, then of the one before it.
    configured: Vec<Arc<str>>,
    previous: Vec<Arc<str>>,
    /// Tokens not yet expired, oldest first.
    tokens: VecDeque<KnownToken>,
    redactor: Arc<Redactor>,
}

impl Known {
    fn build(
        configured: Vec<Arc<str>>,
        previous: Vec<Arc<str>>,
        tokens: VecDeque<KnownToken>,
    ) -> Known {
        let mask: Arc<str> = MASK.into();
        let mut patterns = Vec::new();
        // Tokens first: a token equal to a secret (never in practice) stands for its app.
        for t in tokens.iter().rev() {
            patterns.extend(Pattern::forms(&t.value, &t.app));
        }
        for s in configured.iter().chain(previous.iter()) {
            patterns.extend(Pattern::forms(s, &mask));
        }
        Known {
            configured,
            previous,
            tokens,
            redactor: Arc::new(Redactor::new(patterns)),
        }
    }

    /// This registry with `next` as the config in force and the config now in force as the
    /// one before it; `None` when `next` is the config in force already.
    fn with_config(&self, next: &[Arc<str>]) -> Option<Known> {
        if self.configured == next {
            return None;
        }
        Some(Known::build(
            next.to_vec(),
            self.configured.clone(),
            self.tokens.clone(),
        ))
    }

    /// This registry with `token` of `app` learnt at `now`, held until `expires_at`; the
    /// tokens expired by `now` forgotten, and the oldest past [`MAX_TOKENS`].
    fn with_token(
        &self,
        app: &Arc<str>,
        token: &Arc<str>,
        expires_at: Instant,
        now: Instant,
    ) -> Known {
        let mut tokens: VecDeque<KnownToken> = self
            .tokens
            .iter()
            .filter(|t| t.expires_at > now && t.value != *token)
            .cloned()
            .collect();
        tokens.push_back(KnownToken {
            value: token.clone(),
            app: app.clone(),
            expires_at,
        });
        while tokens.len() > MAX_TOKENS {
            tokens.pop_front();
        }
        Known::build(self.configured.clone(), self.previous.clone(), tokens)
    }
}

static KNOWN: LazyLock<ArcSwap<Known>> =
    LazyLock::new(|| ArcSwap::from_pointee(Known::build(Vec::new(), Vec::new(), VecDeque::new())));

/// Everything known to be secret now, searched for together.
pub fn known() -> Arc<Redactor> {
    KNOWN.load().redactor.clone()
}

/// The config now in force holds these secrets (app secrets, client keys); those of the config
/// before stay known too, for the calls still running on it.
pub fn learn_config<'a>(secrets: impl IntoIterator<Item = &'a str>) {
    let next: Vec<Arc<str>> = secrets.into_iter().map(Arc::from).collect();
    KNOWN.rcu(|k| match k.with_config(&next) {
        None => k.clone(),
        Some(known) => Arc::new(known),
    });
}

/// `token` is a token of app `app` until `expires_at`: until then it stands for the app's name
/// wherever an upstream quotes it. Expired tokens are forgotten (they are no longer held, and
/// every pattern kept costs a little on each answer); at most [`MAX_TOKENS`] are kept.
pub fn learn_token(app: &str, token: &str, expires_at: Instant) {
    if KNOWN.load().tokens.iter().any(|t| &*t.value == token) {
        return;
    }
    let (app, token): (Arc<str>, Arc<str>) = (app.into(), token.into());
    KNOWN.rcu(|k| Arc::new(k.with_token(&app, &token, expires_at, Instant::now())));
}

/// Text an upstream wrote (an errmsg, an error quoting one), with every known secret and
/// token taken out, and `extra` (e.g. the secret the request carried). For what is stored,
/// logged or answered.
pub fn upstream_text<'t>(text: &'t str, extra: &[Pattern]) -> Cow<'t, str> {
    known().redact_str(text, extra)
}

#[cfg(test)]
#[path = "known_tests.rs"]
mod registry_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learnt_tokens_and_config_secrets_are_known() {
        let later = Instant::now() + std::time::Duration::from_secs(60);
        learn_token("ops-bot", "tok-learnt-in-a-test-000111222333", later);
        learn_config(["secret-learnt-in-a-test-999888"]);
        let text = "a tok-learnt-in-a-test-000111222333 b secret-learnt-in-a-test-999888";
        assert_eq!(upstream_text(text, &[]), "a ops-bot b ***");
    }

    #[test]
    fn expired_tokens_are_forgotten() {
        let past = Instant::now();
        learn_token("hr-bot", "tok-expired-in-a-test-44556677", past);
        let later = Instant::now() + std::time::Duration::from_secs(60);
        learn_token("hr-bot", "tok-fresh-in-a-test-8899aabbcc", later);
        let k = known();
        assert!(k.holds(b"tok-fresh-in-a-test-8899aabbcc"));
        assert!(!k.holds(b"tok-expired-in-a-test-44556677"));
    }
}
