//! Quotas enforced before WeCom's: per app and API (a route's `quota`), per message recipient
//! (WeCom drops messages past 30 a minute / 1,000 an hour to one member), per group robot key
//! (20 a minute), blocks WeCom announced (45009/45033) remembered until they end (a day block
//! until 00:00 China time, `day`), calls in flight (`in_flight`) and member sends per calendar
//! day (`per_day`).
//!
//! All decisions are local to this sidecar here; fleet mode shares them through Redis.

mod blocks;
pub mod day;
pub mod in_flight;
pub mod per_day;
pub mod window;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moka::sync::Cache;
use tokio::time::Instant;

use crate::config::{AppName, Rate};
pub use blocks::block_for;
use window::Cells;

/// WeCom's cap on messages from one app to one member, per minute and per hour.
pub const RECIPIENT_LIMITS: [Rate; 2] = [
    Rate {
        count: 30,
        per: Duration::from_secs(60),
    },
    Rate {
        count: 1000,
        per: Duration::from_secs(3600),
    },
];
/// A group robot may send 20 messages a minute.
pub const ROBOT_LIMITS: [Rate; 1] = [Rate {
    count: 20,
    per: Duration::from_secs(60),
}];
/// How long a 45009 "minute" block lasts.
pub const MINUTE_BLOCK: Duration = Duration::from_secs(60);
/// How long a 45009 block lasts when WeCom's errmsg speaks of an hour.
pub const HOUR_BLOCK: Duration = Duration::from_secs(3600);
/// The longest block kept: a day block lasts until the next China midnight, at most a day.
const LONGEST_BLOCK: Duration = Duration::from_secs(86_400);
/// How long to hold back after 45033 (too many concurrent calls).
pub const CONCURRENCY_BLOCK: Duration = Duration::from_secs(5);
/// Most recipients tracked at once (bounded memory; idle entries leave after an hour).
const MAX_TRACKED_KEYS: u64 = 1_000_000;

/// What a quota state is kept for.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Key {
    /// A route's limits for one app and API; `rule` tells routes with the same label apart.
    Call {
        app: AppName,
        api: Arc<str>,
        limits: Vec<Rate>,
    },
    Recipient {
        app: AppName,
        user: String,
    },
    Robot {
        key: u64,
    },
}

/// Hashed field by field, written out (not derived) so that [`CallKey`], the borrowed form a
/// lookup uses, hashes a call's key the same way.
impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self {
            Key::Call { app, api, limits } => CallKey { app, api, limits }.hash(state),
            Key::Recipient { app, user } => {
                state.write_u8(1);
                app.hash(state);
                user.hash(state);
            }
            Key::Robot { key } => {
                state.write_u8(2);
                key.hash(state);
            }
        }
    }
}

/// A [`Key::Call`] made of borrowed parts: what each call looks its state up by, so a lookup
/// that finds it (nearly every one) builds no key (its limits copied, moka's `Arc` around it).
struct CallKey<'a> {
    app: &'a AppName,
    api: &'a str,
    limits: &'a [Rate],
}

impl std::hash::Hash for CallKey<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u8(0);
        self.app.hash(state);
        self.api.hash(state);
        self.limits.hash(state);
    }
}

impl moka::Equivalent<Key> for CallKey<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        matches!(key, Key::Call { app, api, limits }
            if app == self.app && &**api == self.api && &limits[..] == self.limits)
    }
}

impl Key {
    /// Its longest window: once idle that long, its state is all zeros and can go.
    fn window(&self) -> Duration {
        match self {
            Key::Call { limits, .. } => limits.iter().map(|r| r.per).max().unwrap_or_default(),
            Key::Recipient { .. } => RECIPIENT_LIMITS
                .iter()
                .map(|r| r.per)
                .max()
                .unwrap_or_default(),
            Key::Robot { .. } => ROBOT_LIMITS[0].per,
        }
    }
}

/// Each quota state leaves once idle for its own longest window (plus a bucket's slack), so a
/// recipient messaged once is forgotten after an hour, not kept for a day beside the others.
struct IdleForItsWindow;

impl moka::Expiry<Key, Arc<Mutex<Cells>>> for IdleForItsWindow {
    fn expire_after_create(
        &self,
        key: &Key,
        _: &Arc<Mutex<Cells>>,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(key.window() + key.window() / window::BUCKETS + Duration::from_secs(1))
    }

    fn expire_after_read(
        &self,
        key: &Key,
        value: &Arc<Mutex<Cells>>,
        read_at: std::time::Instant,
        _: Option<Duration>,
        _: std::time::Instant,
    ) -> Option<Duration> {
        self.expire_after_create(key, value, read_at)
    }
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The route's own quota: try again after `wait`.
    Limit { wait: Duration },
    /// These members already got their share of messages from this app.
    Recipients {
        members: Vec<String>,
        wait: Duration,
    },
    /// WeCom blocked this app and API; the block ends after `wait`.
    Blocked { wait: Duration },
}

impl Refusal {
    pub fn wait(&self) -> Duration {
        match self {
            Refusal::Limit { wait }
            | Refusal::Recipients { wait, .. }
            | Refusal::Blocked { wait } => *wait,
        }
    }
}

/// What one call asks of the quotas.
pub struct Ask<'a> {
    pub app: &'a AppName,
    pub api: &'a Arc<str>,
    pub limits: &'a [Rate],
    /// Message recipients to count (empty: none, e.g. `@all` or not a message).
    pub recipients: &'a [String],
    /// A group robot's key (hashed), instead of an app.
    pub robot: Option<u64>,
    /// This sidecar's share of each limit is `1/share` (fleet mode while Redis is down).
    pub share: u32,
}

/// This sidecar's share of `limits`; borrowed as they are in the usual case (`share` 1), so
/// a decision allocates nothing for it.
fn scaled(limits: &[Rate], share: u32) -> std::borrow::Cow<'_, [Rate]> {
    if share <= 1 {
        return std::borrow::Cow::Borrowed(limits);
    }
    limits
        .iter()
        .map(|r| Rate {
            count: (r.count / share).max(1),
            per: r.per,
        })
        .collect()
}

/// One quota state a call counts in: its cells, its limits, and the member it is for.
type Entry<'a> = (Arc<Mutex<Cells>>, &'a [Rate], Option<&'a str>);

/// Local quota state.
pub struct Quotas {
    /// Hashed with aHash (keyed at random, so still resistant to chosen keys): the state is
    /// looked up on every call, and SipHash, moka's default, cost twice as much.
    cells: Cache<Key, Arc<Mutex<Cells>>, ahash::RandomState>,
    blocks: Cache<(AppName, Arc<str>), Instant>,
    /// When the last-ending block WeCom announced ends, in ms after `epoch`: past it no block
    /// is on, and a decision skips the lookup (blocks are rare; decisions are every call).
    blocks_end: AtomicU64,
    epoch: Instant,
    /// Calls in flight, for routes with `max_in_flight`.
    pub in_flight: in_flight::InFlight,
    /// Member sends per China day, for routes with `recipients_per_day`.
    pub per_day: per_day::PerDay,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            cells: Cache::builder()
                .max_capacity(MAX_TRACKED_KEYS)
                .expire_after(IdleForItsWindow)
                .build_with_hasher(ahash::RandomState::new()),
            blocks: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(LONGEST_BLOCK + HOUR_BLOCK)
                .build(),
            blocks_end: AtomicU64::new(0),
            epoch: Instant::now(),
            in_flight: Default::default(),
            per_day: Default::default(),
        }
    }
}

impl Quotas {
    fn cells(&self, key: Key, limits: usize) -> Arc<Mutex<Cells>> {
        self.cells.get_with(key, || {
            Arc::new(Mutex::new(Cells::new(limits, Instant::now())))
        })
    }

    /// The state of a route's `limits` for one app and API: found by its borrowed key, and
    /// made (with an owned one) only when it is not there yet.
    fn call_cells(&self, app: &AppName, api: &Arc<str>, limits: &[Rate]) -> Arc<Mutex<Cells>> {
        let key = CallKey { app, api, limits };
        if let Some(cells) = self.cells.get(&key) {
            return cells;
        }
        let key = Key::Call {
            app: app.clone(),
            api: api.clone(),
            limits: limits.to_vec(),
        };
        self.cells(key, limits.len())
    }

    /// Takes one call from every quota the call falls under, or none.
    pub fn take(&self, ask: &Ask<'_>) -> Result<(), Refusal> {
        let now = Instant::now();
        if let Some(wait) = self.blocked(&block_owner(ask.app, ask.robot), ask.api, now) {
            return Err(Refusal::Blocked { wait });
        }
        let call_l = scaled(ask.limits, ask.share);
        if ask.robot.is_none() && ask.recipients.is_empty() {
            // Most calls: one state (or none) to count in, no lists to build.
            if call_l.is_empty() {
                return Ok(());
            }
            let cells = self.call_cells(ask.app, ask.api, &call_l);
            let mut g = cells.lock().unwrap_or_else(|p| p.into_inner());
            return window::take_all(&mut [(&mut *g, &call_l[..])], now)
                .map_err(|wait| Refusal::Limit { wait });
        }
        let recip_l = scaled(&RECIPIENT_LIMITS, ask.share);
        let robot_l = scaled(&ROBOT_LIMITS, ask.share);
        let mut entries: Vec<Entry<'_>> = Vec::new();
        if let Some(robot) = ask.robot {
            entries.push((
                self.cells(Key::Robot { key: robot }, robot_l.len()),
                &robot_l[..],
                None,
            ));
        } else if !ask.limits.is_empty() {
            let cells = self.call_cells(ask.app, ask.api, &call_l);
            entries.push((cells, &call_l[..], None));
        }
        // Lock order: the call's cells, then recipients sorted by name (no deadlock).
        let mut users: Vec<&String> = ask.recipients.iter().collect();
        users.sort();
        users.dedup();
        for user in users {
            let key = Key::Recipient {
                app: ask.app.clone(),
                user: user.clone(),
            };
            entries.push((
                self.cells(key, recip_l.len()),
                &recip_l[..],
                Some(user.as_str()),
            ));
        }
        let mut guards: Vec<_> = entries
            .iter()
            .map(|(c, limits, user)| (c.lock().unwrap_or_else(|p| p.into_inner()), *limits, *user))
            .collect();
        // Who is over, for the message; then all-or-nothing.
        let over: Vec<String> = guards
            .iter_mut()
            .filter_map(|(cells, limits, user)| {
                user.filter(|_| !cells.wait_time(limits, now).is_zero())
            })
            .map(str::to_string)
            .collect();
        let mut all: Vec<(&mut Cells, &[Rate])> = guards
            .iter_mut()
            .map(|(g, limits, _)| (&mut **g, *limits))
            .collect();
        match window::take_all(&mut all, now) {
            Ok(()) => Ok(()),
            Err(wait) if !over.is_empty() => Err(Refusal::Recipients {
                members: over,
                wait,
            }),
            Err(wait) => Err(Refusal::Limit { wait }),
        }
    }

    /// Remaining share of each of a route's limits for one app and API.
    pub fn remaining(&self, app: &AppName, api: &Arc<str>, limits: &[Rate]) -> Vec<u32> {
        let key = Key::Call {
            app: app.clone(),
            api: api.clone(),
            limits: limits.to_vec(),
        };
        match self.cells.get(&key) {
            Some(c) => c
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remaining(limits, Instant::now()),
            None => limits.iter().map(|r| r.count).collect(),
        }
    }

    /// Remembers that WeCom blocked `owner` (see [`block_owner`]) on `api` for `for_`. A block
    /// already on that ends later is kept (a 45033's seconds never shorten a 45009's hour).
    pub fn block(&self, owner: &AppName, api: &Arc<str>, for_: Duration) {
        let until = Instant::now() + for_;
        // A decision racing this very insert may miss the block: WeCom answers that one
        // call itself, as it did the call that brought the block.
        self.blocks_end
            .fetch_max(self.ms_after_epoch(until), Ordering::Relaxed);
        self.blocks
            .entry((owner.clone(), api.clone()))
            .and_upsert_with(|held| match held {
                Some(e) if *e.value() > until => *e.value(),
                _ => until,
            });
    }

    /// `t` in whole ms after `epoch`, rounded up so a block is never thought over early.
    fn ms_after_epoch(&self, t: Instant) -> u64 {
        let d = t.saturating_duration_since(self.epoch);
        u64::try_from(d.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1)
    }

    /// Time left of a block WeCom announced for `app` on `api`.
    pub fn blocked_for(&self, app: &AppName, api: &Arc<str>) -> Option<Duration> {
        self.blocked(app, api, Instant::now())
    }

    fn blocked(&self, app: &AppName, api: &Arc<str>, now: Instant) -> Option<Duration> {
        if self.ms_after_epoch(now) > self.blocks_end.load(Ordering::Relaxed) {
            return None;
        }
        let until = self.blocks.get(&(app.clone(), api.clone()))?;
        (until > now).then(|| until - now)
    }
}

/// Recipients of a message body, each once, sorted: the members of `touser`, written
/// "a|b|c" (message/send) or as a list (linkedcorp/message/send); `@all` counts nobody.
pub fn recipients(body: &[u8]) -> Vec<String> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Users {
        Piped(String),
        Listed(Vec<String>),
    }
    #[derive(serde::Deserialize)]
    struct Touser {
        touser: Option<Users>,
    }
    if !crate::wecom::errcode::is_json_object(body) {
        return Vec::new();
    }
    let mut users: Vec<String> = match serde_json::from_slice::<Touser>(body) {
        Ok(Touser {
            touser: Some(Users::Piped(t)),
        }) => t.split('|').map(|u| u.trim().to_string()).collect(),
        Ok(Touser {
            touser: Some(Users::Listed(l)),
        }) => l.into_iter().map(|u| u.trim().to_string()).collect(),
        _ => Vec::new(),
    };
    users.retain(|u| !u.is_empty() && u != "@all");
    users.sort();
    users.dedup();
    users
}

/// Whose block a call is under: its app, or for a group robot (no app) its own key, since
/// WeCom limits each robot apart.
pub fn block_owner(app: &AppName, robot: Option<u64>) -> std::borrow::Cow<'_, AppName> {
    match robot {
        Some(key) => std::borrow::Cow::Owned(AppName(format!("robot:{key:016x}").into())),
        None => std::borrow::Cow::Borrowed(app),
    }
}

#[cfg(test)]
#[path = "quota_tests.rs"]
mod more_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> AppName {
        AppName("hr".into())
    }

    #[test]
    fn a_call_s_borrowed_key_finds_the_state_its_owned_key_made_and_no_other() {
        let q = Quotas::default();
        let api: Arc<str> = "user/get".into();
        let limits = [Rate {
            count: 5,
            per: Duration::from_secs(60),
        }];
        let owned = Key::Call {
            app: app(),
            api: api.clone(),
            limits: limits.to_vec(),
        };
        let borrowed = CallKey {
            app: &app(),
            api: &api,
            limits: &limits,
        };
        let hasher = ahash::RandomState::new();
        assert_eq!(hasher.hash_one(&owned), hasher.hash_one(&borrowed));
        assert!(moka::Equivalent::equivalent(&borrowed, &owned));
        let made = q.call_cells(&app(), &api, &limits);
        let found = q.cells.get(&borrowed).expect("found by the borrowed key");
        assert!(Arc::ptr_eq(&made, &found));
        assert!(Arc::ptr_eq(&made, &q.call_cells(&app(), &api, &limits)));
        // Another app, API or limits is another state.
        let other_limits = [Rate {
            count: 6,
            per: Duration::from_secs(60),
        }];
        let other_app = AppName("crm".into());
        let other_api: Arc<str> = "user/list".into();
        for other in [
            CallKey {
                app: &other_app,
                api: &api,
                limits: &limits,
            },
            CallKey {
                app: &app(),
                api: &other_api,
                limits: &limits,
            },
            CallKey {
                app: &app(),
                api: &api,
                limits: &other_limits,
            },
        ] {
            assert!(!moka::Equivalent::equivalent(&other, &owned));
            assert_ne!(hasher.hash_one(&other), hasher.hash_one(&owned));
            assert!(q.cells.get(&other).is_none());
        }
        let recipient = Key::Recipient {
            app: app(),
            user: "user/get".into(),
        };
        assert!(!moka::Equivalent::equivalent(&borrowed, &recipient));
        assert_ne!(hasher.hash_one(&recipient), hasher.hash_one(&owned));
        assert_ne!(
            hasher.hash_one(&Key::Robot { key: 1 }),
            hasher.hash_one(&Key::Robot { key: 2 })
        );
    }

    #[tokio::test(start_paused = true)]
    async fn route_quota_and_retry_after() {
        let q = Quotas::default();
        let api: Arc<str> = "user/get".into();
        let limits = [Rate {
            count: 5,
            per: Duration::from_secs(1),
        }];
        let ask = Ask {
            app: &app(),
            api: &api,
            limits: &limits,
            recipients: &[],
            robot: None,
            share: 1,
        };
        for _ in 0..5 {
            q.take(&ask).unwrap();
        }
        assert!(
            matches!(q.take(&ask), Err(Refusal::Limit { wait }) if wait > Duration::from_millis(980))
        );
        assert_eq!(q.remaining(&app(), &api, &limits), vec![0]);
        tokio::time::advance(Duration::from_millis(1100)).await;
        assert_eq!(q.remaining(&app(), &api, &limits), vec![5]);
    }

    #[tokio::test(start_paused = true)]
    async fn thirty_first_message_to_a_member_is_refused_naming_them() {
        let q = Quotas::default();
        let api: Arc<str> = "message/send".into();
        let to_a = vec!["alice".to_string()];
        let to_ab = vec!["alice".to_string(), "bob".to_string()];
        for _ in 0..30 {
            q.take(&Ask {
                app: &app(),
                api: &api,
                limits: &[],
                recipients: &to_a,
                robot: None,
                share: 1,
            })
            .unwrap();
        }
        match q.take(&Ask {
            app: &app(),
            api: &api,
            limits: &[],
            recipients: &to_ab,
            robot: None,
            share: 1,
        }) {
            Err(Refusal::Recipients { members, wait }) => {
                assert_eq!(members, vec!["alice".to_string()]);
                assert!(wait > Duration::from_secs(59), "{wait:?}");
            }
            other => panic!("{other:?}"),
        }
        // bob lost nothing to the refused call.
        for _ in 0..30 {
            q.take(&Ask {
                app: &app(),
                api: &api,
                limits: &[],
                recipients: &["bob".to_string()],
                robot: None,
                share: 1,
            })
            .unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn blocks_hold_until_they_end() {
        let q = Quotas::default();
        let api: Arc<str> = "message/send".into();
        q.block(&app(), &api, Duration::from_secs(60));
        let ask = Ask {
            app: &app(),
            api: &api,
            limits: &[],
            recipients: &[],
            robot: None,
            share: 1,
        };
        assert!(matches!(q.take(&ask), Err(Refusal::Blocked { .. })));
        // A shorter block on another API does not shorten this one, and ends on its own.
        let other: Arc<str> = "user/get".into();
        q.block(&app(), &other, Duration::from_secs(10));
        let other_ask = Ask { api: &other, ..ask };
        assert!(matches!(q.take(&other_ask), Err(Refusal::Blocked { .. })));
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(q.take(&other_ask).is_ok());
        assert!(matches!(q.take(&ask), Err(Refusal::Blocked { .. })));
        tokio::time::advance(Duration::from_secs(50)).await;
        assert!(q.take(&ask).is_ok());
        assert!(q.take(&other_ask).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_short_block_never_shortens_a_long_one() {
        let q = Quotas::default();
        let api: Arc<str> = "message/send".into();
        q.block(&app(), &api, HOUR_BLOCK);
        q.block(&app(), &api, CONCURRENCY_BLOCK);
        let left = q.blocked_for(&app(), &api).unwrap();
        assert!(left > Duration::from_secs(3500), "{left:?}");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(q.blocked_for(&app(), &api).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_robot_block_holds_that_robot_only() {
        let q = Quotas::default();
        let api: Arc<str> = "webhook/send".into();
        let robots = AppName("robot".into());
        q.block(&block_owner(&robots, Some(1)), &api, MINUTE_BLOCK);
        let ask = |robot| Ask {
            app: &robots,
            api: &api,
            limits: &[],
            recipients: &[],
            robot: Some(robot),
            share: 1,
        };
        assert!(matches!(q.take(&ask(1)), Err(Refusal::Blocked { .. })));
        assert!(
            q.take(&ask(2)).is_ok(),
            "another robot's key is not blocked"
        );
    }

    #[test]
    fn recipients_of_messages() {
        assert_eq!(
            recipients(br#"{"touser":"a|b| c ||"}"#),
            vec!["a", "b", "c"]
        );
        assert!(recipients(br#"{"touser":"@all"}"#).is_empty());
        assert!(recipients(b"not json").is_empty());
        assert!(recipients(br#"["a|b"]"#).is_empty());
        // Each member once, so a repeated one is counted once (locally and in the fleet).
        assert_eq!(recipients(br#"{"touser":"b|a|b"}"#), ["a", "b"]);
        // linkedcorp/message/send lists its members.
        assert_eq!(
            recipients(br#"{"touser":["corp1/u2"," u1 ","u1",""]}"#),
            ["corp1/u2", "u1"]
        );
        assert!(recipients(br#"{"touser":[1,2]}"#).is_empty());
    }
}
