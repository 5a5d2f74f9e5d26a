//! What a plan's step does and how it is judged, with no clock, lock or task: the split a step
//! imposes, the readings of its hold (calls, errors, p99), its gates, and the verdict that
//! either moves on to the next step or ends the run.

use std::time::Duration;

use serde::Serialize;

use crate::config::{PlanStep, Split, UpstreamName};
use crate::upstream::split::SmoothWrr;

/// A split imposed by a plan on one route.
pub struct SplitOverride {
    pub members: Vec<UpstreamName>,
    pub wrr: SmoothWrr,
}

impl SplitOverride {
    /// The split a step sets on each of its routes.
    pub(super) fn of(split: &Split) -> SplitOverride {
        SplitOverride {
            members: split.0.iter().map(|(n, _)| n.clone()).collect(),
            wrr: SmoothWrr::new(&split.0.iter().map(|(_, w)| *w).collect::<Vec<_>>()),
        }
    }
}

/// How a plan run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanState {
    Running,
    Completed,
    RolledBack,
    Aborted,
}

impl PlanState {
    /// The name logs and `/admin/status` use.
    pub fn as_str(self) -> &'static str {
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

/// The 99th percentile of latency samples in seconds (sorted here); `None` without samples.
pub(super) fn p99(samples: &mut [f64]) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(f64::total_cmp);
    let i = ((samples.len() as f64 * 0.99).ceil() as usize).clamp(1, samples.len()) - 1;
    Some(Duration::from_secs_f64(samples[i]))
}

/// Why a step's gates failed, if they did.
pub(super) fn gate_failure(step: &PlanStep, r: &Readings) -> Option<String> {
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

/// How a step's hold ended.
#[derive(Debug, PartialEq)]
pub(super) enum Verdict {
    /// Its gates passed: on to the next step (or completion after the last).
    Next,
    /// The run ends in this state (rolled back to the configured splits), for this reason.
    End(PlanState, String),
}

/// Judges step `index` (from 0) once its hold is over: an abort during the hold wins, then its
/// gates on the readings of the hold.
pub(super) fn judge(
    index: usize,
    step: &PlanStep,
    aborted: Option<String>,
    readings: &Readings,
) -> Verdict {
    if let Some(why) = aborted {
        return Verdict::End(PlanState::Aborted, why);
    }
    match gate_failure(step, readings) {
        Some(why) => Verdict::End(PlanState::RolledBack, format!("step {}: {why}", index + 1)),
        None => Verdict::Next,
    }
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
        assert_eq!(p99(&mut []), None);
        let mut one = [0.25];
        assert_eq!(p99(&mut one), Some(Duration::from_millis(250)));
        // 1..=100 ms, shuffled: the 99th of 100 sorted samples.
        let mut samples: Vec<f64> = (1..=100).rev().map(|i| i as f64 / 1000.0).collect();
        samples.swap(3, 70);
        assert_eq!(p99(&mut samples), Some(Duration::from_millis(99)));
    }

    #[test]
    fn verdicts() {
        let bad = Readings {
            calls: 10,
            errors: 5,
            p99: None,
        };
        let gated = step(Some(0.1), None);
        assert_eq!(
            judge(0, &gated, Some("aborted by hand".into()), &bad),
            Verdict::End(PlanState::Aborted, "aborted by hand".into()),
            "an abort wins over the gates"
        );
        match judge(2, &gated, None, &bad) {
            Verdict::End(PlanState::RolledBack, why) => {
                assert!(why.starts_with("step 3: error rate 50.0 %"), "{why}")
            }
            other => panic!("expected a rollback, got {other:?}"),
        }
        assert_eq!(judge(0, &gated, None, &Readings::default()), Verdict::Next);
        assert_eq!(judge(0, &step(None, None), None, &bad), Verdict::Next);
    }

    #[test]
    fn state_names_are_their_serialized_form() {
        for state in [
            PlanState::Running,
            PlanState::Completed,
            PlanState::RolledBack,
            PlanState::Aborted,
        ] {
            assert_eq!(
                serde_json::to_value(state).unwrap(),
                serde_json::Value::from(state.as_str())
            );
        }
    }

    #[test]
    fn override_keeps_members_and_weights_in_order() {
        let o = SplitOverride::of(&Split(vec![
            (UpstreamName("primary".into()), 90),
            (UpstreamName("standby".into()), 10),
        ]));
        assert_eq!(
            o.members,
            ["primary", "standby"].map(|n| UpstreamName(n.into()))
        );
        assert_eq!((o.wrr.weight(0), o.wrr.weight(1)), (90, 10));
    }
}
