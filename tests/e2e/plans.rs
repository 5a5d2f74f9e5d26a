//! Staged switch plans: gates that pass move traffic to the final split; a failed gate rolls
//! every route back to its configured split.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::harness::sim::{FaultKind, Simulator};
use crate::harness::*;
use serde_json::Value;

const PLAN: &str = r#"
routes:
  - path: /cgi-bin/user/*
    retry: { attempts: 1 }
outlier: { consecutive_failures: 1000 }
shift_plans:
  to-standby:
    - routes: ["/cgi-bin/user/*"]
      split: { primary: 50, standby: 50 }
      hold: 1s
      max_error_rate: 0.05
      max_p99: 10s  # the gate is read (unit tests cover its decisions); a slow machine must not trip it
    - routes: ["/cgi-bin/user/*"]
      split: { primary: 0, standby: 100 }
      hold: 1s
      max_error_rate: 0.05
"#;

async fn start(primary: &Simulator, standby: &Simulator) -> Sidecar {
    let sc = Sidecar::start_with(|l, a| {
        config_yaml(l, a, &primary.url(), PLAN).replace(
            "upstreams:\n",
            &format!("upstreams:\n  standby:\n    url: \"{}\"\n", standby.url()),
        )
    })
    .await;
    sc.wait_ready().await;
    sc
}

/// Calls user/get in a loop until stopped.
fn traffic(sc: &Sidecar, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    let url = sc.url("/cgi-bin/user/get?userid=plan");
    tokio::spawn(async move {
        let c = client();
        while !stop.load(Ordering::Relaxed) {
            let _ = c.get(&url).send().await.map(|r| r.bytes());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

async fn plan_state(sc: &Sidecar) -> Value {
    let v: Value = serde_json::from_str(&sc.status().await).unwrap();
    v["plan"].clone()
}

/// Starts `to-standby` under steady traffic (a second start while it runs is refused) and
/// waits until it completes.
async fn run_to_completion(sc: &Sidecar) {
    let stop = Arc::new(AtomicBool::new(false));
    let load = traffic(sc, stop.clone());
    let c = client();
    let r = c
        .post(format!("{}/admin/plans/to-standby/start", sc.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let again = c
        .post(format!("{}/admin/plans/to-standby/start", sc.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    let done = eventually(Duration::from_secs(15), async || {
        plan_state(sc).await["state"] == "completed"
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    assert!(done, "plan did not complete: {}", plan_state(sc).await);
}

#[tokio::test]
async fn a_plan_whose_gates_pass_ends_at_its_final_split() {
    let (primary, standby) = primary_and_standby().await;
    let sc = start(&primary, &standby).await;
    run_to_completion(&sc).await;
    let c = client();
    let plan = plan_state(&sc).await;
    assert_eq!(plan["finished_steps"].as_array().unwrap().len(), 2);
    assert!(
        plan["finished_steps"][0]["calls"].as_u64().unwrap() > 10,
        "{plan}"
    );

    // The final split holds: everything on the standby.
    let before = primary.calls_here("/cgi-bin/user/get");
    for i in 0..20 {
        assert_eq!(
            get_json(&c, &sc.url(&format!("/cgi-bin/user/get?userid=f{i}")))
                .await
                .2["errcode"],
            0
        );
    }
    assert_eq!(primary.calls_here("/cgi-bin/user/get"), before);

    // Aborting a completed plan returns the routes to their configured split.
    let r = c
        .post(format!("{}/admin/plans/to-standby/abort", sc.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for i in 0..10 {
        get_json(&c, &sc.url(&format!("/cgi-bin/user/get?userid=g{i}"))).await;
    }
    assert_eq!(primary.calls_here("/cgi-bin/user/get"), before + 10);
}

#[tokio::test]
async fn a_failed_gate_rolls_back_automatically() {
    let (primary, standby) = primary_and_standby().await;
    standby.inject_here(fault("/cgi-bin/user/get", FaultKind::Status(503), None));
    let sc = start(&primary, &standby).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = traffic(&sc, stop.clone());
    let c = client();
    let r = c
        .post(format!("{}/admin/plans/to-standby/start", sc.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rolled = eventually(Duration::from_secs(15), async || {
        plan_state(&sc).await["state"] == "rolled_back"
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    let plan = plan_state(&sc).await;
    assert!(rolled, "plan did not roll back: {plan}");
    assert_eq!(plan["step"], 1, "{plan}");
    assert!(
        plan["reason"].as_str().unwrap().contains("error rate"),
        "{plan}"
    );

    // Back on the configured split: the broken standby takes nothing.
    let before = standby.calls_here("/cgi-bin/user/get");
    for i in 0..20 {
        assert_eq!(
            get_json(&c, &sc.url(&format!("/cgi-bin/user/get?userid=r{i}")))
                .await
                .2["errcode"],
            0
        );
    }
    assert_eq!(standby.calls_here("/cgi-bin/user/get"), before);
    // Unknown plans are a clear error.
    let r = c
        .post(format!("{}/admin/plans/nope/start", sc.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("to-standby"));
}

#[tokio::test]
async fn a_reload_keeps_a_running_plan_and_one_that_removes_it_aborts_it() {
    let (primary, standby) = primary_and_standby().await;
    let sc = start(&primary, &standby).await;
    let long = std::fs::read_to_string(&sc.config_path)
        .unwrap()
        .replace("hold: 1s", "hold: 1m");
    std::fs::write(&sc.config_path, &long).unwrap();
    let c = client();
    let reload = async || sc.reload().await.0;
    assert_eq!(reload().await, 200);
    let r = c
        .post(format!("{}/admin/plans/to-standby/start", sc.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // A reload that keeps the plan: it goes on.
    let edited = long.replace(
        "retry: { attempts: 1 }",
        "retry: { attempts: 1 }\n    deadline: 9s",
    );
    std::fs::write(&sc.config_path, &edited).unwrap();
    assert_eq!(reload().await, 200);
    assert_eq!(plan_state(&sc).await["state"], "running");

    // A reload that removes it: aborted, routes back on their split.
    let without = edited[..edited.find("shift_plans:").unwrap()].to_string();
    std::fs::write(&sc.config_path, &without).unwrap();
    assert_eq!(reload().await, 200);
    let aborted = eventually(Duration::from_secs(5), async || {
        plan_state(&sc).await["state"] == "aborted"
    })
    .await;
    assert!(aborted, "{}", plan_state(&sc).await);
    assert!(plan_state(&sc).await["reason"]
        .as_str()
        .unwrap()
        .contains("removed"));
    let before = standby.calls_here("/cgi-bin/user/get");
    for i in 0..10 {
        get_json(&c, &sc.url(&format!("/cgi-bin/user/get?userid=x{i}"))).await;
    }
    assert_eq!(standby.calls_here("/cgi-bin/user/get"), before);
}

/// A completed plan's split names the standby; a reload that removes the standby sets that
/// split aside: calls go on, on the primary, instead of failing.
#[tokio::test]
async fn a_reload_that_removes_a_planned_upstream_leaves_calls_on_the_rest() {
    let (primary, standby) = primary_and_standby().await;
    let sc = start(&primary, &standby).await;
    run_to_completion(&sc).await;
    let c = client();

    let config = std::fs::read_to_string(&sc.config_path).unwrap();
    let without = config[..config.find("shift_plans:").unwrap()]
        .replace(&format!("  standby:\n    url: \"{}\"\n", standby.url()), "");
    assert!(!without.contains("standby"), "{without}");
    std::fs::write(&sc.config_path, &without).unwrap();
    let (status, body) = sc.reload().await;
    assert_eq!(status, 200, "{body}");

    let before = primary.calls_here("/cgi-bin/user/get");
    for i in 0..10 {
        let (status, _, v) = get_json(&c, &sc.url(&format!("/cgi-bin/user/get?userid=r{i}"))).await;
        assert_eq!((status, v["errcode"].as_i64()), (200, Some(0)), "{v}");
    }
    assert_eq!(primary.calls_here("/cgi-bin/user/get"), before + 10);
}
