//! Streaming an upstream media answer to the app chunk by chunk, once forwarding has ended (a
//! buffered JSON answer is written whole by `respond`).

use pingora::protocols::http::ServerSession as Session;

use crate::metrics::Outcome;
use crate::proxy::{respond, RequestCtx};
use crate::redact::CallRedaction;
use crate::upstream::exchange::Open;
use crate::upstream::UpstreamRt;

/// Streams a binary answer to the app chunk by chunk. Each upstream read is bounded by the
/// upstream's `timeout`; a stall or break mid-body cuts the app's connection. Its headers are
/// redacted; its body (a file) is passed byte for byte: rewriting it would corrupt the file.
pub(in crate::proxy) async fn stream(
    mut open: Open,
    up: &UpstreamRt,
    secrets: &CallRedaction,
    session: &mut Session,
    ctx: &mut RequestCtx,
) {
    let header = respond::header_from_upstream(open.header_mut(), ctx, None, secrets);
    ctx.status = open.status();
    ctx.outcome = Outcome::Ok;
    if let Err(e) = session.write_response_header(Box::new(header)).await {
        ctx.detail = Some(format!("app went away: {}", e.etype().as_str()));
        return;
    }
    loop {
        match open.chunk().await {
            Ok(Some(chunk)) => {
                if let Err(e) = session.write_response_body(chunk, false).await {
                    ctx.detail = Some(format!("app went away: {}", e.etype().as_str()));
                    return;
                }
            }
            Ok(None) => break,
            Err(e) => {
                // The header is out: the only honest signal left is to cut the connection.
                ctx.outcome = Outcome::NetworkError;
                ctx.detail = Some(format!("upstream broke mid-body: {}", e.describe()));
                session.shutdown().await;
                return;
            }
        }
    }
    let _ = session.finish_body().await;
    open.release(up).await;
}
