//! Malformed request lines and headers, and oversized headers.

use super::*;

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
    assert_eq!(raw.header(REASON), Some("gettoken"));
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
    let mut conn = Raw::connect(addr_of(&sc.base)).await;
    conn.send(
        b"POST /cgi-bin/message/send HTTP/1.1\r\nHost: sidecar\r\nTransfer-Encoding: chunked\r\n\r\n\
          zz\r\n\
          GET /cgi-bin/user/get?userid=pipelined HTTP/1.1\r\nHost: sidecar\r\n\r\n",
    )
    .await
    .unwrap();
    let raw = conn.answered().await;
    assert_refused("broken chunk size", &raw, Want::Local(400, 47001));
    assert_eq!(
        raw.header("connection"),
        Some("close"),
        "a framing error must end the connection: {}",
        raw.show()
    );
    let (_, ended) = conn.until_close().await;
    assert!(
        ended.closed(),
        "the connection stays open after a framing error; the pipelined request got no answer"
    );
    assert_eq!(calls(&sim, "/cgi-bin/message/send"), 0);
    drop(conn);
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
    assert_eq!(raw.header(REASON), None, "{}", raw.show());
    assert_eq!(
        relay.seen_text().matches("userid=many").count(),
        1,
        "a 4xx from WeCom was repeated"
    );

    still_serves(&mut sc, &sim, "oversized headers").await;
    assert_clean_logs(&sc);
}
