//! The `wecom-sidecar` binary: parse the command line, set up logging, load the config (or the
//! `--dev` one with its simulator), then hand over to `server::run`.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use wecom_sidecar::cli::Cli;
use wecom_sidecar::config;
use wecom_sidecar::state::Shared;

/// Log filter variable (tracing `EnvFilter` syntax), default `info`.
const LOG_ENV: &str = "WECOM_SIDECAR_LOG";
/// `json` for one JSON object per line; anything else for text.
const LOG_FORMAT_ENV: &str = "WECOM_SIDECAR_LOG_FORMAT";
/// The config `--dev` uses when no `--config` is given.
const DEV_CONFIG: &str = include_str!("../conf/dev.yaml");

/// Targets that are this program's own: the user's filter decides their level. Any other
/// target (pingora, rustls, redis, ...) is capped at `info`.
const OWN_TARGETS: &[&str] = &["wecom_sidecar", "access", "upstream"];

/// Whether an event of `target` at `level` may be written: our own targets at any level the
/// user's filter allows; everyone else's at `info` and above only. Pingora logs each upstream
/// request head at `trace` (with `corpsecret`, tokens and robot keys in the URL) and response
/// heads and bodies at `debug`/`trace` (gettoken's `access_token`): no level of theirs below
/// `info` is safe to show.
fn foreign_capped(target: &str, level: &tracing::Level) -> bool {
    let own = OWN_TARGETS.iter().any(|own| {
        target
            .strip_prefix(own)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    });
    own || *level <= tracing::Level::INFO
}

fn init_logging() {
    use tracing_subscriber::filter::{filter_fn, FilterExt};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let filter = EnvFilter::try_from_env(LOG_ENV).unwrap_or_else(|_| {
        EnvFilter::new("info,pingora_core=warn,pingora_proxy=warn,pingora=warn")
    });
    let filter = filter.and(filter_fn(|m| foreign_capped(m.target(), m.level())));
    let layer = if std::env::var(LOG_FORMAT_ENV).is_ok_and(|v| v == "json") {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed()
    };
    tracing_subscriber::registry().with(layer).init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();

    if cli.check {
        let path = cli.config_path();
        let secrets = if cli.no_secrets {
            config::validate::Secrets::Skip
        } else {
            config::validate::Secrets::Read
        };
        return match config::check_file(&path, secrets) {
            Ok(cfg) => {
                println!(
                    "{}: ok ({} upstreams, {} apps, {} routes){}",
                    path.display(),
                    cfg.upstreams.len(),
                    cfg.apps.len(),
                    cfg.routes.len(),
                    if cli.no_secrets {
                        "; secrets and ca_file not read (--no-secrets)"
                    } else {
                        ""
                    }
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: invalid config\n{e}", path.display());
                ExitCode::FAILURE
            }
        };
    }

    let loaded = if cli.dev {
        dev::config(&cli)
    } else {
        config::load(&cli.config_path())
            .map_err(|e| format!("{}: invalid config\n{e}", cli.config_path().display()))
    };
    let cfg = match loaded {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let shared = Shared::new(cfg);
    match wecom_sidecar::server::run(shared) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wecom-sidecar: {e:#}");
            ExitCode::FAILURE
        }
    }
}

mod dev {
    //! `--dev`: a WeCom simulator on the `primary` upstream's address, and the dev config.

    use super::*;
    use wecom_sidecar::wecom::simulator::{SimApp, SimConfig, Simulator};

    pub fn config(cli: &Cli) -> Result<config::Config, String> {
        let sim_cfg = SimConfig::dev();
        // The dev config names its secrets by environment variable; the simulator's own
        // secrets stand in unless the user set them.
        let secret_for = |name: &str| -> Option<String> {
            std::env::var(name).ok().or_else(|| {
                let app = match name {
                    "WECOM_DEV_HR_SECRET" => "hr-bot",
                    "WECOM_DEV_OPS_SECRET" => "ops-bot",
                    _ => return None,
                };
                sim_cfg
                    .apps
                    .iter()
                    .find(|a: &&SimApp| a.name == app)
                    .map(|a| a.secret.clone())
            })
        };
        let cfg = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                config::parse_with_env(&text, Some(path), &secret_for)
            }
            None => config::parse_with_env(DEV_CONFIG, None, &secret_for),
        }
        .map_err(|e| format!("dev config invalid\n{e}"))?;
        let primary = cfg
            .upstream("primary")
            .ok_or("dev config has no primary upstream")?;
        let addr = format!("{}:{}", primary.host, primary.port)
            .parse()
            .map_err(|_| {
                "the dev config's primary upstream must be an IP:port on this machine".to_string()
            })?;
        let sim = Simulator::start_on_thread(addr, sim_cfg)
            .map_err(|e| format!("cannot start the WeCom simulator on {addr}: {e}"))?;
        tracing::info!(
            simulator = %sim.url(),
            "dev mode: WeCom simulator running; inject faults with POST {}/sim/faults, read counters at {}/sim/counters",
            sim.url(),
            sim.url()
        );
        // Keep the simulator for the life of the process.
        std::mem::forget(sim);
        Ok(cfg)
    }
}
