//! Admission: the quota step before a call is sent. A call over its route's quota, to a member
//! at WeCom's per-member cap, from a robot past 20 a minute, or into a block WeCom announced,
//! gets the local 45009 answer (`X-Sidecar-Reason: quota`, `Retry-After`) and never reaches
//! WeCom; with `on_limit: wait` a call over its route's quota waits for a slot instead, up to
//! `max_wait`, in a bounded queue.
//!
//! Before those, a route with `max_in_flight` takes a place among the calls of its app and API
//! in flight (held until the call ends), waiting up to `max_wait`, else the local 45033 answer.
//! After them, a message on a route with `recipients_per_day` counts its members in the app's
//! China day, else the local 45009 answer naming the cap.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::refusal::Refusal;
use crate::body::RequestBody;
use crate::config::{AppName, OnLimit};
use crate::metrics::Metrics;
use crate::quota::in_flight::Slot;
use crate::quota::{self, day, Ask, Quotas, Refusal as Over};
use crate::routing::Call;
use crate::state::Shared;
use crate::wecom::apis::{self, Auth};

/// Most calls waiting for a quota slot at once, per sidecar; past it calls are refused at once.
pub const MAX_WAITING: usize = 1024;

static WAITING: AtomicUsize = AtomicUsize::new(0);

struct Waiting;

impl Waiting {
    fn enter() -> Option<Waiting> {
        let n = WAITING.fetch_add(1, Ordering::AcqRel);
        if n >= MAX_WAITING {
            WAITING.fetch_sub(1, Ordering::AcqRel);
            None
        } else {
            Some(Waiting)
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        WAITING.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The app name used for robot calls in labels and block keys.
fn robot_app() -> AppName {
    AppName(Arc::from("robot"))
}

/// The robot a group-robot call is for (its hashed `key`); `None` for app calls.
fn robot_of(call: &Call<'_>, query: &str) -> Option<u64> {
    if call.api.auth == Auth::RobotKey {
        robot_key(query)
    } else {
        None
    }
}

fn robot_key(query: &str) -> Option<u64> {
    let key = super::request::query_value(query, "key")?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    Some(h.finish())
}

/// Lets the call through (with its place among the calls in flight, to hold until it ends,
/// when its route caps them), or returns the refusal it gets.
pub async fn admit(
    shared: &Shared,
    call: &Call<'_>,
    app: Option<&AppName>,
    query: &str,
    body: &RequestBody,
) -> Result<Option<Slot>, Refusal> {
    let policy = &call.route.policy;
    let robot = robot_of(call, query);
    let fallback = robot_app();
    let app = app.unwrap_or(&fallback);
    let slot = match policy.max_in_flight {
        None => None,
        Some(max) => {
            let owner = quota::block_owner(app, robot);
            let wait = policy.in_flight_wait;
            match shared
                .quotas
                .in_flight
                .enter(&owner, &call.label, max, wait)
                .await
            {
                Some(slot) => Some(slot),
                None => {
                    reject(shared, call, app);
                    return Err(Refusal::Concurrency {
                        status: policy.quota_status,
                        retry_after: 1,
                        message: format!(
                            "wecom-sidecar: {max} calls of app {app} on {} in flight (max_in_flight) and none ended within {} ms; WeCom answers 45033 past its concurrency limit",
                            call.label,
                            wait.as_millis()
                        ),
                    });
                }
            }
        }
    };
    let counted = apis::caps_recipients(call.api.name)
        && (policy.recipient_cap || policy.recipients_per_day.is_some());
    let members = match body {
        RequestBody::Buffered(b) if counted => quota::recipients(b),
        _ => Vec::new(),
    };
    let recipients = if policy.recipient_cap {
        &members[..]
    } else {
        &[]
    };
    rates(shared, call, app, robot, recipients).await?;
    if let Some(limit) = policy.recipients_per_day {
        per_day(shared, call, app, members.len() as u64, limit).await?;
    }
    Ok(slot)
}

/// Counts a local quota answer.
fn reject(shared: &Shared, call: &Call<'_>, app: &AppName) {
    shared
        .metrics
        .quota_rejected
        .with_label_values(&[&*call.label, app.as_str()])
        .inc();
}

/// `recipients_per_day`: the message's members counted in the app's China day (fleet-wide in
/// fleet mode, a `1/size` share while Redis is down), or the local 45009 answer naming the cap.
async fn per_day(
    shared: &Shared,
    call: &Call<'_>,
    app: &AppName,
    members: u64,
    limit: u64,
) -> Result<(), Refusal> {
    if members == 0 {
        return Ok(());
    }
    let now = day::now_unix();
    let local = |limit: u64| shared.quotas.per_day.take(app, members, limit, now).is_ok();
    let passed = match shared.fleet.as_ref().filter(|f| f.share_quotas) {
        Some(fleet) => match crate::fleet::per_day::take(fleet, app, members, limit, now).await {
            Ok(passed) => passed,
            Err(crate::fleet::FleetDown) => {
                fleet.fell_back("quota");
                local((limit / u64::from(fleet.size.max(1))).max(1))
            }
        },
        None => local(limit),
    };
    if passed {
        return Ok(());
    }
    reject(shared, call, app);
    let wait = day::until_china_midnight(now);
    Err(Refusal::Quota {
        status: call.route.policy.quota_status,
        retry_after: secs(wait),
        message: format!(
            "wecom-sidecar: not sent: app {app} reached recipients_per_day ({limit} members a day, counted from 00:00 China time, UTC+8) on {}; this message to {members} members would pass it; the count starts again in {} s",
            call.label,
            secs(wait)
        ),
    })
}

/// The route's quotas, the per-member and robot caps, and WeCom's blocks (with `on_limit:
/// wait`, waiting for a slot up to `max_wait`).
async fn rates(
    shared: &Shared,
    call: &Call<'_>,
    app: &AppName,
    robot: Option<u64>,
    recipients: &[String],
) -> Result<(), Refusal> {
    let policy = &call.route.policy;
    let mut ask = Ask {
        app,
        api: &call.label,
        limits: &policy.quota,
        recipients,
        robot,
        share: 1,
    };
    let started = Instant::now();
    let mut waiting: Option<Waiting> = None;
    loop {
        let decision = match shared.fleet.as_ref().filter(|f| f.share_quotas) {
            // WeCom's announced blocks are held locally, and looked at first: a call they
            // refuse takes nothing from the fleet's quotas.
            Some(fleet) => match shared
                .quotas
                .blocked_for(&quota::block_owner(ask.app, ask.robot), ask.api)
            {
                Some(wait) => Err(Over::Blocked { wait }),
                None => match crate::fleet::quota::take(fleet, &ask).await {
                    Ok(d) => {
                        ask.share = 1;
                        d
                    }
                    Err(crate::fleet::FleetDown) => {
                        fleet.fell_back("quota");
                        ask.share = fleet.size;
                        shared.quotas.take(&ask)
                    }
                },
            },
            None => shared.quotas.take(&ask),
        };
        let over = match decision {
            Ok(()) => return Ok(()),
            Err(r) => r,
        };
        if let (OnLimit::Wait { max_wait }, Over::Limit { wait }) = (policy.on_limit, &over) {
            let waited = started.elapsed();
            if waited + *wait <= max_wait {
                if waiting.is_none() {
                    waiting = Waiting::enter();
                }
                if waiting.is_some() {
                    tokio::time::sleep(*wait).await;
                    continue;
                }
            }
        }
        reject(shared, call, app);
        return Err(refusal(call, app, &over, policy.quota_status));
    }
}

/// The `quota` refusal for a call over a limit: which one, and when to try again.
fn refusal(call: &Call<'_>, app: &AppName, over: &Over, status: u16) -> Refusal {
    let wait = over.wait();
    let message = match over {
        Over::Limit { .. } => format!(
            "wecom-sidecar: quota [{}] for app {app} on {} reached; retry after {} s",
            call.route.policy.quota.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(", "),
            call.label,
            secs(wait)
        ),
        Over::Recipients { members, .. } => format!(
            "wecom-sidecar: not sent: WeCom caps messages from one app to one member at 30/min and 1000/h and drops the rest; over the cap: {}",
            members.join("|")
        ),
        Over::Blocked { .. } => format!(
            "wecom-sidecar: WeCom blocked app {app} on {} (api freq out of limit); held locally for {} s more",
            call.label,
            secs(wait)
        ),
    };
    Refusal::Quota {
        status,
        retry_after: secs(wait),
        message,
    }
}

/// Whole seconds, rounded up, at least 1.
fn secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0).max(u64::from(d.is_zero()))
}

/// Remembers a block WeCom announced in an answer (for a group robot, on its key only), and
/// counts it.
pub(super) fn note_block(
    quotas: &Quotas,
    metrics: &Metrics,
    call: &Call<'_>,
    app: Option<&AppName>,
    query: &str,
    code: i64,
    body: &[u8],
) {
    if let Some(for_) = quota::block_for(code, body, day::now_unix()) {
        let fallback = robot_app();
        let app = app.unwrap_or(&fallback);
        quotas.block(
            &quota::block_owner(app, robot_of(call, query)),
            &call.label,
            for_,
        );
        metrics
            .quota_blocks
            .with_label_values(&[&*call.label, app.as_str(), &code.to_string()])
            .inc();
        tracing::warn!(api = %call.label, app = %app, errcode = code, block_s = for_.as_secs(), "WeCom announced a frequency block; holding calls locally until it ends (a day block until 00:00 China time)");
    }
}

#[cfg(test)]
#[path = "admission_tests.rs"]
mod routed_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(secs(Duration::from_millis(1)), 1);
        assert_eq!(secs(Duration::from_millis(1000)), 1);
        assert_eq!(secs(Duration::from_millis(1001)), 2);
        assert_eq!(secs(Duration::ZERO), 1);
    }

    #[test]
    fn at_most_max_waiting_calls_wait_for_a_slot_at_once() {
        // The counter is the process's: tests that wait in `rates` wait their turn.
        let _turn = super::routed_tests::WAITING_COUNTER.blocking_lock();
        let mut waiting: Vec<Waiting> = (0..MAX_WAITING).map_while(|_| Waiting::enter()).collect();
        assert_eq!(waiting.len(), MAX_WAITING);
        assert!(Waiting::enter().is_none(), "one past MAX_WAITING waits");
        // A call that stops waiting makes room for one more, and only one.
        waiting.pop();
        waiting.push(Waiting::enter().expect("a place was freed"));
        assert!(Waiting::enter().is_none());
        waiting.clear();
        assert!(Waiting::enter().is_some(), "places are given back");
    }

    #[test]
    fn a_robot_is_told_apart_by_its_key_only() {
        let a = robot_key("key=693a91f6-7xxx");
        assert!(a.is_some());
        assert_eq!(robot_key("debug=1&key=693a91f6-7xxx"), a);
        assert_ne!(robot_key("key=693a91f6-7xxy"), a);
        assert_ne!(robot_key("key=other"), robot_key("key=693a91f6-7xxy"));
        assert_eq!(robot_key("debug=1"), None);
    }
}
