//! `user/*`: members created, updated, deleted, got and listed (by department, and by
//! `cursor` for `user/list_id`), and userid/openid conversion.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use super::super::handlers::{bad_json, errcode, json_object, ok_with, Answer, Call};
use super::{ids, member, query_id, strings, Directory, MAX_ENTRIES};

impl Directory {
    pub(super) fn user_get(&self, call: &Call) -> Answer {
        let userid = call.query("userid").unwrap_or_default();
        if userid.is_empty() || self.deleted.contains(&userid) {
            return errcode(60111, "userid not found");
        }
        let record = self
            .members
            .get(&userid)
            .cloned()
            .unwrap_or_else(|| member(&userid, &format!("User {userid}"), &[1]));
        ok_with(Value::Object(record))
    }

    pub(super) fn user_create(&mut self, call: &Call) -> Answer {
        let Some(req) = json_object(call) else {
            return bad_json();
        };
        let userid = req
            .get("userid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let userid = userid.as_str();
        if userid.is_empty() {
            return errcode(41009, "missing userid");
        }
        if self.members.contains_key(userid) {
            return errcode(60102, "userid existed");
        }
        let name = req
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if name.is_empty() {
            return errcode(60112, "invalid username");
        }
        let departments = ids(req.get("department")).unwrap_or_else(|| vec![1]);
        if let Some(d) = departments
            .iter()
            .find(|d| !self.departments.contains_key(d))
        {
            return errcode(60003, &format!("department not found: {d}"));
        }
        if self.members.len() >= MAX_ENTRIES {
            return errcode(60103, "member count over the limit");
        }
        let mut record = member(userid, &name, &departments);
        for (k, v) in req {
            if !matches!(k.as_str(), "userid" | "department" | "to_invite") {
                record.insert(k, v);
            }
        }
        self.deleted.remove(userid);
        self.members.insert(userid.to_string(), record);
        errcode(0, "created")
    }

    pub(super) fn user_update(&mut self, call: &Call) -> Answer {
        let Some(req) = json_object(call) else {
            return bad_json();
        };
        let userid = req.get("userid").and_then(Value::as_str).unwrap_or("");
        if userid.is_empty() {
            return errcode(41009, "missing userid");
        }
        if let Some(departments) = ids(req.get("department")) {
            if let Some(d) = departments
                .iter()
                .find(|d| !self.departments.contains_key(d))
            {
                return errcode(60003, &format!("department not found: {d}"));
            }
        }
        let Some(record) = self.members.get_mut(userid) else {
            return errcode(60111, "userid not found");
        };
        for (k, v) in req {
            if k == "department" {
                if let Some(d) = ids(Some(&v)) {
                    record.insert(k, json!(d));
                }
            } else if k != "userid" {
                record.insert(k, v);
            }
        }
        errcode(0, "updated")
    }

    pub(super) fn remove_member(&mut self, userid: &str) -> bool {
        if self.members.remove(userid).is_none() {
            return false;
        }
        if self.deleted.len() < MAX_ENTRIES {
            self.deleted.insert(userid.to_string());
        }
        for tag in self.tags.values_mut() {
            tag.users.remove(userid);
        }
        true
    }

    pub(super) fn user_delete(&mut self, call: &Call) -> Answer {
        let userid = call.query("userid").unwrap_or_default();
        if userid.is_empty() {
            return errcode(41009, "missing userid");
        }
        if !self.remove_member(&userid) {
            return errcode(60111, "userid not found");
        }
        errcode(0, "deleted")
    }

    pub(super) fn user_batchdelete(&mut self, call: &Call) -> Answer {
        let Some(req) = json_object(call) else {
            return bad_json();
        };
        let list = strings(req.get("useridlist"));
        if list.is_empty() {
            return errcode(41009, "missing userid");
        }
        if let Some(u) = list.iter().find(|u| !self.members.contains_key(*u)) {
            return errcode(60111, &format!("userid not found: {u}"));
        }
        for u in &list {
            self.remove_member(u);
        }
        errcode(0, "deleted")
    }

    /// The department `id` and, with `children`, every department under it.
    pub(super) fn subtree(&self, id: u64, children: bool) -> BTreeSet<u64> {
        let mut out = BTreeSet::from([id]);
        if children {
            // Bounded: each pass adds at least one department or stops.
            loop {
                let more: Vec<u64> = self
                    .departments
                    .iter()
                    .filter(|(d, dep)| out.contains(&dep.parentid) && !out.contains(d))
                    .map(|(d, _)| *d)
                    .collect();
                if more.is_empty() {
                    break;
                }
                out.extend(more);
            }
        }
        out
    }

    pub(super) fn departments_of(record: &Map<String, Value>) -> Vec<u64> {
        ids(record.get("department")).unwrap_or_default()
    }

    /// `user/simplelist` and `user/list` `?department_id=&fetch_child=`.
    pub(super) fn user_list(&self, call: &Call, simple: bool) -> Answer {
        let Some(id) = query_id(call, "department_id") else {
            return errcode(60123, "invalid party id");
        };
        if !self.departments.contains_key(&id) {
            return errcode(60123, "invalid party id");
        }
        let under = self.subtree(id, query_id(call, "fetch_child") == Some(1));
        let list: Vec<Value> = self
            .members
            .values()
            .filter(|m| Self::departments_of(m).iter().any(|d| under.contains(d)))
            .map(|m| {
                if simple {
                    json!({
                        "userid": m["userid"], "name": m["name"],
                        "department": m["department"], "open_userid": m["open_userid"],
                    })
                } else {
                    Value::Object(m.clone())
                }
            })
            .collect();
        ok_with(json!({ "userlist": list }))
    }

    /// `POST user/list_id` `{"cursor": "...", "limit": n}`: one entry per member and department.
    pub(super) fn user_list_id(&self, call: &Call) -> Answer {
        let req = if call.body.iter().all(u8::is_ascii_whitespace) {
            Map::new()
        } else {
            match json_object(call) {
                Some(m) => m,
                None => return bad_json(),
            }
        };
        let entries: Vec<Value> = self
            .members
            .values()
            .flat_map(|m| {
                Self::departments_of(m)
                    .into_iter()
                    .map(|d| json!({"userid": m["userid"], "department": d}))
            })
            .collect();
        let start = req
            .get("cursor")
            .and_then(Value::as_str)
            .and_then(|c| c.parse::<usize>().ok())
            .unwrap_or(0)
            .min(entries.len());
        let limit = req
            .get("limit")
            .and_then(Value::as_u64)
            .unwrap_or(1000)
            .clamp(1, 10_000) as usize;
        let end = start.saturating_add(limit).min(entries.len());
        let next = if end < entries.len() {
            end.to_string()
        } else {
            String::new()
        };
        ok_with(json!({"next_cursor": next, "dept_user": entries[start..end]}))
    }

    pub(super) fn convert_to_openid(&self, call: &Call) -> Answer {
        let Some(req) = json_object(call) else {
            return bad_json();
        };
        let userid = req.get("userid").and_then(Value::as_str).unwrap_or("");
        if !self.members.contains_key(userid) {
            return errcode(60111, "userid not found");
        }
        ok_with(json!({"openid": format!("oSim{}", hex::encode(userid))}))
    }

    pub(super) fn convert_to_userid(&self, call: &Call) -> Answer {
        let Some(req) = json_object(call) else {
            return bad_json();
        };
        let openid = req.get("openid").and_then(Value::as_str).unwrap_or("");
        let userid = openid
            .strip_prefix("oSim")
            .and_then(|h| hex::decode(h).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .filter(|u| self.members.contains_key(u));
        match userid {
            Some(userid) => ok_with(json!({ "userid": userid })),
            None => errcode(46004, "invalid openid"),
        }
    }
}
