//! Dead letters: a send undelivered for `outbox_max_age` and a replay WeCom refused are kept
//! with their last error, listed by the admin, retried (delivered once then) or deleted.

use std::time::Duration;

use super::*;
use crate::harness::sim::FaultKind;

async fn admin(sc: &Sidecar, method: reqwest::Method, path: &str) -> (u16, Value) {
    let r = client()
        .request(method, format!("{}{path}", sc.admin))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// The dead letters of hr-bot as the admin lists them.
async fn dead_letters(sc: &Sidecar) -> Vec<Value> {
    let (_, doc) = admin_get(sc, "/admin/outbox/dead").await;
    doc["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["app"] == "hr-bot")
        .map(|a| a["dead_letters"].as_array().unwrap().clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn expired_sends_become_dead_letters_the_admin_retries_or_deletes() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), &outbox_config("    outbox_max_age: 2s\n", "")).await;
    sc.wait_ready().await;
    sim.inject(fault("/cgi-bin/message/send", FaultKind::Status(503), None));
    let mut ids = Vec::new();
    for words in ["first", "second"] {
        let (_, reason, v) = send(&sc, "hr-bot", &text("sunqi", words)).await;
        assert_eq!(reason.as_deref(), Some("queued"), "{v}");
        ids.push(v["outbox_id"].as_str().unwrap().to_string());
    }
    let both = eventually(Duration::from_secs(20), async || {
        dead_letters(&sc).await.len() == 2
    })
    .await;
    let dead = dead_letters(&sc).await;
    assert!(both, "{dead:?}");
    assert_eq!(dead[0]["outbox_id"], ids[0].as_str());
    assert!(
        dead[0]["last_error"].as_str().unwrap().contains("503"),
        "{dead:?}"
    );
    assert!(
        !serde_json::to_string(&dead).unwrap().contains("first"),
        "a body shown: {dead:?}"
    );
    let m = sc.metrics().await;
    assert_eq!(
        m.value("wecom_outbox_dead_letters", &[("app", "hr-bot")]),
        Some(2.0),
        "{m}"
    );
    assert_eq!(
        m.value(
            "wecom_outbox_total",
            &[
                ("api", "message/send"),
                ("app", "hr-bot"),
                ("result", "dead")
            ]
        ),
        Some(2.0)
    );

    // WeCom is back: the first is retried (by its outbox id) and delivered once.
    sim.clear_faults();
    let (code, v) = admin(
        &sc,
        reqwest::Method::POST,
        &format!("/admin/outbox/dead/{}/retry", ids[0]),
    )
    .await;
    assert_eq!((code, &v["retried"]), (200, &json!(true)), "{v}");
    let got = wait_delivered(&sim, 1, Duration::from_secs(20)).await;
    assert_eq!(got, vec!["first"]);
    // The second is deleted by its store id; then it is gone, and a second delete finds none.
    let store_id = dead_letters(&sc).await[0]["id"].as_u64().unwrap();
    let (code, v) = admin(
        &sc,
        reqwest::Method::DELETE,
        &format!("/admin/outbox/dead/{store_id}"),
    )
    .await;
    assert_eq!((code, &v["deleted"]), (200, &json!(true)), "{v}");
    assert!(dead_letters(&sc).await.is_empty());
    let (code, _) = admin(
        &sc,
        reqwest::Method::DELETE,
        &format!("/admin/outbox/dead/{store_id}"),
    )
    .await;
    assert_eq!(code, 404);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(delivered(&sim), vec!["first"], "the deleted one was sent");
}

#[tokio::test]
async fn a_replay_wecom_refuses_is_a_dead_letter_with_its_errcode() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), &outbox_config("", "")).await;
    sc.wait_ready().await;
    sim.inject(fault("/cgi-bin/message/send", FaultKind::Reset, Some(2)));
    sim.inject(fault(
        "/cgi-bin/message/send",
        FaultKind::Errcode(40003),
        None,
    ));
    let (_, reason, v) = send(&sc, "hr-bot", &text("nobody", "to nobody")).await;
    assert_eq!(reason.as_deref(), Some("queued"), "{v}");
    let id = v["outbox_id"].as_str().unwrap().to_string();
    let refused = eventually(Duration::from_secs(20), async || {
        admin_get(&sc, &format!("/admin/outbox/{id}")).await.1["state"] == "refused"
    })
    .await;
    let (_, rec) = admin_get(&sc, &format!("/admin/outbox/{id}")).await;
    assert!(refused, "{rec}");
    assert_eq!(rec["answer"]["errcode"], 40003);
    let dead = dead_letters(&sc).await;
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0]["last_error"].as_str().unwrap().contains("40003"),
        "{dead:?}"
    );
    // Not retried forever: one replay reached WeCom.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(calls(&sim, "/cgi-bin/message/send"), 3);
}
