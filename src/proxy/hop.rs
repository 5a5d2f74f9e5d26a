//! Hop-by-hop headers (RFC 9110 §7.6.1): the ones that describe one connection, not the
//! message, and are never passed on, in either direction. This module owns that list and the
//! rule that every name a `Connection` header lists is hop-by-hop too (`Connection: close,
//! X-Hop` makes `X-Hop` one), so the request to WeCom and the answer to the app are filtered
//! the same way. Each direction adds the few names it sets itself (`forward`, `respond`).

use http::{HeaderMap, HeaderName, HeaderValue};

/// Hop-by-hop by definition (RFC 9110 §7.6.1, RFC 9112 §6.1, and the non-standard
/// `Proxy-Connection` that old clients send).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The names `headers`' `Connection` fields list, as written (compare case-insensitively),
/// but for the ones that are hop-by-hop anyway. Empty, with no allocation, when there is no
/// `Connection` header or it says only `keep-alive` (as most answers do).
fn listed(headers: &HeaderMap) -> Vec<&str> {
    let mut names = Vec::new();
    for value in headers.get_all(http::header::CONNECTION) {
        // A value that is not visible ASCII cannot name a header: it lists nothing.
        let Ok(value) = value.to_str() else { continue };
        names.extend(
            value
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty() && !is_hop_by_hop(n)),
        );
    }
    names
}

/// A name of [`HOP_BY_HOP`], in any case: dropped whether a `Connection` lists it or not.
fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// The end-to-end headers of `from`, in order: every header but the hop-by-hop ones, those its
/// `Connection` lists, and those `skip` refuses.
pub fn end_to_end_iter<'a>(
    from: &'a HeaderMap,
    skip: impl Fn(&HeaderName) -> bool + 'a,
) -> impl Iterator<Item = (&'a HeaderName, &'a HeaderValue)> + 'a {
    let listed = listed(from);
    from.iter().filter(move |(name, _)| {
        let n = name.as_str();
        !(HOP_BY_HOP.contains(&n) || listed.iter().any(|l| l.eq_ignore_ascii_case(n)) || skip(name))
    })
}

/// Copies the end-to-end headers of `from` (`end_to_end_iter`) into a new map with room for
/// `extra` more.
pub fn end_to_end(from: &HeaderMap, extra: usize, skip: impl Fn(&HeaderName) -> bool) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(from.len() + extra);
    for (name, value) in end_to_end_iter(from, skip) {
        out.append(name.clone(), value.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (n, v) in pairs {
            m.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    fn names(m: &HeaderMap) -> Vec<&str> {
        m.keys().map(|k| k.as_str()).collect()
    }

    #[test]
    fn hop_by_hop_names_are_not_listed_again() {
        for v in ["keep-alive", "Keep-Alive", " upgrade , TE", "keep-alive,,"] {
            let m = map(&[("connection", v)]);
            assert!(listed(&m).is_empty(), "{v}");
        }
        let m = map(&[("connection", "keep-alive, X-Hop, close")]);
        assert_eq!(listed(&m), vec!["X-Hop", "close"]);
    }

    #[test]
    fn drops_the_standard_hop_by_hop_names() {
        let m = map(&[
            ("connection", "keep-alive"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic eA=="),
            ("content-type", "application/json"),
        ]);
        assert_eq!(names(&end_to_end(&m, 0, |_| false)), ["content-type"]);
    }

    #[test]
    fn drops_every_name_connection_lists_in_any_case_and_field() {
        let m = map(&[
            ("connection", "close, X-Hop"),
            ("connection", " x-other ,,"),
            ("x-hop", "1"),
            ("x-other", "2"),
            ("x-keep", "3"),
        ]);
        assert_eq!(names(&end_to_end(&m, 0, |_| false)), ["x-keep"]);
    }

    #[test]
    fn a_connection_value_that_is_not_text_lists_nothing() {
        let mut m = map(&[("x-keep", "1")]);
        m.append(
            http::header::CONNECTION,
            http::HeaderValue::from_bytes(b"x-keep\xff").unwrap(),
        );
        assert_eq!(names(&end_to_end(&m, 0, |_| false)), ["x-keep"]);
    }

    #[test]
    fn skip_drops_the_direction_s_own_names() {
        let m = map(&[("host", "a"), ("x-keep", "1")]);
        let out = end_to_end(&m, 2, |n| n == http::header::HOST);
        assert_eq!(names(&out), ["x-keep"]);
    }
}
