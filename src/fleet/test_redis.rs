//! A real `redis-server` for the fleet's unit tests: on a Unix socket of its own in a temporary
//! directory (no port to collide on), without persistence, stopped on drop. Tests skip, saying
//! so, only when `redis-server` is not installed.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Fleet, Secret, ShareKind};
use crate::metrics::Metrics;

use super::FleetClient;

pub(crate) struct Redis {
    child: Child,
    dir: tempfile::TempDir,
}

impl Redis {
    /// A started server, or `None` (with a note on stderr) when `redis-server` is absent.
    pub(crate) async fn start() -> Option<Redis> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let Some(child) = spawn(&dir.path().join("redis.sock")) else {
            eprintln!("SKIPPED: redis-server is not installed (apt-get install redis-server)");
            return None;
        };
        let redis = Redis { child, dir };
        redis.wait_up(&redis.socket()).await;
        Some(redis)
    }

    /// The socket the server listens on.
    pub(crate) fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    /// `fleet.redis_url` for this server.
    pub(crate) fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    /// A fleet client of this server, sharing quotas and tokens under `prefix`.
    pub(crate) fn fleet(&self, prefix: &str) -> (FleetClient, Arc<Metrics>) {
        client(&self.url(), prefix)
    }

    /// A plain connection, to look at what the fleet wrote.
    pub(crate) async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// Stops the server: Redis is down from now on.
    pub(crate) fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    async fn wait_up(&self, sock: &std::path::Path) {
        let client = redis::Client::open(format!("redis+unix://{}", sock.display())).unwrap();
        for _ in 0..500 {
            if let Ok(mut c) = client.get_multiplexed_async_connection().await {
                if redis::cmd("PING")
                    .query_async::<String>(&mut c)
                    .await
                    .is_ok()
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "redis-server did not start in {}",
            self.dir.path().display()
        );
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(sock: &std::path::Path) -> Option<Child> {
    match Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--save",
            "",
            "--appendonly",
            "no",
            "--unixsocket",
        ])
        .arg(sock)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => Some(c),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("redis-server did not start: {e}"),
    }
}

/// A fleet client of `url` (2 s `fleet.timeout`, a fleet of 4) and the metrics it writes.
pub(crate) fn client(url: &str, prefix: &str) -> (FleetClient, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let fleet = Fleet {
        redis_url: Secret::new(url),
        key_prefix: prefix.to_string(),
        size: 4,
        share: vec![ShareKind::Tokens, ShareKind::Quotas],
        timeout: Duration::from_secs(2),
    };
    (
        FleetClient::new(&fleet, metrics.clone()).expect("a usable URL"),
        metrics,
    )
}
