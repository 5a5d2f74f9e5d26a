//! Routing: which route a call falls under, the bounded `api` label it is counted under, and
//! what the sidecar knows about the API (read or write, JSON or media, token or robot key).

use std::sync::Arc;

use crate::config::{PathMatch, Route, RoutePolicy};
use crate::upstream::split::SmoothWrr;
use crate::wecom::apis::{self, ApiInfo};

/// The path prefix of every WeCom server API.
pub const CGI_PREFIX: &str = "/cgi-bin/";

/// A route ready for the request path.
pub struct RouteRt {
    pub path: Option<PathMatch>,
    /// The route as written (`/cgi-bin/user/*`), or `defaults`: how plans name it.
    pub key: Arc<str>,
    /// The configured `api` label, or for a prefix route its pattern (`user/*`).
    label: Option<Arc<str>>,
    pub policy: RoutePolicy,
    /// Upstream indices (into `Runtime::upstreams`) and the picker over their weights.
    pub split_members: Vec<usize>,
    pub split: SmoothWrr,
}

/// What one call is, once routed.
pub struct Call<'a> {
    pub route: &'a RouteRt,
    pub api: ApiInfo,
    /// The `api` metric label.
    pub label: Arc<str>,
}

impl Call<'_> {
    /// Safe to send twice: the route's `idempotent`, else the built-in table.
    pub fn idempotent(&self) -> bool {
        self.route.policy.idempotent.unwrap_or(self.api.idempotent)
    }
}

/// Routes in order, first match wins, then the defaults.
pub struct RouteTable {
    routes: Vec<RouteRt>,
    defaults: RouteRt,
    /// Interned labels of the built-in table, so labelling a call allocates nothing.
    known_labels: Vec<Arc<str>>,
}

impl RouteRt {
    /// The configured `api` label (or a prefix route's pattern), if any.
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }
}

impl RouteTable {
    /// `upstream_index` maps an upstream name to its index; names were validated already.
    pub fn new(
        routes: &[Route],
        defaults: &RoutePolicy,
        upstream_index: impl Fn(&str) -> Option<usize>,
    ) -> Self {
        let build = |path: Option<PathMatch>, api: Option<&String>, policy: &RoutePolicy| {
            let members: Vec<(usize, u32)> = policy
                .split
                .0
                .iter()
                .filter_map(|(name, w)| upstream_index(name.as_str()).map(|i| (i, *w)))
                .collect();
            let label = match (api, &path) {
                (Some(api), _) => Some(Arc::from(api.as_str())),
                (None, Some(PathMatch::Prefix(p))) => Some(Arc::from(format!(
                    "{}*",
                    p.strip_prefix(CGI_PREFIX).unwrap_or(p)
                ))),
                (None, _) => None,
            };
            let key: Arc<str> = match &path {
                Some(PathMatch::Exact(p)) => Arc::from(p.as_str()),
                Some(PathMatch::Prefix(p)) => Arc::from(format!("{p}*")),
                None => Arc::from("defaults"),
            };
            RouteRt {
                key,
                split: SmoothWrr::new(&members.iter().map(|m| m.1).collect::<Vec<_>>()),
                split_members: members.into_iter().map(|m| m.0).collect(),
                label,
                path,
                policy: policy.clone(),
            }
        };
        RouteTable {
            routes: routes
                .iter()
                .map(|r| build(Some(r.path.clone()), r.api.as_ref(), &r.policy))
                .collect(),
            defaults: build(None, None, defaults),
            known_labels: apis::APIS.iter().map(|a| Arc::from(a.name)).collect(),
        }
    }

    /// Routes a path (without query). `None` for paths outside `/cgi-bin/`.
    pub fn route(&self, path: &str) -> Option<Call<'_>> {
        let name = path.strip_prefix(CGI_PREFIX)?;
        let route = self
            .routes
            .iter()
            .find(|r| r.path.as_ref().is_some_and(|p| p.matches(path)))
            .unwrap_or(&self.defaults);
        let known = apis::APIS.iter().position(|a| a.name == name);
        let api = known.map(|i| apis::APIS[i]).unwrap_or(apis::UNKNOWN);
        let label = match (&route.label, &route.path) {
            // An exact route's label, or an explicit `api:` on any route.
            (Some(l), Some(PathMatch::Exact(_))) => l.clone(),
            (Some(l), _) if known.is_none() => l.clone(),
            _ => match known {
                Some(i) => self.known_labels[i].clone(),
                None => route.label.clone().unwrap_or_else(|| Arc::from("other")),
            },
        };
        Some(Call { route, api, label })
    }

    pub fn routes(&self) -> &[RouteRt] {
        &self.routes
    }

    pub fn defaults(&self) -> &RouteRt {
        &self.defaults
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RoutePolicy {
        RoutePolicy {
            quota: vec![],
            ..RoutePolicy::default()
        }
    }

    fn table() -> RouteTable {
        let mut send = policy();
        send.idempotent = Some(true);
        let routes = vec![
            Route {
                path: PathMatch::Exact("/cgi-bin/message/send".into()),
                api: Some("send".into()),
                policy: send,
            },
            Route {
                path: PathMatch::Prefix("/cgi-bin/user/".into()),
                api: None,
                policy: policy(),
            },
            Route {
                path: PathMatch::Prefix("/cgi-bin/custom/".into()),
                api: None,
                policy: policy(),
            },
        ];
        RouteTable::new(&routes, &policy(), |n| (n == "primary").then_some(0))
    }

    #[test]
    fn first_match_and_labels() {
        let t = table();
        let c = t.route("/cgi-bin/message/send").unwrap();
        assert_eq!(&*c.label, "send");
        assert!(c.idempotent(), "route override wins");
        let c = t.route("/cgi-bin/user/get").unwrap();
        assert_eq!(&*c.label, "user/get");
        assert!(c.idempotent());
        let c = t.route("/cgi-bin/user/delete").unwrap();
        assert!(!c.idempotent(), "GET write from the table");
        let c = t.route("/cgi-bin/custom/thing").unwrap();
        assert_eq!(&*c.label, "custom/*");
        let c = t.route("/cgi-bin/made/up/1234").unwrap();
        assert_eq!(&*c.label, "other");
        assert!(!c.idempotent(), "unknown APIs are writes");
        assert!(t.route("/other/path").is_none());
    }
}
