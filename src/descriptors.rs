//! The process's descriptor limit: raised from the soft to the hard limit at start (a soft
//! limit of 1024 is common and far below what a proxy needs), and how many app connections it
//! leaves room for once upstream connections and everything else have theirs.

use crate::config::defaults::{FD_RESERVE, MIN_MAX_CONNECTIONS};

/// Where the kernel puts an unlimited hard limit's ceiling for descriptors (`fs.nr_open`'s
/// default); used when the hard limit reads as infinite.
const NR_OPEN_DEFAULT: u64 = 1 << 20;

/// The soft descriptor limit before and after raising it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raised {
    pub before: u64,
    pub now: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit.
pub fn raise_to_hard() -> std::io::Result<Raised> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own; no other memory is touched.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before = lim.rlim_cur;
    let hard = if lim.rlim_max == libc::RLIM_INFINITY {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(NR_OPEN_DEFAULT)
    } else {
        lim.rlim_max
    };
    if before >= hard {
        return Ok(Raised {
            before,
            now: before,
        });
    }
    let raised = libc::rlimit {
        rlim_cur: hard,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: setrlimit only reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Raised { before, now: hard })
}

/// App connections a descriptor limit of `limit` leaves room for: half of what is left after
/// [`FD_RESERVE`], because each app connection in a call holds an upstream connection too;
/// at least [`MIN_MAX_CONNECTIONS`].
pub fn app_connections_allowed(limit: u64) -> u64 {
    (limit.saturating_sub(FD_RESERVE) / 2).max(MIN_MAX_CONNECTIONS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_the_reserve_and_one_upstream_descriptor_per_app_connection() {
        assert_eq!(app_connections_allowed(1024), 320);
        assert_eq!(app_connections_allowed(65_536), 32_576);
        assert_eq!(app_connections_allowed(100), MIN_MAX_CONNECTIONS);
    }

    #[test]
    fn raising_twice_is_a_no_op_the_second_time() {
        let first = raise_to_hard().unwrap();
        let second = raise_to_hard().unwrap();
        assert_eq!(second.before, first.now);
        assert_eq!(second.now, first.now);
    }
}
