//! What a WeCom answer says beside its `errcode`, read in the same single parse: the
//! recipients a message send did not reach (a partial success: errcode 0 with
//! `invaliduser`, `invalidparty`, `invalidtag`, `unlicenseduser`, each `"a|b|c"`), and the
//! address WeCom saw the caller at when it refused it as untrusted (60020's errmsg holds
//! `from ip: a.b.c.d`). Only counts and the address leave here, never the ids.

use std::borrow::Cow;
use std::net::IpAddr;

use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::errcode::{self, BodyErrcode};

/// Recipients of a send WeCom did not reach, by kind (counts of `|`-separated ids).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Undelivered {
    pub users: u32,
    pub parties: u32,
    pub tags: u32,
    pub unlicensed: u32,
}

impl Undelivered {
    /// Each kind with its `kind` label (`wecom_message_undelivered_total`) and count.
    pub fn kinds(&self) -> [(&'static str, u32); 4] {
        [
            ("user", self.users),
            ("party", self.parties),
            ("tag", self.tags),
            ("unlicensed_user", self.unlicensed),
        ]
    }

    pub fn is_empty(&self) -> bool {
        self.kinds().iter().all(|(_, n)| *n == 0)
    }
}

/// What an answer read whole says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub errcode: BodyErrcode,
    pub undelivered: Undelivered,
    /// On 60020: the address WeCom saw the call come from.
    pub from_ip: Option<IpAddr>,
}

#[derive(Deserialize)]
struct Fields<'a> {
    errcode: Option<i64>,
    #[serde(borrow, default)]
    errmsg: Text<'a>,
    #[serde(default)]
    invaliduser: Ids,
    #[serde(default)]
    invalidparty: Ids,
    #[serde(default)]
    invalidtag: Ids,
    #[serde(default)]
    unlicenseduser: Ids,
}

/// Reads `errcode` (as [`errcode::read_errcode`] does: a non-object or broken body is
/// `Invalid`) and, in the same parse, the facts beside it. The fields beside `errcode` never
/// make an answer invalid, whatever their type: other APIs use the same names differently
/// (`tag/addtagusers` answers `invalidparty` as an array of ids).
pub fn read(body: &[u8]) -> Answer {
    let invalid = Answer {
        errcode: BodyErrcode::Invalid,
        undelivered: Undelivered::default(),
        from_ip: None,
    };
    if !errcode::is_json_object(body) {
        return invalid;
    }
    // The one pass of `facts_scan` reads WeCom's answers at a fraction of serde's cost; what it
    // does not read exactly as serde_json would, serde_json reads.
    if let Some(s) = super::facts_scan::scan(body) {
        let ids = |f: Option<&str>| f.map_or(0, count_ids);
        let code = s.errcode.flatten();
        return Answer {
            errcode: code.map_or(BodyErrcode::Absent, BodyErrcode::Code),
            undelivered: Undelivered {
                users: ids(s.invaliduser),
                parties: ids(s.invalidparty),
                tags: ids(s.invalidtag),
                unlicensed: ids(s.unlicenseduser),
            },
            from_ip: match (code, s.errmsg) {
                (Some(errcode::IP_NOT_TRUSTED), Some(msg)) => from_ip(msg),
                _ => None,
            },
        };
    }
    read_with_serde(body)
}

/// [`read`] by serde_json alone, for a body shaped as a JSON object.
fn read_with_serde(body: &[u8]) -> Answer {
    let invalid = Answer {
        errcode: BodyErrcode::Invalid,
        undelivered: Undelivered::default(),
        from_ip: None,
    };
    let Ok(f) = serde_json::from_slice::<Fields<'_>>(body) else {
        return invalid;
    };
    let code = f.errcode;
    Answer {
        errcode: code.map_or(BodyErrcode::Absent, BodyErrcode::Code),
        undelivered: Undelivered {
            users: f.invaliduser.0,
            parties: f.invalidparty.0,
            tags: f.invalidtag.0,
            unlicensed: f.unlicenseduser.0,
        },
        from_ip: match (code, f.errmsg.0) {
            (Some(errcode::IP_NOT_TRUSTED), Some(msg)) => from_ip(&msg),
            _ => None,
        },
    }
}

/// A string field read if it is one (borrowed when it has no escapes), else skipped.
#[derive(Default)]
struct Text<'a>(Option<Cow<'a, str>>);

/// How many ids a field lists: `"a|b|c"` (blank entries are not ids) or `["a", "b"]`;
/// 0 for anything else.
#[derive(Default)]
struct Ids(u32);

/// Reads any JSON value: strings through `text`, arrays as their length, the rest as `skip`.
struct Lenient<T, F> {
    text: F,
    array: fn(u32) -> T,
    skip: T,
}

impl<'de, T, F: FnOnce(Cow<'de, str>) -> T> Visitor<'de> for Lenient<T, F> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<T, E> {
        Ok((self.text)(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        Ok((self.text)(Cow::Owned(v.to_owned())))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<T, A::Error> {
        let mut n = 0u32;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            n = n.saturating_add(1);
        }
        Ok((self.array)(n))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(self.skip)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<T, E> {
        Ok(self.skip)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<T, E> {
        Ok(self.skip)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<T, E> {
        Ok(self.skip)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<T, E> {
        Ok(self.skip)
    }
    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        Ok(self.skip)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Lenient {
            text: |s| Text(Some(s)),
            array: |_| Text(None),
            skip: Text(None),
        })
    }
}

impl<'de> Deserialize<'de> for Ids {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Lenient {
            text: |s: Cow<'de, str>| Ids(count_ids(&s)),
            array: Ids,
            skip: Ids(0),
        })
    }
}

/// The ids in a `"a|b|c"` list (blank entries are not ids).
fn count_ids(ids: &str) -> u32 {
    let n = ids.split('|').filter(|id| !id.trim().is_empty()).count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The address in an errmsg's `from ip: a.b.c.d` (IPv4 or IPv6), if it names a valid one.
pub fn from_ip(errmsg: &str) -> Option<IpAddr> {
    let (_, rest) = errmsg.split_once("from ip:")?;
    let rest = rest.trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':'))
        .unwrap_or(rest.len());
    rest[..end].trim_end_matches([':', '.']).parse().ok()
}

#[cfg(test)]
#[path = "facts_tests.rs"]
mod scan_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_success_is_counted_by_kind() {
        let body = br#"{"errcode":0,"errmsg":"ok","invaliduser":"ghost|gone","invalidparty":"99","invalidtag":"","unlicenseduser":"u1|u2|u3","msgid":"x"}"#;
        let a = read(body);
        assert_eq!(a.errcode, BodyErrcode::Code(0));
        assert_eq!(
            a.undelivered,
            Undelivered {
                users: 2,
                parties: 1,
                tags: 0,
                unlicensed: 3
            }
        );
        assert!(!a.undelivered.is_empty());
        let all = read(br#"{"errcode":0,"errmsg":"ok","invaliduser":"","msgid":"x"}"#);
        assert!(all.undelivered.is_empty());
        assert_eq!(
            read(br#"{"errcode":0,"invaliduser":"a|| b |"}"#)
                .undelivered
                .users,
            2
        );
    }

    #[test]
    fn reads_the_errcode_as_the_errcode_reader_does() {
        for body in [
            br#"{"errcode":0,"errmsg":"ok"}"#.as_slice(),
            br#"{"list":[{"errcode":5}],"errcode":42001}"#,
            br#"{"a":1}"#,
            b"<html>",
            br#"[42001]"#,
            br#"{"errcode":0,"errm"#,
            br#"{"errcode":"zero"}"#,
        ] {
            assert_eq!(read(body).errcode, errcode::read_errcode(body));
        }
    }

    #[test]
    fn fields_of_other_shapes_never_make_an_answer_invalid() {
        // tag/addtagusers: `invalidparty` is an array of department ids.
        let tag =
            read(br#"{"errcode":0,"errmsg":"ok","invalidlist":"u1|u2","invalidparty":[2,4]}"#);
        assert_eq!(tag.errcode, BodyErrcode::Code(0));
        assert_eq!(tag.undelivered.parties, 2);
        for body in [
            br#"{"errcode":0,"invaliduser":5}"#.as_slice(),
            br#"{"errcode":0,"invaliduser":null,"invalidtag":{"a":[1]},"errmsg":7}"#,
            br#"{"errcode":60020,"errmsg":["from ip: 1.2.3.4"]}"#,
        ] {
            let a = read(body);
            assert_eq!(a.errcode, errcode::read_errcode(body));
            assert!(a.undelivered.is_empty());
            assert_eq!(a.from_ip, None);
        }
        // Escaped text is read too.
        let escaped = read(br#"{"errcode":0,"invaliduser":"\u0061|b"}"#);
        assert_eq!(escaped.undelivered.users, 2);
    }

    #[test]
    fn the_untrusted_address_is_read_from_60020_only() {
        let msg = "not allow to access from your ip, hint: [1700000000_60_ab], from ip: 203.0.113.7, more info at https://open.work.weixin.qq.com/devtool/query?e=60020";
        let body = serde_json::json!({"errcode": 60020, "errmsg": msg}).to_string();
        assert_eq!(
            read(body.as_bytes()).from_ip,
            Some("203.0.113.7".parse().unwrap())
        );
        let other = serde_json::json!({"errcode": 40001, "errmsg": msg}).to_string();
        assert_eq!(read(other.as_bytes()).from_ip, None);
        assert_eq!(
            from_ip("from ip: 2001:db8::5, more"),
            Some("2001:db8::5".parse().unwrap())
        );
        assert_eq!(
            from_ip("from ip: 203.0.113.7."),
            from_ip("from ip:203.0.113.7")
        );
        for no in [
            "not allowed",
            "from ip: ",
            "from ip: 999.1.1.1",
            "from ip: x",
        ] {
            assert_eq!(from_ip(no), None, "{no}");
        }
    }
}
