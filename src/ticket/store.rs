//! The ticket cache ([`TicketStore`]): a slot per ticket (per corp for jsapi, per app for
//! agent_config), one fetch at a time per slot, every fetch past the token bounds and
//! `max_fetches`, shared through the fleet when it shares tokens.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{fetch, fleet, TicketKind};
use crate::config::{AppName, TokenSettings};
use crate::metrics::Metrics;
use crate::token::bounds::{self, Hold, Purpose};
use crate::token::cap::{self, LocalCap};
use crate::token::{AppTokens, Token, TokenError, TokenSource, TokenStore};
use crate::wecom::errcode;

/// Which slot: the kind, the corp, and for agent_config the app and a hash of its
/// credentials (a changed secret is a new slot, as it is a new token key).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SlotKey {
    kind: TicketKind,
    corp_id: String,
    app: Option<(AppName, u64)>,
}

impl SlotKey {
    fn of(kind: TicketKind, app: &AppTokens) -> SlotKey {
        let app_part = (kind == TicketKind::AgentConfig).then(|| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            app.key.hash(&mut h);
            (app.app.name.clone(), h.finish())
        });
        SlotKey {
            kind,
            corp_id: app.app.corp_id.clone(),
            app: app_part,
        }
    }

    /// Whose cap a fetch takes from (`max_fetches` per corp for jsapi, per app otherwise).
    fn cap_owner(&self) -> (AppName, Arc<str>) {
        match &self.app {
            None => (
                AppName(format!("corp:{}", self.corp_id).into()),
                Arc::from("ticket:jsapi"),
            ),
            Some((name, _)) => (name.clone(), Arc::from("ticket:agent_config")),
        }
    }
}

/// One ticket: the one cached, its fetch lock and history.
#[derive(Default)]
struct Slot {
    fetch_lock: tokio::sync::Mutex<()>,
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    ticket: Option<Arc<Token>>,
    history: bounds::History,
    cap: Option<LocalCap>,
    consecutive_failures: u32,
    last_error: Option<TokenError>,
}

impl Slot {
    fn with<R>(&self, f: impl FnOnce(&mut SlotState) -> R) -> R {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn valid(&self, now: Instant) -> Option<Arc<Token>> {
        self.with(|s| s.ticket.clone())
            .filter(|t| t.expires_at > now)
    }
}

/// What the status page shows of a ticket: never the ticket.
pub struct TicketView {
    pub fingerprint: String,
    pub expires_in: Duration,
}

/// The ticket cache shared by every call.
pub struct TicketStore {
    slots: Mutex<HashMap<SlotKey, Arc<Slot>>>,
    fleet: Option<Arc<crate::fleet::FleetClient>>,
    serial: AtomicU64,
    metrics: Arc<Metrics>,
}

impl TicketStore {
    pub fn new(metrics: Arc<Metrics>, fleet: Option<Arc<crate::fleet::FleetClient>>) -> Self {
        TicketStore {
            slots: Mutex::default(),
            fleet,
            serial: AtomicU64::new(1),
            metrics,
        }
    }

    fn slot(&self, key: &SlotKey) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(key.clone()).or_default().clone()
    }

    /// The cached ticket of `kind` for `app`, if a valid one is there (for the status page
    /// and the gauges). Never fetches.
    pub fn peek(&self, kind: TicketKind, app: &AppTokens) -> Option<TicketView> {
        let key = SlotKey::of(kind, app);
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)?
            .clone();
        let now = Instant::now();
        slot.valid(now).map(|t| TicketView {
            fingerprint: t.fingerprint(),
            expires_in: t.expires_in(now),
        })
    }

    /// A valid ticket of `kind` for `app`: the cached one, refreshed first by the call that
    /// finds it due (the others are served it meanwhile), or fetched once when none is.
    pub async fn get(
        &self,
        kind: TicketKind,
        app: &AppTokens,
        tokens: &TokenStore,
        src: &TokenSource<'_>,
    ) -> Result<Arc<Token>, TokenError> {
        let key = SlotKey::of(kind, app);
        let slot = self.slot(&key);
        let refresh_before = src.bounds.refresh_before_expiry;
        if let Some(t) = slot.valid(Instant::now()) {
            if t.expires_in(Instant::now()) > refresh_before {
                return Ok(t);
            }
            // Due: the first call that sees it refreshes; a failed or held refresh keeps the
            // ticket serving until it expires.
            let Ok(_one_at_a_time) = slot.fetch_lock.try_lock() else {
                return Ok(t);
            };
            let fresh = Box::pin(self.fetch(&key, &slot, kind, app, tokens, src, Purpose::Refresh));
            return Ok(fresh.await.unwrap_or(t));
        }
        let _one_at_a_time = slot.fetch_lock.lock().await;
        if let Some(t) = slot.valid(Instant::now()) {
            return Ok(t);
        }
        Box::pin(self.fetch(&key, &slot, kind, app, tokens, src, Purpose::Missing)).await
    }

    /// Fetches the slot's ticket, under its fetch lock, if the bounds allow.
    #[allow(clippy::too_many_arguments)]
    async fn fetch(
        &self,
        key: &SlotKey,
        slot: &Slot,
        kind: TicketKind,
        app: &AppTokens,
        tokens: &TokenStore,
        src: &TokenSource<'_>,
        purpose: Purpose,
    ) -> Result<Arc<Token>, TokenError> {
        let b = src.bounds;
        let now = Instant::now();
        if let Err((hold, until)) = slot.with(|s| bounds::decide(&s.history, purpose, now, b)) {
            let last = slot.with(|s| s.last_error.clone());
            return Err(match (hold, last) {
                (Hold::Backoff, Some(e)) => e,
                _ => TokenError::Held {
                    hold,
                    retry_in: until.saturating_duration_since(now),
                },
            });
        }
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let one = || self.capped_fetch(key, slot, kind, app, tokens, src, serial);
        let result = match self.fleet.as_ref().filter(|f| f.share_tokens) {
            Some(f) => {
                let rkey = fleet::key(f, kind, app);
                let secret = app.app.secret.expose().as_bytes();
                let good_over = match purpose {
                    Purpose::Refresh => b.refresh_before_expiry,
                    _ => Duration::ZERO,
                };
                match fleet::get(f, &rkey, secret, good_over, serial, one()).await {
                    Ok(r) => r,
                    Err(crate::fleet::FleetDown) => {
                        f.fell_back("ticket");
                        one().await.map(|t| (t, true))
                    }
                }
            }
            None => one().await.map(|t| (t, true)),
        };
        let app_label = app.app.name.as_str();
        match result {
            Ok((ticket, fetched)) => {
                let ticket = Arc::new(ticket);
                // No ticket may reach a log line, a metric or an answer but its own.
                crate::redact::learn_token(app_label, ticket.expose(), ticket.expires_at);
                let done = Instant::now();
                slot.with(|s| {
                    s.ticket = Some(ticket.clone());
                    s.consecutive_failures = 0;
                    s.last_error = None;
                    s.history.last_ok_at = Some(done);
                    if fetched {
                        s.history.last_attempt_at = Some(done);
                    }
                    s.history.retry_at = None;
                });
                if fetched {
                    self.count(app_label, kind, "ok");
                }
                tracing::info!(
                    app = app_label,
                    kind = kind.as_str(),
                    ticket = %ticket.fingerprint(),
                    expires_in_s = ticket.expires_in(done).as_secs(),
                    fetched,
                    "ticket fetched"
                );
                Ok(ticket)
            }
            Err(e @ TokenError::Held { .. }) => Err(e),
            Err(e) => {
                self.failed(slot, app_label, kind, &e, b);
                Err(e)
            }
        }
    }

    /// One ticket call, if the slot's cap has room.
    #[allow(clippy::too_many_arguments)]
    async fn capped_fetch(
        &self,
        key: &SlotKey,
        slot: &Slot,
        kind: TicketKind,
        app: &AppTokens,
        tokens: &TokenStore,
        src: &TokenSource<'_>,
        serial: u64,
    ) -> Result<Token, TokenError> {
        let (owner, api) = key.cap_owner();
        let taken = cap::take_named(
            self.fleet.as_deref(),
            "ticket",
            &owner,
            &api,
            src.bounds.max_fetches,
            |local| slot.with(|s| cap::take_local(&mut s.cap, local)),
        )
        .await;
        if let Err(retry_in) = taken {
            slot.with(|s| s.history.capped_until = Instant::now().checked_add(retry_in));
            self.count(app.app.name.as_str(), kind, "capped");
            tracing::warn!(
                app = app.app.name.as_str(),
                kind = kind.as_str(),
                max_fetches = %src.bounds.max_fetches,
                retry_in_s = retry_in.as_secs_f64().ceil() as u64,
                "ticket fetch capped: token.max_fetches reached for this ticket"
            );
            return Err(TokenError::Held {
                hold: Hold::Capped,
                retry_in,
            });
        }
        fetch::fetch(kind, app, tokens, src, serial).await
    }

    /// Records a failed fetch: counted, logged, backed off from (a WeCom frequency refusal
    /// for `min_fetch_interval` at once).
    fn failed(&self, slot: &Slot, app: &str, kind: TicketKind, e: &TokenError, b: &TokenSettings) {
        self.count(app, kind, "error");
        let limited = matches!(
            e,
            TokenError::Rejected { errcode: c, .. }
                if *c == errcode::FREQ_LIMIT || *c == errcode::CONCURRENCY_LIMIT
        );
        let delay = slot.with(|s| {
            s.consecutive_failures = s.consecutive_failures.saturating_add(1);
            s.last_error = Some(e.clone());
            let delay = if limited {
                b.min_fetch_interval
            } else {
                bounds::backoff(
                    s.consecutive_failures,
                    b.min_fetch_interval,
                    &mut rand::rng(),
                )
            };
            let done = Instant::now();
            s.history.last_attempt_at = Some(done);
            s.history.retry_at = Some(done + delay);
            delay
        });
        tracing::warn!(
            app,
            kind = kind.as_str(),
            error = %crate::redact::upstream_text(&e.to_string(), &[]),
            retry_in_ms = delay.as_millis() as u64,
            "ticket fetch failed"
        );
    }

    fn count(&self, app: &str, kind: TicketKind, result: &str) {
        self.metrics
            .ticket_refresh
            .with_label_values(&[app, kind.as_str(), result])
            .inc();
    }
}
