//! The sidecar's keep-alive pool of upstream connections (`src/upstream/pool.rs`): calls in a
//! row share one connection, and a connection the upstream closed while idle is never used
//! for a call (a call that may not be sent twice would fail on it).
//!
//! The upstream here is a small HTTP/1.1 server in the test (not the simulator), so that it
//! can count the connections it accepted and close idle ones after a moment, as a server with
//! a short keep-alive timeout does, without saying `Connection: close`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{client, get_json, post_json, Sidecar};

/// A keep-alive HTTP/1.1 upstream answering every WeCom call with `errcode` 0 (and `gettoken`
/// with a token), counting connections and the paths it was asked for, each with the number
/// of the connection it came over.
struct Upstream {
    url: String,
    accepted: Arc<AtomicUsize>,
    paths: Arc<Mutex<Vec<(usize, String)>>>,
}

impl Upstream {
    /// `close_after`: each connection is closed once idle this long (a keep-alive timeout).
    async fn start(close_after: Option<Duration>) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let paths: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
        let (count, seen) = (accepted.clone(), paths.clone());
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let number = count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(conn, number, seen.clone(), close_after));
            }
        });
        Upstream {
            url,
            accepted,
            paths,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn calls_to(&self, path: &str) -> usize {
        let paths = self.paths.lock().unwrap();
        paths.iter().filter(|(_, p)| p.starts_with(path)).count()
    }

    /// How many connections carried calls to `path`.
    fn connections_carrying(&self, path: &str) -> usize {
        let paths = self.paths.lock().unwrap();
        let conns: std::collections::BTreeSet<usize> = paths
            .iter()
            .filter(|(_, p)| p.starts_with(path))
            .map(|(conn, _)| *conn)
            .collect();
        conns.len()
    }
}

async fn serve(
    mut conn: TcpStream,
    number: usize,
    paths: Arc<Mutex<Vec<(usize, String)>>>,
    close_after: Option<Duration>,
) {
    let mut buf = Vec::new();
    loop {
        let head = read_head(&mut conn, &mut buf);
        let end = match close_after {
            // The keep-alive timeout: idle that long, the connection is closed.
            Some(idle) => match tokio::time::timeout(idle, head).await {
                Ok(end) => end,
                Err(_) => return,
            },
            None => head.await,
        };
        let Some(end) = end else {
            return;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let path = head.split(' ').nth(1).unwrap_or("").to_string();
        let body_len: usize = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        buf.drain(..end);
        while buf.len() < body_len {
            let mut chunk = [0u8; 4096];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..body_len);
        let body = if path.starts_with("/cgi-bin/gettoken") {
            r#"{"errcode":0,"errmsg":"ok","access_token":"POOLTOKEN","expires_in":7200}"#
        } else {
            r#"{"errcode":0,"errmsg":"ok","msgid":"m1"}"#
        };
        paths.lock().unwrap().push((number, path));
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if conn.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Reads until a whole request head is in `buf`; the length of the head, `None` at the end.
async fn read_head(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(at + 4);
        }
        let mut chunk = [0u8; 4096];
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Calls one after another go over one kept connection: without a pool each would open its
/// own (21 connections here).
#[tokio::test]
async fn calls_in_a_row_share_one_upstream_connection() {
    let up = Upstream::start(None).await;
    let sc = Sidecar::start(&up.url, "").await;
    sc.wait_ready().await;
    let http = client();
    for i in 0..20 {
        let (status, _, body) =
            get_json(&http, &sc.url(&format!("/cgi-bin/user/get?userid=u{i}"))).await;
        assert_eq!(
            (status, &body["errcode"]),
            (200, &serde_json::json!(0)),
            "{body}"
        );
    }
    assert_eq!(up.calls_to("/cgi-bin/user/get"), 20);
    // All over one connection. Besides it: the two apps' tokens, fetched at once at start
    // (two connections, away from the calls' thread; each thread of the sidecar keeps its own
    // connections, so the calls' thread does not reuse those).
    assert_eq!(
        up.connections_carrying("/cgi-bin/user/get"),
        1,
        "calls in a row over {} connections ({} accepted in all)",
        up.connections_carrying("/cgi-bin/user/get"),
        up.accepted()
    );
    assert!(up.accepted() <= 3, "{} upstream connections", up.accepted());
}

/// An upstream that closes idle connections (a short keep-alive timeout, no `Connection:
/// close` said): the next call gets a new connection, not the closed one. A `message/send`
/// may not be sent twice, so one sent on the closed connection would not be repeated and the
/// app would get a 502.
#[tokio::test]
async fn a_connection_the_upstream_closed_while_idle_is_not_used() {
    let up = Upstream::start(Some(Duration::from_millis(100))).await;
    let sc = Sidecar::start(&up.url, "").await;
    sc.wait_ready().await;
    let http = client();
    let message = serde_json::json!({
        "touser": "zhangsan",
        "msgtype": "text",
        "agentid": 1000002,
        "text": {"content": "hello"}
    });
    for i in 0..3 {
        let (status, _, body) = post_json(&http, &sc.url("/cgi-bin/message/send"), &message).await;
        assert_eq!(
            (status, &body["errcode"]),
            (200, &serde_json::json!(0)),
            "call {i}: {body}"
        );
        // Past the upstream's close, and then some.
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert_eq!(up.calls_to("/cgi-bin/message/send"), 3, "each sent once");
    assert!(
        up.accepted() >= 3,
        "only {} upstream connections for 3 calls the upstream closed in between",
        up.accepted()
    );
}
