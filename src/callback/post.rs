//! One delivery attempt: a POST of a push's XML to the app's `deliver_to`, over pingora's
//! HTTP/1 connector, the one the upstreams use (`upstream`): pooled keep-alive connections,
//! and TLS with rustls for an `https` receiver (the certificate and host name checked against
//! the system's roots). No new HTTP client crate: the product already carries one that is
//! bounded and measured, and the receiver is one host per app.
//!
//! The whole attempt, connect to the end of the answer, is bounded by `delivery.timeout`.
//! Redirects are not followed (a 3xx is an answer that is not 2xx: retried); the answer's
//! body is read up to [`REPLY_CAP`], past which it is dropped and the connection closed.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::Uri;
use pingora::connectors::http::v1::Connector;
use pingora::connectors::ConnectorOptions;
use pingora::http::RequestHeader;
use pingora::protocols::http::v1::client::HttpSession;
use pingora::upstreams::peer::{HttpPeer, PeerOptions};

use crate::upstream::resolve::Resolver;

/// The most of an app's answer kept (its passive reply); WeCom's own replies are small.
pub const REPLY_CAP: usize = 64 * 1024;
/// How long an idle connection to a receiver is kept for the next push.
const POOL_IDLE: Duration = Duration::from_secs(15);
/// Interim (1xx) answers read before the final one at most.
const MAX_INTERIM: u32 = 8;

/// What the app answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    pub status: u16,
    /// The body; `None` when it was over [`REPLY_CAP`] (the push is still answered).
    pub body: Option<Bytes>,
}

/// The receivers' client: one connector (and pool) for every app, and their names resolved
/// without blocking.
pub struct Client {
    connector: Connector,
    resolver: Resolver,
}

impl Default for Client {
    fn default() -> Self {
        let mut opts = ConnectorOptions::new(0);
        opts.keepalive_pool_size = 64;
        Client {
            connector: Connector::new(Some(opts)),
            resolver: Resolver::default(),
        }
    }
}

impl Client {
    /// POSTs `body` to `to` with `headers`; an error is words for an operator (no URL).
    pub async fn post(
        &self,
        to: &Uri,
        headers: &[(&'static str, &str)],
        body: &[u8],
        timeout: Duration,
    ) -> Result<Answered, String> {
        match tokio::time::timeout(timeout, self.attempt(to, headers, body, timeout)).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {timeout:?}")),
        }
    }

    async fn attempt(
        &self,
        to: &Uri,
        headers: &[(&'static str, &str)],
        body: &[u8],
        timeout: Duration,
    ) -> Result<Answered, String> {
        let tls = to.scheme_str() == Some("https");
        let host = to.host().unwrap_or_default().trim_matches(['[', ']']);
        let port = to.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let addr = self.resolver.resolve(host, port).await?;
        let peer = peer(addr, tls, host, timeout);
        let mut session = match self.connector.reused_http_session(&peer).await {
            Some(s) => s,
            None => {
                Box::pin(self.connector.get_http_session(&peer))
                    .await
                    .map_err(|e| format!("could not connect ({})", e.etype().as_str()))?
                    .0
            }
        };
        let path = to.path_and_query().map_or("/", |p| p.as_str());
        let mut req = RequestHeader::build("POST", path.as_bytes(), Some(headers.len() + 3))
            .map_err(|_| "the request could not be built".to_string())?;
        let authority = to.authority().map_or(host, |a| a.as_str());
        let _ = req.insert_header(http::header::HOST, authority);
        let _ = req.insert_header(http::header::CONTENT_TYPE, "application/xml");
        let _ = req.insert_header(http::header::CONTENT_LENGTH, body.len());
        for (name, value) in headers {
            // A value WeCom put in the XML that cannot be a header value is left out.
            if let Ok(v) = http::HeaderValue::from_str(value) {
                let _ = req.insert_header(*name, v);
            }
        }
        let broke = |e: Box<pingora::Error>| format!("connection broke ({})", e.etype().as_str());
        session
            .write_request_header(Box::new(req))
            .await
            .map_err(broke)?;
        session.write_body(body).await.map_err(broke)?;
        session.finish_body().await.map_err(broke)?;
        let status = read_final_head(&mut session).await?;
        let body = read_capped(&mut session).await?;
        match body {
            Some(_) => {
                self.connector
                    .release_http_session(session, &peer, Some(POOL_IDLE))
                    .await
            }
            None => session.shutdown().await,
        }
        Ok(Answered { status, body })
    }
}

fn peer(addr: SocketAddr, tls: bool, host: &str, timeout: Duration) -> HttpPeer {
    let mut peer = HttpPeer::new(addr, tls, host.to_string());
    let mut opts = PeerOptions::new();
    opts.connection_timeout = Some(timeout);
    opts.total_connection_timeout = Some(timeout);
    opts.read_timeout = Some(timeout);
    opts.write_timeout = Some(timeout);
    opts.idle_timeout = Some(POOL_IDLE);
    opts.verify_cert = true;
    opts.verify_hostname = true;
    peer.options = opts;
    peer
}

/// Reads answers until a final one (1xx but 101 are interim); its status.
async fn read_final_head(session: &mut HttpSession) -> Result<u16, String> {
    for _ in 0..=MAX_INTERIM {
        session
            .read_response()
            .await
            .map_err(|e| format!("no valid answer ({})", e.etype().as_str()))?;
        let status = session
            .resp_header()
            .map(|h| h.status.as_u16())
            .ok_or("no answer head")?;
        if !(100..200).contains(&status) || status == 101 {
            return Ok(status);
        }
    }
    Err("endless interim answers".into())
}

/// The answer's body, or `None` once it passes [`REPLY_CAP`].
async fn read_capped(session: &mut HttpSession) -> Result<Option<Bytes>, String> {
    let mut buf = BytesMut::new();
    loop {
        match session.read_body_bytes().await {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > REPLY_CAP {
                    return Ok(None);
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(Some(buf.freeze())),
            Err(e) => return Err(format!("the answer broke off ({})", e.etype().as_str())),
        }
    }
}
