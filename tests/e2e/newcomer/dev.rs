//! `--dev`: where it binds, `--check`, `--config FILE` and reload.

use super::*;

// ---------------------------------------------------------------------------------------------
// --dev: where it binds, --check, --config FILE and reload
// ---------------------------------------------------------------------------------------------

/// A `--dev --config FILE` config on free ports, its simulator on a free port.
fn dev_config(listen: u16, admin: u16, sim: u16, extra: &str) -> String {
    format!(
        r#"listen: "127.0.0.1:{listen}"
admin_listen: "127.0.0.1:{admin}"
upstreams:
  primary:
    url: "http://127.0.0.1:{sim}"
    connect_timeout: 1s
    timeout: 5s
apps:
  - name: hr-bot
    corp_id: wwdev0000000000001
    agent_id: 1000002
    secret_env: WECOM_DEV_HR_SECRET
    default: true
  - name: ops-bot
    corp_id: wwdev0000000000001
    agent_id: 1000003
    secret_env: WECOM_DEV_OPS_SECRET
{extra}
"#
    )
}

/// `wecom-sidecar --dev --config FILE` (plus `args`, `envs`) on free ports; ready to serve.
pub(super) async fn start_dev(extra: &str, args: &[&str], envs: &[(&str, &str)]) -> (Sidecar, u16) {
    let dir = tempfile::tempdir().unwrap();
    let (listen, admin, sim) = (free_port(), free_port(), free_port());
    let config_path = dir.path().join("dev.yaml");
    std::fs::write(&config_path, dev_config(listen, admin, sim, extra)).unwrap();
    let sc = Sidecar::spawn_dev(dir, config_path, (listen, admin), args, envs);
    sc.wait_ready().await;
    (sc, sim)
}

/// The local addresses `pid` listens on for TCP `port` (from /proc/PID/net/tcp and tcp6), as
/// hex text the kernel writes: `00000000` is 0.0.0.0, `0100007F` 127.0.0.1.
fn listening_on(pid: u32, port: u16) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for file in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{file}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is f[1] (ADDR:PORT in hex), st is f[3]; 0A is LISTEN.
            if f.len() > 3 && f[3] == "0A" {
                if let Some((addr, p)) = f[1].split_once(':') {
                    if u16::from_str_radix(p, 16) == Ok(port) {
                        out.insert(addr.to_string());
                    }
                }
            }
        }
    }
    out
}

/// The value the Dockerfile's `ENV` gives `name`.
fn dockerfile_env(name: &str) -> Option<String> {
    let text = std::fs::read_to_string(Path::new(REPO).join("Dockerfile")).unwrap();
    instructions(&text)
        .into_iter()
        .filter(|i| i.op == "ENV")
        .find_map(|i| {
            i.args
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('='))
                .map(|v| v.trim_matches('"').to_string())
        })
}

/// Issue 12: `--dev` in a container listened on 127.0.0.1, unreachable through `-p`. With the
/// environment the Dockerfile sets, the listeners and the simulator are on every interface
/// (and the non-loopback warning says so); without it, on loopback only.
#[tokio::test]
async fn dev_in_the_container_listens_on_every_interface_and_on_loopback_elsewhere() {
    let host_env = dockerfile_env("WECOM_SIDECAR_DEV_HOST")
        .expect("the Dockerfile sets WECOM_SIDECAR_DEV_HOST");
    let (sc, sim) = start_dev("", &[], &[("WECOM_SIDECAR_DEV_HOST", &host_env)]).await;
    let any = "00000000".to_string();
    for port in [addr_of(&sc.base).port(), addr_of(&sc.admin).port(), sim] {
        assert_eq!(
            listening_on(sc.pid(), port),
            BTreeSet::from([any.clone()]),
            "port {port}; log:\n{}",
            sc.logs()
        );
    }
    let c = client();
    let (_, _, v) = get_json(&c, &sc.url("/cgi-bin/user/get?userid=zhangsan")).await;
    assert_eq!(v["errcode"], 0, "{v}");
    assert!(
        sc.logs().contains("listening beyond loopback"),
        "{}",
        sc.logs()
    );
    drop(sc);

    let (sc, sim) = start_dev("", &[], &[]).await;
    let lo = "0100007F".to_string();
    for port in [addr_of(&sc.base).port(), addr_of(&sc.admin).port(), sim] {
        assert_eq!(listening_on(sc.pid(), port), BTreeSet::from([lo.clone()]));
    }
    assert!(!sc.logs().contains("listening beyond loopback"));
}

fn run_check(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wecom-sidecar"))
        .args(args)
        .current_dir(REPO)
        .env_remove("WECOM_SIDECAR_CONFIG")
        .env_remove("WECOM_DEV_HR_SECRET")
        .env_remove("WECOM_DEV_OPS_SECRET")
        .env_remove("WECOM_HR_SECRET")
        .env_remove("WECOM_OPS_SECRET")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Issue 12: `--dev --check` checked conf/sidecar.yaml (and failed for its missing production
/// secrets) instead of the config `--dev` runs. It checks the built-in dev config, or the
/// `--config` file with the dev secrets standing in, and still reports a broken one.
#[test]
fn dev_check_checks_the_config_dev_runs() {
    let (code, out) = run_check(&["--dev", "--check"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("conf/dev.yaml"), "{out}");
    assert!(out.contains("2 apps"), "{out}");
    assert!(!out.contains("sidecar.yaml"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, dev_config(18081, 19902, 18482, "")).unwrap();
    let (code, out) = run_check(&["--dev", "--check", "--config", good.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("good.yaml: ok"), "{out}");

    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        dev_config(18081, 19902, 18482, "defaults:\n  deadline: soon\n"),
    )
    .unwrap();
    let (code, out) = run_check(&["--dev", "--check", "--config", bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("defaults.deadline"), "{out}");
}

/// Issue 12: `--dev --config FILE` could not reload: the dev secrets are not in the
/// environment, so every reload was refused. A changed file now reloads (admin and SIGHUP)
/// and the change is in force: a route quota added by the reload refuses the call over it.
#[tokio::test]
async fn dev_with_a_config_file_reloads_it() {
    let (sc, _sim) = start_dev("", &[], &[]).await;
    let c = client();
    for _ in 0..3 {
        let (_, h, v) = get_json(&c, &sc.url("/cgi-bin/department/list")).await;
        assert_eq!(v["errcode"], 0, "{v}");
        assert!(h.get("x-sidecar-reason").is_none());
    }
    let text = std::fs::read_to_string(&sc.config_path).unwrap();
    let route = "routes:\n  - path: /cgi-bin/department/list\n    quota: [\"1/min\"]\n";
    std::fs::write(&sc.config_path, format!("{text}\n{route}")).unwrap();
    let (status, body) = sc.reload().await;
    assert_eq!(status, 200, "{body}\n{}", sc.logs());
    let (_, _, v) = get_json(&c, &sc.url("/cgi-bin/department/list")).await;
    assert_eq!(v["errcode"], 0, "{v}");
    let (_, h, v) = get_json(&c, &sc.url("/cgi-bin/department/list")).await;
    assert_eq!(v["errcode"], 45009, "{v}");
    assert_eq!(h["x-sidecar-reason"], "quota");

    // And SIGHUP: the quota removed again.
    std::fs::write(&sc.config_path, &text).unwrap();
    sc.signal("HUP");
    assert!(
        eventually(Duration::from_secs(10), async || {
            get_json(&c, &sc.url("/cgi-bin/department/list")).await.2["errcode"] == 0
        })
        .await,
        "{}",
        sc.logs()
    );
    assert!(!sc.logs().contains("reload refused"), "{}", sc.logs());
}
