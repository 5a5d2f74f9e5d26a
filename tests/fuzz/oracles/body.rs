//! Readers of JSON bodies: `wecom::errcode::read_errcode` (upstream answers),
//! `quota::recipients` and `proxy::dedupe::apply` (app message bodies), `quota::block_for`
//! (45009/45033 answers).
//!
//! The input is the body itself (the seeds are real WeCom answers and message bodies).
//!
//! Invariants:
//! - nothing panics;
//! - `read_errcode` agrees with an independent reading of the body: a body that is not
//!   well-formed JSON (a truncated one in particular) is `Invalid`, a non-object is `Invalid`, an
//!   object without `errcode` (or with `null`) is `Absent`, an integer `errcode` is `Code`, any
//!   other `errcode` is `Invalid`;
//! - `recipients` likewise: the trimmed, non-empty members other than `@all` of a `touser`
//!   written "a|b" or as a list of strings, each once and sorted; none for a non-object or a
//!   body that is not JSON;
//! - `dedupe::apply` changes nothing for other APIs or non-objects, keeps every other member
//!   of the object, adds `enable_duplicate_check: 1` and the policy's interval, says "safe"
//!   exactly when the body asks for the check, and is idempotent (a retried call is not
//!   rewritten again);
//! - `block_for` reads only `errmsg`: 45009 blocks until China's midnight when it speaks of a
//!   day, an hour when it says "hour", else less.
//!
//! Duplicate `errcode`/`touser` members are not judged (JSON leaves their meaning open).

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use wecom_sidecar::config::RoutePolicy;
use wecom_sidecar::proxy::dedupe;
use wecom_sidecar::quota::{block_for, recipients};
use wecom_sidecar::wecom::errcode::{self, read_errcode, BodyErrcode};

/// Checks one input against the invariants above; panics when one does not hold.
pub fn check(body: &[u8]) {
    check_errcode(body, &Reading::of(body, "errcode"));
    check_recipients(body, &Reading::of(body, "touser"));
    check_dedupe(body);
    check_block_for(body);
}

/// An independent reading of a body: well-formed or not, an object or not, and the values of
/// one top-level member (every occurrence, duplicates included).
enum Reading {
    /// Not well-formed JSON, or the member is not (a string that is not UTF-8).
    Broken,
    /// Well-formed, but not an object (an array, a string, a number...).
    NotObject,
    /// An object, and the values of the member.
    Object(Vec<Value>),
}

impl Reading {
    fn of(body: &[u8], key: &'static str) -> Reading {
        // Well-formedness as serde_json checks it when skipping values (so not the UTF-8 of
        // skipped strings: neither do the readers under test, and no truncation hides there).
        if serde_json::from_slice::<IgnoredAny>(body).is_err() {
            return Reading::Broken;
        }
        let first = body
            .iter()
            .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
            .copied();
        if first != Some(b'{') {
            return Reading::NotObject;
        }
        let mut de = serde_json::Deserializer::from_slice(body);
        match Member(key)
            .deserialize(&mut de)
            .and_then(|v| de.end().map(|()| v))
        {
            Ok(values) => Reading::Object(values),
            Err(_) => Reading::Broken,
        }
    }
}

/// Collects every value of the top-level member named `.0` of an object; skips the others.
struct Member(&'static str);

impl<'de> DeserializeSeed<'de> for Member {
    type Value = Vec<Value>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Value>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Member {
    type Value = Vec<Value>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<Value>, A::Error> {
        let mut values = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == self.0 {
                values.push(map.next_value()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(values)
    }
}

fn check_errcode(body: &[u8], reading: &Reading) {
    let got = read_errcode(body);
    let expected = match reading {
        Reading::Broken => BodyErrcode::Invalid,
        // A top-level array is not an object either, though serde could fill a struct from
        // it (`[42001]`): this found the bug where it read as errcode 42001.
        Reading::NotObject => BodyErrcode::Invalid,
        Reading::Object(errcode) => match errcode.as_slice() {
            [] | [Value::Null] => BodyErrcode::Absent,
            [v] => v.as_i64().map_or(BodyErrcode::Invalid, BodyErrcode::Code),
            _ => return,
        },
    };
    assert_eq!(
        got,
        expected,
        "read_errcode({:?})",
        String::from_utf8_lossy(body)
    );
}

fn check_recipients(body: &[u8], reading: &Reading) {
    let got = recipients(body);
    let expected: Vec<String> = match reading {
        Reading::Broken => Vec::new(),
        // A top-level array is not an object either, though serde could fill a struct from
        // it (`[42001]`): this found the bug where it read as errcode 42001.
        Reading::NotObject => Vec::new(),
        Reading::Object(touser) => {
            let mut members: Vec<String> = match touser.as_slice() {
                [Value::String(t)] => t.split('|').map(|u| u.trim().to_string()).collect(),
                [Value::Array(list)] if list.iter().all(Value::is_string) => list
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|u| u.trim().to_string())
                    .collect(),
                [_, _, ..] => return,
                _ => Vec::new(),
            };
            members.retain(|u| !u.is_empty() && u != "@all");
            members.sort();
            members.dedup();
            members
        }
    };
    assert_eq!(
        got,
        expected,
        "recipients({:?})",
        String::from_utf8_lossy(body)
    );
}

fn policy(dedupe: bool) -> RoutePolicy {
    RoutePolicy {
        dedupe,
        ..RoutePolicy::default()
    }
}

fn check_dedupe(body: &[u8]) {
    let original = Bytes::copy_from_slice(body);
    let object = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    };
    let asks = object
        .as_ref()
        .and_then(|m| m.get("enable_duplicate_check"))
        .and_then(Value::as_i64)
        == Some(1);

    // An API without the check: untouched, never "safe".
    let (b, safe) = dedupe::apply("user/create", &policy(true), original.clone());
    assert_eq!((&b, safe), (&original, false), "user/create body touched");

    for on in [false, true] {
        let p = policy(on);
        let (b, safe) = dedupe::apply("message/send", &p, original.clone());
        let Some(before) = &object else {
            assert_eq!((&b, safe), (&original, false), "non-object body touched");
            continue;
        };
        if asks || !on {
            assert_eq!((&b, safe), (&original, asks), "dedupe: {on}, asks: {asks}");
            continue;
        }
        assert!(safe, "rewritten body not marked safe");
        let Ok(Value::Object(after)) = serde_json::from_slice::<Value>(&b) else {
            panic!("rewritten body is not a JSON object: {b:?}");
        };
        assert_eq!(after.get("enable_duplicate_check"), Some(&Value::from(1)));
        assert_eq!(
            after.get("duplicate_check_interval"),
            Some(&Value::from(p.duplicate_check_interval.as_secs()))
        );
        // The body is re-serialized: numbers beyond 64-bit integers pass through f64 (and
        // serde_json's float parsing may differ by an ulp between the two spellings), so
        // members are compared as they read after the same round trip.
        let Ok(Value::Object(before)) =
            serde_json::from_slice::<Value>(&serde_json::to_vec(before).expect("a Value"))
        else {
            panic!("a JSON object does not round-trip");
        };
        for (k, v) in &before {
            if k != "enable_duplicate_check" && k != "duplicate_check_interval" {
                assert_eq!(after.get(k), Some(v), "member {k} changed");
            }
        }
        let added = ["enable_duplicate_check", "duplicate_check_interval"]
            .iter()
            .filter(|k| !before.contains_key(**k))
            .count();
        assert_eq!(after.len(), before.len() + added, "members added or lost");
        // A retry applies dedupe again to the body it sent: nothing more changes.
        let again = dedupe::apply("message/send", &p, b.clone());
        assert_eq!(again, (b.clone(), true), "dedupe is not idempotent");
    }
}

fn check_block_for(body: &[u8]) {
    // 2026-12-01T12:25:00Z, 20:25 in China: 3 h 35 min to its midnight.
    let now = 1_796_127_900;
    let minute = block_for(errcode::FREQ_LIMIT, body, now).expect("45009 blocks");
    let concurrency = block_for(errcode::CONCURRENCY_LIMIT, body, now).expect("45033 blocks");
    assert!(minute > Duration::ZERO && concurrency > Duration::ZERO);
    assert_eq!(block_for(errcode::OK, body, now), None);
    assert_eq!(block_for(errcode::SYSTEM_BUSY, body, now), None);
    // Only WeCom's errmsg decides the length (an independent reading of it; a repeated
    // member is not judged).
    let errmsg = match Reading::of(body, "errmsg") {
        Reading::Object(values) if values.len() > 1 => return,
        Reading::Object(values) => values
            .first()
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase(),
        _ => String::new(),
    };
    let to_midnight = Duration::from_secs(3 * 3600 + 35 * 60);
    if errmsg.contains("day") || errmsg.contains("daily") {
        assert_eq!(minute, to_midnight, "a day block of {minute:?}");
    } else if errmsg.contains("hour") {
        assert_eq!(
            minute,
            Duration::from_secs(3600),
            "an hour block of {minute:?}"
        );
    } else {
        assert!(
            minute < Duration::from_secs(3600),
            "a minute block of {minute:?}"
        );
    }
}
