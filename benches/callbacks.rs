//! Inbound callbacks under load: the release sidecar pinned to one core (CPU 0) with the
//! SQLite store (WAL, `synchronous=FULL`, group commit), WeCom's pushes made by the simulator's
//! own crypto on the other core, every push a new message (no dedupe short cut).
//!
//! 1. (run last) Accepted pushes per second: `BENCH_CONNS` keep-alive connections (default 32) push as
//!    fast as the answers come for `BENCH_SECS` (default 10 s); an accepted push is a 200,
//!    committed to the store before it is answered.
//! 2. WeCom's request-to-answer latency at `BENCH_RATE` pushes/s (default 500) for
//!    `BENCH_SECS`, open loop: each push is timed from when it was due, so a stall counts
//!    (no coordinated omission). Once for an app with `reply_within: 0` (the answer waits
//!    for the commit only), once for one with `reply_within: 3s` whose app answers at once
//!    (the answer waits for the delivery and carries the encrypted passive reply).
//!
//! The latency runs come first, on an empty store; after each run the bench waits (at most
//! 60 s) for the deliveries to the app to catch up and prints how fast they went.
//!
//! ```sh
//! cargo bench --bench callbacks
//! BENCH_SECS=30 BENCH_RATE=1000 cargo bench --bench callbacks
//! ```
//! The target is p99 < 50 ms at 500 pushes/s: WeCom gives up after 5 s.

mod common;

use common::{env_or, free_port, percentile, pin_to, stop};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wecom_sim::callback::crypto::WeComCrypto;
use wecom_sim::{SimApp, SimConfig, Simulator};

const CORP: &str = "wwbench0000000001";

/// One push of `app`, as WeCom sends it: the URL query and the envelope.
struct Pusher {
    crypto: WeComCrypto,
    url: String,
    agent_id: u32,
    seq: AtomicU64,
}

impl Pusher {
    fn new(app: &SimApp, url: String) -> Pusher {
        Pusher {
            crypto: WeComCrypto::new(&app.callback_token, &app.callback_aes_key, &app.corp_id)
                .unwrap(),
            url,
            agent_id: app.agent_id,
            seq: AtomicU64::new(0),
        }
    }

    /// A new text message (its MsgId and content unique), encrypted and signed.
    fn next(&self) -> (String, String) {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let xml = format!(
            "<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><FromUserName><![CDATA[zhangsan]]></FromUserName>\
             <CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType>\
             <Content><![CDATA[benchmark push {n}]]></Content><MsgId>{ts}{n:08}</MsgId>\
             <AgentID>{}</AgentID></xml>",
            self.agent_id
        );
        let encrypted = self.crypto.encrypt(xml.as_bytes());
        let nonce = format!("{}", 100_000_000 + n);
        let timestamp = ts.to_string();
        let signature = self.crypto.signature(&timestamp, &nonce, &encrypted);
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("msg_signature", &signature)
            .append_pair("timestamp", &timestamp)
            .append_pair("nonce", &nonce)
            .finish();
        let body = format!(
            "<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><AgentID><![CDATA[{}]]></AgentID>\
             <Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>",
            self.agent_id
        );
        (format!("{}?{query}", self.url), body)
    }

    /// Sends one push: whether WeCom got a 200 (the body read whole).
    async fn send(&self, client: &reqwest::Client) -> bool {
        let (url, body) = self.next();
        match client
            .post(url)
            .header("content-type", "text/xml")
            .body(body)
            .send()
            .await
        {
            Ok(r) => r.status().as_u16() == 200 && r.bytes().await.is_ok(),
            Err(_) => false,
        }
    }
}

fn config(listen: u16, admin: u16, cb: u16, sim: &str, store: &str) -> String {
    format!(
        r#"listen: "127.0.0.1:{listen}"
admin_listen: "127.0.0.1:{admin}"
upstreams:
  primary: {{ url: "{sim}", connect_timeout: 500ms, timeout: 2s }}
apps:
  - {{ name: hr-bot, corp_id: {CORP}, secret_env: BENCH_HR_SECRET, default: true }}
  - {{ name: ops-bot, corp_id: {CORP}, secret_env: BENCH_OPS_SECRET }}
callbacks:
  listen: "127.0.0.1:{cb}"
  apps:
    - {{ app: hr-bot, path: /callback/hr-bot, token_env: BENCH_HR_CB_TOKEN, aes_key_env: BENCH_HR_CB_AES_KEY, deliver_to: "{sim}/sim/receiver", reply_within: 0s }}
    - {{ app: ops-bot, path: /callback/ops-bot, token_env: BENCH_OPS_CB_TOKEN, aes_key_env: BENCH_OPS_CB_AES_KEY, deliver_to: "{sim}/sim/receiver", reply_within: 3s }}
  delivery: {{ timeout: 5s, backoff_base: 100ms, backoff_max: 2s, max_age: 1h }}
store:
  path: "{store}"
"#
    )
}

/// Closed loop: `conns` tasks pushing back to back for `secs`; (accepted, failed, seconds).
async fn throughput(pusher: Arc<Pusher>, conns: u64, secs: u64) -> (u64, u64, f64) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(conns as usize)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (p, c, ok, failed) = (pusher.clone(), client.clone(), ok.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                if p.send(&c).await {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    (
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64(),
    )
}

/// Open loop at `rate` pushes/s for `secs`: latencies (µs, from when each was due) and failures.
async fn latency(pusher: Arc<Pusher>, rate: u64, secs: u64) -> (Vec<u64>, u64) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let total = rate * secs;
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + Duration::from_micros(i * 1_000_000 / rate);
        tokio::time::sleep_until(due).await;
        let (p, c) = (pusher.clone(), client.clone());
        tasks.push(tokio::spawn(async move {
            let ok = p.send(&c).await;
            (ok, due.elapsed().as_micros() as u64)
        }));
    }
    let mut micros = Vec::with_capacity(tasks.len());
    let mut failed = 0;
    for t in tasks {
        match t.await {
            Ok((true, us)) => micros.push(us),
            _ => failed += 1,
        }
    }
    micros.sort_unstable();
    (micros, failed)
}

fn report(name: &str, rate: u64, secs: u64, (micros, failed): &(Vec<u64>, u64)) {
    println!(
        "latency, {name}, {rate} pushes/s for {secs} s: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} answered 200, {failed} failed)",
        percentile(micros, 0.50),
        percentile(micros, 0.99),
        percentile(micros, 1.0),
        micros.len()
    );
}

/// Waits (at most 60 s) until the app has received `pushed` deliveries in all, and says how
/// fast the backlog went.
async fn drain(c: &reqwest::Client, sim: &str, pushed: u64) {
    let start = Instant::now();
    let at_start = received(c, sim).await;
    let mut now = at_start;
    while now < pushed && start.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        now = received(c, sim).await;
    }
    let took = start.elapsed().as_secs_f64();
    println!(
        "  delivered to the app: {now} of {pushed} ({} of the backlog of {} in {took:.1} s{})",
        now - at_start,
        pushed.saturating_sub(at_start),
        if now - at_start > 0 && took > 0.5 {
            format!(", {:.0}/s", (now - at_start) as f64 / took)
        } else {
            String::new()
        }
    );
}

async fn received(c: &reqwest::Client, sim: &str) -> u64 {
    match c.get(format!("{sim}/sim/receiver")).send().await {
        Ok(r) => r
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v["total"].as_u64())
            .unwrap_or(0),
        Err(_) => 0,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is read from the command line.
    let secs = env_or("BENCH_SECS", 10).max(1);
    let rate = env_or("BENCH_RATE", 500).max(1);
    let conns = env_or("BENCH_CONNS", 32).max(1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let generator_cpu = if cores > 1 { 1 } else { 0 };
    pin_to(generator_cpu);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let code = rt.block_on(run(secs, rate, conns, cores));
    std::process::exit(code);
}

async fn run(secs: u64, rate: u64, conns: u64, cores: usize) -> i32 {
    let hr = SimApp::new("hr-bot", CORP, "bench-secret-hr-4c1d", 1000002);
    let ops = SimApp::new("ops-bot", CORP, "bench-secret-ops-8e2f", 1000003);
    let cfg = SimConfig {
        apps: vec![hr.clone(), ops.clone()],
        ..SimConfig::dev()
    };
    let sim = Simulator::start("127.0.0.1:0".parse().unwrap(), cfg)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("sidecar.db");
    let (listen, admin, cb) = (free_port(), free_port(), free_port());
    let config_path = dir.path().join("sidecar.yaml");
    std::fs::write(
        &config_path,
        config(listen, admin, cb, &sim.url(), store.to_str().unwrap()),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("sidecar.log")).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_wecom-sidecar"));
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: only sched_setaffinity (async-signal-safe) runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                pin_to(0);
                Ok(())
            });
        }
    }
    let mut child: Child = command
        .arg("--config")
        .arg(&config_path)
        .env("BENCH_HR_SECRET", &hr.secret)
        .env("BENCH_OPS_SECRET", &ops.secret)
        .env("BENCH_HR_CB_TOKEN", &hr.callback_token)
        .env("BENCH_HR_CB_AES_KEY", &hr.callback_aes_key)
        .env("BENCH_OPS_CB_TOKEN", &ops.callback_token)
        .env("BENCH_OPS_CB_AES_KEY", &ops.callback_aes_key)
        .env("WECOM_SIDECAR_LOG", "warn")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .expect("start wecom-sidecar");
    let up_by = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", cb))
        .await
        .is_err()
    {
        if Instant::now() > up_by || child.try_wait().ok().flatten().is_some() {
            eprintln!(
                "the sidecar's callback listener did not come up:\n{}",
                std::fs::read_to_string(dir.path().join("sidecar.log")).unwrap_or_default()
            );
            stop(&mut child);
            return 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "callbacks bench: the sidecar on CPU 0 (of {cores}), pushes made on CPU {}; SQLite store {}",
        if cores > 1 { 1 } else { 0 },
        store.display()
    );
    // The app's answer: a passive reply (an empty answer would leave WeCom waiting for
    // reply_within; see the README's figures).
    let told = reqwest::Client::new()
        .post(format!("{}/sim/receiver/reply", sim.url()))
        .body(r#"{"body":"<xml><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[ok]]></Content></xml>"}"#)
        .send()
        .await;
    if !told.is_ok_and(|r| r.status().is_success()) {
        eprintln!("the simulator's receiver did not take its answer");
        stop(&mut child);
        return 1;
    }
    let hr_push = Arc::new(Pusher::new(
        &hr,
        format!("http://127.0.0.1:{cb}/callback/hr-bot"),
    ));
    let ops_push = Arc::new(Pusher::new(
        &ops,
        format!("http://127.0.0.1:{cb}/callback/ops-bot"),
    ));

    let c = reqwest::Client::new();
    let mut pushed = 0;

    let commit_only = latency(hr_push.clone(), rate, secs).await;
    report(
        "reply_within 0 (answered once committed)",
        rate,
        secs,
        &commit_only,
    );
    pushed += commit_only.0.len() as u64;
    drain(&c, &sim.url(), pushed).await;

    let with_reply = latency(ops_push, rate, secs).await;
    report(
        "reply_within 3s, the app answering at once (answered after delivery)",
        rate,
        secs,
        &with_reply,
    );
    pushed += with_reply.0.len() as u64;
    drain(&c, &sim.url(), pushed).await;

    let (ok, failed, took) = throughput(hr_push, conns, secs).await;
    println!(
        "accepted: {ok} pushes in {took:.1} s = {:.0} pushes/s ({conns} connections, closed loop, reply_within 0; {failed} not 200)",
        ok as f64 / took
    );
    pushed += ok;
    drain(&c, &sim.url(), pushed).await;

    let p99 = percentile(&commit_only.0, 0.99);
    println!(
        "target p99 < 50 ms at 500 pushes/s (answered once committed): {}",
        if rate == 500 && p99 < 50.0 {
            "met"
        } else if rate == 500 {
            "NOT met"
        } else {
            "not run at 500/s"
        }
    );
    stop(&mut child);
    0
}
