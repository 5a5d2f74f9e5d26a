//! Bad input from the app: malformed HTTP, oversized headers and bodies, invalid JSON, CRLF and
//! percent-encoding tricks, odd paths, unknown apps and APIs, metric label cardinality.
//!
//! Every case runs against the real sidecar binary and the WeCom simulator on loopback and
//! asserts both sides: what the app got (a clear error, or WeCom's own answer) and what WeCom
//! received (nothing for a refused call; the call unchanged, once, for one passed on). Requests
//! `reqwest` cannot send are written on a raw `TcpStream`. Where the exact bytes the sidecar
//! sent upstream matter, a recording relay sits between the sidecar and the simulator.
//!
//! After each test the sidecar's log must hold no panic and no app secret.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wecom_sidecar::proxy::{MAX_JSON_REQUEST, MAX_UPLOAD};
use wecom_sim::Simulator;

/// Longest wait for any answer (or close); past it the sidecar is taken to hang on the input.
const ANSWER_WITHIN: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------------
// Raw HTTP on a TcpStream
// ---------------------------------------------------------------------------------------------

/// What came back on a raw connection: an answer (status, headers, body), or how the connection
/// ended without one.
#[derive(Debug, Default)]
struct Raw {
    status: Option<u16>,
    /// Interim (`1xx`) answers before it, such as `100 Continue`.
    interim: Vec<u16>,
    headers: Headers,
    body: Vec<u8>,
    /// How the read ended when no complete answer came: `eof` or the I/O error.
    end: Option<String>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.show()))
    }

    fn reason(&self) -> Option<&str> {
        self.header("x-sidecar-reason")
    }

    fn show(&self) -> String {
        format!(
            "status {:?} (after {:?}), end {:?}, headers {:?}, body {:?}",
            self.status,
            self.interim,
            self.end,
            self.headers,
            String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
        )
    }
}

type Headers = Vec<(String, String)>;

/// A response head parsed from the start of a buffer.
struct Head {
    status: u16,
    interim: Vec<u16>,
    headers: Headers,
    body_start: usize,
}

/// Parses the response head at the start of `buf`, past any `1xx` interim answers.
fn parse_head(buf: &[u8]) -> Option<Head> {
    let mut at = 0;
    let mut interim = Vec::new();
    loop {
        let end = buf[at..].windows(4).position(|w| w == b"\r\n\r\n")? + at;
        let head = String::from_utf8_lossy(&buf[at..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
        let headers = lines
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

/// A complete answer in `buf` (head, and the whole body when `Content-Length` says how long).
fn complete(buf: &[u8]) -> Option<Raw> {
    let head = parse_head(buf)?;
    let len: usize = head
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))?
        .1
        .parse()
        .ok()?;
    let start = head.body_start;
    (buf.len() >= start + len).then(|| Raw {
        status: Some(head.status),
        interim: head.interim,
        headers: head.headers,
        body: buf[start..start + len].to_vec(),
        end: None,
    })
}

/// Whatever was read before the connection ended.
fn partial(buf: &[u8], end: String) -> Raw {
    match parse_head(buf) {
        Some(head) => Raw {
            status: Some(head.status),
            interim: head.interim,
            headers: head.headers,
            body: buf[head.body_start..].to_vec(),
            end: Some(end),
        },
        None => Raw {
            end: Some(format!("{end} after {} bytes", buf.len())),
            ..Raw::default()
        },
    }
}

/// Reads one answer: until it is complete, or the connection ends. Panics if neither happens
/// within [`ANSWER_WITHIN`] (a hang).
async fn read_answer<R: AsyncRead + Unpin>(r: &mut R) -> Raw {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        if let Some(raw) = complete(&buf) {
            return raw;
        }
        let n = match tokio::time::timeout(ANSWER_WITHIN, r.read(&mut chunk)).await {
            Err(_) => panic!(
                "no answer and no close within {ANSWER_WITHIN:?}: the sidecar hangs; read so far: {:?}",
                String::from_utf8_lossy(&buf)
            ),
            Ok(Ok(0)) => return partial(&buf, "eof".into()),
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return partial(&buf, e.to_string()),
        };
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Writes `bytes` on a new connection to `addr` while reading the answer, so an answer that
/// comes before all is written (an early refusal) is seen. The connection stays open for
/// writing until the answer is read.
async fn raw_exchange(addr: SocketAddr, bytes: Vec<u8>) -> Raw {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        let written = wr.write_all(&bytes).await;
        (wr, written)
    });
    let raw = read_answer(&mut rd).await;
    writer.abort();
    raw
}

// ---------------------------------------------------------------------------------------------
// A relay that records what the sidecar sends upstream
// ---------------------------------------------------------------------------------------------

/// A TCP relay in front of the simulator that keeps every byte the sidecar sent it, one buffer
/// per connection.
struct Relay {
    url: String,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
}

/// The simulator, a recording relay in front of it, and a ready sidecar whose upstream is the
/// relay: what most tests here start from.
async fn relayed() -> (Simulator, Relay, Sidecar) {
    let sim = simulator().await;
    let relay = Relay::start(sim.addr()).await;
    let sc = Sidecar::start(&relay.url, "").await;
    sc.wait_ready().await;
    (sim, relay, sc)
}

impl Relay {
    async fn start(to: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let record = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((down, _)) = listener.accept().await else {
                    continue;
                };
                let record = record.clone();
                tokio::spawn(async move {
                    let Ok(up) = TcpStream::connect(to).await else {
                        return;
                    };
                    let index = {
                        let mut r = record.lock().unwrap();
                        r.push(Vec::new());
                        r.len() - 1
                    };
                    let (mut down_rd, mut down_wr) = down.into_split();
                    let (mut up_rd, mut up_wr) = up.into_split();
                    let back = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut up_rd, &mut down_wr).await;
                    });
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n @ 1..) = down_rd.read(&mut buf).await {
                        record.lock().unwrap()[index].extend_from_slice(&buf[..n]);
                        if up_wr.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = up_wr.shutdown().await;
                    let _ = back.await;
                });
            }
        });
        Relay { url, seen }
    }

    /// Everything sent upstream so far, connections separated by a marker line.
    fn seen(&self) -> Vec<u8> {
        let seen = self.seen.lock().unwrap();
        let used: Vec<&[u8]> = seen
            .iter()
            .filter(|c| !c.is_empty())
            .map(|c| c.as_slice())
            .collect();
        used.join(&b"\n--- next connection ---\n"[..])
    }

    fn seen_text(&self) -> String {
        String::from_utf8_lossy(&self.seen()).into_owned()
    }

    fn clear(&self) {
        for c in self.seen.lock().unwrap().iter_mut() {
            c.clear();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shared checks
// ---------------------------------------------------------------------------------------------

/// Calls the simulator received, `gettoken` (which the sidecar may send on its own) excepted.
fn business_calls(sim: &Simulator) -> u64 {
    sim.counters()
        .calls
        .iter()
        .filter(|(p, _)| p.as_str() != "/cgi-bin/gettoken")
        .map(|(_, n)| n)
        .sum()
}

/// The same process still serves a normal call, and it reaches WeCom once.
async fn still_serves(sc: &mut Sidecar, sim: &Simulator, after: &str) {
    assert!(
        sc.child.try_wait().unwrap().is_none(),
        "the sidecar exited after {after}; log:\n{}",
        sc.logs()
    );
    let before = calls(sim, "/cgi-bin/user/get");
    let (status, _, v) = get_json(&client(), &sc.url("/cgi-bin/user/get?userid=next")).await;
    assert_eq!(status, 200, "after {after}: {v}");
    assert_eq!(v["errcode"], 0, "after {after}: {v}");
    assert_eq!(v["userid"], "next");
    assert_eq!(calls(sim, "/cgi-bin/user/get"), before + 1, "after {after}");
}

/// No panic and no app secret in the sidecar's log.
fn assert_clean_logs(sc: &Sidecar) {
    let logs = sc.logs();
    assert!(!logs.is_empty(), "no log captured");
    if let Some(line) = logs.lines().find(|l| l.contains("panicked")) {
        panic!("the sidecar panicked: {line}");
    }
    for secret in [HR_SECRET, OPS_SECRET] {
        assert!(!logs.contains(secret), "an app secret is in the log");
    }
}

/// How a refused request must be answered.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// Pingora's own answer, while it parses the request: this status, an empty body and
    /// `Connection: close` (the sidecar never sees the request).
    Pingora(u16),
    /// The sidecar's local answer: this status, `X-Sidecar-Reason: bad-request`, this errcode.
    Local(u16, i64),
}

fn assert_refused(what: &str, raw: &Raw, want: Want) {
    let shown = raw.show();
    match want {
        Want::Pingora(status) => {
            assert_eq!(raw.status, Some(status), "{what}: {shown}");
            assert_eq!(raw.reason(), None, "{what}: {shown}");
            assert_eq!(raw.header("connection"), Some("close"), "{what}: {shown}");
            assert!(raw.body.is_empty(), "{what}: {shown}");
        }
        Want::Local(status, errcode) => {
            assert_eq!(raw.status, Some(status), "{what}: {shown}");
            assert_eq!(raw.reason(), Some("bad-request"), "{what}: {shown}");
            assert_eq!(raw.json()["errcode"], errcode, "{what}: {shown}");
        }
    }
}

/// True when `bytes` hold a NUL or a CR that does not start a CRLF: what would let a value
/// split or end an HTTP line.
fn has_bare_cr_or_nul(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .enumerate()
        .any(|(i, &b)| b == 0 || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n')))
}

// ---------------------------------------------------------------------------------------------
// 1. Malformed request lines and headers
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn malformed_requests_are_refused_and_the_sidecar_keeps_serving() {
    use Want::*;
    let (sim, relay, mut sc) = relayed().await;
    let addr = addr_of(&sc.base);
    let ok_head = "GET /cgi-bin/user/get?userid=a HTTP/1.1\r\nHost: sidecar\r\n";
    let with = |extra: &str| format!("{ok_head}{extra}\r\n\r\n").into_bytes();
    let post = |extra: &str, body: &str| {
        format!("POST /cgi-bin/message/send HTTP/1.1\r\nHost: sidecar\r\n{extra}\r\n\r\n{body}")
            .into_bytes()
    };
    let gettoken = format!("/cgi-bin/gettoken?corpid={CORP_ID}&corpsecret={HR_SECRET}");

    let cases: Vec<(&str, Vec<u8>, Want)> = vec![
        (
            "garbage bytes (a TLS ClientHello)",
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\xde\xad\xbe\xef\r\n\r\n".to_vec(),
            Pingora(400),
        ),
        (
            "binary noise",
            (0..2048u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
            Pingora(400),
        ),
        (
            "no HTTP version",
            b"GET /cgi-bin/user/get?userid=a\r\nHost: sidecar\r\n\r\n".to_vec(),
            Pingora(400),
        ),
        (
            "unknown HTTP version",
            b"GET /cgi-bin/user/get?userid=a HTTP/3.0\r\nHost: sidecar\r\n\r\n".to_vec(),
            Pingora(400),
        ),
        (
            "HTTP/2 preface on the HTTP/1 port",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
            Pingora(400),
        ),
        ("header name with a space", with("Bad Header: v"), Pingora(400)),
        ("header line without a colon", with("NoColonHere"), Pingora(400)),
        ("empty header name", with(": v"), Pingora(400)),
        (
            "obsolete line folding",
            with("X-A: a\r\n folded"),
            Pingora(400),
        ),
        ("NUL in a header value", with("X-A: a\0b"), Pingora(400)),
        ("NUL in a header name", with("X-\0A: b"), Pingora(400)),
        (
            "NUL in the method",
            b"G\0ET /cgi-bin/user/get?userid=a HTTP/1.1\r\nHost: sidecar\r\n\r\n".to_vec(),
            Pingora(400),
        ),
        (
            "invalid method token",
            b"G@T /cgi-bin/user/get?userid=a HTTP/1.1\r\nHost: sidecar\r\n\r\n".to_vec(),
            Pingora(400),
        ),
        (
            "valid but unknown method",
            b"BREW /cgi-bin/user/get?userid=a HTTP/1.1\r\nHost: sidecar\r\n\r\n".to_vec(),
            Local(405, 405),
        ),
        (
            "CONNECT",
            b"CONNECT qyapi.weixin.qq.com:443 HTTP/1.1\r\nHost: qyapi.weixin.qq.com:443\r\n\r\n"
                .to_vec(),
            Pingora(405),
        ),
        ("two Host headers", with("Host: other"), Pingora(400)),
        (
            "Content-Length not a number",
            post("Content-Length: abc", "{}"),
            Pingora(400),
        ),
        (
            "Content-Length negative",
            post("Content-Length: -1", "{}"),
            Pingora(400),
        ),
        (
            "Content-Length past u64",
            post("Content-Length: 99999999999999999999999", "{}"),
            Pingora(400),
        ),
        (
            "two different Content-Lengths",
            post("Content-Length: 2\r\nContent-Length: 3", "{} "),
            Pingora(400),
        ),
        (
            "Transfer-Encoding not ending in chunked",
            post("Transfer-Encoding: gzip", "{}"),
            Pingora(400),
        ),
        (
            "HTTP/1.0 with Transfer-Encoding",
            b"POST /cgi-bin/message/send HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
                .to_vec(),
            Pingora(400),
        ),
        (
            "broken chunk size",
            post("Transfer-Encoding: chunked", "zz\r\n{}\r\n0\r\n\r\n"),
            Local(400, 47001),
        ),
        (
            "a secret in a malformed request",
            format!("GET {gettoken} HTTP/1.1\r\nHost: sidecar\r\nX-Bad\0: {HR_SECRET}\r\n\r\n")
                .into_bytes(),
            Pingora(400),
        ),
        (
            "a secret in a request line without version",
            format!("GET {gettoken}\r\nHost: sidecar\r\n\r\n").into_bytes(),
            Pingora(400),
        ),
    ];
    for (what, bytes, want) in cases {
        let before = business_calls(&sim);
        let raw = raw_exchange(addr, bytes).await;
        assert_refused(what, &raw, want);
        assert_eq!(business_calls(&sim), before, "{what}: reached WeCom");
        still_serves(&mut sc, &sim, what).await;
    }

    // Valid HTTP that is merely unusual, and request lines pingora makes valid by escaping a
    // raw CR or NUL in the target (`%0D`, `%00`): answered, and sent upstream still escaped.
    relay.clear();
    let before = calls(&sim, "/cgi-bin/user/get");
    let accepted: [(&[u8], &str); 4] = [
        (b"GET /cgi-bin/user/get?userid=old HTTP/1.0\r\n\r\n", "old"),
        (
            b"GET /cgi-bin/user/get?userid=nohost HTTP/1.1\r\n\r\n",
            "nohost",
        ),
        (
            b"GET /cgi-bin/user/get?userid=cr\rX HTTP/1.1\r\nHost: sidecar\r\n\r\n",
            "cr\rX",
        ),
        (
            b"GET /cgi-bin/user/get?userid=nul\0X HTTP/1.1\r\nHost: sidecar\r\n\r\n",
            "nul\0X",
        ),
    ];
    for (bytes, userid) in accepted {
        let raw = raw_exchange(addr, bytes.to_vec()).await;
        assert_eq!(raw.status, Some(200), "{userid:?}: {}", raw.show());
        let v = raw.json();
        assert_eq!(v["errcode"], 0, "{userid:?}: {v}");
        assert_eq!(v["userid"], userid, "WeCom got another value: {v}");
        if userid == "old" {
            assert_eq!(raw.header("connection"), Some("close"), "HTTP/1.0");
        }
    }
    assert_eq!(calls(&sim, "/cgi-bin/user/get"), before + 4);
    let seen = relay.seen_text();
    for sent in [
        "GET /cgi-bin/user/get?userid=old&access_token=",
        "GET /cgi-bin/user/get?userid=nohost&access_token=",
        "GET /cgi-bin/user/get?userid=cr%0DX&access_token=",
        "GET /cgi-bin/user/get?userid=nul%00X&access_token=",
    ] {
        assert!(
            seen.contains(sent),
            "upstream did not get {sent:?}:\n{seen}"
        );
    }
    let host = format!("\r\nHost: {}\r\n", relay.url.trim_start_matches("http://"));
    assert_eq!(seen.matches(&*host).count(), 4, "upstream Host:\n{seen}");
    assert!(!has_bare_cr_or_nul(&relay.seen()), "upstream:\n{seen}");

    // A raw CR in a gettoken carrying the real secret: answered locally, never forwarded.
    let gettokens = calls(&sim, "/cgi-bin/gettoken");
    let raw = raw_exchange(
        addr,
        format!("GET {gettoken}&x=\r HTTP/1.1\r\nHost: sidecar\r\n\r\n").into_bytes(),
    )
    .await;
    assert_eq!(raw.status, Some(200), "{}", raw.show());
    assert_eq!(raw.reason(), Some("gettoken"));
    assert_eq!(raw.json()["access_token"], "hr-bot");
    assert_eq!(calls(&sim, "/cgi-bin/gettoken"), gettokens);

    still_serves(&mut sc, &sim, "the accepted odd requests").await;
    assert_clean_logs(&sc);
}

/// After a broken request body (here a chunk size that is not hex) the sidecar cannot know
/// where the next request starts: it must answer and close the connection, as RFC 9112 asks,
/// not keep reading requests from bytes it can no longer frame.
#[tokio::test]
async fn a_body_framing_error_closes_the_connection() {
    let sim = simulator().await;
    let mut sc = Sidecar::start(&sim.url(), "").await;
    sc.wait_ready().await;
    let stream = TcpStream::connect(addr_of(&sc.base)).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    wr.write_all(
        b"POST /cgi-bin/message/send HTTP/1.1\r\nHost: sidecar\r\nTransfer-Encoding: chunked\r\n\r\n\
          zz\r\n\
          GET /cgi-bin/user/get?userid=pipelined HTTP/1.1\r\nHost: sidecar\r\n\r\n",
    )
    .await
    .unwrap();
    let raw = read_answer(&mut rd).await;
    assert_refused("broken chunk size", &raw, Want::Local(400, 47001));
    assert_eq!(
        raw.header("connection"),
        Some("close"),
        "a framing error must end the connection: {}",
        raw.show()
    );
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(ANSWER_WITHIN, rd.read_to_end(&mut rest)).await;
    assert!(
        ended.is_ok(),
        "the connection stays open after a framing error; the pipelined request got no answer"
    );
    assert_eq!(calls(&sim, "/cgi-bin/message/send"), 0);
    drop(wr);
    still_serves(&mut sc, &sim, "a framing error").await;
    assert_clean_logs(&sc);
}

// ---------------------------------------------------------------------------------------------
// 2. Oversized headers
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn oversized_headers_are_refused_at_pingora_limits_and_passed_on_below_them() {
    let (sim, relay, mut sc) = relayed().await;
    let addr = addr_of(&sc.base);
    let request = |userid: &str, extra: String| {
        format!("GET /cgi-bin/user/get?userid={userid} HTTP/1.1\r\nHost: sidecar\r\n{extra}\r\n")
            .into_bytes()
    };
    let headers = |n: usize| -> String { (0..n).map(|i| format!("X-H{i}: v\r\n")).collect() };

    // Over pingora's limits (1 MiB of header, 256 header lines): its 400, nothing upstream.
    for (what, extra) in [
        (
            "one header value of 1 MiB",
            format!("X-Big: {}\r\n", "a".repeat(1024 * 1024)),
        ),
        ("2,000 headers", headers(2000)),
        ("257 headers", headers(256)),
    ] {
        relay.clear();
        let before = business_calls(&sim);
        let raw = raw_exchange(addr, request("big", extra)).await;
        assert_refused(what, &raw, Want::Pingora(400));
        assert_eq!(business_calls(&sim), before, "{what}");
        assert!(!relay.seen_text().contains("userid=big"), "{what}");
        still_serves(&mut sc, &sim, what).await;
    }

    // Within them: passed on as sent, and WeCom's answer comes back.
    relay.clear();
    let before = calls(&sim, "/cgi-bin/user/get");
    let value = "b".repeat(100 * 1024);
    let raw = raw_exchange(addr, request("big100k", format!("X-Big: {value}\r\n"))).await;
    assert_eq!(raw.status, Some(200), "{}", raw.show());
    assert_eq!(raw.json()["userid"], "big100k");
    assert_eq!(calls(&sim, "/cgi-bin/user/get"), before + 1);
    assert!(
        relay
            .seen_text()
            .to_ascii_lowercase()
            .contains(&format!("\r\nx-big: {value}\r\n")),
        "the 100 KB header did not reach WeCom intact"
    );

    // 256 header lines in all pass pingora; the simulator (hyper) takes at most 100 and answers
    // 431, which reaches the app unchanged (an upstream 4xx), sent once.
    relay.clear();
    let raw = raw_exchange(addr, request("many", headers(255))).await;
    assert_eq!(raw.status, Some(431), "{}", raw.show());
    assert_eq!(raw.reason(), None, "{}", raw.show());
    assert_eq!(
        relay.seen_text().matches("userid=many").count(),
        1,
        "a 4xx from WeCom was repeated"
    );

    still_serves(&mut sc, &sim, "oversized headers").await;
    assert_clean_logs(&sc);
}

// ---------------------------------------------------------------------------------------------
// 3. Bodies over the limit
// ---------------------------------------------------------------------------------------------

/// `data` as a chunked body in 64 KiB chunks, with its last chunk.
fn chunked(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 1000 + 64);
    for chunk in data.chunks(64 * 1024) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn assert_too_large(what: &str, raw: &Raw, limit: u64) {
    assert_refused(what, raw, Want::Local(413, 47001));
    let msg = raw.json()["errmsg"].as_str().unwrap_or("").to_string();
    assert!(msg.contains(&limit.to_string()), "{what}: {msg}");
    assert_eq!(
        raw.header("connection"),
        Some("close"),
        "{what}: the unread body must not be taken for the next request: {}",
        raw.show()
    );
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_without_being_read_or_forwarded() {
    let sim = simulator().await;
    let mut sc = Sidecar::start(&sim.url(), "").await;
    sc.wait_ready().await;
    let addr = addr_of(&sc.base);
    let head = |path: &str, extra: &str| {
        format!("POST {path} HTTP/1.1\r\nHost: sidecar\r\nContent-Type: application/json\r\n{extra}\r\n\r\n")
            .into_bytes()
    };

    // (a) Declared over the limit: only the head and 4 KiB of the body are sent, the connection
    // stays open, and the 413 comes anyway: nothing past the limit is waited for or read.
    for declared in [MAX_JSON_REQUEST + 1, 3 * 1024 * 1024, u64::MAX] {
        let mut req = head(
            "/cgi-bin/message/send",
            &format!("Content-Length: {declared}"),
        );
        req.extend_from_slice(br#"{"touser":"a","msgtype":"text","text":{"content":""#);
        req.extend(std::iter::repeat_n(b'x', 4096));
        let raw = raw_exchange(addr, req).await;
        assert_too_large(&format!("declared {declared}"), &raw, MAX_JSON_REQUEST);
    }
    // With `Expect: 100-continue` the 413 comes instead of the invitation to send the body.
    let raw = raw_exchange(
        addr,
        head(
            "/cgi-bin/user/create",
            &format!(
                "Content-Length: {}\r\nExpect: 100-continue",
                MAX_JSON_REQUEST + 1
            ),
        ),
    )
    .await;
    assert_too_large("expect 100-continue", &raw, MAX_JSON_REQUEST);
    assert!(raw.interim.is_empty(), "invited to send: {}", raw.show());
    // (Under the limit the invitation does come.)
    let mut req = head(
        "/cgi-bin/user/create",
        "Content-Length: 2\r\nExpect: 100-continue",
    );
    req.extend_from_slice(b"{}");
    let raw = raw_exchange(addr, req).await;
    assert_eq!(raw.interim, [100], "{}", raw.show());
    // WeCom's own answer to a user/create without a userid.
    assert_eq!(raw.json()["errcode"], 41009, "{}", raw.show());

    // The limit itself is allowed: a JSON body of exactly 2 MiB is delivered.
    let delivered = sim.counters().messages_delivered;
    let mut body =
        br#"{"touser":"a","msgtype":"text","agentid":1,"text":{"content":"x"}}"#.to_vec();
    body.resize(MAX_JSON_REQUEST as usize, b' ');
    let r = client()
        .post(sc.url("/cgi-bin/message/send"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["errcode"], 0, "{v}");
    assert_eq!(sim.counters().messages_delivered, delivered + 1);
    assert_eq!(calls(&sim, "/cgi-bin/message/send"), 1);

    // (b) A chunked body that grows past the limit.
    let mut req = head("/cgi-bin/message/send", "Transfer-Encoding: chunked");
    req.extend(chunked(&vec![b' '; 3 * 1024 * 1024]));
    let raw = raw_exchange(addr, req).await;
    assert_too_large("chunked JSON", &raw, MAX_JSON_REQUEST);

    // (c) Uploads: declared over 20 MiB + 64 KiB, and chunked past it.
    let upload = |extra: &str| {
        format!(
            "POST /cgi-bin/media/upload?type=file HTTP/1.1\r\nHost: sidecar\r\n\
             Content-Type: multipart/form-data; boundary=XBOUNDARYX\r\n{extra}\r\n\r\n"
        )
        .into_bytes()
    };
    let mut part =
        b"--XBOUNDARYX\r\nContent-Disposition: form-data; name=\"media\"; filename=\"big.bin\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
            .to_vec();
    let mut req = upload(&format!("Content-Length: {}", MAX_UPLOAD + 1));
    req.extend_from_slice(&part);
    req.extend(std::iter::repeat_n(7u8, 4096));
    let raw = raw_exchange(addr, req).await;
    assert_too_large("declared upload", &raw, MAX_UPLOAD);
    part.resize(MAX_UPLOAD as usize + 1024 * 1024, 7);
    let mut req = upload("Transfer-Encoding: chunked");
    req.extend(chunked(&part));
    let raw = raw_exchange(addr, req).await;
    assert_too_large("chunked upload", &raw, MAX_UPLOAD);

    // (d) A body shorter than declared, then the app closes its side: a clear 400.
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let mut req = head("/cgi-bin/message/send", "Content-Length: 100");
    req.extend_from_slice(br#"{"touser":"#);
    wr.write_all(&req).await.unwrap();
    wr.shutdown().await.unwrap();
    let raw = read_answer(&mut rd).await;
    assert_refused("truncated body", &raw, Want::Local(400, 47001));

    // Only the calls within the limit reached WeCom.
    assert_eq!(calls(&sim, "/cgi-bin/message/send"), 1);
    assert_eq!(calls(&sim, "/cgi-bin/user/create"), 1);
    assert_eq!(calls(&sim, "/cgi-bin/media/upload"), 0);
    still_serves(&mut sc, &sim, "oversized bodies").await;
    assert_clean_logs(&sc);
}

// ---------------------------------------------------------------------------------------------
// 4. Invalid JSON bodies
// ---------------------------------------------------------------------------------------------

/// README ("Invalid JSON from the app is passed to WeCom, which answers 47001 in its own
/// words"): the sidecar forwards the body byte for byte, once, and the app gets WeCom's answer.
#[tokio::test]
async fn invalid_json_is_passed_to_wecom_unchanged_and_answered_by_it() {
    let (sim, relay, mut sc) = relayed().await;
    let c = client();
    let delivered = sim.counters().messages_delivered;
    // The simulator parses the JSON of message/send, user/create and user/list_id and answers
    // 47001 when it cannot, as WeCom does.
    let cases: [(&str, &[u8], i64); 6] = [
        ("/cgi-bin/message/send", br#"{"touser":"#, 47001),
        ("/cgi-bin/message/send", b"not json", 47001),
        ("/cgi-bin/message/send", b"{\"touser\":\"a\"\0}", 47001),
        ("/cgi-bin/user/create", br#"{"userid":"#, 47001),
        ("/cgi-bin/user/create", b"not json", 47001),
        ("/cgi-bin/user/list_id", b"[1,2", 47001),
    ];
    for (path, body, errcode) in cases {
        let what = format!("{path} {:?}", String::from_utf8_lossy(body));
        relay.clear();
        let before = calls(&sim, path);
        let r = c
            .post(sc.url(path))
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{what}");
        assert!(
            r.headers().get("x-sidecar-reason").is_none(),
            "{what}: answered locally, not by WeCom"
        );
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["errcode"], errcode, "{what}: {v}");
        assert_eq!(calls(&sim, path), before + 1, "{what}: sent more than once");
        let seen = relay.seen();
        let mut sent = b"\r\n\r\n".to_vec();
        sent.extend_from_slice(body);
        assert!(
            seen.ends_with(&sent),
            "{what}: the body changed on the way: {:?}",
            String::from_utf8_lossy(&seen)
        );
        assert!(
            String::from_utf8_lossy(&seen)
                .to_ascii_lowercase()
                .contains(&format!("\r\ncontent-length: {}\r\n", body.len())),
            "{what}"
        );
    }
    assert_eq!(sim.counters().messages_delivered, delivered);
    still_serves(&mut sc, &sim, "invalid JSON").await;
    assert_clean_logs(&sc);
}

// ---------------------------------------------------------------------------------------------
// 5. CRLF and encoding tricks in query values
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn encoded_crlf_nul_and_double_encoding_reach_wecom_still_encoded() {
    let (sim, relay, mut sc) = relayed().await;
    let c = client();
    let injected = |text: &str| text.to_ascii_lowercase().contains("\nx-injected");

    // (value as the app encoded it, what WeCom decodes it to)
    let cases = [
        ("a%0d%0aX-Injected:%20yes", "a\r\nX-Injected: yes"),
        ("a%0D%0AX-Injected:%20yes", "a\r\nX-Injected: yes"),
        ("a%0aX-Injected:%20yes", "a\nX-Injected: yes"),
        ("a%00b", "a\0b"),
        ("a%250d%250aX-Injected:%2520yes", "a%0d%0aX-Injected:%20yes"),
        ("a%E5%BC%A0%0d%0a", "a张\r\n"),
    ];
    for (encoded, decoded) in cases {
        relay.clear();
        let before = calls(&sim, "/cgi-bin/user/get");
        let (status, headers, v) =
            get_json(&c, &sc.url(&format!("/cgi-bin/user/get?userid={encoded}"))).await;
        assert_eq!(status, 200, "{encoded}: {v}");
        assert_eq!(v["errcode"], 0, "{encoded}: {v}");
        assert_eq!(v["userid"], decoded, "{encoded}: WeCom got another value");
        assert!(
            headers.get("x-injected").is_none(),
            "{encoded}: {headers:?}"
        );
        assert_eq!(calls(&sim, "/cgi-bin/user/get"), before + 1);
        let seen = relay.seen_text();
        assert!(
            seen.contains(&format!(
                "GET /cgi-bin/user/get?userid={encoded}&access_token="
            )),
            "{encoded}: not sent as encoded:\n{seen}"
        );
        assert!(
            !injected(&seen),
            "{encoded}: header injected upstream:\n{seen}"
        );
        assert!(!has_bare_cr_or_nul(&relay.seen()), "{encoded}:\n{seen}");
    }

    // The app's own access_token is dropped whatever it holds (here not an app name: the
    // default app answers), so a CRLF in it goes nowhere.
    relay.clear();
    let (_, headers, v) = get_json(
        &c,
        &sc.url("/cgi-bin/user/get?access_token=hr-bot%0d%0aX-Injected:%20yes&userid=t"),
    )
    .await;
    assert_eq!(v["errcode"], 0, "{v}");
    assert!(headers.get("x-injected").is_none());
    assert!(
        !relay.seen_text().contains("X-Injected"),
        "{}",
        relay.seen_text()
    );

    // A raw CRLF (or bare LF) inside the request target ends the request line early: pingora's
    // 400, nothing upstream.
    for bytes in [
        &b"GET /cgi-bin/user/get?userid=a\r\nX-Injected: yes HTTP/1.1\r\nHost: sidecar\r\n\r\n"[..],
        &b"GET /cgi-bin/user/get?userid=a\nX-Injected: yes HTTP/1.1\r\nHost: sidecar\r\n\r\n"[..],
    ] {
        let before = business_calls(&sim);
        let raw = raw_exchange(addr_of(&sc.base), bytes.to_vec()).await;
        assert_refused("raw CRLF in the query", &raw, Want::Pingora(400));
        assert!(raw.header("x-injected").is_none());
        assert_eq!(business_calls(&sim), before);
    }

    // An X-Request-Id that could carry anything is not echoed; a fresh id is made instead.
    let r = c
        .get(sc.url("/cgi-bin/user/get?userid=rid"))
        .header("X-Request-Id", "abc<script>%0d%0aX-Injected: yes")
        .send()
        .await
        .unwrap();
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(rid.len(), 16, "{rid}");
    assert!(rid.bytes().all(|b| b.is_ascii_hexdigit()), "{rid}");

    still_serves(&mut sc, &sim, "encoding tricks").await;
    assert_clean_logs(&sc);
}

// ---------------------------------------------------------------------------------------------
// 6. Path traversal and odd paths
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn odd_paths_are_refused_locally_and_admin_is_not_on_the_app_port() {
    let (sim, relay, mut sc) = relayed().await;
    let addr = addr_of(&sc.base);
    let before = business_calls(&sim);
    let reloads_before = sc.metrics().await;
    assert!(!reloads_before.contains("wecom_config_reloads_total{"));

    // Under /cgi-bin/ but not a plain API path: HTTP 404, errcode 404, as outside it (until
    // issue 13 these got HTTP 400 with errcode 404).
    let malformed = [
        "/cgi-bin/../admin/status",
        "/cgi-bin/%2e%2e/x",
        "/cgi-bin/%2E%2E/admin/status",
        "/cgi-bin//user/get",
        "/cgi-bin/user/get/..",
        "/cgi-bin/./user/get",
        "/cgi-bin/user\\get",
        "/cgi-bin/user%2fget",
        "/cgi-bin/%75ser/get",
        "/cgi-bin/user/get%00",
        "/cgi-bin/user/get;x=1",
    ];
    // Outside /cgi-bin/ (the admin endpoints among them): HTTP 404, errcode 404.
    let outside = [
        "/admin/reload",
        "/admin/status",
        "/metrics",
        "/healthz",
        "/readyz",
        "/",
        "*",
        "/cgi-bin",
        "/CGI-BIN/user/get",
        "/cgi-bin\\user\\get",
        "//evil.example/cgi-bin/user/get",
        "/../cgi-bin/user/get",
        "/etc/passwd",
    ];
    let cases = malformed
        .iter()
        .map(|p| (p, Want::Local(404, 404)))
        .chain(outside.iter().map(|p| (p, Want::Local(404, 404))));
    for (path, want) in cases {
        for method in ["GET", "POST"] {
            let what = format!("{method} {path}");
            let raw = raw_exchange(
                addr,
                format!(
                    "{method} {path}?userid=p HTTP/1.1\r\nHost: sidecar\r\nContent-Length: 2\r\n\r\n{{}}"
                )
                .into_bytes(),
            )
            .await;
            assert_refused(&what, &raw, want);
            let body = String::from_utf8_lossy(&raw.body);
            for admin_text in ["wecom_", "fingerprint", "reloaded", "ok\n"] {
                assert!(!body.contains(admin_text), "{what}: admin answered: {body}");
            }
        }
    }
    assert_eq!(business_calls(&sim), before, "an odd path reached WeCom");
    assert!(
        relay.seen_text().lines().all(|l| !l.contains("userid=p")),
        "{}",
        relay.seen_text()
    );

    // POST /admin/reload on the app port reloaded nothing; on the admin port it does.
    assert!(!sc.metrics().await.contains("wecom_config_reloads_total{"));
    let r = client()
        .post(format!("{}/admin/reload", sc.admin))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert!(sc
        .metrics()
        .await
        .contains("wecom_config_reloads_total{result=\"ok\"} 1"));

    // An absolute-form target naming another host: refused when Host disagrees; without Host,
    // sent to the configured upstream only, with the upstream's Host.
    let raw = raw_exchange(
        addr,
        b"GET http://evil.example/cgi-bin/user/get?userid=abs HTTP/1.1\r\nHost: sidecar\r\n\r\n"
            .to_vec(),
    )
    .await;
    assert_refused("absolute-form, other Host", &raw, Want::Pingora(400));
    relay.clear();
    let raw = raw_exchange(
        addr,
        b"GET http://evil.example/cgi-bin/user/get?userid=abs HTTP/1.1\r\n\r\n".to_vec(),
    )
    .await;
    assert_eq!(raw.status, Some(200), "{}", raw.show());
    assert_eq!(raw.json()["userid"], "abs");
    let seen = relay.seen_text();
    assert!(seen.contains("GET /cgi-bin/user/get?userid=abs&"), "{seen}");
    assert!(!seen.contains("evil.example"), "{seen}");
    assert!(
        seen.contains(&format!(
            "\r\nHost: {}\r\n",
            relay.url.trim_start_matches("http://")
        )),
        "{seen}"
    );

    // Plain paths that name no API are forwarded (counted as `other`): the bare prefix and a
    // trailing slash, which `is_api_path` allows. WeCom (the simulator) answers them 404.
    for path in ["/cgi-bin/", "/cgi-bin/user/get/"] {
        let before = calls(&sim, path);
        let (status, _, v) = get_json(&client(), &sc.url(path)).await;
        assert_eq!(
            (status, v["errcode"].as_i64()),
            (404, Some(404)),
            "{path}: {v}"
        );
        assert_eq!(calls(&sim, path), before + 1, "{path}");
    }

    still_serves(&mut sc, &sim, "odd paths").await;
    assert_clean_logs(&sc);
}

// ---------------------------------------------------------------------------------------------
// 7. Unknown app, unknown API
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_app_is_refused_and_unknown_api_is_forwarded_as_other() {
    let sim = simulator().await;
    let mut sc = Sidecar::start(&sim.url(), "").await;
    sc.wait_ready().await;
    let c = client();
    let before = business_calls(&sim);
    for name in ["nobody", "", "HR-BOT", HR_SECRET, "hr-bot, ops-bot"] {
        let r = c
            .post(sc.url("/cgi-bin/message/send"))
            .header("X-WeCom-App", name)
            .json(
                &json!({"touser": "a", "msgtype": "text", "agentid": 1, "text": {"content": "x"}}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{name:?}");
        assert_eq!(r.headers()["x-sidecar-reason"], "unknown-app", "{name:?}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["errcode"], 40014, "{name:?}: {v}");
        let msg = v["errmsg"].as_str().unwrap();
        assert!(msg.contains("hr-bot") && msg.contains("ops-bot"), "{msg}");
        for secret in [HR_SECRET, OPS_SECRET] {
            assert!(!msg.contains(secret), "a secret in the answer: {msg}");
        }
    }
    assert_eq!(
        business_calls(&sim),
        before,
        "an unknown app's call reached WeCom"
    );
    assert_eq!(sim.counters().messages_delivered, 0);

    // An API the sidecar does not know is forwarded once, with the token, counted as `other`
    // (the simulator answers an API it does not implement with HTTP 404, errcode 404).
    let (status, h, v) = get_json(&c, &sc.url("/cgi-bin/no/such/api?x=1")).await;
    assert_eq!(status, 404, "{v}");
    assert!(h.get("x-sidecar-reason").is_none());
    assert_eq!(v["errcode"], 404, "{v}");
    assert_eq!(calls(&sim, "/cgi-bin/no/such/api"), 1);
    let metrics = sc.settled_metrics().await;
    assert!(
        metrics.contains("wecom_api_request_duration_seconds_count{api=\"other\",outcome=\"http_error\",upstream=\"primary\"} 1"),
        "{metrics}"
    );
    assert!(!metrics.contains("no/such"), "{metrics}");

    still_serves(&mut sc, &sim, "unknown app and API").await;
    assert_clean_logs(&sc);
}

// ---------------------------------------------------------------------------------------------
// 8. Label cardinality
// ---------------------------------------------------------------------------------------------

/// Every `name="value"` label pair in a Prometheus text exposition.
fn label_pairs(metrics: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let Some(labels) = line
            .split_once('{')
            .and_then(|(_, rest)| rest.rsplit_once('}'))
            .map(|(l, _)| l)
        else {
            continue;
        };
        let mut rest = labels;
        while let Some((name, after)) = rest.split_once("=\"") {
            let end = after.find('"').unwrap_or(after.len());
            out.push((
                name.trim_start_matches(',').to_string(),
                after[..end].to_string(),
            ));
            rest = after.get(end + 1..).unwrap_or("");
        }
    }
    out
}

/// The series in a Prometheus text exposition (name and labels, without the value).
fn series(metrics: &str) -> std::collections::BTreeSet<String> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.rsplit_once(' ').map_or(l, |(s, _)| s).to_string())
        .collect()
}

/// Sends `urls` (with an optional `X-WeCom-App`), 32 at a time; every answer must be `want`.
async fn burst(urls: Vec<String>, app: Option<String>, want: i64) {
    let c = client();
    for batch in urls.chunks(32) {
        let calls: Vec<_> = batch
            .iter()
            .map(|url| {
                let mut req = c.get(url);
                if let Some(app) = &app {
                    req = req.header("X-WeCom-App", app);
                }
                tokio::spawn(async move {
                    let r = req.send().await.unwrap();
                    r.json::<serde_json::Value>().await.unwrap()
                })
            })
            .collect();
        for call in calls {
            let v = call.await.unwrap();
            assert_eq!(v["errcode"], want, "{v}");
        }
    }
}

#[tokio::test]
async fn metric_labels_stay_bounded_under_thousands_of_distinct_paths_and_queries() {
    let sim = simulator().await;
    let mut sc = Sidecar::start(&sim.url(), "").await;
    sc.wait_ready().await;
    let unknown = |range: std::ops::Range<u32>| {
        range
            .map(|i| sc.url(&format!("/cgi-bin/x{i}/y")))
            .collect::<Vec<_>>()
    };
    let queries = |range: std::ops::Range<u32>| {
        range
            .map(|i| {
                sc.url(&format!(
                    "/cgi-bin/user/get?userid=u{i}&access_token=ghost{i}&n{i}=v{i}"
                ))
            })
            .collect::<Vec<_>>()
    };

    // A first few of each, to see which series exist once every kind of call was made.
    // (The simulator answers these unknown APIs with errcode 404.)
    burst(unknown(0..50), None, 404).await;
    burst(queries(0..50), None, 0).await;
    burst(
        vec![sc.url("/cgi-bin/user/get?userid=g")],
        Some("ghost-app-0".into()),
        40014,
    )
    .await;
    let early = series(&sc.settled_metrics().await);

    burst(unknown(50..3000), None, 404).await;
    burst(queries(50..3000), None, 0).await;
    for i in 1..100 {
        burst(
            vec![sc.url(&format!("/cgi-bin/user/get?userid=g{i}"))],
            Some(format!("ghost-app-{i}")),
            40014,
        )
        .await;
    }
    assert_eq!(calls(&sim, "/cgi-bin/x2999/y"), 1);
    assert_eq!(calls(&sim, "/cgi-bin/user/get"), 3000);

    let metrics = sc.settled_metrics().await;
    let added: Vec<String> = series(&metrics).difference(&early).cloned().collect();
    assert!(
        added.is_empty(),
        "6,000 more distinct calls added series: {added:#?}"
    );
    let pairs = label_pairs(&metrics);
    assert!(!pairs.is_empty());
    let mut apis: Vec<&str> = pairs
        .iter()
        .filter(|(n, _)| n == "api")
        .map(|(_, v)| v.as_str())
        .collect();
    apis.sort_unstable();
    apis.dedup();
    let known: Vec<&str> = wecom_sidecar::wecom::apis::APIS
        .iter()
        .map(|a| a.name)
        .collect();
    for api in &apis {
        assert!(
            *api == "other" || known.contains(api),
            "api label {api:?} is neither a built-in API nor `other`"
        );
    }
    assert!(
        apis.contains(&"other") && apis.contains(&"user/get"),
        "{apis:?}"
    );
    assert!(apis.len() <= 4, "{} api label values: {apis:?}", apis.len());
    for (name, value) in &pairs {
        if name == "app" {
            assert!(
                ["hr-bot", "ops-bot", "robot"].contains(&value.as_str()),
                "app label {value:?}"
            );
        }
        for varying in ["x1", "/y", "ghost", "u1", "n1", "v1"] {
            assert!(
                !value.contains(varying),
                "label {name}={value:?} holds a value from the request"
            );
        }
    }
    let status = sc.status().await;
    assert!(
        !status.contains("ghost") && !status.contains("x2999"),
        "{status}"
    );

    still_serves(&mut sc, &sim, "6,000 distinct calls").await;
    assert_clean_logs(&sc);
}
