//! Reading what the app asked for: its method and path, its query, which app it speaks for, and
//! the local answer to `gettoken`. Also the rewritten query the upstream gets (real token in,
//! `debug=1` out).

use std::borrow::Cow;

use super::refusal::Refusal;
use crate::config::Client;
use crate::state::Runtime;
use crate::token::AppTokens;
use crate::wecom::answer::{LocalAnswer, Reason};
use crate::wecom::errcode;

/// Header naming the app a call speaks for.
pub const APP_HEADER: &str = "x-wecom-app";
/// [`APP_HEADER`] as a name: a header map finds it without parsing the name first.
pub const APP_HEADER_NAME: http::HeaderName = http::HeaderName::from_static(APP_HEADER);
/// The app's own id for the call, kept as the request id when usable.
pub const REQUEST_ID_HEADER: http::HeaderName = http::HeaderName::from_static("x-request-id");
/// W3C trace context, whose trace id becomes the request id otherwise.
pub const TRACEPARENT_HEADER: http::HeaderName = http::HeaderName::from_static("traceparent");
/// Lifetime the local gettoken answer announces (the placeholder never really expires).
pub const PLACEHOLDER_EXPIRES_IN: u64 = 7200;

/// The request headers the pipeline reads, found in one pass over the app's head: each is the
/// first value of its name, as `HeaderMap::get` gives it. Five hashed lookups cost about 900
/// instructions a call; a look at each of the few headers a call carries costs a fraction.
#[derive(Default)]
pub struct Noted {
    /// `X-Request-Id`.
    pub request_id: Option<http::HeaderValue>,
    /// `traceparent`.
    pub traceparent: Option<http::HeaderValue>,
    /// [`APP_HEADER`].
    pub app: Option<http::HeaderValue>,
    /// `Content-Length`.
    pub content_length: Option<http::HeaderValue>,
    /// `Expect`.
    pub expect: Option<http::HeaderValue>,
}

impl Noted {
    pub fn of(headers: &http::HeaderMap) -> Self {
        use http::header::{CONTENT_LENGTH, EXPECT};
        let mut noted = Noted::default();
        for (name, value) in headers {
            let slot = if name == CONTENT_LENGTH {
                &mut noted.content_length
            } else if name == EXPECT {
                &mut noted.expect
            } else if name == REQUEST_ID_HEADER {
                &mut noted.request_id
            } else if name == TRACEPARENT_HEADER {
                &mut noted.traceparent
            } else if name == APP_HEADER_NAME {
                &mut noted.app
            } else {
                continue;
            };
            if slot.is_none() {
                *slot = Some(value.clone());
            }
        }
        noted
    }

    /// The body length the app declared, when it declared a number.
    pub fn declared_length(&self) -> Option<u64> {
        self.content_length
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
    }

    /// Whether the app waits to be invited to send its body (`Expect: 100-continue`).
    pub fn expects_continue(&self) -> bool {
        self.expect
            .as_ref()
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
    }

    /// The [`APP_HEADER`] value's bytes, if the app sent one.
    pub fn app(&self) -> Option<&[u8]> {
        self.app.as_ref().map(|v| v.as_bytes())
    }
}

/// First value of query parameter `name`, percent-decoded (as `form_urlencoded` reads a
/// query). A pair is decoded only when its name may be `name`: a name with neither `%` nor
/// `+` reads as itself, so the others are passed over by a comparison.
///
/// Split as bytes (`&` and `=` are ASCII, so each piece is still UTF-8 where it matters): a
/// `str` split by a `char` set up a searcher per piece, ~120 instructions a short query.
pub fn query_value<'q>(query: &'q str, name: &str) -> Option<Cow<'q, str>> {
    query.as_bytes().split(|&b| b == b'&').find_map(|pair| {
        let raw = pair.split(|&b| b == b'=').next().unwrap_or_default();
        if plain(raw) && raw != name.as_bytes() {
            return None;
        }
        let (k, v) = form_urlencoded::parse(pair).next()?;
        (k == name).then_some(v)
    })
}

/// Whether `part` of a query reads as itself: no `%` escapes, no `+` for a space.
fn plain(part: &[u8]) -> bool {
    !part.iter().any(|&b| b == b'%' || b == b'+')
}

/// The app a call speaks for: `X-WeCom-App`, else an `access_token` equal to an app name,
/// else the default app.
pub fn choose_app<'r>(
    rt: &'r Runtime,
    header: Option<&[u8]>,
    query: &str,
) -> Result<&'r AppTokens, Refusal> {
    if let Some(value) = header {
        let name = std::str::from_utf8(value).unwrap_or("").trim();
        return rt
            .app(name)
            .map(|a| a.as_ref())
            .ok_or_else(|| unknown_app(rt, "the X-WeCom-App header names no configured app"));
    }
    if let Some(token) = query_value(query, "access_token") {
        if let Some(app) = rt.app(&token) {
            return Ok(app);
        }
    }
    rt.default_app().map(|a| a.as_ref()).ok_or_else(|| {
        unknown_app(
            rt,
            "the call names no app (send X-WeCom-App, or the app name as access_token) and no app has default: true",
        )
    })
}

fn unknown_app(rt: &Runtime, why: &'static str) -> Refusal {
    let names: Vec<&str> = rt.apps.iter().map(|a| a.app.name.as_str()).collect();
    Refusal::UnknownApp {
        why,
        configured: names.join(", "),
    }
}

/// The local answer to `GET /cgi-bin/gettoken`: the app's name stands in for its token, so
/// unmodified SDKs work and real tokens never leave the sidecar.
/// With `client` (a signed call), only apps that client may use are answered.
pub fn answer_gettoken(
    rt: &Runtime,
    query: &str,
    client: Option<&Client>,
) -> Result<LocalAnswer, Refusal> {
    let corpid = query_value(query, "corpid").unwrap_or_default();
    let secret = query_value(query, "corpsecret").unwrap_or_default();
    let in_corp: Vec<&AppTokens> = rt
        .apps
        .iter()
        .map(|a| a.as_ref())
        .filter(|a| a.app.corp_id == corpid)
        .collect();
    if in_corp.is_empty() {
        return Err(Refusal::GettokenCorpid);
    }
    let app = in_corp
        .into_iter()
        .find(|a| {
            a.app.name.as_str() == secret
                || constant_time_eq(a.app.secret.expose().as_bytes(), secret.as_bytes())
        })
        .ok_or(Refusal::GettokenCredential)?;
    if client.is_some_and(|c| !c.may_use(&app.app.name)) {
        return Err(Refusal::GettokenForbidden);
    }
    let mut extra = serde_json::Map::new();
    extra.insert("access_token".into(), app.app.name.as_str().into());
    extra.insert("expires_in".into(), PLACEHOLDER_EXPIRES_IN.into());
    let mut a = LocalAnswer::new(200, Reason::Gettoken, errcode::OK, "ok");
    a.extra = Some(extra);
    Ok(a)
}

/// Lets a call through when its method is one a WeCom API takes: GET or POST.
pub(super) fn api_method(method: &http::Method) -> Result<(), Refusal> {
    if method == http::Method::GET || method == http::Method::POST {
        Ok(())
    } else {
        Err(Refusal::Method)
    }
}

/// Lets a call through when its path is one a WeCom API can have (`is_api_path`).
pub(super) fn api_path(path: &str) -> Result<(), Refusal> {
    if is_api_path(path) {
        Ok(())
    } else {
        Err(Refusal::OddPath)
    }
}

/// True for a path a WeCom API can have: `/`-separated segments of letters, digits, `_`, `-`
/// and `.`, none empty (but a trailing `/`), `.` or `..`. Anything else (traversal, doubled
/// slashes, percent-encoding that an upstream might decode into either, backslashes) is refused
/// before it is routed on or logged as an API.
pub fn is_api_path(path: &str) -> bool {
    let Some(rest) = path.as_bytes().strip_prefix(b"/") else {
        return false;
    };
    let rest = rest.strip_suffix(b"/").unwrap_or(rest);
    // One pass: every byte allowed, and no segment empty, `.` or `..`.
    let dots_only = |len: usize, dots: usize| len == dots && len <= 2;
    let (mut len, mut dots) = (0usize, 0usize);
    for &b in rest {
        match b {
            b'/' if len == 0 || dots_only(len, dots) => return false,
            b'/' => (len, dots) = (0, 0),
            b'.' => (len, dots) = (len + 1, dots + 1),
            b'_' | b'-' => len += 1,
            b if b.is_ascii_alphanumeric() => len += 1,
            _ => return false,
        }
    }
    len != 0 && !dots_only(len, dots)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The query the upstream gets: the app's `access_token` removed (and the real one appended
/// when `token` is given), `debug=1` removed unless allowed. Other parameters keep their order
/// and their encoding byte for byte.
pub fn upstream_query(query: &str, token: Option<&str>, allow_debug: bool) -> String {
    let mut out = String::with_capacity(query.len() + token.map_or(0, |t| t.len() + 14));
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let name = pair.split('=').next().unwrap_or("");
        let decoded = (!plain(name.as_bytes()))
            .then(|| {
                form_urlencoded::parse(name.as_bytes())
                    .next()
                    .map(|(k, _)| k)
            })
            .flatten();
        let name = decoded.as_deref().unwrap_or(name);
        if token.is_some() && name == "access_token" {
            continue;
        }
        if name == "debug" && !allow_debug {
            continue;
        }
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(pair);
    }
    if let Some(token) = token {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str("access_token=");
        out.extend(form_urlencoded::byte_serialize(token.as_bytes()));
    }
    out
}

/// A request id from `X-Request-Id`, the trace id of a W3C `traceparent`, or a new one.
///
/// Held as a header value: the app's own id is shared with its request head (no copy), and a
/// new one is written once, straight into the answer's `X-Request-Id`. Every id is visible
/// ASCII (`RequestCtx::request_id_str` reads it as text).
pub fn request_id(
    x_request_id: Option<&http::HeaderValue>,
    traceparent: Option<&[u8]>,
) -> http::HeaderValue {
    let usable = |v: &[u8]| {
        !v.is_empty()
            && v.len() <= 128
            && v.iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
    };
    if let Some(v) = x_request_id.filter(|v| usable(v.as_bytes())) {
        return v.clone();
    }
    if let Some(tp) = traceparent {
        let mut parts = tp.split(|&b| b == b'-');
        let id = parts.nth(1);
        if let Some(id) = id.filter(|id| id.len() == 32 && usable(id) && parts.count() == 2) {
            return ascii_value(id);
        }
    }
    let mut hex = [0u8; 16];
    let n = rand::random::<u64>();
    for (i, digit) in hex.iter_mut().enumerate() {
        *digit = b"0123456789abcdef"[((n >> (60 - 4 * i)) & 0xf) as usize];
    }
    ascii_value(&hex)
}

/// A header value of bytes already checked to be visible ASCII.
fn ascii_value(bytes: &[u8]) -> http::HeaderValue {
    http::HeaderValue::from_bytes(bytes).unwrap_or(http::HeaderValue::from_static("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A head as pingora's parser leaves it: names as the app wrote them, in order.
    fn head(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut m = http::HeaderMap::new();
        for (n, v) in pairs {
            m.append(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn noted_headers_are_each_name_s_first_value_as_get_gives_it() {
        let m = head(&[
            ("Host", "h"),
            ("X-Request-Id", "r-1"),
            ("Content-Length", "12"),
            ("x-wecom-app", "crm"),
            ("TraceParent", "00-t-s-01"),
            ("x-request-id", "r-2"),
            ("Expect", "100-Continue"),
            ("X-WeCom-App", "other"),
            ("content-length", "13"),
            ("x-other", "o"),
        ]);
        let noted = Noted::of(&m);
        let same = |got: &Option<http::HeaderValue>, name: &str| {
            assert_eq!(got.as_ref(), m.get(name), "{name}");
            assert!(got.is_some(), "{name}");
        };
        same(&noted.request_id, "x-request-id");
        same(&noted.traceparent, "traceparent");
        same(&noted.app, APP_HEADER);
        same(&noted.content_length, "content-length");
        same(&noted.expect, "expect");
        assert_eq!(noted.app(), Some(&b"crm"[..]));
        assert_eq!(noted.declared_length(), Some(12));
        assert!(noted.expects_continue());
    }

    #[test]
    fn a_head_without_them_notes_nothing() {
        let noted = Noted::of(&head(&[
            ("host", "h"),
            ("expect", "nothing"),
            ("content-length", "x1"),
        ]));
        assert!(noted.request_id.is_none() && noted.traceparent.is_none() && noted.app().is_none());
        assert_eq!(noted.declared_length(), None, "not a number: none declared");
        assert!(!noted.expects_continue());
        assert!(Noted::of(&http::HeaderMap::new()).expect.is_none());
    }

    #[test]
    fn api_paths_are_plain() {
        for ok in [
            "/cgi-bin/user/get",
            "/cgi-bin/gettoken",
            "/cgi-bin/media/get/jssdk",
            "/cgi-bin/a.b/",
        ] {
            assert!(is_api_path(ok), "{ok}");
        }
        for bad in [
            "",
            "cgi-bin/user/get",
            "/cgi-bin/../admin",
            "/cgi-bin/./user/get",
            "/cgi-bin/user/..",
            "/cgi-bin//user/get",
            "/cgi-bin/%2e%2e/secret",
            "/cgi-bin/user%2Fget",
            "/cgi-bin\\user",
            "/cgi-bin/user/get\r\nX: y",
            "/cgi-bin/用户",
            "/",
        ] {
            assert!(!is_api_path(bad), "{bad:?}");
        }
    }

    /// The one-pass check agrees with the rule read plainly: allowed bytes only, one trailing
    /// slash dropped, then no segment empty, `.` or `..`.
    #[test]
    fn api_path_check_matches_its_rule() {
        fn by_the_rule(path: &str) -> bool {
            let Some(rest) = path.strip_prefix('/') else {
                return false;
            };
            let allowed =
                |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'.');
            if !rest.bytes().all(allowed) {
                return false;
            }
            let rest = rest.strip_suffix('/').unwrap_or(rest);
            rest.split('/').all(|seg| !matches!(seg, "" | "." | ".."))
        }
        use proptest::prelude::*;
        let config = ProptestConfig {
            cases: 4096,
            failure_persistence: None,
            ..ProptestConfig::default()
        };
        proptest!(config, |(path in "[/a._%-]{0,12}")| {
            prop_assert_eq!(is_api_path(&path), by_the_rule(&path), "{:?}", path);
        });
        for path in [
            "/...", "/a/...", "/.a", "/a./", "/a//", "//", "/./", "/../", "/a/.",
        ] {
            assert_eq!(is_api_path(path), by_the_rule(path), "{path:?}");
        }
    }

    #[test]
    fn rewrites_the_query() {
        assert_eq!(
            upstream_query(
                "access_token=hr-bot&userid=zhang%20san&debug=1",
                Some("T/1+"),
                false
            ),
            "userid=zhang%20san&access_token=T%2F1%2B"
        );
        assert_eq!(upstream_query("debug=1&x=1", None, true), "debug=1&x=1");
        assert_eq!(upstream_query("", Some("t"), false), "access_token=t");
        assert_eq!(upstream_query("key=robot&x=", None, false), "key=robot&x=");
        assert_eq!(
            upstream_query("access%5Ftoken=abc&a=1", Some("t"), false),
            "a=1&access_token=t"
        );
    }

    #[test]
    fn request_ids() {
        let v = |s: &'static str| http::HeaderValue::from_static(s);
        let app_id = v("abc-123");
        let kept = request_id(Some(&app_id), None);
        assert_eq!(kept, "abc-123");
        assert_eq!(
            kept.as_bytes().as_ptr(),
            app_id.as_bytes().as_ptr(),
            "copied"
        );
        let trace = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            request_id(None, Some(trace)),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        // An app id it cannot use (a space, too long), a traceparent of another shape: new.
        let long = http::HeaderValue::from_str(&"a".repeat(129)).unwrap();
        for (id, tp) in [
            (Some(&v("two words")), None),
            (Some(&long), None),
            (
                None,
                Some(&b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"[..]),
            ),
            (
                None,
                Some(&b"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01"[..]),
            ),
            (
                None,
                Some(&b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f0-67aa-01"[..]),
            ),
        ] {
            let new = request_id(id, tp);
            let text = new.to_str().unwrap();
            assert_eq!(text.len(), 16, "{text}");
            assert!(text
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        }
        // New ids differ, and use every digit place.
        let ids: std::collections::HashSet<_> = (0..64)
            .map(|_| request_id(None, None).to_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids.len(), 64);
        assert!((0..16).all(|i| ids.iter().any(|id| id.as_bytes()[i] != b'0')));
    }

    #[test]
    fn only_get_and_post_on_plain_paths_pass() {
        assert_eq!(api_method(&http::Method::GET), Ok(()));
        assert_eq!(api_method(&http::Method::POST), Ok(()));
        for m in [
            http::Method::PUT,
            http::Method::DELETE,
            http::Method::OPTIONS,
        ] {
            assert_eq!(api_method(&m), Err(Refusal::Method), "{m}");
        }
        assert_eq!(api_path("/cgi-bin/user/get"), Ok(()));
        assert_eq!(api_path("/cgi-bin/../admin"), Err(Refusal::OddPath));
    }

    #[test]
    fn a_piece_is_plain_without_escapes_or_plus() {
        assert!(plain(b"access_token") && plain(b"") && plain(b"a=b"));
        assert!(!plain(b"a%62") && !plain(b"a+b") && !plain(b"%") && !plain(b"+"));
    }

    #[test]
    fn query_values_decode() {
        assert_eq!(
            query_value("a=1&corpsecret=x%2By", "corpsecret").unwrap(),
            "x+y"
        );
        assert!(query_value("a=1", "b").is_none());
        // Read as form_urlencoded reads the whole query: escaped names, `+`, empty pairs,
        // a name without `=`, the first of two, bytes that are not UTF-8.
        let queries = [
            "k%65y=1&key=2",
            "a+b=x+y&key=%zz",
            "&&key&key=3",
            "ke%79=%E4%B8%AD&key=4",
            "key%=5&k%ffey=6&key==7",
            "x=1&%6B%65%79=8",
            "",
        ];
        for q in queries {
            for name in ["key", "a b", "x", "k\u{fffd}ey", ""] {
                let want = form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v);
                assert_eq!(query_value(q, name), want, "{name:?} in {q:?}");
            }
        }
    }
}
