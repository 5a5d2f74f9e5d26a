//! A careless operator and a hostile web page, end to end against the real binary and the
//! WeCom simulator: secrets pasted into the wrong key, `trace` logging, a `ca_file` that is no
//! certificate, FIFOs and devices as files, huge and deeply nested configs, browsers and
//! foreign `Host` names on the admin port (the shipped Kubernetes example still scraped and
//! probed), and the reload line, count and access-log figures an operator reads.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::*;

/// What an operator pastes by mistake: a WeCom app secret is 43 characters.
const PASTED: &str = "Xy7pQ2vN8sLkJ3hG5fDdS1aZ0cVbMnBvCxZaQwErTy0";

/// A self-signed CA certificate (its key was thrown away).
const TEST_CA_PEM: &str = include_str!("../data/test-ca.pem");

/// Longest a `--check` may run here before it counts as hung. A watchdog, not a speed test:
/// every case below used to hang for ever, grow without bound or take minutes.
const HUNG: Duration = Duration::from_secs(60);

/// Runs `wecom-sidecar` with `args`; its exit code and everything it printed, or a failure if
/// it did not exit within [`HUNG`].
fn run(args: &[&str], envs: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_wecom-sidecar"))
        .args(args)
        .env_remove("WECOM_SIDECAR_LOG")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let Some(status) = exited_within(&mut child, HUNG) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("wecom-sidecar {args:?} still running after {HUNG:?}: hung");
    };
    let text = format!(
        "{}{}",
        std::fs::read_to_string(out).unwrap_or_default(),
        std::fs::read_to_string(err).unwrap_or_default()
    );
    (status.code().unwrap_or(-1), text)
}

fn check(path: &Path, envs: &[(&str, &str)]) -> (i32, String) {
    run(&["--config", path.to_str().unwrap(), "--check"], envs)
}

/// A valid config for `--check` (its secret from `SET`), plus `extra`.
fn checkable(extra: &str) -> String {
    format!(
        "upstreams:\n  primary: {{ url: \"https://qyapi.weixin.qq.com\" }}\napps:\n  - {{ name: a, corp_id: ww1, secret_env: SET }}\n{extra}"
    )
}

#[track_caller]
fn assert_no_part_of(secret: &str, text: &str) {
    for window in secret.as_bytes().windows(5) {
        let w = std::str::from_utf8(window).unwrap();
        assert!(!text.contains(w), "{w:?} of the secret shown in:\n{text}");
    }
}

/// Makes a FIFO at `path`.
fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(ok.success(), "mkfifo {}", path.display());
}

/// One raw HTTP/1.1 request to `addr`; the status code of the answer and the answer.
async fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut conn = Raw::connect(addr).await.within(Duration::from_secs(10));
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Content-Length: 0\r\nConnection: close\r\n\r\n");
    conn.send(req.as_bytes()).await.unwrap();
    let (answer, _) = conn.until_close().await;
    let answer = String::from_utf8_lossy(&answer).to_string();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {answer:?}"));
    (status, answer)
}

// ---------------------------------------------------------------------------------------------
// 1. A secret pasted into the wrong key.

#[tokio::test]
async fn a_pasted_secret_is_never_echoed_by_check_reload_or_log() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        checkable(&format!("listen: \"{PASTED}\"\n")),
        checkable(&format!("defaults: {{ deadline: {PASTED} }}\n")),
        checkable("").replace(
            "secret_env: SET",
            &format!("secret_env: SET, agent_id: {PASTED}"),
        ),
        checkable(&format!("token: {{ {PASTED}: 5m }}\n")),
        checkable(&format!("upstreams:\n  {PASTED}: {{ url: x }}\n")),
    ];
    for (i, text) in cases.iter().enumerate() {
        let path = dir.path().join(format!("c{i}.yaml"));
        std::fs::write(&path, text).unwrap();
        let (code, out) = check(&path, &[("SET", "x")]);
        assert_eq!(code, 1, "case {i}:\n{out}");
        assert_no_part_of(PASTED, &out);
    }

    // The same mistake in a reload: the answer and the log.
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), "").await;
    let good = std::fs::read_to_string(&sc.config_path).unwrap();
    let bad = good.replace("timeout: 3s", &format!("timeout: \"{PASTED}\""));
    std::fs::write(&sc.config_path, bad).unwrap();
    let (status, body) = sc.reload().await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("upstreams.primary.timeout"), "{body}");
    assert_no_part_of(PASTED, &body);
    assert_no_part_of(PASTED, &sc.logs());
}

// ---------------------------------------------------------------------------------------------
// 2. `WECOM_SIDECAR_LOG=trace`.

#[tokio::test]
async fn trace_logging_of_every_target_shows_no_secret_token_or_robot_key() {
    const ROBOT_KEY: &str = "robot-key-3c2b1a0f9e8d7c6b5a49";
    let sim = simulator().await;
    for format in ["text", "json"] {
        let sc = Sidecar::start_with_env(
            |l, a| config_yaml(l, a, &sim.url(), ""),
            &[
                ("WECOM_SIDECAR_LOG", "trace"),
                ("WECOM_SIDECAR_LOG_FORMAT", format),
            ],
        )
        .await;
        sc.wait_ready().await;
        let c = client();
        let (status, _, v) = get_json(&c, &sc.url("/cgi-bin/user/get?userid=zhangsan")).await;
        assert_eq!((status, v["errcode"].as_i64()), (200, Some(0)), "{v}");
        let (_, _, v) =
            get_json(&c, &sc.url("/cgi-bin/department/list?access_token=ops-bot")).await;
        assert_eq!(v["errcode"], 0, "{v}");
        let (_, _, v) = post_json(
            &c,
            &sc.url(&format!("/cgi-bin/webhook/send?key={ROBOT_KEY}")),
            &serde_json::json!({"msgtype": "text", "text": {"content": "hi"}}),
        )
        .await;
        assert_eq!(v["errcode"], 0, "{v}");
        // A scrape answers once the lines logged before it are written.
        sc.settled_metrics().await;
        let logs = sc.logs();
        // The user's filter still holds for our own targets: their debug lines are there.
        assert!(
            logs.lines()
                .any(|l| l.contains("DEBUG") && l.contains("upstream")),
            "no debug line of our own:\n{logs}"
        );
        let mut secrets = vec![
            HR_SECRET.to_string(),
            OPS_SECRET.to_string(),
            ROBOT_KEY.to_string(),
        ];
        secrets.extend(sim.issued_tokens());
        assert!(secrets.len() >= 5, "the simulator issued no token");
        for s in &secrets {
            assert!(
                !logs.contains(s.as_str()),
                "{format} log holds {s:?}:\n{logs}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. `ca_file` that is no certificate.

#[tokio::test]
async fn a_ca_file_that_is_no_certificate_is_refused_at_check_and_reload() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let config = dir.path().join("sidecar.yaml");
    std::fs::write(
        &config,
        checkable("").replace(
            "url: \"https://qyapi.weixin.qq.com\"",
            "url: \"https://qyapi.weixin.qq.com\", ca_file: ca.pem",
        ),
    )
    .unwrap();
    std::fs::write(&ca, TEST_CA_PEM).unwrap();
    let (code, out) = check(&config, &[("SET", "x")]);
    assert_eq!(code, 0, "{out}");
    let key = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n-----END PRIVATE KEY-----\n";
    for (what, contents) in [
        ("a text file", "trust me\n"),
        ("an empty file", ""),
        ("a private key", key),
    ] {
        std::fs::write(&ca, contents).unwrap();
        let (code, out) = check(&config, &[("SET", "x")]);
        assert_eq!(code, 1, "{what} passed --check:\n{out}");
        assert!(out.contains("upstreams.primary.ca_file"), "{what}:\n{out}");
        assert!(!out.contains("MC4CAQ"), "{what}: contents shown:\n{out}");
    }

    // At reload: refused, naming ca_file; the old config keeps serving.
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), "").await;
    let ca = sc.dir.path().join("ca.pem");
    std::fs::write(&ca, "just notes\n").unwrap();
    let text = std::fs::read_to_string(&sc.config_path).unwrap();
    let text = text.replace(
        "    timeout: 3s\n",
        "    timeout: 3s\n    ca_file: ca.pem\n",
    );
    std::fs::write(&sc.config_path, text).unwrap();
    let (status, body) = sc.reload().await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("upstreams.primary.ca_file"), "{body}");
    let (status, _, v) = get_json(&client(), &sc.url("/cgi-bin/user/get?userid=lisi")).await;
    assert_eq!((status, v["errcode"].as_i64()), (200, Some(0)), "{v}");
}

// ---------------------------------------------------------------------------------------------
// 4. FIFOs, devices and huge files.

#[test]
fn fifos_devices_and_huge_files_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // --config /dev/zero (used to grow to 9.8 GB) and a FIFO as the config (hung).
    let (code, out) = check(Path::new("/dev/zero"), &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("a device, not a regular file"), "{out}");
    let fifo = dir.path().join("config.fifo");
    mkfifo(&fifo);
    let (code, out) = check(&fifo, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("a FIFO, not a regular file"), "{out}");
    let huge = dir.path().join("huge.yaml");
    let f = std::fs::File::create(&huge).unwrap();
    f.set_len(11 * 1024 * 1024).unwrap();
    let (code, out) = check(&huge, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("larger than 10 MiB"), "{out}");

    // A FIFO as secret_file, as a client's key_file and as ca_file.
    mkfifo(&dir.path().join("secret.fifo"));
    let cases = [
        (
            checkable("").replace("secret_env: SET", "secret_file: secret.fifo"),
            "apps[0].secret_file",
        ),
        (
            checkable("clients:\n  - { name: b, key_file: secret.fifo, apps: [a] }\n"),
            "clients[0].key_file",
        ),
        (
            checkable("").replace(
                "url: \"https://qyapi.weixin.qq.com\"",
                "url: \"https://qyapi.weixin.qq.com\", ca_file: secret.fifo",
            ),
            "upstreams.primary.ca_file",
        ),
        (
            checkable("").replace("secret_env: SET", "secret_file: /dev/zero"),
            "apps[0].secret_file",
        ),
    ];
    for (i, (text, key)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("c{i}.yaml"));
        std::fs::write(&path, text).unwrap();
        let (code, out) = check(&path, &[("SET", "x")]);
        assert_eq!(code, 1, "{key}:\n{out}");
        assert!(out.contains(key), "{key}:\n{out}");
        assert!(out.contains("not a regular file"), "{key}:\n{out}");
    }
}

// ---------------------------------------------------------------------------------------------
// 5 and 9. Huge and pathological configs.

#[test]
fn many_routes_many_problems_and_deep_nesting_are_all_answered() {
    let dir = tempfile::tempdir().unwrap();
    // 200,000 routes (quadratic shadowing checks: did not finish in 120 s).
    let routes: String = (0..200_000)
        .map(|i| format!("  - {{ path: /cgi-bin/r/{i} }}\n"))
        .collect();
    let path = dir.path().join("routes.yaml");
    std::fs::write(&path, checkable(&format!("routes:\n{routes}"))).unwrap();
    let (code, out) = check(&path, &[("SET", "x")]);
    assert_eq!(code, 0, "{}", &out[..out.len().min(2000)]);
    assert!(out.contains("200000 routes"), "{out}");

    // 5,000 problems, each with its line (one lookup per problem: 22 s).
    let routes: String = (0..5_000)
        .map(|i| format!("  - {{ path: /cgi-bin/r/{i}, deadline: soon }}\n"))
        .collect();
    std::fs::write(&path, checkable(&format!("routes:\n{routes}"))).unwrap();
    let (code, out) = check(&path, &[("SET", "x")]);
    assert_eq!(code, 1);
    let problems: Vec<&str> = out.lines().filter(|l| l.contains(".deadline: ")).collect();
    assert_eq!(problems.len(), 5_000, "{}", &out[..out.len().min(2000)]);
    assert!(
        problems[4_999].starts_with("routes[4999].deadline"),
        "{}",
        problems[4_999]
    );
    assert!(
        problems[4_999].ends_with("(line 5005)"),
        "{}",
        problems[4_999]
    );

    // Deep nesting, flow and block (16 s before being refused).
    let block: String = (0..3_000)
        .map(|i| format!("{}- a:\n", " ".repeat(i * 2)))
        .collect();
    for (what, text) in [
        ("[", format!("routes: {}\n", "[".repeat(100_000))),
        ("{", format!("routes: {}\n", "{a: ".repeat(100_000))),
        ("block", format!("routes:\n{block}")),
    ] {
        std::fs::write(&path, checkable(&text)).unwrap();
        let (code, out) = check(&path, &[("SET", "x")]);
        assert_eq!(code, 1, "{what}");
        assert!(out.contains("more than 64 levels deep"), "{what}: {out}");
    }
    // Dense nodes: serde_yaml holds every event in memory first (10 MiB of lists 62 deep took 967 MB).
    let dense = "  - [[1]]\n".repeat(400_000);
    std::fs::write(&path, checkable(&format!("routes:\n{dense}"))).unwrap();
    let (code, out) = check(&path, &[("SET", "x")]);
    assert_eq!(code, 1);
    assert!(out.contains("more than 1000000 YAML nodes"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// 6 and 8. Browsers and foreign Host names on the admin port.

#[tokio::test]
async fn admin_posts_from_browsers_are_refused() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), "").await;
    let admin = addr_of(&sc.admin);
    let host = ("Host", sc.admin.trim_start_matches("http://"));
    for browser in [
        [host, ("Origin", "http://evil")],
        [host, ("Origin", "null")],
        [host, ("Sec-Fetch-Site", "cross-site")],
    ] {
        for path in [
            "/admin/reload",
            "/admin/plans/any/start",
            "/admin/plans/any/abort",
        ] {
            let (status, answer) = raw(admin, "POST", path, &browser).await;
            assert_eq!(status, 403, "{path} {browser:?}: {answer}");
        }
    }
    let metrics = sc.metrics().await;
    assert_eq!(
        metrics
            .value("wecom_config_reloads_total", &[("result", "ok")])
            .unwrap_or(0.0),
        0.0,
        "a refused POST reloaded:\n{metrics}"
    );
    // curl and scripts send neither header.
    let (status, answer) = raw(admin, "POST", "/admin/reload", &[host]).await;
    assert_eq!(status, 200, "{answer}");
    // Reads stay open to a page's fetch (the browser keeps their answers from it).
    let (status, _) = raw(admin, "GET", "/metrics", &[host, ("Origin", "http://evil")]).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn foreign_host_names_are_refused_and_admin_hosts_let_names_in() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), "admin_hosts: [wecom-sidecar.monitoring.svc]\n").await;
    let admin = addr_of(&sc.admin);
    let port = admin.port().to_string();
    for (method, path) in [
        ("GET", "/admin/status"),
        ("POST", "/admin/reload"),
        ("POST", "/admin/plans/any/start"),
        ("GET", "/metrics"),
        ("GET", "/healthz"),
    ] {
        for host in [
            "attacker.example",
            &format!("attacker.example:{port}"),
            "127.0.0.1.nip.io",
        ] {
            let (status, answer) = raw(admin, method, path, &[("Host", host)]).await;
            assert_eq!(status, 421, "{method} {path} Host {host}: {answer}");
            assert!(!answer.contains(CORP_ID), "{answer}");
        }
    }
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "LOCALHOST".to_string(),
        format!("[::1]:{port}"),
        format!("wecom-sidecar.monitoring.svc:{port}"),
    ] {
        let (status, answer) = raw(admin, "GET", "/admin/status", &[("Host", &host)]).await;
        assert_eq!(status, 200, "Host {host}: {answer}");
    }
    // An absolute-form target names the host too (pingora itself drops one whose Host differs).
    let (status, answer) = raw(
        admin,
        "GET",
        "http://attacker.example/admin/status",
        &[("Host", "attacker.example")],
    )
    .await;
    assert_eq!(status, 421, "{answer}");
    let metrics = sc.metrics().await;
    assert_eq!(
        metrics
            .value("wecom_config_reloads_total", &[("result", "ok")])
            .unwrap_or(0.0),
        0.0,
        "{metrics}"
    );
}

/// This machine's address on its network (what a pod IP is in Kubernetes), when it has one.
fn network_ip() -> Option<IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    // No packet is sent: connecting a UDP socket only picks the route and source address.
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test]
async fn the_k8s_example_is_still_probed_and_scraped() {
    let cm = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/conf/k8s/configmap.yaml"
    ))
    .unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&cm).unwrap();
    let shipped = doc["data"]["sidecar.yaml"].as_str().unwrap().to_string();
    let shipped: serde_yaml::Value = serde_yaml::from_str(&shipped).unwrap();
    let admin_ip = shipped["admin_listen"]
        .as_str()
        .unwrap()
        .rsplit_once(':')
        .unwrap()
        .0
        .to_string();
    let names: Vec<String> = shipped["admin_hosts"]
        .as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|h| h.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let sim = simulator().await;
    let upstream = sim.url();
    let sc = Sidecar::start_with(|listen, admin| {
        // The shipped config as it is, but on this test's ports, the simulator as WeCom and its
        // secrets from the environment (the Secret's files are not here).
        let mut cfg = shipped.clone();
        cfg["listen"] = format!("127.0.0.1:{listen}").into();
        cfg["admin_listen"] = format!("{admin_ip}:{admin}").into();
        cfg["upstreams"]["primary"]["url"] = upstream.clone().into();
        for app in cfg["apps"].as_sequence_mut().unwrap() {
            let var = if app["name"] == "ops-bot" {
                "TEST_OPS_SECRET"
            } else {
                "TEST_HR_SECRET"
            };
            let m = app.as_mapping_mut().unwrap();
            m.remove("secret_file");
            m.insert("secret_env".into(), var.into());
            m.insert("corp_id".into(), CORP_ID.into());
        }
        serde_yaml::to_string(&cfg).unwrap()
    })
    .await;
    let port = addr_of(&sc.admin).port();
    // Kubelet probes and Prometheus connect to the pod IP and send it as Host.
    let ip = network_ip().unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let pod = SocketAddr::new(ip, port);
    let by_ip = pod.to_string();
    let mut hosts = vec![by_ip.clone(), ip.to_string()];
    hosts.extend(names.iter().map(|n| format!("{n}:{port}")));
    for host in &hosts {
        for (path, agent) in [
            ("/healthz", "kube-probe/1.29"),
            ("/readyz", "kube-probe/1.29"),
            ("/metrics", "Prometheus/2.53.0"),
        ] {
            let (status, answer) = raw(
                pod,
                "GET",
                path,
                &[("Host", host), ("User-Agent", agent), ("Accept", "*/*")],
            )
            .await;
            assert!(
                status == 200 || (path == "/readyz" && status == 503),
                "{path} via {pod} with Host {host}: {answer}"
            );
        }
    }
    // ...and a rebinding page on the same pod IP is still refused.
    let (status, _) = raw(pod, "GET", "/admin/status", &[("Host", "attacker.example")]).await;
    assert_eq!(status, 421);
}

// ---------------------------------------------------------------------------------------------
// 10. What an operator reads: the refused reload's line, the reload count, latency_ms.

#[tokio::test]
async fn a_refused_reload_is_one_log_line_and_one_edit_is_one_reload() {
    let sim = simulator().await;
    let sc = Sidecar::start(&sim.url(), "").await;
    let good = std::fs::read_to_string(&sc.config_path).unwrap();

    // One edit, then POST /admin/reload: one reload, not that and the watcher's.
    std::fs::write(
        &sc.config_path,
        format!("{good}routes:\n  - {{ path: /cgi-bin/user/* }}\n"),
    )
    .unwrap();
    let (status, body) = sc.reload().await;
    assert_eq!(status, 200, "{body}");
    // The watcher looks every second; give it three looks.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let metrics = sc.metrics().await;
    assert_eq!(
        metrics
            .value("wecom_config_reloads_total", &[("result", "ok")])
            .unwrap_or(0.0),
        1.0,
        "{metrics}"
    );

    // A refused reload with two problems: one WARN line naming both.
    let bad = good
        .replace("timeout: 3s", "timeout: never")
        .replace("connect_timeout: 1s", "connect_timeout: 0s");
    std::fs::write(&sc.config_path, bad).unwrap();
    let (status, body) = sc.reload().await;
    assert_eq!(status, 422, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let error = v["error"].as_str().unwrap();
    assert!(!error.contains('\n'), "{error}");
    let logs = sc.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("config reload refused"))
        .unwrap_or_else(|| panic!("no refused-reload line:\n{logs}"));
    assert!(
        line.contains("upstreams.primary.timeout")
            && line.contains("upstreams.primary.connect_timeout"),
        "the problems are not on the WARN line itself:\n{line}\n---\n{logs}"
    );
}

#[tokio::test]
async fn latency_ms_in_the_access_log_has_at_most_three_decimals() {
    let sim = simulator().await;
    let sc = Sidecar::start_with_env(
        |l, a| config_yaml(l, a, &sim.url(), ""),
        &[("WECOM_SIDECAR_LOG_FORMAT", "json")],
    )
    .await;
    let c = client();
    for _ in 0..20 {
        let (status, _, _) = get_json(&c, &sc.url("/cgi-bin/user/get?userid=zhangsan")).await;
        assert_eq!(status, 200);
    }
    // Each call's line is written once its answer is out: wait for the last one.
    sc.settled_metrics().await;
    let logs = sc.logs();
    let mut seen = 0;
    for line in logs.lines().filter(|l| l.contains("\"target\":\"access\"")) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let raw = &line[line.find("\"latency_ms\":").unwrap() + 13..];
        let number: String = raw
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let decimals = number.split_once('.').map_or(0, |(_, d)| d.len());
        assert!(decimals <= 3, "latency_ms {number} in {line}");
        assert!(v["latency_ms"].as_f64().is_some(), "{line}");
        seen += 1;
    }
    assert!(seen >= 20, "{seen} access lines:\n{logs}");
}
