use super::*;
use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::ReadBuf;

/// One thing the scripted stream does when read.
#[derive(Debug, Clone)]
pub(in crate::upstream::h1) enum Step {
    /// These bytes, as one read (or as many as the reader has room for).
    Data(Vec<u8>),
    /// An I/O error.
    Fail,
    /// Never ready.
    Stall,
}

/// A stream whose reads follow a script (then end), and which keeps what is written to it.
#[derive(Debug, Default)]
pub(in crate::upstream::h1) struct Script {
    reads: VecDeque<Step>,
    pub written: Vec<u8>,
    pub flushes: usize,
    pub write_fails: bool,
    pub write_stalls: bool,
    pub shut: bool,
}

impl Script {
    pub fn reads(steps: impl IntoIterator<Item = Step>) -> Self {
        Script {
            reads: steps.into_iter().collect(),
            ..Script::default()
        }
    }

    /// Each piece as its own read.
    pub fn pieces(pieces: &[&[u8]]) -> Self {
        Script::reads(pieces.iter().map(|p| Step::Data(p.to_vec())))
    }

    /// `bytes` one byte per read.
    pub fn bytewise(bytes: &[u8]) -> Self {
        Script::reads(bytes.iter().map(|b| Step::Data(vec![*b])))
    }
}

impl AsyncRead for Script {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.reads.pop_front() {
            None => Poll::Ready(Ok(())),
            Some(Step::Data(mut data)) => {
                let n = data.len().min(buf.remaining());
                buf.put_slice(&data[..n]);
                if n < data.len() {
                    self.reads.push_front(Step::Data(data.split_off(n)));
                }
                Poll::Ready(Ok(()))
            }
            Some(Step::Fail) => Poll::Ready(Err(io::Error::other("scripted failure"))),
            Some(Step::Stall) => {
                self.reads.push_front(Step::Stall);
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for Script {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.write_stalls {
            return Poll::Pending;
        }
        if self.write_fails {
            return Poll::Ready(Err(io::Error::other("scripted write failure")));
        }
        self.written.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.flushes += 1;
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.shut = true;
        Poll::Ready(Ok(()))
    }
}

pub(in crate::upstream::h1) fn wire(script: Script) -> Wire<Script> {
    Wire::new(script, None, None)
}

#[tokio::test]
async fn reads_add_to_the_unread_bytes_which_are_consumed_in_order() {
    let mut w = wire(Script::pieces(&[b"abc", b"def"]));
    assert_eq!(w.fill(16).await, Ok(3));
    assert_eq!(w.unread().as_ref(), b"abc");
    assert_eq!(w.fill(16).await, Ok(3));
    assert_eq!(w.take(2).as_ref(), b"ab");
    w.skip(1);
    assert_eq!(w.unread().as_ref(), b"def");
    assert_eq!(w.fill(16).await, Ok(0), "the end of the stream");
    assert_eq!(w.unread().as_ref(), b"def");
}

#[tokio::test]
async fn bytes_left_after_a_chunk_still_held_are_kept_when_reading_on() {
    let mut w = wire(Script::pieces(&[b"abcdef", b"gh"]));
    w.fill(16).await.unwrap();
    let held = w.take(2);
    assert_eq!(w.fill(16).await, Ok(2));
    assert_eq!(w.unread().as_ref(), b"cdefgh");
    assert_eq!(held.as_ref(), b"ab", "the chunk handed out is untouched");
}

#[tokio::test]
async fn one_read_takes_as_much_as_was_asked_room_for() {
    let big = vec![7u8; 3000];
    let mut w = wire(Script::pieces(&[&big]));
    assert_eq!(w.fill(4096).await, Ok(3000));
}

#[tokio::test]
async fn a_read_error_is_a_reset_and_a_write_error_too() {
    let mut w = wire(Script::reads([Step::Fail]));
    assert_eq!(w.fill(16).await, Err(AttemptError::Reset("ReadError")));
    let mut w = wire(Script {
        write_fails: true,
        ..Script::default()
    });
    assert_eq!(
        w.write(&[b"x"]).await,
        Err(AttemptError::Reset("WriteError"))
    );
}

#[tokio::test(start_paused = true)]
async fn each_read_and_each_write_is_bounded_by_its_timeout() {
    let t = Some(Duration::from_secs(5));
    let mut w = Wire::new(Script::reads([Step::Stall]), t, None);
    assert_eq!(w.fill(16).await, Err(AttemptError::Timeout));
    // Bounded later (a streamed body), reads time out from then on.
    let mut w = wire(Script::reads([Step::Data(b"a".to_vec()), Step::Stall]));
    assert_eq!(w.fill(16).await, Ok(1));
    w.bound_reads(t);
    assert_eq!(w.fill(16).await, Err(AttemptError::Timeout));

    // A read that comes in time is not cut, however long the reads before took in all.
    let mut w = Wire::new(Script::pieces(&[b"a", b"b", b"c"]), t, None);
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(w.fill(16).await, Ok(1));
    }

    let script = Script {
        write_stalls: true,
        ..Script::default()
    };
    let mut w = Wire::new(script, None, t);
    assert_eq!(w.write(&[b"x"]).await, Err(AttemptError::Timeout));
}

#[tokio::test]
async fn parts_are_written_in_order_then_flushed_and_the_stream_handed_back() {
    let mut w = wire(Script::default());
    w.write(&[b"GET / HTTP/1.1\r\n\r\n", b"body"])
        .await
        .unwrap();
    w.shutdown().await;
    let s = w.into_stream();
    assert_eq!(s.written, b"GET / HTTP/1.1\r\n\r\nbody");
    assert_eq!(s.flushes, 1);
    assert!(s.shut);
}
