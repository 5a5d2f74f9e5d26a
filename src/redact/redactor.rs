//! The forms a secret takes in text ([`Pattern::forms`]) and the [`Redactor`] that finds them
//! all in one pass and rewrites the text, leftmost-longest, reading JSON strings as a JSON
//! parser reads them; nothing is copied unless something was found.

use std::borrow::Cow;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};

use super::{MASK, MIN_SECRET_LEN};

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
    /// The needles that could be found in a header name as `http` holds it (visible ASCII, no
    /// upper case): searched for in each name when a raw head has cleared the values
    /// ([`Redactor::redact_headers`]). `None` when there are none, as with tokens and secrets
    /// of mixed case.
    names: Option<Box<Redactor>>,
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
        let in_names = |p: &&Pattern| {
            p.needle
                .iter()
                .all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase())
        };
        let names: Vec<Pattern> = patterns.iter().filter(in_names).cloned().collect();
        let names = (!names.is_empty()).then(|| Box::new(Redactor::searching(names)));
        Redactor {
            names,
            ..Redactor::searching(patterns)
        }
    }

    /// A redactor for `patterns`, which are distinct, without the search of header names.
    fn searching(patterns: Vec<Pattern>) -> Redactor {
        let finder = if patterns.is_empty() {
            None
        } else {
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(patterns.iter().map(|p| &p.needle))
                .ok()
        };
        Redactor {
            patterns,
            finder,
            names: None,
        }
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
    /// nothing are not touched (the common case, and no copy).
    ///
    /// `raw`: the head the headers were parsed from, when each value is a slice of it. Then
    /// one search of it clears every value at once (a needle it finds elsewhere, across two
    /// fields or in a field dropped since, only sends the headers to the search of each), and
    /// names, which `http` holds in lower case, are searched for the needles that could be in
    /// one (usually none). Without it, or with `extra` patterns, each name and value is
    /// searched on its own.
    pub fn redact_headers(
        &self,
        headers: &mut http::HeaderMap,
        extra: &[Pattern],
        raw: Option<&[u8]>,
    ) {
        let found = |b: &[u8]| self.next(b, 0, extra).is_some();
        let cleared = extra.is_empty()
            && match (&self.finder, raw) {
                (None, _) => self.patterns.is_empty(),
                (Some(finder), Some(raw)) => {
                    !finder.is_match(raw)
                        && self.names.as_ref().is_none_or(|names| {
                            !headers
                                .keys()
                                .any(|n| names.next(n.as_str().as_bytes(), 0, &[]).is_some())
                        })
                }
                (Some(_), None) => false,
            };
        if cleared
            || !headers
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
        // The head as the upstream spelled it: the name in upper case.
        let raw = format!(
            "HTTP/1.1 200 OK\r\nLocation: /a?access_token={TOKEN}\r\nX-A: 1\r\nX-A: {TOKEN}\r\n\
             X-{}: v\r\n\r\n",
            TOKEN.to_ascii_uppercase()
        );
        let mut from_raw = h.clone();
        red.redact_headers(&mut h, &[], None);
        assert_eq!(h["location"], "/a?access_token=hr-bot");
        let xa: Vec<_> = h.get_all("x-a").iter().collect();
        assert_eq!(xa, ["1", "hr-bot"]);
        assert_eq!(h.len(), 3, "the header named after the token is gone");
        red.redact_headers(&mut from_raw, &[], Some(raw.as_bytes()));
        assert_eq!(from_raw, h, "the raw head's one search missed a field");
    }

    #[test]
    fn a_raw_head_holding_nothing_clears_its_headers_at_once() {
        let red = redactor(&[(TOKEN, "hr-bot")]);
        let raw = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nX-Token: 1\r\n\r\n";
        // Headers that are not the raw head's (never so in use) show which search decided:
        // the raw head holds nothing, so they are left as they are.
        let mut h = http::HeaderMap::new();
        h.append("x-token", TOKEN.parse().unwrap());
        red.redact_headers(&mut h, &[], Some(raw));
        assert_eq!(h["x-token"], TOKEN);
        // A name is held in lower case: searched for on its own, when a needle could be in
        // one (this token's could; a mixed-case one's never).
        let spelled = format!(
            "HTTP/1.1 200 OK\r\nX-{}: v\r\n\r\n",
            TOKEN.to_ascii_uppercase()
        );
        let mut named = http::HeaderMap::new();
        named.append(
            http::HeaderName::from_bytes(format!("x-{TOKEN}").as_bytes()).unwrap(),
            "v".parse().unwrap(),
        );
        red.redact_headers(&mut named, &[], Some(spelled.as_bytes()));
        assert!(named.is_empty(), "the header named after the token is gone");
        // With a call's own patterns, each field is searched.
        let extra = Pattern::forms("another-secret-0123456789", &Arc::from("***"));
        red.redact_headers(&mut h, &extra, Some(raw));
        assert_eq!(h["x-token"], "hr-bot");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Characters secrets and the text around them are made of: the ones every form
        /// (percent, form, JSON, Go's JSON) writes differently, and a few plain ones.
        const CHARS: &[char] = &[
            'a', 'b', 'Z', '0', '7', '-', '_', '.', '~', '/', '+', '&', '=', '?', '%', '"', '\\',
            '<', '>', ' ', '\n', 'é', '中', '*', '{', '}', ':',
        ];

        fn text_of(len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
            prop::collection::vec(prop::sample::select(CHARS), len)
                .prop_map(|cs| cs.into_iter().collect())
        }

        /// Secrets (with what stands for each) and a text made of pieces: plain text, a
        /// secret in one of its forms, or a part of one.
        fn case() -> impl Strategy<Value = (Vec<(String, String)>, String)> {
            let secret = (
                text_of(8..20),
                prop::sample::select(vec![MASK, "hr-bot", "app-2"]),
            )
                .prop_map(|(s, w)| (s, w.to_string()));
            prop::collection::vec(secret, 1..4).prop_flat_map(|secrets| {
                let forms: Vec<String> = secrets
                    .iter()
                    .flat_map(|(s, w)| Pattern::forms(s, &Arc::from(w.as_str())))
                    .map(|p| String::from_utf8(p.needle().to_vec()).unwrap())
                    .collect();
                let piece = prop_oneof![
                    text_of(0..6),
                    prop::sample::select(forms.clone()),
                    (prop::sample::select(forms), 0usize..40).prop_map(|(f, cut)| {
                        let cut = f.char_indices().map(|(i, _)| i).nth(cut).unwrap_or(f.len());
                        f[..cut].to_string()
                    }),
                    Just("\"".to_string()),
                    Just("\\".to_string()),
                ];
                (
                    Just(secrets),
                    prop::collection::vec(piece, 0..12).prop_map(|p| p.concat()),
                )
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn no_configured_secret_survives_in_any_form((secrets, text) in case()) {
                let (extra, known) = secrets.split_first().unwrap();
                let red = redactor(
                    &known.iter().map(|(s, w)| (s.as_str(), w.as_str())).collect::<Vec<_>>(),
                );
                let extra = Pattern::forms(&extra.0, &Arc::from(extra.1.as_str()));
                let out = red.redact_str(&text, &extra);
                for (secret, with) in &secrets {
                    for form in Pattern::forms(secret, &Arc::from(with.as_str())) {
                        let needle = std::str::from_utf8(form.needle()).unwrap();
                        prop_assert!(
                            !out.contains(needle),
                            "{:?} (a form of {:?}) survives in {:?}", needle, secret, out
                        );
                    }
                }
                // Text holding no secret comes back as it was, uncopied.
                if red.patterns().iter().chain(&extra).all(|p| {
                    !text.as_bytes().windows(p.needle().len()).any(|w| w == p.needle())
                }) && !text.contains('\\') {
                    prop_assert!(matches!(out, Cow::Borrowed(_)));
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "redactor_tests.rs"]
mod edge_tests;
