//! The fleet's per-day member count against a real redis-server: the cap, per app and China
//! day, and the key's expiry a day after its day ends.

use super::super::test_redis::{FleetOf, Redis};
use super::*;

/// 2026-12-01 10:00 China time (02:00 UTC).
const MORNING: u64 = 1_796_090_400;

#[tokio::test]
async fn members_are_counted_up_to_the_cap_per_app_and_china_day() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let (fleet, _) = redis.fleet("p:");
    let (other_pod, _) = redis.fleet("p:");
    let hr = AppName("hr".into());
    assert_eq!(take(&fleet, &hr, 3, 5, MORNING).await, Ok(true));
    // 3 + 3 > 5: refused, and nothing counted, so 2 more still fit (from any pod).
    assert_eq!(take(&other_pod, &hr, 3, 5, MORNING).await, Ok(false));
    assert_eq!(take(&other_pod, &hr, 2, 5, MORNING + 60).await, Ok(true));
    assert_eq!(take(&fleet, &hr, 1, 5, MORNING + 120).await, Ok(false));
    // Another app, the next China day (16:00 UTC is midnight there), another fleet: apart.
    assert_eq!(
        take(&fleet, &AppName("ops".into()), 5, 5, MORNING).await,
        Ok(true)
    );
    let tomorrow = MORNING + 14 * 3600;
    assert_eq!(take(&fleet, &hr, 5, 5, tomorrow).await, Ok(true));
    let (other_fleet, _) = redis.fleet("q:");
    assert_eq!(take(&other_fleet, &hr, 5, 5, MORNING).await, Ok(true));
}

#[tokio::test]
async fn a_day_s_count_expires_a_day_after_the_day_ends() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let (fleet, _) = redis.fleet("p:");
    let hr = AppName("hr".into());
    assert_eq!(take(&fleet, &hr, 1, 5, MORNING).await, Ok(true));
    let mut conn = redis.conn().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let ttl: i64 = redis::cmd("TTL")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    // 14 h to China's midnight, then a day.
    let want = 14 * 3600 + 86_400;
    assert!(ttl <= want && ttl > want - 60, "ttl {ttl}, want {want}");
}

#[tokio::test]
async fn redis_down_is_fleet_down() {
    let Some(mut redis) = Redis::start().await else {
        return;
    };
    let (fleet, _) = redis.fleet("p:");
    let hr = AppName("hr".into());
    assert_eq!(take(&fleet, &hr, 1, 5, MORNING).await, Ok(true));
    redis.stop();
    assert_eq!(take(&fleet, &hr, 1, 5, MORNING).await, Err(FleetDown));
}
