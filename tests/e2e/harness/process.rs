//! What the tests read of a child process from outside: its exit, its memory (now and at
//! peak), its open descriptors.

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

/// Resident memory of a process in KiB (VmRSS; 0 if it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Descriptors process `pid` has open (0 if it is gone).
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn an_exit_is_seen_and_a_process_still_running_is_not() {
        let mut quick = Command::new("sh").args(["-c", "exit 3"]).spawn().unwrap();
        let status = exited_within(&mut quick, Duration::from_secs(10));
        assert_eq!(status.and_then(|s| s.code()), Some(3));

        let mut slow = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = slow.id();
        assert!(exited_within(&mut slow, Duration::from_millis(100)).is_none());
        let rss = rss_kib(pid);
        assert!(rss > 0 && peak_rss_kib(pid) >= rss, "{rss} KiB resident");
        assert!(open_fds(pid) > 0);
        slow.kill().unwrap();
        slow.wait().unwrap();
        assert_eq!((rss_kib(pid), open_fds(pid)), (0, 0), "gone");
    }
}
