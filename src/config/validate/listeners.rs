//! The listeners' keys: `listen`, `admin_listen`, `admin_hosts`, and `client` (the app
//! listener's timeouts and connection cap).

use std::net::SocketAddr;

use super::check::Check;
use crate::config::defaults::*;
use crate::config::file::FileClientConnections;
use crate::config::model::ClientConnections;
use crate::config::quote::quote;

/// `listen` and `admin_listen`, each defaulted, and never the same address; `None` when
/// either is wrong.
pub(super) fn listen_pair(
    c: &mut Check,
    listen: Option<&str>,
    admin_listen: Option<&str>,
) -> Option<(SocketAddr, SocketAddr)> {
    let listen = address(c, "listen", listen, DEFAULT_LISTEN);
    let admin_listen = address(c, "admin_listen", admin_listen, DEFAULT_ADMIN_LISTEN);
    let (l, a) = (listen?, admin_listen?);
    if l == a {
        c.problem(
            "admin_listen",
            format!(
                "is the same address as listen ({l}). Give the admin listener its own port, e.g. \"{DEFAULT_ADMIN_LISTEN}\""
            ),
        );
    }
    Some((l, a))
}

/// An `IP:port` with a fixed port, or `default` when absent.
fn address(c: &mut Check, key: &str, value: Option<&str>, default: &str) -> Option<SocketAddr> {
    let text = value.unwrap_or(default);
    match text.trim().parse::<SocketAddr>() {
        Ok(a) if a.port() == 0 => {
            c.problem(
                key,
                format!("{} has port 0, which would pick a random port nobody knows. Give a fixed port, e.g. \"{default}\"", quote(text)),
            );
            None
        }
        Ok(a) => Some(a),
        Err(_) => {
            c.problem(
                key,
                format!(
                    "{} is not IP:port. Write an IP address and a port, e.g. \"{default}\" (host names are not resolved; use [::1]:8080 for IPv6)",
                    quote(text)
                ),
            );
            None
        }
    }
}

/// `admin_hosts`: host names (or IP addresses) without scheme, port or path, lower-cased.
pub(super) fn admin_hosts(c: &mut Check, hosts: Option<&[String]>) -> Vec<String> {
    let mut out = Vec::new();
    for (i, h) in hosts.unwrap_or_default().iter().enumerate() {
        let key = format!("admin_hosts[{i}]");
        let name = h.trim().trim_end_matches('.');
        let ip = name.trim_start_matches('[').trim_end_matches(']');
        let valid = ip.parse::<std::net::IpAddr>().is_ok()
            || (!name.is_empty()
                && name.len() <= 253
                && name.split('.').all(|l| {
                    !l.is_empty()
                        && l.chars()
                            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
                }));
        if valid {
            out.push(ip.to_ascii_lowercase());
        } else {
            c.problem(
                key,
                format!("{} is not a host name. Give the name alone, as clients put it in the Host header without its port, e.g. wecom-sidecar.monitoring.svc", quote(h)),
            );
        }
    }
    out
}

/// `client`: the app listener's timeouts and connection cap.
pub(super) fn client_connections(
    c: &mut Check,
    f: Option<&FileClientConnections>,
) -> ClientConnections {
    let max_connections = match f.and_then(|f| f.max_connections) {
        Some(n) if n < 1 => {
            c.problem(
                "client.max_connections",
                "must be at least 1; leave it out to derive it from the descriptor limit",
            );
            None
        }
        Some(n) => Some(n as u64),
        None => None,
    };
    ClientConnections {
        header_timeout: c.duration(
            "client.header_timeout",
            f.and_then(|f| f.header_timeout.as_deref()),
            DEFAULT_HEADER_TIMEOUT,
        ),
        body_timeout: c.duration(
            "client.body_timeout",
            f.and_then(|f| f.body_timeout.as_deref()),
            DEFAULT_BODY_TIMEOUT,
        ),
        idle_timeout: c.duration(
            "client.idle_timeout",
            f.and_then(|f| f.idle_timeout.as_deref()),
            DEFAULT_IDLE_TIMEOUT,
        ),
        max_connections,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate::Secrets;

    #[test]
    fn the_two_listeners_default_and_must_differ() {
        let mut c = Check::new(&|_| None, None, Secrets::Read);
        let (l, a) = listen_pair(&mut c, None, None).expect("defaults");
        assert_eq!(
            (l.to_string(), a.to_string()),
            (DEFAULT_LISTEN.to_string(), DEFAULT_ADMIN_LISTEN.to_string())
        );
        assert!(c.problems.is_empty());
        // Both wrong: both reported.
        assert_eq!(listen_pair(&mut c, Some("x"), Some("[::1]:0")), None);
        let keys: Vec<&str> = c.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["listen", "admin_listen"]);
        c.problems.clear();
        // The same address: reported at admin_listen, the pair still given to go on with.
        assert!(listen_pair(&mut c, Some("127.0.0.1:1"), Some("127.0.0.1:1")).is_some());
        assert_eq!(c.problems.len(), 1);
        assert!(c.problems[0].message.contains("same address"));
    }
}
