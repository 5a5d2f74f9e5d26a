//! The command line (SPEC.md): `--config FILE`, `--check` (`--no-secrets`), `--dev` (with
//! `--dev-host`), `--version`.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Parser;

/// Environment variable naming the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "WECOM_SIDECAR_CONFIG";
/// Config file used when neither `--config` nor the environment names one.
pub const DEFAULT_CONFIG: &str = "conf/sidecar.yaml";

/// A sidecar reverse proxy for the WeCom server API: holds app secrets and tokens, enforces
/// quotas, retries safely, shifts traffic, exports metrics.
#[derive(Parser, Debug)]
#[command(name = "wecom-sidecar", version, about)]
pub struct Cli {
    /// Config file (YAML). Default: $WECOM_SIDECAR_CONFIG, then conf/sidecar.yaml.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Validate the config and exit: 0 when valid, 1 with every problem found.
    #[arg(long)]
    pub check: bool,

    /// With --check: read no secret (secret_env/key_env variables, secret_file, key_file,
    /// redis_url_env) and no ca_file, which only production has; check everything else. For CI
    /// on a repository's own configs.
    #[arg(long, requires = "check")]
    pub no_secrets: bool,

    /// Run against a built-in WeCom simulator with a ready config (no WeCom account needed).
    /// With --config, that file is used and the simulator listens at its `primary` upstream.
    #[arg(long)]
    pub dev: bool,

    /// With --dev: bind the listeners that the config puts on loopback to this address instead
    /// (same ports), and the simulator too when it is 0.0.0.0 or ::. The Docker image sets
    /// 0.0.0.0, so `docker run -p` reaches a `--dev` container. Ignored without --dev.
    #[arg(long, env = DEV_HOST_ENV, value_name = "IP")]
    pub dev_host: Option<IpAddr>,
}

/// Environment variable for `--dev-host`.
pub const DEV_HOST_ENV: &str = "WECOM_SIDECAR_DEV_HOST";

impl Cli {
    /// The config file to read (not for `--dev` without `--config`).
    pub fn config_path(&self) -> PathBuf {
        self.config
            .clone()
            .or_else(|| std::env::var_os(CONFIG_ENV).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG))
    }
}
