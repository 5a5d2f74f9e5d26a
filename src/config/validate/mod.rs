//! From the file types to the runtime `Config`: every value checked, every problem collected
//! (not just the first), each naming its key path and saying the fix.
//!
//! One file per section, each turning its file type into its runtime type: `listeners`
//! (`listen`, `admin_listen`, `admin_hosts`, `client`), `upstreams` (with `ca_file`), `apps`
//! (`apps` and `clients`, their secrets read by `secrets`), `token`, `policy` (`defaults` and
//! the merge a route's keys make over them), `routes`, `health` (`outlier`, `health_check`),
//! `fleet`, `plans`, `callbacks`, `store`, and `outbox` (a route's outbox keys). `check` holds what they share: the problem list and the small checks
//! of names, durations and paths. This file only orders them: a section that refers to
//! another (a split to upstreams, a plan to routes) comes after it.
//!
//! Secret values (app secrets, client keys, a Redis URL from `redis_url_env`) are read here and
//! never put into a message: messages name the variable or file, never what it holds.

mod apps;
mod ca_file;
mod callbacks;
mod check;
mod fleet;
mod health;
mod listeners;
mod outbox;
mod plans;
mod policy;
mod routes;
mod secrets;
mod store;
mod token;
mod upstreams;

use std::path::Path;

use super::file::FileConfig;
use super::model::Config;
use super::Problem;
use check::{Check, Names};

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

/// Builds and checks the whole config. `source` is the config file's path: relative
/// `secret_file`, `key_file` and `ca_file` paths are taken from its directory (else from the
/// working directory). `env` stands in for the process environment; `secrets` says whether
/// secrets are read.
pub(crate) fn build_with(
    file: FileConfig,
    source: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
    secrets: Secrets,
) -> Result<Config, Vec<Problem>> {
    let mut c = Check::new(env, source.and_then(Path::parent), secrets);

    let listen =
        listeners::listen_pair(&mut c, file.listen.as_deref(), file.admin_listen.as_deref());
    let admin_hosts = listeners::admin_hosts(&mut c, file.admin_hosts.as_deref());

    // Splits are checked against every declared upstream, valid or not, so one bad upstream is
    // reported once rather than again at each split naming it.
    let declared = Names::new(
        file.upstreams
            .as_ref()
            .map(|m| m.keys().map(str::to_string).collect())
            .unwrap_or_default(),
    );
    let upstreams = upstreams::upstreams(&mut c, file.upstreams);
    // Clients name apps as declared, valid or not, so one bad app is reported once.
    let app_names: std::collections::HashSet<String> =
        file.apps.iter().flatten().map(|a| a.name.clone()).collect();
    let apps = apps::apps(&mut c, file.apps);
    let clients = apps::clients(&mut c, file.clients, &app_names);
    let token = token::token(&mut c, file.token.as_ref());

    let defaults_file = file.defaults.unwrap_or_default();
    let (defaults, routes_max_wait) = policy::defaults(&mut c, &defaults_file, &declared);
    outbox::defaults(&mut c, &defaults_file, &defaults);
    let routes = routes::routes(
        &mut c,
        file.routes.unwrap_or_default(),
        &defaults,
        &declared,
        routes_max_wait,
        defaults_file.duplicate_check_interval.is_some(),
    );
    let fleet = file.fleet.as_ref().map(|f| f.to_fleet(&mut c));
    let shift_plans = match file.shift_plans {
        Some(plans) => plans::shift_plans(&mut c, plans, &routes, &declared),
        None => Vec::new(),
    };
    let outlier = health::outlier(&mut c, file.outlier.as_ref());
    let health_check = health::health_check(&mut c, file.health_check.as_ref());
    let client = listeners::client_connections(&mut c, file.client.as_ref());
    let callbacks = callbacks::callbacks(
        &mut c,
        file.callbacks,
        &apps,
        &[
            ("listen", listen.map(|l| l.0)),
            ("admin_listen", listen.map(|l| l.1)),
        ],
    );
    let store = store::store(&mut c, file.store.as_ref());

    match listen {
        Some((listen, admin_listen)) if c.problems.is_empty() => Ok(Config {
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
            callbacks,
            store,
            source: source.map(Path::to_path_buf),
        }),
        _ => Err(c.problems),
    }
}
