//! `callbacks` (the listener WeCom pushes to, each app's path, credentials and receiver, and
//! how pushes are delivered).
//!
//! An app's callback `Token` and `EncodingAESKey` are secrets read like app secrets (exactly
//! one of `*_env` or `*_file`); the key is checked for WeCom's shape (43 base64 characters)
//! without ever being shown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::check::Check;
use super::secrets::{secret_from, CALLBACK_AES_KEY, CALLBACK_TOKEN};
use super::Secrets;
use crate::config::defaults::*;
use crate::config::file::{FileCallbackApp, FileCallbacks, FileDelivery};
use crate::config::model::{App, CallbackApp, Callbacks, Delivery, Secret};
use crate::config::quote::quote;

/// What stands in for a callback credential not read (`--check --no-secrets`): a token and a
/// key of WeCom's shape, never usable against a real corp.
const PLACEHOLDER_TOKEN: &str = "notread";
const PLACEHOLDER_AES_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// `callbacks`, or `None` when the section is absent. `taken` are the other listeners'
/// addresses (`listen`, `admin_listen`), which the callback listener may not share.
pub(super) fn callbacks(
    c: &mut Check,
    file: Option<FileCallbacks>,
    apps: &[App],
    taken: &[(&str, Option<SocketAddr>)],
) -> Option<Callbacks> {
    let file = file?;
    let listen = callback_listen(c, file.listen.as_deref(), taken);
    let delivery = delivery(c, file.delivery.as_ref());
    let entries = match file.apps {
        Some(a) if !a.is_empty() => a,
        _ => {
            c.problem("callbacks.apps", "is missing or empty. Add one entry per app WeCom pushes to, e.g. `apps: [{ app: hr-bot, path: /callback/hr-bot, token_env: WECOM_HR_CB_TOKEN, aes_key_env: WECOM_HR_CB_AES_KEY, deliver_to: \"http://127.0.0.1:3000/wecom/events\" }]`, or drop `callbacks`");
            Vec::new()
        }
    };
    let mut out = Vec::new();
    let mut by_app: HashMap<String, usize> = HashMap::new();
    let mut by_path: HashMap<String, usize> = HashMap::new();
    for (i, e) in entries.into_iter().enumerate() {
        let key = format!("callbacks.apps[{i}]");
        if let Some(&j) = by_app.get(&e.app) {
            c.problem(
                format!("{key}.app"),
                format!(
                    "{} already has a callback (callbacks.apps[{j}]). One entry per app: drop one",
                    quote(&e.app)
                ),
            );
        }
        by_app.entry(e.app.clone()).or_insert(i);
        if let Some(&j) = by_path.get(&e.path) {
            c.problem(format!("{key}.path"), format!("{} is already the path of callbacks.apps[{j}]. Each app needs its own path (WeCom's console sets one URL per app)", quote(&e.path)));
        }
        by_path.entry(e.path.clone()).or_insert(i);
        if let Some(app) = callback_app(c, &key, e, apps) {
            out.push(app);
        }
    }
    Some(Callbacks {
        listen: listen?,
        apps: out,
        delivery,
    })
}

fn callback_listen(
    c: &mut Check,
    value: Option<&str>,
    taken: &[(&str, Option<SocketAddr>)],
) -> Option<SocketAddr> {
    let text = value.unwrap_or(DEFAULT_CALLBACK_LISTEN);
    let addr = match text.trim().parse::<SocketAddr>() {
        Ok(a) if a.port() != 0 => a,
        _ => {
            c.problem(
                "callbacks.listen",
                format!("{} is not IP:port with a fixed port. Write an IP address and a port, e.g. \"{DEFAULT_CALLBACK_LISTEN}\"", quote(text)),
            );
            return None;
        }
    };
    for (name, other) in taken {
        if *other == Some(addr) {
            c.problem(
                "callbacks.listen",
                format!("is the same address as {name} ({addr}). Give the callback listener its own port, e.g. \"{DEFAULT_CALLBACK_LISTEN}\""),
            );
        }
    }
    Some(addr)
}

fn callback_app(c: &mut Check, key: &str, e: FileCallbackApp, apps: &[App]) -> Option<CallbackApp> {
    let app = apps.iter().find(|a| a.name.as_str() == e.app);
    if app.is_none() {
        let names: Vec<&str> = apps.iter().map(|a| a.name.as_str()).collect();
        c.problem(
            format!("{key}.app"),
            format!(
                "{} is not an app of `apps` ({}). Name the app WeCom pushes for",
                quote(&e.app),
                names.join(", ")
            ),
        );
    }
    let token_key = format!(
        "{key}.{}",
        if e.token_file.is_some() {
            "token_file"
        } else {
            "token_env"
        }
    );
    let aes_key_key = format!(
        "{key}.{}",
        if e.aes_key_file.is_some() {
            "aes_key_file"
        } else {
            "aes_key_env"
        }
    );
    let path_ok = callback_path(c, key, &e.path);
    let deliver_to = deliver_to(c, key, &e.deliver_to);
    let reply_within = reply_within(c, key, e.reply_within.as_deref());
    let token = secret_from(
        c,
        key,
        e.token_env.as_deref(),
        e.token_file.as_deref(),
        &CALLBACK_TOKEN,
    );
    let aes_key = secret_from(
        c,
        key,
        e.aes_key_env.as_deref(),
        e.aes_key_file.as_deref(),
        &CALLBACK_AES_KEY,
    );
    let (token, aes_key) = match c.secrets {
        Secrets::Skip => (
            PLACEHOLDER_TOKEN.to_string(),
            PLACEHOLDER_AES_KEY.to_string(),
        ),
        Secrets::Read => (token?.0, aes_key?.0),
    };
    if token.len() > 32 || !token.chars().all(|ch| ch.is_ascii_alphanumeric()) {
        c.problem(token_key, "holds a value that is not a WeCom callback Token (up to 32 letters and digits; value not shown). Copy the Token from the app's API receive settings in WeCom's admin console");
    }
    let app = app?;
    // WeCom's shape: 43 base64 characters (the 32-byte key without its `=`). Any such text is
    // a key (`callback::crypto` decodes it, trailing bits allowed), so the shape is the check.
    let chars = aes_key.chars().count();
    if chars != AES_KEY_CHARS
        || !aes_key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    {
        c.problem(
            aes_key_key,
            format!("holds a value that is not an EncodingAESKey ({chars} characters; it has {AES_KEY_CHARS} letters, digits, + and /; value not shown). Copy it from the app's API receive settings in WeCom's admin console"),
        );
        return None;
    }
    if !path_ok {
        return None;
    }
    Some(CallbackApp {
        app: app.name.clone(),
        receive_id: app.corp_id.clone(),
        path: e.path,
        token: Secret::new(token),
        aes_key: Secret::new(aes_key),
        deliver_to: deliver_to?,
        reply_within,
    })
}

/// A plain absolute path: what WeCom's console lets an admin type after the host.
fn callback_path(c: &mut Check, key: &str, path: &str) -> bool {
    let plain = path.starts_with('/')
        && path.len() > 1
        && path.len() <= 256
        && !path.contains("//")
        && path.split('/').all(|seg| seg != "." && seg != "..")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_.~".contains(&b));
    if !plain {
        c.problem(
            format!("{key}.path"),
            format!("{} is not a plain URL path. Write the path set in WeCom's console, starting with /, letters, digits and / - _ . ~ only, e.g. /callback/hr-bot", quote(path)),
        );
    }
    plain
}

fn deliver_to(c: &mut Check, key: &str, url: &str) -> Option<http::Uri> {
    let example = "e.g. http://127.0.0.1:3000/wecom/events";
    let uri = match url.trim().parse::<http::Uri>() {
        Ok(u)
            if matches!(u.scheme_str(), Some("http" | "https"))
                && u.host().is_some_and(|h| !h.is_empty()) =>
        {
            u
        }
        _ => {
            c.problem(
                format!("{key}.deliver_to"),
                format!("{} is not an http:// or https:// URL with a host. Give your app's receiver, {example}", quote(url)),
            );
            return None;
        }
    };
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        c.problem(
            format!("{key}.deliver_to"),
            "holds credentials (user@host). Pushes carry no credentials to the app; drop them",
        );
        return None;
    }
    Some(uri)
}

fn reply_within(c: &mut Check, key: &str, value: Option<&str>) -> Duration {
    let k = format!("{key}.reply_within");
    let d = match value.map(str::trim) {
        // Zero is allowed: never wait for the app, always answer WeCom at once.
        Some("0" | "0s" | "0ms") => return Duration::ZERO,
        v => c.duration(&k, v, DEFAULT_REPLY_WITHIN),
    };
    if d.as_millis() as u64 > MAX_REPLY_WITHIN_MS {
        c.problem(k, format!("is {d:?}, but WeCom gives up on its answer after 5s. Use at most {MAX_REPLY_WITHIN_MS}ms (the default is {DEFAULT_REPLY_WITHIN}), or 0 to always answer at once"));
        return parse_default(DEFAULT_REPLY_WITHIN);
    }
    d
}

fn parse_default(d: &str) -> Duration {
    crate::config::units::parse_duration(d).expect("defaults are valid durations")
}

fn delivery(c: &mut Check, d: Option<&FileDelivery>) -> Delivery {
    let delivery = Delivery {
        timeout: c.duration(
            "callbacks.delivery.timeout",
            d.and_then(|d| d.timeout.as_deref()),
            DEFAULT_DELIVERY_TIMEOUT,
        ),
        backoff_base: c.duration(
            "callbacks.delivery.backoff_base",
            d.and_then(|d| d.backoff_base.as_deref()),
            DEFAULT_DELIVERY_BACKOFF_BASE,
        ),
        backoff_max: c.duration(
            "callbacks.delivery.backoff_max",
            d.and_then(|d| d.backoff_max.as_deref()),
            DEFAULT_DELIVERY_BACKOFF_MAX,
        ),
        max_age: c.duration(
            "callbacks.delivery.max_age",
            d.and_then(|d| d.max_age.as_deref()),
            DEFAULT_DELIVERY_MAX_AGE,
        ),
    };
    if delivery.backoff_base > delivery.backoff_max {
        c.problem(
            "callbacks.delivery.backoff_base",
            "is longer than backoff_max; raise backoff_max or lower backoff_base",
        );
    }
    if delivery.max_age < delivery.timeout {
        c.problem(
            "callbacks.delivery.max_age",
            "is shorter than one delivery attempt (timeout): every push would die untried. Raise max_age (the default is 24h)",
        );
    }
    delivery
}
