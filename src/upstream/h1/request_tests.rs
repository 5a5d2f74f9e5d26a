use super::*;
use http::header::{CONTENT_TYPE, HOST};
use http::uri::PathAndQuery;
use http::HeaderName;

fn text(head: &RequestHead) -> &str {
    std::str::from_utf8(head.bytes()).unwrap()
}

fn target(t: &'static str) -> [&'static str; 1] {
    [t]
}

#[test]
fn a_head_is_the_request_line_then_each_header_in_title_case() {
    let mut w = HeadWriter::new(&Method::POST, &target("/cgi-bin/x?a=1&b=2"), 0).unwrap();
    w.header(&HOST, b"qyapi.example:8443");
    w.header(&CONTENT_TYPE, b"application/json");
    w.header(&HeaderName::from_static("x-request-id"), b"r-1");
    w.header(&HeaderName::from_static("x--odd-"), b"v");
    w.content_length(17);
    let head = w.finish();
    assert_eq!(
        text(&head),
        "POST /cgi-bin/x?a=1&b=2 HTTP/1.1\r\nHost: qyapi.example:8443\r\n\
         Content-Type: application/json\r\nX-Request-Id: r-1\r\nX--Odd-: v\r\n\
         Content-Length: 17\r\n\r\n"
    );
    assert!(!head.no_body_answer());
    assert!(!head.asks_close());
}

#[test]
fn content_length_is_written_in_decimal() {
    for (n, s) in [
        (0, "0"),
        (7, "7"),
        (10, "10"),
        (1_234_567_890, "1234567890"),
    ] {
        let mut w = HeadWriter::new(&Method::GET, &target("/"), 0).unwrap();
        w.content_length(n);
        assert_eq!(
            text(&w.finish()),
            format!("GET / HTTP/1.1\r\nContent-Length: {s}\r\n\r\n")
        );
    }
    let mut w = HeadWriter::new(&Method::GET, &target("/"), 0).unwrap();
    w.content_length(u64::MAX);
    assert!(text(&w.finish()).contains("Content-Length: 18446744073709551615\r\n"));
}

#[test]
fn a_head_request_and_connection_close_are_noted_for_the_answer() {
    let head = HeadWriter::new(&Method::HEAD, &target("/"), 0)
        .unwrap()
        .finish();
    assert!(head.no_body_answer());
    let mut w = HeadWriter::new(&Method::GET, &target("/"), 0).unwrap();
    w.header(&CONNECTION, b"keep-alive");
    assert!(!w.finish().asks_close());
    let mut w = HeadWriter::new(&Method::GET, &target("/"), 0).unwrap();
    w.header(&CONNECTION, b"x-a, close");
    assert!(w.finish().asks_close());
    let mut w = HeadWriter::new(&Method::GET, &target("/"), 0).unwrap();
    w.header(&HeaderName::from_static("x-connection"), b"close");
    assert!(!w.finish().asks_close(), "another header saying close");
}

#[test]
fn a_body_appended_goes_after_the_head() {
    let mut head = HeadWriter::new(&Method::POST, &target("/"), 2)
        .unwrap()
        .finish();
    head.append(b"{}");
    assert_eq!(text(&head), "POST / HTTP/1.1\r\n\r\n{}");
}

#[test]
fn a_pingora_request_is_written_as_pingora_writes_it() {
    let mut req = RequestHeader::build("GET", b"/cgi-bin/gettoken?corpid=x", None).unwrap();
    req.insert_header("Host", "qyapi.example").unwrap();
    req.insert_header("user-agent", "sidecar").unwrap();
    let head = RequestHead::from_pingora(&req).unwrap();
    assert_eq!(
        text(&head),
        "GET /cgi-bin/gettoken?corpid=x HTTP/1.1\r\nHost: qyapi.example\r\nuser-agent: sidecar\r\n\r\n"
    );
    assert!(!head.no_body_answer());
    assert!(!head.asks_close());

    let mut req = RequestHeader::build("HEAD", b"/", None).unwrap();
    req.insert_header("Connection", "close").unwrap();
    let head = RequestHead::from_pingora(&req).unwrap();
    assert!(head.no_body_answer());
    assert!(head.asks_close());

    let mut req = RequestHeader::build("GET", b"/", None).unwrap();
    req.set_version(http::Version::HTTP_3);
    assert_eq!(
        RequestHead::from_pingora(&req).err(),
        Some(AttemptError::BadResponse("InvalidHTTPHeader")),
        "a version HTTP/1 cannot write"
    );
}

#[test]
fn every_byte_at_every_place_of_a_target_is_looked_at() {
    for len in 0..=20 {
        for at in 0..len {
            for b in 0..=255u8 {
                let mut t = vec![b'a'; len];
                t[at] = b;
                let each = t.iter().all(|&b| PLAIN[b as usize]);
                assert_eq!(all_plain(&t), each, "{b:#04x} at {at} of {len}");
            }
        }
        assert!(all_plain(&vec![b'a'; len]));
    }
    // Two bytes refused in one step of eight, and in two steps: each refuses the target.
    for len in 2..=20 {
        for at in 0..len - 1 {
            for far in [at + 1, len - 1].into_iter().filter(|&f| f > at) {
                let mut t = vec![b'a'; len];
                t[at] = b' ';
                t[far] = b'#';
                assert!(!all_plain(&t), "at {at} and {far} of {len}");
            }
        }
    }
}

#[test]
fn a_target_is_accepted_exactly_when_http_takes_it_whole() {
    let http_takes =
        |t: &[u8]| PathAndQuery::try_from(t).is_ok_and(|pq| pq.as_str().as_bytes() == t);
    for b in 0..=255u8 {
        for t in [
            vec![b'/', b],
            vec![b'/', b'a', b, b'b'],
            vec![b'/', b'a', b'?', b'x', b, b'y'],
            vec![b],
        ] {
            assert_eq!(is_target(&t), http_takes(&t), "{t:?}");
        }
    }
    for bad in ["/a b", "/a\r\nX: 1", "/a\0", "/a#frag", "", "/a?b=\x7f"] {
        assert!(!is_target(bad.as_bytes()), "{bad:?}");
        assert!(
            HeadWriter::new(&Method::GET, &[bad], 0).is_none(),
            "{bad:?}"
        );
    }
    let head = HeadWriter::new(&Method::GET, &["/base", "/cgi-bin/x", "?", "a=1"], 0)
        .unwrap()
        .finish();
    assert_eq!(text(&head), "GET /base/cgi-bin/x?a=1 HTTP/1.1\r\n\r\n");
}
