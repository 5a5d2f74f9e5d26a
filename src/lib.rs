//! wecom-sidecar: a sidecar reverse proxy for the WeCom server API.
//!
//! Apps send their WeCom calls to the sidecar on localhost. The sidecar holds the app secrets,
//! keeps `access_token`s fresh, injects them, absorbs token errors, enforces quotas, retries what
//! is safe to retry and exports per-API metrics. The modules follow the request through the
//! pipeline: `config` → `routing` → `token` → `upstream` → `proxy`, with `metrics` and `admin`
//! beside them and `wecom` holding the facts about WeCom itself (and its simulator).

pub mod config;
