//! Raw HTTP/1.1 on a socket, for the requests `reqwest` cannot send (malformed, pipelined,
//! slow, half-written) and the answers it would hide (interim `1xx`, exact headers, how the
//! connection ended). One reader, [`Raw`], serves every test that reads answers off a socket:
//! connect, write bytes, then read one answer ([`Raw::answer`]), every pipelined answer until
//! the peer closes ([`Raw::answers`]), the next interim answer ([`Raw::interim`]), or all bytes
//! until the close ([`Raw::until_close`]).
//!
//! Answers are framed as RFC 9112 says: past any `1xx` heads, by `Transfer-Encoding: chunked`,
//! else `Content-Length`, else (no body for `204`/`304`) by the close. Each read waits at most
//! the reader's patience ([`WITHIN`] unless told); a read that gets nothing for that long ends
//! with [`End::TimedOut`], so a test decides itself whether a hang fails it.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest wait for a byte (or the close) on a raw connection; past it the peer is taken to
/// hang.
const WITHIN: Duration = Duration::from_secs(15);

/// How much a read asks for at once: small, so thousands of held connections cost little.
const READ_AT_ONCE: usize = 8 * 1024;

/// How a read of an answer ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum End {
    /// A complete answer was framed; the connection may still be open.
    #[default]
    Answered,
    /// The peer closed the connection (EOF).
    Closed,
    /// Reading failed: this error kind, and its text.
    Failed(std::io::ErrorKind, String),
    /// Nothing came for the reader's patience.
    TimedOut,
}

impl End {
    /// Whether the peer ended the connection (EOF or an error such as a reset).
    pub fn closed(&self) -> bool {
        matches!(self, End::Closed | End::Failed(..))
    }
}

/// One answer read off a raw connection: its final status, the interim (`1xx`) statuses before
/// it, its headers and body, and how the read ended. When the connection ended before a
/// complete answer, `status` is that of the head if one came (`None` otherwise) and `body` holds
/// whatever followed the head.
#[derive(Debug, Default)]
pub struct Answer {
    pub status: Option<u16>,
    pub interim: Vec<u16>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub end: End,
    /// How many bytes it took off the wire (all that was left, for one cut short).
    read: usize,
}

impl Answer {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The body as JSON; panics with the whole answer shown when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.show()))
    }

    /// The answer in one line, for assertion messages (the body cut at 300 bytes).
    pub fn show(&self) -> String {
        format!(
            "status {:?} (after {:?}), end {:?} after {} bytes, headers {:?}, body {:?}",
            self.status,
            self.interim,
            self.end,
            self.read,
            self.headers,
            String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
        )
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A raw connection: the stream (or its read half) and what was read off it and not yet taken.
pub struct Raw<S> {
    stream: S,
    buf: Vec<u8>,
    within: Duration,
    /// How the connection ended (closed or failed), once it has.
    closed: Option<End>,
}

impl Raw<TcpStream> {
    /// Connects to `addr`; panics if it cannot.
    pub async fn connect(addr: SocketAddr) -> Raw<TcpStream> {
        let stream = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        Raw::new(stream)
    }
}

impl<S: AsyncWrite + Unpin> Raw<S> {
    /// Writes all of `bytes`.
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Closes the writing side (the request is complete); reading goes on.
    pub async fn finish(&mut self) -> std::io::Result<()> {
        self.stream.shutdown().await
    }
}

impl<S: AsyncRead + Unpin> Raw<S> {
    /// Reads from `stream` (a connection or its read half) with [`WITHIN`] patience.
    pub fn new(stream: S) -> Raw<S> {
        Raw {
            stream,
            buf: Vec::new(),
            within: WITHIN,
            closed: None,
        }
    }

    /// The same reader with another patience per read.
    pub fn within(mut self, patience: Duration) -> Raw<S> {
        self.within = patience;
        self
    }

    /// Reads once more into the buffer: `None` when bytes came, else how the read ended. A
    /// close is kept (later reads end the same way); a silence is not (a later read may get
    /// bytes).
    async fn fill(&mut self) -> Option<End> {
        if let Some(end) = &self.closed {
            return Some(end.clone());
        }
        self.buf.reserve(READ_AT_ONCE);
        let end = match tokio::time::timeout(self.within, self.stream.read_buf(&mut self.buf)).await
        {
            Ok(Ok(0)) => End::Closed,
            Ok(Ok(_)) => return None,
            Ok(Err(e)) => End::Failed(e.kind(), e.to_string()),
            Err(_) => return Some(End::TimedOut),
        };
        self.closed = Some(end.clone());
        Some(end)
    }

    /// Reads the next answer: until it is complete, or the connection ends or falls silent.
    pub async fn answer(&mut self) -> Answer {
        loop {
            match frame(&self.buf, self.closed.is_some()) {
                Framed::Done(answer, used) => {
                    self.buf.drain(..used);
                    return answer;
                }
                Framed::Short => {}
            }
            if let Some(end) = self.fill().await {
                // A close may complete an answer framed by it.
                if let Framed::Done(answer, used) = frame(&self.buf, end.closed()) {
                    self.buf.drain(..used);
                    return answer;
                }
                return self.partial(end);
            }
        }
    }

    /// Like [`Raw::answer`], but panics when neither an answer nor a close came within the
    /// patience: the peer hangs on what it was sent.
    pub async fn answered(&mut self) -> Answer {
        let answer = self.answer().await;
        assert_ne!(
            answer.end,
            End::TimedOut,
            "no answer and no close within {:?}: the peer hangs; {}",
            self.within,
            answer.show()
        );
        answer
    }

    /// What was read when the connection ended without a complete answer (and takes it).
    fn partial(&mut self, end: End) -> Answer {
        let buf = std::mem::take(&mut self.buf);
        match parse_head(&buf) {
            Some(head) => Answer {
                status: Some(head.status),
                interim: head.interim,
                headers: head.headers,
                body: buf[head.body_start..].to_vec(),
                end,
                read: buf.len(),
            },
            None => Answer {
                end,
                read: buf.len(),
                ..Answer::default()
            },
        }
    }

    /// Reads answers until the connection ends or falls silent: every complete one, in order
    /// (a last incomplete one is left out).
    pub async fn answers(&mut self) -> Vec<Answer> {
        let mut out = Vec::new();
        loop {
            let answer = self.answer().await;
            if answer.end != End::Answered {
                return out;
            }
            out.push(answer);
        }
    }

    /// Reads the next head and takes it when it is an interim (`1xx`) one: its status. `None`
    /// when the connection ends or falls silent first; a final head is left for
    /// [`Raw::answer`] and its status returned.
    pub async fn interim(&mut self) -> Option<u16> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let status = status_of(&self.buf[..end])?;
                if (100..200).contains(&status) {
                    self.buf.drain(..end + 4);
                }
                return Some(status);
            }
            if self.fill().await.is_some() {
                return None;
            }
        }
    }

    /// Reads until the connection ends or falls silent: every byte not yet taken, and how it
    /// ended.
    pub async fn until_close(&mut self) -> (Vec<u8>, End) {
        loop {
            if let Some(end) = self.fill().await {
                return (std::mem::take(&mut self.buf), end);
            }
        }
    }
}

/// Writes `bytes` on a new connection to `addr` while reading the answer, so an answer that
/// comes before all is written (an early refusal) is seen. The connection stays open for
/// writing until the answer is read. Panics on a hang, as [`Raw::answered`].
pub async fn exchange(addr: SocketAddr, bytes: Vec<u8>) -> Answer {
    let (rd, mut wr) = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"))
        .into_split();
    let writer = tokio::spawn(async move {
        let written = wr.write_all(&bytes).await;
        (wr, written)
    });
    let answer = Raw::new(rd).answered().await;
    writer.abort();
    answer
}

// ---------------------------------------------------------------------------------------------
// Framing (pure)
// ---------------------------------------------------------------------------------------------

/// A response head at the start of a buffer, past any interim answers.
#[derive(Debug)]
struct Head {
    status: u16,
    interim: Vec<u16>,
    headers: Vec<(String, String)>,
    body_start: usize,
}

/// What [`frame`] found at the start of a buffer.
#[derive(Debug)]
enum Framed {
    /// A complete answer, and how many bytes it took.
    Done(Answer, usize),
    /// Not yet a complete answer.
    Short,
}

fn find(buf: &[u8], what: &[u8]) -> Option<usize> {
    buf.windows(what.len()).position(|w| w == what)
}

/// The status code of a status line (`HTTP/1.1 200 OK`) at the start of `head`.
fn status_of(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\r').next()?;
    std::str::from_utf8(line)
        .ok()?
        .split(' ')
        .nth(1)?
        .parse()
        .ok()
}

/// Parses the response head at the start of `buf`, past any `1xx` interim answers.
fn parse_head(buf: &[u8]) -> Option<Head> {
    let mut at = 0;
    let mut interim = Vec::new();
    loop {
        let end = find(&buf[at..], b"\r\n\r\n")? + at;
        let status = status_of(&buf[at..end])?;
        let head = String::from_utf8_lossy(&buf[at..end]);
        let headers = head
            .split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect();
        at = end + 4;
        if !(100..200).contains(&status) {
            return Some(Head {
                status,
                interim,
                headers,
                body_start: at,
            });
        }
        interim.push(status);
    }
}

/// The body of a chunked message at the start of `buf`: the decoded body and the bytes it
/// took (trailers included), or `None` while incomplete or unframeable.
fn dechunk(buf: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let line_end = find(&buf[at..], b"\r\n")? + at;
        let size = std::str::from_utf8(&buf[at..line_end]).ok()?;
        let size = size.split(';').next()?.trim();
        let size = usize::from_str_radix(size, 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            let trailers_end = if buf[at..].starts_with(b"\r\n") {
                at + 2
            } else {
                find(&buf[at..], b"\r\n\r\n")? + at + 4
            };
            return Some((body, trailers_end));
        }
        let data_end = at.checked_add(size)?;
        if buf.len() < data_end + 2 {
            return None;
        }
        body.extend_from_slice(&buf[at..data_end]);
        at = data_end + 2;
    }
}

/// Frames one complete answer at the start of `buf`; `closed` says the peer has closed, which
/// completes an answer framed by the close.
fn frame(buf: &[u8], closed: bool) -> Framed {
    let Some(head) = parse_head(buf) else {
        return Framed::Short;
    };
    let start = head.body_start;
    let rest = &buf[start..];
    let chunked = header(&head.headers, "transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    let length = header(&head.headers, "content-length").and_then(|v| v.parse::<usize>().ok());
    let (body, used) = if matches!(head.status, 204 | 304) {
        (Vec::new(), 0)
    } else if chunked {
        match dechunk(rest) {
            Some(done) => done,
            None => return Framed::Short,
        }
    } else if let Some(len) = length {
        if rest.len() < len {
            return Framed::Short;
        }
        (rest[..len].to_vec(), len)
    } else if closed {
        (rest.to_vec(), rest.len())
    } else {
        return Framed::Short;
    };
    let answer = Answer {
        status: Some(head.status),
        interim: head.interim,
        headers: head.headers,
        body,
        end: End::Answered,
        read: start + used,
    };
    Framed::Done(answer, start + used)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(buf: &[u8], closed: bool) -> (Answer, usize) {
        match frame(buf, closed) {
            Framed::Done(a, used) => (a, used),
            Framed::Short => panic!("not framed: {:?}", String::from_utf8_lossy(buf)),
        }
    }

    #[test]
    fn content_length_frames_the_body_and_leaves_the_next_answer() {
        let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n\r\nhiHTTP/1.1 404 No\r\n";
        let (a, used) = done(buf, false);
        assert_eq!(a.status, Some(200));
        assert_eq!(a.body, b"hi");
        assert_eq!(a.header("x-a"), Some("b"));
        assert_eq!(&buf[used..], b"HTTP/1.1 404 No\r\n");
        assert!(matches!(
            frame(&buf[..buf.len() - 20], false),
            Framed::Short
        ));
    }

    #[test]
    fn interim_heads_are_collected_before_the_final_one() {
        let buf = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early\r\nLink: x\r\n\r\n\
                    HTTP/1.1 413 Big\r\nContent-Length: 0\r\n\r\n";
        let (a, used) = done(buf, false);
        assert_eq!(
            (a.status, a.interim.as_slice()),
            (Some(413), &[100, 103][..])
        );
        assert_eq!(used, buf.len());
        assert!(a.body.is_empty());
    }

    #[test]
    fn chunked_bodies_are_decoded_with_extensions_and_trailers() {
        let buf = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                    3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\nnext";
        let (a, used) = done(buf, false);
        assert_eq!(a.body, b"abcde");
        assert_eq!(&buf[used..], b"next");
        let plain = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n";
        assert_eq!(done(plain, false).0.body, b"z");
        for cut in [plain.len() - 10, plain.len() - 2] {
            assert!(
                matches!(frame(&plain[..cut], false), Framed::Short),
                "{cut}"
            );
        }
        let broken = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert!(matches!(frame(broken, true), Framed::Short));
    }

    #[test]
    fn without_a_length_the_close_ends_the_body_except_for_204_and_304() {
        let buf = b"HTTP/1.1 200 OK\r\n\r\nall of it";
        assert!(matches!(frame(buf, false), Framed::Short));
        assert_eq!(done(buf, true).0.body, b"all of it");
        for status in [204, 304] {
            let buf = format!("HTTP/1.1 {status} X\r\n\r\nHTTP/1.1 200 OK\r\n");
            let (a, used) = done(buf.as_bytes(), false);
            assert_eq!((a.status, used), (Some(status), buf.len() - 17));
        }
    }

    #[test]
    fn a_head_that_is_not_http_is_never_framed() {
        for buf in [
            &b""[..],
            b"HTTP/1.1 200",
            b"garbage\r\n\r\n",
            b"HTTP/1.1 xyz OK\r\n\r\n",
        ] {
            assert!(matches!(frame(buf, true), Framed::Short), "{buf:?}");
            assert!(parse_head(buf).is_none());
        }
    }

    #[tokio::test]
    async fn the_reader_tells_an_answer_a_close_and_a_silence_apart() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut raw = Raw::new(server).within(Duration::from_millis(50));
        client
            .write_all(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
            )
            .await
            .unwrap();
        assert_eq!(raw.interim().await, Some(100));
        let a = raw.answer().await;
        assert_eq!(
            (a.status, a.end.clone(), a.body.as_slice()),
            (Some(200), End::Answered, &b"x"[..])
        );
        assert!(a.interim.is_empty(), "taken by interim()");
        assert_eq!(raw.answer().await.end, End::TimedOut);
        client
            .write_all(b"HTTP/1.1 502 Bad\r\n\r\npart")
            .await
            .unwrap();
        drop(client);
        let a = raw.answer().await;
        assert_eq!(
            (a.status, a.end, a.body.as_slice()),
            (Some(502), End::Answered, &b"part"[..])
        );
        let (rest, end) = raw.until_close().await;
        assert!(rest.is_empty());
        assert_eq!(end, End::Closed);
    }

    #[tokio::test]
    async fn answers_returns_every_complete_one_until_the_close() {
        let (mut client, server) = tokio::io::duplex(1024);
        let two = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 201 OK\r\nContent-Length: 1\r\n\r\nb";
        client.write_all(two).await.unwrap();
        client
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\ncut")
            .await
            .unwrap();
        drop(client);
        let answers = Raw::new(server).answers().await;
        let got: Vec<_> = answers.iter().map(|a| (a.status, a.body.clone())).collect();
        assert_eq!(
            got,
            [(Some(200), b"a".to_vec()), (Some(201), b"b".to_vec())]
        );
    }
}
