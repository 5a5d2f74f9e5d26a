//! The end-to-end harness every test module uses: the simulated WeCom ([`simulator`], on a
//! loopback listener it binds itself), the real `wecom-sidecar` binary run as a child process
//! ([`Sidecar`]), a real `redis-server` ([`Redis`]), ports for the listeners those children
//! bind ([`free_port`]), the metric matcher ([`Metrics`]), [`eventually`] for every wait, HTTP
//! clients, the one raw-socket HTTP reader ([`Raw`]) and a recording relay ([`Relay`]). Ports are never hard-coded.

mod eventually;
mod http;
mod metrics;
mod ports;
mod process;
mod raw;
mod redis_server;
mod relay;
mod sidecar;
mod wecom;

/// The simulator, reached by every test through this one path.
pub use wecom_sim as sim;

pub use eventually::eventually;
pub use http::{addr_of, client, get_json, post_json};
pub use ports::free_port;
pub use process::{exited_within, open_fds, peak_rss_kib, rss_kib};
pub use raw::{exchange as raw_exchange, Answer, End, Raw};
pub use redis_server::Redis;
pub use relay::Relay;
pub use sidecar::{config_yaml, Sidecar};
pub use wecom::{
    calls, fault, primary_and_standby, sim_config, simulator, CORP_ID, HR_SECRET, OPS_SECRET,
};
