//! What is not WeCom's push is answered (403, 400, 404, 405, 413), counted by its result and
//! never delivered.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

#[tokio::test]
async fn each_rejection_is_answered_counted_and_never_delivered() {
    let f = Flow::start(Timing::default()).await;
    let xml = text_message(1);

    // A bad signature.
    let (query, body) = f.wecom.push(&xml);
    let forged = query.replacen("msg_signature=", "msg_signature=0", 1);
    assert_eq!(f.post(&forged, body.clone()).await.0, 403);
    // No signature at all.
    assert_eq!(f.post("timestamp=1&nonce=2", body).await.0, 403);

    // Another corp's push, signed with the right token and key.
    let other = CallbackCrypto::new(CB_TOKEN, CB_AES_KEY, "wwsomeoneelse0001").unwrap();
    let encrypted = other.encrypt(xml.as_bytes(), rand::random());
    let sig = other.signature("1700000000", "5", &encrypted);
    let q = format!("msg_signature={sig}&timestamp=1700000000&nonce=5");
    assert_eq!(f.post(&q, envelope(&encrypted)).await.0, 403);

    // Signed, but not decryptable (not whole blocks).
    let junk = "AAAAAAAAAAAAAAAAAAAAAAA=";
    let sig = f.wecom.crypto.signature("1700000000", "6", junk);
    let q = format!("msg_signature={sig}&timestamp=1700000000&nonce=6");
    assert_eq!(f.post(&q, envelope(junk)).await.0, 403);

    // Broken XML, and a body cut short inside the envelope.
    let (query, body) = f.wecom.push(&xml);
    assert_eq!(f.post(&query, "<xml><Encrypt>".into()).await.0, 400);
    assert_eq!(
        f.post(&query, body[..body.len() / 2].to_string()).await.0,
        400
    );

    // Over 1 MiB, announced, and then one that does not say its length (chunked).
    let big = format!(
        "<xml><Encrypt>{}</Encrypt></xml>",
        "A".repeat(1024 * 1024 + 1)
    );
    assert_eq!(f.post(&query, big.clone()).await.0, 413);
    let chunks = futures_stream(big.into_bytes());
    let r = client()
        .post(format!("{}?{query}", f.cb))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .expect("refused while reading: the sender reads the 413");
    assert_eq!(r.status().as_u16(), 413);
    // 16 MiB announced, more than the loopback socket buffers hold: the sender is still writing
    // when the 413 comes, and reads it (the rest is read and dropped before the close).
    let huge = format!(
        "<xml><Encrypt>{}</Encrypt></xml>",
        "A".repeat(16 * 1024 * 1024)
    );
    assert_eq!(f.post(&query, huge).await.0, 413);

    // A body that stops before its Content-Length: the sidecar gets no whole request.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", f.cb_port))
        .await
        .unwrap();
    let head = format!(
        "POST {PATH}?{query} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body.as_bytes()[..body.len() / 2])
        .await
        .unwrap();
    s.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest).await;

    // An unknown path, and a method WeCom never uses.
    let r = client()
        .post(format!(
            "http://127.0.0.1:{}/callback/nobody?{query}",
            f.cb_port
        ))
        .body(f.wecom.push(&xml).1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = client()
        .put(format!("{}?{query}", f.cb))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(r.headers()["allow"], "GET, POST");

    let counted = eventually(Duration::from_secs(5), async || {
        let m = f.sc.metrics().await;
        let c = |app: &str, result: &str| {
            m.sum("wecom_callbacks_total", &[("app", app), ("result", result)])
        };
        c("hr-bot", "bad-signature") == 2.0
            && c("hr-bot", "wrong-receiver") == 1.0
            && c("hr-bot", "undecryptable") == 1.0
            && c("hr-bot", "malformed") == 3.0
            && c("hr-bot", "too-large") == 3.0
            && c("-", "unknown-path") == 1.0
            && c("", "unknown-path") == 0.0
    })
    .await;
    assert!(counted, "{}", f.sc.metrics().await);

    // Then one good push: the queue is in arrival order, so anything refused above that had
    // been stored would reach the app before it. It is the first thing the app gets.
    assert_eq!(f.push(&text_message(2)).await.0, 200);
    let got = f.delivered(1).await;
    assert_eq!(got[0].body_text(), text_message(2), "{got:?}");
    assert_eq!(
        f.sc.metrics()
            .await
            .sum("wecom_callbacks_total", &[("result", "accepted")]),
        1.0
    );
}

/// `bytes` as a stream of 64 KiB chunks (a body without Content-Length).
fn futures_stream(
    bytes: Vec<u8>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    futures_util::stream::iter(chunks)
}
