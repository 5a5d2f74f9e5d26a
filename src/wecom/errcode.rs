//! WeCom errcodes the sidecar acts on, and a reader that finds `errcode` in a JSON body.
//!
//! WeCom answers almost everything with HTTP 200 and a JSON body whose `errcode` says what
//! happened; `errmsg` text may change, so decisions are made on `errcode` only.

use serde::Deserialize;

/// Success.
pub const OK: i64 = 0;
/// System busy: retry with backoff.
pub const SYSTEM_BUSY: i64 = -1;
/// Invalid credential (on business APIs: the token is no longer accepted).
pub const INVALID_CREDENTIAL: i64 = 40001;
/// Invalid corp id (gettoken).
pub const INVALID_CORPID: i64 = 40013;
/// Invalid access_token.
pub const INVALID_TOKEN: i64 = 40014;
/// access_token missing.
pub const TOKEN_MISSING: i64 = 41001;
/// access_token expired.
pub const TOKEN_EXPIRED: i64 = 42001;
/// API frequency limit reached (minute or hour block).
pub const FREQ_LIMIT: i64 = 45009;
/// API concurrency limit reached.
pub const CONCURRENCY_LIMIT: i64 = 45033;
/// Data format error (invalid JSON body).
pub const DATA_FORMAT_ERROR: i64 = 47001;
/// API forbidden for this app.
pub const API_FORBIDDEN: i64 = 48002;
/// Caller IP not trusted.
pub const IP_NOT_TRUSTED: i64 = 60020;

/// An errcode that means "this token is no longer good": refresh it and repeat the call once.
pub fn is_token_error(errcode: i64) -> bool {
    matches!(errcode, INVALID_TOKEN | TOKEN_EXPIRED | INVALID_CREDENTIAL)
}

/// What the body of a WeCom JSON answer says about the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyErrcode {
    /// A JSON object with an integer `errcode`.
    Code(i64),
    /// A JSON object without `errcode` (treated as success by callers that must decide).
    Absent,
    /// Not a JSON object: broken or truncated upstream answer.
    Invalid,
}

#[derive(Deserialize)]
struct ErrcodeOnly {
    errcode: Option<i64>,
}

/// Whether a body is shaped as a JSON object (its first non-blank byte is `{`). serde reads a
/// struct from a JSON array too (`[42001]` would fill the first field), so readers that look
/// for a named field check this first: WeCom's answers and message bodies are always objects.
pub fn is_json_object(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// Reads the top-level `errcode` of a JSON body. Other fields are skipped without being
/// built; the body is still checked to be well-formed JSON, so a truncated answer is caught.
pub fn read_errcode(body: &[u8]) -> BodyErrcode {
    if !is_json_object(body) {
        return BodyErrcode::Invalid;
    }
    match serde_json::from_slice::<ErrcodeOnly>(body) {
        Ok(ErrcodeOnly {
            errcode: Some(code),
        }) => BodyErrcode::Code(code),
        Ok(ErrcodeOnly { errcode: None }) => BodyErrcode::Absent,
        Err(_) => BodyErrcode::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_errcode_anywhere_in_the_object() {
        assert_eq!(
            read_errcode(br#"{"errcode":0,"errmsg":"ok"}"#),
            BodyErrcode::Code(0)
        );
        assert_eq!(
            read_errcode(br#"{"errmsg":"x","list":[{"errcode":5}],"errcode":42001}"#),
            BodyErrcode::Code(42001)
        );
        assert_eq!(read_errcode(br#"{"errcode":-1}"#), BodyErrcode::Code(-1));
    }

    #[test]
    fn absent_and_invalid_bodies() {
        assert_eq!(read_errcode(br#"{"a":1}"#), BodyErrcode::Absent);
        assert_eq!(read_errcode(b"<html>oops"), BodyErrcode::Invalid);
        assert_eq!(read_errcode(br#"{"errcode":0,"errm"#), BodyErrcode::Invalid);
        assert_eq!(read_errcode(b""), BodyErrcode::Invalid);
        assert_eq!(read_errcode(br#"[1,2]"#), BodyErrcode::Invalid);
        // An array is not an answer, even one serde could read as a struct.
        assert_eq!(read_errcode(br#"[42001]"#), BodyErrcode::Invalid);
        assert_eq!(read_errcode(br#" [0]"#), BodyErrcode::Invalid);
        assert_eq!(read_errcode(b" \n{\"errcode\":7}"), BodyErrcode::Code(7));
        assert_eq!(read_errcode(br#"{"errcode":"zero"}"#), BodyErrcode::Invalid);
    }

    #[test]
    fn token_errors() {
        for code in [40014, 42001, 40001] {
            assert!(is_token_error(code));
        }
        for code in [0, -1, 45009, 60020, 41001] {
            assert!(!is_token_error(code));
        }
    }

    #[test]
    fn wecom_answers_read_as_the_codes_acted_on() {
        // Bodies as WeCom sends them, read as the constants the proxy decides on.
        for (body, code) in [
            (
                &br#"{"errcode":-1,"errmsg":"system busy"}"#[..],
                SYSTEM_BUSY,
            ),
            (
                br#"{"errcode":45009,"errmsg":"api freq out of limit"}"#,
                FREQ_LIMIT,
            ),
            (
                br#"{"errcode":42001,"errmsg":"access_token expired"}"#,
                TOKEN_EXPIRED,
            ),
        ] {
            assert_eq!(read_errcode(body), BodyErrcode::Code(code));
        }
        assert!(!is_token_error(SYSTEM_BUSY));
    }
}
