//! One attempt at one upstream over a kept connection (`pool`) or a new one, in the sidecar's
//! own HTTP/1.1 (`h1`): write the request head (and a small body) in one write, read the
//! response head past any interim answers, then the body whole (JSON) or piece by piece
//! (media), and give the connection back to the pool when the answer allows it.
//!
//! Errors are classified by whether anything may have reached the upstream: a failure to get a
//! connection sent nothing and is always safe to repeat; anything later may have been received.

use bytes::{Bytes, BytesMut};
use pingora::http::RequestHeader;
use pingora::protocols::Stream;
use pingora::Error;
use std::net::SocketAddr;
use std::time::Duration;

use super::h1::body::Body;
use super::h1::head::{self, ResponseHead};
use super::h1::request::RequestHead;
use super::h1::wire::Wire;
use super::UpstreamRt;
use crate::body::{RequestBody, SPOOL_CHUNK};

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptError {
    /// No connection could be made (refused, unreachable, TLS failure, DNS): nothing was sent.
    Connect(&'static str),
    /// The per-attempt timeout passed; the request may have been received.
    Timeout,
    /// The connection broke after the request started; it may have been received.
    Reset(&'static str),
    /// The upstream answered something that is not valid HTTP or a body we can use.
    BadResponse(&'static str),
    /// The answer was larger than the sidecar buffers.
    TooLarge,
}

impl AttemptError {
    /// True when the request cannot have reached the upstream.
    pub fn nothing_sent(&self) -> bool {
        matches!(self, AttemptError::Connect(_))
    }

    /// The `result` label of `wecom_upstream_attempts_total` and the access log.
    pub fn label(&self) -> &'static str {
        match self {
            AttemptError::Connect(_) => "connect_error",
            AttemptError::Timeout => "timeout",
            AttemptError::Reset(_) => "reset",
            AttemptError::BadResponse(_) | AttemptError::TooLarge => "bad_response",
        }
    }

    /// Words for an operator (no addresses, no URIs, no tokens).
    pub fn describe(&self) -> String {
        match self {
            AttemptError::Connect(why) => format!("could not connect ({why})"),
            AttemptError::Timeout => "timed out".to_string(),
            AttemptError::Reset(why) => format!("connection broke ({why})"),
            AttemptError::BadResponse(why) => format!("invalid answer ({why})"),
            AttemptError::TooLarge => "answer too large".to_string(),
        }
    }
}

fn connect_error(e: &Error) -> AttemptError {
    AttemptError::Connect(e.etype().as_str())
}

/// Most interim (1xx) answers read before the final one; past it the answer is refused as
/// broken. A real server sends one or two; the attempt's timeout bounds the time either way.
const MAX_INTERIM_ANSWERS: u32 = 32;

/// A 1xx answer that precedes the final one. `101 Switching Protocols` is final (the
/// connection would speak another protocol after it); the sidecar never asks for one.
fn is_interim(status: u16) -> bool {
    (100..200).contains(&status) && status != 101
}

/// A final status the sidecar cannot pass on as an answer to a WeCom call: `101` (a protocol
/// switch nobody asked for), `204` and `205` (no content, where the app waits for JSON),
/// `304` (the sidecar never sends a conditional request), and anything outside 100–599.
/// The connection it came on is not reused.
pub fn is_odd_final(status: u16) -> bool {
    matches!(status, 101 | 204 | 205 | 304) || !(100..600).contains(&status)
}

/// Bodies up to this size go in the same write as the request head (one copy of a few KiB
/// against a second write); larger ones are written on their own.
const INLINE_BODY: usize = 16 * 1024;

/// How many bytes of `body` go in the request head's write (0: written on its own).
pub fn inline_len(body: &RequestBody) -> usize {
    match body {
        RequestBody::Buffered(bytes) if bytes.len() <= INLINE_BODY => bytes.len(),
        _ => 0,
    }
}

/// An attempt whose response header has arrived.
pub struct Open {
    wire: Wire<Stream>,
    head: ResponseHead,
    body: Body,
    /// The answer allows another request on this connection once its body is read whole.
    keepalive: bool,
    /// The address the connection goes to (its key in the pool, with the upstream's).
    addr: SocketAddr,
    /// The peer's read timeout (the upstream's `timeout`), for each read of a streamed body.
    read_timeout: Duration,
}

/// Sends `req` (a request built with pingora's type) with `body` to `up` at `addr` and waits
/// for the response header.
pub async fn open(
    up: &UpstreamRt,
    addr: SocketAddr,
    req: Box<RequestHeader>,
    body: &RequestBody,
) -> Result<Open, AttemptError> {
    send(up, addr, RequestHead::from_pingora(&req)?, body).await
}

/// Sends the written head `req` with `body` (whose length the head declares) to `up` at
/// `addr` and waits for the response header.
pub async fn send(
    up: &UpstreamRt,
    addr: SocketAddr,
    mut req: RequestHead,
    body: &RequestBody,
) -> Result<Open, AttemptError> {
    // A kept connection first. Only a new connection needs pingora's connect future, which
    // is ~9 KB: boxed, so that it does not enlarge every future above this one (each is copied
    // whole when it moves).
    let stream = match up.client.take(up.peer_key(addr)) {
        Some(stream) => stream,
        None => Box::pin(up.client.connect(&up.peer(addr)))
            .await
            .map_err(|e| connect_error(&e))?,
    };
    // No timeout per read or write here: every caller bounds the whole attempt by the
    // upstream's `timeout` or less (`forward`'s deadline, `probe`, `token::fetch`), which ends
    // before a per-read bound of the same length could; timing each read too cost a timer per
    // call (issue 17). A streamed body is read outside that bound: `chunk` bounds its reads.
    let mut wire = Wire::new(stream, None, None);
    match body {
        RequestBody::Empty => wire.write(&[req.bytes()]).await?,
        RequestBody::Buffered(bytes) if bytes.len() <= INLINE_BODY => {
            req.append(bytes);
            wire.write(&[req.bytes()]).await?;
        }
        RequestBody::Buffered(bytes) => wire.write(&[req.bytes(), bytes]).await?,
        RequestBody::Spooled(spool) => {
            wire.write(&[req.bytes()]).await?;
            let mut reader = spool
                .reader()
                .await
                .map_err(|_| AttemptError::Reset("spool read"))?;
            loop {
                let chunk = reader
                    .next_chunk(SPOOL_CHUNK)
                    .await
                    .map_err(|_| AttemptError::Reset("spool read"))?;
                let Some(chunk) = chunk else { break };
                wire.write(&[&chunk]).await?;
            }
        }
    }
    // Interim answers (`100 Continue`, `103 Early Hints`, any other 1xx but `101`) come before
    // the final one and say nothing about the call: each is read and dropped, and the bytes
    // after one are the start of the next.
    let mut interim = 0;
    let head = loop {
        let head = head::read(&mut wire).await?;
        if !is_interim(head.status.as_u16()) {
            break head;
        }
        interim += 1;
        if interim > MAX_INTERIM_ANSWERS {
            return Err(AttemptError::BadResponse("endless interim answers"));
        }
    };
    let framing = head.framing(req.no_body_answer());
    Ok(Open {
        keepalive: head.keeps_alive(framing, req.asks_close()),
        body: Body::new(framing),
        head,
        wire,
        addr,
        read_timeout: up.cfg.timeout,
    })
}

impl Open {
    pub fn header(&self) -> &ResponseHead {
        &self.head
    }

    /// The head, for the app-facing answer to take its headers from (`proxy::respond`): what
    /// reuse and the body's framing need of it was read when it arrived.
    pub fn header_mut(&mut self) -> &mut ResponseHead {
        &mut self.head
    }

    pub fn status(&self) -> u16 {
        self.head.status.as_u16()
    }

    /// Reads the whole body, refusing more than `limit` bytes (within the caller's bound on
    /// the attempt).
    pub async fn read_to_end(&mut self, limit: usize) -> Result<Bytes, AttemptError> {
        let mut buf = BytesMut::new();
        while let Some(chunk) = self.body.next(&mut self.wire).await? {
            if buf.len() + chunk.len() > limit {
                return Err(AttemptError::TooLarge);
            }
            if buf.is_empty() && self.body.is_complete() {
                // Common case: the whole body arrived in one read; no copy.
                return Ok(chunk);
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }

    /// The next chunk of a streamed body, `None` at the end. Each read is bounded by the
    /// peer's read timeout, as pingora's client bounds it: a stall mid-body is a timeout.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, AttemptError> {
        self.wire.bound_reads(Some(self.read_timeout));
        self.body.next(&mut self.wire).await
    }

    /// Closes the connection without returning it to the pool (after an odd answer whose
    /// framing cannot be trusted).
    pub async fn discard(mut self) {
        self.wire.shutdown().await;
    }

    /// Returns the connection to the pool when it may carry another request: the answer
    /// allowed it (`ResponseHead::keeps_alive`), its body was read whole and nothing came
    /// after it. Otherwise it is closed.
    pub async fn release(mut self, up: &UpstreamRt) {
        if self.keepalive && self.body.is_complete() && self.wire.unread().is_empty() {
            up.client
                .put(up.peer_key(self.addr), self.wire.into_stream());
        } else {
            self.wire.shutdown().await;
        }
    }
}
