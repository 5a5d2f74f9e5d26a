//! Query rewriting and redaction: `proxy::request::{upstream_query, query_value}`,
//! `redact::{redact_query, redact_uri}`, plus `is_api_path` and `request_id` from the same
//! request-reading code.
//!
//! Input: a raw query (the bytes up to the first NUL; the seeds are real queries), then
//! structured extras read with `arbitrary` from the bytes after the NUL: whether a real token is
//! injected, `allow_debug`, a path, and generated pairs whose secret parameters
//! (`access_token`, `corpsecret`, `key`, in any letter case and percent-encoding) carry `MARKER`.
//!
//! Invariants (the functions' documented promises):
//! - redaction: `MARKER` never survives `redact_query`/`redact_uri`; every pair whose decoded
//!   name is a secret name (any case) becomes `name=***`, every other pair is kept byte for
//!   byte, in order; `redact_uri` masks the query part only;
//! - `upstream_query` with a token: the output has exactly one `access_token`, whose decoded
//!   value is the token; no `debug` unless allowed; every other pair is kept byte for byte, in
//!   order; the token never survives redaction of the rewritten query;
//! - `is_api_path` accepts no traversal, doubled slash, percent-encoding or backslash;
//! - `request_id` is always a usable header value (1 to 128 of `[A-Za-z0-9._:-]`).

use std::borrow::Cow;

use arbitrary::{Arbitrary, Unstructured};
use wecom_sidecar::proxy::request::{is_api_path, query_value, request_id, upstream_query};
use wecom_sidecar::redact::{redact_query, redact_uri, MASK, SECRET_PARAMS};

/// The value injected into generated secret parameters.
const MARKER: &str = "MaRkEr8sEcReT3vAlUe7";
/// The start of the "real" token `upstream_query` injects.
const TOKEN: &str = "ReAlToKeN5fRoMwEcOm9";

#[derive(Arbitrary, Debug, Clone, Copy)]
enum SecretName {
    AccessToken,
    Corpsecret,
    Key,
}

/// How a parameter name is spelled: bit i of `upper` upper-cases letter i, bit i of `encode`
/// percent-encodes byte i (lower-case hex when `lower_hex`).
#[derive(Arbitrary, Debug, Clone, Copy)]
struct Spelling {
    upper: u32,
    encode: u32,
    lower_hex: bool,
}

#[derive(Arbitrary, Debug)]
enum Part {
    /// `name=<prefix>MARKER<suffix>` for a secret name.
    Secret {
        name: SecretName,
        spelling: Spelling,
        prefix: String,
        suffix: String,
    },
    /// `debug=<value>`, possibly respelled.
    Debug { spelling: Spelling, value: String },
    /// `name=value`, or `name` alone.
    Plain { name: String, value: Option<String> },
    /// Anything, as is (may be empty, hold `=`s, `%`s, ...).
    Raw(String),
}

#[derive(Arbitrary, Debug, Default)]
struct Extras {
    no_token: bool,
    allow_debug: bool,
    token_tail: String,
    path: String,
    parts: Vec<Part>,
    x_request_id: Option<Vec<u8>>,
    traceparent: Option<Vec<u8>>,
}

/// Checks one input against the invariants above; panics when one does not hold.
pub fn check(data: &[u8]) {
    let (raw, rest) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let raw = clean(&String::from_utf8_lossy(raw), "");
    let extras = Extras::arbitrary(&mut Unstructured::new(rest)).unwrap_or_default();

    // The raw query alone, as the app sent it.
    check_redaction(&raw);
    check_rewrite(&raw, Some("t"), false);
    check_rewrite(&raw, None, true);
    check_uri(&raw);

    // The raw query with generated pairs carrying the marker.
    let mut query = raw.clone();
    let mut secrets = 0;
    for (i, part) in extras.parts.iter().enumerate() {
        if i > 0 || !raw.is_empty() {
            query.push('&');
        }
        if matches!(part, Part::Secret { .. }) {
            secrets += 1;
        }
        render(part, &mut query);
    }
    let redacted = check_redaction(&query);
    if show() {
        eprintln!("query:    {query:?}\nredacted: {redacted:?}\nextras:   {extras:?}");
    }
    assert!(
        !redacted.contains(MARKER),
        "secret survived redaction: {query:?} -> {redacted:?}"
    );
    if secrets > 0 {
        assert!(query.contains(MARKER));
    }

    let path = clean(&extras.path, "?");
    let uri = format!("{path}?{query}");
    let r = redact_uri(&uri);
    assert_eq!(r, format!("{path}?{redacted}"), "redact_uri({uri:?})");
    assert!(!r.contains(MARKER));
    assert_eq!(
        redact_uri(&path),
        path.as_str(),
        "a URI without query changed"
    );
    check_uri(&uri);

    let token = format!("{TOKEN}{}", extras.token_tail);
    let token = (!extras.no_token).then_some(token.as_str());
    let out = check_rewrite(&query, token, extras.allow_debug);
    if token.is_some() {
        let logged = redact_query(&out);
        assert!(
            !logged.contains(TOKEN),
            "the real token survived redaction: {out:?} -> {logged:?}"
        );
    }

    check_path(&extras.path);
    check_path(&raw);
    check_request_id(
        extras.x_request_id.as_deref(),
        extras.traceparent.as_deref(),
    );
    check_request_id(Some(raw.as_bytes()), Some(raw.as_bytes()));
}

/// `FUZZ_SHOW=1`: print each query (to look at seeds or a corpus, e.g. with `-runs=0`).
fn show() -> bool {
    static SHOW: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SHOW.get_or_init(|| std::env::var_os("FUZZ_SHOW").is_some())
}

/// `s` without the markers (so only generated secrets carry them) and without `drop` chars.
fn clean(s: &str, drop: &str) -> String {
    let mut s: String = s.chars().filter(|c| !drop.contains(*c)).collect();
    while s.contains(MARKER) || s.contains(TOKEN) {
        s = s.replace(MARKER, "").replace(TOKEN, "");
    }
    s
}

fn spell(name: &str, sp: Spelling, out: &mut String) {
    for (i, b) in name.bytes().enumerate() {
        let bit = 1u32 << (i % 32);
        let b = if sp.upper & bit != 0 {
            b.to_ascii_uppercase()
        } else {
            b
        };
        if sp.encode & bit != 0 {
            if sp.lower_hex {
                out.push_str(&format!("%{b:02x}"));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(b as char);
        }
    }
}

fn render(part: &Part, out: &mut String) {
    match part {
        Part::Secret {
            name,
            spelling,
            prefix,
            suffix,
        } => {
            let name = match name {
                SecretName::AccessToken => "access_token",
                SecretName::Corpsecret => "corpsecret",
                SecretName::Key => "key",
            };
            spell(name, *spelling, out);
            out.push('=');
            out.push_str(&clean(prefix, "&"));
            out.push_str(MARKER);
            out.push_str(&clean(suffix, "&"));
        }
        Part::Debug { spelling, value } => {
            spell("debug", *spelling, out);
            out.push('=');
            out.push_str(&clean(value, "&"));
        }
        Part::Plain { name, value } => {
            out.push_str(&clean(name, "&="));
            if let Some(v) = value {
                out.push('=');
                out.push_str(&clean(v, "&"));
            }
        }
        Part::Raw(s) => out.push_str(&clean(s, "&")),
    }
}

/// The decoded name of one `&`-separated pair (`None` for an empty pair).
fn decoded_name(pair: &str) -> Option<Cow<'_, str>> {
    form_urlencoded::parse(pair.as_bytes())
        .next()
        .map(|(k, _)| k)
}

fn is_secret(name: &str) -> bool {
    SECRET_PARAMS.iter().any(|s| s.eq_ignore_ascii_case(name))
}

/// Redaction of `query` against an independent reading of it; returns the redacted query.
fn check_redaction(query: &str) -> String {
    let redacted = redact_query(query);
    let pairs: Vec<&str> = query.split('&').collect();
    let got: Vec<&str> = redacted.split('&').collect();
    assert_eq!(
        pairs.len(),
        got.len(),
        "pair count changed: {query:?} -> {redacted:?}"
    );
    for (pair, got) in pairs.iter().zip(&got) {
        if decoded_name(pair).is_some_and(|n| is_secret(&n)) {
            let raw_name = pair.split('=').next().unwrap_or("");
            assert_eq!(
                *got,
                format!("{raw_name}={MASK}"),
                "secret pair {pair:?} not masked in {query:?}"
            );
        } else {
            assert_eq!(got, pair, "non-secret pair changed in {query:?}");
        }
    }
    for (k, v) in form_urlencoded::parse(redacted.as_bytes()) {
        if is_secret(&k) {
            assert_eq!(v, MASK, "{k}={v} left in {redacted:?}");
        }
    }
    for name in SECRET_PARAMS {
        if let Some(v) = query_value(&redacted, name) {
            assert_eq!(v, MASK, "query_value({redacted:?}, {name})");
        }
    }
    redacted.into_owned()
}

/// `redact_uri` on anything: only what follows the first `?` is a query.
fn check_uri(uri: &str) {
    let r = redact_uri(uri);
    match uri.split_once('?') {
        None => assert_eq!(r, uri),
        Some((path, q)) => assert_eq!(r, format!("{path}?{}", redact_query(q))),
    }
}

/// `upstream_query` against an independent reading of `query`; returns the rewritten query.
fn check_rewrite(query: &str, token: Option<&str>, allow_debug: bool) -> String {
    let out = upstream_query(query, token, allow_debug);
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let name = decoded_name(p).unwrap_or_default();
            !(token.is_some() && name == "access_token") && (allow_debug || name != "debug")
        })
        .collect();
    let mut expected = kept.join("&");
    if let Some(t) = token {
        if !expected.is_empty() {
            expected.push('&');
        }
        expected.push_str("access_token=");
        expected.extend(form_urlencoded::byte_serialize(t.as_bytes()));
    }
    assert_eq!(
        out, expected,
        "upstream_query({query:?}, {token:?}, {allow_debug})"
    );

    let pairs: Vec<(Cow<str>, Cow<str>)> = form_urlencoded::parse(out.as_bytes()).collect();
    if let Some(t) = token {
        let tokens: Vec<&str> = pairs
            .iter()
            .filter(|(k, _)| k == "access_token")
            .map(|(_, v)| v.as_ref())
            .collect();
        assert_eq!(tokens, [t], "access_token in {out:?}");
        assert_eq!(query_value(&out, "access_token").as_deref(), Some(t));
    }
    if !allow_debug {
        assert!(
            pairs.iter().all(|(k, _)| k != "debug"),
            "debug left in {out:?}"
        );
    }
    out
}

fn check_path(path: &str) {
    if is_api_path(path) {
        assert!(path.starts_with('/'), "{path:?}");
        assert!(path.len() > 1, "{path:?}");
        assert!(
            path.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_-.".contains(&b)),
            "{path:?}"
        );
        assert!(!path.contains("//"), "{path:?}");
        let segments: Vec<&str> = path[1..].split('/').collect();
        for (i, seg) in segments.iter().enumerate() {
            let trailing = i + 1 == segments.len() && i > 0 && seg.is_empty();
            assert!(
                trailing || !matches!(*seg, "" | "." | ".."),
                "{path:?} has segment {seg:?}"
            );
        }
    }
}

fn check_request_id(x_request_id: Option<&[u8]>, traceparent: Option<&[u8]>) {
    // An app's id arrives as a header value; bytes no header can carry never get that far.
    let app_id = x_request_id.and_then(|v| http::HeaderValue::from_bytes(v).ok());
    let id = request_id(app_id.as_ref(), traceparent);
    let id = id.as_bytes();
    assert!(
        !id.is_empty()
            && id.len() <= 128
            && id
                .iter()
                .copied()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)),
        "request id {id:?} from {x_request_id:?} / {traceparent:?}"
    );
}
