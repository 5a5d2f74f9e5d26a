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
//!
//! The same list bounds the wait between calls: [`Capacity::sweep`] looks at it
//! [`SWEEP_EVERY`] and tells each connection idle for `client.idle_timeout` or longer to
//! close, and once the sidecar stops, every idle one. An idle wait so needs no timer of its
//! own: setting one up and tearing it down on every call cost instructions, and waking the
//! runtime's driver for it a system call, on most calls (issue 17).

use std::collections::BTreeMap;
use std::future::Future;
use std::os::unix::io::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

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
    /// The sidecar is stopping: an idle wait ends at once ([`Capacity::stop_idle`]).
    stopping: AtomicBool,
}

/// How often [`Capacity::sweep`] looks for connections idle past `client.idle_timeout`: a
/// connection is closed at most this long after its bound (and a reload that lowers the
/// bound reaches connections idle now within this).
pub const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// Waiting connections looked at, longest waiting first, for one that can give way.
const EVICTION_SCAN: usize = 16;
/// Bytes of a waiting connection's unread input looked at for a complete request head.
const HEAD_PEEK: usize = 4096;

/// A connection waiting for a request head: how to tell it to close, its socket (while it is
/// in the waiting map, the socket is open: the entry is removed before the connection
/// closes), and, for a wait between calls, when that began.
#[derive(Clone)]
struct Waiting {
    close: Arc<Close>,
    fd: Option<RawFd>,
    idle_since: Option<Instant>,
}

/// How a waiting connection is told to close, and why.
#[derive(Default)]
struct Close {
    notify: Notify,
    /// A [`Why`] as its number, set before `notify` is.
    why: AtomicU8,
}

impl Close {
    fn tell(&self, why: Why) {
        self.why.store(why as u8, Ordering::Release);
        self.notify.notify_one();
    }

    fn why(&self) -> Why {
        match self.why.load(Ordering::Acquire) {
            x if x == Why::IdleTimeout as u8 => Why::IdleTimeout,
            x if x == Why::Stopping as u8 => Why::Stopping,
            _ => Why::Evicted,
        }
    }
}

/// Why a waiting connection was told to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// A new connection at the cap took its place.
    Evicted = 1,
    /// Idle between calls for `client.idle_timeout`.
    IdleTimeout = 2,
    /// The sidecar is stopping (idle waits only).
    Stopping = 3,
}

impl Why {
    /// Its `reason` in `wecom_app_connections_closed_total`; `None`: not counted (a stop
    /// closes every idle connection, none of them to keep a bound).
    pub fn reason(self) -> Option<&'static str> {
        match self {
            Why::Evicted => Some("evicted"),
            Why::IdleTimeout => Some("idle_timeout"),
            Why::Stopping => None,
        }
    }
}

/// One open connection's place; gives it back when dropped.
pub struct Slot {
    capacity: Arc<Capacity>,
    close: Arc<Close>,
    fd: Option<RawFd>,
}

/// How a wait for a request head ended.
pub enum Waited<T> {
    /// The head (or whatever was awaited) arrived.
    Done(T),
    /// Done, but the connection was told to close as it finished: answer this call and
    /// close.
    DoneThenClose(T),
    /// Told to close while waiting: close now. A head's wait ([`Slot::evictable`]) ends so
    /// only when evicted.
    Closed(Why),
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
                Some(w) => w.close.tell(Why::Evicted),
                None => {
                    self.open.fetch_sub(1, Ordering::AcqRel);
                    return None;
                }
            }
        }
        Some(Slot {
            capacity: self.clone(),
            close: Arc::default(),
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

    /// Tells each connection idle between calls for `limit` or longer to close; how many.
    pub fn close_idle(&self, limit: Duration) -> usize {
        let now = Instant::now();
        let mut waiting = self.waiting();
        // Keys follow the order waits began in, so the first idle wait short of the bound
        // ends the look. (Two threads may take their key and their instant in opposite
        // orders, by microseconds: the later of the two then closes one sweep later.)
        let due: Vec<u64> = waiting
            .iter()
            .filter_map(|(k, w)| w.idle_since.map(|since| (*k, since)))
            .take_while(|(_, since)| now.saturating_duration_since(*since) >= limit)
            .map(|(k, _)| k)
            .collect();
        for k in &due {
            if let Some(w) = waiting.remove(k) {
                w.close.tell(Why::IdleTimeout);
            }
        }
        due.len()
    }

    /// The sidecar stops: every connection idle between calls is told to close, and an idle
    /// wait that begins from now on ends at once. Waits for a head are left to their own
    /// reading, which sees the stop.
    pub fn stop_idle(&self) {
        // Set before the list is looked at: a wait listed after this look sees the flag
        // (`Slot::idle` looks after listing itself, under the same lock's ordering).
        self.stopping.store(true, Ordering::SeqCst);
        self.waiting().retain(|_, w| {
            if w.idle_since.is_none() {
                return true;
            }
            w.close.tell(Why::Stopping);
            false
        });
    }

    /// Closes idle connections at `client.idle_timeout` (`limit` reads the bound in force,
    /// each [`SWEEP_EVERY`]) until `stop` is ready, then closes every idle one.
    pub async fn sweep(
        &self,
        limit: impl Fn() -> Duration,
        stop: impl std::future::Future<Output = ()>,
    ) {
        let mut every = tokio::time::interval(SWEEP_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stop = std::pin::pin!(stop);
        loop {
            tokio::select! {
                _ = every.tick() => {
                    self.close_idle(limit());
                }
                () = &mut stop => break,
            }
        }
        self.stop_idle();
    }
}

impl Slot {
    /// Runs `wait` (the wait for a request head) while this connection may be evicted.
    pub async fn evictable<F: Future>(&self, wait: F) -> Waited<F::Output> {
        self.listed(wait, None).await
    }

    /// Runs `wait` (the wait between calls for the next request's first bytes) while this
    /// connection may be evicted, closed for idleness ([`Capacity::sweep`]) or closed as the
    /// sidecar stops.
    pub async fn idle<F: Future>(&self, wait: F) -> Waited<F::Output> {
        self.listed(wait, Some(Instant::now())).await
    }

    async fn listed<F: Future>(&self, wait: F, idle_since: Option<Instant>) -> Waited<F::Output> {
        let key = self.capacity.next.fetch_add(1, Ordering::Relaxed);
        let entry = Waiting {
            close: self.close.clone(),
            fd: self.fd,
            idle_since,
        };
        self.capacity.waiting().insert(key, entry);
        if idle_since.is_some() && self.capacity.stopping.load(Ordering::SeqCst) {
            self.capacity.waiting().remove(&key);
            return Waited::Closed(Why::Stopping);
        }
        let out = tokio::select! {
            biased;
            _ = self.close.notify.notified() => None,
            v = wait => Some(v),
        };
        let still_listed = self.capacity.waiting().remove(&key).is_some();
        match out {
            None => Waited::Closed(self.close.why()),
            // Told to close just as the head arrived: the call goes on, then the connection
            // closes (so the notification, left unconsumed, never ends a later wait).
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
                Waited::Closed(Why::Evicted)
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

    /// Waits for `task` to end, paused time moving on meanwhile.
    async fn ended<T>(task: &tokio::task::JoinHandle<T>) -> bool {
        for _ in 0..100 {
            if task.is_finished() {
                return true;
            }
            tokio::task::yield_now().await;
        }
        task.is_finished()
    }

    /// Three slots well under the cap.
    fn three_slots(cap: &Arc<Capacity>) -> [Slot; 3] {
        std::array::from_fn(|_| cap.admit(10, None).unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_idle_for_the_bound_is_closed_and_one_waiting_for_a_head_is_not() {
        let cap = Arc::new(Capacity::default());
        let [a, b, c] = three_slots(&cap);
        let head = tokio::spawn(async move { a.evictable(std::future::pending::<()>()).await });
        let older = tokio::spawn(async move { b.idle(std::future::pending::<()>()).await });
        tokio::task::yield_now().await;
        tokio::time::advance(Duration::from_secs(4)).await;
        let newer = tokio::spawn(async move { c.idle(std::future::pending::<()>()).await });
        tokio::task::yield_now().await;
        tokio::time::advance(Duration::from_secs(1)).await;

        assert_eq!(
            cap.close_idle(Duration::from_secs(6)),
            0,
            "none idle 6 s yet"
        );
        assert_eq!(
            cap.close_idle(Duration::from_secs(5)),
            1,
            "idle 5 s: the older one"
        );
        assert!(ended(&older).await);
        assert!(matches!(
            older.await.unwrap(),
            Waited::Closed(Why::IdleTimeout)
        ));
        assert!(!newer.is_finished() && !head.is_finished());
        assert_eq!(cap.close_idle(Duration::from_secs(1)), 1, "the newer one");
        assert!(matches!(
            newer.await.unwrap(),
            Waited::Closed(Why::IdleTimeout)
        ));
        // A head's wait has its own bound (header_timeout), whatever idle_timeout says.
        assert_eq!(cap.close_idle(Duration::ZERO), 0);
        assert!(!ended(&head).await, "a head's wait is not an idle one");
    }

    #[tokio::test(start_paused = true)]
    async fn the_sweeper_reads_the_bound_each_time_and_closes_every_idle_wait_at_the_stop() {
        let cap = Arc::new(Capacity::default());
        let limit = Arc::new(AtomicU64::new(60));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let sweeper = {
            let (cap, limit) = (cap.clone(), limit.clone());
            tokio::spawn(async move {
                let stop = async move {
                    let _ = stop_rx.await;
                };
                cap.sweep(|| Duration::from_secs(limit.load(Ordering::Relaxed)), stop)
                    .await;
            })
        };
        let [a, b, c] = three_slots(&cap);
        let first = tokio::spawn(async move { a.idle(std::future::pending::<()>()).await });
        let head = tokio::spawn(async move { c.evictable(std::future::pending::<()>()).await });
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(!first.is_finished(), "idle 10 s of 60");
        // A reload lowers the bound: the connection idle now is closed at the next sweep.
        limit.store(5, Ordering::Relaxed);
        tokio::time::sleep(SWEEP_EVERY * 2).await;
        assert!(matches!(
            first.await.unwrap(),
            Waited::Closed(Why::IdleTimeout)
        ));

        let second = tokio::spawn(async move {
            let b = b;
            let during = b.idle(std::future::pending::<()>()).await;
            // After the stop, a new idle wait ends at once.
            let after = b.idle(std::future::pending::<()>()).await;
            (during, after)
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop_tx.send(()).unwrap();
        assert!(ended(&sweeper).await, "the sweeper ends at the stop");
        let (during, after) = second.await.unwrap();
        assert!(matches!(during, Waited::Closed(Why::Stopping)));
        assert!(matches!(after, Waited::Closed(Why::Stopping)));
        assert!(!ended(&head).await, "a head's wait sees the stop itself");
        assert_eq!(Why::Stopping.reason(), None, "a stop is not counted");
        assert_eq!(Why::IdleTimeout.reason(), Some("idle_timeout"));
        assert_eq!(Why::Evicted.reason(), Some("evicted"));
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
