//! Messages counted and deduplicated like WeCom; media uploaded, downloaded and generated.

use super::*;

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
