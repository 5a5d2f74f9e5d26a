//! An answer's body, read by its framing (`head::Framing`) as slices of the bytes read: a
//! Content-Length body, a chunked one (chunk sizes by `httparse`, chunk ends and trailers
//! checked as pingora checks them, trailers read and dropped), or one that ends with the
//! connection. A body that ends early is an error, never a short answer; once it is read
//! whole, whatever is left unread follows the answer (and so the connection is not reused).

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};

use super::head::Framing;
use super::wire::{Wire, READ_MAX};
use crate::upstream::exchange::AttemptError;

/// Longest chunk-size line (with its extensions) waited for (pingora's
/// `PARTIAL_CHUNK_HEAD_LIMIT`).
const MAX_CHUNK_LINE: usize = 8_192;

/// Most trailer bytes read after the last chunk (pingora's `TRAILER_SIZE_LIMIT`).
const MAX_TRAILERS: usize = 65_536;

const CLOSED: AttemptError = AttemptError::Reset("ConnectionClosed");
const BAD_CHUNK: AttemptError = AttemptError::Reset("InvalidChunk");
const BAD_TRAILERS: AttemptError = AttemptError::Reset("InvalidTrailerEnd");

/// Where reading a body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// This many bytes left.
    Length(u64),
    /// A chunk-size line next.
    ChunkSize,
    /// This many bytes of the current chunk left.
    ChunkData(u64),
    /// The CRLF after a chunk's data next.
    ChunkEnd,
    /// After the last chunk: this many trailer bytes so far, and whether a line starts here
    /// (where an empty line ends the body).
    Trailers(usize, bool),
    /// Until the connection ends.
    UntilClose,
    /// Ended: `true` read whole, `false` broken off by an error.
    Done(bool),
}

/// Reads one body.
#[derive(Debug)]
pub struct Body {
    state: State,
}

impl Body {
    pub fn new(framing: Framing) -> Self {
        let state = match framing {
            Framing::Length(0) => State::Done(true),
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::UntilClose => State::UntilClose,
        };
        Body { state }
    }

    /// The body was read whole.
    pub fn is_complete(&self) -> bool {
        self.state == State::Done(true)
    }

    /// The next piece of the body, `None` at its end (and after an error).
    pub async fn next<S>(&mut self, wire: &mut Wire<S>) -> Result<Option<Bytes>, AttemptError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let read = self.step(wire).await;
        if read.is_err() {
            self.state = State::Done(false);
        }
        read
    }

    async fn step<S>(&mut self, wire: &mut Wire<S>) -> Result<Option<Bytes>, AttemptError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        loop {
            match self.state {
                State::Done(_) => return Ok(None),
                State::Length(left) => {
                    more_unless_unread(wire, 1).await?;
                    let chunk = take_up_to(wire, left);
                    self.state = match left - chunk.len() as u64 {
                        0 => State::Done(true),
                        left => State::Length(left),
                    };
                    return Ok(Some(chunk));
                }
                State::UntilClose => {
                    if wire.unread().is_empty() && wire.fill(READ_MAX).await? == 0 {
                        self.state = State::Done(true);
                        return Ok(None);
                    }
                    let all = wire.unread().len();
                    return Ok(Some(wire.take(all)));
                }
                State::ChunkSize => match httparse::parse_chunk_size(wire.unread()) {
                    Ok(httparse::Status::Complete((line, 0))) => {
                        wire.skip(line);
                        self.state = State::Trailers(0, true);
                    }
                    Ok(httparse::Status::Complete((line, size))) => {
                        wire.skip(line);
                        self.state = State::ChunkData(size);
                    }
                    Ok(httparse::Status::Partial) => {
                        if wire.unread().len() > MAX_CHUNK_LINE {
                            return Err(BAD_CHUNK);
                        }
                        more(wire).await?;
                    }
                    Err(_) => return Err(BAD_CHUNK),
                },
                State::ChunkData(left) => {
                    more_unless_unread(wire, 1).await?;
                    let chunk = take_up_to(wire, left);
                    self.state = match left - chunk.len() as u64 {
                        0 => State::ChunkEnd,
                        left => State::ChunkData(left),
                    };
                    return Ok(Some(chunk));
                }
                State::ChunkEnd => {
                    crlf(wire, BAD_CHUNK).await?;
                    self.state = State::ChunkSize;
                }
                State::Trailers(read, line_start) => {
                    more_unless_unread(wire, 1).await?;
                    if matches!(wire.unread()[0], b'\r' | b'\n') {
                        crlf(wire, BAD_TRAILERS).await?;
                        // An empty line ends the body; a CRLF after trailer bytes ends a line.
                        self.state = match line_start {
                            true => State::Done(true),
                            false => State::Trailers(read, true),
                        };
                        continue;
                    }
                    let line = wire.unread();
                    let text = line
                        .iter()
                        .position(|b| matches!(b, b'\r' | b'\n'))
                        .unwrap_or(line.len());
                    let read = read + text;
                    if read > MAX_TRAILERS {
                        return Err(BAD_TRAILERS);
                    }
                    wire.skip(text);
                    self.state = State::Trailers(read, false);
                }
            }
        }
    }
}

/// Up to `left` of the unread bytes (there is at least one).
fn take_up_to<S>(wire: &mut Wire<S>, left: u64) -> Bytes
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let left = usize::try_from(left).unwrap_or(usize::MAX);
    wire.take(left.min(wire.unread().len()))
}

/// Reads more of the body; the connection ending first is an error.
async fn more<S>(wire: &mut Wire<S>) -> Result<(), AttemptError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match wire.fill(READ_MAX).await? {
        0 => Err(CLOSED),
        _ => Ok(()),
    }
}

/// Reads until at least `n` bytes are unread.
async fn more_unless_unread<S>(wire: &mut Wire<S>, n: usize) -> Result<(), AttemptError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while wire.unread().len() < n {
        more(wire).await?;
    }
    Ok(())
}

/// Consumes a CRLF, or fails with `bad` on anything else.
async fn crlf<S>(wire: &mut Wire<S>, bad: AttemptError) -> Result<(), AttemptError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    more_unless_unread(wire, 1).await?;
    if wire.unread()[0] != b'\r' {
        return Err(bad);
    }
    more_unless_unread(wire, 2).await?;
    if wire.unread()[1] != b'\n' {
        return Err(bad);
    }
    wire.skip(2);
    Ok(())
}

#[cfg(test)]
#[path = "body_tests.rs"]
mod tests;
