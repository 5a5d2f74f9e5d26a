//! One app connection, from accept to close, under the bounds of `client:`.
//!
//! - **A place**: a connection over `client.max_connections` evicts the one that has waited
//!   longest for a request head, or is refused with a 503 (`overloaded`) when every one is in
//!   a call (`capacity`). The cap leaves descriptors for upstream connections, Redis and the
//!   store, so a flood of app connections cannot make calls fail upstream.
//! - **The head** of each request must arrive whole within `header_timeout`: from accept for
//!   the first request, from its first byte for later ones. (pingora bounds each read only,
//!   so a head sent a byte every few seconds would hold its descriptor for ever.)
//! - **Between calls** a kept-alive connection may wait `idle_timeout` for the next request's
//!   first byte (pingora's own wait between calls has no bound for HTTP/1.1). The wait sets
//!   no timer: `capacity`'s sweeper closes connections idle past the bound in force (so a
//!   reload that lowers it reaches connections already idle), and every idle one once the
//!   sidecar stops.
//! - **Bodies and answers**: each read of a request body and each write of an answer must make
//!   progress within `body_timeout`.
//! - **Pipelining**: requests written before the answers are read are answered in order
//!   (pingora hands the bytes read past one request to the next session).
//!
//! Connections closed to keep a bound are counted in `wecom_app_connections_closed_total`.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use pingora::protocols::http::ServerSession as Session;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::refusal::Refusal;
use super::{within, SidecarProxy};
use crate::capacity::{Waited, Why};
use crate::state::Shared;

/// Bytes of the next request read at once when it arrives on a kept-alive connection (a
/// longer head is read on by the session). Held in the connection's future, so idle
/// connections keep it too: small.
const FIRST_READ: usize = 512;
/// Room for the head the session reads on into (pingora's own first head buffer).
const HEAD_BUFFER: usize = 4096;

/// Longest time spent writing the refusal to a connection over the cap.
const REFUSAL_WRITE: Duration = Duration::from_secs(1);

/// Serves the connection until it closes.
pub(super) async fn run(app: &SidecarProxy, stream: Stream, shutdown: &ShutdownWatch) {
    let mut stream = on_this_thread(stream);
    let shared = &app.shared;
    let max = shared
        .capacity
        .max_connections(&shared.runtime.load().config.client);
    let Some(slot) = shared.capacity.admit(max, raw_fd(&stream)) else {
        closed(shared, "refused");
        refuse(stream, max).await;
        return;
    };
    let _open = OpenGauge::new(shared);
    let mut prefix: Option<BytesMut> = None;
    let mut first = true;
    loop {
        let limits = shared.runtime.load().config.client;
        let mut close_after = false;
        if prefix.is_none() && !first {
            // Between calls: wait for the next request's first bytes. They are read here and
            // handed to the session as the start of its head (as pipelined bytes are), so the
            // head is parsed once from what one read brought, with no byte peeked and read
            // again.
            let mut first_bytes = [0u8; FIRST_READ];
            let n = match slot.idle(stream.read(&mut first_bytes)).await {
                Waited::Closed(why) => return closed_for(shared, why),
                // The app closed the connection (or it broke) between calls.
                Waited::Done(Err(_) | Ok(0)) | Waited::DoneThenClose(Err(_) | Ok(0)) => return,
                Waited::Done(Ok(n)) => n,
                Waited::DoneThenClose(Ok(n)) => {
                    close_after = true;
                    n
                }
            };
            let mut head = BytesMut::with_capacity(HEAD_BUFFER.max(n));
            head.extend_from_slice(&first_bytes[..n]);
            prefix = Some(head);
        }
        // Boxed: the session (680 bytes) is handed from step to step of the call, and each
        // hand-over of it unboxed was a copy (about 100 instructions; nine a call).
        let mut session = Box::new(Session::new_http1(stream));
        session.set_pipelining_enabled(true);
        if let Some(bytes) = prefix.take() {
            session.set_pipelined_prefix(bytes);
        }
        session.set_read_timeout(Some(limits.body_timeout));
        session.set_write_timeout(Some(limits.body_timeout));
        // A head already here whole (almost always, after the wait above) is read at the
        // first poll: no timer, and no entry in the waiting connections (it could not be
        // evicted anyway: `capacity` passes over a connection whose head has arrived). One
        // still arriving is bounded by `header_timeout` from now, and may be evicted.
        let head_by = tokio::time::Instant::now() + limits.header_timeout;
        let head = {
            let mut read = std::pin::pin!(crate::request_head::read(&mut session, shutdown));
            match within::at_once(&mut read).await {
                Some(read) => Waited::Done(Ok(read)),
                None => slot.evictable(tokio::time::timeout_at(head_by, read)).await,
            }
        };
        match head {
            Waited::Closed(why) => return closed_for(shared, why),
            Waited::Done(Err(_)) | Waited::DoneThenClose(Err(_)) => {
                return closed(shared, "header_timeout");
            }
            Waited::Done(Ok(false)) | Waited::DoneThenClose(Ok(false)) => return,
            Waited::Done(Ok(true)) => {}
            Waited::DoneThenClose(Ok(true)) => close_after = true,
        }
        if close_after || *shutdown.borrow() {
            // Evicted as the request arrived, or draining: answer it, then close, so the app
            // reconnects (elsewhere, when draining).
            session.set_keepalive(None);
        }
        // Boxed: between calls a connection then holds only this loop's small state, not the
        // call's (about 5 KB, measured with massif), which 1,000 idle app connections would
        // otherwise keep resident.
        // Written into its box where it is made: `Box::pin(future)` built the whole future on
        // the stack and copied it in (about 700 instructions a call in callgrind).
        let mut slot = Box::new_uninit();
        slot.write(app.serve(session));
        // SAFETY: written on the line above.
        let call = unsafe { slot.assume_init() };
        let Some(reused) = Box::into_pin(call).await else {
            return;
        };
        (stream, prefix) = reused;
        first = false;
    }
}

/// The same connection, its socket registered with this thread's reactor.
///
/// pingora accepts on one thread and runs each connection on a random thread's runtime, but
/// the socket stays registered with the reactor of the runtime that accepted it. Every time it
/// becomes readable or writable, that runtime's thread then wakes this one from outside (a
/// remote schedule: a write to this runtime's eventfd and a cross-thread wake-up), so with two
/// threads a second one made the sidecar slower, not faster (`benches/load.sh`, two workers:
/// 0.95× of one). A duplicate of the socket is registered here and the accepted one is
/// closed, which removes it from the other reactor: three system calls once per connection.
/// Anything but a TCP stream, or a failed duplicate, is served as it came.
fn on_this_thread(stream: Stream) -> Stream {
    use pingora::protocols::{GetSocketDigest, SocketDigest};
    use std::os::unix::io::FromRawFd;
    let Some(fd) = raw_fd(&stream) else {
        return stream;
    };
    // SAFETY: `fd` is the open socket `stream` owns; F_DUPFD_CLOEXEC only makes a new
    // descriptor for it (sharing its O_NONBLOCK, which tokio needs).
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return stream;
    }
    // SAFETY: `dup` is a new descriptor of a connected TCP socket, owned by nothing else.
    let std_stream = unsafe { std::net::TcpStream::from_raw_fd(dup) };
    let Ok(tcp) = tokio::net::TcpStream::from_std(std_stream) else {
        return stream;
    };
    let peer = stream
        .get_socket_digest()
        .and_then(|d| d.peer_addr.get().cloned());
    drop(stream);
    let mut moved = pingora::protocols::l4::stream::Stream::from(tcp);
    let digest = SocketDigest::from_raw_fd(dup);
    if let Some(peer) = peer {
        let _ = digest.peer_addr.set(peer);
    }
    moved.set_socket_digest(digest);
    Box::new(moved)
}

/// The socket of an app connection (a TCP stream on the app listener).
fn raw_fd(stream: &Stream) -> Option<std::os::unix::io::RawFd> {
    use std::os::unix::io::AsRawFd;
    stream
        .as_any()
        .downcast_ref::<pingora::protocols::l4::stream::Stream>()
        .map(|s| s.as_raw_fd())
}

/// Answers a connection over the cap with a 503 and closes it.
async fn refuse(mut stream: Stream, max: u64) {
    let answer = Refusal::Overloaded { max }.answer();
    let body = answer.body();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n\
         Content-Length: {}\r\nX-Sidecar-Reason: {}\r\nRetry-After: {}\r\nConnection: close\r\n\r\n",
        body.len(),
        answer.reason.as_str(),
        answer.retry_after.unwrap_or(1)
    );
    let _ = tokio::time::timeout(REFUSAL_WRITE, async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&body).await?;
        stream.flush().await?;
        AsyncWriteExt::shutdown(&mut stream).await
    })
    .await;
}

/// Counts a connection told to close while it waited (a stop is not counted).
fn closed_for(shared: &Shared, why: Why) {
    if let Some(reason) = why.reason() {
        closed(shared, reason);
    }
}

fn closed(shared: &Shared, reason: &str) {
    shared
        .metrics
        .app_connections_closed
        .with_label_values(&[reason])
        .inc();
}

/// Counts the connection in `wecom_app_connections` while it is open.
struct OpenGauge(Arc<crate::metrics::Metrics>);

impl OpenGauge {
    fn new(shared: &Shared) -> Self {
        shared.metrics.app_connections.inc();
        OpenGauge(shared.metrics.clone())
    }
}

impl Drop for OpenGauge {
    fn drop(&mut self) {
        self.0.app_connections.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora::protocols::GetSocketDigest;
    use std::time::Duration;
    use tokio::io::AsyncReadExt;

    /// A bound on each step of the socket test, so a broken move fails instead of hanging.
    const STEP: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn a_moved_socket_is_the_same_connection_and_the_accepted_one_is_closed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut app = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let mut l4 = pingora::protocols::l4::stream::Stream::from(accepted);
        let digest = pingora::protocols::SocketDigest::from_raw_fd(
            std::os::unix::io::AsRawFd::as_raw_fd(&l4),
        );
        let app_addr = pingora::protocols::l4::socket::SocketAddr::Inet(app.local_addr().unwrap());
        let _ = digest.peer_addr.set(Some(app_addr.clone()));
        l4.set_socket_digest(digest);
        let stream: Stream = Box::new(l4);
        let accepted_fd = raw_fd(&stream).unwrap();

        let mut moved = on_this_thread(stream);

        assert_ne!(
            raw_fd(&moved),
            Some(accepted_fd),
            "the connection is served on a new descriptor"
        );
        let peer = moved
            .get_socket_digest()
            .and_then(|d| d.peer_addr.get().cloned());
        assert_eq!(
            peer,
            Some(Some(app_addr)),
            "the peer address is carried over"
        );
        // Both ways still work through the new descriptor.
        moved.write_all(b"answer").await.unwrap();
        moved.flush().await.unwrap();
        let mut got = [0u8; 6];
        tokio::time::timeout(STEP, app.read_exact(&mut got))
            .await
            .expect("the app reads the answer")
            .unwrap();
        assert_eq!(&got, b"answer");
        app.write_all(b"next").await.unwrap();
        let mut next = [0u8; 4];
        tokio::time::timeout(STEP, moved.read_exact(&mut next))
            .await
            .expect("the sidecar reads the next request")
            .unwrap();
        assert_eq!(&next, b"next");
        // Closing the served stream closes the connection: no other descriptor of the socket
        // (the accepted one, or a leaked duplicate) keeps it open.
        drop(moved);
        let mut rest = Vec::new();
        let read = tokio::time::timeout(STEP, app.read_to_end(&mut rest))
            .await
            .expect("the app sees the connection closed when the served stream is dropped");
        assert_eq!(read.unwrap(), 0);
    }
}
