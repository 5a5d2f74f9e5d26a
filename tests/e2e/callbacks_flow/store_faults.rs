//! A store that cannot write. The tests run as root, for whom a read-only file is writable,
//! so the full disk is made with the process's file-size limit (`RLIMIT_FSIZE`, with
//! `SIGXFSZ` ignored so a write past it fails instead of killing the process): the store's
//! writes fail as they would on a full disk. WeCom then gets a 503 (it retries later), the
//! log says why, and nothing that was not committed is kept or delivered.

use std::process::{Command, Stdio};

use super::*;

/// The file-size limit: a few pushes of [`PUSH_BYTES`] fill it.
const FSIZE: u64 = 3 * 1024 * 1024;
const PUSH_BYTES: usize = 400 * 1024;

/// The sidecar as the harness starts it, with its file-size limit set to `fsize`.
async fn start_capped(cb_port: u16, deliver_to: &str, store: &Path, fsize: u64) -> Sidecar {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let (listen, admin) = (free_port(), free_port());
    let config_path = dir.path().join("sidecar.yaml");
    let cb = callbacks_yaml(cb_port, deliver_to, store, Timing::default());
    std::fs::write(
        &config_path,
        config_yaml(listen, admin, "http://127.0.0.1:9", &cb),
    )
    .unwrap();
    let log_path = dir.path().join("sidecar.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_wecom-sidecar"));
    let lim = libc::rlimit {
        rlim_cur: fsize as libc::rlim_t,
        rlim_max: fsize as libc::rlim_t,
    };
    // SAFETY: only signal and setrlimit (both async-signal-safe) run between fork and exec.
    unsafe {
        command.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let child = command
        .arg("--config")
        .arg(&config_path)
        .env("TEST_HR_SECRET", HR_SECRET)
        .env("TEST_OPS_SECRET", OPS_SECRET)
        .env("TEST_CB_TOKEN", CB_TOKEN)
        .env("TEST_CB_AES_KEY", CB_AES_KEY)
        .env("WECOM_SIDECAR_LOG", "info")
        .env_remove("WECOM_SIDECAR_LOG_FORMAT")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .expect("start wecom-sidecar");
    let sc = Sidecar {
        child,
        base: format!("http://127.0.0.1:{listen}"),
        admin: format!("http://127.0.0.1:{admin}"),
        dir,
        log_path,
        config_path,
    };
    let up = eventually(Duration::from_secs(30), async || {
        tokio::net::TcpStream::connect(("127.0.0.1", cb_port))
            .await
            .is_ok()
    })
    .await;
    assert!(
        up,
        "the callback listener never opened; log:\n{}",
        sc.logs()
    );
    sc
}

/// A text message of about `PUSH_BYTES`.
fn big_message(n: u64) -> String {
    text_message(n).replace("hello", &"x".repeat(PUSH_BYTES))
}

#[tokio::test]
async fn a_full_disk_gets_wecom_a_503_and_a_log_line_and_keeps_nothing_uncommitted() {
    let app = receiver::Receiver::start().await;
    app.down();
    let state = tempfile::tempdir().unwrap();
    let store = state.path().join("sidecar.db");
    let cb_port = free_port();
    let mut sc = start_capped(cb_port, &app.url(), &store, FSIZE).await;
    let wecom = Wecom::new();
    let url = format!("http://127.0.0.1:{cb_port}{PATH}");
    let (mut accepted, mut refused) = (Vec::new(), Vec::new());
    for n in 0..40 {
        let xml = big_message(n);
        let (query, body) = wecom.push(&xml);
        let r = client()
            .post(format!("{url}?{query}"))
            .body(body)
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            200 => accepted.push(xml),
            503 => {
                refused.push(xml);
                if refused.len() == 3 {
                    break;
                }
            }
            other => panic!("push {n}: {other}; log:\n{}", sc.logs()),
        }
    }
    assert_eq!(
        refused.len(),
        3,
        "the disk never filled; log:\n{}",
        sc.logs()
    );
    let log = sc.logs();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("the store failed")),
        "a WARN line says why; log:\n{log}"
    );
    let m = sc.metrics().await;
    assert_eq!(
        m.sum(
            "wecom_callbacks_total",
            &[("app", "hr-bot"), ("result", "store-error")]
        ),
        3.0
    );
    sc.signal("KILL");
    sc.wait_exit(Duration::from_secs(10));
    // What the store holds: every push WeCom got a 200 for, none it got a 503 for.
    let db = rusqlite::Connection::open(&store).unwrap();
    let mut stmt = db.prepare("SELECT payload FROM items ORDER BY id").unwrap();
    let kept: Vec<String> = stmt
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|p| String::from_utf8(p.unwrap()).unwrap())
        .collect();
    assert_eq!(kept.len(), accepted.len());
    assert!(
        kept == accepted,
        "the store holds exactly the accepted pushes, in order"
    );
    for r in &refused {
        assert!(!kept.contains(r), "a push answered 503 was kept");
    }
    assert!(app.got().is_empty());
}

#[tokio::test]
async fn a_store_that_cannot_be_opened_is_a_startup_error_with_its_path() {
    let state = tempfile::tempdir().unwrap();
    // A folder where the file should be: SQLite cannot open it.
    let store = state.path().join("taken");
    std::fs::create_dir(&store).unwrap();
    let cb = callbacks_yaml(
        free_port(),
        "http://127.0.0.1:9/x",
        &store,
        Timing::default(),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sidecar.yaml");
    std::fs::write(
        &config,
        config_yaml(free_port(), free_port(), "http://127.0.0.1:9", &cb),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wecom-sidecar"))
        .arg("--config")
        .arg(&config)
        .env("TEST_HR_SECRET", HR_SECRET)
        .env("TEST_OPS_SECRET", OPS_SECRET)
        .env("TEST_CB_TOKEN", CB_TOKEN)
        .env("TEST_CB_AES_KEY", CB_AES_KEY)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&store.display().to_string()),
        "names the path: {err}"
    );
    assert!(err.contains("cannot be used"), "says why: {err}");
    assert!(!err.contains(CB_TOKEN) && !err.contains(CB_AES_KEY));
}
