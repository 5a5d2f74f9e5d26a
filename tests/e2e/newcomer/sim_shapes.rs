//! The simulator answers the common APIs in WeCom's shapes, and the README lists them.

use super::*;

// ---------------------------------------------------------------------------------------------
// The simulator: WeCom's answer shapes, consistent state, 404 for the rest
// ---------------------------------------------------------------------------------------------

pub(super) async fn sim_counters(sim: u16) -> Value {
    client()
        .get(format!("http://127.0.0.1:{sim}/sim/counters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Issue 12: the simulator answered `{"errcode":0,"errmsg":"ok"}` for every API it did not
/// implement, so SDKs crashed reading the fields WeCom documents (`userlist`, `taglist`,
/// `ip_list`, `tagid`). Through a `--dev` sidecar: the documented fields are there, what is
/// created is listed and gone once deleted, and an API it does not implement is a 404.
#[tokio::test]
async fn the_simulator_answers_common_apis_in_wecoms_shapes_and_404_for_the_rest() {
    let (sc, _sim) = start_dev("", &[], &[]).await;
    let c = client();
    let get = async |path: &str| get_json(&c, &sc.url(path)).await.2;
    let post = async |path: &str, body: Value| post_json(&c, &sc.url(path), &body).await.2;

    // Reads a fresh corp answers.
    let v = get("/cgi-bin/user/list?department_id=1&fetch_child=1").await;
    let users = v["userlist"].as_array().unwrap_or_else(|| panic!("{v}"));
    assert_eq!(users.len(), 6, "{v}");
    assert!(users.iter().all(|u| u["userid"].is_string()
        && u["name"].is_string()
        && u["department"].is_array()
        && u["status"].is_number()));
    let v = get("/cgi-bin/user/simplelist?department_id=2").await;
    let ids: Vec<&str> = v["userlist"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userid"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["lisi", "wangwu"], "{v}");
    let v = get("/cgi-bin/department/simplelist?id=1").await;
    assert_eq!(v["department_id"].as_array().unwrap().len(), 3, "{v}");
    let v = get("/cgi-bin/department/get?id=2").await;
    assert_eq!(
        (
            v["department"]["name"].as_str(),
            v["department"]["parentid"].as_u64()
        ),
        (Some("R&D"), Some(1)),
        "{v}"
    );
    assert_eq!(get("/cgi-bin/department/get?id=99").await["errcode"], 60123);
    for path in ["/cgi-bin/getcallbackip", "/cgi-bin/get_api_domain_ip"] {
        let v = get(path).await;
        assert!(!v["ip_list"].as_array().unwrap().is_empty(), "{path}: {v}");
    }
    assert_eq!(get("/cgi-bin/tag/list").await["taglist"], json!([]));

    // Writes, and the state they leave.
    let v = post("/cgi-bin/tag/create", json!({"tagname": "oncall"})).await;
    assert_eq!(
        (v["errcode"].as_i64(), v["errmsg"].as_str()),
        (Some(0), Some("created"))
    );
    let tagid = v["tagid"]
        .as_u64()
        .unwrap_or_else(|| panic!("no tagid: {v}"));
    assert_eq!(
        get("/cgi-bin/tag/list").await["taglist"],
        json!([{"tagid": tagid, "tagname": "oncall"}])
    );
    assert_eq!(
        post("/cgi-bin/tag/create", json!({"tagname": "oncall"})).await["errcode"],
        40071
    );
    let v = post(
        "/cgi-bin/user/create",
        json!({"userid": "amy", "name": "Amy", "department": [3], "mobile": "13800000000"}),
    )
    .await;
    assert_eq!(v, json!({"errcode": 0, "errmsg": "created"}));
    assert_eq!(
        post(
            "/cgi-bin/user/create",
            json!({"userid": "amy", "name": "Amy"})
        )
        .await["errcode"],
        60102
    );
    let v = get("/cgi-bin/user/get?userid=amy").await;
    assert_eq!(
        (v["name"].as_str(), v["mobile"].as_str()),
        (Some("Amy"), Some("13800000000"))
    );
    let v = post(
        "/cgi-bin/tag/addtagusers",
        json!({"tagid": tagid, "userlist": ["amy", "ghost"], "partylist": [3, 77]}),
    )
    .await;
    assert_eq!(
        (
            v["errcode"].as_i64(),
            v["invalidlist"].as_str(),
            &v["invalidparty"]
        ),
        (Some(0), Some("ghost"), &json!([77])),
        "{v}"
    );
    let v = get(&format!("/cgi-bin/tag/get?tagid={tagid}")).await;
    assert_eq!(
        (&v["tagname"], &v["userlist"], &v["partylist"]),
        (
            &json!("oncall"),
            &json!([{"userid": "amy", "name": "Amy"}]),
            &json!([3])
        )
    );
    let v = post(
        "/cgi-bin/department/create",
        json!({"name": "Ops", "parentid": 3}),
    )
    .await;
    let dept = v["id"].as_u64().unwrap_or_else(|| panic!("no id: {v}"));
    let v = get("/cgi-bin/department/list?id=3").await;
    assert_eq!(v["department"].as_array().unwrap().len(), 2, "{v}");
    // Sales holds amy: not deleted; Ops is empty: deleted.
    assert_eq!(
        get("/cgi-bin/department/delete?id=3").await["errcode"],
        60006
    );
    assert_eq!(
        get(&format!("/cgi-bin/department/delete?id={dept}")).await["errmsg"],
        "deleted"
    );
    let v = post("/cgi-bin/user/list_id", json!({"limit": 100})).await;
    assert_eq!(v["dept_user"].as_array().unwrap().len(), 7, "{v}");
    assert_eq!(
        get("/cgi-bin/user/delete?userid=amy").await["errmsg"],
        "deleted"
    );
    assert_eq!(get("/cgi-bin/user/get?userid=amy").await["errcode"], 60111);
    assert_eq!(
        get("/cgi-bin/user/delete?userid=amy").await["errcode"],
        60111
    );
    let v = get(&format!("/cgi-bin/tag/get?tagid={tagid}")).await;
    assert_eq!(
        v["userlist"],
        json!([]),
        "deleting a member takes it off its tags"
    );
    assert_eq!(
        get(&format!("/cgi-bin/tag/delete?tagid={tagid}")).await["errmsg"],
        "deleted"
    );
    assert_eq!(get("/cgi-bin/tag/list").await["taglist"], json!([]));

    let v = post(
        "/cgi-bin/appchat/create",
        json!({"name": "standup", "owner": "lisi", "userlist": ["lisi", "wangwu"]}),
    )
    .await;
    let chat = v["chatid"]
        .as_str()
        .unwrap_or_else(|| panic!("no chatid: {v}"));
    let v = get(&format!("/cgi-bin/appchat/get?chatid={chat}")).await;
    assert_eq!(v["chat_info"]["userlist"], json!(["lisi", "wangwu"]), "{v}");
    let v = post(
        "/cgi-bin/appchat/send",
        json!({"chatid": chat, "msgtype": "text", "text": {"content": "hi"}}),
    )
    .await;
    assert_eq!(v["errcode"], 0, "{v}");

    // An API the simulator does not implement: HTTP 404, errcode 404, naming it.
    let r = c.get(sc.url("/cgi-bin/no/such/api")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errcode"], 404, "{v}");
    assert!(
        v["errmsg"]
            .as_str()
            .unwrap()
            .contains("/cgi-bin/no/such/api"),
        "{v}"
    );
}

/// README "The simulator" lists every API the simulator answers.
#[test]
fn the_readme_lists_every_api_the_simulator_answers() {
    let readme = std::fs::read_to_string(Path::new(REPO).join("README.md")).unwrap();
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("The simulator"))
        .expect("README has a section \"The simulator\"");
    let apis = crate::harness::sim::Simulator::implemented_apis();
    assert!(apis.len() > 30, "{apis:?}");
    for api in apis {
        let name = api.trim_start_matches("/cgi-bin/");
        assert!(
            section.contains(&format!("`{name}`")),
            "README \"The simulator\" does not list `{name}`"
        );
    }
}
