//! Giving memory back to the system after a storm of app connections.
//!
//! Each app connection costs about 22 KB while open (pingora's task, buffers and futures;
//! README "Performance"). The sidecar binary allocates through jemalloc (`src/main.rs`),
//! which gives freed pages back by itself within about a second. glibc's allocator, which a
//! build of the library without it (its tests, benches) and the C code inside (SQLite) use,
//! keeps freed memory in its arenas for reuse, so resident memory stayed at a storm's peak
//! for good (measured before jemalloc: 12 MB before a storm of 5,000 connections, 126 MB
//! during, still 126 MB long after). So once open connections have fallen by
//! [`TRIM_AFTER_DROP`] from their highest since the last trim, `malloc_trim(0)` returns the
//! free pages of glibc's arenas to the kernel. It runs at most every [`CHECK_EVERY`], off the
//! request path, and costs a few milliseconds.

use std::time::Duration;

use pingora::server::ShutdownWatch;

use crate::capacity::Capacity;

/// How often the connection count is looked at.
pub const CHECK_EVERY: Duration = Duration::from_secs(5);
/// A fall in open app connections (from their highest since the last trim) worth a trim:
/// about 5 MB of connection state.
pub const TRIM_AFTER_DROP: usize = 256;

/// Watches the app connections and trims the allocator after a storm, until shutdown.
pub async fn run(capacity: &Capacity, mut shutdown: ShutdownWatch) {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let open = capacity.open();
        let peak = capacity.take_peak();
        if peak.saturating_sub(open) < TRIM_AFTER_DROP {
            continue;
        }
        let before = rss_kib();
        // Blocking work (it walks every arena): off the runtime's threads.
        let _ = tokio::task::spawn_blocking(trim).await;
        tracing::info!(
            peak_connections = peak,
            open_connections = open,
            rss_before_kib = before,
            rss_after_kib = rss_kib(),
            "connections closed after a peak: freed memory given back to the system"
        );
    }
}

/// Returns the allocator's free memory to the kernel (glibc only; elsewhere nothing to do).
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas; it takes their locks itself.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Resident memory of this process in KiB (0 where `/proc` cannot say).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
