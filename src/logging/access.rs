//! The access line, written straight from its fields: the one event of every call, so it skips
//! `tracing`'s field visiting and `fmt` altogether. The line is byte for byte the one the
//! `tracing` event of the same fields makes through [`super::format`] (and tracing-subscriber
//! before it): the tests compare them. Whether it is written at all is still the filter's
//! call (target `access` at INFO); without the process's writer installed (a library user, a
//! test) it is that `tracing` event.

use tracing::Level;

use super::format::{self, debug_str, float, int, json_str, Format};

/// One call's access line. `None` fields are left out, as `tracing` leaves out a `None`.
pub struct AccessLine<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub api: &'a str,
    pub app: &'a str,
    pub client: Option<&'a str>,
    pub upstream: &'a str,
    pub attempts: u32,
    pub outcome: &'a str,
    pub status: u16,
    pub errcode: Option<i64>,
    pub reason: Option<&'a str>,
    pub detail: Option<&'a str>,
    pub undelivered_users: Option<u32>,
    pub undelivered_parties: Option<u32>,
    pub undelivered_tags: Option<u32>,
    pub unlicensed_users: Option<u32>,
    pub latency_ms: f64,
}

impl AccessLine<'_> {
    /// Logs the line, if the filter lets `access` lines through.
    pub fn log(&self) {
        if !tracing::enabled!(target: "access", Level::INFO) {
            return;
        }
        match super::installed() {
            Some((sink, fmt)) => super::with_line(|out| {
                self.write(out, fmt);
                sink.push(out);
            }),
            None => self.event(),
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
            latency_ms = self.latency_ms,
            "call"
        );
    }

    /// Appends the line (with its newline) to `out`.
    pub(super) fn write(&self, out: &mut Vec<u8>, fmt: Format) {
        out.reserve(512);
        let json = fmt == Format::Json;
        let mut w = Fields { out, json };
        if json {
            w.out.extend_from_slice(b"{\"timestamp\":\"");
            format::now(w.out);
            w.out
                .extend_from_slice(b"\",\"level\":\"INFO\",\"message\":\"call\"");
        } else {
            format::now(w.out);
            w.out.extend_from_slice(b"  INFO access: call");
        }
        w.shown(b"request_id", self.request_id);
        w.shown(b"method", self.method);
        w.shown(b"path", self.path);
        w.shown(b"api", self.api);
        w.string(b"app", self.app);
        if let Some(c) = self.client {
            w.string(b"client", c);
        }
        w.string(b"upstream", self.upstream);
        w.uint(b"attempts", self.attempts.into());
        w.string(b"outcome", self.outcome);
        w.uint(b"status", self.status.into());
        if let Some(e) = self.errcode {
            w.key(b"errcode");
            int(w.out, e);
        }
        if let Some(r) = self.reason {
            w.string(b"reason", r);
        }
        if let Some(d) = self.detail {
            w.string(b"detail", d);
        }
        for (name, n) in [
            (&b"undelivered_users"[..], self.undelivered_users),
            (b"undelivered_parties", self.undelivered_parties),
            (b"undelivered_tags", self.undelivered_tags),
            (b"unlicensed_users", self.unlicensed_users),
        ] {
            if let Some(n) = n {
                w.uint(name, n.into());
            }
        }
        w.key(b"latency_ms");
        float(w.out, self.latency_ms, json);
        if json {
            w.out.extend_from_slice(b",\"target\":\"access\"}");
        }
        w.out.push(b'\n');
    }
}

/// Writes `name=value` (text) or `,"name":value` (JSON).
struct Fields<'a> {
    out: &'a mut Vec<u8>,
    json: bool,
}

impl Fields<'_> {
    fn key(&mut self, name: &[u8]) {
        if self.json {
            self.out.extend_from_slice(b",\"");
            self.out.extend_from_slice(name);
            self.out.extend_from_slice(b"\":");
        } else {
            self.out.push(b' ');
            self.out.extend_from_slice(name);
            self.out.push(b'=');
        }
    }

    /// A `Display` value (`%` in the macro): bare in text.
    fn shown(&mut self, name: &[u8], v: &str) {
        self.key(name);
        if self.json {
            json_str(self.out, v);
        } else {
            self.out.extend_from_slice(v.as_bytes());
        }
    }

    /// A `&str` value: quoted in text.
    fn string(&mut self, name: &[u8], v: &str) {
        self.key(name);
        if self.json {
            json_str(self.out, v);
        } else {
            debug_str(self.out, v);
        }
    }

    fn uint(&mut self, name: &[u8], v: u64) {
        self.key(name);
        format::digits(self.out, v, 1);
    }
}
