//! `routes`: each a path, an optional metric label, and policy keys over `defaults`, into
//! [`Route`]s in file order. First match wins, so a route an earlier one shadows is refused.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::time::Duration;

use super::check::{Check, Names};
use super::policy::policy;
use crate::config::defaults::ROUTE_PATH_PREFIX;
use crate::config::file::FilePolicy;
use crate::config::model::{PathMatch, Route, RoutePolicy};
use crate::config::quote::quote;

/// How a route path is written, for the messages about one.
const PATH_EXAMPLE: &str = "e.g. /cgi-bin/message/send (exact) or /cgi-bin/user/* (prefix)";

/// `routes`, each a path and any policy key over `defaults`; first match wins, so a route an
/// earlier one shadows is refused.
pub(super) fn routes(
    c: &mut Check,
    routes: Vec<FilePolicy>,
    defaults: &RoutePolicy,
    upstreams: &Names,
    max_wait: Duration,
    defaults_set_interval: bool,
) -> Vec<Route> {
    let mut seen = Shadows::default();
    let mut out = Vec::new();
    for (i, r) in routes.iter().enumerate() {
        let key = format!("routes[{i}]");
        let Some(written) = r.path.as_deref() else {
            c.problem(
                format!("{key}.path"),
                format!("is missing. Give the WeCom API path this route matches, {PATH_EXAMPLE}"),
            );
            // Its other keys are still checked, so every problem is reported at once.
            let mut p = policy(c, &key, defaults, r, upstreams, max_wait);
            super::outbox::route(c, &key, r, None, &mut p, true);
            continue;
        };
        let path = route_path(c, &format!("{key}.path"), written);
        if let Some(p) = &path {
            match seen.check_and_add(i, p) {
                None => {}
                Some(Shadow::Same(j)) => c.problem(
                    format!("{key}.path"),
                    format!("{} is the same path as routes[{j}], and the first match wins, so this route would never apply. Drop it or merge its keys into routes[{j}]", quote(written)),
                ),
                Some(Shadow::Covered(j)) => c.problem(
                    format!("{key}.path"),
                    format!("{} is covered by routes[{j}] ({}), and the first match wins, so this route would never apply. Move it above routes[{j}] or drop it", quote(written), quote(routes[j].path.as_deref().unwrap_or_default())),
                ),
            }
        }
        if let Some(api) = &r.api {
            let valid = !api.is_empty()
                && api
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "_/.-".contains(ch));
            if !valid {
                c.problem(
                    format!("{key}.api"),
                    format!("{} is not a valid metric label. Use letters, digits and _ / . - (e.g. message/send), or drop api to derive it from the path", quote(api)),
                );
            }
        }
        let mut policy = policy(c, &key, defaults, r, upstreams, max_wait);
        let interval_set = defaults_set_interval || r.duplicate_check_interval.is_some();
        super::outbox::route(c, &key, r, path.as_ref(), &mut policy, interval_set);
        if let Some(path) = path {
            out.push(Route {
                path,
                api: r.api.clone(),
                policy,
            });
        }
    }
    out
}

/// Why a route can never apply: an earlier route (its index) has the same path or covers it.
#[derive(Debug, PartialEq, Eq)]
enum Shadow {
    Same(usize),
    Covered(usize),
}

/// The routes read so far, for telling whether the next one can ever match (first match
/// wins). Linear in the total length of the paths: comparing each route with every earlier
/// one made `--check` of 200,000 routes run for minutes.
#[derive(Default)]
struct Shadows {
    /// Exact paths → their first route.
    exact: HashMap<String, usize>,
    /// Prefix paths that no earlier prefix covers → their route. Kept prefix-free (no key is
    /// a prefix of another), so the only key that can be a prefix of a path is the greatest
    /// key not above it.
    prefixes: BTreeMap<String, usize>,
}

impl Shadows {
    /// The earlier prefix route whose prefix starts `s`, if any.
    fn prefix_of(&self, s: &str) -> Option<(&str, usize)> {
        let (k, j) = self
            .prefixes
            .range::<str, _>((Bound::Unbounded, Bound::Included(s)))
            .next_back()?;
        s.starts_with(k.as_str()).then_some((k.as_str(), *j))
    }

    fn check_and_add(&mut self, i: usize, p: &PathMatch) -> Option<Shadow> {
        match p {
            PathMatch::Exact(s) => {
                if let Some(&j) = self.exact.get(s) {
                    return Some(Shadow::Same(j));
                }
                self.exact.insert(s.clone(), i);
                self.prefix_of(s).map(|(_, j)| Shadow::Covered(j))
            }
            PathMatch::Prefix(s) => {
                if let Some((k, j)) = self.prefix_of(s) {
                    return Some(if k == s {
                        Shadow::Same(j)
                    } else {
                        Shadow::Covered(j)
                    });
                }
                // Longer prefixes this one covers stay reported where they were; later paths
                // they would cover are covered by this one as well.
                let covered: Vec<String> = self
                    .prefixes
                    .range::<str, _>((Bound::Included(s.as_str()), Bound::Unbounded))
                    .take_while(|(k, _)| k.starts_with(s.as_str()))
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in covered {
                    self.prefixes.remove(&k);
                }
                self.prefixes.insert(s.clone(), i);
                None
            }
        }
    }
}

fn route_path(c: &mut Check, key: &str, path: &str) -> Option<PathMatch> {
    let example = PATH_EXAMPLE;
    if !path.starts_with(ROUTE_PATH_PREFIX) {
        c.problem(key, format!("{} does not start with {ROUTE_PATH_PREFIX}. Routes match WeCom API paths, {example}", quote(path)));
        return None;
    }
    if path
        .chars()
        .any(|ch| ch.is_whitespace() || ch.is_control() || ch == '?' || ch == '#')
    {
        c.problem(
            key,
            format!(
                "{} holds spaces, ? or #. Give the path alone, without a query, {example}",
                quote(path)
            ),
        );
        return None;
    }
    match path.strip_suffix('*') {
        Some(prefix) if !prefix.contains('*') => Some(PathMatch::Prefix(prefix.to_string())),
        _ if path.contains('*') => {
            c.problem(key, format!("{} has a * that does not end it. A * may only end the path, for a prefix match, {example}", quote(path)));
            None
        }
        _ => Some(PathMatch::Exact(path.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate::Secrets;

    #[test]
    fn route_paths() {
        let mut c = Check::new(&|_| None, None, Secrets::Read);
        assert_eq!(
            route_path(&mut c, "k", "/cgi-bin/user/*"),
            Some(PathMatch::Prefix("/cgi-bin/user/".into()))
        );
        assert_eq!(
            route_path(&mut c, "k", "/cgi-bin/*"),
            Some(PathMatch::Prefix("/cgi-bin/".into()))
        );
        assert_eq!(
            route_path(&mut c, "k", "/cgi-bin/message/send"),
            Some(PathMatch::Exact("/cgi-bin/message/send".into()))
        );
        assert!(c.problems.is_empty());
        for bad in [
            "/user/get",
            "cgi-bin/x",
            "/cgi-bin/*/get",
            "/cgi-bin/**",
            "/cgi-bin/a?b=1",
            "/cgi-bin/a b",
        ] {
            assert_eq!(route_path(&mut c, "k", bad), None, "{bad}");
        }
        assert_eq!(c.problems.len(), 6);
    }

    #[test]
    fn shadows_say_which_earlier_route_wins() {
        let mut s = Shadows::default();
        let prefix = |p: &str| PathMatch::Prefix(p.into());
        let exact = |p: &str| PathMatch::Exact(p.into());
        assert_eq!(s.check_and_add(0, &prefix("/cgi-bin/user/")), None);
        assert_eq!(s.check_and_add(1, &exact("/cgi-bin/a")), None);
        assert_eq!(
            s.check_and_add(2, &exact("/cgi-bin/a")),
            Some(Shadow::Same(1))
        );
        assert_eq!(
            s.check_and_add(3, &exact("/cgi-bin/user/get")),
            Some(Shadow::Covered(0))
        );
        assert_eq!(
            s.check_and_add(4, &prefix("/cgi-bin/user/")),
            Some(Shadow::Same(0))
        );
        // A shorter prefix covers what comes after it, and takes over the longer one's place.
        assert_eq!(s.check_and_add(5, &prefix("/cgi-bin/u")), None);
        assert_eq!(
            s.check_and_add(6, &prefix("/cgi-bin/user/x/")),
            Some(Shadow::Covered(5))
        );
    }
}
