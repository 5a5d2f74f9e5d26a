//! Byte classes checked eight bytes a word (SWAR), for the short strings of every call: whether
//! a string is written as it is in the access line's two formats (`logging`), where the first
//! byte a JSON string cannot hold as it is lies (`wecom::facts_scan`, reading WeCom's answers),
//! and whether an upstream's header value holds only bytes `http` takes without a look of its
//! own (`upstream::h1::head`). These strings are short (a path, an id, a key, a header value),
//! where a loop a byte at a time, or a vector loop with its scalar tail, costs several times
//! more (callgrind, issue 17).

/// Whether `Debug` prints every byte of `s` as it is: printable ASCII, neither `"` nor `\`.
#[inline]
pub fn debug_plain(s: &[u8]) -> bool {
    // A byte above `~` (0x7e): adding 1 sets its high bit, or it is set already.
    words(s, |w| json_bad(w) | (w.wrapping_add(ONES) | w))
}

/// Whether a JSON string holds every byte of `s` as it is: no control character, `"` or `\`.
#[inline]
pub fn json_plain(s: &[u8]) -> bool {
    words(s, json_bad)
}

/// 0x01 in every byte of a word.
const ONES: u64 = u64::from_ne_bytes([1; 8]);
/// 0x80 in every byte of a word.
const HIGHS: u64 = ONES << 7;

/// The high bit of each byte of `w` below `n` (at most 0x80). Exact for the lowest such byte:
/// a borrow starts only at a byte below `n` and runs upward, so it may flag the bytes above
/// that one, never a byte below it. Which is what both uses need: "some byte" and "the first".
#[inline(always)]
fn below(w: u64, n: u8) -> u64 {
    w.wrapping_sub(ONES * u64::from(n)) & !w
}

/// The high bit of each byte of `w` equal to `b` (exact for the lowest, as [`below`]).
#[inline(always)]
fn equal(w: u64, b: u8) -> u64 {
    below(w ^ (ONES * u64::from(b)), 1)
}

/// A word whose high bits flag the bytes of `w` below 0x20, `"` or `\` (exact for the lowest).
#[inline(always)]
fn json_bad(w: u64) -> u64 {
    below(w, 0x20) | equal(w, b'"') | equal(w, b'\\')
}

/// Whether `bad` flags no byte of `s`, read eight bytes a word: the strings of a line are
/// short (a path, an id, a name), where a byte-at-a-time loop or a vector loop with its scalar
/// tail costs several times more. A string of 8 bytes or more is read in whole words, the last
/// one overlapping the one before; a shorter one is read in two overlapping halves (4 to 7
/// bytes) or as its first, middle and last byte spread over the word (1 to 3), so every byte
/// of the word is a byte of `s`.
#[inline(always)]
fn words(s: &[u8], bad: impl Fn(u64) -> u64) -> bool {
    let n = s.len();
    let flags = match n {
        0 => 0,
        1..=3 => {
            let (a, b, c) = (s[0], s[n / 2], s[n - 1]);
            bad(u64::from_le_bytes([a, b, c, a, a, a, a, a]))
        }
        4..=7 => {
            let mut w = [0u8; 8];
            w[..4].copy_from_slice(&s[..4]);
            w[4..].copy_from_slice(&s[n - 4..]);
            bad(u64::from_le_bytes(w))
        }
        _ => {
            let mut flags = bad(word(s, n - 8));
            for i in (0..n - 8).step_by(8) {
                flags |= bad(word(s, i));
            }
            flags
        }
    };
    flags & HIGHS == 0
}

/// The eight bytes of `s` from `i`, the first in the lowest bits (so a flag's
/// `trailing_zeros` counts the bytes before it).
#[inline(always)]
fn word(s: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&s[i..i + 8]);
    u64::from_le_bytes(w)
}

/// Where the first `"`, `\` or control byte (below 0x20) of `s` is: what ends the plain run of
/// a JSON string. Whole words from the start, then the last eight bytes (overlapping the
/// words before, which held none), or a string shorter than a word padded to one.
#[inline]
pub fn json_special_at(s: &[u8]) -> Option<usize> {
    let n = s.len();
    let first = |flags: u64| flags.trailing_zeros() as usize / 8;
    let mut i = 0;
    while i + 8 <= n {
        let flags = json_bad(word(s, i)) & HIGHS;
        if flags != 0 {
            return Some(i + first(flags));
        }
        i += 8;
    }
    if i == n {
        return None;
    }
    if n < 8 {
        // The string in one word, the rest filled with a byte none of the tests flags.
        let mut w = [b'a'; 8];
        w[..n].copy_from_slice(s);
        let flags = json_bad(u64::from_le_bytes(w)) & HIGHS;
        return (flags != 0).then(|| first(flags));
    }
    let flags = json_bad(word(s, n - 8)) & HIGHS;
    (flags != 0).then(|| n - 8 + first(flags))
}

/// Whether every byte of `s` is one `http::HeaderValue` takes (it takes any byte but the
/// controls below 0x20 other than tab, and DEL). A tab is reported as not plain: the caller's
/// checked path takes it.
#[inline]
pub fn header_value_plain(s: &[u8]) -> bool {
    words(s, |w| below(w, 0x20) | equal(w, 0x7f))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every string of 0 to 40 bytes (the short cases, one word, the overlapping last word,
    /// several words) of each of `fills`, as it is and with one byte set to each value at each
    /// place, given to `check` with what it is: (length, fill, the place and value changed).
    fn each_string(fills: &[u8], mut check: impl FnMut(&[u8], (usize, u8, Option<(usize, u8)>))) {
        for len in 0..=40 {
            for &fill in fills {
                let plain = vec![fill; len];
                check(&plain, (len, fill, None));
                for at in 0..len {
                    for b in 0..=u8::MAX {
                        let mut s = plain.clone();
                        s[at] = b;
                        check(&s, (len, fill, Some((at, b))));
                    }
                }
            }
        }
    }

    #[test]
    fn the_plain_checks_pass_exactly_the_bytes_printed_as_they_are() {
        // Each edge: space and `~` are printed as they are; 0x1f, 0x7f, `"` and `\` are not
        // (0x7f only for `Debug`: JSON keeps it).
        assert!(debug_plain(b" ~request-id 0f9e"));
        assert!(json_plain(b" ~request-id 0f9e\x7f"));
        for bad in [&b"a\x1fb"[..], b"a\x7fb", b"a\"b", b"a\\b"] {
            assert!(!debug_plain(bad), "{bad:?}");
        }
        for bad in [&b"a\x1fb"[..], b"a\"b", b"a\\b", b"\n"] {
            assert!(!json_plain(bad), "{bad:?}");
        }
        // A bad byte anywhere in a long string, past the vectorised steps included.
        for at in 0..40 {
            let mut s = vec![b'x'; 40];
            s[at] = b'"';
            assert!(!debug_plain(&s) && !json_plain(&s), "at {at}");
        }
        assert!(debug_plain(b"") && json_plain(b""));
    }

    #[test]
    fn the_plain_checks_read_every_byte_of_every_length() {
        // Against a byte-at-a-time reading.
        let debug = |s: &[u8]| {
            s.iter()
                .all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
        };
        let json = |s: &[u8]| s.iter().all(|&b| b >= 0x20 && b != b'"' && b != b'\\');
        each_string(&[b'a', b' ', b'~', 0xe4], |s, what| {
            assert_eq!(debug_plain(s), debug(s), "{what:?}");
            assert_eq!(json_plain(s), json(s), "{what:?}");
        });
    }

    #[test]
    fn two_bad_bytes_in_the_same_place_of_two_words_are_both_seen() {
        // The words' flags are gathered, not toggled: two flags in the same lane stay a flag.
        for len in 16..=40 {
            for at in 0..len - 8 {
                let mut s = vec![b'a'; len];
                s[at] = b'"';
                s[at + 8] = b'"';
                assert!(!debug_plain(&s) && !json_plain(&s), "{at} of {len}");
            }
        }
    }

    #[test]
    fn the_first_json_special_byte_is_found_at_every_place_of_every_length() {
        let reference = |s: &[u8]| s.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
        each_string(&[b'a', b' ', b'~', 0x7f, 0xe4, 0xff], |s, what| {
            assert_eq!(json_special_at(s), reference(s), "{what:?}");
        });
    }

    #[test]
    fn of_two_special_bytes_the_first_is_found() {
        // In one word, in two, and with the second in the overlapping last word.
        for len in 2..=40 {
            for first in 0..len - 1 {
                for second in first + 1..len {
                    for (a, b) in [(b'"', b'\\'), (b'\\', b'\n'), (0x00, b'"'), (0x1f, 0x1f)] {
                        let mut s = vec![b'x'; len];
                        s[first] = a;
                        s[second] = b;
                        assert_eq!(
                            json_special_at(&s),
                            Some(first),
                            "{first}, {second} of {len}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn header_values_are_plain_exactly_when_every_byte_is_one_http_takes_unlooked() {
        let reference = |s: &[u8]| s.iter().all(|&b| b >= 0x20 && b != 0x7f);
        each_string(&[b'a', b' ', b'~', 0x80, 0xff], |s, what| {
            assert_eq!(header_value_plain(s), reference(s), "{what:?}");
            if reference(s) {
                // What `http` takes: the unchecked path in `head` holds to it.
                assert!(http::HeaderValue::from_bytes(s).is_ok(), "{what:?}");
            }
        });
        // Two flagged bytes in the same lane of two words stay flagged.
        let mut s = vec![b'a'; 24];
        s[3] = 0x7f;
        s[11] = 0x7f;
        assert!(!header_value_plain(&s));
    }
}
