//! The `gettoken` call itself: one request to the upstream that issues an app's tokens.

use std::time::{Duration, Instant, SystemTime};

use pingora::http::RequestHeader;
use serde::Deserialize;

use super::{Token, TokenError};
use crate::body::RequestBody;
use crate::config::App;
use crate::upstream::exchange;
use crate::upstream::resolve::Resolver;
use crate::upstream::UpstreamRt;

/// Largest gettoken answer accepted (a real one is about 200 bytes).
const MAX_GETTOKEN_BODY: usize = 64 * 1024;
/// Shortest lifetime accepted from WeCom; a smaller `expires_in` is treated as this.
const MIN_EXPIRES_IN: u64 = 60;

#[derive(Deserialize)]
struct GettokenAnswer {
    errcode: Option<i64>,
    errmsg: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Asks `upstream` for a new token for `app`.
pub async fn gettoken(
    upstream: &UpstreamRt,
    resolver: &Resolver,
    app: &App,
    serial: u64,
) -> Result<Token, TokenError> {
    let started = Instant::now();
    let addr = resolver
        .resolve(&upstream.cfg.host, upstream.cfg.port)
        .await
        .map_err(|e| TokenError::Unavailable(format!("upstream {}: {e}", upstream.cfg.name)))?;
    let path = format!(
        "{}/cgi-bin/gettoken?corpid={}&corpsecret={}",
        upstream.cfg.base_path,
        encode(&app.corp_id),
        encode(app.secret.expose())
    );
    let mut req = RequestHeader::build("GET", path.as_bytes(), Some(3))
        .map_err(|_| TokenError::Unavailable("cannot build the gettoken request".into()))?;
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
                "gettoken at upstream {} timed out",
                upstream.cfg.name
            )))
        }
        Ok(Err(e)) => {
            return Err(TokenError::Unavailable(format!(
                "gettoken at upstream {}: {}",
                upstream.cfg.name,
                e.describe()
            )))
        }
        Ok(Ok(answer)) => answer,
    };
    if status != 200 {
        return Err(TokenError::Unavailable(format!(
            "gettoken at upstream {} answered HTTP {status}",
            upstream.cfg.name
        )));
    }
    let answer: GettokenAnswer = serde_json::from_slice(&body).map_err(|_| {
        TokenError::Unavailable(format!(
            "gettoken at upstream {} answered a body that is not JSON",
            upstream.cfg.name
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
    let value = answer
        .access_token
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            TokenError::Unavailable("gettoken answered without a usable access_token".into())
        })?;
    let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(7200).max(MIN_EXPIRES_IN));
    Ok(Token::new(
        value,
        started + lifetime,
        SystemTime::now(),
        serial,
    ))
}
