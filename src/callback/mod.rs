//! Inbound callbacks (WeCom → sidecar → app): WeCom's crypto for one app ([`crypto`]) and the
//! XML around it ([`envelope`]).

pub mod crypto;
pub mod envelope;
