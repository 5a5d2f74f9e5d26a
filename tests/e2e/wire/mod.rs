//! The wire, both sides: interim and odd answers from the upstream, pipelined requests and
//! hop-by-hop headers from the app, and the bounds on app-facing connections (header, body
//! and idle timeouts, `max_connections`, the descriptor limit).
//!
//! Every test runs the real binary against the WeCom simulator; faults are injected at the
//! simulator (`Informational`, `FinalStatus`). Requests that `reqwest` cannot send (pipelined,
//! slow, half-written) go on a raw connection (the harness's [`Raw`]).

use std::net::SocketAddr;
use std::time::Duration;

use crate::harness::sim::FaultKind;
use crate::harness::*;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

mod connections;

const SEND: &str = "/cgi-bin/message/send";

/// Held by the tests that open thousands of connections, so they do not run at once: each
/// measures the sidecar under its own storm, not under the other's.
static STORM: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn message(text: &str) -> serde_json::Value {
    json!({"touser": "zhangsan", "msgtype": "text", "agentid": 1000002, "text": {"content": text}})
}

/// Access-log lines (target `access`) for `path`.
fn access_lines(sc: &Sidecar, path: &str) -> usize {
    sc.logs()
        .lines()
        .filter(|l| l.contains(" access: call ") && l.contains(&format!(" path={path} ")))
        .count()
}

fn sidecar_addr(sc: &Sidecar) -> SocketAddr {
    addr_of(&sc.base)
}

// ---------------------------------------------------------------------------------------------
// 1. Interim and odd final answers from the upstream
// ---------------------------------------------------------------------------------------------

/// `100 Continue` and `103 Early Hints` (any number) before WeCom's `200` are read and
/// dropped: the app gets WeCom's answer, the message is delivered once, and the call is in the
/// access log and the metrics. (Before: a panic in the exchange, the app's connection dropped
/// with no answer, no log line and no metric, while the message had reached WeCom.)
#[tokio::test]
async fn interim_answers_before_the_final_one_are_dropped() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), "").await;
    sc.wait_ready().await;
    let c = client();

    sim.inject(fault(
        SEND,
        FaultKind::Informational(vec![100, 103, 103]),
        Some(1),
    ));
    let (status, _, body) = post_json(&c, &sc.url(SEND), &message("after hints")).await;
    assert_eq!((status, body["errcode"].as_i64()), (200, Some(0)), "{body}");
    assert_eq!(sim.counters().messages_delivered, 1);

    sim.inject(fault(
        "/cgi-bin/user/get",
        FaultKind::Informational(vec![103; 20]),
        Some(1),
    ));
    let (status, _, body) = get_json(&c, &sc.url("/cgi-bin/user/get?userid=zhangsan")).await;
    assert_eq!((status, body["userid"].as_str()), (200, Some("zhangsan")));
    assert_eq!(
        calls(&sim, "/cgi-bin/user/get"),
        1,
        "answered on the first try"
    );

    // The connection the interim answers came on is still good for the next call.
    let (_, _, body) = get_json(&c, &sc.url("/cgi-bin/user/get?userid=lisi")).await;
    assert_eq!(body["errcode"], 0);

    let metrics = sc.settled_metrics().await;
    assert_eq!(
        metrics.sum(
            "wecom_api_request_duration_seconds_count",
            &[("api", "message/send")]
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        metrics.sum(
            "wecom_api_request_duration_seconds_count",
            &[("api", "user/get")]
        ),
        2.0
    );
    assert_eq!(access_lines(&sc, SEND), 1, "{}", sc.logs());
}

/// `101`, `204`, `304` and a status outside 100–599 as WeCom's final answer become the local
/// `upstream-unavailable` answer (502, errcode -1), logged and counted; a message sent that
/// way is not sent again, and a read is retried and answered.
#[tokio::test]
async fn odd_final_answers_get_a_clear_local_answer() {
    let sim = simulator().await;
    let sc = Sidecar::start(
        &sim.url(),
        "defaults:\n  retry: { attempts: 2, backoff_base: 10ms, backoff_max: 20ms }\n",
    )
    .await;
    sc.wait_ready().await;
    let c = client();

    let odd = [101u16, 204, 304, 600];
    for (i, code) in odd.iter().enumerate() {
        sim.inject(fault(SEND, FaultKind::FinalStatus(*code), Some(1)));
        let (status, headers, body) =
            post_json(&c, &sc.url(SEND), &message(&format!("odd {code}"))).await;
        assert_eq!(status, 502, "HTTP {code}: {body}");
        assert_eq!(body["errcode"], -1, "HTTP {code}: {body}");
        assert_eq!(
            headers.get("x-sidecar-reason").map(|v| v.to_str().unwrap()),
            Some("upstream-unavailable")
        );
        assert!(
            body["errmsg"].as_str().unwrap().contains(&code.to_string()),
            "{body}"
        );
        // Handled once at WeCom (the fault answers after delivering), never repeated.
        assert_eq!(sim.counters().messages_delivered, i as u64 + 1);
        assert_eq!(calls(&sim, SEND), i as u64 + 1);
    }

    // A read is safe to repeat: the retry gets the real answer.
    sim.inject(fault(
        "/cgi-bin/user/get",
        FaultKind::FinalStatus(204),
        Some(1),
    ));
    let (status, _, body) = get_json(&c, &sc.url("/cgi-bin/user/get?userid=zhangsan")).await;
    assert_eq!((status, body["errcode"].as_i64()), (200, Some(0)), "{body}");
    assert_eq!(calls(&sim, "/cgi-bin/user/get"), 2);

    let metrics = sc.settled_metrics().await;
    assert_eq!(
        metrics.sum(
            "wecom_api_request_duration_seconds_count",
            &[("api", "message/send")]
        ),
        odd.len() as f64
    );
    let bad = metrics.sum(
        "wecom_upstream_attempts_total",
        &[("api", "message/send"), ("result", "bad_response")],
    );
    assert_eq!(bad, odd.len() as f64, "{metrics}");
    assert_eq!(access_lines(&sc, SEND), odd.len(), "{}", sc.logs());
}

// ---------------------------------------------------------------------------------------------
// 2. Pipelined requests
// ---------------------------------------------------------------------------------------------

/// Writes `requests` on one new connection at once, half-closes it, and reads every answer.
async fn pipelined(sc: &Sidecar, requests: &[String]) -> Vec<Answer> {
    let mut conn = Raw::connect(sidecar_addr(sc)).await;
    conn.send(requests.concat().as_bytes()).await.unwrap();
    conn.finish().await.unwrap();
    conn.answers().await
}

/// 7 GETs and then 3 `message/send` written at once on one connection are all answered, in
/// order, and each is in the access log. (Before: one answer, then the connection closed and
/// the rest vanished without a log line.)
#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), "").await;
    sc.wait_ready().await;

    let gets: Vec<String> = (0..7)
        .map(|i| format!("GET /cgi-bin/user/get?userid=u{i} HTTP/1.1\r\nHost: sidecar\r\n\r\n"))
        .collect();
    let answers = pipelined(&sc, &gets).await;
    let users: Vec<String> = answers
        .iter()
        .map(|a| a.json()["userid"].as_str().unwrap_or("?").to_string())
        .collect();
    let expected: Vec<String> = (0..7).map(|i| format!("u{i}")).collect();
    assert_eq!(users, expected, "{answers:?}");

    let sends: Vec<String> = (0..3)
        .map(|i| {
            let body = message(&format!("pipelined {i}")).to_string();
            format!(
                "POST {SEND} HTTP/1.1\r\nHost: sidecar\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        })
        .collect();
    let answers = pipelined(&sc, &sends).await;
    assert_eq!(answers.len(), 3, "{answers:?}");
    assert!(
        answers.iter().all(|a| a.json()["errcode"] == 0),
        "{answers:?}"
    );
    assert_eq!(sim.counters().messages_delivered, 3);

    sc.settled_metrics().await;
    assert_eq!(access_lines(&sc, "/cgi-bin/user/get"), 7);
    assert_eq!(access_lines(&sc, SEND), 3);
}

// ---------------------------------------------------------------------------------------------
// 3. Hop-by-hop headers
// ---------------------------------------------------------------------------------------------

/// Hop-by-hop headers, and every name a `Connection` header lists, are not passed on: not to
/// WeCom, not to the app. End-to-end ones are.
#[tokio::test]
async fn hop_by_hop_headers_and_the_names_connection_lists_stay_on_their_hop() {
    let sim = simulator().await;
    let relay = Relay::start(sim.addr()).await;
    let sc = Sidecar::start(&relay.url, "").await;
    sc.wait_ready().await;

    // App → WeCom.
    let request = "GET /cgi-bin/user/get?userid=zhangsan HTTP/1.1\r\nHost: sidecar\r\n\
                   Connection: close, X-Hop\r\nConnection: X-Second-Hop\r\n\
                   X-Hop: must-not-pass\r\nX-Second-Hop: must-not-pass-either\r\n\
                   TE: trailers\r\nKeep-Alive: timeout=300\r\nProxy-Connection: keep-alive\r\n\
                   X-Keep: passes\r\n\r\n"
        .to_string();
    let answers = pipelined(&sc, &[request]).await;
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0].json()["userid"], "zhangsan");
    // `Connection: close` from the app is honoured on its own hop.
    assert_eq!(answers[0].header("connection"), Some("close"));
    let seen = relay.seen_text().to_ascii_lowercase();
    assert!(seen.contains("x-keep: passes"), "{seen}");
    for gone in [
        "x-hop",
        "x-second-hop",
        "must-not-pass",
        "te:",
        "keep-alive: timeout",
        "proxy-connection",
    ] {
        assert!(!seen.contains(gone), "{gone} reached WeCom:\n{seen}");
    }

    // WeCom → app.
    sim.inject(fault(
        "/cgi-bin/user/get",
        FaultKind::AnswerHeaders(vec![
            ("Connection".into(), "X-Up-Hop, keep-alive".into()),
            ("X-Up-Hop".into(), "must-not-pass".into()),
            ("Keep-Alive".into(), "timeout=300".into()),
            ("X-Up-Keep".into(), "passes".into()),
        ]),
        Some(1),
    ));
    let (status, headers, body) =
        get_json(&client(), &sc.url("/cgi-bin/user/get?userid=lisi")).await;
    assert_eq!((status, body["userid"].as_str()), (200, Some("lisi")));
    assert_eq!(headers.get("x-up-keep").unwrap(), "passes");
    assert!(headers.get("x-up-hop").is_none(), "{headers:?}");
    assert!(headers.get("keep-alive").is_none(), "{headers:?}");
}
