//! A fixed-rate (open-loop) latency run: sends GETs at a steady total rate over a few keep-alive
//! connections and reports the latency distribution. `wrk` measures throughput with closed loops;
//! this measures what an app sees at a realistic rate, which is what "added p99" is about.
//!
//! Each connection owns one slot of the schedule (rate / connections per second). A request is
//! timed from the moment it was due, not from when it was written, so a stall behind a slow answer
//! counts against the target (no coordinated omission). Each connection is a thread with blocking
//! I/O and `thread::sleep` (high-resolution timers, tens of microseconds of slack, where an async
//! runtime's timer wheel rounds to milliseconds). A send that is more than 200 µs behind its due
//! time is counted, so a saturated run is visible in the output.
//!
//! ```sh
//! cargo bench --bench fixed_rate -- http://127.0.0.1:8080/cgi-bin/user/get?userid=a 2000 10 8
//! #                                   url                                            rate secs conns
//! ```
//! `benches/load.sh` runs it against the direct upstream, nginx and the sidecar in one go.

use std::time::{Duration, Instant};

use std::io::{Read, Write};
use std::net::TcpStream;

struct Target {
    addr: String,
    request: Vec<u8>,
}

fn parse_url(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("only http:// URLs are supported: {url}"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: fixed-rate\r\n\r\n")
        .into_bytes();
    Ok(Target {
        addr: host.to_string(),
        request,
    })
}

/// Reads one HTTP/1.1 answer with a Content-Length body; returns false on a non-2xx status.
fn read_answer(conn: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    buf.clear();
    let mut chunk = [0u8; 8192];
    loop {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = std::str::from_utf8(&buf[..end]).map_err(std::io::Error::other)?;
        let ok = head.split(' ').nth(1).is_some_and(|s| s.starts_with('2'));
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .ok_or_else(|| std::io::Error::other("answer without content-length"))?;
        while buf.len() < end + 4 + len {
            let n = conn.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        return Ok(ok);
    }
}

struct Outcome {
    micros: Vec<u32>,
    errors: u64,
    behind: u64,
}

fn connection(
    target: std::sync::Arc<Target>,
    start: Instant,
    offset: Duration,
    period: Duration,
    until: Instant,
) -> Outcome {
    let mut out = Outcome {
        micros: Vec::new(),
        errors: 0,
        behind: 0,
    };
    let mut conn = None;
    let mut buf = Vec::with_capacity(4096);
    let mut due = start + offset;
    while due < until {
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        } else if now - due > Duration::from_micros(200) {
            out.behind += 1;
        }
        if conn.is_none() {
            conn = TcpStream::connect(&target.addr).ok();
            if let Some(c) = &conn {
                let _ = c.set_nodelay(true);
            }
        }
        let ok = match conn.as_mut() {
            Some(c) => match c.write_all(&target.request) {
                Ok(()) => read_answer(c, &mut buf).unwrap_or(false),
                Err(_) => false,
            },
            None => false,
        };
        if ok {
            let us = due.elapsed().as_micros().min(u32::MAX as u128) as u32;
            out.micros.push(us);
        } else {
            out.errors += 1;
            conn = None;
        }
        due += period;
    }
    out
}

fn quantile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.is_empty() {
        eprintln!("usage: fixed_rate URL [RATE=2000] [SECONDS=10] [CONNECTIONS=8]");
        std::process::exit(2);
    }
    let target = match parse_url(&args[0]) {
        Ok(t) => std::sync::Arc::new(t),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let num = |i: usize, default: u64| -> u64 {
        args.get(i)
            .map(|v| v.parse().expect("a whole number"))
            .unwrap_or(default)
    };
    let (rate, secs, conns) = (num(1, 2000).max(1), num(2, 10).max(1), num(3, 8).max(1));
    let start = Instant::now() + Duration::from_millis(200);
    let until = start + Duration::from_secs(secs);
    let period = Duration::from_nanos(1_000_000_000 * conns / rate);
    let threads: Vec<_> = (0..conns)
        .map(|i| {
            let offset = period * i as u32 / conns as u32;
            let target = target.clone();
            std::thread::spawn(move || connection(target, start, offset, period, until))
        })
        .collect();
    let outcomes: Vec<Outcome> = threads
        .into_iter()
        .map(|t| t.join().expect("connection thread"))
        .collect();
    let mut micros: Vec<u32> = outcomes.iter().flat_map(|o| o.micros.clone()).collect();
    micros.sort_unstable();
    let errors: u64 = outcomes.iter().map(|o| o.errors).sum();
    let behind: u64 = outcomes.iter().map(|o| o.behind).sum();
    // One machine-readable line: load.sh parses it.
    println!(
        "rate={rate} secs={secs} conns={conns} ok={} errors={errors} behind={behind} p50_ms={:.3} p90_ms={:.3} p99_ms={:.3} p999_ms={:.3} max_ms={:.3}",
        micros.len(),
        quantile(&micros, 0.50),
        quantile(&micros, 0.90),
        quantile(&micros, 0.99),
        quantile(&micros, 0.999),
        quantile(&micros, 1.0),
    );
}
