//! What became of an app's recent outbox sends, by outbox id: queued, sent (with WeCom's
//! answer), refused by WeCom, or dead. Kept in this process's memory, the latest
//! [`KEPT`] per app: the store holds what still waits and the dead letters; a send delivered
//! before a restart (or by another sidecar of a fleet) is no longer shown by its id.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;

use super::Meta;
use crate::store::now_ms;

/// Records kept per app.
pub const KEPT: usize = 1024;

/// Where a send is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waiting in the queue.
    Queued,
    /// WeCom took a replay (errcode 0).
    Sent,
    /// WeCom refused a replay: kept as a dead letter.
    Refused,
    /// Undelivered for `outbox_max_age`: a dead letter.
    Dead,
}

/// WeCom's answer to a replay, as shown: its errcode, errmsg and msgid, never the body sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WecomAnswer {
    pub errcode: i64,
    pub errmsg: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msgid: Option<String>,
}

impl WecomAnswer {
    /// The fields shown of a JSON answer (secrets already out of it); `None` if it is not one.
    pub fn from_json(body: &[u8]) -> Option<WecomAnswer> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        let o = v.as_object()?;
        Some(WecomAnswer {
            errcode: o.get("errcode").and_then(serde_json::Value::as_i64)?,
            errmsg: o
                .get("errmsg")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect(),
            msgid: o.get("msgid").and_then(|m| match m {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            }),
        })
    }
}

/// One send's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    pub outbox_id: String,
    /// Its store id now (a retried dead letter gets a new one).
    pub id: u64,
    pub api: String,
    pub state: State,
    /// When it last changed state (Unix milliseconds).
    pub at_ms: u64,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<WecomAnswer>,
}

impl Record {
    pub fn new(meta: &Meta, id: u64, state: State) -> Record {
        Record {
            outbox_id: meta.outbox_id.clone(),
            id,
            api: meta.api.clone(),
            state,
            at_ms: now_ms(),
            attempts: 0,
            last_error: None,
            answer: None,
        }
    }
}

/// An app's recent records, the latest [`KEPT`].
#[derive(Debug, Default)]
pub struct Records(Mutex<Inner>);

#[derive(Debug, Default)]
struct Inner {
    by_id: HashMap<String, Record>,
    order: VecDeque<String>,
}

impl Records {
    /// Sets the record of `r.outbox_id` (the latest [`KEPT`] ids are kept).
    pub fn put(&self, r: Record) {
        let mut inner = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let id = r.outbox_id.clone();
        if inner.by_id.insert(id.clone(), r).is_none() {
            inner.order.push_back(id);
            while inner.order.len() > KEPT {
                if let Some(old) = inner.order.pop_front() {
                    inner.by_id.remove(&old);
                }
            }
        }
    }

    pub fn get(&self, outbox_id: &str) -> Option<Record> {
        let inner = self.0.lock().unwrap_or_else(|e| e.into_inner());
        inner.by_id.get(outbox_id).cloned()
    }

    /// The latest `n`, newest first.
    pub fn latest(&self, n: usize) -> Vec<Record> {
        let inner = self.0.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .order
            .iter()
            .rev()
            .take(n)
            .filter_map(|id| inner.by_id.get(id).cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_latest_are_kept_and_a_record_is_updated_in_place() {
        let r = Records::default();
        let meta = |i: usize| Meta {
            outbox_id: format!("id{i}"),
            api: "message/send".into(),
            ..Meta::default()
        };
        for i in 0..KEPT + 5 {
            r.put(Record::new(&meta(i), i as u64, State::Queued));
        }
        assert!(r.get("id0").is_none() && r.get("id4").is_none());
        let mut sent = r.get("id5").unwrap();
        sent.state = State::Sent;
        r.put(sent);
        assert_eq!(r.get("id5").unwrap().state, State::Sent);
        let latest = r.latest(2);
        assert_eq!(latest[0].outbox_id, format!("id{}", KEPT + 4));
        assert_eq!(latest.len(), 2);
    }

    #[test]
    fn wecom_answers_show_errcode_errmsg_and_msgid_only() {
        let a = WecomAnswer::from_json(
            br#"{"errcode":0,"errmsg":"ok","msgid":"MSG1","invaliduser":"x"}"#,
        )
        .unwrap();
        assert_eq!(
            a,
            WecomAnswer {
                errcode: 0,
                errmsg: "ok".into(),
                msgid: Some("MSG1".into())
            }
        );
        assert!(WecomAnswer::from_json(b"not json").is_none());
        assert!(WecomAnswer::from_json(br#"{"errmsg":"no code"}"#).is_none());
    }
}
