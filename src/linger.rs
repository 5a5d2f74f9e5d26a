//! Lingering close: after an answer sent before the request body was read whole (a 413 from
//! the declared length, a refusal before the body, a push over its cap), the connection keeps
//! reading, and dropping, what the client still sends, for at most [`LINGER`], and only then
//! closes.
//!
//! Closing at once leaves the unread body in the socket, and the kernel answers a close with
//! unread data by a reset: a client still writing its body gets a broken pipe or a reset
//! before it reads the answer, and reports a network error instead of the 413 it was sent
//! (hyper-based clients do). nginx does the same (`lingering_close`, `lingering_time`). The
//! body is read through the session's own framing, so reading stops where the request ends.
//! A body that broke off (a framing error, a stall past `body_timeout`) is not waited for
//! again: the caller closes at once.

use std::time::Duration;

use pingora::protocols::http::ServerSession as Session;

/// Longest time a connection is kept reading a request body after its answer.
pub const LINGER: Duration = Duration::from_secs(10);

/// Ends the sending side (the answer is complete; a client waiting for the end sees it), then
/// reads and drops the rest of the request body, for at most [`LINGER`] in all (each read is
/// still bounded by the session's read timeout). Returns when the body is over, the client
/// closed or the time is up; the caller then closes the connection.
pub async fn linger(session: &mut Session) {
    if session.is_body_done() {
        return;
    }
    session.shutdown().await;
    session.set_total_drain_timeout(Some(LINGER));
    if let Err(e) = session.drain_request_body().await {
        tracing::debug!(error = %e.etype().as_str(), "lingering close ended");
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use pingora::http::ResponseHeader;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// More than the loopback socket buffers hold: a client writing it is still writing when
    /// the answer comes.
    pub(crate) const BODY: usize = 16 * 1024 * 1024;

    /// A server session on one end of a loopback connection with `head` read (a request head
    /// the client end has written), and the client end.
    pub(crate) async fn session_pair(head: &str) -> (Session, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        client.write_all(head.as_bytes()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let stream: pingora::protocols::Stream =
            Box::new(pingora::protocols::l4::stream::Stream::from(server));
        let mut session = Session::new_http1(stream);
        assert!(session.read_request().await.unwrap());
        (session, client)
    }

    /// A session whose request head declares a body of [`BODY`] bytes, none of it sent yet.
    pub(crate) async fn pair() -> (Session, TcpStream) {
        session_pair(&format!(
            "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: {BODY}\r\n\r\n"
        ))
        .await
    }

    /// Answers 413 before reading the body, lingers, and drops the session (closing the
    /// connection); whether the body had been read to its end by then.
    async fn answer_early_and_linger(mut session: Session) -> bool {
        let mut header = ResponseHeader::build(413, None).unwrap();
        header.insert_header("Content-Length", "0").unwrap();
        session
            .write_response_header(Box::new(header))
            .await
            .unwrap();
        session.finish_body().await.unwrap();
        linger(&mut session).await;
        session.is_body_done()
    }

    #[tokio::test]
    async fn a_client_that_writes_its_whole_body_first_reads_the_early_answer() {
        let (session, mut client) = pair().await;
        let server = tokio::spawn(answer_early_and_linger(session));
        let written = client.write_all(&vec![b'x'; BODY]).await;
        assert!(written.is_ok(), "cut under the body: {written:?}");
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
        assert!(answer.contains("Connection: close\r\n"), "{answer}");
        assert!(server.await.unwrap(), "the body was not read to its end");
    }

    #[tokio::test]
    async fn the_answer_is_ended_before_the_body_is_read() {
        let (session, mut client) = pair().await;
        let server = tokio::spawn(answer_early_and_linger(session));
        // The answer and the end of it arrive while the body is still unsent...
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 413 "));
        // ...and the body sent after them is still read, to its end.
        client.write_all(&vec![b'x'; BODY]).await.unwrap();
        assert!(server.await.unwrap(), "the body was not read to its end");
    }
}
