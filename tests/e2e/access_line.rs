//! The access line as the real binary writes it through its background log writer: every
//! field the README's "Logs" names, in text and in JSON, out by the time a scrape counts the
//! call, and the last lines still written when SIGTERM ends the process.

use std::time::Duration;

use crate::harness::*;

/// One call with a request id of its own, then the process's lines once a scrape counts it.
async fn one_call(sc: &Sidecar, id: &str) -> String {
    let c = client();
    let r = c
        .get(sc.url("/cgi-bin/user/get?userid=zhangsan"))
        .header("X-WeCom-App", "ops-bot")
        .header("X-Request-Id", id)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    sc.settled_metrics().await;
    sc.logs()
}

#[tokio::test]
async fn the_access_line_carries_every_field_in_text_and_in_json() {
    let sim = simulator().await;
    for format in ["text", "json"] {
        let sc = Sidecar::start_with_env(
            |l, a| config_yaml(l, a, &sim.url(), ""),
            &[
                ("WECOM_SIDECAR_LOG", "info"),
                ("WECOM_SIDECAR_LOG_FORMAT", format),
            ],
        )
        .await;
        sc.wait_ready().await;
        let id = format!("access-line-{format}");
        // The scrape answers once the call's line is written: no waiting for it here.
        let logs = one_call(&sc, &id).await;
        let line = logs
            .lines()
            .find(|l| l.contains(&id))
            .unwrap_or_else(|| panic!("no line of {id} once scraped:\n{logs}"));
        if format == "text" {
            let (ts, rest) = line.split_once(' ').unwrap();
            assert!(ts.len() == 27 && ts.ends_with('Z'), "{line}");
            assert!(rest.starts_with(" INFO access: call "), "{line}");
            for field in [
                format!("request_id={id} "),
                " method=GET ".into(),
                " path=/cgi-bin/user/get ".into(),
                " api=user/get ".into(),
                " app=\"ops-bot\" ".into(),
                " upstream=\"primary\" ".into(),
                " attempts=1 ".into(),
                " outcome=\"ok\" ".into(),
                " status=200 ".into(),
                " errcode=0 ".into(),
                " latency_ms=".into(),
            ] {
                assert!(line.contains(&field), "{field:?} missing: {line}");
            }
            assert!(!line.contains("\x1b["), "no styling: {line:?}");
        } else {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            for (k, want) in [
                ("level", serde_json::json!("INFO")),
                ("target", "access".into()),
                ("message", "call".into()),
                ("request_id", id.as_str().into()),
                ("method", "GET".into()),
                ("path", "/cgi-bin/user/get".into()),
                ("api", "user/get".into()),
                ("app", "ops-bot".into()),
                ("upstream", "primary".into()),
                ("attempts", 1.into()),
                ("outcome", "ok".into()),
                ("status", 200.into()),
                ("errcode", 0.into()),
            ] {
                assert_eq!(v[k], want, "{k} in {line}");
            }
            assert!(v["latency_ms"].as_f64().is_some_and(|l| l > 0.0), "{line}");
            assert!(
                v["timestamp"].as_str().is_some_and(|t| t.len() == 27),
                "{line}"
            );
        }
        let m = sc.metrics().await;
        assert_eq!(
            m.value("wecom_log_lines_dropped_total", &[]),
            Some(0.0),
            "{m}"
        );
        // One line per line: every line of the file is whole (JSON parses, text has a level).
        for l in logs.lines().filter(|l| !l.is_empty()) {
            if format == "json" {
                assert!(serde_json::from_str::<serde_json::Value>(l).is_ok(), "{l}");
            } else {
                assert!(
                    ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]
                        .iter()
                        .any(|lv| l.contains(&format!(" {lv} "))),
                    "{l}"
                );
            }
        }
    }
}

#[tokio::test]
async fn sigterm_leaves_every_call_and_the_stop_line_in_the_log() {
    let sim = simulator().await;
    let mut sc = Sidecar::start_with_env(
        |l, a| config_yaml(l, a, &sim.url(), ""),
        &[("WECOM_SIDECAR_LOG", "info")],
    )
    .await;
    sc.wait_ready().await;
    let c = client();
    let ids: Vec<String> = (0..50).map(|i| format!("before-term-{i}")).collect();
    for id in &ids {
        let r = c
            .get(sc.url("/cgi-bin/department/list"))
            .header("X-Request-Id", id)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // No scrape, no wait: the lines may still be in the writer's buffer.
    sc.signal("TERM");
    let code = tokio::task::spawn_blocking(move || {
        let code = sc.wait_exit(Duration::from_secs(20));
        (code, sc)
    })
    .await
    .unwrap();
    let (code, sc) = code;
    assert_eq!(code, Some(0));
    let logs = sc.logs();
    for id in &ids {
        assert!(
            logs.lines()
                .any(|l| l.contains(" access: call ") && l.contains(&format!("request_id={id} "))),
            "no access line for {id}:\n{logs}"
        );
    }
    // Logged the moment before the process exits (the drain's `exit`, or `main` returning
    // after pingora's grace period): only a flush at exit writes it.
    assert!(
        logs.contains("drained: exiting") || logs.contains("wecom-sidecar stopped"),
        "no line of the exit:\n{logs}"
    );
}
