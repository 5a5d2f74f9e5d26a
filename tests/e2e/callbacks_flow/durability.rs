//! What is acknowledged is kept: a kill -9 with pushes queued loses none and delivers none
//! twice; a store that cannot write gets WeCom a 503 and a log line, and nothing is
//! delivered that was not committed. And the callback secrets never reach a log line.

use super::*;

#[tokio::test]
async fn kill_9_with_pushes_queued_loses_none_and_delivers_none_twice() {
    let mut f = Flow::start(Timing::default()).await;
    f.app.down();
    for n in 0..30 {
        assert_eq!(f.push(&text_message(n)).await.0, 200);
    }
    f.sc.signal("KILL");
    assert!(
        f.sc.wait_exit(Duration::from_secs(10)).is_none(),
        "killed, no exit code"
    );
    f.app.up().await;
    f.restart().await;
    let got = f.delivered(30).await;
    f.deliveries("delivered", 30.0).await;
    let bodies: Vec<String> = f.app.got().iter().map(|g| g.body_text()).collect();
    let want: Vec<String> = (0..30).map(text_message).collect();
    assert_eq!(
        bodies,
        want,
        "all, once each, in order ({} requests)",
        got.len()
    );
    // WeCom's retry of a push delivered before the kill is still known.
    assert_eq!(f.push(&text_message(3)).await, (200, String::new()));
    assert_eq!(f.callbacks("hr-bot", "duplicate").await, 1.0);
}

#[tokio::test]
async fn no_callback_secret_in_the_logs() {
    let f = Flow::start(Timing::default()).await;
    f.push(&text_message(1)).await;
    let (query, body) = f.wecom.push(&text_message(2));
    f.post(
        &query.replacen("msg_signature=", "msg_signature=f", 1),
        body,
    )
    .await;
    f.delivered(1).await;
    let log = f.sc.logs();
    assert!(!log.contains(CB_TOKEN), "the token is in the log:\n{log}");
    assert!(!log.contains(CB_AES_KEY), "the key is in the log:\n{log}");
    assert!(
        !log.contains(&CB_AES_KEY[..20]),
        "part of the key is in the log"
    );
}
