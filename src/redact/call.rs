//! What comes out of one call's answer ([`CallRedaction`]): everything [`known`] and the call's
//! own extras, the token it carried and its robot `key`.

use std::borrow::Cow;
use std::sync::Arc;

use super::{known, Pattern, Redactor, MASK};

/// An answer body under a `Content-Encoding`: not passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoded;

/// What comes out of one call's answer: everything [`known`], the token injected into the
/// call (should it not be known yet) standing for the app's name, and the call's robot `key`.
pub struct CallRedaction {
    known: Arc<Redactor>,
    extra: Vec<Pattern>,
}

impl CallRedaction {
    /// For a call of app `app` that carried `token`, and `robot_key` (webhook calls).
    pub fn new(app_and_token: Option<(&str, &str)>, robot_key: Option<&str>) -> CallRedaction {
        let known = known();
        let mut extra = Vec::new();
        if let Some((app, token)) = app_and_token {
            if !known.holds(token.as_bytes()) {
                extra.extend(Pattern::forms(token, &Arc::from(app)));
            }
        }
        if let Some(key) = robot_key {
            extra.extend(Pattern::forms(key, &Arc::from(MASK)));
        }
        CallRedaction { known, extra }
    }

    /// A buffered answer body, redacted; the same bytes (no copy) when it holds nothing.
    /// `Err` for a body with a `Content-Encoding` (never asked for: requests go without
    /// `Accept-Encoding`): it cannot be searched, and the app would unpack what it hides.
    pub fn body(
        &self,
        body: bytes::Bytes,
        headers: &http::HeaderMap,
    ) -> Result<bytes::Bytes, Encoded> {
        let encoded = headers
            .get_all(http::header::CONTENT_ENCODING)
            .iter()
            .any(|v| !v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"identity"));
        if encoded && !body.is_empty() {
            return Err(Encoded);
        }
        Ok(match self.known.redact(&body, &self.extra) {
            Cow::Borrowed(_) => body,
            Cow::Owned(b) => bytes::Bytes::from(b),
        })
    }

    /// An answer's headers, redacted in place; `raw`, the head they were parsed from (see
    /// [`Redactor::redact_headers`]).
    pub fn headers(&self, headers: &mut http::HeaderMap, raw: Option<&[u8]>) {
        self.known.redact_headers(headers, &self.extra, raw);
    }
}

#[cfg(test)]
#[path = "call_tests.rs"]
mod header_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_takes_out_its_own_token_and_robot_key() {
        let token = "tok-only-this-call-knows-0123456789";
        let call = CallRedaction::new(Some(("hr-bot", token)), Some("robot-key-abcdef012345"));
        let body = bytes::Bytes::from(format!(
            r#"{{"url":"/x?access_token={token}","hook":"send?key=robot-key-abcdef012345"}}"#
        ));
        let none = http::HeaderMap::new();
        assert_eq!(
            call.body(body, &none).unwrap(),
            r#"{"url":"/x?access_token=hr-bot","hook":"send?key=***"}"#
        );
        let plain = bytes::Bytes::from_static(br#"{"errcode":0,"errmsg":"ok"}"#);
        let same = call.body(plain.clone(), &none).unwrap();
        assert_eq!(
            same.as_ptr(),
            plain.as_ptr(),
            "copied although it held nothing"
        );
        let mut gzip = http::HeaderMap::new();
        gzip.insert("content-encoding", "gzip".parse().unwrap());
        assert_eq!(call.body(plain.clone(), &gzip), Err(Encoded));
        assert!(
            call.body(bytes::Bytes::new(), &gzip).is_ok(),
            "nothing to hide"
        );
        gzip.insert("content-encoding", "Identity".parse().unwrap());
        assert!(call.body(plain, &gzip).is_ok());
    }
}
