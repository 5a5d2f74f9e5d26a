//! The simulated corp's contacts: members, departments and tags, and the contact APIs on them
//! (`user/*`, `department/*`, `tag/*`), answered in the shapes and with the errcodes of WeCom's
//! documentation. State stays consistent: a created member, department or tag is listed, got
//! and counted until it is deleted.
//!
//! The corp starts with departments 1 (Head office), 2 (R&D) and 3 (Sales) and six members.
//! `user/get` also answers a made-up member for any other `userid` that was never deleted
//! (tests call it with arbitrary ids); `user/list`, `user/simplelist` and `user/list_id` list
//! only the members the corp really has.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use super::handlers::{bad_json, errcode, json_object, ok_with, Answer, Call};

/// How many members, departments or tags the simulated corp holds at most (a test that
/// creates without end gets WeCom's "over the limit" errcodes instead of growing it).
const MAX_ENTRIES: usize = 100_000;

/// The members the corp starts with: (userid, department).
const SEED_MEMBERS: [(&str, u64); 6] = [
    ("zhangsan", 1),
    ("lisi", 2),
    ("wangwu", 2),
    ("zhaoliu", 3),
    ("sunqi", 3),
    ("zhouba", 1),
];

struct Department {
    name: String,
    name_en: String,
    parentid: u64,
    order: u64,
    leaders: Vec<String>,
}

#[derive(Default)]
struct Tag {
    name: String,
    users: BTreeSet<String>,
    parties: BTreeSet<u64>,
}

/// Members (their JSON records, as `user/get` answers them), departments and tags.
pub(crate) struct Directory {
    members: BTreeMap<String, Map<String, Value>>,
    /// Userids deleted since the start: `user/get` answers 60111 for them.
    deleted: BTreeSet<String>,
    departments: BTreeMap<u64, Department>,
    tags: BTreeMap<u64, Tag>,
}

impl Default for Directory {
    fn default() -> Self {
        let dept = |name: &str, name_en: &str, parentid, order, leaders: &[&str]| Department {
            name: name.into(),
            name_en: name_en.into(),
            parentid,
            order,
            leaders: leaders.iter().map(|s| s.to_string()).collect(),
        };
        let departments = BTreeMap::from([
            (1, dept("Head office", "HQ", 0, 100_000_000, &["zhangsan"])),
            (2, dept("R&D", "", 1, 100_000_000, &[])),
            (3, dept("Sales", "", 1, 99_999_000, &[])),
        ]);
        let members = SEED_MEMBERS
            .iter()
            .map(|(u, d)| (u.to_string(), member(u, &format!("User {u}"), &[*d])))
            .collect();
        Directory {
            members,
            deleted: BTreeSet::new(),
            departments,
            tags: BTreeMap::new(),
        }
    }
}

/// A member record with WeCom's fields.
fn member(userid: &str, name: &str, departments: &[u64]) -> Map<String, Value> {
    let v = json!({
        "userid": userid,
        "name": name,
        "department": departments,
        "order": departments.iter().map(|_| 0).collect::<Vec<_>>(),
        "position": "",
        "mobile": "",
        "gender": "0",
        "email": "",
        "is_leader_in_dept": departments.iter().map(|_| 0).collect::<Vec<_>>(),
        "direct_leader": [],
        "avatar": "",
        "thumb_avatar": "",
        "telephone": "",
        "alias": "",
        "status": 1,
        "address": "",
        "main_department": departments.first().copied().unwrap_or(1),
        "open_userid": format!("wo{}", hex::encode(userid)),
        "extattr": {"attrs": []},
        "external_position": "",
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// A number WeCom accepts as a number or as a string of digits.
fn as_id(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn query_id(call: &Call, name: &str) -> Option<u64> {
    call.query(name).and_then(|v| v.trim().parse().ok())
}

fn ids(v: Option<&Value>) -> Option<Vec<u64>> {
    match v? {
        Value::Array(a) => a.iter().map(|x| as_id(Some(x))).collect(),
        other => as_id(Some(other)).map(|d| vec![d]),
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

/// The contact APIs [`Directory::answer`] serves.
pub(crate) const PATHS: &[&str] = &[
    "/cgi-bin/user/get",
    "/cgi-bin/user/create",
    "/cgi-bin/user/update",
    "/cgi-bin/user/delete",
    "/cgi-bin/user/batchdelete",
    "/cgi-bin/user/simplelist",
    "/cgi-bin/user/list",
    "/cgi-bin/user/list_id",
    "/cgi-bin/user/convert_to_openid",
    "/cgi-bin/user/convert_to_userid",
    "/cgi-bin/department/list",
    "/cgi-bin/department/simplelist",
    "/cgi-bin/department/get",
    "/cgi-bin/department/create",
    "/cgi-bin/department/update",
    "/cgi-bin/department/delete",
    "/cgi-bin/tag/list",
    "/cgi-bin/tag/get",
    "/cgi-bin/tag/create",
    "/cgi-bin/tag/update",
    "/cgi-bin/tag/delete",
    "/cgi-bin/tag/addtagusers",
    "/cgi-bin/tag/deltagusers",
];

impl Directory {
    pub fn serves(path: &str) -> bool {
        PATHS.contains(&path)
    }

    /// Answers a contact API; `None` when `path` is not one.
    pub fn answer(&mut self, call: &Call) -> Option<Answer> {
        let path = call.path.strip_prefix("/cgi-bin/")?;
        Some(match path {
            "user/get" => self.user_get(call),
            "user/create" => self.user_create(call),
            "user/update" => self.user_update(call),
            "user/delete" => self.user_delete(call),
            "user/batchdelete" => self.user_batchdelete(call),
            "user/simplelist" => self.user_list(call, true),
            "user/list" => self.user_list(call, false),
            "user/list_id" => self.user_list_id(call),
            "user/convert_to_openid" => self.convert_to_openid(call),
            "user/convert_to_userid" => self.convert_to_userid(call),
            "department/list" => self.department_list(call, false),
            "department/simplelist" => self.department_list(call, true),
            "department/get" => self.department_get(call),
            "department/create" => self.department_create(call),
            "department/update" => self.department_update(call),
            "department/delete" => self.department_delete(call),
            "tag/list" => self.tag_list(),
            "tag/get" => self.tag_get(call),
            "tag/create" => self.tag_create(call),
            "tag/update" => self.tag_update(call),
            "tag/delete" => self.tag_delete(call),
            "tag/addtagusers" => self.tag_users(call, true),
            "tag/deltagusers" => self.tag_users(call, false),
            _ => return None,
        })
    }

    // --- members ------------------------------------------------------------------------

    fn user_get(&self, call: &Call) -> Answer {
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

    fn user_create(&mut self, call: &Call) -> Answer {
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

    fn user_update(&mut self, call: &Call) -> Answer {
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

    fn remove_member(&mut self, userid: &str) -> bool {
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

    fn user_delete(&mut self, call: &Call) -> Answer {
        let userid = call.query("userid").unwrap_or_default();
        if userid.is_empty() {
            return errcode(41009, "missing userid");
        }
        if !self.remove_member(&userid) {
            return errcode(60111, "userid not found");
        }
        errcode(0, "deleted")
    }

    fn user_batchdelete(&mut self, call: &Call) -> Answer {
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
    fn subtree(&self, id: u64, children: bool) -> BTreeSet<u64> {
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

    fn departments_of(record: &Map<String, Value>) -> Vec<u64> {
        ids(record.get("department")).unwrap_or_default()
    }

    /// `user/simplelist` and `user/list` `?department_id=&fetch_child=`.
    fn user_list(&self, call: &Call, simple: bool) -> Answer {
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
    fn user_list_id(&self, call: &Call) -> Answer {
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

    fn convert_to_openid(&self, call: &Call) -> Answer {
        let Some(req) = json_object(call) else {
            return bad_json();
        };
        let userid = req.get("userid").and_then(Value::as_str).unwrap_or("");
        if !self.members.contains_key(userid) {
            return errcode(60111, "userid not found");
        }
        ok_with(json!({"openid": format!("oSim{}", hex::encode(userid))}))
    }

    fn convert_to_userid(&self, call: &Call) -> Answer {
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

    // --- departments --------------------------------------------------------------------

    fn department_json(&self, id: u64, simple: bool) -> Value {
        let d = &self.departments[&id];
        if simple {
            json!({"id": id, "parentid": d.parentid, "order": d.order})
        } else {
            json!({
                "id": id, "name": d.name, "name_en": d.name_en,
                "department_leader": d.leaders, "parentid": d.parentid, "order": d.order,
            })
        }
    }

    /// `department/list?id=` and `department/simplelist?id=`: the department and everything
    /// under it; without `id`, every department.
    fn department_list(&self, call: &Call, simple: bool) -> Answer {
        let ids: Vec<u64> = match query_id(call, "id") {
            None => self.departments.keys().copied().collect(),
            Some(id) if self.departments.contains_key(&id) => {
                self.subtree(id, true).into_iter().collect()
            }
            Some(_) => return errcode(60123, "invalid party id"),
        };
        let list: Vec<Value> = ids
            .into_iter()
            .map(|id| self.department_json(id, simple))
            .collect();
        if simple {
            ok_with(json!({ "department_id": list }))
        } else {
            ok_with(json!({ "department": list }))
        }
    }

    fn department_get(&self, call: &Call) -> Answer {
        match query_id(call, "id") {
            Some(id) if self.departments.contains_key(&id) => {
                ok_with(json!({ "department": self.department_json(id, false) }))
            }
            _ => errcode(60123, "invalid party id"),
        }
    }

    fn department_create(&mut self, call: &Call) -> Answer {
        let Some(req) = json_object(call) else {
            return bad_json();
        };
        let name = req.get("name").and_then(Value::as_str).unwrap_or("").trim();
        if name.is_empty() {
            return errcode(60001, "invalid party name");
        }
        let parentid = as_id(req.get("parentid")).unwrap_or(1);
        if !self.departments.contains_key(&parentid) {
            return errcode(60004, "parent department not found");
        }
        if self
            .departments
            .values()
            .any(|d| d.parentid == parentid && d.name == name)
        {
            return errcode(60008, "department name existed");
        }
        let id = match as_id(req.get("id")) {
            Some(id) if self.departments.contains_key(&id) => {
                return errcode(60008, "department id existed")
            }
            Some(0) => return errcode(60123, "invalid party id"),
            Some(id) => id,
            None => self.departments.keys().next_back().map_or(1, |m| m + 1),
        };
        if self.departments.len() >= MAX_ENTRIES {
            return errcode(60002, "department count over the limit");
        }
        self.departments.insert(
            id,
            Department {
                name: name.to_string(),
                name_en: req
                    .get("name_en")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                parentid,
                order: as_id(req.get("order")).unwrap_or(0),
                leaders: Vec::new(),
            },
        );
        ok_with(json!({"errmsg": "created", "id": id}))
    }

    fn department_update(&mut self, call: &Call) -> Answer {
        let Some(req) = json_object(call) else {
            return bad_json();
        };
        let Some(id) = as_id(req.get("id")).filter(|id| self.departments.contains_key(id)) else {
            return errcode(60123, "invalid party id");
        };
        if let Some(p) = as_id(req.get("parentid")) {
            if !self.departments.contains_key(&p) || self.subtree(id, true).contains(&p) {
                return errcode(60004, "parent department not found");
            }
        }
        let Some(d) = self.departments.get_mut(&id) else {
            return errcode(60123, "invalid party id");
        };
        if let Some(name) = req.get("name").and_then(Value::as_str) {
            d.name = name.to_string();
        }
        if let Some(name_en) = req.get("name_en").and_then(Value::as_str) {
            d.name_en = name_en.to_string();
        }
        if let Some(p) = as_id(req.get("parentid")) {
            d.parentid = p;
        }
        if let Some(o) = as_id(req.get("order")) {
            d.order = o;
        }
        errcode(0, "updated")
    }

    fn department_delete(&mut self, call: &Call) -> Answer {
        let Some(id) = query_id(call, "id").filter(|id| self.departments.contains_key(id)) else {
            return errcode(60123, "invalid party id");
        };
        if self.departments.values().any(|d| d.parentid == id) {
            return errcode(60006, "department has sub-departments");
        }
        if self
            .members
            .values()
            .any(|m| Self::departments_of(m).contains(&id))
        {
            return errcode(60005, "department has members");
        }
        self.departments.remove(&id);
        for tag in self.tags.values_mut() {
            tag.parties.remove(&id);
        }
        errcode(0, "deleted")
    }

    // --- tags ---------------------------------------------------------------------------

    fn tag_list(&self) -> Answer {
        let list: Vec<Value> = self
            .tags
            .iter()
            .map(|(id, t)| json!({"tagid": id, "tagname": t.name}))
            .collect();
        ok_with(json!({ "taglist": list }))
    }

    fn tag_get(&self, call: &Call) -> Answer {
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

    fn tag_create(&mut self, call: &Call) -> Answer {
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

    fn tag_update(&mut self, call: &Call) -> Answer {
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

    fn tag_delete(&mut self, call: &Call) -> Answer {
        match query_id(call, "tagid") {
            Some(id) if self.tags.remove(&id).is_some() => errcode(0, "deleted"),
            _ => errcode(40068, "invalid tagid"),
        }
    }

    /// `tag/addtagusers` and `tag/deltagusers` `{"tagid", "userlist", "partylist"}`: the
    /// members and departments that are not the corp's come back in `invalidlist` ("a|b") and
    /// `invalidparty`; when none of them is valid, 40070.
    fn tag_users(&mut self, call: &Call, add: bool) -> Answer {
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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn call<'a>(path: &'a str, query: &'a str, body: &'a Bytes) -> Call<'a> {
        Call {
            path,
            query,
            content_type: "application/json",
            body,
        }
    }

    #[test]
    fn every_listed_path_is_answered_and_no_other() {
        let mut d = Directory::default();
        let empty = Bytes::new();
        for p in PATHS {
            assert!(d.answer(&call(p, "", &empty)).is_some(), "{p}");
        }
        assert!(d.answer(&call("/cgi-bin/user/nope", "", &empty)).is_none());
    }

    #[test]
    fn deleting_a_department_with_members_or_children_is_refused() {
        let mut d = Directory::default();
        let body = Bytes::from_static(br#"{"name":"Ops","parentid":2}"#);
        let a = d.answer(&call("/cgi-bin/department/create", "", &body));
        assert!(a.is_some());
        assert!(d.departments.contains_key(&4));
        assert!(d
            .departments
            .values()
            .any(|x| x.name == "Ops" && x.parentid == 2));
        // 2 has a child now (and members); 4 has neither.
        d.answer(&call("/cgi-bin/department/delete", "id=2", &empty()));
        assert!(d.departments.contains_key(&2));
        d.answer(&call("/cgi-bin/department/delete", "id=4", &empty()));
        assert!(!d.departments.contains_key(&4));
    }

    fn empty() -> Bytes {
        Bytes::new()
    }
}
