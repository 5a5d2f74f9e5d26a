//! The outbox under load: the release sidecar pinned to one core (CPU 0) with the SQLite
//! store (WAL, `synchronous=FULL`), the simulated WeCom down (every call reset or answered 503)
//! and the apps' sends made on the other core.
//!
//! 1. The added latency of the commit, open loop at `BENCH_RATE` sends/s (default 200) for
//!    `BENCH_SECS` (default 10 s), each send timed from when it was due (no coordinated
//!    omission): first on `linkedcorp/message/send` without an outbox (its one attempt fails,
//!    the app gets the 502), then on `message/send` with `outbox: true` (the same failed
//!    attempt, then the commit, then the queued answer). The difference is what queueing adds.
//! 2. (run last) Sends queued per second: `BENCH_CONNS` keep-alive connections (default 32)
//!    send as fast as the answers come for `BENCH_SECS`, each answer a committed send.
//! 3. WeCom comes back: how fast the senders drain what was queued (at most 90 s waited;
//!    the first replay waits out the senders' backoff, up to 30 s).
//!
//! ```sh
//! cargo bench --bench outbox
//! BENCH_SECS=30 BENCH_RATE=500 BENCH_CONNS=64 cargo bench --bench outbox
//! ```

mod common;

use common::{env_or, free_port, percentile, pin_to, stop};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wecom_sim::{SimApp, SimConfig, Simulator};

const CORP: &str = "wwbench0000000001";
const QUEUED: &str = "/cgi-bin/message/send";
const DIRECT: &str = "/cgi-bin/linkedcorp/message/send";

/// Both routes make one attempt, so a send's failure costs the same on each; only
/// `message/send` queues. `dedupe` on both: the outbox turns it on for its route anyway.
fn config(listen: u16, admin: u16, sim: &str, store: &str) -> String {
    format!(
        r#"listen: "127.0.0.1:{listen}"
admin_listen: "127.0.0.1:{admin}"
upstreams:
  primary: {{ url: "{sim}", connect_timeout: 500ms, timeout: 2s }}
apps:
  - {{ name: hr-bot, corp_id: {CORP}, secret_env: BENCH_HR_SECRET, default: true }}
defaults:
  quota: []
  recipient_cap: false
  retry: {{ attempts: 1 }}
routes:
  - {{ path: {QUEUED}, outbox: true, outbox_max_age: 30m }}
  - {{ path: {DIRECT}, dedupe: true }}
store:
  path: "{store}"
  max_bytes: 4GiB
  outbox_max_per_app: 10000000
"#
    )
}

/// Numbered sends of hr-bot, each a message of its own.
struct Sender {
    base: String,
    seq: AtomicU64,
}

/// How the sidecar answered a send.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Outcome {
    /// 200 with `X-Sidecar-Reason: queued`.
    Queued,
    /// WeCom's answer (errcode 0): delivered.
    Delivered,
    /// Any other answer (the 502 of a failed send), or none.
    Failed,
}

impl Sender {
    async fn send(&self, client: &reqwest::Client, path: &str) -> Outcome {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let body = format!(
            r#"{{"touser":"zhangsan","msgtype":"text","agentid":1000002,"text":{{"content":"bench send {n}"}}}}"#
        );
        match client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
        {
            Ok(r) => {
                let queued = r
                    .headers()
                    .get("x-sidecar-reason")
                    .is_some_and(|v| v == "queued");
                let ok = r.status().as_u16() == 200;
                let read = r.bytes().await.is_ok();
                match (ok && read, queued) {
                    (true, true) => Outcome::Queued,
                    (true, false) => Outcome::Delivered,
                    _ => Outcome::Failed,
                }
            }
            Err(_) => Outcome::Failed,
        }
    }
}

/// Open loop at `rate` sends/s for `secs` on `path`: latencies (µs, from when each was due)
/// of the answers that came out as `want`, and how many did not.
async fn latency(
    sender: Arc<Sender>,
    path: &'static str,
    want: Outcome,
    rate: u64,
    secs: u64,
) -> (Vec<u64>, u64) {
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
        let (s, c) = (sender.clone(), client.clone());
        tasks.push(tokio::spawn(async move {
            let got = s.send(&c, path).await;
            (got, due.elapsed().as_micros() as u64)
        }));
    }
    let mut micros = Vec::with_capacity(tasks.len());
    let mut other = 0;
    for t in tasks {
        match t.await {
            Ok((got, us)) if got == want => micros.push(us),
            _ => other += 1,
        }
    }
    micros.sort_unstable();
    (micros, other)
}

fn report(name: &str, rate: u64, secs: u64, (micros, other): &(Vec<u64>, u64)) {
    println!(
        "latency, {name}, {rate} sends/s for {secs} s: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} as expected, {other} not)",
        percentile(micros, 0.50),
        percentile(micros, 0.99),
        percentile(micros, 1.0),
        micros.len()
    );
}

/// Closed loop: `conns` tasks sending on the outbox route back to back for `secs`;
/// (queued, other answers, seconds).
async fn throughput(sender: Arc<Sender>, conns: u64, secs: u64) -> (u64, u64, f64) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(conns as usize)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let queued = Arc::new(AtomicU64::new(0));
    let other = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (s, c, q, o) = (
            sender.clone(),
            client.clone(),
            queued.clone(),
            other.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                if s.send(&c, QUEUED).await == Outcome::Queued {
                    q.fetch_add(1, Ordering::Relaxed);
                } else {
                    o.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    (
        queued.load(Ordering::Relaxed),
        other.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64(),
    )
}

/// WeCom is back: waits (at most 90 s) until it has delivered `queued` messages on the outbox
/// route, and says how fast the replay went from its first delivery.
async fn drain(sim: &Simulator, queued: u64) {
    let delivered = || {
        sim.delivered_messages()
            .iter()
            .filter(|m| m.path == QUEUED)
            .count() as u64
    };
    let at_start = delivered();
    let start = Instant::now();
    let mut first = None;
    let mut now = at_start;
    while now < at_start + queued && start.elapsed() < Duration::from_secs(90) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        now = delivered();
        if now > at_start && first.is_none() {
            first = Some((Instant::now(), now));
        }
    }
    let done = now - at_start;
    match first {
        Some((at, n)) if done > n - at_start => {
            let took = at.elapsed().as_secs_f64();
            println!(
                "drain: {done} of {queued} queued sends delivered; the first {:.1} s after WeCom came back (the senders' backoff), then {:.0}/s over {took:.1} s",
                (at - start).as_secs_f64(),
                (done - (n - at_start)) as f64 / took.max(0.001)
            );
        }
        _ => println!("drain: {done} of {queued} queued sends delivered in 90 s"),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is read from the command line.
    let secs = env_or("BENCH_SECS", 10).max(1);
    let rate = env_or("BENCH_RATE", 200).max(1);
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
    let cfg = SimConfig {
        apps: vec![hr.clone()],
        ..SimConfig::dev()
    };
    let sim = Simulator::start("127.0.0.1:0".parse().unwrap(), cfg)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("sidecar.db");
    let (listen, admin) = (free_port(), free_port());
    let config_path = dir.path().join("sidecar.yaml");
    std::fs::write(
        &config_path,
        config(listen, admin, &sim.url(), store.to_str().unwrap()),
    )
    .unwrap();
    let log_path = dir.path().join("sidecar.log");
    let log = std::fs::File::create(&log_path).unwrap();
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
        .env("WECOM_SIDECAR_LOG", "warn")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .expect("start wecom-sidecar");
    let logs = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let up_by = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", listen))
        .await
        .is_err()
    {
        if Instant::now() > up_by || child.try_wait().ok().flatten().is_some() {
            eprintln!("the sidecar did not come up:\n{}", logs());
            stop(&mut child);
            return 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "outbox bench: the sidecar on CPU 0 (of {cores}), sends made on CPU {}; SQLite store {}",
        if cores > 1 { 1 } else { 0 },
        store.display()
    );
    let sender = Arc::new(Sender {
        base: format!("http://127.0.0.1:{listen}"),
        seq: AtomicU64::new(0),
    });
    // A token first, while WeCom is up, as a running sidecar has one.
    let c = reqwest::Client::new();
    for path in [QUEUED, DIRECT] {
        let got = sender.send(&c, path).await;
        if got != Outcome::Delivered {
            eprintln!(
                "a send with WeCom up was not delivered ({got:?}):\n{}",
                logs()
            );
            stop(&mut child);
            return 1;
        }
    }
    sim.go_down(None);

    let failed = latency(sender.clone(), DIRECT, Outcome::Failed, rate, secs).await;
    report(
        "no outbox (one failed attempt, the 502)",
        rate,
        secs,
        &failed,
    );
    let queued = latency(sender.clone(), QUEUED, Outcome::Queued, rate, secs).await;
    report(
        "outbox (one failed attempt, the commit, the queued answer)",
        rate,
        secs,
        &queued,
    );
    println!(
        "  added by queueing: p50 {:+.2} ms, p99 {:+.2} ms",
        percentile(&queued.0, 0.50) - percentile(&failed.0, 0.50),
        percentile(&queued.0, 0.99) - percentile(&failed.0, 0.99)
    );

    let (n, other, took) = throughput(sender.clone(), conns, secs).await;
    println!(
        "queued: {n} sends in {took:.1} s = {:.0} sends/s ({conns} connections, closed loop, WeCom down; {other} not queued)",
        n as f64 / took
    );
    let depth_then = store_size(&store);
    println!(
        "  store file with WAL after {} queued: {depth_then}",
        queued.0.len() as u64 + n
    );

    sim.come_back();
    drain(&sim, queued.0.len() as u64 + n).await;

    let code = if queued.0.is_empty() || n == 0 {
        eprintln!("nothing was queued; the sidecar's log:\n{}", logs());
        1
    } else {
        0
    };
    stop(&mut child);
    code
}

/// The store file and its WAL, in MiB.
fn store_size(store: &std::path::Path) -> String {
    let size = |p: std::path::PathBuf| std::fs::metadata(p).map_or(0, |m| m.len());
    let mut wal = store.as_os_str().to_owned();
    wal.push("-wal");
    let bytes = size(store.to_path_buf()) + size(wal.into());
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
