//! The real token never reaches the app, and secrets an upstream quotes back are taken out:
//! a standby that redirects (absolute and relative `Location`, token in the query), one that
//! echoes the request URL in its JSON body and headers, a robot call whose answer quotes its
//! `key`, one that compresses an echo it was not asked to, and a `gettoken` whose errmsg
//! quotes its own query (the `corpsecret`). Nothing the sidecar itself sends follows a
//! redirect: not the call, not `gettoken`.

use crate::harness::sim::{FaultKind, Simulator};
use crate::harness::*;

const ROBOT_KEY: &str = "robot-key-3f2a1b0c-9d8e-7f6a-5b4c-3d2e1f0a9b8c";

fn two_upstreams(listen: u16, admin: u16, primary: &str, standby: &str, extra: &str) -> String {
    config_yaml(listen, admin, primary, extra).replace(
        "upstreams:\n",
        &format!("upstreams:\n  standby:\n    url: \"{standby}\"\n    connect_timeout: 1s\n    timeout: 3s\n"),
    )
}

/// A ready sidecar whose `department/list` and robot calls all go to the standby.
async fn on_standby(primary: &Simulator, standby: &Simulator) -> Sidecar {
    let extra = "routes:\n  - path: /cgi-bin/department/list\n    split: { standby: 100 }\n  - path: /cgi-bin/webhook/*\n    split: { standby: 100 }\n";
    let sc = Sidecar::start_with(|l, a| two_upstreams(l, a, &primary.url(), &standby.url(), extra))
        .await;
    sc.wait_ready().await;
    sc
}

/// A client that shows redirects instead of following them.
fn no_follow() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Status, every header and the body, as one text.
async fn everything(r: reqwest::Response) -> (u16, reqwest::header::HeaderMap, String) {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let mut out = format!("{status}\n");
    for (k, v) in &headers {
        out.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())));
    }
    out.push_str(&String::from_utf8_lossy(
        &r.bytes().await.unwrap_or_default(),
    ));
    (status, headers, out)
}

fn assert_holds_none(what: &str, text: &str, secrets: &[String]) {
    assert!(!secrets.is_empty());
    for s in secrets {
        assert!(
            !text.contains(s.as_str()),
            "{what} holds a secret or token (starting {:?}):\n{text}",
            &s[..4]
        );
    }
}

fn header<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header in {h:?}"))
}

#[tokio::test]
async fn a_standby_that_redirects_gets_no_token_to_the_app() {
    let (primary, standby) = primary_and_standby().await;
    let sc = on_standby(&primary, &standby).await;
    let c = no_follow();
    let url = sc.url("/cgi-bin/department/list?id=1");

    standby.inject_here(fault(
        "/cgi-bin/department/list",
        FaultKind::RedirectAbsolute,
        None,
    ));
    let (status, h, seen) = everything(c.get(&url).send().await.unwrap()).await;
    assert_eq!(status, 302, "{seen}");
    let location = header(&h, "location");
    assert!(
        location.starts_with(&format!("{}/cgi-bin/department/list?", standby.url())),
        "{location}"
    );
    assert!(location.contains("access_token=hr-bot"), "{location}");
    assert_holds_none("a redirect's answer", &seen, &primary.issued_tokens());
    // The sidecar did not follow it: one call reached the standby.
    assert_eq!(standby.calls_here("/cgi-bin/department/list"), 1);

    // The other app's token is replaced by that app's name.
    let r = c.get(&url).header("X-WeCom-App", "ops-bot").send();
    let (_, h, seen) = everything(r.await.unwrap()).await;
    assert!(header(&h, "location").contains("access_token=ops-bot"));
    assert_holds_none("ops-bot's redirect", &seen, &primary.issued_tokens());
    standby.clear_faults();

    standby.inject_here(fault(
        "/cgi-bin/department/list",
        FaultKind::RedirectRelative,
        None,
    ));
    let (status, h, seen) = everything(c.get(&url).send().await.unwrap()).await;
    assert_eq!(status, 302, "{seen}");
    assert!(
        header(&h, "location").starts_with("/cgi-bin/department/list?"),
        "{seen}"
    );
    assert!(header(&h, "location").contains("access_token=hr-bot"));
    assert_holds_none("a relative redirect", &seen, &primary.issued_tokens());
    standby.clear_faults();

    // An app client that follows redirects (python requests, reqwest's default) takes the
    // Location to the standby itself: what it carries there is the app's name, which WeCom
    // refuses, not a token that works.
    standby.inject_here(fault(
        "/cgi-bin/department/list",
        FaultKind::RedirectAbsolute,
        Some(1),
    ));
    let before = standby.calls_here("/cgi-bin/department/list");
    let (_, _, v) = get_json(&client(), &url).await;
    assert_eq!(
        standby.calls_here("/cgi-bin/department/list"),
        before + 2,
        "the redirect was followed to the standby"
    );
    assert_eq!(
        v["errcode"], 40014,
        "the redirect target was handed a working token: {v}"
    );
    assert_holds_none("the sidecar's log", &sc.logs(), &primary.issued_tokens());
}

#[tokio::test]
async fn a_standby_that_echoes_the_url_gets_no_token_or_robot_key_to_the_app() {
    let (primary, standby) = primary_and_standby().await;
    let sc = on_standby(&primary, &standby).await;
    let c = no_follow();
    standby.inject_here(fault("*", FaultKind::Echo, None));

    for app in ["hr-bot", "ops-bot"] {
        let r = c
            .get(sc.url("/cgi-bin/department/list?id=1"))
            .header("X-WeCom-App", app)
            .send();
        let (status, h, seen) = everything(r.await.unwrap()).await;
        assert_eq!(status, 200, "{seen}");
        assert_holds_none("an echoing answer", &seen, &primary.issued_tokens());
        let mine = format!("access_token={app}");
        for name in ["content-location", "x-echo-url", "link"] {
            assert!(header(&h, name).contains(&mine), "{name}: {seen}");
        }
        assert_eq!(header(&h, "x-echo-token"), app);
        let body = &seen[seen.find('{').unwrap()..];
        let v: serde_json::Value = serde_json::from_str(body).expect("still JSON");
        assert_eq!(v["errcode"], 0);
        assert_eq!(v["access_token"], app, "{v}");
        assert!(v["url"].as_str().unwrap().contains(&mine), "{v}");
        assert_eq!(
            header(&h, "content-length"),
            body.len().to_string(),
            "Content-Length is the rewritten body's"
        );
    }

    // A robot call: the key is the secret there.
    let r = c
        .post(sc.url(&format!("/cgi-bin/webhook/send?key={ROBOT_KEY}")))
        .body(r#"{"msgtype":"text","text":{"content":"hi"}}"#)
        .send();
    let (status, _, seen) = everything(r.await.unwrap()).await;
    assert_eq!(status, 200, "{seen}");
    assert!(seen.contains("key="), "the echo came back: {seen}");
    assert_holds_none("a robot call's echo", &seen, &[ROBOT_KEY.to_string()]);

    let mut secrets = primary.issued_tokens();
    secrets.push(ROBOT_KEY.into());
    assert_holds_none("the sidecar's log", &sc.logs(), &secrets);
}

#[tokio::test]
async fn an_answer_encoded_without_being_asked_is_not_passed_unread() {
    let (primary, standby) = primary_and_standby().await;
    let sc = on_standby(&primary, &standby).await;
    // Compressed, a body cannot be searched for the token, and the app would unpack it.
    standby.inject_here(fault("/cgi-bin/department/list", FaultKind::GzipEcho, None));
    let (status, h, seen) = everything(
        no_follow()
            .get(sc.url("/cgi-bin/department/list?id=1"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 502, "{seen}");
    assert_eq!(header(&h, "x-sidecar-reason"), "upstream-unavailable");
    assert!(h.get("content-encoding").is_none(), "{seen}");
    assert!(
        seen.contains("Content-Encoding"),
        "the answer says why: {seen}"
    );
    assert_holds_none("the answer", &seen, &primary.issued_tokens());
}

#[tokio::test]
async fn a_gettoken_whose_errmsg_quotes_its_query_leaks_no_secret() {
    let sim = simulator().await;
    sim.inject(fault(
        "/cgi-bin/gettoken",
        FaultKind::ErrcodeEcho(40001),
        None,
    ));
    let sc = Sidecar::start(&sim.url(), "").await;
    sc.wait_ready().await;
    let encoded: String = form_urlencoded::byte_serialize(HR_SECRET.as_bytes()).collect();
    let secrets = [HR_SECRET.to_string(), OPS_SECRET.to_string(), encoded];

    let (status, h, seen) = everything(
        client()
            .get(sc.url("/cgi-bin/user/get?userid=a"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(header(&h, "x-sidecar-reason"), "no-token");
    assert!(seen.contains("40001"), "{seen}");
    // WeCom's words stay, its quote of the secret goes.
    assert!(seen.contains("invalid credential"), "{seen}");
    assert!(seen.contains("corpsecret="), "{seen}");
    assert_holds_none("the no-token answer", &seen, &secrets);

    let status = sc.status().await;
    assert!(status.contains("invalid credential"), "{status}");
    assert_holds_none("/admin/status", &status, &secrets);
    let logs = sc.logs();
    assert!(logs.contains("token fetch failed"), "{logs}");
    assert_holds_none("the sidecar's log", &logs, &secrets);
}

#[tokio::test]
async fn a_gettoken_that_redirects_is_not_followed() {
    let sim = simulator().await;
    // The first gettoken of each app is redirected to itself; followed, it would succeed.
    sim.inject(fault(
        "/cgi-bin/gettoken",
        FaultKind::RedirectAbsolute,
        Some(2),
    ));
    let sc = Sidecar::start(&sim.url(), "").await;
    sc.wait_ready().await;
    let failed = eventually(std::time::Duration::from_secs(10), async || {
        sc.logs()
            .lines()
            .filter(|l| l.contains("token fetch failed") && l.contains("HTTP 302"))
            .count()
            == 2
    })
    .await;
    assert!(
        failed,
        "both first fetches must fail on the 302:\n{}",
        sc.logs()
    );
    // The refresher tries again (its backoff), and the next fetch is answered normally.
    let served = eventually(std::time::Duration::from_secs(10), async || {
        get_json(&client(), &sc.url("/cgi-bin/user/get?userid=a"))
            .await
            .2["errcode"]
            == 0
    })
    .await;
    assert!(served, "{}", sc.logs());
    assert_holds_none(
        "the sidecar's log",
        &sc.logs(),
        &[HR_SECRET.to_string(), OPS_SECRET.to_string()],
    );
}
