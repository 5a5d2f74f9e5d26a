//! The embedded store: one SQLite file (`store.path`) in WAL mode with `synchronous=FULL`, so a
//! commit has reached the disk when [`Store::add`] returns and survives kill -9 and power loss.
//!
//! One thread owns the connection and runs every operation; callers wait on a oneshot. The
//! thread takes whatever operations are waiting (up to [`BATCH`]) into one transaction and
//! commits them with one fsync (group commit), so a burst of pushes costs one disk flush, not
//! one each; each operation runs in its own savepoint, so one that fails leaves the others'
//! work intact. Only after the commit are the callers answered.
//!
//! The file holds decrypted messages: it is created `0600`. Its schema carries a version
//! (`PRAGMA user_version`); a file written by a newer sidecar is refused, not rewritten.

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension};

use super::{now_ms, Added, Depth, Full, Item, Limits, Store, StoreError};

/// Operations committed together at most.
const BATCH: usize = 64;
/// How often keys older than `remember_for` are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(60);
/// 2: `totals` (waiting items and bytes per queue, kept by triggers) for the store's bounds.
const SCHEMA_VERSION: i64 = 2;
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS items (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    queue      TEXT    NOT NULL,
    dead       INTEGER NOT NULL DEFAULT 0,
    added_ms   INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    meta       BLOB    NOT NULL,
    payload    BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS items_by_queue ON items (queue, dead, id);
CREATE TABLE IF NOT EXISTS seen (
    queue TEXT    NOT NULL,
    key   BLOB    NOT NULL,
    id    INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (queue, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_by_age ON seen (at_ms);
CREATE TABLE IF NOT EXISTS totals (
    queue  TEXT    PRIMARY KEY,
    queued INTEGER NOT NULL DEFAULT 0,
    bytes  INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS totals_add AFTER INSERT ON items BEGIN
    INSERT INTO totals (queue, queued, bytes)
    VALUES (NEW.queue, NEW.dead = 0, length(NEW.meta) + length(NEW.payload))
    ON CONFLICT (queue) DO UPDATE SET
        queued = queued + excluded.queued, bytes = bytes + excluded.bytes;
END;
CREATE TRIGGER IF NOT EXISTS totals_remove AFTER DELETE ON items BEGIN
    UPDATE totals SET queued = queued - (OLD.dead = 0),
        bytes = bytes - (length(OLD.meta) + length(OLD.payload))
    WHERE queue = OLD.queue;
END;
CREATE TRIGGER IF NOT EXISTS totals_bury AFTER UPDATE OF dead ON items BEGIN
    UPDATE totals SET queued = queued + (NEW.dead = 0) - (OLD.dead = 0) WHERE queue = NEW.queue;
END;
";
/// Fills `totals` from the items of a file written before it existed (schema 1).
const FILL_TOTALS: &str = "
DELETE FROM totals;
INSERT INTO totals (queue, queued, bytes)
    SELECT queue, sum(dead = 0), sum(length(meta) + length(payload)) FROM items GROUP BY queue;
";

/// What an operation leaves to do once the batch's commit is known: answer its caller.
type Finish = Box<dyn FnOnce(Option<&str>) + Send>;
/// An operation: run on the connection, or (`None`: its batch could not begin) not run at all.
type Job = Box<dyn FnOnce(Option<&mut Connection>) -> Finish + Send>;

/// The SQLite store. Cheap to share behind an `Arc`; dropping the last one ends its thread
/// after the operations already sent.
pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
    remember: Duration,
}

impl SqliteStore {
    /// Opens (creating if needed, with its folder) the store at `path`; keys are remembered for
    /// `remember` after their item was added.
    pub fn open(path: &Path, remember: Duration) -> Result<SqliteStore, StoreError> {
        let conn = open_connection(path).map_err(|why| StoreError::Open {
            path: path.display().to_string(),
            why,
        })?;
        let (jobs, rx) = mpsc::channel::<Job>();
        let remember_ms = remember.as_millis() as u64;
        std::thread::Builder::new()
            .name("store".into())
            .spawn(move || run(conn, rx, remember_ms))
            .map_err(|e| StoreError::Open {
                path: path.display().to_string(),
                why: format!("cannot start its thread: {e}"),
            })?;
        Ok(SqliteStore { jobs, remember })
    }

    /// Runs `f` on the store's thread inside the next batch; answers after the commit.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn: Option<&mut Connection>| {
            let Some(conn) = conn else {
                return Box::new(move |e: Option<&str>| {
                    let e = e.unwrap_or("the store's transaction could not begin");
                    let _ = tx.send(Err(StoreError::Io(e.to_string())));
                });
            };
            let result = match conn.savepoint() {
                Ok(sp) => match f(&sp) {
                    Ok(v) => sp.commit().map(|_| v),
                    Err(e) => Err(e), // the savepoint rolls back on drop
                },
                Err(e) => Err(e),
            };
            Box::new(move |commit_error: Option<&str>| {
                let out = match (result, commit_error) {
                    (_, Some(e)) => Err(StoreError::Io(e.to_string())),
                    (Ok(v), None) => Ok(v),
                    (Err(e), None) => Err(StoreError::Io(e.to_string())),
                };
                let _ = tx.send(out);
            })
        });
        self.jobs.send(job).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

fn open_connection(path: &Path) -> Result<Connection, String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create its folder {}: {e}", dir.display()))?;
    }
    create_private(path)?;
    let conn = Connection::open(path).map_err(|e| e.to_string())?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!(
            "its file system does not allow WAL (journal mode {mode})"
        ));
    }
    conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;")
        .map_err(|e| e.to_string())?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if version > SCHEMA_VERSION {
        return Err(format!(
            "it was written by a newer wecom-sidecar (schema {version}, this one knows {SCHEMA_VERSION})"
        ));
    }
    conn.execute_batch(SCHEMA).map_err(|e| e.to_string())?;
    if version < 2 {
        conn.execute_batch(FILL_TOTALS).map_err(|e| e.to_string())?;
    }
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

/// Creates `path` readable by its owner only, unless it exists.
fn create_private(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("cannot create it: {e}")),
    }
}

/// The store thread: batches of waiting operations, one transaction and one commit each.
fn run(mut conn: Connection, rx: mpsc::Receiver<Job>, remember_ms: u64) {
    let mut last_purge = Instant::now();
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let e = e.to_string();
            for job in batch {
                // Not run: the caller hears the error and acknowledges nothing.
                job(None)(Some(&e));
            }
            continue;
        }
        let finishes: Vec<Finish> = batch.into_iter().map(|job| job(Some(&mut conn))).collect();
        let commit = conn.execute_batch("COMMIT").err().map(|e| e.to_string());
        if commit.is_some() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for finish in finishes {
            finish(commit.as_deref());
        }
        if last_purge.elapsed() >= PURGE_EVERY {
            last_purge = Instant::now();
            let cutoff = now_ms().saturating_sub(remember_ms) as i64;
            if let Err(e) = conn.execute("DELETE FROM seen WHERE at_ms < ?1", params![cutoff]) {
                tracing::warn!(error = %e, "store: forgetting old callback keys failed");
            }
        }
    }
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn item_from(row: &rusqlite::Row<'_>) -> rusqlite::Result<Item> {
    Ok(Item {
        id: to_u64(row.get(0)?),
        added_ms: to_u64(row.get(1)?),
        attempts: u32::try_from(row.get::<_, i64>(2)?).unwrap_or(u32::MAX),
        last_error: row.get(3)?,
        meta: row.get(4)?,
        payload: row.get(5)?,
    })
}

const ITEM_COLUMNS: &str = "id, added_ms, attempts, last_error, meta, payload";

#[async_trait::async_trait]
impl Store for SqliteStore {
    fn remember_for(&self) -> Duration {
        self.remember
    }

    async fn add_within(
        &self,
        queue: &str,
        key: [u8; 32],
        meta: &[u8],
        payload: &[u8],
        limits: Limits,
    ) -> Result<Result<Added, Full>, StoreError> {
        let (queue, meta, payload) = (queue.to_owned(), meta.to_vec(), payload.to_vec());
        let remember_ms = self.remember.as_millis() as u64;
        self.call(move |c| {
            let now = now_ms() as i64;
            let seen: Option<i64> = c
                .query_row(
                    "SELECT id FROM seen WHERE queue = ?1 AND key = ?2 AND at_ms >= ?3",
                    params![queue, &key[..], now.saturating_sub(remember_ms as i64)],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(id) = seen {
                return Ok(Ok(Added::Duplicate(to_u64(id))));
            }
            if limits.max_queued < u64::MAX {
                let queued: Option<i64> = c
                    .query_row(
                        "SELECT queued FROM totals WHERE queue = ?1",
                        params![queue],
                        |r| r.get(0),
                    )
                    .optional()?;
                let queued = queued.map_or(0, to_u64);
                if queued >= limits.max_queued {
                    return Ok(Err(Full::Queued {
                        queued,
                        max: limits.max_queued,
                    }));
                }
            }
            if limits.max_bytes < u64::MAX {
                let used = to_u64(c.query_row(
                    "SELECT coalesce(sum(bytes), 0) FROM totals",
                    [],
                    |r| r.get(0),
                )?);
                let size = (meta.len() + payload.len()) as u64;
                if used.saturating_add(size) > limits.max_bytes {
                    return Ok(Err(Full::Bytes {
                        used,
                        size,
                        max: limits.max_bytes,
                    }));
                }
            }
            c.execute(
                "INSERT INTO items (queue, added_ms, meta, payload) VALUES (?1, ?2, ?3, ?4)",
                params![queue, now, meta, payload],
            )?;
            let id = c.last_insert_rowid();
            c.execute(
                "INSERT OR REPLACE INTO seen (queue, key, id, at_ms) VALUES (?1, ?2, ?3, ?4)",
                params![queue, &key[..], id, now],
            )?;
            Ok(Ok(Added::New(to_u64(id))))
        })
        .await
    }

    async fn used_bytes(&self) -> Result<u64, StoreError> {
        self.call(|c| {
            c.query_row("SELECT coalesce(sum(bytes), 0) FROM totals", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(to_u64)
        })
        .await
    }

    async fn head(&self, queue: &str) -> Result<Option<Item>, StoreError> {
        let queue = queue.to_owned();
        self.call(move |c| {
            c.query_row(
                &format!(
                    "SELECT {ITEM_COLUMNS} FROM items WHERE queue = ?1 AND dead = 0 ORDER BY id LIMIT 1"
                ),
                params![queue],
                item_from,
            )
            .optional()
        })
        .await
    }

    async fn done(&self, queue: &str, id: u64) -> Result<(), StoreError> {
        let queue = queue.to_owned();
        self.call(move |c| {
            c.execute(
                "DELETE FROM items WHERE queue = ?1 AND id = ?2 AND dead = 0",
                params![queue, id as i64],
            )
            .map(drop)
        })
        .await
    }

    async fn failed(&self, queue: &str, id: u64, error: &str) -> Result<u32, StoreError> {
        let (queue, error) = (queue.to_owned(), error.to_owned());
        self.call(move |c| {
            let attempts: Option<i64> = c
                .query_row(
                    "UPDATE items SET attempts = attempts + 1, last_error = ?3
                     WHERE queue = ?1 AND id = ?2 RETURNING attempts",
                    params![queue, id as i64, error],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(attempts.map_or(0, |a| u32::try_from(a).unwrap_or(u32::MAX)))
        })
        .await
    }

    async fn bury(&self, queue: &str, id: u64, error: &str) -> Result<(), StoreError> {
        let (queue, error) = (queue.to_owned(), error.to_owned());
        self.call(move |c| {
            c.execute(
                "UPDATE items SET dead = 1, last_error = ?3 WHERE queue = ?1 AND id = ?2",
                params![queue, id as i64, error],
            )
            .map(drop)
        })
        .await
    }

    async fn depth(&self, queue: &str) -> Result<Depth, StoreError> {
        let queue = queue.to_owned();
        self.call(move |c| {
            // Kept by the triggers: no count over the queue.
            let queued: i64 = c
                .query_row(
                    "SELECT queued FROM totals WHERE queue = ?1",
                    params![queue],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(0);
            // Ids follow commit order, so the head is the oldest: one index lookup, not a scan.
            let oldest: Option<i64> = c
                .query_row(
                    "SELECT added_ms FROM items WHERE queue = ?1 AND dead = 0 ORDER BY id LIMIT 1",
                    params![queue],
                    |r| r.get(0),
                )
                .optional()?;
            let dead: i64 = c.query_row(
                "SELECT count(*) FROM items WHERE queue = ?1 AND dead = 1",
                params![queue],
                |r| r.get(0),
            )?;
            Ok(Depth {
                queued: to_u64(queued),
                oldest_ms: oldest.map(to_u64),
                dead: to_u64(dead),
            })
        })
        .await
    }

    async fn dead(&self, queue: &str, limit: usize) -> Result<Vec<Item>, StoreError> {
        let queue = queue.to_owned();
        self.call(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {ITEM_COLUMNS} FROM items WHERE queue = ?1 AND dead = 1 ORDER BY id LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![queue, limit as i64], item_from)?;
            rows.collect()
        })
        .await
    }

    async fn revive(&self, queue: &str, id: u64) -> Result<Option<u64>, StoreError> {
        let queue = queue.to_owned();
        self.call(move |c| {
            let moved = c.execute(
                "INSERT INTO items (queue, added_ms, meta, payload)
                 SELECT queue, ?3, meta, payload FROM items WHERE queue = ?1 AND id = ?2 AND dead = 1",
                params![queue, id as i64, now_ms() as i64],
            )?;
            if moved == 0 {
                return Ok(None);
            }
            let new_id = c.last_insert_rowid();
            c.execute("DELETE FROM items WHERE id = ?1", params![id as i64])?;
            Ok(Some(to_u64(new_id)))
        })
        .await
    }

    async fn forget(&self, queue: &str, id: u64) -> Result<bool, StoreError> {
        let queue = queue.to_owned();
        self.call(move |c| {
            c.execute(
                "DELETE FROM items WHERE queue = ?1 AND id = ?2 AND dead = 1",
                params![queue, id as i64],
            )
            .map(|n| n > 0)
        })
        .await
    }
}

#[cfg(test)]
#[path = "sqlite_tests.rs"]
mod tests;
