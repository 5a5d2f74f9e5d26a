//! Finding the line of a key path (`upstreams.standby.url`, `apps[1]`, `routes[0].split.b`) in
//! the YAML text, so that problems found after parsing can still say where they are.
//!
//! serde_yaml keeps no positions in its values, but it does attach the position of the node
//! being read to any error a visitor returns. So the text is walked once more with a visitor
//! that follows the path and fails on purpose when it reaches the key (or the sequence item):
//! the error's location is the line. A path that is not in the file (a missing key) falls back
//! to its nearest ancestor that is.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// What the probe fails with when it finds its target. Not a message anyone sees.
const FOUND: &str = "\u{0}wecom-sidecar-config-locate-found";

/// The 1-based line of `path` in `text`, or of its nearest ancestor present there.
pub fn line_of(text: &str, path: &str) -> Option<usize> {
    let mut path = path;
    loop {
        if path.is_empty() {
            return None;
        }
        if let Some(line) = exact_line_of(text, path) {
            return Some(line);
        }
        path = parent(path)?;
    }
}

/// The 1-based line of the key (or sequence item) `path` itself, if the file has it.
pub fn exact_line_of(text: &str, path: &str) -> Option<usize> {
    let probe = Probe {
        target: path,
        path: String::new(),
    };
    match probe.deserialize(serde_yaml::Deserializer::from_str(text)) {
        Err(e) if e.to_string().contains(FOUND) => e.location().map(|l| l.line()),
        _ => None,
    }
}

/// `a.b[2]` → `a.b`, `a.b` → `a`, `a` → none. Key names may hold dots, so a parent found here
/// may not exist in the file; the caller then goes up again.
fn parent(path: &str) -> Option<&str> {
    let cut = path.rfind(['.', '['])?;
    Some(&path[..cut])
}

/// Whether `target` lies strictly below `path`.
fn is_below(target: &str, path: &str) -> bool {
    target.len() > path.len()
        && target.starts_with(path)
        && matches!(target.as_bytes()[path.len()], b'.' | b'[')
}

/// Walks one node whose key path is `path`, looking for `target` below it.
struct Probe<'a> {
    target: &'a str,
    path: String,
}

impl<'de> DeserializeSeed<'de> for Probe<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Probe<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        for i in 0.. {
            let item = format!("{}[{i}]", self.path);
            let more = if item == self.target {
                seq.next_element_seed(Found)?.is_some()
            } else if is_below(self.target, &item) {
                let probe = Probe {
                    target: self.target,
                    path: item,
                };
                seq.next_element_seed(probe)?.is_some()
            } else {
                seq.next_element::<IgnoredAny>()?.is_some()
            };
            if !more {
                break;
            }
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(Key {
            target: self.target,
            parent: &self.path,
        })? {
            if is_below(self.target, &key) {
                map.next_value_seed(Probe {
                    target: self.target,
                    path: key,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// Reads a map key; fails with [`FOUND`] (at the key's position) when it is the target.
struct Key<'a> {
    target: &'a str,
    parent: &'a str,
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = String;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_any(self)
    }
}

impl Visitor<'_> for Key<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, k: &str) -> Result<String, E> {
        let path = if self.parent.is_empty() {
            k.to_string()
        } else {
            format!("{}.{k}", self.parent)
        };
        if path == self.target {
            Err(E::custom(FOUND))
        } else {
            Ok(path)
        }
    }
    fn visit_i64<E: de::Error>(self, k: i64) -> Result<String, E> {
        self.visit_str(&k.to_string())
    }
    fn visit_u64<E: de::Error>(self, k: u64) -> Result<String, E> {
        self.visit_str(&k.to_string())
    }
    fn visit_f64<E: de::Error>(self, k: f64) -> Result<String, E> {
        self.visit_str(&k.to_string())
    }
    fn visit_bool<E: de::Error>(self, k: bool) -> Result<String, E> {
        self.visit_str(&k.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        self.visit_str("~")
    }
}

/// A sequence item that is the target: fail with [`FOUND`] at its position, whatever it is.
struct Found;

impl<'de> DeserializeSeed<'de> for Found {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Found {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_some<D: de::Deserializer<'de>>(self, _: D) -> Result<(), D::Error> {
        Err(de::Error::custom(FOUND))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(FOUND))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(FOUND))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# comment
listen: \"x\"
upstreams:
  primary:
    url: http://a
  st.by: { url: \"ftp://b\", timeout: 0s }
apps:
  - name: a
    corp_id: b
  -
    name: c
    x: [1, 2,
      3]
routes:
- path: /a
  split:
    primary: 1
- {path: /b}
";

    #[test]
    fn finds_keys_and_items_block_and_flow() {
        let cases = [
            ("listen", Some(2)),
            ("upstreams", Some(3)),
            ("upstreams.primary", Some(4)),
            ("upstreams.primary.url", Some(5)),
            ("upstreams.st.by", Some(6)),
            ("upstreams.st.by.timeout", Some(6)),
            ("apps", Some(7)),
            ("apps[0]", Some(8)),
            ("apps[0].corp_id", Some(9)),
            ("apps[1].name", Some(11)),
            ("apps[1].x[2]", Some(13)),
            ("routes[0].split.primary", Some(17)),
            ("routes[1].path", Some(18)),
            ("nope", None),
            ("apps[5]", None),
            ("apps[1", None),
        ];
        for (path, line) in cases {
            assert_eq!(exact_line_of(TEXT, path), line, "{path}");
        }
    }

    #[test]
    fn missing_keys_fall_back_to_their_nearest_ancestor() {
        assert_eq!(line_of(TEXT, "apps[0].secret_env"), Some(8));
        assert_eq!(line_of(TEXT, "upstreams.standby"), Some(3));
        assert_eq!(line_of(TEXT, "routes[1].split.x"), Some(18));
        assert_eq!(line_of(TEXT, "fleet.size"), None);
        assert_eq!(line_of(TEXT, ""), None);
        assert_eq!(line_of("listen: [\n", "listen"), Some(1));
        assert_eq!(line_of("", "listen"), None);
    }

    #[test]
    fn items_ten_and_up_are_not_mistaken_for_item_one() {
        let text: String = (0..12).map(|i| format!("- {{ n: {i} }}\n")).collect();
        let text = format!("apps:\n{text}");
        assert_eq!(exact_line_of(&text, "apps[1].n"), Some(3));
        assert_eq!(exact_line_of(&text, "apps[10].n"), Some(12));
    }
}
