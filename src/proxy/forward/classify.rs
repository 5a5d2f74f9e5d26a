//! What one attempt's answer means, decided before anything is done about it: pure functions
//! of the answer's status, its body and whether the call's token may still be replaced.
//!
//! `head` looks at the status line alone (a final status no WeCom call answers with, or a
//! media file to stream); `classify` reads a body read whole. Their `Verdict` is acted on by
//! the loop in `forward`: a `Pass` goes to the app, `RenewToken` replaces the token and repeats
//! the call once, and a `Failure` goes to `next_step`, the one retry decision.

use std::borrow::Cow;

use crate::metrics::Outcome;
use crate::retry::{self, RetryReason};
use crate::upstream::exchange::{self, AttemptError};
use crate::wecom::errcode::{self, BodyErrcode};
use crate::wecom::facts::{self, Undelivered};

/// What to do with an answer whose header has arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Head {
    /// A final status no WeCom call is answered with (`101`, `204`, `304`...): the
    /// connection is closed and the attempt failed (`Failure::OddStatus`).
    Odd,
    /// A media file (a download's 200 that is not JSON): streamed to the app as it is.
    Stream,
    /// Read the body whole, then `classify` it.
    Read,
}

/// The header's verdict: `file` is whether the API answers with a file and this answer does
/// not say it is JSON (or text) instead.
pub(super) fn head(status: u16, file: bool) -> Head {
    if exchange::is_odd_final(status) {
        Head::Odd
    } else if file && status == 200 {
        Head::Stream
    } else {
        Head::Read
    }
}

/// Where the call's token stands when an answer is classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TokenUse {
    /// The call carries no token (robot webhooks, unauthenticated APIs).
    Absent,
    /// A token the sidecar has not replaced yet in this call: a token error may be cured.
    Replaceable,
    /// The token was replaced once already: a token error goes to the app.
    Replaced,
}

/// What an answer read whole means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// An answer for the app, from an upstream that served: a good answer, a 4xx (about the
    /// call, not the upstream's health) or an errcode no retry can change.
    Pass(Pass),
    /// WeCom rejected the token (this errcode) and a fresh one may cure it.
    RenewToken(i64),
    /// No answer worth keeping yet: `next_step` decides whether the call goes again.
    Failed(Failure),
}

/// An answer passed on, as the access log and metrics record it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pass {
    pub outcome: Outcome,
    pub errcode: Option<i64>,
    /// The `result` label of `wecom_upstream_attempts_total`.
    pub result: &'static str,
    /// A token error passed on as it is (the replacement was rejected too).
    pub token_error: bool,
    /// Recipients a send did not reach (read on every answer, counted for message APIs).
    pub undelivered: Undelivered,
    /// On 60020: the address WeCom saw the call come from.
    pub from_ip: Option<std::net::IpAddr>,
}

/// Why an attempt failed; each has its retry reason, metric label and the words of the
/// answer given when it is not repeated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Failure {
    /// The upstream's host name did not resolve (the resolver's words): nothing was sent,
    /// and only another upstream can help.
    Unresolved(String),
    /// No usable answer: refused, timed out, broken, too large.
    Attempt(AttemptError),
    /// HTTP 5xx.
    Status(u16),
    /// A final status no WeCom call is answered with (see `Head::Odd`).
    OddStatus(u16),
    /// HTTP 200 whose body is not a JSON object.
    NotJson,
    /// WeCom's own "try again" (errcode -1 or 45033): its answer goes to the app when the
    /// call is not repeated.
    Refused { errcode: i64, reason: RetryReason },
}

impl Failure {
    /// True when the attempt cannot have reached WeCom (no connection was made).
    pub fn nothing_sent(&self) -> bool {
        match self {
            Failure::Unresolved(_) => true,
            Failure::Attempt(e) => e.nothing_sent(),
            _ => false,
        }
    }

    /// The retry reason (the `reason` label of `wecom_retries_total`).
    pub fn reason(&self) -> RetryReason {
        match self {
            Failure::Unresolved(_) => RetryReason::Connect,
            Failure::Attempt(e) => RetryReason::from(e),
            Failure::Status(_) => RetryReason::Http5xx,
            Failure::OddStatus(_) | Failure::NotJson => RetryReason::BadResponse,
            Failure::Refused { reason, .. } => *reason,
        }
    }

    /// The `result` label of `wecom_upstream_attempts_total`.
    pub fn result(&self) -> &'static str {
        match self {
            Failure::Unresolved(_) => "connect_error",
            Failure::Attempt(e) => e.label(),
            Failure::Status(_) => "http_5xx",
            Failure::OddStatus(_) | Failure::NotJson => "bad_response",
            Failure::Refused { .. } => "errcode",
        }
    }

    /// The call's outcome if it ends on this failure.
    pub fn outcome(&self) -> Outcome {
        match self {
            Failure::Unresolved(_) | Failure::Attempt(_) | Failure::NotJson => {
                Outcome::NetworkError
            }
            Failure::Status(_) | Failure::OddStatus(_) => Outcome::HttpError,
            Failure::Refused { .. } => Outcome::Errcode,
        }
    }

    /// Repeating at the same upstream cannot help (its address is unknown), and nothing was
    /// sent anywhere: a retry goes to another upstream at once, or not at all.
    pub fn only_elsewhere(&self) -> bool {
        matches!(self, Failure::Unresolved(_))
    }

    /// What the access log's `detail` says (`None`: WeCom's answer speaks for itself).
    pub fn detail(&self) -> Option<String> {
        match self {
            Failure::Unresolved(why) => Some(why.clone()),
            Failure::Attempt(e) => Some(e.describe()),
            Failure::Refused { .. } => None,
            other => Some(format!("upstream {}", other.what())),
        }
    }

    /// What the upstream did, for the local `upstream-unavailable` answer ("upstream NAME
    /// {what}"). A `Refused` call gets WeCom's own answer instead.
    pub fn what(&self) -> Cow<'static, str> {
        match self {
            Failure::Unresolved(_) => "its address could not be resolved".into(),
            Failure::Attempt(e) => e.describe().into(),
            Failure::Status(s) => format!("answered HTTP {s}").into(),
            Failure::OddStatus(s) => {
                format!("answered HTTP {s}, which is no answer to a WeCom call").into()
            }
            Failure::NotJson => "answered a body that is not valid JSON".into(),
            Failure::Refused { errcode, .. } => format!("answered errcode {errcode}").into(),
        }
    }
}

/// The verdict on an answer read whole (status and body, secrets already taken out).
pub(super) fn classify(status: u16, body: &[u8], token: TokenUse) -> Verdict {
    if status >= 500 {
        return Verdict::Failed(Failure::Status(status));
    }
    if status != 200 {
        return Verdict::Pass(Pass {
            outcome: Outcome::HttpError,
            errcode: None,
            result: "http_error",
            token_error: false,
            undelivered: Undelivered::default(),
            from_ip: None,
        });
    }
    // One parse: the errcode and what the answer says beside it.
    let answer = facts::read(body);
    let code = match answer.errcode {
        BodyErrcode::Invalid => return Verdict::Failed(Failure::NotJson),
        BodyErrcode::Absent => {
            return Verdict::Pass(Pass {
                outcome: Outcome::Ok,
                errcode: None,
                result: "ok",
                token_error: false,
                undelivered: answer.undelivered,
                from_ip: None,
            })
        }
        BodyErrcode::Code(code) => code,
    };
    let token_error = errcode::is_token_error(code) && token != TokenUse::Absent;
    if token_error && token == TokenUse::Replaceable {
        return Verdict::RenewToken(code);
    }
    if let Some(reason) = retry::errcode_reason(code) {
        return Verdict::Failed(Failure::Refused {
            errcode: code,
            reason,
        });
    }
    Verdict::Pass(Pass {
        outcome: if code == 0 {
            Outcome::Ok
        } else {
            Outcome::Errcode
        },
        errcode: Some(code),
        result: if code == 0 { "ok" } else { "errcode" },
        token_error,
        undelivered: answer.undelivered,
        from_ip: answer.from_ip,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers as WeCom gives them (recorded shapes, ids shortened).
    const OK: &[u8] = br#"{"errcode":0,"errmsg":"ok","userid":"zhangsan","name":"Zhang San"}"#;
    const BUSY: &[u8] = br#"{"errcode":-1,"errmsg":"system busy"}"#;
    const FREQ: &[u8] = br#"{"errcode":45009,"errmsg":"reach max api daily quota limit, hint: [1700000000_1_abc]"}"#;
    const CONCURRENCY: &[u8] = br#"{"errcode":45033,"errmsg":"api concurrent out of limit"}"#;
    const INVALID_TOKEN: &[u8] = br#"{"errcode":40014,"errmsg":"invalid access_token, hint: [x]"}"#;
    const EXPIRED: &[u8] = br#"{"errcode":42001,"errmsg":"access_token expired, hint: [x]"}"#;
    const CREDENTIAL: &[u8] = br#"{"errcode":40001,"errmsg":"invalid credential, hint: [x]"}"#;
    const NO_USER: &[u8] = br#"{"errcode":60111,"errmsg":"userid not found"}"#;
    const NO_ERRCODE: &[u8] = br#"{"ip_list":["1.1.1.1"]}"#;
    const HTML: &[u8] = b"<html><body>502 Bad Gateway</body></html>";
    const TRUNCATED: &[u8] = br#"{"errcode":0,"errmsg":"o"#;

    fn pass(outcome: Outcome, errcode: Option<i64>, result: &'static str) -> Verdict {
        Verdict::Pass(Pass {
            outcome,
            errcode,
            result,
            token_error: false,
            undelivered: Undelivered::default(),
            from_ip: None,
        })
    }

    #[test]
    fn good_answers_and_errcodes_about_the_call_pass() {
        for token in [TokenUse::Absent, TokenUse::Replaceable, TokenUse::Replaced] {
            assert_eq!(classify(200, OK, token), pass(Outcome::Ok, Some(0), "ok"));
            assert_eq!(
                classify(200, NO_ERRCODE, token),
                pass(Outcome::Ok, None, "ok")
            );
            for (body, code) in [(FREQ, 45009), (NO_USER, 60111)] {
                assert_eq!(
                    classify(200, body, token),
                    pass(Outcome::Errcode, Some(code), "errcode"),
                    "errcode {code} is never retried"
                );
            }
            // A 4xx is about the call; its body is not read for an errcode.
            assert_eq!(
                classify(404, INVALID_TOKEN, token),
                pass(Outcome::HttpError, None, "http_error")
            );
        }
    }

    #[test]
    fn partial_success_and_untrusted_ip_ride_on_the_pass() {
        let partial =
            br#"{"errcode":0,"errmsg":"ok","invaliduser":"a|b","invalidtag":"7","msgid":"m"}"#;
        let Verdict::Pass(p) = classify(200, partial, TokenUse::Replaceable) else {
            panic!("a partial success passes");
        };
        assert_eq!((p.outcome, p.errcode), (Outcome::Ok, Some(0)));
        assert_eq!((p.undelivered.users, p.undelivered.tags), (2, 1));
        let untrusted = br#"{"errcode":60020,"errmsg":"not allow to access from your ip, hint: [x], from ip: 198.51.100.4, more info at y"}"#;
        let Verdict::Pass(p) = classify(200, untrusted, TokenUse::Replaceable) else {
            panic!("60020 passes");
        };
        assert_eq!(p.errcode, Some(60020));
        assert_eq!(p.from_ip, Some("198.51.100.4".parse().unwrap()));
    }

    #[test]
    fn system_busy_and_concurrency_go_to_the_policy() {
        assert_eq!(
            classify(200, BUSY, TokenUse::Replaceable),
            Verdict::Failed(Failure::Refused {
                errcode: -1,
                reason: RetryReason::SystemBusy
            })
        );
        assert_eq!(
            classify(200, CONCURRENCY, TokenUse::Absent),
            Verdict::Failed(Failure::Refused {
                errcode: 45033,
                reason: RetryReason::Concurrency
            })
        );
    }

    #[test]
    fn token_errors_renew_once_then_pass() {
        for (body, code) in [
            (INVALID_TOKEN, 40014),
            (EXPIRED, 42001),
            (CREDENTIAL, 40001),
        ] {
            assert_eq!(
                classify(200, body, TokenUse::Replaceable),
                Verdict::RenewToken(code)
            );
            assert_eq!(
                classify(200, body, TokenUse::Replaced),
                Verdict::Pass(Pass {
                    outcome: Outcome::Errcode,
                    errcode: Some(code),
                    result: "errcode",
                    token_error: true,
                    undelivered: Undelivered::default(),
                    from_ip: None,
                }),
                "a replacement rejected too is passed on"
            );
            // A call without a token (a robot) cannot be cured by one.
            assert_eq!(
                classify(200, body, TokenUse::Absent),
                pass(Outcome::Errcode, Some(code), "errcode")
            );
        }
    }

    #[test]
    fn server_errors_and_broken_bodies_fail() {
        for status in [500, 502, 503, 504, 599] {
            assert_eq!(
                classify(status, OK, TokenUse::Replaceable),
                Verdict::Failed(Failure::Status(status))
            );
        }
        for body in [HTML, TRUNCATED, b"".as_slice(), b"[1,2]".as_slice()] {
            assert_eq!(
                classify(200, body, TokenUse::Absent),
                Verdict::Failed(Failure::NotJson)
            );
        }
    }

    #[test]
    fn media_streams_and_odd_statuses_fail_at_the_header() {
        assert_eq!(head(200, true), Head::Stream);
        // A download answered with JSON is an error to read (e.g. an expired media_id).
        assert_eq!(head(200, false), Head::Read);
        assert_eq!(head(404, true), Head::Read);
        assert_eq!(head(503, true), Head::Read);
        for odd in [101, 204, 205, 304, 600, 99] {
            assert_eq!(head(odd, true), Head::Odd, "{odd}");
            assert_eq!(head(odd, false), Head::Odd, "{odd}");
        }
    }

    #[test]
    fn every_failure_has_its_reason_label_and_words() {
        use RetryReason::*;
        let cases = [
            (
                Failure::Unresolved("cannot resolve x.invalid".into()),
                Connect,
                "connect_error",
                Outcome::NetworkError,
            ),
            (
                Failure::Attempt(AttemptError::Connect("ConnectRefused")),
                Connect,
                "connect_error",
                Outcome::NetworkError,
            ),
            (
                Failure::Attempt(AttemptError::Timeout),
                Timeout,
                "timeout",
                Outcome::NetworkError,
            ),
            (
                Failure::Attempt(AttemptError::Reset("ConnectionClosed")),
                Reset,
                "reset",
                Outcome::NetworkError,
            ),
            (
                Failure::Attempt(AttemptError::TooLarge),
                BadResponse,
                "bad_response",
                Outcome::NetworkError,
            ),
            (
                Failure::Status(503),
                Http5xx,
                "http_5xx",
                Outcome::HttpError,
            ),
            (
                Failure::OddStatus(204),
                BadResponse,
                "bad_response",
                Outcome::HttpError,
            ),
            (
                Failure::NotJson,
                BadResponse,
                "bad_response",
                Outcome::NetworkError,
            ),
            (
                Failure::Refused {
                    errcode: -1,
                    reason: SystemBusy,
                },
                SystemBusy,
                "errcode",
                Outcome::Errcode,
            ),
        ];
        for (failure, reason, result, outcome) in cases {
            assert_eq!(failure.reason(), reason, "{failure:?}");
            assert_eq!(failure.result(), result, "{failure:?}");
            assert_eq!(failure.outcome(), outcome, "{failure:?}");
            assert_eq!(
                failure.only_elsewhere(),
                matches!(failure, Failure::Unresolved(_))
            );
            let refused = matches!(failure, Failure::Refused { .. });
            assert_eq!(failure.detail().is_none(), refused, "{failure:?}");
        }
        assert_eq!(
            Failure::Status(502).detail().as_deref(),
            Some("upstream answered HTTP 502")
        );
        assert_eq!(
            Failure::Attempt(AttemptError::Timeout).detail().as_deref(),
            Some("timed out")
        );
        assert_eq!(
            Failure::Unresolved("cannot resolve x.invalid".into())
                .detail()
                .as_deref(),
            Some("cannot resolve x.invalid")
        );
        assert_eq!(
            Failure::Unresolved(String::new()).what(),
            "its address could not be resolved"
        );
        assert_eq!(
            Failure::OddStatus(204).detail().as_deref(),
            Some("upstream answered HTTP 204, which is no answer to a WeCom call")
        );
        assert_eq!(
            Failure::NotJson.detail().as_deref(),
            Some("upstream answered a body that is not valid JSON")
        );
    }
}
