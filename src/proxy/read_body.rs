//! Reading the app's request body: JSON into memory, uploads into a spool file, each bounded by
//! its limit before a byte past it is read, and hashed when the call's signature covers it.

use bytes::{Bytes, BytesMut};
use pingora::protocols::http::ServerSession as Session;

use super::refusal::Refusal;
use super::request::Noted;
use crate::body::{RequestBody, Spool};
use crate::wecom::apis::BodyKind;

/// Largest JSON request body accepted from an app.
pub const MAX_JSON_REQUEST: u64 = 2 * 1024 * 1024;
/// Largest upload accepted: WeCom's 20 MB media limit plus room for the multipart framing.
pub const MAX_UPLOAD: u64 = 20 * 1024 * 1024 + 64 * 1024;

/// The next chunk of the app's request body. A body that cannot be read (a broken chunk size,
/// a connection cut mid-body) leaves no way to tell where the next request would start, so
/// the answer to it closes the connection (RFC 9112 §6.3) instead of reading on from bytes
/// that can no longer be framed.
async fn next_chunk(session: &mut Session) -> Result<Option<Bytes>, Refusal> {
    // A body read to its end, or one the head declares none of (a GET), is not read again:
    // pingora's read would answer `None` as well, after arming its read timeout for it.
    if session.is_body_done() {
        return Ok(None);
    }
    match session.read_request_body().await {
        Ok(chunk) => Ok(chunk),
        Err(e) => {
            session.set_keepalive(None);
            Err(Refusal::BrokenBody {
                cause: e.etype().as_str(),
            })
        }
    }
}

/// Reads the app's request body: JSON into memory, uploads into a spool file. Refuses bodies
/// over the limit before reading past it. With `hash`, also returns the body's SHA-256 (what a
/// signed call signs).
pub(super) async fn read_body(
    session: &mut Session,
    noted: &Noted,
    kind: BodyKind,
    hash: bool,
) -> Result<(RequestBody, [u8; 32]), Refusal> {
    use sha2::Digest;
    let mut hasher = hash.then(sha2::Sha256::new);
    let limit = if kind == BodyKind::Upload {
        MAX_UPLOAD
    } else {
        MAX_JSON_REQUEST
    };
    let declared = noted.declared_length();
    if declared.is_some_and(|n| n > limit) {
        return Err(Refusal::TooLarge { limit });
    }
    // Clients that asked to be invited (curl does for large uploads) get the invitation now,
    // once the declared size is known to be acceptable, instead of waiting a second for it.
    if noted.expects_continue() {
        let _ = session.write_continue_response().await;
    }
    if kind == BodyKind::Upload {
        let mut spool = Spool::new().map_err(|_| Refusal::SpoolFailed)?;
        while let Some(chunk) = next_chunk(session).await? {
            if spool.len() + chunk.len() as u64 > limit {
                return Err(Refusal::TooLarge { limit });
            }
            if let Some(h) = hasher.as_mut() {
                h.update(&chunk);
            }
            spool
                .write(&chunk)
                .await
                .map_err(|_| Refusal::SpoolFailed)?;
        }
        spool.finish().await.map_err(|_| Refusal::SpoolFailed)?;
        let body = if spool.is_empty() {
            RequestBody::Empty
        } else {
            RequestBody::Spooled(spool)
        };
        return Ok((
            body,
            hasher.map(|h| h.finalize().into()).unwrap_or_default(),
        ));
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = next_chunk(session).await? {
        if (buf.len() + chunk.len()) as u64 > limit {
            return Err(Refusal::TooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    if let Some(h) = hasher.as_mut() {
        h.update(&buf);
    }
    let body = if buf.is_empty() {
        RequestBody::Empty
    } else {
        RequestBody::Buffered(buf.freeze())
    };
    Ok((
        body,
        hasher.map(|h| h.finalize().into()).unwrap_or_default(),
    ))
}
