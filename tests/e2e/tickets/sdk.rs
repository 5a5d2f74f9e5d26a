//! Real SDKs on the ticket answers: wechatpy's ticket calls, cold and 200 at once, and the
//! signature endpoint checked by wechatpy's `get_jsapi_signature` and by WeCom's own
//! `@wecom/crypto` `getJsApiSignature`.

use super::*;

/// A page URL with a query and a fragment (the fragment is not signed).
const PAGE: &str = "https://app.example.com/jssdk/page?from=menu&x=1#/inbox";

/// 200 wechatpy clients, each with its own empty ticket cache, call
/// `client.jsapi.get_jsapi_ticket()` and `get_agent_ticket()` together: WeCom gets one fetch of
/// each ticket, every client the same two tickets; the signature endpoint agrees with wechatpy.
#[tokio::test]
async fn two_hundred_cold_wechatpy_clients_cost_one_fetch_of_each_ticket() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), "").await;
    sc.wait_ready().await;
    let args = vec![
        script("tests/sdk/wechatpy_tickets.py"),
        sc.base.clone(),
        CORP_ID.to_string(),
        "hr-bot".to_string(),
        "200".to_string(),
        PAGE.to_string(),
    ];
    let out = run("python3", args).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_ne!(
        out.status.code(),
        Some(2),
        "wechatpy is not installed: `python3 -m pip install wechatpy==1.8.18` (.ci/run installs it)"
    );
    assert!(
        out.status.success(),
        "wechatpy failed:\n{}{stdout}\nsidecar log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        sc.logs()
    );
    let seen: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(seen["calls"], 200, "{seen}");
    assert_eq!(seen["signatures_agree"]["corp"], true, "{seen}");
    assert_eq!(seen["signatures_agree"]["agent"], true, "{seen}");
    assert_eq!(fetched(&sim, JSAPI), 1, "{:?}", sim.counters().tickets);
    assert_eq!(fetched(&sim, AGENT_HR), 1, "{:?}", sim.counters().tickets);
    let m = sc.metrics().await;
    for kind in ["jsapi", "agent_config"] {
        let labels = [("app", "hr-bot"), ("kind", kind), ("result", "ok")];
        assert_eq!(
            m.value("wecom_ticket_refresh_total", &labels),
            Some(1.0),
            "{m}"
        );
        let left = m.value(
            "wecom_ticket_expires_in_seconds",
            &[("app", "hr-bot"), ("kind", kind)],
        );
        assert!(left.is_some_and(|s| s > 7000.0), "{kind}: {left:?}");
    }
}

/// The signature endpoint's answers for both kinds, checked with `@wecom/crypto` 1.0.1's
/// `getJsApiSignature` over the ticket the sidecar answers.
#[tokio::test]
async fn the_signature_endpoint_agrees_with_wecom_crypto() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), "").await;
    sc.wait_ready().await;
    for kind in ["corp", "agent"] {
        let args = vec![
            script("tests/sdk/wecom-crypto/jsapi_signature.mjs"),
            sc.base.clone(),
            "hr-bot".to_string(),
            kind.to_string(),
            PAGE.to_string(),
        ];
        let out = run("node", args).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_ne!(
            out.status.code(),
            Some(2),
            "@wecom/crypto is not installed: `npm ci` in tests/sdk/wecom-crypto (.ci/run does)"
        );
        assert!(
            out.status.success(),
            "{kind}: {stdout}{}\nsidecar log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            sc.logs()
        );
        let seen: Value = serde_json::from_str(stdout.trim()).unwrap();
        match kind {
            "corp" => assert_eq!(seen["corpid"], CORP_ID, "{seen}"),
            _ => assert_eq!(seen["agentid"], 1000002, "{seen}"),
        }
    }
    // One fetch each, however many answers were made from them.
    assert_eq!(fetched(&sim, JSAPI), 1);
    assert_eq!(fetched(&sim, AGENT_HR), 1);
}
