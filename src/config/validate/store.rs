//! `store`: where the durable queues (callbacks, the outbox) live, and how much they may hold:
//! `path`, `max_bytes` (the whole store) and `outbox_max_per_app` (sends one app may have
//! waiting).

use std::path::PathBuf;

use super::check::Check;
use crate::config::defaults::{DEFAULT_OUTBOX_MAX_PER_APP, DEFAULT_STORE_MAX_BYTES};
use crate::config::file::FileStore;
use crate::config::model::StoreSettings;
use crate::config::quote::quote;
use crate::config::units::parse_bytes;

/// `store`: `path` as written (relative to the config file's folder), else
/// `$STATE_DIRECTORY/sidecar.db` (systemd's `StateDirectory=`), else `.wecom-sidecar/sidecar.db`.
pub(super) fn store(c: &mut Check, s: Option<&FileStore>) -> StoreSettings {
    let path = match s.and_then(|s| s.path.as_deref()) {
        Some(p) if p.trim().is_empty() => {
            c.problem("store.path", "is empty. Give the SQLite file's path, e.g. /var/lib/wecom-sidecar/sidecar.db, or drop the key for the default");
            PathBuf::from(".wecom-sidecar/sidecar.db")
        }
        Some(p) if p.ends_with('/') => {
            c.problem(
                "store.path",
                format!(
                    "{} names a folder. Give the file, e.g. {}sidecar.db",
                    quote(p),
                    p
                ),
            );
            PathBuf::from(".wecom-sidecar/sidecar.db")
        }
        Some(p) => c.path(p.trim()),
        None => match (c.env)("STATE_DIRECTORY").filter(|d| !d.is_empty()) {
            // systemd may list several, separated by ':'; the first is this service's own.
            Some(dirs) => {
                PathBuf::from(dirs.split(':').next().unwrap_or_default()).join("sidecar.db")
            }
            None => PathBuf::from(".wecom-sidecar/sidecar.db"),
        },
    };
    StoreSettings {
        path,
        max_bytes: max_bytes(c, s.and_then(|s| s.max_bytes.as_ref())),
        outbox_max_per_app: outbox_max_per_app(c, s.and_then(|s| s.outbox_max_per_app)),
    }
}

/// `store.max_bytes`: a number of bytes, or a size with its unit (`256MiB`).
fn max_bytes(c: &mut Check, v: Option<&serde_yaml::Value>) -> u64 {
    let parsed = match v {
        None => return DEFAULT_STORE_MAX_BYTES,
        Some(serde_yaml::Value::Number(n)) => match n.as_u64() {
            Some(0) | None => Err(format!("{n} is not a positive whole number of bytes")),
            Some(n) => Ok(n),
        },
        Some(serde_yaml::Value::String(s)) => parse_bytes(s),
        Some(_) => Err("is not a size".to_string()),
    };
    parsed.unwrap_or_else(|why| {
        c.problem(
            "store.max_bytes",
            format!("{why}. Give what the queues may hold, e.g. 256MiB (the default) or 1GiB"),
        );
        DEFAULT_STORE_MAX_BYTES
    })
}

/// `store.outbox_max_per_app`: 1 or more.
fn outbox_max_per_app(c: &mut Check, v: Option<i64>) -> u64 {
    match v {
        None => DEFAULT_OUTBOX_MAX_PER_APP,
        Some(n) if n >= 1 => n as u64,
        Some(n) => {
            c.problem(
                "store.outbox_max_per_app",
                format!("{n} is out of range. Set how many sends one app may have waiting in the outbox, 1 or more (the default is {DEFAULT_OUTBOX_MAX_PER_APP})"),
            );
            DEFAULT_OUTBOX_MAX_PER_APP
        }
    }
}
