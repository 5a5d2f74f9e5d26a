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
mod tests {
    use super::*;
    use std::sync::Arc;

    fn key(n: u8) -> [u8; 32] {
        [n; 32]
    }

    fn open(dir: &tempfile::TempDir) -> SqliteStore {
        SqliteStore::open(&dir.path().join("q/sidecar.db"), Duration::from_secs(3600)).unwrap()
    }

    #[tokio::test]
    async fn fifo_with_dedupe_attempts_and_dead_letters() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(&dir);
        let a = s.add("cb:hr", key(1), b"m1", b"one").await.unwrap();
        let b = s.add("cb:hr", key(2), b"m2", b"two").await.unwrap();
        assert!(matches!(a, Added::New(_)) && matches!(b, Added::New(_)));
        assert!(a.id() < b.id());
        // The same key again: nothing added, the first id; another queue is separate.
        assert_eq!(
            s.add("cb:hr", key(1), b"", b"one").await.unwrap(),
            Added::Duplicate(a.id())
        );
        assert!(matches!(
            s.add("cb:ops", key(1), b"", b"x").await.unwrap(),
            Added::New(_)
        ));

        let head = s.head("cb:hr").await.unwrap().unwrap();
        assert_eq!(
            (head.id, &head.payload[..], &head.meta[..]),
            (a.id(), &b"one"[..], &b"m1"[..])
        );
        assert_eq!(s.failed("cb:hr", a.id(), "HTTP 500").await.unwrap(), 1);
        assert_eq!(s.failed("cb:hr", a.id(), "timeout").await.unwrap(), 2);
        let head = s.head("cb:hr").await.unwrap().unwrap();
        assert_eq!(
            (head.attempts, head.last_error.as_deref()),
            (2, Some("timeout"))
        );

        s.bury("cb:hr", a.id(), "too old").await.unwrap();
        assert_eq!(s.head("cb:hr").await.unwrap().unwrap().id, b.id());
        let d = s.depth("cb:hr").await.unwrap();
        assert_eq!((d.queued, d.dead), (1, 1));
        assert_eq!(
            s.dead("cb:hr", 10).await.unwrap()[0].last_error.as_deref(),
            Some("too old")
        );

        s.done("cb:hr", b.id()).await.unwrap();
        assert_eq!(s.head("cb:hr").await.unwrap(), None);
        // Delivered keys are still remembered.
        assert_eq!(
            s.add("cb:hr", key(2), b"", b"two").await.unwrap(),
            Added::Duplicate(b.id())
        );

        let revived = s.revive("cb:hr", a.id()).await.unwrap().unwrap();
        assert!(revived > b.id());
        let head = s.head("cb:hr").await.unwrap().unwrap();
        assert_eq!((head.id, head.attempts), (revived, 0));
        // Still a duplicate, named by the id it was first added with.
        assert_eq!(
            s.add("cb:hr", key(1), b"", b"one").await.unwrap(),
            Added::Duplicate(a.id())
        );
        assert_eq!(s.revive("cb:hr", a.id()).await.unwrap(), None);
        assert!(!s.forget("cb:hr", revived).await.unwrap(), "not dead");
        s.bury("cb:hr", revived, "again").await.unwrap();
        assert!(s.forget("cb:hr", revived).await.unwrap());
        assert_eq!(s.depth("cb:hr").await.unwrap(), Depth::default());
    }

    #[tokio::test]
    async fn what_was_committed_is_there_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let first = {
            let s = open(&dir);
            let first = s.add("cb:hr", key(9), b"", b"kept").await.unwrap().id();
            s.add("cb:hr", key(8), b"", b"second").await.unwrap();
            first
        };
        let s = open(&dir);
        assert_eq!(s.head("cb:hr").await.unwrap().unwrap().payload, b"kept");
        assert_eq!(
            s.add("cb:hr", key(9), b"", b"kept").await.unwrap(),
            Added::Duplicate(first)
        );
        let mode = std::fs::metadata(dir.path().join("q/sidecar.db")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    }

    #[tokio::test]
    async fn keys_are_forgotten_after_remember_for() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("s.db"), Duration::from_millis(0)).unwrap();
        let a = s.add("q", key(1), b"", b"x").await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_ne!(
            s.add("q", key(1), b"", b"x").await.unwrap(),
            Added::Duplicate(a.id())
        );
    }

    #[tokio::test]
    async fn concurrent_adds_are_each_committed_once_in_one_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(open(&dir));
        let tasks: Vec<_> = (0..200u8)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move { s.add("q", key(i % 100), b"", &[i]).await.unwrap() })
            })
            .collect();
        let mut new = 0;
        for t in tasks {
            if let Added::New(_) = t.await.unwrap() {
                new += 1;
            }
        }
        assert_eq!(new, 100, "100 distinct keys, each stored once");
        assert_eq!(s.depth("q").await.unwrap().queued, 100);
    }

    #[tokio::test]
    async fn a_newer_schema_or_an_unusable_path_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        drop(SqliteStore::open(&path, Duration::from_secs(1)).unwrap());
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let e = SqliteStore::open(&path, Duration::from_secs(1))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("newer wecom-sidecar") && e.contains("s.db"),
            "{e}"
        );
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let e = SqliteStore::open(&file.join("s.db"), Duration::from_secs(1))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("cannot create its folder"), "{e}");
    }

    #[tokio::test]
    async fn adds_within_limits_count_bytes_and_waiting_items() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(&dir);
        let limits = Limits {
            max_bytes: 10,
            max_queued: 2,
        };
        // 2 + 3 bytes each: two fit the queue cap, the third is refused by it.
        let a = s
            .add_within("o:hr", key(1), b"mm", b"abc", limits)
            .await
            .unwrap();
        let b = s
            .add_within("o:hr", key(2), b"mm", b"abc", limits)
            .await
            .unwrap();
        assert!(matches!((a, b), (Ok(Added::New(_)), Ok(Added::New(_)))));
        assert_eq!(
            s.add_within("o:hr", key(3), b"", b"x", limits)
                .await
                .unwrap(),
            Err(Full::Queued { queued: 2, max: 2 })
        );
        // A key seen before is a duplicate, full or not.
        assert_eq!(
            s.add_within("o:hr", key(1), b"mm", b"abc", limits)
                .await
                .unwrap(),
            Ok(Added::Duplicate(a.unwrap().id()))
        );
        assert_eq!(s.used_bytes().await.unwrap(), 10);
        // Another queue: its own count, but the store's bytes are shared.
        assert_eq!(
            s.add_within("o:ops", key(4), b"", b"x", limits)
                .await
                .unwrap(),
            Err(Full::Bytes {
                used: 10,
                size: 1,
                max: 10
            })
        );
        // A dead letter stops counting as waiting but still holds its bytes; forgetting it
        // and delivering free them.
        let first = a.unwrap().id();
        s.bury("o:hr", first, "gone").await.unwrap();
        assert_eq!(s.depth("o:hr").await.unwrap().queued, 1);
        assert_eq!(s.used_bytes().await.unwrap(), 10);
        assert!(s.forget("o:hr", first).await.unwrap());
        s.done("o:hr", b.unwrap().id()).await.unwrap();
        assert_eq!(s.used_bytes().await.unwrap(), 0);
        assert!(matches!(
            s.add_within("o:ops", key(4), b"", b"x", limits)
                .await
                .unwrap(),
            Ok(Added::New(_))
        ));
        // The totals survive a reopen and are those of the items.
        drop(s);
        let s = open(&dir);
        assert_eq!(s.used_bytes().await.unwrap(), 1);
        assert_eq!(s.depth("o:ops").await.unwrap().queued, 1);
    }

    #[tokio::test]
    async fn a_file_of_schema_1_gets_its_totals_from_its_items() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL,
                   dead INTEGER NOT NULL DEFAULT 0, added_ms INTEGER NOT NULL,
                   attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, meta BLOB NOT NULL,
                   payload BLOB NOT NULL);
                 INSERT INTO items (queue, dead, added_ms, meta, payload)
                   VALUES ('q', 0, 1, x'00', x'0102'), ('q', 1, 2, x'', x'03');
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        }
        let s = SqliteStore::open(&path, Duration::from_secs(60)).unwrap();
        assert_eq!(s.used_bytes().await.unwrap(), 4);
        let d = s.depth("q").await.unwrap();
        assert_eq!((d.queued, d.dead), (1, 1));
    }
}
