//! The sidecar process runner: the real `wecom-sidecar` binary started as a child process
//! (config written to a temp dir, logs captured to a file, listen ports from the registry), and
//! what the tests ask of it over its admin port.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::eventually::eventually;
use super::http::client;
use super::metrics::Metrics;
use super::ports::free_port;
use super::process::exited_within;
use super::wecom::{CORP_ID, HR_SECRET, OPS_SECRET};

/// A running sidecar process.
pub struct Sidecar {
    pub child: Child,
    pub base: String,
    pub admin: String,
    pub dir: tempfile::TempDir,
    pub log_path: PathBuf,
    pub config_path: PathBuf,
}

impl Sidecar {
    /// `wecom-sidecar --dev --config CONFIG` (plus `args`, `envs`) in `dir`, its output in
    /// `dir/sidecar.log`; every `--dev` stand-in variable of the test's own environment removed,
    /// so the simulator's secrets stand in. Not waited for.
    pub fn spawn_dev(
        dir: tempfile::TempDir,
        config_path: PathBuf,
        (listen, admin): (u16, u16),
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Sidecar {
        let log_path = dir.path().join("sidecar.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_wecom-sidecar"))
            .arg("--dev")
            .arg("--config")
            .arg(&config_path)
            .args(args)
            .env_remove("WECOM_DEV_HR_SECRET")
            .env_remove("WECOM_DEV_OPS_SECRET")
            .env_remove("WECOM_DEV_HR_CB_TOKEN")
            .env_remove("WECOM_DEV_HR_CB_AES_KEY")
            .env_remove("WECOM_SIDECAR_DEV_HOST")
            .env_remove("WECOM_SIDECAR_DEV_DELIVER_TO")
            .env("WECOM_SIDECAR_LOG", "info")
            .envs(envs.iter().copied())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Sidecar {
            child,
            base: format!("http://127.0.0.1:{listen}"),
            admin: format!("http://127.0.0.1:{admin}"),
            dir,
            log_path,
            config_path,
        }
    }
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
        // No outgoing connection can take a port from the registry, but another process on
        // the machine may bind it explicitly before the child does. The sidecar then exits at
        // once saying so, and it is started again on other ports.
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
        let (mut exited, mut up) = (false, false);
        eventually(Duration::from_secs(30), async || {
            exited = self.child.try_wait().unwrap().is_some();
            up = !exited && self.healthy(&client).await;
            exited || up
        })
        .await;
        if exited {
            return Err(self.logs());
        }
        assert!(up, "sidecar did not come up; log:\n{}", self.logs());
        Ok(())
    }

    /// Whether `/healthz` answers 200 and the app listener takes connections (it may come up
    /// a moment after the admin one).
    async fn healthy(&self, client: &reqwest::Client) -> bool {
        let admin_up = client
            .get(format!("{}/healthz", self.admin))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        admin_up
            && tokio::net::TcpStream::connect(self.base.trim_start_matches("http://"))
                .await
                .is_ok()
    }

    /// Waits until /readyz answers 200.
    pub async fn wait_ready(&self) {
        let client = client();
        let ready = eventually(Duration::from_secs(30), async || {
            client
                .get(format!("{}/readyz", self.admin))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        assert!(ready, "sidecar never ready; log:\n{}", self.logs());
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

    /// `/metrics`, parsed.
    pub async fn metrics(&self) -> Metrics {
        let text = client()
            .get(format!("{}/metrics", self.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        Metrics::parse(text)
    }

    /// `/metrics` once no call is in flight. A call is recorded after its answer is written
    /// and stops counting as in flight after that, so an app can hold its answer before the
    /// call's metrics are in; this waits for them.
    pub async fn settled_metrics(&self) -> Metrics {
        let mut metrics = None;
        let settled = eventually(Duration::from_secs(15), async || {
            let m = metrics.insert(self.metrics().await);
            m.sum("wecom_sidecar_in_flight_requests", &[]) == 0.0
        })
        .await;
        let metrics = metrics.expect("looked at least once");
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
        exited_within(&mut self.child, within).and_then(|s| s.code())
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
