//! `apps` (the WeCom apps and their secrets) and `clients` (the calling apps that sign their
//! calls, their keys, and the apps each may use).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::check::{is_name, Check};
use super::secrets::{secret_from, APP_SECRET, CLIENT_KEY};
use super::Secrets;
use crate::config::file::{FileApp, FileClient};
use crate::config::model::{App, AppName, Client, Secret};
use crate::config::quote::quote;

/// `apps`: at least one, names unique, at most one `default`, each with its secret read.
pub(super) fn apps(c: &mut Check, apps: Option<Vec<FileApp>>) -> Vec<App> {
    let hint = "Add one entry per WeCom app, e.g. `apps: [{ name: hr-bot, corp_id: ww..., secret_env: WECOM_HR_SECRET, default: true }]`";
    let apps = match apps {
        None => {
            c.problem("apps", format!("is missing. {hint}"));
            return Vec::new();
        }
        Some(a) if a.is_empty() => {
            c.problem("apps", format!("is empty. {hint}"));
            return Vec::new();
        }
        Some(a) => a,
    };
    let mut out: Vec<App> = Vec::new();
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut first_default: Option<(usize, &str)> = None;
    for (i, a) in apps.iter().enumerate() {
        let key = format!("apps[{i}]");
        if a.name.is_empty() {
            c.problem(format!("{key}.name"), "is empty. Name the app with letters, digits and _ . - (apps send it as X-WeCom-App), e.g. hr-bot");
        } else if !is_name(&a.name) {
            c.problem(
                format!("{key}.name"),
                format!("{} is not a valid app name. Use letters, digits and _ . - only (apps send it as X-WeCom-App), e.g. hr-bot", quote(&a.name)),
            );
        }
        if let Some(&j) = names.get(a.name.as_str()) {
            c.problem(
                format!("{key}.name"),
                format!(
                    "{} is already the name of apps[{j}]. App names must be unique: rename one",
                    quote(&a.name)
                ),
            );
        }
        names.entry(&a.name).or_insert(i);
        let corp_id = a.corp_id.trim();
        if corp_id.is_empty() {
            c.problem(format!("{key}.corp_id"), "is empty. Copy the corp id (ww...) from the WeCom admin console (My Company > Company Info)");
        } else if corp_id
            .chars()
            .any(|ch| ch.is_whitespace() || ch.is_control())
        {
            c.problem(
                format!("{key}.corp_id"),
                "contains spaces. Copy the corp id (ww...) exactly as the admin console shows it",
            );
        }
        if let Some(id) = a.agent_id.filter(|id| *id <= 0) {
            c.problem(
                format!("{key}.agent_id"),
                format!("{id} is not an AgentId. Give the positive AgentId the admin console shows for the app, or drop agent_id"),
            );
        }
        if a.default {
            match first_default {
                Some((j, first)) => c.problem(
                    format!("{key}.default"),
                    format!("{} is marked default, but {} (apps[{j}]) already is. Keep default: true on one app only", quote(&a.name), quote(first)),
                ),
                None => first_default = Some((i, &a.name)),
            }
        }
        let secret = secret_from(
            c,
            &key,
            a.secret_env.as_deref(),
            a.secret_file.as_deref(),
            &APP_SECRET,
        );
        if let Some((value, source)) = secret {
            out.push(App {
                name: AppName(Arc::from(a.name.as_str())),
                corp_id: corp_id.to_string(),
                agent_id: a.agent_id,
                secret: Secret::new(value),
                secret_source: source,
                default: a.default,
            });
        }
    }
    out
}

/// Shortest client key accepted: HMAC-SHA256 keys shorter than its 32-byte output only make
/// guessing easier.
const MIN_CLIENT_KEY_LEN: usize = 32;

/// `clients`: absent means calls are not signed; each key long enough and its own.
pub(super) fn clients(
    c: &mut Check,
    clients: Option<Vec<FileClient>>,
    apps: &HashSet<String>,
) -> Vec<Client> {
    let Some(clients) = clients else {
        return Vec::new();
    };
    if clients.is_empty() {
        c.problem("clients", "is empty. Drop the key to take unsigned calls, or add one entry per calling app, e.g. `clients: [{ name: billing, key_env: BILLING_SIDECAR_KEY, apps: [hr-bot] }]`");
        return Vec::new();
    }
    let mut out: Vec<Client> = Vec::new();
    let mut names: HashMap<&str, usize> = HashMap::new();
    // Key → the client holding it.
    let mut keys: HashMap<String, Arc<str>> = HashMap::new();
    for (i, f) in clients.iter().enumerate() {
        let key = format!("clients[{i}]");
        if !is_name(&f.name) {
            c.problem(format!("{key}.name"), format!("{} is not a valid client name. Use letters, digits and _ . - only (clients send it as X-Sidecar-Client)", quote(&f.name)));
        } else if let Some(&j) = names.get(f.name.as_str()) {
            c.problem(format!("{key}.name"), format!("{} is already the name of clients[{j}]. Client names must be unique: rename one", quote(&f.name)));
        }
        names.entry(&f.name).or_insert(i);
        let allowed = if f.apps.iter().any(|a| a == "*") {
            None
        } else {
            if f.apps.is_empty() {
                c.problem(
                    format!("{key}.apps"),
                    "is empty. List the apps this client may use, or \"*\" for all",
                );
            }
            let mut allowed = Vec::new();
            for (j, a) in f.apps.iter().enumerate() {
                match apps.get(a) {
                    Some(name) => allowed.push(AppName(Arc::from(name.as_str()))),
                    None => c.problem(
                        format!("{key}.apps[{j}]"),
                        format!(
                            "{} is not one of the apps. Name an app from apps[], or \"*\" for all",
                            quote(a)
                        ),
                    ),
                }
            }
            Some(allowed)
        };
        let secret = secret_from(
            c,
            &key,
            f.key_env.as_deref(),
            f.key_file.as_deref(),
            &CLIENT_KEY,
        );
        let Some((value, source)) = secret else {
            continue;
        };
        let field = if f.key_env.is_some() {
            "key_env"
        } else {
            "key_file"
        };
        if c.secrets == Secrets::Skip {
            // Length and uniqueness are properties of the keys, which were not read.
        } else if value.len() < MIN_CLIENT_KEY_LEN {
            c.problem(format!("{key}.{field}"), format!("{source} holds a key shorter than {MIN_CLIENT_KEY_LEN} characters (value not shown). Make one with `openssl rand -hex 32`"));
            continue;
        } else if let Some(other) = keys.get(&value) {
            c.problem(format!("{key}.{field}"), format!("{source} holds the same key as client \"{other}\" (value not shown). Give each client a key of its own"));
            continue;
        }
        keys.insert(value.clone(), Arc::from(f.name.as_str()));
        out.push(Client {
            name: Arc::from(f.name.as_str()),
            key: Secret::new(value),
            key_source: source,
            apps: allowed,
        });
    }
    out
}
