//! The `wecom-sidecar` binary: parse the command line, set up logging, load the config (or the
//! `--dev` one with its simulator, see `wecom_sidecar::dev`), then hand over to `server::run`.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use wecom_sidecar::cli::Cli;
use wecom_sidecar::config;
use wecom_sidecar::dev;
use wecom_sidecar::state::Shared;

/// Log filter variable (tracing `EnvFilter` syntax), default `info`.
const LOG_ENV: &str = "WECOM_SIDECAR_LOG";
/// `json` for one JSON object per line; anything else for text.
const LOG_FORMAT_ENV: &str = "WECOM_SIDECAR_LOG_FORMAT";

fn init_logging() {
    let filter = EnvFilter::try_from_env(LOG_ENV).unwrap_or_else(|_| {
        EnvFilter::new("info,pingora_core=warn,pingora_proxy=warn,pingora=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var(LOG_FORMAT_ENV).is_ok_and(|v| v == "json") {
        builder.json().flatten_event(true).init();
    } else {
        builder.with_ansi(false).init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();

    // `--dev` reads its own config (built in, or `--config FILE`) with the simulator's secrets,
    // for `--check` as for a run.
    let loaded = if cli.dev {
        dev::load(&cli)
    } else {
        let path = cli.config_path();
        config::load(&path)
            .map(|c| (c, path.display().to_string()))
            .map_err(|e| format!("{}: invalid config\n{e}", path.display()))
    };
    let (cfg, name) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if cli.check {
        println!(
            "{name}: ok ({} upstreams, {} apps, {} routes)",
            cfg.upstreams.len(),
            cfg.apps.len(),
            cfg.routes.len()
        );
        return ExitCode::SUCCESS;
    }
    let shared = if cli.dev {
        if let Err(e) = dev::start_simulator(&cfg, cli.dev_host) {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
        Shared::with_loader(cfg, dev::loader(cli.dev_host))
    } else {
        Shared::new(cfg)
    };
    match wecom_sidecar::server::run(shared) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wecom-sidecar: {e:#}");
            ExitCode::FAILURE
        }
    }
}
