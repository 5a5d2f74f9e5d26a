//! What `/admin/status` (and the answer to a plan start or abort) shows of plans: the run,
//! the readings of each finished step and of the one holding now, and the split a plan sets
//! on a route. The admin serializes these; it never reads the plan state itself.

use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, Serializer};

use super::steps::{PlanState, Readings, SplitOverride};

/// The run of a plan (the last one started, while the process lives).
#[derive(Debug, serde::Serialize)]
pub struct PlanStatus {
    pub name: String,
    pub state: PlanState,
    /// The step holding now, or the one the run ended at, from 1.
    pub step: usize,
    pub steps: usize,
    /// Why the run was rolled back or aborted.
    pub reason: Option<String>,
    pub started_unix: u64,
    pub finished_steps: Vec<ReadingsStatus>,
    /// While running: the readings of the hold so far.
    pub current_readings: Option<ReadingsStatus>,
}

/// One step's gate readings.
#[derive(Debug, serde::Serialize)]
pub struct ReadingsStatus {
    pub calls: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub p99_ms: Option<f64>,
}

impl From<&Readings> for ReadingsStatus {
    fn from(r: &Readings) -> Self {
        ReadingsStatus {
            calls: r.calls,
            errors: r.errors,
            error_rate: r.error_rate(),
            p99_ms: r.p99.map(|d| d.as_secs_f64() * 1000.0),
        }
    }
}

/// The split a plan sets on a route: each member's weight, in the plan's order
/// (`{"standby": 100}`).
pub struct SplitStatus(pub(super) Arc<SplitOverride>);

impl Serialize for SplitStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.members.len()))?;
        for (i, member) in self.0.members.iter().enumerate() {
            map.serialize_entry(member.as_str(), &self.0.wrr.weight(i))?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::config::{Split, UpstreamName};

    #[test]
    fn readings_as_shown() {
        let r = Readings {
            calls: 200,
            errors: 3,
            p99: Some(Duration::from_millis(250)),
        };
        assert_eq!(
            serde_json::to_value(ReadingsStatus::from(&r)).unwrap(),
            json!({"calls": 200, "errors": 3, "error_rate": 0.015, "p99_ms": 250.0})
        );
        assert_eq!(
            serde_json::to_value(ReadingsStatus::from(&Readings::default())).unwrap(),
            json!({"calls": 0, "errors": 0, "error_rate": 0.0, "p99_ms": null})
        );
    }

    #[test]
    fn split_as_shown() {
        let o = SplitOverride::of(&Split(vec![
            (UpstreamName("primary".into()), 20),
            (UpstreamName("standby".into()), 80),
        ]));
        assert_eq!(
            serde_json::to_value(SplitStatus(Arc::new(o))).unwrap(),
            json!({"primary": 20, "standby": 80})
        );
    }

    #[test]
    fn run_as_shown() {
        let s = PlanStatus {
            name: "dr".into(),
            state: PlanState::RolledBack,
            step: 2,
            steps: 3,
            reason: Some("step 2: p99".into()),
            started_unix: 7,
            finished_steps: vec![ReadingsStatus::from(&Readings::default())],
            current_readings: None,
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["state"], "rolled_back");
        assert_eq!(
            (v["step"].clone(), v["steps"].clone()),
            (json!(2), json!(3))
        );
        assert_eq!(v["reason"], "step 2: p99");
        assert_eq!(v["finished_steps"].as_array().map(Vec::len), Some(1));
        assert_eq!(v["current_readings"], json!(null));
    }
}
