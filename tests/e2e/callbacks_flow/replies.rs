//! The passive reply: an app answer inside `reply_within` goes back to WeCom encrypted and
//! signed; a later one is dropped (WeCom got an empty 200) while the push is still delivered.

use std::time::Duration;

use super::receiver::Answer;
use super::*;

const REPLY: &str = "<xml><ToUserName><![CDATA[zhangsan]]></ToUserName><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[got it]]></Content></xml>";

/// The text of `<tag>` in `xml`, CDATA or not.
fn field(xml: &str, tag: &str) -> String {
    let start = xml
        .find(&format!("<{tag}>"))
        .unwrap_or_else(|| panic!("{tag} in {xml}"))
        + tag.len()
        + 2;
    let end = xml.find(&format!("</{tag}>")).unwrap();
    let v = &xml[start..end];
    v.strip_prefix("<![CDATA[")
        .and_then(|v| v.strip_suffix("]]>"))
        .unwrap_or(v)
        .to_string()
}

#[tokio::test]
async fn an_answer_in_time_is_the_encrypted_passive_reply() {
    let f = Flow::start(Timing {
        reply_within: "2s",
        ..Timing::default()
    })
    .await;
    f.app.answer(Answer::ok().body(REPLY));
    let (query, body) = f.wecom.push(&text_message(1));
    let r = client()
        .post(format!("{}?{query}", f.cb))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "application/xml");
    let xml = r.text().await.unwrap();
    let (enc, sig, ts, nonce) = (
        field(&xml, "Encrypt"),
        field(&xml, "MsgSignature"),
        field(&xml, "TimeStamp"),
        field(&xml, "Nonce"),
    );
    assert_eq!(
        sig,
        f.wecom.crypto.signature(&ts, &nonce, &enc),
        "signed with the token"
    );
    let plain = f.wecom.crypto.open(&sig, &ts, &nonce, &enc).unwrap();
    assert_eq!(String::from_utf8(plain).unwrap(), REPLY);
    assert!(!xml.contains("got it"), "encrypted, not in the clear");
    f.deliveries("delivered", 1.0).await;
}

#[tokio::test]
async fn a_late_answer_is_an_empty_200_and_the_push_is_still_delivered() {
    let f = Flow::start(Timing {
        reply_within: "300ms",
        ..Timing::default()
    })
    .await;
    f.app
        .answer(Answer::ok().body(REPLY).after(Duration::from_millis(700)));
    let (status, body) = f.push(&text_message(1)).await;
    assert_eq!(
        (status, body.as_str()),
        (200, ""),
        "nothing waited past reply_within"
    );
    f.deliveries("delivered", 1.0).await;
    assert_eq!(f.app.got().len(), 1, "delivered once: its answer counts");
    assert_eq!(f.app.got()[0].body_text(), text_message(1));
}

#[tokio::test]
async fn an_answer_over_the_cap_is_delivered_without_a_passive_reply() {
    let f = Flow::start(Timing {
        reply_within: "2s",
        ..Timing::default()
    })
    .await;
    let huge = format!("<xml><Content>{}</Content></xml>", "y".repeat(100 * 1024));
    f.app.answer(Answer::ok().body(&huge));
    let (status, body) = f.push(&text_message(1)).await;
    assert_eq!((status, body.as_str()), (200, ""), "no reply past 64 KiB");
    f.deliveries("delivered", 1.0).await;
    assert_eq!(
        f.app.got().len(),
        1,
        "a 2xx is delivered, whatever its size"
    );
}
