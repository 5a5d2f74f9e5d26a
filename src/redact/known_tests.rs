//! The registry's bookkeeping on registries of the test's own (not the process-wide one, which
//! other tests share): which tokens are held (until their expiry instant, the newest
//! [`MAX_TOKENS`]) and which configs' secrets.

use std::time::Duration;

use super::*;

fn empty() -> Known {
    Known::build(Vec::new(), Vec::new(), VecDeque::new())
}

fn learn(k: &Known, app: &str, token: &str, expires_at: Instant, now: Instant) -> Known {
    k.with_token(&Arc::from(app), &Arc::from(token), expires_at, now)
}

fn held(k: &Known) -> Vec<String> {
    k.tokens.iter().map(|t| t.value.to_string()).collect()
}

const SEC: Duration = Duration::from_secs(1);

#[test]
fn a_token_stands_for_its_app_until_its_expiry_instant_and_not_from_it_on() {
    let t0 = Instant::now();
    let k = learn(
        &empty(),
        "hr-bot",
        "token-one-0123456789",
        t0 + 10 * SEC,
        t0,
    );
    let k = learn(
        &k,
        "ops-bot",
        "token-two-0123456789",
        t0 + 20 * SEC,
        t0 + 5 * SEC,
    );
    assert_eq!(held(&k), ["token-one-0123456789", "token-two-0123456789"]);
    assert_eq!(
        k.redactor
            .redact_str("a token-one-0123456789 b token-two-0123456789", &[]),
        "a hr-bot b ops-bot"
    );
    // At token one's expiry instant it is no longer held; token two still is.
    let k = learn(
        &k,
        "hr-bot",
        "token-three-0123456789",
        t0 + 30 * SEC,
        t0 + 10 * SEC,
    );
    assert_eq!(held(&k), ["token-two-0123456789", "token-three-0123456789"]);
    assert!(!k.redactor.holds(b"token-one-0123456789"));
    assert!(k.redactor.holds(b"token-two-0123456789"));
}

#[test]
fn a_token_learnt_again_is_held_once_with_its_new_app_and_expiry() {
    let t0 = Instant::now();
    let k = learn(&empty(), "hr-bot", "token-a-0123456789", t0 + 10 * SEC, t0);
    let k = learn(&k, "hr-bot", "token-b-0123456789", t0 + 10 * SEC, t0);
    let k = learn(&k, "ops-bot", "token-a-0123456789", t0 + 60 * SEC, t0);
    assert_eq!(held(&k), ["token-b-0123456789", "token-a-0123456789"]);
    assert_eq!(k.redactor.redact_str("token-a-0123456789", &[]), "ops-bot");
    // Past the first expiry, the one learnt again is still held.
    let k = learn(
        &k,
        "hr-bot",
        "token-c-0123456789",
        t0 + 90 * SEC,
        t0 + 30 * SEC,
    );
    assert_eq!(held(&k), ["token-a-0123456789", "token-c-0123456789"]);
}

#[test]
fn the_newest_max_tokens_are_held() {
    let t0 = Instant::now();
    let later = t0 + 3600 * SEC;
    let name = |i: usize| format!("token-{i:05}-0123456789");
    let mut k = empty();
    for i in 0..=MAX_TOKENS {
        k = learn(&k, "hr-bot", &name(i), later, t0);
    }
    assert_eq!(k.tokens.len(), MAX_TOKENS);
    assert!(
        !k.redactor.holds(name(0).as_bytes()),
        "the oldest is forgotten"
    );
    assert!(k.redactor.holds(name(1).as_bytes()));
    assert!(k.redactor.holds(name(MAX_TOKENS).as_bytes()));
}

#[test]
fn the_secrets_of_the_config_in_force_and_of_the_one_before_it_are_held() {
    let s = |v: &str| vec![Arc::<str>::from(v)];
    let k = empty().with_config(&s("secret-one-0123456789")).unwrap();
    assert!(
        k.with_config(&s("secret-one-0123456789")).is_none(),
        "unchanged"
    );
    let k = k.with_config(&s("secret-two-0123456789")).unwrap();
    assert_eq!(
        k.redactor
            .redact_str("secret-one-0123456789 secret-two-0123456789", &[]),
        "*** ***"
    );
    let k = k.with_config(&s("secret-three-0123456789")).unwrap();
    assert!(!k.redactor.holds(b"secret-one-0123456789"));
    assert!(k.redactor.holds(b"secret-two-0123456789"));
    // Tokens are kept across config changes.
    let t0 = Instant::now();
    let k = learn(&k, "hr-bot", "token-kept-0123456789", t0 + 10 * SEC, t0);
    let k = k.with_config(&s("secret-four-0123456789")).unwrap();
    assert_eq!(held(&k), ["token-kept-0123456789"]);
}
