//! HTTP/1.1 on an upstream connection, spoken by the sidecar itself: the request head written
//! in one buffer (`request`), the response head parsed with `httparse` (`head`), the body read
//! by its framing (`body`: Content-Length, chunked, or to the end of the connection), over one
//! stream with the bytes read ahead of what was asked for (`wire`).
//!
//! Why not pingora's client session: it cost ~20k instructions per call (issue 17's profile):
//! a second, case-preserving header map built for every answer, a 64 KiB body buffer and a copy
//! of every body chunk, a boxed request and response header built and dropped per call. The
//! rules are pingora 0.9.1's (`protocols/http/v1/client.rs`, `body.rs`, `common.rs`), kept to
//! the letter where tests pin them: the head size limit and its error, Content-Length
//! reconciliation (identical duplicates collapse, anything else is refused), Transfer-Encoding
//! over Content-Length, chunk and trailer limits, a truncated body an error and never a short
//! answer, and when a connection may carry the next request. The stream itself still comes
//! from pingora's transport connector (TCP, TLS, SNI, verification) through `pool`.

pub mod body;
pub mod head;
pub mod request;
pub mod wire;
