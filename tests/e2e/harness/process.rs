//! What the tests read of a child process from outside: its exit, its peak memory, its open
//! descriptors.

use std::process::{Child, ExitStatus};
use std::time::Duration;

use super::eventually::eventually_blocking;

/// The child's exit status once it has exited, or `None` if it still runs after `within`.
pub fn exited_within(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let mut status = None;
    eventually_blocking(within, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    status
}

/// Peak resident set size of a process, in KiB (VmHWM).
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Descriptors process `pid` has open (0 if it is gone).
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}
