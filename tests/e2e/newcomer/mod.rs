//! What a newcomer hits first: the Docker build, `--dev` (in a container, with `--check`, with
//! `--config FILE` and a reload), a real SDK (wechatpy, `tests/sdk/`) through a sidecar on the
//! simulator, and the simulator answering the common APIs in WeCom's shapes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::*;
use serde_json::{json, Value};

mod dev;
mod docker;
pub(crate) mod readme;
mod sdk;
mod sim_shapes;

use dev::start_dev;
use sim_shapes::sim_counters;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// One Dockerfile instruction, continuation lines joined.
struct Instruction {
    op: String,
    args: String,
}

fn instructions(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if current.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(t);
        let (op, args) = current
            .split_once(char::is_whitespace)
            .unwrap_or((&current, ""));
        out.push(Instruction {
            op: op.to_ascii_uppercase(),
            args: args.trim().to_string(),
        });
        current.clear();
    }
    out
}
