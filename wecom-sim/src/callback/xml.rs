//! The XML WeCom writes and reads around callbacks, with `quick-xml`: the message it pushes
//! (text or event), the envelope around the encrypted message, and the passive reply it
//! receives (`Encrypt`, `MsgSignature`, `TimeStamp`, `Nonce`).

use quick_xml::events::{BytesCData, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::{Reader, Writer};

/// One field of a message: CDATA text (as WeCom writes strings) or a bare number.
pub enum Field<'a> {
    Text(&'a str),
    Number(u64),
}

/// `<xml>` with `fields` as its children, in order.
pub fn document(fields: &[(&str, Field<'_>)]) -> String {
    let mut w = Writer::new(Vec::new());
    // Writing to a Vec cannot fail.
    let _ = w.write_event(Event::Start(BytesStart::new("xml")));
    for (name, value) in fields {
        let _ = w.write_event(Event::Start(BytesStart::new(*name)));
        match value {
            Field::Text(t) => {
                // `]]>` inside a text ends one CDATA section and starts the next.
                for part in BytesCData::escaped(t) {
                    let _ = w.write_event(Event::CData(part));
                }
            }
            Field::Number(n) => {
                let _ = w.write_event(Event::Text(BytesText::new(&n.to_string())));
            }
        }
        let _ = w.write_event(Event::End(BytesEnd::new(*name)));
    }
    let _ = w.write_event(Event::End(BytesEnd::new("xml")));
    String::from_utf8(w.into_inner()).unwrap_or_default()
}

/// The text of the root's direct child `name` (CDATA and text joined, entities resolved);
/// `Err` when the document is not well-formed XML.
pub fn child(xml: &[u8], name: &str) -> Result<Option<String>, String> {
    let mut reader = Reader::from_reader(xml);
    let mut depth = 0usize;
    let mut inside = false;
    let mut found: Option<String> = None;
    loop {
        match reader.read_event() {
            Err(e) => return Err(format!("not XML: {e}")),
            Ok(Event::Eof) => break,
            Ok(Event::Start(s)) => {
                depth += 1;
                inside = depth == 2 && s.name().as_ref() == name.as_bytes();
                if inside {
                    found.get_or_insert_with(String::new);
                }
            }
            Ok(Event::End(_)) => {
                depth = depth.saturating_sub(1);
                inside = false;
            }
            Ok(Event::Text(t)) if inside => {
                // quick-xml hands entity references over as `GeneralRef`s, not in the text.
                let text = t.decode().map_err(|e| format!("not UTF-8: {e}"))?;
                found.get_or_insert_with(String::new).push_str(&text);
            }
            Ok(Event::GeneralRef(r)) if inside => {
                let name = r.decode().map_err(|e| format!("not UTF-8: {e}"))?;
                let c = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    _ => quick_xml::escape::resolve_predefined_entity(&name)
                        .ok_or_else(|| format!("unknown entity &{name};"))?
                        .to_string(),
                };
                found.get_or_insert_with(String::new).push_str(&c);
            }
            Ok(Event::CData(c)) if inside => {
                let text = std::str::from_utf8(&c).map_err(|e| format!("not UTF-8: {e}"))?;
                found.get_or_insert_with(String::new).push_str(text);
            }
            Ok(_) => {}
        }
    }
    if depth != 0 {
        return Err("not XML: unclosed element".into());
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_written_are_read_back() {
        let xml = document(&[
            ("ToUserName", Field::Text("ww1")),
            ("Content", Field::Text("a ]]> b & <c>")),
            ("CreateTime", Field::Number(1409659813)),
        ]);
        assert!(
            xml.starts_with("<xml><ToUserName><![CDATA[ww1]]></ToUserName>"),
            "{xml}"
        );
        let b = xml.as_bytes();
        assert_eq!(
            child(b, "Content").unwrap().as_deref(),
            Some("a ]]> b & <c>")
        );
        assert_eq!(
            child(b, "CreateTime").unwrap().as_deref(),
            Some("1409659813")
        );
        assert_eq!(child(b, "Nope").unwrap(), None);
        assert_eq!(
            child(b"<xml><A>x &amp; &#65;</A></xml>", "A")
                .unwrap()
                .as_deref(),
            Some("x & A")
        );
        assert!(child(b"<xml><A>x</B></xml>", "A").is_err());
        assert!(child(b"<xml><A>x</A>", "A").is_err());
    }
}
