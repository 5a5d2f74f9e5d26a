//! Asynchronous, cached name resolution for upstream hosts.
//!
//! Answers are cached for [`DNS_TTL`]; when a lookup fails, the last good answer is kept for
//! [`DNS_STALE_FOR`] so a DNS hiccup does not take WeCom away. IP literals skip all of this.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use moka::sync::Cache;

/// How long a resolved address is used before it is looked up again.
pub const DNS_TTL: Duration = Duration::from_secs(30);
/// How long the last good address is used while lookups fail.
pub const DNS_STALE_FOR: Duration = Duration::from_secs(600);

/// Resolves `host:port` pairs.
pub struct Resolver {
    fresh: Cache<(String, u16), SocketAddr>,
    stale: Cache<(String, u16), SocketAddr>,
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver {
            fresh: Cache::builder()
                .max_capacity(1024)
                .time_to_live(DNS_TTL)
                .build(),
            stale: Cache::builder()
                .max_capacity(1024)
                .time_to_live(DNS_STALE_FOR)
                .build(),
        }
    }
}

impl Resolver {
    pub async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, String> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        let key = (host.to_string(), port);
        if let Some(addr) = self.fresh.get(&key) {
            return Ok(addr);
        }
        match tokio::net::lookup_host((host, port)).await {
            Ok(mut addrs) => match addrs.next() {
                Some(addr) => {
                    self.fresh.insert(key.clone(), addr);
                    self.stale.insert(key, addr);
                    Ok(addr)
                }
                None => self
                    .stale
                    .get(&key)
                    .ok_or_else(|| format!("{host} has no address")),
            },
            Err(e) => self
                .stale
                .get(&key)
                .ok_or_else(|| format!("cannot resolve {host}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ip_literals_and_localhost() {
        let r = Resolver::default();
        assert_eq!(
            r.resolve("127.0.0.1", 80).await.unwrap(),
            "127.0.0.1:80".parse().unwrap()
        );
        assert_eq!(
            r.resolve("::1", 443).await.unwrap(),
            "[::1]:443".parse().unwrap()
        );
        assert!(r
            .resolve("localhost", 8080)
            .await
            .unwrap()
            .ip()
            .is_loopback());
    }

    #[tokio::test]
    async fn failure_is_an_error_not_a_panic() {
        let r = Resolver::default();
        assert!(r.resolve("no-such-host.invalid", 443).await.is_err());
    }
}
