//! Response bodies of the simulator: whole, generated (streamed, never held whole), or cut short.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// Size of the pieces a generated body is sent in.
const CHUNK: usize = 64 * 1024;

/// The 10 bytes a truncated answer sends of the 100 it declares.
pub const TRUNCATED_START: &[u8] = b"{\"errcode\"";
/// The `Content-Length` a truncated answer declares.
pub const TRUNCATED_DECLARED: u64 = 100;

/// A simulator response body.
pub enum SimBody {
    Full(Option<Bytes>),
    /// `remaining` deterministic pseudo-random bytes from an xorshift state.
    Generated {
        remaining: u64,
        state: u64,
    },
    /// Sends 10 bytes, then fails so the connection is cut mid-body (the answer declares more).
    Truncated {
        sent: bool,
        /// A pause after the 10 bytes, so that hyper flushes them before the cut.
        pause: Option<Pin<Box<tokio::time::Sleep>>>,
    },
}

impl SimBody {
    pub fn full(b: impl Into<Bytes>) -> Self {
        SimBody::Full(Some(b.into()))
    }

    /// Declare `TRUNCATED_DECLARED` bytes in `Content-Length`; this sends 10 and fails.
    pub fn truncated() -> Self {
        SimBody::Truncated {
            sent: false,
            pause: None,
        }
    }

    pub fn generated(len: u64) -> Self {
        SimBody::Generated {
            remaining: len,
            state: seed(len),
        }
    }
}

/// The bytes `SimBody::generated(len)` produces, for tests that check them.
pub fn generated_bytes(len: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len as usize);
    let mut state = seed(len);
    while (out.len() as u64) < len {
        let take = ((len - out.len() as u64) as usize).min(CHUNK);
        out.extend(fill(&mut state, take));
    }
    out
}

/// A non-zero xorshift seed that differs for every length.
fn seed(len: u64) -> u64 {
    len.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1
}

fn fill(state: &mut u64, n: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        v.extend_from_slice(&state.to_le_bytes());
    }
    v.truncate(n);
    v
}

impl Body for SimBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match this {
            SimBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            SimBody::Generated { remaining, state } => {
                if *remaining == 0 {
                    return Poll::Ready(None);
                }
                let n = (*remaining).min(CHUNK as u64) as usize;
                *remaining -= n as u64;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(fill(state, n))))))
            }
            SimBody::Truncated { sent, pause } => {
                if !*sent {
                    *sent = true;
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(TRUNCATED_START)))));
                }
                let pause = pause.get_or_insert_with(|| {
                    Box::pin(tokio::time::sleep(std::time::Duration::from_millis(20)))
                });
                if pause.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                Poll::Ready(Some(Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "truncated by fault injection",
                ))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            SimBody::Full(b) => b.is_none(),
            SimBody::Generated { remaining, .. } => *remaining == 0,
            SimBody::Truncated { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            SimBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            SimBody::Full(None) => SizeHint::with_exact(0),
            SimBody::Generated { remaining, .. } => SizeHint::with_exact(*remaining),
            SimBody::Truncated { .. } => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_is_deterministic_and_sized() {
        assert_eq!(generated_bytes(100_000).len(), 100_000);
        assert_eq!(generated_bytes(1000), generated_bytes(1000));
        assert_ne!(generated_bytes(1000)[..16], generated_bytes(1001)[..16]);
        assert_eq!(TRUNCATED_START.len(), 10);
        assert!((TRUNCATED_START.len() as u64) < TRUNCATED_DECLARED);
    }
}
