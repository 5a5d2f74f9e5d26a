//! `department/*`: departments created, updated, deleted (refused while they have members or
//! children), got and listed.

use serde_json::{json, Value};

use super::super::handlers::{bad_json, errcode, json_object, ok_with, Answer, Call};
use super::{as_id, query_id, Department, Directory, MAX_ENTRIES};

impl Directory {
    pub(super) fn department_json(&self, id: u64, simple: bool) -> Value {
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
    pub(super) fn department_list(&self, call: &Call, simple: bool) -> Answer {
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

    pub(super) fn department_get(&self, call: &Call) -> Answer {
        match query_id(call, "id") {
            Some(id) if self.departments.contains_key(&id) => {
                ok_with(json!({ "department": self.department_json(id, false) }))
            }
            _ => errcode(60123, "invalid party id"),
        }
    }

    pub(super) fn department_create(&mut self, call: &Call) -> Answer {
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

    pub(super) fn department_update(&mut self, call: &Call) -> Answer {
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

    pub(super) fn department_delete(&mut self, call: &Call) -> Answer {
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
}
