//! How many app connections may be open at once (`client.max_connections`), and which one
//! gives way when a new one arrives at the cap.
//!
//! A connection holds a [`Slot`] from accept to close. While it waits for a request head
//! (idle between calls, or sending a head slowly) it is *waiting* and may be evicted: a new
//! connection over the cap closes the one that has waited longest and takes its place. A
//! waiting connection whose whole head already sits unread in its socket (a real request the
//! sidecar has not got to yet, when it is short of CPU) is passed over: only heads still
//! arriving, or connections idle between calls, give way. When none among the longest waiting
//! can, the new connection is refused. So slow or idle connections, however many, can never
//! keep a real call out, and a call in progress is never cut for a newcomer. The count may
//! pass the cap by the evictions still closing (each takes microseconds); the descriptor
//! reserve absorbs that.

use std::collections::BTreeMap;
use std::future::Future;
use std::os::unix::io::RawFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::config::ClientConnections;

/// The open app connections and those waiting for a request head.
#[derive(Default)]
pub struct Capacity {
    open: AtomicUsize,
    /// Waiting connections by when they began to wait (a sequence number: smallest = longest).
    waiting: Mutex<BTreeMap<u64, Waiting>>,
    next: AtomicU64,
    /// What the descriptor limit allows (set at start; 0: not set, no bound from it).
    allowed: AtomicU64,
    /// The most connections open at once since [`Capacity::take_peak`] last read it.
    peak: AtomicUsize,
}

/// Waiting connections looked at, longest waiting first, for one that can give way.
const EVICTION_SCAN: usize = 16;
/// Bytes of a waiting connection's unread input looked at for a complete request head.
const HEAD_PEEK: usize = 4096;

/// A connection waiting for a request head: how to evict it, and its socket (while it is in
/// the waiting map, the socket is open: the entry is removed before the connection closes).
#[derive(Clone)]
struct Waiting {
    evict: Arc<Notify>,
    fd: Option<RawFd>,
}

/// One open connection's place; gives it back when dropped.
pub struct Slot {
    capacity: Arc<Capacity>,
    evict: Arc<Notify>,
    fd: Option<RawFd>,
}

/// How a wait for a request head ended.
pub enum Waited<T> {
    /// The head (or whatever was awaited) arrived.
    Done(T),
    /// Done, but the connection was chosen for eviction as it finished: answer this call and
    /// close.
    DoneThenClose(T),
    /// Evicted while waiting: close now.
    Evicted,
}

impl Capacity {
    fn waiting(&self) -> MutexGuard<'_, BTreeMap<u64, Waiting>> {
        // A panic elsewhere while holding the lock leaves the map itself intact.
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for a new connection (its socket `fd`) when fewer than `max` are open, or when
    /// a waiting one can be evicted for it; `None`: none can give way, refuse this one.
    pub fn admit(self: &Arc<Self>, max: u64, fd: Option<RawFd>) -> Option<Slot> {
        let open = self.open.fetch_add(1, Ordering::AcqRel) + 1;
        self.peak.fetch_max(open, Ordering::Relaxed);
        if open as u64 > max {
            let victim = {
                let mut waiting = self.waiting();
                let key = waiting
                    .iter()
                    .take(EVICTION_SCAN)
                    .find(|(_, w)| !w.fd.is_some_and(head_pending))
                    .map(|(k, _)| *k);
                key.and_then(|k| waiting.remove(&k))
            };
            match victim {
                Some(w) => w.evict.notify_one(),
                None => {
                    self.open.fetch_sub(1, Ordering::AcqRel);
                    return None;
                }
            }
        }
        Some(Slot {
            capacity: self.clone(),
            evict: Arc::new(Notify::new()),
            fd,
        })
    }

    /// Records what the descriptor limit allows for app connections.
    pub fn set_allowed(&self, n: u64) {
        self.allowed.store(n, Ordering::Release);
    }

    /// The cap in force: `client.max_connections` when set, the descriptor limit's allowance
    /// otherwise, and never more than that allowance (a configured cap above it is lowered,
    /// with a warning at start).
    pub fn max_connections(&self, client: &ClientConnections) -> u64 {
        let allowed = match self.allowed.load(Ordering::Acquire) {
            0 => u64::MAX,
            n => n,
        };
        client.max_connections.map_or(allowed, |n| n.min(allowed))
    }

    /// The most connections open at once since the last call; resets to the number open now.
    pub fn take_peak(&self) -> usize {
        let open = self.open();
        self.peak.swap(open, Ordering::Relaxed).max(open)
    }

    /// Open app connections.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

impl Slot {
    /// Runs `wait` (the wait for a request head) while this connection may be evicted.
    pub async fn evictable<F: Future>(&self, wait: F) -> Waited<F::Output> {
        let key = self.capacity.next.fetch_add(1, Ordering::Relaxed);
        let entry = Waiting {
            evict: self.evict.clone(),
            fd: self.fd,
        };
        self.capacity.waiting().insert(key, entry);
        let out = tokio::select! {
            biased;
            _ = self.evict.notified() => None,
            v = wait => Some(v),
        };
        let still_listed = self.capacity.waiting().remove(&key).is_some();
        match out {
            None => Waited::Evicted,
            // Chosen just as the head arrived: the call goes on, then the connection closes
            // (so the eviction's notification, left unconsumed, never ends a later wait).
            Some(v) if !still_listed => Waited::DoneThenClose(v),
            Some(v) => Waited::Done(v),
        }
    }
}

/// Whether a complete request head sits unread in the socket `fd` (the connection is about
/// to be served, not sending slowly). Looks without taking anything and without blocking.
fn head_pending(fd: RawFd) -> bool {
    let mut buf = [0u8; HEAD_PEEK];
    // SAFETY: recv writes at most `buf.len()` bytes into `buf`; `fd` is an open socket (see
    // `Waiting`), and MSG_PEEK leaves its data in place for the connection's own read.
    let n = unsafe {
        libc::recv(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n <= 0 {
        return false;
    }
    let data = &buf[..n as usize];
    // The blank line that ends a head (httparse also accepts bare LFs).
    data.windows(4).any(|w| w == b"\r\n\r\n") || data.windows(2).any(|w| w == b"\n\n")
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.capacity.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn under_the_cap_every_connection_gets_a_slot() {
        let cap = Arc::new(Capacity::default());
        let a = cap.admit(2, None).unwrap();
        let _b = cap.admit(2, None).unwrap();
        assert_eq!(cap.open(), 2);
        drop(a);
        assert_eq!(cap.open(), 1);
    }

    #[tokio::test]
    async fn at_the_cap_with_every_connection_busy_the_new_one_is_refused() {
        let cap = Arc::new(Capacity::default());
        let _a = cap.admit(1, None).unwrap();
        assert!(cap.admit(1, None).is_none());
        assert_eq!(cap.open(), 1, "a refused connection does not count");
    }

    #[tokio::test]
    async fn at_the_cap_the_longest_waiting_connection_gives_way() {
        let cap = Arc::new(Capacity::default());
        let (a, b) = (cap.admit(2, None).unwrap(), cap.admit(2, None).unwrap());
        let older = tokio::spawn(async move {
            matches!(
                a.evictable(std::future::pending::<()>()).await,
                Waited::Evicted
            )
        });
        tokio::task::yield_now().await;
        let newer = tokio::spawn(async move {
            let r = b
                .evictable(tokio::time::sleep(std::time::Duration::from_millis(50)))
                .await;
            matches!(r, Waited::Done(()))
        });
        tokio::task::yield_now().await;
        let c = cap.admit(2, None);
        assert!(c.is_some(), "a waiting connection makes room");
        assert!(older.await.unwrap(), "the longest waiting one was evicted");
        assert!(newer.await.unwrap(), "the other one was left alone");
    }

    #[tokio::test]
    async fn an_eviction_that_races_the_head_closes_after_the_call() {
        let cap = Arc::new(Capacity::default());
        let a = cap.admit(1, None).unwrap();
        let cap2 = cap.clone();
        // The head "arrives" as the eviction happens: the wait finishes after it is chosen.
        let r = a
            .evictable(async move {
                let _ = cap2.admit(1, None);
            })
            .await;
        assert!(matches!(r, Waited::DoneThenClose(())));
    }

    #[test]
    fn a_complete_head_waiting_unread_is_seen_and_a_partial_one_is_not() {
        use std::io::Write;
        use std::os::unix::io::AsRawFd;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        assert!(!head_pending(server.as_raw_fd()), "nothing sent yet");
        client
            .write_all(b"GET /cgi-bin/user/get HTTP/1.1\r\nHost: s\r\n")
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!head_pending(server.as_raw_fd()), "a head still arriving");
        client.write_all(b"\r\n").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(head_pending(server.as_raw_fd()), "a whole head");
        assert!(head_pending(server.as_raw_fd()), "peeking took nothing");
    }
}
