//! A route's outbox keys: `outbox: true` (exact message API paths only), `outbox_max_age`, and
//! `on_limit: queue` (only with `outbox: true`). On an API with WeCom's duplicate check
//! (`message/send`, `appchat/send`, `linkedcorp/message/send`) the outbox turns `dedupe` on,
//! and a replay must land inside the duplicate-check window: `outbox_max_age` may not be
//! longer than `duplicate_check_interval`. A route that sets no interval (nor `defaults`)
//! sends `outbox_max_age` as its interval. `webhook/send` has no duplicate check: no bound.

use std::time::Duration;

use super::check::Check;
use crate::config::defaults::{
    DEFAULT_OUTBOX_MAX_AGE, MAX_DUPLICATE_CHECK_INTERVAL_SECS, OUTBOX_APIS,
};
use crate::config::file::FilePolicy;
use crate::config::model::{OnLimit, OutboxPolicy, PathMatch, RoutePolicy};
use crate::config::quote::quote;
use crate::wecom::apis;

const ROUTE_EXAMPLE: &str = "e.g. `routes: [{ path: /cgi-bin/message/send, outbox: true }]`";

/// `defaults` may not carry the outbox keys: they belong to message routes.
pub(super) fn defaults(c: &mut Check, file: &FilePolicy, p: &RoutePolicy) {
    for (key, set) in [
        ("outbox", file.outbox.is_some()),
        ("outbox_max_age", file.outbox_max_age.is_some()),
    ] {
        if set {
            c.problem(
                format!("defaults.{key}"),
                format!("only belongs in a route of a message API ({}): defaults apply to every call. Move it into that route, {ROUTE_EXAMPLE}", OUTBOX_APIS.join(", ")),
            );
        }
    }
    if p.on_limit == OnLimit::Queue {
        c.problem(
            "defaults.on_limit",
            format!("queue only applies to a route with outbox: true. Use reject or wait here and set on_limit: queue in that route, {ROUTE_EXAMPLE}"),
        );
    }
}

/// The outbox of route `key` (path `path`, keys `file`) into `p`. `interval_set`: the route
/// or `defaults` set `duplicate_check_interval`.
pub(super) fn route(
    c: &mut Check,
    key: &str,
    file: &FilePolicy,
    path: Option<&PathMatch>,
    p: &mut RoutePolicy,
    interval_set: bool,
) {
    if file.outbox != Some(true) {
        if file.outbox_max_age.is_some() {
            c.problem(
                format!("{key}.outbox_max_age"),
                "only applies with outbox: true. Set outbox: true on this route, or drop outbox_max_age",
            );
        }
        if p.on_limit == OnLimit::Queue {
            c.problem(
                format!("{key}.on_limit"),
                "queue only applies with outbox: true (the send is kept and replayed when the quota allows). Set outbox: true, or use reject or wait",
            );
        }
        p.outbox = None;
        return;
    }
    let api = match path {
        Some(PathMatch::Exact(path)) if OUTBOX_APIS.contains(&path.as_str()) => {
            path.trim_start_matches("/cgi-bin/")
        }
        // The path's own problem is reported where it is read.
        None => return,
        Some(other) => {
            let written = match other {
                PathMatch::Exact(s) => s.clone(),
                PathMatch::Prefix(s) => format!("{s}*"),
            };
            c.problem(
                format!("{key}.outbox"),
                format!("applies to WeCom's message sends only, each on a route of its exact path ({}); this route's path is {}. Give the outbox its own route, {ROUTE_EXAMPLE}", OUTBOX_APIS.join(", "), quote(&written)),
            );
            return;
        }
    };
    let max_age = c.duration(
        &format!("{key}.outbox_max_age"),
        file.outbox_max_age.as_deref(),
        DEFAULT_OUTBOX_MAX_AGE,
    );
    if apis::accepts_duplicate_check(api) {
        if file.dedupe == Some(false) {
            c.problem(
                format!("{key}.dedupe"),
                "is false, but outbox: true needs WeCom's duplicate check: a send replayed after a lost answer would otherwise be delivered twice. Drop dedupe: false",
            );
        }
        p.dedupe = true;
        let ceiling = Duration::from_secs(MAX_DUPLICATE_CHECK_INTERVAL_SECS);
        if interval_set {
            if max_age > p.duplicate_check_interval {
                c.problem(
                    format!("{key}.outbox_max_age"),
                    format!("({max_age:?}) is longer than this route's duplicate_check_interval ({:?}): a send replayed after the window could be delivered twice. Set outbox_max_age to {}s or less, or raise duplicate_check_interval (at most 4h)", p.duplicate_check_interval, p.duplicate_check_interval.as_secs()),
                );
            }
        } else if max_age > ceiling {
            c.problem(
                format!("{key}.outbox_max_age"),
                format!("({max_age:?}) is longer than WeCom's duplicate-check window can be (4h): a send replayed after it could be delivered twice. Set 4h or less (the default is {DEFAULT_OUTBOX_MAX_AGE})"),
            );
        } else {
            // The window sent with every send of this route covers the whole queue life.
            p.duplicate_check_interval =
                Duration::from_secs(max_age.as_secs_f64().ceil().max(1.0) as u64);
        }
    }
    p.outbox = Some(OutboxPolicy { max_age });
}

#[cfg(test)]
mod tests {
    use crate::config::{parse_with_env, OnLimit};
    use std::time::Duration;

    fn routes(yaml: &str) -> Vec<crate::config::Route> {
        let text = format!("upstreams:\n  primary: {{ url: \"http://127.0.0.1:9\" }}\napps:\n  - {{ name: hr, corp_id: ww1, secret_env: S, default: true }}\n{yaml}");
        parse_with_env(&text, None, &|_| Some("s3cret".into()))
            .unwrap()
            .routes
    }

    #[test]
    fn an_outbox_route_sends_its_max_age_as_the_window_unless_it_has_one() {
        let r = routes("routes:\n  - { path: /cgi-bin/message/send, outbox: true }\n  - { path: /cgi-bin/appchat/send, outbox: true, outbox_max_age: 10m, duplicate_check_interval: 2h, on_limit: queue }\n  - { path: /cgi-bin/webhook/send, outbox: true, outbox_max_age: 12h }\n  - { path: /cgi-bin/user/get }\n");
        let p = &r[0].policy;
        assert!(p.dedupe);
        assert_eq!(p.outbox.unwrap().max_age, Duration::from_secs(3600));
        assert_eq!(p.duplicate_check_interval, Duration::from_secs(3600));
        let p = &r[1].policy;
        assert_eq!(p.outbox.unwrap().max_age, Duration::from_secs(600));
        assert_eq!(p.duplicate_check_interval, Duration::from_secs(7200));
        assert_eq!(p.on_limit, OnLimit::Queue);
        // Robots have no duplicate check: no window, no bound, dedupe untouched.
        let p = &r[2].policy;
        assert_eq!(p.outbox.unwrap().max_age, Duration::from_secs(12 * 3600));
        assert!(!p.dedupe);
        assert!(r[3].policy.outbox.is_none());
    }

    #[test]
    fn a_window_set_in_defaults_bounds_the_max_age() {
        let text = "upstreams:\n  primary: { url: \"http://127.0.0.1:9\" }\napps:\n  - { name: hr, corp_id: ww1, secret_env: S, default: true }\ndefaults: { duplicate_check_interval: 20m }\nroutes:\n  - { path: /cgi-bin/message/send, outbox: true }\n";
        let problems = parse_with_env(text, None, &|_| Some("s3cret".into())).unwrap_err();
        let text = format!("{problems:?}");
        assert!(
            text.contains("routes[0].outbox_max_age") && text.contains("1200s or less"),
            "{text}"
        );
    }
}
