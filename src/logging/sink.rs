//! The bounded buffer between the threads that log and the one thread that writes: a call's
//! thread appends its whole line under a short lock (the access line is written straight into
//! the buffer; never a write to the output, never a wait) or, when the buffer is full, drops
//! the line and counts it; the writer thread takes everything buffered at
//! once and writes it with one `write_all`, so lines reach the output whole and in order, never
//! interleaved with one another.
//!
//! The writer thread sleeps while nothing is buffered and is woken by the first line after
//! that; after each write it pauses [`PAUSE`], so under load a write carries many lines and the
//! callers wake it about once per pause, not once per line, while a lone line is out at once.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long the writer waits after a write before taking the next batch.
pub(super) const PAUSE: Duration = Duration::from_millis(1);

/// A buffer that grew past this under a burst is given back once written.
const KEEP_CAPACITY: usize = 256 * 1024;

/// What the callers and the writer thread share.
pub(crate) struct Sink {
    state: Mutex<State>,
    /// The writer thread waits here for lines (or for the end).
    wake: Condvar,
    /// [`Sink::flush`] waits here for the writer to catch up.
    written: Condvar,
    /// Lines refused because the buffer was full, or lost because the output failed.
    dropped: AtomicU64,
    /// Bytes the buffer may hold.
    capacity: usize,
}

#[derive(Default)]
struct State {
    buf: Vec<u8>,
    /// Lines in `buf`.
    lines: u64,
    /// Lines ever appended.
    appended: u64,
    /// Lines ever taken by the writer (written, or lost to a failed write).
    done: u64,
    /// The writer thread is waiting on `wake`.
    idle: bool,
    /// The guard is gone: write what is left and stop.
    closing: bool,
}

impl Sink {
    pub(crate) fn new(capacity: usize) -> Arc<Sink> {
        Arc::new(Sink {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            written: Condvar::new(),
            dropped: AtomicU64::new(0),
            capacity,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A thread that panicked while holding the lock left the buffer consistent: every
        // change to it is a whole line.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends one whole line, or drops it if it does not fit. Never blocks on the output.
    pub(crate) fn push(&self, line: &[u8]) {
        self.push_with(|buf| buf.extend_from_slice(line));
    }

    /// Appends one whole line written by `line` straight into the buffer (no copy of it is
    /// made first), or drops it if it does not fit. `line` only appends bytes (it cannot
    /// fail), so the buffer still holds whole lines only.
    pub(crate) fn push_with(&self, line: impl FnOnce(&mut Vec<u8>)) {
        let mut st = self.lock();
        let start = st.buf.len();
        line(&mut st.buf);
        if st.buf.len() > self.capacity {
            st.buf.truncate(start);
            drop(st);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        st.lines += 1;
        st.appended += 1;
        let wake = std::mem::take(&mut st.idle);
        drop(st);
        if wake {
            self.wake.notify_one();
        }
    }

    /// Lines dropped so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every line appended before this call is written, at most `within`; whether
    /// they were.
    pub(crate) fn flush(&self, within: Duration) -> bool {
        let until = Instant::now() + within;
        let mut st = self.lock();
        let target = st.appended;
        if std::mem::take(&mut st.idle) {
            self.wake.notify_one();
        }
        while st.done < target {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = self
                .written
                .wait_timeout(st, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }

    /// Takes what is buffered, as the writer would (the layer's tests read lines this way).
    #[cfg(test)]
    pub(crate) fn take(&self) -> Vec<u8> {
        let mut st = self.lock();
        st.lines = 0;
        std::mem::take(&mut st.buf)
    }

    /// Tells the writer thread to write what is left and stop.
    pub(crate) fn close(&self) {
        self.lock().closing = true;
        self.wake.notify_one();
    }

    /// The writer thread's loop: returns once closed and empty.
    pub(crate) fn run_writer(&self, out: &mut dyn Write) {
        let mut batch = Vec::new();
        loop {
            let (lines, upto) = {
                let mut st = self.lock();
                while st.buf.is_empty() {
                    if st.closing {
                        return;
                    }
                    st.idle = true;
                    st = self.wake.wait(st).unwrap_or_else(|p| p.into_inner());
                }
                st.idle = false;
                std::mem::swap(&mut st.buf, &mut batch);
                (std::mem::take(&mut st.lines), st.appended)
            };
            if out.write_all(&batch).and_then(|()| out.flush()).is_err() {
                self.dropped.fetch_add(lines, Ordering::Relaxed);
            }
            batch.clear();
            if batch.capacity() > KEEP_CAPACITY {
                batch.shrink_to(KEEP_CAPACITY / 4);
            }
            self.lock().done = upto;
            self.written.notify_all();
            std::thread::sleep(PAUSE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// An output that takes each write only when the test lets it, and keeps what it got.
    struct Gated {
        open: mpsc::Receiver<()>,
        got: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Gated {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.open.recv().ok();
            self.got.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn line(n: usize) -> Vec<u8> {
        format!("line {n:04} {}\n", "x".repeat(20)).into_bytes()
    }

    #[test]
    fn a_full_buffer_drops_and_counts_lines_without_blocking_and_keeps_the_rest_whole() {
        // Room for 4 lines of 31 bytes.
        let sink = Sink::new(4 * 31);
        let (open, gate) = mpsc::channel();
        let got = Arc::new(Mutex::new(Vec::new()));
        let mut out = Gated {
            open: gate,
            got: got.clone(),
        };
        let writer = {
            let sink = sink.clone();
            std::thread::spawn(move || sink.run_writer(&mut out))
        };
        // The writer takes the first line and blocks in its write; the next 4 fill the
        // buffer, the 5 after them are dropped, and no push waits for the output.
        sink.push(&line(0));
        while sink.lock().lines != 0 {
            std::thread::yield_now();
        }
        // Copied in, or written straight into the buffer (`push_with`): kept and dropped alike.
        for n in 1..10 {
            if n % 2 == 0 {
                sink.push(&line(n));
            } else {
                sink.push_with(|buf| buf.extend_from_slice(&line(n)));
            }
        }
        assert_eq!(sink.dropped(), 5);
        assert_eq!(
            sink.lock().buf.len(),
            4 * 31,
            "a dropped line leaves nothing behind"
        );
        for _ in 0..10 {
            open.send(()).unwrap();
        }
        assert!(sink.flush(Duration::from_secs(10)), "the writer caught up");
        sink.close();
        writer.join().unwrap();
        let got = String::from_utf8(got.lock().unwrap().clone()).unwrap();
        let expected: String = [0, 1, 2, 3, 4]
            .iter()
            .map(|&n| String::from_utf8(line(n)).unwrap())
            .collect();
        assert_eq!(got, expected, "the lines kept, whole and in order");
        // Room again once written.
        sink.push(&line(10));
        assert_eq!(sink.dropped(), 5);
    }

    #[test]
    fn a_failed_write_counts_its_lines_as_dropped() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::new(1024);
        sink.push(&line(0));
        sink.push(&line(1));
        sink.close();
        sink.run_writer(&mut Broken);
        assert_eq!(sink.dropped(), 2);
        assert!(sink.flush(Duration::ZERO), "taken, even if lost");
    }

    #[test]
    fn flush_gives_up_when_the_output_does_not_take_the_lines() {
        let sink = Sink::new(1024);
        sink.push(&line(0));
        // No writer thread: nothing is ever written.
        assert!(!sink.flush(Duration::from_millis(20)));
    }
}
