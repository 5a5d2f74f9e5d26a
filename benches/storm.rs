//! Connection storms against the release sidecar, and what they leave behind: resident memory
//! and open descriptors before, during and after.
//!
//! 1. **Keep-alive storm**: `STORM_CONNS` (5,000) connections, each answered once and held
//!    open together, then all closed; RSS is read before, at the peak, and for
//!    `STORM_AFTER_SECS` (60) after.
//! 2. **Slowloris at RLIMIT_NOFILE 1024**: a second sidecar started with a descriptor limit of
//!    1024 (soft and hard), 1,100 connections dripping their request heads a byte every
//!    500 ms and reconnecting when cut, for 10 s, while a normal call is made every 250 ms on
//!    a new connection; descriptors, RSS and the normal calls answered are reported.
//!
//! ```sh
//! cargo bench --bench storm
//! STORM_CONNS=2000 STORM_AFTER_SECS=20 cargo bench --bench storm
//! # a sidecar binary built apart (the load generator itself need not be optimised):
//! STORM_BIN=target/release/wecom-sidecar cargo test --bench storm
//! ```

mod common;

use common::{env_or, free_port};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wecom_sim::{SimApp, SimConfig, Simulator};

const CORP: &str = "wwstorm0000000001";
const SECRET: &str = "storm-secret-hr-3c4d5e6f";

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn rss_mb(pid: u32) -> f64 {
    status_kib(pid, "VmRSS:") as f64 / 1024.0
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

struct Sidecar {
    child: Child,
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(upstream: &str, extra: &str, nofile: Option<u64>) -> Sidecar {
    let dir = tempfile::tempdir().unwrap();
    let (listen, admin) = (free_port(), free_port());
    let config = format!(
        "listen: \"127.0.0.1:{listen}\"\nadmin_listen: \"127.0.0.1:{admin}\"\n\
         upstreams:\n  primary: {{ url: \"{upstream}\" }}\n\
         apps:\n  - {{ name: hr-bot, corp_id: {CORP}, secret_env: STORM_SECRET, default: true }}\n{extra}"
    );
    let path = dir.path().join("sidecar.yaml");
    std::fs::write(&path, config).unwrap();
    let bin =
        std::env::var("STORM_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_wecom-sidecar").into());
    let mut command = Command::new(bin);
    if let Some(n) = nofile {
        let lim = libc::rlimit {
            rlim_cur: n as libc::rlim_t,
            rlim_max: n as libc::rlim_t,
        };
        // SAFETY: only setrlimit (async-signal-safe) runs between fork and exec.
        unsafe {
            command.pre_exec(move || {
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
    let child = command
        .arg("--config")
        .arg(&path)
        .env("STORM_SECRET", SECRET)
        .env("WECOM_SIDECAR_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .expect("start the sidecar");
    let http = reqwest::Client::new();
    for _ in 0..400 {
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
    Sidecar {
        child,
        addr: format!("127.0.0.1:{listen}").parse().unwrap(),
        _dir: dir,
    }
}

/// One GET on `s`, its answer read (framed by Content-Length); `true` for a 200.
async fn call(s: &mut TcpStream, userid: &str) -> bool {
    let req = format!("GET /cgi-bin/user/get?userid={userid} HTTP/1.1\r\nHost: s\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match tokio::time::timeout(Duration::from_secs(30), s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return false,
        };
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let len = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        if buf.len() >= end + 4 + len {
            return head.starts_with("http/1.1 200");
        }
    }
}

async fn keepalive_storm(upstream: &str, conns: u64, after: u64) {
    let sc = start(upstream, "", None).await;
    let pid = sc.child.id();
    let mut warm = TcpStream::connect(sc.addr).await.unwrap();
    for i in 0..50 {
        call(&mut warm, &format!("w{i}")).await;
    }
    drop(warm);
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!(
        "keep-alive storm: before     RSS {:6.1} MB, descriptors {}",
        rss_mb(pid),
        fds(pid)
    );
    let tasks: Vec<_> = (0..conns)
        .map(|i| {
            let addr = sc.addr;
            tokio::spawn(async move {
                let mut s = TcpStream::connect(addr).await.ok()?;
                call(&mut s, &format!("s{i}")).await.then_some(s)
            })
        })
        .collect();
    let mut held = Vec::new();
    for t in tasks {
        if let Ok(Some(s)) = t.await {
            held.push(s);
        }
    }
    println!(
        "keep-alive storm: during     RSS {:6.1} MB, descriptors {}, {} of {conns} connections answered and open (peak RSS {:.1} MB)",
        rss_mb(pid),
        fds(pid),
        held.len(),
        status_kib(pid, "VmHWM:") as f64 / 1024.0
    );
    drop(held);
    let closed = Instant::now();
    for at in [1, 10, 30, 60, 120, 300] {
        if at > after {
            break;
        }
        let wait = Duration::from_secs(at).saturating_sub(closed.elapsed());
        tokio::time::sleep(wait).await;
        println!(
            "keep-alive storm: +{at:>3} s     RSS {:6.1} MB, descriptors {}",
            rss_mb(pid),
            fds(pid)
        );
    }
}

async fn slowloris(upstream: &str) {
    let sc = start(upstream, "", Some(1024)).await;
    let pid = sc.child.id();
    let addr = sc.addr;
    let mut warm = TcpStream::connect(addr).await.unwrap();
    call(&mut warm, "warm").await;
    drop(warm);
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!(
        "slowloris @1024: before      RSS {:6.1} MB, descriptors {}",
        rss_mb(pid),
        fds(pid)
    );
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicU64::new(0));
    let attackers: Vec<_> = (0..1100)
        .map(|i| {
            let (stop, opened) = (stop.clone(), opened.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut s) = TcpStream::connect(addr).await else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    opened.fetch_add(1, Ordering::Relaxed);
                    let head = format!("GET /cgi-bin/user/get?userid=a{i} HTTP/1.1\r\n");
                    if s.write_all(head.as_bytes()).await.is_err() {
                        continue;
                    }
                    while !stop.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        if s.write_all(b"X").await.is_err() {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    let (mut answered, mut tried, mut peak_fds, mut peak_rss) = (0, 0, 0, 0.0f64);
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(250)).await;
        tried += 1;
        if let Ok(mut s) = TcpStream::connect(addr).await {
            if call(&mut s, &format!("n{tried}")).await {
                answered += 1;
            }
        }
        peak_fds = peak_fds.max(fds(pid));
        peak_rss = peak_rss.max(rss_mb(pid));
    }
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        let _ = a.await;
    }
    println!(
        "slowloris @1024: during      RSS {peak_rss:6.1} MB (peak), descriptors {peak_fds} (peak), {} attacker connections opened, normal calls answered {answered} of {tried}",
        opened.load(Ordering::Relaxed)
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    println!(
        "slowloris @1024: +10 s       RSS {:6.1} MB, descriptors {}",
        rss_mb(pid),
        fds(pid)
    );
}

fn main() {
    let conns = env_or("STORM_CONNS", 5000);
    let after = env_or("STORM_AFTER_SECS", 60);
    // The storm's own sockets need descriptors too.
    wecom_sidecar::descriptors::raise_to_hard().expect("raise the descriptor limit");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cfg = SimConfig {
            apps: vec![SimApp::new("hr-bot", CORP, SECRET, 1000002)],
            token_ttl: Duration::from_secs(7200),
            ..SimConfig::dev()
        };
        let sim = Simulator::start("127.0.0.1:0".parse().unwrap(), cfg)
            .await
            .unwrap();
        keepalive_storm(&sim.url(), conns, after).await;
        slowloris(&sim.url()).await;
    });
}
