//! The simulated WeCom the tests start: two apps with known secrets, on a loopback listener
//! the simulator binds to `:0` itself and keeps.

use super::sim::{Fault, FaultKind, SimApp, SimConfig, Simulator};

/// Secrets the test apps use; tests grep every output for them.
pub const HR_SECRET: &str = "test-secret-hr-7f3a9c1e5b";
pub const OPS_SECRET: &str = "test-secret-ops-2d8e4b6a0c";
pub const CORP_ID: &str = "wwtest0000000001";

/// How many calls the simulator has received on `path` (0 before the first).
pub fn calls(sim: &Simulator, path: &str) -> u64 {
    sim.counters().calls.get(path).copied().unwrap_or(0)
}

/// A fault to inject at the simulator on `path`; `times: None` lasts until cleared.
pub fn fault(path: &str, kind: FaultKind, times: Option<u32>) -> Fault {
    Fault {
        path: path.into(),
        kind,
        times,
    }
}

/// The simulator's dev config with the two test apps, `hr-bot` and `ops-bot`.
pub fn sim_config() -> SimConfig {
    let mut cfg = SimConfig::dev();
    cfg.apps = vec![
        SimApp::new("hr-bot", CORP_ID, HR_SECRET, 1000002),
        SimApp::new("ops-bot", CORP_ID, OPS_SECRET, 1000003),
    ];
    cfg
}

/// A simulator with [`sim_config`] on a loopback port of its own.
pub async fn simulator() -> Simulator {
    Simulator::start("127.0.0.1:0".parse().unwrap(), sim_config())
        .await
        .unwrap()
}

/// Two endpoints of one WeCom: a simulator (the primary) and the same simulator on a second
/// loopback address (the standby). Faults injected with `inject_here` hit one address only.
pub async fn primary_and_standby() -> (Simulator, Simulator) {
    let primary = simulator().await;
    let standby = primary
        .also_listen("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    (primary, standby)
}
