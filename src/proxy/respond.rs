//! Writing answers to the app: local answers, buffered upstream answers, streamed media.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession as Session;

use super::{hop, RequestCtx};
use crate::redact::CallRedaction;
use crate::upstream::h1::head::ResponseHead;
use crate::upstream::h1::request::decimal;
use crate::wecom::answer::LocalAnswer;

/// Writes a local answer and records it in the call's context.
///
/// The outcome is left as it is: `local` from the start of the call, unless an upstream
/// attempt failed (`http_error`, `network_error`) and this answer (502, 504) only reports it.
/// Dashboards read the outcome to tell the upstream's failures from the sidecar's refusals.
pub async fn local(
    session: &mut Session,
    ctx: &mut RequestCtx,
    answer: LocalAnswer,
) -> pingora::Result<()> {
    let body = answer.body();
    let mut header = answer.header(body.len());
    add_request_id(&mut header, ctx);
    ctx.status = answer.status;
    ctx.reason = Some(answer.reason);
    ctx.errcode = Some(answer.errcode);
    write(session, header, Some(body)).await
}

/// The app-facing header for an upstream answer: its status and headers, minus hop-by-hop ones
/// (`hop`), with every secret or token they quote taken out (`secrets`; a `Location` too:
/// redirects are passed on, never followed).
///
/// Built as plain `http` parts, not through pingora's header API: that re-parses every name and
/// keeps a second, case-preserving map, which profiled at 6 % of a call. Without that map
/// pingora writes standard names in title case and others in lower case (as Envoy does).
pub fn header_from_upstream(
    up: &ResponseHead,
    ctx: &RequestCtx,
    body_len: Option<usize>,
    secrets: &CallRedaction,
) -> ResponseHeader {
    // Content-Length is the sidecar's to set: it describes the body as it is written to the app.
    let mut headers = hop::end_to_end(&up.headers, 2, |name| name == http::header::CONTENT_LENGTH);
    secrets.headers(&mut headers);
    let declared = up.headers.get(http::header::CONTENT_LENGTH);
    match body_len {
        // The upstream's own value when it says the same (as it does for a body passed on
        // whole): a shared copy, where a new one is allocated.
        Some(len) => match declared.filter(|v| says(v, len)) {
            Some(same) => {
                headers.insert(http::header::CONTENT_LENGTH, same.clone());
            }
            None => {
                headers.insert(http::header::CONTENT_LENGTH, len.into());
            }
        },
        None => {
            if let Some(len) = declared {
                headers.insert(http::header::CONTENT_LENGTH, len.clone());
            }
        }
    }
    if let Ok(id) = http::HeaderValue::from_str(&ctx.request_id) {
        headers.insert(REQUEST_ID, id);
    }
    let (mut parts, ()) = http::Response::new(()).into_parts();
    parts.status = up.status;
    parts.headers = headers;
    ResponseHeader::from(parts)
}

/// Whether `value` is `len` written as the sidecar writes it (plain decimal digits).
fn says(value: &http::HeaderValue, len: usize) -> bool {
    let mut digits = [0u8; 20];
    value.as_bytes() == decimal(len as u64, &mut digits)
}

const REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

fn add_request_id(h: &mut ResponseHeader, ctx: &RequestCtx) {
    let _ = h.insert_header("X-Request-Id", ctx.request_id.as_str());
}

/// Writes a whole answer.
pub async fn write(
    session: &mut Session,
    header: impl Into<Box<ResponseHeader>>,
    body: Option<Bytes>,
) -> pingora::Result<()> {
    session.write_response_header(header.into()).await?;
    match body {
        Some(body) if !body.is_empty() => session.write_response_body(body, true).await,
        _ => session.finish_body().await,
    }
}

#[cfg(test)]
#[path = "respond_tests.rs"]
mod tests;
