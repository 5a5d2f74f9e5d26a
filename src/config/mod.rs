//! Configuration: the YAML file format (`file`), its units (`units`), defaults (`defaults`),
//! validation into runtime types (`validate`), and the runtime types themselves (`model`).
//!
//! Flow: text → `file::FileConfig` (serde; unknown keys rejected with their line) →
//! `validate::build` (every problem collected, each naming its key and the fix) → `Config`.

pub mod defaults;
pub mod file;
pub mod model;
pub mod units;
pub mod validate;

use std::fmt;
use std::path::Path;

pub use model::*;

/// One thing wrong with a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path, e.g. `upstreams.standby.url` or `apps[1].secret_env`.
    pub key: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        Ok(())
    }
}

/// Every problem found in a config.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  - {p}")?;
        }
        Ok(())
    }
}

/// Reads and validates a config file, taking secrets from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        problems: vec![Problem {
            key: "(file)".into(),
            line: None,
            message: format!("cannot read {}: {e}", path.display()),
        }],
    })?;
    parse(&text, Some(path))
}

/// Validates config text, taking secrets from the process environment.
pub fn parse(text: &str, source: Option<&Path>) -> Result<Config, ConfigError> {
    parse_with_env(text, source, &|name| std::env::var(name).ok())
}

/// Validates config text with `env` standing in for the environment (tests, `--dev`).
pub fn parse_with_env(
    text: &str,
    source: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let file: file::FileConfig = serde_yaml::from_str(text).map_err(|e| ConfigError {
        problems: vec![Problem {
            key: e
                .to_string()
                .split(':')
                .next()
                .filter(|k| !k.contains(' ') && !k.is_empty())
                .unwrap_or("(file)")
                .to_string(),
            line: e.location().map(|l| l.line()),
            message: e.to_string(),
        }],
    })?;
    validate::build(file, source, env).map_err(|problems| ConfigError { problems })
}

#[cfg(test)]
mod tests;
