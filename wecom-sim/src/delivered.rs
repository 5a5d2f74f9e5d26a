//! The messages the simulated WeCom delivered, in the order it delivered them, with their
//! bodies: what a test compares with what an app sent (each once, in order). A message the
//! duplicate check held back is not here; `GET /sim/messages` lists them, `DELETE` forgets.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The log keeps this many messages, dropping the oldest (`total` still counts them).
const KEEP: usize = 100_000;

/// One delivered message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivered {
    /// 1 for the first delivery since the start or the last clear.
    pub n: u64,
    /// The app whose token sent it (`webhook` for a group robot's message).
    pub app: String,
    /// The API, e.g. `/cgi-bin/message/send`.
    pub path: String,
    /// The message as WeCom received it (the duplicate-check keys included).
    pub body: Value,
}

/// The delivered messages, oldest first.
#[derive(Debug, Default)]
pub(crate) struct DeliveredLog {
    kept: VecDeque<Delivered>,
    total: u64,
}

impl DeliveredLog {
    pub fn record(&mut self, app: &str, path: &str, body: Value) {
        self.total += 1;
        if self.kept.len() >= KEEP {
            self.kept.pop_front();
        }
        self.kept.push_back(Delivered {
            n: self.total,
            app: app.to_string(),
            path: path.to_string(),
            body,
        });
    }

    pub fn list(&self) -> Vec<Delivered> {
        self.kept.iter().cloned().collect()
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn clear(&mut self) {
        *self = DeliveredLog::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_order_and_numbers_and_forgets_on_clear() {
        let mut log = DeliveredLog::default();
        log.record("hr-bot", "/cgi-bin/message/send", json!({"a": 1}));
        log.record("ops-bot", "/cgi-bin/appchat/send", json!({"b": 2}));
        let got = log.list();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].n, got[0].app.as_str()), (1, "hr-bot"));
        assert_eq!(
            (got[1].n, got[1].path.as_str()),
            (2, "/cgi-bin/appchat/send")
        );
        assert_eq!(got[1].body, json!({"b": 2}));
        log.clear();
        assert!(log.list().is_empty());
        assert_eq!(log.total(), 0);
    }

    #[test]
    fn drops_the_oldest_past_its_bound() {
        let mut log = DeliveredLog::default();
        for i in 0..KEEP + 3 {
            log.record("hr-bot", "/cgi-bin/message/send", json!(i));
        }
        let got = log.list();
        assert_eq!(got.len(), KEEP);
        assert_eq!(got[0].n, 4);
        assert_eq!(log.total(), KEEP as u64 + 3);
    }
}
