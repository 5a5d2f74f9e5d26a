//! Nesting depth: a config nested deeper than any real one is refused before serde_yaml reads
//! it.
//!
//! `routes:` followed by 100,000 `[` took `--check` 16 s to refuse (deep `{` and block
//! mappings likewise): serde_yaml reads the whole event stream of such a file before its own
//! recursion limit (128) stops it. The deepest real config is 5 levels (`routes[i].retry.x`
//! inside a document); [`MAX_DEPTH`] leaves ample room. The check reads parser events one at
//! a time and stops at the first collection past the limit, so it costs only the text up to
//! there.

use super::yaml_events::{Event, Events};
use super::Problem;

/// Deepest nesting of sequences and mappings accepted.
pub const MAX_DEPTH: usize = 64;

/// A problem when `text` nests collections deeper than [`MAX_DEPTH`], at the line where it
/// goes past it. Syntax errors are left to serde_yaml, which words them better.
pub fn check(text: &str) -> Result<(), Problem> {
    let mut depth = 0usize;
    for (line, ev) in Events::new(text) {
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
}
