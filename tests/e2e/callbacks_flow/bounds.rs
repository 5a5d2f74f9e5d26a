//! The callback listener keeps the bounds of `client:` as the other listeners do: a head that
//! never completes is cut, and a non-loopback address is warned about.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

#[tokio::test]
async fn a_head_that_never_completes_is_cut() {
    let f = Flow::start_with(Timing::default(), "client:\n  header_timeout: 1s\n").await;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", f.cb_port))
        .await
        .unwrap();
    s.write_all(b"POST /callback/hr-bot HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    // The sidecar closes the connection (read ends); the test's own bound is far longer.
    let closed = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the connection was never closed");
    // The listener still serves.
    assert_eq!(f.push(&text_message(1)).await.0, 200);
}

#[tokio::test]
async fn a_callback_listener_beyond_loopback_is_warned_about() {
    let app = receiver::Receiver::start().await;
    let state = tempfile::tempdir().unwrap();
    let port = free_port();
    let cb = callbacks_yaml(
        port,
        &app.url(),
        &state.path().join("s.db"),
        Timing::default(),
    )
    .replace("listen: \"127.0.0.1:", "listen: \"0.0.0.0:");
    let sc = Sidecar::start_with_env(
        |l, a| config_yaml(l, a, "http://127.0.0.1:9", &cb),
        &[("TEST_CB_TOKEN", CB_TOKEN), ("TEST_CB_AES_KEY", CB_AES_KEY)],
    )
    .await;
    let warned = eventually(Duration::from_secs(10), async || {
        sc.logs().lines().any(|l| {
            l.contains("WARN") && l.contains("callbacks.listen") && l.contains("beyond loopback")
        })
    })
    .await;
    assert!(warned, "log:\n{}", sc.logs());
}

#[tokio::test]
async fn sigterm_stops_the_listener_and_the_workers_and_exits_0() {
    let mut f = Flow::start(Timing::default()).await;
    assert_eq!(f.push(&text_message(1)).await.0, 200);
    f.delivered(1).await;
    // Done in the store before the app goes down: one the app received but had not yet
    // answered would be delivered again after the restart, ahead of push 2.
    f.deliveries("delivered", 1.0).await;
    f.app.down();
    // A push the app cannot take: its worker is in a backoff when the signal comes.
    assert_eq!(f.push(&text_message(2)).await.0, 200);
    f.deliveries("retried", 1.0).await;
    f.sc.signal("TERM");
    assert_eq!(
        f.sc.wait_exit(Duration::from_secs(20)),
        Some(0),
        "log:\n{}",
        f.sc.logs()
    );
    // Kept for the next start.
    f.app.up().await;
    f.restart().await;
    let got = f.delivered(2).await;
    assert_eq!(got.last().unwrap().body_text(), text_message(2));
}

#[tokio::test]
async fn a_reload_that_changes_callbacks_is_refused_and_the_old_ones_keep_working() {
    let f = Flow::start(Timing::default()).await;
    let original = std::fs::read_to_string(&f.sc.config_path).unwrap();
    let moved = original.replace(&f.app.url(), "http://127.0.0.1:9/elsewhere");
    assert_ne!(moved, original);
    std::fs::write(&f.sc.config_path, &moved).unwrap();
    let (status, body) = f.sc.reload().await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("callbacks") && body.contains("restart"),
        "{body}"
    );
    assert_eq!(f.push(&text_message(1)).await.0, 200);
    let got = f.delivered(1).await;
    assert_eq!(
        got[0].body_text(),
        text_message(1),
        "still delivered to the app"
    );
}
