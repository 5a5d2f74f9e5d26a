//! The lines the layer writes, field by field, against the lines tracing-subscriber's own
//! formatter (the one this layer replaced) writes for the same events.

use std::sync::{Arc, Mutex};

use tracing_subscriber::layer::SubscriberExt;

use super::*;

/// An access line with every kind of field: absent, quoted, bare, numbers, a float.
fn sample(reason: Option<&'static str>) -> AccessLine<'static> {
    AccessLine {
        request_id: "7f3c2a1b",
        method: &http::Method::POST,
        path: "/cgi-bin/message/send",
        api: "message/send",
        app: "hr-bot",
        client: None,
        upstream: "primary",
        attempts: 2,
        outcome: "errcode",
        status: 200,
        errcode: Some(-1),
        reason,
        detail: Some("app went away: \"closed\"\n"),
        undelivered_users: Some(3),
        undelivered_parties: None,
        undelivered_tags: None,
        unlicensed_users: None,
        latency_us: 9321,
    }
}

/// The `tracing` event of the access line (what a subscriber other than ours sees).
fn access_event(reason: Option<&'static str>) {
    sample(reason).event();
}

/// The access line as `AccessLine::log` writes it with the writer installed.
fn direct(line: &AccessLine, format: Format) -> String {
    let mut out = Vec::new();
    line.write(&mut out, format);
    String::from_utf8(out).unwrap()
}

/// Lines the layer wrote for what `emit` logs.
fn ours(format: Format, emit: impl Fn()) -> String {
    let (layer, sink) = test_layer(format, 1 << 20);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), emit);
    String::from_utf8(sink.take()).unwrap()
}

/// A `MakeWriter` into a shared buffer, for tracing-subscriber's formatter.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Lines tracing-subscriber's fmt layer writes for the same, configured as `main` had it.
fn theirs(format: Format, emit: impl Fn()) -> String {
    let out = Shared::default();
    let w = out.clone();
    let make = move || w.clone();
    match format {
        Format::Text => {
            let layer = tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(make);
            tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), emit);
        }
        Format::Json => {
            let layer = tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_writer(make);
            tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), emit);
        }
    }
    let got = out.0.lock().unwrap().clone();
    String::from_utf8(got).unwrap()
}

/// A line without its timestamp (the one part that differs between two runs).
fn untimed(line: &str, format: Format) -> String {
    match format {
        Format::Text => line.split_once(' ').unwrap().1.to_string(),
        Format::Json => {
            let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
            let ts = v.as_object_mut().unwrap().remove("timestamp").unwrap();
            assert_eq!(ts.as_str().unwrap().len(), 27, "{line}");
            v.to_string()
        }
    }
}

#[test]
fn the_access_line_in_text_has_every_field_as_before() {
    let line = ours(Format::Text, || access_event(None));
    assert_eq!(line.matches('\n').count(), 1, "one line: {line}");
    let (ts, rest) = line.split_once(' ').unwrap();
    assert_eq!(ts.len(), 27, "RFC 3339 with microseconds: {ts}");
    assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{ts}");
    assert_eq!(
        rest,
        " INFO access: call request_id=7f3c2a1b method=POST path=/cgi-bin/message/send \
         api=message/send app=\"hr-bot\" upstream=\"primary\" attempts=2 outcome=\"errcode\" \
         status=200 errcode=-1 detail=\"app went away: \\\"closed\\\"\\n\" undelivered_users=3 \
         latency_ms=9.321\n"
    );
    for reason in [None, Some("no-token")] {
        let emit = || access_event(reason);
        assert_eq!(
            untimed(&ours(Format::Text, emit), Format::Text),
            untimed(&theirs(Format::Text, emit), Format::Text)
        );
    }
}

#[test]
fn the_access_line_in_json_has_every_field_as_before() {
    let line = ours(Format::Json, || access_event(Some("no-token")));
    assert_eq!(line.matches('\n').count(), 1, "one line: {line}");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let fields = [
        ("level", serde_json::json!("INFO")),
        ("target", "access".into()),
        ("message", "call".into()),
        ("request_id", "7f3c2a1b".into()),
        ("method", "POST".into()),
        ("path", "/cgi-bin/message/send".into()),
        ("api", "message/send".into()),
        ("app", "hr-bot".into()),
        ("upstream", "primary".into()),
        ("attempts", 2.into()),
        ("outcome", "errcode".into()),
        ("status", 200.into()),
        ("errcode", (-1).into()),
        ("reason", "no-token".into()),
        ("detail", "app went away: \"closed\"\n".into()),
        ("undelivered_users", 3.into()),
        ("latency_ms", 9.321.into()),
    ];
    for (k, want) in &fields {
        assert_eq!(&v[k], want, "{k} in {line}");
    }
    // The timestamp, and nothing else: no `client` (absent), no other key.
    assert_eq!(v.as_object().unwrap().len(), fields.len() + 1, "{line}");
    assert!(line.contains("\"latency_ms\":9.321,"), "{line}");
    // The same keys in the same order as tracing-subscriber's JSON.
    for reason in [None, Some("no-token")] {
        let emit = || access_event(reason);
        let a = ours(Format::Json, emit);
        let b = theirs(Format::Json, emit);
        let keys = |l: &str| -> Vec<String> {
            let v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(l).unwrap();
            v.keys().cloned().collect()
        };
        assert_eq!(untimed(&a, Format::Json), untimed(&b, Format::Json));
        let raw_order = |l: &str| {
            let mut k = keys(l);
            k.sort_by_key(|k| l.find(&format!("\"{k}\":")).unwrap());
            k
        };
        assert_eq!(raw_order(&a), raw_order(&b));
    }
}

#[test]
fn other_events_and_levels_print_as_before() {
    let emit = || {
        tracing::warn!(
            key = "upstreams.primary.timeout",
            n = 3u64,
            ok = true,
            "reload refused"
        );
        tracing::error!(target: "wecom_sidecar::server", error = %"bind: in use", "cannot listen");
        tracing::debug!(target: "upstream", query = "access_token=***&userid=zhangsan", "attempt");
        tracing::trace!(r#type = "jsapi", weird = "tab\there é", "ticket");
    };
    for format in [Format::Text, Format::Json] {
        let a = ours(format, emit);
        let b = theirs(format, emit);
        assert_eq!(a.lines().count(), 4, "{a}");
        for (x, y) in a.lines().zip(b.lines()) {
            assert_eq!(untimed(x, format), untimed(y, format));
        }
    }
}

#[test]
fn the_access_line_written_directly_is_the_line_of_its_event() {
    let mut every = sample(Some("no-token"));
    every.client = Some("billing");
    every.undelivered_parties = Some(1);
    every.undelivered_tags = Some(2);
    every.unlicensed_users = Some(4);
    every.detail = Some("tab\there, é, \u{1}");
    let mut few = sample(None);
    few.errcode = None;
    few.detail = None;
    few.undelivered_users = None;
    few.latency_us = 120_000;
    let mut slow = sample(None);
    slow.latency_us = 3_600_000_001;
    let mut instant = sample(None);
    instant.latency_us = 0;
    for line in [
        sample(None),
        sample(Some("quota")),
        every,
        few,
        slow,
        instant,
    ] {
        for format in [Format::Text, Format::Json] {
            let emit = || line.event();
            let ours_direct = direct(&line, format);
            assert_eq!(ours_direct.matches('\n').count(), 1, "{ours_direct}");
            assert_eq!(
                untimed(&ours_direct, format),
                untimed(&ours(format, emit), format)
            );
            assert_eq!(
                untimed(&ours_direct, format),
                untimed(&theirs(format, emit), format)
            );
            if format == Format::Json {
                // Byte for byte, key order included, but for the timestamp.
                let cut = |l: &str| l[l.find("\"level\"").unwrap()..].to_string();
                assert_eq!(cut(&ours_direct), cut(&ours(format, emit)));
            }
        }
    }
}

#[test]
fn the_access_line_is_logged_only_when_the_filter_lets_it_through() {
    use tracing_subscriber::Layer as _;
    let (layer, sink) = test_layer(Format::Text, 1 << 20);
    let filter = tracing_subscriber::EnvFilter::new("info,access=warn");
    let sub = tracing_subscriber::registry().with(layer.with_filter(filter));
    tracing::subscriber::with_default(sub, || {
        sample(None).log();
        tracing::info!(target: "wecom_sidecar::x", "kept");
    });
    let got = String::from_utf8(sink.take()).unwrap();
    assert!(!got.contains("access"), "{got}");
    assert!(got.contains("kept"), "{got}");

    // Let through, it is logged, once.
    let (layer, sink) = test_layer(Format::Text, 1 << 20);
    let filter = tracing_subscriber::EnvFilter::new("warn,access=info");
    let sub = tracing_subscriber::registry().with(layer.with_filter(filter));
    tracing::subscriber::with_default(sub, || sample(None).log());
    let got = String::from_utf8(sink.take()).unwrap();
    assert_eq!(got.matches(" access: call ").count(), 1, "{got}");
}

#[test]
fn an_event_is_written_at_once_even_while_the_writer_lingers_for_access_lines() {
    // A writer that lingers an hour after each write: only a line pushed now (every event the
    // layer takes: a warning, a reload, a debug line) has it write the second line in time.
    let sink = Sink::lingering(1 << 20, Duration::from_secs(3600));
    let out = Shared::default();
    {
        let (sink, mut out) = (sink.clone(), out.clone());
        std::thread::spawn(move || sink.run_writer(&mut out));
    }
    let written = |what: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let got = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
            if got.contains(what) || std::time::Instant::now() > deadline {
                return got.contains(what);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    let layer = LineLayer {
        format: Format::Text,
        sink: sink.clone(),
    };
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::info!(target: "wecom_sidecar::x", "first");
        assert!(written("first"), "the idle writer took the first line");
        tracing::warn!(target: "wecom_sidecar::x", "upstream ejected");
        assert!(
            written("upstream ejected"),
            "the warning waited for the writer's linger"
        );
    });
    sink.close();
}
