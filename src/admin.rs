//! The admin listener: health, readiness, status, reload and metrics.
//!
//! | path | method | answer |
//! | --- | --- | --- |
//! | `/healthz` | GET | 200 while the process serves |
//! | `/readyz` | GET | 200 once every app has a token or has tried for one; 503 while draining |
//! | `/admin/status` | GET | JSON: apps (token fingerprint, expiry, refreshes), upstreams, routes |
//! | `/admin/reload` | POST | reload the config file, like SIGHUP |
//! | `/admin/callbacks` | GET | JSON: each callback app's counts, queue and dead letters |
//! | `/admin/callbacks/dead/<id>/retry` | POST | a dead letter queued again (`?app=` optional) |
//! | `/admin/outbox` | GET | JSON: each app's outbox counts, queue and recent sends |
//! | `/admin/outbox/<outbox_id>` | GET | JSON: one send's state and WeCom's answer |
//! | `/admin/outbox/dead` | GET | JSON: each app's outbox dead letters |
//! | `/admin/outbox/dead/<id>/retry` | POST | an outbox dead letter queued again (`?app=` optional) |
//! | `/admin/outbox/dead/<id>` | DELETE | an outbox dead letter deleted (`?app=` optional) |
//! | `/metrics` | GET | Prometheus text format |
//!
//! Every request first passes `admin_guard` (Host names, browsers on POST).
//!
//! Nothing here ever shows a secret or a token: apps are shown with a short SHA-256 fingerprint
//! of their current token.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, UNIX_EPOCH};

use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::{json, Value};

use crate::state::{Runtime, Shared};

mod callbacks;
mod outbox;

/// The admin HTTP app.
pub struct AdminApp {
    pub shared: Arc<Shared>,
}

fn answer(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("Content-Type", content_type)
        .header("Content-Length", body.len())
        .body(body)
        .expect("static parts are valid")
}

fn json_answer(status: StatusCode, v: &Value) -> Response<Vec<u8>> {
    let mut body = serde_json::to_vec_pretty(v).unwrap_or_default();
    body.push(b'\n');
    answer(status, "application/json", body)
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let method = req.method.clone();
        let path = req.uri.path().to_string();
        let local = session.server_addr().and_then(|a| a.as_inet()).copied();
        let admin_hosts = &self.shared.runtime.load().config.admin_hosts;
        if let Err(refusal) = crate::admin_guard::check(
            &method,
            req.uri.authority().map(|a| a.as_str()),
            &req.headers,
            local,
            admin_hosts,
        ) {
            tracing::debug!(
                reason = refusal.label(),
                %method,
                path = %crate::admin_guard::short(&path),
                "admin request refused"
            );
            return answer(
                refusal.status(),
                "text/plain",
                refusal.message().as_bytes().to_vec(),
            );
        }
        match (path.as_str(), &method) {
            ("/healthz", &Method::GET) => answer(StatusCode::OK, "text/plain", b"ok\n".to_vec()),
            ("/readyz", &Method::GET) => self.readyz(),
            ("/admin/status", &Method::GET) => {
                let mut doc = status(&self.shared);
                doc["callbacks"] = match &self.shared.callbacks {
                    Some(cb) => callbacks::status(cb, &self.shared.metrics).await,
                    None => Value::Null,
                };
                doc["outbox"] = match &self.shared.outbox {
                    Some(o) => outbox::status(o, &self.shared.metrics).await,
                    None => Value::Null,
                };
                json_answer(StatusCode::OK, &doc)
            }
            ("/admin/callbacks", &Method::GET) => match &self.shared.callbacks {
                Some(cb) => json_answer(
                    StatusCode::OK,
                    &callbacks::list(cb, &self.shared.metrics).await,
                ),
                None => no_callbacks(),
            },
            (p, m) if p.starts_with("/admin/callbacks/dead/") => {
                let query = req.uri.query().map(str::to_owned);
                self.callback_retry(p, m, query.as_deref()).await
            }
            (p, m) if p == "/admin/outbox" || p.starts_with("/admin/outbox/") => {
                let query = req.uri.query().map(str::to_owned);
                self.outbox_call(p, m, query.as_deref()).await
            }
            ("/admin/reload", &Method::POST) => match crate::reload::reload(&*self.shared) {
                Ok(()) => json_answer(StatusCode::OK, &json!({"reloaded": true})),
                Err(e) => json_answer(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &json!({"reloaded": false, "error": e.to_string()}),
                ),
            },
            (p, m) if p.starts_with("/admin/plans/") => plan_call(&self.shared, p, m),
            ("/metrics", &Method::GET) => {
                // The lines of the calls this scrape counts (those no longer in flight when
                // the gauges are read) are written before it answers (`admin_server`).
                refresh_gauges(&self.shared);
                if let Some(cb) = &self.shared.callbacks {
                    callbacks::refresh_gauges(cb, &self.shared.metrics).await;
                }
                if let Some(o) = &self.shared.outbox {
                    outbox::refresh_gauges(o, &self.shared.metrics).await;
                }
                answer(
                    StatusCode::OK,
                    "text/plain; version=0.0.4",
                    self.shared.metrics.render(),
                )
            }
            ("/healthz" | "/readyz" | "/admin/status" | "/metrics" | "/admin/callbacks", _)
            | ("/admin/reload", _) => answer(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                b"method not allowed\n".to_vec(),
            ),
            _ => answer(StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec()),
        }
    }
}

/// `POST /admin/plans/<name>/start` and `POST /admin/plans/<name>/abort`.
fn plan_call(shared: &Arc<Shared>, path: &str, method: &Method) -> Response<Vec<u8>> {
    let rest = path.trim_start_matches("/admin/plans/");
    let Some((name, action)) = rest.rsplit_once('/') else {
        return answer(StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec());
    };
    if method != Method::POST {
        return answer(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            b"method not allowed\n".to_vec(),
        );
    }
    let result = match action {
        "start" => shared.start_plan(name),
        "abort" => shared.plans.abort(name),
        _ => return answer(StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec()),
    };
    match result {
        Ok(()) => json_answer(
            StatusCode::OK,
            &json!({"ok": true, "plan": shared.plans.status()}),
        ),
        Err(e) => json_answer(StatusCode::CONFLICT, &json!({"ok": false, "error": e})),
    }
}

fn no_callbacks() -> Response<Vec<u8>> {
    json_answer(
        StatusCode::NOT_FOUND,
        &json!({"error": "no callbacks: the config has no `callbacks` section"}),
    )
}

fn method_not_allowed() -> Response<Vec<u8>> {
    answer(
        StatusCode::METHOD_NOT_ALLOWED,
        "text/plain",
        b"method not allowed\n".to_vec(),
    )
}

impl AdminApp {
    /// `/admin/outbox` and below.
    async fn outbox_call(
        &self,
        path: &str,
        method: &Method,
        query: Option<&str>,
    ) -> Response<Vec<u8>> {
        let Some(o) = &self.shared.outbox else {
            return json_answer(
                StatusCode::NOT_FOUND,
                &json!({"error": "no outbox: no route of the config the sidecar started with has outbox: true"}),
            );
        };
        let rest = path.trim_start_matches("/admin/outbox");
        let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
        let (status, doc) = match (parts.as_slice(), method) {
            ([], &Method::GET) => (StatusCode::OK, outbox::list(o, &self.shared.metrics).await),
            (["dead"], &Method::GET) => (StatusCode::OK, outbox::dead(o).await),
            (["dead", id, "retry"], &Method::POST) => outbox::retry(o, id, query).await,
            (["dead", id], &Method::DELETE) => outbox::forget(o, id, query).await,
            ([id], &Method::GET) if *id != "dead" => outbox::one(o, id).await,
            ([] | ["dead"] | ["dead", _, "retry"] | ["dead", _] | [_], _) => {
                return method_not_allowed()
            }
            _ => return answer(StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec()),
        };
        json_answer(status, &doc)
    }

    /// `POST /admin/callbacks/dead/<id>/retry`.
    async fn callback_retry(
        &self,
        path: &str,
        method: &Method,
        query: Option<&str>,
    ) -> Response<Vec<u8>> {
        let rest = path.trim_start_matches("/admin/callbacks/dead/");
        let Some(id) = rest.strip_suffix("/retry").filter(|id| !id.contains('/')) else {
            return answer(StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec());
        };
        if method != Method::POST {
            return answer(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                b"method not allowed\n".to_vec(),
            );
        }
        let Some(cb) = &self.shared.callbacks else {
            return no_callbacks();
        };
        let (status, doc) = callbacks::retry(cb, id, query).await;
        json_answer(status, &doc)
    }

    fn readyz(&self) -> Response<Vec<u8>> {
        if self.shared.draining.load(Ordering::Acquire) {
            return json_answer(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"ready": false, "why": "draining"}),
            );
        }
        let rt = self.shared.runtime.load();
        let waiting: Vec<&str> = rt
            .apps
            .iter()
            .filter(|a| self.shared.tokens.peek(a).is_none() && !a.status().tried)
            .map(|a| a.app.name.as_str())
            .collect();
        if waiting.is_empty() {
            json_answer(StatusCode::OK, &json!({"ready": true}))
        } else {
            json_answer(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"ready": false, "why": "waiting for first token", "apps": waiting}),
            )
        }
    }
}

/// Sets the gauges that are computed at scrape time.
fn refresh_gauges(shared: &Shared) {
    let rt = shared.runtime.load();
    let now = Instant::now();
    for app in &rt.apps {
        let secs = shared
            .tokens
            .peek(app)
            .map_or(0.0, |t| t.expires_in(now).as_secs_f64());
        shared
            .metrics
            .token_expires_in
            .with_label_values(&[app.app.name.as_str()])
            .set(secs);
    }
    for app in &rt.apps {
        for kind in crate::ticket::TicketKind::ALL {
            let secs = shared
                .tickets
                .peek(kind, app)
                .map_or(0.0, |t| t.expires_in.as_secs_f64());
            shared
                .metrics
                .ticket_expires_in
                .with_label_values(&[app.app.name.as_str(), kind.as_str()])
                .set(secs);
        }
    }
    // Health as the pipeline sees it now: an ejected upstream is 0 until its ejection ends or
    // a probe restores it.
    let at = tokio::time::Instant::now();
    for up in &rt.upstreams {
        shared
            .metrics
            .upstream_healthy
            .with_label_values(&[up.cfg.name.as_str()])
            .set(i64::from(up.health.available(at)));
    }
    shared
        .metrics
        .in_flight
        .with_label_values(&["app"])
        .set(shared.in_flight());
    let dropped = &shared.metrics.log_lines_dropped;
    dropped.inc_by(crate::logging::dropped_lines().saturating_sub(dropped.get()));
}

fn unix_secs(t: std::time::SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Whether the gettoken bounds hold the app's next fetch now (a refresh or a missing token),
/// why and for how long; and its cap.
fn gettoken_bounds(a: &crate::token::AppTokens, b: &crate::config::TokenSettings) -> Value {
    use crate::token::bounds::Purpose;
    let held = a.held(Purpose::Refresh, b);
    json!({
        "next_allowed_in_s": held.map_or(0, |(_, d)| d.as_secs_f64().ceil() as u64),
        "held": held.map(|(h, _)| h.as_str()),
        "capped": held.is_some_and(|(h, _)| h == crate::token::bounds::Hold::Capped),
        "max_fetches": b.max_fetches.to_string(),
    })
}

/// An app's JS-SDK tickets as the status page shows them: fingerprint and expiry only, never
/// the ticket (tickets are fetched from primary: none for another realm's token state).
fn tickets(shared: &Shared, a: &crate::token::AppTokens) -> Value {
    if a.key.realm.is_some() {
        return Value::Null;
    }
    let mut doc = serde_json::Map::new();
    for kind in crate::ticket::TicketKind::ALL {
        let t = shared.tickets.peek(kind, a);
        doc.insert(
            kind.as_str().into(),
            t.map_or(
                Value::Null,
                |t| json!({"fingerprint": t.fingerprint, "expires_in_s": t.expires_in.as_secs()}),
            ),
        );
    }
    Value::Object(doc)
}

/// The `/admin/status` document.
pub fn status(shared: &Shared) -> Value {
    let rt: Arc<Runtime> = shared.runtime.load_full();
    let now = Instant::now();
    let apps: Vec<Value> = rt
        .all_tokens()
        .map(|a| {
            let st = a.status();
            let token = shared.tokens.peek(a);
            json!({
                "name": a.app.name.as_str(),
                "token_realm": a.key.realm.as_ref().map_or("primary (shared)", |r| r.as_str()),
                "corp_id": a.app.corp_id,
                "agent_id": a.app.agent_id,
                "default": a.app.default,
                "secret_source": a.app.secret_source,
                "token": token.as_ref().map(|t| json!({
                    "fingerprint": t.fingerprint(),
                    "expires_in_s": t.expires_in(now).as_secs(),
                    "fetched_at_unix": unix_secs(t.fetched_at),
                })),
                "last_refresh_unix": st.last_refresh.map(unix_secs),
                "refresh_failures": st.refresh_failures,
                "consecutive_failures": st.consecutive_failures,
                // Redacted where it entered; again here, as everything from an upstream is.
                "last_error": st
                    .last_error
                    .as_ref()
                    .map(|e| crate::redact::upstream_text(&e.to_string(), &[]).into_owned()),
                "gettoken": gettoken_bounds(a, &rt.config.token),
                "tickets": tickets(shared, a),
            })
        })
        .collect();
    let upstreams: Vec<Value> = rt
        .upstreams
        .iter()
        .map(|u| {
            json!({
                "name": u.cfg.name.as_str(),
                "url": format!("{}://{}{}", match u.cfg.scheme { crate::config::Scheme::Http => "http", crate::config::Scheme::Https => "https" }, u.authority, u.cfg.base_path),
                "healthy": u.health.view().healthy,
                "consecutive_failures": u.health.view().consecutive_failures,
                "ejections": u.health.view().ejections,
                "ejected_for_ms": u.health.view().ejected_for_ms,
                "connect_timeout_ms": u.cfg.connect_timeout.as_millis() as u64,
                "timeout_ms": u.cfg.timeout.as_millis() as u64,
            })
        })
        .collect();
    let route = |path: String, r: &crate::routing::RouteRt| {
        json!({
            "path": path,
            "api": r.label(),
            "plan_split": shared.plans.split_status(&r.key),
            "split": r.policy.split.0.iter().map(|(n, w)| (n.as_str().to_string(), json!(w))).collect::<serde_json::Map<_, _>>(),
            "quota": r.policy.quota.iter().map(|q| q.to_string()).collect::<Vec<_>>(),
            "deadline_ms": r.policy.deadline.as_millis() as u64,
            "retry_attempts": r.policy.retry.attempts,
            "idempotent": r.policy.idempotent,
        })
    };
    let mut routes: Vec<Value> = rt
        .routes
        .routes()
        .iter()
        .map(|r| {
            let path = match &r.path {
                Some(crate::config::PathMatch::Exact(p)) => p.clone(),
                Some(crate::config::PathMatch::Prefix(p)) => format!("{p}*"),
                None => "*".into(),
            };
            route(path, r)
        })
        .collect();
    routes.push(route("(defaults)".into(), rt.routes.defaults()));
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": shared.started.elapsed().as_secs(),
        "in_flight": shared.in_flight(),
        "draining": shared.draining.load(Ordering::Acquire),
        "config_source": rt.config.source.as_ref().map(|p| p.display().to_string()),
        "listen": rt.config.listen.to_string(),
        "apps": apps,
        "upstreams": upstreams,
        "routes": routes,
        "plan": shared.plans.status(),
        "fleet": shared.fleet.as_ref().map_or_else(|| json!({"mode": "local"}), |f| f.status()),
        "plans": rt.config.shift_plans.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
        "egress_ip": shared.egress.latest().map(|s| json!({
            "ip": s.ip.to_string(),
            "app": s.app,
            "seen_at_unix": unix_secs(s.at),
            "fix": crate::wecom::egress::fix(s.ip, &s.app),
        })),
    })
}
