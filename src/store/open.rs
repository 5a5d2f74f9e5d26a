//! Which store a sidecar uses: the SQLite file at `store.path`, or in fleet mode the fleet's
//! Redis, with this process as one consumer of each queue's group.
//!
//! A store that cannot be opened is a startup error naming where and why: a sidecar that
//! took pushes it could not keep would acknowledge what it then loses.
//!
//! The Redis store's connection is driven by a runtime of its own, on a thread of its own,
//! made before pingora starts its services: the listener and the workers reach it from their
//! runtimes through the connection manager's channel, and it outlives any one of them.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManagerConfig;

use super::redis::RedisStore;
use super::sqlite::SqliteStore;
use super::{Leases, Store, StoreError};
use crate::config::{Fleet, StoreSettings};

/// Longest wait for the fleet's Redis at startup.
const CONNECT_WITHIN: Duration = Duration::from_secs(10);

/// Opens the store: keys remembered for `remember`; in fleet mode a queue stays with a
/// sidecar that stopped renewing it for its kind's lease.
pub fn open(
    settings: &StoreSettings,
    fleet: Option<&Fleet>,
    remember: Duration,
    lease: Leases,
) -> Result<Arc<dyn Store>, StoreError> {
    match fleet {
        None => Ok(Arc::new(SqliteStore::open(&settings.path, remember)?)),
        Some(f) => Ok(Arc::new(open_redis(f, remember, lease)?)),
    }
}

fn open_redis(f: &Fleet, remember: Duration, lease: Leases) -> Result<RedisStore, StoreError> {
    let fail = |why: String| StoreError::Open {
        path: "the fleet's Redis (fleet.redis_url)".into(),
        why,
    };
    let client = redis::Client::open(f.redis_url.expose())
        .map_err(|e| fail(format!("the URL is not usable ({:?})", e.kind())))?;
    let cfg = ConnectionManagerConfig::new()
        .set_connection_timeout(f.timeout)
        .set_response_timeout(f.timeout);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("store-redis".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(format!("cannot start its runtime: {e}")));
                    return;
                }
            };
            let conn = rt.block_on(async {
                match tokio::time::timeout(
                    CONNECT_WITHIN,
                    client.get_connection_manager_with_config(cfg),
                )
                .await
                {
                    Ok(Ok(c)) => Ok(c),
                    Ok(Err(e)) => Err(format!("cannot connect ({:?})", e.kind())),
                    Err(_) => Err(format!("no answer within {CONNECT_WITHIN:?}")),
                }
            });
            let ok = conn.is_ok();
            let _ = tx.send(conn);
            if ok {
                // Drives the connection's tasks for the rest of the process.
                rt.block_on(std::future::pending::<()>());
            }
        })
        .map_err(|e| fail(format!("cannot start its thread: {e}")))?;
    let conn = rx
        .recv()
        .map_err(|_| fail("its thread ended".into()))?
        .map_err(fail)?;
    Ok(RedisStore::new(
        conn,
        &f.key_prefix,
        &consumer_name(),
        lease,
        remember,
        f.timeout,
    ))
}

/// This process's name in the consumer groups: unique per process (host, pid, and a random
/// part, since pids repeat across containers).
fn consumer_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "sidecar".into());
    format!(
        "{host}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}
