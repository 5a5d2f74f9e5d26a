//! One ticket call to WeCom: `get_jsapi_ticket` or `ticket/get?type=agent_config` at the
//! token source's upstream, with the app's `access_token` from the token store. A token WeCom
//! rejects (40014, 42001, 40001) is replaced once through the token store and the call made
//! again; whatever else WeCom answers is the fetch's result.

use std::time::Instant;

use serde::Deserialize;

use super::TicketKind;
use crate::redact;
use crate::token::bounds::Hold;
use crate::token::fetch::{encode, get, usable};
use crate::token::{AppTokens, Token, TokenError, TokenSource, TokenStore};
use crate::wecom::errcode;

#[derive(Deserialize)]
struct TicketAnswer {
    errcode: Option<i64>,
    errmsg: Option<String>,
    ticket: Option<String>,
    expires_in: Option<u64>,
}

/// A new ticket of `kind` for `app`.
pub(super) async fn fetch(
    kind: TicketKind,
    app: &AppTokens,
    tokens: &TokenStore,
    src: &TokenSource<'_>,
    serial: u64,
) -> Result<Token, TokenError> {
    let token = tokens.get(app, src).await?;
    match once(kind, &token, src, serial).await {
        Err(TokenError::Rejected {
            errcode: errcode::INVALID_TOKEN | errcode::TOKEN_EXPIRED | errcode::INVALID_CREDENTIAL,
            ..
        }) => {
            let renewed = match tokens.replace(app, src, &token).await {
                // Rejected right after a gettoken: the replacement is allowed `min_refetch`
                // after it (at most that long to wait; the call's deadline bounds it too).
                Err(TokenError::Held {
                    hold: Hold::Refetch,
                    retry_in,
                }) if retry_in <= src.bounds.min_refetch => {
                    tokio::time::sleep(retry_in).await;
                    tokens.replace(app, src, &token).await?
                }
                other => other?,
            };
            once(kind, &renewed, src, serial).await
        }
        done => done,
    }
}

/// One ticket call with `token`.
async fn once(
    kind: TicketKind,
    token: &Token,
    src: &TokenSource<'_>,
    serial: u64,
) -> Result<Token, TokenError> {
    let up = src.upstream;
    let (api, extra) = match kind {
        TicketKind::Jsapi => ("get_jsapi_ticket", ""),
        TicketKind::AgentConfig => ("ticket/get", "&type=agent_config"),
    };
    let path = format!(
        "{}/cgi-bin/{api}?access_token={}{extra}",
        up.cfg.base_path,
        encode(token.expose())
    );
    let started = Instant::now();
    let body = get(up, src.resolver, &path, api).await?;
    ticket_from_answer(&body, api, up.cfg.name.as_str(), started, serial)
}

/// Reads a ticket answer (HTTP 200) into a ticket that expires `expires_in` after `started`.
fn ticket_from_answer(
    body: &[u8],
    api: &str,
    upstream: &str,
    started: Instant,
    serial: u64,
) -> Result<Token, TokenError> {
    let answer: TicketAnswer = serde_json::from_slice(body).map_err(|_| {
        TokenError::Unavailable(format!(
            "{api} at upstream {upstream} answered a body that is not JSON"
        ))
    })?;
    match answer.errcode.unwrap_or(0) {
        0 => {}
        code => {
            // WeCom's words may quote the request, the token included.
            let errmsg = answer.errmsg.unwrap_or_default();
            return Err(TokenError::Rejected {
                errcode: code,
                errmsg: redact::upstream_text(&errmsg, &[]).into_owned(),
            });
        }
    }
    usable(
        answer.ticket,
        answer.expires_in,
        &format!("{api} answered without a usable ticket"),
        started,
        serial,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn read(body: &str) -> Result<Token, TokenError> {
        ticket_from_answer(
            body.as_bytes(),
            "get_jsapi_ticket",
            "primary",
            Instant::now(),
            1,
        )
    }

    #[test]
    fn reads_wecom_answers_and_refuses_odd_ones() {
        let t =
            read(r#"{"errcode":0,"errmsg":"ok","ticket":"bxLdikRX","expires_in":7200}"#).unwrap();
        assert_eq!(t.expose(), "bxLdikRX");
        assert!(t.expires_in(Instant::now()) > Duration::from_secs(7100));
        assert_eq!(
            read(r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#).unwrap_err(),
            TokenError::Rejected {
                errcode: 45009,
                errmsg: "api freq out of limit".into()
            }
        );
        for odd in [
            r#"{"errcode":0,"ticket":""}"#,
            r#"{"errcode":0,"ticket":"has space"}"#,
            r#"{"errcode":0}"#,
            "<html>",
            r#"{"errcode":0,"ticket":"t","expires_in":-5}"#,
        ] {
            assert!(
                matches!(read(odd), Err(TokenError::Unavailable(_))),
                "{odd}"
            );
        }
        // A lifetime past a day is not trusted (nor overflows).
        let long = read(r#"{"errcode":0,"ticket":"t","expires_in":18446744073709551615}"#).unwrap();
        assert!(long.expires_in(Instant::now()) <= Duration::from_secs(86_400));
    }
}
