//! One attempt at one upstream with pingora's HTTP/1 client over a kept connection (`pool`)
//! or a new one: write the request, read the response header, then read the body whole
//! (JSON) or chunk by chunk (media).
//!
//! Errors are classified by whether anything may have reached the upstream: a failure to get a
//! connection sent nothing and is always safe to repeat; anything later may have been received.

use bytes::{Bytes, BytesMut};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::v1::client::HttpSession;
use pingora::{Error, ErrorType};
use std::net::SocketAddr;

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

fn after_send_error(e: &Error) -> AttemptError {
    match e.etype() {
        ErrorType::ReadTimedout | ErrorType::WriteTimedout => AttemptError::Timeout,
        ErrorType::InvalidHTTPHeader | ErrorType::H1Error | ErrorType::H2Error => {
            AttemptError::BadResponse(e.etype().as_str())
        }
        other => AttemptError::Reset(other.as_str()),
    }
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

/// An attempt whose response header has arrived.
pub struct Open {
    session: HttpSession,
    /// The address the connection goes to (its key in the pool, with the upstream's).
    addr: SocketAddr,
    /// Whether the connection came from the pool.
    pub reused: bool,
}

/// Sends `req` with `body` to `up` at `addr` and waits for the response header.
pub async fn open(
    up: &UpstreamRt,
    addr: SocketAddr,
    req: Box<RequestHeader>,
    body: &RequestBody,
) -> Result<Open, AttemptError> {
    let peer = up.peer(addr);
    // A kept connection first. Only a new connection needs pingora's connect future, which
    // is ~9 KB: boxed, so that it does not enlarge every future above this one (each is copied
    // whole when it moves).
    let (stream, reused) = match up.client.take(up.peer_key(addr)) {
        Some(stream) => (stream, true),
        None => {
            let stream = Box::pin(up.client.connect(&peer))
                .await
                .map_err(|e| connect_error(&e))?;
            (stream, false)
        }
    };
    let mut session = HttpSession::new_with_options(stream, &*peer);
    session
        .write_request_header(req)
        .await
        .map_err(|e| after_send_error(&e))?;
    match body {
        RequestBody::Empty => {}
        RequestBody::Buffered(bytes) => {
            if !bytes.is_empty() {
                session
                    .write_body(bytes)
                    .await
                    .map_err(|e| after_send_error(&e))?;
            }
        }
        RequestBody::Spooled(spool) => {
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
                session
                    .write_body(&chunk)
                    .await
                    .map_err(|e| after_send_error(&e))?;
            }
        }
    }
    session
        .finish_body()
        .await
        .map_err(|e| after_send_error(&e))?;
    // Interim answers (`100 Continue`, `103 Early Hints`, any other 1xx but `101`) come before
    // the final one and say nothing about the call: each is read and dropped. pingora's
    // client returns each as if it were the answer, and reading a body after one panics
    // ("need to init BodyReader first"), so the loop must end on a final status.
    let mut interim = 0;
    loop {
        session
            .read_response()
            .await
            .map_err(|e| after_send_error(&e))?;
        let Some(status) = session.resp_header().map(|h| h.status.as_u16()) else {
            return Err(AttemptError::BadResponse("no response header"));
        };
        if !is_interim(status) {
            break;
        }
        interim += 1;
        if interim > MAX_INTERIM_ANSWERS {
            return Err(AttemptError::BadResponse("endless interim answers"));
        }
    }
    Ok(Open {
        session,
        addr,
        reused,
    })
}

impl Open {
    pub fn header(&self) -> &ResponseHeader {
        // `open` only returns once a header has been read.
        self.session
            .resp_header()
            .expect("response header present after open")
    }

    pub fn status(&self) -> u16 {
        self.header().status.as_u16()
    }

    /// Reads the whole body, refusing more than `limit` bytes.
    pub async fn read_to_end(&mut self, limit: usize) -> Result<Bytes, AttemptError> {
        let mut buf = BytesMut::new();
        while let Some(chunk) = self.chunk().await? {
            if buf.len() + chunk.len() > limit {
                return Err(AttemptError::TooLarge);
            }
            if buf.is_empty() && self.session.is_body_done() {
                // Common case: the whole body arrived in one read; no copy.
                return Ok(chunk);
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }

    /// The next body chunk, `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, AttemptError> {
        self.session
            .read_body_bytes()
            .await
            .map_err(|e| after_send_error(&e))
    }

    /// Closes the connection without returning it to the pool (after an odd answer whose
    /// framing cannot be trusted).
    pub async fn discard(mut self) {
        self.session.shutdown().await;
    }

    /// Returns the connection to the pool when pingora's client says it may carry another
    /// request: the answer read completely with nothing after it, and no `Connection: close`
    /// (or HTTP/1.0 without keep-alive). Otherwise it is closed.
    pub async fn release(self, up: &UpstreamRt) {
        let Open {
            mut session, addr, ..
        } = self;
        session.respect_keepalive();
        if let Some(stream) = session.reuse().await {
            up.client.put(up.peer_key(addr), stream);
        }
    }
}
