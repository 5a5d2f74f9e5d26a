//! The fleet client against a real redis-server: sharing while Redis answers, deciding
//! locally at once while it does not (one probe per `DOWN_RETRY`, one connect per
//! `CONNECT_EVERY`), and what `/admin/status` and the metrics say meanwhile.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::test_redis::{client, FleetOf, Redis};
use super::*;

async fn ping(conn: ConnectionManager, calls: &AtomicU32) -> redis::RedisResult<String> {
    calls.fetch_add(1, Ordering::SeqCst);
    let mut conn = conn;
    redis::cmd("PING").query_async(&mut conn).await
}

/// An operation Redis refuses (an unknown command): Redis "answered nonsense".
async fn refused(conn: ConnectionManager) -> redis::RedisResult<String> {
    let mut conn = conn;
    redis::cmd("NO-SUCH-COMMAND").query_async(&mut conn).await
}

#[tokio::test]
async fn operations_run_on_redis_while_it_answers() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let (fleet, metrics) = redis.fleet("t1:");
    assert_eq!(metrics.redis_up.get(), 0, "not up before it answered");
    assert_eq!(
        fleet.status()["redis_up"],
        false,
        "not up before it answered"
    );
    let calls = AtomicU32::new(0);
    assert_eq!(fleet.run(|c| ping(c, &calls)).await, Ok("PONG".to_string()));
    assert_eq!(fleet.run(|c| ping(c, &calls)).await, Ok("PONG".into()));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(fleet.up());
    assert_eq!(metrics.redis_up.get(), 1);
    assert_eq!(fleet.status()["redis_up"], true);
}

#[tokio::test]
async fn while_redis_fails_calls_decide_locally_and_one_probe_per_interval_resumes() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let (fleet, metrics) = redis.fleet("t2:");
    let calls = AtomicU32::new(0);
    assert_eq!(fleet.run(|c| ping(c, &calls)).await, Ok("PONG".into()));
    // Longer than DOWN_RETRY since Redis last answered: the interval counts from the failure.
    tokio::time::sleep(DOWN_RETRY + Duration::from_millis(200)).await;
    assert_eq!(fleet.run(refused).await, Err(FleetDown));
    assert!(!fleet.up());
    assert_eq!(metrics.redis_up.get(), 0);
    assert_eq!(fleet.status()["redis_up"], false);

    // Right after the failure: no call waits on Redis, none even reaches it.
    for _ in 0..3 {
        assert_eq!(fleet.run(|c| ping(c, &calls)).await, Err(FleetDown));
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "Redis was tried while down"
    );

    // After DOWN_RETRY one call probes (the one beside it still decides locally), finds Redis
    // answering, and sharing resumes for every call.
    tokio::time::sleep(DOWN_RETRY + Duration::from_millis(200)).await;
    let (a, b) = tokio::join!(
        fleet.run(|c| ping(c, &calls)),
        fleet.run(|c| ping(c, &calls))
    );
    assert_eq!((a, b), (Ok("PONG".into()), Err(FleetDown)));
    assert_eq!(calls.load(Ordering::SeqCst), 2, "exactly one probe");
    assert!(fleet.up());
    assert_eq!(metrics.redis_up.get(), 1);
    assert_eq!(fleet.run(|c| ping(c, &calls)).await, Ok("PONG".into()));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_failed_connect_is_tried_again_only_after_connect_every() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    // The client's socket path does not exist yet: the first connect fails.
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("later.sock");
    let (fleet, metrics) = client(&format!("redis+unix://{}", link.display()), "t3:");
    // (The attempt itself takes longer than CONNECT_EVERY: the client retries within it.)
    assert!(fleet.conn().await.is_none());
    assert!(!fleet.up());
    assert_eq!(metrics.redis_up.get(), 0);
    // Redis is reachable there from now on; still no new attempt within CONNECT_EVERY.
    std::os::unix::fs::symlink(redis.socket(), &link).unwrap();
    assert!(fleet.conn().await.is_none(), "connected again at once");
    tokio::time::sleep(CONNECT_EVERY + Duration::from_millis(200)).await;
    assert!(
        fleet.conn().await.is_some(),
        "not connected after CONNECT_EVERY"
    );
    let calls = AtomicU32::new(0);
    assert_eq!(fleet.run(|c| ping(c, &calls)).await, Ok("PONG".into()));
    assert!(fleet.up());
}

#[tokio::test]
async fn fallbacks_are_counted_by_what_and_shown_in_status() {
    // No Redis needed: nothing here talks to it.
    let (fleet, metrics) = client("redis://127.0.0.1:1/0", "corp-a:");
    fleet.fell_back("quota");
    fleet.fell_back("quota");
    fleet.fell_back("token");
    let v = |w: &str| metrics.fleet_fallbacks.with_label_values(&[w]).get();
    assert_eq!((v("quota"), v("token")), (2, 1));
    let mut status = fleet.status();
    // Before Redis has answered, status says it is not up, as `wecom_redis_up` does (the
    // first call still tries it).
    assert_eq!(
        status.as_object_mut().unwrap().remove("redis_up"),
        Some(false.into())
    );
    assert_eq!(metrics.redis_up.get(), 0);
    assert_eq!(
        status,
        serde_json::json!({
            "mode": "fleet",
            "key_prefix": "corp-a:",
            "size": 4,
            "shares_quotas": true,
            "shares_tokens": true,
            "fallbacks": {"quota": 2, "token": 1},
        })
    );
}

#[test]
fn an_unusable_url_is_refused_without_quoting_it() {
    let metrics = Arc::new(Metrics::new());
    let fleet = Fleet {
        redis_url: crate::config::Secret::new("nosuch://:pa55word-in-url@redis:6379/0"),
        key_prefix: "x:".into(),
        size: 0,
        share: vec![],
        timeout: Duration::from_secs(1),
    };
    let err = FleetClient::new(&fleet, metrics).err().expect("refused");
    assert!(err.starts_with("fleet.redis_url is not usable"), "{err}");
    assert!(!err.contains("pa55word"), "{err}");
}
