//! The SQLite store's tests, against a real file.

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
