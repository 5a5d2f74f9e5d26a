//! Upstreams: where WeCom calls go, and how one attempt is carried out.
//!
//! `resolve` turns host names into addresses without blocking (pingora's `HttpPeer::new` would
//! resolve synchronously and panic on failure); `pool` makes connections (pingora's transport
//! connector) and keeps them alive; `exchange` sends one attempt over one and reads the answer,
//! buffered or streamed, in the sidecar's own HTTP/1.1 (`h1`). Choosing among upstreams and
//! deciding on retries happens above, in `proxy`.

pub mod exchange;
pub mod h1;
pub mod health;
pub mod pool;
pub mod probe;
pub mod resolve;
pub mod split;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use pingora::upstreams::peer::{HttpPeer, PeerOptions};

use crate::config::{Scheme, Upstream};

/// How long an idle pooled connection to an upstream is kept. Shorter than common server
/// keep-alive timeouts (nginx: 75 s; WeCom does not say) so the sidecar, not the server, closes idle connections,
/// which keeps the "server closed it just as we sent" race rare.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// Idle upstream connections kept per trust root (all peers together): enough for a busy
/// sidecar, bounded for memory.
const KEEPALIVE_POOL_SIZE: usize = 256;

/// One upstream ready for use: its settings and the client (with its pool) that reaches it.
pub struct UpstreamRt {
    pub cfg: Upstream,
    pub client: Arc<pool::Client>,
    /// `Host` header value.
    pub authority: String,
    /// The same, ready to put in a request (`None` only if the authority is not a valid
    /// header value, which a validated config never gives).
    pub host_header: Option<http::HeaderValue>,
    /// Outlier state, kept across reloads while name and URL stay the same.
    pub health: Arc<health::UpstreamHealth>,
    /// Peers built so far, by address: a peer is the same for every call to that address, and
    /// building one allocates.
    peers: RwLock<Vec<(SocketAddr, Arc<HttpPeer>)>>,
}

/// Addresses whose peer is kept per upstream; past it (DNS churn) the list starts over.
const MAX_PEERS: usize = 32;

impl UpstreamRt {
    /// The peer for attempts at `addr`. TLS peers always carry the host name as SNI: with
    /// rustls an empty SNI would skip certificate verification.
    pub fn peer(&self, addr: SocketAddr) -> Arc<HttpPeer> {
        let known = self.peers.read().unwrap_or_else(|p| p.into_inner());
        if let Some((_, peer)) = known.iter().find(|(a, _)| *a == addr) {
            return peer.clone();
        }
        drop(known);
        let peer = Arc::new(self.build_peer(addr));
        let mut known = self.peers.write().unwrap_or_else(|p| p.into_inner());
        if known.len() >= MAX_PEERS {
            known.clear();
        }
        known.push((addr, peer.clone()));
        peer
    }

    /// Which kept connections may carry an attempt at `addr`.
    pub fn peer_key(&self, addr: SocketAddr) -> pool::PeerKey<'_> {
        pool::PeerKey {
            addr,
            tls: self.cfg.scheme == Scheme::Https,
            sni: &self.cfg.host,
        }
    }

    fn build_peer(&self, addr: SocketAddr) -> HttpPeer {
        let tls = self.cfg.scheme == Scheme::Https;
        let mut peer = HttpPeer::new(addr, tls, self.cfg.host.clone());
        let mut opts = PeerOptions::new();
        opts.connection_timeout = Some(self.cfg.connect_timeout);
        opts.total_connection_timeout = Some(self.cfg.connect_timeout * 2);
        opts.read_timeout = Some(self.cfg.timeout);
        opts.write_timeout = Some(self.cfg.timeout);
        opts.idle_timeout = Some(POOL_IDLE_TIMEOUT);
        opts.verify_cert = true;
        opts.verify_hostname = true;
        peer.options = opts;
        peer
    }
}

/// Clients shared across config reloads, one per trust root, so connection pools survive a
/// reload and each `ca_file` is read once.
#[derive(Default)]
pub struct Connectors {
    by_ca: Mutex<HashMap<Option<PathBuf>, Arc<pool::Client>>>,
}

impl Connectors {
    pub fn get(&self, ca_file: Option<&PathBuf>) -> Arc<pool::Client> {
        let mut map = self.by_ca.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(ca_file.cloned())
            .or_insert_with(|| {
                let ca = ca_file.map(|p| p.display().to_string());
                Arc::new(pool::Client::new(ca, KEEPALIVE_POOL_SIZE))
            })
            .clone()
    }

    /// Builds the runtime form of an upstream.
    pub fn build(&self, cfg: &Upstream, health: &health::HealthRegistry) -> Arc<UpstreamRt> {
        let authority = cfg.authority();
        let url = format!("{:?}://{authority}{}", cfg.scheme, cfg.base_path);
        Arc::new(UpstreamRt {
            health: health.get(cfg.name.as_str(), &url),
            host_header: http::HeaderValue::from_str(&authority).ok(),
            authority,
            client: self.get(cfg.ca_file.as_ref()),
            cfg: cfg.clone(),
            peers: RwLock::default(),
        })
    }
}
