//! Live reload: a new config is read and validated in full and its runtime built before it
//! replaces the old one in a single atomic swap. A bad config is refused, logged and counted,
//! and the old one keeps serving. Calls in flight finish on the runtime they started with.
//! Tokens of apps whose credentials did not change are kept.
//!
//! Reloads are serialised, and each one notes the version of the file it read: an edit
//! followed by SIGHUP or `POST /admin/reload` is one reload, not that one and then another
//! when the watcher sees the file changed (it used to count every such edit twice).
//!
//! This module owns the procedure (one at a time, which file version, what needs a restart,
//! counting and logging) and the watcher; how a config becomes the runtime in force is the
//! composition root's (`state::Shared` implements [`Reloadable`]).

use std::path::Path;
use std::sync::Arc;

use crate::config::{self, Config, ConfigError};
use crate::metrics::Metrics;

/// How a reload reads the config file: [`crate::config::load`] (secrets from the process
/// environment) unless the process was started another way (`--dev`, whose secrets are the
/// simulator's own and whose listeners may be moved for a container).
pub type ConfigLoader = Box<dyn Fn(&Path) -> Result<Config, ConfigError> + Send + Sync>;

/// What a reload works on.
pub trait Reloadable: Send + Sync + 'static {
    /// This process's reloads: how the file is read, and which version was read last.
    fn reloads(&self) -> &Reloads;
    /// The config in force.
    fn config(&self) -> Arc<Config>;
    /// Builds the runtime of `next` (keeping what may be kept of the one in force) and puts it
    /// in force in one swap.
    fn install(&self, next: Config);
    fn metrics(&self) -> &Metrics;
}

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("this config was not read from a file (e.g. --dev); nothing to reload")]
    NoSource,
    /// One line: the problems joined by `; ` (the log line and the admin answer).
    #[error("the new config is invalid: {}", .0.one_line())]
    Invalid(config::ConfigError),
    #[error(
        "{0} changed; changing a listener, the fleet, callbacks or store section needs a restart (old value kept)"
    )]
    ListenerChanged(&'static str),
}

/// How the config file is read, which version of it was read last, and one reload at a time.
pub struct Reloads {
    /// Reads the config file again on reload.
    loader: ConfigLoader,
    /// The file and its version as of the last load (start or reload, valid or not).
    read: std::sync::Mutex<Option<(std::path::PathBuf, Option<FileVersion>)>>,
}

impl Reloads {
    /// Reloads that read the config file with `loader`.
    pub fn new(loader: ConfigLoader) -> Self {
        Reloads {
            loader,
            read: std::sync::Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(std::path::PathBuf, Option<FileVersion>)>> {
        self.read.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Reloads from the file the current config came from.
pub fn reload(target: &impl Reloadable) -> Result<(), ReloadError> {
    let mut read = target.reloads().lock();
    let current = target.config();
    // Noted before reading: a change made while this reload reads is seen by the watcher.
    if let Some(path) = current.source.clone() {
        let version = fingerprint(&path);
        *read = Some((path, version));
    }
    let result = try_reload(target, &current);
    drop(read);
    let label = if result.is_ok() { "ok" } else { "error" };
    target
        .metrics()
        .config_reloads
        .with_label_values(&[label])
        .inc();
    match &result {
        Ok(()) => tracing::info!("config reloaded"),
        Err(e) => tracing::warn!(error = %e, "config reload refused; the old config keeps serving"),
    }
    result
}

fn try_reload(target: &impl Reloadable, current: &Config) -> Result<(), ReloadError> {
    let source = current.source.clone().ok_or(ReloadError::NoSource)?;
    let next = (target.reloads().loader)(&source).map_err(ReloadError::Invalid)?;
    if let Some(key) = needs_restart(current, &next) {
        return Err(ReloadError::ListenerChanged(key));
    }
    target.install(next);
    Ok(())
}

/// The first key whose change a reload cannot apply (the process must restart for it).
fn needs_restart(current: &Config, next: &Config) -> Option<&'static str> {
    if next.listen != current.listen {
        Some("listen")
    } else if next.admin_listen != current.admin_listen {
        Some("admin_listen")
    } else if next.fleet != current.fleet {
        Some("fleet")
    } else if next.callbacks != current.callbacks {
        // The listener, its apps' credentials and workers, and the store are made at start.
        Some("callbacks")
    } else if next.store != current.store {
        Some("store")
    } else if next.has_outbox() && !current.has_outbox() && current.callbacks.is_none() {
        // The outbox's store is opened at start, and this process opened none.
        Some("routes (a first outbox route)")
    } else {
        None
    }
}

/// How often the config file is looked at for replacement.
pub const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// What identifies one version of the config file: Kubernetes ConfigMaps and editors replace
/// files by rename (a new inode), others rewrite in place (new mtime or size).
type FileVersion = (u64, u64, std::time::SystemTime, u64);

fn fingerprint(path: &std::path::Path) -> Option<FileVersion> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.modified().ok()?, m.len()))
}

/// Reloads whenever the config file is replaced or rewritten, until `shutdown` turns true.
pub async fn watch<T: Reloadable>(
    target: Arc<T>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let source = target.config().source.clone();
        if let Some(path) = source {
            let now = fingerprint(&path);
            let changed = {
                let mut read = target.reloads().lock();
                match &*read {
                    Some((p, fp)) if *p == path => *fp != now && now.is_some(),
                    // First look (or a new path): what is there now is what was loaded.
                    _ => {
                        *read = Some((path.clone(), now));
                        false
                    }
                }
            };
            if changed {
                tracing::info!(path = %path.display(), "config file changed: reloading");
                let t = target.clone();
                let _ = tokio::task::spawn_blocking(move || reload(&*t)).await;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(WATCH_INTERVAL) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--dev`'s config, its secret variables set to stand-ins.
    const DEV_CONFIG: &str = include_str!("../conf/dev.yaml");

    fn secret(name: &str) -> Option<String> {
        match name {
            // The callback credentials must have WeCom's shapes.
            n if n.ends_with("_CB_TOKEN") => Some("StandInToken".to_string()),
            n if n.ends_with("_CB_AES_KEY") => Some("A".repeat(43)),
            n => n
                .starts_with("WECOM_DEV_")
                .then(|| format!("stand-in-for-{n}")),
        }
    }

    fn dev() -> Config {
        config::parse_with_env(DEV_CONFIG, None, &secret).unwrap()
    }

    #[test]
    fn listeners_and_fleet_need_a_restart() {
        let current = dev();
        assert_eq!(needs_restart(&current, &dev()), None);
        let mut next = dev();
        next.listen.set_port(next.listen.port() + 1);
        assert_eq!(needs_restart(&current, &next), Some("listen"));
        let mut next = dev();
        next.admin_listen.set_port(next.admin_listen.port() + 1);
        assert_eq!(needs_restart(&current, &next), Some("admin_listen"));
        let with_fleet = format!(
            "{}\nfleet:\n  redis_url: \"redis://127.0.0.1:6379/0\"\n",
            DEV_CONFIG
        );
        let next = config::parse_with_env(&with_fleet, None, &secret).unwrap();
        assert_eq!(needs_restart(&current, &next), Some("fleet"));
        let mut next = dev();
        next.routes.clear();
        assert_eq!(
            needs_restart(&current, &next),
            None,
            "the rest is reloaded in place"
        );
    }

    #[test]
    fn callbacks_and_store_need_a_restart() {
        let current = dev();
        let mut next = dev();
        let d = std::time::Duration::from_secs(1);
        next.callbacks = match current.callbacks.clone() {
            // Any change to the section: here its listener.
            Some(mut cb) => {
                cb.listen.set_port(cb.listen.port() + 1);
                Some(cb)
            }
            None => Some(config::Callbacks {
                listen: "127.0.0.1:8090".parse().unwrap(),
                apps: Vec::new(),
                delivery: config::Delivery {
                    timeout: d,
                    backoff_base: d,
                    backoff_max: d,
                    max_age: d,
                },
            }),
        };
        assert_eq!(needs_restart(&current, &next), Some("callbacks"));
        let mut next = dev();
        next.store.path = next.store.path.join("elsewhere.db");
        assert_eq!(needs_restart(&current, &next), Some("store"));
    }

    #[test]
    fn a_first_outbox_route_needs_a_restart_when_no_store_is_open() {
        let outbox = Some(config::OutboxPolicy {
            max_age: std::time::Duration::from_secs(60),
        });
        let mut current = dev();
        current.callbacks = None;
        let mut next = current.clone();
        next.routes[0].policy.outbox = outbox;
        assert_eq!(
            needs_restart(&current, &next),
            Some("routes (a first outbox route)")
        );
        // A store is open (callbacks, or an outbox route already): the outbox applies at once.
        let with_callbacks = dev();
        assert!(
            with_callbacks.callbacks.is_some(),
            "conf/dev.yaml has callbacks"
        );
        let mut next = with_callbacks.clone();
        next.routes[0].policy.outbox = outbox;
        assert_eq!(needs_restart(&with_callbacks, &next), None);
        // Without callbacks, but started with an outbox route: its store is open.
        current.routes[0].policy.outbox = outbox;
        let mut next = current.clone();
        next.routes[0].policy.outbox = Some(config::OutboxPolicy {
            max_age: std::time::Duration::from_secs(120),
        });
        assert_eq!(needs_restart(&current, &next), None);
    }

    #[test]
    fn a_file_version_changes_with_its_content_and_its_inode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sidecar.yaml");
        assert_eq!(fingerprint(&path), None, "no file, no version");
        std::fs::write(&path, "a").unwrap();
        let first = fingerprint(&path).unwrap();
        assert_eq!(fingerprint(&path), Some(first));
        std::fs::write(&path, "ab").unwrap();
        let longer = fingerprint(&path).unwrap();
        assert_ne!(longer, first, "rewritten in place: a new size");
        let other = dir.path().join("new.yaml");
        std::fs::write(&other, "ab").unwrap();
        std::fs::rename(&other, &path).unwrap();
        assert_ne!(
            fingerprint(&path).unwrap(),
            longer,
            "replaced by rename: a new inode"
        );
    }
}
