//! WeCom down: while an outage lasts, every `/cgi-bin/` call (gettoken included) fails, in
//! turn with a connection reset (no answer) and an HTTP 503, as an unreachable or overloaded
//! WeCom does. It lasts until cleared, or until a given time. The control API (`/sim/`) stays
//! up, so a test can end the outage it started.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::state::{lock, FaultKind};

/// Whether WeCom is down now, and what its next call gets.
#[derive(Debug, Default)]
pub(crate) struct Outage {
    /// `None`: up. `Some(None)`: down until cleared. `Some(Some(t))`: down until `t`.
    down: Mutex<Option<Option<Instant>>>,
    /// Calls failed by outages so far: which failure the next one gets.
    turn: AtomicU64,
}

impl Outage {
    /// Down from now, for `lasting` (`None`: until [`Outage::end`]).
    pub fn start(&self, lasting: Option<Duration>) {
        *lock(&self.down) = Some(lasting.map(|d| Instant::now() + d));
    }

    pub fn end(&self) {
        *lock(&self.down) = None;
    }

    /// Whether WeCom is down now.
    pub fn is_down(&self) -> bool {
        let mut down = lock(&self.down);
        match *down {
            None => false,
            Some(None) => true,
            Some(Some(until)) if Instant::now() < until => true,
            Some(Some(_)) => {
                *down = None;
                false
            }
        }
    }

    /// The failure the next call gets while WeCom is down (`None`: it is up): a reset, then a
    /// 503, and so on.
    pub fn hit(&self) -> Option<FaultKind> {
        if !self.is_down() {
            return None;
        }
        Some(match self.turn.fetch_add(1, Ordering::Relaxed) % 2 {
            0 => FaultKind::Reset,
            _ => FaultKind::Status(503),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_until_ended_alternates_reset_and_503() {
        let o = Outage::default();
        assert_eq!(o.hit(), None);
        o.start(None);
        assert_eq!(o.hit(), Some(FaultKind::Reset));
        assert_eq!(o.hit(), Some(FaultKind::Status(503)));
        assert_eq!(o.hit(), Some(FaultKind::Reset));
        o.end();
        assert_eq!(o.hit(), None);
    }

    #[test]
    fn a_timed_outage_ends_by_itself() {
        let o = Outage::default();
        o.start(Some(Duration::from_millis(30)));
        assert!(o.is_down());
        std::thread::sleep(Duration::from_millis(40));
        assert!(!o.is_down());
        assert_eq!(o.hit(), None);
    }
}
