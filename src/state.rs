//! Shared state, the composition root: what lives for the whole process (`Shared`: metrics,
//! token cache, resolver, connection pools) and what is rebuilt from each config (`Runtime`:
//! upstreams, apps, routes), swapped atomically on reload so a call in flight keeps the
//! runtime it started with.
//!
//! Only the request pipeline (`proxy`) and the process wiring (`server`, `admin`, `main`) see
//! `Shared` whole. The domain modules never import this one: each background task is handed
//! the parts it uses, and reads the runtime in force through a trait of its own that
//! `Runtime` implements here (`token::refresher::Realms`, `upstream::probe::Probed`), as a
//! reload works through `reload::Reloadable`.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;

use crate::callback::Callbacks;
use crate::capacity::Capacity;
use crate::config::{ClientConnections, Config, HealthCheck, TokenSettings};
use crate::metrics::Metrics;
use crate::plans::Plans;
use crate::reload::{ConfigLoader, Reloadable, Reloads};
use crate::routing::RouteTable;
use crate::store::StoreError;
use crate::token::refresher::Realms;
use crate::token::{AppTokens, TokenSource, TokenStore};
use crate::upstream::health::HealthRegistry;
use crate::upstream::probe::Probed;
use crate::upstream::resolve::Resolver;
use crate::upstream::{Connectors, UpstreamRt};

/// Everything built from one config.
pub struct Runtime {
    pub config: Arc<Config>,
    /// Same order as `config.upstreams`; index 0 is not necessarily `primary`.
    pub upstreams: Vec<Arc<UpstreamRt>>,
    /// The upstream that issues tokens (`primary`).
    pub token_upstream: Arc<UpstreamRt>,
    /// The other `tokens: shared` upstreams, in config order: asked for tokens when
    /// `token_upstream` cannot be reached.
    pub token_standbys: Vec<Arc<UpstreamRt>>,
    /// Same order as `config.apps`: tokens issued by primary (shared by `tokens: shared`).
    pub apps: Vec<Arc<AppTokens>>,
    /// For each upstream with `tokens: own` (by index), its own tokens, in `config.apps` order.
    pub own_tokens: Vec<(usize, Vec<Arc<AppTokens>>)>,
    pub routes: RouteTable,
}

impl Runtime {
    /// Builds the runtime of `config`, keeping the token state of apps whose credentials did not
    /// change in `previous`.
    pub fn build(
        config: Config,
        connectors: &Connectors,
        health: &HealthRegistry,
        previous: Option<&Runtime>,
    ) -> Runtime {
        let upstreams: Vec<Arc<UpstreamRt>> = config
            .upstreams
            .iter()
            .map(|u| connectors.build(u, health))
            .collect();
        let primary = config
            .upstreams
            .iter()
            .position(|u| u.name.as_str() == "primary")
            .unwrap_or(0);
        // An app whose credentials did not change keeps its tokens and fetch history; the
        // rest of its settings (default, agent_id) are the new config's.
        let keep = |app: &crate::config::App, realm: Option<crate::config::UpstreamName>| {
            let old = previous.and_then(|p| {
                p.all_tokens().find(|old| {
                    old.app.name == app.name && old.key.realm == realm && old.same_credentials(app)
                })
            });
            match old {
                Some(old) if old.app == *app => old.clone(),
                Some(old) => Arc::new(old.with_settings(app.clone())),
                None => Arc::new(AppTokens::in_realm(app.clone(), realm)),
            }
        };
        let apps = config.apps.iter().map(|a| keep(a, None)).collect();
        let own_tokens = config
            .upstreams
            .iter()
            .enumerate()
            .filter(|(_, u)| u.tokens == crate::config::TokenRealm::Own)
            .map(|(i, u)| {
                (
                    i,
                    config
                        .apps
                        .iter()
                        .map(|a| keep(a, Some(u.name.clone())))
                        .collect(),
                )
            })
            .collect();
        crate::redact::learn_config(secrets_of(&config));
        let routes = RouteTable::new(&config.routes, &config.defaults, |name| {
            config
                .upstreams
                .iter()
                .position(|u| u.name.as_str() == name)
        });
        Runtime {
            token_upstream: upstreams[primary].clone(),
            token_standbys: upstreams
                .iter()
                .enumerate()
                .filter(|(i, u)| *i != primary && u.cfg.tokens == crate::config::TokenRealm::Shared)
                .map(|(_, u)| u.clone())
                .collect(),
            upstreams,
            apps,
            own_tokens,
            routes,
            config: Arc::new(config),
        }
    }

    /// Every app's token state, shared realm first, then each `tokens: own` upstream's.
    pub fn all_tokens(&self) -> impl Iterator<Item = &Arc<AppTokens>> {
        self.apps
            .iter()
            .chain(self.own_tokens.iter().flat_map(|(_, v)| v.iter()))
    }

    /// The token state and source for `app` on the upstream at `upstream` (its own realm, or
    /// the shared one).
    pub fn tokens_on<'a>(
        &'a self,
        resolver: &'a Resolver,
        app: &'a AppTokens,
        upstream: usize,
    ) -> (&'a AppTokens, TokenSource<'a>) {
        if let Some((_, own)) = self.own_tokens.iter().find(|(i, _)| *i == upstream) {
            if let Some(t) = own.iter().find(|t| t.app.name == app.app.name) {
                return (
                    t,
                    TokenSource {
                        upstream: &self.upstreams[upstream],
                        standbys: &[],
                        resolver,
                        bounds: &self.config.token,
                    },
                );
            }
        }
        let base = self.app(app.app.name.as_str()).map_or(app, |a| a.as_ref());
        (base, self.token_source(resolver))
    }

    pub fn app(&self, name: &str) -> Option<&Arc<AppTokens>> {
        self.apps.iter().find(|a| a.app.name.as_str() == name)
    }

    pub fn default_app(&self) -> Option<&Arc<AppTokens>> {
        self.apps.iter().find(|a| a.app.default)
    }

    /// Where the shared realm's tokens come from.
    pub fn token_source<'a>(&'a self, resolver: &'a Resolver) -> TokenSource<'a> {
        TokenSource {
            upstream: &self.token_upstream,
            standbys: &self.token_standbys,
            resolver,
            bounds: &self.config.token,
        }
    }
}

impl Realms for Runtime {
    fn bounds(&self) -> &TokenSettings {
        &self.config.token
    }

    fn token_states(&self) -> impl Iterator<Item = &Arc<AppTokens>> {
        self.all_tokens()
    }

    fn source_of<'a>(&'a self, resolver: &'a Resolver, tokens: &AppTokens) -> TokenSource<'a> {
        let own = tokens
            .key
            .realm
            .as_ref()
            .and_then(|name| self.upstreams.iter().find(|u| u.cfg.name == *name));
        match own {
            Some(up) => TokenSource {
                upstream: up,
                standbys: &[],
                resolver,
                bounds: &self.config.token,
            },
            None => self.token_source(resolver),
        }
    }
}

impl Probed for Runtime {
    fn upstreams(&self) -> &[Arc<UpstreamRt>] {
        &self.upstreams
    }

    fn health_check(&self) -> HealthCheck {
        self.config.health_check
    }
}

/// Process-wide state.
pub struct Shared {
    pub metrics: Arc<Metrics>,
    pub tokens: TokenStore,
    /// The JS-SDK tickets (`get_jsapi_ticket`, `agent_config`), kept like tokens.
    pub tickets: crate::ticket::TicketStore,
    /// Fleet mode (quotas and tokens shared through Redis), from the config at startup.
    pub fleet: Option<Arc<crate::fleet::FleetClient>>,
    pub quotas: crate::quota::Quotas,
    pub retry_budget: crate::retry::RetryBudget,
    pub resolver: Resolver,
    pub connectors: Connectors,
    pub health: HealthRegistry,
    pub plans: Plans,
    /// The callback apps and their store (`callbacks:`), opened at start; `None` without
    /// the section. A reload cannot change them (`reload` refuses it).
    pub callbacks: Option<Arc<Callbacks>>,
    /// The outbox (routes with `outbox: true`), on the same store, opened at start; `None`
    /// when the config at start has no outbox route.
    pub outbox: Option<Arc<crate::outbox::Outbox>>,
    pub runtime: ArcSwap<Runtime>,
    pub started: Instant,
    /// Set when SIGTERM/SIGINT arrived: readiness turns false, the drain watcher runs.
    pub draining: AtomicBool,
    /// App connections open, and the cap on them (`client.max_connections`).
    pub capacity: Arc<Capacity>,
    /// The address WeCom last refused as untrusted (60020), and which were logged.
    pub egress: crate::wecom::egress::EgressIps,
    in_flight: AtomicI64,
    /// How reloads read the config file, the version read last; reloads one at a time.
    reloads: Reloads,
}

impl Shared {
    /// The state of a process whose reloads read the config with [`crate::config::load`].
    pub fn new(config: Config) -> Result<Arc<Shared>, StoreError> {
        Self::with_loader(config, Box::new(crate::config::load))
    }

    /// As [`Shared::new`], with reloads reading the config through `loader`. Fails when the
    /// callbacks' store cannot be opened.
    pub fn with_loader(config: Config, loader: ConfigLoader) -> Result<Arc<Shared>, StoreError> {
        let metrics = Arc::new(Metrics::new());
        let store = open_store(&config)?;
        let callbacks = match (&config.callbacks, &store) {
            (Some(cb), Some(store)) => Some(Arc::new(Callbacks::new(cb, store.clone()))),
            _ => None,
        };
        let outbox = match &store {
            Some(store) if config.has_outbox() => Some(Arc::new(crate::outbox::Outbox::new(
                store.clone(),
                metrics.clone(),
            ))),
            _ => None,
        };
        let fleet = config.fleet.as_ref().and_then(|f| {
            match crate::fleet::FleetClient::new(f, metrics.clone()) {
                Ok(c) => Some(Arc::new(c)),
                Err(e) => {
                    tracing::error!(error = %e, "fleet mode off: every decision is local");
                    None
                }
            }
        });
        let connectors = Connectors::default();
        let health = HealthRegistry::default();
        let runtime = Runtime::build(config, &connectors, &health, None);
        Ok(Arc::new(Shared {
            tokens: TokenStore::new(metrics.clone(), fleet.clone()),
            tickets: crate::ticket::TicketStore::new(metrics.clone(), fleet.clone()),
            fleet,
            quotas: crate::quota::Quotas::default(),
            retry_budget: crate::retry::RetryBudget::default(),
            metrics,
            resolver: Resolver::default(),
            connectors,
            health,
            plans: Plans::default(),
            callbacks,
            outbox,
            runtime: ArcSwap::from_pointee(runtime),
            started: Instant::now(),
            draining: AtomicBool::new(false),
            capacity: Arc::default(),
            egress: Default::default(),
            in_flight: AtomicI64::new(0),
            reloads: Reloads::new(loader),
        }))
    }

    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Starts the plan `name` of the config in force; its steps run on a task of their own.
    pub fn start_plan(self: &Arc<Self>, name: &str) -> Result<(), String> {
        let runner =
            crate::plans::begin(&self.plans, &self.runtime.load().config.shift_plans, name)?;
        let shared = self.clone();
        tokio::spawn(async move { runner.run(&shared.plans).await });
        Ok(())
    }

    /// Counts a call as in flight until the guard drops.
    pub fn enter(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }
}

impl Reloadable for Shared {
    fn reloads(&self) -> &Reloads {
        &self.reloads
    }

    fn config(&self) -> Arc<Config> {
        self.runtime.load().config.clone()
    }

    fn install(&self, next: Config) {
        let current = self.runtime.load_full();
        let runtime = Runtime::build(next, &self.connectors, &self.health, Some(&current));
        self.plans.on_reload(&runtime.config.shift_plans);
        self.runtime.store(Arc::new(runtime));
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

/// The secrets of `config` whatever an upstream quotes of is taken out of what the sidecar
/// passes on, and no log line or answer may hold: app secrets, client keys, and each callback
/// app's `Token` and `EncodingAESKey`. A secret equal to an app name (`--dev`'s) is public, and
/// is what tokens turn into.
fn secrets_of(config: &Config) -> Vec<&str> {
    let is_app_name = |s: &str| config.apps.iter().any(|a| a.name.as_str() == s);
    config
        .apps
        .iter()
        .map(|a| a.secret.expose())
        .chain(config.clients.iter().map(|c| c.key.expose()))
        .chain(
            config
                .callbacks
                .iter()
                .flat_map(|cb| cb.apps.iter())
                .flat_map(|a| [a.token.expose(), a.aes_key.expose()]),
        )
        .filter(|s| !is_app_name(s))
        .collect()
}

/// How long an outbox queue stays with a sidecar that stopped renewing it (fleet mode): long
/// enough for a replay's deadline, short enough to take over soon.
const OUTBOX_LEASE: std::time::Duration = std::time::Duration::from_secs(30);

/// The store of `config`'s durable queues (callbacks, outbox), when it has any: SQLite at
/// `store.path`, or in fleet mode the fleet's Redis, where a queue stays with a sidecar that
/// stopped renewing it: a callback queue for two delivery timeouts (SPEC: claimed from a dead
/// sidecar after `delivery.timeout` × 2), an outbox queue for [`OUTBOX_LEASE`] or the longest
/// route deadline, whichever is longer (so no replay is still under way when another sidecar
/// takes the queue). Keys are remembered for
/// the callbacks' `max_age` (an outbox send's key is random: none repeats).
fn open_store(config: &Config) -> Result<Option<Arc<dyn crate::store::Store>>, StoreError> {
    let cb = config.callbacks.as_ref();
    if cb.is_none() && !config.has_outbox() {
        return Ok(None);
    }
    let remember = cb.map_or(std::time::Duration::from_secs(3600), |c| c.delivery.max_age);
    crate::store::open(
        &config.store,
        config.fleet.as_ref(),
        remember,
        leases(config),
    )
    .map(Some)
}

/// The fleet leases of `config`'s queues: a callback queue two delivery timeouts, an outbox
/// queue [`OUTBOX_LEASE`] or twice the longest deadline, whichever is longer.
fn leases(config: &Config) -> crate::store::Leases {
    let outbox = config
        .routes
        .iter()
        .map(|r| r.policy.deadline)
        .chain([config.defaults.deadline])
        .map(|d| d * 2)
        .fold(OUTBOX_LEASE, std::cmp::max);
    crate::store::Leases {
        callbacks: config
            .callbacks
            .as_ref()
            .map_or(OUTBOX_LEASE, |c| c.delivery.timeout * 2),
        outbox,
    }
}

impl crate::callback::listener::Process for Arc<Shared> {
    type InFlight = InFlight;

    fn client(&self) -> ClientConnections {
        self.runtime.load().config.client
    }

    fn enter(&self) -> InFlight {
        Shared::enter(self)
    }
}

/// Held by each call being handled.
pub struct InFlight(Arc<Shared>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn config(extra: &str) -> Config {
        let yaml = format!("listen: 127.0.0.1:18080\nadmin_listen: 127.0.0.1:18081\nupstreams:\n  primary: {{ url: \"http://127.0.0.1:9\" }}\napps:\n  - {{ name: hr-bot, corp_id: ww1, secret_env: S, default: true }}\n{extra}");
        let env = |name: &str| match name {
            "S" => Some("app-secret-1".to_string()),
            "T" => Some("cbToken2".to_string()),
            "K" => Some("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C".to_string()),
            _ => None,
        };
        crate::config::parse_with_env(&yaml, None, &env).unwrap()
    }

    #[test]
    fn the_store_is_opened_only_for_callbacks_or_an_outbox() {
        assert!(open_store(&config("")).unwrap().is_none());
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("sidecar.db");
        let outbox = format!(
            "routes:\n  - {{ path: /cgi-bin/message/send, outbox: true }}\nstore:\n  path: \"{}\"\n",
            db.display()
        );
        let store = open_store(&config(&outbox))
            .unwrap()
            .expect("a store for the outbox");
        assert_eq!(store.remember_for(), std::time::Duration::from_secs(3600));
        assert!(db.exists(), "the SQLite file is made at store.path");
    }

    #[test]
    fn a_callback_queue_is_held_two_delivery_timeouts_an_outbox_queue_past_any_replay() {
        let cb = "callbacks:\n  apps:\n    - { app: hr-bot, path: /cb, token_env: T, aes_key_env: K, deliver_to: \"http://127.0.0.1:3000/e\" }\n  delivery: { timeout: 1s }\n";
        let l = leases(&config(cb));
        assert_eq!(l.callbacks, Duration::from_secs(2));
        assert_eq!(l.outbox, OUTBOX_LEASE);
        // A replay may take its route's deadline: the outbox's hold outlasts it twice over.
        let long = format!(
            "{cb}routes:\n  - {{ path: /cgi-bin/message/send, outbox: true, deadline: 25s }}\n"
        );
        let l = leases(&config(&long));
        assert_eq!(
            (l.callbacks, l.outbox),
            (Duration::from_secs(2), Duration::from_secs(50))
        );
        assert_eq!(l.of("outbox:hr-bot"), Duration::from_secs(50));
        assert_eq!(l.of("callback:hr-bot"), Duration::from_secs(2));
        // Without callbacks their lease is never used; the outbox's stands alone.
        let l = leases(&config("defaults:\n  deadline: 20s\n"));
        assert_eq!(l.outbox, Duration::from_secs(40));
    }

    #[test]
    fn callback_credentials_are_secrets_to_redact() {
        let config = config("callbacks:\n  apps:\n    - { app: hr-bot, path: /cb, token_env: T, aes_key_env: K, deliver_to: \"http://127.0.0.1:3000/e\" }\n");
        let secrets = secrets_of(&config);
        for s in [
            "app-secret-1",
            "cbToken2",
            "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
        ] {
            assert!(secrets.contains(&s), "{s} not registered: {secrets:?}");
        }
    }
}
