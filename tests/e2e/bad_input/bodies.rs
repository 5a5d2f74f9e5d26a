//! Bodies over the limit, invalid JSON bodies, and CRLF and encoding tricks in query
//! values.

use super::*;

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

fn assert_too_large(what: &str, raw: &Answer, limit: u64) {
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
    // stays open, and the 413 comes anyway: the answer waits for nothing past the limit.
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
    let mut conn = Raw::connect(addr).await;
    let mut req = head("/cgi-bin/message/send", "Content-Length: 100");
    req.extend_from_slice(br#"{"touser":"#);
    conn.send(&req).await.unwrap();
    conn.finish().await.unwrap();
    let raw = conn.answered().await;
    assert_refused("truncated body", &raw, Want::Local(400, 47001));

    // Only the calls within the limit reached WeCom.
    assert_eq!(calls(&sim, "/cgi-bin/message/send"), 1);
    assert_eq!(calls(&sim, "/cgi-bin/user/create"), 1);
    assert_eq!(calls(&sim, "/cgi-bin/media/upload"), 0);
    still_serves(&mut sc, &sim, "oversized bodies").await;
    assert_clean_logs(&sc);
}

/// A client that writes the whole of an over-the-limit body before it reads (as simple HTTP
/// clients do: Python's `http.client`, and so the SDKs built on it) reads the 413, not a
/// broken pipe or a reset: the sidecar answers at once, then reads and drops the rest of the
/// body before it closes (README "Bad input"). 16 MiB is more than the loopback socket buffers
/// hold, so each client is still writing when the answer comes; closing then, with the body
/// unread, made the kernel reset the connection under the client's writes.
#[tokio::test]
async fn a_client_that_writes_its_whole_over_the_limit_body_reads_the_413() {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sim = simulator().await;
    let mut sc = Sidecar::start(&sim.url(), "").await;
    sc.wait_ready().await;
    let addr = addr_of(&sc.base);
    let big = vec![b' '; 16 * 1024 * 1024];
    let head = |framing: &str| {
        format!(
            "POST /cgi-bin/message/send HTTP/1.1\r\nHost: sidecar\r\n\
             Content-Type: application/json\r\n{framing}\r\n\r\n"
        )
        .into_bytes()
    };
    let mut declared = head(&format!("Content-Length: {}", big.len()));
    declared.extend_from_slice(&big);
    let mut chunked_req = head("Transfer-Encoding: chunked");
    chunked_req.extend(chunked(&big));
    for (what, request) in [
        ("declared, 1", &declared),
        ("declared, 2", &declared),
        ("declared, 3", &declared),
        ("chunked", &chunked_req),
    ] {
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        // Everything first, as such a client does; then the answer, to the close.
        let written = tokio::time::timeout(Duration::from_secs(30), conn.write_all(request))
            .await
            .unwrap_or_else(|_| panic!("{what}: writing the body hung"));
        assert!(
            written.is_ok(),
            "{what}: the connection was cut under the body: {written:?}"
        );
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(30), conn.read_to_end(&mut answer))
            .await
            .unwrap_or_else(|_| panic!("{what}: no close after the answer"));
        assert!(read.is_ok(), "{what}: the answer was lost: {read:?}");
        let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
        assert!(text.starts_with("http/1.1 413 "), "{what}: {text}");
        assert!(text.contains("\r\nconnection: close\r\n"), "{what}: {text}");
        assert!(text.contains(r#""errcode":47001"#), "{what}: {text}");
    }
    // And through an HTTP client library. (reqwest, over hyper, reads an early answer while it
    // still writes, so this part passed without the lingering close too; the raw client above
    // is the check.)
    let r = client()
        .post(sc.url("/cgi-bin/message/send"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap_or_else(|e| panic!("reqwest: the answer was lost: {e:?}"));
    assert_eq!(r.status(), 413);
    assert_eq!(calls(&sim, "/cgi-bin/message/send"), 0);
    still_serves(&mut sc, &sim, "bodies read and dropped after their 413").await;
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
