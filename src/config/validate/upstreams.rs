//! `upstreams`: name → endpoint, into [`Upstream`]s in file order; `primary` must be one.

use std::sync::Arc;

use super::ca_file::ca_file;
use super::check::{is_name, Check};
use crate::config::defaults::*;
use crate::config::file::{FileUpstream, OrderedMap};
use crate::config::model::{Scheme, TokenRealm, Upstream, UpstreamName};
use crate::config::quote::quote;

/// Every valid upstream, in file order.
pub(super) fn upstreams(c: &mut Check, map: Option<OrderedMap<FileUpstream>>) -> Vec<Upstream> {
    let Some(map) = map else {
        c.problem(
            "upstreams",
            format!("is missing. Add at least `upstreams: {{ {PRIMARY_UPSTREAM}: {{ url: \"https://qyapi.weixin.qq.com\" }} }}`"),
        );
        return Vec::new();
    };
    if !map.keys().any(|k| k == PRIMARY_UPSTREAM) {
        c.problem(
            format!("upstreams.{PRIMARY_UPSTREAM}"),
            format!(
                "is missing. Every config needs an upstream named {PRIMARY_UPSTREAM} (it takes the traffic no split sends elsewhere and issues tokens): add `{PRIMARY_UPSTREAM}: {{ url: \"https://qyapi.weixin.qq.com\" }}` under upstreams"
            ),
        );
    }
    map.iter()
        .filter_map(|(name, u)| u.to_upstream(c, name))
        .collect()
}

impl FileUpstream {
    /// `upstreams.<name>`; `None` when its URL is unusable.
    fn to_upstream(&self, c: &mut Check, name: &str) -> Option<Upstream> {
        let key = format!("upstreams.{name}");
        if !is_name(name) {
            c.problem(
                &key,
                format!(
                    "{} is not a valid upstream name. Use letters, digits and _ . - only",
                    quote(name)
                ),
            );
        }
        let connect_timeout = c.duration(
            &format!("{key}.connect_timeout"),
            self.connect_timeout.as_deref(),
            DEFAULT_CONNECT_TIMEOUT,
        );
        let timeout = c.duration(
            &format!("{key}.timeout"),
            self.timeout.as_deref(),
            DEFAULT_TIMEOUT,
        );
        let ca_file = self
            .ca_file
            .as_deref()
            .map(|p| ca_file(c, &format!("{key}.ca_file"), p));
        let parsed = upstream_url(c, &format!("{key}.url"), &self.url)?;
        let tokens = match self.tokens.as_deref() {
            None | Some("shared") => TokenRealm::Shared,
            Some("own") => TokenRealm::Own,
            Some(other) => {
                c.problem(
                    format!("{key}.tokens"),
                    format!("{} is not a choice. Use shared (the same WeCom behind another address: primary's tokens work) or own (a deployment that issues its own tokens)", quote(other)),
                );
                TokenRealm::Shared
            }
        };
        if name == PRIMARY_UPSTREAM && tokens == TokenRealm::Own {
            c.problem(
                format!("{key}.tokens"),
                "primary issues the shared tokens; own only applies to other upstreams",
            );
        }
        Some(Upstream {
            tokens,
            name: UpstreamName(Arc::from(name)),
            scheme: parsed.scheme,
            host: parsed.host,
            port: parsed.port,
            base_path: parsed.base_path,
            connect_timeout,
            timeout,
            ca_file,
        })
    }
}

/// A URL for messages, with any `user:password@` hidden.
fn show_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

struct ParsedUrl {
    scheme: Scheme,
    host: String,
    port: u16,
    base_path: String,
}

fn upstream_url(c: &mut Check, key: &str, url: &str) -> Option<ParsedUrl> {
    let shown = quote(&show_url(url));
    let example = "e.g. https://qyapi.weixin.qq.com or http://10.0.0.5:8080/wecom";
    let Ok(uri) = url.trim().parse::<http::Uri>() else {
        c.problem(
            key,
            format!("{shown} is not a URL. Write scheme://host[:port][/path], {example}"),
        );
        return None;
    };
    let scheme = match uri.scheme_str() {
        Some("https") => Scheme::Https,
        Some("http") => Scheme::Http,
        Some(other) => {
            c.problem(key, format!("{shown} has scheme {}. Use https:// (or http:// on private networks and in tests), {example}", quote(other)));
            return None;
        }
        None => {
            c.problem(key, format!("{shown} has no scheme. Start it with https:// (or http:// on private networks and in tests), {example}"));
            return None;
        }
    };
    let Some(host) = uri.host().filter(|h| !h.is_empty()) else {
        c.problem(
            key,
            format!("{shown} has no host. Write scheme://host[:port][/path], {example}"),
        );
        return None;
    };
    let mut ok = true;
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        c.problem(key, format!("{shown} carries user:password@, which WeCom never uses and which would put a secret in this file. Drop it"));
        ok = false;
    }
    if uri.query().is_some() || url.contains('#') {
        c.problem(key, format!("{shown} has a query or fragment. Drop everything from ? or #: give scheme, host, optional port and path prefix only"));
        ok = false;
    }
    if uri.port_u16() == Some(0) {
        c.problem(
            key,
            format!("{shown} has port 0. Give the real port or drop it for the scheme's default"),
        );
        ok = false;
    }
    let port = uri.port_u16().unwrap_or(match scheme {
        Scheme::Https => 443,
        Scheme::Http => 80,
    });
    ok.then(|| ParsedUrl {
        scheme,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port,
        base_path: uri.path().trim_end_matches('/').to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_credentials() {
        assert_eq!(show_url("https://u:p@h:1/x"), "https://***@h:1/x");
        assert_eq!(show_url("https://h/x@y"), "https://h/x@y");
        assert_eq!(show_url("nonsense"), "nonsense");
    }
}
