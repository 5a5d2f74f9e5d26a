//! Answers the sidecar makes itself, always WeCom-shaped (`errcode`, `errmsg`) with an
//! `X-Sidecar-Reason` header naming why, so SDKs parse them like WeCom's own. Which refusal gets
//! which status, errcode and reason is one table, `proxy::refusal`; this is only their shape.

use bytes::Bytes;
use pingora::http::ResponseHeader;

/// Why the sidecar answered locally (the `X-Sidecar-Reason` header value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Quota,
    NoToken,
    UnknownApp,
    UpstreamUnavailable,
    Deadline,
    BadRequest,
    /// The app's `gettoken`, answered locally with its placeholder.
    Gettoken,
    /// A JS-SDK ticket or page signature, answered from the ticket cache.
    Ticket,
    /// No JS-SDK ticket can be had.
    NoTicket,
    /// `clients:` is set and the call's signature, or its app, is not allowed.
    Unauthorized,
    /// `client.max_connections` app connections are open and every one is in a call.
    Overloaded,
    /// The sidecar itself failed (an upload it could not spool): nothing the app did.
    Internal,
    /// An outbox send WeCom could not be reached for, committed to be replayed (errcode 0).
    Queued,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Quota => "quota",
            Reason::NoToken => "no-token",
            Reason::UnknownApp => "unknown-app",
            Reason::UpstreamUnavailable => "upstream-unavailable",
            Reason::Deadline => "deadline",
            Reason::BadRequest => "bad-request",
            Reason::Gettoken => "gettoken",
            Reason::Ticket => "ticket",
            Reason::NoTicket => "no-ticket",
            Reason::Unauthorized => "unauthorized",
            Reason::Overloaded => "overloaded",
            Reason::Internal => "internal",
            Reason::Queued => "queued",
        }
    }
}

/// A local answer, ready to be written to the app.
#[derive(Debug, Clone)]
pub struct LocalAnswer {
    pub status: u16,
    pub reason: Reason,
    pub errcode: i64,
    pub errmsg: String,
    /// `Retry-After` in seconds.
    pub retry_after: Option<u64>,
    /// Extra JSON fields beside errcode/errmsg (e.g. the local gettoken answer).
    pub extra: Option<serde_json::Map<String, serde_json::Value>>,
}

impl LocalAnswer {
    pub fn new(status: u16, reason: Reason, errcode: i64, errmsg: impl Into<String>) -> Self {
        LocalAnswer {
            status,
            reason,
            errcode,
            errmsg: errmsg.into(),
            retry_after: None,
            extra: None,
        }
    }

    pub fn body(&self) -> Bytes {
        let mut map = serde_json::Map::new();
        map.insert("errcode".into(), self.errcode.into());
        map.insert("errmsg".into(), self.errmsg.clone().into());
        if let Some(extra) = &self.extra {
            for (k, v) in extra {
                map.insert(k.clone(), v.clone());
            }
        }
        Bytes::from(serde_json::Value::Object(map).to_string())
    }

    /// Response header for this answer with the given body length.
    pub fn header(&self, body_len: usize) -> ResponseHeader {
        let mut h = ResponseHeader::build(self.status, Some(4)).expect("valid status");
        // Infallible: the names and values below are static ASCII or digits.
        let _ = h.insert_header("Content-Type", "application/json; charset=UTF-8");
        let _ = h.insert_header("Content-Length", body_len.to_string());
        let _ = h.insert_header("X-Sidecar-Reason", self.reason.as_str());
        if let Some(secs) = self.retry_after {
            let _ = h.insert_header("Retry-After", secs.to_string());
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shaped_like_wecom() {
        let a = LocalAnswer::new(502, Reason::UpstreamUnavailable, -1, "no upstream answered");
        let v: serde_json::Value = serde_json::from_slice(&a.body()).unwrap();
        assert_eq!(v["errcode"], -1);
        assert_eq!(v["errmsg"], "no upstream answered");
        let h = a.header(10);
        assert_eq!(h.status.as_u16(), 502);
        assert_eq!(
            h.headers.get("x-sidecar-reason").unwrap(),
            "upstream-unavailable"
        );
    }
}
