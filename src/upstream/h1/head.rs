//! A response head: parsed from the bytes read (`httparse`, with pingora's parser settings),
//! its Content-Length reconciled, the framing of the body after it, and whether the
//! connection may carry another request once that body is read.
//!
//! Header values are slices of the bytes read (no copy); names are `http`'s (standard ones
//! need no allocation). Only one map is built: nothing keeps the upstream's spelling of the
//! names, since the app-facing header is written in `http`'s case anyway (`proxy::respond`).

use std::mem::MaybeUninit;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Version};

use super::wire::Wire;
use crate::upstream::exchange::AttemptError;

/// Most headers in one head (pingora's `MAX_HEADERS`); more is an invalid answer.
pub const MAX_HEADERS: usize = 256;

/// Past this many bytes without a complete head no more is read (pingora's
/// `MAX_HEADER_SIZE`; like pingora, the read that crosses it is still parsed).
pub const MAX_HEAD_SIZE: usize = 1_048_575;

/// What one read of a head makes room for (pingora's `INIT_HEADER_BUF_SIZE`).
const HEAD_READ: usize = 4096;

/// The error every invalid head gives (pingora's `InvalidHTTPHeader`).
fn invalid() -> AttemptError {
    AttemptError::BadResponse("InvalidHTTPHeader")
}

/// An upstream's response head.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    /// The reconciled Content-Length, when there is one and no Transfer-Encoding.
    length: Option<u64>,
    /// A Transfer-Encoding is present.
    encoded: bool,
    /// Its last coding is `chunked`.
    chunked: bool,
    /// The head's bytes as read, when each header value is a slice of them (no value was
    /// folded over lines): one search over them can clear every name and value at once
    /// (`proxy::respond`). Taken when the answer's header is built, so it holds the read
    /// buffer no longer than the header map does.
    pub raw: Option<Bytes>,
}

/// How the body after a head ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// After this many bytes.
    Length(u64),
    /// At the last chunk and the trailers after it.
    Chunked,
    /// When the server closes the connection: it cannot be reused.
    UntilClose,
}

/// Content-Length values seen so far (every field, every comma-separated item).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Length {
    Absent,
    Is(u64),
    /// Not digits, or two values that differ.
    Invalid,
}

impl Length {
    fn with(self, value: &[u8]) -> Length {
        let mut now = self;
        for item in value.split(|b| *b == b',') {
            now = match (now, digits(item.trim_ascii())) {
                (Length::Invalid, _) | (_, None) => return Length::Invalid,
                (Length::Is(was), Some(n)) if was != n => return Length::Invalid,
                (_, Some(n)) => Length::Is(n),
            };
        }
        now
    }
}

/// ASCII digits as a number: no sign, no space, not empty, no overflow.
fn digits(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() {
        return None;
    }
    bytes.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// Whether a Transfer-Encoding value's last coding is `chunked`.
fn ends_chunked(value: &[u8]) -> bool {
    let last = value.rsplit(|b| *b == b',').next().unwrap_or(value);
    last.trim_ascii().eq_ignore_ascii_case(b"chunked")
}

/// What a `Connection` value says of keep-alive, read as pingora reads it: exactly `close` or
/// `keep-alive` (any case), else a list that names `close`. A list never turns keep-alive on.
pub fn keepalive_of(value: &[u8]) -> Option<bool> {
    if value.eq_ignore_ascii_case(b"close") {
        return Some(false);
    }
    if value.eq_ignore_ascii_case(b"keep-alive") {
        return Some(true);
    }
    let Ok(text) = std::str::from_utf8(value) else {
        return None;
    };
    text.split(',')
        .any(|t| t.trim().eq_ignore_ascii_case("close"))
        .then_some(false)
}

/// A value as `http` holds it. An obsolete line folding (`\r\n` and white space, which the
/// parser lets through in answers) becomes one space, as pingora makes it; `folded`: `raw`
/// holds a line break.
fn value_of(buf: &Bytes, raw: &[u8], folded: bool) -> Result<HeaderValue, AttemptError> {
    let value = if folded {
        Bytes::from(unfold(raw))
    } else {
        buf.slice_ref(raw)
    };
    HeaderValue::from_maybe_shared(value).map_err(|_| invalid())
}

/// A value [`crate::plain::header_value_plain`] passed, as a slice of the bytes read.
fn plain_value(buf: &Bytes, raw: &[u8]) -> HeaderValue {
    // SAFETY: `HeaderValue` holds any bytes but those below 0x20 other than tab, and 0x7f
    // (`HeaderValue::from_bytes`); `header_value_plain` passed only values with neither (its
    // tests check it against `from_bytes` for every byte, and in debug builds `http` checks
    // each value again here).
    unsafe { HeaderValue::from_maybe_shared_unchecked(buf.slice_ref(raw)) }
}

/// `raw`'s lines joined by one space each, without the white space around the joins.
fn unfold(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    for line in raw.split(|b| *b == b'\n') {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(b' ');
        }
        out.extend(line.iter().map(|&b| if b == b'\r' { b' ' } else { b }));
    }
    out
}

/// Parses a head at the start of `buf`: with its length in bytes, or `None` while it is not
/// complete.
pub fn parse(buf: &Bytes) -> Result<Option<(ResponseHead, usize)>, AttemptError> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let mut config = httparse::ParserConfig::default();
    config.allow_spaces_after_header_name_in_responses(true);
    config.allow_obsolete_multiline_headers_in_responses(true);
    let len = match config.parse_response_with_uninit_headers(&mut resp, buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(invalid()),
    };
    // A complete head always has a code; httparse reads three digits, `http` wants 100-999.
    let status = StatusCode::from_u16(resp.code.unwrap_or(0)).map_err(|_| invalid())?;
    // httparse knows HTTP/1.0 and HTTP/1.1 only.
    let version = if resp.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let mut headers = HeaderMap::with_capacity(resp.headers.len());
    let (mut length, mut encoded, mut chunked) = (Length::Absent, false, false);
    let mut folded = false;
    for h in resp.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| invalid())?;
        let value = if crate::plain::header_value_plain(h.value) {
            // Nearly every value: no control byte (so no folded line either) and no DEL, one
            // look a word. `http`'s own check would look at each byte again.
            plain_value(buf, h.value)
        } else {
            let fold = h.value.contains(&b'\n');
            folded |= fold;
            value_of(buf, h.value, fold)?
        };
        if name == TRANSFER_ENCODING {
            encoded = true;
            chunked = ends_chunked(value.as_bytes());
        } else if name == CONTENT_LENGTH {
            length = length.with(value.as_bytes());
        }
        headers.append(name, value);
    }
    // Transfer-Encoding overrides Content-Length, which is then dropped (RFC 9112 §6.3, and
    // pingora's choice): nothing downstream may frame the body by it.
    if encoded {
        if length != Length::Absent {
            headers.remove(CONTENT_LENGTH);
        }
        length = Length::Absent;
    }
    let length = match length {
        Length::Invalid => return Err(invalid()),
        Length::Is(n) => Some(n),
        Length::Absent => None,
    };
    let head = ResponseHead {
        status,
        version,
        headers,
        length,
        encoded,
        chunked,
        raw: (!folded).then(|| buf.slice(..len)),
    };
    Ok(Some((head, len)))
}

/// Reads the next head from `wire`, leaving the bytes after it unread.
pub async fn read<S>(wire: &mut Wire<S>) -> Result<ResponseHead, AttemptError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        if !wire.unread().is_empty() {
            if let Some((head, len)) = parse(wire.unread())? {
                wire.skip(len);
                return Ok(head);
            }
            if wire.unread().len() > MAX_HEAD_SIZE {
                return Err(invalid());
            }
        }
        if wire.fill(HEAD_READ).await? == 0 {
            return Err(AttemptError::Reset("ConnectionClosed"));
        }
    }
}

impl ResponseHead {
    /// How the body after this head ends; `no_body`: the request was a `HEAD`. `204` and
    /// `304` have none (1xx answers have none either, and are never asked).
    pub fn framing(&self, no_body: bool) -> Framing {
        if no_body || matches!(self.status.as_u16(), 204 | 304) {
            Framing::Length(0)
        } else if self.chunked {
            Framing::Chunked
        } else if let Some(n) = self.length {
            Framing::Length(n)
        } else {
            Framing::UntilClose
        }
    }

    /// Whether the connection may carry another request after this answer, once its body is
    /// read whole with nothing after it (pingora's `respect_keepalive`): never after a `101`
    /// or a body that ends with the connection, nor after an HTTP/1.0 answer with a
    /// Transfer-Encoding; not when the request said `Connection: close` (`request_close`);
    /// else as the answer's first `Connection` says, and by default for HTTP/1.1 only.
    pub fn keeps_alive(&self, framing: Framing, request_close: bool) -> bool {
        if self.status == StatusCode::SWITCHING_PROTOCOLS || framing == Framing::UntilClose {
            return false;
        }
        if self.version == Version::HTTP_10 && self.encoded {
            return false;
        }
        if request_close {
            return false;
        }
        let said = self
            .headers
            .get(CONNECTION)
            .and_then(|v| keepalive_of(v.as_bytes()));
        said.unwrap_or(self.version == Version::HTTP_11)
    }
}

#[cfg(test)]
#[path = "head_tests.rs"]
mod tests;
