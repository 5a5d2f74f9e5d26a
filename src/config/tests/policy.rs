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
