//! The port registry, for the listeners the sidecar binary (or redis-server) binds itself: an
//! in-process server takes its listener bound to `:0` directly instead.
//!
//! Ports come from below the kernel's ephemeral range (`ip_local_port_range`), so no outgoing
//! connection of any process can be given one between the pick and the child's bind; and since
//! every test runs in this one process, a port is handed out at most once. Each process starts
//! at its own offset in the span, so two test processes on one machine rarely probe the same
//! ports; a port another process holds is skipped.

use std::net::TcpListener;
use std::ops::Range;
use std::sync::Mutex;

const EPHEMERAL_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";
/// Linux's default, for a kernel that does not say.
const DEFAULT_EPHEMERAL: (u32, u32) = (32768, 60999);
/// Ports below this are privileged or well known.
const LOWEST: u32 = 1024;
/// Fewer ports than this outside the ephemeral range is a machine these tests cannot use.
const ENOUGH: u32 = 1000;

/// A loopback port free right now, outside the ephemeral range, never handed out before in
/// this process.
pub fn free_port() -> u16 {
    static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);
    let mut registry = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    let registry = registry.get_or_insert_with(Registry::new);
    loop {
        let port = registry
            .next()
            .expect("every port outside the ephemeral range was handed out or taken");
        // Skips a port another process listens on; a dropped probe leaves nothing behind.
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The ports not yet handed out: the span once round, starting at a per-process offset.
struct Registry {
    span: Range<u32>,
    start: u32,
    taken: u32,
}

impl Registry {
    fn new() -> Registry {
        let ephemeral = std::fs::read_to_string(EPHEMERAL_RANGE)
            .ok()
            .and_then(|t| parse_range(&t))
            .unwrap_or(DEFAULT_EPHEMERAL);
        let span = outside_ephemeral(ephemeral)
            .unwrap_or_else(|| panic!("no room for test ports outside {ephemeral:?}"));
        let offset = std::process::id().wrapping_mul(7919) % span.len() as u32;
        Registry {
            start: span.start + offset,
            span,
            taken: 0,
        }
    }

    fn next(&mut self) -> Option<u16> {
        let len = self.span.len() as u32;
        if self.taken == len {
            return None;
        }
        let port = self.span.start + (self.start - self.span.start + self.taken) % len;
        self.taken += 1;
        u16::try_from(port).ok()
    }
}

/// `"low\thigh\n"` as the kernel writes it.
fn parse_range(text: &str) -> Option<(u32, u32)> {
    let mut it = text.split_whitespace().map(|n| n.parse::<u32>().ok());
    match (it.next()??, it.next()??) {
        (low, high) if low <= high && high <= 65535 => Some((low, high)),
        _ => None,
    }
}

/// The span for test ports: the upper half below the ephemeral range when there is room,
/// otherwise above it.
fn outside_ephemeral((low, high): (u32, u32)) -> Option<Range<u32>> {
    let below = (low / 2).max(LOWEST)..low;
    let above = high + 1..65536;
    [below, above]
        .into_iter()
        .find(|r| r.end >= r.start + ENOUGH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_range_is_read_as_written() {
        assert_eq!(parse_range("32768\t60999\n"), Some((32768, 60999)));
        assert_eq!(parse_range("1024 65535"), Some((1024, 65535)));
        for bad in ["", "32768", "60999 32768", "a b", "1 70000"] {
            assert_eq!(parse_range(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn test_ports_stay_outside_the_ephemeral_range() {
        assert_eq!(outside_ephemeral((32768, 60999)), Some(16384..32768));
        assert_eq!(outside_ephemeral((1500, 50000)), Some(50001..65536));
        assert_eq!(outside_ephemeral((1024, 65535)), None);
    }

    #[test]
    fn the_registry_hands_each_port_out_once_then_stops() {
        let mut r = Registry {
            span: 20000..20010,
            start: 20007,
            taken: 0,
        };
        let ports: Vec<u16> = std::iter::from_fn(|| r.next()).collect();
        let mut sorted = ports.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, (20000..20010).collect::<Vec<_>>());
        assert_eq!(ports[0], 20007);
        assert_eq!(r.next(), None);
    }

    #[test]
    fn free_port_never_repeats_and_is_outside_the_ephemeral_range() {
        let (low, high) = std::fs::read_to_string(EPHEMERAL_RANGE)
            .ok()
            .and_then(|t| parse_range(&t))
            .unwrap_or(DEFAULT_EPHEMERAL);
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let unique: std::collections::BTreeSet<_> = ports.iter().collect();
        assert_eq!(unique.len(), ports.len());
        assert!(ports.iter().all(|&p| (p as u32) < low || (p as u32) > high));
    }
}
