//! An app that is down, or answers an error, gets every push later, in order, once; one that
//! never takes a push past `max_age` leaves it a dead letter.

use super::receiver::Answer;
use super::*;

#[tokio::test]
async fn the_app_down_then_back_gets_everything_once_in_order() {
    let f = Flow::start(Timing::default()).await;
    f.app.down();
    for n in 0..10 {
        assert_eq!(
            f.push(&text_message(n)).await.0,
            200,
            "answered while the app is down"
        );
    }
    // Tried, and failing, while the app is down.
    f.deliveries("retried", 2.0).await;
    f.app.up().await;
    let got = f.delivered(10).await;
    f.deliveries("delivered", 10.0).await;
    let bodies: Vec<String> = f.app.got().iter().map(|g| g.body_text()).collect();
    let want: Vec<String> = (0..10).map(text_message).collect();
    assert_eq!(
        bodies,
        want,
        "each once, in arrival order ({} requests)",
        got.len()
    );
}

#[tokio::test]
async fn an_app_answering_500_gets_the_push_again_with_a_growing_attempt() {
    let f = Flow::start(Timing::default()).await;
    f.app.answer_first(
        vec![
            Answer::status(500),
            Answer::status(500),
            Answer::status(302),
        ],
        Answer::ok(),
    );
    assert_eq!(f.push(&click_event()).await.0, 200);
    assert_eq!(f.push(&text_message(9)).await.0, 200);
    let got = f.delivered(5).await;
    let attempts: Vec<&str> = got
        .iter()
        .map(|g| g.header("x-wecom-attempt").unwrap())
        .collect();
    assert_eq!(
        attempts,
        ["1", "2", "3", "4", "1"],
        "a redirect is not followed: retried"
    );
    let ids: Vec<&str> = got
        .iter()
        .map(|g| g.header("x-wecom-callback-id").unwrap())
        .collect();
    assert!(
        ids[..4].iter().all(|id| *id == ids[0]),
        "the same id each time: {ids:?}"
    );
    assert_ne!(ids[4], ids[0]);
    assert_eq!(
        got[4].body_text(),
        text_message(9),
        "the next push waited for the first"
    );
    f.deliveries("retried", 3.0).await;
    f.deliveries("delivered", 2.0).await;
}

#[tokio::test]
async fn a_push_undelivered_for_max_age_is_a_dead_letter() {
    let f = Flow::start(Timing {
        max_age: "2s",
        ..Timing::default()
    })
    .await;
    f.app.answer(Answer::status(503));
    assert_eq!(f.push(&text_message(1)).await.0, 200);
    f.deliveries("dead", 1.0).await;
    let tries = f.app.got().len();
    assert!(tries >= 2, "retried before it died: {tries}");
    // The app is back: nothing more of the dead push, and the next one is delivered.
    f.app.answer(Answer::ok());
    assert_eq!(f.push(&text_message(2)).await.0, 200);
    f.deliveries("delivered", 1.0).await;
    let got = f.app.got();
    assert_eq!(got.len(), tries + 1, "{got:?}");
    assert_eq!(got[tries].body_text(), text_message(2));
    let log = f.sc.logs();
    assert!(
        log.contains("dead letter"),
        "the dead letter is logged; log:\n{log}"
    );
    assert!(log.contains("503"), "with the last error");
}

#[tokio::test]
async fn an_app_that_hangs_is_given_up_on_after_the_timeout_and_tried_again() {
    let f = Flow::start(Timing {
        timeout: "300ms",
        ..Timing::default()
    })
    .await;
    // The first answer comes long after delivery.timeout; the next at once.
    f.app.answer_first(
        vec![Answer::ok().after(Duration::from_secs(5))],
        Answer::ok(),
    );
    assert_eq!(f.push(&text_message(1)).await.0, 200);
    let got = f.delivered(2).await;
    assert_eq!(got[0].header("x-wecom-attempt"), Some("1"));
    assert_eq!(got[1].header("x-wecom-attempt"), Some("2"));
    assert_eq!(got[1].body_text(), text_message(1));
    f.deliveries("delivered", 1.0).await;
    assert!(f.sc.logs().contains("no answer within"), "the log says why");
}
