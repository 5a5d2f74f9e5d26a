//! Tests of the local quotas beside the module's own: how long an idle state is kept, the
//! wait a refusal carries, a sidecar's share of each limit while the fleet's Redis is down, a
//! route quota on messages, and the edges of WeCom's blocks.

use moka::Expiry;

use super::*;

fn app() -> AppName {
    AppName("hr".into())
}

fn rate(count: u32, secs: u64) -> Rate {
    Rate {
        count,
        per: Duration::from_secs(secs),
    }
}

/// How long a state of `key` is kept once idle, as the cache is told on its creation and on
/// each read.
fn kept(key: &Key) -> (Option<Duration>, Option<Duration>) {
    let cells = Arc::new(Mutex::new(Cells::new(1, Instant::now())));
    let now = std::time::Instant::now();
    let created = IdleForItsWindow.expire_after_create(key, &cells, now);
    let read =
        IdleForItsWindow.expire_after_read(key, &cells, now, Some(Duration::from_millis(1)), now);
    (created, read)
}

#[test]
fn an_idle_state_is_kept_for_its_longest_window_and_a_bucket_then_forgotten() {
    let hour_and_second = Key::Call {
        app: app(),
        api: "user/get".into(),
        limits: vec![rate(5, 1), rate(100, 3600)],
    };
    let day = Key::Call {
        app: app(),
        api: "user/get".into(),
        limits: vec![rate(1000, 86_400)],
    };
    let recipient = Key::Recipient {
        app: app(),
        user: "alice".into(),
    };
    let robot = Key::Robot { key: 7 };
    for (key, window) in [
        (&hour_and_second, 3600),
        (&day, 86_400),
        (&recipient, 3600),
        (&robot, 60),
    ] {
        let window = Duration::from_secs(window);
        let bucket = window / window::BUCKETS;
        let (created, read) = kept(key);
        let created = created.expect("an idle state is forgotten");
        // Forgotten earlier, the calls still in its window would count no more: more than
        // the limit would pass.
        assert!(created >= window + bucket, "{key:?}: kept {created:?}");
        // Kept longer, every member ever messaged would be held (a recipient for a day
        // beside the others, not an hour).
        assert!(
            created <= window + bucket + Duration::from_secs(1),
            "{key:?}: kept {created:?}"
        );
        assert_eq!(
            read,
            Some(created),
            "{key:?}: a state read (a call counted in it) is kept from that read"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn each_refusal_carries_the_wait_until_the_call_would_pass() {
    let q = Quotas::default();
    let api: Arc<str> = "user/get".into();
    let limits = [rate(1, 1)];
    let ask = Ask {
        app: &app(),
        api: &api,
        limits: &limits,
        recipients: &[],
        robot: None,
        share: 1,
    };
    q.take(&ask).unwrap();
    tokio::time::advance(Duration::from_millis(250)).await;
    let over = q.take(&ask).unwrap_err();
    assert!(matches!(over, Refusal::Limit { .. }), "{over:?}");
    // The call leaves the window a second after it, give or take the bucket it fell in.
    let wait = over.wait();
    let bucket = Duration::from_secs(1) / window::BUCKETS;
    assert!(
        wait > Duration::from_millis(750) && wait <= Duration::from_millis(750) + bucket,
        "{wait:?}"
    );
    tokio::time::advance(wait).await;
    q.take(&ask).expect("the call passes once its wait is over");

    let to_alice = ["alice".to_string()];
    let message = Ask {
        api: &api,
        limits: &[],
        recipients: &to_alice,
        ..ask
    };
    for _ in 0..30 {
        q.take(&message).unwrap();
    }
    let over = q.take(&message).unwrap_err();
    assert!(matches!(over, Refusal::Recipients { .. }), "{over:?}");
    assert!(over.wait() > Duration::from_secs(59), "{:?}", over.wait());

    q.block(&app(), &api, MINUTE_BLOCK);
    let over = q.take(&ask).unwrap_err();
    assert_eq!(over, Refusal::Blocked { wait: MINUTE_BLOCK });
    assert_eq!(over.wait(), MINUTE_BLOCK);
}

/// Calls of `ask` that pass at one instant.
fn passing(q: &Quotas, ask: &Ask<'_>) -> u32 {
    let mut n = 0;
    while q.take(ask).is_ok() {
        n += 1;
        assert!(n <= 1000, "no limit held");
    }
    n
}

#[tokio::test(start_paused = true)]
async fn while_redis_is_down_a_sidecar_keeps_its_share_of_each_limit() {
    let q = Quotas::default();
    let api: Arc<str> = "user/get".into();
    let five = [rate(5, 1)];
    let hr = app();
    let ask = |share| Ask {
        app: &hr,
        api: &api,
        limits: &five,
        recipients: &[],
        robot: None,
        share,
    };
    // Each share counts apart (a state per scaled limit), so one instant tells them all.
    assert_eq!(passing(&q, &ask(2)), 2, "5/s shared by 2 sidecars");
    assert_eq!(passing(&q, &ask(10)), 1, "at least one call each");
    assert_eq!(passing(&q, &ask(1)), 5, "the whole limit");
    // A member's cap and a robot's are shared the same way.
    let to_bob = ["bob".to_string()];
    let message = Ask {
        limits: &[],
        recipients: &to_bob,
        ..ask(2)
    };
    assert_eq!(passing(&q, &message), 15, "30/min to one member, by 2");
    let robot = Ask {
        limits: &[],
        robot: Some(1),
        ..ask(4)
    };
    assert_eq!(passing(&q, &robot), 5, "20/min per robot, by 4");
}

#[tokio::test(start_paused = true)]
async fn a_route_quota_holds_messages_too_and_is_named_as_the_limit() {
    let q = Quotas::default();
    let api: Arc<str> = "message/send".into();
    let two = [rate(2, 60)];
    let hr = app();
    let to = |member: &str| [member.to_string()];
    let (a, b, c) = (to("a"), to("b"), to("c"));
    let ask = |members| Ask {
        app: &hr,
        api: &api,
        limits: &two,
        recipients: members,
        robot: None,
        share: 1,
    };
    q.take(&ask(&a)).unwrap();
    q.take(&ask(&b)).unwrap();
    // c is far under the member cap: the route's quota is what refuses.
    match q.take(&ask(&c)) {
        Err(Refusal::Limit { wait }) => assert!(wait > Duration::from_secs(58), "{wait:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(q.remaining(&app(), &api, &two), vec![0]);
}

#[tokio::test(start_paused = true)]
async fn a_block_holds_to_its_last_instant_and_ends_at_it() {
    let q = Quotas::default();
    let api: Arc<str> = "user/get".into();
    // Off a millisecond's edge: the last instants share the end's millisecond.
    tokio::time::advance(Duration::from_micros(300)).await;
    q.block(&app(), &api, MINUTE_BLOCK);
    tokio::time::advance(MINUTE_BLOCK - Duration::from_micros(100)).await;
    assert_eq!(
        q.blocked_for(&app(), &api),
        Some(Duration::from_micros(100)),
        "the block's last millisecond"
    );
    tokio::time::advance(Duration::from_micros(100)).await;
    assert_eq!(q.blocked_for(&app(), &api), None, "over at its end");
}

#[tokio::test(start_paused = true)]
async fn a_longer_block_announced_later_extends_a_shorter_one() {
    let q = Quotas::default();
    let api: Arc<str> = "message/send".into();
    q.block(&app(), &api, CONCURRENCY_BLOCK);
    q.block(&app(), &api, MINUTE_BLOCK);
    assert_eq!(q.blocked_for(&app(), &api), Some(MINUTE_BLOCK));
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(
        q.blocked_for(&app(), &api),
        Some(Duration::from_secs(30)),
        "past the 45033's seconds, the minute block holds"
    );
}

#[test]
fn day_blocks_and_day_counts_read_the_wall_clock() {
    // A day block or a recipients_per_day count ends at the real China midnight.
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let now = day::now_unix();
    // Read around the same instant: at most a second apart (a second may turn between).
    assert!(
        now.abs_diff(wall) <= 1,
        "now_unix {now}, the wall clock {wall}"
    );
}
