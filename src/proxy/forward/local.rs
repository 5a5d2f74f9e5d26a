//! The answers forwarding gives itself, and the words its access-log lines carry for them:
//! no token to be had, no upstream to send to, an upstream that gave no usable answer.

use crate::token::{AppTokens, TokenError};
use crate::upstream::UpstreamRt;
use crate::wecom::answer::{LocalAnswer, Reason};
use crate::wecom::errcode;

pub(super) fn no_token_answer(app: &AppTokens, e: &TokenError) -> LocalAnswer {
    match e {
        TokenError::Rejected { errcode, errmsg } => LocalAnswer::new(
            200,
            Reason::NoToken,
            *errcode,
            format!(
                "wecom-sidecar: no access_token for app {}: gettoken answered errcode {errcode} ({})",
                app.app.name,
                crate::redact::upstream_text(errmsg, &[])
            ),
        ),
        TokenError::Unavailable(why) => LocalAnswer::new(
            502,
            Reason::NoToken,
            errcode::SYSTEM_BUSY,
            format!("wecom-sidecar: no access_token for app {}: {why}", app.app.name),
        ),
        TokenError::Held { .. } => {
            let mut answer = LocalAnswer::new(
                502,
                Reason::NoToken,
                errcode::SYSTEM_BUSY,
                format!("wecom-sidecar: no access_token for app {}: {e}", app.app.name),
            );
            answer.retry_after = e.retry_after();
            answer
        }
    }
}

/// Why a call got `no-token`, for its access-log line: the class of failure or the bound that
/// held the fetch, never WeCom's errmsg (it can quote the request).
pub(super) fn no_token_detail(e: &TokenError) -> String {
    match e {
        TokenError::Rejected { errcode, .. } => {
            format!("no-token: gettoken answered errcode {errcode}")
        }
        TokenError::Unavailable(why) => format!("no-token: {why}"),
        TokenError::Held { hold, .. } => format!("no-token: gettoken held ({})", hold.as_str()),
    }
}

/// A call needing a token that names no app.
pub(super) fn no_app() -> LocalAnswer {
    LocalAnswer::bad_request(errcode::TOKEN_MISSING, "wecom-sidecar: no app")
}

/// A route whose split (or the plan imposed on it) gives no upstream any weight.
pub(super) fn no_upstream() -> LocalAnswer {
    LocalAnswer::new(
        502,
        Reason::UpstreamUnavailable,
        errcode::SYSTEM_BUSY,
        "wecom-sidecar: this route's split gives no upstream any weight",
    )
}

/// A request URI the upstream's base path and the call's path do not make valid.
pub(super) fn invalid_uri() -> LocalAnswer {
    LocalAnswer::bad_request(
        errcode::DATA_FORMAT_ERROR,
        "wecom-sidecar: invalid request URI",
    )
}

/// The call ends without a usable answer from `up`, which `what`.
pub(super) fn unavailable(up: &UpstreamRt, what: &str) -> LocalAnswer {
    LocalAnswer::new(
        502,
        Reason::UpstreamUnavailable,
        errcode::SYSTEM_BUSY,
        format!("wecom-sidecar: upstream {} {what}", up.cfg.name),
    )
}
