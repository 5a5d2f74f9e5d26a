//! Every way the sidecar refuses a call, and the one table that says how each is answered:
//! HTTP status, WeCom `errcode`, `X-Sidecar-Reason` and message (SPEC "Answers the sidecar
//! makes itself"; the README's table of local answers lists the same rows).
//!
//! A step of the pipeline returns `Err(Refusal)`; the handler turns it into the answer with
//! [`Refusal::answer`] only then. A refusal is a small value: the words of its message are
//! `&'static str`, or built from what it carries when the answer is made, so a call that is
//! not refused allocates nothing for them.

use std::borrow::Cow;
use std::time::Duration;

use crate::config::{AppName, UpstreamName};
use crate::signing::Rejection;
use crate::token::TokenError;
use crate::wecom::answer::{LocalAnswer, Reason};
use crate::wecom::errcode;

/// Why the sidecar answers a call itself instead of passing on WeCom's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The path is outside `/cgi-bin/`: nothing there is a WeCom API (the admin endpoints are
    /// only on `admin_listen`).
    OutsideCgiBin,
    /// Under `/cgi-bin/` but no plain API path (`..`, `//`, percent-encoding, `\`, ...).
    OddPath,
    /// Not GET or POST.
    Method,
    /// The request body is (or is declared) over `limit` bytes.
    TooLarge { limit: u64 },
    /// The request body could not be read (broken chunk framing, a connection cut mid-body);
    /// `cause` is pingora's error type.
    BrokenBody { cause: &'static str },
    /// The upload could not be written to its spool file: the sidecar's own failure.
    SpoolFailed,
    /// `clients:` is set and the call's signature is not accepted.
    Unsigned(Rejection),
    /// `clients:` is set and the call's client may not use the app it names.
    AppNotAllowed {
        client: std::sync::Arc<str>,
        app: AppName,
    },
    /// The call names no configured app (`why`), or none and no app is `default`; `configured`
    /// lists the app names (never a secret).
    UnknownApp {
        why: &'static str,
        configured: String,
    },
    /// The local `gettoken`: no app has the `corpid` asked for.
    GettokenCorpid,
    /// The local `gettoken`: `corpsecret` is neither an app's name nor its secret.
    GettokenCredential,
    /// The local `gettoken` of a signed call for an app its client may not use.
    GettokenForbidden,
    /// Over a quota, at WeCom's per-member cap, or inside a block WeCom announced.
    /// `status` is the route's `quota_status` (200, or 429); `message` says which limit.
    Quota {
        status: u16,
        retry_after: u64,
        message: String,
    },
    /// `max_in_flight` calls of this app and API are in flight and none ended within
    /// `max_wait`: WeCom's concurrency answer (45033), made locally.
    Concurrency {
        status: u16,
        retry_after: u64,
        message: String,
    },
    /// No answer within the route's deadline.
    Deadline { deadline: Duration },
    /// A token call for which no app was chosen.
    NoApp,
    /// The URI for the upstream could not be built.
    InvalidUri,
    /// The route's split gives no upstream any weight.
    NoUpstream,
    /// The upstream gave no usable answer: `what` it did (could not be resolved, answered
    /// HTTP 5xx, a body that is not JSON, an odd final status, an attempt error...).
    UpstreamUnavailable {
        upstream: UpstreamName,
        what: Cow<'static, str>,
    },
    /// No token can be had for `app`.
    NoToken { app: AppName, error: TokenError },
    /// `client.max_connections` (`max`) app connections are open and all in a call.
    Overloaded { max: u64 },
    /// No JS-SDK ticket (`kind`: jsapi, agent_config) can be had for `app`.
    NoTicket {
        app: AppName,
        kind: &'static str,
        error: TokenError,
    },
    /// `GET /sidecar/jsapi/signature` without what it needs (`why`).
    SignatureRequest { why: &'static str },
}

/// A refusal's row of the table.
struct Row {
    status: u16,
    errcode: i64,
    reason: Reason,
    message: Cow<'static, str>,
    retry_after: Option<u64>,
}

/// A row without `Retry-After`.
fn row(status: u16, errcode: i64, reason: Reason, message: impl Into<Cow<'static, str>>) -> Row {
    Row {
        status,
        errcode,
        reason,
        message: message.into(),
        retry_after: None,
    }
}

impl Refusal {
    /// The table: how each refusal is answered.
    fn row(self) -> Row {
        use errcode::{
            API_FORBIDDEN, CONCURRENCY_LIMIT, DATA_FORMAT_ERROR, FREQ_LIMIT, INVALID_CORPID,
            INVALID_CREDENTIAL, INVALID_TOKEN, SYSTEM_BUSY, TOKEN_MISSING,
        };
        use Reason::*;
        match self {
            Refusal::OutsideCgiBin => row(
                404,
                404,
                BadRequest,
                "wecom-sidecar: only WeCom server API paths (/cgi-bin/...) are proxied",
            ),
            Refusal::OddPath => row(
                404,
                404,
                BadRequest,
                "wecom-sidecar: path is not a WeCom API path",
            ),
            Refusal::Method => row(
                405,
                405,
                BadRequest,
                "wecom-sidecar: WeCom APIs take GET or POST",
            ),
            Refusal::TooLarge { limit } => row(
                413,
                DATA_FORMAT_ERROR,
                BadRequest,
                format!("wecom-sidecar: request body over the limit of {limit} bytes"),
            ),
            Refusal::BrokenBody { cause } => row(
                400,
                DATA_FORMAT_ERROR,
                BadRequest,
                format!("wecom-sidecar: could not read the request body ({cause})"),
            ),
            Refusal::SpoolFailed => row(
                500,
                SYSTEM_BUSY,
                Internal,
                "wecom-sidecar: could not spool the upload to a temporary file (check TMPDIR)",
            ),
            Refusal::Unsigned(why) => row(
                401,
                API_FORBIDDEN,
                Unauthorized,
                format!("wecom-sidecar: {}", why.describe()),
            ),
            Refusal::AppNotAllowed { client, app } => row(
                403,
                API_FORBIDDEN,
                Unauthorized,
                format!(
                    "wecom-sidecar: client {client} may not use app {app} (see clients[].apps)"
                ),
            ),
            Refusal::UnknownApp { why, configured } => row(
                400,
                INVALID_TOKEN,
                UnknownApp,
                format!("wecom-sidecar: {why}; configured apps: {configured}"),
            ),
            Refusal::GettokenCorpid => row(
                200,
                INVALID_CORPID,
                Gettoken,
                "invalid corpid: wecom-sidecar has no app with this corpid",
            ),
            Refusal::GettokenCredential => row(
                200,
                INVALID_CREDENTIAL,
                Gettoken,
                "invalid credential: send the app's name (as configured in wecom-sidecar) as corpsecret",
            ),
            Refusal::GettokenForbidden => row(
                403,
                API_FORBIDDEN,
                Unauthorized,
                "wecom-sidecar: this client may not use this app (see clients[].apps)",
            ),
            Refusal::Quota {
                status,
                retry_after,
                message,
            } => Row {
                retry_after: Some(retry_after),
                ..row(status, FREQ_LIMIT, Quota, message)
            },
            Refusal::Concurrency {
                status,
                retry_after,
                message,
            } => Row {
                retry_after: Some(retry_after),
                ..row(status, CONCURRENCY_LIMIT, Quota, message)
            },
            Refusal::Deadline { deadline } => row(
                504,
                SYSTEM_BUSY,
                Deadline,
                format!("wecom-sidecar: no answer within the deadline of {deadline:?}"),
            ),
            Refusal::NoApp => row(400, TOKEN_MISSING, BadRequest, "wecom-sidecar: no app"),
            Refusal::InvalidUri => row(
                400,
                DATA_FORMAT_ERROR,
                BadRequest,
                "wecom-sidecar: invalid request URI",
            ),
            Refusal::NoUpstream => row(
                502,
                SYSTEM_BUSY,
                UpstreamUnavailable,
                "wecom-sidecar: this route's split gives no upstream any weight",
            ),
            Refusal::UpstreamUnavailable { upstream, what } => row(
                502,
                SYSTEM_BUSY,
                UpstreamUnavailable,
                format!("wecom-sidecar: upstream {upstream} {what}"),
            ),
            Refusal::NoToken { app, error } => {
                let retry_after = error.retry_after();
                let mut r = match &error {
                    // WeCom refused the token: its errcode (40001, 60020...) is the answer's.
                    TokenError::Rejected { errcode, errmsg } => row(
                        200,
                        *errcode,
                        NoToken,
                        format!(
                            "wecom-sidecar: no access_token for app {app}: gettoken answered errcode {errcode} ({})",
                            crate::redact::upstream_text(errmsg, &[])
                        ),
                    ),
                    TokenError::Unavailable(_) | TokenError::Held { .. } => row(
                        502,
                        SYSTEM_BUSY,
                        NoToken,
                        format!("wecom-sidecar: no access_token for app {app}: {error}"),
                    ),
                };
                r.retry_after = retry_after;
                r
            }
            Refusal::Overloaded { max } => Row {
                retry_after: Some(1),
                ..row(
                    503,
                    SYSTEM_BUSY,
                    Overloaded,
                    format!(
                        "wecom-sidecar: {max} app connections are open and all in calls \
                         (client.max_connections); retry shortly"
                    ),
                )
            },
            Refusal::NoTicket { app, kind, error } => {
                let retry_after = error.retry_after();
                let mut r = match &error {
                    // WeCom refused the ticket (45009...) or the token: its errcode is the answer's.
                    TokenError::Rejected { errcode, errmsg } => row(
                        200,
                        *errcode,
                        NoTicket,
                        format!(
                            "wecom-sidecar: no {kind} ticket for app {app}: WeCom answered errcode {errcode} ({})",
                            crate::redact::upstream_text(errmsg, &[])
                        ),
                    ),
                    TokenError::Unavailable(_) | TokenError::Held { .. } => row(
                        502,
                        SYSTEM_BUSY,
                        NoTicket,
                        format!("wecom-sidecar: no {kind} ticket for app {app}: {error}"),
                    ),
                };
                r.retry_after = retry_after;
                r
            }
            Refusal::SignatureRequest { why } => row(
                400,
                DATA_FORMAT_ERROR,
                BadRequest,
                format!("wecom-sidecar: /sidecar/jsapi/signature {why}"),
            ),
        }
    }

    /// Whether what is left of the request body may still be read after this answer (a
    /// lingering close, [`crate::linger`]): not once reading it failed, as the rest may never
    /// come or can no longer be framed.
    pub fn body_may_follow(&self) -> bool {
        !matches!(self, Refusal::BrokenBody { .. })
    }

    /// The answer to write to the app.
    pub fn answer(self) -> LocalAnswer {
        let r = self.row();
        let mut a = LocalAnswer::new(r.status, r.reason, r.errcode, r.message);
        a.retry_after = r.retry_after;
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::token::bounds::Hold;

    /// Which variant a refusal is; exhaustive, so a new variant does not compile until it has
    /// a number here, and `every_refusal_has_its_row` fails until `examples` holds one of it.
    fn variant(r: &Refusal) -> usize {
        match r {
            Refusal::OutsideCgiBin => 0,
            Refusal::OddPath => 1,
            Refusal::Method => 2,
            Refusal::TooLarge { .. } => 3,
            Refusal::BrokenBody { .. } => 4,
            Refusal::SpoolFailed => 5,
            Refusal::Unsigned(_) => 6,
            Refusal::AppNotAllowed { .. } => 7,
            Refusal::UnknownApp { .. } => 8,
            Refusal::GettokenCorpid => 9,
            Refusal::GettokenCredential => 10,
            Refusal::GettokenForbidden => 11,
            Refusal::Quota { .. } => 12,
            Refusal::Deadline { .. } => 13,
            Refusal::NoApp => 14,
            Refusal::InvalidUri => 15,
            Refusal::NoUpstream => 16,
            Refusal::UpstreamUnavailable { .. } => 17,
            Refusal::NoToken { .. } => 18,
            Refusal::Overloaded { .. } => 19,
            Refusal::Concurrency { .. } => 20,
            Refusal::NoTicket { .. } => 21,
            Refusal::SignatureRequest { .. } => 22,
        }
    }
    const VARIANTS: usize = 23;

    fn app() -> AppName {
        AppName(Arc::from("hr-bot"))
    }

    /// One or more refusals of every variant, with the status, errcode, reason and
    /// `Retry-After` each must be answered with: the contract, written out a second time.
    fn examples() -> Vec<(Refusal, u16, i64, &'static str, Option<u64>)> {
        vec![
            (Refusal::OutsideCgiBin, 404, 404, "bad-request", None),
            (Refusal::OddPath, 404, 404, "bad-request", None),
            (Refusal::Method, 405, 405, "bad-request", None),
            (
                Refusal::TooLarge { limit: 2097152 },
                413,
                47001,
                "bad-request",
                None,
            ),
            (
                Refusal::BrokenBody { cause: "ReadError" },
                400,
                47001,
                "bad-request",
                None,
            ),
            (Refusal::SpoolFailed, 500, -1, "internal", None),
            (
                Refusal::Unsigned(Rejection::Stale),
                401,
                48002,
                "unauthorized",
                None,
            ),
            (
                Refusal::AppNotAllowed {
                    client: Arc::from("billing"),
                    app: app(),
                },
                403,
                48002,
                "unauthorized",
                None,
            ),
            (
                Refusal::UnknownApp {
                    why: "the X-WeCom-App header names no configured app",
                    configured: "hr-bot, ops-bot".into(),
                },
                400,
                40014,
                "unknown-app",
                None,
            ),
            (Refusal::GettokenCorpid, 200, 40013, "gettoken", None),
            (Refusal::GettokenCredential, 200, 40001, "gettoken", None),
            (Refusal::GettokenForbidden, 403, 48002, "unauthorized", None),
            (
                Refusal::Quota {
                    status: 200,
                    retry_after: 7,
                    message: "wecom-sidecar: quota reached".into(),
                },
                200,
                45009,
                "quota",
                Some(7),
            ),
            (
                Refusal::Quota {
                    status: 429,
                    retry_after: 1,
                    message: "wecom-sidecar: quota reached".into(),
                },
                429,
                45009,
                "quota",
                Some(1),
            ),
            (
                Refusal::Concurrency {
                    status: 200,
                    retry_after: 1,
                    message: "wecom-sidecar: 4 calls in flight".into(),
                },
                200,
                45033,
                "quota",
                Some(1),
            ),
            (
                Refusal::Deadline {
                    deadline: Duration::from_secs(15),
                },
                504,
                -1,
                "deadline",
                None,
            ),
            (Refusal::NoApp, 400, 41001, "bad-request", None),
            (Refusal::InvalidUri, 400, 47001, "bad-request", None),
            (Refusal::NoUpstream, 502, -1, "upstream-unavailable", None),
            (
                Refusal::UpstreamUnavailable {
                    upstream: UpstreamName(Arc::from("primary")),
                    what: "timed out".into(),
                },
                502,
                -1,
                "upstream-unavailable",
                None,
            ),
            (
                Refusal::NoToken {
                    app: app(),
                    error: TokenError::Rejected {
                        errcode: 60020,
                        errmsg: "not allow to access from your ip".into(),
                    },
                },
                200,
                60020,
                "no-token",
                None,
            ),
            (
                Refusal::NoToken {
                    app: app(),
                    error: TokenError::Unavailable("upstream primary: timed out".into()),
                },
                502,
                -1,
                "no-token",
                None,
            ),
            (
                Refusal::NoToken {
                    app: app(),
                    error: TokenError::Held {
                        hold: Hold::Capped,
                        retry_in: Duration::from_millis(2500),
                    },
                },
                502,
                -1,
                "no-token",
                Some(3),
            ),
            (
                Refusal::Overloaded { max: 64 },
                503,
                -1,
                "overloaded",
                Some(1),
            ),
            (
                Refusal::NoTicket {
                    app: app(),
                    kind: "jsapi",
                    error: TokenError::Rejected {
                        errcode: 45009,
                        errmsg: "api freq out of limit".into(),
                    },
                },
                200,
                45009,
                "no-ticket",
                None,
            ),
            (
                Refusal::NoTicket {
                    app: app(),
                    kind: "agent_config",
                    error: TokenError::Held {
                        hold: Hold::Backoff,
                        retry_in: Duration::from_secs(30),
                    },
                },
                502,
                -1,
                "no-ticket",
                Some(30),
            ),
            (
                Refusal::SignatureRequest {
                    why: "needs url=<the page URL>",
                },
                400,
                47001,
                "bad-request",
                None,
            ),
        ]
    }

    #[test]
    fn every_refusal_has_its_row() {
        let examples = examples();
        let mut seen = [false; VARIANTS];
        for (refusal, status, errcode, reason, retry_after) in examples {
            seen[variant(&refusal)] = true;
            let shown = format!("{refusal:?}");
            let a = refusal.answer();
            assert_eq!(
                (a.status, a.errcode, a.reason.as_str(), a.retry_after),
                (status, errcode, reason, retry_after),
                "{shown}"
            );
            // WeCom-shaped, with the reason in its header.
            let v: serde_json::Value = serde_json::from_slice(&a.body()).unwrap();
            assert_eq!(v["errcode"], errcode, "{shown}");
            assert_eq!(v["errmsg"], a.errmsg.as_str(), "{shown}");
            let h = a.header(10);
            assert_eq!(h.status.as_u16(), status, "{shown}");
            assert_eq!(h.headers["x-sidecar-reason"], reason, "{shown}");
            // The sidecar's own words say they are its own; the gettoken ones read like
            // WeCom's (an SDK shows them as they are).
            if reason == "gettoken" {
                assert!(a.errmsg.starts_with("invalid "), "{shown}: {}", a.errmsg);
            } else {
                assert!(
                    a.errmsg.starts_with("wecom-sidecar: "),
                    "{shown}: {}",
                    a.errmsg
                );
            }
        }
        let missing: Vec<usize> = (0..VARIANTS).filter(|&i| !seen[i]).collect();
        assert!(
            missing.is_empty(),
            "variants without an example: {missing:?}"
        );
    }

    #[test]
    fn only_a_broken_body_is_not_read_on_after_its_answer() {
        for (refusal, ..) in examples() {
            let broken = matches!(refusal, Refusal::BrokenBody { .. });
            assert_eq!(refusal.body_may_follow(), !broken, "{refusal:?}");
        }
    }

    #[test]
    fn messages_carry_what_the_refusal_holds() {
        let msg = |r: Refusal| r.answer().errmsg;
        assert_eq!(
            msg(Refusal::TooLarge { limit: 2097152 }),
            "wecom-sidecar: request body over the limit of 2097152 bytes"
        );
        assert_eq!(
            msg(Refusal::AppNotAllowed {
                client: Arc::from("billing"),
                app: app(),
            }),
            "wecom-sidecar: client billing may not use app hr-bot (see clients[].apps)"
        );
        assert_eq!(
            msg(Refusal::UpstreamUnavailable {
                upstream: UpstreamName(Arc::from("standby")),
                what: "its address could not be resolved".into(),
            }),
            "wecom-sidecar: upstream standby its address could not be resolved"
        );
        assert_eq!(
            msg(Refusal::Deadline {
                deadline: Duration::from_millis(300)
            }),
            "wecom-sidecar: no answer within the deadline of 300ms"
        );
        let unknown = msg(Refusal::UnknownApp {
            why: "the call names no app",
            configured: "hr-bot, ops-bot".into(),
        });
        assert_eq!(
            unknown,
            "wecom-sidecar: the call names no app; configured apps: hr-bot, ops-bot"
        );
        let rejected = msg(Refusal::NoToken {
            app: app(),
            error: TokenError::Rejected {
                errcode: 40001,
                errmsg: "invalid credential".into(),
            },
        });
        assert!(
            rejected.starts_with(
                "wecom-sidecar: no access_token for app hr-bot: gettoken answered errcode 40001 ("
            ),
            "{rejected}"
        );
    }
}
