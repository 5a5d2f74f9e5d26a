//! Facts about WeCom itself: its errcodes, its API table (which calls are reads, which carry
//! media), the WeCom-shaped answers the sidecar makes locally, and a simulator of WeCom for
//! tests and `--dev`.

pub mod answer;
pub mod apis;
pub mod errcode;
pub mod simulator;
