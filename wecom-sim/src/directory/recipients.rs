//! Which recipients of a message the corp cannot reach: WeCom still answers errcode 0 and
//! lists them, `|`-separated, in `invaliduser`, `invalidparty` and `invalidtag` (a partial
//! success). A member is unknown once deleted (`user/get` answers 60111 for them too), a
//! party or tag when the corp has no department or tag with that id.

use serde_json::{json, Map, Value};

use super::Directory;

impl Directory {
    /// The `invalid*` fields of a send's answer to `msg`: `invaliduser` always (empty when
    /// every member was reached), `invalidparty` and `invalidtag` when some were not.
    pub(crate) fn unreached(&self, msg: &Map<String, Value>) -> Map<String, Value> {
        let ids = |key: &str| -> Vec<String> {
            msg.get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .split('|')
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .map(str::to_string)
                .collect()
        };
        let users: Vec<String> = ids("touser")
            .into_iter()
            .filter(|u| u != "@all" && self.deleted.contains(u))
            .collect();
        let known = |id: &str, ids: &dyn Fn(u64) -> bool| id.parse().is_ok_and(ids);
        let parties: Vec<String> = ids("toparty")
            .into_iter()
            .filter(|p| !known(p, &|id| self.departments.contains_key(&id)))
            .collect();
        let tags: Vec<String> = ids("totag")
            .into_iter()
            .filter(|t| !known(t, &|id| self.tags.contains_key(&id)))
            .collect();
        let mut out = Map::new();
        out.insert("invaliduser".into(), json!(users.join("|")));
        if !parties.is_empty() {
            out.insert("invalidparty".into(), json!(parties.join("|")));
        }
        if !tags.is_empty() {
            out.insert("invalidtag".into(), json!(tags.join("|")));
        }
        out
    }
}
