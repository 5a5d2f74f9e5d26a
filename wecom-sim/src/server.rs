//! The accept loop (hyper HTTP/1.1, keep-alive) and the path of one request: count it, route
//! `/sim/` to the control API, fail it if WeCom is down, else apply the first matching fault,
//! then answer as WeCom.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Request;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::callback;
use super::control::control;
use super::handlers::{self, Answer, Call};
use super::state::{bump, lock, FaultKind, ListenerState, State};

/// How long `FaultKind::Hang` holds a call (the client dropping the connection ends it sooner).
const HANG: Duration = Duration::from_secs(3600);

/// Serves `listener` until `stopped` turns true or its sender is dropped; then closes every
/// connection it opened.
pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    here: Arc<ListenerState>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stopped.wait_for(|s| *s) => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: do not spin.
                tracing::debug!(error = %e, "simulator accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(
            stream,
            state.clone(),
            here.clone(),
            stopped.clone(),
        ));
    }
}

async fn connection(
    stream: TcpStream,
    state: Arc<State>,
    here: Arc<ListenerState>,
    mut stopped: watch::Receiver<bool>,
) {
    let abort = Arc::new(AtomicBool::new(false));
    let raw = Raw::default();
    let io = Conn {
        io: stream,
        abort: abort.clone(),
        raw: raw.clone(),
    };
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        handle(state.clone(), here.clone(), abort.clone(), raw.clone(), req)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service);
    tokio::select! {
        _ = conn => {}
        _ = stopped.wait_for(|s| *s) => {}
    }
}

/// A connection closed without an answer (`Reset`, `Hang`, `LoseAnswer`, or a broken request).
#[derive(Debug)]
pub(crate) struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the WeCom simulator")
    }
}

impl std::error::Error for Dropped {}

async fn handle(
    state: Arc<State>,
    here: Arc<ListenerState>,
    abort: Arc<AtomicBool>,
    raw: Raw,
    req: Request<Incoming>,
) -> Result<Answer, Dropped> {
    let (parts, body) = req.into_parts();
    // Read the whole request first, whatever the answer: an unread body would turn the close
    // after an early answer into a reset the client did not ask for.
    let body = body.collect().await.map_err(|_| Dropped)?.to_bytes();
    let path = parts.uri.path();
    if let Some(rest) = path.strip_prefix("/sim/") {
        let pushed = callback::control(
            &state,
            &parts.method,
            rest,
            parts.uri.query().unwrap_or(""),
            &parts.headers,
            &body,
        )
        .await;
        return Ok(pushed.unwrap_or_else(|| control(&state, &parts.method, rest, &body)));
    }
    bump(&mut lock(&here.calls), path, 1);
    state.count_call(path);
    if !path.starts_with("/cgi-bin/") {
        return Ok(handlers::status(404, "not found"));
    }
    let query = parts.uri.query().unwrap_or("");
    if path == "/cgi-bin/gettoken" {
        state.count_gettoken(&handlers::gettoken_app(&state, query));
    }
    // WeCom's concurrency limit, over business APIs (held through a `Delay` fault too).
    let _in_flight = if path == "/cgi-bin/gettoken" {
        None
    } else {
        match state.concurrency.enter(path) {
            Some(f) => Some(f),
            None => return Ok(handlers::fault_errcode(45033)),
        }
    };
    let mut lose_answer = false;
    let mut final_status = None;
    let mut extra_headers = Vec::new();
    let down = state.outage.hit();
    if down.is_some() {
        lock(&state.counters).failed_while_down += 1;
    }
    let fault = down.or_else(|| here.faults.take(path).or_else(|| state.faults.take(path)));
    match fault {
        None => {}
        Some(FaultKind::Status(code)) => {
            return Ok(handlers::status(code, "simulated failure"));
        }
        Some(FaultKind::Hang) => {
            tokio::time::sleep(HANG).await;
            return drop_connection(&abort);
        }
        Some(FaultKind::Reset) => return drop_connection(&abort),
        Some(FaultKind::Garbage) => return Ok(handlers::garbage()),
        Some(FaultKind::Truncated) => return Ok(handlers::truncated()),
        Some(FaultKind::Errcode(code)) => return Ok(handlers::fault_errcode(code)),
        Some(FaultKind::Delay(d)) => tokio::time::sleep(d).await,
        Some(FaultKind::LoseAnswer) => lose_answer = true,
        Some(FaultKind::Informational(codes)) => {
            let mut heads = lock(&raw);
            for code in codes {
                heads.extend_from_slice(interim_head(code).as_bytes());
            }
        }
        Some(FaultKind::FinalStatus(code)) => final_status = Some(code),
        Some(FaultKind::AnswerHeaders(headers)) => extra_headers = headers,
        Some(FaultKind::RedirectAbsolute) => {
            let host = parts
                .headers
                .get(http::header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("wecom.invalid");
            return Ok(handlers::redirect(Some(host), path, query));
        }
        Some(FaultKind::RedirectRelative) => return Ok(handlers::redirect(None, path, query)),
        Some(FaultKind::Echo) => return Ok(handlers::echo(&parts.headers, path, query)),
        Some(FaultKind::GzipEcho) => return Ok(handlers::gzip_echo(&parts.headers, path, query)),
        Some(FaultKind::ErrcodeEcho(code)) => return Ok(handlers::errcode_echo(code, path, query)),
        Some(FaultKind::EscapedEcho) => return Ok(handlers::escaped_echo(query)),
        Some(FaultKind::DayLimit) => {
            return Ok(handlers::errcode(45009, "reach max api daily quota limit"))
        }
        Some(FaultKind::UntrustedIp(ip)) => return Ok(handlers::untrusted_ip(&ip)),
    }
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let call = Call {
        path,
        query,
        content_type,
        body: &body,
    };
    let mut answer = handlers::wecom(&state, &call);
    for (name, value) in extra_headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            answer.headers_mut().append(name, value);
        }
    }
    if lose_answer {
        return drop_connection(&abort);
    }
    if let Some(code) = final_status {
        // Written raw when the connection closes: hyper would not send a 101 nobody asked
        // for, nor keep framing that a 204 or 304 gets wrong.
        lock(&raw).extend_from_slice(final_head(code).as_bytes());
        return Err(Dropped);
    }
    Ok(answer)
}

/// Bytes the simulator writes on a connection itself, ahead of hyper's next write or, when
/// the connection ends without one, as it closes.
type Raw = Arc<Mutex<Vec<u8>>>;

/// An interim answer's head; `103` carries a `Link` as Early Hints do.
fn interim_head(code: u16) -> String {
    match code {
        100 => "HTTP/1.1 100 Continue\r\n\r\n".to_string(),
        103 => "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n".to_string(),
        _ => format!("HTTP/1.1 {code} Interim\r\n\r\n"),
    }
}

/// A final answer's head with no body: `101` switches to `websocket`, the rest say length 0.
fn final_head(code: u16) -> String {
    match code {
        101 => {
            "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"
                .to_string()
        }
        204 | 304 => format!("HTTP/1.1 {code} Odd\r\nConnection: close\r\n\r\n"),
        _ => format!("HTTP/1.1 {code} Odd\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    }
}

/// Ends the call with no answer; the connection is closed with a TCP reset.
fn drop_connection(abort: &AtomicBool) -> Result<Answer, Dropped> {
    abort.store(true, Ordering::Relaxed);
    Err(Dropped)
}

/// A connection that closes with a reset (SO_LINGER 0) instead of a FIN when `abort` is set,
/// and writes the `raw` bytes a fault queued before anything else.
struct Conn {
    io: TcpStream,
    abort: Arc<AtomicBool>,
    raw: Raw,
}

impl Conn {
    /// Writes the queued raw bytes; ready once none is left.
    fn poll_raw(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut raw = lock(&self.raw);
        while !raw.is_empty() {
            match Pin::new(&mut self.io).poll_write(cx, &raw) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    raw.drain(..n);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let raw = std::mem::take(&mut *lock(&self.raw));
        if !raw.is_empty() {
            // A few bytes into an idle socket's send buffer: this does not block or fail short.
            let _ = self.io.try_write(&raw);
        }
        if self.abort.load(Ordering::Relaxed) {
            let _ = self.io.set_zero_linger();
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_raw(cx))?;
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_raw(cx))?;
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
