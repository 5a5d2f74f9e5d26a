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

/// The upstream answer head `head` parsed, a call with request id `id`, and no secrets.
fn parsed(
    head: &str,
    id: &'static str,
) -> (
    crate::upstream::h1::head::ResponseHead,
    super::super::RequestCtx,
    CallRedaction,
) {
    let bytes = bytes::Bytes::from(head.to_owned());
    let (up, _) = crate::upstream::h1::head::parse(&bytes).unwrap().unwrap();
    let ctx = super::super::RequestCtx::new(http::HeaderValue::from_static(id), None);
    (up, ctx, CallRedaction::new(None, None))
}

/// The app-facing header of an upstream answer with `head` (its head bytes), for a body of
/// `body_len` bytes (`None`: streamed).
fn app_header(head: &str, body_len: Option<usize>) -> http::HeaderMap {
    let (mut up, ctx, none) = parsed(head, "rid-1");
    let declared: Vec<_> = up
        .headers
        .get_all("content-length")
        .iter()
        .cloned()
        .collect();
    let header = super::header_from_upstream(&mut up, &ctx, body_len, &none);
    assert!(
        up.headers.is_empty(),
        "the upstream's map is taken, not copied"
    );
    // The upstream's one length, when it says the length written, is passed on as it is: the
    // same bytes, not a new value.
    if let ([one], Some(len)) = (&declared[..], body_len) {
        if one.as_bytes() == len.to_string().as_bytes() {
            let written = header.headers.get("content-length").unwrap();
            assert_eq!(
                written.as_bytes().as_ptr(),
                one.as_bytes().as_ptr(),
                "a new value"
            );
        }
    }
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

/// The bytes of `answer` as written on a kept connection.
fn wired(mut answer: super::Answer, no_body: bool) -> String {
    String::from_utf8(super::wire(&mut answer, no_body).to_vec()).unwrap()
}

fn upstream_answer(head: &str, body: &'static str) -> super::Answer {
    let (mut up, ctx, none) = parsed(head, "rid-2");
    let header = super::header_from_upstream(&mut up, &ctx, Some(body.len()), &none);
    super::Answer {
        header: Box::new(header),
        body: bytes::Bytes::from_static(body.as_bytes()),
    }
}

/// The header lines of a written answer (between the status line and the blank line).
fn lines(wire: &str) -> Vec<&str> {
    let head = wire.split("\r\n\r\n").next().unwrap();
    head.split("\r\n").skip(1).collect()
}

#[test]
fn a_whole_answer_is_one_buffer_with_its_own_date_and_keep_alive() {
    let a = upstream_answer(
        "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Type: application/json\r\n\
         Content-Length: 11\r\nConnection: keep-alive\r\nError-Code: 0\r\n\r\n",
        r#"{"errcode":0}"#,
    );
    // The body was rewritten to 13 bytes: the header says so. Names are written as pingora
    // writes a header without a case map: standard ones titled, others in lower case.
    let w = wired(a, false);
    assert!(w.starts_with("HTTP/1.1 200 OK\r\n"), "{w}");
    assert!(w.ends_with("\r\n\r\n{\"errcode\":0}"), "{w}");
    let l = lines(&w);
    for want in [
        "Content-Type: application/json",
        "Content-Length: 13",
        "error-code: 0",
        "x-request-id: rid-2",
        "Connection: keep-alive",
    ] {
        assert_eq!(l.iter().filter(|x| **x == want).count(), 1, "{want} in {w}");
    }
    let dates: Vec<_> = l.iter().filter(|x| x.starts_with("Date: ")).collect();
    assert_eq!(dates.len(), 1, "{w}");
    assert_ne!(
        *dates[0], "Date: Sun, 06 Nov 1994 08:49:37 GMT",
        "the upstream's date"
    );
    assert_eq!(l.len(), 6, "{w}");
}

#[test]
fn a_local_answer_is_written_with_its_reason_and_request_id() {
    let mut ctx = super::super::RequestCtx::new(http::HeaderValue::from_static("rid-3"), None);
    let answer = crate::wecom::answer::LocalAnswer::new(
        429,
        crate::wecom::answer::Reason::Quota,
        45009,
        "over the quota",
    );
    let a = super::local(&mut ctx, answer);
    assert_eq!(ctx.status, 429);
    assert_eq!(ctx.errcode, Some(45009));
    let body = a.body.clone();
    assert!(super::writes_whole(&a));
    let w = wired(a, false);
    assert!(w.starts_with("HTTP/1.1 429 Too Many Requests\r\n"), "{w}");
    let l = lines(&w);
    assert!(l.contains(&"X-Sidecar-Reason: quota"), "{w}");
    assert!(l.contains(&"X-Request-Id: rid-3"), "{w}");
    assert!(
        l.contains(&format!("Content-Length: {}", body.len()).as_str()),
        "{w}"
    );
    assert!(w.ends_with(std::str::from_utf8(&body).unwrap()), "{w}");
}

#[test]
fn no_body_goes_out_after_a_head_request_a_204_or_a_304() {
    let a = upstream_answer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", "{}");
    let w = wired(a, true);
    assert!(w.ends_with("\r\n\r\n"), "{w}");
    assert!(lines(&w).contains(&"Content-Length: 2"), "{w}");
    for status in ["204 No Content", "304 Not Modified"] {
        let a = upstream_answer(&format!("HTTP/1.1 {status}\r\n\r\n"), "");
        let w = wired(a, false);
        assert!(w.starts_with(&format!("HTTP/1.1 {status}\r\n")), "{w}");
        assert!(w.ends_with("\r\n\r\n"), "{w}");
    }
}

#[test]
fn only_an_answer_whose_one_length_is_its_body_s_is_written_whole() {
    let ok = upstream_answer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", "{}");
    assert!(super::writes_whole(&ok));
    let mut wrong = upstream_answer("HTTP/1.1 200 OK\r\n\r\n", "{}");
    let _ = wrong.header.insert_header("Content-Length", "3");
    assert!(!super::writes_whole(&wrong));
    let mut none = upstream_answer("HTTP/1.1 200 OK\r\n\r\n", "{}");
    let _ = none.header.remove_header("Content-Length");
    assert!(!super::writes_whole(&none));
    let mut two = upstream_answer("HTTP/1.1 200 OK\r\n\r\n", "{}");
    let _ = two.header.append_header("Content-Length", "2");
    assert!(!super::writes_whole(&two));
    let mut chunked = upstream_answer("HTTP/1.1 200 OK\r\n\r\n", "{}");
    let _ = chunked.header.insert_header("Transfer-Encoding", "chunked");
    assert!(!super::writes_whole(&chunked));
    let interim = upstream_answer("HTTP/1.1 103 Early Hints\r\nContent-Length: 0\r\n\r\n", "");
    assert!(!super::writes_whole(&interim));
}

/// A 413 for the call on `session`, as the pipeline makes it.
fn too_large(ctx: &mut super::super::RequestCtx) -> super::Answer {
    use super::super::refusal::Refusal;
    super::local(ctx, Refusal::TooLarge { limit: 2 }.answer())
}

fn ctx() -> super::super::RequestCtx {
    super::super::RequestCtx::new(http::HeaderValue::from_static("rid-4"), None)
}

/// `finish`'s end, or a failure if it waits (here: for a body the client never sends).
async fn finished(finish: impl std::future::Future<Output = super::After>) -> super::After {
    tokio::time::timeout(std::time::Duration::from_secs(10), finish)
        .await
        .expect("finish waited for the request body instead of answering")
}

/// An answer before the body was read hands the session over to linger in, unless reading
/// the body already failed; either way the answer is out, saying `Connection: close`.
#[tokio::test]
async fn an_answer_before_the_body_lingers_unless_the_body_broke() {
    use tokio::io::AsyncReadExt;
    for reads_on in [true, false] {
        let (session, mut client) = crate::linger::tests::pair().await;
        let mut ctx = ctx();
        let answer = too_large(&mut ctx);
        let after = finished(super::finish(
            Box::new(session),
            Some(answer),
            reads_on,
            &mut ctx,
        ))
        .await;
        match (&after, reads_on) {
            (super::After::Linger(_), true) | (super::After::Closed, false) => {}
            _ => panic!("reads_on {reads_on}: not the expected end of the connection"),
        }
        drop(after);
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.unwrap();
        let out = String::from_utf8_lossy(&out);
        assert!(out.starts_with("HTTP/1.1 413 "), "{out}");
        assert!(out.contains("Connection: close\r\n"), "{out}");
    }
}

/// A whole answer to a request without a body keeps the connection, and the app reads it.
#[tokio::test]
async fn a_whole_answer_after_the_whole_request_keeps_the_connection() {
    use tokio::io::AsyncReadExt;
    let (session, mut client) =
        crate::linger::tests::session_pair("GET /x HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut ctx = ctx();
    let answer = too_large(&mut ctx);
    let after = finished(super::finish(
        Box::new(session),
        Some(answer),
        true,
        &mut ctx,
    ))
    .await;
    assert!(matches!(after, super::After::Reuse(_)), "not kept");
    let mut out = vec![0u8; 4096];
    let n = client.read(&mut out).await.unwrap();
    let out = String::from_utf8_lossy(&out[..n]);
    assert!(out.starts_with("HTTP/1.1 413 "), "{out}");
    assert!(out.contains("Connection: keep-alive\r\n"), "{out}");
    assert!(ctx.detail.is_none(), "{:?}", ctx.detail);
}
