//! Secrets out of everything an upstream says, and out of query strings in logs.
//!
//! An upstream can quote what it was sent: a `302` whose `Location` carries the call's URL, a
//! body or header that echoes it, a `gettoken` errmsg that quotes its `corpsecret`. Passed on,
//! that hands the app (and whoever it follows a redirect to) the real token, or puts a secret
//! in the log, `/admin/status` and a local answer. [`Redactor::redact`] is the one function
//! that takes them out: every occurrence of a known secret is replaced, leftmost-longest, by
//! what stands for it: a token by its app's name (so a redirected or echoed URL still works
//! through the sidecar), any other secret by [`MASK`].
//!
//! What is known ([`known`]) is process-wide: the app secrets and client keys of the config in
//! force and of the one before it ([`learn_config`]), and the tokens the sidecar fetched or
//! read from its fleet until they expire, newest [`MAX_TOKENS`] ([`learn_token`]). A call adds
//! its own extras ([`CallRedaction`]: a robot's `key`, the token it injected). Each secret is
//! searched for in every form [`Pattern::forms`] lists. Values shorter than [`MIN_SECRET_LEN`]
//! are not searched for: they are not secrets, and masking them would mangle answers.
//!
//! Cost on the call path: all known values are found in one pass (Aho-Corasick, built when a
//! secret or token is learnt, never per call), plus one `memmem` pass per extra; nothing is
//! copied unless something was found.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use aho_corasick::{AhoCorasick, MatchKind};
use arc_swap::ArcSwap;

/// Query parameter names whose values are secrets.
pub const SECRET_PARAMS: &[&str] = &["access_token", "corpsecret", "key"];

/// What a masked value is replaced with.
pub const MASK: &str = "***";

/// Shorter values are not searched for in upstream text (real secrets are 32 characters or
/// more: WeCom secrets 43, client keys at least 32, robot keys 36, tokens about 100).
pub const MIN_SECRET_LEN: usize = 8;

/// How many unexpired tokens are remembered (newest kept); normally one per app and realm.
pub const MAX_TOKENS: usize = 256;

/// Passes over a text before giving up on it: a replacement can, with contrived secrets,
/// complete another secret with the text around it; each pass takes those out too.
const MAX_PASSES: usize = 4;

/// How deep JSON held in JSON strings is read (a token in an escaped string in a string...).
const MAX_JSON_DEPTH: u8 = 4;

/// Whether the quote that follows `before` is escaped: preceded by an odd run of backslashes.
fn escaped_quote(before: &[u8]) -> bool {
    before.iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1
}

/// One value to take out and what stands in its place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    needle: Box<[u8]>,
    with: Arc<str>,
}

impl Pattern {
    /// The bytes searched for.
    pub fn needle(&self) -> &[u8] {
        &self.needle
    }

    /// What stands in their place.
    pub fn with(&self) -> &str {
        &self.with
    }

    /// The forms `secret` can take in text (as written, percent-encoded, JSON-escaped, also
    /// with `\/` and as Go writes JSON, `&` as `\u0026`), each replaced by `with`; none when
    /// `secret` is shorter than [`MIN_SECRET_LEN`].
    pub fn forms(secret: &str, with: &Arc<str>) -> Vec<Pattern> {
        if secret.len() < MIN_SECRET_LEN {
            return Vec::new();
        }
        let mut forms: Vec<Vec<u8>> = vec![secret.as_bytes().to_vec()];
        let form: String = form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        forms.push(form.into_bytes());
        forms.push(percent_encoded(secret, false).into_bytes());
        forms.push(percent_encoded(secret, true).into_bytes());
        if let Ok(json) = serde_json::to_string(secret) {
            let inner = &json[1..json.len() - 1];
            forms.push(inner.as_bytes().to_vec());
            forms.push(inner.replace('/', "\\/").into_bytes());
            // As Go's encoding/json writes it (HTML-safe).
            let go = inner
                .replace('<', "\\u003c")
                .replace('>', "\\u003e")
                .replace('&', "\\u0026");
            forms.push(go.into_bytes());
        }
        let mut out: Vec<Pattern> = Vec::with_capacity(forms.len());
        for f in forms {
            if !out.iter().any(|p| *p.needle == *f) {
                out.push(Pattern {
                    needle: f.into_boxed_slice(),
                    with: with.clone(),
                });
            }
        }
        out
    }
}

/// Every byte but RFC 3986's unreserved ones as `%XX`.
fn percent_encoded(s: &str, lower: bool) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else if lower {
            out.push_str(&format!("%{b:02x}"));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A set of values to take out of text, searched for together.
#[derive(Default)]
pub struct Redactor {
    patterns: Vec<Pattern>,
    /// All `patterns` at once; `None` when there are none (or the automaton could not be
    /// built, then each is searched for on its own).
    finder: Option<AhoCorasick>,
}

impl Redactor {
    /// A redactor for `patterns` (see [`Pattern::forms`]); of patterns with the same needle,
    /// the first is kept.
    pub fn new(all: Vec<Pattern>) -> Redactor {
        let mut patterns: Vec<Pattern> = Vec::with_capacity(all.len());
        for p in all {
            if !p.needle.is_empty() && !patterns.iter().any(|u| u.needle == p.needle) {
                patterns.push(p);
            }
        }
        let finder = if patterns.is_empty() {
            None
        } else {
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(patterns.iter().map(|p| &p.needle))
                .ok()
        };
        Redactor { patterns, finder }
    }

    /// The patterns held (for tests and the fuzz target).
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Whether `value` is among the values held (as one of their forms).
    pub fn holds(&self, value: &[u8]) -> bool {
        self.patterns.iter().any(|p| *p.needle == *value)
    }

    /// The next match at or after `from`, among the held patterns and `extra`: leftmost, and
    /// the longest of those starting there. `(start, end, replacement)`.
    fn next<'p>(
        &'p self,
        text: &[u8],
        from: usize,
        extra: &'p [Pattern],
    ) -> Option<(usize, usize, &'p str)> {
        let mut best: Option<(usize, usize, &str)> = None;
        let mut consider = |start: usize, end: usize, with: &'p str| {
            let better = match best {
                None => true,
                Some((s, e, _)) => start < s || (start == s && end > e),
            };
            if better {
                best = Some((start, end, with));
            }
        };
        match &self.finder {
            Some(ac) => {
                let input = aho_corasick::Input::new(text).span(from..text.len());
                if let Some(m) = ac.find(input) {
                    consider(
                        m.start(),
                        m.end(),
                        &self.patterns[m.pattern().as_usize()].with,
                    );
                }
            }
            None => {
                for p in &self.patterns {
                    if let Some(i) = memchr::memmem::find(&text[from..], &p.needle) {
                        consider(from + i, from + i + p.needle.len(), &p.with);
                    }
                }
            }
        }
        for p in extra {
            if p.needle.is_empty() {
                continue;
            }
            if let Some(i) = memchr::memmem::find(&text[from..], &p.needle) {
                consider(from + i, from + i + p.needle.len(), &p.with);
            }
        }
        best
    }

    /// One left-to-right pass; `None` when nothing matched.
    fn pass(&self, text: &[u8], extra: &[Pattern]) -> Option<Vec<u8>> {
        let (start, end, with) = self.next(text, 0, extra)?;
        let mut out = Vec::with_capacity(text.len());
        out.extend_from_slice(&text[..start]);
        out.extend_from_slice(with.as_bytes());
        let mut at = end;
        while let Some((start, end, with)) = self.next(text, at, extra) {
            out.extend_from_slice(&text[at..start]);
            out.extend_from_slice(with.as_bytes());
            at = end;
        }
        out.extend_from_slice(&text[at..]);
        Some(out)
    }

    /// `text` with every held value and every `extra` replaced, leftmost-longest, by what
    /// stands for it; borrowed (not copied) when it holds none. The result never holds one:
    /// text that still does after [`MAX_PASSES`] passes is replaced by [`MASK`] whole.
    ///
    /// A JSON string literal with escapes in it (`\u0061`, `\/`, ...) is also read as a JSON
    /// parser reads it: when what it says holds a secret, the literal is written anew from the
    /// redacted text (see [`Redactor::redact_json_strings`]).
    pub fn redact<'t>(&self, text: &'t [u8], extra: &[Pattern]) -> Cow<'t, [u8]> {
        self.redact_nested(text, extra, MAX_JSON_DEPTH)
    }

    fn redact_nested<'t>(&self, text: &'t [u8], extra: &[Pattern], depth: u8) -> Cow<'t, [u8]> {
        let plain = self.redact_plain(text, extra);
        if depth == 0 || memchr::memchr(b'\\', &plain).is_none() {
            return plain;
        }
        match self.redact_json_strings(&plain, extra, depth - 1) {
            None => plain,
            Some(out) => Cow::Owned(out),
        }
    }

    /// `text` with each JSON string literal that holds an escape and, decoded, a secret,
    /// replaced by the literal of its redacted decoding; `None` when there is none. A quoted
    /// span that does not decode (text that is not JSON) is left as it is.
    fn redact_json_strings(&self, text: &[u8], extra: &[Pattern], depth: u8) -> Option<Vec<u8>> {
        let mut out: Option<Vec<u8>> = None;
        let mut copied = 0;
        let mut i = 0;
        while let Some(open) = memchr::memchr(b'"', &text[i..]).map(|o| i + o) {
            // The closing quote: the first one not escaped.
            let mut j = open + 1;
            while j < text.len() && (text[j] != b'"' || escaped_quote(&text[open + 1..j])) {
                j += 1;
            }
            if j >= text.len() {
                break;
            }
            let escaped = text[open + 1..j].contains(&b'\\');
            let literal = &text[open..=j];
            i = j + 1;
            if !escaped {
                continue;
            }
            let Ok(decoded) = serde_json::from_slice::<String>(literal) else {
                continue;
            };
            let Cow::Owned(redacted) = self.redact_nested(decoded.as_bytes(), extra, depth) else {
                continue;
            };
            let redacted = String::from_utf8_lossy(&redacted);
            let Ok(written) = serde_json::to_string(&*redacted) else {
                continue;
            };
            let o = out.get_or_insert_with(|| Vec::with_capacity(text.len()));
            o.extend_from_slice(&text[copied..open]);
            o.extend_from_slice(written.as_bytes());
            copied = j + 1;
        }
        let mut o = out?;
        o.extend_from_slice(&text[copied..]);
        Some(o)
    }

    fn redact_plain<'t>(&self, text: &'t [u8], extra: &[Pattern]) -> Cow<'t, [u8]> {
        let Some(mut out) = self.pass(text, extra) else {
            return Cow::Borrowed(text);
        };
        for _ in 1..MAX_PASSES {
            match self.pass(&out, extra) {
                None => return Cow::Owned(out),
                Some(again) => out = again,
            }
        }
        if self.next(&out, 0, extra).is_none() {
            Cow::Owned(out)
        } else {
            Cow::Owned(MASK.as_bytes().to_vec())
        }
    }

    /// As [`Redactor::redact`], for text.
    pub fn redact_str<'t>(&self, text: &'t str, extra: &[Pattern]) -> Cow<'t, str> {
        match self.redact(text.as_bytes(), extra) {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            // Replacements are whole UTF-8 strings put in place of whole matches of UTF-8
            // needles, so the result is UTF-8; lossy is only the belt to those braces.
            Cow::Owned(b) => Cow::Owned(
                String::from_utf8(b)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            ),
        }
    }

    /// Redacts every header value in place; a header whose name holds a secret is dropped,
    /// and so is one whose redacted value is not a valid header value. Headers holding
    /// nothing are not touched (the common case: one search per name and value, no copy).
    pub fn redact_headers(&self, headers: &mut http::HeaderMap, extra: &[Pattern]) {
        let found = |b: &[u8]| self.next(b, 0, extra).is_some();
        if !headers
            .iter()
            .any(|(n, v)| found(n.as_str().as_bytes()) || found(v.as_bytes()))
        {
            return;
        }
        // Rebuilt in order, so that a repeated header keeps its values' order.
        let old = std::mem::take(headers);
        let mut name: Option<http::HeaderName> = None;
        for (n, value) in old {
            if n.is_some() {
                name = n;
            }
            let Some(name) = name.as_ref() else { continue };
            if found(name.as_str().as_bytes()) {
                continue;
            }
            match self.redact(value.as_bytes(), extra) {
                Cow::Borrowed(_) => {
                    headers.append(name.clone(), value);
                }
                Cow::Owned(v) => {
                    if let Ok(v) = http::HeaderValue::from_bytes(&v) {
                        headers.append(name.clone(), v);
                    }
                }
            }
        }
    }
}

/// A token the sidecar holds, the app it stands for, and when it stops being one.
#[derive(Clone)]
struct KnownToken {
    value: Arc<str>,
    app: Arc<str>,
    expires_at: Instant,
}

/// What the process knows is secret.
struct Known {
    /// App secrets and client keys of the config in force, then of the one before it.
    configured: Vec<Arc<str>>,
    previous: Vec<Arc<str>>,
    /// Tokens not yet expired, oldest first.
    tokens: VecDeque<KnownToken>,
    redactor: Arc<Redactor>,
}

impl Known {
    fn build(
        configured: Vec<Arc<str>>,
        previous: Vec<Arc<str>>,
        tokens: VecDeque<KnownToken>,
    ) -> Known {
        let mask: Arc<str> = MASK.into();
        let mut patterns = Vec::new();
        // Tokens first: a token equal to a secret (never in practice) stands for its app.
        for t in tokens.iter().rev() {
            patterns.extend(Pattern::forms(&t.value, &t.app));
        }
        for s in configured.iter().chain(previous.iter()) {
            patterns.extend(Pattern::forms(s, &mask));
        }
        Known {
            configured,
            previous,
            tokens,
            redactor: Arc::new(Redactor::new(patterns)),
        }
    }
}

static KNOWN: LazyLock<ArcSwap<Known>> =
    LazyLock::new(|| ArcSwap::from_pointee(Known::build(Vec::new(), Vec::new(), VecDeque::new())));

/// Everything known to be secret now, searched for together.
pub fn known() -> Arc<Redactor> {
    KNOWN.load().redactor.clone()
}

/// The config now in force holds these secrets (app secrets, client keys); those of the config
/// before stay known too, for the calls still running on it.
pub fn learn_config<'a>(secrets: impl IntoIterator<Item = &'a str>) {
    let next: Vec<Arc<str>> = secrets.into_iter().map(Arc::from).collect();
    KNOWN.rcu(|k| {
        if k.configured == next {
            return k.clone();
        }
        Arc::new(Known::build(
            next.clone(),
            k.configured.clone(),
            k.tokens.clone(),
        ))
    });
}

/// `token` is a token of app `app` until `expires_at`: until then it stands for the app's name
/// wherever an upstream quotes it. Expired tokens are forgotten (they are no longer held, and
/// every pattern kept costs a little on each answer); at most [`MAX_TOKENS`] are kept.
pub fn learn_token(app: &str, token: &str, expires_at: Instant) {
    if KNOWN.load().tokens.iter().any(|t| &*t.value == token) {
        return;
    }
    let (app, token): (Arc<str>, Arc<str>) = (app.into(), token.into());
    KNOWN.rcu(|k| {
        let now = Instant::now();
        let mut tokens: VecDeque<KnownToken> = k
            .tokens
            .iter()
            .filter(|t| t.expires_at > now && t.value != token)
            .cloned()
            .collect();
        tokens.push_back(KnownToken {
            value: token.clone(),
            app: app.clone(),
            expires_at,
        });
        while tokens.len() > MAX_TOKENS {
            tokens.pop_front();
        }
        Arc::new(Known::build(
            k.configured.clone(),
            k.previous.clone(),
            tokens,
        ))
    });
}

/// An answer body under a `Content-Encoding`: not passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoded;

/// What comes out of one call's answer: everything [`known`], the token injected into the
/// call (should it not be known yet) standing for the app's name, and the call's robot `key`.
pub struct CallRedaction {
    known: Arc<Redactor>,
    extra: Vec<Pattern>,
}

impl CallRedaction {
    /// For a call of app `app` that carried `token`, and `robot_key` (webhook calls).
    pub fn new(app_and_token: Option<(&str, &str)>, robot_key: Option<&str>) -> CallRedaction {
        let known = known();
        let mut extra = Vec::new();
        if let Some((app, token)) = app_and_token {
            if !known.holds(token.as_bytes()) {
                extra.extend(Pattern::forms(token, &Arc::from(app)));
            }
        }
        if let Some(key) = robot_key {
            extra.extend(Pattern::forms(key, &Arc::from(MASK)));
        }
        CallRedaction { known, extra }
    }

    /// A buffered answer body, redacted; the same bytes (no copy) when it holds nothing.
    /// `Err` for a body with a `Content-Encoding` (never asked for: requests go without
    /// `Accept-Encoding`): it cannot be searched, and the app would unpack what it hides.
    pub fn body(
        &self,
        body: bytes::Bytes,
        headers: &http::HeaderMap,
    ) -> Result<bytes::Bytes, Encoded> {
        let encoded = headers
            .get_all(http::header::CONTENT_ENCODING)
            .iter()
            .any(|v| !v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"identity"));
        if encoded && !body.is_empty() {
            return Err(Encoded);
        }
        Ok(match self.known.redact(&body, &self.extra) {
            Cow::Borrowed(_) => body,
            Cow::Owned(b) => bytes::Bytes::from(b),
        })
    }

    /// An answer's headers, redacted in place.
    pub fn headers(&self, headers: &mut http::HeaderMap) {
        self.known.redact_headers(headers, &self.extra);
    }
}

/// Text an upstream wrote (an errmsg, an error quoting one), with every known secret and
/// token taken out, and `extra` (e.g. the secret the request carried). For what is stored,
/// logged or answered.
pub fn upstream_text<'t>(text: &'t str, extra: &[Pattern]) -> Cow<'t, str> {
    known().redact_str(text, extra)
}

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

    fn redactor(pairs: &[(&str, &str)]) -> Redactor {
        Redactor::new(
            pairs
                .iter()
                .flat_map(|(s, w)| Pattern::forms(s, &Arc::from(*w)))
                .collect(),
        )
    }

    fn r(red: &Redactor, text: &str) -> String {
        red.redact_str(text, &[]).into_owned()
    }

    const TOKEN: &str = "7b586f21411c342f1ff091ec8903b317";
    const SECRET: &str = "s3cr3t/with+odd chars&=\"q\"";

    #[test]
    fn tokens_become_their_app_and_secrets_a_mask() {
        let red = redactor(&[(TOKEN, "hr-bot"), (SECRET, MASK)]);
        assert_eq!(
            r(
                &red,
                &format!("http://x/cgi-bin/a?access_token={TOKEN}&id=1")
            ),
            "http://x/cgi-bin/a?access_token=hr-bot&id=1"
        );
        assert_eq!(r(&red, &format!("{TOKEN}{TOKEN}")), "hr-bothr-bot");
        let encoded: String = form_urlencoded::byte_serialize(SECRET.as_bytes()).collect();
        assert_eq!(
            r(&red, &format!("corpsecret={encoded}&corpid=ww1")),
            "corpsecret=***&corpid=ww1"
        );
        assert_eq!(
            r(&red, &format!("a {} b", percent_encoded(SECRET, true))),
            "a *** b"
        );
        let json = serde_json::to_string(SECRET).unwrap();
        assert_eq!(r(&red, &format!("{{\"m\":{json}}}")), "{\"m\":\"***\"}");
        let go = json.replace('&', "\\u0026");
        assert_eq!(r(&red, &format!("{{\"m\":{go}}}")), "{\"m\":\"***\"}");
        assert_eq!(r(&red, &format!("raw {SECRET}.")), "raw ***.");
    }

    #[test]
    fn nothing_found_is_not_copied() {
        let red = redactor(&[(TOKEN, "hr-bot")]);
        let text = br#"{"errcode":0,"errmsg":"ok"}"#;
        assert!(matches!(red.redact(text, &[]), Cow::Borrowed(_)));
        assert!(matches!(
            Redactor::default().redact(text, &[]),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn extras_and_short_values() {
        let red = redactor(&[(TOKEN, "hr-bot")]);
        let key = Pattern::forms("robot-key-0123456789", &Arc::from(MASK));
        assert_eq!(
            red.redact_str("send?key=robot-key-0123456789 ok", &key),
            "send?key=*** ok"
        );
        // Too short to be a secret: left alone rather than masked everywhere.
        assert!(Pattern::forms("ok", &Arc::from(MASK)).is_empty());
    }

    #[test]
    fn json_escapes_are_read_as_a_json_parser_reads_them() {
        let red = redactor(&[("tok/en-0123456789", "hr-bot"), ("s3cret-value", MASK)]);
        let all: String = "tok/en-0123456789"
            .chars()
            .map(|c| format!("\\u{:04x}", c as u32))
            .collect();
        assert_eq!(
            r(&red, &format!(r#"{{"a":"{all}","b":"x\/y"}}"#)),
            r#"{"a":"hr-bot","b":"x\/y"}"#
        );
        // Mixed escapes, a secret inside a longer string, JSON in a JSON string.
        assert_eq!(
            r(
                &red,
                r#"{"m":"id \u0073\u0033cret-value, tok\/en-0123456789"}"#
            ),
            r#"{"m":"id ***, hr-bot"}"#
        );
        assert_eq!(
            r(&red, r#"{"inner":"{\"t\":\"\\u0074ok/en-0123456789\"}"}"#),
            r#"{"inner":"{\"t\":\"hr-bot\"}"}"#
        );
        // Escaped quotes do not end a string; broken JSON is left alone; no secret, no copy.
        assert_eq!(r(&red, r#""a\"b\u0022""#), r#""a\"b\u0022""#);
        assert_eq!(r(&red, r#""\u00zz tok""#), r#""\u00zz tok""#);
        let text = r#"{"url":"http:\/\/a\/b"}"#;
        assert!(matches!(red.redact_str(text, &[]), Cow::Borrowed(_)));
    }

    #[test]
    fn leftmost_longest_and_no_secret_is_rebuilt() {
        let red = redactor(&[("abcdefgh", "1"), ("abcdefghij", "2")]);
        assert_eq!(r(&red, "xabcdefghijx"), "x2x");
        // Taking one out completes another with the text around it: taken out as well.
        let red = redactor(&[("ZZZZZZZZ", "AAAA-"), ("AAAA-BBBB", MASK)]);
        assert_eq!(r(&red, "AAAA-ZZZZZZZZBBBB"), "AAAA-***");
    }

    #[test]
    fn headers_are_redacted_in_place_and_in_order() {
        let red = redactor(&[(TOKEN, "hr-bot")]);
        let mut h = http::HeaderMap::new();
        h.append(
            "location",
            format!("/a?access_token={TOKEN}").parse().unwrap(),
        );
        h.append("x-a", "1".parse().unwrap());
        h.append("x-a", TOKEN.parse().unwrap());
        h.append(
            http::HeaderName::from_bytes(format!("x-{TOKEN}").as_bytes()).unwrap(),
            "v".parse().unwrap(),
        );
        red.redact_headers(&mut h, &[]);
        assert_eq!(h["location"], "/a?access_token=hr-bot");
        let xa: Vec<_> = h.get_all("x-a").iter().collect();
        assert_eq!(xa, ["1", "hr-bot"]);
        assert_eq!(h.len(), 3, "the header named after the token is gone");
    }

    #[test]
    fn learnt_tokens_and_config_secrets_are_known() {
        let later = Instant::now() + std::time::Duration::from_secs(60);
        learn_token("ops-bot", "tok-learnt-in-a-test-000111222333", later);
        learn_config(["secret-learnt-in-a-test-999888"]);
        let text = "a tok-learnt-in-a-test-000111222333 b secret-learnt-in-a-test-999888";
        assert_eq!(upstream_text(text, &[]), "a ops-bot b ***");
    }

    #[test]
    fn a_call_takes_out_its_own_token_and_robot_key() {
        let token = "tok-only-this-call-knows-0123456789";
        let call = CallRedaction::new(Some(("hr-bot", token)), Some("robot-key-abcdef012345"));
        let body = bytes::Bytes::from(format!(
            r#"{{"url":"/x?access_token={token}","hook":"send?key=robot-key-abcdef012345"}}"#
        ));
        let none = http::HeaderMap::new();
        assert_eq!(
            call.body(body, &none).unwrap(),
            r#"{"url":"/x?access_token=hr-bot","hook":"send?key=***"}"#
        );
        let plain = bytes::Bytes::from_static(br#"{"errcode":0,"errmsg":"ok"}"#);
        let same = call.body(plain.clone(), &none).unwrap();
        assert_eq!(
            same.as_ptr(),
            plain.as_ptr(),
            "copied although it held nothing"
        );
        let mut gzip = http::HeaderMap::new();
        gzip.insert("content-encoding", "gzip".parse().unwrap());
        assert_eq!(call.body(plain.clone(), &gzip), Err(Encoded));
        assert!(
            call.body(bytes::Bytes::new(), &gzip).is_ok(),
            "nothing to hide"
        );
        gzip.insert("content-encoding", "Identity".parse().unwrap());
        assert!(call.body(plain, &gzip).is_ok());
    }

    #[test]
    fn expired_tokens_are_forgotten() {
        let past = Instant::now();
        learn_token("hr-bot", "tok-expired-in-a-test-44556677", past);
        let later = Instant::now() + std::time::Duration::from_secs(60);
        learn_token("hr-bot", "tok-fresh-in-a-test-8899aabbcc", later);
        let k = known();
        assert!(k.holds(b"tok-fresh-in-a-test-8899aabbcc"));
        assert!(!k.holds(b"tok-expired-in-a-test-44556677"));
    }

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
