//! wecom-sidecar: a sidecar reverse proxy for the WeCom server API.
//!
//! Apps send their WeCom calls to the sidecar on localhost. The sidecar holds the app secrets,
//! keeps `access_token`s fresh, injects them, absorbs token errors, enforces quotas, retries what
//! is safe to retry and exports per-API metrics. The modules follow the request through the
//! pipeline: `config` → `routing` → `token` → `upstream` → `proxy`, with `metrics` and `admin`
//! beside them and `wecom` holding the facts about WeCom itself. The WeCom simulator that tests
//! and `--dev` run is a crate of its own (`wecom-sim/`), used by the binary, not by this library.
//! `state` composes them (process-wide `Shared`, per-config `Runtime`); only the pipeline and
//! the process wiring (`server`, `admin`, `reload`'s callers) see it whole, and no domain module
//! imports it (`layering` tests that the top-level modules form no import cycle).

pub mod admin;
pub mod admin_guard;
pub mod admin_server;
pub mod body;
pub mod callback;
pub mod capacity;
pub mod cli;
pub mod config;
pub mod descriptors;
pub mod fleet;
#[cfg(test)]
mod layering;
pub mod linger;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod outbox;
pub mod plain;
pub mod plans;
pub mod proxy;
pub mod quota;
pub mod redact;
pub mod reload;
pub mod request_head;
pub mod retry;
pub mod routing;
pub mod server;
pub mod signing;
pub mod state;
pub mod store;
#[cfg(test)]
mod test_redis;
pub mod ticket;
pub mod token;
pub mod upstream;
pub mod wecom;
