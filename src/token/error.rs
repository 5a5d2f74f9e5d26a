//! Why a call gets no token ([`TokenError`]), and the `Retry-After` that follows from it.

use std::fmt;
use std::time::Duration;

use super::bounds::Hold;

/// Why no token could be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// WeCom answered gettoken with a non-zero errcode (wrong secret 40001, untrusted IP 60020...).
    Rejected { errcode: i64, errmsg: String },
    /// gettoken could not be carried out (network, timeout, broken answer).
    Unavailable(String),
    /// No gettoken now: a bound holds it, for `retry_in`.
    Held { hold: Hold, retry_in: Duration },
}

impl TokenError {
    /// `Retry-After` for an answer made of this error, when it says when to try again.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            TokenError::Held { retry_in, .. } => {
                Some(retry_in.as_secs_f64().ceil().max(1.0) as u64)
            }
            _ => None,
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Rejected { errcode, errmsg } => {
                write!(f, "gettoken answered errcode {errcode} ({errmsg})")
            }
            TokenError::Unavailable(why) => f.write_str(why),
            TokenError::Held { hold, retry_in } => write!(
                f,
                "no gettoken for now: {hold}; next allowed in {} s",
                retry_in.as_secs_f64().ceil() as u64
            ),
        }
    }
}
