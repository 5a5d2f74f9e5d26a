//! The `gettoken` call itself: one request to the upstream that issues an app's tokens.

use std::time::{Duration, Instant, SystemTime};

use pingora::http::RequestHeader;
use serde::Deserialize;

use super::{Token, TokenError, TokenSource};
use crate::body::RequestBody;
use crate::config::App;
use crate::redact::{self, Pattern, MASK};
use crate::upstream::exchange;
use crate::upstream::resolve::Resolver;
use crate::upstream::UpstreamRt;

/// Largest gettoken answer accepted (a real one is about 200 bytes).
const MAX_GETTOKEN_BODY: usize = 64 * 1024;
/// Shortest lifetime accepted from WeCom; a smaller `expires_in` is treated as this.
const MIN_EXPIRES_IN: u64 = 60;
/// Longest lifetime accepted (a day; WeCom's tokens live 7,200 s). A larger `expires_in`, from
/// a broken or private upstream, is treated as this rather than trusted (or overflowing).
const MAX_EXPIRES_IN: u64 = 86_400;

#[derive(Deserialize)]
struct GettokenAnswer {
    errcode: Option<i64>,
    errmsg: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

pub(crate) fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Asks `upstream` for a new token for `app`.
/// Fetches from the source's upstream; when it cannot be reached (not when WeCom refuses, which
/// every endpoint of it would), from each of its standbys in turn. Upstreams that are ejected go
/// last.
pub async fn gettoken_from(
    src: &TokenSource<'_>,
    app: &App,
    serial: u64,
) -> Result<Token, TokenError> {
    let now = tokio::time::Instant::now();
    let all = || std::iter::once(src.upstream).chain(src.standbys.iter().map(|u| &**u));
    let order = all()
        .filter(|u| u.health.available(now))
        .chain(all().filter(|u| !u.health.available(now)));
    let mut last = None;
    for up in order {
        match gettoken(up, src.resolver, app, serial).await {
            Err(TokenError::Unavailable(e)) => last = Some(TokenError::Unavailable(e)),
            done => return done,
        }
    }
    Err(last.unwrap_or_else(|| TokenError::Unavailable("no upstream to fetch a token from".into())))
}

pub async fn gettoken(
    upstream: &UpstreamRt,
    resolver: &Resolver,
    app: &App,
    serial: u64,
) -> Result<Token, TokenError> {
    let started = Instant::now();
    let path = format!(
        "{}/cgi-bin/gettoken?corpid={}&corpsecret={}",
        upstream.cfg.base_path,
        encode(&app.corp_id),
        encode(app.secret.expose())
    );
    let body = get(upstream, resolver, &path, "gettoken").await?;
    token_from_answer(&body, upstream.cfg.name.as_str(), started, serial).map_err(|e| match e {
        // WeCom's words may quote the request, `corpsecret` included: what is kept, logged
        // and answered is the redacted text.
        TokenError::Rejected { errcode, errmsg } => {
            let sent = Pattern::forms(app.secret.expose(), &MASK.into());
            TokenError::Rejected {
                errcode,
                errmsg: redact::upstream_text(&errmsg, &sent).into_owned(),
            }
        }
        other => other,
    })
}

/// One `GET` of `path` (base path, path and query) at `upstream`, its HTTP 200 body read (up
/// to 64 KiB); what cannot be had is [`TokenError::Unavailable`], in words naming `what` and the
/// upstream (never `path`, which may carry a secret or a token). Shared by gettoken and the
/// ticket fetches (`crate::ticket`).
pub(crate) async fn get(
    upstream: &UpstreamRt,
    resolver: &Resolver,
    path: &str,
    what: &str,
) -> Result<bytes::Bytes, TokenError> {
    let addr = resolver
        .resolve(&upstream.cfg.host, upstream.cfg.port)
        .await
        .map_err(|e| TokenError::Unavailable(format!("upstream {}: {e}", upstream.cfg.name)))?;
    let mut req = RequestHeader::build("GET", path.as_bytes(), Some(3))
        .map_err(|_| TokenError::Unavailable(format!("cannot build the {what} request")))?;
    let _ = req.insert_header("Host", upstream.authority.as_str());
    let _ = req.insert_header(
        "User-Agent",
        concat!("wecom-sidecar/", env!("CARGO_PKG_VERSION")),
    );
    let attempt = async {
        let mut open = exchange::open(upstream, addr, Box::new(req), &RequestBody::Empty).await?;
        let status = open.status();
        let body = open.read_to_end(MAX_GETTOKEN_BODY).await?;
        open.release(upstream).await;
        Ok::<_, exchange::AttemptError>((status, body))
    };
    let (status, body) = match tokio::time::timeout(upstream.cfg.timeout, attempt).await {
        Err(_) => {
            return Err(TokenError::Unavailable(format!(
                "{what} at upstream {} timed out",
                upstream.cfg.name
            )))
        }
        Ok(Err(e)) => {
            return Err(TokenError::Unavailable(format!(
                "{what} at upstream {}: {}",
                upstream.cfg.name,
                e.describe()
            )))
        }
        Ok(Ok(answer)) => answer,
    };
    if status != 200 {
        return Err(TokenError::Unavailable(format!(
            "{what} at upstream {} answered HTTP {status}",
            upstream.cfg.name
        )));
    }
    Ok(body)
}

/// Reads a `gettoken` answer (HTTP 200) into a token that expires `expires_in` after `started`.
fn token_from_answer(
    body: &[u8],
    upstream: &str,
    started: Instant,
    serial: u64,
) -> Result<Token, TokenError> {
    let answer: GettokenAnswer = serde_json::from_slice(body).map_err(|_| {
        TokenError::Unavailable(format!(
            "gettoken at upstream {} answered a body that is not JSON",
            upstream
        ))
    })?;
    match answer.errcode.unwrap_or(0) {
        0 => {}
        errcode => {
            return Err(TokenError::Rejected {
                errcode,
                errmsg: answer.errmsg.unwrap_or_default(),
            })
        }
    }
    usable(
        answer.access_token,
        answer.expires_in,
        "gettoken answered without a usable access_token",
        started,
        serial,
    )
}

/// The credential of an accepted answer (an `access_token`, a ticket): refused when it is
/// missing, empty or not printable ASCII (`missing` says so); it expires `expires_in` (7200 if
/// absent, clamped to what WeCom ever answers) after `started`.
pub(crate) fn usable(
    value: Option<String>,
    expires_in: Option<u64>,
    missing: &str,
    started: Instant,
    serial: u64,
) -> Result<Token, TokenError> {
    let value = value
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| TokenError::Unavailable(missing.to_string()))?;
    let lifetime = Duration::from_secs(
        expires_in
            .unwrap_or(7200)
            .clamp(MIN_EXPIRES_IN, MAX_EXPIRES_IN),
    );
    Ok(Token::new(
        value,
        started + lifetime,
        SystemTime::now(),
        serial,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lifetime(expires_in: &str) -> Result<Duration, TokenError> {
        let started = Instant::now();
        let body = format!(r#"{{"errcode":0,"access_token":"T0k","expires_in":{expires_in}}}"#);
        token_from_answer(body.as_bytes(), "primary", started, 1)
            .map(|t| t.expires_at.duration_since(started))
    }

    #[test]
    fn expires_in_is_kept_within_a_minute_and_a_day() {
        assert_eq!(lifetime("7200").unwrap(), Duration::from_secs(7200));
        assert_eq!(lifetime("5").unwrap(), Duration::from_secs(60));
        assert_eq!(lifetime("0").unwrap(), Duration::from_secs(60));
        // Would overflow the clock if trusted; a broken upstream must not panic the sidecar.
        assert_eq!(
            lifetime("18446744073709551615").unwrap(),
            Duration::from_secs(86_400)
        );
        assert!(
            lifetime("-1").is_err(),
            "a negative lifetime is not a token"
        );
    }
}
