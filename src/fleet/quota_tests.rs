//! The shared quota script's Rust side against a real redis-server: the keys a call counts
//! under (route, recipient, robot; per prefix), reading the script's answer into a refusal
//! that names the right members, and Redis down.

use std::sync::Arc;
use std::time::Duration;

use super::super::test_redis::{FleetOf, Redis};
use super::*;
use crate::config::{AppName, Rate};

fn rate(count: u32, secs: u64) -> Rate {
    Rate {
        count,
        per: Duration::from_secs(secs),
    }
}

struct Call {
    app: AppName,
    api: Arc<str>,
    limits: Vec<Rate>,
    recipients: Vec<String>,
    robot: Option<u64>,
}

impl Call {
    fn new(app: &str, api: &str, limits: &[Rate], recipients: &[&str]) -> Call {
        Call {
            app: AppName(app.into()),
            api: api.into(),
            limits: limits.to_vec(),
            recipients: recipients.iter().map(|s| s.to_string()).collect(),
            robot: None,
        }
    }

    fn ask(&self) -> Ask<'_> {
        Ask {
            app: &self.app,
            api: &self.api,
            limits: &self.limits,
            recipients: &self.recipients,
            robot: self.robot,
            share: 1,
        }
    }
}

/// The wait of a refusal of the route's own limit, which must lie in (0, `per`].
fn limit_wait(r: Result<Result<(), Refusal>, FleetDown>, per: Duration) -> Duration {
    match r {
        Ok(Err(Refusal::Limit { wait })) => {
            assert!(
                wait > Duration::ZERO && wait <= per + per / BUCKETS,
                "wait {wait:?}"
            );
            wait
        }
        other => panic!("expected a refusal by the route's limit, got {other:?}"),
    }
}

#[tokio::test]
async fn a_route_limit_is_kept_fleet_wide_and_per_prefix() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let (a, _) = redis.fleet("corp1:");
    let (b, _) = redis.fleet("corp1:");
    let (other, _) = redis.fleet("corp2:");
    let call = Call::new("hr", "/cgi-bin/user/get", &[rate(3, 60)], &[]);
    assert_eq!(take(&a, &call.ask()).await, Ok(Ok(())));
    assert_eq!(take(&b, &call.ask()).await, Ok(Ok(())));
    assert_eq!(take(&a, &call.ask()).await, Ok(Ok(())));
    // The fourth, from either pod, is refused: the limit is the fleet's.
    limit_wait(take(&b, &call.ask()).await, Duration::from_secs(60));
    limit_wait(take(&a, &call.ask()).await, Duration::from_secs(60));
    // Another app, another API, another fleet (prefix): their own counts.
    let hr2 = Call::new("hr2", "/cgi-bin/user/get", &[rate(3, 60)], &[]);
    let list = Call::new("hr", "/cgi-bin/user/list", &[rate(3, 60)], &[]);
    assert_eq!(take(&a, &hr2.ask()).await, Ok(Ok(())));
    assert_eq!(take(&a, &list.ask()).await, Ok(Ok(())));
    assert_eq!(take(&other, &call.ask()).await, Ok(Ok(())));
    // Each limit of a route counts on its own: a second, looser limit passes, the first refuses.
    let two = Call::new(
        "hr",
        "/cgi-bin/user/get",
        &[rate(3, 60), rate(100, 3600)],
        &[],
    );
    limit_wait(take(&a, &two.ask()).await, Duration::from_secs(60));
}

#[tokio::test]
async fn a_refused_call_counts_in_no_limit() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let (fleet, _) = redis.fleet("p:");
    let tight = Call::new("hr", "/a", &[rate(1, 60), rate(2, 60)], &[]);
    let loose = Call::new("hr", "/a", &[rate(2, 60)], &[]);
    assert_eq!(take(&fleet, &tight.ask()).await, Ok(Ok(())));
    limit_wait(take(&fleet, &tight.ask()).await, Duration::from_secs(60));
    limit_wait(take(&fleet, &tight.ask()).await, Duration::from_secs(60));
    // The refusals took nothing from the 2-a-minute limit: one more passes there.
    assert_eq!(take(&fleet, &loose.ask()).await, Ok(Ok(())));
    limit_wait(take(&fleet, &loose.ask()).await, Duration::from_secs(60));
}

#[tokio::test]
async fn recipients_over_their_share_are_named_and_the_route_limit_is_not_theirs() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let (fleet, _) = redis.fleet("p:");
    let minute = RECIPIENT_LIMITS[0];
    let to_alice = Call::new("hr", "/cgi-bin/message/send", &[], &["alice"]);
    for _ in 0..minute.count {
        assert_eq!(take(&fleet, &to_alice.ask()).await, Ok(Ok(())));
    }
    let both = Call::new("hr", "/cgi-bin/message/send", &[], &["bob", "alice"]);
    match take(&fleet, &both.ask()).await {
        Ok(Err(Refusal::Recipients { members, wait })) => {
            assert_eq!(members, ["alice"]);
            assert!(
                wait > Duration::ZERO && wait <= minute.per + minute.per / BUCKETS,
                "wait {wait:?}"
            );
        }
        other => panic!("expected alice refused, got {other:?}"),
    }
    // Bob was not counted by the refused call, and another app's messages to alice count apart.
    let to_bob = Call::new("hr", "/cgi-bin/message/send", &[], &["bob"]);
    for _ in 0..minute.count {
        assert_eq!(take(&fleet, &to_bob.ask()).await, Ok(Ok(())));
    }
    let other_app = Call::new("ops", "/cgi-bin/message/send", &[], &["alice"]);
    assert_eq!(take(&fleet, &other_app.ask()).await, Ok(Ok(())));

    // A route limit refusing a message is the route's, named as such, not its recipients'.
    let route = Call::new("ops", "/cgi-bin/message/send", &[rate(1, 60)], &["carol"]);
    assert_eq!(take(&fleet, &route.ask()).await, Ok(Ok(())));
    limit_wait(take(&fleet, &route.ask()).await, Duration::from_secs(60));
}

#[tokio::test]
async fn a_robot_has_its_own_limit_whatever_the_route_says() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let (fleet, _) = redis.fleet("p:");
    let limit = ROBOT_LIMITS[0];
    let mut robot = Call::new("hr", "/cgi-bin/webhook/send", &[rate(1, 60)], &[]);
    robot.robot = Some(0xfeed);
    for _ in 0..limit.count {
        assert_eq!(take(&fleet, &robot.ask()).await, Ok(Ok(())));
    }
    limit_wait(take(&fleet, &robot.ask()).await, limit.per);
    let mut other = Call::new("hr", "/cgi-bin/webhook/send", &[], &[]);
    other.robot = Some(0xbeef);
    assert_eq!(take(&fleet, &other.ask()).await, Ok(Ok(())));
}

#[tokio::test]
async fn nothing_to_count_passes_without_redis_and_redis_down_is_fleet_down() {
    let Some(mut redis) = Redis::start().await else {
        return;
    };
    let (fleet, _) = redis.fleet("p:");
    let call = Call::new("hr", "/a", &[rate(5, 60)], &[]);
    assert_eq!(take(&fleet, &call.ask()).await, Ok(Ok(())));
    redis.stop();
    assert_eq!(take(&fleet, &call.ask()).await, Err(FleetDown));
    let free = Call::new("hr", "/a", &[], &[]);
    assert_eq!(take(&fleet, &free.ask()).await, Ok(Ok(())));
}
