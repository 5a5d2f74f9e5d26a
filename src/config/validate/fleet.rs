//! `fleet`: sidecars sharing tokens and quotas through one Redis, into a [`Fleet`].

use super::check::{is_env_name, Check};
use super::Secrets;
use crate::config::defaults::*;
use crate::config::file::FileFleet;
use crate::config::model::{Fleet, Secret, ShareKind};
use crate::config::quote::quote;

impl FileFleet {
    /// `fleet`: where the shared Redis is (its URL never shown), the key prefix, how many
    /// sidecars share, what they share, and how long one Redis operation may take.
    pub(super) fn to_fleet(&self, c: &mut Check) -> Fleet {
        let url = self.redis_url(c);
        let key_prefix = self
            .key_prefix
            .clone()
            .unwrap_or_else(|| DEFAULT_KEY_PREFIX.to_string());
        if key_prefix.trim().is_empty() {
            c.problem(
                "fleet.key_prefix",
                format!("is empty. Sidecars sharing a Redis need a prefix for their keys, e.g. \"{DEFAULT_KEY_PREFIX}\" (the default)"),
            );
        }
        let size = self.size.unwrap_or(DEFAULT_FLEET_SIZE);
        if size == 0 {
            c.problem(
                "fleet.size",
                "must be at least 1: the number of sidecars sharing the limits (each keeps limit/size while Redis is down)",
            );
        }
        let share = share(c, self.share.as_deref());
        let timeout = c.duration(
            "fleet.timeout",
            self.timeout.as_deref(),
            DEFAULT_FLEET_TIMEOUT,
        );
        if timeout > MAX_FLEET_TIMEOUT {
            c.problem(
                "fleet.timeout",
                format!("is over {}s: a call waits this long whenever Redis hangs. Use e.g. 250ms (the default), or 1s for a distant Redis", MAX_FLEET_TIMEOUT.as_secs()),
            );
        }
        Fleet {
            redis_url: Secret::new(url.unwrap_or_default()),
            key_prefix,
            size: size.max(1),
            share,
            timeout,
        }
    }

    /// The Redis URL, from exactly one of `redis_url` (no password) or `redis_url_env`, and
    /// checked to be one; `None` on a problem or when not read (`--no-secrets`).
    fn redis_url(&self, c: &mut Check) -> Option<String> {
        let (url, key, var) = match (&self.redis_url, &self.redis_url_env) {
            (Some(_), Some(_)) => {
                c.problem(
                    "fleet.redis_url",
                    "and redis_url_env are both set. Keep exactly one: drop redis_url or redis_url_env",
                );
                return None;
            }
            (None, None) => {
                c.problem("fleet.redis_url", "is missing. Set redis_url (e.g. redis://127.0.0.1:6379/0) or redis_url_env (the name of a variable holding the URL, when it carries a password), or drop the fleet section");
                return None;
            }
            (Some(u), None) => {
                let u = u.trim().to_string();
                if redis_password(&u) {
                    c.problem("fleet.redis_url", "carries a password (URL not shown), and secrets never go in this file. Put the URL in an environment variable and name it in redis_url_env instead");
                }
                (u, "fleet.redis_url", None)
            }
            (None, Some(var)) => (url_from_env(c, var)?, "fleet.redis_url_env", Some(var)),
        };
        let what = match var {
            Some(var) => format!("environment variable {var} holds a URL that"),
            None => "the URL (not shown)".to_string(),
        };
        match url
            .strip_prefix("redis://")
            .or_else(|| url.strip_prefix("rediss://"))
        {
            None => c.problem(key, format!("{what} does not start with redis:// or rediss:// (TLS). Write e.g. redis://127.0.0.1:6379/0")),
            Some(rest) => {
                let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
                let host = authority.rsplit('@').next().unwrap_or("");
                if host.is_empty() || host.starts_with(':') {
                    c.problem(key, format!("{what} has no host. Write e.g. redis://127.0.0.1:6379/0"));
                }
            }
        }
        Some(url)
    }
}

/// The Redis URL held by the variable `fleet.redis_url_env` names (it may carry a password).
fn url_from_env(c: &mut Check, var: &str) -> Option<String> {
    if !is_env_name(var) {
        c.problem("fleet.redis_url_env", "is not an environment variable name (value not shown). Give the NAME of a variable holding the Redis URL, e.g. WECOM_REDIS_URL");
        return None;
    }
    if c.secrets == Secrets::Skip {
        return None;
    }
    match (c.env)(var).map(|v| v.trim().to_string()) {
        Some(v) if !v.is_empty() => Some(v),
        Some(_) => {
            c.problem("fleet.redis_url_env", format!("environment variable {var} is empty. Export it with the Redis URL, e.g. rediss://:password@redis:6380/0"));
            None
        }
        None => {
            c.problem("fleet.redis_url_env", format!("environment variable {var} is not set. Export it with the Redis URL, e.g. rediss://:password@redis:6380/0"));
            None
        }
    }
}

/// `fleet.share`: tokens, quotas or both (the default), each once, in a fixed order.
fn share(c: &mut Check, written: Option<&[String]>) -> Vec<ShareKind> {
    let defaults: Vec<String>;
    let written = match written {
        Some(w) => w,
        None => {
            defaults = DEFAULT_FLEET_SHARE.iter().map(|s| s.to_string()).collect();
            &defaults
        }
    };
    if written.is_empty() {
        c.problem(
            "fleet.share",
            "is empty. Share tokens, quotas or both (e.g. [tokens, quotas]), or drop the fleet section",
        );
    }
    let mut share = Vec::new();
    for (i, s) in written.iter().enumerate() {
        match s.as_str() {
            "tokens" => share.push(ShareKind::Tokens),
            "quotas" => share.push(ShareKind::Quotas),
            other => c.problem(
                format!("fleet.share[{i}]"),
                format!(
                    "{} cannot be shared. Use tokens and/or quotas",
                    quote(other)
                ),
            ),
        }
    }
    share.sort();
    share.dedup();
    share
}

/// Whether a Redis URL carries a password (`redis://:pw@host`, `redis://user:pw@host`).
fn redis_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    match authority.rsplit_once('@') {
        Some((userinfo, _)) => userinfo
            .split_once(':')
            .is_some_and(|(_, pw)| !pw.is_empty()),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_passwords_are_spotted() {
        assert!(redis_password("redis://:pw@h:6379/0"));
        assert!(redis_password("rediss://user:pw@h"));
        assert!(!redis_password("redis://user@h"));
        assert!(!redis_password("redis://h:6379/0"));
        assert!(!redis_password("redis://h/0?x=a:b@c"));
    }

    #[test]
    fn shares_are_kept_once_in_a_fixed_order() {
        let mut c = Check::new(&|_| None, None, Secrets::Read);
        let written = ["quotas", "tokens", "quotas"].map(String::from);
        assert_eq!(
            share(&mut c, Some(&written)),
            [ShareKind::Tokens, ShareKind::Quotas]
        );
        assert_eq!(share(&mut c, None), [ShareKind::Tokens, ShareKind::Quotas]);
        assert!(c.problems.is_empty());
        assert_eq!(share(&mut c, Some(&[])), []);
        assert_eq!(c.problems[0].key, "fleet.share");
    }
}
