//! Secret parameter values ([`SECRET_PARAMS`]) masked in a query string or a URI, for what
//! is logged.

use std::borrow::Cow;

use super::{MASK, SECRET_PARAMS};

fn is_secret_name(name: &str) -> bool {
    SECRET_PARAMS.iter().any(|s| s.eq_ignore_ascii_case(name))
        || form_urlencoded::parse(name.as_bytes())
            .next()
            .is_some_and(|(k, _)| SECRET_PARAMS.iter().any(|s| s.eq_ignore_ascii_case(&k)))
}

/// Masks the values of secret parameters in a raw query string (without the `?`).
pub fn redact_query(query: &str) -> Cow<'_, str> {
    if !query.split('&').any(|pair| {
        let name = pair.split('=').next().unwrap_or("");
        is_secret_name(name)
    }) {
        return Cow::Borrowed(query);
    }
    let mut out = String::with_capacity(query.len());
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        let mut parts = pair.splitn(2, '=');
        let name = parts.next().unwrap_or("");
        if is_secret_name(name) {
            out.push_str(name);
            out.push('=');
            out.push_str(MASK);
        } else {
            out.push_str(pair);
        }
    }
    Cow::Owned(out)
}

/// Masks secrets in a path-and-query (`/cgi-bin/x?access_token=...`).
pub fn redact_uri(path_and_query: &str) -> Cow<'_, str> {
    match path_and_query.split_once('?') {
        None => Cow::Borrowed(path_and_query),
        Some((path, query)) => match redact_query(query) {
            Cow::Borrowed(_) => Cow::Borrowed(path_and_query),
            Cow::Owned(q) => Cow::Owned(format!("{path}?{q}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_secret_values_only() {
        assert_eq!(
            redact_query("access_token=abc&userid=zhang&corpsecret=s3&key=k"),
            "access_token=***&userid=zhang&corpsecret=***&key=***"
        );
        assert_eq!(redact_query("userid=zhang"), "userid=zhang");
        assert_eq!(redact_query("ACCESS_TOKEN=abc"), "ACCESS_TOKEN=***");
        assert_eq!(redact_query("access%5Ftoken=abc"), "access%5Ftoken=***");
        assert_eq!(redact_query("access_token"), "access_token=***");
        assert_eq!(redact_query(""), "");
    }

    #[test]
    fn masks_in_uris() {
        assert_eq!(
            redact_uri("/cgi-bin/user/get?access_token=t&userid=u"),
            "/cgi-bin/user/get?access_token=***&userid=u"
        );
        assert_eq!(redact_uri("/cgi-bin/user/get"), "/cgi-bin/user/get");
    }
}
