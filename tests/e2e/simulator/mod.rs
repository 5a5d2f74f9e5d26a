//! The WeCom simulator itself: it must behave like WeCom where the sidecar's tests rely on it,
//! and its faults, counters and control API must do what they say.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::harness::sim::body::generated_bytes;
use crate::harness::sim::{Counters, FaultKind, SimConfig, Simulator};
use crate::harness::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(c: &reqwest::Client, url: impl reqwest::IntoUrl) -> Value {
    c.get(url).send().await.unwrap().json().await.unwrap()
}

async fn post(c: &reqwest::Client, url: impl reqwest::IntoUrl, body: &Value) -> Value {
    c.post(url)
        .json(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn token_with(c: &reqwest::Client, base: &str, secret: &str) -> String {
    let v = get(
        c,
        format!("{base}/cgi-bin/gettoken?corpid={CORP_ID}&corpsecret={secret}"),
    )
    .await;
    v["access_token"].as_str().expect("a token").to_string()
}

async fn token(c: &reqwest::Client, base: &str) -> String {
    token_with(c, base, HR_SECRET).await
}

/// A client that gives up quickly (for faults that never answer).
fn impatient() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_millis(400))
        .build()
        .unwrap()
}

/// Sends raw bytes on a new connection and reads until the server closes it (or 2 s pass).
async fn raw(addr: SocketAddr, request: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(request).await?;
    let mut out = Vec::new();
    match tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut out)).await {
        Ok(r) => r.map(|_| out),
        Err(_) => Ok(out),
    }
}

fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    response.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test]
async fn gettoken_follows_wecom() {
    let sim = simulator().await;
    let c = client();
    let base = sim.url();
    let v = get(
        &c,
        format!("{base}/cgi-bin/gettoken?corpid={CORP_ID}&corpsecret={HR_SECRET}"),
    )
    .await;
    assert_eq!(
        (v["errcode"].as_i64(), v["errmsg"].as_str()),
        (Some(0), Some("ok"))
    );
    assert_eq!(v["expires_in"], 7200);
    let t1 = v["access_token"].as_str().unwrap().to_string();
    assert!(t1.len() >= 64, "{t1}");
    let t2 = token(&c, &base).await;
    assert_ne!(t1, t2, "each gettoken issues a new token");
    // The older token stays valid, like WeCom's.
    for t in [&t1, &t2] {
        let v = get(
            &c,
            format!("{base}/cgi-bin/department/list?access_token={t}"),
        )
        .await;
        assert_eq!(v["errcode"], 0, "{v}");
    }
    let ops = token_with(&c, &base, OPS_SECRET).await;

    let v = get(
        &c,
        format!("{base}/cgi-bin/gettoken?corpid={CORP_ID}&corpsecret=wrong"),
    )
    .await;
    assert_eq!(
        (v["errcode"].as_i64(), v["errmsg"].as_str()),
        (Some(40001), Some("invalid credential"))
    );
    assert!(v.get("access_token").is_none());
    let v = get(
        &c,
        format!("{base}/cgi-bin/gettoken?corpid=wwnope&corpsecret={HR_SECRET}"),
    )
    .await;
    assert_eq!(
        (v["errcode"].as_i64(), v["errmsg"].as_str()),
        (Some(40013), Some("invalid corpid"))
    );

    let n = sim.counters();
    // Per app by corpsecret, answered or not.
    assert_eq!(n.gettoken["hr-bot"], 3);
    assert_eq!(n.gettoken["ops-bot"], 1);
    assert_eq!(n.gettoken["unknown"], 1);
    assert_eq!(n.calls["/cgi-bin/gettoken"], 5);
    assert_eq!(sim.issued_tokens(), vec![t1, t2, ops]);
}

#[tokio::test]
async fn tokens_are_checked_like_wecom() {
    let sim = simulator().await;
    let c = client();
    let base = sim.url();
    let user = |t: &str| format!("{base}/cgi-bin/user/get?userid=zhangsan&access_token={t}");

    let v = get(&c, format!("{base}/cgi-bin/user/get?userid=a")).await;
    assert_eq!(
        (v["errcode"].as_i64(), v["errmsg"].as_str()),
        (Some(41001), Some("access_token missing"))
    );
    let v = get(&c, user("")).await;
    assert_eq!(v["errcode"], 41001);
    let v = get(&c, user("forged")).await;
    assert_eq!(
        (v["errcode"].as_i64(), v["errmsg"].as_str()),
        (Some(40014), Some("invalid access_token"))
    );

    let t = token(&c, &base).await;
    let v = get(&c, user(&t)).await;
    assert_eq!(
        (
            v["errcode"].as_i64(),
            v["userid"].as_str(),
            v["status"].as_i64()
        ),
        (Some(0), Some("zhangsan"), Some(1)),
        "{v}"
    );
    assert_eq!(v["department"], json!([1]));

    sim.expire_all_tokens();
    let v = get(&c, user(&t)).await;
    assert_eq!(
        (v["errcode"].as_i64(), v["errmsg"].as_str()),
        (Some(42001), Some("access_token expired"))
    );
    let t2 = token(&c, &base).await;
    assert_eq!(get(&c, user(&t2)).await["errcode"], 0, "a new token works");

    sim.invalidate_all_tokens();
    assert_eq!(get(&c, user(&t2)).await["errcode"], 40014);
    assert_eq!(
        get(&c, user(&t)).await["errcode"],
        40014,
        "invalidated wins over expired"
    );
    let t3 = token(&c, &base).await;
    assert_eq!(get(&c, user(&t3)).await["errcode"], 0);
}

#[tokio::test]
async fn tokens_expire_after_their_ttl() {
    let mut cfg = sim_config();
    // Long enough that the first call surely comes before the expiry, on any machine.
    cfg.token_ttl = Duration::from_secs(2);
    let sim = Simulator::start("127.0.0.1:0".parse().unwrap(), cfg)
        .await
        .unwrap();
    let c = client();
    let base = sim.url();
    let v = get(
        &c,
        format!("{base}/cgi-bin/gettoken?corpid={CORP_ID}&corpsecret={HR_SECRET}"),
    )
    .await;
    assert_eq!(v["expires_in"], 2);
    let t = v["access_token"].as_str().unwrap();
    let url = format!("{base}/cgi-bin/department/list?access_token={t}");
    assert_eq!(get(&c, &url).await["errcode"], 0);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(get(&c, &url).await["errcode"], 42001);
}

#[tokio::test]
async fn business_apis_answer() {
    let sim = simulator().await;
    let c = client();
    let base = sim.url();
    let t = token(&c, &base).await;

    let v = get(
        &c,
        format!("{base}/cgi-bin/user/get?userid=&access_token={t}"),
    )
    .await;
    assert_eq!(v["errcode"], 60111);
    let v = get(
        &c,
        format!("{base}/cgi-bin/department/list?access_token={t}"),
    )
    .await;
    assert_eq!(v["errcode"], 0);
    assert!(v["department"].as_array().unwrap().len() >= 2, "{v}");

    // user/list_id: a POST read, paged by cursor.
    let url = format!("{base}/cgi-bin/user/list_id?access_token={t}");
    let all = post(&c, &url, &json!({})).await;
    assert_eq!(
        (all["errcode"].as_i64(), all["next_cursor"].as_str()),
        (Some(0), Some(""))
    );
    let everyone = all["dept_user"].as_array().unwrap().clone();
    assert!(everyone
        .iter()
        .all(|u| u["userid"].is_string() && u["department"].is_number()));
    let mut paged = Vec::new();
    let mut cursor = String::new();
    loop {
        let v = post(&c, &url, &json!({"cursor": cursor, "limit": 4})).await;
        assert_eq!(v["errcode"], 0, "{v}");
        paged.extend(v["dept_user"].as_array().unwrap().iter().cloned());
        cursor = v["next_cursor"].as_str().unwrap().to_string();
        if cursor.is_empty() {
            break;
        }
    }
    assert_eq!(paged, everyone);
    let bad = c
        .post(&url)
        .body("{nope")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(bad["errcode"], 47001);

    // A GET write, and an API the simulator has never heard of.
    let v = get(
        &c,
        format!("{base}/cgi-bin/user/delete?userid=zhangsan&access_token={t}"),
    )
    .await;
    assert_eq!(v, json!({"errcode": 0, "errmsg": "deleted"}));
    // An API the simulator does not implement: HTTP 404 naming it, token or not.
    for url in [
        format!("{base}/cgi-bin/some/new/api?access_token={t}"),
        format!("{base}/cgi-bin/some/new/api"),
    ] {
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 404);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["errcode"], 404, "{v}");
        assert!(v["errmsg"]
            .as_str()
            .unwrap()
            .contains("/cgi-bin/some/new/api"));
    }

    // Robots: a key, no token.
    let v = post(
        &c,
        format!("{base}/cgi-bin/webhook/send?key=k1"),
        &json!({"msgtype": "text"}),
    )
    .await;
    assert_eq!(v["errcode"], 0);
    let v = post(
        &c,
        format!("{base}/cgi-bin/webhook/send"),
        &json!({"msgtype": "text"}),
    )
    .await;
    assert_eq!(v["errcode"], 93000);

    let r = c.get(format!("{base}/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let n = sim.counters();
    assert_eq!(n.calls["/cgi-bin/user/list_id"], 4);
    assert_eq!(n.calls["/nope"], 1);
}

#[tokio::test]
async fn answers_have_content_length_and_keep_alive() {
    let sim = simulator().await;
    let t = token(&client(), &sim.url()).await;
    let one =
        format!("GET /cgi-bin/user/get?userid=a&access_token={t} HTTP/1.1\r\nHost: x\r\n\r\n");
    let last = format!(
        "GET /cgi-bin/department/list?access_token={t} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let out = raw(sim.addr(), format!("{one}{one}{last}").as_bytes())
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    // Three answers on one connection, each with its length.
    let answers: Vec<&str> = text.split("HTTP/1.1 200 OK\r\n").skip(1).collect();
    assert_eq!(answers.len(), 3, "{text}");
    for a in answers {
        let (head, body) = a.split_once("\r\n\r\n").unwrap();
        let len: usize = header(head, "content-length").unwrap().parse().unwrap();
        assert_eq!(body.len(), len, "{a}");
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["errcode"], 0);
    }
}

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

#[tokio::test]
async fn messages_are_counted_and_deduplicated() {
    let sim = simulator().await;
    let c = client();
    let base = sim.url();
    let hr = token(&c, &base).await;
    let ops = token_with(&c, &base, OPS_SECRET).await;
    let send = |t: &str| format!("{base}/cgi-bin/message/send?access_token={t}");

    let msg = json!({"touser": "a|b", "msgtype": "text", "agentid": 1, "text": {"content": "x"}, "enable_duplicate_check": 1});
    for _ in 0..3 {
        let v = post(&c, send(&hr), &msg).await;
        assert_eq!(
            (v["errcode"].as_i64(), v["invaliduser"].as_str()),
            (Some(0), Some(""))
        );
        assert!(!v["msgid"].as_str().unwrap().is_empty());
    }
    // The same JSON with its keys in another order, or another interval, is the same message.
    let reordered = json!({"enable_duplicate_check": 1, "duplicate_check_interval": 600, "text": {"content": "x"}, "agentid": 1, "msgtype": "text", "touser": "a|b"});
    assert_eq!(post(&c, send(&hr), &reordered).await["errcode"], 0);
    let n = sim.counters();
    assert_eq!(
        (
            n.messages_delivered,
            n.duplicates_suppressed,
            n.delivered_per_user["a"],
            n.delivered_per_user["b"]
        ),
        (1, 3, 1, 1)
    );
    // Another app's identical message is its own.
    assert_eq!(post(&c, send(&ops), &msg).await["errcode"], 0);
    // Different content is delivered.
    let other = json!({"touser": "a", "msgtype": "text", "agentid": 1, "text": {"content": "z"}, "enable_duplicate_check": 1});
    assert_eq!(post(&c, send(&hr), &other).await["errcode"], 0);
    // Without the check, a repeat is delivered again.
    let plain =
        json!({"touser": "@all", "msgtype": "text", "agentid": 1, "text": {"content": "x"}});
    post(&c, send(&hr), &plain).await;
    post(&c, send(&hr), &plain).await;
    let n = sim.counters();
    assert_eq!((n.messages_delivered, n.duplicates_suppressed), (5, 3));
    assert_eq!(n.delivered_per_user["a"], 3);
    assert_eq!(n.delivered_per_user["@all"], 2);

    // A short window runs out.
    let brief = json!({"touser": "d", "msgtype": "text", "text": {"content": "w"}, "enable_duplicate_check": 1, "duplicate_check_interval": 2});
    post(&c, send(&hr), &brief).await;
    post(&c, send(&hr), &brief).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    post(&c, send(&hr), &brief).await;
    assert_eq!(sim.counters().delivered_per_user["d"], 2);

    let bad = c
        .post(send(&hr))
        .body("{nope")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        (bad["errcode"].as_i64(), bad["errmsg"].as_str()),
        (Some(47001), Some("data format error"))
    );
}

#[tokio::test]
async fn media_round_trip_and_generated_downloads() {
    let sim = simulator().await;
    let c = client();
    let base = sim.url();
    let t = token(&c, &base).await;
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let form = reqwest::multipart::Form::new()
        .text("other", "ignored")
        .part(
            "media",
            reqwest::multipart::Part::bytes(data.clone()).file_name("report.pdf"),
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
    assert_eq!(
        (v["errcode"].as_i64(), v["type"].as_str()),
        (Some(0), Some("file")),
        "{v}"
    );
    assert!(v["created_at"].as_str().unwrap().parse::<u64>().unwrap() > 1_600_000_000);
    let id = v["media_id"].as_str().unwrap();
    let back = c
        .get(format!(
            "{base}/cgi-bin/media/get?media_id={id}&access_token={t}"
        ))
        .send()
        .await
        .unwrap();
    let h = back.headers().clone();
    assert_eq!(h["content-type"], "application/octet-stream");
    assert_eq!(h["content-length"], data.len().to_string().as_str());
    assert_eq!(
        h["content-disposition"],
        "attachment; filename=\"report.pdf\""
    );
    assert_eq!(
        Sha256::digest(back.bytes().await.unwrap()),
        Sha256::digest(&data)
    );
    assert_eq!(sim.counters().uploaded_bytes, 3_000_000);

    // No media part.
    let form = reqwest::multipart::Form::new().text("file", "x");
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
    assert_eq!(v["errcode"], 44001);

    // A robot's upload_media works the same way, keyed.
    let form = reqwest::multipart::Form::new().part(
        "media",
        reqwest::multipart::Part::bytes(vec![7u8; 1000]).file_name("r.txt"),
    );
    let v: Value = c
        .post(format!(
            "{base}/cgi-bin/webhook/upload_media?key=k&type=file"
        ))
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["errcode"], 0, "{v}");
    assert_eq!(sim.counters().uploaded_bytes, 3_001_000);

    let missing = c
        .get(format!(
            "{base}/cgi-bin/media/get?media_id=nope&access_token={t}"
        ))
        .send()
        .await
        .unwrap();
    assert!(missing.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let v: Value = missing.json().await.unwrap();
    assert_eq!(
        (v["errcode"].as_i64(), v["errmsg"].as_str()),
        (Some(40007), Some("invalid media_id"))
    );
}

#[tokio::test]
async fn generated_media_streams_any_size() {
    let sim = simulator().await;
    let c = client();
    let base = sim.url();
    let t = token(&c, &base).await;
    let gen = c
        .get(format!(
            "{base}/cgi-bin/media/get?media_id=gen-200000&access_token={t}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(gen.headers()["content-length"], "200000");
    assert_eq!(
        gen.headers()["content-disposition"],
        "attachment; filename=\"gen-200000.bin\""
    );
    assert_eq!(
        Sha256::digest(gen.bytes().await.unwrap()),
        Sha256::digest(generated_bytes(200_000))
    );
    for n in [0u64, 1, 7, 65_537] {
        let body = c
            .get(format!(
                "{base}/cgi-bin/media/get?media_id=gen-{n}&access_token={t}"
            ))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(body, generated_bytes(n), "gen-{n}");
    }
    // 64 MiB, read as a stream.
    let n: u64 = 64 << 20;
    let mut r = c
        .get(format!(
            "{base}/cgi-bin/media/get?media_id=gen-{n}&access_token={t}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.content_length(), Some(n));
    let mut got = 0u64;
    while let Some(chunk) = r.chunk().await.unwrap() {
        got += chunk.len() as u64;
    }
    assert_eq!(got, n);
}

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
