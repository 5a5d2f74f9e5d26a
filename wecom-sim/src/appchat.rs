//! The simulated corp's group chats (`appchat/create`, `get`, `update`, `send`), in WeCom's
//! shapes: a chat needs at least two members, and `send` counts a delivery per chat member in
//! [`super::Counters`] as `message/send` does per recipient.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::handlers::{bad_json, errcode, json_object, ok_with, random_hex, Answer, Call};

/// Chats kept at most; past it `appchat/create` is refused.
const MAX_CHATS: usize = 10_000;

struct Chat {
    name: String,
    owner: String,
    users: Vec<String>,
}

#[derive(Default)]
pub(crate) struct AppChats {
    chats: BTreeMap<String, Chat>,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    let mut out: Vec<String> = match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    };
    out.dedup();
    out
}

/// The group chat APIs [`AppChats::answer`] serves.
pub(crate) const PATHS: &[&str] = &[
    "/cgi-bin/appchat/create",
    "/cgi-bin/appchat/get",
    "/cgi-bin/appchat/update",
    "/cgi-bin/appchat/send",
];

impl AppChats {
    pub fn serves(path: &str) -> bool {
        PATHS.contains(&path)
    }

    /// Answers an `appchat/` API; `None` for any other path. A send returns the chat's members,
    /// for the caller to count deliveries.
    pub fn answer(&mut self, call: &Call) -> Option<(Answer, Vec<String>)> {
        let answer = match call.path.strip_prefix("/cgi-bin/appchat/")? {
            "create" => self.create(call),
            "get" => self.get(call),
            "update" => self.update(call),
            "send" => return Some(self.send(call)),
            _ => return None,
        };
        Some((answer, Vec::new()))
    }

    fn create(&mut self, call: &Call) -> Answer {
        let Some(req) = json_object(call) else {
            return bad_json();
        };
        let users = strings(req.get("userlist"));
        if users.len() < 2 {
            return errcode(86216, "userlist needs at least 2 members");
        }
        let owner = req
            .get("owner")
            .and_then(Value::as_str)
            .map(String::from)
            .filter(|o| users.contains(o))
            .unwrap_or_else(|| users[0].clone());
        let chatid = match req.get("chatid").and_then(Value::as_str) {
            Some(id) if id.is_empty() || id.len() > 32 => return errcode(86001, "invalid chatid"),
            Some(id) if self.chats.contains_key(id) => return errcode(86215, "chatid existed"),
            Some(id) => id.to_string(),
            None => random_hex(16),
        };
        if self.chats.len() >= MAX_CHATS {
            return errcode(86004, "chat count over the limit");
        }
        let name = req
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        self.chats
            .insert(chatid.clone(), Chat { name, owner, users });
        ok_with(json!({ "chatid": chatid }))
    }

    fn get(&self, call: &Call) -> Answer {
        let id = call.query("chatid").unwrap_or_default();
        let Some(chat) = self.chats.get(&id) else {
            return errcode(86003, "chat not found");
        };
        ok_with(json!({"chat_info": {
            "chatid": id, "name": chat.name, "owner": chat.owner,
            "userlist": chat.users, "chat_type": 0,
        }}))
    }

    fn update(&mut self, call: &Call) -> Answer {
        let Some(req) = json_object(call) else {
            return bad_json();
        };
        let id = req.get("chatid").and_then(Value::as_str).unwrap_or("");
        let Some(chat) = self.chats.get_mut(id) else {
            return errcode(86003, "chat not found");
        };
        if let Some(name) = req.get("name").and_then(Value::as_str) {
            chat.name = name.to_string();
        }
        for u in strings(req.get("add_user_list")) {
            if !chat.users.contains(&u) {
                chat.users.push(u);
            }
        }
        let gone = strings(req.get("del_user_list"));
        chat.users.retain(|u| !gone.contains(u));
        if let Some(owner) = req.get("owner").and_then(Value::as_str) {
            chat.owner = owner.to_string();
        }
        errcode(0, "ok")
    }

    fn send(&self, call: &Call) -> (Answer, Vec<String>) {
        let Some(req) = json_object(call) else {
            return (bad_json(), Vec::new());
        };
        let id = req.get("chatid").and_then(Value::as_str).unwrap_or("");
        match self.chats.get(id) {
            Some(chat) if req.get("msgtype").and_then(Value::as_str).is_some() => {
                (errcode(0, "ok"), chat.users.clone())
            }
            Some(_) => (errcode(40008, "invalid message type"), Vec::new()),
            None => (errcode(86003, "chat not found"), Vec::new()),
        }
    }
}
