//! Reading the next request head on an HTTP/1 connection, the same way on the app listener
//! (`proxy::connection`) and the admin listener (`admin_server`): a request already buffered
//! first, nothing new once draining, a malformed head answered 400 and a `CONNECT` 405, then
//! the connection closed. Each caller bounds the wait with its own `client.header_timeout`.

use pingora::protocols::http::ServerSession as Session;
use pingora::server::ShutdownWatch;
use pingora::ErrorType;

/// Reads the next request head on a connection (app and admin listeners alike). `false`: nothing to answer (the app closed an
/// idle connection, the sidecar is shutting down, or the head was refused here: malformed
/// requests get pingora's 400, `CONNECT` its 405, and the connection is closed).
pub async fn read(session: &mut Session, shutdown: &ShutdownWatch) -> bool {
    let mut stopping = shutdown.clone();
    let read = tokio::select! {
        // A request already buffered is read first.
        biased;
        read = session.read_request() => read,
        _ = stopping.wait_for(|stop| *stop) => return false,
    };
    match read {
        Ok(true) => {}
        Ok(false) => return false,
        Err(e) => {
            if e.etype() == &ErrorType::InvalidHTTPHeader {
                tracing::debug!(error = %e.etype().as_str(), "request head refused");
                let _ = session.respond_error(400).await;
            }
            session.shutdown().await;
            return false;
        }
    }
    if session.req_header().method == http::Method::CONNECT {
        // CONNECT frames its body differently (RFC 9112 §6.3); refuse before reading more.
        let _ = session.respond_error(405).await;
        session.shutdown().await;
        return false;
    }
    true
}
