//! The WeCom endpoints the simulator answers, with WeCom's errcodes, and the answers of faults:
//! gettoken, robots, messages, media and the IP lists here; contacts in
//! [`super::directory`], group chats in [`super::appchat`]. A `/cgi-bin/` path none of them
//! serves gets HTTP 404 with errcode 404 (before any token check), so an SDK calling an API
//! the simulator does not implement fails at that call instead of reading a bare `ok`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use rand::Rng;
use serde_json::{json, Map, Value};

use super::appchat::AppChats;
use super::body::{SimBody, TRUNCATED_DECLARED};
use super::directory::Directory;
use super::multipart;
use super::state::{bump, lock, State, StoredMedia, TokenError, MAX_DUPLICATE_WINDOW};

pub type Answer = Response<SimBody>;

/// A WeCom call, its body already read.
pub struct Call<'a> {
    pub path: &'a str,
    pub query: &'a str,
    pub content_type: &'a str,
    pub body: &'a Bytes,
}

impl Call<'_> {
    pub(crate) fn query(&self, name: &str) -> Option<String> {
        query_value(self.query, name)
    }
}

pub fn query_value(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

pub fn json_answer(v: Value) -> Answer {
    let mut r = Response::new(SimBody::full(v.to_string()));
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    r
}

/// The JSON object a POST body holds; `None` for anything else (WeCom answers [`bad_json`]).
pub(crate) fn json_object(call: &Call) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Value>(call.body) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

/// WeCom's answer to a body that is not a JSON object.
pub(crate) fn bad_json() -> Answer {
    errcode(47001, "data format error")
}

pub fn errcode(code: i64, msg: &str) -> Answer {
    json_answer(json!({"errcode": code, "errmsg": msg}))
}

pub(crate) fn ok_with(fields: Value) -> Answer {
    let mut v = json!({"errcode": 0, "errmsg": "ok"});
    if let (Some(v), Value::Object(fields)) = (v.as_object_mut(), fields) {
        v.extend(fields);
    }
    json_answer(v)
}

/// An answer with HTTP status `code` and a short text body.
pub fn status(code: u16, text: &'static str) -> Answer {
    let mut r = Response::new(SimBody::full(text));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// `FaultKind::Errcode`: WeCom's own wording for the codes tests use most.
pub fn fault_errcode(code: i64) -> Answer {
    let msg = match code {
        -1 => "system busy",
        40001 => "invalid credential",
        40014 => "invalid access_token",
        42001 => "access_token expired",
        45009 => "api freq out of limit",
        45033 => "api concurrent out of limit",
        60020 => "not allow to access from your ip",
        _ => "simulated",
    };
    errcode(code, msg)
}

/// `FaultKind::UntrustedIp`: 60020 in WeCom's words, the caller's address in the errmsg.
pub fn untrusted_ip(ip: &str) -> Answer {
    errcode(
        60020,
        &format!(
            "not allow to access from your ip, hint: [1700000000_60_{}], from ip: {ip}, \
             more info at https://open.work.weixin.qq.com/devtool/query?e=60020",
            random_hex(8)
        ),
    )
}

/// `FaultKind::Garbage`: 200, claims JSON, is not.
pub fn garbage() -> Answer {
    let mut r = status(200, "<html>oops: not JSON</html>");
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    r
}

/// `FaultKind::Truncated`: declares 100 bytes, sends 10, then the connection is cut.
pub fn truncated() -> Answer {
    let mut r = Response::new(SimBody::truncated());
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    r.headers_mut()
        .insert("content-length", HeaderValue::from(TRUNCATED_DECLARED));
    r
}

fn path_and_query(path: &str, query: &str) -> String {
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    }
}

/// `FaultKind::RedirectAbsolute` (`host` given) and `RedirectRelative`: a 302 to the request
/// URL itself, query included.
pub fn redirect(host: Option<&str>, path: &str, query: &str) -> Answer {
    let target = match host {
        Some(host) => format!("http://{host}{}", path_and_query(path, query)),
        None => path_and_query(path, query),
    };
    let mut r = status(302, "moved");
    if let Ok(v) = HeaderValue::from_str(&target) {
        r.headers_mut().insert(http::header::LOCATION, v);
    }
    r
}

/// `FaultKind::Echo`: an answer that quotes the request URL in its body and headers.
pub fn echo(headers: &http::HeaderMap, path: &str, query: &str) -> Answer {
    let url = path_and_query(path, query);
    let token = query_value(query, "access_token").unwrap_or_default();
    let host = headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("wecom.invalid");
    let mut r = json_answer(json!({
        "errcode": 0,
        "errmsg": "ok",
        "url": url,
        "access_token": token,
        "note": format!("you called http://{host}{url}"),
    }));
    let h = r.headers_mut();
    for (name, value) in [
        ("content-location", url.clone()),
        ("x-echo-url", format!("http://{host}{url}")),
        ("link", format!("<{url}>; rel=\"canonical\"")),
        ("x-echo-token", token),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    r
}

/// `FaultKind::GzipEcho`: the echo, gzip-compressed, as an HTTP 400.
pub fn gzip_echo(headers: &http::HeaderMap, path: &str, query: &str) -> Answer {
    use std::io::Write;
    let url = path_and_query(path, query);
    let host = headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("wecom.invalid");
    let body = json!({"errcode": 40058, "errmsg": format!("bad request http://{host}{url}")});
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let compressed = gz
        .write_all(body.to_string().as_bytes())
        .and_then(|()| gz.finish())
        .unwrap_or_default();
    let mut r = Response::new(SimBody::full(compressed));
    *r.status_mut() = StatusCode::BAD_REQUEST;
    let h = r.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    h.insert("content-encoding", HeaderValue::from_static("gzip"));
    r
}

/// `FaultKind::ErrcodeEcho`: errcode `code` with an errmsg that quotes the request URL as sent,
/// and its `corpsecret` decoded, as some gateways do.
pub fn errcode_echo(code: i64, path: &str, query: &str) -> Answer {
    let secret = query_value(query, "corpsecret").unwrap_or_default();
    errcode(
        code,
        &format!(
            "invalid credential, request: {}, corpsecret: [{secret}]",
            path_and_query(path, query)
        ),
    )
}

/// `FaultKind::EscapedEcho`: the request's `access_token` echoed in JSON, each character as
/// `\uXXXX`.
pub fn escaped_echo(query: &str) -> Answer {
    let token = query_value(query, "access_token").unwrap_or_default();
    let escaped: String = token
        .encode_utf16()
        .map(|u| format!("\\u{u:04x}"))
        .collect();
    let body = format!(r#"{{"errcode":0,"errmsg":"ok","access_token":"{escaped}"}}"#);
    let mut r = Response::new(SimBody::full(body.into_bytes()));
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    r
}

pub(crate) fn random_hex(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    rand::rng().fill(&mut raw[..]);
    hex::encode(raw)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The app named by a `gettoken` call's `corpsecret` (and `corpid` where several apps share a
/// secret), `unknown` when none: what `Counters::gettoken` counts under.
pub fn gettoken_app(state: &State, query: &str) -> String {
    let corpid = query_value(query, "corpid").unwrap_or_default();
    let secret = query_value(query, "corpsecret").unwrap_or_default();
    let apps = &state.cfg.apps;
    apps.iter()
        .find(|a| a.secret == secret && a.corp_id == corpid)
        .or_else(|| apps.iter().find(|a| a.secret == secret))
        .map_or_else(|| "unknown".to_string(), |a| a.name.clone())
}

/// A `/cgi-bin/` call past the fault check: gettoken, a robot call, or a business API.
pub fn wecom(state: &State, call: &Call) -> Answer {
    if call.path == "/cgi-bin/gettoken" {
        return gettoken(state, call);
    }
    if call.path.starts_with("/cgi-bin/webhook/") {
        return webhook(state, call);
    }
    if !implemented(call.path) {
        return not_implemented(call.path);
    }
    match state.check_token(call.query("access_token").as_deref()) {
        Ok(app) => api(state, app, call),
        Err(TokenError::Missing) => errcode(41001, "access_token missing"),
        Err(TokenError::Invalid) => errcode(40014, "invalid access_token"),
        Err(TokenError::Expired) => errcode(42001, "access_token expired"),
    }
}

/// `GET /cgi-bin/gettoken?corpid=&corpsecret=`.
fn gettoken(state: &State, call: &Call) -> Answer {
    let corpid = call.query("corpid").unwrap_or_default();
    let secret = call.query("corpsecret").unwrap_or_default();
    let apps = &state.cfg.apps;
    if !apps.iter().any(|a| a.corp_id == corpid) {
        return errcode(40013, "invalid corpid");
    }
    let Some(app) = apps
        .iter()
        .position(|a| a.corp_id == corpid && a.secret == secret)
    else {
        return errcode(40001, "invalid credential");
    };
    let (token, left) = match state
        .cfg
        .reuse_valid_token
        .then(|| state.valid_token_of(app))
    {
        Some(Some(valid)) => valid,
        _ => {
            let token = random_hex(48);
            state.issue_token(app, token.clone());
            (token, state.cfg.token_ttl)
        }
    };
    let expires_in = state.cfg.expires_in_override.unwrap_or(left.as_secs());
    ok_with(json!({"access_token": token, "expires_in": expires_in}))
}

/// The APIs answered here besides the contact and group chat ones.
const APIS: &[&str] = &[
    "/cgi-bin/message/send",
    "/cgi-bin/linkedcorp/message/send",
    "/cgi-bin/media/upload",
    "/cgi-bin/media/uploadimg",
    "/cgi-bin/media/get",
    "/cgi-bin/getcallbackip",
    "/cgi-bin/get_api_domain_ip",
    "/cgi-bin/get_jsapi_ticket",
    "/cgi-bin/ticket/get",
];

/// Whether the simulator answers `path` (a business API, past the token check).
pub fn implemented(path: &str) -> bool {
    APIS.contains(&path) || Directory::serves(path) || AppChats::serves(path)
}

/// Every business API the simulator answers, for its docs and tests.
pub fn implemented_apis() -> Vec<&'static str> {
    let mut all: Vec<&str> = APIS
        .iter()
        .chain(super::directory::PATHS)
        .chain(super::appchat::PATHS)
        .copied()
        .collect();
    all.sort_unstable();
    all
}

/// A `/cgi-bin/` path the simulator does not serve: HTTP 404, errcode 404, naming the path.
fn not_implemented(path: &str) -> Answer {
    let mut r = json_answer(json!({
        "errcode": 404,
        "errmsg": format!("not found: {path} is not an API the WeCom simulator implements"),
    }));
    *r.status_mut() = StatusCode::NOT_FOUND;
    r
}

/// The addresses `getcallbackip` and `get_api_domain_ip` list (documentation ranges).
const IP_LIST: [&str; 3] = ["192.0.2.10", "192.0.2.11", "198.51.100.0/24"];

/// A business API, after the token check; `app` is the token's app.
fn api(state: &State, app: usize, call: &Call) -> Answer {
    if let Some(answer) = lock(&state.directory).answer(call) {
        return answer;
    }
    if let Some((answer, members)) = lock(&state.chats).answer(call) {
        if !members.is_empty() {
            {
                let mut c = lock(&state.counters);
                c.messages_delivered += 1;
                for user in &members {
                    bump(&mut c.delivered_per_user, user, 1);
                }
            }
            record_delivered(state, app_name(state, app), call);
        }
        return answer;
    }
    match call.path {
        "/cgi-bin/get_jsapi_ticket" | "/cgi-bin/ticket/get" => {
            super::ticket::answer(state, app, call)
        }
        "/cgi-bin/message/send" | "/cgi-bin/linkedcorp/message/send" => {
            message_send(state, app, call)
        }
        "/cgi-bin/media/upload" => {
            let kind = call.query("type").unwrap_or_else(|| "file".into());
            media_upload(state, call, &kind)
        }
        "/cgi-bin/media/uploadimg" => media_uploadimg(state, call),
        "/cgi-bin/media/get" => media_get(state, call),
        "/cgi-bin/getcallbackip" | "/cgi-bin/get_api_domain_ip" => {
            ok_with(json!({ "ip_list": IP_LIST }))
        }
        other => not_implemented(other),
    }
}

/// `POST /cgi-bin/message/send`: counts deliveries; honours `enable_duplicate_check`.
fn message_send(state: &State, app: usize, call: &Call) -> Answer {
    let Ok(Value::Object(mut msg)) = serde_json::from_slice::<Value>(call.body) else {
        return errcode(47001, "data format error");
    };
    let dedupe = match msg.remove("enable_duplicate_check") {
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        Some(Value::String(s)) => s.trim() == "1",
        Some(Value::Bool(b)) => b,
        _ => false,
    };
    let window = match msg.remove("duplicate_check_interval") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .map_or(Duration::from_secs(1800), Duration::from_secs)
    .min(MAX_DUPLICATE_WINDOW);
    let unreached = lock(&state.directory).unreached(&msg);
    let mut fields = unreached.clone();
    fields.insert("msgid".into(), json!(random_hex(24)));
    let answer = ok_with(Value::Object(fields));
    if dedupe && state.seen_recently(app, canonical(&msg), window) {
        lock(&state.counters).duplicates_suppressed += 1;
        return answer;
    }
    let touser = msg.get("touser").and_then(Value::as_str).unwrap_or("");
    let invalid = unreached
        .get("invaliduser")
        .and_then(Value::as_str)
        .unwrap_or("");
    let invalid: Vec<&str> = invalid.split('|').collect();
    {
        let mut c = lock(&state.counters);
        c.messages_delivered += 1;
        crate::state::keep_message(&mut c.messages, message_words(&msg));
        let users = touser.split('|').map(str::trim);
        for user in users.filter(|u| !u.is_empty() && !invalid.contains(u)) {
            bump(&mut c.delivered_per_user, user, 1);
        }
    }
    record_delivered(state, app_name(state, app), call);
    answer
}

/// The name of app `app` (an index into the config's apps).
fn app_name(state: &State, app: usize) -> &str {
    state
        .cfg
        .apps
        .get(app)
        .map_or("unknown", |a| a.name.as_str())
}

/// Puts a delivered message (its body as received, when it is JSON) in the delivered log.
fn record_delivered(state: &State, app: &str, call: &Call) {
    if let Ok(body) = serde_json::from_slice::<Value>(call.body) {
        lock(&state.delivered).record(app, call.path, body);
    }
}

/// JSON text of an object with keys sorted at every level, so that key order does not make
/// two messages differ.
fn canonical(msg: &Map<String, Value>) -> String {
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    write(&m[k], out);
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(v, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(&Value::Object(msg.clone()), &mut out);
    out
}

/// `media/upload` (and a robot's `upload_media`): stores the `media` part of the multipart body.
fn media_upload(state: &State, call: &Call, kind: &str) -> Answer {
    let Some(part) =
        multipart::find_part(call.content_type, call.body, "media").filter(|p| !p.data.is_empty())
    else {
        return errcode(44001, "empty media data");
    };
    let id = format!("3{}", random_hex(24));
    let len = part.data.len() as u64;
    let stored = StoredMedia {
        data: call.body.slice_ref(part.data),
        filename: part.filename.unwrap_or_else(|| format!("{id}.bin")),
    };
    lock(&state.media).insert(id.clone(), stored);
    lock(&state.counters).uploaded_bytes += len;
    ok_with(json!({"type": kind, "media_id": id, "created_at": unix_now().to_string()}))
}

/// `media/uploadimg`: an image for message bodies, answered with a URL of it.
fn media_uploadimg(state: &State, call: &Call) -> Answer {
    let Some(part) =
        multipart::find_part(call.content_type, call.body, "media").filter(|p| !p.data.is_empty())
    else {
        return errcode(44001, "empty media data");
    };
    lock(&state.counters).uploaded_bytes += part.data.len() as u64;
    ok_with(json!({"url": format!("https://wework.qpic.cn/sim/{}/0", random_hex(16))}))
}

/// `GET /cgi-bin/media/get?media_id=`: the stored file, or `gen-N`: N generated bytes.
fn media_get(state: &State, call: &Call) -> Answer {
    let id = call.query("media_id").unwrap_or_default();
    let (body, filename) =
        if let Some(n) = id.strip_prefix("gen-").and_then(|n| n.parse::<u64>().ok()) {
            (SimBody::generated(n), format!("{id}.bin"))
        } else if let Some(m) = lock(&state.media).get(&id) {
            (SimBody::full(m.data.clone()), m.filename.clone())
        } else {
            return errcode(40007, "invalid media_id");
        };
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static("application/octet-stream"),
    );
    let filename: String = filename
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '\\'))
        .collect();
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment; filename=\"media.bin\""));
    h.insert("content-disposition", disposition);
    r
}

/// Group robot calls (`/cgi-bin/webhook/send?key=`, `/cgi-bin/webhook/upload_media?key=`):
/// authenticated by `key`, no token.
fn webhook(state: &State, call: &Call) -> Answer {
    if call.query("key").is_none_or(|k| k.is_empty()) {
        return errcode(93000, "invalid webhook url");
    }
    match call.path {
        "/cgi-bin/webhook/upload_media" => {
            let kind = call.query("type").unwrap_or_else(|| "file".into());
            media_upload(state, call, &kind)
        }
        _ => {
            let words = match serde_json::from_slice::<Value>(call.body) {
                Ok(Value::Object(msg)) => message_words(&msg),
                _ => String::from_utf8_lossy(call.body).into_owned(),
            };
            crate::state::keep_message(&mut lock(&state.counters).robot_messages, words);
            record_delivered(state, "webhook", call);
            errcode(0, "ok")
        }
    }
}

/// What a delivered message said: a text's (or markdown's) `content`, else its JSON.
fn message_words(msg: &Map<String, Value>) -> String {
    ["text", "markdown"]
        .iter()
        .find_map(|kind| msg.get(*kind)?.get("content")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| canonical(msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_ignores_key_order() {
        let a: Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":[1,{"q":2,"p":"x"}],"x":null}}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{"a":{"x":null,"y":[1,{"p":"x","q":2}]},"b":1}"#).unwrap();
        let c: Value =
            serde_json::from_str(r#"{"a":{"x":null,"y":[{"p":"x","q":2},1]},"b":1}"#).unwrap();
        let (a, b, c) = (
            a.as_object().unwrap(),
            b.as_object().unwrap(),
            c.as_object().unwrap(),
        );
        assert_eq!(canonical(a), canonical(b));
        assert_ne!(canonical(a), canonical(c));
        assert_eq!(
            canonical(a),
            r#"{"a":{"x":null,"y":[1,{"p":"x","q":2}]},"b":1}"#
        );
    }
}
