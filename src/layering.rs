//! The top-level modules of `src/` import each other without a cycle: `state` composes the
//! domain modules, `proxy` (the request pipeline) and the process wiring may use `state`, and
//! no domain module reaches back up (see `state`'s module doc).
//!
//! The test reads every source file of the library, takes each `crate::` and `super::` path
//! of its code (comments, strings and `#[cfg(test)]` modules left out: tests may reach across)
//! as an edge from the file's top-level module to the one the path names, and fails naming
//! every cycle it finds with the files that make each of its edges.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Edges between top-level modules, each with the first file (relative to `src/`) making it.
type Edges = BTreeMap<(String, String), String>;

/// The library's source files under `dir`, with their module paths (`src/token/mod.rs` is
/// `["token"]`, `src/lib.rs` is `[]`). The binary's `main.rs` is not part of the library.
fn source_files(src: &Path, dir: &Path, out: &mut Vec<(PathBuf, Vec<String>)>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            source_files(src, &path, out);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") || path == src.join("main.rs") {
            continue;
        }
        let rel = path.strip_prefix(src).expect("under src");
        let mut module: Vec<String> = rel
            .with_extension("")
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        if module.last().is_some_and(|l| l == "mod" || l == "lib") {
            module.pop();
        }
        out.push((path, module));
    }
}

/// `text` with comments gone and string and character literals emptied, so that only code is
/// left to look for paths in.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i..].starts_with(b"/*") {
                        depth += 1;
                        i += 2;
                    } else if b[i..].starts_with(b"*/") {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            b'r' if matches!(b.get(i + 1), Some(b'"' | b'#'))
                && (i == 0 || !is_ident(b[i - 1])) =>
            {
                // A raw string: r"..", r#".."#.
                let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
                if b.get(i + 1 + hashes) != Some(&b'"') {
                    out.push('r');
                    i += 1;
                    continue;
                }
                let close: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                i += 2 + hashes;
                while i < b.len() && !b[i..].starts_with(&close) {
                    i += 1;
                }
                i += close.len();
                out.push_str("\"\"");
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            // A character literal ('x', '\n', '"'); a lifetime ('a) is kept.
            b'\'' if b.get(i + 1) == Some(&b'\\') => {
                i += 2;
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
            }
            b'\'' if b.get(i + 2) == Some(&b'\'') => {
                i += 3;
                out.push_str("' '");
            }
            _ => {
                let c = text[i..].chars().next().expect("in bounds");
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    out
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// `code` with every `#[cfg(test)]` module left out (inline ones whole); the names of the
/// `#[cfg(test)] mod name;` declared in it go to `test_modules`.
fn without_tests(code: &str, test_modules: &mut Vec<String>) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = rest[at + "#[cfg(test)]".len()..].trim_start();
        let Some(decl) = after
            .strip_prefix("pub(crate) mod ")
            .or_else(|| after.strip_prefix("mod "))
        else {
            // Some other test-only item: only its attribute goes.
            rest = after;
            continue;
        };
        let name: String = decl
            .bytes()
            .take_while(|&c| is_ident(c))
            .map(char::from)
            .collect();
        let decl = decl[name.len()..].trim_start();
        if let Some(after_decl) = decl.strip_prefix(';') {
            test_modules.push(name);
            rest = after_decl;
            continue;
        }
        // Skip the balanced block.
        let mut depth = 0usize;
        let mut end = decl.len();
        for (i, c) in decl.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &decl[end..];
    }
    out.push_str(rest);
    out
}

/// The first identifiers a path continues with after `at` (`x` in `x::y`, or each item of
/// a `{a::b, c}` group).
fn heads(code: &str) -> Vec<String> {
    let code = code.trim_start();
    if let Some(group) = code.strip_prefix('{') {
        let mut items = Vec::new();
        let mut depth = 0usize;
        let mut start = true;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => start = true,
                c if start && !c.is_whitespace() => {
                    start = false;
                    let name: String = group[i..]
                        .bytes()
                        .take_while(|&c| is_ident(c))
                        .map(char::from)
                        .collect();
                    if !name.is_empty() {
                        items.push(name);
                    }
                }
                _ => {}
            }
        }
        return items;
    }
    let name: String = code
        .bytes()
        .take_while(|&c| is_ident(c))
        .map(char::from)
        .collect();
    if name.is_empty() {
        Vec::new()
    } else {
        vec![name]
    }
}

/// The top-level modules that the code of the module at `module` names through `crate::`
/// and `super::` paths (its own included).
fn named_tops(module: &[String], code: &str) -> BTreeSet<String> {
    let mut tops = BTreeSet::new();
    let b = code.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let starts_word = i == 0 || !(is_ident(b[i - 1]) || b[i - 1] == b':');
        if starts_word && b[i..].starts_with(b"crate::") {
            i += "crate::".len();
            tops.extend(heads(&code[i..]));
            continue;
        }
        if starts_word && b[i..].starts_with(b"super::") {
            let mut base = module.len();
            while b[i..].starts_with(b"super::") {
                base = base.saturating_sub(1);
                i += "super::".len();
            }
            match module[..base].first() {
                Some(top) => {
                    tops.insert(top.clone());
                }
                None => tops.extend(heads(&code[i..])),
            }
            continue;
        }
        i += 1;
    }
    tops
}

/// The import edges between the library's top-level modules.
fn edges(src: &Path) -> Edges {
    let mut files = Vec::new();
    source_files(src, src, &mut files);
    let tops: BTreeSet<String> = files
        .iter()
        .filter_map(|(_, m)| m.first().cloned())
        .collect();
    let mut codes = Vec::new();
    let mut test_only: Vec<Vec<String>> = Vec::new();
    for (path, module) in &files {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let mut tests = Vec::new();
        let code = without_tests(&code_only(&text), &mut tests);
        test_only.extend(tests.into_iter().map(|t| {
            let mut m = module.clone();
            m.push(t);
            m
        }));
        codes.push((path, module, code));
    }
    let mut edges = Edges::new();
    for (path, module, code) in codes {
        let Some(from) = module.first() else { continue };
        if test_only.iter().any(|t| module.starts_with(t)) {
            continue;
        }
        for to in named_tops(module, &code) {
            if to != *from && tops.contains(&to) {
                let file = path.strip_prefix(src).unwrap_or(path).display().to_string();
                edges.entry((from.clone(), to)).or_insert(file);
            }
        }
    }
    edges
}

/// A cycle (`a -> b -> a`) and every module on some cycle with it.
#[derive(Debug, PartialEq)]
struct Cycle {
    path: Vec<String>,
    group: BTreeSet<String>,
}

/// One cycle through each strongly connected group of modules.
fn cycles(edges: &Edges) -> Vec<Cycle> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in edges.keys() {
        next.entry(a).or_default().push(b);
    }
    let reaches = |from: &str, to: &str| -> Option<Vec<String>> {
        // Breadth first: the shortest way back, as a path of modules.
        let mut came: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([from]);
        while let Some(at) = queue.pop_front() {
            for &n in next.get(at).into_iter().flatten() {
                if n == to {
                    let mut path = vec![to.to_string(), at.to_string()];
                    let mut back = at;
                    while back != from {
                        back = came[back];
                        path.push(back.to_string());
                    }
                    path.reverse();
                    return Some(path);
                }
                if !came.contains_key(n) && n != from {
                    came.insert(n, at);
                    queue.push_back(n);
                }
            }
        }
        None
    };
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut found = Vec::new();
    for &m in next.keys() {
        if seen.contains(m) {
            continue;
        }
        if let Some(path) = reaches(m, m) {
            // Everything on a cycle with `m` is reported with it.
            let group: BTreeSet<String> = next
                .keys()
                .filter(|&&other| {
                    other == m || (reaches(m, other).is_some() && reaches(other, m).is_some())
                })
                .map(|o| o.to_string())
                .collect();
            seen.extend(group.iter().cloned());
            found.push(Cycle { path, group });
        }
    }
    found
}

fn describe(cycle: &Cycle, edges: &Edges) -> String {
    let made_by: Vec<String> = cycle
        .path
        .windows(2)
        .map(|w| {
            let file = &edges[&(w[0].clone(), w[1].clone())];
            format!("{} -> {} ({file})", w[0], w[1])
        })
        .collect();
    let group: Vec<&str> = cycle.group.iter().map(String::as_str).collect();
    format!(
        "{}: {} (modules on cycles with these: {})",
        cycle.path.join(" -> "),
        made_by.join(", "),
        group.join(", ")
    )
}

#[test]
fn top_level_modules_import_each_other_without_a_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = edges(&src);
    assert!(
        edges.contains_key(&("proxy".into(), "state".into())),
        "the reader found no edge proxy -> state: it reads nothing"
    );
    let found = cycles(&edges);
    assert!(
        found.is_empty(),
        "import cycles among the top-level modules of src/:\n{}",
        found
            .iter()
            .map(|c| describe(c, &edges))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn paths_are_read_from_code_only() {
    let code = code_only(
        "use crate::a::X; // crate::b\n/* crate::c /* nested */ crate::d */ let s = \"crate::e\";\n\
         let r = r#\"crate::f\"#; let c = '\"'; fn g<'a>() {} use crate::{h::Y, i};",
    );
    let mut tests = Vec::new();
    let code = without_tests(
        &format!("{code}\n#[cfg(test)]\nmod tests {{ use crate::j; {{ }} }}\nuse super::k;\n#[cfg(test)]\nmod more;"),
        &mut tests,
    );
    assert_eq!(tests, ["more"]);
    let found = named_tops(&["m".into(), "n".into()], &code);
    assert_eq!(
        found.into_iter().collect::<Vec<_>>(),
        ["a", "h", "i", "m"],
        "super:: from m::n stays in m"
    );
    let from_top = named_tops(&["m".into()], "use super::{p, q::R}; use super::s::T;");
    assert_eq!(from_top.into_iter().collect::<Vec<_>>(), ["p", "q", "s"]);
}

#[test]
fn a_cycle_is_found_and_named() {
    let mut edges = Edges::new();
    for (a, b) in [
        ("state", "plans"),
        ("plans", "state"),
        ("proxy", "state"),
        ("x", "y"),
    ] {
        edges.insert((a.into(), b.into()), format!("{a}.rs"));
    }
    let found = cycles(&edges);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].path, ["plans", "state", "plans"]);
    assert_eq!(
        describe(&found[0], &edges),
        "plans -> state -> plans: plans -> state (plans.rs), state -> plans (state.rs) \
         (modules on cycles with these: plans, state)"
    );
    edges.insert(("state".into(), "proxy".into()), "state.rs".into());
    let found = cycles(&edges);
    assert_eq!(found.len(), 1, "one group, one cycle named: {found:?}");
    let group: Vec<&str> = found[0].group.iter().map(String::as_str).collect();
    assert_eq!(group, ["plans", "proxy", "state"]);
    edges.remove(&("plans".into(), "state".into()));
    edges.remove(&("proxy".into(), "state".into()));
    assert!(cycles(&edges).is_empty());
}
