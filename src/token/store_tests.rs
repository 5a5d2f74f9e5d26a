//! Tests of the token store: the moka expiry hooks, and fetches driven against the simulator
//! (crate `wecom-sim`, in process on a loopback port) through the real gettoken path.

use super::*;
use std::time::SystemTime;

use crate::config::{App, AppName, Rate, Scheme, Secret, TokenRealm, Upstream, UpstreamName};
use crate::upstream::health::HealthRegistry;
use crate::upstream::resolve::Resolver;
use crate::upstream::{Connectors, UpstreamRt};
use wecom_sim::{Fault, FaultKind, SimConfig, Simulator};

fn token(value: &str, lives: Duration) -> Arc<Token> {
    Arc::new(Token::new(
        value.into(),
        Instant::now() + lives,
        SystemTime::now(),
        1,
    ))
}

#[test]
fn a_refreshed_token_outlives_the_one_it_replaced() {
    let cache: Cache<u8, Arc<Token>> = Cache::builder().expire_after(TokenExpiry).build();
    cache.insert(1, token("old", Duration::from_millis(50)));
    // The refresh arrives while the old token is still valid.
    cache.insert(1, token("new", Duration::from_secs(3600)));
    std::thread::sleep(Duration::from_millis(200));
    let kept = cache
        .get(&1)
        .expect("the new token was dropped at the old one's expiry");
    assert_eq!(kept.expose(), "new");
}

#[test]
fn a_token_is_kept_until_its_own_expiry_and_dropped_then() {
    let cache: Cache<u8, Arc<Token>> = Cache::builder().expire_after(TokenExpiry).build();
    cache.insert(1, token("long", Duration::from_secs(3600)));
    cache.insert(2, token("short", Duration::from_millis(50)));
    assert!(cache.get(&1).is_some(), "a valid token was not kept");
    std::thread::sleep(Duration::from_millis(200));
    assert!(cache.get(&2).is_none(), "an expired token is still cached");
    assert!(cache.get(&1).is_some(), "a valid token was dropped");
}

#[test]
fn a_token_written_over_another_expires_at_its_own_expiry() {
    let cache: Cache<u8, Arc<Token>> = Cache::builder().expire_after(TokenExpiry).build();
    cache.insert(1, token("long", Duration::from_secs(3600)));
    cache.insert(1, token("short", Duration::from_millis(50)));
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        cache.get(&1).is_none(),
        "the new token was kept past its expiry (the old one's was used)"
    );
}

/// A store, one app of the simulator (`hr-bot`) and the upstream that issues its tokens.
struct Rig {
    sim: Simulator,
    upstream: Arc<UpstreamRt>,
    resolver: Resolver,
    bounds: TokenSettings,
    metrics: Arc<Metrics>,
    store: TokenStore,
    app: AppTokens,
}

fn bounds(min_fetch_interval: Duration, min_refetch: Duration, max_fetches: u32) -> TokenSettings {
    TokenSettings {
        refresh_before_expiry: Duration::from_secs(300),
        min_fetch_interval,
        min_refetch,
        max_fetches: Rate {
            count: max_fetches,
            per: Duration::from_secs(60),
        },
    }
}

impl Rig {
    async fn new(bounds: TokenSettings) -> Rig {
        let sim = Simulator::start("127.0.0.1:0".parse().unwrap(), SimConfig::dev())
            .await
            .unwrap();
        let cfg = Upstream {
            name: UpstreamName("primary".into()),
            scheme: Scheme::Http,
            host: "127.0.0.1".into(),
            port: sim.addr().port(),
            base_path: String::new(),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            ca_file: None,
            tokens: TokenRealm::Shared,
        };
        let upstream = Connectors::default().build(&cfg, &HealthRegistry::default());
        let metrics = Arc::new(Metrics::new());
        let app = AppTokens::new(App {
            name: AppName("hr-bot".into()),
            corp_id: "wwdev0000000000001".into(),
            agent_id: Some(1000002),
            secret: Secret::new("dev-secret-hr-bot"),
            secret_source: "test".into(),
            default: true,
        });
        Rig {
            sim,
            upstream,
            resolver: Resolver::default(),
            bounds,
            store: TokenStore::new(metrics.clone(), None),
            metrics,
            app,
        }
    }

    fn src(&self) -> TokenSource<'_> {
        TokenSource {
            upstream: &self.upstream,
            standbys: &[],
            resolver: &self.resolver,
            bounds: &self.bounds,
        }
    }

    async fn get(&self) -> Result<Arc<Token>, TokenError> {
        self.store.get(&self.app, &self.src()).await
    }

    async fn replace(&self, rejected: &Token) -> Result<Arc<Token>, TokenError> {
        self.store.replace(&self.app, &self.src(), rejected).await
    }

    async fn refresh_ahead(&self, refresh_before: Duration) -> Result<Arc<Token>, TokenError> {
        self.store
            .refresh_ahead(&self.app, &self.src(), refresh_before)
            .await
    }

    /// gettoken calls the simulator saw.
    fn gettokens(&self) -> u64 {
        let calls = self.sim.counters().calls;
        calls.get("/cgi-bin/gettoken").copied().unwrap_or(0)
    }

    fn refreshes(&self, result: &str) -> u64 {
        let m = &self.metrics.token_refresh;
        m.with_label_values(&["hr-bot", result]).get()
    }

    fn held(&self, reason: &str) -> u64 {
        let m = &self.metrics.token_held;
        m.with_label_values(&["hr-bot", reason]).get()
    }

    fn capped(&self) -> u64 {
        let m = &self.metrics.token_fetch_capped;
        m.with_label_values(&["hr-bot"]).get()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.sim.shutdown();
    }
}

#[tokio::test]
async fn a_fetched_token_is_cached_counted_and_served_again() {
    let rig = Rig::new(bounds(Duration::from_secs(60), Duration::ZERO, 100)).await;
    assert!(rig.store.peek(&rig.app).is_none());
    let first = rig.get().await.unwrap();
    assert_eq!(rig.gettokens(), 1);
    assert!(first.expires_in(Instant::now()) > Duration::from_secs(3600));
    let peeked = rig
        .store
        .peek(&rig.app)
        .expect("the fetched token is cached");
    assert_eq!(peeked.serial, first.serial);
    let again = rig.get().await.unwrap();
    assert_eq!(again.serial, first.serial);
    assert_eq!(again.expose(), first.expose());
    assert_eq!(rig.gettokens(), 1, "a cached token was fetched again");
    assert_eq!((rig.refreshes("ok"), rig.refreshes("error")), (1, 0));
    let s = rig.app.status();
    assert!(s.tried);
    assert!(s.last_refresh.is_some());
    assert_eq!((s.refresh_failures, s.consecutive_failures), (0, 0));
    assert!(s.last_error.is_none());
    assert!(s.history.last_ok_at.is_some());
    assert_eq!(s.history.replacement, None);
}

#[tokio::test]
async fn a_replacement_is_fetched_for_the_cached_token_only_once() {
    // min_fetch_interval long: only the rejection rule lets a second gettoken through.
    let rig = Rig::new(bounds(Duration::from_secs(60), Duration::ZERO, 100)).await;
    let first = rig.get().await.unwrap();
    let second = rig.replace(&first).await.unwrap();
    assert_eq!(rig.gettokens(), 2);
    assert_ne!(second.serial, first.serial);
    assert_ne!(second.expose(), first.expose());
    assert_eq!(rig.app.status().history.replacement, Some(second.serial));
    // A late rejection of the first token: someone replaced it already, nothing is fetched.
    let late = rig.replace(&first).await.unwrap();
    assert_eq!(late.serial, second.serial);
    assert_eq!(rig.gettokens(), 2);
    // The cached value under another serial (WeCom answers a valid token again) is the
    // rejected token all the same; it is a replacement, so a new one does not cure it.
    let same_value = Token::new(
        second.expose().to_string(),
        second.expires_at,
        SystemTime::now(),
        second.serial + 100,
    );
    let e = rig.replace(&same_value).await.unwrap_err();
    assert!(
        matches!(
            e,
            TokenError::Held {
                hold: Hold::Uncured,
                ..
            }
        ),
        "{e:?}"
    );
    let e = rig.replace(&second).await.unwrap_err();
    assert!(
        matches!(
            e,
            TokenError::Held {
                hold: Hold::Uncured,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(rig.gettokens(), 2, "an uncured rejection fetched");
    assert_eq!(rig.held("uncured"), 2);
    assert_eq!(rig.capped(), 0);
}

#[tokio::test]
async fn refresh_ahead_fetches_only_a_token_that_is_due() {
    let rig = Rig::new(bounds(Duration::ZERO, Duration::ZERO, 100)).await;
    let first = rig.get().await.unwrap();
    // The token lives 7200 s: not due a minute before expiry.
    let kept = rig.refresh_ahead(Duration::from_secs(60)).await.unwrap();
    assert_eq!(kept.serial, first.serial);
    assert_eq!(rig.gettokens(), 1);
    let due = rig
        .refresh_ahead(Duration::from_secs(3 * 3600))
        .await
        .unwrap();
    assert_ne!(due.serial, first.serial);
    assert_eq!(rig.gettokens(), 2);
    assert_eq!(rig.store.peek(&rig.app).unwrap().serial, due.serial);
    assert_eq!(rig.refreshes("ok"), 2);
}

#[tokio::test]
async fn a_failed_fetch_is_counted_recorded_and_backed_off_from() {
    let rig = Rig::new(bounds(Duration::from_secs(60), Duration::ZERO, 100)).await;
    rig.sim.inject(Fault {
        path: "/cgi-bin/gettoken".into(),
        kind: FaultKind::Errcode(40001),
        times: Some(1),
    });
    let e = rig.get().await.unwrap_err();
    assert!(
        matches!(e, TokenError::Rejected { errcode: 40001, .. }),
        "{e:?}"
    );
    assert_eq!((rig.refreshes("ok"), rig.refreshes("error")), (0, 1));
    let s = rig.app.status();
    assert!(s.tried);
    assert_eq!((s.refresh_failures, s.consecutive_failures), (1, 1));
    assert_eq!(s.last_error.as_ref(), Some(&e));
    let (attempt, retry) = (
        s.history.last_attempt_at.unwrap(),
        s.history.retry_at.unwrap(),
    );
    // The first backoff: between half a second and a second after the attempt.
    assert!(
        retry >= attempt + bounds::BACKOFF_BASE / 2,
        "{retry:?} {attempt:?}"
    );
    // During the backoff a call gets the failure itself, and nothing reaches WeCom.
    let again = rig.get().await.unwrap_err();
    assert_eq!(again, e);
    assert_eq!(rig.gettokens(), 1);
    assert_eq!(rig.held("backoff"), 1);
    assert_eq!(rig.app.status().refresh_failures, 1);
}

#[tokio::test]
async fn a_fetch_past_max_fetches_is_held_and_counted_as_capped() {
    let rig = Rig::new(bounds(Duration::ZERO, Duration::ZERO, 1)).await;
    let first = rig.get().await.unwrap();
    let e = rig.replace(&first).await.unwrap_err();
    assert!(
        matches!(
            e,
            TokenError::Held {
                hold: Hold::Capped,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(rig.gettokens(), 1);
    assert!(rig.app.status().history.capped_until.is_some());
    assert_eq!((rig.held("capped"), rig.capped()), (1, 1));
    // Held by the bounds now (capped_until), before the cap is asked again.
    let e = rig.replace(&first).await.unwrap_err();
    assert!(
        matches!(
            e,
            TokenError::Held {
                hold: Hold::Capped,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!((rig.held("capped"), rig.capped()), (2, 2));
    assert_eq!(rig.held("backoff"), 0);
    // The cached token keeps being served.
    assert_eq!(rig.get().await.unwrap().serial, first.serial);
}

#[tokio::test]
async fn a_fetch_its_callers_abandon_counts_as_a_failed_one() {
    let rig = Rig::new(bounds(Duration::from_secs(60), Duration::ZERO, 100)).await;
    rig.sim.inject(Fault {
        path: "/cgi-bin/gettoken".into(),
        kind: FaultKind::Hang,
        times: None,
    });
    let gave_up = tokio::time::timeout(Duration::from_millis(300), rig.get()).await;
    assert!(gave_up.is_err(), "a hanging gettoken answered");
    let s = rig.app.status();
    assert_eq!((s.refresh_failures, s.consecutive_failures), (1, 1));
    assert!(
        matches!(s.last_error, Some(TokenError::Unavailable(_))),
        "{:?}",
        s.last_error
    );
    assert!(s.history.retry_at.is_some());
    assert_eq!(rig.refreshes("error"), 1);
}
