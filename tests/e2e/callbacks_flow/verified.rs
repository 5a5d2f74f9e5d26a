//! What WeCom sends in good order: the URL verification, and pushes delivered once each, in
//! order, with the headers SPEC lists.

use super::*;

#[tokio::test]
async fn url_verification_answers_the_bare_decrypted_echostr() {
    let f = Flow::start(Timing::default()).await;
    let echo = "1616140317555161061";
    // Random bytes make `+`, `/` and `=` likely; WeCom percent-encodes them in the query.
    let mut checked_plus = false;
    for _ in 0..20 {
        let encrypted = f.wecom.crypto.encrypt(echo.as_bytes(), rand::random());
        let sig = f
            .wecom
            .crypto
            .signature("1409659589", "263014780", &encrypted);
        let q = format!(
            "msg_signature={sig}&timestamp=1409659589&nonce=263014780&echostr={}",
            encrypted
                .replace('+', "%2B")
                .replace('/', "%2F")
                .replace('=', "%3D")
        );
        checked_plus |= encrypted.contains('+');
        let r = client().get(format!("{}?{q}", f.cb)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        assert_eq!(
            r.text().await.unwrap(),
            echo,
            "the bare echostr, nothing around it"
        );
    }
    assert!(checked_plus, "twenty ciphertexts without a +");
    // A wrong signature is refused and nothing is shown.
    let encrypted = f.wecom.crypto.encrypt(echo.as_bytes(), rand::random());
    let q = format!(
        "msg_signature={}&timestamp=1&nonce=2&echostr={}",
        "0".repeat(40),
        encrypted
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D")
    );
    let r = client().get(format!("{}?{q}", f.cb)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(!r.text().await.unwrap().contains(echo));
    assert_eq!(f.callbacks("hr-bot", "verified").await, 20.0);
    assert_eq!(f.callbacks("hr-bot", "bad-signature").await, 1.0);
    assert!(f.app.got().is_empty(), "a verification is not delivered");
}

#[tokio::test]
async fn a_push_is_delivered_with_its_headers_and_xml() {
    let f = Flow::start(Timing::default()).await;
    let (status, body) = f.push(&text_message(1)).await;
    assert_eq!((status, body.as_str()), (200, ""), "an empty 200 at once");
    let (status, _) = f.push(&click_event()).await;
    assert_eq!(status, 200);
    let got = f.delivered(2).await;
    let text = &got[0];
    assert_eq!(text.path, "/wecom/events");
    assert_eq!(
        text.body_text(),
        text_message(1),
        "the decrypted XML, as WeCom wrote it"
    );
    assert_eq!(text.header("content-type"), Some("application/xml"));
    assert_eq!(text.header("x-wecom-app"), Some("hr-bot"));
    assert_eq!(text.header("x-wecom-msgtype"), Some("text"));
    assert_eq!(text.header("x-wecom-event"), None);
    assert_eq!(text.header("x-wecom-attempt"), Some("1"));
    let id = text.header("x-wecom-callback-id").unwrap();
    assert_eq!(id.len(), 32, "hex of 16 bytes: {id}");
    let event = &got[1];
    assert_eq!(event.body_text(), click_event());
    assert_eq!(event.header("x-wecom-msgtype"), Some("event"));
    assert_eq!(event.header("x-wecom-event"), Some("click"));
    assert_ne!(event.header("x-wecom-callback-id"), Some(id));
    f.deliveries("delivered", 2.0).await;
    let m = f.sc.metrics().await;
    assert_eq!(
        m.sum(
            "wecom_callbacks_total",
            &[("app", "hr-bot"), ("result", "accepted")]
        ),
        2.0
    );
    assert_eq!(
        m.sum(
            "wecom_callback_delivery_seconds_count",
            &[("app", "hr-bot")]
        ),
        2.0
    );
    let depth_zero = eventually(Duration::from_secs(5), async || {
        f.sc.metrics()
            .await
            .value("wecom_callback_queue_depth", &[("app", "hr-bot")])
            == Some(0.0)
    })
    .await;
    assert!(depth_zero, "the queue depth gauge goes back to 0");
    let log = f.sc.logs();
    assert!(
        log.lines()
            .any(|l| l.contains("INFO") && l.contains("result=") && l.contains("accepted")),
        "one INFO line per push; log:\n{log}"
    );
    assert!(
        !log.contains("hello 1"),
        "the message's content is never logged"
    );
}

#[tokio::test]
async fn wecoms_three_retries_are_stored_once_and_delivered_once() {
    let f = Flow::start(Timing::default()).await;
    let xml = text_message(42);
    // WeCom's retries are new requests (new nonce, new random prefix) of the same message.
    for _ in 0..3 {
        let (status, body) = f.push(&xml).await;
        assert_eq!((status, body.as_str()), (200, ""));
    }
    f.delivered(1).await;
    f.deliveries("delivered", 1.0).await;
    // A later push gets through: so the repeats were not merely still queued.
    f.push(&text_message(43)).await;
    let got = f.delivered(2).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].body_text(), xml);
    assert_eq!(got[1].body_text(), text_message(43));
    assert_eq!(f.callbacks("hr-bot", "duplicate").await, 2.0);
    assert_eq!(f.callbacks("hr-bot", "accepted").await, 2.0);
}

#[tokio::test]
async fn many_pushes_are_delivered_in_arrival_order() {
    let f = Flow::start(Timing::default()).await;
    for n in 0..40 {
        let (status, _) = f.push(&text_message(n)).await;
        assert_eq!(status, 200);
    }
    let got = f.delivered(40).await;
    let bodies: Vec<String> = got.iter().map(|g| g.body_text()).collect();
    let want: Vec<String> = (0..40).map(text_message).collect();
    assert_eq!(bodies, want);
}

/// A connection WeCom keeps is kept: two pushes travel one connection, each answered with
/// `Connection: keep-alive`; a refusal that closes (a path no app has) says so and ends it.
#[tokio::test]
async fn pushes_share_a_kept_connection_and_a_closing_refusal_ends_it() {
    let f = Flow::start(Timing::default()).await;
    let mut conn = Raw::connect(std::net::SocketAddr::from(([127, 0, 0, 1], f.cb_port))).await;
    for n in 1..=2 {
        let (query, body) = f.wecom.push(&text_message(n));
        let req = format!(
            "POST {PATH}?{query} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        conn.send(req.as_bytes()).await.unwrap();
        let a = conn.answered().await;
        assert_eq!(a.status, Some(200), "push {n}: {}", a.show());
        assert_eq!(
            a.header("connection"),
            Some("keep-alive"),
            "push {n}: {}",
            a.show()
        );
    }
    conn.send(b"POST /callback/nobody HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        .await
        .unwrap();
    let a = conn.answered().await;
    assert_eq!(a.status, Some(404), "{}", a.show());
    assert_eq!(a.header("connection"), Some("close"), "{}", a.show());
    let (_, ended) = conn.until_close().await;
    assert!(
        ended.closed(),
        "the connection stayed open after Connection: close"
    );
    let got = f.delivered(2).await;
    assert_eq!(got.len(), 2, "{got:?}");
}
