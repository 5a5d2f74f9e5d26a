//! Staged switch plans: disaster-recovery runbooks that move traffic in stages with checks.
//!
//! `POST /admin/plans/<name>/start` runs a plan from the config: each step sets the split of
//! some routes, holds it, and checks its gates (error rate, p99 latency) on the calls those
//! routes made during the hold. A failed gate rolls every route back to its configured split
//! and records why; `POST /admin/plans/<name>/abort` does the same by hand. A plan whose gates
//! all pass ends at its final split, which stays until aborted or the process restarts.
//! A running plan survives a reload that keeps it; a reload that removes it aborts it.
//!
//! Rooms: `steps` (what a step imposes and how it is judged: pure, unit-tested), `runner` (the
//! task that drives a run), `status` (what the admin shows), and here the plan state the
//! request path reads (`override_for`, `observe`) and the runner writes.

mod runner;
mod status;
mod steps;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::config::{PlanStep, ShiftPlan};

pub use runner::{begin, Runner};
pub use status::{PlanStatus, ReadingsStatus, SplitStatus};
use steps::Readings;
pub use steps::{PlanState, SplitOverride};

/// Most latency samples kept per step (a random-free reservoir: the first ones).
const MAX_SAMPLES: usize = 100_000;

/// The last plan run started: where it stands, and how its runner is told to abort.
struct Run {
    name: String,
    state: PlanState,
    step: usize,
    steps: usize,
    reason: Option<String>,
    readings: Vec<Readings>,
    started_unix: u64,
    abort: watch::Sender<Option<String>>,
}

/// What the calls of the routes under a plan did during the current step's hold.
#[derive(Default)]
struct Stats {
    calls: AtomicU64,
    errors: AtomicU64,
    latencies: Mutex<Vec<f64>>,
}

/// Plan state of the sidecar: the splits in force, the run, and the current hold's calls.
#[derive(Default)]
pub struct Plans {
    overrides: ArcSwap<HashMap<String, Arc<SplitOverride>>>,
    run: Mutex<Option<Run>>,
    stats: Stats,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Plans {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Run>> {
        self.run.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The split a plan imposes on the route with this key, if any.
    pub fn override_for(&self, route_key: &str) -> Option<Arc<SplitOverride>> {
        let o = self.overrides.load();
        if o.is_empty() {
            return None;
        }
        o.get(route_key).cloned()
    }

    /// Counts a finished call of a route towards the current step's gates.
    pub fn observe(&self, route_key: &str, failed: bool, latency: Duration) {
        if self.overrides.load().get(route_key).is_none() || !self.running() {
            return;
        }
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        let mut l = self
            .stats
            .latencies
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if l.len() < MAX_SAMPLES {
            l.push(latency.as_secs_f64());
        }
    }

    fn running(&self) -> bool {
        self.lock()
            .as_ref()
            .is_some_and(|r| r.state == PlanState::Running)
    }

    fn apply(&self, step: &PlanStep) {
        let o: HashMap<String, Arc<SplitOverride>> = step
            .routes
            .iter()
            .map(|r| (r.clone(), Arc::new(SplitOverride::of(&step.split))))
            .collect();
        self.overrides.store(Arc::new(o));
        self.stats.calls.store(0, Ordering::Relaxed);
        self.stats.errors.store(0, Ordering::Relaxed);
        self.stats
            .latencies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    fn rollback(&self) {
        self.overrides.store(Arc::new(HashMap::new()));
    }

    fn readings(&self) -> Readings {
        let mut l = self
            .stats
            .latencies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        Readings {
            calls: self.stats.calls.load(Ordering::Relaxed),
            errors: self.stats.errors.load(Ordering::Relaxed),
            p99: steps::p99(&mut l),
        }
    }

    /// Aborts the running plan (if any is running and, when `name` is given, has that name).
    fn abort_running(&self, name: Option<&str>, why: &str) -> Result<(), String> {
        let guard = self.lock();
        match guard.as_ref() {
            Some(r) if r.state == PlanState::Running && name.is_none_or(|n| n == r.name) => {
                let _ = r.abort.send(Some(why.to_string()));
                Ok(())
            }
            _ => Err(format!(
                "no plan{} is running",
                name.map(|n| format!(" named {n}")).unwrap_or_default()
            )),
        }
    }

    /// Ends a completed plan's split (or aborts a running one): routes return to their config.
    pub fn abort(&self, name: &str) -> Result<(), String> {
        let completed = self
            .lock()
            .as_ref()
            .is_some_and(|r| r.name == name && r.state == PlanState::Completed);
        if completed {
            self.rollback();
            if let Some(r) = self.lock().as_mut() {
                r.state = PlanState::Aborted;
                r.reason = Some("aborted by hand after completion".into());
            }
            return Ok(());
        }
        self.abort_running(Some(name), "aborted by hand")
    }

    /// After a reload: a running plan the new config no longer has is aborted.
    pub fn on_reload(&self, plans: &[ShiftPlan]) {
        let name = self
            .lock()
            .as_ref()
            .filter(|r| r.state == PlanState::Running)
            .map(|r| r.name.clone());
        if let Some(name) = name {
            if !plans.iter().any(|p| p.name == name) {
                let _ = self.abort_running(
                    Some(&name),
                    "the plan was removed from the config by a reload",
                );
            }
        }
    }

    /// The last run started, as `/admin/status` shows it; `None` before any.
    pub fn status(&self) -> Option<PlanStatus> {
        let guard = self.lock();
        let r = guard.as_ref()?;
        let live = (r.state == PlanState::Running).then(|| self.readings());
        Some(PlanStatus {
            name: r.name.clone(),
            state: r.state,
            step: r.step + 1,
            steps: r.steps,
            reason: r.reason.clone(),
            started_unix: r.started_unix,
            finished_steps: r.readings.iter().map(ReadingsStatus::from).collect(),
            current_readings: live.as_ref().map(ReadingsStatus::from),
        })
    }

    /// The split a plan imposes on the route with this key, as `/admin/status` shows it.
    pub fn split_status(&self, route_key: &str) -> Option<SplitStatus> {
        self.override_for(route_key).map(SplitStatus)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Split, UpstreamName};

    fn step() -> PlanStep {
        PlanStep {
            routes: vec!["defaults".into()],
            split: Split(vec![]),
            hold: Duration::from_secs(1),
            max_error_rate: None,
            max_p99: None,
        }
    }

    #[test]
    fn p99_of_samples() {
        let p = Plans::default();
        let mut s = step();
        s.split = Split(vec![(UpstreamName("primary".into()), 100)]);
        p.apply(&s);
        *p.lock() = Some(Run {
            name: "t".into(),
            state: PlanState::Running,
            step: 0,
            steps: 1,
            reason: None,
            readings: vec![],
            started_unix: 0,
            abort: watch::channel(None).0,
        });
        for i in 1..=100 {
            p.observe("defaults", i > 97, Duration::from_millis(i));
        }
        p.observe("other-route", true, Duration::from_secs(9));
        let r = p.readings();
        assert_eq!((r.calls, r.errors), (100, 3));
        assert_eq!(r.p99, Some(Duration::from_millis(99)));
    }
}
