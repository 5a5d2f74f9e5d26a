//! The Kubernetes example: its config passes `--check`, its manifests agree with the config
//! and the drain.

use super::*;

// ---------------------------------------------------------------------------------------------
// Kubernetes example

/// Every document of every YAML file under conf/k8s/.
fn k8s_docs() -> Vec<Value> {
    let dir = conf_dir().join("k8s");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("readable");
        for de in serde_yaml::Deserializer::from_str(&text) {
            let v = Value::deserialize(de)
                .unwrap_or_else(|e| panic!("{} is not YAML: {e}", f.display()));
            if !v.is_null() {
                docs.push(v);
            }
        }
    }
    docs
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn named<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    of_kind(docs, kind)
        .into_iter()
        .find(|d| d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} named {name} in conf/k8s/"))
}

fn str_of(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v:?}"))
}

fn seq(v: &Value) -> &[Value] {
    v.as_sequence().map_or(&[], |s| s.as_slice())
}

/// The example's pieces: the pod spec, the sidecar container, the config text, the path the
/// sidecar reads it from, and the Secret mounts (mount path, Secret document).
struct Example<'a> {
    pod: &'a Value,
    sidecar: &'a Value,
    config: String,
    config_path: PathBuf,
    secret_mounts: Vec<(String, &'a Value)>,
}

fn example(docs: &[Value]) -> Example<'_> {
    let deployments = of_kind(docs, "Deployment");
    assert_eq!(deployments.len(), 1, "one Deployment in conf/k8s/");
    let pod = &deployments[0]["spec"]["template"]["spec"];
    let sidecars: Vec<&Value> = seq(&pod["initContainers"])
        .iter()
        .chain(seq(&pod["containers"]))
        .filter(|c| str_of(&c["image"]).starts_with("wecom-sidecar"))
        .collect();
    assert_eq!(sidecars.len(), 1, "one wecom-sidecar container");
    let sidecar = sidecars[0];

    let args: Vec<&str> = seq(&sidecar["args"]).iter().map(str_of).collect();
    let at = args
        .iter()
        .position(|a| *a == "--config")
        .expect("the sidecar is given --config");
    let config_path = PathBuf::from(args[at + 1]);
    let dir = config_path.parent().expect("absolute path");
    let file = config_path
        .file_name()
        .expect("file name")
        .to_string_lossy();

    let volume = |mount_path: &Path| -> &Value {
        let mount = seq(&sidecar["volumeMounts"])
            .iter()
            .find(|m| Path::new(str_of(&m["mountPath"])) == mount_path)
            .unwrap_or_else(|| panic!("nothing mounted at {}", mount_path.display()));
        seq(&pod["volumes"])
            .iter()
            .find(|v| v["name"] == mount["name"])
            .expect("mounted volume is declared")
    };
    let config_volume = volume(dir);
    let cm_name = str_of(&config_volume["configMap"]["name"]);
    // With `items`, the file is the item whose path is the file name; else the key of that name.
    let key = seq(&config_volume["configMap"]["items"])
        .iter()
        .find(|i| i["path"].as_str() == Some(&*file))
        .map_or(file.to_string(), |i| str_of(&i["key"]).to_string());
    let config = str_of(&named(docs, "ConfigMap", cm_name)["data"][key.as_str()]).to_string();

    let secret_mounts = seq(&sidecar["volumeMounts"])
        .iter()
        .filter_map(|m| {
            let v = seq(&pod["volumes"])
                .iter()
                .find(|v| v["name"] == m["name"])?;
            let name = v["secret"]["secretName"].as_str()?;
            Some((
                str_of(&m["mountPath"]).trim_end_matches('/').to_string(),
                named(docs, "Secret", name),
            ))
        })
        .collect();
    Example {
        pod,
        sidecar,
        config,
        config_path,
        secret_mounts,
    }
}

/// The file names a Secret puts in its mount: its keys.
fn secret_keys(secret: &Value) -> BTreeSet<String> {
    ["stringData", "data"]
        .iter()
        .filter_map(|k| secret[*k].as_mapping())
        .flat_map(|m| m.keys().map(|k| str_of(k).to_string()))
        .collect()
}

#[test]
fn k8s_sidecar_config_passes_check_with_the_mounted_secrets() {
    let docs = k8s_docs();
    let ex = example(&docs);
    let config: Value = serde_yaml::from_str(&ex.config).expect("the ConfigMap's config is YAML");

    let tmp = tempfile::tempdir().expect("temp dir");
    let mut text = ex.config.clone();
    for (i, (mount, secret)) in ex.secret_mounts.iter().enumerate() {
        // Stand-ins for the Secret's files, where the kubelet would mount them.
        let dir = tmp.path().join(format!("secret-{i}"));
        std::fs::create_dir(&dir).expect("mkdir");
        for key in secret_keys(secret) {
            std::fs::write(dir.join(&key), format!("stand-in-{key}\n")).expect("write");
        }
        text = text.replace(&format!("{mount}/"), &format!("{}/", dir.display()));
    }
    // Every secret file the config names is a key of a Secret mounted at its directory.
    let mut envs = Vec::new();
    for (i, entry) in seq(&config["apps"])
        .iter()
        .chain(seq(&config["clients"]))
        .enumerate()
    {
        for key in ["secret_file", "key_file"] {
            if let Some(path) = entry[key].as_str() {
                let ok = ex.secret_mounts.iter().any(|(mount, secret)| {
                    path.strip_prefix(&format!("{mount}/"))
                        .is_some_and(|k| secret_keys(secret).contains(k))
                });
                assert!(
                    ok,
                    "entry {i}: {key} {path} is not a key of a mounted Secret"
                );
            }
        }
        for key in ["secret_env", "key_env"] {
            if let Some(var) = entry[key].as_str() {
                let declared = seq(&ex.sidecar["env"]).iter().any(|e| e["name"] == var);
                assert!(
                    declared,
                    "entry {i}: {key} {var} is not set on the sidecar container"
                );
                envs.push(var.to_string());
            }
        }
    }

    let path = tmp
        .path()
        .join(ex.config_path.file_name().expect("file name"));
    std::fs::write(&path, &text).expect("write config");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wecom-sidecar"));
    cmd.arg("--config").arg(&path).arg("--check");
    for var in &envs {
        cmd.env(var, "stand-in-secret");
    }
    let out = cmd.output().expect("run wecom-sidecar --check");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "the ConfigMap's config failed --check:\n{said}\n--- config:\n{text}"
    );
    assert!(said.contains("ok"), "{said}");

    // Placeholders only: a real secret must never be committed.
    for secret in of_kind(&docs, "Secret") {
        assert!(
            secret["data"].is_null(),
            "Secrets here use stringData with placeholders"
        );
        for (k, v) in secret["stringData"].as_mapping().expect("stringData") {
            assert!(
                str_of(v).starts_with("REPLACE-ME"),
                "Secret key {k:?} does not hold a REPLACE-ME placeholder"
            );
        }
    }
}

/// A probe's or annotation's port as a number (named ports resolved on the container).
fn port_number(container: &Value, port: &Value) -> u64 {
    if let Some(n) = port.as_u64() {
        return n;
    }
    let name = str_of(port);
    if let Ok(n) = name.parse() {
        return n;
    }
    seq(&container["ports"])
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("no port named {name}"))
}

#[test]
fn k8s_manifests_agree_with_the_config_and_the_drain() {
    let docs = k8s_docs();
    let ex = example(&docs);
    let config: Value = serde_yaml::from_str(&ex.config).expect("YAML");
    let addr = |key: &str, default: &str| -> std::net::SocketAddr {
        config[key]
            .as_str()
            .unwrap_or(default)
            .parse()
            .unwrap_or_else(|e| panic!("{key}: {e}"))
    };
    let listen = addr("listen", "127.0.0.1:8080");
    let admin = addr("admin_listen", "127.0.0.1:9901");
    assert!(
        listen.ip().is_loopback(),
        "listen must stay on the pod's loopback, not {listen}"
    );

    // Probes hit the admin listener: /healthz for liveness, /readyz for readiness.
    let probes = [
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
        ("startupProbe", "/readyz"),
    ];
    for (probe, path) in probes {
        let p = &ex.sidecar[probe]["httpGet"];
        if probe == "startupProbe" && p.is_null() {
            continue;
        }
        assert_eq!(str_of(&p["path"]), path, "{probe}");
        assert_eq!(
            port_number(ex.sidecar, &p["port"]),
            u64::from(admin.port()),
            "{probe} port"
        );
    }
    let deployment = of_kind(&docs, "Deployment")[0];
    let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    if let Some(port) = annotations["prometheus.io/port"].as_str() {
        assert_eq!(port, admin.port().to_string(), "prometheus.io/port");
    }

    // The grace period outlasts the sidecar's longest drain: DRAIN_TIMEOUT, then the runtimes'
    // graceful_shutdown_timeout_seconds (src/server.rs).
    let drain = secs_after(SERVER_RS, "DRAIN_TIMEOUT: Duration = Duration::from_secs(")
        + secs_after(SERVER_RS, "graceful_shutdown_timeout_seconds: Some(");
    let grace = ex.pod["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("terminationGracePeriodSeconds is set");
    assert!(
        grace > drain,
        "terminationGracePeriodSeconds {grace} must exceed the sidecar's drain of at most {drain} s"
    );

    // Hardening: non-root, read-only root filesystem with a writable /tmp (uploads are spooled
    // there), no privilege escalation, resource requests and limits.
    let sc = &ex.sidecar["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert!(
        sc["runAsNonRoot"] == true || ex.pod["securityContext"]["runAsNonRoot"] == true,
        "runAsNonRoot"
    );
    let tmp_mount = seq(&ex.sidecar["volumeMounts"])
        .iter()
        .find(|m| m["mountPath"] == "/tmp")
        .expect("a writable /tmp for spooled uploads");
    let tmp_volume = seq(&ex.pod["volumes"])
        .iter()
        .find(|v| v["name"] == tmp_mount["name"])
        .expect("declared");
    assert!(!tmp_volume["emptyDir"].is_null(), "/tmp is an emptyDir");
    for kind in ["requests", "limits"] {
        for res in ["cpu", "memory"] {
            assert!(
                !ex.sidecar["resources"][kind][res].is_null(),
                "resources.{kind}.{res}"
            );
        }
    }

    // Only the sidecar sees the secrets.
    let secret_volumes: BTreeSet<&str> = seq(&ex.pod["volumes"])
        .iter()
        .filter(|v| !v["secret"].is_null())
        .map(|v| str_of(&v["name"]))
        .collect();
    for c in seq(&ex.pod["containers"])
        .iter()
        .chain(seq(&ex.pod["initContainers"]))
    {
        if std::ptr::eq(c, ex.sidecar) {
            continue;
        }
        for m in seq(&c["volumeMounts"]) {
            assert!(
                !secret_volumes.contains(str_of(&m["name"])),
                "container {:?} mounts the WeCom secrets",
                c["name"]
            );
        }
    }
}
