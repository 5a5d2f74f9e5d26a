//! The redaction pass at its edges: the exact forms a secret is searched in, the shortest
//! value searched for, a call's extras against the held values (which wins where they meet),
//! the search without the automaton, and JSON strings read up to their bound.

use std::borrow::Cow;
use std::sync::Arc;

use super::*;

fn forms(secret: &str, with: &str) -> Vec<Pattern> {
    Pattern::forms(secret, &Arc::from(with))
}

fn red(pairs: &[(&str, &str)]) -> Redactor {
    Redactor::new(pairs.iter().flat_map(|(s, w)| forms(s, w)).collect())
}

fn r(red: &Redactor, text: &str, extra: &[Pattern]) -> String {
    red.redact_str(text, extra).into_owned()
}

#[test]
fn a_secret_is_searched_in_each_form_it_is_written_in_each_standing_for_what_was_given() {
    let all = forms("tok/en 0123~4*", "hr-bot");
    let needles: Vec<&str> = all
        .iter()
        .map(|p| std::str::from_utf8(p.needle()).unwrap())
        .collect();
    assert_eq!(
        needles,
        [
            "tok/en 0123~4*",       // as written (and as JSON writes it)
            "tok%2Fen+0123%7E4*",   // a form (application/x-www-form-urlencoded)
            "tok%2Fen%200123~4%2A", // percent-encoded (RFC 3986), upper case
            "tok%2fen%200123~4%2a", // ... lower case
            "tok\\/en 0123~4*",     // JSON with `\/`
        ]
    );
    assert!(all.iter().all(|p| p.with() == "hr-bot"));
    // Go's JSON writes `&`, `<` and `>` as escapes: one more form.
    let go = forms("a<b>c&d-1234", MASK);
    assert!(go
        .iter()
        .any(|p| p.needle() == br"a\u003cb\u003ec\u0026d-1234"));
    // The redactor holds each of them once, in order.
    let held = Redactor::new([all.clone(), all.clone()].concat());
    assert_eq!(held.patterns(), &all[..]);
}

#[test]
fn a_value_of_min_secret_len_is_a_secret_one_shorter_is_not() {
    let eight = "12345678";
    assert_eq!(eight.len(), MIN_SECRET_LEN);
    let red = red(&[(eight, MASK), ("1234567", MASK)]);
    assert_eq!(r(&red, "id 12345678. 1234567", &[]), "id ***. 1234567");
}

#[test]
fn a_call_s_extras_and_the_held_values_are_all_taken_out_in_either_order() {
    let held = red(&[("HELD-SECRET-1", "H")]);
    let extra = forms("EXTRA-SECRET-2", "E");
    assert_eq!(
        r(&held, "a EXTRA-SECRET-2 b HELD-SECRET-1 c", &extra),
        "a E b H c"
    );
    assert_eq!(
        r(&held, "a HELD-SECRET-1 b EXTRA-SECRET-2 c", &extra),
        "a H b E c"
    );
}

#[test]
fn where_an_extra_and_a_held_value_meet_the_leftmost_then_the_longest_wins() {
    // Overlapping: the one that starts first is taken out whole, whichever list it is in.
    let held = red(&[("abcdefgh12", "H")]);
    assert_eq!(
        r(&held, "abcdefgh12345678", &forms("gh12345678", "E")),
        "H345678"
    );
    let held = red(&[("gh12345678", "H")]);
    assert_eq!(
        r(&held, "abcdefgh12345678", &forms("abcdefgh12", "E")),
        "E345678"
    );
    // Starting at the same place: the longer, whichever list it is in.
    let held = red(&[("abcdefgh", "1")]);
    assert_eq!(r(&held, "xabcdefghijx", &forms("abcdefghij", "2")), "x2x");
    let held = red(&[("abcdefghij", "1")]);
    assert_eq!(r(&held, "xabcdefghijx", &forms("abcdefgh", "2")), "x1x");
    // The very same value in both: the held one stands for it (as among held values the
    // first is kept), e.g. a token the registry knows keeps its app's name.
    let held = red(&[("abcdefgh", "1")]);
    assert_eq!(r(&held, "xabcdefghx", &forms("abcdefgh", "2")), "x1x");
}

#[test]
fn without_the_automaton_each_value_is_found_as_with_it() {
    // The automaton cannot be built only past its size limits; the values are then searched
    // for one by one, and must be found just the same, wherever they are.
    let with = red(&[
        ("7b586f21411c342f", "hr-bot"),
        ("s3cret/value", MASK),
        ("abcdefgh", "1"),
        ("abcdefghij", "2"),
    ]);
    let without = Redactor {
        patterns: with.patterns().to_vec(),
        finder: None,
        names: None,
    };
    let extra = forms("robot-key-0123", MASK);
    for text in [
        "7b586f21411c342f",
        "x=7b586f21411c342f&y=s3cret%2Fvalue&z=7b586f21411c342f",
        "..s3cret/value..robot-key-0123..abcdefghij..abcdefgh..",
        "no secret here at all",
    ] {
        assert_eq!(r(&without, text, &extra), r(&with, text, &extra), "{text}");
    }
    assert_eq!(
        r(&without, "a=7b586f21411c342f b=s3cret%2fvalue", &[]),
        "a=hr-bot b=***"
    );
    // Nor is a raw head cleared at once without it: each field is searched.
    let mut h = http::HeaderMap::new();
    h.append("x-a", "7b586f21411c342f".parse().unwrap());
    without.redact_headers(&mut h, &[], Some(b"HTTP/1.1 200 OK\r\n\r\n"));
    assert_eq!(h["x-a"], "hr-bot");
}

const TOKEN: &str = "tok/en-0123456789";

/// `"\u0074ok/en-0123456789"`: the token as a JSON string literal that a JSON parser reads
/// as the token, but that holds none of its forms.
fn escaped_token() -> String {
    format!("\"\\u0074{}\"", &TOKEN[1..])
}

#[test]
fn json_strings_are_told_apart_by_their_unescaped_quotes() {
    let red = red(&[(TOKEN, "hr-bot")]);
    let tok = escaped_token();
    // A string ending in an escaped backslash ends at the quote after it.
    assert_eq!(
        r(&red, &format!(r#"["x\\",{tok}]"#), &[]),
        r#"["x\\","hr-bot"]"#
    );
    // An escaped quote does not end one.
    assert_eq!(
        r(&red, &format!(r#"["a\"b",{tok}]"#), &[]),
        r#"["a\"b","hr-bot"]"#
    );
    // An empty string, then the token.
    assert_eq!(r(&red, &format!(r#"["",{tok}]"#), &[]), r#"["","hr-bot"]"#);
    // A last string never closed (a body cut short) is left as it is, the rest read.
    assert_eq!(
        r(&red, &format!(r#"{tok} and "cut \u00"#), &[]),
        r#""hr-bot" and "cut \u00"#
    );
}

#[test]
fn json_in_json_strings_is_read_to_max_json_depth_and_no_deeper() {
    let red = red(&[(TOKEN, "hr-bot")]);
    // levels[k] holds the token k + 1 decodings deep.
    let mut levels = vec![escaped_token()];
    let mut redacted = vec![r#""hr-bot""#.to_string()];
    for k in 1..=usize::from(MAX_JSON_DEPTH) {
        levels.push(serde_json::to_string(&levels[k - 1]).unwrap());
        redacted.push(serde_json::to_string(&redacted[k - 1]).unwrap());
    }
    let deepest_read = usize::from(MAX_JSON_DEPTH) - 1;
    for k in 0..=deepest_read {
        assert_eq!(r(&red, &levels[k], &[]), redacted[k], "{} deep", k + 1);
    }
    // One more level is past the bound (the cost per answer stays bounded): passed as it is,
    // without a panic.
    let deeper = &levels[deepest_read + 1];
    assert!(matches!(red.redact_str(deeper, &[]), Cow::Borrowed(_)));
}

#[test]
fn what_lies_between_two_json_strings_is_not_read_as_one() {
    let red = red(&[(TOKEN, "hr-bot")]);
    let tok = escaped_token();
    // Outside any string, `\u0074...` is no string a JSON parser would read: left as it is.
    // The closing quote of one string opens no other.
    let text = format!(r#""x" \u0074ok/en-0123456789 {tok}"#);
    assert_eq!(
        r(&red, &text, &[]),
        r#""x" \u0074ok/en-0123456789 "hr-bot""#
    );
}
