//! A real `redis-server` for fleet mode, on a loopback port from the registry, without
//! persistence; stopped on drop.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::eventually::eventually;
use super::ports::free_port;

pub struct Redis {
    child: Option<Child>,
    port: u16,
}

impl Redis {
    /// On a port `free_port` picked; when another process took it meanwhile, redis-server
    /// exits and it is started again on another.
    pub async fn start() -> Redis {
        for _ in 0..5 {
            let mut r = Redis {
                child: None,
                port: free_port(),
            };
            if r.spawn().await {
                return r;
            }
        }
        panic!("redis-server did not start on any of five ports");
    }

    /// Starts it again on the same port (the sidecars are configured with it).
    pub async fn restart(&mut self) {
        assert!(
            self.spawn().await,
            "redis-server did not start again on port {}",
            self.port
        );
    }

    /// Stops it (the port stays this one's, for [`Redis::restart`]).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `redis://127.0.0.1:PORT/0`, as a sidecar's `fleet.redis_url`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts redis-server; true once it answers PING on its port.
    async fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (.ci/run installs it)");
        self.child = Some(child);
        let addr = format!("127.0.0.1:{}", self.port);
        let mut exited = false;
        let up = eventually(Duration::from_secs(10), async || {
            if let Some(c) = self.child.as_mut() {
                exited = c.try_wait().ok().flatten().is_some();
            }
            exited || pong(&addr).await
        })
        .await;
        if exited || !up {
            self.kill();
            return false;
        }
        true
    }
}

/// Whether a Redis server (not just any listener) answers on `addr`.
async fn pong(addr: &str) -> bool {
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let mut answer = [0u8; 7];
    let ping = async {
        s.write_all(b"PING\r\n").await.is_ok()
            && s.read_exact(&mut answer).await.is_ok()
            && &answer == b"+PONG\r\n"
    };
    tokio::time::timeout(Duration::from_secs(1), ping)
        .await
        .unwrap_or(false)
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
