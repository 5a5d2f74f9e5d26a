//! A real `redis-server` for unit tests (the fleet's, the Redis store's): on a Unix socket of
//! its own in a temporary directory (no port to collide on), without persistence, stopped on
//! drop. [`Redis::start`] is `None`, saying so, only when `redis-server` is not installed.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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

    /// A client of this server.
    pub(crate) fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).unwrap()
    }

    /// A plain connection, to look at what was written.
    pub(crate) async fn conn(&self) -> redis::aio::MultiplexedConnection {
        self.client()
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
