//! Secrets named in the file (`apps[i].secret_env`/`secret_file`, `clients[i].key_env`/
//! `key_file`): exactly one of the two keys, the variable or file read, the value cleaned.
//! Messages name the variable or the file, never what it holds.

use super::check::{is_env_name, looks_like_secret, show_path, Check};
use super::Secrets;
use crate::config::read::{read_capped, ReadError, MAX_SECRET_BYTES};

/// What stands in for a secret not read (`--check --no-secrets`).
const NOT_READ: &str = "(not read: --no-secrets)";

/// What a secret read from the environment or a file is, for the messages about it.
pub(super) struct SecretKind {
    /// "app secret", "client key".
    what: &'static str,
    example_env: &'static str,
    example_path: &'static str,
    /// Where a good value comes from.
    source_hint: &'static str,
    /// What to do if it was pasted into the file.
    leaked_hint: &'static str,
    /// The keys naming a variable and a file.
    env_key: &'static str,
    file_key: &'static str,
}

pub(super) const APP_SECRET: SecretKind = SecretKind {
    what: "app secret",
    example_env: "WECOM_HR_SECRET",
    example_path: "/run/secrets/wecom-hr",
    source_hint: "WeCom admin console > the app > Secret",
    leaked_hint: "rotate it in the WeCom admin console",
    env_key: "secret_env",
    file_key: "secret_file",
};

pub(super) const CALLBACK_TOKEN: SecretKind = SecretKind {
    what: "callback Token",
    example_env: "WECOM_HR_CB_TOKEN",
    example_path: "/run/secrets/wecom-hr-cb-token",
    source_hint: "WeCom admin console > the app > Receive messages > Set API receive > Token",
    leaked_hint: "generate a new Token in the WeCom admin console",
    env_key: "token_env",
    file_key: "token_file",
};

pub(super) const CALLBACK_AES_KEY: SecretKind = SecretKind {
    what: "callback EncodingAESKey",
    example_env: "WECOM_HR_CB_AES_KEY",
    example_path: "/run/secrets/wecom-hr-cb-aes-key",
    source_hint:
        "WeCom admin console > the app > Receive messages > Set API receive > EncodingAESKey",
    leaked_hint: "generate a new EncodingAESKey in the WeCom admin console",
    env_key: "aes_key_env",
    file_key: "aes_key_file",
};

pub(super) const CLIENT_KEY: SecretKind = SecretKind {
    what: "client key",
    example_env: "BILLING_SIDECAR_KEY",
    example_path: "/run/secrets/sidecar-billing-key",
    source_hint: "make one with `openssl rand -hex 32`",
    leaked_hint: "make a new key",
    env_key: "key_env",
    file_key: "key_file",
};

/// Reads a secret from exactly one of its environment variable or file keys (of the entry at
/// `key`); the value and where it came from.
pub(super) fn secret_from(
    c: &mut Check,
    key: &str,
    env: Option<&str>,
    file: Option<&str>,
    kind: &SecretKind,
) -> Option<(String, String)> {
    let (env_key, file_key) = (kind.env_key, kind.file_key);
    match (env, file) {
        (Some(_), Some(_)) => {
            c.problem(
                format!("{key}.{env_key}"),
                format!(
                    "and {file_key} are both set. Keep exactly one: drop {env_key} or {file_key}"
                ),
            );
            None
        }
        (None, None) => {
            c.problem(
                format!("{key}.{env_key}"),
                format!("is missing. Set {env_key} (the name of an environment variable holding the {}) or {file_key} (a file holding it); {}s never go in this file", kind.what, kind.what),
            );
            None
        }
        (Some(var), None) => secret_from_env(c, &format!("{key}.{env_key}"), var, kind),
        (None, Some(path)) => secret_from_file(c, &format!("{key}.{file_key}"), path, kind),
    }
}

/// Trailing whitespace (the newline an editor or `echo` adds) is dropped; whitespace anywhere
/// else means the wrong value and is refused. `what` names the variable or file, never the value.
fn clean_secret(
    c: &mut Check,
    key: &str,
    raw: &str,
    what: &str,
    kind: &SecretKind,
) -> Option<String> {
    let value = raw.trim_end();
    if value.is_empty() {
        c.problem(
            key,
            format!(
                "{what} is empty. Put the {} there ({})",
                kind.what, kind.source_hint
            ),
        );
        return None;
    }
    if value
        .chars()
        .any(|ch| ch.is_whitespace() || ch.is_control())
    {
        c.problem(key, format!("{what} holds spaces or control characters (value not shown). A {} has none: put it alone there", kind.what));
        return None;
    }
    Some(value.to_string())
}

fn secret_from_env(
    c: &mut Check,
    key: &str,
    var: &str,
    kind: &SecretKind,
) -> Option<(String, String)> {
    let (thing, example) = (kind.what, kind.example_env);
    if var.is_empty() {
        c.problem(key, format!("is empty. Give the NAME of an environment variable holding the {thing}, e.g. {example}"));
        return None;
    }
    if !is_env_name(var) || looks_like_secret(var) {
        // Possibly the secret itself, pasted in: never echo it.
        c.problem(key, format!("is not an environment variable name (value not shown). Give the NAME of a variable holding the {thing}, e.g. {example}; if you pasted the {thing} itself here, remove it from the file and {}", kind.leaked_hint));
        return None;
    }
    if c.secrets == Secrets::Skip {
        return Some((NOT_READ.to_string(), format!("env {var}")));
    }
    match (c.env)(var) {
        None => {
            c.problem(key, format!("environment variable {var} is not set. Export it with the {thing} before starting, or use {}", kind.file_key));
            None
        }
        Some(raw) => {
            let value = clean_secret(c, key, &raw, &format!("environment variable {var}"), kind)?;
            Some((value, format!("env {var}")))
        }
    }
}

fn secret_from_file(
    c: &mut Check,
    key: &str,
    path: &str,
    kind: &SecretKind,
) -> Option<(String, String)> {
    let thing = kind.what;
    if path.trim().is_empty() {
        c.problem(
            key,
            format!(
                "is empty. Give the path of a file holding the {thing}, e.g. {}",
                kind.example_path
            ),
        );
        return None;
    }
    let p = c.path(path);
    let shown = show_path(path, &p);
    if c.secrets == Secrets::Skip {
        return Some((NOT_READ.to_string(), format!("file {shown}")));
    }
    let bytes = match read_capped(&p, MAX_SECRET_BYTES) {
        Ok(b) => b,
        Err(e @ ReadError::TooLarge(_)) => {
            c.problem(key, format!("{shown} is {e} (contents not shown). It must hold only the {thing}: check the path"));
            return None;
        }
        Err(e) => {
            c.problem(key, format!("{shown} cannot be read ({e}). Mount the secret there, fix the path (relative paths start at the config file's directory), or use {}", kind.env_key));
            return None;
        }
    };
    let Ok(text) = String::from_utf8(bytes) else {
        c.problem(key, format!("{shown} is not UTF-8 text (contents not shown). It must hold only the {thing}: check the path"));
        return None;
    };
    let value = clean_secret(c, key, &text, &format!("file {shown}"), kind)?;
    Some((value, format!("file {shown}")))
}
