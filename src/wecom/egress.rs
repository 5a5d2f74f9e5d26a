//! The address WeCom sees this sidecar's calls come from, as its 60020 answers name it
//! (`from ip: a.b.c.d`): the latest one, for `/admin/status` and `wecom_egress_ip_info`, and
//! which (address, app) pairs were already logged with the fix, so each is logged once.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::SystemTime;

/// How many (address, app) pairs are remembered as logged; past it, nothing more is
/// remembered (a sidecar seeing this many egress addresses logs each new one again).
const MAX_REMEMBERED: usize = 1024;

/// The latest untrusted address, the app and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub ip: IpAddr,
    pub app: String,
    pub at: SystemTime,
}

/// What [`EgressIps::saw`] found new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct News {
    /// The address differs from the latest one (the info metric moves to it).
    pub new_latest: bool,
    /// This address was never logged for this app.
    pub first_for_app: bool,
}

#[derive(Default)]
pub struct EgressIps {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    latest: Option<Seen>,
    logged: HashSet<(IpAddr, String)>,
}

impl EgressIps {
    /// WeCom refused `app`'s call (or its gettoken) from `ip`.
    pub fn saw(&self, ip: IpAddr, app: &str) -> News {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let new_latest = g.latest.as_ref().is_none_or(|s| s.ip != ip);
        g.latest = Some(Seen {
            ip,
            app: app.to_string(),
            at: SystemTime::now(),
        });
        let key = (ip, app.to_string());
        let first_for_app = !g.logged.contains(&key);
        if first_for_app && g.logged.len() < MAX_REMEMBERED {
            g.logged.insert(key);
        }
        News {
            new_latest,
            first_for_app,
        }
    }

    pub fn latest(&self) -> Option<Seen> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .latest
            .clone()
    }
}

/// The fix an operator applies, in words.
pub fn fix(ip: IpAddr, app: &str) -> String {
    format!("add {ip} to the trusted IPs of app {app} in WeCom's admin console")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn news_once_per_address_and_app() {
        let e = EgressIps::default();
        let a: IpAddr = "203.0.113.7".parse().unwrap();
        let b: IpAddr = "203.0.113.8".parse().unwrap();
        assert_eq!(
            e.saw(a, "hr-bot"),
            News {
                new_latest: true,
                first_for_app: true
            }
        );
        assert_eq!(
            e.saw(a, "hr-bot"),
            News {
                new_latest: false,
                first_for_app: false
            }
        );
        assert!(e.saw(a, "ops").first_for_app);
        assert!(e.saw(b, "hr-bot").new_latest);
        assert_eq!(e.latest().map(|s| s.ip), Some(b));
        assert!(e.saw(a, "hr-bot").new_latest, "back to a: the latest moves");
        assert!(!e.saw(a, "hr-bot").first_for_app);
        assert_eq!(
            fix(a, "hr-bot"),
            "add 203.0.113.7 to the trusted IPs of app hr-bot in WeCom's admin console"
        );
    }
}
