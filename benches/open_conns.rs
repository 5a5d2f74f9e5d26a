//! Holds many keep-alive connections open: each sends one GET, reads its answer, then stays
//! idle for a while, the way a fleet of app instances holds pooled connections to its sidecar.
//! `benches/load.sh` reads the proxy's resident memory while they are held: "peak RSS at 1,000
//! open client connections" is this figure, beside the busier `wrk -c1000` peak.
//!
//! ```sh
//! cargo bench --bench open_conns -- http://127.0.0.1:8080/cgi-bin/user/get?userid=a 1000 5
//! #                                   url                                          conns secs
//! ```
//! Prints `open=N answered=M` once all are answered, then holds them for `secs` seconds.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Reads one HTTP/1.1 answer framed by Content-Length; `true` when it is a 200.
fn read_answer(s: &mut TcpStream) -> std::io::Result<bool> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Ok(false);
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let len = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        if buf.len() >= end + 4 + len {
            return Ok(head.starts_with("http/1.1 200"));
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let [url, conns, secs] = args.as_slice() else {
        eprintln!("usage: open_conns URL CONNS SECS");
        std::process::exit(2);
    };
    let rest = url.strip_prefix("http://").unwrap_or_else(|| {
        eprintln!("only http:// URLs are supported: {url}");
        std::process::exit(2)
    });
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let conns: usize = conns.parse().expect("CONNS is a number");
    let secs: u64 = secs.parse().expect("SECS is a number");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");

    // All requests first, then all answers: the proxy sees them arrive together.
    let mut open = Vec::with_capacity(conns);
    for _ in 0..conns {
        match TcpStream::connect(host) {
            Ok(mut s) => {
                if s.write_all(request.as_bytes()).is_ok() {
                    open.push(s);
                }
            }
            Err(e) => {
                eprintln!("connect: {e}");
                break;
            }
        }
    }
    let mut answered = 0;
    for s in &mut open {
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        if matches!(read_answer(s), Ok(true)) {
            answered += 1;
        }
    }
    println!("open={} answered={answered}", open.len());
    std::thread::sleep(Duration::from_secs(secs));
}
