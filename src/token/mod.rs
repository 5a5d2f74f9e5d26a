//! Token custody: each app's `access_token` is fetched with the app's secret, cached (moka, each
//! entry evicted at its own expiry), refreshed ahead of expiry in the background, and replaced
//! when WeCom rejects it. Apps never see a token or a secret.
//!
//! One `gettoken` at a time per app: every fetch takes the app's fetch lock, then looks at the
//! cache again, so 200 callers arriving together cause one fetch and then all read its result.
//! A replacement after a rejection names the token that was rejected; if the cache already holds
//! a newer one (someone else replaced it first), that one is used and nothing is fetched.
//!
//! Every gettoken passes the app's bounds first (`bounds`: `min_fetch_interval`,
//! `min_refetch`, backoff after failures; `cap`: `max_fetches`). A fetch they hold answers
//! [`TokenError::Held`], or during a backoff the last failure, and a still-valid token keeps
//! being served meanwhile. A hold is logged when it starts and counted per call in
//! `wecom_token_held_total{app,reason}`.
//!
//! The rooms: `value` ([`Token`]), `error` ([`TokenError`]), `app` (an app's token state,
//! [`AppTokens`], and [`TokenSource`]), `store` ([`TokenStore`], the cache and its fetches),
//! `bounds` and `cap` (what holds a gettoken), `fetch` (one gettoken), `fleet` (tokens shared
//! through Redis), `seal` (a token sealed for Redis) and `refresher` (refresh ahead of expiry).

mod app;
pub mod bounds;
pub(crate) mod cap;
mod error;
pub mod fetch;
pub(crate) mod fleet;
pub mod refresher;
pub mod seal;
mod store;
mod value;

pub use app::{AppTokens, FetchStatus, TokenKey, TokenSource};
pub use error::TokenError;
use store::gettoken_capped;
pub use store::TokenStore;
pub(crate) use store::Want;
pub use value::{fingerprint, Token};
