//! One event as one line of bytes, text or JSON, written field by field: numbers and strings
//! straight into the line, with no styling and no `Debug` pass for the values that are plain
//! (`Debug` and `Display` values, which only the event's own code can format, go through
//! `fmt` once each).
//!
//! The shapes are tracing-subscriber's, unchanged, so log pipelines and the tests read the
//! same lines as before:
//! - text: `2026-12-01T14:17:05.123456Z  INFO access: call request_id=… app="hr-bot" status=200`
//!   (level right-aligned in 5, the message first, strings quoted and escaped as `Debug` does,
//!   `Display` values bare, the `log.*` fields of `log` records left out);
//! - JSON: `{"timestamp":…,"level":"INFO","message":"call",…fields…,"target":"access"}`.

use std::cell::Cell;
use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level};

use crate::plain;

/// Which of the two shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// Appends the line of `event` (with its newline) to `out`. `target` and `level` are the
/// event's (for a `log` record, the record's own).
pub(super) fn line(out: &mut Vec<u8>, format: Format, target: &str, level: &Level, event: &Event) {
    out.reserve(512);
    match format {
        Format::Text => {
            now(out);
            out.extend_from_slice(match *level {
                Level::TRACE => b" TRACE ",
                Level::DEBUG => b" DEBUG ",
                Level::INFO => b"  INFO ",
                Level::WARN => b"  WARN ",
                Level::ERROR => b" ERROR ",
            });
            out.extend_from_slice(target.as_bytes());
            out.extend_from_slice(b": ");
            let mut v = TextFields { out, first: true };
            event.record(&mut v);
        }
        Format::Json => {
            out.extend_from_slice(b"{\"timestamp\":\"");
            now(out);
            out.extend_from_slice(b"\",\"level\":\"");
            out.extend_from_slice(level.as_str().as_bytes());
            out.push(b'"');
            event.record(&mut JsonFields { out: &mut *out });
            out.extend_from_slice(b",\"target\":");
            json_str(out, target);
            out.push(b'}');
        }
    }
    out.push(b'\n');
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC) of now.
pub(super) fn now(out: &mut Vec<u8>) {
    let (secs, micros) = wall_clock();
    timestamp(out, secs, micros);
}

/// Seconds and microseconds since 1970 (UTC). `clock_gettime` read straight: `SystemTime`
/// reads the same clock, then spends more than the read itself (callgrind: ~70 instructions a
/// line) turning it into a `Duration` since the epoch.
#[inline]
fn wall_clock() -> (u64, u32) {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call to fill.
    let read = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    match (read, u64::try_from(ts.tv_sec), u32::try_from(ts.tv_nsec)) {
        (0, Ok(secs), Ok(nanos)) => (secs, nanos / 1000),
        // A failed read or a clock set before 1970: the epoch (as `SystemTime` printed it).
        _ => (0, 0),
    }
}

thread_local! {
    /// The second last printed on this thread and its `YYYY-MM-DDTHH:MM:SS`.
    static SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC).
fn timestamp(out: &mut Vec<u8>, secs: u64, micros: u32) {
    let (at, mut text) = SECOND.get();
    if at != secs {
        let mut t = Vec::with_capacity(19);
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (y, m, d) = civil_date(days as i64);
        digits(&mut t, y as u64, 4);
        t.push(b'-');
        digits(&mut t, m.into(), 2);
        t.push(b'-');
        digits(&mut t, d.into(), 2);
        t.push(b'T');
        digits(&mut t, rem / 3600, 2);
        t.push(b':');
        digits(&mut t, rem / 60 % 60, 2);
        t.push(b':');
        digits(&mut t, rem % 60, 2);
        // A year past 9999 is wider: printed whole, not cached.
        let Ok(fixed) = <[u8; 19]>::try_from(t.as_slice()) else {
            out.extend_from_slice(&t);
            out.push(b'.');
            digits(out, micros.into(), 6);
            out.push(b'Z');
            return;
        };
        text = fixed;
        SECOND.set((secs, text));
    }
    // The whole stamp in one write: `text`, `.`, six digits, `Z` (a clock's microseconds
    // are below 10⁶).
    let mut stamp = [0u8; 27];
    stamp[..19].copy_from_slice(&text);
    stamp[19] = b'.';
    let m = micros.min(999_999) as usize;
    for (i, pair) in [m / 10_000, m / 100 % 100, m % 100].into_iter().enumerate() {
        stamp[20 + 2 * i..22 + 2 * i].copy_from_slice(&PAIRS[pair * 2..pair * 2 + 2]);
    }
    stamp[26] = b'Z';
    out.extend_from_slice(&stamp);
}

/// The proleptic Gregorian date of a day counted from 1970-01-01: the days are counted in
/// 400-year eras of 146,097 days from 0000-03-01, so leap days fall at the end of a year.
fn civil_date(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The two digits of 00 to 99.
const PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819202122232425262728293031323334353637383940414243444546474849\
5051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899";

/// `n` in decimal, zero-padded to `width` digits (at most 20). The numbers of a line are
/// mostly one to three digits (attempts, errcode, status, a date's parts): those are written
/// inline.
#[inline(always)]
pub(super) fn digits(out: &mut Vec<u8>, n: u64, width: usize) {
    if n < 10 && width <= 1 {
        out.push(b'0' + n as u8);
    } else if n < 100 && width <= 2 {
        pair(out, n as usize);
    } else if n < 1000 && width <= 3 {
        // An HTTP status, a latency's whole milliseconds.
        out.push(b'0' + (n / 100) as u8);
        pair(out, (n % 100) as usize);
    } else {
        digits_long(out, n, width);
    }
}

/// The two digits of `n` (below 100).
#[inline]
fn pair(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&PAIRS[n * 2..n * 2 + 2]);
}

#[inline(never)]
fn digits_long(out: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut tmp = [b'0'; 20];
    let mut i = tmp.len();
    while n >= 100 {
        let d = (n % 100) as usize * 2;
        n /= 100;
        i -= 2;
        tmp[i..i + 2].copy_from_slice(&PAIRS[d..d + 2]);
    }
    if n >= 10 {
        let d = n as usize * 2;
        i -= 2;
        tmp[i..i + 2].copy_from_slice(&PAIRS[d..d + 2]);
    } else {
        i -= 1;
        tmp[i] = b'0' + n as u8;
    }
    let start = tmp.len().saturating_sub(width).min(i);
    out.extend_from_slice(&tmp[start..]);
}

pub(super) fn int(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    digits(out, n.unsigned_abs(), 1);
}

/// A float as `Debug` (text) and serde_json (JSON) print it, written directly when it is a
/// whole number of thousandths below 10⁹ (every `latency_ms`): both print the shortest
/// decimal that reads back as the same float, which for those is the thousandths with their
/// trailing zeros cut, and `.0` for a whole number. Any other float goes through `fmt`.
pub(super) fn float(out: &mut Vec<u8>, f: f64, json: bool) {
    let milli = (f * 1000.0).round();
    if f.is_sign_positive() && milli < 1e12 && milli / 1000.0 == f {
        thousandths(out, milli as u64);
    } else if json && !f.is_finite() {
        out.extend_from_slice(b"null");
    } else {
        let _ = write!(Bytes(out), "{f:?}");
    }
}

/// `m / 1000` as the shortest decimal: `9.321`, `9.32`, `9.0` (what `Debug` and serde_json
/// print for the float `m as f64 / 1000.0`, below 10⁹).
pub(super) fn thousandths(out: &mut Vec<u8>, m: u64) {
    digits(out, m / 1000, 1);
    out.push(b'.');
    let frac = (m % 1000) as usize;
    if frac % 100 == 0 {
        out.push(b'0' + (frac / 100) as u8);
    } else if frac % 10 == 0 {
        pair(out, frac / 10);
    } else {
        out.push(b'0' + (frac / 100) as u8);
        pair(out, frac % 100);
    }
}

/// A `fmt::Write` over the line's bytes.
struct Bytes<'a>(&'a mut Vec<u8>);

impl fmt::Write for Bytes<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// `s` quoted as `Debug` quotes a `str`: printable ASCII but `"` and `\` as is, anything else
/// through `Debug` itself.
#[inline]
pub(super) fn debug_str(out: &mut Vec<u8>, s: &str) {
    if plain::debug_plain(s.as_bytes()) {
        quoted(out, s);
    } else {
        let _ = write!(Bytes(out), "{s:?}");
    }
}

/// `s` between double quotes, as it is: for a string that needs no escaping in either format.
#[inline]
pub(super) fn quoted(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

/// `s` as a JSON string, escaped as serde_json escapes it.
pub(super) fn json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    json_rest(out, s);
}

/// [`json_str`] after its opening quote (which a caller may write together with the key
/// before it): `s` escaped and the closing quote. Inlined: it is most of a JSON access line's
/// strings, where the call itself cost a sixth of it (callgrind).
#[inline(always)]
pub(super) fn json_rest(out: &mut Vec<u8>, s: &str) {
    if plain::json_plain(s.as_bytes()) {
        out.extend_from_slice(s.as_bytes());
    } else {
        json_inner(out, s);
    }
    out.push(b'"');
}

/// The inside of [`json_str`].
fn json_inner(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// `Debug` output, escaped as a JSON string as it is written.
struct JsonEscaping<'a>(&'a mut Vec<u8>);

impl fmt::Write for JsonEscaping<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        json_inner(self.0, s);
        Ok(())
    }
}

struct TextFields<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl TextFields<'_> {
    /// The separator and `name=`; false for a field left out (`log.*`, the message's name).
    fn key(&mut self, field: &Field) -> bool {
        let name = field.name();
        if name.starts_with("log.") {
            return false;
        }
        if !std::mem::take(&mut self.first) {
            self.out.push(b' ');
        }
        if name != "message" {
            self.out
                .extend_from_slice(name.strip_prefix("r#").unwrap_or(name).as_bytes());
            self.out.push(b'=');
        }
        true
    }
}

impl Visit for TextFields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.key(field) {
            let _ = write!(Bytes(self.out), "{value:?}");
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if self.key(field) {
            if field.name() == "message" {
                self.out.extend_from_slice(value.as_bytes());
            } else {
                debug_str(self.out, value);
            }
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.key(field) {
            digits(self.out, value, 1);
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.key(field) {
            int(self.out, value);
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if self.key(field) {
            float(self.out, value, false);
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.key(field) {
            self.out
                .extend_from_slice(if value { b"true" } else { b"false" });
        }
    }
}

struct JsonFields<'a> {
    out: &'a mut Vec<u8>,
}

impl JsonFields<'_> {
    fn key(&mut self, field: &Field) {
        self.out.push(b',');
        json_str(self.out, field.name());
        self.out.push(b':');
    }
}

impl Visit for JsonFields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.key(field);
        self.out.push(b'"');
        let _ = write!(JsonEscaping(self.out), "{value:?}");
        self.out.push(b'"');
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        json_str(self.out, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        digits(self.out, value, 1);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        int(self.out, value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        float(self.out, value, true);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_float(f: f64) -> String {
        let mut out = Vec::new();
        float(&mut out, f, false);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn floats_print_as_debug_and_serde_json_print_them() {
        for micros in [
            0u64,
            1,
            9,
            10,
            99,
            100,
            999,
            1000,
            1234,
            9321,
            120_000,
            3_600_000_000,
        ]
        .into_iter()
        // Every fraction of a millisecond: the trailing zeros each cuts.
        .chain(1_000..2_000)
        {
            let f = micros as f64 / 1000.0;
            assert_eq!(text_float(f), format!("{f:?}"), "{micros} µs");
            let mut json = Vec::new();
            float(&mut json, f, true);
            assert_eq!(
                String::from_utf8(json).unwrap(),
                serde_json::to_string(&f).unwrap()
            );
        }
        for f in [0.1 + 0.2, -0.0, 1e-7, -2.5, 1e300, f64::NAN, f64::INFINITY] {
            assert_eq!(text_float(f), format!("{f:?}"));
        }
        let mut json = Vec::new();
        float(&mut json, f64::NAN, true);
        assert_eq!(json, b"null");
    }

    #[test]
    fn integers_print_as_display_prints_them() {
        for n in [
            0u64,
            5,
            9,
            10,
            42,
            99,
            100,
            101,
            999,
            1000,
            12_345,
            u64::MAX,
        ] {
            for width in 1..=6 {
                let mut out = Vec::new();
                digits(&mut out, n, width);
                assert_eq!(String::from_utf8(out).unwrap(), format!("{n:0width$}"));
            }
        }
        for n in [0i64, -1, 60_020, -40_014, i64::MIN, i64::MAX] {
            let mut out = Vec::new();
            int(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
    }

    #[test]
    fn now_is_the_wall_clock_to_the_microsecond() {
        use std::time::{SystemTime, UNIX_EPOCH};
        let stamp = |t: SystemTime| {
            let since = t.duration_since(UNIX_EPOCH).unwrap();
            let mut out = Vec::new();
            timestamp(&mut out, since.as_secs(), since.subsec_micros());
            String::from_utf8(out).unwrap()
        };
        let before = stamp(SystemTime::now());
        let mut out = Vec::new();
        now(&mut out);
        let after = stamp(SystemTime::now());
        let now = String::from_utf8(out).unwrap();
        // Same width (27), so text order is time order.
        assert!(before <= now && now <= after, "{before} {now} {after}");
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        for (secs, micros, want) in [
            (0, 0, "1970-01-01T00:00:00.000000Z"),
            (951_782_400, 7, "2000-02-29T00:00:00.000007Z"),
            (1_796_134_625, 123_456, "2026-12-01T14:17:05.123456Z"),
            (4_107_542_399, 999_999, "2100-02-28T23:59:59.999999Z"),
            (4_107_542_399, 5, "2100-02-28T23:59:59.000005Z"),
            (253_402_300_800, 1, "10000-01-01T00:00:00.000001Z"),
        ] {
            let mut out = Vec::new();
            timestamp(&mut out, secs, micros);
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }

    #[test]
    fn strings_are_escaped_as_debug_and_serde_json_escape_them() {
        for s in [
            "plain",
            "",
            "a\"b",
            "back\\slash",
            "new\nline",
            "tab\t",
            "\u{1}",
            "é中",
            "\u{7f}",
            "\u{1f}",
            " ~",
            "a long plain string, well past sixteen bytes, with one \" near its end",
        ] {
            let mut text = Vec::new();
            debug_str(&mut text, s);
            assert_eq!(String::from_utf8(text).unwrap(), format!("{s:?}"));
            let mut json = Vec::new();
            json_str(&mut json, s);
            assert_eq!(
                String::from_utf8(json).unwrap(),
                serde_json::to_string(s).unwrap()
            );
        }
    }
}
