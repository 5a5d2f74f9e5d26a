//! Signature checks for `clients:`: which client a call is from, and whether that client may
//! use the app the call names. Every refusal is counted in `wecom_client_rejected_total` by
//! client (`unknown` for names not configured) and reason.

use pingora::protocols::http::ServerSession as Session;

use super::refusal::Refusal;
use crate::config::{AppName, Client};
use crate::signing;
use crate::state::Shared;

/// Checks the call's signature (`clients:` set); the client it is from, or the refusal.
pub(super) fn authenticate<'c>(
    shared: &Shared,
    clients: &'c [Client],
    session: &Session,
    path: &str,
    query: &str,
    body_sha256: &[u8; 32],
) -> Result<&'c Client, Refusal> {
    let req = session.req_header();
    let header = |name| req.headers.get(name).map(|v| v.as_bytes());
    let presented = signing::Presented {
        client: header(signing::CLIENT_HEADER),
        timestamp: header(signing::TIMESTAMP_HEADER),
        signature: header(signing::SIGNATURE_HEADER),
    };
    let signed = signing::Signed {
        method: req.method.as_str(),
        path,
        query,
        body_sha256,
    };
    signing::verify(clients, presented, &signed, signing::now_secs()).map_err(|why| {
        let label = presented
            .client
            .and_then(|n| clients.iter().find(|c| c.name.as_bytes() == n))
            .map_or("unknown", |c| &*c.name);
        shared
            .metrics
            .client_rejected
            .with_label_values(&[label, why.as_str()])
            .inc();
        Refusal::Unsigned(why)
    })
}

/// Lets a signed call for `app` through when its client may use that app.
pub(super) fn may_use(shared: &Shared, client: &Client, app: &AppName) -> Result<(), Refusal> {
    if client.may_use(app) {
        return Ok(());
    }
    shared
        .metrics
        .client_rejected
        .with_label_values(&[&*client.name, "app_not_allowed"])
        .inc();
    Err(Refusal::AppNotAllowed {
        client: client.name.clone(),
        app: app.clone(),
    })
}
