//! Live reload: a new config is read and validated in full and its runtime built before it
//! replaces the old one in a single atomic swap. A bad config is refused, logged and counted,
//! and the old one keeps serving. Calls in flight finish on the runtime they started with.
//! Tokens of apps whose credentials did not change are kept.
//!
//! Reloads are serialised, and each one notes the version of the file it read: an edit
//! followed by SIGHUP or `POST /admin/reload` is one reload, not that one and then another
//! when the watcher sees the file changed (it used to count every such edit twice).

use std::sync::Arc;

use crate::config;
use crate::state::{Runtime, Shared};

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("this config was not read from a file (e.g. --dev); nothing to reload")]
    NoSource,
    /// One line: the problems joined by `; ` (the log line and the admin answer).
    #[error("the new config is invalid: {}", .0.one_line())]
    Invalid(config::ConfigError),
    #[error(
        "{0} changed; changing a listener or the fleet section needs a restart (old value kept)"
    )]
    ListenerChanged(&'static str),
}

/// Which version of the config file was read last, and one reload at a time.
#[derive(Default)]
pub struct Reloads {
    /// The file and its version as of the last load (start or reload, valid or not).
    read: std::sync::Mutex<Option<(std::path::PathBuf, Option<FileVersion>)>>,
}

impl Reloads {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(std::path::PathBuf, Option<FileVersion>)>> {
        self.read.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Reloads from the file the current config came from.
pub fn reload(shared: &Shared) -> Result<(), ReloadError> {
    let mut read = shared.reloads.lock();
    // Noted before reading: a change made while this reload reads is seen by the watcher.
    if let Some(path) = shared.runtime.load().config.source.clone() {
        let version = fingerprint(&path);
        *read = Some((path, version));
    }
    let result = try_reload(shared);
    drop(read);
    let label = if result.is_ok() { "ok" } else { "error" };
    shared
        .metrics
        .config_reloads
        .with_label_values(&[label])
        .inc();
    match &result {
        Ok(()) => tracing::info!("config reloaded"),
        Err(e) => tracing::warn!(error = %e, "config reload refused; the old config keeps serving"),
    }
    result
}

fn try_reload(shared: &Shared) -> Result<(), ReloadError> {
    let current = shared.runtime.load_full();
    let source = current.config.source.clone().ok_or(ReloadError::NoSource)?;
    let next = (shared.loader)(&source).map_err(ReloadError::Invalid)?;
    if next.listen != current.config.listen {
        return Err(ReloadError::ListenerChanged("listen"));
    }
    if next.admin_listen != current.config.admin_listen {
        return Err(ReloadError::ListenerChanged("admin_listen"));
    }
    if next.fleet != current.config.fleet {
        return Err(ReloadError::ListenerChanged("fleet"));
    }
    let runtime = Runtime::build(next, &shared.connectors, &shared.health, Some(&current));
    shared.plans.on_reload(&runtime.config.shift_plans);
    shared.runtime.store(Arc::new(runtime));
    Ok(())
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
pub async fn watch(shared: Arc<Shared>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        let source = shared.runtime.load().config.source.clone();
        if let Some(path) = source {
            let now = fingerprint(&path);
            let changed = {
                let mut read = shared.reloads.lock();
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
                let s = shared.clone();
                let _ = tokio::task::spawn_blocking(move || reload(&s)).await;
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
