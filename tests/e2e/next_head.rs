//! The next request on a kept-alive connection: the sidecar reads its first bytes itself
//! between calls (no peek) and hands them to the session as the start of the head. These
//! check that nothing read that way is lost or parsed twice, whatever the head's size and
//! however it arrives, and that `client.header_timeout` still counts from a later request's
//! first byte, not from the end of the call before.

use std::time::Duration;

use crate::harness::*;

fn get(userid: &str, extra: &str) -> Vec<u8> {
    format!("GET /cgi-bin/user/get?userid={userid} HTTP/1.1\r\nHost: s\r\n{extra}\r\n").into_bytes()
}

/// Headers that make a head of several KB (far more than one read between calls takes).
fn padding(n: usize) -> String {
    (0..n)
        .map(|i| format!("X-Pad-{i}: {}\r\n", "p".repeat(60)))
        .collect()
}

/// A long head arriving in pieces after a call, then a short one, then one whose first byte
/// alone comes before a pause: each is answered once, in order, on the same connection.
#[tokio::test]
async fn a_later_head_of_any_size_and_in_any_pieces_is_answered_whole() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), "").await;
    sc.wait_ready().await;
    let mut conn = Raw::connect(addr_of(&sc.base)).await;

    conn.send(&get("first", "")).await.unwrap();
    let a = conn.answer().await;
    assert_eq!(a.status, Some(200), "{}", a.show());

    // 50 headers of ~70 bytes: ~3.5 KB, sent as 20 bytes, then the rest.
    let long = get("long", &padding(50));
    assert!(long.len() > 3000);
    conn.send(&long[..20]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    conn.send(&long[20..]).await.unwrap();
    let a = conn.answer().await;
    assert_eq!(a.status, Some(200), "{}", a.show());
    assert_eq!(a.json()["userid"], "long", "{}", a.show());

    conn.send(&get("short", "")).await.unwrap();
    let a = conn.answer().await;
    assert_eq!(a.json()["userid"], "short", "{}", a.show());

    // One byte, a pause, the rest.
    let split = get("split", "");
    conn.send(&split[..1]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    conn.send(&split[1..]).await.unwrap();
    let a = conn.answer().await;
    assert_eq!(a.json()["userid"], "split", "{}", a.show());

    assert_eq!(
        calls(&sim, "/cgi-bin/user/get"),
        4,
        "each call reached WeCom once"
    );
}

/// `header_timeout` bounds a later head from its first byte: a connection idle longer than
/// it (within `idle_timeout`) is still served, and a head that starts, then stalls, is cut.
#[tokio::test]
async fn header_timeout_counts_from_a_later_heads_first_byte() {
    let sim = simulator().await;
    let client = "client:\n  header_timeout: 1s\n  idle_timeout: 10s\n";
    let sc = Sidecar::start(&sim.url(), client).await;
    sc.wait_ready().await;
    let mut conn = Raw::connect(addr_of(&sc.base)).await;
    conn.send(&get("a", "")).await.unwrap();
    assert_eq!(conn.answer().await.status, Some(200));

    // Idle for longer than header_timeout, then a whole head: answered.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    conn.send(&get("b", "")).await.unwrap();
    let a = conn.answer().await;
    assert_eq!(a.json()["userid"], "b", "{}", a.show());

    // Its first bytes, then nothing: cut at header_timeout, well before idle_timeout.
    conn.send(b"GET /cgi-bin/user/get?userid=c HTTP/1.1\r\n")
        .await
        .unwrap();
    let (_, end) = conn.until_close().await;
    assert!(end.closed(), "{end:?}");
    let metrics = sc.settled_metrics().await;
    assert_eq!(
        metrics.sum(
            "wecom_app_connections_closed_total",
            &[("reason", "header_timeout")]
        ),
        1.0,
        "{metrics}"
    );
}

/// An answer to `HEAD` on a kept connection carries its header and no body (the sidecar writes
/// whole answers itself there): the answer to a request pipelined after it starts right after
/// the header's blank line, and the connection is still served.
#[tokio::test]
async fn an_answer_to_head_has_no_body_and_the_next_request_is_answered() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), "").await;
    sc.wait_ready().await;
    let mut conn = Raw::connect(addr_of(&sc.base)).await;
    let mut both = b"HEAD /cgi-bin/user/get?userid=head HTTP/1.1\r\nHost: s\r\n\r\n".to_vec();
    both.extend(get("after", "Connection: close\r\n"));
    conn.send(&both).await.unwrap();
    let (bytes, end) = conn.until_close().await;
    assert!(end.closed(), "the second answer closes the connection");
    let text = String::from_utf8_lossy(&bytes);
    let (head, rest) = text.split_once("\r\n\r\n").expect("an answer head");
    assert!(head.starts_with("HTTP/1.1 405 "), "{text}");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("the header says the body it would have")
        .parse()
        .unwrap();
    assert!(length > 0, "{text}");
    assert!(head.contains("\r\nConnection: keep-alive"), "{text}");
    assert!(
        rest.starts_with("HTTP/1.1 200 "),
        "a body followed HEAD's header: {text}"
    );
    assert!(rest.contains("\"userid\":\"after\""), "{text}");
    assert_eq!(calls(&sim, "/cgi-bin/user/get"), 1, "HEAD reached WeCom");
}
