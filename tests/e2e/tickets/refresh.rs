//! A ticket's life at the sidecar: fetched with a token WeCom rejects (the token is replaced
//! and the fetch made again), and refreshed ahead of its expiry by the call that finds it due.

use super::*;

/// Every token the sidecar holds is invalidated at WeCom: the ticket fetch gets 40014, the
/// token is replaced once, and the ticket is fetched with the new one.
#[tokio::test]
async fn a_rejected_token_is_replaced_and_the_ticket_fetched_with_the_new_one() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), "").await;
    sc.wait_ready().await;
    sim.invalidate_all_tokens();
    let (reason, v) = ticket_call(&sc, "hr-bot", "/cgi-bin/get_jsapi_ticket").await;
    assert_eq!(
        (reason.as_deref(), &v["errcode"]),
        (Some("ticket"), &0.into()),
        "{v}\n{}",
        sc.logs()
    );
    assert_eq!(
        sim.counters().gettoken["hr-bot"],
        2,
        "one gettoken at start, one replacement"
    );
    assert_eq!(
        calls(&sim, "/cgi-bin/get_jsapi_ticket"),
        2,
        "rejected, then fetched"
    );
    assert_eq!(fetched(&sim, JSAPI), 1);
}

/// Tickets live 63 s at this simulator and are refreshed 60 s ahead: a few seconds after the
/// first fetch a call finds the ticket due and fetches the next, every call answered meanwhile.
#[tokio::test]
async fn a_ticket_due_is_refreshed_ahead_of_its_expiry() {
    let mut cfg = sim_config();
    cfg.ticket_ttl = std::time::Duration::from_secs(63);
    let sim = Simulator::start("127.0.0.1:0".parse().unwrap(), cfg)
        .await
        .unwrap();
    let bounds =
        "token:\n  refresh_before_expiry: 60s\n  min_fetch_interval: 1s\n  min_refetch: 500ms\n";
    let sc = Sidecar::start(&sim.url(), bounds).await;
    sc.wait_ready().await;
    let path = "/cgi-bin/ticket/get?type=agent_config";
    let (_, first) = ticket_call(&sc, "hr-bot", path).await;
    let first = first["ticket"].as_str().unwrap().to_string();
    let mut answers = 0;
    let refreshed = eventually(std::time::Duration::from_secs(20), async || {
        let (_, v) = ticket_call(&sc, "hr-bot", path).await;
        assert_eq!(v["errcode"], 0, "{v}");
        answers += 1;
        v["ticket"].as_str() != Some(first.as_str())
    })
    .await;
    assert!(refreshed, "the ticket was never refreshed:\n{}", sc.logs());
    assert!(answers > 1, "the first ticket served while it was not due");
    assert_eq!(fetched(&sim, AGENT_HR), 2);
}
