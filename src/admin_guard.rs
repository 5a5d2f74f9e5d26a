//! Who may talk to the admin listener: the checks every admin request passes before it is
//! routed. The admin port has no authentication (it is loopback by default), so what stands
//! between it and a web page in a browser on the same machine or network is here.
//!
//! - **Host** (DNS rebinding): a page on `attacker.example` whose name is re-pointed at
//!   127.0.0.1 reads our answers as same-origin. So a request is answered only when its `Host`
//!   names a loopback address, `localhost`, the address the connection arrived on (the pod IP
//!   that Prometheus and kubelet probes use), or a name in `admin_hosts`. Anything else gets
//!   421 Misdirected Request. A request with no `Host` at all (HTTP/1.0 health checkers) is
//!   let through: every browser sends one, so it cannot be a rebinding page.
//! - **Browsers on POST**: `Origin` (every browser POST carries it) or `Sec-Fetch-Site:
//!   cross-site`/`same-site` on a state-changing request gets 403: reloads and plan starts
//!   are for operators' tools (curl, scripts), never for a page.

use std::net::{IpAddr, SocketAddr};

use http::{HeaderMap, Method};

/// Why a request was refused: the status to answer and a short reason for the body and log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 421: the `Host` is not one this listener answers for.
    ForeignHost,
    /// 403: a browser sent a state-changing request.
    Browser,
}

impl Refusal {
    pub fn status(self) -> http::StatusCode {
        match self {
            Refusal::ForeignHost => http::StatusCode::MISDIRECTED_REQUEST,
            Refusal::Browser => http::StatusCode::FORBIDDEN,
        }
    }

    /// The answer's body: what was refused and how to be let in, naming no value sent.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::ForeignHost => "refused: the Host header is not a loopback address, localhost, this listener's address or a name in admin_hosts (DNS rebinding guard). Add the name you use to admin_hosts\n",
            Refusal::Browser => "refused: admin POSTs are not taken from browsers (Origin or Sec-Fetch-Site: cross-site sent). Use curl or a script\n",
        }
    }

    /// Metric and log label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::ForeignHost => "foreign_host",
            Refusal::Browser => "browser",
        }
    }
}

/// Checks one admin request. `authority` is the request target's own host (absolute-form
/// `GET http://host/...`, which takes precedence over `Host`), `local` the address the
/// connection arrived on, when known; `admin_hosts` are the extra names allowed (lower case,
/// no port).
pub fn check(
    method: &Method,
    authority: Option<&str>,
    headers: &HeaderMap,
    local: Option<SocketAddr>,
    admin_hosts: &[String],
) -> Result<(), Refusal> {
    let named = headers
        .get_all(http::header::HOST)
        .iter()
        .map(|h| h.to_str().ok())
        .chain(authority.map(Some));
    for host in named {
        let allowed = host
            .and_then(host_name)
            .is_some_and(|name| host_allowed(&name, local, admin_hosts));
        if !allowed {
            return Err(Refusal::ForeignHost);
        }
    }
    if changes_state(method) && from_browser(headers) {
        return Err(Refusal::Browser);
    }
    Ok(())
}

/// Methods that change something (everything but reads).
fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether a browser sent this: any `Origin` (browsers send it on every POST, `null` included),
/// or a `Sec-Fetch-Site` saying the request came from another site.
fn from_browser(headers: &HeaderMap) -> bool {
    if headers.contains_key(http::header::ORIGIN) {
        return true;
    }
    headers.get_all("sec-fetch-site").iter().any(|v| {
        let v = v.to_str().unwrap_or("cross-site").trim();
        v.eq_ignore_ascii_case("cross-site") || v.eq_ignore_ascii_case("same-site")
    })
}

/// The host part of a `Host` value, lower case, without port, brackets or a trailing dot;
/// `None` when it is not a host name or address.
pub fn host_name(value: &str) -> Option<String> {
    let value = value.trim();
    let host = if let Some(rest) = value.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        inside
    } else if value.parse::<std::net::Ipv6Addr>().is_ok() {
        value
    } else {
        match value.rsplit_once(':') {
            Some((h, port)) if is_port(port) => h,
            Some(_) => return None,
            None => value,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:_%".contains(c));
    valid.then(|| host.to_ascii_lowercase())
}

/// At most the first 64 characters of a client-sent value, for a log line.
pub fn short(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

fn host_allowed(name: &str, local: Option<SocketAddr>, admin_hosts: &[String]) -> bool {
    if name == "localhost" {
        return true;
    }
    if let Ok(ip) = name.parse::<IpAddr>() {
        let ip = ip.to_canonical();
        if ip.is_loopback() || local.is_some_and(|l| l.ip().to_canonical() == ip) {
            return true;
        }
    }
    admin_hosts.iter().any(|h| h == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn host_names_are_read_without_port_and_case() {
        assert_eq!(host_name("LocalHost:9901").as_deref(), Some("localhost"));
        assert_eq!(host_name("[::1]:9901").as_deref(), Some("::1"));
        assert_eq!(host_name("[::1]").as_deref(), Some("::1"));
        assert_eq!(host_name("::1").as_deref(), Some("::1"));
        assert_eq!(host_name("10.0.0.7").as_deref(), Some("10.0.0.7"));
        assert_eq!(
            host_name("sidecar.example.").as_deref(),
            Some("sidecar.example")
        );
        for bad in [
            "", "a:b", "[::1", "[::1]x", "a b", "a/b", "x:123456", "@evil",
        ] {
            assert_eq!(host_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn hosts_allowed_and_refused() {
        let local: SocketAddr = "10.1.2.3:9901".parse().unwrap();
        let extra = vec!["wecom-sidecar.monitoring.svc".to_string()];
        let get = Method::GET;
        for ok in [
            "127.0.0.1:9901",
            "127.8.9.10",
            "[::1]:9901",
            "localhost",
            "localhost:1",
            "10.1.2.3:9901",
            "WECOM-SIDECAR.monitoring.svc:9901",
        ] {
            let h = headers(&[("host", ok)]);
            assert_eq!(check(&get, None, &h, Some(local), &extra), Ok(()), "{ok}");
        }
        for bad in [
            "attacker.example",
            "attacker.example:9901",
            "10.1.2.4:9901",
            "localhost.attacker.example",
            "127.0.0.1.attacker.example",
            "0.0.0.0:9901",
        ] {
            let h = headers(&[("host", bad)]);
            assert_eq!(
                check(&get, None, &h, Some(local), &extra),
                Err(Refusal::ForeignHost),
                "{bad}"
            );
        }
        // A v4 client on a dual-stack listener: the local address is v4-mapped.
        let mapped: SocketAddr = "[::ffff:10.1.2.3]:9901".parse().unwrap();
        let h = headers(&[("host", "10.1.2.3:9901")]);
        assert_eq!(check(&get, None, &h, Some(mapped), &[]), Ok(()));
        // No Host at all: no browser sends that.
        assert_eq!(
            check(&get, None, &HeaderMap::new(), Some(local), &[]),
            Ok(())
        );
        // A second Host, or an absolute-form target, naming another host.
        let two = headers(&[("host", "127.0.0.1"), ("host", "attacker.example")]);
        assert_eq!(
            check(&get, None, &two, Some(local), &[]),
            Err(Refusal::ForeignHost)
        );
        let h = headers(&[("host", "127.0.0.1")]);
        assert_eq!(
            check(&get, Some("attacker.example:9901"), &h, Some(local), &[]),
            Err(Refusal::ForeignHost)
        );
        assert_eq!(
            check(&get, Some("localhost:9901"), &h, Some(local), &[]),
            Ok(())
        );
    }

    #[test]
    fn browsers_may_read_but_not_post() {
        let post = Method::POST;
        let host = ("host", "127.0.0.1:9901");
        for browser in [
            vec![host, ("origin", "http://evil")],
            vec![host, ("origin", "null")],
            vec![host, ("sec-fetch-site", "cross-site")],
            vec![host, ("sec-fetch-site", "same-site")],
        ] {
            assert_eq!(
                check(&post, None, &headers(&browser), None, &[]),
                Err(Refusal::Browser),
                "{browser:?}"
            );
        }
        assert_eq!(check(&post, None, &headers(&[host]), None, &[]), Ok(()));
        let same = headers(&[host, ("sec-fetch-site", "none")]);
        assert_eq!(check(&post, None, &same, None, &[]), Ok(()));
        let get = headers(&[host, ("origin", "http://evil")]);
        assert_eq!(check(&Method::GET, None, &get, None, &[]), Ok(()));
    }
}
