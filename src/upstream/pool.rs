//! Connections to upstreams: new ones through pingora's transport connector (TCP, TLS with
//! SNI and certificate verification, connect timeouts: all pingora's), kept ones in the
//! sidecar's own keep-alive pool.
//!
//! Why not pingora's pool: it cost about 9k instructions per call (profiled, issue 17): a
//! dashmap and an LRU per lookup, an `Arc<tokio Mutex>` per kept connection, a `getpeername`
//! on every reuse (its pool is keyed by a hash and may hand out another peer's connection),
//! and one spawned task per released connection that watches it while idle. Here a kept
//! connection sits in a plain list under its exact peer (address, TLS, SNI), so no check of
//! the address is needed, and on each thread one task per pool sweeps that thread's idle ones
//! once a second. (A sweep on each thread also keeps that runtime's timer wheel from going
//! empty between calls: tokio wakes its driver, a write to an eventfd, for a timer set when
//! the wheel was empty at its last park, so a thread without one paid that on most calls.)
//!
//! The keep-alive rules are pingora's client's (`upstream::h1`: only a connection whose
//! answer was read whole, with nothing more after it, and not closing is kept) plus a look at
//! the socket before a connection comes out: one the server closed or wrote to unasked is
//! dropped. (Not when it goes in: its answer was just read whole, and the look is a system
//! call; issue 17 measured it at ~0.4k instructions a call. What arrives later is seen by the
//! next take or the sweep.) Idle connections are
//! closed after [`POOL_IDLE_TIMEOUT`]; the sweep closes those and the ones the server closed
//! within [`SWEEP_EVERY`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use pingora::connectors::{ConnectorOptions, TransportConnector};
use pingora::protocols::Stream;
use pingora::upstreams::peer::HttpPeer;
use tokio::io::AsyncReadExt;

use super::POOL_IDLE_TIMEOUT;

/// How often the idle connections are looked at (closed by the server, or idle too long).
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Which connections may carry an attempt: the same address, scheme and server name (the
/// trust root is the [`Client`]'s own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerKey<'a> {
    pub addr: SocketAddr,
    pub tls: bool,
    pub sni: &'a str,
}

/// One trust root's connections: pingora's transport connector for new ones, and the pool.
pub struct Client {
    transport: TransportConnector,
    pool: Mutex<Idle>,
    /// Most idle connections kept across all peers.
    capacity: usize,
    /// The threads whose sweep runs, one bit each (a thread's [`worker`] number modulo 64: a
    /// sweep looks after every thread of its bit).
    sweeping: AtomicU64,
}

/// The kept connections, by peer.
#[derive(Default)]
struct Idle {
    peers: Vec<PeerIdle>,
    count: usize,
}

struct PeerIdle {
    addr: SocketAddr,
    tls: bool,
    sni: String,
    /// The thread whose connections these are ([`worker`]).
    worker: usize,
    /// Oldest first; the newest is reused first (a small busy set stays warm, the rest ages
    /// out).
    conns: Vec<Kept>,
}

impl PeerIdle {
    fn is(&self, key: PeerKey<'_>, worker: usize) -> bool {
        self.worker == worker && self.addr == key.addr && self.tls == key.tls && self.sni == key.sni
    }
}

/// This thread's number, to keep its connections apart from other threads'.
fn worker() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local!(static WORKER: usize = NEXT.fetch_add(1, Ordering::Relaxed));
    WORKER.with(|w| *w)
}

struct Kept {
    stream: Stream,
    since: Instant,
}

impl Kept {
    fn usable(&mut self, now: Instant) -> bool {
        now.saturating_duration_since(self.since) < POOL_IDLE_TIMEOUT
            && still_open(&mut self.stream)
    }
}

/// True when nothing can be read from an idle connection right now: the server has neither
/// closed it nor sent anything unasked (either makes it unusable).
fn still_open(stream: &mut Stream) -> bool {
    let mut byte = [0u8; 1];
    // `unconstrained`: tokio's budget could make a ready read look pending.
    match tokio::task::unconstrained(stream.read(&mut byte)).now_or_never() {
        None => true,
        Some(Ok(0)) => false,
        Some(Ok(_)) => {
            tracing::debug!(target: "upstream", "unexpected data on an idle upstream connection");
            false
        }
        Some(Err(_)) => false,
    }
}

impl Client {
    /// A client with its own trust root (`ca_file`, else the system's) keeping at most
    /// `capacity` idle connections.
    pub fn new(ca_file: Option<String>, capacity: usize) -> Self {
        let mut opts = ConnectorOptions::new(0);
        opts.ca_file = ca_file;
        Client {
            transport: TransportConnector::new(Some(opts)),
            pool: Mutex::new(Idle::default()),
            capacity,
            sweeping: AtomicU64::new(0),
        }
    }

    /// A new connection to `peer` (its connect timeouts, TLS and verification).
    pub async fn connect(&self, peer: &HttpPeer) -> pingora::Result<Stream> {
        self.transport.new_stream(peer).await
    }

    /// A kept connection to `key` made on this thread, if one is still usable; the unusable
    /// ones found on the way are closed.
    pub fn take(&self, key: PeerKey<'_>) -> Option<Stream> {
        let worker = worker();
        let mut idle = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        let Idle { peers, count } = &mut *idle;
        let peer = peers.iter_mut().find(|p| p.is(key, worker))?;
        let now = Instant::now();
        while let Some(mut kept) = peer.conns.pop() {
            *count -= 1;
            if kept.usable(now) {
                return Some(kept.stream);
            }
        }
        None
    }

    /// Keeps `stream` (whose last answer allowed it, used on this thread) for this thread's
    /// next attempt at `key`. Past the capacity the peer's oldest connection on this thread
    /// gives way, or this one is closed when there is none.
    pub fn put(self: &Arc<Self>, key: PeerKey<'_>, stream: Stream) {
        self.start_sweeping();
        let worker = worker();
        let mut idle = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        let Idle { peers, count } = &mut *idle;
        let at = match peers.iter().position(|p| p.is(key, worker)) {
            Some(at) => at,
            None => {
                peers.push(PeerIdle {
                    addr: key.addr,
                    tls: key.tls,
                    sni: key.sni.to_string(),
                    worker,
                    conns: Vec::new(),
                });
                peers.len() - 1
            }
        };
        let conns = &mut peers[at].conns;
        if *count >= self.capacity {
            if conns.is_empty() {
                return;
            }
            conns.remove(0);
            *count -= 1;
        }
        conns.push(Kept {
            stream,
            since: Instant::now(),
        });
        *count += 1;
    }

    /// How many idle connections are kept.
    #[cfg(test)]
    fn idle_count(&self) -> usize {
        self.pool.lock().unwrap_or_else(|p| p.into_inner()).count
    }

    /// Closes the idle connections the server closed or that were idle too long (those of the
    /// threads of sweep bit `lane`, or all), and forgets peers with none left.
    fn sweep(&self, now: Instant, lane: Option<u32>) {
        let mut idle = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        let Idle { peers, count } = &mut *idle;
        for peer in peers.iter_mut() {
            if lane.is_some_and(|l| lane_of(peer.worker) != l) {
                continue;
            }
            let before = peer.conns.len();
            peer.conns.retain_mut(|kept| kept.usable(now));
            *count -= before - peer.conns.len();
        }
        peers.retain(|p| !p.conns.is_empty());
    }

    /// Starts the sweep of this thread's idle connections on its runtime, unless one runs. It
    /// ends when the client is dropped (a reload keeps clients: see `Connectors`); if its
    /// runtime shuts down first, the next connection this thread keeps starts another.
    fn start_sweeping(self: &Arc<Self>) {
        let lane = lane_of(worker());
        let bit = 1u64 << lane;
        if self.sweeping.load(Ordering::Relaxed) & bit != 0 {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.sweeping.fetch_or(bit, Ordering::Relaxed) & bit != 0 {
            return;
        }
        let sweeper = Sweeper(Arc::downgrade(self), bit);
        rt.spawn(async move {
            let mut every = tokio::time::interval(SWEEP_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let Some(client) = sweeper.0.upgrade() else {
                    return;
                };
                client.sweep(Instant::now(), Some(lane));
            }
        });
    }
}

/// The sweep bit of thread number `worker`.
fn lane_of(worker: usize) -> u32 {
    (worker % 64) as u32
}

/// The sweep task's hold on its client, and its bit; dropped with the task (the client gone,
/// or the runtime shut down), it lets the next `put` on its thread start a sweep again.
struct Sweeper(Weak<Client>, u64);

impl Drop for Sweeper {
    fn drop(&mut self) {
        if let Some(client) = self.0.upgrade() {
            client.sweeping.fetch_and(!self.1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    fn key(addr: SocketAddr) -> PeerKey<'static> {
        PeerKey {
            addr,
            tls: false,
            sni: "example.test",
        }
    }

    /// A connected pair: the client side as pingora's `Stream`, and the server side.
    async fn pair() -> (SocketAddr, Stream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let client: Stream = Box::new(pingora::protocols::l4::stream::Stream::from(
            client.unwrap(),
        ));
        (addr, client, server.unwrap().0)
    }

    #[tokio::test]
    async fn a_kept_connection_is_handed_out_once_and_only_for_its_peer() {
        let client = Arc::new(Client::new(None, 8));
        let (addr, stream, _server) = pair().await;
        client.put(key(addr), stream);
        assert_eq!(client.idle_count(), 1);
        let other = PeerKey {
            sni: "other.test",
            ..key(addr)
        };
        assert!(client.take(other).is_none(), "another server name");
        assert!(
            client
                .take(PeerKey {
                    tls: true,
                    ..key(addr)
                })
                .is_none(),
            "TLS"
        );
        assert!(client.take(key(addr)).is_some());
        assert!(client.take(key(addr)).is_none(), "handed out twice");
        assert_eq!(client.idle_count(), 0);
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_or_wrote_to_is_not_reused() {
        let client = Arc::new(Client::new(None, 8));
        let (addr, stream, server) = pair().await;
        client.put(key(addr), stream);
        drop(server);
        // The close reaches the socket; the next look at it sees the end.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(client.take(key(addr)).is_none(), "closed by the server");

        let (addr, stream, mut server) = pair().await;
        client.put(key(addr), stream);
        server.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(client.take(key(addr)).is_none(), "data nobody asked for");
        assert_eq!(client.idle_count(), 0);
    }

    #[tokio::test]
    async fn the_sweep_closes_what_the_server_closed() {
        let client = Arc::new(Client::new(None, 8));
        let (addr, stream, server) = pair().await;
        let (_, kept, _kept_server) = pair().await;
        client.put(key(addr), stream);
        client.put(key(addr), kept);
        drop(server);
        tokio::time::sleep(Duration::from_millis(50)).await;
        client.sweep(Instant::now(), None);
        assert_eq!(client.idle_count(), 1, "only the closed one goes");
        client.sweep(Instant::now() + POOL_IDLE_TIMEOUT, None);
        assert_eq!(client.idle_count(), 0, "idle past the timeout");
    }

    #[test]
    fn a_sweep_whose_runtime_shut_down_is_started_again() {
        let client = Arc::new(Client::new(None, 8));
        for _ in 0..2 {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let (addr, stream, _server) = pair().await;
                client.put(key(addr), stream);
                assert_ne!(client.sweeping.load(Ordering::Relaxed), 0, "a sweep runs");
                tokio::task::yield_now().await;
            });
            drop(rt);
            assert_eq!(
                client.sweeping.load(Ordering::Relaxed),
                0,
                "the sweep ended with its runtime"
            );
        }
    }

    /// Each thread sweeps its own idle connections, on its own runtime: the sweep of one
    /// thread leaves another's alone.
    #[test]
    fn each_thread_sweeps_its_own_connections() {
        let client = Arc::new(Client::new(None, 8));
        let keep_one = |client: Arc<Client>| {
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let server = rt.block_on(async {
                    let (addr, stream, server) = pair().await;
                    client.put(key(addr), stream);
                    assert_ne!(
                        client.sweeping.load(Ordering::Relaxed) & 1 << lane_of(worker()),
                        0
                    );
                    // Its sweep runs (and keeps the open connection).
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    server.into_std().unwrap()
                });
                drop(rt);
                (lane_of(worker()), server)
            })
            .join()
            .unwrap()
        };
        let ((a, _sa), (b, _sb)) = (keep_one(client.clone()), keep_one(client.clone()));
        assert_ne!(a, b, "two threads, two sweep bits");
        assert_eq!(client.idle_count(), 2);
        // Both runtimes are gone, their sweeps with them, and so are the reactors the kept
        // connections were registered with: a sweep finds them unusable.
        assert_eq!(client.sweeping.load(Ordering::Relaxed), 0);
        client.sweep(Instant::now(), Some(a));
        assert_eq!(client.idle_count(), 1, "the sweep of one thread's bit");
        client.sweep(Instant::now(), Some(b));
        assert_eq!(client.idle_count(), 0);
    }

    #[test]
    fn a_connection_is_reused_only_by_the_thread_that_kept_it() {
        let client = Arc::new(Client::new(None, 8));
        let on_other_thread = |f: Box<dyn FnOnce(Arc<Client>) + Send>| {
            let client = client.clone();
            std::thread::spawn(move || f(client)).join().unwrap();
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (addr, _server) = rt.block_on(async {
            let (addr, stream, server) = pair().await;
            client.put(key(addr), stream);
            (addr, server)
        });
        on_other_thread(Box::new(move |client| {
            assert!(
                client.take(key(addr)).is_none(),
                "another thread's connection"
            );
        }));
        assert_eq!(client.idle_count(), 1);
        assert!(
            rt.block_on(async { client.take(key(addr)) }).is_some(),
            "its own thread's"
        );
    }

    #[tokio::test]
    async fn the_capacity_bounds_the_idle_connections() {
        let client = Arc::new(Client::new(None, 2));
        let mut servers = Vec::new();
        let mut addr = None;
        for _ in 0..3 {
            let (a, stream, server) = pair().await;
            servers.push(server);
            // All under one key: the pool does not look at the socket's address.
            let a = *addr.get_or_insert(a);
            client.put(key(a), stream);
        }
        assert_eq!(client.idle_count(), 2);
        let (other, stream, _server) = pair().await;
        client.put(key(other), stream);
        assert_eq!(
            client.idle_count(),
            2,
            "a peer with none kept gets none past the cap"
        );
    }
}
