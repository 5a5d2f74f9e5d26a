//! WeCom's concurrency limit: past `limit` calls of one API in flight at once, a call gets
//! 45033 ("api concurrent out of limit") at once. Off (no limit) until a test sets one; the
//! peak per API is kept either way, so a test can see how many calls WeCom had at once (a
//! `Delay` fault keeps calls in flight long enough to overlap).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::state::lock;

/// Calls in flight and the most seen at once, per API path.
#[derive(Default)]
pub(crate) struct Concurrency {
    /// 0: no limit.
    limit: AtomicUsize,
    paths: Mutex<BTreeMap<String, (usize, usize)>>,
}

/// A call in flight; leaves the count when dropped.
pub(crate) struct InFlight {
    of: Arc<Concurrency>,
    path: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some((now, _)) = lock(&self.of.paths).get_mut(&self.path) {
            *now = now.saturating_sub(1);
        }
    }
}

impl Concurrency {
    pub fn set_limit(&self, limit: usize) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// Enters a call of `path`: `None` (answer 45033) when the limit is already reached.
    pub fn enter(self: &Arc<Self>, path: &str) -> Option<InFlight> {
        let limit = self.limit.load(Ordering::Relaxed);
        let mut paths = lock(&self.paths);
        let (now, peak) = paths.entry(path.to_string()).or_default();
        if limit > 0 && *now >= limit {
            return None;
        }
        *now += 1;
        *peak = (*peak).max(*now);
        Some(InFlight {
            of: self.clone(),
            path: path.to_string(),
        })
    }

    /// The most calls of `path` seen in flight at once.
    pub fn peak(&self, path: &str) -> usize {
        lock(&self.paths).get(path).map_or(0, |(_, peak)| *peak)
    }
}
