//! `--dev`'s callbacks: the built-in config wires hr-bot's callbacks to the simulator's
//! receiver, so the README's "Callbacks" walk-through step, run as written, shows the whole
//! flow (the simulator pushes as WeCom, the sidecar verifies and stores, the receiver gets the
//! push, its answer comes back as the passive reply); `$WECOM_SIDECAR_DEV_DELIVER_TO` delivers
//! to another URL instead.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;
use crate::newcomer::readme::walkthrough_commands;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The ports of one `--dev` run: the built-in config's fixed ones, replaced by free ones.
struct Ports {
    listen: u16,
    admin: u16,
    callbacks: u16,
    sim: u16,
}

impl Ports {
    fn free() -> Ports {
        Ports {
            listen: free_port(),
            admin: free_port(),
            callbacks: free_port(),
            sim: free_port(),
        }
    }

    /// `text` with conf/dev.yaml's addresses moved to these ports.
    fn apply(&self, text: &str) -> String {
        text.replace("127.0.0.1:8080", &format!("127.0.0.1:{}", self.listen))
            .replace("127.0.0.1:9901", &format!("127.0.0.1:{}", self.admin))
            .replace("127.0.0.1:8090", &format!("127.0.0.1:{}", self.callbacks))
            .replace("127.0.0.1:18480", &format!("127.0.0.1:{}", self.sim))
    }
}

/// `wecom-sidecar --dev --config FILE`, FILE being conf/dev.yaml itself on `ports`, its store
/// in the test's folder; ready, the callback listener up.
async fn start_dev(ports: &Ports, envs: &[(&str, &str)]) -> Sidecar {
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(Path::new(REPO).join("conf/dev.yaml")).unwrap();
    assert!(
        shipped.contains("/tmp/wecom-sidecar-dev/sidecar.db"),
        "{shipped}"
    );
    let store = dir.path().join("sidecar.db");
    let config = ports
        .apply(&shipped)
        .replace("/tmp/wecom-sidecar-dev/sidecar.db", store.to_str().unwrap());
    let config_path = dir.path().join("dev.yaml");
    std::fs::write(&config_path, config).unwrap();
    let sc = Sidecar::spawn_dev(dir, config_path, (ports.listen, ports.admin), &[], envs);
    sc.wait_ready().await;
    let port = ports.callbacks;
    let up = eventually(Duration::from_secs(15), async || {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
    assert!(up, "no callback listener:\n{}", sc.logs());
    sc
}

async fn sh(cmd: String) -> String {
    let out = tokio::task::spawn_blocking(move || {
        Command::new("sh")
            .args(["-c", &cmd])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The README's "Callbacks: WeCom …" walk-through step, run as written against `--dev` (on this test's ports): the
/// verification passes, the first of WeCom's 4 sends gets the receiver's answer back as the
/// passive reply (decrypted by the simulator), the 3 retries an empty 200, and the receiver
/// lists the push once, with the headers SPEC names.
#[tokio::test]
async fn the_readme_callbacks_step_shows_a_push_delivered_once_with_its_reply() {
    let ports = Ports::free();
    let sc = start_dev(&ports, &[]).await;
    let commands = walkthrough_commands("Callbacks: WeCom");
    assert_eq!(commands.len(), 4, "{commands:?}");
    let mut answers = Vec::new();
    for cmd in commands {
        assert!(cmd.starts_with("curl "), "not a curl command: {cmd}");
        let shown = sh(ports.apply(&cmd)).await;
        answers.push(
            serde_json::from_str::<Value>(&shown)
                .unwrap_or_else(|_| panic!("{cmd}: not JSON: {shown}")),
        );
    }
    let (told, verified, pushed) = (&answers[0], &answers[1], &answers[2]);
    assert_eq!(told["ok"], true, "{told}");
    assert_eq!(verified["ok"], true, "{verified}\n{}", sc.logs());
    assert_eq!(pushed["ok"], true, "{pushed}\n{}", sc.logs());
    let attempts = pushed["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 4, "{pushed}");
    assert_eq!(
        attempts[0]["reply"], "<xml><MsgType>text</MsgType><Content>got it</Content></xml>",
        "{pushed}"
    );
    assert!(attempts[1..].iter().all(|a| a["body"] == ""), "{pushed}");
    // The listing may be read before the delivery: read it again until it holds one.
    let c = client();
    let mut listed = answers[3].clone();
    eventually(Duration::from_secs(15), async || {
        if listed["total"] != 1 {
            listed = get_json(&c, &format!("http://127.0.0.1:{}/sim/receiver", ports.sim))
                .await
                .2;
        }
        listed["total"] == 1
    })
    .await;
    let d = &listed["deliveries"][0];
    assert_eq!(d["body"], pushed["message"], "{listed}");
    let h = &d["headers"];
    assert_eq!(h["content-type"], "application/xml", "{d}");
    assert_eq!(h["x-wecom-app"], "hr-bot", "{d}");
    assert_eq!(h["x-wecom-msgtype"], "text", "{d}");
    assert_eq!(h["x-wecom-attempt"], "1", "{d}");
    assert!(
        h["x-wecom-callback-id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{d}"
    );
    // WeCom's retries were answered, not delivered again.
    let m = sc.settled_metrics().await;
    assert_eq!(
        m.value(
            "wecom_callbacks_total",
            &[("app", "hr-bot"), ("result", "duplicate")]
        ),
        Some(3.0),
        "{m}"
    );
}

/// `$WECOM_SIDECAR_DEV_DELIVER_TO` delivers `--dev`'s callbacks to that URL (here a second
/// simulator's receiver standing in for the developer's app), not to the built-in receiver;
/// a value that is not an http(s) URL stops the start, saying so.
#[tokio::test]
async fn dev_deliver_to_sends_the_pushes_to_the_url_given() {
    let app = simulator().await;
    let elsewhere = format!("{}/sim/receiver", app.url());
    let ports = Ports::free();
    let sc = start_dev(&ports, &[("WECOM_SIDECAR_DEV_DELIVER_TO", &elsewhere)]).await;
    let c = client();
    let (_, _, pushed) = post_json(
        &c,
        &format!("http://127.0.0.1:{}/sim/callbacks/push", ports.sim),
        &serde_json::json!({
            "to": format!("http://127.0.0.1:{}/callback/hr-bot", ports.callbacks),
            "app": "hr-bot",
            "content": "to my app",
        }),
    )
    .await;
    assert_eq!(pushed["ok"], true, "{pushed}\n{}", sc.logs());
    let mut got = Value::Null;
    let delivered = eventually(Duration::from_secs(15), async || {
        got = get_json(&c, &elsewhere).await.2;
        got["total"] == 1
    })
    .await;
    assert!(delivered, "{got}\n{}", sc.logs());
    assert_eq!(got["deliveries"][0]["body"], pushed["message"]);
    let (_, _, built_in) =
        get_json(&c, &format!("http://127.0.0.1:{}/sim/receiver", ports.sim)).await;
    assert_eq!(built_in["total"], 0, "{built_in}");
    drop(sc);

    let out = Command::new(env!("CARGO_BIN_EXE_wecom-sidecar"))
        .args(["--dev", "--check"])
        .env("WECOM_SIDECAR_DEV_DELIVER_TO", "ftp://example")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("WECOM_SIDECAR_DEV_DELIVER_TO"), "{stderr}");
}
