//! Live reload under steady traffic: a valid change takes effect, an invalid one is refused,
//! and no call in a loop of calls fails during either.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::harness::*;

/// Replaces the config file the way editors and ConfigMaps do: write aside, then rename.
fn replace(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn reloads(sc: &Sidecar, result: &str) -> u64 {
    let m = sc.metrics().await;
    m.value("wecom_config_reloads_total", &[("result", result)])
        .unwrap_or(0.0) as u64
}

#[tokio::test]
async fn reload_under_load_never_fails_a_call() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), "").await;
    sc.wait_ready().await;
    let original = std::fs::read_to_string(&sc.config_path).unwrap();

    // A steady loop of calls for the whole test.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let mut loops = Vec::new();
    for w in 0..4 {
        let (stop, failures, done, url) = (
            stop.clone(),
            failures.clone(),
            done.clone(),
            sc.url(&format!("/cgi-bin/user/get?userid=loop{w}")),
        );
        loops.push(tokio::spawn(async move {
            let c = client();
            while !stop.load(Ordering::Relaxed) {
                match c.get(&url).send().await {
                    Ok(r) => {
                        let v: serde_json::Value = r.json().await.unwrap_or_default();
                        if v["errcode"] != 0 {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    // 1. A valid change by file replacement: a new route with its own label.
    let changed =
        format!("{original}\nroutes:\n  - path: /cgi-bin/user/get\n    api: member-read\n");
    replace(&sc.config_path, &changed);
    let applied = eventually(Duration::from_secs(10), async || {
        sc.metrics()
            .await
            .label_pairs()
            .any(|pair| pair == ("api", "member-read"))
    })
    .await;
    assert!(applied, "the new route never took effect");
    assert!(reloads(&sc, "ok").await >= 1);

    // 2. An invalid change: refused, counted, the old config keeps serving.
    replace(&sc.config_path, &format!("{changed}\nbogus_key: 1\n"));
    let refused = eventually(Duration::from_secs(10), async || {
        reloads(&sc, "error").await >= 1
    })
    .await;
    assert!(refused, "the invalid config was not refused");
    assert!(sc.logs().contains("reload refused"));

    // 3. POST /admin/reload with the file still invalid: a clear refusal.
    let (status, body) = sc.reload().await;
    assert_eq!(status, 422);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["error"].as_str().unwrap().contains("bogus_key"), "{v}");

    // 4. A listener change is refused: it needs a restart.
    let moved = original.replacen("listen: \"127.0.0.1:", "listen: \"127.0.0.2:", 1);
    std::fs::write(&sc.config_path, &moved).unwrap();
    let v: serde_json::Value = serde_json::from_str(&sc.reload().await.1).unwrap();
    assert!(v["error"].as_str().unwrap().contains("restart"), "{v}");

    // 5. Back to the original with SIGHUP: the route (and its label) is gone again.
    let ok_before = reloads(&sc, "ok").await;
    std::fs::write(&sc.config_path, &original).unwrap();
    sc.signal("HUP");
    let back = eventually(Duration::from_secs(10), async || {
        reloads(&sc, "ok").await > ok_before
    })
    .await;
    assert!(back, "SIGHUP did not reload");
    let status = sc.status().await;
    assert!(
        !status.contains("member-read"),
        "old route still configured: {status}"
    );

    stop.store(true, Ordering::Relaxed);
    for l in loops {
        l.await.unwrap();
    }
    assert!(done.load(Ordering::Relaxed) > 100, "the loop barely ran");
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "calls failed during reloads"
    );
    // Tokens of unchanged apps were kept: one gettoken per app for the whole test.
    assert_eq!(
        sim.counters().gettoken.get("hr-bot").copied().unwrap_or(0),
        1
    );
}

/// A reload that changes an app's settings but not its credentials: the new settings apply
/// (the default app moves), and the app keeps its token (no new gettoken).
#[tokio::test]
async fn a_reload_moves_the_default_app_and_keeps_its_tokens() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), "").await;
    sc.wait_ready().await;
    let c = client();
    let status = |text: String| -> serde_json::Value { serde_json::from_str(&text).unwrap() };
    let default_app = async || {
        let s = status(sc.status().await);
        s["apps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["default"] == true)
            .map(|a| a["name"].as_str().unwrap().to_string())
    };
    assert_eq!(default_app().await.as_deref(), Some("hr-bot"));
    assert_eq!(
        get_json(&c, &sc.url("/cgi-bin/user/get?userid=a")).await.2["errcode"],
        0
    );
    let fetched = sim.counters().gettoken.clone();

    let config = std::fs::read_to_string(&sc.config_path).unwrap();
    let moved = config.replace("    default: true\n", "").replace(
        "    secret_env: TEST_OPS_SECRET\n",
        "    secret_env: TEST_OPS_SECRET\n    default: true\n",
    );
    assert_ne!(moved, config);
    replace(&sc.config_path, &moved);
    let (status, body) = sc.reload().await;
    assert_eq!(status, 200, "{body}");

    assert_eq!(default_app().await.as_deref(), Some("ops-bot"));
    assert_eq!(
        get_json(&c, &sc.url("/cgi-bin/user/get?userid=b")).await.2["errcode"],
        0
    );
    // The call with no app named went out as ops-bot (its access log line, written once the
    // call is over, names the app).
    sc.settled_metrics().await;
    let logs = sc.logs();
    let last = logs
        .lines()
        .rev()
        .find(|l| l.contains(" access: ") && l.contains("api=user/get"))
        .unwrap_or_default();
    assert!(last.contains("app=\"ops-bot\""), "{last}");
    assert_eq!(
        sim.counters().gettoken,
        fetched,
        "no token was fetched again"
    );
}
