//! The WeCom simulator itself: it must behave like WeCom where the sidecar's tests rely on it,
//! and its faults, counters and control API must do what they say.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::harness::sim::body::generated_bytes;
use crate::harness::sim::{Counters, FaultKind, SimConfig, Simulator};
use crate::harness::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

mod control;
mod faults;
mod messages_media;

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
    let mut conn =
        Raw::new(tokio::net::TcpStream::connect(addr).await?).within(Duration::from_secs(2));
    conn.send(request).await?;
    match conn.until_close().await {
        (_, End::Failed(kind, text)) => Err(std::io::Error::new(kind, text)),
        (out, _) => Ok(out),
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
