//! The task that runs a plan: it applies each step's split, holds it, has the step judged
//! (`steps::judge`) on the calls of the hold, and either moves on or rolls every route back.

use tokio::sync::watch;

use super::steps::{judge, PlanState, Verdict};
use super::{unix_now, Plans, Run};
use crate::config::ShiftPlan;

/// A plan run registered as running, whose steps run when [`Runner::run`] is awaited.
pub struct Runner {
    plan: ShiftPlan,
    abort: watch::Receiver<Option<String>>,
}

/// Registers the run of the plan `name` of `configured` (the plans of the config in force).
/// Refused while another plan runs, or when no plan has that name.
pub fn begin(plans: &Plans, configured: &[ShiftPlan], name: &str) -> Result<Runner, String> {
    let plan = configured
        .iter()
        .find(|p| p.name == name)
        .cloned()
        .ok_or_else(|| {
            let names: Vec<&str> = configured.iter().map(|p| p.name.as_str()).collect();
            format!("no plan named {name} (configured: {})", names.join(", "))
        })?;
    let (abort_tx, abort) = watch::channel(None);
    {
        let mut guard = plans.lock();
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
    Ok(Runner { plan, abort })
}

impl Runner {
    /// Runs the steps to the end of the plan, a failed gate or an abort.
    pub async fn run(mut self, plans: &Plans) {
        let plan = &self.plan;
        for (i, step) in plan.steps.iter().enumerate() {
            plans.apply(step);
            if let Some(r) = plans.lock().as_mut() {
                r.step = i;
            }
            tracing::info!(plan = %plan.name, step = i + 1, routes = ?step.routes, "shift plan step applied");
            let aborted = tokio::select! {
                _ = tokio::time::sleep(step.hold) => None,
                _ = self.abort.changed() => self.abort.borrow().clone(),
            };
            let readings = plans.readings();
            let verdict = judge(i, step, aborted, &readings);
            let mut guard = plans.lock();
            let Some(r) = guard.as_mut() else { return };
            r.readings.push(readings);
            if let Verdict::End(state, reason) = verdict {
                plans.rollback();
                r.state = state;
                tracing::warn!(plan = %plan.name, state = state.as_str(), reason = reason.as_str(), "shift plan rolled back");
                r.reason = Some(reason);
                return;
            }
        }
        if let Some(r) = plans.lock().as_mut() {
            r.state = PlanState::Completed;
        }
        tracing::info!(plan = %plan.name, "shift plan completed; its final split stays until aborted");
    }
}
