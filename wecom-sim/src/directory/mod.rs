//! The simulated corp's contacts: members, departments and tags, and the contact APIs on them
//! (`user/*`, `department/*`, `tag/*`), answered in the shapes and with the errcodes of WeCom's
//! documentation. State stays consistent: a created member, department or tag is listed, got
//! and counted until it is deleted.
//!
//! The corp starts with departments 1 (Head office), 2 (R&D) and 3 (Sales) and six members.
//! `user/get` also answers a made-up member for any other `userid` that was never deleted
//! (tests call it with arbitrary ids); `user/list`, `user/simplelist` and `user/list_id` list
//! only the members the corp really has.
//!
//! The rooms: this file holds the corp's state, its seed and the dispatch by path; `members`,
//! `departments` and `tags` answer the APIs of each.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

mod departments;
mod members;
mod recipients;
mod tags;
#[cfg(test)]
mod tests;

use super::handlers::{Answer, Call};

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
}
