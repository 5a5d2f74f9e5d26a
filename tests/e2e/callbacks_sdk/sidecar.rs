//! The SDK scripts against the real sidecar: each SDK's URL verification is answered, its push
//! is accepted and delivered to the app (the simulator's receiver), and the app's answer comes
//! back as a passive reply that opens with the SDK. The simulator's own pushes (a second
//! implementation, WeCom's retries included) are held to the same.

use std::time::Duration;

use serde_json::json;

use super::*;
use crate::harness::sim::Simulator;
use crate::harness::*;

/// The app's passive reply in these tests (the receiver's told body).
const REPLY: &str = "<xml><ToUserName><![CDATA[zhangsan]]></ToUserName><FromUserName><![CDATA[wwtest0000000001]]></FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[已收到 ✓]]></Content></xml>";

pub(super) fn hr_bot() -> SimApp {
    sim_config()
        .apps
        .into_iter()
        .find(|a| a.name == "hr-bot")
        .unwrap()
}

/// A sidecar on the simulator with hr-bot's callbacks on a free port, delivered to the
/// simulator's receiver (told to answer [`REPLY`]), its store in a folder of its own (kept
/// with it); and the callback URL.
async fn sidecar_with_callbacks() -> (Sidecar, Simulator, String, tempfile::TempDir) {
    let sim = simulator().await;
    let app = hr_bot();
    let (status, _, told) = post_json(
        &client(),
        &format!("{}/sim/receiver/reply", sim.url()),
        &json!({"body": REPLY}),
    )
    .await;
    assert_eq!(status, 200, "{told}");
    let cb = free_port();
    let store = tempfile::tempdir().unwrap();
    let extra = format!(
        r#"callbacks:
  listen: "127.0.0.1:{cb}"
  apps:
    - app: hr-bot
      path: /callback/hr-bot
      token_env: TEST_HR_CB_TOKEN
      aes_key_env: TEST_HR_CB_AES_KEY
      deliver_to: "{}/sim/receiver"
      reply_within: 3s
  delivery: {{ timeout: 2s, backoff_base: 100ms, backoff_max: 1s, max_age: 60s }}
store:
  path: "{}"
"#,
        sim.url(),
        store.path().join("sidecar.db").display()
    );
    let upstream = sim.url();
    let sc = Sidecar::start_with_env(
        |listen, admin| config_yaml(listen, admin, &upstream, &extra),
        &[
            ("TEST_HR_CB_TOKEN", &app.callback_token),
            ("TEST_HR_CB_AES_KEY", &app.callback_aes_key),
        ],
    )
    .await;
    let up = eventually(Duration::from_secs(15), async || {
        tokio::net::TcpStream::connect(("127.0.0.1", cb))
            .await
            .is_ok()
    })
    .await;
    assert!(up, "the callback listener never came up:\n{}", sc.logs());
    (
        sc,
        sim,
        format!("http://127.0.0.1:{cb}/callback/hr-bot"),
        store,
    )
}

/// The receiver's deliveries once it holds `n` (or what it holds after waiting).
async fn deliveries(sim: &Simulator, n: usize) -> Vec<Value> {
    let c = client();
    let url = format!("{}/sim/receiver", sim.url());
    let mut seen = Vec::new();
    eventually(Duration::from_secs(15), async || {
        seen = get_json(&c, &url).await.2["deliveries"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        seen.len() >= n
    })
    .await;
    seen
}

/// @wecom/crypto and wechatpy, each as WeCom: the sidecar answers their URL verification with
/// the echostr, accepts their push, delivers its XML to the app, and returns the app's answer
/// as a passive reply the SDK opens. Their push under another Token is refused (403) and not
/// delivered.
#[tokio::test]
async fn each_sdk_verifies_pushes_and_opens_the_sidecars_reply() {
    let (sc, sim, url, _store) = sidecar_with_callbacks().await;
    let app = hr_bot();
    let mut wrong = app.clone();
    wrong.callback_token = "notTheToken".into();
    for (i, sdk) in SDKS.into_iter().enumerate() {
        let (ok, seen) = sdk.verify(&url, &app).await;
        assert!(ok, "{sdk:?} verify: {seen}\n{}", sc.logs());
        let content = format!("hello from {sdk:?}");
        let (ok, seen) = sdk.push(&url, &app, &content).await;
        assert!(ok, "{sdk:?} push: {seen}\n{}", sc.logs());
        assert_eq!(seen["reply"].as_str(), Some(REPLY), "{sdk:?}: {seen}");
        let got = deliveries(&sim, i + 1).await;
        let d = &got[i];
        assert_eq!(d["body"], seen["message"], "{sdk:?}: {got:?}");
        assert_eq!(d["headers"]["x-wecom-app"], "hr-bot", "{d}");
        assert_eq!(d["headers"]["x-wecom-msgtype"], "text", "{d}");

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
    let m = sc.settled_metrics().await;
    assert_eq!(
        m.value(
            "wecom_callbacks_total",
            &[("app", "hr-bot"), ("result", "accepted")]
        ),
        Some(2.0),
        "{m}"
    );
    // The refusals were counted (each SDK's verification and push under the wrong Token),
    // and none reached the app: still the two pushes.
    assert_eq!(
        m.value(
            "wecom_callbacks_total",
            &[("app", "hr-bot"), ("result", "bad-signature")]
        ),
        Some(4.0),
        "{m}"
    );
    assert_eq!(deliveries(&sim, 2).await.len(), 2);
}

/// The simulator's push (its own crypto), sent 4 times as WeCom's retries are: every attempt
/// gets 200, the first the app's passive reply (opened by the simulator), the repeats an empty
/// answer; the app gets it once. The simulator's URL verification passes too.
#[tokio::test]
async fn the_simulators_push_with_wecoms_retries_is_delivered_once_with_a_reply() {
    let (sc, sim, url, _store) = sidecar_with_callbacks().await;
    let c = client();
    let (_, _, verified) = post_json(
        &c,
        &format!("{}/sim/callbacks/verify", sim.url()),
        &json!({"to": url, "app": "hr-bot"}),
    )
    .await;
    assert_eq!(verified["ok"], true, "{verified}\n{}", sc.logs());
    let (_, _, pushed) = post_json(
        &c,
        &format!("{}/sim/callbacks/push", sim.url()),
        &json!({"to": url, "app": "hr-bot", "kind": "event", "event": "click", "event_key": "k1", "repeat": 4, "fresh": true}),
    )
    .await;
    assert_eq!(pushed["ok"], true, "{pushed}\n{}", sc.logs());
    let attempts = pushed["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 4);
    assert_eq!(attempts[0]["reply"].as_str(), Some(REPLY), "{pushed}");
    for a in &attempts[1..] {
        assert_eq!(a["status"], 200, "{pushed}");
        assert_eq!(a["body"], "", "a repeat is answered empty: {pushed}");
    }
    let m = sc.settled_metrics().await;
    assert_eq!(
        m.value(
            "wecom_callbacks_total",
            &[("app", "hr-bot"), ("result", "duplicate")]
        ),
        Some(3.0),
        "{m}"
    );
    let got = deliveries(&sim, 1).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["body"], pushed["message"]);
    assert_eq!(got[0]["headers"]["x-wecom-event"], "click", "{}", got[0]);
}
