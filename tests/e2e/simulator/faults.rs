//! The simulator's faults: in order, before tokens, until they run out; on gettoken; on the
//! wire; delays, hangs and lost answers.

use super::*;

#[tokio::test]
async fn faults_apply_in_order_before_tokens_and_run_out() {
    let sim = simulator().await;
    let c = client();
    let base = sim.url();
    let t = token(&c, &base).await;
    let url = format!("{base}/cgi-bin/user/get?userid=a&access_token={t}");
    sim.inject(fault("/cgi-bin/user/get", FaultKind::Status(502), Some(1)));
    sim.inject(fault("*", FaultKind::Errcode(-1), Some(2)));
    sim.inject(fault(
        "/cgi-bin/user/get",
        FaultKind::Errcode(45009),
        Some(1),
    ));
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert!(!r.text().await.unwrap().is_empty());
    assert_eq!(get(&c, &url).await["errcode"], -1);
    // Before the token check: even a call without a token gets the fault.
    assert_eq!(
        get(&c, format!("{base}/cgi-bin/user/get")).await["errcode"],
        -1
    );
    let v = get(&c, &url).await;
    assert_eq!(
        v,
        json!({"errcode": 45009, "errmsg": "api freq out of limit"})
    );
    assert_eq!(get(&c, &url).await["errcode"], 0, "every fault ran out");
    assert!(sim.faults().is_empty());

    // Until cleared.
    sim.inject(fault(
        "/cgi-bin/department/list",
        FaultKind::Errcode(60020),
        None,
    ));
    let dept = format!("{base}/cgi-bin/department/list?access_token={t}");
    for _ in 0..3 {
        assert_eq!(get(&c, &dept).await["errcode"], 60020);
    }
    assert_eq!(get(&c, &url).await["errcode"], 0, "other paths unaffected");
    sim.clear_faults();
    assert_eq!(get(&c, &dept).await["errcode"], 0);
    assert_eq!(sim.counters().calls["/cgi-bin/user/get"], 6);
    assert_eq!(sim.counters().calls["/cgi-bin/department/list"], 4);
}

#[tokio::test]
async fn gettoken_faults() {
    let sim = simulator().await;
    let c = client();
    let base = sim.url();
    sim.inject(fault(
        "/cgi-bin/gettoken",
        FaultKind::Errcode(40001),
        Some(1),
    ));
    sim.inject(fault(
        "/cgi-bin/gettoken",
        FaultKind::Delay(Duration::from_millis(300)),
        Some(1),
    ));
    let url = format!("{base}/cgi-bin/gettoken?corpid={CORP_ID}&corpsecret={HR_SECRET}");
    assert_eq!(get(&c, &url).await["errcode"], 40001);
    let started = Instant::now();
    let v = get(&c, &url).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(v["errcode"], 0);
    assert_eq!(
        sim.counters().gettoken["hr-bot"],
        2,
        "faulted ones count too"
    );
    assert_eq!(sim.issued_tokens().len(), 1);
}

#[tokio::test]
async fn broken_connections_fail_the_client() {
    let sim = simulator().await;
    // Only the faulted calls use the impatient client (a hang ends at its timeout).
    let (c, impatient) = (client(), impatient());
    let base = sim.url();
    let t = token(&c, &base).await;
    let url = format!("{base}/cgi-bin/user/get?userid=a&access_token={t}");
    for kind in [FaultKind::Reset, FaultKind::Truncated, FaultKind::Hang] {
        sim.inject(fault("/cgi-bin/user/get", kind.clone(), Some(1)));
        let failed = match impatient.get(&url).send().await {
            Err(_) => true,
            Ok(r) => r.bytes().await.is_err(),
        };
        assert!(failed, "{kind:?} should fail the client");
        // And the next call is fine.
        assert_eq!(get(&c, &url).await["errcode"], 0, "after {kind:?}");
    }

    sim.inject(fault("/cgi-bin/user/get", FaultKind::Garbage, Some(1)));
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let body = r.bytes().await.unwrap();
    assert!(serde_json::from_slice::<Value>(&body).is_err());
    assert_eq!(sim.counters().calls["/cgi-bin/user/get"], 7);
}

#[tokio::test]
async fn truncated_and_reset_on_the_wire() {
    let sim = simulator().await;
    let req = b"GET /cgi-bin/user/get HTTP/1.1\r\nHost: x\r\n\r\n";

    sim.inject(fault("/cgi-bin/user/get", FaultKind::Truncated, Some(1)));
    let out = raw(sim.addr(), req).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(header(head, "content-length"), Some("100"));
    assert_eq!(body.len(), 10, "{body:?}");

    sim.inject(fault("/cgi-bin/user/get", FaultKind::Reset, Some(1)));
    match raw(sim.addr(), req).await {
        Ok(out) => assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out)),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }

    sim.inject(fault("/cgi-bin/user/get", FaultKind::Status(503), Some(1)));
    let out = raw(
        sim.addr(),
        b"GET /cgi-bin/user/get HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 503"));
}

#[tokio::test]
async fn a_delay_answers_late_and_a_hang_ends_with_the_client() {
    let sim = simulator().await;
    let c = client();
    let base = sim.url();
    let t = token(&c, &base).await;
    let url = format!("{base}/cgi-bin/user/get?userid=a&access_token={t}");
    sim.inject(fault(
        "*",
        FaultKind::Delay(Duration::from_millis(250)),
        Some(1),
    ));
    let started = Instant::now();
    assert_eq!(get(&c, &url).await["userid"], "a");
    assert!(started.elapsed() >= Duration::from_millis(250));

    // A hang holds the call; other calls go on meanwhile.
    sim.inject(fault("/cgi-bin/department/list", FaultKind::Hang, Some(1)));
    let hung = tokio::spawn({
        let url = format!("{base}/cgi-bin/department/list?access_token={t}");
        async move { impatient().get(url).send().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(get(&c, &url).await["errcode"], 0);
    assert!(hung.await.unwrap().unwrap_err().is_timeout());
}

#[tokio::test]
async fn a_lost_answer_still_delivers() {
    let sim = simulator().await;
    let c = client();
    let base = sim.url();
    let t = token(&c, &base).await;
    sim.inject(fault(
        "/cgi-bin/message/send",
        FaultKind::LoseAnswer,
        Some(1),
    ));
    let msg = json!({"touser": "c", "msgtype": "text", "text": {"content": "y"}});
    let url = format!("{base}/cgi-bin/message/send?access_token={t}");
    assert!(
        c.post(&url).json(&msg).send().await.is_err(),
        "the answer is lost"
    );
    assert_eq!(
        sim.counters().messages_delivered,
        1,
        "but the message was delivered"
    );
    assert_eq!(post(&c, &url, &msg).await["errcode"], 0);
    assert_eq!(sim.counters().delivered_per_user["c"], 2);
}
