//! The Redis store's tests, against a real redis-server.

use super::*;
use crate::test_redis::Redis;

/// A real redis-server (`crate::test_redis`) and a client of it. The store's tests need one:
/// they fail, saying so, when it is not installed.
async fn server() -> (Redis, redis::Client) {
    let server = Redis::start()
        .await
        .expect("redis-server must be installed (apt-get install redis-server)");
    let client = server.client();
    (server, client)
}

async fn store(client: &redis::Client, consumer: &str, lease: Duration) -> RedisStore {
    let conn = client.get_connection_manager().await.unwrap();
    RedisStore::new(
        conn,
        "t",
        consumer,
        Leases {
            callbacks: lease,
            outbox: lease,
        },
        Duration::from_secs(3600),
        Duration::from_secs(2),
    )
}

#[tokio::test]
async fn fifo_with_dedupe_attempts_and_dead_letters() {
    let (_srv, client) = server().await;
    let s = store(&client, "a", Duration::from_secs(10)).await;
    let a = s.add("cb:hr", [1; 32], b"m1", b"one").await.unwrap();
    let b = s.add("cb:hr", [2; 32], b"m2", b"two").await.unwrap();
    assert!(matches!((a, b), (Added::New(_), Added::New(_))) && a.id() < b.id());
    assert_eq!(
        s.add("cb:hr", [1; 32], b"", b"one").await.unwrap(),
        Added::Duplicate(a.id())
    );

    let head = s.head("cb:hr").await.unwrap().unwrap();
    assert_eq!(
        (head.id, &head.payload[..], &head.meta[..]),
        (a.id(), &b"one"[..], &b"m1"[..])
    );
    // Asking again hands out the same head until it is done.
    assert_eq!(s.head("cb:hr").await.unwrap().unwrap().id, a.id());
    assert_eq!(s.failed("cb:hr", a.id(), "HTTP 500").await.unwrap(), 1);
    assert_eq!(s.failed("cb:hr", a.id(), "timeout").await.unwrap(), 2);
    let head = s.head("cb:hr").await.unwrap().unwrap();
    assert_eq!(
        (head.attempts, head.last_error.as_deref()),
        (2, Some("timeout"))
    );
    assert_eq!(s.depth("cb:hr").await.unwrap().queued, 2);

    s.bury("cb:hr", a.id(), "too old").await.unwrap();
    assert_eq!(s.head("cb:hr").await.unwrap().unwrap().id, b.id());
    let dead = s.dead("cb:hr", 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].id, dead[0].attempts), (a.id(), 2));
    assert_eq!(dead[0].last_error.as_deref(), Some("too old"));
    s.done("cb:hr", b.id()).await.unwrap();
    assert_eq!(s.head("cb:hr").await.unwrap(), None);
    let d = s.depth("cb:hr").await.unwrap();
    assert_eq!((d.queued, d.dead, d.oldest_ms), (0, 1, None));

    let revived = s.revive("cb:hr", a.id()).await.unwrap().unwrap();
    assert!(revived > b.id());
    let head = s.head("cb:hr").await.unwrap().unwrap();
    assert_eq!(
        (head.id, head.attempts, &head.payload[..]),
        (revived, 0, &b"one"[..])
    );
    assert_eq!(s.revive("cb:hr", a.id()).await.unwrap(), None);
    s.bury("cb:hr", revived, "again").await.unwrap();
    assert!(s.forget("cb:hr", revived).await.unwrap());
    assert!(!s.forget("cb:hr", revived).await.unwrap());
}

#[tokio::test]
async fn one_sidecar_delivers_a_queue_and_another_takes_over_when_its_lease_ends() {
    let (_srv, client) = server().await;
    let lease = Duration::from_millis(300);
    let a = store(&client, "a", lease).await;
    let b = store(&client, "b", lease).await;
    let first = a.add("q", [1; 32], b"", b"1").await.unwrap().id();
    b.add("q", [2; 32], b"", b"2").await.unwrap();
    assert_eq!(a.head("q").await.unwrap().unwrap().id, first);
    a.failed("q", first, "HTTP 503").await.unwrap();
    // While a holds the queue, b gets nothing.
    assert_eq!(b.head("q").await.unwrap(), None);
    // a stops (dies): after its lease, b claims a's unacknowledged head, attempts and all.
    tokio::time::sleep(lease * 2).await;
    let head = b.head("q").await.unwrap().unwrap();
    assert_eq!((head.id, head.attempts), (first, 1));
    assert_eq!(a.head("q").await.unwrap(), None, "a lost the lease");
    b.done("q", first).await.unwrap();
    assert_eq!(&b.head("q").await.unwrap().unwrap().payload[..], b"2");
}

#[tokio::test]
async fn adds_within_limits_count_bytes_and_waiting_items() {
    let (_srv, client) = server().await;
    let s = store(&client, "a", Duration::from_secs(10)).await;
    let limits = Limits {
        max_bytes: 10,
        max_queued: 2,
    };
    let a = s
        .add_within("o:hr", [1; 32], b"mm", b"abc", limits)
        .await
        .unwrap();
    let b = s
        .add_within("o:hr", [2; 32], b"mm", b"abc", limits)
        .await
        .unwrap();
    let (Ok(Added::New(a)), Ok(Added::New(b))) = (a, b) else {
        panic!("{a:?} {b:?}");
    };
    assert_eq!(
        s.add_within("o:hr", [3; 32], b"", b"x", limits)
            .await
            .unwrap(),
        Err(Full::Queued { queued: 2, max: 2 })
    );
    assert_eq!(
        s.add_within("o:hr", [1; 32], b"mm", b"abc", limits)
            .await
            .unwrap(),
        Ok(Added::Duplicate(a))
    );
    assert_eq!(s.used_bytes().await.unwrap(), 10);
    assert_eq!(
        s.add_within("o:ops", [4; 32], b"", b"x", limits)
            .await
            .unwrap(),
        Err(Full::Bytes {
            used: 10,
            size: 1,
            max: 10
        })
    );
    // Dead letters keep their bytes until forgotten; delivered items free theirs.
    assert_eq!(s.head("o:hr").await.unwrap().unwrap().id, a);
    s.bury("o:hr", a, "gone").await.unwrap();
    assert_eq!(s.used_bytes().await.unwrap(), 10);
    assert!(s.forget("o:hr", a).await.unwrap());
    assert_eq!(s.used_bytes().await.unwrap(), 5);
    assert_eq!(s.head("o:hr").await.unwrap().unwrap().id, b);
    s.done("o:hr", b).await.unwrap();
    assert_eq!(s.used_bytes().await.unwrap(), 0);
    assert_eq!(s.depth("o:hr").await.unwrap().queued, 0);
    // Unbounded adds (callbacks) are counted too.
    s.add("o:ops", [5; 32], b"", b"xyz").await.unwrap();
    assert_eq!(s.used_bytes().await.unwrap(), 3);
}

#[tokio::test]
async fn a_head_says_until_when_its_sidecar_holds_the_queue() {
    let (_srv, client) = server().await;
    let lease = Duration::from_millis(400);
    let a = store(&client, "a", lease).await;
    let b = store(&client, "b", lease).await;
    let id = a.add("q", [3; 32], b"", b"x").await.unwrap().id();
    let before = std::time::Instant::now();
    let (item, until) = a.head_held("q").await.unwrap().unwrap();
    assert_eq!(item.id, id);
    let until = until.expect("a fleet store holds its queues for a lease");
    assert!(
        until >= before + lease,
        "the hold starts before the renewal is sent"
    );
    assert!(until <= std::time::Instant::now() + lease);
    // Within the hold no other sidecar gets the item; after it, one does.
    assert_eq!(b.head_held("q").await.unwrap(), None);
    tokio::time::sleep_until((until + lease / 4).into()).await;
    let (taken, _) = b.head_held("q").await.unwrap().unwrap();
    assert_eq!(taken.id, id);
}
