//! The two simulator pieces these tests stand on, over its HTTP control API: WeCom down
//! (`/sim/down`: every call reset or answered 503, the control API still up) and the log of
//! delivered messages with their bodies (`/sim/messages`).

use super::*;

async fn sim_json(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn gettoken(c: &reqwest::Client, base: &str) -> Result<u16, reqwest::Error> {
    c.get(format!(
        "{base}/cgi-bin/gettoken?corpid={CORP_ID}&corpsecret={HR_SECRET}"
    ))
    .send()
    .await
    .map(|r| r.status().as_u16())
}

#[tokio::test]
async fn down_resets_and_503s_every_call_in_turn_until_cleared_or_over() {
    let sim = simulator().await;
    let c = client();
    let base = sim.url();
    assert_eq!(gettoken(&c, &base).await.unwrap(), 200);

    let (status, _) = sim_json(c.post(format!("{base}/sim/down")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(
        sim_json(c.get(format!("{base}/sim/down")).send().await.unwrap()).await,
        (200, json!({"down": true}))
    );
    // In turn: no answer (the connection reset), then HTTP 503.
    let first = gettoken(&c, &base).await;
    assert!(first.is_err(), "a reset, not an answer: {first:?}");
    assert_eq!(gettoken(&c, &base).await.unwrap(), 503);
    let user = format!("{base}/cgi-bin/user/get?userid=zhangsan");
    assert!(c.get(&user).send().await.is_err(), "business APIs too");
    assert_eq!(sim.counters().failed_while_down, 3);

    let (status, _) = sim_json(c.delete(format!("{base}/sim/down")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(!sim.is_down());
    assert_eq!(gettoken(&c, &base).await.unwrap(), 200);

    // For a while: over by itself.
    let timed = c
        .post(format!("{base}/sim/down"))
        .body(r#"{"for": "300ms"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(timed.status(), 200);
    assert!(sim.is_down());
    assert!(eventually(Duration::from_secs(10), async || !sim.is_down()).await);
    assert_eq!(gettoken(&c, &base).await.unwrap(), 200);

    for bad in [r#"{"for": "soon"}"#, r#"{"for": true}"#, "{"] {
        let r = c
            .post(format!("{base}/sim/down"))
            .body(bad)
            .send()
            .await
            .unwrap();
        let (status, v) = sim_json(r).await;
        assert_eq!(status, 400, "{bad}");
        assert!(v["error"].is_string(), "{v}");
    }
    assert!(!sim.is_down(), "a refused outage starts nothing");
}

#[tokio::test]
async fn messages_lists_what_was_delivered_in_order_with_bodies() {
    let sim = simulator().await;
    let c = client();
    let base = sim.url();
    let v: Value = c
        .get(format!(
            "{base}/cgi-bin/gettoken?corpid={CORP_ID}&corpsecret={OPS_SECRET}"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = v["access_token"].as_str().unwrap().to_string();
    let send = format!("{base}{SEND}?access_token={token}");
    let mut once = message("ops-bot", "one");
    once["enable_duplicate_check"] = json!(1);
    for body in [&once, &once, &message("ops-bot", "two")] {
        let (status, _, v) = post_json(&c, &send, body).await;
        assert_eq!((status, v["errcode"].as_i64()), (200, Some(0)), "{v}");
    }
    let robot = json!({"msgtype": "text", "text": {"content": "robot"}});
    let (_, _, v) = post_json(&c, &format!("{base}/cgi-bin/webhook/send?key=k1"), &robot).await;
    assert_eq!(v["errcode"], 0);

    let (status, listed) =
        sim_json(c.get(format!("{base}/sim/messages")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(
        listed["total"], 3,
        "the duplicate is not delivered: {listed}"
    );
    let messages = listed["messages"].as_array().unwrap();
    let seen: Vec<(u64, &str, &str, &Value)> = messages
        .iter()
        .map(|m| {
            (
                m["n"].as_u64().unwrap(),
                m["app"].as_str().unwrap(),
                m["path"].as_str().unwrap(),
                &m["body"],
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (1, "ops-bot", SEND, &once),
            (2, "ops-bot", SEND, &message("ops-bot", "two")),
            (3, "webhook", "/cgi-bin/webhook/send", &robot),
        ]
    );
    assert_eq!(sim.delivered_messages().len(), 3);
    assert_eq!(delivered(&sim, "ops-bot"), ["one", "two"]);

    let (status, _) = sim_json(
        c.delete(format!("{base}/sim/messages"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(sim.delivered_messages().is_empty());
}
