//! A call's answer headers: its own token and robot key taken out in place.

use super::*;

#[test]
fn a_call_s_own_token_and_robot_key_come_out_of_its_answer_headers() {
    let token = "tok-only-this-call-knows-in-headers-42";
    let call = CallRedaction::new(Some(("hr-bot", token)), Some("robot-key-in-headers-0042"));
    let mut h = http::HeaderMap::new();
    h.insert(
        "location",
        format!("/cgi-bin/x?access_token={token}").parse().unwrap(),
    );
    h.insert(
        "x-hook",
        "send?key=robot-key-in-headers-0042".parse().unwrap(),
    );
    h.insert("x-plain", "nothing here".parse().unwrap());
    call.headers(&mut h, None);
    assert_eq!(h["location"], "/cgi-bin/x?access_token=hr-bot");
    assert_eq!(h["x-hook"], "send?key=***");
    assert_eq!(h["x-plain"], "nothing here");
}
