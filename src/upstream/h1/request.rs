//! The request head an attempt writes: request line and headers in one buffer, ready for one
//! write (a small body goes in the same write, see `exchange`), and the two facts about it
//! that reading the answer needs (a `HEAD` has no body back; `Connection: close` ends reuse).
//!
//! Names are written in title case (`Content-Type`, `X-Request-Id`), as pingora writes the
//! standard ones; the target is an `http` path and query, which holds no space, CR, LF or NUL.

use http::header::CONNECTION;
use http::uri::PathAndQuery;
use http::{HeaderName, Method};
use pingora::http::RequestHeader;

use super::head::keepalive_of;
use crate::upstream::exchange::AttemptError;

/// A request head, written.
#[derive(Debug)]
pub struct RequestHead {
    bytes: Vec<u8>,
    /// The request was a `HEAD`: its answer has no body whatever its header says.
    no_body_answer: bool,
    /// The request said `Connection: close`.
    close: bool,
}

impl RequestHead {
    /// The head of a request built with pingora's type (health checks, `gettoken`), written as
    /// pingora's client writes it.
    pub fn from_pingora(req: &RequestHeader) -> Result<Self, AttemptError> {
        let bytes = pingora::protocols::http::v1::client::http_req_header_to_wire(req)
            .ok_or(AttemptError::BadResponse("InvalidHTTPHeader"))?;
        let close = req
            .headers
            .get(CONNECTION)
            .and_then(|v| keepalive_of(v.as_bytes()))
            == Some(false);
        Ok(RequestHead {
            bytes: bytes.to_vec(),
            no_body_answer: req.method == Method::HEAD,
            close,
        })
    }

    /// The bytes to write.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Appends a body, so that head and body go in one write.
    pub fn append(&mut self, body: &[u8]) {
        self.bytes.extend_from_slice(body);
    }

    pub fn no_body_answer(&self) -> bool {
        self.no_body_answer
    }

    pub fn asks_close(&self) -> bool {
        self.close
    }
}

/// Writes a request head: the request line, then each header, then `finish`.
pub struct HeadWriter {
    head: RequestHead,
}

impl HeadWriter {
    /// Starts `method target HTTP/1.1`, the target being `target`'s pieces joined, with room
    /// for `room` more bytes (headers, and a body to append). `None`: the target is not one
    /// `http` accepts as a path and query (a space, CR, LF or NUL never reaches the wire).
    pub fn new(method: &Method, target: &[&str], room: usize) -> Option<Self> {
        let m = method.as_str();
        let len: usize = target.iter().map(|t| t.len()).sum();
        let mut bytes = Vec::with_capacity(m.len() + len + 16 + room);
        bytes.extend_from_slice(m.as_bytes());
        bytes.push(b' ');
        let start = bytes.len();
        for piece in target {
            bytes.extend_from_slice(piece.as_bytes());
        }
        if !is_target(&bytes[start..]) {
            return None;
        }
        bytes.extend_from_slice(b" HTTP/1.1\r\n");
        Some(HeadWriter {
            head: RequestHead {
                bytes,
                no_body_answer: *method == Method::HEAD,
                close: false,
            },
        })
    }

    /// One header line. `value` is a header value's bytes (no CR, LF or NUL).
    pub fn header(&mut self, name: &HeaderName, value: &[u8]) {
        let bytes = &mut self.head.bytes;
        let mut upper = true;
        for &b in name.as_str().as_bytes() {
            bytes.push(if upper { b.to_ascii_uppercase() } else { b });
            upper = b == b'-';
        }
        bytes.extend_from_slice(b": ");
        bytes.extend_from_slice(value);
        bytes.extend_from_slice(b"\r\n");
        if name == CONNECTION && keepalive_of(value) == Some(false) {
            self.head.close = true;
        }
    }

    /// A `Content-Length` line.
    pub fn content_length(&mut self, len: u64) {
        let mut digits = [0u8; 20];
        let bytes = &mut self.head.bytes;
        bytes.extend_from_slice(b"Content-Length: ");
        bytes.extend_from_slice(decimal(len, &mut digits));
        bytes.extend_from_slice(b"\r\n");
    }

    /// Ends the head.
    pub fn finish(mut self) -> RequestHead {
        self.head.bytes.extend_from_slice(b"\r\n");
        self.head
    }
}

/// Whether `target` is a path and query as `http` accepts one (`PathAndQuery`). A target of
/// only the bytes API calls use (letters, digits, `/ ? = & % - . _ ~ : , + ! * ( ) @ $ ;`),
/// as nearly every one is, needs no more look; any other is left to `http` to judge.
fn is_target(target: &[u8]) -> bool {
    if target.first() == Some(&b'/') && all_plain(target) {
        return true;
    }
    PathAndQuery::try_from(target).is_ok_and(|pq| pq.as_str().as_bytes() == target)
}

/// Whether every byte of `target` is in [`PLAIN`]: eight lookups a step, their answers
/// combined with no branch between them (a branch a byte cost about six instructions a byte,
/// for targets of 60–250 bytes: WeCom's tokens are long).
fn all_plain(target: &[u8]) -> bool {
    let mut steps = target.chunks_exact(8);
    let whole = steps
        .by_ref()
        .all(|step| step.iter().fold(true, |all, &b| all & PLAIN[b as usize]));
    whole && steps.remainder().iter().all(|&b| PLAIN[b as usize])
}

/// The bytes of a plain target, one lookup a byte.
static PLAIN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let others = b"/?=&%-._~:,+!*()@$;";
    let mut i = 0;
    while i < others.len() {
        table[others[i] as usize] = true;
        i += 1;
    }
    table
};

/// `n` in plain decimal digits (as a `Content-Length` is written), in `digits`: no allocation.
pub fn decimal(n: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &digits[at..]
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
