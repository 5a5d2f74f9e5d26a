//! The control API over HTTP, counters under load, a second listener, and the simulator on
//! a thread of its own.

use super::*;

#[tokio::test]
async fn control_api_over_http() {
    let sim = simulator().await;
    let c = client();
    let base = sim.url();
    let ok = |r: reqwest::Response| {
        assert!(r.status().is_success(), "{}", r.status());
    };
    ok(c.post(format!("{base}/sim/faults"))
        .body(r#"{"path":"/cgi-bin/gettoken","kind":{"Errcode":60020},"times":null}"#)
        .send()
        .await
        .unwrap());
    ok(c.post(format!("{base}/sim/faults"))
        .body(r#"{"path":"/cgi-bin/user/get","kind":{"Delay":"10ms"},"times":1}"#)
        .send()
        .await
        .unwrap());
    let listed = get(&c, format!("{base}/sim/faults")).await;
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(listed[1]["kind"], json!({"Delay": "10ms"}));
    assert_eq!(sim.faults()[0].kind, FaultKind::Errcode(60020));
    let url = format!("{base}/cgi-bin/gettoken?corpid={CORP_ID}&corpsecret={HR_SECRET}");
    assert_eq!(get(&c, &url).await["errcode"], 60020);
    ok(c.delete(format!("{base}/sim/faults")).send().await.unwrap());
    assert!(sim.faults().is_empty());

    let t = token(&c, &base).await;
    let user = format!("{base}/cgi-bin/user/get?userid=a&access_token={t}");
    ok(c.post(format!("{base}/sim/tokens/expire"))
        .send()
        .await
        .unwrap());
    assert_eq!(get(&c, &user).await["errcode"], 42001);
    ok(c.post(format!("{base}/sim/tokens/invalidate"))
        .send()
        .await
        .unwrap());
    assert_eq!(get(&c, &user).await["errcode"], 40014);

    let counters: Counters = c
        .get(format!("{base}/sim/counters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counters, sim.counters());
    assert_eq!(counters.calls["/cgi-bin/gettoken"], 2);
    assert_eq!(counters.calls["/cgi-bin/user/get"], 2);
    assert!(
        !counters.calls.keys().any(|p| p.starts_with("/sim/")),
        "control calls are not counted"
    );
    ok(c.post(format!("{base}/sim/counters/reset"))
        .send()
        .await
        .unwrap());
    assert_eq!(sim.counters(), Counters::default());

    for bad in [
        "{",
        r#"{"path":"*","kind":"Explode"}"#,
        r#"{"path":"*","kind":{"Status":1000}}"#,
    ] {
        let r = c
            .post(format!("{base}/sim/faults"))
            .body(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        let v: Value = r.json().await.unwrap();
        assert!(v["error"].is_string());
    }
    assert!(sim.faults().is_empty());
    assert_eq!(
        c.get(format!("{base}/sim/nothing"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn counters_reset_and_concurrent_load() {
    let sim = simulator().await;
    let c = client();
    let base = sim.url();
    let t = token(&c, &base).await;
    sim.reset_counters();
    let calls = (0..400).map(|i| {
        let c = c.clone();
        let url = format!("{base}/cgi-bin/message/send?access_token={t}");
        tokio::spawn(async move {
            let msg =
                json!({"touser": format!("u{}", i % 4), "msgtype": "text", "text": {"content": i}});
            post(&c, url, &msg).await["errcode"].as_i64()
        })
    });
    for call in calls {
        assert_eq!(call.await.unwrap(), Some(0));
    }
    let n = sim.counters();
    assert_eq!(n.calls["/cgi-bin/message/send"], 400);
    assert_eq!(n.messages_delivered, 400);
    assert_eq!(n.delivered_per_user.values().sum::<u64>(), 400);
    assert_eq!(n.delivered_per_user["u3"], 100);
}

#[tokio::test]
async fn a_second_listener_shares_the_wecom_but_not_its_own_faults() {
    let sim = simulator().await;
    let other = sim
        .also_listen("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    assert_ne!(sim.addr(), other.addr());
    let c = client();
    let t = token(&c, &sim.url()).await;
    let path = "/cgi-bin/department/list";
    other.inject_here(fault(path, FaultKind::Errcode(-1), None));
    let at = |s: &Simulator| format!("{}{path}?access_token={t}", s.url());
    assert_eq!(get(&c, at(&sim)).await["errcode"], 0, "tokens are shared");
    assert_eq!(get(&c, at(&other)).await["errcode"], -1);
    assert_eq!((sim.calls_here(path), other.calls_here(path)), (1, 1));
    assert_eq!(sim.counters().calls[path], 2);
    other.clear_faults();
    assert_eq!(get(&c, at(&other)).await["errcode"], 0);

    other.shutdown();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(c.get(at(&other)).send().await.is_err(), "shut down");
    assert_eq!(
        get(&c, at(&sim)).await["errcode"],
        0,
        "the first listener goes on"
    );
}

#[test]
fn start_on_thread_serves_without_a_runtime_and_shuts_down() {
    let sim = Simulator::start_on_thread("127.0.0.1:0".parse().unwrap(), SimConfig::dev()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = reqwest::Client::new();
        let v = get(
            &c,
            format!(
                "{}/cgi-bin/gettoken?corpid=wwdev0000000000001&corpsecret=dev-secret-ops-bot",
                sim.url()
            ),
        )
        .await;
        assert_eq!(v["errcode"], 0, "{v}");
        assert_eq!(sim.counters().gettoken["ops-bot"], 1);
        sim.shutdown();
        // The simulator's own thread lets the listener go.
        let closed = eventually(Duration::from_secs(10), async || {
            tokio::net::TcpStream::connect(sim.addr()).await.is_err()
        })
        .await;
        assert!(closed, "still accepting after shutdown");
    });
}
