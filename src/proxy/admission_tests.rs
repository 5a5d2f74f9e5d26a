//! Tests of admission through the state real calls see: a `Shared` built from a parsed config,
//! and calls routed by its route table, as the request pipeline routes them.

use bytes::Bytes;
use tokio::sync::Mutex;

use super::*;
use crate::config::parse_with_env;

/// `Waiting` is one counter per process: the tests that fill it and the ones that wait on it
/// take turns.
pub(super) static WAITING_COUNTER: Mutex<()> = Mutex::const_new(());

const APP: &str = "hr-bot";

/// The state of a sidecar whose config is the usual head (one app, `hr-bot`) and `extra`.
fn shared(extra: &str) -> Arc<Shared> {
    let yaml = format!(
        "listen: 127.0.0.1:18080\nadmin_listen: 127.0.0.1:18081\nupstreams:\n  primary: {{ url: \"http://127.0.0.1:9\" }}\napps:\n  - {{ name: {APP}, corp_id: ww1, secret_env: S, default: true }}\n{extra}"
    );
    let env = |name: &str| (name == "S").then(|| "admission-test-secret".to_string());
    let config = parse_with_env(&yaml, None, &env).expect("the test config is valid");
    Shared::new(config).expect("no store is needed")
}

fn app() -> AppName {
    AppName(APP.into())
}

fn body(json: &str) -> RequestBody {
    RequestBody::Buffered(Bytes::from(json.to_owned()))
}

/// A message to `touser` ("a|b").
fn message(touser: &str) -> RequestBody {
    body(&format!(
        r#"{{"touser":"{touser}","msgtype":"text","agentid":1000002,"text":{{"content":"hi"}}}}"#
    ))
}

/// Admits a call of `app` (a group robot's: `None`) to `path`, routed as the pipeline routes it.
async fn admit_to(
    shared: &Shared,
    path: &str,
    app: Option<&AppName>,
    query: &str,
    body: &RequestBody,
) -> Result<Option<Slot>, Refusal> {
    let runtime = shared.runtime.load_full();
    let call = runtime.routes.route(path).expect("a /cgi-bin/ path");
    admit(shared, &call, app, query, body).await
}

/// A message of `hr-bot` to `touser` through `message/send`.
async fn send(shared: &Shared, touser: &str) -> Result<Option<Slot>, Refusal> {
    let app = app();
    admit_to(
        shared,
        "/cgi-bin/message/send",
        Some(&app),
        "",
        &message(touser),
    )
    .await
}

/// A group robot's message, on the robot `key`.
async fn robot_send(shared: &Shared, key: &str) -> Result<Option<Slot>, Refusal> {
    let body = body(r#"{"msgtype":"text","text":{"content":"hi"}}"#);
    let query = format!("key={key}");
    admit_to(shared, "/cgi-bin/webhook/send", None, &query, &body).await
}

async fn user_get(shared: &Shared) -> Result<Option<Slot>, Refusal> {
    let app = app();
    admit_to(
        shared,
        "/cgi-bin/user/get",
        Some(&app),
        "userid=zhangsan",
        &RequestBody::Empty,
    )
    .await
}

/// `wecom_quota_rejected_total{api, app}`.
fn rejected(shared: &Shared, api: &str, app: &str) -> u64 {
    shared
        .metrics
        .quota_rejected
        .with_label_values(&[api, app])
        .get()
}

/// The local quota answer's parts, or a panic naming what came instead.
fn quota(r: Result<Option<Slot>, Refusal>) -> (u16, u64, String) {
    match r {
        Err(Refusal::Quota {
            status,
            retry_after,
            message,
        }) => (status, retry_after, message),
        other => panic!("expected the local quota answer, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_call_past_its_route_quota_gets_the_quota_answer_and_is_counted() {
    let s = shared("defaults:\n  quota: [\"2/min\"]\nroutes:\n  - { path: /cgi-bin/user/get, quota: [\"2/min\"], quota_status: 429 }\n");
    user_get(&s).await.expect("first call of two");
    user_get(&s).await.expect("second call of two");
    let (status, retry_after, message) = quota(user_get(&s).await);
    assert_eq!(status, 429, "the route's quota_status");
    // A minute from the first call, and at most the bucket it fell in (1 s) more.
    assert!((60..=61).contains(&retry_after), "{retry_after}");
    assert!(
        message.contains("quota [2/min] for app hr-bot on user/get reached"),
        "{message}"
    );
    assert_eq!(rejected(&s, "user/get", APP), 1);
    // Another API of the same app has its own count (the defaults' quota).
    let app = app();
    admit_to(
        &s,
        "/cgi-bin/department/list",
        Some(&app),
        "",
        &RequestBody::Empty,
    )
    .await
    .expect("department/list counts apart");
    // The window moves on: a minute later the route lets calls through again.
    tokio::time::advance(Duration::from_secs(61)).await;
    user_get(&s).await.expect("a new minute");
    assert_eq!(rejected(&s, "user/get", APP), 1);
}

#[tokio::test(start_paused = true)]
async fn on_limit_wait_lets_a_call_through_once_a_slot_frees_within_max_wait() {
    let _turn = WAITING_COUNTER.lock().await;
    let s = shared("defaults:\n  quota: [\"1/s\"]\n  on_limit: wait\n  max_wait: 3s\n");
    let started = Instant::now();
    user_get(&s).await.expect("the slot of this second");
    user_get(&s)
        .await
        .expect("waited for the next second's slot");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "the second call went through without waiting for a slot"
    );
    assert_eq!(rejected(&s, "user/get", APP), 0);
}

#[tokio::test(start_paused = true)]
async fn on_limit_wait_refuses_at_once_a_call_whose_slot_is_past_max_wait() {
    let s = shared("defaults:\n  quota: [\"1/min\"]\n  on_limit: wait\n  max_wait: 2s\n");
    user_get(&s).await.expect("the slot of this minute");
    let started = Instant::now();
    let (_, retry_after, _) = quota(user_get(&s).await);
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "a slot a minute away is not waited for with max_wait 2s"
    );
    assert!((60..=61).contains(&retry_after), "{retry_after}");
    assert_eq!(rejected(&s, "user/get", APP), 1);
}

#[tokio::test(start_paused = true)]
async fn max_in_flight_holds_a_place_until_the_call_ends() {
    let s = shared("routes:\n  - { path: /cgi-bin/user/get, max_in_flight: 1, max_wait: 200ms, quota_status: 429 }\n");
    let first = user_get(&s)
        .await
        .expect("the one place")
        .expect("a capped route hands out its place");
    match user_get(&s).await {
        Err(Refusal::Concurrency {
            status,
            retry_after,
            message,
        }) => {
            assert_eq!((status, retry_after), (429, 1));
            assert!(
                message.contains("1 calls of app hr-bot on user/get in flight (max_in_flight) and none ended within 200 ms"),
                "{message}"
            );
        }
        other => panic!("expected the local 45033 answer, got {other:?}"),
    }
    assert_eq!(rejected(&s, "user/get", APP), 1);
    // Other APIs are not capped by this route: they hold no place.
    let app = app();
    let other = admit_to(
        &s,
        "/cgi-bin/department/list",
        Some(&app),
        "",
        &RequestBody::Empty,
    );
    assert!(other.await.expect("not capped").is_none());
    drop(first);
    assert!(user_get(&s).await.expect("the place was freed").is_some());
}

#[tokio::test(start_paused = true)]
async fn a_route_without_max_in_flight_holds_no_place() {
    let s = shared("");
    assert!(user_get(&s).await.expect("no cap").is_none());
}

#[tokio::test(start_paused = true)]
async fn the_thirty_first_message_to_a_member_is_refused_naming_only_that_member() {
    let s = shared("defaults:\n  quota: []\n");
    for _ in 0..30 {
        send(&s, "alice").await.expect("30 a minute to one member");
    }
    let (status, retry_after, message) = quota(send(&s, "alice|bob").await);
    assert_eq!(status, 200);
    assert!(
        (60..=61).contains(&retry_after),
        "a minute from the first: {retry_after}"
    );
    assert!(message.ends_with("over the cap: alice"), "{message}");
    assert_eq!(rejected(&s, "message/send", APP), 1);
    // bob lost nothing to the refused message.
    for _ in 0..30 {
        send(&s, "bob").await.expect("bob's own 30");
    }
}

#[tokio::test(start_paused = true)]
async fn recipient_cap_false_lets_messages_past_the_member_cap() {
    let s = shared("defaults:\n  quota: []\n  recipient_cap: false\n");
    for _ in 0..31 {
        send(&s, "alice")
            .await
            .expect("no member cap on this route");
    }
}

#[tokio::test(start_paused = true)]
async fn only_message_apis_count_members() {
    // WeChat customer service names its customer in `touser` too; WeCom does not cap it.
    let s = shared("defaults:\n  quota: []\n");
    let app = app();
    let kf =
        body(r#"{"touser":"wmAAA","open_kfid":"wkBBB","msgtype":"text","text":{"content":"hi"}}"#);
    for _ in 0..31 {
        admit_to(&s, "/cgi-bin/kf/send_msg", Some(&app), "", &kf)
            .await
            .expect("kf/send_msg is not capped per member");
    }
}

#[tokio::test(start_paused = true)]
async fn recipients_per_day_refuses_the_message_that_would_pass_it_and_counts_it_not() {
    // recipient_cap off: the day's count alone reads the members.
    let s = shared("defaults:\n  quota: []\n  recipient_cap: false\n  recipients_per_day: 3\n");
    send(&s, "a|b").await.expect("2 of 3");
    let (status, retry_after, message) = quota(send(&s, "c|d").await);
    assert_eq!(status, 200);
    let midnight = day::until_china_midnight(day::now_unix()).as_secs();
    assert!(
        retry_after.abs_diff(midnight) <= 2,
        "{retry_after} s against {midnight} s to China midnight"
    );
    assert!(
        message.contains("reached recipients_per_day (3 members a day")
            && message.contains("this message to 2 members would pass it"),
        "{message}"
    );
    assert_eq!(rejected(&s, "message/send", APP), 1);
    send(&s, "c")
        .await
        .expect("the refused message counted nothing");
    quota(send(&s, "d").await);
    // Calls that name nobody are not counted against the day.
    send(&s, "@all").await.expect("@all counts nobody");
}

#[tokio::test(start_paused = true)]
async fn recipients_per_day_with_the_member_cap_on_counts_both() {
    let s = shared("defaults:\n  quota: []\n  recipients_per_day: 40\n");
    for _ in 0..30 {
        send(&s, "alice").await.expect("30 of alice's 30, 30 of 40");
    }
    quota(send(&s, "alice").await);
    // The member cap's refusal took nothing from the day.
    send(&s, "b|c|d|e|f|g|h|i|j|k").await.expect("40 of 40");
    let (_, _, message) = quota(send(&s, "l").await);
    assert!(message.contains("recipients_per_day"), "{message}");
}

#[tokio::test]
async fn while_redis_is_down_a_sidecar_keeps_its_share_of_the_day() {
    // Nothing listens on port 1: every fleet decision falls back to the local share.
    let s = shared("defaults:\n  quota: []\n  recipient_cap: false\n  recipients_per_day: 10\nfleet:\n  redis_url: \"redis://127.0.0.1:1/0\"\n  size: 2\n  timeout: 50ms\n");
    send(&s, "a|b|c|d|e").await.expect("5 of this sidecar's 5");
    quota(send(&s, "f").await);
    let fallbacks = s
        .metrics
        .fleet_fallbacks
        .with_label_values(&["quota"])
        .get();
    assert!(fallbacks >= 2, "{fallbacks} quota fallbacks counted");
}

#[tokio::test(start_paused = true)]
async fn a_group_robot_is_held_to_twenty_a_minute_on_its_own_key() {
    let s = shared("");
    for _ in 0..20 {
        robot_send(&s, "693a91f6-7xxx").await.expect("20 a minute");
    }
    let (_, retry_after, _) = quota(robot_send(&s, "693a91f6-7xxx").await);
    assert!(
        (60..=61).contains(&retry_after),
        "a minute from the first: {retry_after}"
    );
    assert_eq!(
        rejected(&s, "webhook/send", "robot"),
        1,
        "robot calls are counted under app \"robot\""
    );
    // Another robot has its own 20.
    for _ in 0..20 {
        robot_send(&s, "8b2c0d11-2yyy").await.expect("another key");
    }
    // An app's call is no robot's, whatever its query holds.
    for _ in 0..21 {
        let app = app();
        admit_to(
            &s,
            "/cgi-bin/user/get",
            Some(&app),
            "key=693a91f6-7xxx",
            &RequestBody::Empty,
        )
        .await
        .expect("an app call is not held to a robot's 20");
    }
}

/// Notes the block WeCom announced with `code` and `errmsg` on a call to `path`.
fn wecom_blocked(
    shared: &Shared,
    path: &str,
    app: Option<&AppName>,
    query: &str,
    code: i64,
    errmsg: &str,
) {
    let runtime = shared.runtime.load_full();
    let call = runtime.routes.route(path).expect("a /cgi-bin/ path");
    let answer = format!(r#"{{"errcode":{code},"errmsg":"{errmsg}"}}"#);
    note_block(
        &shared.quotas,
        &shared.metrics,
        &call,
        app,
        query,
        code,
        answer.as_bytes(),
    );
}

#[tokio::test(start_paused = true)]
async fn a_block_wecom_announced_holds_that_app_and_api_until_it_ends() {
    let s = shared("");
    let app = app();
    wecom_blocked(
        &s,
        "/cgi-bin/user/get",
        Some(&app),
        "",
        45009,
        "api freq out of limit",
    );
    let (_, retry_after, message) = quota(user_get(&s).await);
    assert_eq!(retry_after, 60, "a minute block");
    assert!(
        message.contains("WeCom blocked app hr-bot on user/get (api freq out of limit); held locally for 60 s more"),
        "{message}"
    );
    let blocks = s
        .metrics
        .quota_blocks
        .with_label_values(&["user/get", APP, "45009"])
        .get();
    assert_eq!(blocks, 1);
    assert_eq!(rejected(&s, "user/get", APP), 1);
    admit_to(
        &s,
        "/cgi-bin/department/list",
        Some(&app),
        "",
        &RequestBody::Empty,
    )
    .await
    .expect("another API is not blocked");
    // An answer that announces no block changes nothing.
    wecom_blocked(
        &s,
        "/cgi-bin/department/list",
        Some(&app),
        "",
        60011,
        "no privilege",
    );
    admit_to(
        &s,
        "/cgi-bin/department/list",
        Some(&app),
        "",
        &RequestBody::Empty,
    )
    .await
    .expect("60011 is no block");
    tokio::time::advance(Duration::from_secs(61)).await;
    user_get(&s).await.expect("the block ended");
}

#[tokio::test(start_paused = true)]
async fn a_block_announced_to_a_robot_holds_that_robot_only() {
    let s = shared("");
    wecom_blocked(
        &s,
        "/cgi-bin/webhook/send",
        None,
        "key=693a91f6-7xxx",
        45009,
        "api freq out of limit",
    );
    let (_, _, message) = quota(robot_send(&s, "693a91f6-7xxx").await);
    assert!(
        message.contains("WeCom blocked app robot on webhook/send"),
        "{message}"
    );
    let blocks = s
        .metrics
        .quota_blocks
        .with_label_values(&["webhook/send", "robot", "45009"])
        .get();
    assert_eq!(blocks, 1);
    robot_send(&s, "8b2c0d11-2yyy")
        .await
        .expect("another robot's key is not blocked");
}
