//! Redaction of upstream text: `redact::{Pattern::forms, Redactor::redact, redact_str,
//! redact_headers}` and `CallRedaction` (what every upstream answer, errmsg and header goes
//! through before the app, the log or `/admin/status` sees it).
//!
//! Input (read with `arbitrary`): secrets, each with what stands for it (an app name, the mask,
//! or anything), per-call extras, and a text made of free pieces and secrets in one of their
//! forms (as written, form-encoded, percent-encoded in either hex case, JSON-escaped, with
//! `\/`, as Go writes JSON), glued together so that matches overlap and touch.
//!
//! Checked against an independent reading (a naive scan written here, forms computed here):
//! - the output is exactly: repeatedly (at most 4 passes) replace, left to right, the leftmost
//!   and then longest form of any secret (known ones before extras, first given first), until
//!   none is left; text that still holds one after that is the mask alone;
//! - no form of any secret is left in the output; nothing found means the input is returned
//!   borrowed; secrets shorter than `MIN_SECRET_LEN` are not searched for;
//! - headers: no header value or name holds a form of a secret afterwards; headers holding none
//!   are kept, in order.

use std::borrow::Cow;
use std::sync::Arc;

use arbitrary::{Arbitrary, Unstructured};
use wecom_sidecar::redact::{Pattern, Redactor, MASK, MIN_SECRET_LEN};

#[derive(Arbitrary, Debug, Clone)]
enum With {
    App(u8),
    Mask,
    Any(Text),
}

impl With {
    fn text(&self) -> String {
        match self {
            With::App(i) => ["hr-bot", "ops-bot", "a.b_c-9"][*i as usize % 3].to_string(),
            With::Mask => MASK.to_string(),
            With::Any(t) => t.text(),
        }
    }
}

/// What generated secrets and text are made of: letters, and every byte some form escapes.
const ALPHABET: &[char] = &[
    'a', 'b', 'Z', '0', '9', '/', '+', '&', '<', '>', ' ', '"', '\\', '%', '-', '_', '.', '~', '=',
    '?', '\u{e9}',
];

/// A string over [`ALPHABET`], or (`Any`) whatever `arbitrary` makes.
#[derive(Arbitrary, Debug, Clone)]
enum Text {
    Small(Vec<u8>),
    Any(String),
}

impl Text {
    fn text(&self) -> String {
        match self {
            Text::Small(b) => b
                .iter()
                .map(|b| ALPHABET[*b as usize % ALPHABET.len()])
                .collect(),
            Text::Any(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
struct Secret {
    value: Text,
    with: With,
}

#[derive(Arbitrary, Debug)]
enum Piece {
    Free(Text),
    /// Secret `i` (known, then extras) in form `form`, cut to its first `cut` bytes if `cut`.
    Secret {
        i: u8,
        form: u8,
        cut: Option<u8>,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    known: Vec<Secret>,
    extra: Vec<Secret>,
    pieces: Vec<Piece>,
    header_names: Vec<String>,
}

/// The forms of `secret`, computed independently of `Pattern::forms`.
fn forms(secret: &str) -> Vec<Vec<u8>> {
    if secret.len() < MIN_SECRET_LEN {
        return Vec::new();
    }
    let mut out: Vec<Vec<u8>> = vec![secret.as_bytes().to_vec()];
    out.push(
        form_urlencoded::byte_serialize(secret.as_bytes())
            .collect::<String>()
            .into_bytes(),
    );
    for lower in [false, true] {
        let mut p = Vec::new();
        for b in secret.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                p.push(b);
            } else if lower {
                p.extend(format!("%{b:02x}").bytes());
            } else {
                p.extend(format!("%{b:02X}").bytes());
            }
        }
        out.push(p);
    }
    let json = serde_json::to_string(secret).unwrap();
    let inner = json[1..json.len() - 1].to_string();
    out.push(inner.clone().into_bytes());
    out.push(inner.replace('/', "\\/").into_bytes());
    let mut go = String::new();
    for c in inner.chars() {
        match c {
            '<' => go.push_str("\\u003c"),
            '>' => go.push_str("\\u003e"),
            '&' => go.push_str("\\u0026"),
            c => go.push(c),
        }
    }
    out.push(go.into_bytes());
    out
}

/// (needle, replacement), known first, first kept among equal needles.
fn table(known: &[Secret], extra: &[Secret]) -> Vec<(Vec<u8>, String)> {
    let mut t: Vec<(Vec<u8>, String)> = Vec::new();
    for s in known.iter().chain(extra) {
        for f in forms(&s.value.text()) {
            if !f.is_empty() && !t.iter().any(|(n, _)| *n == f) {
                t.push((f, s.with.text()));
            }
        }
    }
    t
}

fn find_first(text: &[u8], from: usize, t: &[(Vec<u8>, String)]) -> Option<(usize, usize, usize)> {
    // (start, end, index): leftmost, then longest, then first in the table.
    let mut best: Option<(usize, usize, usize)> = None;
    for start in from..text.len() {
        for (i, (n, _)) in t.iter().enumerate() {
            if text[start..].starts_with(n) {
                let end = start + n.len();
                match best {
                    Some((_, e, _)) if e >= end => {}
                    _ => best = Some((start, end, i)),
                }
            }
        }
        if best.is_some() {
            return best;
        }
    }
    None
}

fn naive_pass(text: &[u8], t: &[(Vec<u8>, String)]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    let mut any = false;
    while let Some((s, e, i)) = find_first(text, at, t) {
        any = true;
        out.extend_from_slice(&text[at..s]);
        out.extend_from_slice(t[i].1.as_bytes());
        at = e;
    }
    if !any {
        return None;
    }
    out.extend_from_slice(&text[at..]);
    Some(out)
}

fn naive(text: &[u8], t: &[(Vec<u8>, String)]) -> Option<Vec<u8>> {
    let mut out = naive_pass(text, t)?;
    for _ in 1..4 {
        match naive_pass(&out, t) {
            None => return Some(out),
            Some(again) => out = again,
        }
    }
    if find_first(&out, 0, t).is_some() {
        Some(MASK.as_bytes().to_vec())
    } else {
        Some(out)
    }
}

fn holds_any(text: &[u8], t: &[(Vec<u8>, String)]) -> bool {
    find_first(text, 0, t).is_some()
}

fn patterns(secrets: &[Secret]) -> Vec<Pattern> {
    secrets
        .iter()
        .flat_map(|s| Pattern::forms(&s.value.text(), &Arc::from(s.with.text().as_str())))
        .collect()
}

/// Checks one input against the invariants above; panics when one does not hold.
pub fn check(data: &[u8]) {
    let Ok(mut input) = Input::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    // Bounded, so that the naive reading stays quick.
    input.known.truncate(6);
    input.extra.truncate(3);
    input.pieces.truncate(24);
    let all: Vec<Secret> = input.known.iter().chain(&input.extra).cloned().collect();
    let mut text = Vec::new();
    for piece in &input.pieces {
        match piece {
            Piece::Free(t) => text.extend_from_slice(t.text().as_bytes()),
            Piece::Secret { i, form, cut } => {
                if all.is_empty() {
                    continue;
                }
                let s = &all[*i as usize % all.len()];
                let value = s.value.text();
                let f = forms(&value);
                let mut bytes = if f.is_empty() {
                    value.as_bytes().to_vec()
                } else {
                    f[*form as usize % f.len()].clone()
                };
                if let Some(c) = cut {
                    bytes.truncate(*c as usize);
                }
                text.extend_from_slice(&bytes);
            }
        }
    }

    let red = Redactor::new(patterns(&input.known));
    let extra = patterns(&input.extra);
    let t = table(&input.known, &input.extra);
    for p in red.patterns() {
        assert!(p.needle().len() >= MIN_SECRET_LEN);
    }

    let got = red.redact(&text, &extra);
    match naive(&text, &t) {
        None => assert!(
            matches!(got, Cow::Borrowed(_)),
            "copied although nothing matched: {text:?}"
        ),
        Some(want) => assert_eq!(
            &*got,
            &want[..],
            "redact({:?}) differs from the naive reading",
            String::from_utf8_lossy(&text)
        ),
    }
    assert!(
        !holds_any(&got, &t),
        "a secret survived: {:?}",
        String::from_utf8_lossy(&got)
    );

    // As text: the same, and still UTF-8.
    let s = String::from_utf8_lossy(&text).into_owned();
    let got_s = red.redact_str(&s, &extra);
    assert_eq!(got_s.as_bytes(), &*red.redact(s.as_bytes(), &extra));

    // Headers: values (and names) built from the text's pieces, and the raw head they would
    // be parsed from (the names in the input's own case).
    let mut headers = http::HeaderMap::new();
    let mut raw = b"HTTP/1.1 200 OK\r\n".to_vec();
    let mut kept = Vec::new();
    for (i, chunk) in text.chunks(24).enumerate() {
        let spelled = input.header_names.get(i).map_or("X-Echo", |n| n.as_str());
        let name = http::HeaderName::from_bytes(spelled.as_bytes())
            .ok()
            .map_or(("X-Echo", http::HeaderName::from_static("x-echo")), |n| {
                (spelled, n)
            });
        if let Ok(v) = http::HeaderValue::from_bytes(chunk) {
            if !holds_any(name.1.as_str().as_bytes(), &t) && !holds_any(chunk, &t) {
                kept.push((name.1.clone(), v.clone()));
            }
            raw.extend_from_slice(format!("{}: ", name.0).as_bytes());
            raw.extend_from_slice(chunk);
            raw.extend_from_slice(b"\r\n");
            headers.append(name.1, v);
        }
    }
    raw.extend_from_slice(b"\r\n");
    // Given the raw head, the one search over it decides as the search of each field does
    // (with and without the call's extra patterns).
    let (mut from_raw, mut each) = (headers.clone(), headers.clone());
    red.redact_headers(&mut from_raw, &[], Some(&raw));
    red.redact_headers(&mut each, &[], None);
    assert_eq!(from_raw, each, "the raw head's search decided otherwise");
    let mut from_raw = headers.clone();
    red.redact_headers(&mut from_raw, &extra, Some(&raw));
    red.redact_headers(&mut headers, &extra, None);
    assert_eq!(from_raw, headers, "the raw head's search decided otherwise");
    for (name, value) in &headers {
        assert!(
            !holds_any(name.as_str().as_bytes(), &t),
            "header name {name}"
        );
        assert!(!holds_any(value.as_bytes(), &t), "header {name}: {value:?}");
    }
    for (name, value) in &kept {
        assert!(
            headers.get_all(name).iter().any(|v| v == value),
            "header {name}: {value:?} holding nothing was dropped"
        );
    }
}
