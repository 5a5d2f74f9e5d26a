//! The app-facing Content-Length: the upstream's value is kept only when it says exactly what
//! the sidecar would write.

use super::says;

#[test]
fn a_content_length_is_kept_only_when_written_as_the_sidecar_writes_it() {
    let v = |s: &str| http::HeaderValue::from_str(s).unwrap();
    for (value, len) in [("0", 0), ("7", 7), ("10", 10), ("1234567", 1_234_567)] {
        assert!(says(&v(value), len), "{value}");
        assert_eq!(v(value), http::HeaderValue::from(len), "{value}");
    }
    assert!(says(&v(&usize::MAX.to_string()), usize::MAX));
    for (value, len) in [
        ("07", 7),
        ("+7", 7),
        (" 7", 7),
        ("7 ", 7),
        ("8", 7),
        ("", 0),
        ("70", 7),
    ] {
        assert!(!says(&v(value), len), "{value:?}");
    }
}

/// The app-facing header of an upstream answer with `head` (its head bytes), for a body of
/// `body_len` bytes (`None`: streamed).
fn app_header(head: &str, body_len: Option<usize>) -> http::HeaderMap {
    let bytes = bytes::Bytes::from(head.to_owned());
    let (mut up, _) = crate::upstream::h1::head::parse(&bytes).unwrap().unwrap();
    let ctx = super::super::RequestCtx::new(http::HeaderValue::from_static("rid-1"), None);
    let none = CallRedaction::new(None, None);
    let header = super::header_from_upstream(&mut up, &ctx, body_len, &none);
    assert!(
        up.headers.is_empty(),
        "the upstream's map is taken, not copied"
    );
    header.headers.clone()
}

fn values<'a>(h: &'a http::HeaderMap, name: &str) -> Vec<&'a str> {
    h.get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

use crate::redact::CallRedaction;

#[test]
fn an_upstream_header_loses_its_hop_by_hop_fields_and_keeps_the_rest_in_order() {
    let h = app_header(
        "HTTP/1.1 200 OK\r\nServer: wecom\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\
         Content-Length: 2\r\nKeep-Alive: timeout=5\r\nX-Keep: a\r\nX-Keep: b\r\n\r\n",
        Some(2),
    );
    let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["content-length", "server", "x-keep", "x-request-id"]
    );
    assert_eq!(values(&h, "x-keep"), ["a", "b"]);
    assert_eq!(values(&h, "content-length"), ["2"]);
    assert_eq!(values(&h, "x-request-id"), ["rid-1"]);
}

#[test]
fn the_app_gets_one_content_length_that_describes_the_body_written() {
    let twice = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\nContent-Length: 2\r\n\r\n";
    // Buffered: the length of the body as written, once.
    assert_eq!(values(&app_header(twice, Some(2)), "content-length"), ["2"]);
    assert_eq!(values(&app_header(twice, Some(9)), "content-length"), ["9"]);
    let once = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n";
    assert_eq!(values(&app_header(once, Some(2)), "content-length"), ["2"]);
    // Redaction changed the body's length.
    assert_eq!(
        values(&app_header(once, Some(11)), "content-length"),
        ["11"]
    );
    let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(
        values(&app_header(chunked, Some(0)), "content-length"),
        ["0"]
    );
    assert!(values(&app_header(chunked, Some(0)), "transfer-encoding").is_empty());
    // Streamed: the upstream's length, once, or none.
    assert_eq!(values(&app_header(twice, None), "content-length"), ["2"]);
    assert_eq!(values(&app_header(once, None), "content-length"), ["2"]);
    assert!(values(&app_header(chunked, None), "content-length").is_empty());
}
