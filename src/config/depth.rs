//! The shape of a config: one nested deeper, or with more nodes, than any real one is refused
//! before serde_yaml reads it.
//!
//! `routes:` followed by 100,000 `[` took `--check` 16 s to refuse (deep `{` and block
//! mappings likewise): serde_yaml reads the whole event stream of such a file before its own
//! recursion limit (128) stops it. The deepest real config is 5 levels (`routes[i].retry.x`
//! inside a document); [`MAX_DEPTH`] leaves ample room. The check reads parser events one at
//! a time and stops at the first collection past the limit, so it costs only the text up to
//! there.
//!
//! Nodes: serde_yaml holds every event of a document in memory before it reads any (about 100
//! bytes each). 10 MiB of lists 62 deep is ten million of them: 967 MB and 7 s for one `--check`, and
//! an OOM kill for a reload in a 256 MiB pod. [`MAX_NODES`] bounds that at about 100 MB, and
//! still takes a config of 200,000 routes.

use super::yaml_events::{Event, Events};
use super::Problem;

/// Deepest nesting of sequences and mappings accepted.
pub const MAX_DEPTH: usize = 64;
/// Most YAML nodes (scalars, aliases, lists and mappings) accepted.
pub const MAX_NODES: usize = 1_000_000;

/// A problem when `text` nests collections deeper than [`MAX_DEPTH`] or holds more than
/// [`MAX_NODES`] nodes, at the line where it goes past. Syntax errors are left to serde_yaml,
/// which words them better.
pub fn check(text: &str) -> Result<(), Problem> {
    let mut depth = 0usize;
    let mut nodes = 0usize;
    for (line, ev) in Events::structure(text) {
        if matches!(
            ev,
            Event::Scalar(_) | Event::Alias | Event::SequenceStart | Event::MappingStart
        ) {
            nodes += 1;
            if nodes > MAX_NODES {
                return Err(Problem {
                    key: "(file)".into(),
                    line: Some(line),
                    message: format!(
                        "holds more than {MAX_NODES} YAML nodes (keys, values, list items); no config needs that. Check that this is the config file"
                    ),
                });
            }
        }
        match ev {
            Event::SequenceStart | Event::MappingStart => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(Problem {
                        key: "(file)".into(),
                        line: Some(line),
                        message: format!(
                            "nests lists and mappings more than {MAX_DEPTH} levels deep; no config needs that. Check the brackets and the indentation"
                        ),
                    });
                }
            }
            Event::SequenceEnd | Event::MappingEnd => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_nesting_passes_and_deep_nesting_is_refused_where_it_goes_too_deep() {
        let ok = format!(
            "a: {}1{}\n",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        assert_eq!(check(&ok), Ok(()));
        let flow = format!("routes: {}", "[".repeat(100_000));
        let p = check(&flow).unwrap_err();
        assert_eq!((p.key.as_str(), p.line), ("(file)", Some(1)));
        assert!(p.message.contains("64 levels"), "{p}");
        let braces = format!("routes: {}", "{a: ".repeat(100_000));
        assert!(check(&braces).is_err());
        let block: String = (0..200).map(|i| format!("{}a:\n", " ".repeat(i))).collect();
        assert_eq!(check(&block).unwrap_err().line, Some(MAX_DEPTH + 1));
        let list: String = (0..200)
            .map(|i| format!("{}- \n", " ".repeat(i * 2)))
            .collect();
        assert!(check(&list).is_err());
    }

    #[test]
    fn too_many_nodes_are_refused_where_the_limit_is_passed() {
        let at_limit = format!("a: [{}]\n", "1,".repeat(MAX_NODES - 3));
        assert_eq!(check(&at_limit), Ok(()));
        let over = format!("a: [\n{}]\n", "[1],\n".repeat(MAX_NODES / 2));
        let p = check(&over).unwrap_err();
        assert!(p.message.contains("more than 1000000 YAML nodes"), "{p}");
        // Root mapping, key, list: 3 nodes; then 2 per line from line 2.
        assert_eq!(p.line, Some(MAX_NODES / 2));
    }
}
