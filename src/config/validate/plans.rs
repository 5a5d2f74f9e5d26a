//! `shift_plans`: named, staged traffic switches into [`ShiftPlan`]s.

use super::check::{is_name, Check, Names};
use super::policy;
use crate::config::file::{FilePlanStep, OrderedMap};
use crate::config::model::{PathMatch, PlanStep, Route, ShiftPlan};
use crate::config::quote::quote;

/// `shift_plans`: each plan's steps name configured routes (or `defaults`) and a split of
/// declared upstreams.
pub(super) fn shift_plans(
    c: &mut Check,
    plans: OrderedMap<Vec<FilePlanStep>>,
    routes: &[Route],
    upstreams: &Names,
) -> Vec<ShiftPlan> {
    let known = Names::new(
        routes
            .iter()
            .map(|r| match &r.path {
                PathMatch::Exact(p) => p.clone(),
                PathMatch::Prefix(p) => format!("{p}*"),
            })
            .collect(),
    );
    let mut out = Vec::new();
    for (name, steps) in plans.iter() {
        let key = format!("shift_plans.{name}");
        if !is_name(name) {
            c.problem(
                &key,
                "a plan name uses letters, digits and _ . - only (it appears in admin URLs)",
            );
        }
        if steps.is_empty() {
            c.problem(
                &key,
                "has no steps; give at least one { routes, split, hold }",
            );
        }
        let mut out_steps = Vec::new();
        for (i, s) in steps.iter().enumerate() {
            let skey = format!("{key}[{i}]");
            if s.routes.is_empty() {
                c.problem(
                    format!("{skey}.routes"),
                    "is empty; name route paths as written in routes[].path, or defaults",
                );
            }
            for r in &s.routes {
                if r != "defaults" && !known.contains(r) {
                    c.problem(
                        format!("{skey}.routes"),
                        format!(
                            "{} is not a configured route path (configured: {}, or defaults)",
                            quote(r),
                            known.shown()
                        ),
                    );
                }
            }
            let split = policy::split(c, &format!("{skey}.split"), &s.split, upstreams);
            let hold = c.duration(&format!("{skey}.hold"), Some(&s.hold), "1m");
            if let Some(rate) = s.max_error_rate {
                if !(0.0..=1.0).contains(&rate) {
                    c.problem(
                        format!("{skey}.max_error_rate"),
                        "is a share of calls from 0.0 to 1.0, e.g. 0.05 for 5 %",
                    );
                }
            }
            let max_p99 = s
                .max_p99
                .as_deref()
                .map(|p| c.duration(&format!("{skey}.max_p99"), Some(p), "2s"));
            if let Some(split) = split {
                out_steps.push(PlanStep {
                    routes: s.routes.clone(),
                    split,
                    hold,
                    max_error_rate: s.max_error_rate,
                    max_p99,
                });
            }
        }
        out.push(ShiftPlan {
            name: name.to_string(),
            steps: out_steps,
        });
    }
    out
}
