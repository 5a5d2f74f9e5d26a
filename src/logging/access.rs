//! The access line, written straight from its fields: the one event of every call, so it skips
//! `tracing`'s field visiting and `fmt` altogether. The line is byte for byte the one the
//! `tracing` event of the same fields makes through [`super::format`] (and tracing-subscriber
//! before it): the tests compare them. Whether it is written at all is still the filter's
//! call (target `access` at INFO); without the process's writer installed (a library user, a
//! test) it is that `tracing` event.

use tracing::Level;

use super::format::{self, debug_str, int, Format};

/// One call's access line. `None` fields are left out, as `tracing` leaves out a `None`.
pub struct AccessLine<'a> {
    pub request_id: &'a str,
    /// A method is a token (`http` refuses any other byte in one): JSON holds it unescaped.
    pub method: &'a http::Method,
    pub path: &'a str,
    pub api: &'a str,
    pub app: &'a str,
    pub client: Option<&'a str>,
    pub upstream: &'a str,
    pub attempts: u32,
    /// The sidecar's own names (`Outcome::as_str`, `Reason::as_str`), never escaped: written
    /// as they are in both formats.
    pub outcome: &'static str,
    pub status: u16,
    pub errcode: Option<i64>,
    pub reason: Option<&'static str>,
    pub detail: Option<&'a str>,
    pub undelivered_users: Option<u32>,
    pub undelivered_parties: Option<u32>,
    pub undelivered_tags: Option<u32>,
    pub unlicensed_users: Option<u32>,
    /// The call's latency in whole microseconds, printed as milliseconds with at most 3
    /// decimals (`latency_ms`: 9321 µs is `9.321`).
    pub latency_us: u64,
}

impl AccessLine<'_> {
    /// Logs the line, if the filter lets `access` lines through.
    pub fn log(&self) {
        match super::installed() {
            // Written straight into the sink's buffer: the one line of every call is not
            // formatted elsewhere and copied in.
            Some((sink, fmt)) => {
                if super::access_on() {
                    sink.push_batched(|out| self.write(out, fmt));
                }
            }
            None => {
                if tracing::enabled!(target: "access", Level::INFO) {
                    self.event();
                }
            }
        }
    }

    /// The `tracing` event of the same fields.
    pub(super) fn event(&self) {
        tracing::info!(
            target: "access",
            request_id = %self.request_id,
            method = %self.method,
            path = %self.path,
            api = %self.api,
            app = self.app,
            client = self.client,
            upstream = self.upstream,
            attempts = self.attempts,
            outcome = self.outcome,
            status = self.status,
            errcode = self.errcode,
            reason = self.reason,
            detail = self.detail,
            undelivered_users = self.undelivered_users,
            undelivered_parties = self.undelivered_parties,
            undelivered_tags = self.undelivered_tags,
            unlicensed_users = self.unlicensed_users,
            latency_ms = self.latency_us as f64 / 1000.0,
            "call"
        );
    }

    /// Appends the line (with its newline) to `out`.
    pub(super) fn write(&self, out: &mut Vec<u8>, fmt: Format) {
        out.reserve(512);
        let json = fmt == Format::Json;
        // `name=` (text) or `,"name":` (JSON), as one constant each.
        macro_rules! key {
            ($name:literal) => {
                if json {
                    out.extend_from_slice(concat!(",\"", $name, "\":").as_bytes())
                } else {
                    out.extend_from_slice(concat!(" ", $name, "=").as_bytes())
                }
            };
        }
        // `,"name":"` and the JSON string's rest: the key and the opening quote as one
        // constant.
        macro_rules! json_string {
            ($name:literal, $v:expr) => {{
                out.extend_from_slice(concat!(",\"", $name, "\":\"").as_bytes());
                format::json_rest(out, $v)
            }};
        }
        // A `Display` value (`%` in the macro): bare in text.
        macro_rules! shown {
            ($name:literal, $v:expr) => {{
                if json {
                    json_string!($name, $v)
                } else {
                    key!($name);
                    out.extend_from_slice($v.as_bytes())
                }
            }};
        }
        // A `&str` value: quoted in text.
        macro_rules! string {
            ($name:literal, $v:expr) => {{
                if json {
                    json_string!($name, $v)
                } else {
                    key!($name);
                    debug_str(out, $v)
                }
            }};
        }
        // One of the sidecar's own names, or a token: quoted, with nothing to escape (the
        // debug build, which the e2e tests run, checks it on every line).
        macro_rules! name {
            ($name:literal, $v:expr) => {{
                key!($name);
                let v: &str = $v;
                debug_assert!(
                    crate::plain::debug_plain(v.as_bytes())
                        && crate::plain::json_plain(v.as_bytes()),
                    "{v:?} is written unescaped"
                );
                format::quoted(out, v);
            }};
        }
        macro_rules! uint {
            ($name:literal, $v:expr) => {{
                key!($name);
                format::digits(out, u64::from($v), 1)
            }};
        }
        if json {
            out.extend_from_slice(b"{\"timestamp\":\"");
            format::now(out);
            out.extend_from_slice(b"\",\"level\":\"INFO\",\"message\":\"call\"");
        } else {
            format::now(out);
            out.extend_from_slice(b"  INFO access: call");
        }
        shown!("request_id", self.request_id);
        let method = self.method.as_str();
        if json {
            name!("method", method);
        } else {
            shown!("method", method);
        }
        shown!("path", self.path);
        shown!("api", self.api);
        string!("app", self.app);
        if let Some(c) = self.client {
            string!("client", c);
        }
        string!("upstream", self.upstream);
        uint!("attempts", self.attempts);
        name!("outcome", self.outcome);
        uint!("status", self.status);
        if let Some(e) = self.errcode {
            key!("errcode");
            int(out, e);
        }
        if let Some(r) = self.reason {
            name!("reason", r);
        }
        if let Some(d) = self.detail {
            string!("detail", d);
        }
        if let Some(n) = self.undelivered_users {
            uint!("undelivered_users", n);
        }
        if let Some(n) = self.undelivered_parties {
            uint!("undelivered_parties", n);
        }
        if let Some(n) = self.undelivered_tags {
            uint!("undelivered_tags", n);
        }
        if let Some(n) = self.unlicensed_users {
            uint!("unlicensed_users", n);
        }
        key!("latency_ms");
        format::thousandths(out, self.latency_us);
        if json {
            out.extend_from_slice(b",\"target\":\"access\"}");
        }
        out.push(b'\n');
    }
}
