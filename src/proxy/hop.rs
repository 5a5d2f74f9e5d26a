//! Hop-by-hop headers (RFC 9110 §7.6.1): the ones that describe one connection, not the
//! message, and are never passed on, in either direction. This module owns that list and the
//! rule that every name a `Connection` header lists is hop-by-hop too (`Connection: close,
//! X-Hop` makes `X-Hop` one), so the request to WeCom and the answer to the app are filtered
//! the same way. Each direction adds the few names it sets itself (`forward`, `respond`).

use http::{HeaderMap, HeaderName, HeaderValue};

/// Hop-by-hop by definition (RFC 9110 §7.6.1, RFC 9112 §6.1, and the non-standard
/// `Proxy-Connection` that old clients send), as names to compare with a map's own: a standard
/// name compares by its tag, so looking for these costs a few instructions a header.
static HOP_BY_HOP: [HeaderName; 9] = [
    http::header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    http::header::PROXY_AUTHENTICATE,
    http::header::PROXY_AUTHORIZATION,
    http::header::TE,
    http::header::TRAILER,
    http::header::TRANSFER_ENCODING,
    http::header::UPGRADE,
];

/// Which of [`HOP_BY_HOP`] `name` is. Their names are 2, 7, 10 or 16–19 bytes long, so most
/// names (`content-type`, `date`, `x-request-id`) are told apart by their length alone, and
/// one of those lengths is compared with the few names of its length.
fn hop_index(name: &HeaderName) -> Option<usize> {
    match name.as_str().len() {
        2 | 7 | 10 | 16..=19 => HOP_BY_HOP.iter().position(|h| h == name),
        _ => None,
    }
}

/// Whether `headers` has a `Connection` field: found by a look at each name, which for the
/// few headers of a call costs less than a hashed lookup.
fn has_connection(headers: &HeaderMap) -> bool {
    headers.keys().any(|name| name == http::header::CONNECTION)
}

/// The names `headers`' `Connection` fields list, as written (compare case-insensitively),
/// but for the ones that are hop-by-hop anyway. Empty, with no allocation, when there is no
/// `Connection` header or it says only `keep-alive` (as most answers do).
fn listed(headers: &HeaderMap) -> Vec<&str> {
    let mut names = Vec::new();
    for value in headers.get_all(http::header::CONNECTION) {
        // What nearly every `Connection` says: a hop-by-hop name, so nothing listed.
        if value.as_bytes().eq_ignore_ascii_case(b"keep-alive") {
            continue;
        }
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
    HOP_BY_HOP
        .iter()
        .any(|h| h.as_str().eq_ignore_ascii_case(name))
}

/// The end-to-end headers of `from`, in order: every header but the hop-by-hop ones, those its
/// `Connection` lists, and those `skip` refuses.
pub fn end_to_end_iter<'a>(
    from: &'a HeaderMap,
    skip: impl Fn(&HeaderName) -> bool + 'a,
) -> impl Iterator<Item = (&'a HeaderName, &'a HeaderValue)> + 'a {
    let listed = if has_connection(from) {
        listed(from)
    } else {
        Vec::new()
    };
    from.iter().filter(move |(name, _)| {
        !(hop_index(name).is_some()
            || listed.iter().any(|l| l.eq_ignore_ascii_case(name.as_str()))
            || skip(name))
    })
}

/// Takes the hop-by-hop headers out of `headers`, in place, leaving the end-to-end ones (what
/// `end_to_end_iter` gives): a map passed on whole is then not copied. Each name's values keep
/// their order; a name may come before another it followed (`HeaderMap::remove` moves the
/// last name into the gap), which HTTP leaves without meaning (RFC 9110 §5.3).
pub fn strip(headers: &mut HeaderMap) {
    // Found first, then removed: most answers carry one of these (`Connection`), and a look
    // at each name is cheaper than a hashed lookup of every one of them.
    let mut found = [false; HOP_BY_HOP.len()];
    for name in headers.keys() {
        if let Some(i) = hop_index(name) {
            found[i] = true;
        }
    }
    // `Connection` is HOP_BY_HOP[0]: only a map with one can list more names.
    let listed: Vec<HeaderName> = if found[0] {
        listed(headers)
            .iter()
            .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
            .collect()
    } else {
        Vec::new()
    };
    for (name, found) in HOP_BY_HOP.iter().zip(found) {
        if found {
            headers.remove(name);
        }
    }
    for name in listed {
        headers.remove(name);
    }
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

    /// The names `m` keeps end to end, found both ways (in place, and as `end_to_end_iter`
    /// gives them), which must agree: the same fields, each name's values in their order
    /// (`strip` may move a name before another; their order is not significant, RFC 9110 §5.3).
    fn names(m: &HeaderMap) -> Vec<String> {
        let given: Vec<(String, String)> = end_to_end_iter(m, |_| false)
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
            .collect();
        let mut stripped = m.clone();
        strip(&mut stripped);
        let mut kept: Vec<(String, String)> = stripped
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
            .collect();
        let mut sorted = given.clone();
        // Stable sorts: each name's values stay in their order.
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        kept.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(kept, sorted, "strip and end_to_end_iter disagree");
        given.into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn each_hop_by_hop_name_is_found_by_its_length_and_connection_comes_first() {
        assert_eq!(
            HOP_BY_HOP[0],
            http::header::CONNECTION,
            "strip reads found[0]"
        );
        for (i, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_index(name), Some(i), "{name}");
        }
        for name in [
            "date",
            "content-type",
            "error-code",
            "x-connection",
            "tee",
            "te-x",
        ] {
            let name = HeaderName::from_static(name);
            assert_eq!(hop_index(&name), None, "{name}");
        }
    }

    #[test]
    fn a_map_with_no_connection_field_has_none() {
        assert!(!has_connection(&map(&[("x-a", "1"), ("keep-alive", "5")])));
        assert!(has_connection(&map(&[("x-a", "1"), ("connection", "x-a")])));
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
            ("x-a", "1"),
            ("proxy-connection", "keep-alive"),
            ("proxy-authenticate", "Basic"),
            ("trailer", "x-t"),
            ("x-a", "2"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic eA=="),
            ("content-type", "application/json"),
        ]);
        assert_eq!(names(&m), ["x-a", "x-a", "content-type"]);
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
        assert_eq!(names(&m), ["x-keep"]);
    }

    #[test]
    fn a_connection_value_that_is_not_text_lists_nothing() {
        let mut m = map(&[("x-keep", "1")]);
        m.append(
            http::header::CONNECTION,
            http::HeaderValue::from_bytes(b"x-keep\xff").unwrap(),
        );
        assert_eq!(names(&m), ["x-keep"]);
    }

    #[test]
    fn skip_drops_the_direction_s_own_names() {
        let m = map(&[("host", "a"), ("x-keep", "1")]);
        let out: Vec<_> = end_to_end_iter(&m, |n| n == http::header::HOST).collect();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, "x-keep");
    }
}
