//! The config file as written: serde types, every struct `deny_unknown_fields`, optional keys
//! as `Option` so validation can tell "absent" (take the default) from "set".

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub admin_listen: Option<String>,
    /// Kept in file order: `serde_yaml::Mapping` preserves it.
    pub upstreams: Option<serde_yaml::Mapping>,
    pub apps: Option<Vec<FileApp>>,
    pub token: Option<FileToken>,
    pub defaults: Option<FilePolicy>,
    pub routes: Option<Vec<FileRoute>>,
    pub fleet: Option<FileFleet>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileUpstream {
    pub url: String,
    pub connect_timeout: Option<String>,
    pub timeout: Option<String>,
    pub ca_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileApp {
    pub name: String,
    pub corp_id: String,
    pub agent_id: Option<i64>,
    pub secret_env: Option<String>,
    pub secret_file: Option<String>,
    #[serde(default)]
    pub default: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileToken {
    pub refresh_before_expiry: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRetry {
    pub attempts: Option<u32>,
    pub backoff_base: Option<String>,
    pub backoff_max: Option<String>,
}

/// Keys shared by `defaults` and each route.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilePolicy {
    pub deadline: Option<String>,
    pub retry: Option<FileRetry>,
    pub split: Option<serde_yaml::Mapping>,
    pub quota: Option<Vec<String>>,
    pub idempotent: Option<bool>,
    pub allow_debug: Option<bool>,
    pub on_limit: Option<String>,
    pub max_wait: Option<String>,
    pub quota_status: Option<u16>,
    pub recipient_cap: Option<bool>,
    pub dedupe: Option<bool>,
    pub duplicate_check_interval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRoute {
    pub path: String,
    pub api: Option<String>,
    pub deadline: Option<String>,
    pub retry: Option<FileRetry>,
    pub split: Option<serde_yaml::Mapping>,
    pub quota: Option<Vec<String>>,
    pub idempotent: Option<bool>,
    pub allow_debug: Option<bool>,
    pub on_limit: Option<String>,
    pub max_wait: Option<String>,
    pub quota_status: Option<u16>,
    pub recipient_cap: Option<bool>,
    pub dedupe: Option<bool>,
    pub duplicate_check_interval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileFleet {
    pub redis_url: Option<String>,
    pub redis_url_env: Option<String>,
    pub key_prefix: Option<String>,
    pub size: Option<u32>,
    pub share: Option<Vec<String>>,
}
