//! Tokens shared by a fleet through Redis: one `gettoken` per app per token lifetime across
//! every sidecar with the same key prefix.
//!
//! A sidecar that needs a token reads Redis. If the token there is missing, rejected or due for
//! refresh, one sidecar wins a lease (`SET NX PX`) and fetches; the others wait briefly and read
//! its result. A rejection carries the token it rejected and deletes it only if Redis still holds
//! exactly that one (compare before delete), so a newer token is never thrown away. Keys are made
//! from the corp id and agent id (or app name), never from the secret; the token is stored sealed
//! with a key derived from the secret (`seal`), so Redis never holds a usable token. Every sidecar
//! keeps a local copy (the moka cache), so Redis is read only when a token is needed, not per call.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::AsyncCommands;

use super::{seal, AppTokens, Token, TokenError, TokenSource, Want};
use crate::fleet::{FleetClient, FleetDown};

/// How long a sidecar holds the right to fetch for the fleet.
const LEASE: Duration = Duration::from_secs(10);
/// How long a sidecar that lost the lease waits for the winner's token before fetching itself.
pub(crate) const LEASE_WAIT: Duration = Duration::from_secs(3);
/// How often the waiting sidecars look again.
pub(crate) const POLL: Duration = Duration::from_millis(50);

const DELETE_IF_SAME: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur and cjson.decode(cur)['sealed'] == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn key(f: &FleetClient, app: &AppTokens) -> String {
    let who = match app.app.agent_id {
        Some(agent) => agent.to_string(),
        None => app.app.name.to_string(),
    };
    match &app.key.realm {
        Some(realm) => format!("{}t:{}:{who}:{realm}", f.prefix, app.app.corp_id),
        None => format!("{}t:{}:{who}", f.prefix, app.app.corp_id),
    }
}

/// A token for `app` as `want` asks, from the fleet, fetching under the lease if needed.
/// `Ok(Ok((token, true)))` when this sidecar called gettoken.
pub(super) async fn fetch(
    f: &FleetClient,
    app: &AppTokens,
    src: &TokenSource<'_>,
    want: &Want,
    serial: u64,
) -> Result<Result<(Token, bool), TokenError>, FleetDown> {
    let key = key(f, app);
    let secret = app.app.secret.expose().as_bytes();
    let lease = format!("{key}:lease");
    let give_up = Instant::now() + LEASE_WAIT;
    loop {
        match read(f, &key, secret, want, serial).await? {
            Stored::Good(token) => return Ok(Ok((token, false))),
            Stored::Rejected(sealed) => {
                let script = redis::Script::new(DELETE_IF_SAME);
                let _: i64 = f
                    .run(|mut c| {
                        let (script, key, sealed) = (&script, &key, &sealed);
                        async move { script.key(key).arg(sealed).invoke_async(&mut c).await }
                    })
                    .await?;
            }
            Stored::Unusable => {}
        }
        let won = take_lease(f, &lease).await?;
        if won {
            // The previous holder may have stored its token and let the lease go between the
            // read above and this lease: look once more before calling gettoken.
            if let Ok(Stored::Good(token)) = read(f, &key, secret, want, serial).await {
                release(f, &lease).await;
                return Ok(Ok((token, false)));
            }
            let result = super::gettoken_capped(Some(f), app, src, serial).await;
            if let Ok(t) = &result {
                store_sealed(f, &key, secret, t.expose(), t.expires_in(Instant::now())).await;
            }
            release(f, &lease).await;
            return Ok(result.map(|t| (t, true)));
        }
        if Instant::now() >= give_up {
            return Err(FleetDown);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// What Redis holds for an app, judged against what the caller wants.
enum Stored {
    /// A token the caller can use.
    Good(Token),
    /// The token the caller reports rejected, still stored (its sealed value, to delete it
    /// only if it is still the one stored).
    Rejected(String),
    /// None, one that does not open (another secret, edited, an older clear format), or one
    /// due for refresh: a new one is to be fetched and stored over it.
    Unusable,
}

async fn read(
    f: &FleetClient,
    key: &str,
    secret: &[u8],
    want: &Want,
    serial: u64,
) -> Result<Stored, FleetDown> {
    let Some(s) = read_sealed(f, key, secret).await? else {
        return Ok(Stored::Unusable);
    };
    let left = left_of(s.exp);
    let good = left > Duration::from_secs(1)
        && match want {
            Want::Any => true,
            Want::Replace { value, .. } => s.token.as_str() != &**value,
            Want::Fresh { refresh_before } => left > *refresh_before,
        };
    if good {
        let token = Token::new(s.token, Instant::now() + left, SystemTime::now(), serial);
        return Ok(Stored::Good(token));
    }
    match want {
        Want::Replace { value, .. } if s.token.as_str() == &**value => {
            Ok(Stored::Rejected(s.sealed))
        }
        _ => Ok(Stored::Unusable),
    }
}

/// What is stored sealed at `key`, if it opens under `secret`. Shared with the tickets
/// (`crate::ticket`), as are [`store_sealed`], [`take_lease`] and [`release`].
pub(crate) async fn read_sealed(
    f: &FleetClient,
    key: &str,
    secret: &[u8],
) -> Result<Option<seal::Opened>, FleetDown> {
    let stored: Option<String> = f
        .run(|mut c| {
            let k = key.to_string();
            async move { c.get(k).await }
        })
        .await?;
    Ok(stored.and_then(|s| seal::open(secret, key, &s)))
}

/// The time left of a stored value that expires at `exp` (Unix ms).
pub(crate) fn left_of(exp: u64) -> Duration {
    Duration::from_millis(exp.saturating_sub(unix_ms()))
}

/// Stores `value` sealed at `key` for `left` (best effort: a fleet that cannot store it
/// fetches again).
pub(crate) async fn store_sealed(
    f: &FleetClient,
    key: &str,
    secret: &[u8],
    value: &str,
    left: Duration,
) {
    let exp = unix_ms() + left.as_millis() as u64;
    let json = seal::seal(secret, key, value, exp);
    let _ = f
        .run(|mut c| {
            let key = key.to_string();
            let json = json.clone();
            async move {
                c.pset_ex::<_, _, ()>(key, json, left.as_millis().max(1) as u64)
                    .await
            }
        })
        .await;
}

/// Takes the fetch lease `lease` for [`LEASE`]; false when another sidecar holds it.
pub(crate) async fn take_lease(f: &FleetClient, lease: &str) -> Result<bool, FleetDown> {
    let won: Option<String> = f
        .run(|mut c| {
            let lease = lease.to_string();
            async move {
                redis::cmd("SET")
                    .arg(&lease)
                    .arg(std::process::id())
                    .arg("NX")
                    .arg("PX")
                    .arg(LEASE.as_millis() as u64)
                    .query_async(&mut c)
                    .await
            }
        })
        .await?;
    Ok(won.is_some())
}

/// Lets the lease go (it also runs out by itself after `LEASE`).
pub(crate) async fn release(f: &FleetClient, lease: &str) {
    let _ = f
        .run(|mut c| {
            let lease = lease.to_string();
            async move { c.del::<_, ()>(lease).await }
        })
        .await;
}
