//! Request signing for shared sidecars: when the config has `clients:`, every call must carry an
//! HMAC-SHA256 signature made with that client's key, and may only use the apps it is allowed.
//!
//! The signed text is five lines, joined by `\n`:
//!
//! ```text
//! v1
//! <METHOD>            e.g. POST
//! <path>              as sent, e.g. /cgi-bin/message/send
//! <query>             as sent, byte for byte, without the `?` (empty line when none)
//! <timestamp>         X-Sidecar-Timestamp: Unix seconds
//! <body sha256>       lower-case hex of the SHA-256 of the body as sent (of nothing when empty)
//! ```
//!
//! and the call carries `X-Sidecar-Client: <name>`, `X-Sidecar-Timestamp: <seconds>` and
//! `X-Sidecar-Signature: <lower-case hex HMAC-SHA256 of the text, keyed by the client key>`.
//! A timestamp more than [`REPLAY_WINDOW`] away from the sidecar's clock is refused, so a
//! captured call can be replayed for five minutes at most. None of the three headers goes
//! upstream (every `x-sidecar-*` header is dropped there).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::config::Client;

pub const CLIENT_HEADER: &str = "x-sidecar-client";
pub const TIMESTAMP_HEADER: &str = "x-sidecar-timestamp";
pub const SIGNATURE_HEADER: &str = "x-sidecar-signature";

/// How far a signed timestamp may be from the sidecar's clock, either way.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(300);

type HmacSha256 = Hmac<Sha256>;

/// The three signing headers of a call, as sent (any may be missing).
#[derive(Debug, Default, Clone, Copy)]
pub struct Presented<'a> {
    pub client: Option<&'a [u8]>,
    pub timestamp: Option<&'a [u8]>,
    pub signature: Option<&'a [u8]>,
}

/// What is signed besides the timestamp.
#[derive(Debug, Clone, Copy)]
pub struct Signed<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub body_sha256: &'a [u8; 32],
}

/// Why a call's signature was not accepted. The words are safe to send back and to log: they
/// never hold a key or a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    Missing,
    UnknownClient,
    BadTimestamp,
    Stale,
    BadSignature,
}

impl Rejection {
    /// The `reason` label of `wecom_client_rejected_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::Missing => "missing",
            Rejection::UnknownClient => "unknown_client",
            Rejection::BadTimestamp => "bad_timestamp",
            Rejection::Stale => "stale",
            Rejection::BadSignature => "bad_signature",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Rejection::Missing => "the call is not signed: send X-Sidecar-Client, X-Sidecar-Timestamp and X-Sidecar-Signature",
            Rejection::UnknownClient => "X-Sidecar-Client names no configured client",
            Rejection::BadTimestamp => "X-Sidecar-Timestamp is not Unix seconds",
            Rejection::Stale => "X-Sidecar-Timestamp is more than 5 minutes from the sidecar's clock (check the clock; replayed calls end here)",
            Rejection::BadSignature => "X-Sidecar-Signature does not match the call (method, path, query, timestamp and body hash, signed with the client's key)",
        }
    }
}

/// SHA-256 of a body as the signature needs it.
pub fn body_sha256(body: &[u8]) -> [u8; 32] {
    Sha256::digest(body).into()
}

fn mac(key: &[u8], timestamp: &str, s: &Signed<'_>) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    let mut body_hex = [0u8; 64];
    hex::encode_to_slice(s.body_sha256, &mut body_hex).expect("64 digits for 32 bytes");
    for part in [
        b"v1".as_slice(),
        s.method.as_bytes(),
        s.path.as_bytes(),
        s.query.as_bytes(),
        timestamp.as_bytes(),
    ] {
        m.update(part);
        m.update(b"\n");
    }
    m.update(&body_hex);
    m
}

/// The signature a client sends (lower-case hex): what apps and tests compute.
pub fn sign(key: &[u8], timestamp: u64, s: &Signed<'_>) -> String {
    hex::encode(mac(key, &timestamp.to_string(), s).finalize().into_bytes())
}

/// A presented signature as bytes: exactly 64 hex digits, either case.
fn unhex(text: &[u8]) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// Seconds since the Unix epoch on the sidecar's clock.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Checks a call's signature against the configured clients; returns the client it is from.
/// The comparison of signatures is constant-time.
pub fn verify<'c>(
    clients: &'c [Client],
    presented: Presented<'_>,
    signed: &Signed<'_>,
    now: u64,
) -> Result<&'c Client, Rejection> {
    let (Some(name), Some(ts), Some(sig)) =
        (presented.client, presented.timestamp, presented.signature)
    else {
        return Err(Rejection::Missing);
    };
    let client = clients
        .iter()
        .find(|c| c.name.as_bytes() == name)
        .ok_or(Rejection::UnknownClient)?;
    let ts_text = std::str::from_utf8(ts).map_err(|_| Rejection::BadTimestamp)?;
    if ts_text.is_empty() || ts_text.len() > 12 || !ts_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Rejection::BadTimestamp);
    }
    let ts: u64 = ts_text.parse().map_err(|_| Rejection::BadTimestamp)?;
    if ts.abs_diff(now) > REPLAY_WINDOW.as_secs() {
        return Err(Rejection::Stale);
    }
    let sig = unhex(sig).ok_or(Rejection::BadSignature)?;
    mac(client.key.expose().as_bytes(), ts_text, signed)
        .verify_slice(&sig)
        .map_err(|_| Rejection::BadSignature)?;
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AppName, Secret};
    use std::sync::Arc;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    fn client(name: &str, key: &str) -> Client {
        Client {
            name: Arc::from(name),
            key: Secret::new(key),
            key_source: "test".into(),
            apps: Some(vec![AppName(Arc::from("hr"))]),
        }
    }

    fn call<'a>(body: &'a [u8; 32]) -> Signed<'a> {
        Signed {
            method: "POST",
            path: "/cgi-bin/message/send",
            query: "debug=1",
            body_sha256: body,
        }
    }

    #[test]
    fn matches_an_independent_hmac() {
        // The documented text, signed by hand with the hmac crate directly.
        let body = body_sha256(b"{\"touser\":\"a\"}");
        let text = format!(
            "v1\nPOST\n/cgi-bin/message/send\ndebug=1\n1700000000\n{}",
            body.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let mut m = HmacSha256::new_from_slice(KEY.as_bytes()).unwrap();
        m.update(text.as_bytes());
        let want: String = m
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(sign(KEY.as_bytes(), 1_700_000_000, &call(&body)), want);
    }

    #[test]
    fn accepts_a_good_signature_and_names_the_client() {
        let clients = [client("other", &KEY.repeat(2)), client("billing", KEY)];
        let body = body_sha256(b"");
        let sig = sign(KEY.as_bytes(), 1000, &call(&body));
        let p = Presented {
            client: Some(b"billing"),
            timestamp: Some(b"1000"),
            signature: Some(sig.as_bytes()),
        };
        let c = verify(&clients, p, &call(&body), 1000 + 299).unwrap();
        assert_eq!(&*c.name, "billing");
        let upper = sig.to_uppercase();
        let p = Presented {
            signature: Some(upper.as_bytes()),
            ..p
        };
        assert!(verify(&clients, p, &call(&body), 1000).is_ok());
    }

    #[test]
    fn refuses_each_kind_of_bad_call() {
        let clients = [client("billing", KEY)];
        let body = body_sha256(b"{}");
        let sig = sign(KEY.as_bytes(), 1000, &call(&body));
        let good = Presented {
            client: Some(b"billing"),
            timestamp: Some(b"1000"),
            signature: Some(sig.as_bytes()),
        };
        let v = |p: Presented<'_>, s: &Signed<'_>, now| verify(&clients, p, s, now).map(|_| ());
        assert_eq!(
            v(Presented::default(), &call(&body), 1000),
            Err(Rejection::Missing)
        );
        let p = Presented {
            client: Some(b"nobody"),
            ..good
        };
        assert_eq!(v(p, &call(&body), 1000), Err(Rejection::UnknownClient));
        for ts in [&b"-5"[..], b"", b"1e3", b"99999999999999999999", b"10 00"] {
            let p = Presented {
                timestamp: Some(ts),
                ..good
            };
            assert_eq!(v(p, &call(&body), 1000), Err(Rejection::BadTimestamp));
        }
        assert_eq!(v(good, &call(&body), 1000 + 301), Err(Rejection::Stale));
        assert_eq!(v(good, &call(&body), 1000 - 301), Err(Rejection::Stale));
        // Anything signed, changed: body, query, path, method, timestamp.
        let other_body = body_sha256(b"{ }");
        assert_eq!(
            v(good, &call(&other_body), 1000),
            Err(Rejection::BadSignature)
        );
        let q = Signed {
            query: "debug=0",
            ..call(&body)
        };
        assert_eq!(v(good, &q, 1000), Err(Rejection::BadSignature));
        let m = Signed {
            method: "GET",
            ..call(&body)
        };
        assert_eq!(v(good, &m, 1000), Err(Rejection::BadSignature));
        let p = Presented {
            timestamp: Some(b"1001"),
            ..good
        };
        assert_eq!(v(p, &call(&body), 1000), Err(Rejection::BadSignature));
        // Signed with another key, or not hex, or cut short.
        let wrong = sign(&KEY.as_bytes()[1..], 1000, &call(&body));
        for s in [wrong.as_str(), &sig[..63], &"z".repeat(64)] {
            let p = Presented {
                signature: Some(s.as_bytes()),
                ..good
            };
            assert_eq!(v(p, &call(&body), 1000), Err(Rejection::BadSignature));
        }
    }

    #[test]
    fn the_timestamp_is_plain_unix_seconds_within_five_minutes_either_way() {
        let clients = [client("billing", KEY)];
        let body = body_sha256(b"{}");
        let check = |ts: &str, now: u64| {
            let sig = sign(KEY.as_bytes(), ts.parse().unwrap_or(0), &call(&body));
            let p = Presented {
                client: Some(b"billing"),
                timestamp: Some(ts.as_bytes()),
                signature: Some(sig.as_bytes()),
            };
            verify(&clients, p, &call(&body), now).map(|_| ())
        };
        // Exactly at the window's edges: accepted.
        assert_eq!(check("1000", 1300), Ok(()));
        assert_eq!(check("1300", 1000), Ok(()));
        // A sign Rust's parser would take, or more than 12 digits: not Unix seconds.
        assert_eq!(check("+1000", 1000), Err(Rejection::BadTimestamp));
        assert_eq!(
            check("1000000000000", 1000000000000),
            Err(Rejection::BadTimestamp)
        );
        // Twelve digits are (stale here, but read).
        assert_eq!(check("100000000000", 1000), Err(Rejection::Stale));
        assert_eq!(check("100000000000", 100000000000), Ok(()));
    }

    #[test]
    fn a_call_signed_now_verifies_against_the_sidecar_clock() {
        let clients = [client("billing", KEY)];
        let body = body_sha256(b"");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let sig = sign(KEY.as_bytes(), now, &call(&body));
        let ts = now.to_string();
        let p = Presented {
            client: Some(b"billing"),
            timestamp: Some(ts.as_bytes()),
            signature: Some(sig.as_bytes()),
        };
        assert!(verify(&clients, p, &call(&body), now_secs()).is_ok());
    }

    #[test]
    fn the_body_hash_is_sha256() {
        // SHA-256 of nothing and of "abc" (FIPS 180-2's examples), as an app computes them.
        assert_eq!(
            hex::encode(body_sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex::encode(body_sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn each_rejection_has_its_own_metric_reason_and_names_the_header() {
        let all = [
            Rejection::Missing,
            Rejection::UnknownClient,
            Rejection::BadTimestamp,
            Rejection::Stale,
            Rejection::BadSignature,
        ];
        // The `reason` label values of wecom_client_rejected_total.
        let reasons: Vec<&str> = all.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "missing",
                "unknown_client",
                "bad_timestamp",
                "stale",
                "bad_signature"
            ]
        );
        for (r, header) in [
            (Rejection::Missing, "X-Sidecar-Signature"),
            (Rejection::UnknownClient, "X-Sidecar-Client"),
            (Rejection::BadTimestamp, "X-Sidecar-Timestamp"),
            (Rejection::Stale, "X-Sidecar-Timestamp"),
            (Rejection::BadSignature, "X-Sidecar-Signature"),
        ] {
            assert!(r.describe().contains(header), "{r:?}: {}", r.describe());
        }
    }
}
