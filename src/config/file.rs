//! The config file as written: serde types, every struct `deny_unknown_fields`, optional keys
//! as `Option` so validation can tell "absent" (take the default) from "set". Values stay as
//! written (durations and rates as strings); `validate` gives them meaning.
//!
//! Maps whose keys are names (`upstreams`, `split`) are [`OrderedMap`]s: declaration order is
//! kept, duplicate names are refused, and serde_yaml still reports the line of any mistake
//! inside them.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping of config keys (upstreams, apps, ...)"
)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub admin_listen: Option<String>,
    /// Extra `Host` names the admin listener answers for (beyond loopback, `localhost` and its
    /// own address).
    pub admin_hosts: Option<Vec<String>>,
    /// Name → endpoint, in file order; `primary` must be one of them.
    pub upstreams: Option<OrderedMap<FileUpstream>>,
    pub apps: Option<Vec<FileApp>>,
    pub token: Option<FileToken>,
    pub defaults: Option<FilePolicy>,
    pub routes: Option<Vec<FilePolicy>>,
    pub fleet: Option<FileFleet>,
    pub outlier: Option<FileOutlier>,
    pub health_check: Option<FileHealthCheck>,
    /// Plan name → steps, in file order.
    pub shift_plans: Option<OrderedMap<Vec<FilePlanStep>>>,
    /// Apps' signing keys; when present, every call must be signed.
    pub clients: Option<Vec<FileClient>>,
    /// Bounds on app-facing connections.
    pub client: Option<FileClientConnections>,
    /// WeCom's pushes to the apps (the callback listener); absent: no listener.
    pub callbacks: Option<FileCallbacks>,
    /// Where the durable queues live.
    pub store: Option<FileStore>,
}

/// `callbacks`: the listener WeCom pushes to, one entry per app, and how pushes are delivered.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping (listen, apps, delivery)")]
pub struct FileCallbacks {
    pub listen: Option<String>,
    pub apps: Option<Vec<FileCallbackApp>>,
    pub delivery: Option<FileDelivery>,
}

/// `callbacks.apps[i]`: one app's callback URL path, credentials and receiver.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a callback app (app, path, token_env or token_file, aes_key_env or aes_key_file, deliver_to, reply_within)"
)]
pub struct FileCallbackApp {
    /// An `apps[]` name; its `corp_id` is the receive id.
    pub app: String,
    pub path: String,
    pub token_env: Option<String>,
    pub token_file: Option<String>,
    pub aes_key_env: Option<String>,
    pub aes_key_file: Option<String>,
    pub deliver_to: String,
    pub reply_within: Option<String>,
}

/// `callbacks.delivery`.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping (timeout, backoff_base, backoff_max, max_age)"
)]
pub struct FileDelivery {
    pub timeout: Option<String>,
    pub backoff_base: Option<String>,
    pub backoff_max: Option<String>,
    pub max_age: Option<String>,
}

/// `store`.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping (path, max_bytes, outbox_max_per_app)"
)]
pub struct FileStore {
    pub path: Option<String>,
    /// The most the queued items may hold, e.g. `256MiB` or a number of bytes.
    pub max_bytes: Option<serde_yaml::Value>,
    /// Sends one app may have waiting in the outbox.
    pub outbox_max_per_app: Option<i64>,
}

/// `client`: timeouts and a connection cap on the app listener.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping (header_timeout, body_timeout, idle_timeout, max_connections)"
)]
pub struct FileClientConnections {
    pub header_timeout: Option<String>,
    pub body_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub max_connections: Option<i64>,
}

/// `clients[i]`: one calling app's HMAC key and the WeCom apps it may use.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a client (name, key_env or key_file, apps)"
)]
pub struct FileClient {
    pub name: String,
    /// Name of an environment variable holding the key.
    pub key_env: Option<String>,
    /// Path of a file holding the key (relative to the config file's directory).
    pub key_file: Option<String>,
    /// App names, or `"*"` for all.
    pub apps: Vec<String>,
}

/// `shift_plans.<name>[i]`.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a plan step (routes, split, hold, max_error_rate, max_p99)"
)]
pub struct FilePlanStep {
    pub routes: Vec<String>,
    pub split: OrderedMap<i64>,
    pub hold: String,
    pub max_error_rate: Option<f64>,
    pub max_p99: Option<String>,
}

/// `outlier`.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping (consecutive_failures, base_ejection, max_ejection)"
)]
pub struct FileOutlier {
    pub consecutive_failures: Option<u32>,
    pub base_ejection: Option<String>,
    pub max_ejection: Option<String>,
}

/// `health_check`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping (interval, timeout)")]
pub struct FileHealthCheck {
    pub interval: Option<String>,
    pub timeout: Option<String>,
}

/// `upstreams.<name>`.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an upstream (url, connect_timeout, timeout, ca_file, tokens)"
)]
pub struct FileUpstream {
    pub url: String,
    pub connect_timeout: Option<String>,
    pub timeout: Option<String>,
    pub ca_file: Option<String>,
    /// `shared` (default) or `own`.
    pub tokens: Option<String>,
}

/// `apps[i]`.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an app (name, corp_id, agent_id, secret_env or secret_file, default)"
)]
pub struct FileApp {
    pub name: String,
    pub corp_id: String,
    pub agent_id: Option<i64>,
    /// Name of an environment variable holding the secret.
    pub secret_env: Option<String>,
    /// Path of a file holding the secret (relative to the config file's directory).
    pub secret_file: Option<String>,
    #[serde(default)]
    pub default: bool,
}

/// `token`.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping (refresh_before_expiry, min_fetch_interval, min_refetch, max_fetches)"
)]
pub struct FileToken {
    pub refresh_before_expiry: Option<String>,
    pub min_fetch_interval: Option<String>,
    pub min_refetch: Option<String>,
    pub max_fetches: Option<String>,
}

/// `defaults.retry` and `routes[i].retry`.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping (attempts, backoff_base, backoff_max)"
)]
pub struct FileRetry {
    pub attempts: Option<u32>,
    pub backoff_base: Option<String>,
    pub backoff_max: Option<String>,
}

/// `defaults` and each of `routes`: one policy, every key optional. `path` and `api` only
/// belong in a route (validation refuses them in `defaults` and requires `path` in a route);
/// one type for both keeps each policy key written once, and plain fields (no
/// `#[serde(flatten)]`, which `deny_unknown_fields` does not take) keep serde_yaml's line and
/// column in every error.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a policy (path, api, deadline, retry, split, quota, on_limit, ...)"
)]
pub struct FilePolicy {
    /// The WeCom API path a route matches (`/cgi-bin/...`, a trailing `*` for a prefix).
    pub path: Option<String>,
    /// A route's metric label; derived from the path when absent.
    pub api: Option<String>,
    pub deadline: Option<String>,
    pub retry: Option<FileRetry>,
    /// Upstream name → weight (0–100), in file order.
    pub split: Option<OrderedMap<i64>>,
    pub quota: Option<Vec<String>>,
    pub idempotent: Option<bool>,
    pub allow_debug: Option<bool>,
    pub on_limit: Option<String>,
    pub max_wait: Option<String>,
    pub quota_status: Option<u16>,
    pub recipient_cap: Option<bool>,
    pub dedupe: Option<bool>,
    pub duplicate_check_interval: Option<String>,
    /// Calls in flight per app and API (WeCom's concurrency limit, 45033).
    pub max_in_flight: Option<i64>,
    /// Members a message API of this route may reach per app per China day.
    pub recipients_per_day: Option<i64>,
    /// Queue a message send WeCom cannot be reached for, and replay it later (`outbox`).
    pub outbox: Option<bool>,
    /// How long a queued send is replayed before it becomes a dead letter.
    pub outbox_max_age: Option<String>,
}

/// `fleet`.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping (redis_url or redis_url_env, key_prefix, size, share, timeout)"
)]
pub struct FileFleet {
    pub redis_url: Option<String>,
    /// Name of an environment variable holding the Redis URL (when it carries a password).
    pub redis_url_env: Option<String>,
    pub key_prefix: Option<String>,
    pub size: Option<u32>,
    pub share: Option<Vec<String>>,
    /// Longest one Redis operation may take before the sidecar decides alone.
    pub timeout: Option<String>,
}

/// A YAML mapping keyed by name, kept in file order. Keys are read as strings (`1:` is the name
/// `"1"`); a name given twice is a deserialization error at the second one's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderedMap<V>(pub Vec<(String, V)>);

impl<V> Default for OrderedMap<V> {
    fn default() -> Self {
        OrderedMap(Vec::new())
    }
}

impl<V> OrderedMap<V> {
    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }
    #[cfg(test)]
    pub fn get(&self, key: &str) -> Option<&V> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<V> IntoIterator for OrderedMap<V> {
    type Item = (String, V);
    type IntoIter = std::vec::IntoIter<(String, V)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(OrderedMapVisitor(PhantomData))
    }
}

struct OrderedMapVisitor<V>(PhantomData<V>);

impl<'de, V: Deserialize<'de>> Visitor<'de> for OrderedMapVisitor<V> {
    type Value = OrderedMap<V>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping of names")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out: Vec<(String, V)> = Vec::new();
        // A set beside the list: a map of many names is read in linear time.
        let mut seen = std::collections::HashSet::new();
        while let Some(name) = map.next_key_seed(UniqueName { seen: &seen })? {
            let value = map.next_value()?;
            seen.insert(name.clone());
            out.push((name, value));
        }
        Ok(OrderedMap(out))
    }
}

/// Reads a map key as a name, refusing one already seen (so the error points at the repeat).
struct UniqueName<'a> {
    seen: &'a std::collections::HashSet<String>,
}

impl<'de> DeserializeSeed<'de> for UniqueName<'_> {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Visitor<'_> for UniqueName<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<String, E> {
        if self.seen.contains(name) {
            return Err(E::custom(format_args!(
                "`{name}` is given twice; keep one entry per name"
            )));
        }
        Ok(name.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        self.visit_str(&v.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_map_keeps_file_order() {
        let m: OrderedMap<i64> = serde_yaml::from_str("zeta: 1\nalpha: 2\n9: 3\n").unwrap();
        assert_eq!(m.keys().collect::<Vec<_>>(), ["zeta", "alpha", "9"]);
        assert_eq!(m.get("alpha"), Some(&2));
        let empty: OrderedMap<i64> = serde_yaml::from_str("{}").unwrap();
        assert!(empty.is_empty());
        let e = serde_yaml::from_str::<OrderedMap<i64>>("[a]").unwrap_err();
        assert!(e.to_string().contains("expected a mapping of names"), "{e}");
    }

    #[test]
    fn ordered_map_refuses_repeats_at_their_line() {
        let e = serde_yaml::from_str::<OrderedMap<i64>>("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert!(e.to_string().contains("`a` is given twice"), "{e}");
        assert_eq!(e.location().map(|l| l.line()), Some(3));
    }

    /// A file type's description (what serde says it expected) and its keys (what serde
    /// lists for an unknown one).
    fn described<T: de::DeserializeOwned + fmt::Debug>() -> (String, Vec<String>) {
        let wrong_type = serde_yaml::from_str::<T>("7").unwrap_err().to_string();
        let description = wrong_type
            .split_once("expected ")
            .map(|(_, d)| d.split(" at line ").next().unwrap_or(d).to_string())
            .unwrap_or_else(|| panic!("no description in {wrong_type:?}"));
        let unknown = serde_yaml::from_str::<T>("zz_not_a_key: 1\n")
            .unwrap_err()
            .to_string();
        let listed = unknown
            .split_once("expected ")
            .map_or("", |(_, l)| l.split(" at line ").next().unwrap_or(l));
        let keys = listed
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
        (description, keys)
    }

    #[test]
    fn every_file_type_describes_itself_with_its_own_keys() {
        let types = [
            ("FileConfig", described::<FileConfig>()),
            ("FileCallbacks", described::<FileCallbacks>()),
            ("FileCallbackApp", described::<FileCallbackApp>()),
            ("FileDelivery", described::<FileDelivery>()),
            ("FileStore", described::<FileStore>()),
            (
                "FileClientConnections",
                described::<FileClientConnections>(),
            ),
            ("FileClient", described::<FileClient>()),
            ("FilePlanStep", described::<FilePlanStep>()),
            ("FileOutlier", described::<FileOutlier>()),
            ("FileHealthCheck", described::<FileHealthCheck>()),
            ("FileUpstream", described::<FileUpstream>()),
            ("FileApp", described::<FileApp>()),
            ("FileToken", described::<FileToken>()),
            ("FileRetry", described::<FileRetry>()),
            ("FilePolicy", described::<FilePolicy>()),
            ("FileFleet", described::<FileFleet>()),
        ];
        // Every file type declared in this file is walked here.
        let declared: Vec<&str> = include_str!("file.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("pub struct "))
            .filter_map(|rest| rest.split([' ', '<']).next())
            .filter(|name| name.starts_with("File"))
            .collect();
        let walked: Vec<&str> = types.iter().map(|(name, _)| *name).collect();
        assert_eq!(declared, walked, "a File* type has no description test");

        for (name, (description, keys)) in &types {
            assert!(
                !description.contains("struct "),
                "{name} has no description: {description}"
            );
            assert!(!keys.is_empty(), "{name}: no keys listed");
            // The keys a description names, `a or b` counting both; `...` stands for the rest.
            let inside = description
                .rsplit_once('(')
                .and_then(|(_, rest)| rest.strip_suffix(')'))
                .unwrap_or_else(|| panic!("{name}: no (keys) in {description}"));
            let named: Vec<&str> = inside
                .split(", ")
                .flat_map(|part| part.split(" or "))
                .filter(|k| *k != "...")
                .collect();
            for k in &named {
                assert!(
                    keys.iter().any(|key| key == k),
                    "{name}: {k} is not one of {keys:?}"
                );
            }
            if !inside.ends_with("...") {
                assert_eq!(
                    named.len(),
                    keys.len(),
                    "{name}: {description} leaves out some of {keys:?}"
                );
            }
        }
    }

    #[test]
    fn unknown_fields_are_refused_everywhere() {
        for text in [
            "upstreams:\n  primary: { url: x, urll: y }\n",
            "apps:\n  - { name: a, corp_id: b, secret: c }\n",
            "token: { refresh: 5m }\n",
            "defaults: { retry: { tries: 3 } }\n",
            "routes:\n  - { path: /cgi-bin/a, quotas: [] }\n",
            "defaults: { paths: /cgi-bin/a }\n",
            "fleet: { redis: x }\n",
        ] {
            let e = serde_yaml::from_str::<FileConfig>(text).unwrap_err();
            assert!(e.to_string().contains("unknown field"), "{text}: {e}");
        }
    }
}
