//! `--dev`: the config it runs (built in, or `--config FILE`), the secrets that stand in for
//! real ones, where its listeners bind, and the WeCom simulator on the `primary` upstream's
//! address.
//!
//! The dev config names its secrets by environment variable (`WECOM_DEV_HR_SECRET`,
//! `WECOM_DEV_OPS_SECRET`); the simulator's own secrets stand in unless they are set. The same
//! reading is used at start, by `--dev --check` and by every reload, so `--dev --config FILE`
//! reloads like any other run.
//!
//! Listeners stay on loopback unless `--dev-host` (or `$WECOM_SIDECAR_DEV_HOST`) names another
//! address: a container sets `0.0.0.0`, so `docker run -p 8080:8080 … --dev` is reachable from
//! the host while a run on the host itself stays on loopback. Only loopback addresses of the
//! config are moved; an address the config already sets elsewhere is kept.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use wecom_sidecar::cli::Cli;
use wecom_sidecar::config::{self, Config, ConfigError};
use wecom_sidecar::reload::ConfigLoader;
use wecom_sim::{SimConfig, Simulator};

/// The config `--dev` runs when no `--config` is given.
pub const DEV_CONFIG: &str = include_str!("../conf/dev.yaml");
/// How `--dev` output names the built-in config.
pub const DEV_CONFIG_NAME: &str = "conf/dev.yaml (built in)";

/// The value of a secret variable: the environment's, else the simulator's own secret for the
/// dev config's two variables.
pub fn secret(name: &str) -> Option<String> {
    std::env::var(name).ok().or_else(|| {
        let app = match name {
            "WECOM_DEV_HR_SECRET" => "hr-bot",
            "WECOM_DEV_OPS_SECRET" => "ops-bot",
            _ => return None,
        };
        SimConfig::dev()
            .apps
            .into_iter()
            .find(|a| a.name == app)
            .map(|a| a.secret)
    })
}

/// Moves the loopback listeners of `cfg` to `host` (same ports).
fn place(mut cfg: Config, host: Option<IpAddr>) -> Config {
    if let Some(host) = host {
        for addr in [&mut cfg.listen, &mut cfg.admin_listen] {
            if addr.ip().is_loopback() {
                addr.set_ip(host);
            }
        }
    }
    cfg
}

/// Reads a dev config file: secrets from [`secret`], listeners placed at `host`.
pub fn load_file(path: &Path, host: Option<IpAddr>) -> Result<Config, ConfigError> {
    config::load_with_env(path, &secret).map(|c| place(c, host))
}

/// The config `--dev` runs (the file of `--config`, else the built-in one), and how to name it.
pub fn load(cli: &Cli) -> Result<(Config, String), String> {
    match &cli.config {
        Some(path) => load_file(path, cli.dev_host)
            .map(|c| (c, path.display().to_string()))
            .map_err(|e| format!("{}: invalid config\n{e}", path.display())),
        None => config::parse_with_env(DEV_CONFIG, None, &secret)
            .map(|c| (place(c, cli.dev_host), DEV_CONFIG_NAME.to_string()))
            .map_err(|e| format!("{DEV_CONFIG_NAME}: invalid config\n{e}")),
    }
}

/// What reloads of a `--dev` run read the config file with.
pub fn loader(host: Option<IpAddr>) -> ConfigLoader {
    Box::new(move |path| load_file(path, host))
}

/// Where the simulator listens: the `primary` upstream's address, on every interface when the
/// listeners were moved to an unspecified address (`0.0.0.0`), so `/sim/` is reachable from
/// outside a container too.
pub fn simulator_addr(cfg: &Config, host: Option<IpAddr>) -> Result<SocketAddr, String> {
    let primary = cfg
        .upstream("primary")
        .ok_or("dev config has no primary upstream")?;
    let mut addr: SocketAddr = format!("{}:{}", primary.host, primary.port)
        .parse()
        .map_err(|_| {
            "the dev config's primary upstream must be an IP:port on this machine".to_string()
        })?;
    if let Some(host) = host.filter(|h| h.is_unspecified()) {
        addr.set_ip(host);
    }
    Ok(addr)
}

/// Starts the simulator for `cfg` on a thread of its own, for the life of the process.
pub fn start_simulator(cfg: &Config, host: Option<IpAddr>) -> Result<(), String> {
    let addr = simulator_addr(cfg, host)?;
    let sim = Simulator::start_on_thread(addr, SimConfig::dev())
        .map_err(|e| format!("cannot start the WeCom simulator on {addr}: {e}"))?;
    tracing::info!(
        simulator = %sim.url(),
        "dev mode: WeCom simulator running; inject faults with POST {}/sim/faults, read counters at {}/sim/counters",
        sim.url(),
        sim.url()
    );
    // Keep the simulator for the life of the process.
    std::mem::forget(sim);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(host: Option<IpAddr>) -> Config {
        place(
            config::parse_with_env(DEV_CONFIG, None, &secret).unwrap(),
            host,
        )
    }

    #[test]
    fn listeners_stay_on_loopback_unless_a_host_is_given() {
        let c = dev(None);
        assert!(c.listen.ip().is_loopback() && c.admin_listen.ip().is_loopback());
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        let c = dev(Some(any));
        assert_eq!(c.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.admin_listen, "0.0.0.0:9901".parse().unwrap());
        assert_eq!(
            simulator_addr(&c, Some(any)).unwrap(),
            "0.0.0.0:18480".parse().unwrap()
        );
        // A specific address moves the listeners; the simulator stays where primary points.
        let one: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(
            simulator_addr(&dev(Some(one)), Some(one)).unwrap(),
            "127.0.0.1:18480".parse().unwrap()
        );
    }
}
