//! Test harness: a WeCom simulator on a random loopback port, the real `wecom-sidecar` binary
//! started as a child process against it (config written to a temp dir, logs captured to a
//! file), and HTTP clients. Ports are never hard-coded.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use wecom_sim::{Fault, FaultKind, SimApp, SimConfig, Simulator};

/// Secrets the test apps use; tests grep every output for them.
pub const HR_SECRET: &str = "test-secret-hr-7f3a9c1e5b";
pub const OPS_SECRET: &str = "test-secret-ops-2d8e4b6a0c";
pub const CORP_ID: &str = "wwtest0000000001";

/// How many calls the simulator has received on `path` (0 before the first).
pub fn calls(sim: &Simulator, path: &str) -> u64 {
    sim.counters().calls.get(path).copied().unwrap_or(0)
}

/// A fault to inject at the simulator on `path`; `times: None` lasts until cleared.
pub fn fault(path: &str, kind: FaultKind, times: Option<u32>) -> Fault {
    Fault {
        path: path.into(),
        kind,
        times,
    }
}

/// A free loopback port (bound, then released for the child to take), never the same one
/// twice in a test process, so two sidecars of concurrent tests cannot be given one port.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if GIVEN.lock().unwrap().insert(port) {
            return port;
        }
    }
}

pub fn sim_config() -> SimConfig {
    let mut cfg = SimConfig::dev();
    cfg.apps = vec![
        SimApp {
            name: "hr-bot".into(),
            corp_id: CORP_ID.into(),
            secret: HR_SECRET.into(),
        },
        SimApp {
            name: "ops-bot".into(),
            corp_id: CORP_ID.into(),
            secret: OPS_SECRET.into(),
        },
    ];
    cfg
}

pub async fn simulator() -> Simulator {
    Simulator::start("127.0.0.1:0".parse().unwrap(), sim_config())
        .await
        .unwrap()
}

/// Two endpoints of one WeCom: a simulator (the primary) and the same simulator on a second
/// loopback address (the standby). Faults injected with `inject_here` hit one address only.
pub async fn primary_and_standby() -> (Simulator, Simulator) {
    let primary = simulator().await;
    let standby = primary
        .also_listen("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    (primary, standby)
}

/// A running sidecar process.
pub struct Sidecar {
    pub child: Child,
    pub base: String,
    pub admin: String,
    pub dir: tempfile::TempDir,
    pub log_path: PathBuf,
    pub config_path: PathBuf,
}

/// The standard test config: two apps (hr-bot default), primary at `upstream`, plus `extra`
/// YAML appended (routes, defaults...).
pub fn config_yaml(listen: u16, admin: u16, upstream: &str, extra: &str) -> String {
    format!(
        r#"listen: "127.0.0.1:{listen}"
admin_listen: "127.0.0.1:{admin}"
upstreams:
  primary:
    url: "{upstream}"
    connect_timeout: 1s
    timeout: 3s
apps:
  - name: hr-bot
    corp_id: {CORP_ID}
    agent_id: 1000002
    secret_env: TEST_HR_SECRET
    default: true
  - name: ops-bot
    corp_id: {CORP_ID}
    agent_id: 1000003
    secret_env: TEST_OPS_SECRET
{extra}
"#
    )
}

impl Sidecar {
    /// Starts the sidecar against `upstream` with the standard config plus `extra`.
    pub async fn start(upstream: &str, extra: &str) -> Sidecar {
        Self::start_with(|listen, admin| config_yaml(listen, admin, upstream, extra)).await
    }

    /// Starts the sidecar with a config made from (listen port, admin port).
    pub async fn start_with(make: impl Fn(u16, u16) -> String) -> Sidecar {
        Self::start_with_env(make, &[]).await
    }

    /// As `start_with`, with extra environment variables for the process.
    pub async fn start_with_env(
        make: impl Fn(u16, u16) -> String,
        envs: &[(&str, &str)],
    ) -> Sidecar {
        Self::start_limited(make, envs, None).await
    }

    /// As `start_with_env`, with the process's descriptor limit (soft and hard) set to
    /// `nofile` before it starts.
    pub async fn start_limited(
        make: impl Fn(u16, u16) -> String,
        envs: &[(&str, &str)],
        nofile: Option<u64>,
    ) -> Sidecar {
        // A port picked by `free_port` can be taken by another socket (any outgoing connection
        // may get it) before the child binds it. The sidecar then exits at once saying so,
        // and it is started again on other ports.
        for _ in 0..5 {
            let mut sc = Self::spawn(&make, envs, nofile);
            match sc.wait_healthy().await {
                Ok(()) => return sc,
                Err(logs) if logs.contains("already in use") => continue,
                Err(logs) => panic!("the sidecar exited before it came up; log:\n{logs}"),
            }
        }
        panic!("five starts in a row found a port taken");
    }

    fn spawn(
        make: &impl Fn(u16, u16) -> String,
        envs: &[(&str, &str)],
        nofile: Option<u64>,
    ) -> Sidecar {
        let dir = tempfile::tempdir().unwrap();
        let (listen, admin) = (free_port(), free_port());
        let config_path = dir.path().join("sidecar.yaml");
        std::fs::write(&config_path, make(listen, admin)).unwrap();
        let log_path = dir.path().join("sidecar.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_wecom-sidecar"));
        if let Some(n) = nofile {
            use std::os::unix::process::CommandExt;
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
            .arg(&config_path)
            .env("TEST_HR_SECRET", HR_SECRET)
            .env("TEST_OPS_SECRET", OPS_SECRET)
            .env(
                "WECOM_SIDECAR_LOG",
                "debug,pingora_core=info,pingora_proxy=info",
            )
            .env_remove("WECOM_SIDECAR_LOG_FORMAT")
            .envs(envs.iter().copied())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start wecom-sidecar");
        Sidecar {
            child,
            base: format!("http://127.0.0.1:{listen}"),
            admin: format!("http://127.0.0.1:{admin}"),
            dir,
            log_path,
            config_path,
        }
    }

    /// Waits until both listeners take connections; `Err(log)` if the process exited first.
    async fn wait_healthy(&mut self) -> Result<(), String> {
        let client = client();
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if self.child.try_wait().unwrap().is_some() {
                return Err(self.logs());
            }
            if let Ok(r) = client.get(format!("{}/healthz", self.admin)).send().await {
                if r.status().is_success() {
                    // The app listener may come up a moment after the admin one.
                    if tokio::net::TcpStream::connect(self.base.trim_start_matches("http://"))
                        .await
                        .is_ok()
                    {
                        return Ok(());
                    }
                }
            }
            assert!(
                Instant::now() < until,
                "sidecar did not come up; log:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until /readyz answers 200.
    pub async fn wait_ready(&self) {
        let client = client();
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(format!("{}/readyz", self.admin)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(
                Instant::now() < until,
                "sidecar never ready; log:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn metrics(&self) -> String {
        client()
            .get(format!("{}/metrics", self.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// `/metrics` once no call is in flight. A call is recorded after its answer is written
    /// and stops counting as in flight after that, so an app can hold its answer before the
    /// call's metrics are in; this waits for them.
    pub async fn settled_metrics(&self) -> String {
        let mut metrics = String::new();
        let settled = eventually(Duration::from_secs(15), async || {
            metrics = self.metrics().await;
            !metrics
                .lines()
                .any(|l| l.starts_with("wecom_sidecar_in_flight_requests{") && !l.ends_with(" 0"))
        })
        .await;
        assert!(settled, "calls still in flight:\n{metrics}");
        metrics
    }

    /// `POST /admin/reload`: its status and body.
    pub async fn reload(&self) -> (u16, String) {
        let r = client()
            .post(format!("{}/admin/reload", self.admin))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    pub async fn status(&self) -> String {
        client()
            .get(format!("{}/admin/status", self.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Sends a signal to the process.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits for the process to exit; its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let until = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sidecar {
    /// Stops the process; and since every test's sidecar passes through here, checks that
    /// nothing it was given made it panic (unless the test already failed).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let logs = self.logs();
            if let Some(line) = logs.lines().find(|l| l.contains("panicked")) {
                panic!("wecom-sidecar panicked: {line}");
            }
        }
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(64)
        .build()
        .unwrap()
}

/// GET a sidecar URL and parse the JSON answer.
pub async fn get_json(
    client: &reqwest::Client,
    url: &str,
) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let r = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e:?}"));
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.bytes().await.unwrap();
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&body)));
    (status, headers, v)
}

/// POST JSON to a sidecar URL and parse the JSON answer.
pub async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let r = client.post(url).json(body).send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.bytes().await.unwrap();
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&body)));
    (status, headers, v)
}

/// Peak resident set size of a process, in KiB (VmHWM).
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Polls `check` until it returns true or `within` passes.
pub async fn eventually(within: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let until = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Descriptors process `pid` has open (0 if it is gone).
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

pub fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}
