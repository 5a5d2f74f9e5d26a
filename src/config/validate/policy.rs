//! A policy (`defaults`, and each route's keys over them) into a [`RoutePolicy`]: the
//! built-in defaults, the keys a file sets merged over what they inherit, and the checks of
//! `retry`, `split`, `quota` and `on_limit`.

use std::sync::Arc;
use std::time::Duration;

use super::check::{Check, Names};
use crate::config::defaults::*;
use crate::config::file::{FilePolicy, FileRetry, OrderedMap};
use crate::config::model::{OnLimit, Rate, RetryPolicy, RoutePolicy, Split, UpstreamName};
use crate::config::quote::quote;
use crate::config::units::{parse_duration, parse_positive_duration, parse_rate};

/// `defaults` over the built-in policy, and the `max_wait` a route's `on_limit: wait` without
/// one of its own waits for. `path` and `api` belong to routes only.
pub(super) fn defaults(
    c: &mut Check,
    file: &FilePolicy,
    upstreams: &Names,
) -> (RoutePolicy, Duration) {
    if file.path.is_some() {
        c.problem(
            "defaults.path",
            "only belongs in a route: defaults apply to every call. Move it into an entry of routes, e.g. `routes: [{ path: /cgi-bin/message/send }]`, or drop it",
        );
    }
    if file.api.is_some() {
        c.problem(
            "defaults.api",
            "only belongs in a route, where it labels that route's metrics. Move it into an entry of routes, or drop it",
        );
    }
    let default_max_wait = parse_duration(DEFAULT_MAX_WAIT).expect("default is valid");
    let defaults = policy(
        c,
        "defaults",
        &RoutePolicy::default(),
        file,
        upstreams,
        default_max_wait,
    );
    // A problem in `defaults.max_wait` is reported above; the default stands in.
    let routes_max_wait = file
        .max_wait
        .as_deref()
        .and_then(|m| parse_positive_duration(m).ok())
        .unwrap_or(default_max_wait);
    (defaults, routes_max_wait)
}

/// `defaults` as they are when the file sets none.
impl Default for RoutePolicy {
    fn default() -> Self {
        let d = |text| parse_duration(text).expect("defaults are valid durations");
        RoutePolicy {
            deadline: d(DEFAULT_DEADLINE),
            retry: RetryPolicy {
                attempts: DEFAULT_RETRY_ATTEMPTS,
                backoff_base: d(DEFAULT_BACKOFF_BASE),
                backoff_max: d(DEFAULT_BACKOFF_MAX),
            },
            split: Split(
                DEFAULT_SPLIT
                    .iter()
                    .map(|(name, w)| (UpstreamName(Arc::from(*name)), *w))
                    .collect(),
            ),
            quota: DEFAULT_QUOTA
                .iter()
                .map(|q| parse_rate(q).expect("defaults are valid rates"))
                .collect(),
            idempotent: DEFAULT_IDEMPOTENT,
            allow_debug: DEFAULT_ALLOW_DEBUG,
            on_limit: OnLimit::Reject,
            quota_status: DEFAULT_QUOTA_STATUS,
            recipient_cap: DEFAULT_RECIPIENT_CAP,
            dedupe: DEFAULT_DEDUPE,
            duplicate_check_interval: d(DEFAULT_DUPLICATE_CHECK_INTERVAL),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            in_flight_wait: d(DEFAULT_MAX_WAIT),
            recipients_per_day: DEFAULT_RECIPIENTS_PER_DAY,
            outbox: None,
        }
    }
}

/// `over` with the keys `k` sets applied; `key` is `defaults` or `routes[i]`.
pub(super) fn policy(
    c: &mut Check,
    key: &str,
    over: &RoutePolicy,
    k: &FilePolicy,
    upstreams: &Names,
    base_max_wait: Duration,
) -> RoutePolicy {
    let mut p = over.clone();
    if k.deadline.is_some() {
        p.deadline = c.duration(
            &format!("{key}.deadline"),
            k.deadline.as_deref(),
            DEFAULT_DEADLINE,
        );
    }
    if let Some(r) = &k.retry {
        retry(c, &format!("{key}.retry"), r, &mut p.retry);
    }
    if let Some(split) = &k.split {
        if let Some(s) = self::split(c, &format!("{key}.split"), split, upstreams) {
            p.split = s;
        }
    }
    if let Some(q) = &k.quota {
        p.quota = quota(c, &format!("{key}.quota"), q);
    }
    if let Some(i) = k.idempotent {
        p.idempotent = Some(i);
    }
    if let Some(d) = k.allow_debug {
        p.allow_debug = d;
    }
    if let Some(n) = k.max_in_flight {
        p.max_in_flight = count(
            c,
            &format!("{key}.max_in_flight"),
            n,
            "calls in flight per app and API, e.g. 10; drop the key for no cap",
        );
    }
    if let Some(n) = k.recipients_per_day {
        p.recipients_per_day = count(
            c,
            &format!("{key}.recipients_per_day"),
            n,
            "members per app per China day, at most the corp's account limit × 200 (e.g. 40000 for 200 accounts); drop the key for no cap",
        )
        .map(u64::from);
    }
    on_limit(c, key, k, &mut p, base_max_wait);
    if let Some(s) = k.quota_status {
        if QUOTA_STATUSES.contains(&s) {
            p.quota_status = s;
        } else {
            c.problem(
                format!("{key}.quota_status"),
                format!(
                    "{s} is not allowed. Use 200 (WeCom's own way: errcode 45009 in a 200) or 429"
                ),
            );
        }
    }
    if let Some(r) = k.recipient_cap {
        p.recipient_cap = r;
    }
    if let Some(d) = k.dedupe {
        p.dedupe = d;
    }
    if k.duplicate_check_interval.is_some() {
        let ikey = format!("{key}.duplicate_check_interval");
        let d = c.duration(
            &ikey,
            k.duplicate_check_interval.as_deref(),
            DEFAULT_DUPLICATE_CHECK_INTERVAL,
        );
        if d.as_secs() > MAX_DUPLICATE_CHECK_INTERVAL_SECS {
            c.problem(
                ikey,
                format!("is longer than WeCom accepts ({MAX_DUPLICATE_CHECK_INTERVAL_SECS} s). Set 4h or less; the default is {DEFAULT_DUPLICATE_CHECK_INTERVAL}"),
            );
        } else if d < Duration::from_secs(1) {
            c.problem(
                ikey,
                format!("is shorter than WeCom accepts (1 s, counted in whole seconds). Set 1s to 4h; the default is {DEFAULT_DUPLICATE_CHECK_INTERVAL}"),
            );
        } else {
            p.duplicate_check_interval = d;
        }
    }
    p
}

/// A whole count of 1 or more (`what` says what it counts and how to write it).
fn count(c: &mut Check, key: &str, n: i64, what: &str) -> Option<u32> {
    match u32::try_from(n).ok().filter(|n| *n >= 1) {
        Some(n) => Some(n),
        None => {
            c.problem(
                key,
                format!(
                    "{n} is out of range. Set a whole number from 1 to {}: {what}",
                    u32::MAX
                ),
            );
            None
        }
    }
}

fn retry(c: &mut Check, key: &str, r: &FileRetry, p: &mut RetryPolicy) {
    if let Some(a) = r.attempts {
        if (MIN_RETRY_ATTEMPTS..=MAX_RETRY_ATTEMPTS).contains(&a) {
            p.attempts = a;
        } else {
            c.problem(
                format!("{key}.attempts"),
                format!("{a} is out of range. Attempts count the first try: set {MIN_RETRY_ATTEMPTS} (never retry) to {MAX_RETRY_ATTEMPTS}"),
            );
        }
    }
    if r.backoff_base.is_some() {
        p.backoff_base = c.duration(
            &format!("{key}.backoff_base"),
            r.backoff_base.as_deref(),
            DEFAULT_BACKOFF_BASE,
        );
    }
    if r.backoff_max.is_some() {
        p.backoff_max = c.duration(
            &format!("{key}.backoff_max"),
            r.backoff_max.as_deref(),
            DEFAULT_BACKOFF_MAX,
        );
    }
    // Checked where either is set, so a bad pair in `defaults` is not reported again at every
    // route that sets only `attempts`.
    let set_here = r.backoff_base.is_some() || r.backoff_max.is_some();
    if set_here && p.backoff_base > p.backoff_max {
        c.problem(
            format!("{key}.backoff_base"),
            format!(
                "({:?}) is longer than backoff_max ({:?}). Lower backoff_base or raise backoff_max",
                p.backoff_base, p.backoff_max
            ),
        );
    }
}

pub(super) fn split(
    c: &mut Check,
    key: &str,
    split: &OrderedMap<i64>,
    upstreams: &Names,
) -> Option<Split> {
    if split.is_empty() {
        c.problem(
            key,
            format!("is empty. Give weights adding up to {SPLIT_TOTAL}, e.g. {{ {PRIMARY_UPSTREAM}: 90, standby: 10 }}, or drop split to inherit it"),
        );
        return None;
    }
    let mut members = Vec::new();
    let mut sum: i64 = 0;
    let mut ok = true;
    for (name, &w) in split.iter() {
        let wkey = format!("{key}.{name}");
        if !upstreams.contains(name) {
            c.problem(
                &wkey,
                format!(
                    "names no upstream (declared: {}). Drop it from the split or declare upstreams.{name}",
                    upstreams.shown()
                ),
            );
            ok = false;
        }
        match u32::try_from(w).ok().filter(|w| *w <= SPLIT_TOTAL) {
            Some(w) => {
                sum += i64::from(w);
                members.push((UpstreamName(Arc::from(name)), w));
            }
            None => {
                c.problem(
                    &wkey,
                    format!("weight {w} is out of range. Use a whole number from 0 (standby only) to {SPLIT_TOTAL}"),
                );
                // A sum of out-of-range weights says nothing more.
                return None;
            }
        }
    }
    if sum != i64::from(SPLIT_TOTAL) {
        c.problem(
            key,
            format!("weights add up to {sum}. Make them add up to exactly {SPLIT_TOTAL}, e.g. {{ {PRIMARY_UPSTREAM}: 90, standby: 10 }} (a weight of 0 keeps an upstream as a pure standby)"),
        );
        ok = false;
    }
    ok.then_some(Split(members))
}

fn quota(c: &mut Check, key: &str, rates: &[String]) -> Vec<Rate> {
    // (index in the file, rate)
    let mut out: Vec<(usize, Rate)> = Vec::new();
    for (i, text) in rates.iter().enumerate() {
        match parse_rate(text) {
            Ok(rate) => {
                if let Some((j, earlier)) = out.iter().find(|(_, r)| r.per == rate.per) {
                    c.problem(
                        format!("{key}[{i}]"),
                        format!("{} counts over the same period as quota[{j}] ({earlier}). Keep one limit per period", quote(text)),
                    );
                }
                out.push((i, rate));
            }
            Err(e) => c.problem(format!("{key}[{i}]"), e),
        }
    }
    out.into_iter().map(|(_, r)| r).collect()
}

/// `on_limit` and `max_wait`. A `wait` without its own `max_wait` takes the inherited one, else
/// `defaults.max_wait`, else the default. `defaults` may set `max_wait` while rejecting (for
/// routes that choose `wait`); a route that rejects may not, unless it caps `max_in_flight`:
/// the same `max_wait` bounds the wait for a place among the calls in flight.
fn on_limit(
    c: &mut Check,
    key: &str,
    k: &FilePolicy,
    p: &mut RoutePolicy,
    base_max_wait: Duration,
) {
    let inherited_wait = match p.on_limit {
        OnLimit::Wait { max_wait } => Some(max_wait),
        OnLimit::Reject | OnLimit::Queue => None,
    };
    let max_wait = match k.max_wait {
        Some(_) => c.duration(
            &format!("{key}.max_wait"),
            k.max_wait.as_deref(),
            DEFAULT_MAX_WAIT,
        ),
        None => inherited_wait.unwrap_or(base_max_wait),
    };
    p.in_flight_wait = max_wait;
    let rejects = match k.on_limit.as_deref() {
        None if inherited_wait.is_some() => {
            p.on_limit = OnLimit::Wait { max_wait };
            false
        }
        None => true,
        Some("reject") => {
            p.on_limit = OnLimit::Reject;
            true
        }
        Some("wait") => {
            p.on_limit = OnLimit::Wait { max_wait };
            false
        }
        // Outbox routes only (checked with the route's outbox keys).
        Some("queue") => {
            p.on_limit = OnLimit::Queue;
            true
        }
        Some(other) => {
            c.problem(
                format!("{key}.on_limit"),
                format!("{} is not a choice. Use reject (answer 45009 at once, the default), wait (wait for a slot up to max_wait) or, on an outbox route, queue (keep the send and replay it when the quota allows)", quote(other)),
            );
            false
        }
    };
    if rejects && k.max_wait.is_some() && key != "defaults" && p.max_in_flight.is_none() {
        c.problem(
            format!("{key}.max_wait"),
            "only applies with on_limit: wait or max_in_flight, and this route rejects with no max_in_flight. Set on_limit: wait, set max_in_flight, or drop max_wait",
        );
    }
}
