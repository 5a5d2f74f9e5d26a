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

#[cfg(test)]
mod tests {
    use super::super::respond::{self, After, Answer};
    use super::super::RequestCtx;
    use super::*;
    use crate::linger::tests::session_pair;
    use sha2::Digest;
    use tokio::net::TcpStream;

    /// The body of the request `head_and_body` as `read_body` reads it, its hash, the session
    /// and the client's end (kept open while the session answers).
    async fn read(
        head_and_body: &str,
        kind: BodyKind,
    ) -> (RequestBody, [u8; 32], Session, TcpStream) {
        let (mut session, client) = session_pair(head_and_body).await;
        let noted = Noted::of(&session.req_header().headers);
        let (body, hash) = read_body(&mut session, &noted, kind, true)
            .await
            .unwrap_or_else(|_| panic!("the body of {head_and_body:?} is read"));
        (body, hash, session, client)
    }

    fn buffered(body: &RequestBody) -> &[u8] {
        match body {
            RequestBody::Buffered(bytes) => bytes,
            RequestBody::Empty => b"",
            RequestBody::Spooled(_) => panic!("a JSON body is buffered, not spooled"),
        }
    }

    #[tokio::test]
    async fn a_body_is_read_to_the_end_its_head_declares_and_hashed() {
        let json = r#"{"touser":"zhangsan","msgtype":"text"}"#;
        let (body, hash, ..) = read(
            &format!(
                "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{json}",
                json.len()
            ),
            BodyKind::Json,
        )
        .await;
        assert_eq!(buffered(&body), json.as_bytes());
        assert_eq!(hash, <[u8; 32]>::from(sha2::Sha256::digest(json)));
    }

    #[tokio::test]
    async fn an_upload_is_spooled_to_the_end_its_head_declares() {
        let part =
            "--b\r\nContent-Disposition: form-data; name=\"media\"\r\n\r\nhello\r\n--b--\r\n";
        let (body, ..) = read(
            &format!(
                "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{part}",
                part.len()
            ),
            BodyKind::Upload,
        )
        .await;
        let RequestBody::Spooled(spool) = body else {
            panic!("an upload is spooled")
        };
        assert_eq!(spool.len(), part.len() as u64);
    }

    #[tokio::test]
    async fn a_chunked_body_is_read_chunk_by_chunk_to_its_last() {
        let (body, ..) = read(
            "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
             7\r\n{\"a\":\"h\r\n6\r\nello\"}\r\n0\r\n\r\n",
            BodyKind::Json,
        )
        .await;
        assert_eq!(buffered(&body), br#"{"a":"hello"}"#);
    }

    #[tokio::test]
    async fn a_request_that_declares_no_body_has_none_and_the_next_request_is_kept() {
        // A GET with the next request pipelined behind it: nothing of that one is taken as a
        // body, and the call's own end (`respond::finish`) hands it on whole with the kept
        // connection.
        let next = "GET /y HTTP/1.1\r\nHost: x\r\n\r\n";
        let (body, hash, mut session, _client) = read(
            &format!("GET /x HTTP/1.1\r\nHost: x\r\n\r\n{next}"),
            BodyKind::Json,
        )
        .await;
        assert!(matches!(body, RequestBody::Empty));
        assert_eq!(hash, <[u8; 32]>::from(sha2::Sha256::digest(b"")));
        // As the app listener has it (`proxy::connection`); pingora reads the flag only when
        // the connection is handed back.
        session.set_pipelining_enabled(true);
        let mut header = pingora::http::ResponseHeader::build(200, None).unwrap();
        header.insert_header("Content-Length", "0").unwrap();
        let answer = Answer {
            header: Box::new(header),
            body: Bytes::new(),
        };
        let mut ctx = RequestCtx::new(http::HeaderValue::from_static("t"), None);
        let After::Reuse((_, pipelined)) =
            respond::finish(Box::new(session), Some(answer), true, &mut ctx).await
        else {
            panic!("the connection is kept")
        };
        assert_eq!(pipelined.as_deref(), Some(next.as_bytes()));
    }
}
