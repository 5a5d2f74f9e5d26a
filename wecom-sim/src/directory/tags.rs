//! `tag/*`: tags created, updated, deleted, listed, and their members and departments.

use serde_json::{json, Value};

use super::super::handlers::{bad_json, errcode, json_object, ok_with, Answer, Call};
use super::{as_id, ids, query_id, strings, Directory, Tag, MAX_ENTRIES};

impl Directory {
    pub(super) fn tag_list(&self) -> Answer {
        let list: Vec<Value> = self
            .tags
            .iter()
            .map(|(id, t)| json!({"tagid": id, "tagname": t.name}))
            .collect();
        ok_with(json!({ "taglist": list }))
    }

    pub(super) fn tag_get(&self, call: &Call) -> Answer {
        let Some(tag) = query_id(call, "tagid").and_then(|id| self.tags.get(&id)) else {
            return errcode(40068, "invalid tagid");
        };
        let users: Vec<Value> = tag
            .users
            .iter()
            .map(|u| {
                let name = self
                    .members
                    .get(u)
                    .map_or(Value::Null, |m| m["name"].clone());
                json!({"userid": u, "name": name})
            })
            .collect();
        ok_with(json!({"tagname": tag.name, "userlist": users, "partylist": tag.parties}))
    }

    pub(super) fn tag_create(&mut self, call: &Call) -> Answer {
        let Some(req) = json_object(call) else {
            return bad_json();
        };
        let name = req
            .get("tagname")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim();
        if name.is_empty() || name.chars().count() > 32 {
            return errcode(40071, "invalid tagname");
        }
        if self.tags.values().any(|t| t.name == name) {
            return errcode(40071, "tagname existed");
        }
        let id = match as_id(req.get("tagid")) {
            Some(id) if id == 0 || self.tags.contains_key(&id) => {
                return errcode(40068, "invalid tagid")
            }
            Some(id) => id,
            None => self.tags.keys().next_back().map_or(1, |m| m + 1),
        };
        if self.tags.len() >= MAX_ENTRIES {
            return errcode(40070, "tag count over the limit");
        }
        self.tags.insert(
            id,
            Tag {
                name: name.to_string(),
                ..Tag::default()
            },
        );
        ok_with(json!({"errmsg": "created", "tagid": id}))
    }

    pub(super) fn tag_update(&mut self, call: &Call) -> Answer {
        let Some(req) = json_object(call) else {
            return bad_json();
        };
        let name = req.get("tagname").and_then(Value::as_str).unwrap_or("");
        let Some(id) = as_id(req.get("tagid")).filter(|id| self.tags.contains_key(id)) else {
            return errcode(40068, "invalid tagid");
        };
        if name.is_empty() || self.tags.iter().any(|(i, t)| *i != id && t.name == name) {
            return errcode(40071, "invalid tagname");
        }
        if let Some(t) = self.tags.get_mut(&id) {
            t.name = name.to_string();
        }
        errcode(0, "updated")
    }

    pub(super) fn tag_delete(&mut self, call: &Call) -> Answer {
        match query_id(call, "tagid") {
            Some(id) if self.tags.remove(&id).is_some() => errcode(0, "deleted"),
            _ => errcode(40068, "invalid tagid"),
        }
    }

    /// `tag/addtagusers` and `tag/deltagusers` `{"tagid", "userlist", "partylist"}`: the
    /// members and departments that are not the corp's come back in `invalidlist` ("a|b") and
    /// `invalidparty`; when none of them is valid, 40070.
    pub(super) fn tag_users(&mut self, call: &Call, add: bool) -> Answer {
        let Some(req) = json_object(call) else {
            return bad_json();
        };
        let Some(id) = as_id(req.get("tagid")).filter(|id| self.tags.contains_key(id)) else {
            return errcode(40068, "invalid tagid");
        };
        let users = strings(req.get("userlist"));
        let parties = ids(req.get("partylist")).unwrap_or_default();
        if users.is_empty() && parties.is_empty() {
            return errcode(40031, "invalid userid list");
        }
        let (good_users, bad_users): (Vec<String>, Vec<String>) = users
            .into_iter()
            .partition(|u| self.members.contains_key(u));
        let (good_parties, bad_parties): (Vec<u64>, Vec<u64>) = parties
            .into_iter()
            .partition(|p| self.departments.contains_key(p));
        if good_users.is_empty() && good_parties.is_empty() {
            return errcode(40070, "all of the users and departments are invalid");
        }
        let Some(tag) = self.tags.get_mut(&id) else {
            return errcode(40068, "invalid tagid");
        };
        for u in good_users {
            if add {
                tag.users.insert(u);
            } else {
                tag.users.remove(&u);
            }
        }
        for p in good_parties {
            if add {
                tag.parties.insert(p);
            } else {
                tag.parties.remove(&p);
            }
        }
        let mut extra = json!({});
        if !bad_users.is_empty() {
            extra["invalidlist"] = json!(bad_users.join("|"));
        }
        if !bad_parties.is_empty() {
            extra["invalidparty"] = json!(bad_parties);
        }
        ok_with(extra)
    }
}
