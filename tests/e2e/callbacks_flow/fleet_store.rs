//! In fleet mode the queue is the fleet's Redis Stream, not the SQLite file: a push is
//! committed there, delivered, and WeCom's retry of it is still known after a restart. (The
//! fleet's exactly-once delivery across sidecars is tested with the fleet.)

use super::*;

#[tokio::test]
async fn in_fleet_mode_pushes_go_through_redis() {
    let redis = Redis::start().await;
    let fleet = format!(
        "fleet:\n  redis_url: \"{}\"\n  key_prefix: \"cbflow:\"\n  size: 1\n  timeout: 500ms\n",
        redis.url()
    );
    let mut f = Flow::start_with(Timing::default(), &fleet).await;
    for n in 0..5 {
        assert_eq!(f.push(&text_message(n)).await.0, 200);
    }
    let got = f.delivered(5).await;
    let bodies: Vec<String> = got.iter().map(|g| g.body_text()).collect();
    assert_eq!(bodies, (0..5).map(text_message).collect::<Vec<_>>());
    assert!(
        !f.state.path().join("sidecar.db").exists(),
        "no SQLite file in fleet mode"
    );
    // The dedupe lives in Redis: a restarted sidecar still knows the push.
    f.sc.signal("KILL");
    f.sc.wait_exit(Duration::from_secs(10));
    f.restart().await;
    assert_eq!(f.push(&text_message(2)).await.0, 200);
    assert_eq!(f.callbacks("hr-bot", "duplicate").await, 1.0);
    assert_eq!(f.push(&text_message(9)).await.0, 200);
    let got = f.delivered(6).await;
    assert_eq!(got[5].body_text(), text_message(9));
    assert_eq!(got.len(), 6, "nothing delivered twice: {got:?}");
}

#[tokio::test]
async fn an_unreachable_fleet_redis_is_a_startup_error() {
    let port = free_port();
    let cb = callbacks_yaml(
        free_port(),
        "http://127.0.0.1:9/x",
        Path::new("x.db"),
        Timing::default(),
    );
    let extra =
        format!("{cb}fleet:\n  redis_url: \"redis://127.0.0.1:{port}/0\"\n  timeout: 200ms\n");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sidecar.yaml");
    std::fs::write(
        &config,
        config_yaml(free_port(), free_port(), "http://127.0.0.1:9", &extra),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wecom-sidecar"))
        .arg("--config")
        .arg(&config)
        .env("TEST_HR_SECRET", HR_SECRET)
        .env("TEST_OPS_SECRET", OPS_SECRET)
        .env("TEST_CB_TOKEN", CB_TOKEN)
        .env("TEST_CB_AES_KEY", CB_AES_KEY)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fleet.redis_url"), "names where: {err}");
    assert!(
        err.contains("cannot connect") || err.contains("no answer"),
        "says why: {err}"
    );
}
