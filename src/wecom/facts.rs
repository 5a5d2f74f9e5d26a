//! What a WeCom answer says beside its `errcode`, read in the same single parse: the
//! recipients a message send did not reach (a partial success: errcode 0 with
//! `invaliduser`, `invalidparty`, `invalidtag`, `unlicenseduser`, each `"a|b|c"`), and the
//! address WeCom saw the caller at when it refused it as untrusted (60020's errmsg holds
//! `from ip: a.b.c.d`). Only counts and the address leave here, never the ids.

use std::borrow::Cow;
use std::net::IpAddr;

use serde::Deserialize;

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
    errmsg: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    invaliduser: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    invalidparty: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    invalidtag: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    unlicenseduser: Option<Cow<'a, str>>,
}

/// Reads `errcode` (as [`errcode::read_errcode`] does: a non-object or broken body is
/// `Invalid`) and, in the same parse, the facts beside it. A field of another type than
/// WeCom's (a number where a string is due) makes the body `Invalid`, as a broken one.
pub fn read(body: &[u8]) -> Answer {
    let invalid = Answer {
        errcode: BodyErrcode::Invalid,
        undelivered: Undelivered::default(),
        from_ip: None,
    };
    if !errcode::is_json_object(body) {
        return invalid;
    }
    let Ok(f) = serde_json::from_slice::<Fields<'_>>(body) else {
        return invalid;
    };
    let count = |ids: &Option<Cow<'_, str>>| ids.as_deref().map_or(0, count_ids);
    let code = f.errcode;
    Answer {
        errcode: code.map_or(BodyErrcode::Absent, BodyErrcode::Code),
        undelivered: Undelivered {
            users: count(&f.invaliduser),
            parties: count(&f.invalidparty),
            tags: count(&f.invalidtag),
            unlicensed: count(&f.unlicenseduser),
        },
        from_ip: match (code, f.errmsg.as_deref()) {
            (Some(errcode::IP_NOT_TRUSTED), Some(msg)) => from_ip(msg),
            _ => None,
        },
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
        assert_eq!(
            read(br#"{"errcode":0,"invaliduser":5}"#).errcode,
            BodyErrcode::Invalid
        );
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
