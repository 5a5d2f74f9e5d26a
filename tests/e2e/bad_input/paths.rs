//! Path traversal and odd paths, unknown apps and APIs, and metric label cardinality.

use super::*;

// ---------------------------------------------------------------------------------------------
// 6. Path traversal and odd paths
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn odd_paths_are_refused_locally_and_admin_is_not_on_the_app_port() {
    let (sim, relay, mut sc) = relayed().await;
    let addr = addr_of(&sc.base);
    let before = business_calls(&sim);
    let reloads_before = sc.metrics().await;
    assert!(!reloads_before.has("wecom_config_reloads_total", &[]));

    // Under /cgi-bin/ but not a plain API path: HTTP 404, errcode 404, as outside it (until
    // issue 13 these got HTTP 400 with errcode 404).
    let malformed = [
        "/cgi-bin/../admin/status",
        "/cgi-bin/%2e%2e/x",
        "/cgi-bin/%2E%2E/admin/status",
        "/cgi-bin//user/get",
        "/cgi-bin/user/get/..",
        "/cgi-bin/./user/get",
        "/cgi-bin/user\\get",
        "/cgi-bin/user%2fget",
        "/cgi-bin/%75ser/get",
        "/cgi-bin/user/get%00",
        "/cgi-bin/user/get;x=1",
    ];
    // Outside /cgi-bin/ (the admin endpoints among them): HTTP 404, errcode 404.
    let outside = [
        "/admin/reload",
        "/admin/status",
        "/metrics",
        "/healthz",
        "/readyz",
        "/",
        "*",
        "/cgi-bin",
        "/CGI-BIN/user/get",
        "/cgi-bin\\user\\get",
        "//evil.example/cgi-bin/user/get",
        "/../cgi-bin/user/get",
        "/etc/passwd",
    ];
    let cases = malformed
        .iter()
        .map(|p| (p, Want::Local(404, 404)))
        .chain(outside.iter().map(|p| (p, Want::Local(404, 404))));
    for (path, want) in cases {
        for method in ["GET", "POST"] {
            let what = format!("{method} {path}");
            let raw = raw_exchange(
                addr,
                format!(
                    "{method} {path}?userid=p HTTP/1.1\r\nHost: sidecar\r\nContent-Length: 2\r\n\r\n{{}}"
                )
                .into_bytes(),
            )
            .await;
            assert_refused(&what, &raw, want);
            let body = String::from_utf8_lossy(&raw.body);
            for admin_text in ["wecom_", "fingerprint", "reloaded", "ok\n"] {
                assert!(!body.contains(admin_text), "{what}: admin answered: {body}");
            }
        }
    }
    assert_eq!(business_calls(&sim), before, "an odd path reached WeCom");
    assert!(
        relay.seen_text().lines().all(|l| !l.contains("userid=p")),
        "{}",
        relay.seen_text()
    );

    // POST /admin/reload on the app port reloaded nothing; on the admin port it does.
    assert!(!sc.metrics().await.has("wecom_config_reloads_total", &[]));
    let r = client()
        .post(format!("{}/admin/reload", sc.admin))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(
        sc.metrics()
            .await
            .value("wecom_config_reloads_total", &[("result", "ok")]),
        Some(1.0)
    );

    // An absolute-form target naming another host: refused when Host disagrees; without Host,
    // sent to the configured upstream only, with the upstream's Host.
    let raw = raw_exchange(
        addr,
        b"GET http://evil.example/cgi-bin/user/get?userid=abs HTTP/1.1\r\nHost: sidecar\r\n\r\n"
            .to_vec(),
    )
    .await;
    assert_refused("absolute-form, other Host", &raw, Want::Pingora(400));
    relay.clear();
    let raw = raw_exchange(
        addr,
        b"GET http://evil.example/cgi-bin/user/get?userid=abs HTTP/1.1\r\n\r\n".to_vec(),
    )
    .await;
    assert_eq!(raw.status, Some(200), "{}", raw.show());
    assert_eq!(raw.json()["userid"], "abs");
    let seen = relay.seen_text();
    assert!(seen.contains("GET /cgi-bin/user/get?userid=abs&"), "{seen}");
    assert!(!seen.contains("evil.example"), "{seen}");
    assert!(
        seen.contains(&format!(
            "\r\nHost: {}\r\n",
            relay.url.trim_start_matches("http://")
        )),
        "{seen}"
    );

    // Plain paths that name no API are forwarded (counted as `other`): the bare prefix and a
    // trailing slash, which `is_api_path` allows. WeCom (the simulator) answers them 404.
    for path in ["/cgi-bin/", "/cgi-bin/user/get/"] {
        let before = calls(&sim, path);
        let (status, _, v) = get_json(&client(), &sc.url(path)).await;
        assert_eq!(
            (status, v["errcode"].as_i64()),
            (404, Some(404)),
            "{path}: {v}"
        );
        assert_eq!(calls(&sim, path), before + 1, "{path}");
    }

    still_serves(&mut sc, &sim, "odd paths").await;
    assert_clean_logs(&sc);
}

// ---------------------------------------------------------------------------------------------
// 7. Unknown app, unknown API
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_app_is_refused_and_unknown_api_is_forwarded_as_other() {
    let sim = simulator().await;
    let mut sc = Sidecar::start(&sim.url(), "").await;
    sc.wait_ready().await;
    let c = client();
    let before = business_calls(&sim);
    for name in ["nobody", "", "HR-BOT", HR_SECRET, "hr-bot, ops-bot"] {
        let r = c
            .post(sc.url("/cgi-bin/message/send"))
            .header("X-WeCom-App", name)
            .json(
                &json!({"touser": "a", "msgtype": "text", "agentid": 1, "text": {"content": "x"}}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{name:?}");
        assert_eq!(r.headers()["x-sidecar-reason"], "unknown-app", "{name:?}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["errcode"], 40014, "{name:?}: {v}");
        let msg = v["errmsg"].as_str().unwrap();
        assert!(msg.contains("hr-bot") && msg.contains("ops-bot"), "{msg}");
        for secret in [HR_SECRET, OPS_SECRET] {
            assert!(!msg.contains(secret), "a secret in the answer: {msg}");
        }
    }
    assert_eq!(
        business_calls(&sim),
        before,
        "an unknown app's call reached WeCom"
    );
    assert_eq!(sim.counters().messages_delivered, 0);

    // An API the sidecar does not know is forwarded once, with the token, counted as `other`
    // (the simulator answers an API it does not implement with HTTP 404, errcode 404).
    let (status, h, v) = get_json(&c, &sc.url("/cgi-bin/no/such/api?x=1")).await;
    assert_eq!(status, 404, "{v}");
    assert!(h.get("x-sidecar-reason").is_none());
    assert_eq!(v["errcode"], 404, "{v}");
    assert_eq!(calls(&sim, "/cgi-bin/no/such/api"), 1);
    let metrics = sc.settled_metrics().await;
    let counted = [
        ("api", "other"),
        ("outcome", "http_error"),
        ("upstream", "primary"),
    ];
    assert_eq!(
        metrics.value("wecom_api_request_duration_seconds_count", &counted),
        Some(1.0),
        "{metrics}"
    );
    assert!(!metrics.text().contains("no/such"), "{metrics}");

    still_serves(&mut sc, &sim, "unknown app and API").await;
    assert_clean_logs(&sc);
}

// ---------------------------------------------------------------------------------------------
// 8. Label cardinality
// ---------------------------------------------------------------------------------------------

/// Sends `urls` (with an optional `X-WeCom-App`), 32 at a time; every answer must be `want`.
async fn burst(urls: Vec<String>, app: Option<String>, want: i64) {
    let c = client();
    for batch in urls.chunks(32) {
        let calls: Vec<_> = batch
            .iter()
            .map(|url| {
                let mut req = c.get(url);
                if let Some(app) = &app {
                    req = req.header("X-WeCom-App", app);
                }
                tokio::spawn(async move {
                    let r = req.send().await.unwrap();
                    r.json::<serde_json::Value>().await.unwrap()
                })
            })
            .collect();
        for call in calls {
            let v = call.await.unwrap();
            assert_eq!(v["errcode"], want, "{v}");
        }
    }
}

#[tokio::test]
async fn metric_labels_stay_bounded_under_thousands_of_distinct_paths_and_queries() {
    let sim = simulator().await;
    let mut sc = Sidecar::start(&sim.url(), "").await;
    sc.wait_ready().await;
    let unknown = |range: std::ops::Range<u32>| {
        range
            .map(|i| sc.url(&format!("/cgi-bin/x{i}/y")))
            .collect::<Vec<_>>()
    };
    let queries = |range: std::ops::Range<u32>| {
        range
            .map(|i| {
                sc.url(&format!(
                    "/cgi-bin/user/get?userid=u{i}&access_token=ghost{i}&n{i}=v{i}"
                ))
            })
            .collect::<Vec<_>>()
    };

    // A first few of each, to see which series exist once every kind of call was made.
    // (The simulator answers these unknown APIs with errcode 404.)
    burst(unknown(0..50), None, 404).await;
    burst(queries(0..50), None, 0).await;
    burst(
        vec![sc.url("/cgi-bin/user/get?userid=g")],
        Some("ghost-app-0".into()),
        40014,
    )
    .await;
    let early = sc.settled_metrics().await.series();

    burst(unknown(50..3000), None, 404).await;
    burst(queries(50..3000), None, 0).await;
    for i in 1..100 {
        burst(
            vec![sc.url(&format!("/cgi-bin/user/get?userid=g{i}"))],
            Some(format!("ghost-app-{i}")),
            40014,
        )
        .await;
    }
    assert_eq!(calls(&sim, "/cgi-bin/x2999/y"), 1);
    assert_eq!(calls(&sim, "/cgi-bin/user/get"), 3000);

    let metrics = sc.settled_metrics().await;
    let added: Vec<String> = metrics.series().difference(&early).cloned().collect();
    assert!(
        added.is_empty(),
        "6,000 more distinct calls added series: {added:#?}"
    );
    let pairs: Vec<(&str, &str)> = metrics.label_pairs().collect();
    assert!(!pairs.is_empty());
    let mut apis: Vec<&str> = pairs
        .iter()
        .filter(|(n, _)| *n == "api")
        .map(|(_, v)| *v)
        .collect();
    apis.sort_unstable();
    apis.dedup();
    let known: Vec<&str> = wecom_sidecar::wecom::apis::APIS
        .iter()
        .map(|a| a.name)
        .collect();
    for api in &apis {
        assert!(
            *api == "other" || known.contains(api),
            "api label {api:?} is neither a built-in API nor `other`"
        );
    }
    assert!(
        apis.contains(&"other") && apis.contains(&"user/get"),
        "{apis:?}"
    );
    assert!(apis.len() <= 4, "{} api label values: {apis:?}", apis.len());
    for &(name, value) in &pairs {
        if name == "app" {
            assert!(
                ["hr-bot", "ops-bot", "robot"].contains(&value),
                "app label {value:?}"
            );
        }
        for varying in ["x1", "/y", "ghost", "u1", "n1", "v1"] {
            assert!(
                !value.contains(varying),
                "label {name}={value:?} holds a value from the request"
            );
        }
    }
    let status = sc.status().await;
    assert!(
        !status.contains("ghost") && !status.contains("x2999"),
        "{status}"
    );

    still_serves(&mut sc, &sim, "6,000 distinct calls").await;
    assert_clean_logs(&sc);
}
