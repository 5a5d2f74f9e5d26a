//! The end-to-end tests: one crate, one process, one module per area, all on the [`harness`]
//! (the real `wecom-sidecar` binary against the simulated WeCom and a real Redis).
//!
//! Run one area with its module path: `cargo test --test e2e proxy::`.

mod harness;

mod access_line;
mod admin_port;
mod bad_input;
mod callbacks_admin;
mod callbacks_dev;
mod callbacks_fleet;
mod callbacks_flow;
mod callbacks_sdk;
mod config_check;
mod failover;
mod faults;
mod fleet;
mod forward_steps;
mod fuzz_seeds;
mod hostile_gettoken;
mod limits;
mod newcomer;
mod next_head;
mod operator;
mod ops_files;
mod outbox;
mod outbox_durable;
mod plans;
mod proxy;
mod quota_retry;
mod redaction;
mod reload;
mod secrets;
mod signing;
mod simulator;
mod tickets;
mod token_bounds;
mod upstream_framing;
mod upstream_pool;
mod wecom_facts;
mod wire;
