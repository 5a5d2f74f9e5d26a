//! Finding the line of key paths (`upstreams.standby.url`, `apps[1]`, `routes[0].split.b`) in
//! the YAML text, so that problems found after parsing can still say where they are.
//!
//! serde_yaml keeps no positions in its values, so the text's parser events (`yaml_events`)
//! are walked once, keeping the current key path, and the line of every path asked for (and
//! of each of its ancestors) is noted on the way. One pass for all the problems of a file:
//! finding each path with a walk of its own made `--check` of 5,000 problems take 22 s.
//! A path that is not in the file (a missing key) falls back to its nearest ancestor that is.

use std::collections::{HashMap, HashSet};

use super::yaml_events::{Event, Events};

/// The lines of a set of key paths in one text.
#[derive(Debug, Default)]
pub struct Lines {
    found: HashMap<String, usize>,
}

/// Where the walk is inside one collection.
enum Frame {
    /// A mapping whose own path is the first `base` bytes of the current path; `key` when the
    /// next node is a key.
    Map { base: usize, key: bool },
    /// A sequence at `base`; `next` is the index of its next item.
    Seq { base: usize, next: usize },
}

impl Lines {
    /// Walks `text` once, noting the line of each of `paths` and of their ancestors.
    pub fn index<'p>(text: &str, paths: impl IntoIterator<Item = &'p str>) -> Lines {
        let mut wanted: HashSet<&str> = HashSet::new();
        for p in paths {
            let mut p = p;
            while wanted.insert(p) {
                match parent(p) {
                    Some(up) => p = up,
                    None => break,
                }
            }
        }
        let mut found = HashMap::new();
        if wanted.is_empty() {
            return Lines { found };
        }
        let mut path = String::new();
        let mut stack: Vec<Frame> = Vec::new();
        let mut documents = 0;
        for (line, ev) in Events::new(text) {
            match ev {
                Event::DocumentStart => {
                    documents += 1;
                    // serde_yaml reads one document; a second one is its error to report.
                    if documents > 1 {
                        break;
                    }
                    continue;
                }
                Event::DocumentEnd => continue,
                Event::SequenceEnd | Event::MappingEnd => {
                    stack.pop();
                    continue;
                }
                _ => {}
            }
            // Where this node sits in its parent.
            match stack.last_mut() {
                Some(Frame::Map { base, key }) if *key => {
                    *key = false;
                    path.truncate(*base);
                    if *base > 0 {
                        path.push('.');
                    }
                    // serde_yaml names a key by its text; a key that is itself a collection
                    // (or an alias) has no name anything could ask for.
                    match &ev {
                        Event::Scalar(k) => path.push_str(k),
                        _ => path.push_str("\u{0}?"),
                    }
                    if wanted.contains(path.as_str()) {
                        found.entry(path.clone()).or_insert(line);
                    }
                    if !matches!(ev, Event::SequenceStart | Event::MappingStart) {
                        continue;
                    }
                }
                Some(Frame::Map { key, .. }) => *key = true,
                Some(Frame::Seq { base, next }) => {
                    path.truncate(*base);
                    path.push('[');
                    path.push_str(&next.to_string());
                    path.push(']');
                    *next += 1;
                    if wanted.contains(path.as_str()) {
                        found.entry(path.clone()).or_insert(line);
                    }
                }
                None => path.clear(),
            }
            match ev {
                Event::SequenceStart => stack.push(Frame::Seq {
                    base: path.len(),
                    next: 0,
                }),
                Event::MappingStart => stack.push(Frame::Map {
                    base: path.len(),
                    key: true,
                }),
                _ => {}
            }
        }
        Lines { found }
    }

    /// The 1-based line of the key (or sequence item) `path` itself, if the file has it.
    pub fn exact(&self, path: &str) -> Option<usize> {
        self.found.get(path).copied()
    }

    /// The 1-based line of `path`, or of its nearest ancestor present in the file.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let mut path = path;
        loop {
            if path.is_empty() {
                return None;
            }
            if let Some(line) = self.exact(path) {
                return Some(line);
            }
            path = parent(path)?;
        }
    }
}

/// The 1-based line of `path` in `text`, or of its nearest ancestor present there.
#[cfg(test)]
fn line_of(text: &str, path: &str) -> Option<usize> {
    Lines::index(text, [path]).line_of(path)
}

/// The 1-based line of the key (or sequence item) `path` itself, if the file has it.
#[cfg(test)]
fn exact_line_of(text: &str, path: &str) -> Option<usize> {
    Lines::index(text, [path]).exact(path)
}

/// `a.b[2]` → `a.b`, `a.b` → `a`, `a` → none. Key names may hold dots, so a parent found here
/// may not exist in the file; the caller then goes up again.
fn parent(path: &str) -> Option<&str> {
    let cut = path.rfind(['.', '['])?;
    Some(&path[..cut])
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

    #[test]
    fn many_paths_in_one_pass() {
        let text: String = (0..1000)
            .map(|i| format!("- {{ path: /p{i}, api: a }}\n"))
            .collect();
        let text = format!("routes:\n{text}");
        let keys: Vec<String> = (0..1000).map(|i| format!("routes[{i}].api")).collect();
        let lines = Lines::index(&text, keys.iter().map(String::as_str));
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(lines.line_of(k), Some(i + 2), "{k}");
        }
        assert_eq!(lines.line_of("routes[5].nope"), Some(7));
        assert_eq!(lines.exact("routes[2000]"), None);
        assert_eq!(lines.line_of("routes[2000]"), Some(1));
    }

    #[test]
    fn keys_that_are_collections_do_not_derail_the_walk() {
        let text = "a:\n  ? [x, y]\n  : 1\n  b: 2\nc: 3\n";
        assert_eq!(exact_line_of(text, "a.b"), Some(4));
        assert_eq!(exact_line_of(text, "c"), Some(5));
    }
}
