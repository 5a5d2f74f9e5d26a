//! From the file types to the runtime `Config`: every value checked, every problem collected
//! (not just the first), each naming its key path and saying the fix.
//!
//! Secret values (app secrets, a Redis URL from `redis_url_env`) are read here and never put
//! into a message: messages name the variable or file, never what it holds.

use std::net::SocketAddr;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::defaults::*;
use super::file::*;
use super::model::*;
use super::quote::quote;
use super::read::{read_capped, ReadError, MAX_FILE_BYTES, MAX_SECRET_BYTES};
use super::units::{parse_duration, parse_positive_duration, parse_rate};
use super::Problem;

/// Builds and checks the whole config. `source` is the config file's path: relative
/// `secret_file` and `ca_file` paths are taken from its directory (else from the working
/// directory). `env` stands in for the process environment.
pub fn build(
    file: FileConfig,
    source: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Vec<Problem>> {
    build_with(file, source, env, Secrets::Read)
}

/// Whether secrets (and the files only production has) are read while building.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    /// Read every secret and file: a config that can serve.
    Read,
    /// `--check --no-secrets`: check the keys naming them, read none of them (no secret
    /// variable, `secret_file`, `key_file`, `redis_url_env` or `ca_file`). The config built
    /// holds placeholders and must never serve.
    Skip,
}

/// What stands in for a secret not read (`--check --no-secrets`).
const NOT_READ: &str = "(not read: --no-secrets)";

/// As [`build`], choosing whether secrets are read.
pub fn build_with(
    file: FileConfig,
    source: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
    secrets: Secrets,
) -> Result<Config, Vec<Problem>> {
    let mut c = Check {
        problems: Vec::new(),
        env,
        base_dir: source.and_then(Path::parent).map(Path::to_path_buf),
        secrets,
    };

    let listen = c.listen("listen", file.listen.as_deref(), DEFAULT_LISTEN);
    let admin_listen = c.listen(
        "admin_listen",
        file.admin_listen.as_deref(),
        DEFAULT_ADMIN_LISTEN,
    );
    if let (Some(l), Some(a)) = (listen, admin_listen) {
        if l == a {
            c.problem(
                "admin_listen",
                format!(
                    "is the same address as listen ({l}). Give the admin listener its own port, e.g. \"{DEFAULT_ADMIN_LISTEN}\""
                ),
            );
        }
    }

    let admin_hosts = admin_hosts(&mut c, file.admin_hosts.as_deref());

    // Splits are checked against every declared upstream, valid or not, so one bad upstream is
    // reported once rather than again at each split naming it.
    let declared = Names::new(
        file.upstreams
            .as_ref()
            .map(|m| m.keys().map(str::to_string).collect())
            .unwrap_or_default(),
    );
    let upstreams = upstreams(&mut c, file.upstreams);
    // Clients name apps as declared, valid or not, so one bad app is reported once.
    let app_names: std::collections::HashSet<String> =
        file.apps.iter().flatten().map(|a| a.name.clone()).collect();
    let apps = apps(&mut c, file.apps);
    let clients = clients(&mut c, file.clients, &app_names);

    let refresh_before_expiry = c.duration(
        "token.refresh_before_expiry",
        file.token
            .as_ref()
            .and_then(|t| t.refresh_before_expiry.as_deref()),
        DEFAULT_REFRESH_BEFORE_EXPIRY,
    );
    if refresh_before_expiry >= Duration::from_secs(TOKEN_LIFETIME_SECS) {
        c.problem(
            "token.refresh_before_expiry",
            format!(
                "must be shorter than a token's life ({TOKEN_LIFETIME_SECS} s), or every token would be refreshed as soon as it arrives. Set it below 2h, e.g. {DEFAULT_REFRESH_BEFORE_EXPIRY} (the default)"
            ),
        );
    }
    let token = token_bounds(&mut c, file.token.as_ref(), refresh_before_expiry);

    let defaults_file = file.defaults.unwrap_or_default();
    let default_max_wait = parse_duration(DEFAULT_MAX_WAIT).expect("default is valid");
    let defaults = policy(
        &mut c,
        "defaults",
        &RoutePolicy::default(),
        defaults_file.policy(),
        &declared,
        default_max_wait,
    );
    // What a route's `on_limit: wait` without a `max_wait` of its own waits for (a problem in
    // `defaults.max_wait` is reported above).
    let routes_max_wait = defaults_file
        .max_wait
        .as_deref()
        .and_then(|m| parse_positive_duration(m).ok())
        .unwrap_or(default_max_wait);

    let routes = routes(
        &mut c,
        file.routes.unwrap_or_default(),
        &defaults,
        &declared,
        routes_max_wait,
    );
    let fleet = file.fleet.map(|f| fleet(&mut c, f));
    let shift_plans = match file.shift_plans {
        Some(plans) => shift_plans(&mut c, plans, &routes, &declared),
        None => Vec::new(),
    };
    let o = file.outlier.as_ref();
    let outlier = OutlierPolicy {
        consecutive_failures: match o.and_then(|o| o.consecutive_failures) {
            Some(0) => {
                c.problem(
                    "outlier.consecutive_failures",
                    "must be at least 1 (the default is 5)",
                );
                DEFAULT_CONSECUTIVE_FAILURES
            }
            Some(n) => n,
            None => DEFAULT_CONSECUTIVE_FAILURES,
        },
        base_ejection: c.duration(
            "outlier.base_ejection",
            o.and_then(|o| o.base_ejection.as_deref()),
            DEFAULT_BASE_EJECTION,
        ),
        max_ejection: c.duration(
            "outlier.max_ejection",
            o.and_then(|o| o.max_ejection.as_deref()),
            DEFAULT_MAX_EJECTION,
        ),
    };
    if outlier.base_ejection > outlier.max_ejection {
        c.problem(
            "outlier.base_ejection",
            "is longer than max_ejection; raise max_ejection or lower base_ejection",
        );
    }
    let h = file.health_check.as_ref();
    let health_check = HealthCheck {
        interval: c.duration(
            "health_check.interval",
            h.and_then(|h| h.interval.as_deref()),
            DEFAULT_HEALTH_CHECK_INTERVAL,
        ),
        timeout: c.duration(
            "health_check.timeout",
            h.and_then(|h| h.timeout.as_deref()),
            DEFAULT_HEALTH_CHECK_TIMEOUT,
        ),
    };

    let client = client_connections(&mut c, file.client.as_ref());

    match (listen, admin_listen) {
        (Some(listen), Some(admin_listen)) if c.problems.is_empty() => Ok(Config {
            listen,
            admin_listen,
            admin_hosts,
            upstreams,
            apps,
            token,
            defaults,
            routes,
            fleet,
            outlier,
            health_check,
            shift_plans,
            clients,
            client,
            source: source.map(Path::to_path_buf),
        }),
        _ => Err(c.problems),
    }
}

/// `token`'s gettoken bounds: `min_fetch_interval`, `min_refetch`, `max_fetches`.
fn token_bounds(
    c: &mut Check,
    file: Option<&FileToken>,
    refresh_before_expiry: Duration,
) -> TokenSettings {
    let min_fetch_interval = c.duration(
        "token.min_fetch_interval",
        file.and_then(|t| t.min_fetch_interval.as_deref()),
        DEFAULT_MIN_FETCH_INTERVAL,
    );
    let min_refetch = c.duration(
        "token.min_refetch",
        file.and_then(|t| t.min_refetch.as_deref()),
        DEFAULT_MIN_REFETCH,
    );
    if min_fetch_interval >= refresh_before_expiry {
        c.problem(
            "token.min_fetch_interval",
            format!(
                "must be shorter than refresh_before_expiry ({}s), or a token refreshed ahead could expire before the next fetch is allowed. Lower it, e.g. {DEFAULT_MIN_FETCH_INTERVAL} (the default)",
                refresh_before_expiry.as_secs()
            ),
        );
    }
    if min_refetch > min_fetch_interval {
        c.problem(
            "token.min_refetch",
            format!(
                "is longer than min_fetch_interval ({}s); it only shortens that wait for a rejected token. Lower it, e.g. {DEFAULT_MIN_REFETCH} (the default)",
                min_fetch_interval.as_secs()
            ),
        );
    }
    let fallback = parse_rate(DEFAULT_MAX_FETCHES).expect("the default is a valid rate");
    let max_fetches = match file.and_then(|t| t.max_fetches.as_deref()).map(parse_rate) {
        None => fallback,
        Some(Ok(rate)) => {
            let per_lifetime =
                u64::from(rate.count) * TOKEN_LIFETIME_SECS / rate.per.as_secs().max(1);
            if per_lifetime < MIN_FETCHES_PER_LIFETIME {
                c.problem(
                    "token.max_fetches",
                    format!(
                        "\"{rate}\" allows fewer than {MIN_FETCHES_PER_LIFETIME} gettoken per token lifetime ({TOKEN_LIFETIME_SECS} s), so tokens could not be renewed. Raise it, e.g. {DEFAULT_MAX_FETCHES} (the default)"
                    ),
                );
            }
            rate
        }
        Some(Err(e)) => {
            c.problem("token.max_fetches", e);
            fallback
        }
    };
    TokenSettings {
        refresh_before_expiry,
        min_fetch_interval,
        min_refetch,
        max_fetches,
    }
}

/// `client`: the app listener's timeouts and connection cap.
fn client_connections(c: &mut Check<'_>, f: Option<&FileClientConnections>) -> ClientConnections {
    let max_connections = match f.and_then(|f| f.max_connections) {
        Some(n) if n < 1 => {
            c.problem(
                "client.max_connections",
                "must be at least 1; leave it out to derive it from the descriptor limit",
            );
            None
        }
        Some(n) => Some(n as u64),
        None => None,
    };
    ClientConnections {
        header_timeout: c.duration(
            "client.header_timeout",
            f.and_then(|f| f.header_timeout.as_deref()),
            DEFAULT_HEADER_TIMEOUT,
        ),
        body_timeout: c.duration(
            "client.body_timeout",
            f.and_then(|f| f.body_timeout.as_deref()),
            DEFAULT_BODY_TIMEOUT,
        ),
        idle_timeout: c.duration(
            "client.idle_timeout",
            f.and_then(|f| f.idle_timeout.as_deref()),
            DEFAULT_IDLE_TIMEOUT,
        ),
        max_connections,
    }
}

/// Collects problems while building.
struct Check<'e> {
    problems: Vec<Problem>,
    env: &'e dyn Fn(&str) -> Option<String>,
    /// Directory relative paths are taken from.
    base_dir: Option<PathBuf>,
    secrets: Secrets,
}

impl Check<'_> {
    fn problem(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.into(),
            line: None,
            message: message.into(),
        });
    }

    /// A positive duration at `key`, or `default` when absent. On a problem, the default stands
    /// in so checking can go on.
    fn duration(&mut self, key: &str, value: Option<&str>, default: &str) -> Duration {
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

    fn listen(&mut self, key: &str, value: Option<&str>, default: &str) -> Option<SocketAddr> {
        let text = value.unwrap_or(default);
        match text.trim().parse::<SocketAddr>() {
            Ok(a) if a.port() == 0 => {
                self.problem(
                    key,
                    format!("{} has port 0, which would pick a random port nobody knows. Give a fixed port, e.g. \"{default}\"", quote(text)),
                );
                None
            }
            Ok(a) => Some(a),
            Err(_) => {
                self.problem(
                    key,
                    format!(
                        "{} is not IP:port. Write an IP address and a port, e.g. \"{default}\" (host names are not resolved; use [::1]:8080 for IPv6)",
                        quote(text)
                    ),
                );
                None
            }
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        match &self.base_dir {
            Some(dir) if Path::new(p).is_relative() => dir.join(p),
            _ => PathBuf::from(p),
        }
    }
}

/// `admin_hosts`: host names (or IP addresses) without scheme, port or path, lower-cased.
fn admin_hosts(c: &mut Check, hosts: Option<&[String]>) -> Vec<String> {
    let mut out = Vec::new();
    for (i, h) in hosts.unwrap_or_default().iter().enumerate() {
        let key = format!("admin_hosts[{i}]");
        let name = h.trim().trim_end_matches('.');
        let ip = name.trim_start_matches('[').trim_end_matches(']');
        let valid = ip.parse::<std::net::IpAddr>().is_ok()
            || (!name.is_empty()
                && name.len() <= 253
                && name.split('.').all(|l| {
                    !l.is_empty()
                        && l.chars()
                            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
                }));
        if valid {
            out.push(ip.to_ascii_lowercase());
        } else {
            c.problem(
                key,
                format!("{} is not a host name. Give the name alone, as clients put it in the Host header without its port, e.g. wecom-sidecar.monitoring.svc", quote(h)),
            );
        }
    }
    out
}

/// Names declared in the file (upstreams, route paths), for lookups that stay fast however
/// many there are, and for messages that list a few of them.
struct Names {
    list: Vec<String>,
    set: std::collections::HashSet<String>,
}

/// How many names a message lists before it says how many more there are.
const NAMES_SHOWN: usize = 10;

impl Names {
    fn new(list: Vec<String>) -> Self {
        let set = list.iter().cloned().collect();
        Names { list, set }
    }
    fn contains(&self, name: &str) -> bool {
        self.set.contains(name)
    }
    /// `a, b, c`, or the first [`NAMES_SHOWN`] and `and N more`.
    fn shown(&self) -> String {
        let mut s = self.list[..self.list.len().min(NAMES_SHOWN)].join(", ");
        if self.list.len() > NAMES_SHOWN {
            s.push_str(&format!(" and {} more", self.list.len() - NAMES_SHOWN));
        }
        s
    }
}

/// Names of apps and upstreams: `[A-Za-z0-9_.-]+`.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// Environment variable names: `[A-Za-z_][A-Za-z0-9_]*`.
fn is_env_name(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether a `secret_env` value looks like a pasted secret rather than a variable name (long,
/// mixed case, digits). Such a value is never echoed.
fn looks_like_secret(s: &str) -> bool {
    s.len() >= 24
        && s.chars().any(|c| c.is_ascii_lowercase())
        && s.chars().any(|c| c.is_ascii_uppercase())
        && s.chars().any(|c| c.is_ascii_digit())
}

/// A URL for messages, with any `user:password@` hidden.
fn show_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

fn upstreams(c: &mut Check, map: Option<OrderedMap<FileUpstream>>) -> Vec<Upstream> {
    let Some(map) = map else {
        c.problem(
            "upstreams",
            format!("is missing. Add at least `upstreams: {{ {PRIMARY_UPSTREAM}: {{ url: \"https://qyapi.weixin.qq.com\" }} }}`"),
        );
        return Vec::new();
    };
    if !map.keys().any(|k| k == PRIMARY_UPSTREAM) {
        c.problem(
            format!("upstreams.{PRIMARY_UPSTREAM}"),
            format!(
                "is missing. Every config needs an upstream named {PRIMARY_UPSTREAM} (it takes the traffic no split sends elsewhere and issues tokens): add `{PRIMARY_UPSTREAM}: {{ url: \"https://qyapi.weixin.qq.com\" }}` under upstreams"
            ),
        );
    }
    let mut out = Vec::new();
    for (name, u) in map {
        let key = format!("upstreams.{name}");
        if !is_name(&name) {
            c.problem(
                &key,
                format!(
                    "{} is not a valid upstream name. Use letters, digits and _ . - only",
                    quote(&name)
                ),
            );
        }
        let connect_timeout = c.duration(
            &format!("{key}.connect_timeout"),
            u.connect_timeout.as_deref(),
            DEFAULT_CONNECT_TIMEOUT,
        );
        let timeout = c.duration(
            &format!("{key}.timeout"),
            u.timeout.as_deref(),
            DEFAULT_TIMEOUT,
        );
        let ca_file = u
            .ca_file
            .as_deref()
            .map(|p| ca_file(c, &format!("{key}.ca_file"), p));
        if let Some(parsed) = upstream_url(c, &format!("{key}.url"), &u.url) {
            let tokens = match u.tokens.as_deref() {
                None | Some("shared") => TokenRealm::Shared,
                Some("own") => TokenRealm::Own,
                Some(other) => {
                    c.problem(
                        format!("{key}.tokens"),
                        format!("{} is not a choice. Use shared (the same WeCom behind another address: primary's tokens work) or own (a deployment that issues its own tokens)", quote(other)),
                    );
                    TokenRealm::Shared
                }
            };
            if name == "primary" && tokens == TokenRealm::Own {
                c.problem(
                    format!("{key}.tokens"),
                    "primary issues the shared tokens; own only applies to other upstreams",
                );
            }
            out.push(Upstream {
                tokens,
                name: UpstreamName(Arc::from(name.as_str())),
                scheme: parsed.scheme,
                host: parsed.host,
                port: parsed.port,
                base_path: parsed.base_path,
                connect_timeout,
                timeout,
                ca_file,
            });
        }
    }
    out
}

/// `ca_file`: a regular file under [`MAX_FILE_BYTES`] holding PEM certificates only, at least
/// one, each one rustls takes as a trust root. Anything else (a text file, an empty one, a
/// private key) used to pass here and then fail every TLS handshake with no word of ca_file.
fn ca_file(c: &mut Check, key: &str, written: &str) -> PathBuf {
    let path = c.path(written);
    let shown = show_path(written, &path);
    let fix = "Point it at a PEM bundle of CA certificates (-----BEGIN CERTIFICATE-----), or drop ca_file to use the system roots";
    if written.trim().is_empty() {
        c.problem(key, format!("is empty. {fix}"));
        return path;
    }
    if c.secrets == Secrets::Skip {
        return path;
    }
    let bytes = match read_capped(&path, MAX_FILE_BYTES) {
        Ok(b) => b,
        Err(e) => {
            c.problem(key, format!("{shown} cannot be read ({e}). {fix}"));
            return path;
        }
    };
    if let Err(why) = pem_certificates(&bytes) {
        c.problem(key, format!("{shown} {why} (contents not shown). {fix}"));
    }
    path
}

/// How many certificates a PEM bundle holds, or why it is not one a TLS client can trust.
fn pem_certificates(bytes: &[u8]) -> Result<usize, String> {
    use rustls_pki_types::pem::{self, SectionKind};
    let mut rest = bytes;
    let mut certs = 0;
    loop {
        match pem::from_buf(&mut rest) {
            Ok(Some((SectionKind::Certificate, der))) => {
                let mut store = pingora::tls::RootCertStore::empty();
                if store.add(pingora::tls::CertificateDer::from(der)).is_err() {
                    return Err(format!(
                        "holds a certificate (number {}) that is not a valid X.509 CA certificate",
                        certs + 1
                    ));
                }
                certs += 1;
            }
            Ok(Some((
                SectionKind::RsaPrivateKey | SectionKind::PrivateKey | SectionKind::EcPrivateKey,
                _,
            ))) => return Err("holds a private key, not a CA certificate".into()),
            Ok(Some(_)) => {
                return Err(
                    "holds PEM sections that are not certificates (a CRL, CSR or public key)"
                        .into(),
                )
            }
            Ok(None) if certs == 0 => {
                return Err(if bytes.iter().all(u8::is_ascii_whitespace) {
                    "is empty".into()
                } else {
                    "holds no PEM certificate".into()
                })
            }
            Ok(None) => return Ok(certs),
            Err(_) => return Err("is not valid PEM".into()),
        }
    }
}

/// A file path for messages: as resolved, unless what was written looks like a pasted secret
/// (no `/`, long, mixed case and digits), which is quoted like any wrong value.
fn show_path(written: &str, resolved: &Path) -> String {
    if !written.contains('/') && looks_like_secret(written) {
        quote(written)
    } else {
        resolved.display().to_string()
    }
}

struct ParsedUrl {
    scheme: Scheme,
    host: String,
    port: u16,
    base_path: String,
}

fn upstream_url(c: &mut Check, key: &str, url: &str) -> Option<ParsedUrl> {
    let shown = quote(&show_url(url));
    let example = "e.g. https://qyapi.weixin.qq.com or http://10.0.0.5:8080/wecom";
    let Ok(uri) = url.trim().parse::<http::Uri>() else {
        c.problem(
            key,
            format!("{shown} is not a URL. Write scheme://host[:port][/path], {example}"),
        );
        return None;
    };
    let scheme = match uri.scheme_str() {
        Some("https") => Scheme::Https,
        Some("http") => Scheme::Http,
        Some(other) => {
            c.problem(key, format!("{shown} has scheme {}. Use https:// (or http:// on private networks and in tests), {example}", quote(other)));
            return None;
        }
        None => {
            c.problem(key, format!("{shown} has no scheme. Start it with https:// (or http:// on private networks and in tests), {example}"));
            return None;
        }
    };
    let Some(host) = uri.host().filter(|h| !h.is_empty()) else {
        c.problem(
            key,
            format!("{shown} has no host. Write scheme://host[:port][/path], {example}"),
        );
        return None;
    };
    let mut ok = true;
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        c.problem(key, format!("{shown} carries user:password@, which WeCom never uses and which would put a secret in this file. Drop it"));
        ok = false;
    }
    if uri.query().is_some() || url.contains('#') {
        c.problem(key, format!("{shown} has a query or fragment. Drop everything from ? or #: give scheme, host, optional port and path prefix only"));
        ok = false;
    }
    if uri.port_u16() == Some(0) {
        c.problem(
            key,
            format!("{shown} has port 0. Give the real port or drop it for the scheme's default"),
        );
        ok = false;
    }
    let port = uri.port_u16().unwrap_or(match scheme {
        Scheme::Https => 443,
        Scheme::Http => 80,
    });
    ok.then(|| ParsedUrl {
        scheme,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port,
        base_path: uri.path().trim_end_matches('/').to_string(),
    })
}

fn apps(c: &mut Check, apps: Option<Vec<FileApp>>) -> Vec<App> {
    let hint = "Add one entry per WeCom app, e.g. `apps: [{ name: hr-bot, corp_id: ww..., secret_env: WECOM_HR_SECRET, default: true }]`";
    let apps = match apps {
        None => {
            c.problem("apps", format!("is missing. {hint}"));
            return Vec::new();
        }
        Some(a) if a.is_empty() => {
            c.problem("apps", format!("is empty. {hint}"));
            return Vec::new();
        }
        Some(a) => a,
    };
    let mut out: Vec<App> = Vec::new();
    let mut names: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut first_default: Option<(usize, &str)> = None;
    for (i, a) in apps.iter().enumerate() {
        let key = format!("apps[{i}]");
        if a.name.is_empty() {
            c.problem(format!("{key}.name"), "is empty. Name the app with letters, digits and _ . - (apps send it as X-WeCom-App), e.g. hr-bot");
        } else if !is_name(&a.name) {
            c.problem(
                format!("{key}.name"),
                format!("{} is not a valid app name. Use letters, digits and _ . - only (apps send it as X-WeCom-App), e.g. hr-bot", quote(&a.name)),
            );
        }
        if let Some(&j) = names.get(a.name.as_str()) {
            c.problem(
                format!("{key}.name"),
                format!(
                    "{} is already the name of apps[{j}]. App names must be unique: rename one",
                    quote(&a.name)
                ),
            );
        }
        names.entry(&a.name).or_insert(i);
        let corp_id = a.corp_id.trim();
        if corp_id.is_empty() {
            c.problem(format!("{key}.corp_id"), "is empty. Copy the corp id (ww...) from the WeCom admin console (My Company > Company Info)");
        } else if corp_id
            .chars()
            .any(|ch| ch.is_whitespace() || ch.is_control())
        {
            c.problem(
                format!("{key}.corp_id"),
                "contains spaces. Copy the corp id (ww...) exactly as the admin console shows it",
            );
        }
        if let Some(id) = a.agent_id.filter(|id| *id <= 0) {
            c.problem(
                format!("{key}.agent_id"),
                format!("{id} is not an AgentId. Give the positive AgentId the admin console shows for the app, or drop agent_id"),
            );
        }
        if a.default {
            match first_default {
                Some((j, first)) => c.problem(
                    format!("{key}.default"),
                    format!("{} is marked default, but {} (apps[{j}]) already is. Keep default: true on one app only", quote(&a.name), quote(first)),
                ),
                None => first_default = Some((i, &a.name)),
            }
        }
        let secret = secret_from(
            c,
            &key,
            a.secret_env.as_deref(),
            a.secret_file.as_deref(),
            &APP_SECRET,
        );
        if let Some((value, source)) = secret {
            out.push(App {
                name: AppName(Arc::from(a.name.as_str())),
                corp_id: corp_id.to_string(),
                agent_id: a.agent_id,
                secret: Secret::new(value),
                secret_source: source,
                default: a.default,
            });
        }
    }
    out
}

/// Shortest client key accepted: HMAC-SHA256 keys shorter than its 32-byte output only make
/// guessing easier.
const MIN_CLIENT_KEY_LEN: usize = 32;

fn clients(
    c: &mut Check,
    clients: Option<Vec<FileClient>>,
    apps: &std::collections::HashSet<String>,
) -> Vec<Client> {
    let Some(clients) = clients else {
        return Vec::new();
    };
    if clients.is_empty() {
        c.problem("clients", "is empty. Drop the key to take unsigned calls, or add one entry per calling app, e.g. `clients: [{ name: billing, key_env: BILLING_SIDECAR_KEY, apps: [hr-bot] }]`");
        return Vec::new();
    }
    let mut out: Vec<Client> = Vec::new();
    let mut names: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    // Key → the client holding it.
    let mut keys: std::collections::HashMap<String, Arc<str>> = std::collections::HashMap::new();
    for (i, f) in clients.iter().enumerate() {
        let key = format!("clients[{i}]");
        if !is_name(&f.name) {
            c.problem(format!("{key}.name"), format!("{} is not a valid client name. Use letters, digits and _ . - only (clients send it as X-Sidecar-Client)", quote(&f.name)));
        } else if let Some(&j) = names.get(f.name.as_str()) {
            c.problem(format!("{key}.name"), format!("{} is already the name of clients[{j}]. Client names must be unique: rename one", quote(&f.name)));
        }
        names.entry(&f.name).or_insert(i);
        let allowed = if f.apps.iter().any(|a| a == "*") {
            None
        } else {
            if f.apps.is_empty() {
                c.problem(
                    format!("{key}.apps"),
                    "is empty. List the apps this client may use, or \"*\" for all",
                );
            }
            let mut allowed = Vec::new();
            for (j, a) in f.apps.iter().enumerate() {
                match apps.get(a) {
                    Some(name) => allowed.push(AppName(Arc::from(name.as_str()))),
                    None => c.problem(
                        format!("{key}.apps[{j}]"),
                        format!(
                            "{} is not one of the apps. Name an app from apps[], or \"*\" for all",
                            quote(a)
                        ),
                    ),
                }
            }
            Some(allowed)
        };
        let secret = secret_from(
            c,
            &key,
            f.key_env.as_deref(),
            f.key_file.as_deref(),
            &CLIENT_KEY,
        );
        let Some((value, source)) = secret else {
            continue;
        };
        let field = if f.key_env.is_some() {
            "key_env"
        } else {
            "key_file"
        };
        if c.secrets == Secrets::Skip {
            // Length and uniqueness are properties of the keys, which were not read.
        } else if value.len() < MIN_CLIENT_KEY_LEN {
            c.problem(format!("{key}.{field}"), format!("{source} holds a key shorter than {MIN_CLIENT_KEY_LEN} characters (value not shown). Make one with `openssl rand -hex 32`"));
            continue;
        } else if let Some(other) = keys.get(&value) {
            c.problem(format!("{key}.{field}"), format!("{source} holds the same key as client \"{other}\" (value not shown). Give each client a key of its own"));
            continue;
        }
        keys.insert(value.clone(), Arc::from(f.name.as_str()));
        out.push(Client {
            name: Arc::from(f.name.as_str()),
            key: Secret::new(value),
            key_source: source,
            apps: allowed,
        });
    }
    out
}

/// What a secret read from the environment or a file is, for the messages about it.
struct SecretKind {
    /// "app secret", "client key".
    what: &'static str,
    example_env: &'static str,
    example_path: &'static str,
    /// Where a good value comes from.
    source_hint: &'static str,
    /// What to do if it was pasted into the file.
    leaked_hint: &'static str,
    /// The keys naming a variable and a file.
    env_key: &'static str,
    file_key: &'static str,
}

const APP_SECRET: SecretKind = SecretKind {
    what: "app secret",
    example_env: "WECOM_HR_SECRET",
    example_path: "/run/secrets/wecom-hr",
    source_hint: "WeCom admin console > the app > Secret",
    leaked_hint: "rotate it in the WeCom admin console",
    env_key: "secret_env",
    file_key: "secret_file",
};

const CLIENT_KEY: SecretKind = SecretKind {
    what: "client key",
    example_env: "BILLING_SIDECAR_KEY",
    example_path: "/run/secrets/sidecar-billing-key",
    source_hint: "make one with `openssl rand -hex 32`",
    leaked_hint: "make a new key",
    env_key: "key_env",
    file_key: "key_file",
};

/// Reads a secret from exactly one of its environment variable or file keys (of the entry at
/// `key`); the value and where it came from.
fn secret_from(
    c: &mut Check,
    key: &str,
    env: Option<&str>,
    file: Option<&str>,
    kind: &SecretKind,
) -> Option<(String, String)> {
    let (env_key, file_key) = (kind.env_key, kind.file_key);
    match (env, file) {
        (Some(_), Some(_)) => {
            c.problem(
                format!("{key}.{env_key}"),
                format!(
                    "and {file_key} are both set. Keep exactly one: drop {env_key} or {file_key}"
                ),
            );
            None
        }
        (None, None) => {
            c.problem(
                format!("{key}.{env_key}"),
                format!("is missing. Set {env_key} (the name of an environment variable holding the {}) or {file_key} (a file holding it); {}s never go in this file", kind.what, kind.what),
            );
            None
        }
        (Some(var), None) => secret_from_env(c, &format!("{key}.{env_key}"), var, kind),
        (None, Some(path)) => secret_from_file(c, &format!("{key}.{file_key}"), path, kind),
    }
}

/// Trailing whitespace (the newline an editor or `echo` adds) is dropped; whitespace anywhere
/// else means the wrong value and is refused. `what` names the variable or file, never the value.
fn clean_secret(
    c: &mut Check,
    key: &str,
    raw: &str,
    what: &str,
    kind: &SecretKind,
) -> Option<String> {
    let value = raw.trim_end();
    if value.is_empty() {
        c.problem(
            key,
            format!(
                "{what} is empty. Put the {} there ({})",
                kind.what, kind.source_hint
            ),
        );
        return None;
    }
    if value
        .chars()
        .any(|ch| ch.is_whitespace() || ch.is_control())
    {
        c.problem(key, format!("{what} holds spaces or control characters (value not shown). A {} has none: put it alone there", kind.what));
        return None;
    }
    Some(value.to_string())
}

fn secret_from_env(
    c: &mut Check,
    key: &str,
    var: &str,
    kind: &SecretKind,
) -> Option<(String, String)> {
    let (thing, example) = (kind.what, kind.example_env);
    if var.is_empty() {
        c.problem(key, format!("is empty. Give the NAME of an environment variable holding the {thing}, e.g. {example}"));
        return None;
    }
    if !is_env_name(var) || looks_like_secret(var) {
        // Possibly the secret itself, pasted in: never echo it.
        c.problem(key, format!("is not an environment variable name (value not shown). Give the NAME of a variable holding the {thing}, e.g. {example}; if you pasted the {thing} itself here, remove it from the file and {}", kind.leaked_hint));
        return None;
    }
    if c.secrets == Secrets::Skip {
        return Some((NOT_READ.to_string(), format!("env {var}")));
    }
    match (c.env)(var) {
        None => {
            c.problem(key, format!("environment variable {var} is not set. Export it with the {thing} before starting, or use {}", kind.file_key));
            None
        }
        Some(raw) => {
            let value = clean_secret(c, key, &raw, &format!("environment variable {var}"), kind)?;
            Some((value, format!("env {var}")))
        }
    }
}

fn secret_from_file(
    c: &mut Check,
    key: &str,
    path: &str,
    kind: &SecretKind,
) -> Option<(String, String)> {
    let thing = kind.what;
    if path.trim().is_empty() {
        c.problem(
            key,
            format!(
                "is empty. Give the path of a file holding the {thing}, e.g. {}",
                kind.example_path
            ),
        );
        return None;
    }
    let p = c.path(path);
    let shown = show_path(path, &p);
    if c.secrets == Secrets::Skip {
        return Some((NOT_READ.to_string(), format!("file {shown}")));
    }
    let bytes = match read_capped(&p, MAX_SECRET_BYTES) {
        Ok(b) => b,
        Err(e @ ReadError::TooLarge(_)) => {
            c.problem(key, format!("{shown} is {e} (contents not shown). It must hold only the {thing}: check the path"));
            return None;
        }
        Err(e) => {
            c.problem(key, format!("{shown} cannot be read ({e}). Mount the secret there, fix the path (relative paths start at the config file's directory), or use {}", kind.env_key));
            return None;
        }
    };
    let Ok(text) = String::from_utf8(bytes) else {
        c.problem(key, format!("{shown} is not UTF-8 text (contents not shown). It must hold only the {thing}: check the path"));
        return None;
    };
    let value = clean_secret(c, key, &text, &format!("file {shown}"), kind)?;
    Some((value, format!("file {shown}")))
}

/// `defaults` as they are when the file sets none.
impl Default for RoutePolicy {
    fn default() -> Self {
        let d = |text| parse_duration(text).expect("defaults are valid durations");
        RoutePolicy {
            deadline: d(DEFAULT_DEADLINE),
            retry: RetryPolicy {
                attempts: DEFAULT_RETRY_ATTEMPTS,
                backoff_base: d(DEFAULT_BACKOFF_BASE),
                backoff_max: d(DEFAULT_BACKOFF_MAX),
            },
            split: Split(
                DEFAULT_SPLIT
                    .iter()
                    .map(|(name, w)| (UpstreamName(Arc::from(*name)), *w))
                    .collect(),
            ),
            quota: DEFAULT_QUOTA
                .iter()
                .map(|q| parse_rate(q).expect("defaults are valid rates"))
                .collect(),
            idempotent: DEFAULT_IDEMPOTENT,
            allow_debug: DEFAULT_ALLOW_DEBUG,
            on_limit: OnLimit::Reject,
            quota_status: DEFAULT_QUOTA_STATUS,
            recipient_cap: DEFAULT_RECIPIENT_CAP,
            dedupe: DEFAULT_DEDUPE,
            duplicate_check_interval: d(DEFAULT_DUPLICATE_CHECK_INTERVAL),
        }
    }
}

/// `over` with the keys `k` sets applied; `key` is `defaults` or `routes[i]`.
fn policy(
    c: &mut Check,
    key: &str,
    over: &RoutePolicy,
    k: FilePolicyRef,
    upstreams: &Names,
    base_max_wait: Duration,
) -> RoutePolicy {
    let mut p = over.clone();
    if k.deadline.is_some() {
        p.deadline = c.duration(&format!("{key}.deadline"), k.deadline, DEFAULT_DEADLINE);
    }
    if let Some(r) = k.retry {
        retry(c, &format!("{key}.retry"), r, &mut p.retry);
    }
    if let Some(split) = k.split {
        if let Some(s) = self::split(c, &format!("{key}.split"), split, upstreams) {
            p.split = s;
        }
    }
    if let Some(q) = k.quota {
        p.quota = quota(c, &format!("{key}.quota"), q);
    }
    if let Some(i) = k.idempotent {
        p.idempotent = Some(i);
    }
    if let Some(d) = k.allow_debug {
        p.allow_debug = d;
    }
    on_limit(c, key, &k, &mut p, base_max_wait);
    if let Some(s) = k.quota_status {
        if QUOTA_STATUSES.contains(&s) {
            p.quota_status = s;
        } else {
            c.problem(
                format!("{key}.quota_status"),
                format!(
                    "{s} is not allowed. Use 200 (WeCom's own way: errcode 45009 in a 200) or 429"
                ),
            );
        }
    }
    if let Some(r) = k.recipient_cap {
        p.recipient_cap = r;
    }
    if let Some(d) = k.dedupe {
        p.dedupe = d;
    }
    if k.duplicate_check_interval.is_some() {
        let ikey = format!("{key}.duplicate_check_interval");
        let d = c.duration(
            &ikey,
            k.duplicate_check_interval,
            DEFAULT_DUPLICATE_CHECK_INTERVAL,
        );
        if d.as_secs() > MAX_DUPLICATE_CHECK_INTERVAL_SECS {
            c.problem(
                ikey,
                format!("is longer than WeCom accepts ({MAX_DUPLICATE_CHECK_INTERVAL_SECS} s). Set 4h or less; the default is {DEFAULT_DUPLICATE_CHECK_INTERVAL}"),
            );
        } else if d < Duration::from_secs(1) {
            c.problem(
                ikey,
                format!("is shorter than WeCom accepts (1 s, counted in whole seconds). Set 1s to 4h; the default is {DEFAULT_DUPLICATE_CHECK_INTERVAL}"),
            );
        } else {
            p.duplicate_check_interval = d;
        }
    }
    p
}

fn retry(c: &mut Check, key: &str, r: &FileRetry, p: &mut RetryPolicy) {
    if let Some(a) = r.attempts {
        if (MIN_RETRY_ATTEMPTS..=MAX_RETRY_ATTEMPTS).contains(&a) {
            p.attempts = a;
        } else {
            c.problem(
                format!("{key}.attempts"),
                format!("{a} is out of range. Attempts count the first try: set {MIN_RETRY_ATTEMPTS} (never retry) to {MAX_RETRY_ATTEMPTS}"),
            );
        }
    }
    if r.backoff_base.is_some() {
        p.backoff_base = c.duration(
            &format!("{key}.backoff_base"),
            r.backoff_base.as_deref(),
            DEFAULT_BACKOFF_BASE,
        );
    }
    if r.backoff_max.is_some() {
        p.backoff_max = c.duration(
            &format!("{key}.backoff_max"),
            r.backoff_max.as_deref(),
            DEFAULT_BACKOFF_MAX,
        );
    }
    // Checked where either is set, so a bad pair in `defaults` is not reported again at every
    // route that sets only `attempts`.
    let set_here = r.backoff_base.is_some() || r.backoff_max.is_some();
    if set_here && p.backoff_base > p.backoff_max {
        c.problem(
            format!("{key}.backoff_base"),
            format!(
                "({:?}) is longer than backoff_max ({:?}). Lower backoff_base or raise backoff_max",
                p.backoff_base, p.backoff_max
            ),
        );
    }
}

fn split(c: &mut Check, key: &str, split: &OrderedMap<i64>, upstreams: &Names) -> Option<Split> {
    if split.is_empty() {
        c.problem(
            key,
            format!("is empty. Give weights adding up to {SPLIT_TOTAL}, e.g. {{ {PRIMARY_UPSTREAM}: 90, standby: 10 }}, or drop split to inherit it"),
        );
        return None;
    }
    let mut members = Vec::new();
    let mut sum: i64 = 0;
    let mut ok = true;
    for (name, &w) in split.iter() {
        let wkey = format!("{key}.{name}");
        if !upstreams.contains(name) {
            c.problem(
                &wkey,
                format!(
                    "names no upstream (declared: {}). Drop it from the split or declare upstreams.{name}",
                    upstreams.shown()
                ),
            );
            ok = false;
        }
        match u32::try_from(w).ok().filter(|w| *w <= SPLIT_TOTAL) {
            Some(w) => {
                sum += i64::from(w);
                members.push((UpstreamName(Arc::from(name)), w));
            }
            None => {
                c.problem(
                    &wkey,
                    format!("weight {w} is out of range. Use a whole number from 0 (standby only) to {SPLIT_TOTAL}"),
                );
                // A sum of out-of-range weights says nothing more.
                return None;
            }
        }
    }
    if sum != i64::from(SPLIT_TOTAL) {
        c.problem(
            key,
            format!("weights add up to {sum}. Make them add up to exactly {SPLIT_TOTAL}, e.g. {{ {PRIMARY_UPSTREAM}: 90, standby: 10 }} (a weight of 0 keeps an upstream as a pure standby)"),
        );
        ok = false;
    }
    ok.then_some(Split(members))
}

fn quota(c: &mut Check, key: &str, rates: &[String]) -> Vec<Rate> {
    // (index in the file, rate)
    let mut out: Vec<(usize, Rate)> = Vec::new();
    for (i, text) in rates.iter().enumerate() {
        match parse_rate(text) {
            Ok(rate) => {
                if let Some((j, earlier)) = out.iter().find(|(_, r)| r.per == rate.per) {
                    c.problem(
                        format!("{key}[{i}]"),
                        format!("{} counts over the same period as quota[{j}] ({earlier}). Keep one limit per period", quote(text)),
                    );
                }
                out.push((i, rate));
            }
            Err(e) => c.problem(format!("{key}[{i}]"), e),
        }
    }
    out.into_iter().map(|(_, r)| r).collect()
}

/// `on_limit` and `max_wait`. A `wait` without its own `max_wait` takes the inherited one, else
/// `defaults.max_wait`, else the default. `defaults` may set `max_wait` while rejecting (for
/// routes that choose `wait`); a route that rejects may not.
fn on_limit(
    c: &mut Check,
    key: &str,
    k: &FilePolicyRef,
    p: &mut RoutePolicy,
    base_max_wait: Duration,
) {
    let inherited_wait = match p.on_limit {
        OnLimit::Wait { max_wait } => Some(max_wait),
        OnLimit::Reject => None,
    };
    let max_wait = match k.max_wait {
        Some(_) => c.duration(&format!("{key}.max_wait"), k.max_wait, DEFAULT_MAX_WAIT),
        None => inherited_wait.unwrap_or(base_max_wait),
    };
    let rejects = match k.on_limit {
        None if inherited_wait.is_some() => {
            p.on_limit = OnLimit::Wait { max_wait };
            false
        }
        None => true,
        Some("reject") => {
            p.on_limit = OnLimit::Reject;
            true
        }
        Some("wait") => {
            p.on_limit = OnLimit::Wait { max_wait };
            false
        }
        Some(other) => {
            c.problem(
                format!("{key}.on_limit"),
                format!("{} is not a choice. Use reject (answer 45009 at once, the default) or wait (queue for a slot up to max_wait)", quote(other)),
            );
            false
        }
    };
    if rejects && k.max_wait.is_some() && key != "defaults" {
        c.problem(
            format!("{key}.max_wait"),
            "only applies with on_limit: wait, and this route rejects. Set on_limit: wait or drop max_wait",
        );
    }
}

fn routes(
    c: &mut Check,
    routes: Vec<FileRoute>,
    defaults: &RoutePolicy,
    upstreams: &Names,
    max_wait: Duration,
) -> Vec<Route> {
    let mut seen = Shadows::default();
    let mut out = Vec::new();
    for (i, r) in routes.iter().enumerate() {
        let key = format!("routes[{i}]");
        let path = route_path(c, &format!("{key}.path"), &r.path);
        if let Some(p) = &path {
            match seen.check_and_add(i, p) {
                None => {}
                Some(Shadow::Same(j)) => c.problem(
                    format!("{key}.path"),
                    format!("{} is the same path as routes[{j}], and the first match wins, so this route would never apply. Drop it or merge its keys into routes[{j}]", quote(&r.path)),
                ),
                Some(Shadow::Covered(j)) => c.problem(
                    format!("{key}.path"),
                    format!("{} is covered by routes[{j}] ({}), and the first match wins, so this route would never apply. Move it above routes[{j}] or drop it", quote(&r.path), quote(&routes[j].path)),
                ),
            }
        }
        if let Some(api) = &r.api {
            let valid = !api.is_empty()
                && api
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "_/.-".contains(ch));
            if !valid {
                c.problem(
                    format!("{key}.api"),
                    format!("{} is not a valid metric label. Use letters, digits and _ / . - (e.g. message/send), or drop api to derive it from the path", quote(api)),
                );
            }
        }
        let policy = policy(c, &key, defaults, r.policy(), upstreams, max_wait);
        if let Some(path) = path {
            out.push(Route {
                path,
                api: r.api.clone(),
                policy,
            });
        }
    }
    out
}

/// Why a route can never apply: an earlier route (its index) has the same path or covers it.
#[derive(Debug, PartialEq, Eq)]
enum Shadow {
    Same(usize),
    Covered(usize),
}

/// The routes read so far, for telling whether the next one can ever match (first match
/// wins). Linear in the total length of the paths: comparing each route with every earlier
/// one made `--check` of 200,000 routes run for minutes.
#[derive(Default)]
struct Shadows {
    /// Exact paths → their first route.
    exact: std::collections::HashMap<String, usize>,
    /// Prefix paths that no earlier prefix covers → their route. Kept prefix-free (no key is
    /// a prefix of another), so the only key that can be a prefix of a path is the greatest
    /// key not above it.
    prefixes: std::collections::BTreeMap<String, usize>,
}

impl Shadows {
    /// The earlier prefix route whose prefix starts `s`, if any.
    fn prefix_of(&self, s: &str) -> Option<(&str, usize)> {
        let (k, j) = self
            .prefixes
            .range::<str, _>((Bound::Unbounded, Bound::Included(s)))
            .next_back()?;
        s.starts_with(k.as_str()).then_some((k.as_str(), *j))
    }

    fn check_and_add(&mut self, i: usize, p: &PathMatch) -> Option<Shadow> {
        match p {
            PathMatch::Exact(s) => {
                if let Some(&j) = self.exact.get(s) {
                    return Some(Shadow::Same(j));
                }
                self.exact.insert(s.clone(), i);
                self.prefix_of(s).map(|(_, j)| Shadow::Covered(j))
            }
            PathMatch::Prefix(s) => {
                if let Some((k, j)) = self.prefix_of(s) {
                    return Some(if k == s {
                        Shadow::Same(j)
                    } else {
                        Shadow::Covered(j)
                    });
                }
                // Longer prefixes this one covers stay reported where they were; later paths
                // they would cover are covered by this one as well.
                let covered: Vec<String> = self
                    .prefixes
                    .range::<str, _>((Bound::Included(s.as_str()), Bound::Unbounded))
                    .take_while(|(k, _)| k.starts_with(s.as_str()))
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in covered {
                    self.prefixes.remove(&k);
                }
                self.prefixes.insert(s.clone(), i);
                None
            }
        }
    }
}

fn route_path(c: &mut Check, key: &str, path: &str) -> Option<PathMatch> {
    let example = "e.g. /cgi-bin/message/send (exact) or /cgi-bin/user/* (prefix)";
    if !path.starts_with(ROUTE_PATH_PREFIX) {
        c.problem(key, format!("{} does not start with {ROUTE_PATH_PREFIX}. Routes match WeCom API paths, {example}", quote(path)));
        return None;
    }
    if path
        .chars()
        .any(|ch| ch.is_whitespace() || ch.is_control() || ch == '?' || ch == '#')
    {
        c.problem(
            key,
            format!(
                "{} holds spaces, ? or #. Give the path alone, without a query, {example}",
                quote(path)
            ),
        );
        return None;
    }
    match path.strip_suffix('*') {
        Some(prefix) if !prefix.contains('*') => Some(PathMatch::Prefix(prefix.to_string())),
        _ if path.contains('*') => {
            c.problem(key, format!("{} has a * that does not end it. A * may only end the path, for a prefix match, {example}", quote(path)));
            None
        }
        _ => Some(PathMatch::Exact(path.to_string())),
    }
}

fn fleet(c: &mut Check, f: FileFleet) -> Fleet {
    let url = match (&f.redis_url, &f.redis_url_env) {
        (Some(_), Some(_)) => {
            c.problem(
                "fleet.redis_url",
                "and redis_url_env are both set. Keep exactly one: drop redis_url or redis_url_env",
            );
            None
        }
        (None, None) => {
            c.problem("fleet.redis_url", "is missing. Set redis_url (e.g. redis://127.0.0.1:6379/0) or redis_url_env (the name of a variable holding the URL, when it carries a password), or drop the fleet section");
            None
        }
        (Some(u), None) => {
            let u = u.trim().to_string();
            if redis_password(&u) {
                c.problem("fleet.redis_url", "carries a password (URL not shown), and secrets never go in this file. Put the URL in an environment variable and name it in redis_url_env instead");
            }
            Some((u, "fleet.redis_url", None))
        }
        (None, Some(var)) if !is_env_name(var) => {
            c.problem("fleet.redis_url_env", "is not an environment variable name (value not shown). Give the NAME of a variable holding the Redis URL, e.g. WECOM_REDIS_URL");
            None
        }
        (None, Some(_)) if c.secrets == Secrets::Skip => None,
        (None, Some(var)) => match (c.env)(var).map(|v| v.trim().to_string()) {
            Some(v) if !v.is_empty() => Some((v, "fleet.redis_url_env", Some(var.as_str()))),
            Some(_) => {
                c.problem("fleet.redis_url_env", format!("environment variable {var} is empty. Export it with the Redis URL, e.g. rediss://:password@redis:6380/0"));
                None
            }
            None => {
                c.problem("fleet.redis_url_env", format!("environment variable {var} is not set. Export it with the Redis URL, e.g. rediss://:password@redis:6380/0"));
                None
            }
        },
    };
    if let Some((u, key, var)) = &url {
        let what = match var {
            Some(var) => format!("environment variable {var} holds a URL that"),
            None => "the URL (not shown)".to_string(),
        };
        let rest = u
            .strip_prefix("redis://")
            .or_else(|| u.strip_prefix("rediss://"));
        match rest {
            None => c.problem(*key, format!("{what} does not start with redis:// or rediss:// (TLS). Write e.g. redis://127.0.0.1:6379/0")),
            Some(rest) => {
                let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
                let host = authority.rsplit('@').next().unwrap_or("");
                if host.is_empty() || host.starts_with(':') {
                    c.problem(*key, format!("{what} has no host. Write e.g. redis://127.0.0.1:6379/0"));
                }
            }
        }
    }
    let key_prefix = f
        .key_prefix
        .unwrap_or_else(|| DEFAULT_KEY_PREFIX.to_string());
    if key_prefix.trim().is_empty() {
        c.problem(
            "fleet.key_prefix",
            format!("is empty. Sidecars sharing a Redis need a prefix for their keys, e.g. \"{DEFAULT_KEY_PREFIX}\" (the default)"),
        );
    }
    let size = f.size.unwrap_or(DEFAULT_FLEET_SIZE);
    if size == 0 {
        c.problem(
            "fleet.size",
            "must be at least 1: the number of sidecars sharing the limits (each keeps limit/size while Redis is down)",
        );
    }
    let mut share = Vec::new();
    let written = f
        .share
        .unwrap_or_else(|| DEFAULT_FLEET_SHARE.iter().map(|s| s.to_string()).collect());
    if written.is_empty() {
        c.problem(
            "fleet.share",
            "is empty. Share tokens, quotas or both (e.g. [tokens, quotas]), or drop the fleet section",
        );
    }
    for (i, s) in written.iter().enumerate() {
        match s.as_str() {
            "tokens" => share.push(Shared::Tokens),
            "quotas" => share.push(Shared::Quotas),
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
    let timeout = c.duration("fleet.timeout", f.timeout.as_deref(), DEFAULT_FLEET_TIMEOUT);
    if timeout > MAX_FLEET_TIMEOUT {
        c.problem(
            "fleet.timeout",
            format!("is over {}s: a call waits this long whenever Redis hangs. Use e.g. 250ms (the default), or 1s for a distant Redis", MAX_FLEET_TIMEOUT.as_secs()),
        );
    }
    Fleet {
        redis_url: Secret::new(url.map(|(u, _, _)| u).unwrap_or_default()),
        key_prefix,
        size: size.max(1),
        share,
        timeout,
    }
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

fn shift_plans(
    c: &mut Check,
    plans: OrderedMap<Vec<FilePlanStep>>,
    routes: &[Route],
    upstreams: &Names,
) -> Vec<ShiftPlan> {
    let known = Names::new(
        routes
            .iter()
            .map(|r| match &r.path {
                PathMatch::Exact(p) => p.clone(),
                PathMatch::Prefix(p) => format!("{p}*"),
            })
            .collect(),
    );
    let mut out = Vec::new();
    for (name, steps) in plans.iter() {
        let key = format!("shift_plans.{name}");
        if !is_name(name) {
            c.problem(
                &key,
                "a plan name uses letters, digits and _ . - only (it appears in admin URLs)",
            );
        }
        if steps.is_empty() {
            c.problem(
                &key,
                "has no steps; give at least one { routes, split, hold }",
            );
        }
        let mut out_steps = Vec::new();
        for (i, s) in steps.iter().enumerate() {
            let skey = format!("{key}[{i}]");
            if s.routes.is_empty() {
                c.problem(
                    format!("{skey}.routes"),
                    "is empty; name route paths as written in routes[].path, or defaults",
                );
            }
            for r in &s.routes {
                if r != "defaults" && !known.contains(r) {
                    c.problem(
                        format!("{skey}.routes"),
                        format!(
                            "{} is not a configured route path (configured: {}, or defaults)",
                            quote(r),
                            known.shown()
                        ),
                    );
                }
            }
            let split = split(c, &format!("{skey}.split"), &s.split, upstreams);
            let hold = c.duration(&format!("{skey}.hold"), Some(&s.hold), "1m");
            if let Some(rate) = s.max_error_rate {
                if !(0.0..=1.0).contains(&rate) {
                    c.problem(
                        format!("{skey}.max_error_rate"),
                        "is a share of calls from 0.0 to 1.0, e.g. 0.05 for 5 %",
                    );
                }
            }
            let max_p99 = s
                .max_p99
                .as_deref()
                .map(|p| c.duration(&format!("{skey}.max_p99"), Some(p), "2s"));
            if let Some(split) = split {
                out_steps.push(PlanStep {
                    routes: s.routes.clone(),
                    split,
                    hold,
                    max_error_rate: s.max_error_rate,
                    max_p99,
                });
            }
        }
        out.push(ShiftPlan {
            name: name.to_string(),
            steps: out_steps,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_credentials() {
        assert_eq!(show_url("https://u:p@h:1/x"), "https://***@h:1/x");
        assert_eq!(show_url("https://h/x@y"), "https://h/x@y");
        assert_eq!(show_url("nonsense"), "nonsense");
    }

    #[test]
    fn redis_passwords_are_spotted() {
        assert!(redis_password("redis://:pw@h:6379/0"));
        assert!(redis_password("rediss://user:pw@h"));
        assert!(!redis_password("redis://user@h"));
        assert!(!redis_password("redis://h:6379/0"));
        assert!(!redis_password("redis://h/0?x=a:b@c"));
    }

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
    fn route_paths() {
        let mut c = Check {
            problems: Vec::new(),
            env: &|_| None,
            base_dir: None,
            secrets: Secrets::Read,
        };
        assert_eq!(
            route_path(&mut c, "k", "/cgi-bin/user/*"),
            Some(PathMatch::Prefix("/cgi-bin/user/".into()))
        );
        assert_eq!(
            route_path(&mut c, "k", "/cgi-bin/*"),
            Some(PathMatch::Prefix("/cgi-bin/".into()))
        );
        assert_eq!(
            route_path(&mut c, "k", "/cgi-bin/message/send"),
            Some(PathMatch::Exact("/cgi-bin/message/send".into()))
        );
        assert!(c.problems.is_empty());
        for bad in [
            "/user/get",
            "cgi-bin/x",
            "/cgi-bin/*/get",
            "/cgi-bin/**",
            "/cgi-bin/a?b=1",
            "/cgi-bin/a b",
        ] {
            assert_eq!(route_path(&mut c, "k", bad), None, "{bad}");
        }
        assert_eq!(c.problems.len(), 6);
    }
}
