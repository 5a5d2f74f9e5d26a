//! `--dev`: the config it runs (built in, or `--config FILE`), the secrets that stand in for
//! real ones, where its listeners bind, and the WeCom simulator on the `primary` upstream's
//! address.
//!
//! The dev config names its secrets by environment variable (`WECOM_DEV_HR_SECRET`,
//! `WECOM_DEV_OPS_SECRET`, and hr-bot's callback Token and EncodingAESKey
//! `WECOM_DEV_HR_CB_TOKEN`, `WECOM_DEV_HR_CB_AES_KEY`); the simulator's own values stand in
//! unless they are set. The same reading is used at start, by `--dev --check` and by every
//! reload, so `--dev --config FILE` reloads like any other run.
//!
//! The dev config delivers hr-bot's callbacks to the simulator's receiver (`/sim/receiver`);
//! `$WECOM_SIDECAR_DEV_DELIVER_TO` (an http:// or https:// URL) sends every callback app's
//! pushes to that URL instead, e.g. your app on `http://127.0.0.1:3000/wecom/events`.
//!
//! Listeners stay on loopback unless `--dev-host` (or `$WECOM_SIDECAR_DEV_HOST`) names another
//! address: a container sets `0.0.0.0`, so `docker run -p 8080:8080 … --dev` is reachable from
//! the host while a run on the host itself stays on loopback. Only loopback addresses of the
//! config are moved (the callback listener's too); an address the config already sets
//! elsewhere is kept.

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

/// Where `--dev` delivers the callbacks of its config instead of the `deliver_to` written there.
pub const DEV_DELIVER_TO_ENV: &str = "WECOM_SIDECAR_DEV_DELIVER_TO";

/// The value of a secret variable: the environment's, else the simulator's own value for the
/// dev config's variables.
pub fn secret(name: &str) -> Option<String> {
    std::env::var(name).ok().or_else(|| {
        let (app, what) = match name {
            "WECOM_DEV_HR_SECRET" => ("hr-bot", Credential::Secret),
            "WECOM_DEV_OPS_SECRET" => ("ops-bot", Credential::Secret),
            "WECOM_DEV_HR_CB_TOKEN" => ("hr-bot", Credential::CallbackToken),
            "WECOM_DEV_HR_CB_AES_KEY" => ("hr-bot", Credential::CallbackAesKey),
            _ => return None,
        };
        let app = SimConfig::dev().apps.into_iter().find(|a| a.name == app)?;
        Some(match what {
            Credential::Secret => app.secret,
            Credential::CallbackToken => app.callback_token,
            Credential::CallbackAesKey => app.callback_aes_key,
        })
    })
}

/// Which of a simulated app's credentials a dev variable stands for.
enum Credential {
    Secret,
    CallbackToken,
    CallbackAesKey,
}

/// Moves the loopback listeners of `cfg` to `host` (same ports), and its callbacks to
/// `deliver_to` when one is given.
fn place(mut cfg: Config, host: Option<IpAddr>, deliver_to: Option<&http::Uri>) -> Config {
    if let Some(host) = host {
        let callbacks = cfg.callbacks.as_mut().map(|c| &mut c.listen);
        for addr in [&mut cfg.listen, &mut cfg.admin_listen]
            .into_iter()
            .chain(callbacks)
        {
            if addr.ip().is_loopback() {
                addr.set_ip(host);
            }
        }
    }
    if let (Some(to), Some(callbacks)) = (deliver_to, cfg.callbacks.as_mut()) {
        for app in &mut callbacks.apps {
            app.deliver_to = to.clone();
        }
    }
    cfg
}

/// `$WECOM_SIDECAR_DEV_DELIVER_TO`, if set: an http:// or https:// URL with a host.
fn deliver_to_override() -> Result<Option<http::Uri>, String> {
    let Some(text) = std::env::var(DEV_DELIVER_TO_ENV)
        .ok()
        .filter(|t| !t.is_empty())
    else {
        return Ok(None);
    };
    match text.trim().parse::<http::Uri>() {
        Ok(u)
            if matches!(u.scheme_str(), Some("http" | "https"))
                && u.host().is_some_and(|h| !h.is_empty())
                && !u.authority().is_some_and(|a| a.as_str().contains('@')) =>
        {
            Ok(Some(u))
        }
        _ => Err(format!(
            "${DEV_DELIVER_TO_ENV} is not an http:// or https:// URL with a host (and no \
             user@). Give your app's receiver, e.g. http://127.0.0.1:3000/wecom/events, or unset it"
        )),
    }
}

/// Reads a dev config file: secrets from [`secret`], listeners placed at `host`, callbacks
/// delivered to `deliver_to` if given.
fn load_placed(
    path: &Path,
    host: Option<IpAddr>,
    deliver_to: Option<&http::Uri>,
) -> Result<Config, ConfigError> {
    config::load_with_env(path, &secret).map(|c| place(c, host, deliver_to))
}

/// The config `--dev` runs (the file of `--config`, else the built-in one), and how to name it.
pub fn load(cli: &Cli) -> Result<(Config, String), String> {
    let deliver_to = deliver_to_override()?;
    match &cli.config {
        Some(path) => load_placed(path, cli.dev_host, deliver_to.as_ref())
            .map(|c| (c, path.display().to_string()))
            .map_err(|e| format!("{}: invalid config\n{e}", path.display())),
        None => config::parse_with_env(DEV_CONFIG, None, &secret)
            .map(|c| {
                (
                    place(c, cli.dev_host, deliver_to.as_ref()),
                    DEV_CONFIG_NAME.to_string(),
                )
            })
            .map_err(|e| format!("{DEV_CONFIG_NAME}: invalid config\n{e}")),
    }
}

/// What reloads of a `--dev` run read the config file with (the deliver_to override as read
/// at start: [`load`] refused a bad one).
pub fn loader(host: Option<IpAddr>) -> ConfigLoader {
    let deliver_to = deliver_to_override().ok().flatten();
    Box::new(move |path| load_placed(path, host, deliver_to.as_ref()))
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
            None,
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
            c.callbacks.as_ref().unwrap().listen,
            "0.0.0.0:8090".parse().unwrap()
        );
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

    /// The dev config's callback app reads the simulator's own callback credentials, and
    /// delivers to the simulator's receiver unless an override names another URL.
    #[test]
    fn hr_bots_callbacks_use_the_simulators_credentials_and_receiver() {
        let sim = SimConfig::dev();
        let hr = sim.apps.iter().find(|a| a.name == "hr-bot").unwrap();
        let c = dev(None);
        let cb = c.callbacks.as_ref().expect("the dev config has callbacks");
        let app = &cb.apps[0];
        assert_eq!(app.app.as_str(), "hr-bot");
        assert_eq!(app.token.expose(), hr.callback_token);
        assert_eq!(app.aes_key.expose(), hr.callback_aes_key);
        assert_eq!(app.receive_id, hr.corp_id);
        let primary = c.upstream("primary").unwrap();
        assert_eq!(
            app.deliver_to.to_string(),
            format!("http://{}:{}/sim/receiver", primary.host, primary.port)
        );
        let mine: http::Uri = "http://127.0.0.1:3000/wecom/events".parse().unwrap();
        let moved = place(
            config::parse_with_env(DEV_CONFIG, None, &secret).unwrap(),
            None,
            Some(&mine),
        );
        assert_eq!(moved.callbacks.unwrap().apps[0].deliver_to, mine);
    }
}
