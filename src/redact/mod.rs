//! Secrets out of everything an upstream says, and out of query strings in logs.
//!
//! An upstream can quote what it was sent: a `302` whose `Location` carries the call's URL, a
//! body or header that echoes it, a `gettoken` errmsg that quotes its `corpsecret`. Passed on,
//! that hands the app (and whoever it follows a redirect to) the real token, or puts a secret
//! in the log, `/admin/status` and a local answer. [`Redactor::redact`] is the one function
//! that takes them out: every occurrence of a known secret is replaced, leftmost-longest, by
//! what stands for it: a token by its app's name (so a redirected or echoed URL still works
//! through the sidecar), any other secret by [`MASK`].
//!
//! What is known ([`known`]) is process-wide: the app secrets and client keys of the config in
//! force and of the one before it ([`learn_config`]), and the tokens the sidecar fetched or
//! read from its fleet until they expire, newest [`MAX_TOKENS`] ([`learn_token`]). A call adds
//! its own extras ([`CallRedaction`]: a robot's `key`, the token it injected). Each secret is
//! searched for in every form [`Pattern::forms`] lists. Values shorter than [`MIN_SECRET_LEN`]
//! are not searched for: they are not secrets, and masking them would mangle answers.
//!
//! Cost on the call path: all known values are found in one pass (Aho-Corasick, built when a
//! secret or token is learnt, never per call), plus one `memmem` pass per extra; nothing is
//! copied unless something was found.
//!
//! The rooms: `redactor` ([`Pattern`], [`Redactor`]: the forms of a secret and the one pass
//! that rewrites text), `known` (the process-wide registry of known secrets and tokens, and
//! [`upstream_text`]), `call` ([`CallRedaction`]: one call's answer, known secrets and its own
//! extras) and `query` (secret parameter values masked in a query string or URI for logs).

mod call;
mod known;
mod query;
mod redactor;

pub use call::{CallRedaction, Encoded};
pub use known::{known, learn_config, learn_token, upstream_text, MAX_TOKENS};
pub use query::{redact_query, redact_uri};
pub use redactor::{Pattern, Redactor};

/// Query parameter names whose values are secrets.
pub const SECRET_PARAMS: &[&str] = &["access_token", "corpsecret", "key"];

/// What a masked value is replaced with.
pub const MASK: &str = "***";

/// Shorter values are not searched for in upstream text (real secrets are 32 characters or
/// more: WeCom secrets 43, client keys at least 32, robot keys 36, tokens about 100).
pub const MIN_SECRET_LEN: usize = 8;
