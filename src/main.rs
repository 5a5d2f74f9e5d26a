//! The `wecom-sidecar` binary: parse the command line, set up logging, load the config (or the
//! `--dev` one with its simulator, see [`dev`]), then hand over to `server::run`. `--dev` lives
//! here, in the binary, because it is the one user of the WeCom simulator (`wecom-sim`): the
//! proxy library does not depend on it.

use std::process::ExitCode;

mod dev;

/// The allocator: jemalloc, not glibc's malloc. A proxied call makes some fifty small
/// allocations; with jemalloc's per-thread caches it cost 45.9k instructions against 50.4k
/// (`LOG=info bash benches/profile.sh`), and answered 14 % more calls a second in one
/// interleaved run (README "Performance"). It gives freed pages back by itself (a background
/// thread, [`MALLOC_CONF`]), so the memory of a connection storm goes back within seconds.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read from this symbol before `main`: unused dirty pages go back to the
/// system after about a second (its default is ten), not kept as "muzzy" on the way.
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: MallocConf = MallocConf(c"dirty_decay_ms:1000,muzzy_decay_ms:0".as_ptr());

/// A C string's address, as jemalloc declares `malloc_conf` (`const char *`).
#[repr(transparent)]
pub struct MallocConf(*const std::ffi::c_char);

// SAFETY: it points at a static C string, which nothing writes.
unsafe impl Sync for MallocConf {}

use clap::Parser;
use tracing_subscriber::EnvFilter;

use wecom_sidecar::cli::Cli;
use wecom_sidecar::config;
use wecom_sidecar::logging;
use wecom_sidecar::state::Shared;

/// Log filter variable (tracing `EnvFilter` syntax), default `info`.
const LOG_ENV: &str = "WECOM_SIDECAR_LOG";
/// `json` for one JSON object per line; anything else for text.
const LOG_FORMAT_ENV: &str = "WECOM_SIDECAR_LOG_FORMAT";

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

/// Sets up logging; the guard writes the lines still buffered when it is dropped, so `main`
/// keeps it until the process exits.
fn init_logging() -> Option<logging::Guard> {
    use tracing_subscriber::filter::{filter_fn, FilterExt};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let filter = EnvFilter::try_from_env(LOG_ENV).unwrap_or_else(|_| {
        EnvFilter::new("info,pingora_core=warn,pingora_proxy=warn,pingora=warn")
    });
    // The cap lets our own targets through at any level, so its hint is TRACE; without a hint
    // the combined filter's would be none (no bound), which sets the `log` crate's max level to
    // trace and hands every `log::debug!`/`trace!` of pingora to the subscriber only to be
    // dropped: 4.7k instructions per call at `warn` (benches/profile.sh). With it, `log` stops
    // them at the user's level, as before the cap.
    let capped = filter_fn(|m| foreign_capped(m.target(), m.level()))
        .with_max_level_hint(tracing_subscriber::filter::LevelFilter::TRACE);
    let filter = filter.and(capped);
    let format = if std::env::var(LOG_FORMAT_ENV).is_ok_and(|v| v == "json") {
        logging::Format::Json
    } else {
        logging::Format::Text
    };
    match logging::install(format) {
        Ok((layer, guard)) => {
            tracing_subscriber::registry()
                .with(layer.with_filter(filter))
                .init();
            Some(guard)
        }
        Err(e) => {
            eprintln!("wecom-sidecar: cannot start the log writer thread: {e}");
            None
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(_log) = init_logging() else {
        return ExitCode::FAILURE;
    };

    // `--dev` reads its own config (built in, or `--config FILE`) with the simulator's secrets,
    // for `--check` as for a run. `--no-secrets` (only with `--check`) reads no secret.
    let secrets = if cli.no_secrets {
        config::validate::Secrets::Skip
    } else {
        config::validate::Secrets::Read
    };
    let loaded = if cli.dev {
        dev::load(&cli)
    } else {
        let path = cli.config_path();
        config::check_file(&path, secrets)
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
            "{name}: ok ({} upstreams, {} apps, {} routes){}",
            cfg.upstreams.len(),
            cfg.apps.len(),
            cfg.routes.len(),
            if cli.no_secrets && !cli.dev {
                "; secrets and ca_file not read (--no-secrets)"
            } else {
                ""
            }
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
    let shared = match shared {
        Ok(shared) => shared,
        Err(e) => {
            eprintln!("wecom-sidecar: {e}");
            return ExitCode::FAILURE;
        }
    };
    match wecom_sidecar::server::run(shared) {
        Ok(()) => {
            // The last line of a drained run; the log guard, dropped after it, writes it out.
            tracing::info!("wecom-sidecar stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wecom-sidecar: {e:#}");
            ExitCode::FAILURE
        }
    }
}
