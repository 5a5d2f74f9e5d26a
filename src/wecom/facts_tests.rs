//! `facts::read` (the one-pass scan first) against serde_json alone, on generated WeCom-like
//! answers and on bodies made to trip a hand-written reader: escapes, numbers of every shape,
//! invalid UTF-8, control bytes, duplicate keys, nesting, trailing bytes, truncation.

use proptest::prelude::*;

use super::{read, read_with_serde, Answer};
use crate::wecom::errcode::{is_json_object, BodyErrcode};
use crate::wecom::facts_scan::scan;

/// What serde_json alone makes of `body`.
fn reference(body: &[u8]) -> Answer {
    if !is_json_object(body) {
        return Answer {
            errcode: BodyErrcode::Invalid,
            undelivered: Default::default(),
            from_ip: None,
        };
    }
    read_with_serde(body)
}

fn ws() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        20 => prop::sample::select(vec!["", "", "", " ", "\n", "\t ", "\r\n"]),
        1 => Just("\x0c"),
    ]
    .prop_map(|s| s.as_bytes().to_vec())
}

fn number() -> impl Strategy<Value = Vec<u8>> {
    let special = prop::sample::select(vec![
        "0",
        "-0",
        "00",
        "01",
        "-",
        "-1",
        "1.0",
        "1.",
        ".5",
        "+1",
        "1e3",
        "1E+2",
        "-1.5e-3",
        "1e",
        "2e-",
        "60020",
        "42001",
        "40014",
        "123456789012345678",
        "-123456789012345678",
        "1234567890123456789",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "-9223372036854775809",
        "18446744073709551616",
        "1e400",
        "0x10",
    ])
    .prop_map(|s| s.as_bytes().to_vec());
    prop_oneof![
        1 => special,
        2 => any::<i64>().prop_map(|n| n.to_string().into_bytes()),
        4 => (-50i64..50).prop_map(|n| n.to_string().into_bytes()),
    ]
}

fn string() -> impl Strategy<Value = Vec<u8>> {
    let clean = prop::sample::select(vec![
        "ok".as_bytes(),
        b"a|b||c",
        b"u1|u2",
        b" | ",
        b"from ip: 203.0.113.7, more info",
        b"from ip: 2001:db8::5",
        "中文".as_bytes(),
        b"\\\"",
        b"\\n",
        b"\\u0041",
        b"\\ud83d\\ude00",
    ]);
    let flawed = prop::sample::select(vec![
        b"\\\\".as_slice(),
        b"\\/",
        b"\\u00e9",
        b"\\ud800",
        b"\\udc00",
        b"\\x",
        b"\\u12",
        b"\\uZZZZ",
        b"\x01",
        b"\x1f",
        b"\x7f",
        b"\xff",
        b"\xe4\xb8",
        b"\xc3\xa9",
    ]);
    let piece = prop_oneof![12 => clean, 1 => flawed];
    prop::collection::vec(piece, 0..4).prop_map(|pieces| {
        let mut s = b"\"".to_vec();
        for p in pieces {
            s.extend_from_slice(p);
        }
        s.push(b'"');
        s
    })
}

fn literal() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => prop::sample::select(vec!["true", "false", "null"]),
        1 => prop::sample::select(vec!["nul", "tru", "NULL", "nulll"]),
    ]
    .prop_map(|s| s.as_bytes().to_vec())
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        12 => prop::sample::select(vec![
            "errcode",
            "errmsg",
            "invaliduser",
            "invalidparty",
            "invalidtag",
            "unlicenseduser",
        ]),
        2 => prop::sample::select(vec!["msgid", "userid", "department", "list", "errcodes", "Errcode", ""]),
        1 => prop::sample::select(vec!["err\\u0063ode", "errmsg\\n", "键", "\\\"", "a\x01b"]),
    ]
    .prop_map(|k| {
        let mut s = b"\"".to_vec();
        s.extend_from_slice(k.as_bytes());
        s.push(b'"');
        s
    })
}

/// A JSON value as bytes, nested up to `depth`, with an occasional flaw in a container.
fn value(depth: u32) -> BoxedStrategy<Vec<u8>> {
    let leaf = prop_oneof![3 => number(), 3 => string(), 1 => literal()];
    if depth == 0 {
        return leaf.boxed();
    }
    let inner = value(depth - 1);
    let flaw = prop_oneof![20 => Just(""), 1 => Just(","), 1 => Just(":")];
    prop_oneof![
        4 => leaf,
        1 => (prop::collection::vec((ws(), inner.clone(), ws()), 0..4), flaw.clone()).prop_map(
            |(items, flaw)| {
                let mut s = b"[".to_vec();
                for (i, (a, v, b)) in items.into_iter().enumerate() {
                    if i > 0 {
                        s.push(b',');
                    }
                    s.extend(a);
                    s.extend(v);
                    s.extend(b);
                }
                s.extend_from_slice(flaw.as_bytes());
                s.push(b']');
                s
            }
        ),
        1 => (prop::collection::vec((key(), ws(), inner), 0..4), flaw).prop_map(|(members, flaw)| {
            let mut s = b"{".to_vec();
            for (i, (k, w, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    s.push(b',');
                }
                s.extend(k);
                s.extend(w.clone());
                s.push(b':');
                s.extend(w);
                s.extend(v);
            }
            s.extend_from_slice(flaw.as_bytes());
            s.push(b'}');
            s
        }),
    ]
    .boxed()
}

/// A top-level answer: members with WeCom's keys (and others), then maybe trailing bytes.
fn answer() -> impl Strategy<Value = Vec<u8>> {
    let quoted = |k: &'static str| format!("\"{k}\"").into_bytes();
    let known = prop::sample::select(vec![
        "errmsg",
        "invaliduser",
        "invalidparty",
        "invalidtag",
        "unlicenseduser",
    ]);
    let pair = prop_oneof![
        // The fields read, mostly with the type WeCom sends.
        3 => (Just(quoted("errcode")), prop_oneof![6 => (-50i64..70000).prop_map(|n| n.to_string().into_bytes()), 1 => value(1)]),
        4 => (known.prop_map(quoted), prop_oneof![6 => string(), 1 => value(1)]),
        // Anything else.
        4 => (key(), value(3)),
    ];
    let member = (ws(), pair, ws()).prop_map(|(a, (k, v), c)| (a, k, Vec::<u8>::new(), v, c));
    let trailing = prop_oneof![
        12 => prop::sample::select(vec!["", " \n"]),
        1 => prop::sample::select(vec!["x", "}", ",", "{}"]),
    ];
    (ws(), prop::collection::vec(member, 0..6), trailing).prop_map(|(lead, members, tail)| {
        let mut s = lead;
        s.push(b'{');
        for (i, (a, k, b, v, c)) in members.into_iter().enumerate() {
            if i > 0 {
                s.push(b',');
            }
            s.extend(a);
            s.extend(k);
            s.extend(b);
            s.push(b':');
            s.extend(v);
            s.extend(c);
        }
        s.push(b'}');
        s.extend_from_slice(tail.as_bytes());
        s
    })
}

/// An answer as WeCom writes one: each field read at most once with WeCom's type (strings that
/// may hold escapes, text and ids), other fields of any shape, in any order.
fn clean_answer() -> impl Strategy<Value = Vec<u8>> {
    let text = || prop::option::of(string());
    let fields = (
        prop::option::of((-50i64..70000).prop_map(|n| n.to_string().into_bytes())),
        (text(), text(), text(), text(), text()),
        prop::collection::vec((key(), value(2)), 0..4),
    );
    (fields, any::<prop::sample::Index>(), ws()).prop_map(|((code, texts, others), turn, w)| {
        let (errmsg, user, party, tag, unlicensed) = texts;
        let mut members: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let named = [
            ("errcode", code),
            ("errmsg", errmsg),
            ("invaliduser", user),
            ("invalidparty", party),
            ("invalidtag", tag),
            ("unlicenseduser", unlicensed),
        ];
        let names = named
            .each_ref()
            .map(|(k, _)| format!("\"{k}\"").into_bytes());
        for (k, v) in named {
            if let Some(v) = v {
                members.push((format!("\"{k}\"").into_bytes(), v));
            }
        }
        // Other fields under names that are not read (a key read would be a duplicate).
        for (k, v) in others {
            if !names.contains(&k) {
                members.push((k, v));
            }
        }
        let len = members.len().max(1);
        members.rotate_left(turn.index(len) % len);
        let mut s = b"{".to_vec();
        for (i, (k, v)) in members.into_iter().enumerate() {
            if i > 0 {
                s.push(b',');
            }
            s.extend(w.clone());
            s.extend(k);
            s.push(b':');
            s.extend(v);
        }
        s.push(b'}');
        s
    })
}

/// Bodies of both kinds.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![answer(), clean_answer()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn reads_every_generated_answer_as_serde_json_does(body in body()) {
        prop_assert_eq!(read(&body), reference(&body), "{}", String::from_utf8_lossy(&body));
    }

    #[test]
    fn reads_every_cut_or_damaged_answer_as_serde_json_does(
        body in body(),
        cut in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let cut_short = &body[..cut.index(body.len() + 1)];
        prop_assert_eq!(read(cut_short), reference(cut_short));
        let mut damaged = body.clone();
        if !damaged.is_empty() {
            let i = at.index(damaged.len());
            damaged[i] = byte;
        }
        prop_assert_eq!(read(&damaged), reference(&damaged));
    }
}

#[test]
fn wecom_answers_take_the_one_pass_read() {
    // The shapes WeCom answers with: if these fell back to serde, the scan would cost without
    // paying.
    for body in [
        r#"{"errcode":0,"errmsg":"ok","userid":"zhangsan","name":"张三","department":[1,2],"status":1}"#,
        r#"{"errcode":0,"errmsg":"ok","invaliduser":"ghost|gone","invalidparty":"","msgid":"x"}"#,
        r#"{"errcode":42001,"errmsg":"access_token expired, hint: [1700000000_60_ab], more info at https://open.work.weixin.qq.com/devtool/query?e=42001"}"#,
        r#"{"errcode":0,"errmsg":"ok","department":[{"id":1,"name":"总部","parentid":0,"order":100000000}]}"#,
        r#"{"errcode":-1,"errmsg":"system busy"}"#,
        r#"{"access_token":"x","errcode":0,"errmsg":"ok","expires_in":7200}"#,
        "{\n  \"errcode\": 0,\n  \"errmsg\": \"ok\",\n  \"score\": -1.5e3\n}\n",
    ] {
        let scanned = scan(body.as_bytes());
        assert!(scanned.is_some(), "{body}");
        assert_eq!(read(body.as_bytes()), reference(body.as_bytes()), "{body}");
    }
}

#[test]
fn what_the_scan_leaves_to_serde_is_still_read() {
    for (body, code) in [
        (r#"{"err\u0063ode":40014}"#, BodyErrcode::Code(40014)),
        (r#"{"errcode":1.0}"#, BodyErrcode::Invalid),
        (r#"{"errcode":-0}"#, BodyErrcode::Invalid),
        (r#"{"errcode":0,"errcode":0}"#, BodyErrcode::Invalid),
        (
            r#"{"errcode":9223372036854775807}"#,
            BodyErrcode::Code(i64::MAX),
        ),
        (r#"{"errcode":0,"errmsg":"a\"b"}"#, BodyErrcode::Code(0)),
        (r#"{"errcode":0} x"#, BodyErrcode::Invalid),
    ] {
        assert!(scan(body.as_bytes()).is_none(), "{body}");
        assert_eq!(read(body.as_bytes()).errcode, code, "{body}");
    }
}

#[test]
fn the_generated_answers_exercise_both_readers() {
    // The property above compares the scan with serde only where the scan answers: enough
    // generated bodies must take it (and enough must not) for the comparison to mean much.
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut scanned, mut with_facts, n) = (0, 0, 2000);
    for _ in 0..n {
        let body = body().new_tree(&mut runner).unwrap().current();
        if let Some(s) = scan(&body) {
            scanned += 1;
            let lists = [
                s.invaliduser,
                s.invalidparty,
                s.invalidtag,
                s.unlicenseduser,
            ];
            with_facts += usize::from(s.errcode.is_some() && lists.iter().any(Option::is_some));
        }
    }
    eprintln!("{scanned} of {n} scanned, {with_facts} with errcode and a list");
    assert!(
        scanned > n / 5 && scanned < n * 4 / 5,
        "{scanned} of {n} scanned"
    );
    assert!(
        with_facts > n / 20,
        "{with_facts} of {n} with errcode and a list"
    );
}
