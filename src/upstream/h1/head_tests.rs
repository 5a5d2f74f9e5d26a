use super::*;
use crate::upstream::h1::wire::tests::{wire, Script};

fn parsed(text: &str) -> ResponseHead {
    let buf = Bytes::copy_from_slice(text.as_bytes());
    let (head, len) = parse(&buf).unwrap().expect("complete");
    assert_eq!(len, text.find("\r\n\r\n").unwrap() + 4);
    head
}

fn refused(text: &str) {
    let buf = Bytes::copy_from_slice(text.as_bytes());
    assert_eq!(
        parse(&buf).err(),
        Some(AttemptError::BadResponse("InvalidHTTPHeader")),
        "{text:?}"
    );
}

fn framing_of(text: &str) -> Framing {
    parsed(text).framing(false)
}

#[test]
fn a_head_gives_its_status_version_headers_and_length() {
    let text = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Up: a\r\nx-up: b\r\n\
                Content-Length: 2\r\n\r\n{}";
    let buf = Bytes::copy_from_slice(text.as_bytes());
    let (head, len) = parse(&buf).unwrap().unwrap();
    assert_eq!(len, text.len() - 2);
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.version, Version::HTTP_11);
    assert_eq!(head.headers["content-type"], "application/json");
    let ups: Vec<_> = head.headers.get_all("x-up").iter().collect();
    assert_eq!(ups, ["a", "b"], "repeated fields kept, in order");
    assert_eq!(head.framing(false), Framing::Length(2));
    // Values are the bytes read, not copies.
    let value = head.headers["x-up"].as_bytes().as_ptr();
    assert!(buf.as_ptr_range().contains(&value));
    assert_eq!(
        parsed("HTTP/1.0 404 Not Found\r\n\r\n").version,
        Version::HTTP_10
    );
}

#[test]
fn an_incomplete_head_waits_and_an_invalid_one_is_refused() {
    for partial in ["", "HTTP/1.1 200", "HTTP/1.1 200 OK\r\nX-A: b\r\n"] {
        let buf = Bytes::copy_from_slice(partial.as_bytes());
        assert!(parse(&buf).unwrap().is_none(), "{partial:?}");
    }
    refused("HTTP/1.1 2x0 OK\r\n\r\n");
    refused("HTTP/2 200 OK\r\n\r\n");
    refused("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n");
    refused("HTTP/1.1 200 OK\r\nX-A: a\x01b\r\n\r\n");
    refused("HTTP/1.1 099 Low\r\n\r\n");
    assert_eq!(parsed("HTTP/1.1 600 Odd\r\n\r\n").status.as_u16(), 600);
    let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
    refused(&format!("HTTP/1.1 200 OK\r\n{many}\r\n"));
    let most: String = (0..MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
    assert_eq!(
        parsed(&format!("HTTP/1.1 200 OK\r\n{most}\r\n"))
            .headers
            .len(),
        MAX_HEADERS
    );
}

#[test]
fn the_raw_head_is_kept_when_every_value_is_a_slice_of_it() {
    let text = "HTTP/1.1 200 OK\r\nX-A: 1\r\nServer: s\r\n\r\n";
    let buf = Bytes::copy_from_slice(format!("{text}next").as_bytes());
    let (head, _) = parse(&buf).unwrap().unwrap();
    assert_eq!(
        head.raw.as_deref(),
        Some(text.as_bytes()),
        "the head, not what follows"
    );
}

#[test]
fn lenient_answers_pingora_reads_are_read_the_same() {
    // Space before the colon.
    assert_eq!(
        parsed("HTTP/1.1 200 OK\r\nX-A : b\r\n\r\n").headers["x-a"],
        "b"
    );
    // An obsolete line folding becomes one space.
    let head = parsed("HTTP/1.1 200 OK\r\nX-Fold: one\r\n  two\r\n\tthree\r\nX-B: c\r\n\r\n");
    assert_eq!(head.headers["x-fold"], "one two three");
    assert_eq!(head.headers["x-b"], "c");
    assert!(
        head.raw.is_none(),
        "a folded value is not a slice of the head"
    );
    assert_eq!(
        unfold(b"a\r\n \r\n b"),
        b"a b",
        "an empty continuation adds nothing"
    );
    assert_eq!(
        unfold(b"a\rb\r\n c"),
        b"a b c",
        "a stray CR becomes a space"
    );
}

#[test]
fn content_length_items_that_agree_collapse_and_any_other_is_refused() {
    let with = |cl: &str| format!("HTTP/1.1 200 OK\r\n{cl}\r\n\r\n");
    assert_eq!(
        framing_of(&with("Content-Length: 5, 5")),
        Framing::Length(5)
    );
    assert_eq!(
        framing_of(&with("Content-Length: 5\r\nContent-Length: 5")),
        Framing::Length(5)
    );
    assert_eq!(framing_of(&with("Content-Length: 0")), Framing::Length(0));
    assert_eq!(
        framing_of(&with("Content-Length: 18446744073709551615")),
        Framing::Length(u64::MAX)
    );
    for bad in [
        "Content-Length: 5, 6",
        "Content-Length: 5\r\nContent-Length: 6",
        "Content-Length: 6\r\nContent-Length: 5, 5",
        "Content-Length: -1",
        "Content-Length: +5",
        "Content-Length: 5x",
        "Content-Length: ",
        "Content-Length: 5,",
        "Content-Length: 18446744073709551616",
    ] {
        refused(&with(bad));
    }
    assert_eq!(digits(b"0042"), Some(42));
    assert_eq!(digits(b"4 2"), None);
}

#[test]
fn transfer_encoding_overrides_and_drops_content_length() {
    let head = parsed("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(head.framing(false), Framing::Chunked);
    assert!(head.headers.get("content-length").is_none());
    // Even an invalid Content-Length is dropped, not refused.
    let head = parsed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: x\r\n\r\n");
    assert_eq!(head.framing(false), Framing::Chunked);
    assert!(head.headers.get("content-length").is_none());
    // A coding that is not chunked last: the body ends with the connection.
    let head = parsed("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(head.framing(false), Framing::UntilClose);
    assert!(head.headers.get("content-length").is_none());
    let te = |v: &str| framing_of(&format!("HTTP/1.1 200 OK\r\n{v}\r\n\r\n"));
    assert_eq!(te("Transfer-Encoding: gzip, Chunked "), Framing::Chunked);
    assert_eq!(te("Transfer-Encoding: chunked, gzip"), Framing::UntilClose);
    assert_eq!(
        te("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked"),
        Framing::Chunked
    );
    assert_eq!(
        te("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip"),
        Framing::UntilClose,
        "the last field decides"
    );
    // Without Transfer-Encoding the Content-Length stays in the header.
    let head = parsed("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n");
    assert_eq!(head.headers["content-length"], "3");
}

#[test]
fn bodiless_answers_and_answers_to_head_have_no_body() {
    assert_eq!(framing_of("HTTP/1.1 200 OK\r\n\r\n"), Framing::UntilClose);
    for status in [204, 304] {
        let text = format!("HTTP/1.1 {status} X\r\nContent-Length: 9\r\n\r\n");
        assert_eq!(framing_of(&text), Framing::Length(0), "{status}");
    }
    let head = parsed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(
        head.framing(true),
        Framing::Length(0),
        "the answer to a HEAD"
    );
}

fn alive(text: &str) -> bool {
    let head = parsed(text);
    head.keeps_alive(head.framing(false), false)
}

#[test]
fn keep_alive_follows_the_version_and_the_first_connection_field() {
    let cl = "Content-Length: 0\r\n";
    assert!(alive(&format!("HTTP/1.1 200 OK\r\n{cl}\r\n")));
    assert!(!alive(&format!("HTTP/1.0 200 OK\r\n{cl}\r\n")));
    assert!(alive(&format!(
        "HTTP/1.0 200 OK\r\n{cl}Connection: Keep-Alive\r\n\r\n"
    )));
    assert!(!alive(&format!(
        "HTTP/1.1 200 OK\r\n{cl}Connection: CLOSE\r\n\r\n"
    )));
    assert!(!alive(&format!(
        "HTTP/1.1 200 OK\r\n{cl}Connection: x-a, close\r\n\r\n"
    )));
    assert!(alive(&format!(
        "HTTP/1.1 200 OK\r\n{cl}Connection: x-a, keep-alive\r\n\r\n"
    )));
    assert!(
        !alive(&format!(
            "HTTP/1.0 200 OK\r\n{cl}Connection: x-a, keep-alive\r\n\r\n"
        )),
        "a list never turns keep-alive on"
    );
    assert!(
        alive(&format!(
            "HTTP/1.1 200 OK\r\n{cl}Connection: keep-alive\r\nConnection: close\r\n\r\n"
        )),
        "only the first field is read"
    );
    // A body that ends with the connection, a 101, an HTTP/1.0 Transfer-Encoding.
    assert!(!alive("HTTP/1.1 200 OK\r\n\r\n"));
    assert!(!alive(&format!("HTTP/1.1 101 Switching\r\n{cl}\r\n")));
    assert!(!alive(
        "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
    ));
    assert!(alive(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    ));
    // The request said close.
    let head = parsed(&format!(
        "HTTP/1.1 200 OK\r\n{cl}Connection: keep-alive\r\n\r\n"
    ));
    assert!(!head.keeps_alive(head.framing(false), true));
}

#[test]
fn connection_values_read_as_pingora_reads_them() {
    assert_eq!(keepalive_of(b"close"), Some(false));
    assert_eq!(keepalive_of(b"Keep-Alive"), Some(true));
    assert_eq!(keepalive_of(b"upgrade"), None);
    assert_eq!(keepalive_of(b" x-a ,close"), Some(false));
    assert_eq!(keepalive_of(b"x-a, keep-alive"), None);
    assert_eq!(
        keepalive_of(b"x-a, \xff, close"),
        None,
        "not text: says nothing"
    );
}

#[tokio::test]
async fn a_head_split_over_reads_is_read_and_what_follows_it_left_unread() {
    let text = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}extra";
    let mut w = wire(Script::bytewise(text));
    let head = read(&mut w).await.unwrap();
    assert_eq!(head.status, StatusCode::OK);
    assert!(w.unread().is_empty(), "one byte a read: none past the head");
    while w.fill(64).await.unwrap() > 0 {}
    assert_eq!(w.unread().as_ref(), b"{}extra");

    // Read whole in one go, the bytes after the head stay unread.
    let mut w = wire(Script::pieces(&[text]));
    read(&mut w).await.unwrap();
    assert_eq!(w.unread().as_ref(), b"{}extra");
}

#[tokio::test]
async fn a_connection_that_ends_before_a_whole_head_is_a_reset() {
    for text in [&b""[..], b"HTTP/1.1 200 OK\r\n"] {
        let mut w = wire(Script::pieces(&[text]));
        assert_eq!(
            read(&mut w).await.err(),
            Some(AttemptError::Reset("ConnectionClosed"))
        );
    }
}

#[tokio::test]
async fn no_more_is_read_past_the_head_size_limit() {
    let start = b"HTTP/1.1 200 OK\r\nX-Big: ";
    let end = b"\r\n\r\n";
    // Exactly at the limit without its end: one more read is still made.
    let mut at_limit = start.to_vec();
    at_limit.resize(MAX_HEAD_SIZE, b'a');
    let mut w = wire(Script::pieces(&[&at_limit, end]));
    assert!(read(&mut w).await.is_ok());
    // One byte past it: refused.
    at_limit.push(b'a');
    let mut w = wire(Script::pieces(&[&at_limit, end]));
    assert_eq!(
        read(&mut w).await.err(),
        Some(AttemptError::BadResponse("InvalidHTTPHeader"))
    );
}
