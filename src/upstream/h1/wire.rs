//! One upstream connection's stream, the bytes read from it and not consumed yet, and its
//! timeouts: the peer's `read_timeout` bounds each read and `write_timeout` each write, one at
//! a time, as pingora's client applies them (the whole attempt is bounded above, in `proxy`).
//!
//! The bytes read ahead stay here between a head and its body and between an interim answer
//! and the next; what is left once an answer is read whole is what decides reuse (nothing may
//! follow an answer on a connection that is kept).

use std::future::Future;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::upstream::exchange::AttemptError;

/// Most bytes one read of a body asks for (pingora's body buffer size).
pub const READ_MAX: usize = 65_536;

/// A stream with its read-ahead bytes and timeouts.
pub struct Wire<S> {
    stream: S,
    /// Read from the stream, not yet consumed.
    unread: Bytes,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

/// A write's outcome as an attempt's error.
fn written(outcome: Option<std::io::Result<()>>) -> Result<(), AttemptError> {
    match outcome {
        None => Err(AttemptError::Timeout),
        Some(Ok(())) => Ok(()),
        Some(Err(_)) => Err(AttemptError::Reset("WriteError")),
    }
}

/// `fut`, bounded by `limit` when there is one; `None` when it ran out.
async fn bounded<T>(limit: Option<Duration>, fut: impl Future<Output = T>) -> Option<T> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, fut).await.ok(),
        None => Some(fut.await),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Wire<S> {
    pub fn new(stream: S, read_timeout: Option<Duration>, write_timeout: Option<Duration>) -> Self {
        Wire {
            stream,
            unread: Bytes::new(),
            read_timeout,
            write_timeout,
        }
    }

    /// Bounds each read from now on by `limit` (`None`: unbounded).
    pub fn bound_reads(&mut self, limit: Option<Duration>) {
        self.read_timeout = limit;
    }

    /// The bytes read and not consumed yet.
    pub fn unread(&self) -> &Bytes {
        &self.unread
    }

    /// Consumes the first `n` unread bytes and gives them (no copy).
    pub fn take(&mut self, n: usize) -> Bytes {
        self.unread.split_to(n)
    }

    /// Consumes the first `n` unread bytes.
    pub fn skip(&mut self, n: usize) {
        self.unread.advance(n);
    }

    /// Reads once from the stream, adding what came to the unread bytes; room is made for at
    /// least `want` more. `Ok(0)` when the stream has ended.
    pub async fn fill(&mut self, want: usize) -> Result<usize, AttemptError> {
        let mut buf = match std::mem::take(&mut self.unread).try_into_mut() {
            Ok(buf) => buf,
            // Still shared with a chunk handed out: the few bytes left move to a new buffer.
            Err(shared) => {
                let mut buf = BytesMut::with_capacity(shared.len() + want);
                buf.extend_from_slice(&shared);
                buf
            }
        };
        buf.reserve(want);
        let read = bounded(self.read_timeout, self.stream.read_buf(&mut buf)).await;
        self.unread = buf.freeze();
        match read {
            None => Err(AttemptError::Timeout),
            Some(Ok(n)) => Ok(n),
            Some(Err(_)) => Err(AttemptError::Reset("ReadError")),
        }
    }

    /// Writes `parts` in order and flushes; each write bounded by the write timeout.
    pub async fn write(&mut self, parts: &[&[u8]]) -> Result<(), AttemptError> {
        let limit = self.write_timeout;
        for part in parts {
            written(bounded(limit, self.stream.write_all(part)).await)?;
        }
        written(bounded(limit, self.stream.flush()).await)
    }

    /// Closes the connection (TLS close_notify, TCP FIN); errors do not matter here.
    pub async fn shutdown(&mut self) {
        let _ = self.stream.shutdown().await;
    }

    /// The stream, for the pool.
    pub fn into_stream(self) -> S {
        self.stream
    }
}

#[cfg(test)]
#[path = "wire_tests.rs"]
pub(super) mod tests;
