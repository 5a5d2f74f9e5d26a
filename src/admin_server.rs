//! The admin listener's connections: read one request head at a time under the bounds of
//! `client:`, answer it with [`AdminApp`], and keep the connection for the next one.
//!
//! pingora's own `HttpServer` loop waits for a head without any bound (a head sent a byte at
//! a time, or never finished, held its descriptor for ever, and the admin port shares the
//! descriptor limit with the app port and the upstreams) and closed a head it refused
//! (userinfo in `Host`, two `Host` fields, an absolute-form target that disagrees with
//! `Host`) without an answer. Here the whole wait for a head, between calls included, is
//! bounded by `client.header_timeout`, and a refused head gets a 400, as on the app port.

use std::sync::Arc;

use async_trait::async_trait;
use pingora::apps::http_app::ServeHttp;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream};
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;

use crate::admin::AdminApp;

/// Seconds a kept-alive admin connection is advertised (the real bound is `header_timeout`).
const KEEPALIVE_S: u64 = 60;

/// The admin listener's HTTP/1 loop around [`AdminApp`].
pub struct AdminServer(pub AdminApp);

/// How long an admin answer waits for the log lines logged before it to be written.
const LOG_FLUSH: std::time::Duration = std::time::Duration::from_millis(100);

#[async_trait]
impl HttpServerApp for AdminServer {
    async fn process_new_http(
        self: &Arc<Self>,
        mut http: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        let limits = self.0.shared.runtime.load().config.client;
        http.set_read_timeout(Some(limits.body_timeout));
        http.set_write_timeout(Some(limits.body_timeout));
        let head = crate::request_head::read(&mut http, shutdown);
        if !matches!(
            tokio::time::timeout(limits.header_timeout, head).await,
            Ok(true)
        ) {
            return None;
        }
        http.set_keepalive((!*shutdown.borrow()).then_some(KEEPALIVE_S));
        let (parts, body) = self.0.response(&mut http).await.into_parts();
        // What an admin answer reports (a refused reload, the calls a scrape counts) is in
        // the log before the answer goes out; a stuck stderr holds it at most LOG_FLUSH.
        let _ = tokio::task::spawn_blocking(|| crate::logging::flush(LOG_FLUSH)).await;
        let head: ResponseHeader = parts.into();
        if http.write_response_header(Box::new(head)).await.is_err() {
            return None;
        }
        if !body.is_empty() && http.write_response_body(body.into(), true).await.is_err() {
            return None;
        }
        let settings = HttpPersistentSettings::for_session(&http);
        match http.finish().await {
            Ok(reusable) => reusable.map(|s| ReusedHttpStream::from_reusable_stream(s, settings)),
            Err(_) => None,
        }
    }
}
