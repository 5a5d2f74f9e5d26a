//! Soak: the release sidecar under steady mixed traffic for a bounded time while faults are
//! injected at the simulator on a schedule, with reloads and SIGHUPs between. Reports calls,
//! failures by kind, messages delivered twice (must be 0) and the sidecar's RSS over time.
//!
//! ```sh
//! cargo bench --bench soak                            # 10 minutes at 1,000 calls/s
//! SOAK_SECS=60 SOAK_RATE=3000 cargo bench --bench soak # shorter, harder
//! ```
//!
//! Exits non-zero when a message was delivered twice, the sidecar panicked or died, or a call
//! failed in a way no injected fault explains (anything but the local answers listed below).

mod common;

use common::free_port;
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wecom_sim::{Fault, FaultKind, SimApp, SimConfig, Simulator};

const CORP: &str = "wwsoak00000000001";
const WORKERS: usize = 12;

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn config(listen: u16, admin: u16, primary: &str, standby: &str) -> String {
    format!(
        r#"listen: "127.0.0.1:{listen}"
admin_listen: "127.0.0.1:{admin}"
upstreams:
  primary: {{ url: "{primary}", connect_timeout: 500ms, timeout: 2s }}
  standby: {{ url: "{standby}", connect_timeout: 500ms, timeout: 2s }}
apps:
  - {{ name: hr-bot, corp_id: {CORP}, secret_env: SOAK_HR_SECRET, default: true }}
  - {{ name: ops-bot, corp_id: {CORP}, secret_env: SOAK_OPS_SECRET }}
defaults:
  deadline: 3s
  retry: {{ attempts: 3, backoff_base: 20ms, backoff_max: 200ms }}
  split: {{ primary: 90, standby: 10 }}
  quota: ["100000/min"]
routes:
  - path: /cgi-bin/message/send
    dedupe: true
  - path: /cgi-bin/tag/list
    quota: ["300/min"]
outlier: {{ consecutive_failures: 5, base_ejection: 2s, max_ejection: 20s }}
health_check: {{ interval: 500ms, timeout: 500ms }}
"#
    )
}

#[derive(Default)]
struct Tally {
    calls: AtomicU64,
    ok: AtomicU64,
    /// "<api> <status> <reason or errcode>" → count.
    failures: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    fn fail(&self, what: String) {
        *self.failures.lock().unwrap().entry(what).or_default() += 1;
    }
}

/// Failures an injected fault explains: the sidecar's clear local answers, or WeCom's own
/// errcode passed through (the schedule injects -1, 45009 and 60020).
fn explained(what: &str) -> bool {
    [
        "upstream-unavailable",
        "deadline",
        "no-token",
        "quota",
        "errcode -1",
        "errcode 45009",
        "errcode 60020",
    ]
    .iter()
    .any(|k| what.ends_with(k))
}

async fn worker(
    id: usize,
    base: String,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
    seq: Arc<AtomicU64>,
    period: Duration,
) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        i += 1;
        let (api, req) = match i % 10 {
            0..=4 => (
                "user/get",
                c.get(format!("{base}/cgi-bin/user/get?userid=w{id}n{i}")),
            ),
            5 | 6 => (
                "department/list",
                c.get(format!("{base}/cgi-bin/department/list")),
            ),
            7 => (
                "tag/list",
                c.get(format!("{base}/cgi-bin/tag/list"))
                    .header("X-WeCom-App", "ops-bot"),
            ),
            _ => {
                // Recipients come from a corp of 10,000 members, as in real use (the sidecar
                // keeps each member's message count for an hour); one message in 50 goes to a
                // recipient of its own, so a second delivery of it shows in the simulator's
                // per-user count.
                let n = seq.fetch_add(1, Ordering::Relaxed);
                let to = if n % 50 == 0 {
                    format!("once{n}")
                } else {
                    format!("member{}", n % 10_000)
                };
                let body = serde_json::json!({"touser": to, "msgtype": "text", "agentid": 1000002, "text": {"content": format!("soak message {n}")}});
                (
                    "message/send",
                    c.post(format!("{base}/cgi-bin/message/send")).json(&body),
                )
            }
        };
        tally.calls.fetch_add(1, Ordering::Relaxed);
        match req.send().await {
            Err(e) => tally.fail(format!(
                "{api} transport {}",
                if e.is_timeout() { "timeout" } else { "error" }
            )),
            Ok(r) => {
                let status = r.status().as_u16();
                let reason = r
                    .headers()
                    .get("x-sidecar-reason")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body: serde_json::Value = r.json().await.unwrap_or_default();
                match (body["errcode"].as_i64(), reason) {
                    (Some(0), _) => {
                        tally.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    (_, Some(reason)) => tally.fail(format!("{api} {status} {reason}")),
                    (code, None) => tally.fail(format!(
                        "{api} {status} errcode {}",
                        code.unwrap_or(i64::MIN)
                    )),
                }
            }
        }
    }
}

/// One step of the fault schedule: what is injected at the primary for a while.
fn schedule() -> Vec<(&'static str, Vec<Fault>)> {
    let f = |path: &str, kind: FaultKind, times: Option<u32>| Fault {
        path: path.into(),
        kind,
        times,
    };
    vec![
        ("calm", vec![]),
        (
            "5xx on reads",
            vec![f("/cgi-bin/user/get", FaultKind::Status(502), Some(200))],
        ),
        (
            "errcode -1",
            vec![f(
                "/cgi-bin/department/list",
                FaultKind::Errcode(-1),
                Some(100),
            )],
        ),
        (
            "resets",
            vec![
                f("/cgi-bin/user/get", FaultKind::Reset, Some(100)),
                f("/cgi-bin/message/send", FaultKind::Reset, Some(20)),
            ],
        ),
        (
            "lost answers",
            vec![f("/cgi-bin/message/send", FaultKind::LoseAnswer, Some(30))],
        ),
        (
            "garbage and truncated",
            vec![
                f("/cgi-bin/user/get", FaultKind::Garbage, Some(50)),
                f("/cgi-bin/department/list", FaultKind::Truncated, Some(50)),
            ],
        ),
        (
            "hangs",
            vec![f("/cgi-bin/user/get", FaultKind::Hang, Some(20))],
        ),
        (
            "slow gettoken",
            vec![f(
                "/cgi-bin/gettoken",
                FaultKind::Delay(Duration::from_millis(1500)),
                Some(5),
            )],
        ),
        (
            "gettoken down",
            vec![f("/cgi-bin/gettoken", FaultKind::Status(503), None)],
        ),
        (
            "45009 block",
            vec![f("/cgi-bin/tag/list", FaultKind::Errcode(45009), Some(1))],
        ),
        (
            "primary dead (every call reset)",
            [
                "/cgi-bin/user/get",
                "/cgi-bin/department/list",
                "/cgi-bin/message/send",
                "/cgi-bin/tag/list",
                "/cgi-bin/getcallbackip",
            ]
            .iter()
            .map(|p| f(p, FaultKind::Reset, None))
            .collect(),
        ),
    ]
}

fn main() {
    let rate: u64 = std::env::var("SOAK_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let code = rt.block_on(soak(Duration::from_secs(secs), rate.max(1)));
    std::process::exit(code);
}

async fn soak(length: Duration, rate: u64) -> i32 {
    let app = |name: &str, secret: &str| SimApp::new(name, CORP, secret, 1000002);
    let cfg = SimConfig {
        apps: vec![
            app("hr-bot", "soak-secret-hr-91a2b3c4"),
            app("ops-bot", "soak-secret-ops-5d6e7f80"),
        ],
        ..SimConfig::dev()
    };
    let primary = Simulator::start("127.0.0.1:0".parse().unwrap(), cfg)
        .await
        .unwrap();
    let standby = primary
        .also_listen("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (listen, admin) = (free_port(), free_port());
    let config_path = dir.path().join("sidecar.yaml");
    let text = config(listen, admin, &primary.url(), &standby.url());
    std::fs::write(&config_path, &text).unwrap();
    let log_path = dir.path().join("sidecar.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child: Child = Command::new(env!("CARGO_BIN_EXE_wecom-sidecar"))
        .arg("--config")
        .arg(&config_path)
        .env("SOAK_HR_SECRET", "soak-secret-hr-91a2b3c4")
        .env("SOAK_OPS_SECRET", "soak-secret-ops-5d6e7f80")
        .env("WECOM_SIDECAR_LOG", "warn")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .expect("start the release sidecar");
    let pid = child.id();
    let base = format!("http://127.0.0.1:{listen}");
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http
            .get(format!("http://127.0.0.1:{admin}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let seq = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..WORKERS)
        .map(|i| {
            tokio::spawn(worker(
                i,
                base.clone(),
                tally.clone(),
                stop.clone(),
                seq.clone(),
                Duration::from_micros(1_000_000 * WORKERS as u64 / rate),
            ))
        })
        .collect();

    let steps = schedule();
    let step_len = Duration::from_secs(20);
    let started = Instant::now();
    let mut rss_samples = Vec::new();
    let mut last_report = Instant::now();
    let mut step = 0usize;
    let mut step_started = Instant::now();
    println!(
        "soak: {} s, {rate} calls/s from {WORKERS} workers, fault step every {} s; sidecar pid {pid}",
        length.as_secs(),
        step_len.as_secs()
    );
    println!(
        "{:>6} {:>9} {:>9} {:>9} {:>8}  fault now",
        "t (s)", "calls", "ok", "failed", "RSS MB"
    );
    while started.elapsed() < length {
        if step_started.elapsed() >= step_len {
            primary.clear_faults();
            step += 1;
            let (name, faults) = &steps[step % steps.len()];
            for f in faults {
                primary.inject_here(f.clone());
            }
            // Between steps: a token event, a reload or a SIGHUP, in turn.
            match step % 4 {
                0 => primary.invalidate_all_tokens(),
                1 => {
                    let _ = http
                        .post(format!("http://127.0.0.1:{admin}/admin/reload"))
                        .send()
                        .await;
                }
                2 => {
                    let _ = Command::new("kill")
                        .arg("-HUP")
                        .arg(pid.to_string())
                        .status();
                }
                _ => primary.expire_all_tokens(),
            }
            step_started = Instant::now();
            println!("{:>6} step {step}: {name}", started.elapsed().as_secs());
        }
        if let Ok(Some(status)) = child.try_wait() {
            println!("the sidecar exited: {status}");
            stop.store(true, Ordering::Relaxed);
            return 1;
        }
        if last_report.elapsed() >= Duration::from_secs(30) {
            let rss = rss_kib(pid, "VmRSS:");
            rss_samples.push((started.elapsed().as_secs(), rss));
            let failed: u64 = tally.failures.lock().unwrap().values().sum();
            println!(
                "{:>6} {:>9} {:>9} {:>9} {:>8.1}  {}",
                started.elapsed().as_secs(),
                tally.calls.load(Ordering::Relaxed),
                tally.ok.load(Ordering::Relaxed),
                failed,
                rss as f64 / 1024.0,
                steps[step % steps.len()].0
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    primary.clear_faults();
    for w in workers {
        let _ = w.await;
    }

    let counters = primary.counters();
    let twice: Vec<(&String, &u64)> = counters
        .delivered_per_user
        .iter()
        .filter(|(u, n)| u.starts_with("once") && **n > 1)
        .collect();
    let sampled = counters
        .delivered_per_user
        .keys()
        .filter(|u| u.starts_with("once"))
        .count();
    let sent = seq.load(Ordering::Relaxed);
    let over_delivered = counters.messages_delivered > sent;
    let failures = tally.failures.lock().unwrap().clone();
    let unexplained: u64 = failures
        .iter()
        .filter(|(k, _)| !explained(k))
        .map(|(_, n)| n)
        .sum();
    let logs = std::fs::read_to_string(&log_path).unwrap_or_default();
    let panicked = logs.lines().filter(|l| l.contains("panicked")).count();
    let calls = tally.calls.load(Ordering::Relaxed);
    let ok = tally.ok.load(Ordering::Relaxed);
    println!("\n== soak summary ({} s) ==", started.elapsed().as_secs());
    println!(
        "calls {calls}, ok {ok} ({:.2} %), failed {}",
        100.0 * ok as f64 / calls.max(1) as f64,
        calls - ok
    );
    println!("failures by kind (api, status, reason or errcode):");
    for (k, n) in &failures {
        println!(
            "  {n:>7}  {k}{}",
            if explained(k) {
                ""
            } else {
                "   <- not explained by a fault"
            }
        );
    }
    println!(
        "messages sent {sent}, delivered {}, duplicates suppressed by WeCom {}; of {sampled} messages to a recipient of their own, delivered twice: {}",
        counters.messages_delivered,
        counters.duplicates_suppressed,
        twice.len()
    );
    println!("gettoken calls: {:?}", counters.gettoken);
    let peak = rss_kib(pid, "VmHWM:");
    println!(
        "RSS MB over time: {}",
        rss_samples
            .iter()
            .map(|(t, r)| format!("{t}s {:.1}", *r as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "peak RSS {:.1} MB; panics in log: {panicked}",
        peak as f64 / 1024.0
    );
    let _ = child.kill();
    let _ = child.wait();
    if !twice.is_empty() || over_delivered || panicked > 0 || unexplained > 0 {
        println!("SOAK FAILED");
        return 1;
    }
    println!("soak passed");
    0
}
