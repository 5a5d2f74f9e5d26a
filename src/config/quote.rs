//! How a config value is quoted in a problem message: at most its first 4 characters.
//!
//! Operators paste secrets into the wrong key (`agent_id`, `listen`, a duration); a message
//! that quoted the whole value would carry the secret to `--check`'s output, the reload answer
//! and the log. Four characters say which value is meant without giving a secret away.

/// Characters of a wrong value a message may show.
pub const QUOTED_CHARS: usize = 4;

/// `value` in double quotes, cut to its first [`QUOTED_CHARS`] characters (with `…` and the
/// full length when cut); control characters escaped.
pub fn quote(value: &str) -> String {
    let total = value.chars().count();
    let shown: String = value
        .chars()
        .take(QUOTED_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if total > QUOTED_CHARS {
        format!("\"{shown}…\" ({total} characters)")
    } else {
        format!("\"{shown}\"")
    }
}

/// A message from the YAML parser with every value it quotes cut the same way: `"..."`
/// strings and `` `...` `` spans before `, expected` (after it serde lists the valid keys or
/// types, which stay whole). A `` `...` `` span that reads as a key name (an unknown field,
/// at most [`LONGEST_KEY`] characters) stays whole: the operator needs it to find the typo.
pub fn cut_quoted(message: &str) -> String {
    let (head, tail) = match message.find(", expected") {
        Some(at) => message.split_at(at),
        None => (message, ""),
    };
    let mut out = String::with_capacity(message.len());
    let mut rest = head;
    while let Some(start) = rest.find(['"', '`']) {
        let delim = rest[start..].chars().next().unwrap_or('"');
        out.push_str(&rest[..start]);
        let inner = &rest[start + 1..];
        // serde writes strings with Debug escapes: skip `\"` when looking for the end.
        let mut end = None;
        let mut escaped = false;
        for (i, ch) in inner.char_indices() {
            match ch {
                '\\' if !escaped => escaped = true,
                c if c == delim && !escaped => {
                    end = Some(i);
                    break;
                }
                _ => escaped = false,
            }
        }
        let Some(end) = end else {
            // No closing quote: cut what follows as one value.
            out.push_str(&cut_span(delim, inner));
            rest = "";
            break;
        };
        out.push_str(&cut_span(delim, &inner[..end]));
        rest = &inner[end + 1..];
    }
    out.push_str(rest);
    out.push_str(tail);
    out
}

/// Longest key name kept whole in a parser message (`duplicate_check_interval`); secrets are
/// longer (WeCom's are 43 characters, client keys at least 32).
pub const LONGEST_KEY: usize = 24;

/// Whether a `` `...` `` span in a parser message reads as a key name rather than a value.
pub fn is_key_like(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= LONGEST_KEY
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
}

fn cut_span(delim: char, inner: &str) -> String {
    if delim == '`' && is_key_like(inner) {
        return format!("`{inner}`");
    }
    let total = inner.chars().count();
    let shown: String = inner.chars().take(QUOTED_CHARS).collect();
    if total > QUOTED_CHARS {
        format!("{delim}{shown}…{delim} ({total} characters)")
    } else {
        format!("{delim}{shown}{delim}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_cut_to_four_characters() {
        assert_eq!(quote("fast"), "\"fast\"");
        assert_eq!(quote(""), "\"\"");
        assert_eq!(quote("1h30m"), "\"1h30…\" (5 characters)");
        assert_eq!(quote("a\nbcdef"), "\"a\\nbc…\" (7 characters)");
        assert_eq!(quote("企业微信应用"), "\"企业微信…\" (6 characters)");
    }

    #[test]
    fn parser_messages_are_cut_before_the_expected_list() {
        let secret = "Xy7pQ2vN8sLkJ3hG5fDdS1aZ0cVbMnBvCxZaQwErTy";
        assert_eq!(
            cut_quoted(&format!("invalid type: string \"{secret}\", expected i64")),
            "invalid type: string \"Xy7p…\" (42 characters), expected i64"
        );
        assert_eq!(
            cut_quoted(&format!(
                "unknown field `{secret}`, expected one of `listen`, `admin_listen`"
            )),
            "unknown field `Xy7p…` (42 characters), expected one of `listen`, `admin_listen`"
        );
        assert_eq!(
            cut_quoted("invalid type: string \"ab\\\"cdef\", expected u32"),
            "invalid type: string \"ab\\\"…\" (8 characters), expected u32"
        );
        assert_eq!(
            cut_quoted("unterminated \"abcdefg"),
            "unterminated \"abcd…\" (7 characters)"
        );
        assert_eq!(cut_quoted("no quotes here"), "no quotes here");
        assert_eq!(
            cut_quoted("unknown field `refresh`, expected `refresh_before_expiry`"),
            "unknown field `refresh`, expected `refresh_before_expiry`"
        );
    }
}
