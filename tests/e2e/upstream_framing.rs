//! How the sidecar's own HTTP/1.1 reads an upstream's answer (`src/upstream/h1/`): a chunked
//! body (split, with extensions and trailers) is passed on whole with its length and keeps the
//! connection; a body that ends with the connection is passed on whole and the connection is
//! not reused; bytes after an answer end its connection; an answer cut short or framed two
//! ways is never passed on as an answer.
//!
//! The upstream is a small HTTP/1.1 server in the test that answers `user/get` by its
//! `userid` in the framing the test asks for, writing each answer in several writes, and
//! counts the connections it accepted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{client, get_json, Sidecar};

struct Upstream {
    url: String,
    accepted: Arc<AtomicUsize>,
    /// Each request answered: the connection it came on (by accept order) and its target.
    served: Served,
}

type Served = Arc<Mutex<Vec<(usize, String)>>>;

impl Upstream {
    async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let served = Served::default();
        let (count, record) = (accepted.clone(), served.clone());
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let id = count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(conn, id, record.clone()));
            }
        });
        Upstream {
            url,
            accepted,
            served,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// The targets answered on the connection that answered the first request containing
    /// `part`, in order.
    fn on_connection_of(&self, part: &str) -> Vec<String> {
        let served = self.served.lock().unwrap();
        let conn = served
            .iter()
            .find(|(_, t)| t.contains(part))
            .expect("served")
            .0;
        served
            .iter()
            .filter(|(c, _)| *c == conn)
            .map(|(_, t)| t.clone())
            .collect()
    }
}

fn user(id: &str) -> String {
    format!(r#"{{"errcode":0,"errmsg":"ok","userid":"{id}","name":"framing"}}"#)
}

/// The answer to a request for `target`, as the pieces written one after another, and whether
/// the connection is closed after it.
fn answer(target: &str) -> (Vec<Vec<u8>>, bool) {
    const JSON: &str = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n";
    if target.starts_with("/cgi-bin/gettoken") {
        let body = r#"{"errcode":0,"errmsg":"ok","access_token":"FRAMINGTOKEN","expires_in":7200}"#;
        let whole = format!("{JSON}Content-Length: {}\r\n\r\n{body}", body.len());
        return (vec![whole.into_bytes()], false);
    }
    let id = target
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("userid="))
        .unwrap_or("plain");
    let body = user(id);
    let (a, b) = body.split_at(body.len() / 2);
    let chunked = |extra: &str| {
        vec![
            format!("{JSON}Transfer-Encoding: chunked\r\n{extra}\r\n").into_bytes(),
            format!("{:x};ext=1\r\n{a}\r\n", a.len()).into_bytes(),
            format!("{:x}\r\n{b}\r\n", b.len()).into_bytes(),
            b"0\r\nX-Trailer: t\r\n\r\n".to_vec(),
        ]
    };
    match id {
        "chunked" => (chunked(""), false),
        // Both framings: Transfer-Encoding wins, the (wrong) length is dropped.
        "both" => (chunked("Content-Length: 3\r\n"), false),
        "close" => (
            vec![
                format!("{JSON}Connection: close\r\n\r\n{a}").into_bytes(),
                b.as_bytes().to_vec(),
            ],
            true,
        ),
        "extra" => (
            vec![format!(
                "{JSON}Content-Length: {}\r\n\r\n{body}HTTP/1.1 200 OK\r\n",
                body.len()
            )
            .into_bytes()],
            false,
        ),
        "cut" => {
            let mut pieces = chunked("");
            pieces.truncate(2);
            (pieces, true)
        }
        "short" => (
            vec![format!("{JSON}Content-Length: {}\r\n\r\n{a}", body.len()).into_bytes()],
            true,
        ),
        "twolengths" => (
            vec![format!("{JSON}Content-Length: {}, 5\r\n\r\n{body}", body.len()).into_bytes()],
            false,
        ),
        _ => {
            let whole = format!("{JSON}Content-Length: {}\r\n\r\n{body}", body.len());
            (vec![whole.into_bytes()], false)
        }
    }
}

async fn serve(mut conn: TcpStream, id: usize, served: Served) {
    let mut buf = Vec::new();
    loop {
        let end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let mut chunk = [0u8; 4096];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        let target = head.split(' ').nth(1).unwrap_or("").to_string();
        let (pieces, close) = answer(&target);
        served.lock().unwrap().push((id, target));
        for piece in pieces {
            if conn.write_all(&piece).await.is_err() {
                return;
            }
            // Apart, so that the sidecar reads them apart at least some of the time.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if close {
            return;
        }
    }
}

async fn started() -> (Upstream, Sidecar) {
    let up = Upstream::start().await;
    let sc = Sidecar::start(
        &up.url,
        "defaults:\n  retry: { attempts: 2, backoff_base: 10ms, backoff_max: 20ms }\n",
    )
    .await;
    sc.wait_ready().await;
    (up, sc)
}

async fn get_user(sc: &Sidecar, id: &str) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    get_user_with(&client(), sc, id).await
}

/// The same over `http`'s connections: calls in a row from one app connection are served by
/// one thread of the sidecar, whose upstream connections they share (each thread keeps its
/// own).
async fn get_user_with(
    http: &reqwest::Client,
    sc: &Sidecar,
    id: &str,
) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    get_json(http, &sc.url(&format!("/cgi-bin/user/get?userid={id}"))).await
}

/// A chunked answer (with a chunk extension and a trailer, written in pieces), and one with
/// both a Transfer-Encoding and a wrong Content-Length, reach the app whole, with the length
/// of what they hold; the connection they came on carries the next calls.
#[tokio::test]
async fn chunked_answers_are_passed_on_whole_and_keep_their_connection() {
    let (up, sc) = started().await;
    let http = client();
    let (status, _, body) = get_user_with(&http, &sc, "plain").await;
    assert_eq!((status, body["userid"].as_str()), (200, Some("plain")));
    let connections = up.accepted();
    for id in ["chunked", "both", "chunked", "plain"] {
        let (status, headers, body) = get_user_with(&http, &sc, id).await;
        assert_eq!((status, body["userid"].as_str()), (200, Some(id)), "{body}");
        assert_eq!(
            headers["content-length"].to_str().unwrap(),
            user(id).len().to_string(),
            "{id}"
        );
    }
    assert_eq!(up.accepted(), connections, "a new connection was needed");
}

/// A body that ends with the connection (no length, no chunking) is passed on whole; so is an
/// answer with bytes after it, and its connection carries no further call.
#[tokio::test]
async fn answers_that_end_their_connection_are_whole_and_the_connection_not_reused() {
    let (up, sc) = started().await;
    for id in ["close", "extra"] {
        let (status, _, body) = get_user(&sc, id).await;
        assert_eq!((status, body["userid"].as_str()), (200, Some(id)), "{body}");
        for _ in 0..3 {
            let (status, _, body) = get_user(&sc, "plain").await;
            assert_eq!((status, body["userid"].as_str()), (200, Some("plain")));
        }
        let on_it = up.on_connection_of(&format!("userid={id}"));
        assert!(
            on_it.last().is_some_and(|t| t.contains(id)),
            "{id}: the connection carried more calls: {on_it:?}"
        );
    }
}

/// A chunked body cut off, a body shorter than its length and two lengths that disagree are
/// never passed on: the app gets the local 502 (after the retry), counted as a broken
/// connection or an invalid answer; the connection each came on is not used again.
#[tokio::test]
async fn an_answer_cut_short_or_framed_two_ways_is_never_passed_on() {
    let (_up, sc) = started().await;
    for id in ["cut", "short", "twolengths"] {
        let (status, headers, body) = get_user(&sc, id).await;
        assert_eq!(
            (status, body["errcode"].as_i64()),
            (502, Some(-1)),
            "{id}: {body}"
        );
        assert_eq!(
            headers.get("x-sidecar-reason").map(|v| v.to_str().unwrap()),
            Some("upstream-unavailable"),
            "{id}"
        );
        // A good answer in between: two failures in a row never eject the upstream.
        let (status, _, _) = get_user(&sc, "plain").await;
        assert_eq!(status, 200);
    }
    let metrics = sc.settled_metrics().await;
    let result = |r| {
        metrics.sum(
            "wecom_upstream_attempts_total",
            &[("api", "user/get"), ("result", r)],
        )
    };
    assert_eq!(
        result("reset"),
        4.0,
        "cut and short, each tried twice: {metrics}"
    );
    assert_eq!(
        result("bad_response"),
        2.0,
        "two lengths, tried twice: {metrics}"
    );
}
