//! Tokens sealed for Redis: what a fleet stores is encrypted and authenticated with a key only
//! the sidecars holding the app's secret can derive, so reading Redis (a dump, a replica, a
//! `MONITOR`) gives no usable `access_token`.
//!
//! The key is HMAC-SHA256(app secret, label ‖ Redis key name): every sidecar with the same
//! secret derives the same key, and a sealed token opens only under the key name it was stored
//! at. The expiry is authenticated data, so it cannot be moved either. ChaCha20-Poly1305 with a
//! random 96-bit nonce per seal (one seal per token lifetime: nonces never come near repeating).
//! Anything that does not open (another secret, an edited value, the clear format of older
//! versions) reads as "no token stored", and the sidecar fetches and stores a new one.

use hmac::{Hmac, Mac};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

const LABEL: &[u8] = b"wecom-sidecar fleet token v1\0";

/// A token as stored in Redis.
#[derive(Serialize, Deserialize)]
struct Stored {
    /// Hex of nonce ‖ ciphertext ‖ tag.
    sealed: String,
    /// Expiry, Unix milliseconds.
    exp: u64,
}

/// A stored token that opened.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened {
    pub token: String,
    /// Expiry, Unix milliseconds.
    pub exp: u64,
    /// The stored `sealed` field, to delete exactly this value later (compare before delete).
    pub sealed: String,
}

fn key(secret: &[u8], key_name: &str) -> LessSafeKey {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(LABEL);
    mac.update(key_name.as_bytes());
    let bytes = mac.finalize().into_bytes();
    LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &bytes).expect("a 32-byte key"))
}

/// The JSON to store for `token` under `key_name`, expiring at `exp` (Unix ms).
pub fn seal(secret: &[u8], key_name: &str, token: &str, exp: u64) -> String {
    let nonce: [u8; NONCE_LEN] = rand::random();
    let mut data = token.as_bytes().to_vec();
    key(secret, key_name)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(exp.to_be_bytes()),
            &mut data,
        )
        .expect("a token is far below ChaCha20-Poly1305's length limit");
    let sealed = hex::encode([&nonce[..], &data].concat());
    serde_json::to_string(&Stored { sealed, exp }).expect("plain fields serialize")
}

/// The token in `stored` if it was sealed under this secret and key name and is intact.
pub fn open(secret: &[u8], key_name: &str, stored: &str) -> Option<Opened> {
    let s: Stored = serde_json::from_str(stored).ok()?;
    let mut data = hex::decode(&s.sealed).ok()?;
    if data.len() < NONCE_LEN {
        return None;
    }
    let mut rest = data.split_off(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(&data).ok()?;
    let plain = key(secret, key_name)
        .open_in_place(nonce, Aad::from(s.exp.to_be_bytes()), &mut rest)
        .ok()?;
    let token = String::from_utf8(plain.to_vec()).ok()?;
    Some(Opened {
        token,
        exp: s.exp,
        sealed: s.sealed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"app-secret";
    const KEY: &str = "wecom-sidecar:t:wwcorp:1000002";
    const TOKEN: &str = "tok-abcdefghijklmnopqrstuvwxyz-0123456789";

    fn edit(stored: &str, f: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut v: serde_json::Value = serde_json::from_str(stored).unwrap();
        f(&mut v);
        v.to_string()
    }

    #[test]
    fn opens_what_it_sealed_and_hides_the_token() {
        let stored = seal(SECRET, KEY, TOKEN, 1_700_000_000_000);
        assert!(!stored.contains(TOKEN), "{stored}");
        assert!(!stored.contains("tok-"), "{stored}");
        let o = open(SECRET, KEY, &stored).expect("opens");
        assert_eq!(o.token, TOKEN);
        assert_eq!(o.exp, 1_700_000_000_000);
        let v: serde_json::Value = serde_json::from_str(&stored).unwrap();
        assert_eq!(v["sealed"], o.sealed.as_str());
        // A fresh nonce each time: the same token seals differently.
        assert_ne!(stored, seal(SECRET, KEY, TOKEN, 1_700_000_000_000));
    }

    #[test]
    fn opens_nothing_under_another_secret_or_key_name() {
        let stored = seal(SECRET, KEY, TOKEN, 1);
        assert_eq!(open(b"another-secret", KEY, &stored), None);
        assert_eq!(
            open(SECRET, "wecom-sidecar:t:wwcorp:1000003", &stored),
            None
        );
    }

    #[test]
    fn opens_nothing_edited() {
        let stored = seal(SECRET, KEY, TOKEN, 1_700_000_000_000);
        // A later expiry.
        let later = edit(&stored, |v| v["exp"] = 1_800_000_000_000u64.into());
        assert_eq!(open(SECRET, KEY, &later), None);
        // Each byte of nonce, ciphertext and tag is covered.
        let sealed = serde_json::from_str::<serde_json::Value>(&stored).unwrap()["sealed"]
            .as_str()
            .unwrap()
            .to_string();
        for i in (0..sealed.len()).step_by(2) {
            let mut s = sealed.clone().into_bytes();
            s[i] = if s[i] == b'0' { b'1' } else { b'0' };
            let s = String::from_utf8(s).unwrap();
            let edited = edit(&stored, |v| v["sealed"] = s.as_str().into());
            assert_eq!(open(SECRET, KEY, &edited), None, "byte {}", i / 2);
        }
        // Cut short.
        let short = edit(&stored, |v| v["sealed"] = sealed[..20].into());
        assert_eq!(open(SECRET, KEY, &short), None);
    }

    #[test]
    fn reads_old_clear_values_and_garbage_as_nothing() {
        for stored in [
            format!(r#"{{"v":"{TOKEN}","exp":1700000000000}}"#),
            r#"{"sealed":"zz","exp":1}"#.to_string(),
            r#"{"sealed":"abc","exp":1}"#.to_string(),
            r#"{"sealed":"","exp":1}"#.to_string(),
            "[1,2]".to_string(),
            "not json".to_string(),
            String::new(),
        ] {
            assert_eq!(open(SECRET, KEY, &stored), None, "{stored}");
        }
    }
}
