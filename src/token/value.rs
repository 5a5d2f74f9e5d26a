//! The token itself: its value (never printed by `Debug`), expiry, serial, and the short
//! fingerprint that names it in logs.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

/// An access token. `Debug` and `Display` never print its value.
pub struct Token {
    pub(super) value: Arc<str>,
    pub expires_at: Instant,
    pub fetched_at: SystemTime,
    /// Distinguishes tokens of one store; a rejection names the serial it saw.
    pub serial: u64,
}

impl Token {
    pub fn new(value: String, expires_at: Instant, fetched_at: SystemTime, serial: u64) -> Self {
        Token {
            value: value.into(),
            expires_at,
            fetched_at,
            serial,
        }
    }

    /// The token itself, for injection into the upstream request only.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// A short, non-reversible fingerprint for status pages and logs.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.value)
    }

    pub fn expires_in(&self, now: Instant) -> Duration {
        self.expires_at.saturating_duration_since(now)
    }
}

/// First 8 hex digits of SHA-256.
pub fn fingerprint(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    hex::encode(&digest[..4])
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(#{} sha256:{})", self.serial, self.fingerprint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_token() {
        let t = Token::new(
            "SECRET-TOKEN-VALUE".into(),
            Instant::now(),
            SystemTime::now(),
            7,
        );
        let shown = format!("{t:?}");
        assert!(!shown.contains("SECRET-TOKEN-VALUE"));
        assert!(shown.contains("#7"));
        assert_eq!(t.fingerprint().len(), 8);
    }
}
