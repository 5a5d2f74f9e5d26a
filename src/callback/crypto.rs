//! WeCom's callback crypto for one app: the `msg_signature` check, AES-256-CBC decryption of a
//! push or an `echostr` with its receive-id check, and the encryption of a passive reply.
//!
//! WeCom's facts (SPEC, "Inbound callbacks"): `msg_signature` is the SHA-1, in lower-case hex, of
//! the callback token, `timestamp`, `nonce` and the encrypted text, sorted and concatenated. The
//! key is the 43-character `EncodingAESKey` decoded as base64 (with one `=` added); the IV is the
//! key's first 16 bytes. The plaintext is 16 random bytes, the message length (4 bytes, big
//! endian), the message, then the receive id (the corp id of a self-built app), padded PKCS#7-style
//! to a multiple of 32 bytes (not AES's 16), then base64.
//!
//! The order of checks is the contract: signature first (so nothing is decrypted for a caller
//! that does not hold the token), then decryption, then the receive id. Each failure is one
//! [`Reject`], which says nothing about the token or key; neither appears in `Debug`.

use std::fmt;

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::alphabet::STANDARD;
use base64::engine::general_purpose::STANDARD as B64;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use sha1::{Digest, Sha1};

pub use crate::config::defaults::AES_KEY_CHARS;

type Encryptor = cbc::Encryptor<aes::Aes256>;
type Decryptor = cbc::Decryptor<aes::Aes256>;

/// WeCom pads to 32 bytes (its PKCS#7 block), not to AES's 16.
const PAD_BLOCK: usize = 32;
/// 16 random bytes, then the 4-byte length.
const HEADER: usize = 20;

/// Decodes an `EncodingAESKey`: its 43rd character carries 4 bits beyond the 32-byte key, which
/// WeCom's console does not zero (most real keys have them set), so they are allowed.
const KEY_ENGINE: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a push or a URL verification is refused (an HTTP 403 to WeCom, counted by this name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// `msg_signature` missing or not the signature of this token, timestamp, nonce and text.
    Signature,
    /// Not base64, not whole AES blocks, bad padding, or a length that does not fit.
    Decrypt,
    /// Decrypted, but for another receive id (another corp's push).
    ReceiveId,
    /// The envelope is not WeCom's XML, or lacks `Encrypt`.
    Envelope,
}

impl Reject {
    /// The `result` label and log word.
    pub fn as_str(self) -> &'static str {
        match self {
            Reject::Signature => "bad-signature",
            Reject::Decrypt => "undecryptable",
            Reject::ReceiveId => "wrong-receiver",
            Reject::Envelope => "malformed",
        }
    }
}

/// A configured `EncodingAESKey` that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("an EncodingAESKey has {AES_KEY_CHARS} characters, this one has {0}")]
    Length(usize),
    #[error("an EncodingAESKey is base64 (A-Z, a-z, 0-9, + and /); this one is not")]
    NotBase64,
}

/// One app's callback credentials.
#[derive(Clone)]
pub struct CallbackCrypto {
    token: Box<[u8]>,
    key: [u8; 32],
    receive_id: Box<str>,
}

impl fmt::Debug for CallbackCrypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackCrypto")
            .field("receive_id", &self.receive_id)
            .finish_non_exhaustive()
    }
}

impl CallbackCrypto {
    /// `token` and `encoding_aes_key` as WeCom's console shows them; `receive_id` the corp id.
    pub fn new(token: &str, encoding_aes_key: &str, receive_id: &str) -> Result<Self, KeyError> {
        let chars = encoding_aes_key.chars().count();
        if chars != AES_KEY_CHARS {
            return Err(KeyError::Length(chars));
        }
        let mut key = [0u8; 32];
        let mut padded = [0u8; AES_KEY_CHARS + 1];
        padded[..AES_KEY_CHARS].copy_from_slice(encoding_aes_key.as_bytes());
        padded[AES_KEY_CHARS] = b'=';
        match KEY_ENGINE.decode_slice(padded, &mut key) {
            Ok(32) => {}
            _ => return Err(KeyError::NotBase64),
        }
        Ok(CallbackCrypto {
            token: token.as_bytes().into(),
            key,
            receive_id: receive_id.into(),
        })
    }

    /// The receive id pushes must carry.
    pub fn receive_id(&self) -> &str {
        &self.receive_id
    }

    /// WeCom's `msg_signature` of `encrypted` sent with `timestamp` and `nonce`.
    pub fn signature(&self, timestamp: &str, nonce: &str, encrypted: &str) -> String {
        let mut parts: [&[u8]; 4] = [
            &self.token,
            timestamp.as_bytes(),
            nonce.as_bytes(),
            encrypted.as_bytes(),
        ];
        parts.sort_unstable();
        let mut sha = Sha1::new();
        for p in parts {
            sha.update(p);
        }
        hex::encode(sha.finalize())
    }

    /// Checks `msg_signature` (hex, either case) in time that does not depend on where it differs.
    pub fn verify(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypted: &str,
    ) -> Result<(), Reject> {
        let want = self.signature(timestamp, nonce, encrypted);
        let got = msg_signature.as_bytes();
        if got.len() != want.len() {
            return Err(Reject::Signature);
        }
        let diff = want
            .bytes()
            .zip(got)
            .fold(0u8, |acc, (w, g)| acc | (w ^ g.to_ascii_lowercase()));
        if diff == 0 {
            Ok(())
        } else {
            Err(Reject::Signature)
        }
    }

    /// Verifies and decrypts in the contract's order: the message (XML of a push, or the bare
    /// `echostr` answer) when every check passes.
    pub fn open(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypted: &str,
    ) -> Result<Vec<u8>, Reject> {
        self.verify(msg_signature, timestamp, nonce, encrypted)?;
        self.decrypt(encrypted)
    }

    /// Decrypts `encrypted` and checks its receive id (no signature check: see [`Self::open`]).
    pub fn decrypt(&self, encrypted: &str) -> Result<Vec<u8>, Reject> {
        let mut buf = B64
            .decode(encrypted.trim().as_bytes())
            .map_err(|_| Reject::Decrypt)?;
        if buf.is_empty() || buf.len() % 16 != 0 {
            return Err(Reject::Decrypt);
        }
        let iv: [u8; 16] = self.key[..16].try_into().expect("16 of 32 bytes");
        let plain_len = Decryptor::new(&self.key.into(), &iv.into())
            .decrypt_padded_mut::<NoPadding>(&mut buf)
            .map_err(|_| Reject::Decrypt)?
            .len();
        let content = unpad(&buf[..plain_len]).ok_or(Reject::Decrypt)?;
        if content.len() < HEADER {
            return Err(Reject::Decrypt);
        }
        let len = u32::from_be_bytes(content[16..HEADER].try_into().expect("4 bytes")) as usize;
        let end = HEADER.checked_add(len).ok_or(Reject::Decrypt)?;
        if end > content.len() {
            return Err(Reject::Decrypt);
        }
        if &content[end..] != self.receive_id.as_bytes() {
            return Err(Reject::ReceiveId);
        }
        Ok(content[HEADER..end].to_vec())
    }

    /// Encrypts `message` as WeCom does, with `random` as its 16 leading bytes.
    pub fn encrypt(&self, message: &[u8], random: [u8; 16]) -> String {
        let body = HEADER + message.len() + self.receive_id.len();
        let pad = PAD_BLOCK - body % PAD_BLOCK;
        let mut buf = Vec::with_capacity(body + pad);
        buf.extend_from_slice(&random);
        buf.extend_from_slice(&(message.len() as u32).to_be_bytes());
        buf.extend_from_slice(message);
        buf.extend_from_slice(self.receive_id.as_bytes());
        buf.resize(body + pad, pad as u8);
        let iv: [u8; 16] = self.key[..16].try_into().expect("16 of 32 bytes");
        let len = buf.len();
        Encryptor::new(&self.key.into(), &iv.into())
            .encrypt_padded_mut::<NoPadding>(&mut buf, len)
            .expect("whole blocks");
        B64.encode(&buf)
    }
}

/// The content without WeCom's padding, or `None` when the padding is not 1..=32 equal bytes.
fn unpad(buf: &[u8]) -> Option<&[u8]> {
    let n = *buf.last()? as usize;
    if n == 0 || n > PAD_BLOCK || n > buf.len() {
        return None;
    }
    let (content, pad) = buf.split_at(buf.len() - n);
    pad.iter().all(|&b| b as usize == n).then_some(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// WeCom's published example (its callback documentation and WXBizMsgCrypt samples); the
    /// decrypted echostr checked with wechatpy 1.8.18's `WeChatCrypto.check_signature`.
    const TOKEN: &str = "QDG6eK";
    const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
    const CORP: &str = "wx5823bf96d3bd56c7";
    const ECHO_SIG: &str = "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3";
    const ECHO_TS: &str = "1409659589";
    const ECHO_NONCE: &str = "263014780";
    const ECHO: &str =
        "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==";

    fn crypto() -> CallbackCrypto {
        CallbackCrypto::new(TOKEN, KEY, CORP).unwrap()
    }

    #[test]
    fn wecoms_example_echostr_opens() {
        let c = crypto();
        assert_eq!(c.signature(ECHO_TS, ECHO_NONCE, ECHO), ECHO_SIG);
        let plain = c.open(ECHO_SIG, ECHO_TS, ECHO_NONCE, ECHO).unwrap();
        assert_eq!(plain, b"1616140317555161061");
        // Upper-case hex is the same signature.
        let upper = ECHO_SIG.to_ascii_uppercase();
        assert!(c.open(&upper, ECHO_TS, ECHO_NONCE, ECHO).is_ok());
    }

    /// A push made by wechatpy 1.8.18 (`WeChatCrypto(TOKEN, KEY, CORP).encrypt_message(msg,
    /// "1372623149", "1409659813")`), WeCom's envelope around it.
    const PUSH_SIG: &str = "de8da4d0f7eaacddff3bce3bc38ad4198926a5b4";
    const PUSH_TS: &str = "1409659813";
    const PUSH_NONCE: &str = "1372623149";
    const PUSH: &str = "FjB2DSv0NlB2MnW5eWqWt43VNN7GXNtMyU3muZCgHAfZcZU5cFGUPTmOa0676id5hFKyT6w3mOW5wGF7\
pCk7DJCDvcv2dHn5UB6nZhHtvvYIGGBrFZttk02MOui6oGFFYiUuqDC5l2BKjWA2awjvsYuW11zhN3lLpLvQIDv9iidh5OOZI2R5i\
nbgw9vG0EMUXeS+ZjxhqIaVtzZN4PLtE9AqeyS7IbVKglXSXcjvSpKe7z/l3W72H4ksGjX+xwqk5tGQZX9w3fULtQuKp1WtzXapWv8\
F/4/COndSQLvI+ACkkEbziB1kEeib7iuEMLyt6mjKpw5/tMmWEICbIhPP6PbSDXiCWDizRXjyHNrvdd6CcMLC/aTUaNvOBKoGQvHB4\
qzCNjcV4VqY0rCkLv+CZWM3dzXx9a1BGsn7leV+QMU=";

    #[test]
    fn a_push_wechatpy_made_opens() {
        let plain = crypto().open(PUSH_SIG, PUSH_TS, PUSH_NONCE, PUSH).unwrap();
        let m = crate::callback::envelope::Message::parse(&plain).unwrap();
        assert_eq!(m.msg_type.as_deref(), Some("text"));
        assert_eq!(m.msg_id.as_deref(), Some("4561255354251345929"));
        assert!(plain.starts_with(b"<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]>"));
    }

    /// Our reply, which wechatpy 1.8.18's `decrypt_message` opened to the same XML (checked by
    /// hand when this test was written: the ciphertext is pinned, so any change shows here).
    #[test]
    fn a_reply_wechatpy_opened() {
        let c = crypto();
        let enc = c.encrypt(
            "<xml><Content>回复 ok</Content></xml>".as_bytes(),
            *b"0123456789abcdef",
        );
        assert_eq!(
            enc,
            "sKqRbbiSUnDhFHOvPjtUMRgLP1wdooTb2tlcbtXWcqLD0nxXTuOHUlPnWyqc4P3CZ7LuD3k4dZ2ypXyYnzmzu7Zb\
s6tpXjsBOU1VUqSyLxPZOl1h7RiFw0g7bha3SpQi"
        );
        assert_eq!(
            c.signature("1409659813", "nonce7", &enc),
            "ddd40b62efda01baf4504b50c9cb10aebd4be77c"
        );
    }

    #[test]
    fn each_check_refuses_in_order() {
        let c = crypto();
        let mut bad_sig = ECHO_SIG.to_string();
        bad_sig.replace_range(0..1, "6");
        assert_eq!(
            c.open(&bad_sig, ECHO_TS, ECHO_NONCE, ECHO),
            Err(Reject::Signature)
        );
        assert_eq!(
            c.open("", ECHO_TS, ECHO_NONCE, ECHO),
            Err(Reject::Signature)
        );
        assert_eq!(
            c.open(ECHO_SIG, "1409659590", ECHO_NONCE, ECHO),
            Err(Reject::Signature)
        );
        // A signature that matches garbage still does not decrypt it.
        for junk in ["not base64!", "", "AAAA", &B64.encode([7u8; 32])] {
            let sig = c.signature(ECHO_TS, ECHO_NONCE, junk);
            assert_eq!(
                c.open(&sig, ECHO_TS, ECHO_NONCE, junk),
                Err(Reject::Decrypt),
                "{junk}"
            );
        }
        // Another corp's push: decrypts, then the receive id refuses it.
        let other = CallbackCrypto::new(TOKEN, KEY, "ww0000000000000000").unwrap();
        assert_eq!(
            other.open(ECHO_SIG, ECHO_TS, ECHO_NONCE, ECHO),
            Err(Reject::ReceiveId)
        );
    }

    #[test]
    fn round_trips_every_length_across_the_padding_block() {
        let c = crypto();
        for len in 0..100 {
            let msg: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let enc = c.encrypt(&msg, [len as u8; 16]);
            assert_eq!(c.decrypt(&enc).unwrap(), msg, "length {len}");
            assert_eq!(B64.decode(&enc).unwrap().len() % PAD_BLOCK, 0);
        }
    }

    #[test]
    fn keys_with_set_trailing_bits_are_accepted_and_bad_keys_named() {
        // WeCom's own example key ends in 'C': its trailing bits are set.
        assert!(CallbackCrypto::new(TOKEN, KEY, CORP).is_ok());
        assert_eq!(
            CallbackCrypto::new(TOKEN, &KEY[..42], CORP).unwrap_err(),
            KeyError::Length(42)
        );
        let mut bad = KEY.to_string();
        bad.replace_range(5..6, "!");
        assert_eq!(
            CallbackCrypto::new(TOKEN, &bad, CORP).unwrap_err(),
            KeyError::NotBase64
        );
        let multibyte = format!("{}é", &KEY[..41]);
        assert!(CallbackCrypto::new(TOKEN, &multibyte, CORP).is_err());
    }

    #[test]
    fn tampered_ciphertext_never_panics() {
        let c = crypto();
        let enc = B64.decode(c.encrypt(b"<xml>hi</xml>", [1; 16])).unwrap();
        for i in 0..enc.len() {
            for bit in [1u8, 0x80] {
                let mut t = enc.clone();
                t[i] ^= bit;
                let _ = c.decrypt(&B64.encode(&t));
            }
        }
        // A length field larger than the content.
        let mut huge = Vec::new();
        huge.extend_from_slice(&[0u8; 16]);
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        huge.resize(64, 12);
        let mut blocks = huge.clone();
        let n = blocks.len();
        let iv: [u8; 16] = c.key[..16].try_into().unwrap();
        Encryptor::new(&c.key.into(), &iv.into())
            .encrypt_padded_mut::<NoPadding>(&mut blocks, n)
            .unwrap();
        assert_eq!(c.decrypt(&B64.encode(&blocks)), Err(Reject::Decrypt));
    }

    #[test]
    fn debug_hides_the_credentials() {
        let shown = format!("{:?}", crypto());
        assert!(
            !shown.contains(TOKEN) && !shown.contains(&KEY[..10]),
            "{shown}"
        );
        assert!(shown.contains(CORP));
    }
}
