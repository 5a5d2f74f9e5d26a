//! Configuration: the YAML file format (`file`), its units (`units`), defaults (`defaults`),
//! validation into runtime types (`validate`), and the runtime types themselves (`model`).
//!
//! Flow: text → `file::FileConfig` (serde; unknown keys rejected with their line) →
//! `validate::build_with` (every problem collected, each naming its key and the fix) → `Config`.
//! Problems found after parsing get their line from `locate`.

pub mod defaults;
mod depth;
mod file;
mod locate;
pub mod model;
mod quote;
mod read;
pub mod units;
pub mod validate;
mod yaml_events;

use std::fmt;
use std::path::Path;

pub use model::*;

/// One thing wrong with a config. Never holds a secret value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path, e.g. `upstreams.standby.url`, `apps[1].secret_env`, `routes[0].split.standby`.
    /// `(file)` when the problem is the file as a whole (unreadable, not YAML).
    pub key: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Problem {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            key: key.into(),
            line: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    /// `<key>: <message>`, plus ` (line N)` when known.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        Ok(())
    }
}

/// Every problem found in a config. `Display` prints one problem per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl ConfigError {
    fn one(key: impl Into<String>, line: Option<usize>, message: impl Into<String>) -> Self {
        ConfigError {
            problems: vec![Problem {
                key: key.into(),
                line,
                message: message.into(),
            }],
        }
    }
}

impl ConfigError {
    /// Every problem on one line, joined by `; ` (for a log line or a JSON answer).
    pub fn one_line(&self) -> String {
        self.problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Reads and validates a config file, taking secrets from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    check_file(path, validate::Secrets::Read)
}

/// Reads and validates a config file with `env` standing in for the environment (`--dev`,
/// whose secrets are the simulator's own unless set).
pub fn load_with_env(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let text = read_text(path)?;
    parse_with(&text, Some(path), env, validate::Secrets::Read)
}

/// `--check` (with `Secrets::Skip`: `--check --no-secrets`): reads and validates a config
/// file. A config built without its secrets holds placeholders and must never serve.
pub fn check_file(path: &Path, secrets: validate::Secrets) -> Result<Config, ConfigError> {
    let text = read_text(path)?;
    parse_with(&text, Some(path), &|name| std::env::var(name).ok(), secrets)
}

/// A config file's text: a regular file under 10 MiB of UTF-8 (`read`).
pub fn read_text(path: &Path) -> Result<String, ConfigError> {
    let cannot = |why: &dyn fmt::Display| {
        ConfigError::one(
            "(file)",
            None,
            format!(
                "cannot read {} ({why}). Give the path of the YAML config with --config FILE or $WECOM_SIDECAR_CONFIG",
                path.display()
            ),
        )
    };
    let bytes = read::read_capped(path, read::MAX_FILE_BYTES).map_err(|e| cannot(&e))?;
    String::from_utf8(bytes).map_err(|_| cannot(&"not UTF-8 text"))
}

/// Validates config text, taking secrets from the process environment. `source` is where the
/// text came from: relative `secret_file` and `ca_file` paths start at its directory.
pub fn parse(text: &str, source: Option<&Path>) -> Result<Config, ConfigError> {
    parse_with_env(text, source, &|name| std::env::var(name).ok())
}

/// Validates config text with `env` standing in for the environment (tests, `--dev`).
pub fn parse_with_env(
    text: &str,
    source: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    parse_with(text, source, env, validate::Secrets::Read)
}

/// Validates config text: nesting first (a pathological file is refused before serde_yaml
/// reads it), then the file format, then every value; each problem gets its line in one pass.
pub fn parse_with(
    text: &str,
    source: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
    secrets: validate::Secrets,
) -> Result<Config, ConfigError> {
    depth::check(text).map_err(|p| ConfigError { problems: vec![p] })?;
    let file: file::FileConfig = serde_yaml::from_str(text).map_err(|e| ConfigError {
        problems: vec![serde_problem(&e)],
    })?;
    validate::build_with(file, source, env, secrets).map_err(|mut problems| {
        let unplaced = problems
            .iter()
            .filter(|p| p.line.is_none() && !p.key.starts_with('('))
            .map(|p| p.key.as_str());
        let lines = locate::Lines::index(text, unplaced);
        for p in &mut problems {
            if p.line.is_none() && !p.key.starts_with('(') {
                p.line = lines.line_of(&p.key);
            }
        }
        ConfigError { problems }
    })
}

/// The primitive types serde names, as a reader of the file knows them. The file types
/// describe themselves (`#[serde(expecting = ..)]` on each, in `file`).
const TYPE_NAMES: &[(&str, &str)] = &[
    ("expected u32", "expected a whole number, 0 or more"),
    ("expected u16", "expected a whole number, 0 or more"),
    ("expected i64", "expected a whole number"),
];

/// A serde_yaml error (YAML syntax, unknown key, wrong type) as a problem: the key path it
/// names (the unknown or missing key itself when there is one), its line, and serde's text
/// (which lists the valid keys) without the location suffix.
fn serde_problem(e: &serde_yaml::Error) -> Problem {
    let line = e.location().map(|l| l.line());
    let mut text = e.to_string();
    if let Some(l) = e.location() {
        let suffix = format!(" at line {} column {}", l.line(), l.column());
        if let Some(stripped) = text.strip_suffix(&suffix) {
            text.truncate(stripped.len());
        }
    }
    // serde_yaml prefixes the path of the node it was in: `upstreams.primary: unknown field ...`.
    let (path, message) = match text.split_once(": ") {
        Some((p, rest)) if !p.is_empty() && !p.contains([' ', '`', '"', '\'']) => {
            (p.to_string(), rest.to_string())
        }
        _ => (String::new(), text),
    };
    let named = [
        "unknown field `",
        "missing field `",
        "duplicate field `",
        "`",
    ]
    .iter()
    .find_map(|start| message.strip_prefix(start))
    .and_then(|rest| rest.split_once('`'))
    .filter(|(_, after)| {
        after.starts_with(',') || after.is_empty() || after.starts_with(" is given twice")
    })
    .map(|(name, _)| cut_key(name));
    let key = match (path.is_empty(), named) {
        (true, Some(name)) => name,
        (false, Some(name)) => format!("{path}.{name}"),
        (false, None) => path,
        (true, None) => "(file)".to_string(),
    };
    // serde quotes the wrong value (`invalid type: string "..."`, ``unknown field `...` ``):
    // a secret pasted into the wrong key must not come out whole.
    let mut message = quote::cut_quoted(&message);
    for (from, to) in TYPE_NAMES {
        message = message.replace(from, to);
    }
    if message.starts_with("unknown field") {
        message.push_str(". Drop it or fix its spelling");
    } else if message.starts_with("missing field") {
        message.push_str(". Add it");
    }
    Problem { key, line, message }
}

/// A key name taken from a parser message, cut like a quoted value when it is long (an
/// unknown key may be a pasted secret).
fn cut_key(name: &str) -> String {
    match name.char_indices().nth(quote::QUOTED_CHARS) {
        Some((i, _)) if !quote::is_key_like(name) => format!("{}…", &name[..i]),
        _ => name.to_string(),
    }
}

#[cfg(test)]
mod tests;
