//! The admin listener's connections, and a reload of the app connections' bounds: what a
//! client that is not a well-behaved operator tool gets there. The admin port shares the process's descriptors
//! with the app port and the upstreams, so its connections keep the same bounds as app ones
//! (`client.header_timeout`), and a head it refuses gets an answer, not a silent close.
//!
//! Every test runs the real binary against the WeCom simulator, on raw connections (the
//! harness's [`Raw`]).

use std::time::Duration;

use crate::harness::*;
use tokio::net::TcpStream;

/// Longest wait for an answer or a close; past it the sidecar holds the connection.
const PATIENCE: Duration = Duration::from_secs(8);

/// Reads until the sidecar closes the connection; `None` when it is still open after
/// [`PATIENCE`] without a byte.
async fn read_until_close(conn: &mut Raw<TcpStream>) -> Option<String> {
    let (out, end) = conn.until_close().await;
    (end != End::TimedOut).then(|| String::from_utf8_lossy(&out).into_owned())
}

/// A head sent slowly, or never finished, on the admin port is cut at `header_timeout`
/// (1 s here), as on the app port: otherwise each such connection holds a descriptor for
/// ever, and enough of them starve the upstream calls of descriptors.
#[tokio::test]
async fn a_slow_head_on_the_admin_port_is_cut_at_header_timeout() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), "client:\n  header_timeout: 1s\n").await;
    sc.wait_ready().await;
    let mut slow = Raw::connect(addr_of(&sc.admin)).await.within(PATIENCE);
    slow.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    assert!(
        read_until_close(&mut slow).await.is_some(),
        "an unfinished head on the admin port was held open"
    );
    // The listener still answers a whole request.
    let (status, _) = get_text(&format!("{}/healthz", sc.admin)).await;
    assert_eq!(status, 200);
}

/// Heads pingora refuses before the admin routes see them (userinfo in `Host`, two `Host`
/// fields, an absolute-form target whose authority differs from `Host`) get a 400, the same
/// as on the app port, instead of a dropped connection.
#[tokio::test]
async fn a_malformed_admin_head_gets_a_400_not_a_dropped_connection() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), "").await;
    sc.wait_ready().await;
    let heads = [
        "GET /admin/status HTTP/1.1\r\nHost: user@localhost\r\n\r\n",
        "GET /admin/status HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n",
        "GET http://evil.example/admin/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    ];
    for head in heads {
        let mut conn = Raw::connect(addr_of(&sc.admin)).await.within(PATIENCE);
        conn.send(head.as_bytes()).await.unwrap();
        let answer = read_until_close(&mut conn).await.unwrap_or_default();
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{head:?} got {answer:?}"
        );
        assert!(!answer.contains("corp_id"), "{answer}");
    }
}

async fn get_text(url: &str) -> (u16, String) {
    let r = client().get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// A reload that lowers `client.idle_timeout` applies to connections already idle between
/// calls, not only to those that go idle later: an operator lowering it (say, to shed idle
/// connections during an incident) sees it take effect on the connections open now.
#[tokio::test]
async fn a_reload_lowering_idle_timeout_applies_to_connections_already_idle() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), "client:\n  idle_timeout: 60s\n").await;
    sc.wait_ready().await;
    let mut conn = Raw::connect(addr_of(&sc.base)).await.within(PATIENCE);
    conn.send(b"GET /cgi-bin/user/get?userid=zhangsan HTTP/1.1\r\nHost: s\r\n\r\n")
        .await
        .unwrap();
    let first = conn.answered().await;
    assert_eq!(
        first.status,
        Some(200),
        "first call answered: {}",
        first.show()
    );
    let yaml = std::fs::read_to_string(&sc.config_path).unwrap();
    std::fs::write(
        &sc.config_path,
        yaml.replace("idle_timeout: 60s", "idle_timeout: 1s"),
    )
    .unwrap();
    let (status, body) = sc.reload().await;
    assert_eq!(status, 200, "{body}");
    assert!(
        read_until_close(&mut conn).await.is_some(),
        "an idle connection kept the idle_timeout of before the reload"
    );
}
