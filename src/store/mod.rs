//! The durable queues of the sidecar's inbound half (callbacks) and of the outbox: one
//! interface, [`Store`], and its two implementations, embedded SQLite ([`sqlite`], the default)
//! and Redis Streams (fleet mode).
//!
//! A queue is named by its owner (`callback:hr-bot`, `outbox:hr-bot`) and is FIFO: items are
//! numbered in the order they were committed and handed out in that order. The contract every
//! implementation keeps:
//! - **Committed before acknowledged.** [`Store::add`] returns only once the item survives a
//!   kill -9 of the process (SQLite: WAL with `synchronous=FULL`, the commit fsynced).
//! - **Once per key.** An item is added with a key (the SHA-256 of its content, for callbacks);
//!   a second `add` with the same key inside [`Store::remember_for`] adds nothing and returns
//!   the id the first was added with, whether that item is still queued, delivered, dead or
//!   revived (under a new id).
//! - **Delivered is gone, dead is kept.** [`Store::done`] removes the head; [`Store::bury`] moves
//!   it to the queue's dead letters, listed by [`Store::dead`] and put back at the tail (a new
//!   id: ids stay in queue order) by [`Store::revive`]. An owner that needs an id stable across
//!   that (a callback's `X-WeCom-Callback-Id`) keeps it in the item's `meta`.
//! - Attempts are counted in the store ([`Store::failed`]), so a restart does not reset the
//!   `X-WeCom-Attempt` an app sees.
//! - **Bounded on request.** [`Store::add_within`] commits only while the queue holds fewer
//!   than [`Limits::max_queued`] waiting items and the whole store (every queue's items, dead
//!   letters included: their meta and payload bytes) stays within [`Limits::max_bytes`];
//!   otherwise it says which bound is [`Full`], in the same atomic step as the commit, so
//!   concurrent adds cannot pass a bound together. [`Store::used_bytes`] is that sum.
//!
//! Backoff and ordering are the worker's: it asks for the head, tries it, and only then asks for
//! the next; this module never reorders. [`worker`] is the loop every queue's worker runs.

use std::time::Duration;

mod open;
pub mod redis;
pub mod sqlite;
pub mod worker;

pub use open::open;

/// One queued item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Increasing in commit order within the store; the id an admin names.
    pub id: u64,
    /// When it was committed (Unix milliseconds).
    pub added_ms: u64,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Why the last attempt failed (never a secret: the worker writes it).
    pub last_error: Option<String>,
    /// Small owner-defined facts about the item (e.g. the callback's MsgType), as written.
    pub meta: Vec<u8>,
    /// The item itself (a decrypted callback's XML, a send's JSON body).
    pub payload: Vec<u8>,
}

/// What [`Store::add`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// Committed at the tail, with this id.
    New(u64),
    /// The key was seen before (within [`Store::remember_for`]): nothing added; the first id.
    Duplicate(u64),
}

impl Added {
    pub fn id(self) -> u64 {
        match self {
            Added::New(id) | Added::Duplicate(id) => id,
        }
    }
}

/// A queue's figures, for metrics and `/admin`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Depth {
    /// Items waiting (the head included).
    pub queued: u64,
    /// When the oldest waiting item was committed (Unix milliseconds).
    pub oldest_ms: Option<u64>,
    /// Dead letters.
    pub dead: u64,
}

/// Bounds an [`Store::add_within`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most every queue's items (meta and payload, dead letters included) may hold.
    pub max_bytes: u64,
    /// The most waiting items this queue may hold.
    pub max_queued: u64,
}

impl Limits {
    /// No bound.
    pub const NONE: Limits = Limits {
        max_bytes: u64::MAX,
        max_queued: u64::MAX,
    };
}

/// Which bound an add would have passed; nothing was added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Full {
    #[error(
        "the store holds {used} bytes and this item's {size} would pass store.max_bytes ({max})"
    )]
    Bytes { used: u64, size: u64, max: u64 },
    #[error("the queue holds {queued} waiting items, its cap ({max})")]
    Queued { queued: u64, max: u64 },
}

/// A store that could not do what was asked; the caller must not acknowledge the item.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store at {path} cannot be used: {why}")]
    Open { path: String, why: String },
    #[error("the store failed: {0}")]
    Io(String),
    #[error("the store is closed")]
    Closed,
}

/// The queues, whatever keeps them.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// How long a key is remembered after its item was added.
    fn remember_for(&self) -> Duration;

    /// Commits `payload` at the tail of `queue` unless `key` was added within
    /// [`Store::remember_for`]. Returns once durable.
    async fn add(
        &self,
        queue: &str,
        key: [u8; 32],
        meta: &[u8],
        payload: &[u8],
    ) -> Result<Added, StoreError> {
        match self
            .add_within(queue, key, meta, payload, Limits::NONE)
            .await?
        {
            Ok(added) => Ok(added),
            // No bound is kept: an implementation saying full is broken.
            Err(full) => Err(StoreError::Io(full.to_string())),
        }
    }

    /// As [`Store::add`], unless committing would pass `limits` (checked with the commit, in
    /// one step): then nothing is added and the bound is named. A key seen before is a
    /// duplicate however full the store is.
    async fn add_within(
        &self,
        queue: &str,
        key: [u8; 32],
        meta: &[u8],
        payload: &[u8],
        limits: Limits,
    ) -> Result<Result<Added, Full>, StoreError>;

    /// What every queue's items (meta and payload, dead letters included) hold, in bytes.
    async fn used_bytes(&self) -> Result<u64, StoreError>;

    /// The oldest waiting item of `queue`, left in place.
    async fn head(&self, queue: &str) -> Result<Option<Item>, StoreError>;

    /// [`Store::head`], with the time until which this sidecar holds the queue (fleet mode:
    /// its lease, taken or renewed by this call; `None`: a store only this sidecar reads).
    /// Past it another sidecar may take the queue and the item with it, so work on the item
    /// must end before it for the item to be worked on once.
    async fn head_held(
        &self,
        queue: &str,
    ) -> Result<Option<(Item, Option<std::time::Instant>)>, StoreError> {
        Ok(self.head(queue).await?.map(|item| (item, None)))
    }

    /// `id` was delivered: removed. (Its key is still remembered.)
    async fn done(&self, queue: &str, id: u64) -> Result<(), StoreError>;

    /// An attempt at `id` failed with `error`; returns the attempts counted so far.
    async fn failed(&self, queue: &str, id: u64, error: &str) -> Result<u32, StoreError>;

    /// `id` is given up on: moved to the dead letters with `error`.
    async fn bury(&self, queue: &str, id: u64, error: &str) -> Result<(), StoreError>;

    /// The queue's figures.
    async fn depth(&self, queue: &str) -> Result<Depth, StoreError>;

    /// Up to `limit` dead letters, oldest first.
    async fn dead(&self, queue: &str, limit: usize) -> Result<Vec<Item>, StoreError>;

    /// Puts dead letter `id` back at the tail (a new id) with its attempts reset; `None` if
    /// there is no such dead letter.
    async fn revive(&self, queue: &str, id: u64) -> Result<Option<u64>, StoreError>;

    /// Deletes dead letter `id`; false if there is none.
    async fn forget(&self, queue: &str, id: u64) -> Result<bool, StoreError>;
}

/// How long a queue stays with a sidecar that stopped renewing it (fleet mode), by the kind
/// of its owner: a callback queue is taken over soon after its sidecar dies (two delivery
/// timeouts), an outbox queue only once a replay, which may take its route's deadline, cannot
/// still be under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leases {
    pub callbacks: Duration,
    pub outbox: Duration,
}

impl Leases {
    /// The lease of `queue`, by its name (`outbox:<app>`, else a callback queue).
    pub fn of(&self, queue: &str) -> Duration {
        if queue.starts_with("outbox:") {
            self.outbox
        } else {
            self.callbacks
        }
    }
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
