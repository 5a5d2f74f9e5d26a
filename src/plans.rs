//! Staged switch plans: disaster-recovery runbooks that move traffic in stages with checks.
//!
//! `POST /admin/plans/<name>/start` runs a plan from the config: each step sets the split of
//! some routes, holds it, and checks its gates (error rate, p99 latency) on the calls those
//! routes made during the hold. A failed gate rolls every route back to its configured split
//! and records why; `POST /admin/plans/<name>/abort` does the same by hand. A plan whose gates
//! all pass ends at its final split, which stays until aborted or the process restarts.
//! A running plan survives a reload that keeps it; a reload that removes it aborts it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::config::{PlanStep, ShiftPlan, Split, UpstreamName};
use crate::state::Shared;
use crate::upstream::split::SmoothWrr;

/// Most latency samples kept per step (a random-free reservoir: the first ones).
const MAX_SAMPLES: usize = 100_000;

/// A split imposed by a plan on one route.
pub struct SplitOverride {
    pub members: Vec<UpstreamName>,
    pub wrr: SmoothWrr,
}

/// How a plan run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanState {
    Running,
    Completed,
    RolledBack,
    Aborted,
}

impl PlanState {
    fn as_str(self) -> &'static str {
        match self {
            PlanState::Running => "running",
            PlanState::Completed => "completed",
            PlanState::RolledBack => "rolled_back",
            PlanState::Aborted => "aborted",
        }
    }
}

/// Gate readings of one step.
#[derive(Debug, Clone, Copy, Default)]
pub struct Readings {
    pub calls: u64,
    pub errors: u64,
    pub p99: Option<Duration>,
}

impl Readings {
    pub fn error_rate(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.errors as f64 / self.calls as f64
        }
    }
}

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

#[derive(Default)]
struct Stats {
    calls: AtomicU64,
    errors: AtomicU64,
    latencies: Mutex<Vec<f64>>,
}

/// Plan state of the sidecar.
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
            .map(|r| (r.clone(), Arc::new(split_override(&step.split))))
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
        l.sort_by(f64::total_cmp);
        let p99 = (!l.is_empty()).then(|| {
            let i = ((l.len() as f64 * 0.99).ceil() as usize).clamp(1, l.len()) - 1;
            Duration::from_secs_f64(l[i])
        });
        Readings {
            calls: self.stats.calls.load(Ordering::Relaxed),
            errors: self.stats.errors.load(Ordering::Relaxed),
            p99,
        }
    }

    /// Aborts the running plan (if any is running and, when `name` is given, has that name).
    pub fn abort(&self, name: Option<&str>, why: &str) -> Result<(), String> {
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

    /// After a reload: a running plan the new config no longer has is aborted.
    pub fn on_reload(&self, plans: &[ShiftPlan]) {
        let name = self
            .lock()
            .as_ref()
            .filter(|r| r.state == PlanState::Running)
            .map(|r| r.name.clone());
        if let Some(name) = name {
            if !plans.iter().any(|p| p.name == name) {
                let _ = self.abort(
                    Some(&name),
                    "the plan was removed from the config by a reload",
                );
            }
        }
    }

    /// What `/admin/status` shows.
    pub fn status(&self) -> Value {
        let guard = self.lock();
        let Some(r) = guard.as_ref() else {
            return Value::Null;
        };
        let live = (r.state == PlanState::Running).then(|| self.readings());
        let show = |x: &Readings| {
            json!({
                "calls": x.calls,
                "errors": x.errors,
                "error_rate": x.error_rate(),
                "p99_ms": x.p99.map(|d| d.as_secs_f64() * 1000.0),
            })
        };
        json!({
            "name": r.name,
            "state": r.state.as_str(),
            "step": r.step + 1,
            "steps": r.steps,
            "reason": r.reason,
            "started_unix": r.started_unix,
            "finished_steps": r.readings.iter().map(show).collect::<Vec<_>>(),
            "current_readings": live.as_ref().map(show),
        })
    }
}

fn split_override(split: &Split) -> SplitOverride {
    SplitOverride {
        members: split.0.iter().map(|(n, _)| n.clone()).collect(),
        wrr: SmoothWrr::new(&split.0.iter().map(|(_, w)| *w).collect::<Vec<_>>()),
    }
}

/// Why a step's gates failed, if they did.
fn gate_failure(step: &PlanStep, r: &Readings) -> Option<String> {
    if let Some(max) = step.max_error_rate {
        if r.error_rate() > max {
            return Some(format!(
                "error rate {:.1} % over the hold ({} of {} calls) is above max_error_rate {:.1} %",
                r.error_rate() * 100.0,
                r.errors,
                r.calls,
                max * 100.0
            ));
        }
    }
    if let (Some(max), Some(p99)) = (step.max_p99, r.p99) {
        if p99 > max {
            return Some(format!(
                "p99 latency {p99:?} over the hold is above max_p99 {max:?}"
            ));
        }
    }
    None
}

/// Starts the plan `name` of the current config.
pub fn start(shared: &Arc<Shared>, name: &str) -> Result<(), String> {
    let rt = shared.runtime.load_full();
    let plan = rt
        .config
        .shift_plans
        .iter()
        .find(|p| p.name == name)
        .cloned()
        .ok_or_else(|| {
            let names: Vec<&str> = rt
                .config
                .shift_plans
                .iter()
                .map(|p| p.name.as_str())
                .collect();
            format!("no plan named {name} (configured: {})", names.join(", "))
        })?;
    let (abort_tx, mut abort_rx) = watch::channel(None);
    {
        let mut guard = shared.plans.lock();
        if let Some(r) = guard.as_ref().filter(|r| r.state == PlanState::Running) {
            return Err(format!("plan {} is running; abort it first", r.name));
        }
        *guard = Some(Run {
            name: plan.name.clone(),
            state: PlanState::Running,
            step: 0,
            steps: plan.steps.len(),
            reason: None,
            readings: Vec::new(),
            started_unix: unix_now(),
            abort: abort_tx,
        });
    }
    tracing::info!(plan = %plan.name, steps = plan.steps.len(), "shift plan started");
    let shared = shared.clone();
    tokio::spawn(async move {
        let plans = &shared.plans;
        for (i, step) in plan.steps.iter().enumerate() {
            plans.apply(step);
            if let Some(r) = plans.lock().as_mut() {
                r.step = i;
            }
            tracing::info!(plan = %plan.name, step = i + 1, routes = ?step.routes, "shift plan step applied");
            let aborted = tokio::select! {
                _ = tokio::time::sleep(step.hold) => None,
                _ = abort_rx.changed() => abort_rx.borrow().clone(),
            };
            let readings = plans.readings();
            let (state, reason) = if let Some(why) = aborted {
                (Some(PlanState::Aborted), Some(why))
            } else if let Some(why) = gate_failure(step, &readings) {
                (
                    Some(PlanState::RolledBack),
                    Some(format!("step {}: {why}", i + 1)),
                )
            } else {
                (None, None)
            };
            let mut guard = plans.lock();
            let Some(r) = guard.as_mut() else { return };
            r.readings.push(readings);
            if let Some(state) = state {
                plans.rollback();
                r.state = state;
                r.reason = reason.clone();
                tracing::warn!(plan = %plan.name, state = state.as_str(), reason = reason.as_deref().unwrap_or(""), "shift plan rolled back");
                return;
            }
        }
        if let Some(r) = plans.lock().as_mut() {
            r.state = PlanState::Completed;
        }
        tracing::info!(plan = %plan.name, "shift plan completed; its final split stays until aborted");
    });
    Ok(())
}

/// Ends a completed plan's split (or aborts a running one): routes return to their config.
pub fn abort(shared: &Shared, name: &str) -> Result<(), String> {
    let plans = &shared.plans;
    let completed = plans
        .lock()
        .as_ref()
        .is_some_and(|r| r.name == name && r.state == PlanState::Completed);
    if completed {
        plans.rollback();
        if let Some(r) = plans.lock().as_mut() {
            r.state = PlanState::Aborted;
            r.reason = Some("aborted by hand after completion".into());
        }
        return Ok(());
    }
    plans.abort(Some(name), "aborted by hand")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(max_error_rate: Option<f64>, max_p99: Option<Duration>) -> PlanStep {
        PlanStep {
            routes: vec!["defaults".into()],
            split: Split(vec![]),
            hold: Duration::from_secs(1),
            max_error_rate,
            max_p99,
        }
    }

    #[test]
    fn gates() {
        let r = Readings {
            calls: 100,
            errors: 6,
            p99: Some(Duration::from_millis(300)),
        };
        assert!(gate_failure(&step(Some(0.05), None), &r)
            .unwrap()
            .contains("6.0 %"));
        assert!(gate_failure(&step(Some(0.10), None), &r).is_none());
        assert!(
            gate_failure(&step(None, Some(Duration::from_millis(200))), &r)
                .unwrap()
                .contains("p99")
        );
        assert!(gate_failure(&step(None, Some(Duration::from_millis(500))), &r).is_none());
        let none = Readings::default();
        assert!(
            gate_failure(&step(Some(0.0), Some(Duration::from_millis(1))), &none).is_none(),
            "no calls: nothing failed"
        );
    }

    #[test]
    fn p99_of_samples() {
        let p = Plans::default();
        let mut s = step(None, None);
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
