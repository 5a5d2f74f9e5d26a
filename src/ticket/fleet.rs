//! Tickets shared by a fleet through Redis: one fetch per ticket per lifetime across every
//! sidecar with the same key prefix, on the token fleet's pieces (`token::fleet`: a sealed value
//! per key, a `SET NX PX` lease for the one sidecar that fetches, the others reading its
//! result). Keys name the kind, corp and agent (never a secret or a ticket); the value is
//! sealed with a key derived from the app's secret (`token::seal`), so Redis holds no usable
//! ticket. A sidecar whose app cannot open the stored ticket (another app of the same corp,
//! with another secret) fetches one and stores it over it.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use super::TicketKind;
use crate::fleet::{FleetClient, FleetDown};
use crate::token::fleet::{
    left_of, read_sealed, release, store_sealed, take_lease, LEASE_WAIT, POLL,
};
use crate::token::{AppTokens, Token, TokenError};

/// The Redis key of `kind` for `app`: per corp for jsapi, per app for agent_config.
pub(super) fn key(f: &FleetClient, kind: TicketKind, app: &AppTokens) -> String {
    let corp = &app.app.corp_id;
    match kind {
        TicketKind::Jsapi => format!("{}k:jsapi:{corp}", f.prefix),
        TicketKind::AgentConfig => {
            let who = match app.app.agent_id {
                Some(agent) => agent.to_string(),
                None => app.app.name.to_string(),
            };
            format!("{}k:agent_config:{corp}:{who}", f.prefix)
        }
    }
}

/// A ticket from the fleet that lives longer than `good_over`, fetching it with `fetch` under
/// the lease when none is stored. `Ok(Ok((ticket, true)))` when this sidecar fetched.
pub(super) async fn get<F>(
    f: &FleetClient,
    key: &str,
    secret: &[u8],
    good_over: Duration,
    serial: u64,
    fetch: F,
) -> Result<Result<(Token, bool), TokenError>, FleetDown>
where
    F: Future<Output = Result<Token, TokenError>>,
{
    let lease = format!("{key}:lease");
    let give_up = Instant::now() + LEASE_WAIT;
    let good_over = good_over.max(Duration::from_secs(1));
    let stored = |opened: Option<crate::token::seal::Opened>| {
        let o = opened?;
        let left = left_of(o.exp);
        (left > good_over)
            .then(|| Token::new(o.token, Instant::now() + left, SystemTime::now(), serial))
    };
    let mut fetch = Some(fetch);
    loop {
        if let Some(t) = stored(read_sealed(f, key, secret).await?) {
            return Ok(Ok((t, false)));
        }
        if take_lease(f, &lease).await? {
            // The holder before may have stored its ticket and let the lease go in between.
            if let Ok(Some(t)) = read_sealed(f, key, secret).await.map(stored) {
                release(f, &lease).await;
                return Ok(Ok((t, false)));
            }
            let Some(fetch) = fetch.take() else {
                release(f, &lease).await;
                return Err(FleetDown);
            };
            let result = fetch.await;
            if let Ok(t) = &result {
                store_sealed(f, key, secret, t.expose(), t.expires_in(Instant::now())).await;
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
