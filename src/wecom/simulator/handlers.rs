//! The WeCom endpoints the simulator answers, with WeCom's errcodes.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use serde_json::{json, Value};

use super::body::SimBody;
use super::state::{lock, State, TokenInfo};

pub type Answer = Response<SimBody>;

pub fn json_answer(v: Value) -> Answer {
    let body = Bytes::from(v.to_string());
    let mut r = Response::new(SimBody::full(body));
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    r
}

pub fn errcode(code: i64, msg: &str) -> Answer {
    json_answer(json!({"errcode": code, "errmsg": msg}))
}

fn query_value(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// `GET /cgi-bin/gettoken`.
pub fn gettoken(state: &State, query: &str) -> Answer {
    let corpid = query_value(query, "corpid").unwrap_or_default();
    let secret = query_value(query, "corpsecret").unwrap_or_default();
    let app = state
        .cfg
        .apps
        .iter()
        .find(|a| a.corp_id == corpid && a.secret == secret);
    let name = app.map_or("unknown".to_string(), |a| a.name.clone());
    *lock(&state.counters)
        .gettoken
        .entry(name.clone())
        .or_default() += 1;
    if !state.cfg.apps.iter().any(|a| a.corp_id == corpid) {
        return errcode(40013, "invalid corpid");
    }
    if app.is_none() {
        return errcode(40001, "invalid credential");
    }
    let token = random_hex(48);
    lock(&state.tokens).insert(
        token.clone(),
        TokenInfo {
            app: name,
            expires_at: Instant::now() + state.cfg.token_ttl,
            revoked: None,
        },
    );
    lock(&state.issued).push(token.clone());
    json_answer(json!({
        "errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": state.cfg.token_ttl.as_secs()
    }))
}

/// The app behind a call's `access_token`, or WeCom's token error.
pub fn check_token(state: &State, query: &str) -> Result<String, Box<Answer>> {
    let Some(token) = query_value(query, "access_token").filter(|t| !t.is_empty()) else {
        return Err(Box::new(errcode(41001, "access_token missing")));
    };
    let tokens = lock(&state.tokens);
    let Some(info) = tokens.get(&token) else {
        return Err(Box::new(errcode(40014, "invalid access_token")));
    };
    match info.revoked {
        Some(42001) => return Err(Box::new(errcode(42001, "access_token expired"))),
        Some(code) => return Err(Box::new(errcode(code, "invalid access_token"))),
        None => {}
    }
    if info.expires_at <= Instant::now() {
        return Err(Box::new(errcode(42001, "access_token expired")));
    }
    Ok(info.app.clone())
}

/// A business API, after the token check.
pub fn api(
    state: &State,
    app: &str,
    path: &str,
    query: &str,
    content_type: &str,
    body: &Bytes,
) -> Answer {
    match path {
        "/cgi-bin/user/get" => {
            let userid = query_value(query, "userid").unwrap_or_default();
            if userid.is_empty() {
                return errcode(60111, "userid not found");
            }
            json_answer(json!({
                "errcode": 0, "errmsg": "ok", "userid": userid, "name": format!("User {userid}"),
                "department": [1], "status": 1
            }))
        }
        "/cgi-bin/department/list" => json_answer(json!({
            "errcode": 0, "errmsg": "ok",
            "department": [
                {"id": 1, "name": "Head office", "parentid": 0, "order": 1},
                {"id": 2, "name": "R&D", "parentid": 1, "order": 1},
                {"id": 3, "name": "Sales", "parentid": 1, "order": 2}
            ]
        })),
        "/cgi-bin/user/list_id" => json_answer(json!({
            "errcode": 0, "errmsg": "ok", "next_cursor": "",
            "dept_user": [{"userid": "zhangsan", "department": 1}, {"userid": "lisi", "department": 2}]
        })),
        "/cgi-bin/message/send" | "/cgi-bin/linkedcorp/message/send" => {
            message_send(state, app, body)
        }
        "/cgi-bin/media/upload" => media_upload(state, query, content_type, body),
        "/cgi-bin/media/get" => media_get(state, query),
        _ => json_answer(json!({"errcode": 0, "errmsg": "ok"})),
    }
}

fn message_send(state: &State, app: &str, body: &Bytes) -> Answer {
    let Ok(Value::Object(mut msg)) = serde_json::from_slice::<Value>(body) else {
        return errcode(47001, "data format error");
    };
    let dedupe = msg.get("enable_duplicate_check").and_then(Value::as_i64) == Some(1);
    let window = msg
        .get("duplicate_check_interval")
        .and_then(Value::as_u64)
        .unwrap_or(1800)
        .min(14_400);
    msg.remove("enable_duplicate_check");
    msg.remove("duplicate_check_interval");
    let users: Vec<String> = msg
        .get("touser")
        .and_then(Value::as_str)
        .unwrap_or("")
        .split('|')
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect();
    let answer = json!({"errcode": 0, "errmsg": "ok", "invaliduser": "", "msgid": random_hex(16)});
    if dedupe {
        let key = (app.to_string(), Value::Object(msg).to_string());
        let now = Instant::now();
        let mut recent = lock(&state.recent);
        if recent
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < Duration::from_secs(window))
        {
            lock(&state.counters).duplicates_suppressed += 1;
            return json_answer(answer);
        }
        recent.insert(key, now);
    }
    let mut c = lock(&state.counters);
    c.messages_delivered += 1;
    for u in users {
        *c.delivered_per_user.entry(u).or_default() += 1;
    }
    json_answer(answer)
}

/// The `media` part of a multipart/form-data body.
fn media_part<'b>(content_type: &str, body: &'b [u8]) -> Option<&'b [u8]> {
    let boundary = content_type.split("boundary=").nth(1)?.trim_matches('"');
    let delim = format!("--{boundary}");
    let mut rest = body;
    while let Some(start) = find(rest, delim.as_bytes()) {
        rest = &rest[start + delim.len()..];
        let head_end = find(rest, b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&rest[..head_end]);
        let data = &rest[head_end + 4..];
        let end = find(data, format!("\r\n{delim}").as_bytes())?;
        if head.contains("name=\"media\"") {
            return Some(&data[..end]);
        }
        rest = &data[end..];
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn media_upload(state: &State, query: &str, content_type: &str, body: &Bytes) -> Answer {
    let Some(data) = media_part(content_type, body).filter(|d| !d.is_empty()) else {
        return errcode(44001, "empty media data");
    };
    let id = format!("m{}", random_hex(12));
    lock(&state.counters).uploaded_bytes += data.len() as u64;
    lock(&state.media).insert(id.clone(), body.slice_ref(data));
    json_answer(json!({
        "errcode": 0, "errmsg": "ok", "type": query_value(query, "type").unwrap_or_else(|| "file".into()),
        "media_id": id, "created_at": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()).to_string()
    }))
}

fn media_get(state: &State, query: &str) -> Answer {
    let id = query_value(query, "media_id").unwrap_or_default();
    let body = if let Some(n) = id.strip_prefix("gen-").and_then(|n| n.parse::<u64>().ok()) {
        SimBody::generated(n)
    } else if let Some(b) = lock(&state.media).get(&id) {
        SimBody::full(b.clone())
    } else {
        return errcode(40007, "invalid media_id");
    };
    let mut r = Response::new(body);
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{id}.bin\"")) {
        r.headers_mut().insert("content-disposition", v);
    }
    r
}

/// `POST /cgi-bin/webhook/send?key=`.
pub fn webhook(query: &str) -> Answer {
    match query_value(query, "key") {
        Some(k) if !k.is_empty() => errcode(0, "ok"),
        _ => errcode(93000, "invalid webhook url"),
    }
}

pub fn status(code: u16, text: &'static str) -> Answer {
    let mut r = Response::new(SimBody::full(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("text/plain"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_media_part() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nnope\r\n--XyZ\r\nContent-Disposition: form-data; name=\"media\"; filename=\"a\"\r\nContent-Type: application/octet-stream\r\n\r\nDATA\r\n\r\nMORE\r\n--XyZ--\r\n";
        assert_eq!(
            media_part("multipart/form-data; boundary=XyZ", body),
            Some(&b"DATA\r\n\r\nMORE"[..])
        );
        assert_eq!(
            media_part("multipart/form-data; boundary=XyZ", b"junk"),
            None
        );
        assert_eq!(media_part("application/json", body), None);
    }
}
