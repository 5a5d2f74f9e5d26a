//! Callbacks, WeCom's pushing side: the simulator's own WeCom callback crypto ([`crypto`]) and
//! XML ([`xml`]), the control calls that push to and verify a sidecar's callback URL
//! ([`push`]), the receiver that stands in for the app in `--dev` ([`receiver`]), and a
//! reference callback URL answering as a correct implementation does ([`endpoint`]).

pub mod crypto;
mod endpoint;
mod push;
pub(crate) mod receiver;
mod xml;

use http::{HeaderMap, Method};

use crate::handlers::Answer;
use crate::state::State;

/// The control calls of this module (`/sim/callbacks/…`, `/sim/receiver…`); `None` for any
/// other `/sim/` path.
pub(crate) async fn control(
    state: &State,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<Answer> {
    if let Some(app) = path.strip_prefix("callbacks/endpoint/") {
        return Some(endpoint::endpoint(state, method, app, query, body).await);
    }
    Some(match (method, path.trim_end_matches('/')) {
        (&Method::POST, "callbacks/push") => push::push(state, body).await,
        (&Method::POST, "callbacks/verify") => push::verify(state, body).await,
        (&Method::POST, "receiver") => receiver::receive(state, query, headers, body).await,
        (&Method::GET, "receiver") => receiver::list(state),
        (&Method::DELETE, "receiver") => receiver::clear(state),
        (&Method::POST, "receiver/reply") => receiver::set_answer(state, Some(body)),
        (&Method::DELETE, "receiver/reply") => receiver::set_answer(state, None),
        _ => return None,
    })
}
