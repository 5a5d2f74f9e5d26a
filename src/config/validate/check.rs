//! What every section's check shares: the list of problems being collected, and the small
//! checks of durations, names and paths that more than one section makes.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Secrets;
use crate::config::quote::quote;
use crate::config::units::{parse_duration, parse_positive_duration};
use crate::config::Problem;

/// Collects problems while building.
pub(super) struct Check<'e> {
    pub(super) problems: Vec<Problem>,
    pub(super) env: &'e dyn Fn(&str) -> Option<String>,
    /// Directory relative paths are taken from.
    base_dir: Option<PathBuf>,
    pub(super) secrets: Secrets,
}

impl<'e> Check<'e> {
    pub(super) fn new(
        env: &'e dyn Fn(&str) -> Option<String>,
        base_dir: Option<&Path>,
        secrets: Secrets,
    ) -> Self {
        Check {
            problems: Vec::new(),
            env,
            base_dir: base_dir.map(Path::to_path_buf),
            secrets,
        }
    }

    pub(super) fn problem(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.into(),
            line: None,
            message: message.into(),
        });
    }

    /// A positive duration at `key`, or `default` when absent. On a problem, the default stands
    /// in so checking can go on.
    pub(super) fn duration(&mut self, key: &str, value: Option<&str>, default: &str) -> Duration {
        let fallback = parse_duration(default).expect("defaults are valid durations");
        match value.map(parse_positive_duration) {
            None => fallback,
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                self.problem(key, e);
                fallback
            }
        }
    }

    /// `p` as written, relative paths taken from the config file's directory.
    pub(super) fn path(&self, p: &str) -> PathBuf {
        match &self.base_dir {
            Some(dir) if Path::new(p).is_relative() => dir.join(p),
            _ => PathBuf::from(p),
        }
    }
}

/// Names declared in the file (upstreams, route paths), for lookups that stay fast however
/// many there are, and for messages that list a few of them.
pub(super) struct Names {
    list: Vec<String>,
    set: HashSet<String>,
}

/// How many names a message lists before it says how many more there are.
const NAMES_SHOWN: usize = 10;

impl Names {
    pub(super) fn new(list: Vec<String>) -> Self {
        let set = list.iter().cloned().collect();
        Names { list, set }
    }
    pub(super) fn contains(&self, name: &str) -> bool {
        self.set.contains(name)
    }
    /// `a, b, c`, or the first [`NAMES_SHOWN`] and `and N more`.
    pub(super) fn shown(&self) -> String {
        let mut s = self.list[..self.list.len().min(NAMES_SHOWN)].join(", ");
        if self.list.len() > NAMES_SHOWN {
            s.push_str(&format!(" and {} more", self.list.len() - NAMES_SHOWN));
        }
        s
    }
}

/// Names of apps, clients, upstreams and plans: `[A-Za-z0-9_.-]+`.
pub(super) fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// Environment variable names: `[A-Za-z_][A-Za-z0-9_]*`.
pub(super) fn is_env_name(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether a `secret_env` value looks like a pasted secret rather than a variable name (long,
/// mixed case, digits). Such a value is never echoed.
pub(super) fn looks_like_secret(s: &str) -> bool {
    s.len() >= 24
        && s.chars().any(|c| c.is_ascii_lowercase())
        && s.chars().any(|c| c.is_ascii_uppercase())
        && s.chars().any(|c| c.is_ascii_digit())
}

/// A file path for messages: as resolved, unless what was written looks like a pasted secret
/// (no `/`, long, mixed case and digits), which is quoted like any wrong value.
pub(super) fn show_path(written: &str, resolved: &Path) -> String {
    if !written.contains('/') && looks_like_secret(written) {
        quote(written)
    } else {
        resolved.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_and_pasted_secrets() {
        assert!(is_env_name("WECOM_HR_SECRET") && is_env_name("_x1"));
        assert!(!is_env_name("1X") && !is_env_name("A-B") && !is_env_name(""));
        assert!(looks_like_secret(
            "aB3dEfGhIjKlMnOpQrStUvWxYz0123456789_abcdE"
        ));
        assert!(!looks_like_secret("WECOM_HR_SECRET_2"));
    }

    #[test]
    fn names_list_ten_then_count_the_rest() {
        let few = Names::new(vec!["a".into(), "b".into()]);
        assert_eq!(few.shown(), "a, b");
        assert!(few.contains("b") && !few.contains("c"));
        let many = Names::new((0..12).map(|i| format!("n{i}")).collect());
        assert_eq!(
            many.shown(),
            "n0, n1, n2, n3, n4, n5, n6, n7, n8, n9 and 2 more"
        );
        assert!(is_name("hr-bot_2.x") && !is_name("") && !is_name("a b"));
    }

    #[test]
    fn durations_fall_back_to_their_default_on_a_problem() {
        let mut c = Check::new(&|_| None, Some(Path::new("/etc/wecom")), Secrets::Read);
        assert_eq!(c.duration("k", None, "2s"), Duration::from_secs(2));
        assert_eq!(c.duration("k", Some("5m"), "2s"), Duration::from_secs(300));
        assert_eq!(c.duration("k", Some("0s"), "2s"), Duration::from_secs(2));
        assert_eq!(c.problems.len(), 1);
        assert_eq!(c.problems[0].key, "k");
        assert_eq!(c.path("ca.pem"), Path::new("/etc/wecom/ca.pem"));
        assert_eq!(c.path("/abs"), Path::new("/abs"));
    }
}
