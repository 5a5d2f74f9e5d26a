//! `--check`: every shipped config passes, and each class of problem gives a clear error
//! naming its key, with exit code 1 and nothing started.

use std::process::Command;

fn check(path: &std::path::Path, envs: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wecom-sidecar"));
    cmd.arg("--config").arg(path).arg("--check");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Every secret variable a file names (`secret_env`, and a callback's `token_env` and
/// `aes_key_env`), each with a stand-in value of its kind's shape.
fn secret_envs(text: &str) -> Vec<(String, &'static str)> {
    const STAND_INS: &[(&str, &str)] = &[
        ("secret_env:", "stand-in-secret"),
        ("token_env:", "StandInToken"),
        // WeCom's EncodingAESKey shape: 43 base64 characters.
        (
            "aes_key_env:",
            "StandInAesKey0123456789abcdefghijklmnopqrst",
        ),
    ];
    text.lines()
        .filter_map(|l| {
            let l = l.trim().trim_start_matches("- ");
            STAND_INS.iter().find_map(|(key, value)| {
                l.strip_prefix(key)
                    .map(|v| (v.split('#').next().unwrap().trim().to_string(), *value))
            })
        })
        .collect()
}

#[test]
fn every_shipped_config_passes_check() {
    let conf = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
    let mut checked = 0;
    let mut stack = vec![conf];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            // Sidecar configs only: other YAML under conf/ (Kubernetes, Prometheus) is not ours.
            if !(name.ends_with(".yaml") && path.parent().unwrap().ends_with("conf")) {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let vars = secret_envs(&text);
            let envs: Vec<(&str, &str)> = vars.iter().map(|(v, s)| (v.as_str(), *s)).collect();
            let (code, out) = check(&path, &envs);
            assert_eq!(code, 0, "{} failed --check:\n{out}", path.display());
            assert!(out.contains("ok"), "{out}");
            checked += 1;
        }
    }
    assert!(
        checked >= 2,
        "expected conf/sidecar.yaml and conf/dev.yaml, checked {checked}"
    );
}

#[test]
fn problems_are_reported_with_keys_and_exit_one() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str)] = &[
        ("listen: [\n", "line"),
        ("upstreams:\n  primary: { url: \"https://x\" }\napps:\n  - { name: a, corp_id: w, secret_env: NOPE_NOT_SET }\n", "apps[0].secret_env"),
        ("upstreams:\n  primary: { url: \"https://x\", timeout: fast }\napps:\n  - { name: a, corp_id: w, secret_env: SET }\n", "upstreams.primary.timeout"),
        ("upstreams:\n  primary: { url: \"https://x\" }\napps:\n  - { name: a, corp_id: w, secret_env: SET }\nroutes:\n  - { path: /cgi-bin/x, split: { primary: 50 } }\n", "routes[0].split"),
        ("upstreams:\n  primary: { url: \"https://x\" }\napps:\n  - { name: a, corp_id: w, secret_env: SET }\nlisten: \"127.0.0.1:1\"\nunknown_key: 1\n", "unknown_key"),
    ];
    for (i, (yaml, expect)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("c{i}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        let (code, out) = check(&path, &[("SET", "x")]);
        assert_eq!(code, 1, "case {i} should fail:\n{out}");
        assert!(out.contains(expect), "case {i}: {expect:?} not in:\n{out}");
    }
    let (code, out) = check(&dir.path().join("missing.yaml"), &[]);
    assert_eq!(code, 1);
    assert!(out.contains("missing.yaml"), "{out}");
}

/// The repository's own configs, as CI checks them: `conf/*.yaml` and the config inside the
/// Kubernetes ConfigMap, with no secret anywhere (`--check --no-secrets`).
#[test]
fn every_shipped_config_passes_check_without_secrets() {
    let conf = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
    let dir = tempfile::tempdir().unwrap();
    let mut configs: Vec<std::path::PathBuf> = std::fs::read_dir(&conf)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    let cm = std::fs::read_to_string(conf.join("k8s/configmap.yaml")).unwrap();
    let cm: serde_yaml::Value = serde_yaml::from_str(&cm).unwrap();
    let k8s = dir.path().join("k8s-sidecar.yaml");
    std::fs::write(&k8s, cm["data"]["sidecar.yaml"].as_str().unwrap()).unwrap();
    configs.push(k8s);
    assert!(configs.len() >= 3, "{configs:?}");
    for path in &configs {
        let out = Command::new(env!("CARGO_BIN_EXE_wecom-sidecar"))
            .arg("--config")
            .arg(path)
            .args(["--check", "--no-secrets"])
            .env_clear()
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(0), "{}:\n{said}", path.display());
        assert!(said.contains("secrets and ca_file not read"), "{said}");
    }
    // Without --no-secrets the same configs still need their secrets (nothing is skipped
    // silently), and --no-secrets means nothing without --check.
    let (code, out) = check(&configs[configs.len() - 1], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("secret_file"), "{out}");
    let out = Command::new(env!("CARGO_BIN_EXE_wecom-sidecar"))
        .args(["--no-secrets"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
