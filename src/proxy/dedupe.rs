//! `dedupe: true`: make a message call safe to repeat by asking WeCom to drop duplicates.
//!
//! The sidecar adds `enable_duplicate_check: 1` and `duplicate_check_interval` to the JSON body;
//! WeCom then delivers identical messages inside the window once, so a repeat after a lost
//! answer cannot deliver twice. The trade-off, and why it is off by default: an app that really
//! means to send the same text twice inside the window gets it delivered once.

use bytes::Bytes;
use serde_json::Value;

use crate::config::RoutePolicy;
use crate::wecom::apis;

/// The body to send and whether the call is safe to repeat because of WeCom's duplicate check.
pub fn apply(api: &str, policy: &RoutePolicy, body: Bytes) -> (Bytes, bool) {
    if !apis::accepts_duplicate_check(api) {
        return (body, false);
    }
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(&body) else {
        // Not a JSON object: WeCom will refuse it (47001); nothing to make safe.
        return (body, false);
    };
    let already = map.get("enable_duplicate_check").and_then(Value::as_i64) == Some(1);
    if already {
        return (body, true);
    }
    if !policy.dedupe {
        return (body, false);
    }
    map.insert("enable_duplicate_check".into(), 1.into());
    map.insert(
        "duplicate_check_interval".into(),
        policy.duplicate_check_interval.as_secs().into(),
    );
    match serde_json::to_vec(&Value::Object(map)) {
        Ok(v) => (Bytes::from(v), true),
        Err(_) => (body, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::*;
    use std::time::Duration;

    fn policy(dedupe: bool) -> RoutePolicy {
        RoutePolicy {
            dedupe,
            duplicate_check_interval: Duration::from_secs(600),
            ..RoutePolicy::default()
        }
    }

    #[test]
    fn adds_duplicate_check_only_when_asked() {
        let body = Bytes::from_static(br#"{"touser":"a","msgtype":"text"}"#);
        let (same, safe) = apply("message/send", &policy(false), body.clone());
        assert_eq!((same, safe), (body.clone(), false));
        let (b, safe) = apply("message/send", &policy(true), body.clone());
        assert!(safe);
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["enable_duplicate_check"], 1);
        assert_eq!(v["duplicate_check_interval"], 600);
        assert_eq!(v["touser"], "a");
        assert!(!apply("user/create", &policy(true), body).1);
    }

    #[test]
    fn a_body_that_already_asks_is_safe_as_is() {
        let body = Bytes::from_static(br#"{"touser":"a","enable_duplicate_check":1}"#);
        assert_eq!(
            apply("message/send", &policy(false), body.clone()),
            (body, true)
        );
        let junk = Bytes::from_static(b"not json");
        assert_eq!(
            apply("message/send", &policy(true), junk.clone()),
            (junk, false)
        );
    }
}
