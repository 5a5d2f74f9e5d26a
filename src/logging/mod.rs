//! The process's log output: a `tracing` layer that formats each event as one line (text or
//! JSON, see [`format`]) on the calling thread and hands it to a bounded buffer that one
//! background thread writes to stderr (see [`sink`]). A call never waits for stderr: when the
//! buffer is full its line is dropped and counted (`wecom_log_lines_dropped_total`).
//!
//! [`install`] starts the writer; the [`Guard`] it returns writes what is buffered when it is
//! dropped, so `main` keeps it until the process exits (the graceful SIGTERM path included).
//! The filter (which targets at which level) is the binary's: it wraps this layer.

mod access;
mod format;
mod sink;

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

pub use access::AccessLine;
pub use format::Format;
use sink::Sink;

/// Bytes of lines the buffer holds before it drops: about 4,000 access lines, several
/// seconds of them at full load, while stderr is slow or stuck.
const BUFFER_BYTES: usize = 1024 * 1024;

/// How long the guard waits, at exit, for the buffered lines to be written.
const EXIT_FLUSH: Duration = Duration::from_secs(2);

/// The sink [`install`] started and its format: what the access line writes to, the metrics
/// read and the admin flushes.
static INSTALLED: OnceLock<(Arc<Sink>, Format)> = OnceLock::new();

fn installed() -> Option<(&'static Sink, Format)> {
    INSTALLED.get().map(|(s, f)| (&**s, *f))
}

/// Whether the filter lets `access` lines through, once [`install`]ed: the process's
/// subscriber and its filter are set right after, before any call, and never change, so the
/// filter is asked once. (`tracing::enabled!` asks it on every call: about 100 instructions,
/// `benches/profile.sh`.)
fn access_on() -> bool {
    static ACCESS_ON: OnceLock<bool> = OnceLock::new();
    *ACCESS_ON.get_or_init(|| tracing::enabled!(target: "access", tracing::Level::INFO))
}

/// Lines dropped so far (buffer full, or stderr failing); 0 before [`install`].
pub fn dropped_lines() -> u64 {
    installed().map_or(0, |(s, _)| s.dropped())
}

/// Waits until the lines logged so far are written to stderr, at most `within`; whether they
/// were (true when no writer is installed).
pub fn flush(within: Duration) -> bool {
    installed().is_none_or(|(s, _)| s.flush(within))
}

/// The layer that formats events into lines for the writer.
pub struct LineLayer {
    format: Format,
    sink: Arc<Sink>,
}

/// Writes what is buffered, then stops the writer, when dropped.
pub struct Guard {
    sink: Arc<Sink>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.sink.flush(EXIT_FLUSH);
        self.sink.close();
    }
}

/// Starts the background writer to stderr and returns the layer that feeds it, and the guard
/// that flushes it at exit. Called once per process.
pub fn install(format: Format) -> std::io::Result<(LineLayer, Guard)> {
    let sink = Sink::new(BUFFER_BYTES);
    let writer = sink.clone();
    std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || writer.run_writer(&mut std::io::stderr()))?;
    // A second install (there is none) would keep the first one's sink for the access line.
    let _ = INSTALLED.set((sink.clone(), format));
    Ok((
        LineLayer {
            format,
            sink: sink.clone(),
        },
        Guard { sink },
    ))
}

thread_local! {
    /// Each thread formats into its own buffer, kept between lines.
    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's line buffer, emptied; on a buffer of its own if that one is busy
/// (formatting a value logged itself) or gone (the thread is ending).
fn with_line(f: impl FnOnce(&mut Vec<u8>)) {
    let mut f = Some(f);
    let _ = LINE.try_with(|line| {
        if let Ok(mut out) = line.try_borrow_mut() {
            out.clear();
            (f.take().expect("once"))(&mut out);
            if out.capacity() > 64 * 1024 {
                *out = Vec::new();
            }
        }
    });
    if let Some(f) = f {
        f(&mut Vec::new());
    }
}

impl<S: Subscriber> Layer<S> for LineLayer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        with_line(|out| {
            let normalized = event.normalized_metadata();
            let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
            format::line(out, self.format, meta.target(), meta.level(), event);
            self.sink.push_now(out);
        });
    }
}

/// What an output that is not stderr needs, for the tests of the layer.
#[cfg(test)]
fn test_layer(format: Format, capacity: usize) -> (LineLayer, Arc<Sink>) {
    let sink = Sink::new(capacity);
    (
        LineLayer {
            format,
            sink: sink.clone(),
        },
        sink,
    )
}

#[cfg(test)]
mod tests;
