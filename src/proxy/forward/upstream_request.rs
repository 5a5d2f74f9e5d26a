//! The request head an attempt sends upstream: the app's request (or an outbox replay's)
//! with the upstream's base path, the call's query (token injected) and the app's end-to-end
//! headers, less those the sidecar sets itself.

use pingora::http::RequestHeader;

use crate::body::RequestBody;
use crate::proxy::refusal::Refusal;
use crate::proxy::{hop, request};
use crate::upstream::exchange;
use crate::upstream::h1::request::{HeadWriter, RequestHead};
use crate::upstream::UpstreamRt;

/// Request headers not passed upstream besides the hop-by-hop ones (`hop`): those the
/// sidecar sets itself, and its own.
const DROP_REQUEST_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "expect",
    "accept-encoding",
    request::APP_HEADER,
];

/// The head for one attempt at `up` (`query` already carries the token), written straight
/// from the app's request: its method, the upstream's base path with the call's path and
/// query, its end-to-end headers less those above, then `Host` and `Content-Length`. No
/// header map is built on the way (issue 17: building one per attempt, with pingora's
/// case-preserving second map, cost ~4k instructions). The buffer has room for `body` when
/// it goes in the same write.
pub(super) fn build(
    down: &RequestHeader,
    up: &UpstreamRt,
    path: &str,
    query: &str,
    body: &RequestBody,
) -> Result<RequestHead, Refusal> {
    let body_room = exchange::inline_len(body);
    let base = up.cfg.base_path.as_str();
    let target: &[&str] = match query {
        "" => &[base, path],
        _ => &[base, path, "?", query],
    };
    let room = 64 * down.headers.len() + body_room;
    let mut head = HeadWriter::new(&down.method, target, room).ok_or(Refusal::InvalidUri)?;
    let end_to_end = hop::end_to_end_iter(&down.headers, |name| {
        let n = name.as_str();
        DROP_REQUEST_HEADERS.contains(&n) || n.starts_with("x-sidecar-")
    });
    for (name, value) in end_to_end {
        head.header(name, value.as_bytes());
    }
    if let Some(host) = &up.host_header {
        head.header(&http::header::HOST, host.as_bytes());
    }
    if !body.is_empty() || down.method == http::Method::POST {
        head.content_length(body.len());
    }
    Ok(head.finish())
}
