//! The WeCom simulator itself: it must behave like WeCom where the sidecar's tests rely on it.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use wecom_sidecar::wecom::simulator::body::generated_bytes;
use wecom_sidecar::wecom::simulator::{Fault, FaultKind};

async fn get(c: &reqwest::Client, url: String) -> Value {
    c.get(url).send().await.unwrap().json().await.unwrap()
}

async fn token(c: &reqwest::Client, base: &str) -> String {
    let v = get(
        c,
        format!("{base}/cgi-bin/gettoken?corpid={CORP_ID}&corpsecret={HR_SECRET}"),
    )
    .await;
    v["access_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn gettoken_and_token_checks_follow_wecom() {
    let sim = simulator().await;
    let c = client();
    let base = sim.url();
    let v = get(
        &c,
        format!("{base}/cgi-bin/gettoken?corpid={CORP_ID}&corpsecret=wrong"),
    )
    .await;
    assert_eq!(v["errcode"], 40001);
    let v = get(
        &c,
        format!("{base}/cgi-bin/gettoken?corpid=nope&corpsecret={HR_SECRET}"),
    )
    .await;
    assert_eq!(v["errcode"], 40013);
    let t = token(&c, &base).await;
    assert!(t.len() >= 64);
    assert_eq!(sim.counters().gettoken["hr-bot"], 1);
    assert_eq!(sim.counters().gettoken["unknown"], 2);

    assert_eq!(
        get(&c, format!("{base}/cgi-bin/user/get?userid=a")).await["errcode"],
        41001
    );
    assert_eq!(
        get(
            &c,
            format!("{base}/cgi-bin/user/get?userid=a&access_token=forged")
        )
        .await["errcode"],
        40014
    );
    assert_eq!(
        get(
            &c,
            format!("{base}/cgi-bin/user/get?userid=a&access_token={t}")
        )
        .await["userid"],
        "a"
    );
    sim.expire_all_tokens();
    assert_eq!(
        get(
            &c,
            format!("{base}/cgi-bin/user/get?userid=a&access_token={t}")
        )
        .await["errcode"],
        42001
    );
    let t2 = token(&c, &base).await;
    assert_eq!(
        get(
            &c,
            format!("{base}/cgi-bin/department/list?access_token={t2}")
        )
        .await["errcode"],
        0
    );
    sim.invalidate_all_tokens();
    assert_eq!(
        get(
            &c,
            format!("{base}/cgi-bin/department/list?access_token={t2}")
        )
        .await["errcode"],
        40014
    );
    assert_eq!(sim.issued_tokens(), vec![t, t2]);
}

#[tokio::test]
async fn faults_apply_in_order_and_run_out() {
    let sim = simulator().await;
    let c = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let base = sim.url();
    let t = token(&c, &base).await;
    let url = format!("{base}/cgi-bin/user/get?userid=a&access_token={t}");
    sim.inject(Fault {
        path: "/cgi-bin/user/get".into(),
        kind: FaultKind::Status(502),
        times: Some(1),
    });
    sim.inject(Fault {
        path: "*".into(),
        kind: FaultKind::Errcode(-1),
        times: Some(1),
    });
    assert_eq!(c.get(&url).send().await.unwrap().status(), 502);
    assert_eq!(get(&c, url.clone()).await["errcode"], -1);
    assert_eq!(get(&c, url.clone()).await["errcode"], 0);

    for kind in [FaultKind::Reset, FaultKind::Truncated, FaultKind::Hang] {
        sim.inject(Fault {
            path: "/cgi-bin/user/get".into(),
            kind: kind.clone(),
            times: Some(1),
        });
        let r = c.get(&url).send().await;
        let failed = match r {
            Err(_) => true,
            Ok(r) => r.bytes().await.is_err(),
        };
        assert!(failed, "{kind:?} should fail the client");
    }
    sim.inject(Fault {
        path: "/cgi-bin/user/get".into(),
        kind: FaultKind::Garbage,
        times: Some(1),
    });
    let body = c.get(&url).send().await.unwrap().bytes().await.unwrap();
    assert!(serde_json::from_slice::<Value>(&body).is_err());
    assert_eq!(sim.counters().calls["/cgi-bin/user/get"], 7);
}

#[tokio::test]
async fn messages_dedupe_and_lost_answers_still_deliver() {
    let sim = simulator().await;
    let c = client();
    let base = sim.url();
    let t = token(&c, &base).await;
    let url = format!("{base}/cgi-bin/message/send?access_token={t}");
    let msg = json!({"touser": "a|b", "msgtype": "text", "text": {"content": "x"}, "enable_duplicate_check": 1});
    for _ in 0..3 {
        let v: Value = c
            .post(&url)
            .json(&msg)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["errcode"], 0);
    }
    let n = sim.counters();
    assert_eq!(
        (
            n.messages_delivered,
            n.duplicates_suppressed,
            n.delivered_per_user["a"]
        ),
        (1, 2, 1)
    );
    let bad: Value = c
        .post(&url)
        .body("{nope")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bad["errcode"], 47001);

    sim.inject(Fault {
        path: "/cgi-bin/message/send".into(),
        kind: FaultKind::LoseAnswer,
        times: Some(1),
    });
    let plain = json!({"touser": "c", "msgtype": "text", "text": {"content": "y"}});
    assert!(
        c.post(&url).json(&plain).send().await.is_err(),
        "the answer is lost"
    );
    assert_eq!(
        sim.counters().messages_delivered,
        2,
        "but the message was delivered"
    );
}

#[tokio::test]
async fn media_round_trip_and_generated_downloads() {
    let sim = simulator().await;
    let c = client();
    let base = sim.url();
    let t = token(&c, &base).await;
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let form = reqwest::multipart::Form::new().part(
        "media",
        reqwest::multipart::Part::bytes(data.clone()).file_name("f.bin"),
    );
    let v: Value = c
        .post(format!(
            "{base}/cgi-bin/media/upload?type=file&access_token={t}"
        ))
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["errcode"], 0, "{v}");
    let id = v["media_id"].as_str().unwrap();
    let back = c
        .get(format!(
            "{base}/cgi-bin/media/get?media_id={id}&access_token={t}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(back.headers()["content-type"], "application/octet-stream");
    assert_eq!(
        Sha256::digest(back.bytes().await.unwrap()),
        Sha256::digest(&data)
    );
    let gen = c
        .get(format!(
            "{base}/cgi-bin/media/get?media_id=gen-200000&access_token={t}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        Sha256::digest(gen.bytes().await.unwrap()),
        Sha256::digest(generated_bytes(200_000))
    );
    let missing = get(
        &c,
        format!("{base}/cgi-bin/media/get?media_id=nope&access_token={t}"),
    )
    .await;
    assert_eq!(missing["errcode"], 40007);
    assert_eq!(sim.counters().uploaded_bytes, 300_000);
}

#[tokio::test]
async fn control_api_over_http() {
    let sim = simulator().await;
    let c = client();
    let base = sim.url();
    let r = c
        .post(format!("{base}/sim/faults"))
        .body(r#"{"path":"/cgi-bin/gettoken","kind":{"Errcode":60020},"times":null}"#)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let v = get(
        &c,
        format!("{base}/cgi-bin/gettoken?corpid={CORP_ID}&corpsecret={HR_SECRET}"),
    )
    .await;
    assert_eq!(v["errcode"], 60020);
    c.delete(format!("{base}/sim/faults")).send().await.unwrap();
    let t = token(&c, &base).await;
    c.post(format!("{base}/sim/tokens/expire"))
        .send()
        .await
        .unwrap();
    let v = get(
        &c,
        format!("{base}/cgi-bin/user/get?userid=a&access_token={t}"),
    )
    .await;
    assert_eq!(v["errcode"], 42001);
    let counters = get(&c, format!("{base}/sim/counters")).await;
    assert_eq!(counters["calls"]["/cgi-bin/gettoken"], 2);
    c.post(format!("{base}/sim/counters/reset"))
        .send()
        .await
        .unwrap();
    assert!(sim.counters().calls.is_empty());
    let bad = c
        .post(format!("{base}/sim/faults"))
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}
