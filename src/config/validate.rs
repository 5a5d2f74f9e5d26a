//! From the file types to the runtime `Config`: every value checked, every problem collected
//! (not just the first), each naming its key and saying the fix. Secret values are read here
//! and never put into a message.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::defaults::*;
use super::file::*;
use super::model::*;
use super::units::{parse_duration, parse_rate};
use super::Problem;

/// Collects problems while building.
struct Check<'e> {
    problems: Vec<Problem>,
    env: &'e dyn Fn(&str) -> Option<String>,
}

impl Check<'_> {
    fn problem(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.into(),
            line: None,
            message: message.into(),
        });
    }

    fn duration(&mut self, key: &str, value: Option<&String>, default: &str) -> Duration {
        let text = value.map(String::as_str).unwrap_or(default);
        match parse_duration(text) {
            Ok(d) if d.is_zero() => {
                self.problem(
                    key,
                    format!("\"{text}\" is zero; give a positive duration such as {default}"),
                );
                parse_duration(default).unwrap_or(Duration::from_secs(1))
            }
            Ok(d) => d,
            Err(e) => {
                self.problem(key, e);
                parse_duration(default).unwrap_or(Duration::from_secs(1))
            }
        }
    }

    fn listen(&mut self, key: &str, value: Option<&String>, default: &str) -> SocketAddr {
        let text = value.map(String::as_str).unwrap_or(default);
        text.parse().unwrap_or_else(|_| {
            self.problem(
                key,
                format!("\"{text}\" is not IP:port; write e.g. \"{default}\""),
            );
            default.parse().expect("default is valid")
        })
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

fn yaml_key(k: &serde_yaml::Value) -> String {
    match k {
        serde_yaml::Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// Builds and checks the whole config.
pub fn build(
    file: FileConfig,
    source: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Vec<Problem>> {
    let mut c = Check {
        problems: Vec::new(),
        env,
    };
    let listen = c.listen("listen", file.listen.as_ref(), DEFAULT_LISTEN);
    let admin_listen = c.listen(
        "admin_listen",
        file.admin_listen.as_ref(),
        DEFAULT_ADMIN_LISTEN,
    );
    if listen == admin_listen {
        c.problem(
            "admin_listen",
            format!(
                "is the same address as listen ({listen}); give the admin listener its own port"
            ),
        );
    }

    // Split weights are checked against every declared upstream, valid or not, so one bad
    // upstream is reported once rather than again at each split naming it.
    let names: Vec<String> = file
        .upstreams
        .as_ref()
        .map(|m| m.keys().map(yaml_key).collect())
        .unwrap_or_default();
    let upstreams = upstreams(&mut c, file.upstreams);
    let apps = apps(&mut c, file.apps, source);
    let token = TokenSettings {
        refresh_before_expiry: c.duration(
            "token.refresh_before_expiry",
            file.token
                .as_ref()
                .and_then(|t| t.refresh_before_expiry.as_ref()),
            DEFAULT_REFRESH_BEFORE_EXPIRY,
        ),
    };
    if token.refresh_before_expiry >= Duration::from_secs(7200) {
        c.problem(
            "token.refresh_before_expiry",
            "must be shorter than a token's life (7200 s); the default is 5m",
        );
    }

    let base = base_policy();
    let defaults_file = file.defaults.unwrap_or_default();
    let defaults = policy(
        &mut c,
        "defaults",
        &base,
        PolicyKeys::from_defaults(&defaults_file),
        &names,
    );

    let mut routes = Vec::new();
    for (i, r) in file.routes.unwrap_or_default().into_iter().enumerate() {
        let key = format!("routes[{i}]");
        let path = if !r.path.starts_with("/cgi-bin/") {
            c.problem(format!("{key}.path"), format!("\"{}\" does not start with /cgi-bin/; routes match WeCom API paths such as /cgi-bin/message/send or /cgi-bin/user/*", r.path));
            None
        } else if let Some(prefix) = r.path.strip_suffix('*') {
            if prefix.contains('*') {
                c.problem(
                    format!("{key}.path"),
                    "a * may only end the path (prefix match), e.g. /cgi-bin/user/*",
                );
            }
            Some(PathMatch::Prefix(prefix.to_string()))
        } else if r.path.contains('*') {
            c.problem(
                format!("{key}.path"),
                "a * may only end the path (prefix match), e.g. /cgi-bin/user/*",
            );
            None
        } else {
            Some(PathMatch::Exact(r.path.clone()))
        };
        if let Some(p) = &path {
            let dup = routes.iter().any(|x: &Route| &x.path == p);
            if dup {
                c.problem(format!("{key}.path"), format!("\"{}\" is already routed by an earlier route; first match wins, so this one would never apply: remove it", r.path));
            }
        }
        if let Some(api) = &r.api {
            if api.is_empty()
                || !api
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "_/.-".contains(ch))
            {
                c.problem(format!("{key}.api"), format!("\"{api}\" is not a valid metric label; use letters, digits and _ / . - (e.g. message/send)"));
            }
        }
        let keys = PolicyKeys {
            deadline: r.deadline.as_ref(),
            retry: r.retry.as_ref(),
            split: r.split.as_ref(),
            quota: r.quota.as_ref(),
            idempotent: r.idempotent,
            allow_debug: r.allow_debug,
            on_limit: r.on_limit.as_ref(),
            max_wait: r.max_wait.as_ref(),
            quota_status: r.quota_status,
            recipient_cap: r.recipient_cap,
            dedupe: r.dedupe,
            duplicate_check_interval: r.duplicate_check_interval.as_ref(),
        };
        let policy = policy(&mut c, &key, &defaults, keys, &names);
        if let Some(path) = path {
            routes.push(Route {
                path,
                api: r.api.clone(),
                policy,
            });
        }
    }

    let fleet = file.fleet.map(|f| fleet(&mut c, f));

    if c.problems.is_empty() {
        Ok(Config {
            listen,
            admin_listen,
            upstreams,
            apps,
            token,
            defaults,
            routes,
            fleet,
            source: source.map(Path::to_path_buf),
        })
    } else {
        Err(c.problems)
    }
}

fn upstreams(c: &mut Check, map: Option<serde_yaml::Mapping>) -> Vec<Upstream> {
    let Some(map) = map else {
        c.problem("upstreams", "is missing; add at least `upstreams: { primary: { url: \"https://qyapi.weixin.qq.com\" } }`");
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, v) in map {
        let name = yaml_key(&k);
        let key = format!("upstreams.{name}");
        if !is_name(&name) {
            c.problem(&key, "an upstream name uses letters, digits and _ . - only");
        }
        let u: FileUpstream = match serde_yaml::from_value(v) {
            Ok(u) => u,
            Err(e) => {
                c.problem(&key, e.to_string());
                continue;
            }
        };
        let connect_timeout = c.duration(
            &format!("{key}.connect_timeout"),
            u.connect_timeout.as_ref(),
            DEFAULT_CONNECT_TIMEOUT,
        );
        let timeout = c.duration(
            &format!("{key}.timeout"),
            u.timeout.as_ref(),
            DEFAULT_TIMEOUT,
        );
        let ca_file = u.ca_file.map(PathBuf::from);
        if let Some(p) = &ca_file {
            if std::fs::metadata(p).map(|m| !m.is_file()).unwrap_or(true) {
                c.problem(
                    format!("{key}.ca_file"),
                    format!(
                        "{} is not a readable file; point it at a PEM bundle or remove the key",
                        p.display()
                    ),
                );
            }
        }
        let url_key = format!("{key}.url");
        let Ok(uri) = u.url.parse::<http::Uri>() else {
            c.problem(
                &url_key,
                format!(
                    "\"{}\" is not a URL; write e.g. https://qyapi.weixin.qq.com",
                    u.url
                ),
            );
            continue;
        };
        let scheme = match uri.scheme_str() {
            Some("https") => Scheme::Https,
            Some("http") => Scheme::Http,
            _ => {
                c.problem(&url_key, format!("\"{}\" must start with https:// (or http:// for private networks and tests)", u.url));
                continue;
            }
        };
        let Some(host) = uri.host().filter(|h| !h.is_empty()) else {
            c.problem(&url_key, format!("\"{}\" has no host", u.url));
            continue;
        };
        if uri.query().is_some() || u.url.contains('#') {
            c.problem(&url_key, "must not carry a query or fragment; give scheme, host, optional port and path prefix");
        }
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            c.problem(
                &url_key,
                "must not carry user:password@; WeCom authenticates with tokens",
            );
        }
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == Scheme::Https { 443 } else { 80 });
        let base_path = uri.path().trim_end_matches('/').to_string();
        out.push(Upstream {
            name: UpstreamName(Arc::from(name.as_str())),
            scheme,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
            base_path,
            connect_timeout,
            timeout,
            ca_file,
        });
    }
    if !out.iter().any(|u| u.name.as_str() == "primary")
        && c.problems
            .iter()
            .all(|p| !p.key.starts_with("upstreams.primary"))
    {
        c.problem(
            "upstreams.primary",
            "is missing; every config needs an upstream named primary (it also issues tokens)",
        );
    }
    out
}

fn apps(c: &mut Check, apps: Option<Vec<FileApp>>, source: Option<&Path>) -> Vec<App> {
    let Some(apps) = apps.filter(|a| !a.is_empty()) else {
        c.problem("apps", "is missing or empty; add one entry per WeCom app (name, corp_id, secret_env or secret_file)");
        return Vec::new();
    };
    let mut out: Vec<App> = Vec::new();
    for (i, a) in apps.into_iter().enumerate() {
        let key = format!("apps[{i}]");
        if !is_name(&a.name) {
            c.problem(
                format!("{key}.name"),
                format!(
                    "\"{}\" is not a valid app name; use letters, digits and _ . -",
                    a.name
                ),
            );
        }
        if out.iter().any(|o| o.name.as_str() == a.name) {
            c.problem(
                format!("{key}.name"),
                format!(
                    "\"{}\" is used by an earlier app; app names must be unique",
                    a.name
                ),
            );
        }
        if a.corp_id.trim().is_empty() {
            c.problem(
                format!("{key}.corp_id"),
                "is empty; copy the corp id (ww...) from the WeCom admin console",
            );
        }
        let secret = match (&a.secret_env, &a.secret_file) {
            (Some(_), Some(_)) => {
                c.problem(
                    format!("{key}.secret_env"),
                    "and secret_file are both set; keep exactly one",
                );
                None
            }
            (None, None) => {
                c.problem(format!("{key}.secret_env"), "is missing; set secret_env (an environment variable) or secret_file (a file) holding the app secret");
                None
            }
            (Some(var), None) => match (c.env)(var) {
                Some(v) if !v.trim().is_empty() => {
                    Some((v.trim().to_string(), format!("env {var}")))
                }
                _ => {
                    c.problem(format!("{key}.secret_env"), format!("environment variable {var} is not set or empty; export it with the app secret"));
                    None
                }
            },
            (None, Some(path)) => {
                let p = match source.and_then(Path::parent) {
                    Some(dir) if Path::new(path).is_relative() => dir.join(path),
                    _ => PathBuf::from(path),
                };
                match std::fs::read_to_string(&p) {
                    Ok(v) if !v.trim().is_empty() => {
                        Some((v.trim().to_string(), format!("file {}", p.display())))
                    }
                    Ok(_) => {
                        c.problem(
                            format!("{key}.secret_file"),
                            format!("{} is empty; it must hold the app secret", p.display()),
                        );
                        None
                    }
                    Err(e) => {
                        c.problem(
                            format!("{key}.secret_file"),
                            format!(
                                "{} cannot be read ({}); mount the secret there or fix the path",
                                p.display(),
                                e.kind()
                            ),
                        );
                        None
                    }
                }
            }
        };
        if let Some((value, source)) = secret {
            out.push(App {
                name: AppName(Arc::from(a.name.as_str())),
                corp_id: a.corp_id.trim().to_string(),
                agent_id: a.agent_id,
                secret: Secret::new(value),
                secret_source: source,
                default: a.default,
            });
        }
    }
    let defaults: Vec<&str> = out
        .iter()
        .filter(|a| a.default)
        .map(|a| a.name.as_str())
        .collect();
    if defaults.len() > 1 {
        c.problem(
            "apps",
            format!(
                "{} apps have default: true ({}); keep it on one",
                defaults.len(),
                defaults.join(", ")
            ),
        );
    }
    out
}

/// The policy keys of `defaults` or a route.
struct PolicyKeys<'a> {
    deadline: Option<&'a String>,
    retry: Option<&'a FileRetry>,
    split: Option<&'a serde_yaml::Mapping>,
    quota: Option<&'a Vec<String>>,
    idempotent: Option<bool>,
    allow_debug: Option<bool>,
    on_limit: Option<&'a String>,
    max_wait: Option<&'a String>,
    quota_status: Option<u16>,
    recipient_cap: Option<bool>,
    dedupe: Option<bool>,
    duplicate_check_interval: Option<&'a String>,
}

impl<'a> PolicyKeys<'a> {
    fn from_defaults(p: &'a FilePolicy) -> Self {
        PolicyKeys {
            deadline: p.deadline.as_ref(),
            retry: p.retry.as_ref(),
            split: p.split.as_ref(),
            quota: p.quota.as_ref(),
            idempotent: p.idempotent,
            allow_debug: p.allow_debug,
            on_limit: p.on_limit.as_ref(),
            max_wait: p.max_wait.as_ref(),
            quota_status: p.quota_status,
            recipient_cap: p.recipient_cap,
            dedupe: p.dedupe,
            duplicate_check_interval: p.duplicate_check_interval.as_ref(),
        }
    }
}

fn base_policy() -> RoutePolicy {
    RoutePolicy {
        deadline: parse_duration(DEFAULT_DEADLINE).expect("default"),
        retry: RetryPolicy {
            attempts: DEFAULT_RETRY_ATTEMPTS,
            backoff_base: parse_duration(DEFAULT_BACKOFF_BASE).expect("default"),
            backoff_max: parse_duration(DEFAULT_BACKOFF_MAX).expect("default"),
        },
        split: Split(vec![(UpstreamName(Arc::from("primary")), 100)]),
        quota: DEFAULT_QUOTA
            .iter()
            .map(|q| parse_rate(q).expect("default"))
            .collect(),
        idempotent: None,
        allow_debug: false,
        on_limit: OnLimit::Reject,
        quota_status: 200,
        recipient_cap: true,
        dedupe: false,
        duplicate_check_interval: parse_duration(DEFAULT_DUPLICATE_CHECK_INTERVAL)
            .expect("default"),
    }
}

/// `over` with the keys that are set applied.
fn policy(
    c: &mut Check,
    key: &str,
    over: &RoutePolicy,
    k: PolicyKeys,
    upstreams: &[String],
) -> RoutePolicy {
    let mut p = over.clone();
    if let Some(d) = k.deadline {
        p.deadline = c.duration(&format!("{key}.deadline"), Some(d), DEFAULT_DEADLINE);
    }
    if let Some(r) = k.retry {
        if let Some(a) = r.attempts {
            if a == 0 || a > MAX_RETRY_ATTEMPTS {
                c.problem(format!("{key}.retry.attempts"), format!("{a} is out of range; attempts count the first try, 1 (no retry) to {MAX_RETRY_ATTEMPTS}"));
            } else {
                p.retry.attempts = a;
            }
        }
        if let Some(b) = &r.backoff_base {
            p.retry.backoff_base = c.duration(
                &format!("{key}.retry.backoff_base"),
                Some(b),
                DEFAULT_BACKOFF_BASE,
            );
        }
        if let Some(m) = &r.backoff_max {
            p.retry.backoff_max = c.duration(
                &format!("{key}.retry.backoff_max"),
                Some(m),
                DEFAULT_BACKOFF_MAX,
            );
        }
        if p.retry.backoff_base > p.retry.backoff_max {
            c.problem(
                format!("{key}.retry.backoff_base"),
                "is larger than backoff_max; raise backoff_max or lower backoff_base",
            );
        }
    }
    if let Some(split) = k.split {
        let mut members = Vec::new();
        let mut sum = 0u64;
        for (name, w) in split {
            let name = yaml_key(name);
            let wkey = format!("{key}.split.{name}");
            if !upstreams.iter().any(|u| u == &name) {
                c.problem(
                    &wkey,
                    format!(
                        "names no upstream; configured upstreams: {}",
                        upstreams.join(", ")
                    ),
                );
                continue;
            }
            match w.as_u64() {
                Some(w) if w <= 100 => {
                    sum += w;
                    members.push((UpstreamName(Arc::from(name.as_str())), w as u32));
                }
                _ => c.problem(&wkey, "weight must be a whole number from 0 to 100"),
            }
        }
        if sum != 100 {
            c.problem(format!("{key}.split"), format!("weights add up to {sum}; they must add up to 100 (a weight of 0 makes a pure standby)"));
        }
        p.split = Split(members);
    } else if !upstreams.iter().any(|u| u == "primary") {
        p.split = Split(vec![]);
    }
    if let Some(q) = k.quota {
        let mut rates = Vec::new();
        for (i, r) in q.iter().enumerate() {
            match parse_rate(r) {
                Ok(rate) => rates.push(rate),
                Err(e) => c.problem(format!("{key}.quota[{i}]"), e),
            }
        }
        p.quota = rates;
    }
    if let Some(i) = k.idempotent {
        p.idempotent = Some(i);
    }
    if let Some(d) = k.allow_debug {
        p.allow_debug = d;
    }
    let max_wait = match (k.on_limit.map(String::as_str), p.on_limit) {
        (_, OnLimit::Wait { max_wait }) => max_wait,
        _ => parse_duration(DEFAULT_MAX_WAIT).expect("default"),
    };
    let max_wait = match k.max_wait {
        Some(m) => c.duration(&format!("{key}.max_wait"), Some(m), DEFAULT_MAX_WAIT),
        None => max_wait,
    };
    match k.on_limit.map(String::as_str) {
        None => {
            if let OnLimit::Wait { .. } = p.on_limit {
                p.on_limit = OnLimit::Wait { max_wait };
            } else if k.max_wait.is_some() {
                c.problem(format!("{key}.max_wait"), "only applies with on_limit: wait; set on_limit: wait or remove max_wait");
            }
        }
        Some("reject") => p.on_limit = OnLimit::Reject,
        Some("wait") => p.on_limit = OnLimit::Wait { max_wait },
        Some(other) => c.problem(format!("{key}.on_limit"), format!("\"{other}\" is not a choice; use reject (answer 45009 at once) or wait (queue up to max_wait)")),
    }
    if let Some(s) = k.quota_status {
        if s == 200 || s == 429 {
            p.quota_status = s;
        } else {
            c.problem(
                format!("{key}.quota_status"),
                format!("{s} is not allowed; use 200 (like WeCom) or 429"),
            );
        }
    }
    if let Some(r) = k.recipient_cap {
        p.recipient_cap = r;
    }
    if let Some(d) = k.dedupe {
        p.dedupe = d;
    }
    if let Some(i) = k.duplicate_check_interval {
        let d = c.duration(
            &format!("{key}.duplicate_check_interval"),
            Some(i),
            DEFAULT_DUPLICATE_CHECK_INTERVAL,
        );
        if d.as_secs() > MAX_DUPLICATE_CHECK_INTERVAL_SECS || d.as_secs() == 0 {
            c.problem(format!("{key}.duplicate_check_interval"), format!("WeCom accepts 1 s to 4 h ({MAX_DUPLICATE_CHECK_INTERVAL_SECS} s); the default is 30m"));
        } else {
            p.duplicate_check_interval = d;
        }
    }
    p
}

fn fleet(c: &mut Check, f: FileFleet) -> Fleet {
    let url = match (&f.redis_url, &f.redis_url_env) {
        (Some(_), Some(_)) => {
            c.problem(
                "fleet.redis_url",
                "and redis_url_env are both set; keep exactly one",
            );
            None
        }
        (None, None) => {
            c.problem("fleet.redis_url", "is missing; set redis_url (redis://host:6379/0) or redis_url_env (a variable holding it, when it has a password)");
            None
        }
        (Some(u), None) => Some((u.clone(), "fleet.redis_url")),
        (None, Some(var)) => match (c.env)(var) {
            Some(v) if !v.trim().is_empty() => Some((v.trim().to_string(), "fleet.redis_url_env")),
            _ => {
                c.problem(
                    "fleet.redis_url_env",
                    format!("environment variable {var} is not set or empty"),
                );
                None
            }
        },
    };
    if let Some((u, key)) = &url {
        if !(u.starts_with("redis://") || u.starts_with("rediss://")) {
            c.problem(*key, "must start with redis:// or rediss:// (TLS)");
        }
    }
    let key_prefix = f
        .key_prefix
        .unwrap_or_else(|| DEFAULT_KEY_PREFIX.to_string());
    if key_prefix.is_empty() {
        c.problem(
            "fleet.key_prefix",
            format!(
                "is empty; sidecars sharing a Redis need a prefix, e.g. \"{DEFAULT_KEY_PREFIX}\""
            ),
        );
    }
    let size = f.size.unwrap_or(1);
    if size == 0 {
        c.problem(
            "fleet.size",
            "must be at least 1 (the number of sidecars sharing the limits)",
        );
    }
    let mut share = Vec::new();
    for (i, s) in f
        .share
        .unwrap_or_else(|| vec!["tokens".into(), "quotas".into()])
        .iter()
        .enumerate()
    {
        match s.as_str() {
            "tokens" => share.push(Shared::Tokens),
            "quotas" => share.push(Shared::Quotas),
            other => c.problem(
                format!("fleet.share[{i}]"),
                format!("\"{other}\" is not shareable; use tokens and/or quotas"),
            ),
        }
    }
    if share.is_empty() {
        c.problem(
            "fleet.share",
            "is empty; share tokens, quotas or both, or remove the fleet section",
        );
    }
    share.sort();
    share.dedup();
    Fleet {
        redis_url: Secret::new(url.map(|u| u.0).unwrap_or_default()),
        key_prefix,
        size: size.max(1),
        share,
    }
}
