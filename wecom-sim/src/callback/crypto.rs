//! The simulator's own implementation of WeCom's callback crypto, written from WeCom's
//! documentation and independent of the sidecar's: what WeCom does to a push before it POSTs
//! it, and what it does to a passive reply it receives.
//!
//! - `msg_signature`: SHA-1 (lower-case hex) of token, timestamp, nonce and the encrypted text,
//!   sorted as byte strings and joined.
//! - Key: the 43-character `EncodingAESKey` with `=` appended, base64-decoded (32 bytes); IV:
//!   its first 16 bytes; AES-256-CBC.
//! - Plaintext: 16 random bytes, the message's length as 4 bytes big-endian, the message, the
//!   receive id (the corp id); padded PKCS#7-style to a multiple of 32 bytes; then base64.

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use rand::Rng;
use sha1::{Digest, Sha1};

/// WeCom's padding block (PKCS#7 with 32-byte blocks).
const BLOCK: usize = 32;

/// Standard base64 that takes an `EncodingAESKey` whose last character has bits set beyond
/// the key (WeCom's console makes such keys).
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const B64: GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// What went wrong opening a message (the simulator reports it as text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CryptoError {
    /// The `EncodingAESKey` is not 43 base64 characters.
    Key,
    /// The signature does not match.
    Signature,
    /// Not base64, not whole blocks, bad padding, or a length that does not fit.
    Decrypt,
    /// Decrypted for another receive id.
    ReceiveId,
}

impl std::fmt::Display for CryptoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CryptoError::Key => "the EncodingAESKey is not 43 base64 characters",
            CryptoError::Signature => "the signature does not match",
            CryptoError::Decrypt => "the encrypted text does not decrypt",
            CryptoError::ReceiveId => "the receive id is not the corp id",
        })
    }
}

/// One app's callback credentials as WeCom holds them.
#[derive(Clone)]
pub struct WeComCrypto {
    token: String,
    key: [u8; 32],
    receive_id: String,
}

impl std::fmt::Debug for WeComCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeComCrypto")
            .field("receive_id", &self.receive_id)
            .finish_non_exhaustive()
    }
}

impl WeComCrypto {
    pub fn new(token: &str, encoding_aes_key: &str, receive_id: &str) -> Result<Self, CryptoError> {
        if encoding_aes_key.len() != 43 {
            return Err(CryptoError::Key);
        }
        let bytes = LENIENT
            .decode(format!("{encoding_aes_key}="))
            .map_err(|_| CryptoError::Key)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::Key)?;
        Ok(WeComCrypto {
            token: token.to_string(),
            key,
            receive_id: receive_id.to_string(),
        })
    }

    /// `msg_signature` of `encrypted` with `timestamp` and `nonce`.
    pub fn signature(&self, timestamp: &str, nonce: &str, encrypted: &str) -> String {
        let mut parts = [self.token.as_str(), timestamp, nonce, encrypted];
        parts.sort();
        let mut sha = Sha1::new();
        sha.update(parts.concat().as_bytes());
        hex::encode(sha.finalize())
    }

    /// Encrypts `message` for this app's receive id, with fresh random bytes.
    pub fn encrypt(&self, message: &[u8]) -> String {
        let random: [u8; 16] = rand::rng().random();
        let mut plain = Vec::with_capacity(message.len() + self.receive_id.len() + 20 + BLOCK);
        plain.extend_from_slice(&random);
        plain.extend_from_slice(&(message.len() as u32).to_be_bytes());
        plain.extend_from_slice(message);
        plain.extend_from_slice(self.receive_id.as_bytes());
        let pad = BLOCK - plain.len() % BLOCK;
        plain.resize(plain.len() + pad, pad as u8);
        let len = plain.len();
        let iv: [u8; 16] = self.key[..16].try_into().expect("a 32-byte key");
        let sealed = cbc::Encryptor::<aes::Aes256>::new(&self.key.into(), &iv.into())
            .encrypt_padded_mut::<NoPadding>(&mut plain, len)
            .expect("whole blocks");
        B64.encode(sealed)
    }

    /// Checks the signature, decrypts, checks the receive id: the message.
    pub fn open(
        &self,
        signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypted: &str,
    ) -> Result<Vec<u8>, CryptoError> {
        if !self
            .signature(timestamp, nonce, encrypted)
            .eq_ignore_ascii_case(signature)
        {
            return Err(CryptoError::Signature);
        }
        self.decrypt(encrypted)
    }

    /// Decrypts `encrypted` and checks its receive id.
    pub fn decrypt(&self, encrypted: &str) -> Result<Vec<u8>, CryptoError> {
        let mut data = B64
            .decode(encrypted.trim())
            .map_err(|_| CryptoError::Decrypt)?;
        if data.is_empty() || data.len() % 16 != 0 {
            return Err(CryptoError::Decrypt);
        }
        let iv: [u8; 16] = self.key[..16].try_into().expect("a 32-byte key");
        let plain = cbc::Decryptor::<aes::Aes256>::new(&self.key.into(), &iv.into())
            .decrypt_padded_mut::<NoPadding>(&mut data)
            .map_err(|_| CryptoError::Decrypt)?;
        let pad = *plain.last().ok_or(CryptoError::Decrypt)? as usize;
        if pad == 0 || pad > BLOCK || pad > plain.len() {
            return Err(CryptoError::Decrypt);
        }
        let body = &plain[..plain.len() - pad];
        let len_bytes: [u8; 4] = body
            .get(16..20)
            .and_then(|b| b.try_into().ok())
            .ok_or(CryptoError::Decrypt)?;
        let len = u32::from_be_bytes(len_bytes) as usize;
        let message = body.get(20..20 + len).ok_or(CryptoError::Decrypt)?;
        if &body[20 + len..] != self.receive_id.as_bytes() {
            return Err(CryptoError::ReceiveId);
        }
        Ok(message.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // WeCom's documented example (its callback guide's sample app).
    const TOKEN: &str = "QDG6eK";
    const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
    const CORP: &str = "wx5823bf96d3bd56c7";

    #[test]
    fn wecoms_documented_echostr_opens() {
        let c = WeComCrypto::new(TOKEN, KEY, CORP).unwrap();
        let echostr = "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==";
        let plain = c
            .open(
                "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
                "1409659589",
                "263014780",
                echostr,
            )
            .unwrap();
        assert_eq!(plain, b"1616140317555161061");
    }

    #[test]
    fn round_trips_and_refuses_in_order() {
        let c = WeComCrypto::new(TOKEN, KEY, CORP).unwrap();
        for n in [0usize, 1, 11, 12, 31, 32, 33, 200] {
            let msg = vec![b'x'; n];
            let enc = c.encrypt(&msg);
            let sig = c.signature("1", "2", &enc);
            assert_eq!(c.open(&sig, "1", "2", &enc).unwrap(), msg);
            assert_eq!(c.open(&sig, "1", "3", &enc), Err(CryptoError::Signature));
        }
        let other = WeComCrypto::new(TOKEN, KEY, "wwother").unwrap();
        assert_eq!(
            other.decrypt(&c.encrypt(b"<xml/>")),
            Err(CryptoError::ReceiveId)
        );
        assert_eq!(c.decrypt("not base64!"), Err(CryptoError::Decrypt));
        assert_eq!(c.decrypt("AAAA"), Err(CryptoError::Decrypt));
        assert_eq!(
            WeComCrypto::new(TOKEN, "short", CORP).unwrap_err(),
            CryptoError::Key
        );
        assert!(!format!("{c:?}").contains(TOKEN));
    }
}
