//! `defaults` and `routes`: policy keys merged over what they inherit, splits, waits, and the
//! keys that belong to routes only.

use super::*;
use std::time::Duration;

#[test]
fn split_weights_must_add_up_to_100() {
    let text = MINIMAL.replace(
        "apps:",
        "  standby: { url: \"https://s\" }\napps:",
    ) + "routes:\n  - path: /cgi-bin/x\n    split: { primary: 50, standby: 40 }\n  - path: /cgi-bin/y\n    split: { primary: -1, standby: 101 }\n";
    let p = problems(&text);
    assert_problem(&p, "routes[0].split", "add up to 90");
    assert_problem(&p, "routes[1].split.primary", "out of range");
    assert!(find(&p, "routes[1].split", "add up to").is_none(), "{p:#?}");
}

#[test]
fn max_wait_in_defaults_serves_routes_that_wait() {
    let c = parse(&with(
        "defaults: { max_wait: 3s }\nroutes:\n  - { path: /cgi-bin/a, on_limit: wait }\n  - { path: /cgi-bin/b }\n",
    ))
    .unwrap();
    assert_eq!(c.defaults.on_limit, OnLimit::Reject);
    assert_eq!(
        c.routes[0].policy.on_limit,
        OnLimit::Wait {
            max_wait: Duration::from_secs(3)
        }
    );
    assert_eq!(c.routes[1].policy.on_limit, OnLimit::Reject);
    let c = parse(&with("routes:\n  - { path: /cgi-bin/a, on_limit: wait }\n")).unwrap();
    assert_eq!(
        c.routes[0].policy.on_limit,
        OnLimit::Wait {
            max_wait: Duration::from_secs(1)
        }
    );
}

#[test]
fn path_and_api_belong_to_routes_only() {
    // MINIMAL is lines 1-5.
    let p = problems(&with(
        "defaults:\n  deadline: 5s\n  path: /cgi-bin/message/send\n  api: message/send\n",
    ));
    assert_eq!(p.len(), 2, "{p:#?}");
    let path = find(&p, "defaults.path", "only belongs in a route").expect("defaults.path");
    assert_eq!(path.line, Some(8), "{path}");
    assert!(
        path.message.contains("Move it into an entry of routes"),
        "{path}"
    );
    let api = find(&p, "defaults.api", "only belongs in a route").expect("defaults.api");
    assert_eq!(api.line, Some(9), "{api}");
    // The same keys in a route are what a route is made of.
    let c = parse(&with(
        "routes:\n  - { path: /cgi-bin/message/send, api: message/send, deadline: 5s }\n",
    ))
    .unwrap();
    assert_eq!(c.routes[0].api.as_deref(), Some("message/send"));
    assert_eq!(c.routes[0].policy.deadline, Duration::from_secs(5));
}

#[test]
fn a_route_without_a_path_is_refused_at_its_line_with_the_other_problems() {
    let p = problems(&with(
        "routes:\n  - path: /cgi-bin/a\n  - api: send\n    deadline: 1s\n  - { deadline: never }\n",
    ));
    let second = find(&p, "routes[1].path", "is missing").expect("routes[1].path");
    assert_eq!(second.line, Some(8), "{second}");
    assert!(
        second.message.contains("e.g. /cgi-bin/message/send"),
        "says the fix: {second}"
    );
    let third = find(&p, "routes[2].path", "is missing").expect("routes[2].path");
    assert_eq!(third.line, Some(10), "{third}");
    // Its policy keys are still checked, in the same pass.
    let deadline = find(&p, "routes[2].deadline", "not a duration").expect("deadline");
    assert_eq!(deadline.line, Some(10), "{deadline}");
    assert_eq!(p.len(), 3, "{p:#?}");
}

#[test]
fn limits_keys_default_unset_and_are_checked_at_their_line() {
    let c = parse(&with("routes:\n  - { path: /cgi-bin/a }\n")).unwrap();
    assert_eq!(c.routes[0].policy.max_in_flight, None);
    assert_eq!(c.routes[0].policy.recipients_per_day, None);
    let c = parse(&with(
        "defaults: { max_wait: 3s }\nroutes:\n  - { path: /cgi-bin/a, max_in_flight: 4, recipients_per_day: 40000 }\n  - { path: /cgi-bin/b, max_in_flight: 2, max_wait: 250ms }\n",
    ))
    .unwrap();
    let (a, b) = (&c.routes[0].policy, &c.routes[1].policy);
    assert_eq!(a.max_in_flight, Some(4));
    assert_eq!(a.recipients_per_day, Some(40_000));
    // A rejecting route waits for a place up to the defaults' max_wait, or its own.
    assert_eq!(a.in_flight_wait, Duration::from_secs(3));
    assert_eq!(b.in_flight_wait, Duration::from_millis(250));
    assert_eq!(b.on_limit, OnLimit::Reject);
    // MINIMAL is lines 1-5.
    let p = problems(&with(
        "routes:\n  - path: /cgi-bin/a\n    max_in_flight: 0\n  - path: /cgi-bin/b\n    recipients_per_day: -5\n  - { path: /cgi-bin/c, max_wait: 2s }\n",
    ));
    let zero = find(&p, "routes[0].max_in_flight", "out of range").expect("max_in_flight");
    assert_eq!(zero.line, Some(8), "{zero}");
    assert!(zero.message.contains("drop the key for no cap"), "{zero}");
    let neg = find(&p, "routes[1].recipients_per_day", "out of range").expect("per day");
    assert_eq!(neg.line, Some(10), "{neg}");
    assert!(neg.message.contains("account limit × 200"), "{neg}");
    // max_wait on a rejecting route without max_in_flight is still refused.
    assert_problem(&p, "routes[2].max_wait", "set max_in_flight");
}
