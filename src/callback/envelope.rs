//! The XML of WeCom's callbacks, read and written with `quick-xml`: the envelope WeCom POSTs
//! (`<xml><ToUserName/><AgentID/><Encrypt/></xml>`), the fields of a decrypted message the
//! sidecar passes on as headers (`MsgType`, `Event`, `MsgId`), and the envelope of a passive
//! reply (`Encrypt`, `MsgSignature`, `TimeStamp`, `Nonce`).
//!
//! Only the root's direct children are read; text and CDATA sections are joined, the five XML
//! entities and character references resolved. A document that is not well formed, an unknown
//! entity, or text that is not UTF-8 is an error; nested elements (events carry some) are skipped.

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesCData, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::{Reader, Writer};

/// Malformed XML (the caller answers 403 `malformed` for an envelope).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// The envelope of a push or of WeCom's URL verification body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub encrypt: String,
    pub to_user: Option<String>,
    pub agent_id: Option<String>,
}

impl Envelope {
    /// Reads a pushed body; `Encrypt` is required and not empty.
    pub fn parse(body: &[u8]) -> Result<Envelope, Malformed> {
        let [encrypt, to_user, agent_id] = children(body, ["Encrypt", "ToUserName", "AgentID"])?;
        let encrypt = encrypt.filter(|e| !e.trim().is_empty()).ok_or(Malformed)?;
        Ok(Envelope {
            encrypt,
            to_user,
            agent_id,
        })
    }
}

/// What the sidecar tells the app about a decrypted message besides its XML.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub msg_type: Option<String>,
    pub event: Option<String>,
    pub msg_id: Option<String>,
}

impl Message {
    pub fn parse(xml: &[u8]) -> Result<Message, Malformed> {
        let [msg_type, event, msg_id] = children(xml, ["MsgType", "Event", "MsgId"])?;
        Ok(Message {
            msg_type,
            event,
            msg_id,
        })
    }
}

/// The passive reply WeCom reads: the encrypted message, its signature, timestamp and nonce.
/// The values are base64, hex and digits the sidecar made (never `]]>`), so CDATA holds them.
pub fn reply(encrypt: &str, signature: &str, timestamp: &str, nonce: &str) -> Vec<u8> {
    let mut w = Writer::new(Vec::with_capacity(encrypt.len() + 200));
    let put = |w: &mut Writer<Vec<u8>>, name: &str, value: Event<'_>| {
        w.write_event(Event::Start(BytesStart::new(name)))
            .and_then(|_| w.write_event(value))
            .and_then(|_| w.write_event(Event::End(BytesEnd::new(name))))
            .expect("writing to a Vec");
    };
    w.write_event(Event::Start(BytesStart::new("xml")))
        .expect("writing to a Vec");
    put(&mut w, "Encrypt", Event::CData(BytesCData::new(encrypt)));
    put(
        &mut w,
        "MsgSignature",
        Event::CData(BytesCData::new(signature)),
    );
    put(&mut w, "TimeStamp", Event::Text(BytesText::new(timestamp)));
    put(&mut w, "Nonce", Event::CData(BytesCData::new(nonce)));
    w.write_event(Event::End(BytesEnd::new("xml")))
        .expect("writing to a Vec");
    w.into_inner()
}

/// The text of the root's direct children named in `names` (the first of each name).
fn children<const N: usize>(
    xml: &[u8],
    names: [&str; N],
) -> Result<[Option<String>; N], Malformed> {
    let text = std::str::from_utf8(xml).map_err(|_| Malformed)?;
    let mut reader = Reader::from_str(text);
    let mut found: [Option<String>; N] = std::array::from_fn(|_| None);
    let mut depth = 0usize;
    let mut root_seen = false;
    // The index in `names` of the child being read, and its text so far.
    let mut current: Option<(usize, String)> = None;
    loop {
        match reader.read_event().map_err(|_| Malformed)? {
            Event::Start(e) => {
                if depth == 0 {
                    if root_seen {
                        return Err(Malformed);
                    }
                    root_seen = true;
                } else if depth == 1 {
                    current = names
                        .iter()
                        .position(|n| n.as_bytes() == e.name().as_ref())
                        .filter(|&i| found[i].is_none())
                        .map(|i| (i, String::new()));
                }
                depth += 1;
            }
            Event::Empty(e) => {
                if depth == 0 {
                    // `<xml/>`: a root with no children.
                    if root_seen {
                        return Err(Malformed);
                    }
                    root_seen = true;
                } else if depth == 1 {
                    if let Some(i) = names.iter().position(|n| n.as_bytes() == e.name().as_ref()) {
                        found[i].get_or_insert_with(String::new);
                    }
                }
            }
            Event::End(_) => {
                depth = depth.checked_sub(1).ok_or(Malformed)?;
                if depth == 1 {
                    if let Some((i, value)) = current.take() {
                        found[i] = Some(value);
                    }
                }
            }
            Event::Text(t) if depth == 2 => {
                if let Some((_, value)) = current.as_mut() {
                    value.push_str(&t.xml10_content().map_err(|_| Malformed)?);
                }
            }
            Event::CData(t) if depth == 2 => {
                if let Some((_, value)) = current.as_mut() {
                    value.push_str(&t.xml10_content().map_err(|_| Malformed)?);
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(|_| Malformed)? {
                    Some(c) => c,
                    None => {
                        let name = r.xml10_content().map_err(|_| Malformed)?;
                        let s = resolve_predefined_entity(&name).ok_or(Malformed)?;
                        s.chars().next().ok_or(Malformed)?
                    }
                };
                if depth == 2 {
                    if let Some((_, value)) = current.as_mut() {
                        value.push(resolved);
                    }
                }
            }
            // Only whitespace may stand outside the root.
            Event::Text(t) if depth == 0 && !t.iter().all(u8::is_ascii_whitespace) => {
                return Err(Malformed);
            }
            Event::DocType(_) => return Err(Malformed),
            Event::Eof => break,
            _ => {}
        }
    }
    if depth != 0 || !root_seen {
        return Err(Malformed);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wecoms_envelope() {
        let body = b"<xml><ToUserName><![CDATA[ww1234]]></ToUserName>\n<Encrypt><![CDATA[abc+/=]]></Encrypt>\
<AgentID><![CDATA[1000002]]></AgentID></xml>";
        let e = Envelope::parse(body).unwrap();
        assert_eq!(e.encrypt, "abc+/=");
        assert_eq!(e.to_user.as_deref(), Some("ww1234"));
        assert_eq!(e.agent_id.as_deref(), Some("1000002"));
    }

    #[test]
    fn refuses_what_is_not_an_envelope() {
        for body in [
            &b""[..],
            b"not xml",
            b"<xml><Encrypt>abc</Encrypt>",
            b"<xml><Encrypt></Encrypt></xml>",
            b"<xml><ToUserName>x</ToUserName></xml>",
            b"<xml><Encrypt>a</Encrypt></xml><xml/>",
            b"<xml><Encrypt>a&bogus;</Encrypt></xml>",
            b"<!DOCTYPE x [<!ENTITY e 'boom'>]><xml><Encrypt>&e;</Encrypt></xml>",
            b"<xml><Encrypt>\xff</Encrypt></xml>",
            b"<xml><Encrypt>a</Wrong></xml>",
        ] {
            assert_eq!(
                Envelope::parse(body),
                Err(Malformed),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn message_fields_from_top_level_only() {
        let xml =
            "<xml><ToUserName><![CDATA[ww]]></ToUserName><MsgType><![CDATA[event]]></MsgType>\
<Event><![CDATA[click]]></Event><ScanCodeInfo><MsgType>nested</MsgType></ScanCodeInfo>\
<MsgId>1234567890123456</MsgId><Content>a &amp; b &#x4e2d;</Content></xml>";
        let m = Message::parse(xml.as_bytes()).unwrap();
        assert_eq!(m.msg_type.as_deref(), Some("event"));
        assert_eq!(m.event.as_deref(), Some("click"));
        assert_eq!(m.msg_id.as_deref(), Some("1234567890123456"));
        let [content] = children(xml.as_bytes(), ["Content"]).unwrap();
        assert_eq!(content.as_deref(), Some("a & b 中"));
        assert_eq!(Message::parse(b"<xml/>").unwrap(), Message::default());
    }

    #[test]
    fn the_reply_reads_back() {
        let xml = reply("ENC+/=", "f00d", "1409659589", "nonce42");
        let [e, s, t, n] =
            children(&xml, ["Encrypt", "MsgSignature", "TimeStamp", "Nonce"]).unwrap();
        assert_eq!(e.as_deref(), Some("ENC+/="));
        assert_eq!(s.as_deref(), Some("f00d"));
        assert_eq!(t.as_deref(), Some("1409659589"));
        assert_eq!(n.as_deref(), Some("nonce42"));
    }
}
