//! Writing answers to the app: local answers, buffered upstream answers, streamed media.
//!
//! A whole answer (a local one, or a buffered upstream one) is written by the sidecar itself,
//! once the call is done with the request: when the request was read whole and the connection
//! is kept, pingora's session is finished first (it hands the connection back, with any
//! pipelined bytes) and the answer goes out as one buffer, head and body together. pingora's
//! answer writer re-inserted `Date` and `Connection` into the header map, built a second
//! buffer and wrote head and body apart: 5–6k instructions a call. Any other answer (the
//! connection closes after it, or the request body was not read) goes through pingora's
//! writer, which closes the connection as before; one sent before the body was read whole
//! is followed by a lingering close ([`crate::linger`]), once the call is logged.

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession as Session;
use pingora::protocols::Stream;
use tokio::io::AsyncWriteExt;

use super::{hop, request, RequestCtx};
use crate::redact::CallRedaction;
use crate::upstream::h1::head::ResponseHead;
use crate::upstream::h1::request::decimal;
use crate::wecom::answer::LocalAnswer;

/// A whole answer, to write once the call is done with the request.
pub struct Answer {
    pub header: Box<ResponseHeader>,
    pub body: Bytes,
}

/// A connection handed back for the next call: the stream and the bytes of the next request
/// already read (pipelined).
pub type Reused = (Stream, Option<BytesMut>);

/// A local answer, recorded in the call's context.
///
/// The outcome is left as it is: `local` from the start of the call, unless an upstream
/// attempt failed (`http_error`, `network_error`) and this answer (502, 504) only reports it.
/// Dashboards read the outcome to tell the upstream's failures from the sidecar's refusals.
pub fn local(ctx: &mut RequestCtx, answer: LocalAnswer) -> Answer {
    let body = answer.body();
    let mut header = answer.header(body.len());
    add_request_id(&mut header, ctx);
    ctx.status = answer.status;
    ctx.reason = Some(answer.reason);
    ctx.errcode = Some(answer.errcode);
    Answer {
        header: Box::new(header),
        body,
    }
}

/// What becomes of the app's connection once the answer is out.
pub enum After {
    /// Kept for the next call.
    Reuse(Reused),
    /// Closed.
    Closed,
    /// Answered before its request body was read whole: the rest of the body is to be read
    /// and dropped ([`crate::linger`]); dropping the session then closes the connection.
    Linger(Box<Session>),
}

/// Writes `answer` (if the call has one left to write; a streamed one is out already), ends
/// the session, and hands the connection back when it is kept. A failed write means the app
/// went away; the call's context (and so its access line) says so. `reads_on`: the body may
/// still be read after the answer (false once reading it failed: it is not waited for again).
pub async fn finish(
    mut session: Box<Session>,
    answer: Option<Answer>,
    reads_on: bool,
    ctx: &mut RequestCtx,
) -> After {
    let Some(mut answer) = answer else {
        return end(session).await;
    };
    let (keep, no_body, timeout) = match &*session {
        Session::H1(s) => (
            s.will_keepalive(),
            s.req_header().method == http::Method::HEAD,
            s.get_write_timeout(),
        ),
        _ => (false, false, None),
    };
    let body_done = session.is_body_done();
    if !(keep && body_done && writes_whole(&answer)) {
        match write(&mut session, answer.header, Some(answer.body)).await {
            Err(e) => ctx.detail = Some(format!("app went away: {}", e.etype().as_str())),
            Ok(()) if !body_done && reads_on => return After::Linger(session),
            Ok(()) => {}
        }
        return end(session).await;
    }
    let bytes = wire(&mut answer, no_body);
    let After::Reuse((mut stream, pipelined)) = end(session).await else {
        ctx.detail = Some("app went away: before the answer".into());
        return After::Closed;
    };
    let out = async {
        stream.write_all(&bytes).await?;
        stream.flush().await
    };
    let written = match timeout {
        Some(limit) => tokio::time::timeout(limit, out).await.ok(),
        None => Some(out.await),
    };
    match written {
        Some(Ok(())) => After::Reuse((stream, pipelined)),
        Some(Err(_)) => {
            ctx.detail = Some("app went away: WriteError".into());
            After::Closed
        }
        None => {
            ctx.detail = Some("app went away: WriteTimedout".into());
            After::Closed
        }
    }
}

/// Ends the session: the connection back, with any pipelined bytes, when it is kept.
///
/// pingora's `ServerSession::finish` taken a step at a time for the HTTP/1 session the app
/// listener has: the body flushed through the box, then the session moved once, into
/// `reuse`. The whole `finish` moved it (680 bytes) three times more on the way, ~100
/// instructions each.
async fn end(mut session: Box<Session>) -> After {
    let Session::H1(s) = &mut *session else {
        return kept(session.finish().await);
    };
    if s.finish_body().await.is_err() {
        return After::Closed;
    }
    let Session::H1(s) = *session else {
        return After::Closed;
    };
    kept(s.reuse().await)
}

/// The connection pingora hands back, if it is kept.
fn kept(reused: pingora::Result<Option<pingora::protocols::http::ReusableHttpStream>>) -> After {
    match reused {
        Ok(Some(reused)) => After::Reuse(reused.into_parts()),
        _ => After::Closed,
    }
}

/// Whether the sidecar writes `answer` itself: a final answer whose one Content-Length is its
/// body's (as every whole answer's is; anything else is left to pingora's writer).
fn writes_whole(answer: &Answer) -> bool {
    let h = &answer.header;
    if h.status.is_informational() || h.headers.contains_key(TRANSFER_ENCODING) {
        return false;
    }
    let mut lengths = h.headers.get_all(CONTENT_LENGTH).iter();
    match (lengths.next(), lengths.next()) {
        (Some(len), None) => says(len, answer.body.len()),
        _ => false,
    }
}

/// The answer's bytes on a kept connection, as pingora's writer puts them: the status line,
/// the headers (names as pingora writes them), its `Date` in place of any other and
/// `Connection: keep-alive`, then the body (none for a `HEAD` request, a 204 or a 304).
fn wire(answer: &mut Answer, no_body: bool) -> BytesMut {
    let header = &mut answer.header;
    header.remove_header(&DATE);
    header.remove_header(&CONNECTION);
    let no_body = no_body || matches!(header.status.as_u16(), 204 | 304);
    let body: &[u8] = if no_body { &[] } else { &answer.body };
    let mut buf = BytesMut::with_capacity(64 + 48 * header.headers.len() + body.len());
    buf.put_slice(b"HTTP/1.1 ");
    buf.put_slice(header.status.as_str().as_bytes());
    buf.put_u8(b' ');
    if let Some(reason) = header.get_reason_phrase() {
        buf.put_slice(reason.as_bytes());
    }
    buf.put_slice(b"\r\n");
    header.header_to_h1_wire(&mut buf);
    buf.put_slice(b"Date: ");
    buf.put_slice(pingora::protocols::http::date::get_cached_date().as_bytes());
    buf.put_slice(b"\r\nConnection: keep-alive\r\n\r\n");
    buf.put_slice(body);
    buf
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
    let raw = up.raw.take();
    hop::strip(&mut headers);
    secrets.headers(&mut headers, raw.as_deref());
    // Content-Length is the sidecar's to set: it describes the body as it is written to the
    // app. The upstream's one value stands when it says the same (as it does for a body passed
    // on whole); else one value replaces every field (a streamed body keeps the upstream's
    // first, which its framing was read by).
    let mut declared = headers.get_all(http::header::CONTENT_LENGTH).iter();
    let (first, more) = (declared.next(), declared.next().is_some());
    let replace = match (body_len, first) {
        (Some(len), Some(first)) if !more && says(first, len) => None,
        (Some(len), _) => Some(len.into()),
        (None, Some(first)) => Some(first.clone()),
        (None, _) => None,
    };
    if let Some(value) = replace {
        headers.insert(http::header::CONTENT_LENGTH, value);
    }
    headers.insert(request::REQUEST_ID_HEADER, ctx.request_id.clone());
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

fn add_request_id(h: &mut ResponseHeader, ctx: &RequestCtx) {
    let _ = h.insert_header("X-Request-Id", ctx.request_id.clone());
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
