//! The bounded buffer between the threads that log and the one thread that writes: a call's
//! thread appends its whole line under a short lock (the access line is written straight into
//! the buffer; never a write to the output, never a wait) or, when the buffer is full, drops
//! the line and counts it; the writer thread takes everything buffered at
//! once and writes it with one `write_all`, so lines reach the output whole and in order, never
//! interleaved with one another.
//!
//! The writer thread sleeps while nothing is buffered and is woken by the first line after
//! that, so a lone line is out at once. After each write it lingers up to [`LINGER`] for more
//! access lines ([`Sink::push_batched`]), unless they pass an eighth of the buffer first, a
//! flush asks for them, any other line comes ([`Sink::push_now`]: a warning, a reload, a debug
//! line is out at once, as an operator watching the log expects), or the sink closes: under
//! load a write then carries many access lines, and the writer wakes about 100 times a second,
//! not once per call or per millisecond (each wake took the cores the calls run on).
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long the writer waits after a write for more lines before taking the next batch.
pub(super) const LINGER: Duration = Duration::from_millis(10);

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
    /// Buffered bytes that end the writer's linger.
    high_water: usize,
    /// How long the writer lingers after a write.
    linger: Duration,
}

/// What the writer thread is doing, as the callers need to know it.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Writer {
    /// Writing, or about to take the buffer: nothing to wake.
    #[default]
    Busy,
    /// Waiting for the first line.
    Idle,
    /// Waiting after a write, for more lines or the end of its linger.
    Lingering,
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
    /// The writer thread is waiting on `wake`: with nothing buffered (`Idle`), or after a
    /// write (`Lingering`).
    writer: Writer,
    /// A flush waits, or a line that is not to wait came: the writer takes the buffer without
    /// lingering.
    hurry: bool,
    /// The guard is gone: write what is left and stop.
    closing: bool,
}

impl Sink {
    pub(crate) fn new(capacity: usize) -> Arc<Sink> {
        Sink::lingering(capacity, LINGER)
    }

    /// A sink whose writer lingers `linger` after each write.
    pub(crate) fn lingering(capacity: usize, linger: Duration) -> Arc<Sink> {
        Arc::new(Sink {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            written: Condvar::new(),
            dropped: AtomicU64::new(0),
            capacity,
            high_water: capacity / 8,
            linger,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A thread that panicked while holding the lock left the buffer consistent: every
        // change to it is a whole line.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends one whole line and has the writer take it now, even while it lingers; or drops
    /// it if it does not fit. Never blocks on the output.
    pub(crate) fn push_now(&self, line: &[u8]) {
        self.push(|buf| buf.extend_from_slice(line), true);
    }

    /// Appends one whole line written by `line` straight into the buffer (no copy of it is
    /// made first), for the writer's next batch; or drops it if it does not fit. `line` only
    /// appends bytes (it cannot fail), so the buffer still holds whole lines only.
    pub(crate) fn push_batched(&self, line: impl FnOnce(&mut Vec<u8>)) {
        self.push(line, false);
    }

    fn push(&self, line: impl FnOnce(&mut Vec<u8>), now: bool) {
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
        // A busy writer sees `hurry` when it is done and takes this line without lingering.
        st.hurry |= now;
        let wake = match st.writer {
            Writer::Idle => true,
            Writer::Lingering => now || st.buf.len() >= self.high_water,
            Writer::Busy => false,
        };
        if wake {
            st.writer = Writer::Busy;
        }
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
        if st.done < target {
            st.hurry = true;
            if st.writer != Writer::Busy {
                st.writer = Writer::Busy;
                self.wake.notify_one();
            }
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
        let mut st = self.lock();
        st.closing = true;
        st.writer = Writer::Busy;
        drop(st);
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
                    st.writer = Writer::Idle;
                    st = self.wake.wait(st).unwrap_or_else(|p| p.into_inner());
                }
                st.writer = Writer::Busy;
                st.hurry = false;
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
            let mut st = self.lock();
            st.done = upto;
            self.written.notify_all();
            // Linger for more lines, unless the next batch is wanted now.
            let until = Instant::now() + self.linger;
            while !(st.hurry || st.closing || st.buf.len() >= self.high_water) {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                st.writer = Writer::Lingering;
                st = self
                    .wake
                    .wait_timeout(st, left)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            st.writer = Writer::Busy;
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
        sink.push_now(&line(0));
        assert!(
            until(&sink, |st| st.lines == 0),
            "the writer took the first line"
        );
        // Copied in, or written straight into the buffer (`push_batched`): kept and dropped
        // alike.
        for n in 1..10 {
            if n % 2 == 0 {
                sink.push_now(&line(n));
            } else {
                sink.push_batched(|buf| buf.extend_from_slice(&line(n)));
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
        sink.push_now(&line(10));
        assert_eq!(sink.dropped(), 5);
    }

    /// An output that keeps each write apart.
    #[derive(Clone, Default)]
    struct Writes(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Writes {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().push(b.to_vec());
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Waits (at most 10 s) until `what` holds of the sink's state; whether it did.
    fn until(sink: &Sink, what: impl Fn(&State) -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if what(&sink.lock()) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits (at most 10 s) until the writer has taken every line appended so far, without
    /// asking it to hurry as `flush` does.
    fn caught_up(sink: &Sink) -> bool {
        until(sink, |st| st.done == st.appended)
    }

    /// Appends access lines `r` for the next batch.
    fn batched(sink: &Sink, r: std::ops::Range<usize>) {
        for n in r {
            sink.push_batched(|buf| buf.extend_from_slice(&line(n)));
        }
    }

    #[test]
    fn a_lone_line_is_written_at_once_and_the_lines_after_it_in_one_write() {
        // A writer that lingers an hour after each write: only a flush, the high water (an
        // eighth of 1,240 bytes: 5 lines of 31), a line pushed now or the close makes it
        // write again.
        let sink = Sink::lingering(40 * 31, Duration::from_secs(3600));
        let out = Writes::default();
        let (ended, end) = mpsc::channel();
        {
            let (sink, mut out) = (sink.clone(), out.clone());
            std::thread::spawn(move || {
                sink.run_writer(&mut out);
                let _ = ended.send(());
            });
        }
        batched(&sink, 0..1);
        assert!(caught_up(&sink), "the first line wakes the idle writer");
        batched(&sink, 1..2);
        assert!(
            sink.flush(Duration::from_secs(10)),
            "a flush ends the linger"
        );
        // Four lines stay below the high water; the writer lingers on (once any wake they
        // caused has passed), and the fifth ends its wait.
        batched(&sink, 2..6);
        assert!(
            until(&sink, |st| st.writer == Writer::Lingering),
            "the writer lingers"
        );
        batched(&sink, 6..7);
        assert!(caught_up(&sink), "the high water ends the linger");
        batched(&sink, 7..8);
        sink.push_now(&line(8));
        assert!(
            caught_up(&sink),
            "a line pushed now ends the linger, and takes the lines before it along"
        );
        batched(&sink, 9..10);
        sink.close();
        assert!(
            end.recv_timeout(Duration::from_secs(10)).is_ok(),
            "the close ends the linger, and the writer, once the rest is written"
        );
        let writes = out.0.lock().unwrap().clone();
        let lines = |r: std::ops::Range<usize>| r.flat_map(line).collect::<Vec<u8>>();
        assert_eq!(
            writes,
            vec![
                lines(0..1),
                lines(1..2),
                lines(2..7),
                lines(7..9),
                lines(9..10)
            ],
            "each batch in one write, whole and in order"
        );
        assert_eq!(sink.dropped(), 0);
    }

    #[test]
    fn a_line_pushed_while_the_writer_writes_is_taken_next_without_lingering() {
        // The writer is in its write (gated) when the line comes: it finds `hurry` set once
        // done and takes the line without its hour's linger.
        let sink = Sink::lingering(1024, Duration::from_secs(3600));
        let (open, gate) = mpsc::channel();
        let got = Arc::new(Mutex::new(Vec::new()));
        let mut out = Gated {
            open: gate,
            got: got.clone(),
        };
        {
            let sink = sink.clone();
            std::thread::spawn(move || sink.run_writer(&mut out));
        }
        sink.push_now(&line(0));
        assert!(
            until(&sink, |st| st.lines == 0),
            "the writer took the first line"
        );
        sink.push_now(&line(1));
        open.send(()).unwrap();
        open.send(()).unwrap();
        assert!(caught_up(&sink), "the second line was not left lingering");
        assert_eq!(got.lock().unwrap().clone(), [line(0), line(1)].concat());
        sink.close();
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
        sink.push_now(&line(0));
        sink.push_batched(|buf| buf.extend_from_slice(&line(1)));
        sink.close();
        sink.run_writer(&mut Broken);
        assert_eq!(sink.dropped(), 2);
        assert!(sink.flush(Duration::ZERO), "taken, even if lost");
    }

    #[test]
    fn flush_gives_up_when_the_output_does_not_take_the_lines() {
        let sink = Sink::new(1024);
        sink.push_now(&line(0));
        // No writer thread: nothing is ever written.
        assert!(!sink.flush(Duration::from_millis(20)));
    }
}
