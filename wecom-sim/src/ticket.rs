//! WeCom's two JS-SDK ticket APIs, past the token check: `GET /cgi-bin/get_jsapi_ticket` (the
//! corp's `jsapi_ticket`) and `GET /cgi-bin/ticket/get?type=agent_config` (the app's). Each
//! fetch issues a new random ticket with `expires_in` = [`crate::SimConfig::ticket_ttl`] and is
//! counted in `Counters::tickets`. WeCom's limits hold: per corp
//! [`crate::SimConfig::ticket_limit_per_corp`] fetches of `get_jsapi_ticket` an hour, per app
//! [`crate::SimConfig::ticket_limit_per_app`] of `agent_config`; past them the answer is 45009.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde_json::json;

use super::handlers::{errcode, ok_with, random_hex, Answer, Call};
use super::state::{bump, lock, State};

/// The window WeCom counts ticket fetches in.
const HOUR: Duration = Duration::from_secs(3600);

/// Ticket fetches of the last hour, by counter key (`jsapi:<corp>`, `agent_config:<app>`).
#[derive(Default)]
pub(crate) struct Tickets {
    fetched: HashMap<String, VecDeque<Instant>>,
}

impl Tickets {
    /// Takes one fetch of `key` if fewer than `limit` were made in the last hour.
    fn take(&mut self, key: &str, limit: u32) -> bool {
        let now = Instant::now();
        let seen = self.fetched.entry(key.to_string()).or_default();
        while seen.front().is_some_and(|t| now.duration_since(*t) >= HOUR) {
            seen.pop_front();
        }
        if seen.len() >= limit as usize {
            return false;
        }
        seen.push_back(now);
        true
    }
}

/// The answer to a ticket call of app `app` (index), whose token passed.
pub(crate) fn answer(state: &State, app: usize, call: &Call) -> Answer {
    let Some(sim_app) = state.cfg.apps.get(app) else {
        return errcode(40014, "invalid access_token");
    };
    let (key, limit) = if call.path == "/cgi-bin/get_jsapi_ticket" {
        (
            format!("jsapi:{}", sim_app.corp_id),
            state.cfg.ticket_limit_per_corp,
        )
    } else {
        match call.query("type").as_deref() {
            Some("agent_config") => (
                format!("agent_config:{}", sim_app.name),
                state.cfg.ticket_limit_per_app,
            ),
            _ => return errcode(40058, "invalid type"),
        }
    };
    if !lock(&state.tickets).take(&key, limit) {
        return errcode(45009, "api freq out of limit");
    }
    bump(&mut lock(&state.counters).tickets, &key, 1);
    ok_with(json!({
        "ticket": random_hex(40),
        "expires_in": state.cfg.ticket_ttl.as_secs(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hour_holds_the_limit_then_lets_go() {
        let mut t = Tickets::default();
        assert!(t.take("jsapi:ww1", 2));
        assert!(t.take("jsapi:ww1", 2));
        assert!(!t.take("jsapi:ww1", 2), "a third in the hour");
        assert!(t.take("agent_config:hr", 2), "another key counts apart");
        let long_ago = Instant::now().checked_sub(HOUR);
        if let Some(past) = long_ago {
            for at in t.fetched.get_mut("jsapi:ww1").unwrap() {
                *at = past;
            }
            assert!(t.take("jsapi:ww1", 2), "the hour passed");
        }
    }
}
