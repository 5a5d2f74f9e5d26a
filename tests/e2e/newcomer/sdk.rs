//! A real SDK (wechatpy, `tests/sdk/`) through a sidecar on the simulator, as the README says.

use super::*;

// ---------------------------------------------------------------------------------------------
// A real SDK: wechatpy
// ---------------------------------------------------------------------------------------------

/// Issue 12: wechatpy 1.8.18 through a `--dev` sidecar, set up as README "SDKs" says (its
/// `fetch_access_token` hard-codes WeCom's host, so the app's name is given as the token):
/// user, department, tag, message, media, group chat and misc calls, each checked by
/// `tests/sdk/wechatpy_calls.py`; WeCom got one gettoken for the app, the sidecar's.
#[tokio::test]
async fn wechatpy_works_through_the_sidecar_as_the_readme_says() {
    match Command::new("python3")
        .args(["-c", "import wechatpy"])
        .output()
    {
        Err(e) => panic!("python3 cannot be run ({e}): README Prerequisites"),
        Ok(o) if !o.status.success() => panic!(
            "wechatpy is not installed: `python3 -m pip install wechatpy==1.8.18` \
             (README Prerequisites; .ci/run installs it)"
        ),
        Ok(_) => {}
    }
    let (sc, sim) = start_dev("", &[], &[]).await;
    let base = sc.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(Path::new(REPO).join("tests/sdk/wechatpy_calls.py"))
            .args([base.as_str(), "wwdev0000000000001", "hr-bot"])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "wechatpy failed:\n{}{stdout}\nsidecar log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        sc.logs()
    );
    let seen: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(seen["wechatpy"], "1.8.18", "{seen}");

    let counters = sim_counters(sim).await;
    // The sidecar fetched hr-bot's token once at start; wechatpy never called gettoken.
    assert_eq!(counters["gettoken"]["hr-bot"], 1, "{counters}");
    for path in [
        "user/create",
        "user/get",
        "user/update",
        "user/list",
        "user/simplelist",
        "user/delete",
        "department/create",
        "department/list",
        "department/delete",
        "tag/create",
        "tag/list",
        "tag/get",
        "tag/addtagusers",
        "tag/deltagusers",
        "tag/delete",
        "message/send",
        "media/upload",
        "media/get",
        "appchat/create",
        "appchat/send",
        "getcallbackip",
    ] {
        let n = counters["calls"][format!("/cgi-bin/{path}")].as_u64();
        assert!(
            n.is_some_and(|n| n >= 1),
            "{path} never reached WeCom: {counters}"
        );
    }
    // The text to two members, and the group chat's two members.
    assert_eq!(counters["messages_delivered"], 2, "{counters}");
    assert_eq!(
        counters["uploaded_bytes"], seen["media_bytes"],
        "{counters}"
    );
}
