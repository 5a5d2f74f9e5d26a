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
/// The upstream's map is taken from `up` (left empty) and edited in place: it is read for
/// nothing else once the answer is. Built as plain `http` parts, not through pingora's header
/// API: that re-parses every name and keeps a second, case-preserving map, which profiled at
/// 6 % of a call. Without that map pingora writes standard names in title case and others in
/// lower case (as Envoy does).
pub fn header_from_upstream(
    up: &mut ResponseHead,
    ctx: &RequestCtx,
    body_len: Option<usize>,
    secrets: &CallRedaction,
) -> ResponseHeader {
    let mut headers = std::mem::take(&mut up.headers);
    hop::strip(&mut headers);
    secrets.headers(&mut headers);
    // Content-Length is the sidecar's to set: it describes the body as it is written to the
    // app. The upstream's one value stands when it says the same (as it does for a body passed
    // on whole, or streamed as it came); else one value replaces every field.
    let mut declared = headers.get_all(http::header::CONTENT_LENGTH).iter();
    let (first, more) = (declared.next(), declared.next().is_some());
    let replace = match (body_len, first) {
        (Some(len), Some(first)) if !more && says(first, len) => None,
        (Some(len), _) => Some(len.into()),
        (None, Some(first)) if more => Some(first.clone()),
        (None, _) => None,
    };
    if let Some(value) = replace {
        headers.insert(http::header::CONTENT_LENGTH, value);
    }
    headers.insert(REQUEST_ID, ctx.request_id.clone());
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
    let _ = h.insert_header(REQUEST_ID, ctx.request_id.clone());
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
