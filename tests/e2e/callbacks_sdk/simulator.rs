//! The SDK scripts held to the simulator's own crypto, no sidecar in the way: what the
//! simulator pushes opens with each SDK, and each SDK's verification, push and reply work with
//! the simulator's reference callback URL (`/sim/callbacks/endpoint/{app}`).

use serde_json::{json, Value};

use super::*;
use crate::harness::*;

fn hr_bot() -> SimApp {
    sim_config()
        .apps
        .into_iter()
        .find(|a| a.name == "hr-bot")
        .unwrap()
}

/// A push the simulator made (as WeCom, to its own receiver, which records the query and body)
/// opens with @wecom/crypto and with wechatpy, text and event alike; `fresh` repeats are
/// encrypted anew, the same message inside.
#[tokio::test]
async fn the_simulators_pushes_open_with_each_sdk() {
    let sim = simulator().await;
    let c = client();
    let app = hr_bot();
    let to = format!("{}/sim/receiver", sim.url());
    let pushes = [
        json!({"to": to, "app": "hr-bot", "kind": "text", "content": "请假 <3 & ]]> done", "repeat": 2, "fresh": true}),
        json!({"to": to, "app": "hr-bot", "kind": "event", "event": "click", "event_key": "menu-1"}),
    ];
    let mut messages = Vec::new();
    for push in &pushes {
        let (status, _, answer) =
            post_json(&c, &format!("{}/sim/callbacks/push", sim.url()), push).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["ok"], true, "{answer}");
        let attempts = answer["attempts"].as_array().unwrap();
        assert_eq!(
            attempts.len(),
            push["repeat"].as_u64().unwrap_or(1) as usize,
            "{answer}"
        );
        for _ in attempts {
            messages.push(answer["message"].as_str().unwrap().to_string());
        }
    }
    assert!(
        messages[0].contains("<Content><![CDATA[请假 <3 & ]]]]><![CDATA[> done]]></Content>"),
        "{}",
        messages[0]
    );
    assert!(
        messages[2].contains("<Event><![CDATA[click]]></Event>"),
        "{}",
        messages[2]
    );

    let (_, _, received) = get_json(&c, &format!("{}/sim/receiver", sim.url())).await;
    let deliveries = received["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 3, "{received}");
    let encrypted: Vec<String> = deliveries
        .iter()
        .map(|d| xml_field(d["body"].as_str().unwrap(), "Encrypt").unwrap())
        .collect();
    assert_ne!(
        encrypted[0], encrypted[1],
        "a fresh repeat is encrypted anew"
    );
    for (d, (message, encrypt)) in deliveries.iter().zip(messages.iter().zip(&encrypted)) {
        let body = d["body"].as_str().unwrap();
        assert_eq!(
            xml_field(body, "ToUserName").as_deref(),
            Some(app.corp_id.as_str()),
            "{body}"
        );
        assert_eq!(
            xml_field(body, "AgentID"),
            Some(app.agent_id.to_string()),
            "{body}"
        );
        let q = d["query"].as_str().unwrap();
        for sdk in SDKS {
            let (ok, seen) = sdk
                .open(
                    &app,
                    &query_param(q, "msg_signature"),
                    &query_param(q, "timestamp"),
                    &query_param(q, "nonce"),
                    encrypt,
                )
                .await;
            assert!(ok, "{sdk:?}: {seen}");
            assert_eq!(
                seen["plaintext"].as_str(),
                Some(message.as_str()),
                "{sdk:?}"
            );
            // The signature covers the ciphertext: another nonce does not open.
            let (ok, seen) = sdk
                .open(
                    &app,
                    &query_param(q, "msg_signature"),
                    &query_param(q, "timestamp"),
                    "1",
                    encrypt,
                )
                .await;
            assert!(!ok, "{sdk:?} opened a push under a wrong signature: {seen}");
        }
    }
}

/// Each SDK, as WeCom, against the simulator's reference callback URL: its URL verification is
/// answered with the echostr, its push opens (the plaintext recorded is the SDK's message),
/// and the passive reply made by the simulator opens with the SDK to the receiver's told body.
/// With another app's credentials both are refused and the scripts say so.
#[tokio::test]
async fn each_sdk_verifies_pushes_and_opens_the_reply_of_the_simulators_endpoint() {
    let sim = simulator().await;
    let c = client();
    let app = hr_bot();
    let reply = "<xml><ToUserName><![CDATA[zhangsan]]></ToUserName><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[收到]]></Content></xml>";
    let (status, _, told) = post_json(
        &c,
        &format!("{}/sim/receiver/reply", sim.url()),
        &json!({"body": reply}),
    )
    .await;
    assert_eq!(status, 200, "{told}");
    let url = format!("{}/sim/callbacks/endpoint/hr-bot", sim.url());
    let mut wrong = app.clone();
    wrong.callback_token = "notTheToken".into();
    for (i, sdk) in SDKS.into_iter().enumerate() {
        let (ok, seen) = sdk.verify(&url, &app).await;
        assert!(ok, "{sdk:?} verify: {seen}");
        let content = format!("from {sdk:?}");
        let (ok, seen) = sdk.push(&url, &app, &content).await;
        assert!(ok, "{sdk:?} push: {seen}");
        assert_eq!(seen["status"], 200, "{seen}");
        assert_eq!(seen["reply"].as_str(), Some(reply), "{sdk:?}: {seen}");
        let (_, _, received) = get_json(&c, &format!("{}/sim/receiver", sim.url())).await;
        let last = &received["deliveries"][i];
        assert_eq!(last["headers"]["x-sim-endpoint"], "hr-bot", "{received}");
        assert_eq!(last["body"], seen["message"], "{received}");
        assert!(last["body"].as_str().unwrap().contains(&content));

        let (ok, seen) = sdk.verify(&url, &wrong).await;
        assert!(
            !ok && seen["status"] == 403,
            "{sdk:?} verify, wrong token: {seen}"
        );
        let (ok, seen) = sdk.push(&url, &wrong, "refused").await;
        assert!(
            !ok && seen["status"] == 403,
            "{sdk:?} push, wrong token: {seen}"
        );
    }
    let (_, _, received) = get_json(&c, &format!("{}/sim/receiver", sim.url())).await;
    assert_eq!(
        received["total"], 2,
        "refused pushes are not recorded: {received}"
    );
}

/// The simulator's own URL verification checks the answer: its reference endpoint passes, an
/// endpoint of another app (another token) does not, nor a URL that answers something else.
#[tokio::test]
async fn the_simulators_verification_checks_the_answer() {
    let sim = simulator().await;
    let c = client();
    let verify = format!("{}/sim/callbacks/verify", sim.url());
    let (_, _, good) = post_json(
        &c,
        &verify,
        &json!({"to": format!("{}/sim/callbacks/endpoint/hr-bot", sim.url()), "app": "hr-bot"}),
    )
    .await;
    assert_eq!(good["ok"], true, "{good}");
    assert_eq!(good["body"], good["expected"], "{good}");
    let (_, _, other) = post_json(
        &c,
        &verify,
        &json!({"to": format!("{}/sim/callbacks/endpoint/ops-bot", sim.url()), "app": "hr-bot"}),
    )
    .await;
    assert_eq!(other["ok"], false, "{other}");
    assert_eq!(other["status"], 403, "{other}");
    let (_, _, elsewhere) = post_json(
        &c,
        &verify,
        &json!({"to": format!("{}/sim/counters", sim.url()), "app": "hr-bot"}),
    )
    .await;
    assert_eq!(elsewhere["ok"], false, "{elsewhere}");
    // Asked wrongly: 400 saying why.
    for bad in [
        json!({"to": "ftp://x", "app": "hr-bot"}),
        json!({"to": sim.url(), "app": "nobody"}),
        json!({"app": "hr-bot"}),
    ] {
        let (status, _, answer) = post_json(&c, &verify, &bad).await;
        assert_eq!(status, 400, "{bad}: {answer}");
        assert!(
            answer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{answer}"
        );
    }
}

/// The receiver answers as told (a status, a body, both back to 200 and empty on DELETE) and
/// forgets its deliveries on DELETE; a push asked wrongly is refused with the reason, nothing
/// sent.
#[tokio::test]
async fn the_receiver_answers_as_told_and_bad_pushes_are_refused() {
    let sim = simulator().await;
    let c = client();
    let base = sim.url();
    let push = format!("{base}/sim/callbacks/push");
    let to = format!("{base}/sim/receiver");
    let (_, _, told) = post_json(
        &c,
        &format!("{base}/sim/receiver/reply"),
        &json!({"status": 500, "body": "<xml>busy</xml>"}),
    )
    .await;
    assert_eq!(told["ok"], true, "{told}");
    let (_, _, pushed) = post_json(&c, &push, &json!({"to": to, "app": "ops-bot"})).await;
    assert_eq!(pushed["ok"], false, "a 500 is not ok: {pushed}");
    assert_eq!(pushed["attempts"][0]["status"], 500, "{pushed}");
    assert_eq!(
        pushed["attempts"][0]["reply_error"]
            .as_str()
            .map(|e| e.contains("does not open")),
        Some(true),
        "a body that is no encrypted reply is reported: {pushed}"
    );
    let r = c
        .delete(format!("{base}/sim/receiver/reply"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, _, pushed) = post_json(&c, &push, &json!({"to": to, "app": "ops-bot"})).await;
    assert_eq!(pushed["ok"], true, "{pushed}");
    assert_eq!(pushed["attempts"][0]["reply"], Value::Null, "{pushed}");
    let (_, _, listed) = get_json(&c, &to).await;
    assert_eq!(listed["total"], 2, "{listed}");
    c.delete(&to).send().await.unwrap();
    let (_, _, listed) = get_json(&c, &to).await;
    assert_eq!(listed["total"], 0, "{listed}");

    for bad in [
        json!({"to": to, "app": "hr-bot", "repeat": 0}),
        json!({"to": to, "app": "hr-bot", "repeat": 11}),
        json!({"to": to, "app": "hr-bot", "kind": "voice"}),
        json!({"to": to, "app": "hr-bot", "colour": "red"}),
        json!({"to": "https://example.invalid/cb", "app": "hr-bot"}),
        json!({"to": to, "app": "nobody"}),
    ] {
        let (status, _, answer) = post_json(&c, &push, &bad).await;
        assert_eq!(status, 400, "{bad}: {answer}");
        assert!(
            answer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{answer}"
        );
    }
    for bad in [
        json!({"status": 99}),
        json!({"delay": "forever"}),
        json!({"delay": "2h"}),
    ] {
        let (status, _, answer) = post_json(&c, &format!("{base}/sim/receiver/reply"), &bad).await;
        assert_eq!(status, 400, "{bad}: {answer}");
    }
    let (_, _, listed) = get_json(&c, &to).await;
    assert_eq!(listed["total"], 0, "refused pushes sent nothing: {listed}");
}
