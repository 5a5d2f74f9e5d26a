//! Inbound callbacks in fleet mode against a real `redis-server`: three sidecars share one
//! app's queue (a Redis Stream); WeCom's 1,000 pushes are spread over them, the sidecar that
//! delivers is killed with kill -9 in the middle, and each push reaches the app exactly once.
//!
//! The kill comes while the app is down, so the killed sidecar holds an entry it read but
//! could not deliver (claimed by the next owner) and no app answer is in flight: the one case
//! where a push may be delivered twice (the app's 2xx lost with its sidecar, README
//! "Callbacks") is thereby left out, and "exactly once" is what must hold.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::callbacks_flow::receiver::{Answer, Receiver};
use crate::callbacks_flow::{text_message, Wecom, CB_AES_KEY, CB_TOKEN, PATH};
use crate::harness::*;

const PUSHES: u64 = 1_000;
/// Pushes sent at once (WeCom pushes many apps' and users' messages concurrently).
const CONCURRENT: usize = 16;

/// One sidecar of the fleet: the process and its callback listener's URL.
struct Member {
    sc: Sidecar,
    cb: String,
}

async fn member(redis: &Redis, app: &Receiver, state: &tempfile::TempDir, i: usize) -> Member {
    let cb_port = free_port();
    // The store file is the SQLite default's place; in fleet mode the queue is in Redis.
    // The queue's hold is 2 × delivery.timeout: it must outlast the longest stall of a loaded
    // machine between reading a push and recording its 2xx, or the stalled sidecar loses the
    // queue while it delivers and a push arrives twice (README "Failure behaviour": with a
    // 1 s timeout that happened about once in seven runs here).
    let extra = format!(
        r#"fleet:
  redis_url: "{redis}"
  key_prefix: "cbfleet:"
  size: 3
  timeout: 2s
callbacks:
  listen: "127.0.0.1:{cb_port}"
  apps:
    - {{ app: hr-bot, path: {PATH}, token_env: TEST_CB_TOKEN, aes_key_env: TEST_CB_AES_KEY, deliver_to: "{url}", reply_within: 0 }}
  delivery: {{ timeout: 3s, backoff_base: 50ms, backoff_max: 200ms, max_age: 1h }}
store:
  path: "{store}"
"#,
        redis = redis.url(),
        url = app.url(),
        store = state.path().join(format!("sidecar-{i}.db")).display(),
    );
    let sc = Sidecar::start_with_env(
        |l, a| config_yaml(l, a, "http://127.0.0.1:9", &extra),
        &[("TEST_CB_TOKEN", CB_TOKEN), ("TEST_CB_AES_KEY", CB_AES_KEY)],
    )
    .await;
    let up = eventually(Duration::from_secs(10), async || {
        tokio::net::TcpStream::connect(("127.0.0.1", cb_port))
            .await
            .is_ok()
    })
    .await;
    assert!(up, "no callback listener; log:\n{}", sc.logs());
    Member {
        sc,
        cb: format!("http://127.0.0.1:{cb_port}{PATH}"),
    }
}

/// Pushes `numbers` as WeCom does, push `n` first to sidecar `n % 3`; a push that gets no 200
/// (its sidecar is dead, or died with the answer) is sent again, as WeCom retries, to the next
/// sidecar, until one answers 200. Returns how many were sent again.
async fn push_all(members: &[String], numbers: std::ops::Range<u64>) -> usize {
    let wecom = std::sync::Arc::new(Wecom::new());
    let members = std::sync::Arc::new(members.to_vec());
    let mut resent = 0;
    let numbers: Vec<u64> = numbers.collect();
    for batch in numbers.chunks(CONCURRENT) {
        let mut tasks = Vec::new();
        for &n in batch {
            let (wecom, members) = (wecom.clone(), members.clone());
            tasks.push(tokio::spawn(async move {
                let (query, body) = wecom.push(&text_message(n));
                let c = client();
                for attempt in 0..members.len() * 3 {
                    let url = &members[(n as usize + attempt) % members.len()];
                    let sent = c
                        .post(format!("{url}?{query}"))
                        .body(body.clone())
                        .timeout(Duration::from_secs(5))
                        .send()
                        .await;
                    if sent.is_ok_and(|r| r.status().as_u16() == 200) {
                        return attempt;
                    }
                }
                panic!("push {n} was answered 200 by no sidecar");
            }));
        }
        for t in tasks {
            resent += usize::from(t.await.unwrap() > 0);
        }
    }
    resent
}

/// `wecom_callback_deliveries_total{result}` of one sidecar.
async fn deliveries(sc: &Sidecar, result: &str) -> f64 {
    sc.metrics().await.sum(
        "wecom_callback_deliveries_total",
        &[("app", "hr-bot"), ("result", result)],
    )
}

#[tokio::test]
async fn a_thousand_pushes_over_three_sidecars_are_delivered_once_through_a_kill() {
    let redis = Redis::start().await;
    let app = Receiver::start().await;
    let state = tempfile::tempdir().unwrap();
    let mut fleet = Vec::new();
    for i in 0..3 {
        fleet.push(member(&redis, &app, &state, i).await);
    }
    let urls: Vec<String> = fleet.iter().map(|m| m.cb.clone()).collect();

    // The first half, with the app up: the sidecars take turns at the queue and deliver.
    push_all(&urls, 0..PUSHES / 2).await;
    let flowing = eventually(Duration::from_secs(30), async || !app.got().is_empty()).await;
    assert!(flowing, "nothing delivered; log:\n{}", fleet[0].sc.logs());

    // The app goes down and a few more pushes come: the sidecar delivering now (the queue's
    // owner; only it reads) holds the head it read and retries it. That one is killed.
    app.down();
    push_all(&urls, PUSHES / 2..PUSHES / 2 + 20).await;
    let mut owner = None;
    let retrying = eventually(Duration::from_secs(30), async || {
        for (i, m) in fleet.iter().enumerate() {
            if deliveries(&m.sc, "retried").await > 0.0 {
                owner = Some(i);
                return true;
            }
        }
        false
    })
    .await;
    assert!(retrying, "no sidecar retried; log:\n{}", fleet[0].sc.logs());
    let owner = owner.expect("found");
    let delivered_by_owner = deliveries(&fleet[owner].sc, "delivered").await;
    let accepted_by_owner = fleet[owner].sc.metrics().await.sum(
        "wecom_callbacks_total",
        &[("app", "hr-bot"), ("result", "accepted")],
    );
    let mut killed = fleet.remove(owner);
    killed.sc.signal("KILL");
    assert!(
        exited_within(&mut killed.sc.child, Duration::from_secs(10)).is_some(),
        "kill -9 did not end the sidecar"
    );

    // The rest, spread over all three: the dead one's share is sent again to the others.
    let resent = push_all(&urls, PUSHES / 2 + 20..PUSHES).await;
    assert!(resent > 0, "no push went to the killed sidecar");
    app.up().await;

    // Every push arrives; a survivor took the queue and the killed one's unacknowledged head.
    let all = eventually(Duration::from_secs(120), async || {
        let got = app.got();
        let ids: std::collections::BTreeSet<&str> = got
            .iter()
            .filter_map(|g| g.header("x-wecom-callback-id"))
            .collect();
        ids.len() as u64 >= PUSHES
    })
    .await;
    assert!(
        all,
        "the app got {} requests; logs:\n{}\n{}",
        app.got().len(),
        fleet[0].sc.logs(),
        fleet[1].sc.logs()
    );
    // Nothing is left to deliver (so nothing more can arrive), on either survivor's view.
    for m in &fleet {
        let drained = eventually(Duration::from_secs(30), async || {
            let (_, _, doc) = get_json(&client(), &format!("{}/admin/callbacks", m.sc.admin)).await;
            doc["apps"][0]["queue"]["queued"] == 0 && doc["apps"][0]["queue"]["dead"] == 0
        })
        .await;
        assert!(drained, "queue not empty; log:\n{}", m.sc.logs());
    }

    // Exactly once: each callback id answered once, each of the 1,000 messages once. A push
    // the app had when it went down, unanswered, is sent again (the sidecar cannot know the app
    // took it; the callback id lets an app tell): at most the one then in flight.
    let got = app.got();
    let answered = app.answered();
    let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_message: BTreeMap<String, usize> = BTreeMap::new();
    for g in &answered {
        let id = g.header("x-wecom-callback-id").expect("a callback id");
        *per_id.entry(id.to_string()).or_default() += 1;
        let body = g.body_text();
        let content = body
            .split("<Content><![CDATA[")
            .nth(1)
            .and_then(|c| c.split("]]>").next())
            .expect("a text message");
        *per_message.entry(content.to_string()).or_default() += 1;
    }
    let twice: Vec<_> = per_id.iter().filter(|(_, &n)| n > 1).collect();
    if !twice.is_empty() {
        // What each sidecar logged of those pushes: which attempt, by whom, and why again.
        let logs: Vec<String> = fleet
            .iter()
            .map(|m| m.sc.logs())
            .chain(std::iter::once(killed.sc.logs()))
            .collect();
        let lines: Vec<String> = twice
            .iter()
            .flat_map(|(id, _)| {
                logs.iter().enumerate().flat_map(move |(i, log)| {
                    log.lines()
                        .filter(|l| l.contains(id.as_str()))
                        .map(move |l| format!("sidecar {i}: {l}"))
                })
            })
            .collect();
        panic!(
            "delivered more than once: {twice:?}; logged of them (the killed one last):\n{}",
            lines.join("\n")
        );
    }
    assert_eq!(per_id.len() as u64, PUSHES);
    assert_eq!(per_message.len() as u64, PUSHES);
    assert!(per_message.values().all(|&n| n == 1));
    assert_eq!(answered.len() as u64, PUSHES);
    assert!(
        got.len() - answered.len() <= 1,
        "{} pushes reached the app unanswered",
        got.len() - answered.len()
    );

    // Counted the same way: each push stored once fleet-wide (the killed sidecar took no push
    // after its counts were read), and delivered once.
    let (mut stored, mut counted) = (accepted_by_owner, delivered_by_owner);
    for m in &fleet {
        stored += m.sc.metrics().await.sum(
            "wecom_callbacks_total",
            &[("app", "hr-bot"), ("result", "accepted")],
        );
        counted += deliveries(&m.sc, "delivered").await;
    }
    assert_eq!(stored, PUSHES as f64);
    assert_eq!(counted, PUSHES as f64);
}

/// The app's 2xx is in, but Redis answers the sidecar's "done" only after `fleet.timeout`
/// (paused with `CLIENT PAUSE` while the app takes its time to answer): the sidecar marks the
/// push done again while it still holds the queue, and the app sees it once. (Before, one
/// failed "done" sent the push again.)
#[tokio::test]
async fn a_push_redis_is_slow_to_mark_done_is_not_delivered_again() {
    let redis = Redis::start().await;
    let app = Receiver::start().await;
    // The app holds its 2xx until Redis is paused, so the sidecar records it only then.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    app.answer(Answer::ok().held(&gate));
    let state = tempfile::tempdir().unwrap();
    let m = member(&redis, &app, &state, 0).await;
    push_all(std::slice::from_ref(&m.cb), 0..1).await;
    let arrived = eventually(Duration::from_secs(10), async || !app.got().is_empty()).await;
    assert!(arrived, "not delivered; log:\n{}", m.sc.logs());
    // The app has the push; Redis stops answering anyone for longer than the sidecar's
    // `fleet.timeout` (2 s), well within its hold on the queue (2 × the 3 s delivery timeout),
    // and then the app answers.
    let mut c = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(3_000)
        .arg("ALL")
        .query_async(&mut c)
        .await
        .unwrap();
    gate.add_permits(1);
    let done = eventually(Duration::from_secs(20), async || {
        deliveries(&m.sc, "delivered").await >= 1.0
    })
    .await;
    assert!(done, "never marked delivered; log:\n{}", m.sc.logs());
    let drained = eventually(Duration::from_secs(10), async || {
        let (_, _, doc) = get_json(&client(), &format!("{}/admin/callbacks", m.sc.admin)).await;
        doc["apps"][0]["queue"]["queued"] == 0
    })
    .await;
    assert!(drained, "still queued; log:\n{}", m.sc.logs());
    assert_eq!(app.got().len(), 1, "delivered again; log:\n{}", m.sc.logs());
    assert_eq!(deliveries(&m.sc, "delivered").await, 1.0);
}
