//! Upstreams that misbehave in ways the other suites do not try: a gettoken that hangs past the
//! calls' deadlines, and a token echoed in JSON `\uXXXX` escapes. One test per defect found,
//! each on the real binary against the simulator.

use crate::harness::sim::FaultKind;
use crate::harness::*;

fn gettokens(sim: &crate::harness::sim::Simulator) -> u64 {
    sim.counters().gettoken.get("hr-bot").copied().unwrap_or(0)
}

/// A config whose upstream timeout (20 s) is far longer than the calls' deadline (1 s): a
/// gettoken that hangs is cut by the upstream timeout, a call by its deadline.
fn long_timeout_short_deadline(listen: u16, admin: u16, upstream: &str) -> String {
    config_yaml(
        listen,
        admin,
        upstream,
        "token:\n  min_refetch: 1s\ndefaults:\n  deadline: 1s\n",
    )
    .replace("timeout: 3s", "timeout: 20s")
}

fn reason(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get("x-sidecar-reason")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
}

/// gettoken hangs: a call that waits for a token gets its answer by its deadline (504,
/// `deadline`), not when the gettoken's own timeout ends. Before, the call waited the
/// upstream's 20 s and then got `no-token`, long past its 1 s deadline.
#[tokio::test]
async fn a_hung_gettoken_answers_the_call_by_its_deadline() {
    let sim = simulator().await;
    sim.inject(fault("/cgi-bin/gettoken", FaultKind::Hang, None));
    let sc = Sidecar::start_with(|l, a| long_timeout_short_deadline(l, a, &sim.url())).await;
    let (status, headers, v) = get_json(&client(), &sc.url("/cgi-bin/user/get?userid=a")).await;
    assert_eq!(
        (status, reason(&headers).as_deref()),
        (504, Some("deadline")),
        "{v}"
    );
    assert_eq!(v["errcode"], -1, "{v}");
}

/// A token is rejected (40014 on every call) and each replacement gettoken hangs: each call
/// ends at its deadline, and the gettoken it started must count as a failed fetch (backing
/// off), not vanish with the call so that the next call starts another one at once.
#[tokio::test]
async fn calls_cut_by_their_deadline_do_not_restart_a_hung_gettoken_each() {
    let sim = simulator().await;
    let sc = Sidecar::start_with(|l, a| long_timeout_short_deadline(l, a, &sim.url())).await;
    sc.wait_ready().await;
    let c = client();
    let (_, _, v) = get_json(&c, &sc.url("/cgi-bin/user/get?userid=a")).await;
    assert_eq!(v["errcode"], 0, "{v}");
    let before = gettokens(&sim);
    sim.inject(fault("/cgi-bin/user/get", FaultKind::Errcode(40014), None));
    sim.inject(fault("/cgi-bin/gettoken", FaultKind::Hang, None));
    let calls = 8;
    for i in 0..calls {
        let (status, headers, v) =
            get_json(&c, &sc.url(&format!("/cgi-bin/user/get?userid=u{i}"))).await;
        let r = reason(&headers);
        assert!(
            matches!(
                (status, r.as_deref()),
                (504, Some("deadline")) | (200 | 502, Some("no-token")) | (200, None)
            ),
            "call {i}: {status} {r:?} {v}"
        );
        assert_ne!(v["errcode"], 0, "call {i}: {v}");
    }
    let n = gettokens(&sim) - before;
    // Failed fetches back off 1 s, 2 s, 4 s...: over 8 calls of at most 1 s each, at most 4.
    assert!(
        n <= 4,
        "{n} gettoken for {calls} calls, each cut by its deadline"
    );
    assert!(n >= 1, "the rejection started no gettoken at all");
}

/// An upstream echoes the call's token in JSON with every character a `\uXXXX` escape. The
/// app's JSON parser reads the real token; a byte search for the token's written forms found
/// none. Before, the app got the real token; now it reads the app's name, as for any echo.
#[tokio::test]
async fn a_token_echoed_in_json_unicode_escapes_reaches_the_app_as_its_name() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), "").await;
    sc.wait_ready().await;
    sim.inject(fault(
        "/cgi-bin/department/list",
        FaultKind::EscapedEcho,
        None,
    ));
    let r = client()
        .get(sc.url("/cgi-bin/department/list?id=1"))
        .send()
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let tokens = sim.issued_tokens();
    assert!(!tokens.is_empty());
    let echoed = v["access_token"].as_str().unwrap_or_default().to_string();
    for t in &tokens {
        assert_ne!(&echoed, t, "the app read a real token: {body}");
    }
    assert_eq!(echoed, "hr-bot", "{body}");
}
