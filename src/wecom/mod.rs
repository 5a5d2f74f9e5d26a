//! Facts about WeCom itself: its errcodes, its API table (which calls are reads, which carry
//! media), and the WeCom-shaped answers the sidecar makes locally. (The simulator of WeCom
//! that tests and `--dev` run is the workspace crate `wecom-sim`.)

pub mod answer;
pub mod apis;
pub mod egress;
pub mod errcode;
pub mod facts;
mod facts_scan;
